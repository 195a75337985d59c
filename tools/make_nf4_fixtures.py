#!/usr/bin/env python3
"""make_nf4_fixtures.py - reference values for NF4/FP4 4-bit quantisation (with and without
double quantisation), the 8-bit blockwise dynamic code and 8-bit AdamW, for
tests/unit/test_nf4.c and tests/unit/test_optim8.c.

Source of the algorithm: bitsandbytes 0.50.2 (pip install bitsandbytes; it runs on CPU):
  - functional.py: get_4bit_type, create_dynamic_map, quantize_4bit (compress_statistics:
    offset = absmax.mean(), quantize_blockwise(absmax - offset, blocksize=256)),
    dequantize_4bit (absmax = dequantize_blockwise(qabsmax, state2) + offset)
  - backends/default/ops.py: the pure-PyTorch kernels quantize_4bit / quantize_blockwise
    (absmax per block; scaled = clamp(A * (1 / absmax.clamp(min=1e-38)), -1, 1);
    q = torch.bucketize(scaled, midpoints of the sorted code)), dequantize_* (code[q] * absmax)
  - backends/cpu/ops.py: _optimizer_update_8bit_blockwise_cpu (blocksize 256: dequantise both
    states, m = m*b1 + (1-b1) g, v = v*b2 + (1-b2) g*g, denom = sqrt(v)/sqrt(1-b2^t) + eps,
    p *= 1 - lr*wd, p -= lr/(1-b1^t) * m/denom, requantise; signed dynamic map for m, unsigned
    for v); optim/optimizer.py: params with fewer than min_8bit_size = 4096 elements keep f32
    state.

`ref_*` below re-implements those kernels in torch, line for line. The script checks them against
bitsandbytes itself and stops if they disagree beyond what is explained here:
  - 4-bit codes and first-level absmax: bitsandbytes on CPU runs exactly the default kernel, so
    they must be bit-identical (checked).
  - the nested 8-bit quantisation: on CPU bitsandbytes calls its native library, whose search of
    the 256-value code is approximate (a value within ~0.5% of a midpoint may get the farther
    neighbour); the fixture stores the exact-nearest values of the default kernel (what CUDA's
    dQuantize and the PyTorch kernels compute) and the script reports how many codes the native
    search placed differently.
  - AdamW8bit: compared with bitsandbytes.optim.AdamW8bit over the same steps (reported; the
    native requantisation differs in the same rare codes).

Writes tests/fixtures/nf4/nf4.safetensors and tests/fixtures/nf4/optim8.safetensors.
Deterministic (fixed seeds, one thread). Run from the repo root:  python tools/make_nf4_fixtures.py
"""
import json
import os
import struct
import sys

import numpy as np
import torch

torch.set_num_threads(1)

import bitsandbytes as bnb  # noqa: E402
import bitsandbytes.functional as F  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "nf4")


