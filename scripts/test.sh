#!/usr/bin/env bash
# Sets up (Debian packages) and runs every test: the normal build with -Werror, then the same
# suites under AddressSanitizer + UndefinedBehaviorSanitizer, then a build without OpenMP, a
# clang build, and data-parallel training with OpenMPI (tests/mpi/run_mpi.sh). Exits non-zero on
# any failure. Tests that need ../shared/data or the SmolLM2 model skip with a message when those
# are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the real model of the SmolLM2 tests (they skip with a message if it cannot be fetched)
bash scripts/fetch_smollm2.sh >/dev/null || echo "warning: SmolLM2 could not be fetched; its tests will skip"
jobs=$(nproc 2>/dev/null || echo 2)
echo "== gcc -O2 -Werror"
make -j"$jobs" WERROR=1 all
make WERROR=1 test
echo "== ASan + UBSan"
make -j"$jobs" BUILD=build/asan OPT=-O1 SAN=address,undefined WERROR=1 all
ASAN_OPTIONS=detect_leaks=1 make BUILD=build/asan OPT=-O1 SAN=address,undefined WERROR=1 test
echo "== NO_OMP=1"
make -j"$jobs" BUILD=build/noomp NO_OMP=1 WERROR=1 all
make BUILD=build/noomp NO_OMP=1 WERROR=1 test
echo "== clang"
make -j"$jobs" BUILD=build/clang CC=clang WERROR=1 all
echo "== MPI: 1 process vs mpirun -np 2, resume, failures"
make -j"$jobs" BUILD=build/mpi MPI=1 WERROR=1 all
make BUILD=build/mpi MPI=1 WERROR=1 test-mpi
# the same under ASan + UBSan; leak checking off: OpenMPI's init leaves ~120 KB of its own plugin
# allocations at exit (no frame of loratune among them)
ASAN_OPTIONS=detect_leaks=0 make BUILD=build/asan OPT=-O1 SAN=address,undefined MPI=1 WERROR=1 test-mpi
echo "all test suites passed"
