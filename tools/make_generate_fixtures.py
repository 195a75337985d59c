#!/usr/bin/env python3
"""Reference greedy generations for tests/golden/test_generate.c.

For each tiny golden family (tests/fixtures/<fam>/model + the random PEFT adapter in
tests/fixtures/<fam>/adapter, both written by tools/make_golden.py), loads the model in float32
with transformers, attaches the adapter unmerged with PEFT, and runs generate() greedily for
20 new tokens from a few prompts given as token ids:

  single     each prompt alone (no padding)
  batched    all prompts in one left-padded batch (pad id 0, attention_mask 0 on padding; HF
             derives positions from the mask), as loratune's batched generation does
  rep        each prompt alone with repetition_penalty=1.3
  base       each prompt alone without the adapter

EOS (id 2) ends a sequence as in generate(); the stored ids stop after it (HF pads the
rest). Also stored: the smallest margin between the chosen logit and the runner-up along every
greedy path, so a failure can be told apart from a near-tie (the C side computes in a different
order; differences are ~1e-6).

Output: tests/fixtures/generate/<fam>.json. Deterministic (fixed seeds, one thread).
Usage: python tools/make_generate_fixtures.py [--families llama,mistral,qwen2,gpt2,gpt_neox]
(GPT-2 batched: transformers derives the learned positions from the attention mask, as loratune
does; the NeoX base is bf16, computed in float32 on both sides.)
Python is used only here, never by `make test`.
"""

import argparse
import json
import os

import torch
from transformers import AutoModelForCausalLM
from peft import PeftModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEW = 20
PROMPT_LENS = [5, 9, 3, 12]
PAD = 0


def load(fam, adapter=True):
    d = os.path.join(REPO, "tests", "fixtures", fam)
    m = AutoModelForCausalLM.from_pretrained(os.path.join(d, "model"), dtype=torch.float32,
                                             attn_implementation="eager").float().eval()
    if adapter:
        m = PeftModel.from_pretrained(m, os.path.join(d, "adapter")).eval()
    return m


def strip(seq, eos):
    out = []
    for t in seq:
        out.append(int(t))
        if int(t) == eos:
            break
    return out


def gen(model, ids, mask, **kw):
    with torch.no_grad():
        r = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW, do_sample=False,
                           pad_token_id=PAD, eos_token_id=2, output_scores=True,
                           return_dict_in_generate=True, **kw)
    new = r.sequences[:, ids.shape[1]:]
    # margin between the best and second-best processed score at each step (live rows only)
    margin = float("inf")
    for s, sc in enumerate(r.scores):
        top = torch.topk(sc, 2, dim=-1).values
        for b in range(sc.shape[0]):
            if s == 0 or all(int(t) != 2 for t in new[b, :s]):
                margin = min(margin, float(top[b, 0] - top[b, 1]))
    return new, margin


def run_family(fam):
    torch.manual_seed(7)
    g = torch.Generator().manual_seed(1234 + len(fam))
    prompts = [torch.randint(3, 256, (n,), generator=g).tolist() for n in PROMPT_LENS]
    out = {"family": fam, "max_new_tokens": NEW, "eos": 2, "pad": PAD, "prompts": prompts}
    margins = {}
    for name, adapter, kw in [("single", True, {}), ("rep", True, {"repetition_penalty": 1.3}),
                              ("base", False, {})]:
        m = load(fam, adapter)
        res, mg = [], float("inf")
        for p in prompts:
            ids = torch.tensor([p])
            new, mgi = gen(m, ids, torch.ones_like(ids), **kw)
            res.append(strip(new[0].tolist(), 2))
            mg = min(mg, mgi)
        out[name] = res
        margins[name] = mg
    # one left-padded batch
    m = load(fam, True)
    P = max(PROMPT_LENS)
    ids = torch.full((len(prompts), P), PAD)
    mask = torch.zeros((len(prompts), P), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, P - len(p):] = torch.tensor(p)
        mask[i, P - len(p):] = 1
    new, mg = gen(m, ids, mask)
    out["batched"] = [strip(r, 2) for r in new.tolist()]
    margins["batched"] = mg
    out["min_margin"] = margins
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="llama,mistral,qwen2,gpt2,gpt_neox")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    od = os.path.join(REPO, "tests", "fixtures", "generate")
    os.makedirs(od, exist_ok=True)
    for fam in args.families.split(","):
        out = run_family(fam)
        with open(os.path.join(od, fam + ".json"), "w") as f:
            # one key per line, values compact
            f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in out.items())
                    + "\n}\n")
        same = out["single"] == out["batched"]
        print(f"{fam}: margins {out['min_margin']}; batched == single: {same}")


if __name__ == "__main__":
    main()