def write_safetensors(path, tensors, meta):
    """Minimal deterministic safetensors writer (sorted keys, 8-byte aligned)."""
    dt = {torch.float32: "F32", torch.bfloat16: "BF16", torch.uint8: "U8", torch.int32: "I32"}
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        b = t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[k] = {"dtype": dt[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {k: str(v) for k, v in sorted(meta.items())}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------------------------------------
# reference kernels (bitsandbytes backends/default/ops.py, transcribed)

def ref_quantize_blockwise(A, code, blocksize):
    A_flat = A.reshape(-1).float()
    n = A_flat.numel()
    rem = n % blocksize
    full = n - rem
    blocks = full // blocksize
    A_com = A_flat[:full].reshape(blocks, blocksize)
    absmax = A_com.abs().max(dim=-1)[0]
    scaled = torch.clamp(A_com * (1.0 / absmax.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    if rem:  # (as bnb: the short last block stores the clamped absmax and divides by it)
        am = A_flat[full:].abs().max().clamp(min=1e-38)
        absmax = torch.cat([absmax, am.unsqueeze(0)])
        scaled = torch.cat([scaled, torch.clamp(A_flat[full:] / am, -1, 1)])
    bounds = (code[:-1] + code[1:]) / 2
    q = torch.bucketize(scaled, bounds, out_int32=True).to(torch.uint8)
    return q.reshape(A.shape), absmax


def ref_dequantize_blockwise(q, absmax, code, blocksize):
    out = code[q.reshape(-1).long()]
    n = out.numel()
    idx = torch.arange(n) // blocksize
    return (out * absmax[idx]).reshape(q.shape)


def ref_quantize_4bit(A, quant_type, blocksize=64):
    code = F.get_4bit_type(quant_type, device="cpu")
    order = torch.argsort(code)
    bounds = (code[order[:-1]] + code[order[1:]]) / 2
    A_flat = A.reshape(-1).float()
    n = A_flat.numel()
    assert n % blocksize == 0
    A_com = A_flat.reshape(-1, blocksize)
    absmax = A_com.abs().max(dim=-1)[0]
    scaled = torch.clamp(A_com * (1.0 / absmax.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    q = torch.bucketize(scaled, bounds, out_int32=True)
    if quant_type != "nf4":
        q = order[q]
    q8 = q.to(torch.uint8)
    packed = (q8[::2] << 4) | q8[1::2]
    return packed, absmax, order


def ref_dequantize_4bit(packed, absmax, quant_type, shape, blocksize=64):
    code = F.get_4bit_type(quant_type, device="cpu")
    q = torch.empty(packed.numel() * 2, dtype=torch.long)
    q[0::2] = (packed >> 4).long()
    q[1::2] = (packed & 15).long()
    v = code[q].reshape(-1, blocksize) * absmax.view(-1, 1)
    return v.reshape(shape)


def ref_double_quant(absmax, code8):
    offset = absmax.mean()
    qabsmax, absmax2 = ref_quantize_blockwise(absmax - offset, code8, 256)
    deq = ref_dequantize_blockwise(qabsmax, absmax2, code8, 256) + offset
    return qabsmax, absmax2, offset, deq


# ---------------------------------------------------------------------------------------------
# 4-bit fixtures

def make_inputs():
    g = torch.Generator().manual_seed(8)
    # a (32, 576) weight in bf16 (288 blocks: a full and a partial group of 256 for the nested
    # quantisation), with rows of different scales and one all-zero block
    x = torch.randn(32, 576, generator=g) * 0.02
    x[3] *= 25.0
    x[7, 64:128] = 0.0
    x[9, :64] *= 1e-3
    x_bf16 = x.to(torch.bfloat16)
    # a small f32 input with designed values: block 0 holds every NF4 code value and every
    # midpoint (ties go to the lower code), block 1 the negative extreme, block 2 subnormal-
    # sized values, block 3 random
    nf4 = F.get_4bit_type("nf4", device="cpu")
    mids = (nf4[:-1] + nf4[1:]) / 2
    b0 = torch.cat([nf4, mids, -mids[:8], torch.linspace(-0.9, 0.9, 25)])
    b1 = torch.randn(64, generator=g)
    b1[5] = -4.0 * b1.abs().max()
    b2 = torch.randn(64, generator=g) * 1e-39
    b3 = torch.randn(64, generator=g)
    x_small = torch.stack([b0, b1, b2, b3]).float()
    assert b0.numel() == 64
    return x_bf16, x_small


def four_bit(tensors, name, xf, quant_type, dq):
    """Reference values for one input; checks them against bitsandbytes itself."""
    code8 = F.create_dynamic_map(signed=True)
    packed, absmax, _ = ref_quantize_4bit(xf, quant_type)
    q_bnb, st = F.quantize_4bit(xf, blocksize=64, quant_type=quant_type, compress_statistics=dq)
    assert torch.equal(q_bnb.reshape(-1), packed), f"{name}: 4-bit codes differ from bitsandbytes"
    pre = f"{name}.{quant_type}{'_dq' if dq else ''}"
    tensors[pre + ".codes"] = packed
    if not dq:
        assert torch.equal(st.absmax, absmax), f"{name}: absmax differs from bitsandbytes"
        deq = ref_dequantize_4bit(packed, absmax, quant_type, xf.shape)
        tensors[pre + ".absmax"] = absmax
        d_bnb = F.dequantize_4bit(q_bnb, st)
        assert torch.equal(d_bnb, deq), f"{name}: dequantised values differ from bitsandbytes"
    else:
        qabs, absmax2, offset, am_deq = ref_double_quant(absmax, code8)
        assert torch.equal(st.offset, offset), f"{name}: offset differs from bitsandbytes"
        deq = ref_dequantize_4bit(packed, am_deq, quant_type, xf.shape)
        tensors[pre + ".qabsmax"] = qabs
        tensors[pre + ".absmax2"] = absmax2
        tensors[pre + ".offset"] = offset.reshape(1)
        n_diff = int((st.absmax != qabs).sum())
        d_bnb = F.dequantize_4bit(q_bnb, st)
        print(f"  {pre}: nested codes placed differently by bnb's native search: {n_diff} of "
              f"{qabs.numel()}; max |deq - bnb| = {float((d_bnb - deq).abs().max()):.3g}")
    tensors[pre + ".deq"] = deq.float()


def make_nf4():
    tensors = {}
    x_bf16, x_small = make_inputs()
    tensors["x_bf16"] = x_bf16
    tensors["x_small"] = x_small
    tensors["dyn8_signed"] = F.create_dynamic_map(signed=True)
    tensors["dyn8_unsigned"] = F.create_dynamic_map(signed=False)
    tensors["nf4_code"] = F.get_4bit_type("nf4", device="cpu")
    tensors["fp4_code"] = F.get_4bit_type("fp4", device="cpu")
    tensors["fp4_order"] = torch.argsort(tensors["fp4_code"]).to(torch.int32)
    # quantising a bf16 tensor is quantising its f32 values (quantize_4bit casts first)
    q1, _ = F.quantize_4bit(x_bf16, blocksize=64, quant_type="nf4")
    q2, _ = F.quantize_4bit(x_bf16.float(), blocksize=64, quant_type="nf4")
    assert torch.equal(q1, q2)
    for name, x in (("big", x_bf16.float()), ("small", x_small)):
        for qt in ("nf4", "fp4"):
            for dq in (False, True):
                four_bit(tensors, name, x, qt, dq)
    # blockwise 8-bit (signed map on signed data, unsigned on magnitudes), n not a multiple of 256
    g = torch.Generator().manual_seed(9)
    y = torch.randn(1000, generator=g) * torch.exp(torch.randn(1000, generator=g))
    y[256:512] = 0.0  # an all-zero block
    tensors["dyn8_x"] = y
    for signed in (True, False):
        code = F.create_dynamic_map(signed=signed)
        src = y if signed else y.abs()
        q, am = ref_quantize_blockwise(src, code, 256)
        tag = "s" if signed else "u"
        tensors[f"dyn8_{tag}.q"] = q
        tensors[f"dyn8_{tag}.absmax"] = am
        tensors[f"dyn8_{tag}.deq"] = ref_dequantize_blockwise(q, am, code, 256)
        qb, sb = F.quantize_blockwise(src, code=code.clone(), blocksize=256)
        assert torch.equal(sb.absmax, am)
        nz = torch.ones(1000, dtype=torch.bool)
        nz[256:512] = False  # bnb's native kernel codes an all-zero block as 0 (0/0): same value
        print(f"  dyn8 {'signed' if signed else 'unsigned'}: codes placed differently by bnb's "
              f"native search outside the zero block: {int((qb != q)[nz].sum())} of 744")
    meta = {"bitsandbytes": bnb.__version__, "torch": torch.__version__, "blocksize": 64,
            "nested_blocksize": 256}
    write_safetensors(os.path.join(OUT, "nf4.safetensors"), tensors, meta)


# ---------------------------------------------------------------------------------------------
# 8-bit AdamW

def ref_adamw8_step(p, g, st, step, lr, b1, b2, eps, wd):
    """One step of bnb's blockwise 8-bit Adam (CPU kernel), with exact-nearest requantisation."""
    qs, qu = F.create_dynamic_map(signed=True), F.create_dynamic_map(signed=False)
    m = ref_dequantize_blockwise(st["m"], st["am"], qs, 256)
    v = ref_dequantize_blockwise(st["v"], st["av"], qu, 256)
    m.mul_(b1).add_(g, alpha=1.0 - b1)
    v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
    c1 = 1.0 - b1 ** step
    c2 = (1.0 - b2 ** step) ** 0.5
    denom = (v.sqrt() / c2).add_(eps)
    if wd > 0:
        p.mul_(1.0 - lr * wd)
    p.addcdiv_(m, denom, value=-lr / c1)
    st["m"], st["am"] = ref_quantize_blockwise(m, qs, 256)
    st["v"], st["av"] = ref_quantize_blockwise(v, qu, 256)


def ref_adamw32_step(p, g, st, step, lr, b1, b2, eps, wd):
    """bnb's 32-bit path for small tensors (backends/cpu/ops.py _optimizer_update_32bit_cpu)."""
    st["m"].mul_(b1).add_(g, alpha=1.0 - b1)
    st["v"].mul_(b2).addcmul_(g, g, value=1.0 - b2)
    c1 = 1.0 - b1 ** step
    c2 = (1.0 - b2 ** step) ** 0.5
    if wd > 0:
        p.mul_(1.0 - lr * wd)
    update = st["m"] / (st["v"].sqrt() + eps * c2)
    p.add_(update, alpha=-lr * c2 / c1)


def make_optim8():
    sizes = [4200, 600, 4096]  # 8-bit (a short last block), 32-bit (< 4096 elements), 8-bit
    n = sum(sizes)
    steps, lr, b1, b2, eps, wd = 4, 1e-2, 0.9, 0.999, 1e-8, 0.01
    g = torch.Generator().manual_seed(10)
    # p0 rounded to bf16 values (stored as BF16: exact, half the bytes); the gradients stay f32
    # (bf16-rounded gradients make m / absmax land exactly on a midpoint of the code often, where
    # a 1-ulp difference in (1 - beta1) decides the code)
    p0 = (torch.randn(n, generator=g) * 0.05).to(torch.bfloat16).float()
    grads = torch.randn(steps, n, generator=g) * 1e-2
    grads[:, 4200:4300] *= 100.0  # large gradients in the f32 segment
    grads[:, 100:356] *= 0.0      # a block whose gradients stay zero (its states stay zero)
    grads[:, 600:700] *= 1e-2     # small gradients beside large ones in one block (a ratio
    # of 1e-4 would put v = (1-b2) g^2 below the unsigned map's smallest step, 3.25e-7 of the
    # block's absmax: v reads back as 0 while m does not, and the update blows up; a known limit
    # of 8-bit states that bnb shares)
    tensors = {"p0": p0.to(torch.bfloat16), "grads": grads,
               "sizes": torch.tensor(sizes, dtype=torch.int32)}
    # reference 8-bit
    ps = [t.clone() for t in torch.split(p0, sizes)]
    states = []
    for t in ps:
        if t.numel() >= 4096:
            qm, am = ref_quantize_blockwise(torch.zeros_like(t), F.create_dynamic_map(True), 256)
            qv, av = ref_quantize_blockwise(torch.zeros_like(t), F.create_dynamic_map(False), 256)
            states.append({"m": qm, "am": am, "v": qv, "av": av})
        else:
            states.append({"m": torch.zeros_like(t), "v": torch.zeros_like(t)})
    traj = []
    for s in range(steps):
        gs = torch.split(grads[s], sizes)
        for t, gg, st in zip(ps, gs, states):
            (ref_adamw8_step if "am" in st else ref_adamw32_step)(t, gg, st, s + 1, lr, b1, b2, eps, wd)
        traj.append(torch.cat(ps))
    tensors["p_ref8"] = torch.stack(traj)
    tensors["m8_final"] = torch.cat([states[0]["m"], states[2]["m"]])
    tensors["v8_final"] = torch.cat([states[0]["v"], states[2]["v"]])
    # bitsandbytes AdamW8bit itself
    params = [torch.nn.Parameter(t.clone()) for t in torch.split(p0, sizes)]
    opt = bnb.optim.AdamW8bit(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    traj_b = []
    for s in range(steps):
        for prm, gg in zip(params, torch.split(grads[s], sizes)):
            prm.grad = gg.clone()
        opt.step()
        traj_b.append(torch.cat([prm.detach() for prm in params]))
    p_bnb8 = torch.stack(traj_b)
    tensors["p_bnb8_final"] = p_bnb8[-1]
    # torch AdamW in f32
    params = [torch.nn.Parameter(p0.clone())]
    opt = torch.optim.AdamW(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, foreach=False)
    traj_t = []
    for s in range(steps):
        params[0].grad = grads[s].clone()
        opt.step()
        traj_t.append(params[0].detach().clone())
    p_f32 = torch.stack(traj_t)
    tensors["p_f32_final"] = p_f32[-1]
    # The first step starts from zero states, so no requantised value is read back yet: there
    # bitsandbytes and the reference must agree to rounding. Later steps read the requantised
    # states, where bnb's native search misplaces small values (e.g. v = 1e-7 * absmax gets code
    # 1.6e-5 instead of 0), so bnb drifts further from f32 AdamW than the reference does.
    d1 = float((tensors["p_ref8"][0] - p_bnb8[0]).abs().max())
    assert d1 < 1e-7, f"reference 8-bit AdamW differs from bitsandbytes at step 1 ({d1})"
    d_bnb = float((tensors["p_ref8"] - p_bnb8).abs().max())
    d_f32 = float((tensors["p_ref8"] - p_f32).abs().max())
    d_bnb_f32 = float((p_bnb8 - p_f32).abs().max())
    moved = float((p_f32[-1] - p0).abs().max())
    print(f"  adamw8: step 1 max |ref8 - bnb AdamW8bit| = {d1:.3g}; over {steps} steps: "
          f"|ref8 - bnb8| {d_bnb:.3g}, |ref8 - f32 AdamW| {d_f32:.3g}, |bnb8 - f32| {d_bnb_f32:.3g} "
          f"(parameters moved up to {moved:.3g})")
    meta = {"bitsandbytes": bnb.__version__, "torch": torch.__version__, "lr": lr, "beta1": b1,
            "beta2": b2, "eps": eps, "weight_decay": wd, "steps": steps, "min_8bit_size": 4096,
            "blocksize": 256}
    write_safetensors(os.path.join(OUT, "optim8.safetensors"), tensors, meta)


def main():
    os.makedirs(OUT, exist_ok=True)
    print(f"bitsandbytes {bnb.__version__}, torch {torch.__version__}")
    make_nf4()
    make_optim8()
    print(f"wrote {OUT}/nf4.safetensors, optim8.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
