#!/usr/bin/env python3
"""What a process holds on the GPU besides its tensors: the planner's `overhead` category
(plan::Overheads: the CUDA context, NCCL's buffers) measured with cudaMemGetInfo as each piece
arrives, in a fresh process on an idle GPU, through the same LibTorch and NCCL ftdist links:

  context      the first CUDA tensor (CUDA context, the kernels loaded lazily, the allocator's first block)
  + cuBLAS     a bf16 matrix product (cuBLAS handle and workspace)
  + NCCL       a one-rank NCCL process group and one all-reduce (communicator and its buffers)

Prints a table and one machine-readable line (bytes outside the caching allocator's pool that each
step added):
  OVERHEADS_RESULT {"context": bytes, "cublas": bytes, "nccl": bytes, "reserved": bytes}
Run on an otherwise idle GPU (the baseline is what the GPU has in use before the first tensor).

usage: python3 bench/gpu_overheads.py
"""
import json
import os

import torch
import torch.distributed as dist


def used():
    free, total = torch.cuda.mem_get_info()
    return total - free


def main():
    if not torch.cuda.is_available():
        raise SystemExit("gpu_overheads: no GPU")
    torch.cuda.set_device(0)
    # The GPU is idle before this process (a machine of its own), so the first row is the whole
    # context.
    steps = []
    x = torch.ones(1, device="cuda")
    torch.cuda.synchronize()
    steps.append(("context", used(), torch.cuda.memory_reserved()))
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    (a @ a).sum().item()
    steps.append(("cublas", used(), torch.cuda.memory_reserved()))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29512")
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=torch.device("cuda", 0))
    dist.all_reduce(x)
    torch.cuda.synchronize()
    steps.append(("nccl", used(), torch.cuda.memory_reserved()))
    # Outside the pool: what the GPU has in use less the caching allocator's reserved bytes (the
    # tensors), which the planner counts in its other categories.
    print(f"{'step':10s} {'GPU used GiB':>14s} {'pool GiB':>10s} {'outside the pool, added GiB':>28s}")
    prev = 0
    result = {}
    for name, u, r in steps:
        print(f"{name:10s} {u / 2**30:14.3f} {r / 2**30:10.3f} {(u - r - prev) / 2**30:28.3f}")
        result[name] = u - r - prev
        prev = u - r
    result["reserved"] = steps[-1][2]
    print("OVERHEADS_RESULT " + json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
