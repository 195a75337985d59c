#!/usr/bin/env python3
"""Check GGUF files written by `loratune export` with the reference `gguf` package (gguf-py, from
llama.cpp) and with transformers' GGUF loader.

    python tools/check_gguf_export.py model BASE FILE.gguf [--adapter DIR] [--tol REL]
    python tools/check_gguf_export.py lora  BASE FILE.gguf --adapter DIR

BASE is the model the export started from: a Hugging Face directory (its config.json gives the
expected hyper-parameters) or a .gguf file (loaded with transformers' GGUF support, which
dequantises it and un-permutes q/k); --adapter the PEFT adapter that was merged (model) or
converted (lora).

model: gguf-py parses the file; checks general.architecture / general.file_type and the
  <arch>.* keys llama.cpp reads against config.json, the tokenizer.ggml.* keys when present
  (tokens and token_type of vocab_size entries, merges or scores), every tensor llama.cpp
  expects with its ne[] and ggml type (1-D tensors F32; 2-D in the file type, F16 where a Q8_0
  row is not a multiple of 32). Then transformers loads the file (from_pretrained(gguf_file=):
  dequantises, un-permutes attn_q/attn_k for llama) and its logits are compared with
  PeftModel(base, adapter) - the unmerged model - in float32 on 3 x T pseudo-random ids
  (T = 32, or the base's sliding window, which llama.cpp's llama graph does not apply).
  Tolerance REL * max(1, max |logit|), REL by file type: F32 1e-3, F16 1e-1, BF16 and Q8_0
  5e-1 (the rule of `loratune export --verify`).
  The exact check comes before it: PEFT's merge_and_unload() in f32, q/k permuted as
  convert_hf_to_gguf.py does, rounded to each tensor's type by gguf-py (Q8_0 bit-exact with
  ggml), must equal the file's values within one step of the type (F32: 2^-20 of the row max).
GPT-2 / GPT-NeoX (arch gpt2 / gptneox): the tensors convert_hf_to_gguf.py would write
  (Conv1D transposed to (out, in), NeoX query_key_value regrouped into [q | k | v], every bias,
  position_embd, output only when untied) with the <arch>.* keys; transformers' GGUF loader has
  no gptneox, so the logits come from the file's values read by gguf-py and mapped back into the
  transformers model (GPT-2 is also tried through transformers' own GGUF loader).
lora: keys general.type = adapter, adapter.type = lora, adapter.lora.alpha (f32), the
  architecture; one .lora_a (ne [in, r]) and .lora_b (ne [r, out]) per PEFT module under
  llama.cpp's names; and the values: alpha / r * lora_b @ lora_a (llama.cpp's scale, r = lora_b
  ne[0]) must equal PEFT's scale * B @ A, with rows permuted as convert_hf_to_gguf.py's
  LlamaModel.permute does for attn_q / attn_k of llama (max relative difference <= 1e-5 for
  F32 files, 1e-2 for F16/BF16).
Exit status 0 when every check passes, 1 otherwise.
"""

import argparse
import json
import math
import os
import sys
import warnings

import numpy as np
import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from peft import PeftModel
import gguf
from gguf import GGUFReader, GGMLQuantizationType as QT

MODS = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
        "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
# logits tolerances of `loratune export --verify` (lt_verify_rel_tol): loose, because rounding
# every weight moves a real model's logits far more than the rounding unit; the weights check
# is the exact one
FTYPE = {0: ("F32", 1e-3), 1: ("F16", 1e-1), 7: ("Q8_0", 5e-1), 32: ("BF16", 5e-1)}
fails = []


def check(cond, msg):
    if not cond:
        fails.append(msg)
        print("FAIL:", msg)
    return cond


