#!/bin/sh
# run_train_bench.sh - LoRA training throughput of loratune beside torch + PEFT, same machine,
# same run, one process at a time (never concurrently: they would share the 2 cores).
#
# For each config (A B C, or those given as arguments): make sure the random HF model exists
# (python bench/train_ref.py <cfg> --make-only, cached in /tmp/lt_bench/<cfg>), run the torch
# reference, then loratune's bench_train on the same directory, and print both JSON lines plus a
# summary line {"config", "speedup" (loratune / torch tokens/s), "rss_ratio" (loratune / torch
# peak RSS), "sgemm_frac"}. Every line is appended to bench/results/<UTC date>.jsonl.
#
# The cores may be shared with other work (builds, tests). Before each run the script waits until
# the machine has been quiet (busy < QUIET_MAX of all cores over a 2 s sample) for up to
# QUIET_WAIT seconds, then runs anyway; each JSON line carries cpu_other, the fraction of the
# machine other processes used during the timed steps (and cpu_steal, the host's), so a
# disturbed measurement can be recognised: a run whose cpu_other exceeds OTHER_MAX is repeated,
# up to TRIES runs, and the least disturbed one is kept; the summary says "disturbed": true when
# even that one exceeded OTHER_MAX (its ratio is then not to be trusted).
#
# COMPUTE=bf16: loratune runs with --compute bf16 (frozen-weight matmuls in bf16, f32
# accumulation, AMX when present) and, besides the f32 torch reference, torch is also run under
# torch.autocast(bf16) (train_ref.py --autocast); the summary then adds "compute",
# "speedup_vs_autocast" and "torch_autocast_tokens_per_s". (Default COMPUTE=f32: as before.)
#
# Environment: STEPS (timed steps, default 3, at least 3), PYTHON (default python3),
# LT_BENCH_DIR (default /tmp/lt_bench), BUILD (default build), NOMAKE=1 (do not rebuild),
# QUIET_MAX (default 0.15),
# QUIET_WAIT (default 300; 0 disables the wait), OTHER_MAX (default 0.05), TRIES (default 3).
# Run from anywhere; it changes to the repository root. Exits non-zero if any run fails.
set -eu

cd "$(dirname "$0")/.."
STEPS=${STEPS:-3}
COMPUTE=${COMPUTE:-f32}
case "$COMPUTE" in f32|bf16) ;; *) echo "run_train_bench: COMPUTE must be f32 or bf16" >&2; exit 2 ;; esac
PYTHON=${PYTHON:-python3}
BUILD=${BUILD:-build}
ROOT=${LT_BENCH_DIR:-/tmp/lt_bench}
BIN="$BUILD/bench/bench_train"
OUT="bench/results/$(date -u +%Y-%m-%d).jsonl"
mkdir -p bench/results

[ $# -gt 0 ] || set -- A B C S

# NOMAKE=1 uses the binary as it is (e.g. while someone else's half-edited file breaks the build).
[ "${NOMAKE:-0}" = 1 ] || make -s "$BIN" >&2
[ -x "$BIN" ] || { echo "run_train_bench: $BIN missing (run make $BIN)" >&2; exit 1; }
# The commit the binary was built from (the tree may move on while the script runs).
if [ -z "${LT_COMMIT:-}" ]; then
    LT_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -z "$(git status --porcelain 2>/dev/null | head -1)" ] || LT_COMMIT="$LT_COMMIT-dirty"
    export LT_COMMIT
fi

QUIET_MAX=${QUIET_MAX:-0.15}
QUIET_WAIT=${QUIET_WAIT:-300}
OTHER_MAX=${OTHER_MAX:-0.05}
TRIES=${TRIES:-3}

busy_frac() { # fraction of all cores busy over a 2 s sample
    a=$(head -1 /proc/stat); sleep 2; b=$(head -1 /proc/stat)
    echo "$a $b" | awk '{ # fields 2..11 then 13..22
        ba = $2+$3+$4+$7+$8; ta = ba+$5+$6+$9;
        bb = $13+$14+$15+$18+$19; tb = bb+$16+$17+$20;
        if (tb > ta) printf "%.3f", (bb-ba)/(tb-ta); else print 0 }'
}

