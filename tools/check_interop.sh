#!/usr/bin/env bash
# Interop loratune -> PEFT: the golden test trains each family's adapter for 10 steps and writes
# it with its logits (LT_DUMP_DIR); PEFT then loads each adapter onto the same base and must give
# the same logits. Needs torch, transformers, peft (pip). Run from the repository root after make.
set -euo pipefail
dir=$(mktemp -d)
LT_DUMP_DIR="$dir" ./build/tests/test_golden_llama > /dev/null 2>&1
for fam in llama mistral qwen2 gpt2 gpt_neox; do
    python3 tools/check_peft_adapter.py "tests/fixtures/$fam" "$dir/$fam" --logits "$dir/$fam/logits.safetensors"
done
rm -rf "$dir"
