#!/bin/sh
# MPI stage of scripts/test.sh: data-parallel training of the tiny golden llama (tests/fixtures/
# llama) with `mpirun -np 2` against one process at the same global batch, killed-and-resumed
# runs, and failures. Needs an MPI=1 build: BUILD=build/mpi sh tests/mpi/run_mpi.sh
# (`make MPI=1 BUILD=build/mpi test-mpi` builds it and runs this). Takes a few seconds.
#
# Tolerance (TOL, per tensor: max |a - b| / max |a|): N ranks add the same micro-batch gradients
# as one process, in another order ((g0+g2)+(g1+g3) instead of ((g0+g1)+g2)+g3), so after 10
# AdamW steps the adapters differ by rounding only. Adam divides by sqrt(v), so an element whose
# gradient nearly cancels across micro-batches amplifies that rounding: on this configuration,
# regrouping the same global batch INSIDE one process (--batch 1 --accum 8 vs --batch 2 --accum
# 4, no dropout) moves the adapter by 1.0e-5, and 2 ranks by 2e-6 .. 2.2e-5 (dropout 0 / 0.05).
# TOL = 1e-4 is 5x the worst seen; a real fault (a rank's gradients lost, counted twice, or
# normalised by its own token count) moves it by 1e-2 or more, which the control check shows.
set -u
B=${BUILD:-build/mpi}
LT=$B/loratune
DIFF=$B/tests/mpi_adapter_diff
TOL=1e-4
T=$(mktemp -d /tmp/lt_mpi.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
# OpenMPI refuses to run as root without these (CI containers run as root); one thread per
# rank keeps 2 ranks on 2 cores; --oversubscribe lets 2 ranks run on a 1-core machine.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN="mpirun --oversubscribe --bind-to none"
for f in "$LT" "$DIFF"; do [ -x "$f" ] || { echo "FAIL: $f missing (make MPI=1 BUILD=$B all)"; exit 1; }; done
command -v mpirun >/dev/null || { echo "FAIL: mpirun not found (apt-get install openmpi-bin)"; exit 1; }

F="--model tests/fixtures/llama/model --data tests/mpi/seq.ids.jsonl --seq 32 --batch 2
   --accum 4 --max-steps 10 --lr 5e-3 --r 4 --alpha 8 --seed 3 --quiet --val 8 --eval-every 5"
same() { # same NAME A B: adapters within TOL
    if out=$("$DIFF" "$2/adapter_model.safetensors" "$3/adapter_model.safetensors" "$TOL"); then
        ok "$1: $out"
    else
        bad "$1: $out"
    fi
}

# 1. one process vs 2 ranks (rank r computes micro-batches r, r+2) at the same global batch
# shellcheck disable=SC2086
$LT train $F --out "$T/one" >"$T/one.log" 2>&1 || { bad "single-process run"; cat "$T/one.log"; }
# shellcheck disable=SC2086
$MPIRUN -np 2 $LT train $F --out "$T/two" >"$T/two.log" 2>&1 || { bad "2-rank run"; cat "$T/two.log"; }
same "1 process vs 2 ranks, 10 steps" "$T/one" "$T/two"
# rank 0 alone prints and writes: one summary line, one metrics file with 10 steps + 2 evals
n=$(grep -c '^trained 10 steps' "$T/two.log")
[ "$n" = 1 ] && ok "2 ranks print one summary" || bad "2 ranks printed $n summaries"
n=$(wc -l < "$T/two/metrics.jsonl")
[ "$n" = 12 ] && ok "metrics.jsonl has 12 lines" || bad "metrics.jsonl has $n lines, not 12"
# global loss and validation loss: the same numbers as one process (to 4 decimals)
l1=$(sed -n 's/.*loss \([0-9.]*\) -> \([0-9.]*\), validation loss \([0-9.]*\).*/\1 \2 \3/p' "$T/one.log")
l2=$(sed -n 's/.*loss \([0-9.]*\) -> \([0-9.]*\), validation loss \([0-9.]*\).*/\1 \2 \3/p' "$T/two.log")
[ -n "$l1" ] && [ "$l1" = "$l2" ] && ok "losses agree: $l1" || bad "losses: 1 process '$l1', 2 ranks '$l2'"
# control: a different global batch must NOT pass the tolerance (the check can see a fault)
# shellcheck disable=SC2086
$MPIRUN -np 2 $LT train $F --accum 2 --out "$T/half" >"$T/half.log" 2>&1
if out=$("$DIFF" "$T/one/adapter_model.safetensors" "$T/half/adapter_model.safetensors" "$TOL")
then bad "control: half the global batch passed the tolerance: $out"
else ok "control: half the global batch is told apart: $out"; fi

# 2. a 2-rank run stopped after the checkpoint of step 5 (--stop-after: as if killed) and
#    resumed with 2 ranks ends bit-identical to the uninterrupted 2-rank run; resumed with 1
#    rank (from the 2-rank checkpoint) it agrees within TOL (steps 6..10 sum in another order)
for r in 2 1; do
    d="$T/res$r"
    # shellcheck disable=SC2086
    $MPIRUN -np 2 $LT train $F --save-every 5 --stop-after 5 --out "$d" >"$d.log1" 2>&1
    if [ -f "$d/checkpoint.safetensors" ] && [ ! -f "$d/adapter_model.safetensors" ]; then
        ok "stopped 2-rank run left a checkpoint and no adapter"
    else bad "stopped 2-rank run: files $(ls "$d" 2>/dev/null | tr '\n' ' ')"; cat "$d.log1"; fi
    # shellcheck disable=SC2086
    if [ $r = 2 ]; then $MPIRUN -np 2 $LT train $F --save-every 5 --resume --out "$d" >"$d.log2" 2>&1
    else $LT train $F --save-every 5 --resume --out "$d" >"$d.log2" 2>&1; fi
    # steps 1..5 and the eval of step 5 before the stop, 6..10 and the eval of step 10 after it
    n=$(grep -c '"step"' "$d/metrics.jsonl")
    [ "$n" = 12 ] && grep -q '"step": 6,' "$d/metrics.jsonl" && [ "$(grep -c '"step": 5,' "$d/metrics.jsonl")" = 2 ] \
        || { bad "resume ($r rank): metrics.jsonl has $n lines"; cat "$d.log2"; }
    if [ $r = 2 ]; then
        cmp -s "$T/two/adapter_model.safetensors" "$d/adapter_model.safetensors" \
            && ok "2-rank resume is bit-identical to the uninterrupted 2-rank run" \
            || { bad "2-rank resume differs from the uninterrupted run"; "$DIFF" "$T/two/adapter_model.safetensors" "$d/adapter_model.safetensors" 0; }
    else
        same "1-rank resume of a 2-rank checkpoint vs uninterrupted 2 ranks" "$T/two" "$d"
    fi
    [ ! -f "$d/checkpoint.safetensors" ] && ok "checkpoint removed after the run completed" \
        || bad "checkpoint left after the run completed"
done

# 3. classification (lt_cls_train: LoRA + head, validation every 10 steps with the best macro-F1
#    kept, a test set): 2 ranks pick the same best step with the same figures and end with the
#    same adapters (final and best/); a 2-rank run stopped at step 25 and resumed by 1 rank too
CLS=$B/tests/mpi_cls_train
$CLS "$T/c1" >"$T/c1.log" 2>&1 || { bad "classification, 1 process"; cat "$T/c1.log"; }
$MPIRUN -np 2 $CLS "$T/c2" >"$T/c2.log" 2>&1 || { bad "classification, 2 ranks"; cat "$T/c2.log"; }
$MPIRUN -np 2 $CLS "$T/c3" 25 >"$T/c3.log" 2>&1 && $CLS "$T/c3" 0 resume >"$T/c3b.log" 2>&1 \
    || { bad "classification, stopped and resumed"; cat "$T/c3.log" "$T/c3b.log"; }
r1=$(grep '^best step' "$T/c1.log"); r2=$(grep '^best step' "$T/c2.log"); r3=$(grep '^best step' "$T/c3b.log")
[ -n "$r1" ] && [ "$r1" = "$r2" ] && ok "classification, 1 process = 2 ranks: $r1" \
    || bad "classification results: 1 process '$r1', 2 ranks '$r2'"
[ -n "$r1" ] && [ "$r1" = "$r3" ] && ok "classification, 2 ranks stopped at 25 + 1 rank resumed: same results" \
    || bad "classification resumed: '$r3' against '$r1'"
same "classification adapter (best), 1 process vs 2 ranks" "$T/c1" "$T/c2"
same "classification adapter best/, 1 process vs 2 ranks" "$T/c1/best" "$T/c2/best"
same "classification adapter, 2 ranks stopped + 1 rank resumed vs 1 process" "$T/c1" "$T/c3"

# The command line of classification (train --task classify: splits, labels, report, best/) on
# the real stories260K (skipped without ../shared/data): 2 ranks print what 1 process prints.
S=../shared/data/models
if [ -f "$S/stories260K.bin" ] && [ -f "$S/tok512.bin" ]; then
    awk 'BEGIN { srand(1); split("good great happy nice fun love", p); split("bad sad angry ugly hate dull", q)
        split("the a cat dog", o); for (i = 0; i < 120; i++) { c = i % 2; s = c ? "pos" : "neg"
        for (j = 0; j < 6; j++) { r = int(rand() * 10); w = r < 6 ? (c ? p[r + 1] : q[r + 1]) : o[r - 5]
            s = s (j ? " " : "\t") w }
        print s } }' > "$T/cls.tsv"
    A="train --task classify --model $S/stories260K.bin --tokenizer $S/tok512.bin --data $T/cls.tsv
       --columns label,text --batch 4 --accum 2 --max-steps 20 --eval-every 10 --lr 1e-2 --seq 32 --quiet"
    # shellcheck disable=SC2086
    $LT $A --out "$T/cli1" >"$T/cli1.log" 2>&1 && $MPIRUN -np 2 $LT $A --out "$T/cli2" >"$T/cli2.log" 2>&1 \
        || { bad "train --task classify, 1 process or 2 ranks"; cat "$T/cli1.log" "$T/cli2.log"; }
    strip() { grep -v 'wall time\|examples/s\|training [0-9.]* s' "$1" | sed "s#$2#OUT#g"; }
    if [ "$(strip "$T/cli1.log" "$T/cli1")" = "$(strip "$T/cli2.log" "$T/cli2")" ]; then
        ok "train --task classify: 2 ranks print what 1 process prints ($(grep -c . "$T/cli2.log") lines)"
    else bad "train --task classify: outputs differ"; diff "$T/cli1.log" "$T/cli2.log" | head -n 20; fi
    same "train --task classify adapter, 1 process vs 2 ranks" "$T/cli1" "$T/cli2"
