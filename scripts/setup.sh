#!/usr/bin/env bash
# Installs the Debian packages loratune builds and tests with. Safe to run twice.
# Usage: scripts/setup.sh            (needs root or sudo)
set -euo pipefail
PKGS="build-essential pkg-config clang python3 python3-pip libopenblas-dev libopenblas-openmp-dev libcjson-dev libpcre2-dev libutf8proc-dev libomp-dev openmpi-bin libopenmpi-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq || { echo "setup: apt-get update failed (is the Debian mirror reachable?)" >&2; exit 1; }
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null \
        || { echo "setup: apt-get install failed for:$missing" >&2; exit 1; }
fi
echo "setup: system packages ok"
