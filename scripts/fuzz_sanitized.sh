#!/usr/bin/env bash
# The fuzz suite's LibTorch-free parsers (config.json, JSONL lines, the token file, tokenizer.json) built with
# AddressSanitizer and UndefinedBehaviorSanitizer (FTDIST_SANITIZE=ON) in build-sanitize/, run for
# FTDIST_FUZZ_CASES cases per parser (default 3000): any memory error or undefined behaviour fails.
# Run after scripts/setup.sh (it reuses .venv and the packages); CI runs it after the test suite.
#   bash scripts/fuzz_sanitized.sh            # or FTDIST_FUZZ_CASES=100000 for a longer run
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=build-sanitize
PY="$PWD/.venv/bin/python"
[ -x "$PY" ] || { echo "fuzz_sanitized: run scripts/setup.sh first (.venv missing)" >&2; exit 2; }
CUDA_ARG=""
command -v nvcc >/dev/null || CUDA_ARG="-DFTDIST_CUDA=OFF"
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -G Ninja -DFTDIST_PYTHON="$PY" -DFTDIST_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo $CUDA_ARG \
  >"$BUILD_DIR.configure.log" 2>&1 || { cat "$BUILD_DIR.configure.log" >&2; exit 1; }
cmake --build "$BUILD_DIR" -j "$(nproc)" --target ftdist_fuzz_text_tests
export FTDIST_FUZZ_CASES="${FTDIST_FUZZ_CASES:-3000}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
"$BUILD_DIR/tests/ftdist_fuzz_text_tests"
echo "fuzz_sanitized: no sanitizer report in $((FTDIST_FUZZ_CASES * 4)) cases"
