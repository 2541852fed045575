#!/usr/bin/env bash
# bench/gpu_validate.sh — what only a GPU machine can show, in one run of a few minutes:
#   1. the GPU tests: the NCCL backend, the fused AdamW kernel, the FSDP runtime on CUDA (np2 forms
#      where the machine has two GPUs);
#   2. `ftdist bench comm --check` on NCCL; the CUDA context's and NCCL's bytes (bench/gpu_overheads.py);
#   3. `ftdist bench step` on one GPU for TinyLlama-1.1B in bf16-mixed (seq 2048, micro-batch 4,
#      checkpointing none and full): tokens/s, MFU, the caching allocator's peak allocated and
#      reserved next to the planner's figure; and the same model in PyTorch FSDP2 on the same card
#      (bench/fsdp2_step.py), with the ftdist/FSDP2 table (bench/gpu_compare.py);
#   4. the fused AdamW kernel vs torch.optim.AdamW(fused=True) and the device copy bandwidth;
#   5. `ftdist bench load` to the GPU; the bundled tiny run on the GPU in bf16-mixed: train with
#      checkpoints, resume, export.
# `bash bench/gpu_validate.sh [SECTION ...]` runs the sections named (tests, comm, step, optim, train,
# and planner: the planner's bytes against the GPU's over other models and settings), by default all
# but planner. Each step has its own time limit. $OUT (default ./gpu-validate) receives summary.txt (one line a
# step, the failures' tails, the tables) and logs.tgz (every step's whole log), kept current after
# each step, so a run cut short still returns what it did.
#
# The binaries come prebuilt from .gpu-bin/ (bench/gpu_prebuild.sh, run on the development machine),
# loaded against this machine's own torch libraries; when they are missing, don't load, or were
# built against another torch version, bench/gpu_prebuild.sh builds them here (several minutes).
# OpenMPI and the other system libraries come from the system or from .debs/ (bench/gpu_env.sh).
# On the development machine, before the device call:
#   bash bench/gpu_fetch_debs.sh && bash bench/gpu_prebuild.sh
# and the device call carries [".debs", ".gpu-bin"] and runs  bash bench/gpu_validate.sh
# Exit status 0 only when every step ran and passed and no GPU test skipped itself.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-validate}"
mkdir -p "$OUT"
LOGS="$(mktemp -d /tmp/gpu-validate.XXXXXX)"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 FTDIST_COMM_TIMEOUT_S=60 NCCL_DEBUG=WARN
PY="${FTDIST_PYTHON:-python3}"  # the Python with torch (the GPU image: python3)
export FTDIST_GPU_CATALOG="$PWD/cluster/gpus.toml" PYTHONUNBUFFERED=1
status=0

say() { echo "$*" | tee -a "$SUMMARY"; }
pack() { tar czf "$OUT/logs.tgz" -C "$LOGS" . 2>/dev/null || true; }
# step NAME LIMIT_S COMMAND...: runs COMMAND under its own time limit, its output in $LOGS/NAME.log,
# and says one line: ok, or FAIL with why and the log's tail. A GPU test that skips itself fails.
step() {
  local name=$1 limit=$2 started=$SECONDS rc verdict=ok
  shift 2
  timeout -k 10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    verdict="FAIL (killed: ${limit}s limit or memory)"
  elif [ $rc -ne 0 ]; then
    verdict="FAIL (exit $rc)"
  elif grep -q "\[  SKIPPED \]" "$LOGS/$name.log"; then
    verdict="FAIL (a test skipped itself on the GPU)"
    rc=1
  fi
  [ $rc -eq 0 ] || status=1
  say "$(printf '%-26s %-36s %4ds' "$name" "$verdict" $((SECONDS - started)))"
  if [ $rc -ne 0 ]; then tail -n 40 "$LOGS/$name.log" | sed 's/^/    | /' | tee -a "$SUMMARY"; fi
  pack
  return $rc
}
# show NAME [LINES]: a step's log tail into the summary (the benchmarks' tables).
show() { [ -f "$LOGS/$1.log" ] && { say "---- $1"; tail -n "${2:-25}" "$LOGS/$1.log" | tee -a "$SUMMARY"; }; }

