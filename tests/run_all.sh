#!/bin/sh
# Runs each test program given, collects the "N passed, N failed" totals, prints the overall
# line, and exits non-zero if any program failed or crashed.
pass=0; fail=0; bad=""
for t in "$@"; do
    out=$("$t" 2>"$t.stderr"); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    p=$(printf '%s' "$line" | sed -n 's/.* \([0-9][0-9]*\) passed.*/\1/p')
    f=$(printf '%s' "$line" | sed -n 's/.* \([0-9][0-9]*\) failed.*/\1/p')
    pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))
    skipped=$(grep -c '^SKIP' "$t.stderr" 2>/dev/null)
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        bad="$bad $t"; [ -z "$f" ] || [ "$f" -eq 0 ] && fail=$((fail + 1))
        echo "== $t: exit $rc"; tail -n 30 "$t.stderr"
    else
        echo "== $(basename "$t"): ${p:-0} passed, ${f:-0} failed$( [ "$skipped" -gt 0 ] && echo " ($skipped skipped)")"
        grep '^SKIP' "$t.stderr" | sed 's/^/   /'
    fi
done
echo "all: $pass passed, $fail failed"
[ -z "$bad" ] || { echo "failing:$bad"; exit 1; }
