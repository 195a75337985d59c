#!/usr/bin/env python3
"""Writes the small reference files that tests/unit/test_io.c and test_gguf.c read, made by the
Python libraries the rest of the ecosystem uses, plus seed inputs for the io fuzz targets.

  tests/fixtures/io/pyst.safetensors        safetensors.numpy.save_file: f32, f16, f64, i64,
                                            i32, u8, bool, a 0-d scalar, an empty tensor, metadata
  tests/fixtures/io/pyst_torch.safetensors  safetensors.torch.save_file: bf16 (numpy has none)
  tests/fixtures/io/pygguf.gguf             gguf.GGUFWriter: every kv type, string / f32 / i32 /
                                            nested arrays, tensors f32, f16, bf16, q8_0, q4_0,
                                            q4_1 (each quantised tensor followed by
                                            "<name>.deq", gguf-py's own dequantisation in f32),
                                            and a q6_K tensor (unsupported by loratune)
  tests/fuzz/corpus/{safetensors,gguf,json}/  seeds, each < 4 KB

The values are fixed (no randomness) and repeated in the C tests; rerun only when changing them:
    python3 tools/make_io_fixtures.py        (from the repository root)
"""
import json
import os

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "tests", "fixtures", "io")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def pyst():
    from safetensors.numpy import save_file

    t = {
        "f32": (np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1.0),
        "f16": np.array([1.0, -2.5, 65504.0, 2.0**-14], dtype=np.float16),
        "f64": np.array([3.141592653589793], dtype=np.float64),
        "i64": np.array([-1, 0, 2**40], dtype=np.int64),
        "i32": np.array([[1, -2], [3, -4]], dtype=np.int32),
        "u8": np.array([0, 255], dtype=np.uint8),
        "flags": np.array([True, False, True]),
        "scalar": np.array(7.0, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    path = os.path.join(FIX, "pyst.safetensors")
    save_file(t, path, metadata={"format": "np", "note": "made by tools/make_io_fixtures.py"})
    return path


def pyst_torch():
    import torch
    from safetensors.torch import save_file

    t = {"bf16": torch.tensor([[1.0, -2.0, 0.5], [3.140625, 0.0, -0.0078125]], dtype=torch.bfloat16)}
    path = os.path.join(FIX, "pyst_torch.safetensors")
    save_file(t, path, metadata={"format": "pt"})


def pygguf(path, small=False):
    from gguf import GGMLQuantizationType as T
    from gguf import GGUFWriter, quants

    w = GGUFWriter(path, "llama")
    w.add_name("loratune-fixture")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.125)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**40))
    w.add_float64("t.f64", -2.5e-300)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo")
    w.add_array("t.tokens", ["<unk>", "a", "", "\u2581b"])
    w.add_array("t.scores", [0.5, -1.25, 3.0])
    w.add_array("t.types", [1, -2, 3])
    w.add_array("t.nested", [[1, 2], [3, 4, 5]])
    rows = 2 if small else 3
    x = (np.arange(rows * 64, dtype=np.float32).reshape(rows, 64) - 50.0) / 17.0
    w.add_tensor("f32", (np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5))
    if not small:
        w.add_tensor("f16", np.array([[1.0, -2.0], [0.5, 65504.0]], dtype=np.float16))
        for t in (T.BF16, T.Q8_0, T.Q4_0, T.Q4_1):
            q = quants.quantize(x, t)
            w.add_tensor(t.name.lower(), q, raw_dtype=t)
            w.add_tensor(t.name.lower() + ".deq", quants.dequantize(q, t).astype(np.float32))
        w.add_tensor("q6_k", np.zeros((1, 210), dtype=np.uint8), raw_dtype=T.Q6_K)
    else:
        w.add_tensor("q8_0", quants.quantize(x, T.Q8_0), raw_dtype=T.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def corpus():
    from safetensors.numpy import save_file

    os.makedirs(os.path.join(CORPUS, "safetensors"), exist_ok=True)
    os.makedirs(os.path.join(CORPUS, "gguf"), exist_ok=True)
    os.makedirs(os.path.join(CORPUS, "json"), exist_ok=True)
    save_file({"a": np.array([[1, 2], [3, 4]], dtype=np.float32), "b": np.array([5], dtype=np.int64)},
              os.path.join(CORPUS, "safetensors", "two.safetensors"), metadata={"k": "v"})
    save_file({"w": np.ones((3, 5), dtype=np.float16), "s": np.array(1.0, dtype=np.float32),
               "e": np.zeros((0,), dtype=np.float32)},
              os.path.join(CORPUS, "safetensors", "f16_scalar_empty.safetensors"))
    pygguf(os.path.join(CORPUS, "gguf", "small.gguf"), small=True)
    docs = {
        "object.json": {"a": 1, "b": [1.5, -2e10, True, False, None], "c": {"d": "é\u2603\n"}},
        "config.json": {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
                        "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "torch_dtype": "bfloat16"},
        "index.json": {"metadata": {"total_size": 64}, "weight_map": {"a": "m-00001-of-00002.safetensors",
                                                                     "b": "m-00002-of-00002.safetensors"}},
    }
    for name, d in docs.items():
        with open(os.path.join(CORPUS, "json", name), "w") as f:
            json.dump(d, f, indent=1, ensure_ascii=name != "object.json")
    with open(os.path.join(CORPUS, "json", "broken.json"), "w") as f:
        f.write('{"a": [1, 2,\n  "b": tru}\n')
    with open(os.path.join(CORPUS, "json", "escapes.json"), "w") as f:
        f.write('["\\u0000\\ud83d\\ude00\\"\\\\\\/\\b\\f\\n\\r\\t", 0, -0.0, 1E+2, 123456789012345678901234567890]\n')


def main():
    os.makedirs(FIX, exist_ok=True)
    pyst()
    try:
        pyst_torch()
    except ImportError:
        print("torch not installed: pyst_torch.safetensors not written")
    pygguf(os.path.join(FIX, "pygguf.gguf"))
    corpus()
    for d in (FIX, os.path.join(CORPUS, "safetensors"), os.path.join(CORPUS, "gguf"),
              os.path.join(CORPUS, "json")):
        for n in sorted(os.listdir(d)):
            print(f"{os.path.getsize(os.path.join(d, n)):6d}  {os.path.relpath(os.path.join(d, n), ROOT)}")


if __name__ == "__main__":
    main()
