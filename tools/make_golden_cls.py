#!/usr/bin/env python3
"""Golden fixtures for sequence classification: LlamaForSequenceClassification,
GPT2ForSequenceClassification and GPTNeoXForSequenceClassification + PEFT (SEQ_CLS).

Usage: python tools/make_golden_cls.py [--families llama,gpt2,gpt_neox]

Base: the tiny <family> of tests/fixtures/<family>/model (make_golden.py), loaded as a sequence
classifier with num_labels=3 and pad_token_id=0 (score head: transformers' own init, seeded).
PEFT LoRA r=4, alpha=8 on every projection of the family (llama: all seven; GPT-2: c_attn,
c_proj, c_fc with fan_in_fan_out; NeoX: query_key_value, dense, dense_h_to_4h, dense_4h_to_h),
A and B random (std 0.1) so every gradient is nonzero; GPT-2 / NeoX run in eval mode (no config
dropout). PEFT adds the head to modules_to_save. Writes:
  tests/fixtures/cls/[gpt2/|gpt_neox/]adapter/   PEFT's own files (includes base_model.model.score.weight)
  tests/fixtures/cls/[gpt2/|gpt_neox/]golden.safetensors:
    input_ids (B,T) I32 (right padding with id 0, one row with no padding, one row containing
    a 0 inside the text: transformers pools at the rightmost non-pad id), attention_mask,
    labels (B) I32, class_weight (3) F32, scores (B,3) F32, loss (1) (weighted mean CE, torch
    CrossEntropyLoss(weight=...)), grad.<peft key> for every LoRA tensor and the head.
"""
import argparse
import os
import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import (LlamaForSequenceClassification, GPT2ForSequenceClassification,
                          GPTNeoXForSequenceClassification)
from peft import LoraConfig, get_peft_model

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "..")
# family -> (class, LoRA targets (every projection PEFT names for it), output folder)
FAMILIES = {
    "llama": (LlamaForSequenceClassification,
              ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
              "tests/fixtures/cls"),
    "gpt2": (GPT2ForSequenceClassification, ["c_attn", "c_proj", "c_fc"], "tests/fixtures/cls/gpt2"),
    "gpt_neox": (GPTNeoXForSequenceClassification,
                 ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
                 "tests/fixtures/cls/gpt_neox"),
}


def make(fam):
    cls, targets, out_rel = FAMILIES[fam]
    torch.manual_seed(7)
    model = cls.from_pretrained(os.path.join(root, "tests/fixtures", fam, "model"), num_labels=3,
                                pad_token_id=0, attn_implementation="eager", dtype=torch.float32)
    cfg = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, lora_dropout=0.0,
                     target_modules=targets, fan_in_fan_out=fam == "gpt2")
    pm = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    out_dir = os.path.join(root, out_rel)
    pm.save_pretrained(os.path.join(out_dir, "adapter"))
    readme = os.path.join(out_dir, "adapter", "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    B, T = 4, 12
    rng = np.random.default_rng(3)
    ids = rng.integers(3, 256, size=(B, T)).astype(np.int64)
    mask = np.ones((B, T), dtype=np.int64)
    ids[0, 9:] = 0; mask[0, 9:] = 0       # right padding
    ids[2, 5:] = 0; mask[2, 5:] = 0
    ids[3, 4] = 0                          # a pad id inside the text, real token
    labels = np.array([2, 0, 1, 2], dtype=np.int64)
    cw = np.array([1.0, 2.0, 0.5], dtype=np.float32)
    # llama: train mode as first written (its dropouts are 0); GPT-2 / NeoX: eval, so that no
    # config dropout (GPT-2 summary_first_dropout, NeoX classifier_dropout) can apply
    pm.train() if fam == "llama" else pm.eval()
    out = pm(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    scores = out.logits
    loss = torch.nn.functional.cross_entropy(scores, torch.tensor(labels), weight=torch.tensor(cw))
    loss.backward()
    sd = {"input_ids": ids.astype(np.int32), "attention_mask": mask.astype(np.int32),
          "labels": labels.astype(np.int32), "class_weight": cw,
          "scores": scores.detach().numpy().astype(np.float32), "loss": np.array([loss.item()], np.float32)}
    for n, p in pm.named_parameters():
        if p.grad is None:
            continue
        if "lora_" in n:
            key = n.replace(".default", "")
        elif "modules_to_save" in n:
            key = "base_model.model.score.weight"
        else:
            continue
        sd["grad." + key] = p.grad.detach().numpy().astype(np.float32)
    save_file(sd, os.path.join(out_dir, "golden.safetensors"), metadata={"n_labels": "3", "pad_id": "0"})
    print(fam, "loss", loss.item(), "scores", scores.detach().numpy()[0],
          "n grads", sum(k.startswith("grad.") for k in sd))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="llama,gpt2,gpt_neox")
    for fam in ap.parse_args().families.split(","):
        make(fam)
