#!/usr/bin/env bash
# bench/gpu_validate.sh — what only a GPU machine can show, in one run, with outputs in $OUT (or
# ./gpu-validate): the GPU build, the NCCL backend's tests and `bench comm --check`, the fused AdamW
# kernel test and benchmark next to torch's fused AdamW, the FSDP runtime's GPU tests, and
# `ftdist bench step` on one GPU (nccl, world size 1) for TinyLlama-1.1B in bf16-mixed: tokens/s,
# MFU and the caching allocator's peak next to the planner's (FTDIST_GPU: catalog name for MFU), and
# `ftdist bench load` to the GPU (seconds and host memory per rank next to the plan).
#
# Needs PyTorch with CUDA (python3), nvcc, cmake, ninja; OpenMPI and the header-only libraries come
# from the system or, on the device image (which has no OpenMPI), from Debian packages carried in
# .debs/: here `bash bench/gpu_fetch_debs.sh`, then the device call carries [".debs"] and runs
#   bash bench/gpu_validate.sh
# Exit status 0 only when the build has CUDA and NCCL and every GPU test ran (none skipped) and passed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-validate}"
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 FTDIST_COMM_TIMEOUT_S=60 NCCL_DEBUG=WARN
# shellcheck source=bench/gpu_env.sh
source bench/gpu_env.sh || exit 1
{
  cat /etc/os-release 2>/dev/null | head -2; ldd --version | head -1; g++ --version | head -1
  for t in nvcc cmake ninja pkg-config mpirun python3; do echo "$t: $(command -v $t || echo MISSING)"; done
  nvidia-smi || true
  # CUDA and NCCL are required here (AUTO would quietly build a CPU-only binary whose GPU tests skip).
  cmake -S . -B build-gpu -G Ninja -DFTDIST_CUDA=ON -DFTDIST_NCCL=ON -DFTDIST_PYTHON="$(command -v python3)" &&
    cmake --build build-gpu -j"$(nproc)"
} >"$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
echo "build: ok ($(grep -c . "$OUT/build.log") log lines)"
status=0
# The np2 forms of the GPU tests need two GPUs (NCCL puts one rank on each).
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU" || true)
skip=(); [ "${ngpu:-0}" -ge 2 ] || skip=(-E "cuda_np2")
ctest --test-dir build-gpu -R "nccl|cuda|optim|fsdp" "${skip[@]}" --timeout 150 --output-on-failure >"$OUT/ctest-gpu.log" 2>&1 || status=1
if grep -q "Skipped" "$OUT/ctest-gpu.log"; then echo "FAIL: a GPU test was skipped on the device"; status=1; fi
grep -E "tests passed|Skipped|Failed|Timeout" "$OUT/ctest-gpu.log"
timeout 120 launch/ftdist-mpirun -np 1 build-gpu/ftdist bench comm --backend nccl --check >"$OUT/bench-comm-nccl.txt" 2>&1 || status=1
timeout 120 build-gpu/bench/ftdist_bench_optim >"$OUT/bench-optim.txt" 2>&1 || status=1
timeout 120 python3 bench/optim_torch_fused.py >>"$OUT/bench-optim.txt" 2>&1 || status=1
for ck in none full; do
  timeout 180 launch/ftdist-mpirun -np 1 build-gpu/ftdist bench step --device cuda --model tinyllama-1.1b --precision bf16-mixed \
    --shard full --checkpointing "$ck" --micro-batch 4 --seq-len 2048 --steps 5 --warmup 2 --gpu "${FTDIST_GPU:-h100-80gb-sxm}" \
    >"$OUT/bench-step-1b-ckpt-$ck.txt" 2>&1 || status=1
done
# Loading to the GPU through the pinned staging buffer: seconds and host memory per rank vs the plan.
timeout 180 launch/ftdist-mpirun -np 1 build-gpu/ftdist bench load --device cuda --model tinyllama-1.1b \
  --precision bf16-mixed --shard full >"$OUT/bench-load-1b.txt" 2>&1 || status=1
tail -n 25 "$OUT"/*.txt
echo "gpu_validate: exit $status"
exit $status