else
    echo "SKIP: train --task classify under mpirun needs $S/stories260K.bin and tok512.bin"
fi

# 4. a rank that fails stops the job with a message naming it; nothing half-written.
# MPMD: rank 1 is given a data file its machine does not have.
$MPIRUN -np 1 $LT train $F --out "$T/f1" : -np 1 $LT train $F --data "$T/missing.ids.jsonl" \
    --out "$T/f1" >"$T/f1.log" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q 'rank 1: .*missing.ids.jsonl' "$T/f1.log" && [ ! -f "$T/f1/adapter_model.safetensors" ]; then
    ok "rank 1's setup failure stops the job: $(grep 'rank 1' "$T/f1.log" | head -n 1)"
else bad "rank 1's setup failure (exit $rc)"; cat "$T/f1.log"; fi
# Every allocation of rank 1, then of rank 0 (which also writes the files), made to fail in turn
# during a 2-rank lt_train: each run stops both ranks with "rank F: ...", no hang (timeout),
# nothing half-written.
for f in 1 0; do
    mkdir -p "$T/oom$f"
    if out=$(timeout 300 $MPIRUN -np 2 "$B/tests/mpi_oom_sweep" "$T/oom$f" $f 2>&1); then
        ok "$(printf '%s\n' "$out" | grep '^oom sweep')"
    else bad "allocation failure sweep of rank $f"; printf '%s\n' "$out" | tail -n 20; fi
