#!/usr/bin/env python3
"""torch.optim.AdamW(fused=True) on one flat fp32 parameter of each size, on the GPU: the PyTorch
column beside build/bench/ftdist_bench_optim's kernel rows. Bytes counted the same way (master,
exp_avg, exp_avg_sq read and written, fp32 gradient read; PyTorch writes no bf16 copy).

usage: python3 bench/optim_torch_fused.py [elements ...]
"""
import sys
import time

import torch


def main():
    sizes = [int(s) for s in sys.argv[1:]] or [1 << 20, 16 << 20, 64 << 20]
    print(f"{'device':6s} {'implementation':26s} {'elements':>12s} {'ms/step':>10s} {'elements/s':>14s} {'GB/s':>12s}")
    for n in sizes:
        p = torch.nn.Parameter(torch.randn(n, device="cuda"))
        p.grad = torch.randn(n, device="cuda")
        opt = torch.optim.AdamW([p], lr=1e-4, fused=True)
        opt.step()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        reps = 20
        for _ in range(reps):
            opt.step()
        torch.cuda.synchronize()
        t = (time.perf_counter() - t0) / reps
        print(f"{'cuda':6s} {'torch AdamW fused=True':26s} {n:12d} {t * 1e3:10.3f} {n / t:14.3e} {n * 28 / t / 1e9:12.1f}")


if __name__ == "__main__":
    main()
