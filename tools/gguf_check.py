#!/usr/bin/env python3
"""Reads a GGUF file with the reference `gguf` package (gguf-py, from llama.cpp) and prints what
it sees as JSON, to cross-check loratune's GGUF writer (src/io/gguf_writer.c) against an
independent reader:

    python3 tools/gguf_check.py FILE.gguf [--full]

Output: {"file", "version", "alignment", "data_offset",
         "kv": {key: {"type": "u32" | "str" | "arr[str]" | ..., "value": ...}},
         "tensors": [{"name", "type", "ne" (GGUF order, innermost first),
                      "shape" (row-major), "n_elements", "n_bytes", "offset"}]}
Arrays longer than 8 elements are shown as {"len": n, "head": first 8} unless --full.
Exits 1 (with a message on stderr) when gguf-py cannot read the file.
"""
import json
import sys


def value_of(field, full):
    from gguf import GGUFValueType

    types = field.types
    if types[0] != GGUFValueType.ARRAY:
        v = field.contents()
        if isinstance(v, float):
            v = float(v)
        return types[0].name.lower(), v
    contents = field.contents()
    tname = "arr[" + ",".join(t.name.lower() for t in types[1:]) + "]"
    if full or len(contents) <= 8:
        return tname, contents
    return tname, {"len": len(contents), "head": contents[:8]}


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    full = "--full" in sys.argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    from gguf import GGUFReader

    try:
        r = GGUFReader(args[0])
    except Exception as e:  # report, do not trace back
        print(f"gguf_check: {args[0]}: gguf-py cannot read it: {e}", file=sys.stderr)
        return 1
    kv = {}
    version = None
    for name, field in r.fields.items():
        if name.startswith("GGUF."):
            if name == "GGUF.version":
                version = int(field.contents())
            continue
        t, v = value_of(field, full)
        kv[name] = {"type": t, "value": v}
    tensors = []
    for t in r.tensors:
        ne = [int(x) for x in t.shape]
        tensors.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "ne": ne,
            "shape": ne[::-1],
            "n_elements": int(t.n_elements),
            "n_bytes": int(t.n_bytes),
            "offset": int(t.data_offset),
        })
    out = {"file": args[0], "version": version, "alignment": int(r.alignment),
           "data_offset": int(r.data_offset), "kv": kv, "tensors": tensors}
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