def kv(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return None
    return f.contents()


def permute(w, n_head, n_head_kv):
    # convert_hf_to_gguf.py LlamaModel.permute
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def hf_name(g):
    # llama.cpp name -> HF name
    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    if g in fixed:
        return fixed[g]
    p = g.split(".")
    rev = {v: k for k, v in MODS.items()}
    if p[2] in ("attn_norm", "ffn_norm"):
        return f"model.layers.{p[1]}.{'input_layernorm' if p[2] == 'attn_norm' else 'post_attention_layernorm'}.weight"
    k = rev[p[2]]
    return f"model.layers.{p[1]}.{'self_attn' if k in ('q_proj', 'k_proj', 'v_proj', 'o_proj') else 'mlp'}.{k}.{p[3]}"


def gguf_name(hf):
    # model.layers.N.self_attn.q_proj -> blk.N.attn_q.weight ; lm_head -> output.weight
    if hf == "lm_head":
        return "output.weight", None, None
    p = hf.split(".")
    return f"blk.{p[2]}.{MODS[p[-1]]}.weight", int(p[2]), p[-1]


def load_base(base):
    if base.endswith(".gguf"):
        d, f = os.path.split(os.path.abspath(base))
        return AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                                    attn_implementation="eager")
    return AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32,
                                                attn_implementation="eager").float()