# ---- the machine, OpenMPI, torch's libraries -----------------------------------------------------
# shellcheck source=bench/gpu_env.sh
source bench/gpu_env.sh >"$LOGS/env.log" 2>&1 || { cat "$LOGS/env.log"; exit 1; }
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)')"
TORCH_DIR="$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
# The loader finds LibTorch, NCCL, cuBLAS, cuDNN... where this machine's torch keeps them.
libs="$TORCH_DIR/lib"
for d in "$(dirname "$TORCH_DIR")"/nvidia/*/lib "$(dirname "$TORCH_DIR")"/nvidia/cu*/lib /usr/local/cuda/lib64; do
  [ -d "$d" ] && libs="$libs:$d"
done
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
GPU_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
NGPU="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
case "$GPU_NAME" in  # the catalog entry (cluster/gpus.toml) whose bf16 peak MFU divides by
  *H200*) gpu=h200 ;; *H100*PCIe*) gpu=h100-80gb-pcie ;; *H100*) gpu=h100-80gb-sxm ;;
  *A100*80GB*) gpu=a100-80gb ;; *A100*) gpu=a100-40gb ;; *B200*) gpu=b200 ;; *L40S*) gpu=l40s ;; *L4*) gpu=l4 ;;
  *) gpu="" ;;
esac
FTDIST_GPU="${FTDIST_GPU:-$gpu}"
say "gpu_validate: $(date -u +%Y-%m-%dT%H:%M:%SZ), ${NGPU:-0} x ${GPU_NAME:-no GPU} (catalog: ${FTDIST_GPU:-none}), torch $TORCH_VERSION, $(grep -m1 PRETTY_NAME /etc/os-release | cut -d= -f2)"
nvidia-smi >>"$LOGS/env.log" 2>&1 || true

# ---- the binaries: carried, else built here ------------------------------------------------------
BIN=.gpu-bin
prebuilt_usable() {
  [ -x "$BIN/ftdist" ] || { say "prebuilt: no $BIN/ftdist"; return 1; }
  local built_for
  built_for="$(sed -n 's/^torch=//p' "$BIN/MANIFEST")"
  [ "$built_for" = "$TORCH_VERSION" ] || { say "prebuilt: built for torch $built_for, this machine has $TORCH_VERSION"; return 1; }
  local missing
  missing="$(for f in "$BIN/ftdist" "$BIN"/tests/* "$BIN"/bench/*; do ldd "$f" | grep "not found"; done | sort -u)"
  [ -z "$missing" ] || { say "prebuilt: libraries not found: $(echo $missing)"; return 1; }
}
if prebuilt_usable; then
  say "prebuilt: $(tr '\n' ' ' <"$BIN/MANIFEST")"
else
  step build-here 480 env FTDIST_GPU_BUILD_DIR=build-gpu FTDIST_PYTHON="$(command -v "$PY")" bash bench/gpu_prebuild.sh ||
    { echo "gpu_validate: exit 1"; exit 1; }
fi
mkdir -p "$(sed -n 's/^test_tmp=//p' "$BIN/MANIFEST")"
MPI=launch/ftdist-mpirun

# ---- 1. the GPU tests ----------------------------------------------------------------------------
section_tests() {
  step test-comm-nccl-np1 90 $MPI -np 1 "$BIN/tests/ftdist_comm_nccl_tests"
  step test-optim-cuda-kernel 90 "$BIN/tests/ftdist_optim_tests" --gtest_filter='FusedAdamWKernel.*:AdamW8bitKernel.*'
  step test-fsdp-cuda-np1 150 $MPI -np 1 "$BIN/tests/ftdist_fsdp_cuda_tests"
  if [ "${NGPU:-0}" -ge 2 ]; then
    step test-comm-nccl-np2 120 $MPI -np 2 "$BIN/tests/ftdist_comm_nccl_tests"
    step test-fsdp-cuda-np2 240 $MPI -np 2 "$BIN/tests/ftdist_fsdp_cuda_tests"
  else
    say "test-*-np2: not run (NCCL puts one rank on each GPU; this machine has ${NGPU:-0})"
  fi
}

# ---- 2. NCCL collectives, checked; what a process holds outside its tensors ---------------------
section_comm() {
  step bench-comm-nccl 90 $MPI -np 1 "$BIN/ftdist" bench comm --backend nccl --check
  step gpu-overheads 60 "$PY" bench/gpu_overheads.py
  show bench-comm-nccl 30
  show gpu-overheads 6
}

