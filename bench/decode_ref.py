#!/usr/bin/env python3
"""PyTorch reference for bench_decode.c: transformers' forward with its KV cache (DynamicCache),
greedy, on the same shapes (prompt P random ids, N new tokens, batch 1 and 8), float32 on CPU.
One JSON line per batch size, median of `runs` after a warm-up, like bench_decode.

Usage: python bench/decode_ref.py MODEL [ADAPTER|-] [P] [N] [runs]
MODEL: a Hugging Face directory or a .gguf file (transformers dequantises it to float32).
Threads: torch uses as many as OMP_NUM_THREADS (or all cores); run both benches with the same.
"""
import json
import os
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def load(path, adapter):
    if path.endswith(".gguf"):
        m = AutoModelForCausalLM.from_pretrained(os.path.dirname(path) or ".",
                                                 gguf_file=os.path.basename(path),
                                                 dtype=torch.float32)
    else:
        m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if adapter:
        from peft import PeftModel
        m = PeftModel.from_pretrained(m, adapter)
    return m.eval()  # already float32 (GGUF is dequantised; .float() refuses GGUF models)


def run(m, B, P, N, V):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, V, (B, P), generator=g)
    with torch.no_grad():
        t0 = time.perf_counter()
        out = m(input_ids=ids, use_cache=True)
        t1 = time.perf_counter()
        past, logits = out.past_key_values, out.logits[:, -1]
        for _ in range(N):
            nxt = logits.argmax(-1, keepdim=True)
            out = m(input_ids=nxt, past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[:, -1]
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__)
        return 2
    model = a[0]
    adapter = a[1] if len(a) > 1 and a[1] != "-" else None
    P = int(a[2]) if len(a) > 2 else 32
    N = int(a[3]) if len(a) > 3 else 64
    runs = int(a[4]) if len(a) > 4 else 5
    m = load(model, adapter)
    V = m.config.vocab_size
    for B in (1, 8):
        run(m, B, P, min(N, 4), V)  # warm-up
        tp, td = zip(*[run(m, B, P, N, V) for _ in range(runs)])
        p, d = statistics.median(tp), statistics.median(td)
        print(json.dumps({"bench": "decode_ref", "impl": f"torch {torch.__version__}",
                          "threads": torch.get_num_threads(), "model": model, "adapter": adapter,
                          "batch": B, "prompt": P, "new": N, "runs": runs,
                          "prefill_ms": round(1e3 * p, 2), "prefill_tok_s": round(B * P / p, 1),
                          "decode_ms": round(1e3 * d, 2), "decode_tok_s": round(B * N / d, 1),
                          "ms_per_step": round(1e3 * d / N, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
