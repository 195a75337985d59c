#!/usr/bin/env python3
"""make_data_fixtures.py - reference ids and labels for tests/unit/test_data.c (src/data).

Writes tests/fixtures/data/golden.json:
  "tokenizers": how to build each tokenizer from ../shared/data/tokenizers/gpt2-hf-tokenizer.json
      (its truncation block removed): tokens to add to "added_tokens", an optional replacement
      "post_processor", and the tokenizer_config.json ("config") to load with it:
        gpt2         GPT-2 as is (no BOS; EOS <|endoftext|>)
        gpt2_bos     plus <|bos|> (50257) that a TemplateProcessing post-processor puts first
        gpt2_chatml  plus <|im_start|> (50257) and <|im_end|> (50258), EOS <|im_end|>, and a
                     small ChatML chat_template (Qwen2 style without the default system turn)
  "cases": one record each, the options the C side uses (shape is always auto-detected), and
      the expected "ids" and "labels" (-100 = no loss). "source" says what produced them:
        trl        TRL's SFTTrainer (its own dataset preparation: add_eos, tokenize_fn with
                   common_prefix_length, the labels built from completion_mask / assistant_masks)
                   on a tiny GPT-2 model; chats with assistant_only_loss use the same ChatML
                   template with {% generation %} blocks (transformers' return_assistant_tokens_mask)
        collator   TRL's former DataCollatorForCompletionOnlyLM, whose code (removed from TRL in
                   0.20) is restated below: labels -100 up to the end of the LAST match of the
                   response template's ids
        offsets    HF offsets: a token carries loss when its character span reaches past the
                   loss boundary. Used where loratune deliberately differs from TRL; the TRL
                   result is kept in "trl_labels" for the record.
  Every case is also checked against the offsets rule (the rule loratune implements), so the
  script fails when TRL and that rule disagree on a case not marked as differing.

Run from the repository root:   python3 tools/make_data_fixtures.py
Needs: tokenizers, transformers, jinja2, trl (+ datasets, torch). Never run by `make test`.
Versions used for the committed file: tokenizers 0.23.3, transformers 5.24.0, trl 1.16.0,
jinja2 3.1.6, torch 2.15.0.
"""
import copy
import json
import logging
import os
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "data")
SHARED = os.environ.get("LT_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# The same rendering with the assistant part (content and end of turn) in a generation block,
# for transformers' return_assistant_tokens_mask (what TRL's assistant_only_loss uses).
CHATML_GEN = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endgeneration %}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def added(i, content):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


TOKENIZERS = {
    "gpt2": {"added_tokens": [], "post_processor": None,
             "config": {"bos_token": None, "eos_token": "<|endoftext|>"}},
    "gpt2_bos": {
        "added_tokens": [added(50257, "<|bos|>")],
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|bos|>": {"id": "<|bos|>", "ids": [50257], "tokens": ["<|bos|>"]}},
        },
        "config": {"bos_token": "<|bos|>", "eos_token": "<|endoftext|>"},
    },
    "gpt2_chatml": {
        "added_tokens": [added(50257, "<|im_start|>"), added(50258, "<|im_end|>")],
        "post_processor": None,
        "config": {"bos_token": None, "eos_token": "<|im_end|>", "chat_template": CHATML},
    },
}

