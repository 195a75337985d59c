#!/usr/bin/env python3
"""bench_tokenizer_hf.py - HF `tokenizers` encode speed on exactly the text bench/bench_tokenizer.c
encodes (shared datasets concatenated, each followed by "\n", repeated to >= 4 MiB), one call,
median of 3 after a warm-up, single thread (RAYON_NUM_THREADS=1 / TOKENIZERS_PARALLELISM=false).
Prints one JSON line like the C bench, and the ratio when given the C bench's tokens_per_s:
    python3 tools/bench_tokenizer_hf.py [c_tokens_per_s]
"""
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("LT_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
FILES = ["datasets/the-verdict.txt", "datasets/rasbt-instruction-data.json",
         "datasets/SMSSpamCollection.tsv", "datasets/tinystories_sample.txt"]

one = b""
for f in FILES:
    p = os.path.join(SHARED, f)
    if os.path.exists(p):
        one += open(p, "rb").read() + b"\n"
data = b""
while len(data) < (4 << 20):
    data += one
text = data.decode("utf-8")
tok = Tokenizer.from_file(os.path.join(SHARED, "tokenizers", "gpt2-hf-tokenizer.json"))
tok.no_truncation()
times = []
n = 0
for r in range(4):
    t = time.perf_counter()
    n = len(tok.encode(text, add_special_tokens=False).ids)
    if r:
        times.append(time.perf_counter() - t)
times.sort()
med = times[1]
res = {"bench": "tokenizer_hf", "tokenizer": "gpt2 tokenizer.json (HF tokenizers)", "bytes": len(data),
       "tokens": n, "threads": 1, "ms": round(med * 1e3, 1), "tokens_per_s": round(n / med)}
print(json.dumps(res))
if len(sys.argv) > 1:
    print("loratune / HF tokens_per_s ratio: %.2f" % (float(sys.argv[1]) / res["tokens_per_s"]))
