#!/usr/bin/env python3
"""Reads `ftdist plan --json` on stdin and checks the stable schema (extra keys allowed)."""
import json
import sys

CATEGORIES = ["params_sharded", "master", "optimizer", "grads_sharded", "unsharded_params",
              "unsharded_grads", "activations", "logits", "comm_buffers", "overhead", "total"]
CANDIDATE = ["gpus", "nodes", "shard", "micro_batch", "grad_accum", "checkpointing",
             "memory_per_gpu_bytes", "gpu_memory_bytes", "fits", "time", "gpu_hours", "cost_usd"]


def check_candidate(c, where):
    for k in CANDIDATE:
        assert k in c, f"{where}: missing '{k}'"
    for k in CATEGORIES:
        assert k in c["memory_per_gpu_bytes"], f"{where}.memory_per_gpu_bytes: missing '{k}'"
    mem = c["memory_per_gpu_bytes"]
    assert mem["total"] == sum(mem[k] for k in CATEGORIES[:-1]), f"{where}: total is not the sum"
    for k in ["step_s", "tokens_per_s", "total_s", "epoch_s"]:
        assert k in c["time"], f"{where}.time: missing '{k}'"
    assert c["shard"] in ("full", "grad-op", "optimizer", "none", "hybrid"), c["shard"]


def main():
    plan = json.load(sys.stdin)
    for k in ["name", "params_total", "layers", "hidden", "vocab"]:
        assert k in plan["model"], f"model: missing '{k}'"
    assert isinstance(plan["inputs"], dict)
    rec = plan["recommendation"]
    assert rec is not None, "expected a recommendation"
    check_candidate(rec, "recommendation")
    assert rec["fits"] is True and "rejected_because" not in rec
    assert plan["candidates"], "no candidates"
    for i, c in enumerate(plan["candidates"]):
        check_candidate(c, f"candidates[{i}]")
        assert c["fits"] == (c["memory_per_gpu_bytes"]["total"] <= c["usable_memory_bytes"]) or "rejected_because" in c
    rejected = sum("rejected_because" in c for c in plan["candidates"])
    assert rejected == len(plan["candidates"]) - 1, "every candidate but the recommendation says why it lost"
    print(f"schema ok: {len(plan['candidates'])} candidates")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
