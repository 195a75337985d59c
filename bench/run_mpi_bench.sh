#!/bin/sh
# run_mpi_bench.sh - data-parallel training throughput: 1 rank x 2 threads against 2 ranks x 1
# thread (OMP_NUM_THREADS=1) on bench config B (random llama, C=768, 12 layers, V=32000; the HF
# directory made by `python3 bench/train_ref.py B --make-only` in /tmp/lt_bench/B), at the same
# global batch: 4 sequences of 512 tokens per step, as --batch 2 --accum 2 (the 2 ranks take one
# micro-batch each; the single process does both). Also 1 rank x 2 threads at --batch 4 --accum 1
# (the best one process can do with that batch). LoRA r=16 alpha=32 dropout 0 on all projections.
#
# Drives `loratune train` (mpirun for 2 ranks) on random full-length token ids; every step is
# timed from the metrics JSONL (elapsed_s differences), the first step is warm-up, and the median
# of the others is reported. One JSON line per setup on stdout:
#   {"bench": "mpi_train", "config": "B", "ranks", "threads", "batch", "accum", "seq",
#    "median_step_s", "tokens_per_s", "sent_bytes_per_step" (bytes each rank sent in the gradient
#    and loss sums, measured by src/dist; 0 for one rank), "trainable_params", "commit"}
# Needs an MPI build (make MPI=1 BUILD=build/mpi). Environment: STEPS (timed steps, default 4),
# BUILD (default build/mpi), LT_BENCH_DIR (default /tmp/lt_bench), PYTHON (default python3).
# Run it on a quiet machine: the setups share the cores one after the other, never together.
set -eu
cd "$(dirname "$0")/.."
STEPS=${STEPS:-4}
BUILD=${BUILD:-build/mpi}
ROOT=${LT_BENCH_DIR:-/tmp/lt_bench}
PYTHON=${PYTHON:-python3}
LT=$BUILD/loratune
[ -x "$LT" ] || { echo "run_mpi_bench: $LT missing (make MPI=1 BUILD=$BUILD all)" >&2; exit 1; }
[ -f "$ROOT/B/config.json" ] || "$PYTHON" bench/train_ref.py B --make-only >&2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
W=$(mktemp -d /tmp/lt_mpi_bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
# 4 * (STEPS + 1) random sequences of 512 ids (ids 3..31999): every position carries loss
awk -v n=$((4 * (STEPS + 1))) 'BEGIN { srand(1234); for (i = 0; i < n; i++) {
    s = "{\"input_ids\": ["; for (j = 0; j < 512; j++) s = s (j ? ", " : "") (3 + int(rand() * 31996))
    print s "]}" } }' > "$W/data.ids.jsonl"

run() { # run RANKS THREADS BATCH ACCUM
    out="$W/r$1t$2b$3"
    args="train --model $ROOT/B --data $W/data.ids.jsonl --seq 512 --batch $3 --accum $4
          --max-steps $((STEPS + 1)) --r 16 --alpha 32 --dropout 0 --targets all --lr 1e-4
          --sched constant --no-eos --quiet --out $out"
    # shellcheck disable=SC2086
    if [ "$1" = 1 ]; then OMP_NUM_THREADS=$2 "$LT" $args >"$out.log" 2>&1
    else OMP_NUM_THREADS=$2 mpirun -np "$1" --oversubscribe --bind-to none -x OMP_NUM_THREADS \
        "$LT" $args >"$out.log" 2>&1; fi || { cat "$out.log" >&2; exit 1; }
    np=$(sed -n 's/^trainable params: \([0-9,]*\).*/\1/p' "$out.log" | tr -d ,)
    # step times from elapsed_s; tokens per step from "tokens"; the sent bytes of the last step
    awk -v R="$1" -v TH="$2" -v B="$3" -v A="$4" -v NP="${np:-0}" -v C="$COMMIT" '
        /"step"/ && /"elapsed_s"/ {
            match($0, /"elapsed_s": [0-9.]+/); e = substr($0, RSTART + 13, RLENGTH - 13) + 0
            match($0, /"tokens": [0-9.]+/); tok = substr($0, RSTART + 10, RLENGTH - 10) + 0
            sb = 0; if (match($0, /"sent_bytes": [0-9]+/)) sb = substr($0, RSTART + 14, RLENGTH - 14) + 0
            if (n > 0) { dt[n] = e - pe; dtok = tok - ptok }
            pe = e; ptok = tok; n++ }
        END {
            m = n - 1; for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (dt[j] < dt[i]) { t = dt[i]; dt[i] = dt[j]; dt[j] = t }
            med = (m % 2) ? dt[(m + 1) / 2] : (dt[m / 2] + dt[m / 2 + 1]) / 2
            printf "{\"bench\": \"mpi_train\", \"config\": \"B\", \"ranks\": %d, \"threads\": %d, \"batch\": %d, \"accum\": %d, \"seq\": 512, \"timed_steps\": %d, \"median_step_s\": %.3f, \"tokens_per_s\": %.1f, \"sent_bytes_per_step\": %d, \"trainable_params\": %d, \"commit\": \"%s\"}\n", R, TH, B, A, m, med, dtok / med, sb, NP, C
        }' "$out/metrics.jsonl"
}

run 1 2 2 2
run 2 1 2 2
run 1 2 4 1
