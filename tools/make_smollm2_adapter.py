#!/usr/bin/env python3
"""A PEFT adapter written by PEFT for the real SmolLM2-135M-Instruct, and its logits.

transformers loads the Q4_1 GGUF (dequantised to f32, q/k rows un-permuted into the HF layout);
PEFT adds LoRA r=2, alpha=4 on q_proj and v_proj with random A, B (seeded, std 0.05, so the
adapter visibly moves the logits) and saves it with its own save_pretrained. Writes:
  tests/fixtures/smollm2/adapter/       adapter_config.json + adapter_model.safetensors (~0.5 MB)
  tests/fixtures/smollm2/ref_lora.safetensors: tokens (T,), vocab (K,), logits (T, K), argmax (T,)
for tests/golden/test_smollm2.c (interop PEFT -> loratune on a real quantised model).
Usage: python3 tools/make_smollm2_adapter.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import os, sys
import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM
from peft import LoraConfig, get_peft_model

gguf = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
    "~/.cache/loratune/SmolLM2-135M-Instruct.Q4_1.gguf")
torch.manual_seed(0)
base = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf),
                                            torch_dtype=torch.float32)
pm = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, lora_dropout=0.0,
                                     target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
g = torch.Generator().manual_seed(5)
with torch.no_grad():
    for n, p in sorted(pm.named_parameters()):
        if "lora_" in n:
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "smollm2")
pm.peft_config["default"].base_model_name_or_path = "SmolLM2-135M-Instruct.Q4_1.gguf"
pm.save_pretrained(os.path.join(out_dir, "adapter"))
readme = os.path.join(out_dir, "adapter", "README.md")
if os.path.exists(readme):
    os.remove(readme)
rng = np.random.default_rng(1234)
T, K = 24, 512
tokens = rng.integers(3, 49152, size=T).astype(np.int32)
vocab = np.sort(rng.choice(49152, size=K, replace=False)).astype(np.int32)
pm.eval()
with torch.no_grad():
    lg = pm(torch.tensor(tokens[None, :], dtype=torch.long)).logits[0].float().numpy()
    with pm.disable_adapter():
        lb = pm(torch.tensor(tokens[None, :], dtype=torch.long)).logits[0].float().numpy()
save_file({"tokens": tokens, "vocab": vocab, "logits": np.ascontiguousarray(lg[:, vocab]),
           "argmax": lg.argmax(-1).astype(np.int32)},
          os.path.join(out_dir, "ref_lora.safetensors"))
print("adapter moves logits by", float(np.abs(lg - lb).max()))
