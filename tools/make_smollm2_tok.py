#!/usr/bin/env python3
"""Token ids of hard strings for SmolLM2-135M-Instruct's tokenizer, as transformers builds it from
the GGUF (tokenizer.ggml.* keys -> a fast GPT-2-style BPE tokenizer), and the chat template
rendering of one conversation. Writes tests/fixtures/smollm2/tokenizer.json (a JSON list of
{"text", "ids"} plus {"chat": ..., "rendered": ...}) for tests/golden/test_smollm2.c.
"""
import json, os, sys
from transformers import AutoTokenizer

gguf = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
    "~/.cache/loratune/SmolLM2-135M-Instruct.Q4_1.gguf")
tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
texts = ["", " ", "  ", "\t", "\n", "\n\n\n", "Hello world", " Hello world", "Hello World!",
         "don't I'll we're", "3.14159 and 1,000,000", "1234567890", "   leading spaces",
         "trailing spaces   ", "tabs\tand\nnewlines", "日本語のテキスト", "ユーザ：こんにちは",
         "emoji 🦙🚀 ok", "Ünïcödé façade naïve", "Привет мир", "print('hi')\n    return x",
         "<|im_start|>user\nhi<|im_end|>", "{\"order_id\": \"LQ-79575\", \"quantity\": 2}",
         "a" * 40, "mixed123abc456", "$12.37 @ #CI-79557"]
cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in texts]
msgs = [{"role": "user", "content": "Extract the order as JSON."},
        {"role": "assistant", "content": "{\"city\": \"Cairo\"}"}]
rendered = tok.apply_chat_template(msgs, tokenize=False)
out = {"cases": cases, "chat": msgs, "rendered": rendered,
       "rendered_gen": tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "smollm2",
                    "tokenizer.json")
with open(path, "w") as f:
    json.dump(out, f, ensure_ascii=False, indent=1)
print(len(cases), "cases;", repr(rendered[:80]))
