#!/bin/sh
# spam_classifier.sh - an SMS spam classifier fine-tuned with LoRA + a classification head, end to
# end: train (balanced subsample, stratified 70/10/20 split, seeded), keep the best checkpoint by
# validation macro-F1, report test accuracy / macro-F1 / confusion matrix, then label new texts.
#
# usage: examples/spam_classifier.sh [--model MODEL] [--tokenizer TOK] [--data TSV] [--out DIR]
#                                    [any other `loratune train --task classify` flag ...]
#
# Defaults: the real pretrained llama2.c model stories260K (260K parameters) with its tokenizer
# tok512.bin, and the SMS Spam Collection (label<TAB>text, 4827 ham / 747 spam), all from
# ../shared/data (or $LT_SHARED_DATA). A stronger model:
#   examples/spam_classifier.sh --model ~/.cache/loratune/SmolLM2-135M-Instruct.Q4_1.gguf
# (the tokenizer then comes from the GGUF file; SmolLM2 gets its own settings below).
#
# Output in DIR (default out/spam): the final adapter (PEFT files + labels.json), best/ (the best
# checkpoint), report.json (validation and test metrics, per class, confusion matrix, history),
# metrics.jsonl, curves.svg (loss and accuracy against steps and examples seen; open it in a
# browser), predictions.jsonl (the test texts of the example below).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${LT_SHARED_DATA:-$ROOT/../shared/data}
MODEL=$SHARED/models/stories260K.bin
TOKENIZER=$SHARED/models/tok512.bin
DATA=$SHARED/datasets/SMSSpamCollection.tsv
OUT=out/spam
tok_given=0
while [ $# -gt 0 ]; do
    case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --tokenizer) TOKENIZER=$2; tok_given=1; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) break ;; # the rest goes to `loratune train`
    esac
done

BIN=$ROOT/build/loratune
[ -x "$BIN" ] || make -C "$ROOT" build/loratune

case "$MODEL" in
*stories*.bin)
    # A tiny model: its matmuls are too small to share between threads (OpenMP would mostly
    # wait), so one thread is fastest. Results are identical with any thread count.
    : "${OMP_NUM_THREADS:=1}"
    export OMP_NUM_THREADS
    SETTINGS="--lr 1e-3 --epochs 5 --batch 8 --seq 128 --r 8 --alpha 16 --warmup-ratio 0.05"
    ;;
*)
    # A real instruct model (e.g. SmolLM2-135M): a lower rate and an instruction-like prompt whose
    # end ("Answer:") is the token the head reads. On 2 CPU cores one step of 8 x 64 tokens takes
    # ~35 s, so this default is a small run (100 messages per class, one epoch, ~12 min); on a
    # bigger machine drop the cap (add --max-per-class 0) and raise --epochs and --seq.
    [ "$tok_given" = 1 ] || TOKENIZER=""
    SETTINGS="--lr 3e-4 --epochs 1 --batch 8 --seq 64 --r 8 --alpha 16 --warmup-ratio 0.05
              --max-per-class 100 --eval-every 6"
    set -- --template 'Is this SMS message spam or ham?\nMessage: {text}\nAnswer:' "$@"
    ;;
esac

echo "== training: $MODEL on $DATA -> $OUT"
mkdir -p "$OUT"
start=$(date +%s)
# shellcheck disable=SC2086 # SETTINGS is a list of flags
{
    rc=0
    "$BIN" train --task classify --model "$MODEL" ${TOKENIZER:+--tokenizer "$TOKENIZER"} \
        --data "$DATA" --columns label,text --balance --split 70,10,20 --seed 42 \
        --best-metric macro_f1 $SETTINGS --out "$OUT" --quiet "$@" 2>&1 || rc=$?
    echo "$rc" >"$OUT/train.rc"
} | tee "$OUT/train.log"
[ "$(cat "$OUT/train.rc")" = 0 ] || { echo "training failed (see $OUT/train.log)" >&2; exit 1; }
end=$(date +%s)
echo "== wall time of training + evaluation: $((end - start)) s"

echo "== classifying new texts with $OUT/best"
printf '%s\n' \
    "WINNER!! You have been selected to receive a 900 prize reward. Call 09061701461 to claim now" \
    "Are we still on for lunch tomorrow? I can pick you up at noon" \
    "URGENT! Your mobile number has won 2000 cash. Text CLAIM to 81010 to collect" \
    "Sorry, I'll call you later, I'm in a meeting" |
    "$BIN" classify --model "$MODEL" --adapter "$OUT/best" ${TOKENIZER:+--tokenizer "$TOKENIZER"} \
        --input - --batch 4 --out "$OUT/predictions.jsonl"
cat "$OUT/predictions.jsonl"
grep '^result:' "$OUT/train.log" || true