def base_config(base):
    if base.endswith(".gguf"):  # the config transformers derives from the GGUF metadata
        cfg = load_base(base).config.to_dict()
        cfg.setdefault("rms_norm_eps", cfg.get("rms_norm_eps"))
        return cfg
    with open(os.path.join(base, "config.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# GPT-2 and GPT-NeoX (llama.cpp archs gpt2, gptneox): convert_hf_to_gguf.py GPT2Model transposes
# the Conv1D weights into (out, in); GPTNeoXModel regroups query_key_value's per-head [q k v]
# rows (and bias) into [q | k | v]. Names from gguf-py tensor_mapping.
GPT_ARCH = {"gpt2": "gpt2", "gpt_neox": "gptneox"}
GPT_MODS = {"attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "mlp.c_fc": "ffn_up",
            "mlp.c_proj": "ffn_down", "attention.query_key_value": "attn_qkv",
            "attention.dense": "attn_output", "mlp.dense_h_to_4h": "ffn_up",
            "mlp.dense_4h_to_h": "ffn_down", "ln_1": "attn_norm", "ln_2": "ffn_norm",
            "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def neox_regroup(w, n_head):
    # per-head [q k v] rows -> [q | k | v] (GPTNeoXModel.modify_tensors)
    C = w.shape[0] // 3
    x = w.reshape(n_head, 3, C // n_head, *w.shape[1:])
    return torch.cat([x[:, j].reshape(C, *w.shape[1:]) for j in range(3)], dim=0)


def gpt_gguf_name(k, cfg):
    """The llama.cpp name of HF tensor k of a GPT-2 / NeoX model, or None (not written)."""
    tied = cfg.get("tie_word_embeddings", cfg["model_type"] == "gpt2")
    for pre in ("transformer.", "gpt_neox."):
        k = k[len(pre):] if k.startswith(pre) else k
    p = k.split(".")
    if k in ("wte.weight", "embed_in.weight"):
        return "token_embd.weight"
    if k == "wpe.weight":
        return "position_embd.weight"
    if p[0] in ("ln_f", "final_layer_norm"):
        return f"output_norm.{p[-1]}"
    if k in ("lm_head.weight", "embed_out.weight"):
        return None if tied else "output.weight"
    mod = ".".join(p[2:-1])
    if p[0] in ("h", "layers") and mod in GPT_MODS:  # not attention masks / rotary buffers
        return f"blk.{p[1]}.{GPT_MODS[mod]}.{p[-1]}"
    return None


def gpt_gguf_tensors(psd, cfg):
    """The HF state dict as convert_hf_to_gguf.py writes it: {gguf name: row-major tensor}."""
    mt = cfg["model_type"]
    nh = cfg["n_head"] if mt == "gpt2" else cfg["num_attention_heads"]
    out = {}
    for k, v in psd.items():
        g = gpt_gguf_name(k, cfg)
        if g is None:
            continue
        if mt == "gpt2" and v.dim() == 2 and g.startswith("blk."):
            v = v.t()  # Conv1D (in, out) -> (out, in)
        if mt == "gpt_neox" and ".attn_qkv." in g:
            v = neox_regroup(v, nh)
        out[g] = v.contiguous()
    return out


def round_check(t, ref):
    """Largest difference between the file tensor t and ref rounded to t's type, in steps."""
    qt = t.tensor_type
    want = gguf.quants.dequantize(gguf.quants.quantize(ref, qt), qt).reshape(ref.shape)
    got = gguf.quants.dequantize(t.data, qt).reshape(ref.shape)
    dd = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if qt == QT.F32:
        unit = np.maximum(np.abs(ref).max(axis=-1, keepdims=True) * 2.0 ** -20, 1e-30)
    elif qt == QT.Q8_0:
        blocks = np.abs(ref).reshape(*ref.shape[:-1], -1, 32).max(axis=-1) / 127
        unit = np.maximum(np.repeat(blocks, 32, axis=-1).reshape(ref.shape), 1e-30)
    else:
        mant = 7 if qt == QT.BF16 else 10
        e = np.floor(np.log2(np.maximum(np.abs(want), 2.0 ** -14 if mant == 10 else 1e-38)))
        unit = 2.0 ** (e - mant)
    return float((dd / unit).max()), int((dd > 0).sum()), dd.size, got


def check_model_gpt(args, cfg):
    r = GGUFReader(args.gguf)
    mt = cfg["model_type"]
    arch = kv(r, "general.architecture")
    check(arch == GPT_ARCH[mt], f"general.architecture {arch} for {mt}")
    ft = kv(r, "general.file_type")
    check(ft in FTYPE, f"general.file_type {ft}")
    fname, rel = FTYPE.get(ft, ("?", 1e-1))
    if args.tol is not None:
        rel = args.tol
    if mt == "gpt2":
        C, L, NH = cfg["n_embd"], cfg["n_layer"], cfg["n_head"]
        want = {"context_length": cfg.get("n_positions", cfg.get("n_ctx")), "embedding_length": C,
                "block_count": L, "feed_forward_length": cfg.get("n_inner") or 4 * C,
                "attention.head_count": NH,
                "attention.layer_norm_epsilon": cfg["layer_norm_epsilon"]}
    else:
        C, L, NH = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
        rp = cfg.get("rope_parameters") or {}
        pct = rp.get("partial_rotary_factor", cfg.get("rotary_pct", 0.25))
        want = {"context_length": cfg["max_position_embeddings"], "embedding_length": C,
                "block_count": L, "feed_forward_length": cfg["intermediate_size"],
                "attention.head_count": NH, "attention.layer_norm_epsilon": cfg["layer_norm_eps"],
                "rope.dimension_count": int(pct * (C // NH)),
                "rope.freq_base": rp.get("rope_theta", cfg.get("rotary_emb_base", 10000.0)),
                "use_parallel_residual": cfg.get("use_parallel_residual", True)}
    for k, v in want.items():
        got = kv(r, f"{arch}.{k}")
        ok = got is not None and math.isclose(float(got), float(v), rel_tol=1e-6)
        check(ok, f"{arch}.{k} = {got}, config.json says {v}")
    toks = kv(r, "tokenizer.ggml.tokens")
    if toks is not None:
        check(kv(r, "tokenizer.ggml.model") == "gpt2" and kv(r, "tokenizer.ggml.merges") is not None,
              "tokenizer: a gpt2 BPE with merges")
        check(len(toks) == cfg["vocab_size"], f"tokenizer: {len(toks)} tokens")
        print(f"tokenizer: model {kv(r, 'tokenizer.ggml.model')}, pre {kv(r, 'tokenizer.ggml.pre')}, "
              f"{len(toks)} tokens, {len(kv(r, 'tokenizer.ggml.merges'))} merges, "
              f"eos {kv(r, 'tokenizer.ggml.eos_token_id')}")
    else:
        print("tokenizer: none in the file")
    # weights: PEFT's merge_and_unload() as convert_hf_to_gguf.py would write it
    base_m = load_base(args.base)
    merged = (PeftModel.from_pretrained(base_m, args.adapter).merge_and_unload()
              if args.adapter else base_m)
    exp = gpt_gguf_tensors({k: v.detach().float() for k, v in merged.state_dict().items()}, cfg)
    have = {t.name: t for t in r.tensors}
    check(set(have) == set(exp), f"tensors: missing {sorted(set(exp) - set(have))[:4]}, "
          f"extra {sorted(set(have) - set(exp))[:4]}")
    main_t = QT[fname] if fname != "?" else None
    worst, worst_name, n_diff, n_tot = 0.0, None, 0, 0
    back = {}
    for n, w in exp.items():
        t = have.get(n)
        if t is None:
            continue
        ne = tuple(reversed(w.shape))
        check(tuple(int(x) for x in t.shape) == ne, f"{n}: ne {tuple(t.shape)} expected {ne}")
        want_t = QT.F32 if w.dim() == 1 else main_t
        if want_t == QT.Q8_0 and ne[0] % 32:
            want_t = QT.F16
        check(t.tensor_type == want_t, f"{n}: type {t.tensor_type.name}")
        u, nd, nt, got = round_check(t, w.numpy().astype(np.float32))
        back[n] = torch.from_numpy(np.array(got, dtype=np.float32))
        n_diff, n_tot = n_diff + nd, n_tot + nt
        if u > worst:
            worst, worst_name = u, n
    print(f"gguf-py: {len(r.tensors)} tensors, arch {arch}, file_type {ft} ({fname}); weights vs "
          f"PEFT merge_and_unload rounded by gguf-py: {n_diff} of {n_tot} values differ, worst "
          f"{worst:.3g} steps ({worst_name})")
    check(worst <= 1.0, f"weights differ by {worst:.3g} steps in {worst_name}")
    # logits: the file's values, read by gguf-py and mapped back to HF names and layouts, in
    # transformers (GPT-2 also through transformers' own GGUF loader), against PEFT unmerged
    base = load_base(args.base)
    ref_model = PeftModel.from_pretrained(base, args.adapter).eval() if args.adapter else base.eval()
    from_file = load_base(args.base)
    sd = from_file.state_dict()
    inv = {gpt_gguf_name(k, cfg): k for k in sd}
    new = {}
    for gn, v in back.items():
        k = inv[gn]
        if mt == "gpt2" and v.dim() == 2 and gn.startswith("blk."):
            v = v.t()
        if mt == "gpt_neox" and ".attn_qkv." in gn:  # [q | k | v] -> per head
            Cq = v.shape[0] // 3
            v = v.reshape(3, NH, Cq // NH, *v.shape[1:]).transpose(0, 1).reshape(v.shape)
        new[k] = v
    if "output.weight" not in back:  # tied: the head is the embedding
        new[[k for k in sd if k.endswith(("lm_head.weight", "embed_out.weight"))][0]] = \
            back["token_embd.weight"]
    check(len([k for k in sd if "weight" in k or "bias" in k]) == len(new),
          f"{len(new)} file tensors for the model's {len(sd)} parameters")
    from_file.load_state_dict(new, strict=False)
    from_file.eval()
    V = cfg["vocab_size"]
    torch.manual_seed(0)
    ids = torch.randint(0, V, (3, 32))
    with torch.no_grad():
        ref = ref_model(input_ids=ids).logits.float()
        got = from_file(input_ids=ids).logits.float()
    md = float((got - ref).abs().max())
    tol = rel * max(1.0, float(ref.abs().max()))
    print(f"gguf-py values in transformers vs PEFT unmerged: max |logit diff| {md:.3e} "
          f"(max |logit| {float(ref.abs().max()):.3g}, tol {tol:.3g}), 3 x 32 tokens")
    check(md <= tol, f"logits differ by {md:.3g} > {tol:.3g}")
    if mt == "gpt2":
        d, f = os.path.split(os.path.abspath(args.gguf))
        try:
            model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
            with torch.no_grad():
                md2 = float((model(input_ids=ids).logits.float() - ref).abs().max())
            print(f"transformers from_pretrained(gguf_file) vs PEFT unmerged: max |logit diff| {md2:.3e}")
            check(md2 <= tol, f"transformers' GGUF loader: logits differ by {md2:.3g}")
        except Exception as e:
            # transformers needs the tokenizer keys, and maps gpt2.context_length to n_ctx while
            # keeping n_positions = 1024: GPT-2s with other position counts do not load there
            print(f"note: transformers' GGUF loader could not read the file ({type(e).__name__}: "
                  f"{str(e)[:80]}); it needs tokenizer keys and n_positions = 1024")


def check_model(args, cfg):
    if cfg["model_type"] in GPT_ARCH:
        return check_model_gpt(args, cfg)
    r = GGUFReader(args.gguf)
    arch = kv(r, "general.architecture")
    mt = cfg["model_type"]
    check(arch == ("qwen2" if mt == "qwen2" else "llama"), f"general.architecture {arch} for {mt}")
    ft = kv(r, "general.file_type")
    check(ft in FTYPE, f"general.file_type {ft}")
    fname, rel = FTYPE.get(ft, ("?", 1e-1))
    if args.tol is not None:
        rel = args.tol
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    rope = cfg.get("rope_parameters", {}).get("rope_theta", cfg.get("rope_theta", 10000.0))
    want = {
        "block_count": cfg["num_hidden_layers"], "context_length": cfg["max_position_embeddings"],
        "embedding_length": cfg["hidden_size"], "feed_forward_length": cfg["intermediate_size"],
        "attention.head_count": cfg["num_attention_heads"],
        "attention.head_count_kv": cfg.get("num_key_value_heads", cfg["num_attention_heads"]),
        "rope.dimension_count": hd, "rope.freq_base": rope,
        "attention.layer_norm_rms_epsilon": cfg["rms_norm_eps"],
    }
    for k, v in want.items():
        got = kv(r, f"{arch}.{k}")
        ok = got is not None and (math.isclose(float(got), float(v), rel_tol=1e-6))
        check(ok, f"{arch}.{k} = {got}, config.json says {v}")
    V = cfg["vocab_size"]
    toks = kv(r, "tokenizer.ggml.tokens")
    if toks is not None:
        tm = kv(r, "tokenizer.ggml.model")
        tt = kv(r, "tokenizer.ggml.token_type")
        check(len(toks) == V and tt is not None and len(tt) == V,
              f"tokenizer: {len(toks)} tokens / {len(tt) if tt else 0} types for vocab {V}")
        check(tm in ("gpt2", "llama"), f"tokenizer.ggml.model {tm}")
        extra = kv(r, "tokenizer.ggml.merges" if tm == "gpt2" else "tokenizer.ggml.scores")
        check(extra is not None, f"tokenizer {tm} without merges/scores")
        print(f"tokenizer: model {tm}, pre {kv(r, 'tokenizer.ggml.pre')}, {len(toks)} tokens, "
              f"bos {kv(r, 'tokenizer.ggml.bos_token_id')} eos {kv(r, 'tokenizer.ggml.eos_token_id')}")
    else:
        print("tokenizer: none in the file")
    # tensors
    L = cfg["num_hidden_layers"]
    C, F = cfg["hidden_size"], cfg["intermediate_size"]
    NH, NKV = want["attention.head_count"], want["attention.head_count_kv"]
    tied = cfg.get("tie_word_embeddings", False)
    bias = mt == "qwen2" or cfg.get("attention_bias", False)
    exp = {"token_embd.weight": (C, V), "output_norm.weight": (C,)}
    if not tied:
        exp["output.weight"] = (C, V)
    for i in range(L):
        exp.update({f"blk.{i}.attn_norm.weight": (C,), f"blk.{i}.ffn_norm.weight": (C,),
                    f"blk.{i}.attn_q.weight": (C, NH * hd), f"blk.{i}.attn_k.weight": (C, NKV * hd),
                    f"blk.{i}.attn_v.weight": (C, NKV * hd), f"blk.{i}.attn_output.weight": (NH * hd, C),
                    f"blk.{i}.ffn_gate.weight": (C, F), f"blk.{i}.ffn_up.weight": (C, F),
                    f"blk.{i}.ffn_down.weight": (F, C)})
        if bias:
            exp.update({f"blk.{i}.attn_q.bias": (NH * hd,), f"blk.{i}.attn_k.bias": (NKV * hd,),
                        f"blk.{i}.attn_v.bias": (NKV * hd,)})
    have = {t.name: t for t in r.tensors}
    check(set(have) >= set(exp), f"missing tensors {sorted(set(exp) - set(have))[:5]}")
    main_t = QT[fname] if fname != "?" else None
    types = {}
    for n, ne in exp.items():
        t = have.get(n)
        if t is None:
            continue
        check(tuple(int(x) for x in t.shape) == ne, f"{n}: ne {tuple(t.shape)} expected {ne}")
        want_t = QT.F32 if len(ne) == 1 else main_t
        if want_t == QT.Q8_0 and ne[0] % 32:
            want_t = QT.F16
        check(t.tensor_type == want_t, f"{n}: type {t.tensor_type.name} expected {want_t.name if want_t else '?'}")
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    print(f"gguf-py: {len(r.tensors)} tensors {types}, {len(r.fields)} keys, arch {arch}, "
          f"file_type {ft} ({fname})")
    # weights, the exact check: PEFT's merge_and_unload() in f32, q/k rows permuted as
    # convert_hf_to_gguf.py does for llama, rounded to each tensor's type by gguf-py (its Q8_0
    # is bit-exact with ggml's reference), against the file's values
    base_m = load_base(args.base)
    merged = (PeftModel.from_pretrained(base_m, args.adapter).merge_and_unload()
              if args.adapter else base_m)
    psd = {k: v.detach().float() for k, v in merged.state_dict().items()}
    if "lm_head.weight" not in psd:
        psd["lm_head.weight"] = psd["model.embed_tokens.weight"]
    worst, worst_name, n_diff, n_tot = 0.0, None, 0, 0
    for n in exp:
        t = have.get(n)
        if t is None:
            continue
        w = psd[hf_name(n)]
        if arch == "llama" and (".attn_q." in n or ".attn_k." in n):
            w = permute(w, NH, NKV if ".attn_k." in n else NH)
        ref = w.numpy().astype(np.float32)
        qt = t.tensor_type
        want = gguf.quants.dequantize(gguf.quants.quantize(ref, qt), qt).reshape(ref.shape)
        got = gguf.quants.dequantize(t.data, qt).reshape(ref.shape)
        dd = np.abs(got.astype(np.float64) - want.astype(np.float64))
        if qt == QT.F32:
            unit = np.maximum(np.abs(ref).max(axis=-1, keepdims=True) * 2.0 ** -20, 1e-30)
        elif qt == QT.Q8_0:  # one quantisation step: the block's scale
            blocks = np.abs(ref).reshape(*ref.shape[:-1], -1, 32).max(axis=-1) / 127
            unit = np.maximum(np.repeat(blocks, 32, axis=-1).reshape(ref.shape), 1e-30)
        else:
            mant = 7 if qt == QT.BF16 else 10
            e = np.floor(np.log2(np.maximum(np.abs(want), 2.0 ** -14 if mant == 10 else 1e-38)))
            unit = 2.0 ** (e - mant)
        u = float((dd / unit).max())
        n_diff += int((dd > 0).sum())
        n_tot += dd.size
        if u > worst:
            worst, worst_name = u, n
    print(f"weights vs PEFT merge_and_unload rounded by gguf-py: {n_diff} of {n_tot} values differ, "
          f"worst {worst:.3g} steps ({worst_name})")
    check(worst <= 1.0, f"weights differ by {worst:.3g} steps in {worst_name}")
    # transformers: load the GGUF and compare logits with the unmerged PEFT model
    d, f = os.path.split(os.path.abspath(args.gguf))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    base = load_base(args.base)
    ref_model = PeftModel.from_pretrained(base, args.adapter).eval() if args.adapter else base.eval()
    T = 32
    if cfg.get("sliding_window"):
        T = min(T, cfg["sliding_window"])
    torch.manual_seed(0)
    ids = torch.randint(0, V, (3, T))
    ids[:, 0] = cfg.get("bos_token_id") or 1
    with torch.no_grad():
        ref = ref_model(input_ids=ids).logits.float()
        got = model(input_ids=ids).logits.float()
    md = float((got - ref).abs().max())
    tol = rel * max(1.0, float(ref.abs().max()))
    print(f"transformers from_pretrained(gguf_file) vs PEFT unmerged: max |logit diff| {md:.3e} "
          f"(max |logit| {float(ref.abs().max()):.3g}, tol {tol:.3g}), 3 x {T} tokens")
    check(md <= tol, f"logits differ by {md:.3g} > {tol:.3g}")


def check_lora(args, cfg):
    r = GGUFReader(args.gguf)
    mt = cfg["model_type"]
    arch = GPT_ARCH.get(mt, "qwen2" if mt == "qwen2" else "llama")
    check(kv(r, "general.type") == "adapter", f"general.type {kv(r, 'general.type')}")
    check(kv(r, "adapter.type") == "lora", f"adapter.type {kv(r, 'adapter.type')}")
    check(kv(r, "general.architecture") == arch, f"general.architecture {kv(r, 'general.architecture')}")
    af = r.fields.get("adapter.lora.alpha")
    check(af is not None and af.types[0] == gguf.GGUFValueType.FLOAT32, "adapter.lora.alpha f32")
    alpha = float(kv(r, "adapter.lora.alpha"))
    with open(os.path.join(args.adapter, "adapter_config.json")) as f:
        acfg = json.load(f)
    rank, a0 = acfg["r"], acfg["lora_alpha"]
    scale = a0 / math.sqrt(rank) if acfg.get("use_rslora") else a0 / rank
    print(f"adapter.lora.alpha {alpha:g} (PEFT alpha {a0}, r {rank}, rsLoRA {acfg.get('use_rslora')}:"
          f" llama.cpp scale alpha/r = {alpha / rank:g}, PEFT scale {scale:g})")
    check(math.isclose(alpha / rank, scale, rel_tol=1e-6), "llama.cpp scale differs from PEFT's")
    sd = load_file(os.path.join(args.adapter, "adapter_model.safetensors"))
    have = {t.name: t for t in r.tensors}
    NH = cfg.get("num_attention_heads", cfg.get("n_head"))
    NKV = cfg.get("num_key_value_heads", NH)
    worst = 0.0
    n = 0
    for k in sorted(sd):
        if not k.endswith(".lora_A.weight"):
            continue
        mod = k[len("base_model.model."):-len(".lora_A.weight")]
        A, B = sd[k].float(), sd[k.replace("lora_A", "lora_B")].float()
        if mt in GPT_ARCH:
            name, short = gpt_gguf_name(mod + ".weight", cfg), mod.split(".")[-1]
        else:
            name, layer, short = gguf_name(mod)
        ta, tb = have.get(name + ".lora_a"), have.get(name + ".lora_b")
        if not check(ta is not None and tb is not None, f"{name}.lora_a/.lora_b missing"):
            continue
        n += 1
        check(tuple(int(x) for x in ta.shape) == (A.shape[1], A.shape[0]),
              f"{name}.lora_a ne {tuple(ta.shape)}, expected {(A.shape[1], A.shape[0])}")
        check(tuple(int(x) for x in tb.shape) == (B.shape[1], B.shape[0]),
              f"{name}.lora_b ne {tuple(tb.shape)}, expected {(B.shape[1], B.shape[0])}")
        ga = torch.from_numpy(np.array(ta.data, dtype=np.float32)).reshape(A.shape)
        gb = torch.from_numpy(np.array(tb.data, dtype=np.float32)).reshape(B.shape)
        want = scale * (B @ A)
        if arch == "llama" and short in ("q_proj", "k_proj"):
            want = permute(want, NH, NKV if short == "k_proj" else NH)
        if arch == "gptneox" and short == "query_key_value":
            want = neox_regroup(want, NH)
        got = alpha / int(tb.shape[0]) * (gb @ ga)
        worst = max(worst, float((got - want).abs().max() / want.abs().max()))
    ftypes = sorted({t.tensor_type.name for t in r.tensors})
    lim = 1e-5 if ftypes == ["F32"] else 1e-2
    print(f"gguf-py: {len(r.tensors)} tensors ({n} modules, types {ftypes}); "
          f"max relative |llama.cpp delta - PEFT delta| = {worst:.3e} (limit {lim:g})")
    check(len(r.tensors) == 2 * n, f"{len(r.tensors)} tensors for {n} modules")
    check(worst <= lim, "LoRA deltas differ")


def main():
    ap = argparse.ArgumentParser(description="check loratune GGUF exports")
    ap.add_argument("kind", choices=["model", "lora"])
    ap.add_argument("base")
    ap.add_argument("gguf")
    ap.add_argument("--adapter")
    ap.add_argument("--tol", type=float)
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    cfg = base_config(args.base)
    if args.kind == "model":
        check_model(args, cfg)
    else:
        if not args.adapter:
            print("lora needs --adapter")
            return 2
        check_lora(args, cfg)
    print("OK" if not fails else f"FAILED ({len(fails)} checks)")
    return 0 if not fails else 1


if __name__ == "__main__":
    sys.exit(main())
