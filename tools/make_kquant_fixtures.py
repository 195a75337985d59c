#!/usr/bin/env python3
"""make_kquant_fixtures.py - reference dequantisation of GGUF block types for tests/unit/test_kquant.c.

For each of Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K: random blocks (random code bytes, scale fields
set to finite f16 values of realistic size) and their values as the `gguf` Python package (the
llama.cpp project's own reader, gguf-py) dequantises them. Written to
tests/fixtures/kquants/kquants.safetensors as "<type>.raw" (U8, the blocks) and "<type>.f32"
(F32, the values). Run from the repository root:  python3 tools/make_kquant_fixtures.py
Needs: numpy, gguf (pip), safetensors. Never used by `make test`.
"""
import os

import numpy as np
from gguf import GGMLQuantizationType as T, GGML_QUANT_SIZES
from gguf.quants import dequantize
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "kquants", "kquants.safetensors")
# where the f16 scale fields sit in each block: (byte offset, count)
F16_FIELDS = {
    "Q5_0": [(0, 1)], "Q5_1": [(0, 2)],
    "Q2_K": [(80, 2)],            # scales[16] qs[64] d dmin
    "Q3_K": [(108, 1)],           # hmask[32] qs[64] scales[12] d
    "Q4_K": [(0, 2)],             # d dmin scales[12] qs[128]
    "Q5_K": [(0, 2)],             # d dmin scales[12] qh[32] qs[128]
    "Q6_K": [(208, 1)],           # ql[128] qh[64] scales[16] d
}
N_BLOCKS = {"Q5_0": 24, "Q5_1": 24}  # the K types: 4 blocks of 256


def main():
    rng = np.random.default_rng(20261125)
    tensors = {}
    for name, fields in F16_FIELDS.items():
        qt = T[name]
        block, nbytes = GGML_QUANT_SIZES[qt]
        nb = N_BLOCKS.get(name, 4)
        raw = rng.integers(0, 256, size=(nb, nbytes), dtype=np.uint8)
        for off, cnt in fields:
            vals = (rng.standard_normal((nb, cnt)) * 0.02).astype(np.float16)
            raw[:, off:off + 2 * cnt] = vals.view(np.uint8).reshape(nb, 2 * cnt)
        vals = dequantize(raw.reshape(-1), qt).astype(np.float32).reshape(-1)
        assert vals.size == nb * block and np.all(np.isfinite(vals))
        tensors[name + ".raw"] = raw.reshape(-1)
        tensors[name + ".f32"] = vals
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(tensors, OUT)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
