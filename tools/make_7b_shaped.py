#!/usr/bin/env python3
"""make_7b_shaped.py - a random-weight llama/mistral model directory (config.json +
model.safetensors, BF16) of a given shape, for bench/bench_qlora.c. Not committed: written to
/tmp.

    python tools/make_7b_shaped.py 7b /tmp/lt_qlora/7b            # Mistral-7B dimensions
    python tools/make_7b_shaped.py 7b /tmp/lt_qlora/7b4 --layers 4 # the same, 4 layers
    python tools/make_7b_shaped.py C  /tmp/lt_qlora/C             # bench config C

Presets (hidden, layers, heads, kv heads, MLP, vocab):
    7b  4096, 32, 32, 8, 14336, 32768   (Mistral-7B-v0.3: 7.25e9 parameters, 14.5 GB in BF16)
    C   2048,  4, 32, 4,  5632, 32000   (bench/README.md config C)

Weights: N(0, 0.02) rounded to BF16 (nearest even), norm weights 1. A pool of 2^24 values is drawn
once (numpy PCG64, seed 1234) and each matrix is filled with 2^20-value chunks of it taken at
offsets drawn from a generator seeded by the tensor's index: deterministic, and disk-bound rather
than minutes of drawing normals. The file is streamed (memory: the 32 MB pool); the 7B file needs
14.5 GB of disk. Only numpy is needed (no torch).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

PRESETS = {
    "7b": dict(hidden=4096, layers=32, heads=32, kv=8, ffn=14336, vocab=32768, model_type="mistral",
               theta=1e6, max_pos=32768),
    "C": dict(hidden=2048, layers=4, heads=32, kv=4, ffn=5632, vocab=32000, model_type="llama",
              theta=1e4, max_pos=2048),
}


def tensors_of(p):
    C, F, V, hd = p["hidden"], p["ffn"], p["vocab"], p["hidden"] // p["heads"]
    kvd = p["kv"] * hd
    out = [("model.embed_tokens.weight", (V, C))]
    for l in range(p["layers"]):
        pre = f"model.layers.{l}."
        out += [(pre + "input_layernorm.weight", (C,)),
                (pre + "self_attn.q_proj.weight", (C, C)),
                (pre + "self_attn.k_proj.weight", (kvd, C)),
                (pre + "self_attn.v_proj.weight", (kvd, C)),
                (pre + "self_attn.o_proj.weight", (C, C)),
                (pre + "post_attention_layernorm.weight", (C,)),
                (pre + "mlp.gate_proj.weight", (F, C)),
                (pre + "mlp.up_proj.weight", (F, C)),
                (pre + "mlp.down_proj.weight", (C, F))]
    out += [("model.norm.weight", (C,)), ("lm_head.weight", (V, C))]
    return out


def bf16_bytes(x):
    u = x.astype(np.float32).view(np.uint32)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even (no NaN here)
    return u.astype(np.uint16).tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("preset", choices=sorted(PRESETS))
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=0, help="override the number of layers")
    a = ap.parse_args()
    p = dict(PRESETS[a.preset])
    if a.layers > 0:
        p["layers"] = a.layers
    os.makedirs(a.out, exist_ok=True)
    cfg = {"architectures": ["MistralForCausalLM" if p["model_type"] == "mistral" else "LlamaForCausalLM"],
           "model_type": p["model_type"], "hidden_size": p["hidden"], "num_hidden_layers": p["layers"],
           "num_attention_heads": p["heads"], "num_key_value_heads": p["kv"],
           "intermediate_size": p["ffn"], "vocab_size": p["vocab"], "head_dim": p["hidden"] // p["heads"],
           "max_position_embeddings": p["max_pos"], "rms_norm_eps": 1e-5, "rope_theta": p["theta"],
           "tie_word_embeddings": False, "torch_dtype": "bfloat16", "bos_token_id": 1,
           "eos_token_id": 2}
    if p["model_type"] == "mistral":
        cfg["sliding_window"] = None
    ts = tensors_of(p)
    header, off = {}, 0
    for name, shape in ts:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt", "note": "random weights (tools/make_7b_shaped.py)"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    path = os.path.join(a.out, "model.safetensors")
    tmp = path + ".tmp"
    n_params = sum(int(np.prod(s)) for _, s in ts)
    print(f"{a.preset} ({p['layers']} layers): {n_params / 1e9:.3f}e9 parameters, "
          f"{off / 1e9:.2f} GB -> {path}", file=sys.stderr)
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        # Drawing 7e9 normals would take minutes of CPU; instead a pool of 2^24 N(0, 0.02) BF16
        # values is drawn once and each tensor is filled with chunks of it taken at seeded
        # random offsets (statistically the same for quantisation and timing).
        pool_rng = np.random.default_rng(1234)
        pool = np.frombuffer(bf16_bytes(pool_rng.standard_normal(1 << 24, dtype=np.float32) * 0.02),
                             dtype=np.uint16)
        chunk = 1 << 20
        for i, (name, shape) in enumerate(ts):
            n = int(np.prod(shape))
            if len(shape) == 1:
                f.write(bf16_bytes(np.ones(shape, dtype=np.float32)))
                continue
            rng = np.random.default_rng(1000 + i)
            for at in range(0, n, chunk):
                k = min(chunk, n - at)
                o = int(rng.integers(0, pool.size - k + 1))
                f.write(pool[o:o + k].tobytes())
    os.replace(tmp, path)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