ALPACA = {  # Stanford Alpaca train.py PROMPT_DICT
    "prompt_input": (
        "Below is an instruction that describes a task, paired with an input that provides further "
        "context. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"),
    "prompt_no_input": (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Response:\n"),
}


def alpaca_prompt(r):
    return (ALPACA["prompt_input"] if r.get("input") else ALPACA["prompt_no_input"]).format_map(r)


def ja_prompt(r):  # "### 指示\n{instruction}\n\n### 入力\n{input}\n\n### 応答\n{output}"
    s = "### 指示\n" + r["instruction"] + "\n\n"
    if r.get("input"):
        s += "### 入力\n" + r["input"] + "\n\n"
    return s + "### 応答\n"


def rasbt_prompt(r):  # rasbt/LLMs-from-scratch ch07 format_input + "\n\n### Response:\n"
    s = ("Below is an instruction that describes a task. Write a response that appropriately "
         "completes the request.\n\n### Instruction:\n" + r["instruction"])
    if r["input"]:
        s += "\n\n### Input:\n" + r["input"]
    return s + "\n\n### Response:\n"


def make_tokenizer(name):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    with open(os.path.join(SHARED, "tokenizers", "gpt2-hf-tokenizer.json"), encoding="utf-8") as f:
        d = json.load(f)
    d["truncation"] = None  # the shared file carries max_length 50; loratune ignores it
    spec = TOKENIZERS[name]
    d["added_tokens"] = d["added_tokens"] + copy.deepcopy(spec["added_tokens"])
    if spec["post_processor"] is not None:
        d["post_processor"] = spec["post_processor"]
    t = Tokenizer.from_str(json.dumps(d))
    cfg = spec["config"]
    kw = {k: v for k, v in cfg.items() if k in ("bos_token", "eos_token") and v is not None}
    tok = PreTrainedTokenizerFast(tokenizer_object=t, **kw)
    tok.pad_token = tok.eos_token
    if cfg.get("chat_template"):
        tok.chat_template = cfg["chat_template"]
    return tok


# ---------------------------------------------------------------------------------------------
# references

def lcp(a, b):
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return i


def offsets_labels(tok, text, spans, add_special, eos_id=None, all_loss=False):
    """The rule loratune implements: token i carries loss when its character span overlaps a loss
    span [b, e) (a token straddling a boundary goes with the loss side). Special tokens added by
    the post-processor (BOS) have empty offsets and carry loss only with loss on all tokens."""
    enc = tok(text, add_special_tokens=add_special, return_offsets_mapping=True)
    ids, offs = enc["input_ids"], enc["offset_mapping"]
    labels = []
    for i, (s, e) in enumerate(offs):
        if e == s and add_special:  # a post-processor token (BOS)
            loss = all_loss
        else:
            loss = any(s < be and e > bb for bb, be in spans)
        labels.append(ids[i] if loss else -100)
    if eos_id is not None and (not ids or ids[-1] != eos_id):
        labels.append(eos_id if labels and labels[-1] != -100 else -100)
        ids = ids + [eos_id]
    return ids, labels


def trl_prepare(tok, rows, assistant_only=False, completion_only=True, chat_template=None):
    """TRL SFTTrainer's own dataset preparation on a tiny model; returns [(ids, labels)]."""
    from datasets import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel
    from trl import SFTConfig, SFTTrainer

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=len(tok),
                                       n_positions=1024))
    args = SFTConfig(output_dir="/tmp/lt_trl_fixtures", report_to=[], max_length=None,
                     use_cpu=True, bf16=False, assistant_only_loss=assistant_only,
                     completion_only_loss=completion_only, chat_template_path=None,
                     disable_tqdm=True)
    if chat_template is not None:
        tok = copy.deepcopy(tok)
        tok.chat_template = chat_template
    tr = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                    processing_class=tok)
    return [(list(r["input_ids"]), list(r["labels"])) for r in tr.train_dataset]


def collator_labels(tok, text, response_template):
    """TRL DataCollatorForCompletionOnlyLM.torch_call (trl <= 0.19), one example:
        for idx in np.where(batch["labels"][i] == self.response_token_ids[0])[0]:
            if self.response_token_ids == batch["labels"][i][idx : idx + len(...)].tolist():
                response_token_ids_start_idx = idx
        ... batch["labels"][i, :response_token_ids_end_idx] = self.ignore_index
    with response_token_ids = tokenizer.encode(response_template, add_special_tokens=False).
    The text gets the EOS appended first, as SFTTrainer's add_eos does for text records."""
    rt = tok.encode(response_template, add_special_tokens=False)
    ids = tok(text + tok.eos_token)["input_ids"]
    start = None
    for i in range(len(ids)):
        if ids[i] == rt[0] and ids[i:i + len(rt)] == rt:
            start = i
    if start is None:
        return ids, None
    end = start + len(rt)
    return ids, [-100] * end + ids[end:]


# ---------------------------------------------------------------------------------------------
# cases

def text_cases():
    return [
        {"name": "text_plain", "record": {"text": "The quick brown fox jumps over the lazy dog."}},
        {"name": "text_unicode", "record": {"text": "日本語のテキスト 😀 café\n  indented\tx"}},
        {"name": "text_ends_with_eos", "record": {"text": "already stops<|endoftext|>"}},
    ]


def pc_cases():
    return [
        {"name": "pc_basic", "record": {"prompt": "Translate to French: cat\nAnswer:",
                                        "completion": " chat"}},
        # the prompt ends in a space: " yes" is one token across the boundary; it carries loss
        {"name": "pc_merge_space", "record": {"prompt": "Q: is the sky blue? A: ",
                                              "completion": "yes"}},
        {"name": "pc_japanese", "record": {"prompt": "質問：日本の首都は？\n答え：", "completion": "東京です。"}},
        {"name": "pc_empty_prompt", "record": {"prompt": "", "completion": "Just text."}},
    ]


def instr_records():
    return [
        {"instruction": "Convert 45 kilometers to meters.", "input": "",
         "output": "45 kilometers is 45000 meters."},
        {"instruction": "Edit the following sentence for grammar.",
         "input": "He go to the park every day.", "output": "He goes to the park every day."},
    ]


