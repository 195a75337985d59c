#!/usr/bin/env python3
"""Check a model directory written by `loratune merge` against transformers + PEFT.

    python tools/check_merge.py BASE ADAPTER_DIR MERGED_DIR [--tol REL] [--tokens T]

BASE         the base model loratune merged into: a Hugging Face directory, or a .gguf file
             (loaded with transformers' GGUF support, which dequantises and un-permutes q/k).
ADAPTER_DIR  the PEFT adapter (adapter_config.json + adapter_model.safetensors).
MERGED_DIR   loratune's output (config.json + model.safetensors or shards + index).

1. Logits: the merged directory loaded with AutoModelForCausalLM (computed in float32 from its
   stored weights) against PeftModel(base in float32, adapter) - the unmerged model - on fixed
   inputs: the fixture's golden input_ids when BASE/../golden.safetensors exists, else 3 rows of
   T pseudo-random ids (BOS first). Tolerance: REL * max(1, max |reference logit|), REL by the
   merged dtype unless --tol is given: float32 1e-3, float16 1e-1, bfloat16 5e-1 (the rule of
   `loratune merge --verify`; the fixtures agree far closer, see the printed numbers).
2. Weights, the exact check: PEFT's merge_and_unload() in float32, rounded by torch to each
   file tensor's dtype, against the file, tensor by tensor: the number of differing elements
   and the largest difference in units of the last place (f32: 2^-20 of the row's largest
   value); more than one unit fails (one unit is a tie broken the other way after a different
   summation order of B @ A).
3. Files: config.json, tokenizer files of the base present in the output, no leftover temporaries.
Families: llama / mistral / qwen2, gpt2 (Conv1D weights compared in their stored (in, out)
layout, as PEFT's merge keeps them) and gpt_neox.
Exit status 0 when all checks pass, 1 otherwise.
"""

import argparse
import glob
import json
import os
import sys
import warnings

import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from peft import PeftModel

# the tolerances of `loratune merge --verify` (src/lora/merge.h lt_verify_rel_tol): loose,
# because rounding every weight moves a real model's logits far more than the rounding unit;
# the exact check is the weight comparison
REL = {"float32": 1e-3, "float16": 1e-1, "bfloat16": 5e-1}
TOK_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
             "generation_config.json", "tokenizer.model", "chat_template.jinja"]


def load_base(base, dtype):
    if base.endswith(".gguf"):
        return AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(base)),
                                                    gguf_file=os.path.basename(base), dtype=dtype,
                                                    attn_implementation="eager")
    return AutoModelForCausalLM.from_pretrained(base, dtype=dtype, attn_implementation="eager")