# ---- 3. TinyLlama-1.1B steps: ftdist, then FSDP2 on the same card --------------------------------
section_step() {
  local shape=(--micro-batch 4 --seq-len 2048 --steps 5 --warmup 2) ck
  for ck in none full; do
    step "step-ftdist-ckpt-$ck" 150 $MPI -np 1 "$BIN/ftdist" bench step --device cuda --model tinyllama-1.1b \
      --precision bf16-mixed --shard full --checkpointing "$ck" "${shape[@]}" ${FTDIST_GPU:+--gpu "$FTDIST_GPU"}
  done
  for ck in none full; do
    step "step-fsdp2-ckpt-$ck" 150 "$PY" bench/fsdp2_step.py --preset tinyllama-1.1b --checkpointing "$ck" "${shape[@]}"
  done
  python3 bench/gpu_compare.py "$LOGS" 2>&1 | tee -a "$SUMMARY"
  show step-ftdist-ckpt-none 20
}

# ---- 4. the optimizer kernel beside PyTorch's fused AdamW ----------------------------------------
section_optim() {
  step bench-optim 90 "$BIN/bench/ftdist_bench_optim"
  step bench-optim-torch 90 "$PY" bench/optim_torch_fused.py
  show bench-optim 12
  show bench-optim-torch 6
}

# ---- 5. loading to the GPU; a whole training run on it: checkpoint, resume, export ---------------
section_train() {
  step bench-load 120 $MPI -np 1 "$BIN/ftdist" bench load --device cuda --model tinyllama-1.1b --precision bf16-mixed --shard full
  show bench-load 15
  rm -rf /tmp/gpu-validate-train
  local run=(--config examples/tiny/ftdist.toml --set parallel.device=cuda --set parallel.precision=bf16-mixed
    --set output.dir=/tmp/gpu-validate-train --set checkpoint.every=100 --set train.log_every=50)
  step train-tiny-gpu 120 $MPI -np 1 "$BIN/ftdist" train "${run[@]}" --set train.steps=200
  step train-tiny-gpu-resume 120 $MPI -np 1 "$BIN/ftdist" train "${run[@]}" --set train.steps=250 --set checkpoint.resume=true
  step export-tiny 60 "$BIN/ftdist" export --checkpoint /tmp/gpu-validate-train/checkpoints --out /tmp/gpu-validate-train/hf
  show train-tiny-gpu 6
  show train-tiny-gpu-resume 4
}

# ---- planner (not in the default run): the planner's bytes against the GPU's over other shapes ----
# Vocabularies of 32k to 152k, grouped and full multi-head attention, a sliding window shorter than
# the sequence (the masked kernel), qkv biases and tied embeddings, fp32 / bf16-mixed / bf16-pure,
# activation checkpointing and no_sync accumulation; layers cut so that each loads in seconds.
section_planner() {
  local common=(bench step --device cuda --shard full --steps 2 --warmup 1)
  step plan-llama3-8b-l4 120 $MPI -np 1 "$BIN/ftdist" "${common[@]}" --model llama-3-8b --layers 4 --precision bf16-mixed --micro-batch 2 --seq-len 4096
  step plan-mistral-7b-l4-window 120 $MPI -np 1 "$BIN/ftdist" "${common[@]}" --model mistral-7b --layers 4 --precision bf16-mixed --micro-batch 1 --seq-len 8192
  step plan-qwen2.5-1.5b-l8-pure 120 $MPI -np 1 "$BIN/ftdist" "${common[@]}" --model qwen2.5-1.5b --layers 8 --precision bf16-pure --micro-batch 4 --seq-len 2048
  step plan-tinyllama-l8-fp32 120 $MPI -np 1 "$BIN/ftdist" "${common[@]}" --model tinyllama-1.1b --layers 8 --precision fp32 --micro-batch 2 --seq-len 1024
  step plan-llama2-7b-l4-ckpt-nosync 120 $MPI -np 1 "$BIN/ftdist" "${common[@]}" --model llama-2-7b --layers 4 --precision bf16-mixed --micro-batch 2 --seq-len 4096 --checkpointing full --grad-accum 2 --no-sync
  python3 bench/gpu_compare.py --planner "$LOGS" 2>&1 | tee -a "$SUMMARY"
}

SECTIONS=("$@")
[ ${#SECTIONS[@]} -gt 0 ] || SECTIONS=(tests comm step optim train)
for s in "${SECTIONS[@]}"; do
  case "$s" in
    tests | comm | step | optim | train | planner) "section_$s" ;;
    *) say "gpu_validate: unknown section '$s' (tests, comm, step, optim, train, planner)"; status=1 ;;
  esac
done
pack
say "gpu_validate: exit $status after ${SECONDS}s"
exit $status
