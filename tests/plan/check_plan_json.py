#!/usr/bin/env python3
"""Reads `ftdist plan --json` on stdin and checks the stable schema (extra keys allowed)."""
import json
import sys

CATEGORIES = ["params_sharded", "master", "optimizer", "grads_sharded", "unsharded_params",
              "unsharded_grads", "activations", "logits", "comm_buffers", "overhead", "total"]
CANDIDATE = ["gpus", "nodes", "shard", "micro_batch", "grad_accum", "checkpointing",
             "memory_per_gpu_bytes", "host_memory_bytes", "host_memory", "gpu_memory_bytes", "fits", "time",
             "gpu_hours", "cost_usd"]
HOST = ["per_rank_load_peak_bytes", "per_rank_steady_bytes", "ranks_per_node", "per_node_load_peak_bytes",
        "per_node_steady_bytes"]


def check_host_memory(c, where):
    """Host memory per rank and node (`ftdist plan` plans GPU runs: loading adds the staging buffer)."""
    h = c["host_memory"]
    for k in HOST:
        assert k in h, f"{where}.host_memory: missing '{k}'"
        assert isinstance(h[k], int) and h[k] >= 0, f"{where}.host_memory.{k}: {h[k]!r}"
    if c["memory_per_gpu_bytes"]["total"] == 0:  # never laid out
        return
    rpn = h["ranks_per_node"]
    assert 1 <= rpn <= c["gpus"], f"{where}: ranks_per_node {rpn} for {c['gpus']} GPUs"
    assert c["gpus"] == rpn * c["nodes"], f"{where}: {c['gpus']} GPUs != {rpn} ranks/node x {c['nodes']} nodes"
    assert h["per_rank_steady_bytes"] > 0, f"{where}: no steady host memory"
    assert h["per_rank_load_peak_bytes"] >= h["per_rank_steady_bytes"], f"{where}: load peak below steady"
    assert h["per_node_load_peak_bytes"] == h["per_rank_load_peak_bytes"] * rpn, f"{where}: node load peak"
    assert h["per_node_steady_bytes"] == h["per_rank_steady_bytes"] * rpn, f"{where}: node steady"
    # The offloaded states live in host memory, so steady holds at least them.
    assert h["per_rank_steady_bytes"] >= c["host_memory_bytes"], f"{where}: steady below the offloaded states"


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
    check_host_memory(c, where)


def main():
    plan = json.load(sys.stdin)
    for k in ["name", "params_total", "layers", "hidden", "vocab"]:
        assert k in plan["model"], f"model: missing '{k}'"
    assert isinstance(plan["inputs"], dict)
    for k in ["examples", "tokens"]:  # counts: integers (10000, not 10000.0)
        assert isinstance(plan["inputs"][k], int), f"inputs.{k} = {plan['inputs'][k]!r}: expected an integer"
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
