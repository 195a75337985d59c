#!/usr/bin/env python3
"""Write the small golden fixtures that loratune's C tests compare against.

What it makes (all under tests/fixtures/, deterministic: re-running with the same
torch / transformers / peft versions gives byte-identical files):

  <family>/model/      tiny random HF model (save_pretrained, safetensors) for
                       family in llama (F32), mistral (BF16), qwen2 (F16)
  <family>/adapter/    LoRA adapter written by PEFT itself (adapter_config.json +
                       adapter_model.safetensors), random A and B
  <family>/golden.safetensors
                       inputs, logits, loss, LoRA gradients, and a 10-step AdamW
                       training reference (losses, lrs, grad norms, final weights);
                       settings are in the safetensors __metadata__ (all strings)
  stories260k/ref.safetensors
                       32 tokens and the logits of llama2.c's stories260K.bin
                       (only if ../shared/data/models/stories260K.bin exists)

The reference is always computed in float32 from the weights exactly as saved (the
saved model is loaded back and upcast), so rounding to BF16/F16 is part of the model.

Usage:  python tools/make_golden.py [--out tests/fixtures] [--data ../shared/data]
Python (torch/transformers/peft) is used only here, never by `make test`.
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys
import warnings

import numpy as np
import torch
import transformers
import peft
import safetensors
from safetensors.torch import load_file
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM,
                          GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM,
                          MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, get_cosine_schedule_with_warmup)
from peft import LoraConfig, get_peft_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------
# settings shared by all families

B, T, V = 2, 16, 256
PAD_ID = 0
PROMPT_LEN = 4             # labels = -100 at the first PROMPT_LEN positions (completion-only)
PAD_GOLDEN = 3             # sequence 1 of the golden batch: last 3 positions are padding
PAD_TRAIN = (3, 7)         # sequence 1 of train micro-batch 0 / 1 (different on purpose:
                           # the two micro-batches have different token counts, so per-
                           # micro-batch mean losses would NOT equal sum / total count)
WEIGHT_STD = 0.1           # base weights ~ N(0, 0.1); norms ~ 1 + N(0, 0.1)
LORA_STD = 0.1             # lora_A and lora_B ~ N(0, 0.1) (PEFT's zero B would zero A's grads)

LORA_R, LORA_ALPHA = 4, 8
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

LR, BETAS, EPS, WD = 5e-3, (0.9, 0.999), 1e-8, 0.01
WARMUP, STEPS, ACCUM, MAX_GRAD_NORM = 2, 10, 2, 1.0

COMMON = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, intermediate_size=128,
              vocab_size=V, max_position_embeddings=128, hidden_act="silu",
              attention_dropout=0.0, bos_token_id=1, eos_token_id=2,
              pad_token_id=PAD_ID, use_cache=False)

FAMILIES = {
    # name: (config class, model class, extra config, stored dtype, seed, use_rslora, extra targets)
    "llama": (LlamaConfig, LlamaForCausalLM,
              dict(rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                   rms_norm_eps=1e-6, tie_word_embeddings=False,
                   attention_bias=False, mlp_bias=False),
              torch.float32, 1001, False, ["lm_head"]),
    "mistral": (MistralConfig, MistralForCausalLM,
                dict(rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                     rms_norm_eps=1e-5, tie_word_embeddings=False, sliding_window=8),
                torch.bfloat16, 1002, False, []),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM,
              dict(rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                   rms_norm_eps=1e-6, tie_word_embeddings=True,
                   use_sliding_window=False, sliding_window=None, max_window_layers=2),
              torch.float16, 1003, True, []),
}

# GPT-2 and GPT-NeoX: their own config keys (no COMMON) and PEFT target names.
GPT_COMMON = dict(bos_token_id=1, eos_token_id=2, pad_token_id=PAD_ID, use_cache=False,
                  vocab_size=V)
FAMILIES["gpt2"] = (GPT2Config, GPT2LMHeadModel,
                    dict(_no_common=True, n_embd=64, n_layer=2, n_head=4, n_positions=128,
                         activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                         attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=True,
                         **GPT_COMMON),
                    torch.float32, 1004, False, ["c_attn", "c_proj", "c_fc"])
FAMILIES["gpt_neox"] = (GPTNeoXConfig, GPTNeoXForCausalLM,
                        dict(_no_common=True, hidden_size=64, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=128,
                             max_position_embeddings=128, hidden_act="gelu",
                             rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                              "partial_rotary_factor": 0.25},
                             use_parallel_residual=True, hidden_dropout=0.0,
                             attention_dropout=0.0, layer_norm_eps=1e-5,
                             tie_word_embeddings=False, **GPT_COMMON),
                        torch.bfloat16, 1005, False,
                        ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"])
GPT_FAMILIES = ("gpt2", "gpt_neox")


def family_targets(fam):
    extra = FAMILIES[fam][6]
    return list(extra) if fam in GPT_FAMILIES else TARGETS + extra


DTYPE_NAME = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


def log(*a):
    print(*a, flush=True)


ST_DTYPE = {torch.float32: "F32", torch.int32: "I32"}


def write_safetensors(path, tensors, meta):
    """Minimal deterministic safetensors writer. safetensors' own save_file keeps
    __metadata__ in a Rust HashMap, so its key order (and the file bytes) change from
    run to run. Here: __metadata__ first, then tensors sorted by name, keys sorted,
    data in the same order, header padded with spaces to a multiple of 8."""
    header = {"__metadata__": {k: meta[k] for k in sorted(meta)}}
    blobs, off = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        b = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": ST_DTYPE[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
    back = load_file(path)                       # must read back bit-exactly
    assert set(back) == set(tensors)
    for k in tensors:
        assert torch.equal(back[k], tensors[k].detach()), k


def normalize_adapter_config(path):
    """PEFT keeps target_modules as a Python set, so its order in adapter_config.json
    follows PYTHONHASHSEED. Sort it (same content, same PEFT format: indent 2, sorted keys)."""
    with open(path) as f:
        c = json.load(f)
    if isinstance(c.get("target_modules"), list):
        c["target_modules"] = sorted(c["target_modules"])
    with open(path, "w") as f:
        f.write(json.dumps(c, indent=2, sort_keys=True))


# ---------------------------------------------------------------------------
# inputs

def make_batch(gen, pad_len):
    """(B,T) ids in [3,V), attention mask, labels. Sequence 1 is right-padded by
    pad_len (id PAD_ID, mask 0); labels are ids with -100 at padding and at the
    first PROMPT_LEN positions of every sequence."""
    ids = torch.randint(3, V, (B, T), generator=gen, dtype=torch.int64)
    mask = torch.ones(B, T, dtype=torch.int64)
    if pad_len > 0:
        ids[1, T - pad_len:] = PAD_ID
        mask[1, T - pad_len:] = 0
    labels = ids.clone()
    labels[mask == 0] = -100
    labels[:, :PROMPT_LEN] = -100
    return ids, mask, labels


def n_items(labels):
    """Number of non-ignored labels after the causal shift (labels[:, 1:])."""
    return int((labels[:, 1:] != -100).sum())


# ---------------------------------------------------------------------------
# models

def randomize_base(model, gen):
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if ("norm" in name or ".ln_" in name) and name.endswith("weight"):
                p.copy_(1.0 + WEIGHT_STD * r)
            else:
                p.copy_(WEIGHT_STD * r)


def randomize_lora(model, gen):
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "lora_" in name:
                p.copy_(LORA_STD * torch.randn(p.shape, generator=gen, dtype=torch.float32))


def peft_key(param_name):
    """Live PEFT parameter name -> key as written in adapter_model.safetensors."""
    return param_name.replace(".default.", ".")


def load_f32(model_dir):
    m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                             attn_implementation="eager")
    m = m.float()
    m.eval()
    return m


def build_peft(model_dir, fam, gen):
    _, _, _, _, _, rslora, extra = FAMILIES[fam]
    base = load_f32(model_dir)
    cfg = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0, bias="none",
                     target_modules=family_targets(fam), use_rslora=rslora, task_type="CAUSAL_LM")
    pm = get_peft_model(base, cfg)
    randomize_lora(pm, gen)
    return pm


def lora_params(pm):
    return [(n, p) for n, p in pm.named_parameters() if p.requires_grad]


# ---------------------------------------------------------------------------
# checks specific to mistral's sliding window

def check_sliding_window(model_dir, ids, mask, W):
    """The window must change mistral's logits at T=16: positions < W identical,
    positions >= W different. Returns (max diff before W, max diff from W on)."""
    with_w = load_f32(model_dir)
    without = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                   attn_implementation="eager",
                                                   sliding_window=None).float().eval()
    assert without.config.sliding_window is None
    with torch.no_grad():
        a = with_w(input_ids=ids, attention_mask=mask).logits
        b = without(input_ids=ids, attention_mask=mask).logits
    d = (a - b).abs()
    early, late = float(d[:, :W].max()), float(d[:, W:].max())
    if not (early == 0.0 and late > 1e-3):
        raise SystemExit(f"mistral sliding window check failed: diff<W {early}, diff>=W {late}")
    return early, late


def probe_window_keys(W, query=12):
    """Empirical window semantics on a 1-layer mistral: which key positions j does
    the output at position `query` depend on? (perturb token j, see if it changes)"""
    gen = torch.Generator().manual_seed(7)
    cfg = MistralConfig(**{**COMMON, "num_hidden_layers": 1}, sliding_window=W,
                        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
                        rms_norm_eps=1e-5)
    cfg._attn_implementation = "eager"
    m = MistralForCausalLM(cfg)
    randomize_base(m, gen)
    m.eval()
    ids = torch.randint(3, V, (1, T), generator=gen)
    with torch.no_grad():
        ref = m(input_ids=ids).logits[0, query]
        seen = []
        for j in range(query + 1):
            ids2 = ids.clone()
            ids2[0, j] = 3 + (int(ids[0, j]) - 3 + 1) % (V - 3)
            if (m(input_ids=ids2).logits[0, query] - ref).abs().max() > 0:
                seen.append(j)
    return seen


# ---------------------------------------------------------------------------
# the training formulas the C code implements, checked against torch's objects

def lr_at(step):
    if step < WARMUP:
        return LR * step / max(1, WARMUP)
    prog = (step - WARMUP) / max(1, STEPS - WARMUP)
    return LR * max(0.0, 0.5 * (1.0 + math.cos(math.pi * prog)))


def check_training_formulas(pm, init_state, mbs, total_items, tl, tlr, tgn, final):
    """Re-run the 10 steps with hand-written clip / schedule / AdamW:
    norm = sqrt(sum g^2) over all LoRA grads; g *= min(1, max_norm / (norm + 1e-6));
    p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps), t = 1, 2, ... (t counts the
    lr=0 step 0 too)."""
    named = lora_params(pm)
    with torch.no_grad():
        for n, p in named:
            p.copy_(init_state[peft_key(n)])
    m = {n: torch.zeros_like(p) for n, p in named}
    v = {n: torch.zeros_like(p) for n, p in named}
    b1, b2 = BETAS
    for step in range(STEPS):
        pm.zero_grad(set_to_none=True)
        loss = 0.0
        for mi, mm, ml in mbs:
            o = pm(input_ids=mi, attention_mask=mm, labels=ml)      # mean over this micro-batch
            (o.loss * n_items(ml) / total_items).backward()         # -> sum / total
            loss += float(o.loss.detach()) * n_items(ml) / total_items
        norm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for _, p in named))
        coef = min(1.0, MAX_GRAD_NORM / (norm + 1e-6))
        lr, t = lr_at(step), step + 1
        assert abs(loss - tl[step]) < 1e-5 and abs(lr - tlr[step]) < 1e-12, (step, loss, lr)
        assert abs(norm - tgn[step]) < 1e-5 * max(1.0, norm), (step, norm, tgn[step])
        with torch.no_grad():
            for n, p in named:
                g = p.grad * coef
                p.mul_(1.0 - lr * WD)
                m[n].mul_(b1).add_((1 - b1) * g)
                v[n].mul_(b2).add_((1 - b2) * g * g)
                denom = v[n].sqrt() / math.sqrt(1 - b2 ** t) + EPS
                p.sub_(lr / (1 - b1 ** t) * m[n] / denom)
    worst = max(float((p.detach() - final[peft_key(n)]).abs().max()) for n, p in named)
    # Adam divides by sqrt(v): float rounding in a near-zero gradient component can move an
    # update by a visible fraction of lr (5e-3) over 10 steps; 1e-4 still catches real errors.
    assert worst < 1e-4, f"hand-written AdamW differs from torch by {worst}"
    with torch.no_grad():                       # leave the model at torch's result
        for n, p in named:
            p.copy_(final[peft_key(n)])
    return worst


# ---------------------------------------------------------------------------
# one family

def make_family(fam, out_root):
    cfg_cls, model_cls, extra_cfg, dtype, seed, rslora, extra_targets = FAMILIES[fam]
    fdir = os.path.join(out_root, fam)
    model_dir = os.path.join(fdir, "model")
    adapter_dir = os.path.join(fdir, "adapter")
    for d in (model_dir, adapter_dir):
        if os.path.isdir(d):
            shutil.rmtree(d)
    os.makedirs(fdir, exist_ok=True)

    gen = torch.Generator().manual_seed(seed)

    # -- base model, stored in its dtype
    extra_cfg = dict(extra_cfg)
    no_common = extra_cfg.pop("_no_common", False)
    cfg = cfg_cls(**({} if no_common else COMMON), **extra_cfg)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = model_cls(cfg)
    randomize_base(model, gen)
    model = model.to(dtype)
    model.save_pretrained(model_dir)
    del model
    # the adapter's base_model_name_or_path: keep it repo-relative, not machine-specific
    rel_model_dir = os.path.relpath(model_dir, REPO)

    # -- LoRA (random A and B), saved by PEFT itself
    pm = build_peft(model_dir, fam, gen)
    pm.peft_config["default"].base_model_name_or_path = rel_model_dir
    pm.save_pretrained(adapter_dir)
    readme = os.path.join(adapter_dir, "README.md")   # PEFT's model card: not a fixture
    if os.path.exists(readme):
        os.remove(readme)
    normalize_adapter_config(os.path.join(adapter_dir, "adapter_config.json"))
    saved = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    live = {peft_key(n): p for n, p in lora_params(pm)}
    # Targeting lm_head makes PEFT (save_embedding_layers="auto") also write the full base
    # weight as base_model.model.lm_head.base_layer.weight; real PEFT adapters that target
    # lm_head carry it, so we keep it and the C loader must accept it (it equals the base).
    extra_saved = sorted(set(saved) - set(live))
    assert set(live) <= set(saved), sorted(set(live) - set(saved))
    assert all(k.endswith(".base_layer.weight") for k in extra_saved), extra_saved
    for k in live:
        assert torch.equal(saved[k], live[k].detach()), k
    init_state = {k: v.detach().clone() for k, v in live.items()}

    # -- golden forward / backward
    ids, mask, labels = make_batch(gen, PAD_GOLDEN)
    pm.eval()
    pm.zero_grad(set_to_none=True)
    out = pm(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    # transformers' loss is mean over the shifted non-ignored labels; check our reading of it
    lg = out.logits.detach()
    ce = torch.nn.functional.cross_entropy(lg[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1),
                                           ignore_index=-100, reduction="sum") / n_items(labels)
    assert abs(float(ce) - float(out.loss.detach())) < 1e-6, (float(ce), float(out.loss.detach()))
    grads = {peft_key(n): p.grad.detach().clone() for n, p in lora_params(pm)}
    for k, g in grads.items():
        assert float(g.abs().max()) > 0, f"zero gradient for {k}"

    tensors = {
        "input_ids": ids.to(torch.int32), "attention_mask": mask.to(torch.int32),
        "labels": labels.to(torch.int32), "logits": lg.float().contiguous(),
        "loss": out.loss.detach().float().reshape(1),
    }
    for k in sorted(grads):
        tensors["grad." + k] = grads[k].float().contiguous()

    # -- mistral: the sliding window must matter at T=16
    notes = {}
    if fam == "mistral":
        early, late = check_sliding_window(model_dir, ids, mask, extra_cfg["sliding_window"])
        keys = probe_window_keys(extra_cfg["sliding_window"])
        notes["sliding_window_check"] = (f"max|logits(W=8)-logits(no window)| = {early:g} at "
                                         f"t<8, {late:.4g} at t>=8; query 12 sees keys {keys}")
        log(f"[mistral] {notes['sliding_window_check']}")

    # -- training reference: 10 AdamW steps, accumulation 2, clip 1.0, cosine + warmup
    pm.load_state_dict({n: init_state[peft_key(n)] for n, _ in lora_params(pm)}, strict=False)
    for n, p in lora_params(pm):
        assert torch.equal(p.detach(), init_state[peft_key(n)])
    mbs = [make_batch(gen, PAD_TRAIN[i]) for i in range(ACCUM)]
    for i, (mi, mm, ml) in enumerate(mbs):
        tensors[f"train_input_ids.{i}"] = mi.to(torch.int32)
        tensors[f"train_attention_mask.{i}"] = mm.to(torch.int32)
        tensors[f"train_labels.{i}"] = ml.to(torch.int32)
    total_items = sum(n_items(ml) for _, _, ml in mbs)
    params = [p for _, p in lora_params(pm)]
    opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD, foreach=False)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=WARMUP, num_training_steps=STEPS)
    pm.train()
    tl, tlr, tgn = [], [], []
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for mi, mm, ml in mbs:
            # HF Trainer with num_items_in_batch: each micro-batch loss is its SUM of token
            # losses divided by the token count of the whole accumulated step.
            o = pm(input_ids=mi, attention_mask=mm, labels=ml,
                   num_items_in_batch=torch.tensor(total_items))
            o.loss.backward()
            step_loss += float(o.loss.detach())
        gn = torch.nn.utils.clip_grad_norm_(params, max_norm=MAX_GRAD_NORM)
        tl.append(step_loss)
        tlr.append(opt.param_groups[0]["lr"])
        tgn.append(float(gn))
        opt.step()
        sched.step()
    final = {peft_key(n): p.detach().clone() for n, p in lora_params(pm)}
    worst = check_training_formulas(pm, init_state, mbs, total_items, tl, tlr, tgn, final)
    log(f"[{fam}] hand-written clip/schedule/AdamW vs torch: max|final diff| {worst:.2e}")
    tensors["train_loss"] = torch.tensor(tl, dtype=torch.float32)
    tensors["train_lr"] = torch.tensor(tlr, dtype=torch.float32)
    tensors["train_grad_norm"] = torch.tensor(tgn, dtype=torch.float32)
    for k in sorted(final):
        tensors["final." + k] = final[k].float().contiguous()

    scaling = LORA_ALPHA / math.sqrt(LORA_R) if rslora else LORA_ALPHA / LORA_R
    meta = {
        "family": fam, "model_dtype": DTYPE_NAME[dtype],
        "reference_dtype": "F32 (saved weights loaded back and upcast)",
        "attn_implementation": "eager",
        "lr": repr(LR), "beta1": repr(BETAS[0]), "beta2": repr(BETAS[1]),
        "betas": f"{BETAS[0]!r},{BETAS[1]!r}", "eps": repr(EPS), "weight_decay": repr(WD),
        "optimizer": "torch.optim.AdamW (decoupled decay p*=1-lr*wd, bias-corrected)",
        "schedule": "transformers.get_cosine_schedule_with_warmup (lr used at step s "
                    "= lr*s/warmup for s<warmup, else lr*0.5*(1+cos(pi*(s-warmup)/(total-warmup))))",
        "warmup": str(WARMUP), "total_steps": str(STEPS), "accum": str(ACCUM),
        "max_grad_norm": repr(MAX_GRAD_NORM),
        "clip": "torch.nn.utils.clip_grad_norm_ over all LoRA grads (global L2), after accumulation",
        "loss_norm": "step loss = sum of token CE over both micro-batches / total shifted "
                     "non-ignored labels in both (HF num_items_in_batch)",
        "train_items_total": str(total_items),
        "train_items": ",".join(str(n_items(ml)) for _, _, ml in mbs),
        "golden_items": str(n_items(labels)),
        "r": str(LORA_R), "alpha": str(LORA_ALPHA), "use_rslora": str(rslora).lower(),
        "scaling": repr(scaling), "lora_dropout": "0.0",
        "target_modules": ",".join(family_targets(fam)),
        "lora_init": f"A,B ~ N(0,{LORA_STD}) seeded (not PEFT's default)",
        "pad_id": str(PAD_ID), "prompt_len_masked": str(PROMPT_LEN),
        "B": str(B), "T": str(T), "V": str(V),
        "seed": str(seed),
        "versions": f"torch {torch.__version__.split('+')[0]}, transformers "
                    f"{transformers.__version__}, peft {peft.__version__}",
    }
    meta.update(notes)
    write_safetensors(os.path.join(fdir, "golden.safetensors"), tensors, meta)

    maxg = max(float(g.abs().max()) for g in grads.values())
    log(f"[{fam}] dtype {DTYPE_NAME[dtype]} loss {float(out.loss.detach()):.6f} (ln V = {math.log(V):.4f}) "
        f"max|grad| {maxg:.6f} over {len(grads)} LoRA tensors")
    log(f"[{fam}] train_loss " + " ".join(f"{x:.6f}" for x in tl))
    log(f"[{fam}] train_lr   " + " ".join(f"{x:.3e}" for x in tlr))
    log(f"[{fam}] grad_norm  " + " ".join(f"{x:.4f}" for x in tgn))
    return dict(loss=float(out.loss.detach()), maxg=maxg, tl=tl)


# ---------------------------------------------------------------------------
# stories260K (llama2.c checkpoint)

def read_llama2c(path):
    with open(path, "rb") as f:
        raw = f.read()
    dim, hidden, L, nh, nkv, vocab, seq_len = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // nh
    kv_dim = nkv * hs
    data = np.frombuffer(raw, dtype="<f4", offset=28)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        if pos + n > data.size:
            raise SystemExit(f"{path}: truncated at float {pos} (need {n} more)")
        t = torch.from_numpy(data[pos:pos + n].copy()).reshape(shape)
        pos += n
        return t

    # order as llama2.c run.c memory_map_weights
    w = dict(tok=take(vocab, dim), rms_att=take(L, dim), wq=take(L, dim, dim),
             wk=take(L, kv_dim, dim), wv=take(L, kv_dim, dim), wo=take(L, dim, dim),
             rms_ffn=take(L, dim), w1=take(L, hidden, dim), w2=take(L, dim, hidden),
             w3=take(L, hidden, dim), rms_final=take(dim))
    pos += seq_len * hs // 2 * 2           # skipped freq_cis_real / freq_cis_imag
    w["wcls"] = w["tok"] if shared else take(vocab, dim)
    if pos != data.size:
        raise SystemExit(f"{path}: {data.size - pos} trailing floats")
    cfg = dict(dim=dim, hidden=hidden, L=L, nh=nh, nkv=nkv, vocab=vocab, seq_len=seq_len,
               shared=shared)
    return cfg, w


def llama2c_forward(cfg, w, tokens):
    """Plain torch transcription of llama2.c run.c forward() for all positions at once."""
    dim, L, nh, nkv = cfg["dim"], cfg["L"], cfg["nh"], cfg["nkv"]
    hs = dim // nh
    Tn = tokens.numel()

    def rmsnorm(x, g):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5) * g

    def rope(v):       # v: (T, n, hs); rotate pairs (2i, 2i+1), freq from i within the head
        i = torch.arange(0, hs, 2, dtype=torch.float32)
        freq = 1.0 / torch.pow(torch.tensor(10000.0), i / hs)
        ang = torch.arange(Tn, dtype=torch.float32)[:, None] * freq[None]     # (T, hs/2)
        c, s = torch.cos(ang)[:, None], torch.sin(ang)[:, None]
        v0, v1 = v[..., 0::2], v[..., 1::2]
        out = torch.empty_like(v)
        out[..., 0::2] = v0 * c - v1 * s
        out[..., 1::2] = v0 * s + v1 * c
        return out

    x = w["tok"][tokens]                                   # (T, dim)
    causal = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
    for l in range(L):
        xb = rmsnorm(x, w["rms_att"][l])
        q = rope((xb @ w["wq"][l].T).view(Tn, nh, hs))
        k = rope((xb @ w["wk"][l].T).view(Tn, nkv, hs))
        v = (xb @ w["wv"][l].T).view(Tn, nkv, hs)
        rep = nh // nkv                                    # query head h uses kv head h // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hs)
        att = att.masked_fill(~causal, float("-inf")).softmax(-1)
        o = torch.einsum("hts,shd->thd", att, v).reshape(Tn, dim)
        x = x + o @ w["wo"][l].T
        xb = rmsnorm(x, w["rms_ffn"][l])
        h1 = xb @ w["w1"][l].T
        h3 = xb @ w["w3"][l].T
        x = x + (torch.nn.functional.silu(h1) * h3) @ w["w2"][l].T
    x = rmsnorm(x, w["rms_final"])
    return x @ w["wcls"].T


def llama2c_to_hf(cfg, w):
    """Independent route: HF LlamaForCausalLM with wq/wk rows permuted as transformers'
    convert_llama_weights_to_hf.py permute() does (interleaved pairs -> rotate_half halves)."""
    dim, L, nh, nkv = cfg["dim"], cfg["L"], cfg["nh"], cfg["nkv"]
    hs = dim // nh

    def permute(t, n_heads, d1, d2):
        return t.view(n_heads, d1 // n_heads // 2, 2, d2).transpose(1, 2).reshape(d1, d2)

    hc = LlamaConfig(hidden_size=dim, intermediate_size=cfg["hidden"], num_hidden_layers=L,
                     num_attention_heads=nh, num_key_value_heads=nkv, head_dim=hs,
                     vocab_size=cfg["vocab"], max_position_embeddings=cfg["seq_len"],
                     rms_norm_eps=1e-5, rope_parameters={"rope_type": "default",
                                                         "rope_theta": 10000.0},
                     tie_word_embeddings=cfg["shared"], use_cache=False)
    hc._attn_implementation = "eager"
    m = LlamaForCausalLM(hc)
    sd = {"model.embed_tokens.weight": w["tok"], "model.norm.weight": w["rms_final"],
          "lm_head.weight": w["wcls"]}
    for l in range(L):
        p = f"model.layers.{l}."
        sd[p + "self_attn.q_proj.weight"] = permute(w["wq"][l], nh, dim, dim)
        sd[p + "self_attn.k_proj.weight"] = permute(w["wk"][l], nkv, nkv * hs, dim)
        sd[p + "self_attn.v_proj.weight"] = w["wv"][l]
        sd[p + "self_attn.o_proj.weight"] = w["wo"][l]
        sd[p + "mlp.gate_proj.weight"] = w["w1"][l]
        sd[p + "mlp.down_proj.weight"] = w["w2"][l]
        sd[p + "mlp.up_proj.weight"] = w["w3"][l]
        sd[p + "input_layernorm.weight"] = w["rms_att"][l]
        sd[p + "post_attention_layernorm.weight"] = w["rms_ffn"][l]
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected and all(k == "lm_head.weight" for k in missing), (missing, unexpected)
    m.eval()
    return m


def make_stories(data_dir, out_root):
    path = os.path.join(data_dir, "models", "stories260K.bin")
    if not os.path.exists(path):
        log(f"[stories260k] {path} not found; skipped")
        return None
    cfg, w = read_llama2c(path)
    gen = torch.Generator().manual_seed(260)
    tokens = torch.cat([torch.tensor([1]),
                        torch.randint(3, cfg["vocab"], (31,), generator=gen)])
    with torch.no_grad():
        ref = llama2c_forward(cfg, w, tokens)
        hf = llama2c_to_hf(cfg, w)(input_ids=tokens[None]).logits[0]
    diff = float((ref - hf).abs().max())
    if diff > 1e-4:
        raise SystemExit(f"[stories260k] llama2.c-style forward vs HF differ by {diff}")
    odir = os.path.join(out_root, "stories260k")
    os.makedirs(odir, exist_ok=True)
    meta = {"source": "stories260K.bin (llama2.c checkpoint)",
            "config": json.dumps(cfg, sort_keys=True),
            "logits_from": "plain torch transcription of llama2.c run.c forward (f32)",
            "hf_max_abs_diff": f"{diff:.3e}",
            "versions": f"torch {torch.__version__.split('+')[0]}, transformers "
                        f"{transformers.__version__}"}
    write_safetensors(os.path.join(odir, "ref.safetensors"),
                      {"tokens": tokens.to(torch.int32), "logits": ref.float().contiguous()}, meta)
    log(f"[stories260k] {cfg}; max|llama2.c-style - HF Llama| = {diff:.3e}; "
        f"logits range [{float(ref.min()):.3f}, {float(ref.max()):.3f}]")
    return diff


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures"))
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data"))
    ap.add_argument("--families", default=",".join(FAMILIES))
    args = ap.parse_args()

    # determinism: one thread, deterministic kernels, fixed seeds per family
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"peft {peft.__version__}, safetensors {safetensors.__version__}, numpy {np.__version__}")

    results = {}
    for fam in args.families.split(","):
        results[fam] = make_family(fam, args.out)
    make_stories(args.data, args.out)

    log("\nsummary")
    for fam, r in results.items():
        log(f"  {fam:8s} loss {r['loss']:.6f}  max|grad| {r['maxg']:.6f}  train_loss "
            + " ".join(f"{x:.4f}" for x in r["tl"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
