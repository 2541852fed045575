#!/usr/bin/env bash
# bench/gpu_prebuild.sh — builds what the GPU validation runs (ftdist, the GPU test binaries, the
# optimizer bench) with CUDA and NCCL, and copies them stripped into .gpu-bin/ (ignored by git, ~6 MB)
# with a MANIFEST: the commit, the LibTorch version they link, the test binaries' scratch folder.
# Run it HERE before a device call (CUDA 13 toolkit, the pinned torch in .venv: the same versions as
# the GPU image), then carry [".debs", ".gpu-bin"]: bench/gpu_validate.sh runs these binaries with
# the loader pointed at the GPU machine's own torch. bench/gpu_validate.sh also runs this script
# there, as its fallback, when the carried binaries don't load or were built against another torch.
#
#   bash bench/gpu_prebuild.sh                           # from build/ when it has CUDA, NCCL and kernels, else build-gpu/
#   FTDIST_GPU_BUILD_DIR=build-gpu bash bench/gpu_prebuild.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(ftdist ftdist_comm_nccl_tests ftdist_optim_tests ftdist_fsdp_cuda_tests ftdist_bench_optim)
DEST=.gpu-bin
PY="${FTDIST_PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3)}"

# A build folder is usable when its compile commands carry both CUDA and NCCL and the kernels exist.
has_gpu_code() {
  [ -f "$1/compile_commands.json" ] && grep -q -- "-DFTDIST_WITH_NCCL=1" "$1/compile_commands.json" &&
    grep -q -- "-DFTDIST_WITH_CUDA=1" "$1/compile_commands.json" && [ -d "$1/kernels" ]
}
B="${FTDIST_GPU_BUILD_DIR:-}"
if [ -z "$B" ]; then
  if has_gpu_code build; then B=build; else B=build-gpu; fi
fi
if ! has_gpu_code "$B"; then
  # ON, not AUTO: a build without CUDA or NCCL must fail here, not skip every GPU test there.
  cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFTDIST_CUDA=ON -DFTDIST_NCCL=ON -DFTDIST_PYTHON="$PY"
fi
has_gpu_code "$B" || { echo "gpu_prebuild: $B has no CUDA/NCCL build (see its configure output)" >&2; exit 1; }
echo "gpu_prebuild: building ${TARGETS[*]} in $B"
cmake --build "$B" --target "${TARGETS[@]}" -j"$(nproc)"

rm -rf "$DEST"
mkdir -p "$DEST/tests" "$DEST/bench"
strip -o "$DEST/ftdist" "$B/ftdist"
for t in "${TARGETS[@]}"; do
  case "$t" in
    ftdist) ;;
    ftdist_bench_*) strip -o "$DEST/bench/$t" "$B/bench/$t" ;;
    *) strip -o "$DEST/tests/$t" "$B/tests/$t" ;;
  esac
done
commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD 2>/dev/null || commit="$commit+uncommitted"
{
  echo "commit=$commit"
  echo "torch=$("$PY" -c 'import torch; print(torch.__version__)')"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m) ($(. /etc/os-release && echo "$PRETTY_NAME"))"
  # The folder compiled into the test binaries (FTDIST_TEST_TMP): created there before they run.
  echo "test_tmp=$(cd "$B/tests" && pwd)/tmp"
} >"$DEST/MANIFEST"
cat "$DEST/MANIFEST"
du -sh "$DEST"
