#!/usr/bin/env bash
# bench/gpu_validate.sh — what only a GPU machine can show, in one run, with outputs in $OUT (or
# ./gpu-validate): the GPU build, the NCCL backend's tests and `bench comm --check`, the fused AdamW
# kernel test and benchmark next to torch's fused AdamW, the FSDP runtime's GPU tests, and
# `ftdist bench step` on one GPU (nccl, world size 1) for TinyLlama-1.1B in bf16-mixed: tokens/s,
# MFU and the caching allocator's peak next to the planner's (FTDIST_GPU: catalog name for MFU).
# Needs: PyTorch with CUDA (python3), nvcc, cmake, ninja, and OpenMPI + the header-only libraries
# (cxxopts, nlohmann-json, toml++, GoogleTest) — on a machine without package access, unpack their
# Debian packages first and point CMAKE_PREFIX_PATH / OPAL_PREFIX at them.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-validate}"
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
{
  nvidia-smi || true
  cmake -S . -B build-gpu -G Ninja -DFTDIST_PYTHON="$(command -v python3)" && cmake --build build-gpu -j"$(nproc)"
} >"$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
ctest --test-dir build-gpu -R "nccl|cuda|optim|fsdp" --output-on-failure >"$OUT/ctest-gpu.log" 2>&1
launch/ftdist-mpirun -np 1 build-gpu/ftdist bench comm --backend nccl --check >"$OUT/bench-comm-nccl.txt" 2>&1
build-gpu/bench/ftdist_bench_optim >"$OUT/bench-optim.txt" 2>&1
python3 bench/optim_torch_fused.py >>"$OUT/bench-optim.txt" 2>&1
for ck in none full; do
  launch/ftdist-mpirun -np 1 build-gpu/ftdist bench step --device cuda --model tinyllama-1.1b --precision bf16-mixed \
    --shard full --checkpointing "$ck" --micro-batch 4 --seq-len 2048 --steps 5 --warmup 2 --gpu "${FTDIST_GPU:-h100-80gb-sxm}" \
    >"$OUT/bench-step-1b-ckpt-$ck.txt" 2>&1
done
tail -n 5 "$OUT"/*.log "$OUT"/*.txt