def merged_tensors(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    single = os.path.join(d, "model.safetensors")
    out = {}
    if os.path.exists(single):
        return load_file(single)
    with open(idx) as f:
        for shard in sorted(set(json.load(f)["weight_map"].values())):
            out.update(load_file(os.path.join(d, shard)))
    return out


def main():
    ap = argparse.ArgumentParser(description="check a loratune merged model against PEFT")
    ap.add_argument("base")
    ap.add_argument("adapter_dir")
    ap.add_argument("merged_dir")
    ap.add_argument("--tol", type=float, help="relative tolerance (default by dtype)")
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    ok = True

    with open(os.path.join(args.merged_dir, "config.json")) as f:
        mcfg = json.load(f)
    mt = merged_tensors(args.merged_dir)
    mdtypes = sorted({str(t.dtype).replace("torch.", "") for t in mt.values() if t.is_floating_point()})
    coarse = "bfloat16" if "bfloat16" in mdtypes else "float16" if "float16" in mdtypes else "float32"
    rel = args.tol if args.tol is not None else REL[coarse]
    shards = glob.glob(os.path.join(args.merged_dir, "model-*-of-*.safetensors"))
    print(f"merged: {len(mt)} tensors, dtypes {mdtypes}, "
          f"{len(shards) if shards else 1} file(s), config dtype "
          f"{mcfg.get('torch_dtype', mcfg.get('dtype'))}, tie_word_embeddings "
          f"{mcfg.get('tie_word_embeddings')}")
    leftovers = glob.glob(os.path.join(args.merged_dir, "*.tmp.*"))
    if leftovers:
        print(f"FAIL: temporary files left: {leftovers}")
        ok = False
    if os.path.isdir(args.base):
        for name in TOK_FILES:
            if os.path.exists(os.path.join(args.base, name)) and \
                    not os.path.exists(os.path.join(args.merged_dir, name)):
                print(f"FAIL: {name} of the base was not copied")
                ok = False

    # 1. logits: merged (transformers) vs unmerged (PEFT) in float32
    base = load_base(args.base, torch.float32)
    ref_model = PeftModel.from_pretrained(base, args.adapter_dir).eval()
    merged = AutoModelForCausalLM.from_pretrained(args.merged_dir, dtype=torch.float32,
                                                  attn_implementation="eager").eval()
    golden = os.path.join(os.path.dirname(os.path.abspath(args.base)), "golden.safetensors")
    if os.path.isdir(args.base) and os.path.exists(golden):
        g = load_file(golden)
        ids, mask = g["input_ids"].long(), g["attention_mask"].long()
        what = "fixture golden input_ids"
    else:
        V = base.config.vocab_size
        ids = torch.randint(0, V, (3, args.tokens))
        bos = base.config.bos_token_id
        ids[:, 0] = bos if bos is not None and 0 <= bos < V else 1
        mask = torch.ones_like(ids)
        what = f"3 x {args.tokens} random ids"
    with torch.no_grad():
        ref = ref_model(input_ids=ids, attention_mask=mask).logits.float()
        got = merged(input_ids=ids, attention_mask=mask).logits.float()
    valid = mask.bool()
    d = (got - ref).abs()[valid]
    tol = rel * max(1.0, float(ref[valid].abs().max()))
    with torch.no_grad(), ref_model.disable_adapter():
        effect = float((ref_model(input_ids=ids, attention_mask=mask).logits.float() - ref).abs()[valid].max())
    print(f"logits ({what}): max |merged - PEFT unmerged| = {float(d.max()):.3e} "
          f"(max |logit| {float(ref[valid].abs().max()):.3g}, tol {tol:.3g} = {rel:g} x scale); "
          f"adapter effect {effect:.3g}")
    if not float(d.max()) <= tol:
        print("FAIL: logits differ beyond the tolerance")
        ok = False

    # 2. weights: PEFT's merge_and_unload() in float32, rounded to each file tensor's dtype by
    #    torch (round to nearest even, as loratune does), against the file
    pm = ref_model.merge_and_unload()
    psd = {k: v.detach() for k, v in pm.state_dict().items()}
    n_diff = n_tot = 0
    worst = (0.0, None)
    for k, v in mt.items():
        # the file's names as transformers names the parameters: GPT-2 files without the
        # "transformer." prefix (openai-community/gpt2), GPT-NeoX's embed_out (lm_head in
        # transformers >= 5), a tied head
        alts = [k, "transformer." + k, "lm_head.weight" if k == "embed_out.weight" else None]
        p = next((psd[a] for a in alts if a in psd), None)
        if p is None and k == "lm_head.weight":
            p = psd.get("model.embed_tokens.weight", psd.get("transformer.wte.weight"))
        if p is None:
            print(f"note: {k} is not a parameter of the causal LM (kept from the base as is)")
            continue
        if not v.is_floating_point() or tuple(p.shape) != tuple(v.shape):
            print(f"FAIL: {k}: shape {tuple(v.shape)}, PEFT's {tuple(p.shape)}")
            ok = False
            continue
        want = p.float().to(v.dtype).float()
        got = v.float()
        dd = (got - want).abs()
        n_tot += v.numel()
        n_diff += int((dd > 0).sum())
        if v.dtype == torch.float32:  # f32 arithmetic: 2^-20 of the row's largest value
            unit = torch.clamp(p.float().abs().amax(dim=-1, keepdim=True) * 2.0 ** -20, min=1e-30)
        else:  # one unit in the last place of the dtype at that value
            mant = 7 if v.dtype == torch.bfloat16 else 10
            e = torch.floor(torch.log2(torch.clamp(want.abs(), min=2.0 ** -14 if mant == 10 else 1e-38)))
            unit = torch.pow(2.0, e - mant)
        u = float((dd / unit).max())
        if u > worst[0]:
            worst = (u, k)
    print(f"weights vs PEFT merge_and_unload (f32, rounded by torch to the file's dtype): "
          f"{n_diff} of {n_tot} elements differ, worst {worst[0]:.3g} units ({worst[1]})")
    if worst[0] > 1.0:
        print("FAIL: weights differ by more than one rounding step")
        ok = False
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