def build(tok_name, toks):
    tok = toks[tok_name]
    eos = tok.eos_token_id
    cases = []

    def add(case, ids, labels, source, opts=None, trl_labels=None):
        c = {"name": case["name"], "tokenizer": tok_name, "opts": opts or {},
             "record": case["record"], "ids": ids, "labels": labels, "source": source}
        if trl_labels is not None:
            c["trl_labels"] = trl_labels
        cases.append(c)

    def check_offsets(name, ids, labels, text, spans, add_special=True, with_eos=True,
                      all_loss=False):
        oi, ol = offsets_labels(tok, text, spans, add_special, eos if with_eos else None, all_loss)
        if (oi, ol) != (ids, labels):
            sys.exit(f"{tok_name}/{name}: TRL and the offsets rule disagree:\n"
                     f" trl     {ids}\n         {labels}\n offsets {oi}\n         {ol}")

    # text: loss on all tokens, EOS appended
    tc = text_cases()
    for c, (ids, labels) in zip(tc, trl_prepare(tok, [c["record"] for c in tc])):
        t = c["record"]["text"]
        check_offsets(c["name"], ids, labels, t, [(0, len(t))],
                      with_eos=not t.endswith(tok.eos_token), all_loss=True)
        add(c, ids, labels, "trl")

    # prompt/completion
    pc = pc_cases()
    for c, (ids, labels) in zip(pc, trl_prepare(tok, [c["record"] for c in pc])):
        p, q = c["record"]["prompt"], c["record"]["completion"]
        check_offsets(c["name"], ids, labels, p + q, [(len(p), len(p + q))])
        add(c, ids, labels, "trl")

    # instruction records through templates -> TRL prompt/completion
    recs = instr_records()
    for tmpl, fn in (("alpaca", alpaca_prompt), ("rasbt", rasbt_prompt)):
        rows = [{"prompt": fn(r), "completion": r["output"]} for r in recs]
        for k, (r, (ids, labels)) in enumerate(zip(recs, trl_prepare(tok, rows))):
            p = rows[k]["prompt"]
            check_offsets("instr", ids, labels, p + r["output"], [(len(p), len(p + r["output"]))])
            add({"name": f"instr_{tmpl}_{k}", "record": r}, ids, labels, "trl",
                {"template": tmpl} if tmpl != "alpaca" else {})
    ja = [{"instruction": "次の文を英語に翻訳してください。", "input": "猫が好きです。",
           "output": "I like cats."},
          {"instruction": "日本で一番高い山は？", "input": "", "output": "富士山です。"}]
    rows = [{"prompt": ja_prompt(r), "completion": r["output"]} for r in ja]
    for k, (r, (ids, labels)) in enumerate(zip(ja, trl_prepare(tok, rows))):
        add({"name": f"instr_ja_{k}", "record": r}, ids, labels, "trl",
            {"template": "### 指示\n{instruction}\n\n### 入力\n{input}\n\n### 応答\n{output}"})

    # a classification record trained as SFT: template with the label as the response
    r = {"text": "WINNER!! Claim your free prize now", "label": "spam"}
    p = "SMS: " + r["text"] + "\nLabel: "
    (ids, labels), = trl_prepare(tok, [{"prompt": p, "completion": r["label"]}])
    add({"name": "cls_as_sft", "record": r}, ids, labels, "trl",
        {"template": "SMS: {text}\nLabel: {label}", "response_field": "label"})

    if tok_name != "gpt2":
        return cases

    # a merge across the boundary where TRL's common prefix starts the completion earlier
    r = {"prompt": "transform", "completion": "ation"}
    (ids, trl_l), = trl_prepare(tok, [r])
    oi, ol = offsets_labels(tok, "transformation", [(9, 14)], True, eos)
    assert oi == ids and ol != trl_l
    add({"name": "pc_merge_differs_from_trl", "record": r}, oi, ol, "offsets", None, trl_l)

    # response templates (TRL's former completion-only collator)
    r = {"text": "### Question: What is 2+2?\n### Answer: 4"}
    ids, labels = collator_labels(tok, r["text"], "### Answer:")
    check_offsets("rt", ids, labels, r["text"], [(r["text"].index("### Answer:") + 11, len(r["text"]))])
    add({"name": "rt_text", "record": r}, ids, labels, "collator",
        {"response_template": "### Answer:"})
    # "Answer:" alone tokenizes as ["Answer", ":"] but in the text it is " Answer": the ids do not
    # match (the collator would drop the example's loss); loratune finds the string instead.
    ids, none = collator_labels(tok, r["text"], "Answer:")
    assert none is None
    e = r["text"].index("Answer:") + 7
    oi, ol = offsets_labels(tok, r["text"], [(e, len(r["text"]))], True, eos)
    add({"name": "rt_text_fallback", "record": r}, oi, ol, "offsets",
        {"response_template": "Answer:"}, [-100] * len(oi))
    # instruction record with a response template: the loss starts after its last match
    r = instr_records()[1]
    text = alpaca_prompt(r) + r["output"]
    ids, labels = collator_labels(tok, text, "### Response:\n")
    add({"name": "rt_instruction", "record": r}, ids, labels, "collator",
        {"response_template": "### Response:\n"})
    # loss on all tokens of an instruction record (TRL completion_only_loss=False)
    rows = [{"prompt": alpaca_prompt(r), "completion": r["output"]}]
    (ids, labels), = trl_prepare(tok, rows, completion_only=False)
    add({"name": "instr_loss_all", "record": r}, ids, labels, "trl", {"loss_on": "all"})
    return cases