wait_quiet() {
    [ "$QUIET_WAIT" -gt 0 ] || return 0
    start=$(date +%s)
    while :; do
        f=$(busy_frac)
        if awk -v f="$f" -v m="$QUIET_MAX" 'BEGIN { exit !(f <= m) }'; then return 0; fi
        if [ $(( $(date +%s) - start )) -ge "$QUIET_WAIT" ]; then
            echo "run_train_bench: machine still busy ($f of the cores) after ${QUIET_WAIT}s; running anyway" >&2
            return 0
        fi
        echo "run_train_bench: machine busy ($f of the cores), waiting" >&2
        sleep 5
    done
}

emit() { # prints a line and appends it to the results file
    printf '%s\n' "$1"
    printf '%s\n' "$1" >> "$OUT"
}

# field <json> <key>: a number or string value of a flat JSON line (enough for our own lines)
field() {
    "$PYTHON" -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
}

# run_measured <label> <command...>: runs a benchmark (after waiting for a quiet machine) up to
# TRIES times until its cpu_other is <= OTHER_MAX; prints the least disturbed JSON line.
run_measured() {
    label=$1; shift
    best=""; best_other=""
    i=0
    while [ "$i" -lt "$TRIES" ]; do
        i=$((i + 1))
        wait_quiet
        echo "== $label (try $i)" >&2
        line=$("$@") || return 1
        other=$(field "$line" cpu_other)
        [ -n "$other" ] || other=0
        if [ -z "$best" ] || awk -v a="$other" -v b="$best_other" 'BEGIN { exit !(a < b) }'; then
            best=$line; best_other=$other
        fi
        if awk -v a="$other" -v m="$OTHER_MAX" 'BEGIN { exit !(a <= m) }'; then break; fi
        echo "run_train_bench: $label disturbed (cpu_other $other > $OTHER_MAX)" >&2
    done
    printf '%s\n' "$best"
}

status=0
for cfg in "$@"; do
    case "$cfg" in A|B|C|S) ;; *) echo "run_train_bench: unknown config $cfg" >&2; status=1; continue ;; esac
    dir="$ROOT/$cfg"
    # S: the real SmolLM2-135M-Instruct GGUF (Q4_1; torch trains transformers' f32 dequantisation)
    [ "$cfg" = S ] && dir="$(bash scripts/fetch_smollm2.sh)"
    "$PYTHON" bench/train_ref.py "$cfg" --dir "$dir" --make-only
    ref=$(run_measured "$cfg: torch+peft" "$PYTHON" bench/train_ref.py "$cfg" --dir "$dir" \
          --steps "$STEPS") || { status=1; continue; }
    emit "$ref"
    ac="{}"
    if [ "$COMPUTE" = bf16 ]; then
        ac=$(run_measured "$cfg: torch+peft autocast bf16" "$PYTHON" bench/train_ref.py "$cfg" \
             --dir "$dir" --steps "$STEPS" --autocast) || { status=1; continue; }
        emit "$ac"
    fi
    lt=$(run_measured "$cfg: loratune ($COMPUTE)" "$BIN" "$cfg" "$dir" --steps "$STEPS" \
         --compute "$COMPUTE") || { status=1; continue; }
    emit "$lt"
    summary=$("$PYTHON" - "$ref" "$lt" "$OTHER_MAX" "$ac" <<'EOF'
import json, sys
ref, lt, om = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
ac = json.loads(sys.argv[4])
others = [ref.get("cpu_other", 0.0), lt.get("cpu_other", 0.0)] + (
    [ac.get("cpu_other", 0.0)] if ac else [])
extra = {}
if ac:
    extra = {"speedup_vs_autocast": round(lt["tokens_per_s"] / ac["tokens_per_s"], 3),
             "torch_autocast_tokens_per_s": ac["tokens_per_s"],
             "torch_autocast_peak_rss_mb": ac["peak_rss_mb"]}
print(json.dumps({
    "config": lt["config"], "compute": lt.get("compute", "f32"),
    "speedup": round(lt["tokens_per_s"] / ref["tokens_per_s"], 3),
    "rss_ratio": round(lt["peak_rss_mb"] / ref["peak_rss_mb"], 3),
    "sgemm_frac": lt.get("sgemm_frac"),
    "torch_tokens_per_s": ref["tokens_per_s"], "loratune_tokens_per_s": lt["tokens_per_s"],
    "torch_peak_rss_mb": ref["peak_rss_mb"], "loratune_peak_rss_mb": lt["peak_rss_mb"],
    "cpu_other": others, "disturbed": any(o > om for o in others),
    "commit": lt.get("commit"), "torch": ref.get("torch"), **extra,
}))
EOF
)
    emit "$summary"
done
exit $status
