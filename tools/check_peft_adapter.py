#!/usr/bin/env python3
"""Check that an adapter written by loratune loads in PEFT and gives the same logits.

    python tools/check_peft_adapter.py FIXTURE_DIR ADAPTER_DIR [--logits DUMP.safetensors]
                                       [--key logits] [--tol 1e-4]

FIXTURE_DIR   a family fixture made by tools/make_golden.py (tests/fixtures/llama, ...):
              the base model is FIXTURE_DIR/model, the input is the "input_ids" /
              "attention_mask" of FIXTURE_DIR/golden.safetensors.
ADAPTER_DIR   adapter_config.json + adapter_model.safetensors (written by loratune).
--logits      logits dumped by loratune for that same input, a safetensors file with a
              (B,T,V) or (B*T,V) F32 tensor named --key. Without it, the PEFT logits are
              compared with the fixture's own "logits" (right for an adapter that holds
              the fixture's start weights, e.g. loratune reading and re-writing it).

The base is loaded with transformers in float32 (eager attention) and the adapter with
peft.PeftModel.from_pretrained. The adapter file must hold exactly the LoRA tensors
PEFT expects for its config (PEFT itself only warns about missing keys, so this script
checks the key set and shapes). The max |diff| is taken over positions whose
attention_mask is 1 (padded query positions are printed but not judged).
Exit status: 0 when max |diff| <= tol, 1 above it, 2 when the adapter does not load.
"""

import argparse
import json
import os
import sys
import warnings

import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from peft import PeftModel
from peft.utils import get_peft_model_state_dict


def main():
    ap = argparse.ArgumentParser(description="compare loratune adapter logits with PEFT")
    ap.add_argument("fixture_dir")
    ap.add_argument("adapter_dir")
    ap.add_argument("--logits", help="safetensors file with loratune's logits for the fixture input")
    ap.add_argument("--key", default="logits", help="tensor name in --logits (default: logits)")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(1)

    golden = load_file(os.path.join(args.fixture_dir, "golden.safetensors"))
    ids = golden["input_ids"].long()
    mask = golden["attention_mask"].long()

    cfg_path = os.path.join(args.adapter_dir, "adapter_config.json")
    st_path = os.path.join(args.adapter_dir, "adapter_model.safetensors")
    for p in (cfg_path, st_path):
        if not os.path.exists(p):
            print(f"FAIL: {p} missing")
            return 2
    with open(cfg_path) as f:
        acfg = json.load(f)
    print(f"adapter_config: peft_type={acfg.get('peft_type')} r={acfg.get('r')} "
          f"lora_alpha={acfg.get('lora_alpha')} use_rslora={acfg.get('use_rslora')} "
          f"target_modules={acfg.get('target_modules')}")

    base = AutoModelForCausalLM.from_pretrained(os.path.join(args.fixture_dir, "model"),
                                                dtype=torch.float32,
                                                attn_implementation="eager").float()
    try:
        model = PeftModel.from_pretrained(base, args.adapter_dir, is_trainable=False)
    except Exception as e:  # noqa: BLE001 - report any load failure as a failed check
        print(f"FAIL: PeftModel.from_pretrained: {type(e).__name__}: {e}")
        return 2
    model.eval()

    # strict key / shape check: PEFT only warns on missing keys and ignores unexpected ones
    saved = load_file(st_path)
    # LoRA tensors only: with lm_head (an "embedding layer" to PEFT) in target_modules,
    # PEFT's own writer also stores the full base weight as <...>.lm_head.base_layer.weight;
    # that key is allowed (PEFT loads it over the base) but not required.
    expected = get_peft_model_state_dict(model, save_embedding_layers=False)
    optional = {k for k in saved if k.endswith(".base_layer.weight")}
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected) - optional)
    bad_shape = sorted(k for k in set(saved) & set(expected)
                       if tuple(saved[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or bad_shape:
        for what, ks in (("missing", missing), ("unexpected", unexpected),
                         ("wrong shape", bad_shape)):
            for k in ks[:10]:
                extra = (f" file {tuple(saved[k].shape)} vs PEFT {tuple(expected[k].shape)}"
                         if what == "wrong shape" else "")
                print(f"FAIL: {what} key {k}{extra}")
        return 2
    for k in expected:   # the loaded values are the file's values
        if not torch.equal(expected[k].float(), saved[k].float()):
            print(f"FAIL: {k} differs after loading")
            return 2
    print(f"adapter tensors: {len(saved)} keys ({len(expected)} LoRA"
          f"{', ' + str(len(optional)) + ' base_layer' if optional else ''}), all loaded "
          f"(dtypes {sorted({str(t.dtype) for t in saved.values()})})")

    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits.float()

    if args.logits:
        dump = load_file(args.logits)
        if args.key not in dump:
            print(f"FAIL: {args.logits} has no tensor '{args.key}' (has {sorted(dump)[:10]})")
            return 2
        got = dump[args.key].float()
        if got.numel() != ref.numel():
            print(f"FAIL: {args.logits}:{args.key} shape {tuple(got.shape)}, "
                  f"expected {tuple(ref.shape)} (or {ref.shape[0] * ref.shape[1]}x{ref.shape[2]})")
            return 2
        got = got.reshape(ref.shape)
        what = f"{args.logits}:{args.key}"
    else:
        got = golden["logits"].float()
        what = f"{args.fixture_dir}/golden.safetensors:logits"

    d = (got - ref).abs()
    valid = mask.bool()
    dv = d[valid]
    # locate the worst element over valid positions
    dmask = d.masked_fill(~valid[..., None], -1.0)
    flat = int(dmask.argmax())
    V = ref.shape[-1]
    b, t, v = flat // (ref.shape[1] * V), (flat // V) % ref.shape[1], flat % V
    maxd = float(dv.max())
    pad_txt = f"{float(d[~valid].max()):.3e}" if (~valid).any() else "n/a"
    print(f"max |logits diff| PEFT vs {what}: {maxd:.3e} over {int(valid.sum())} valid positions "
          f"(worst at b={b} t={t} v={v}: PEFT {float(ref[b, t, v]):.6f} vs "
          f"{float(got[b, t, v]):.6f}); padded positions {pad_txt}")
    if not maxd <= args.tol:
        print(f"FAIL: above tolerance {args.tol:g}")
        return 1
    print(f"OK (tol {args.tol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