def chat_cases(toks):
    tok = toks["gpt2_chatml"]
    convs = [
        [{"role": "system", "content": "You are terse."},
         {"role": "user", "content": "Capital of France?"},
         {"role": "assistant", "content": "Paris."}],
        [{"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello! How can I help?"},
         {"role": "user", "content": "2+2?"},
         {"role": "assistant", "content": "4"}],
        [{"role": "user", "content": "日本の首都は？"},
         {"role": "assistant", "content": "東京です。😀"}],
    ]
    cases = []
    # the two templates must render the same text
    for m in convs:
        for gen in (False, True):
            a = tok.apply_chat_template(m, tokenize=False, add_generation_prompt=gen,
                                        chat_template=CHATML)
            b = tok.apply_chat_template(m, tokenize=False, add_generation_prompt=gen,
                                        chat_template=CHATML_GEN)
            assert a == b, (a, b)
    out = trl_prepare(tok, [{"messages": m} for m in convs], assistant_only=True,
                      chat_template=CHATML_GEN)
    for k, (m, (ids, labels)) in enumerate(zip(convs, out)):
        # the span rule of the brief, checked against transformers' generation masks
        full = tok.apply_chat_template(m, tokenize=False, chat_template=CHATML)
        spans = []
        for j, msg in enumerate(m):
            if msg["role"] != "assistant":
                continue
            b = len(tok.apply_chat_template(m[:j], tokenize=False, add_generation_prompt=True,
                                            chat_template=CHATML)) if j else 0
            e = len(tok.apply_chat_template(m[:j + 1], tokenize=False, chat_template=CHATML))
            spans.append((b, e))
        oi, ol = offsets_labels(tok, full, spans, False, None)
        assert (oi, ol) == (ids, labels), (m, ids, labels, ol)
        cases.append({"name": f"chat_{k}", "tokenizer": "gpt2_chatml", "opts": {},
                      "record": {"messages": m}, "ids": ids, "labels": labels, "source": "trl"})
    # loss on all tokens
    (ids, labels), = trl_prepare(tok, [{"messages": convs[1]}], assistant_only=False)
    cases.append({"name": "chat_loss_all", "tokenizer": "gpt2_chatml", "opts": {"loss_on": "all"},
                  "record": {"messages": convs[1]}, "ids": ids, "labels": labels, "source": "trl"})
    # loss on the last assistant turn only: TRL's conversational prompt/completion
    m = convs[1]
    (ids, labels), = trl_prepare(tok, [{"prompt": m[:-1], "completion": m[-1:]}])
    cases.append({"name": "chat_completion", "tokenizer": "gpt2_chatml",
                  "opts": {"loss_on": "completion"}, "record": {"messages": m}, "ids": ids,
                  "labels": labels, "source": "trl"})
    return cases


def main():
    if not os.path.exists(os.path.join(SHARED, "tokenizers", "gpt2-hf-tokenizer.json")):
        sys.exit(f"{SHARED}/tokenizers/gpt2-hf-tokenizer.json not found")
    toks = {n: make_tokenizer(n) for n in TOKENIZERS}
    assert toks["gpt2_bos"]("x")["input_ids"][0] == 50257
    assert toks["gpt2"]("x")["input_ids"] == [87]
    cases = build("gpt2", toks) + build("gpt2_bos", toks) + chat_cases(toks)
    os.makedirs(OUT, exist_ok=True)
    doc = {"generator": "tools/make_data_fixtures.py", "tokenizers": TOKENIZERS, "cases": cases}
    path = os.path.join(OUT, "golden.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {path}: {len(cases)} cases")


if __name__ == "__main__":
    main()