done
# A rank killed in the middle of training (SIGKILL, as the OOM killer does): mpirun stops the
# job naming the rank; the last checkpoint is whole and resumes.
d="$T/kill"
# shellcheck disable=SC2086
$MPIRUN -np 2 $LT train $F --max-steps 100000 --save-every 20 --out "$d" >"$d.log" 2>&1 &
mp=$!
i=0
while [ ! -f "$d/checkpoint.safetensors" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
victim=""
for p in $(pgrep -P $mp 2>/dev/null); do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && victim=$p
done
if [ -n "$victim" ]; then
    kill -9 "$victim"
    wait $mp; rc=$?
    if [ $rc -ne 0 ] && grep -qi 'rank 1' "$d.log" && [ ! -f "$d/adapter_model.safetensors" ]; then
        ok "killed rank 1 stops the job (exit $rc): $(grep -i 'rank 1' "$d.log" | head -n 1 | cut -c1-100)"
    else bad "killed rank 1 (exit $rc)"; cat "$d.log"; fi
    # the checkpoint is whole: one more step from it succeeds
    k=$(head -c 4096 "$d/checkpoint.safetensors" | tr ',' '\n' | sed -n 's/.*"step": *"\([0-9]*\)".*/\1/p')
    # shellcheck disable=SC2086
    if [ -n "$k" ] && $LT train $F --max-steps 100000 --save-every 20 --resume --stop-after $((k + 1)) \
        --out "$d" >"$d.log2" 2>&1 && grep -q "stopped after $((k + 1)) steps" "$d.log2"; then
        ok "the checkpoint of step $k left by the killed job resumes"
    else bad "resume after the kill (checkpoint step '$k')"; cat "$d.log2"; fi
else
    kill "$mp" 2>/dev/null; wait $mp 2>/dev/null
    bad "kill test: no checkpoint after 30 s or rank 1 not found"; cat "$d.log"
fi

# 5. two machines: network namespaces on this one, OpenMPI over TCP (root only; else skipped)
sh tests/mpi/run_netns.sh "$T/one" "$T/two" "$TOL" >"$T/ns.out" 2>&1; rc=$?
cat "$T/ns.out"
pass=$((pass + $(grep -c '^ok' "$T/ns.out"))); fail=$((fail + $(grep -c '^FAIL' "$T/ns.out")))
[ $rc -eq 0 ] || [ "$(grep -c '^FAIL' "$T/ns.out")" -gt 0 ] || bad "run_netns.sh exit $rc"

echo "mpi: $pass passed, $fail failed"
[ $fail -eq 0 ]
