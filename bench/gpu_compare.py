#!/usr/bin/env python3
"""ftdist beside PyTorch FSDP2 on the same card: reads the logs bench/gpu_validate.sh wrote
(step-ftdist-ckpt-{none,full}.log from `ftdist bench step`, step-fsdp2-ckpt-{none,full}.log from
bench/fsdp2_step.py) and prints one table: tokens/s, MFU, peak allocated and reserved, the GPU's
memory in use, the planner's figures, and the ftdist/FSDP2 ratios.

FSDP2's MFU uses ftdist's FLOPs per token (the same model and sequence length), so the two MFU
columns compare as the tokens/s do.

With --planner: one row per plan-*.log (`ftdist bench step` over other models and settings): the
planner's peak allocated, saved activations and total against the GPU's, and whether the plan
covered what the GPU had in use.

usage: python3 bench/gpu_compare.py [--planner] LOG_FOLDER
"""
import json
import os
import re
import sys

UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def parse_bytes(text):
    m = re.match(r"\s*([0-9.]+)\s*(B|KiB|MiB|GiB|TiB)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def ftdist_result(path):
    """The figures of one `ftdist bench step` output, or None when it has none."""
    try:
        text = open(path).read()
    except OSError:
        return None
    r = {}
    m = re.search(r"# mean ([0-9.]+) s/step, ([0-9.]+) tokens/s.*\(([0-9.e+]+) FLOPs/token\)(?:, MFU ([0-9.]+)%)?", text)
    if not m:
        return None
    r["step_s"], r["tokens_per_s"], r["flops_per_token"] = float(m.group(1)), float(m.group(2)), float(m.group(3))
    r["mfu"] = float(m.group(4)) / 100 if m.group(4) else None
    for key, label in (("allocated", "allocated"), ("total", "total"), ("device_used", "device used"),
                       ("saved", "saved activations")):
        m = re.search(r"^" + label + r"\s+(\S+(?: \S+)?)\s+([0-9.]+ \w+)", text, re.M)
        if m:
            r["planned_" + key] = parse_bytes(m.group(1)) if m.group(1) != "-" else None
            r[key] = parse_bytes(m.group(2))
    return r


def fsdp2_result(path):
    try:
        for line in open(path):
            if line.startswith("FSDP2_RESULT "):
                return json.loads(line[len("FSDP2_RESULT "):])
    except (OSError, json.JSONDecodeError):
        pass
    return None


def gib(x):
    return f"{x / (1 << 30):.2f}" if x is not None else "-"


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def pct(measured, planned):
    return f"{100.0 * (measured / planned - 1):+.1f}%" if measured is not None and planned else "-"


def planner_table(folder):
    names = sorted(f for f in os.listdir(folder) if f.startswith("plan-") and f.endswith(".log"))
    head = ["run", "alloc GiB planned", "measured", "diff", "saved act. GiB planned", "measured", "diff",
            "total GiB planned", "GPU used GiB", "plan covers GPU"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    missing = 0
    for name in names:
        r = ftdist_result(os.path.join(folder, name))
        if r is None:
            print(f"| {name[5:-4]} | (no result: see its log) |")
            missing += 1
            continue
        covers = "-"
        if r.get("planned_total") and r.get("device_used"):
            covers = "yes" if r["planned_total"] >= r["device_used"] else "NO"
        print("| " + " | ".join([
            name[5:-4], gib(r.get("planned_allocated")), gib(r.get("allocated")),
            pct(r.get("allocated"), r.get("planned_allocated")), gib(r.get("planned_saved")), gib(r.get("saved")),
            pct(r.get("saved"), r.get("planned_saved")), gib(r.get("planned_total")), gib(r.get("device_used")), covers,
        ]) + " |")
    return 1 if missing or not names else 0


def main():
    args = sys.argv[1:]
    planner = "--planner" in args
    args = [a for a in args if a != "--planner"]
    if len(args) != 1:
        sys.exit(__doc__.strip().splitlines()[-1])
    folder = args[0]
    if planner:
        return planner_table(folder)
    rows = []
    for ck in ("none", "full"):
        f = ftdist_result(os.path.join(folder, f"step-ftdist-ckpt-{ck}.log"))
        t = fsdp2_result(os.path.join(folder, f"step-fsdp2-ckpt-{ck}.log"))
        if f is None and t is None:
            continue
        f = f or {}
        t = t or {}
        mfu_t = None
        if f.get("mfu") and f.get("tokens_per_s") and t.get("tokens_per_s"):
            mfu_t = f["mfu"] * t["tokens_per_s"] / f["tokens_per_s"]
        rows.append([
            f"ckpt {ck}",
            f"{f['tokens_per_s']:.0f}" if f.get("tokens_per_s") else "-",
            f"{t['tokens_per_s']:.0f}" if t.get("tokens_per_s") else "-",
            ratio(f.get("tokens_per_s"), t.get("tokens_per_s")),
            f"{f['mfu'] * 100:.1f}%" if f.get("mfu") else "-",
            f"{mfu_t * 100:.1f}%" if mfu_t else "-",
            gib(f.get("allocated")), gib(t.get("peak_allocated")), ratio(f.get("allocated"), t.get("peak_allocated")),
            gib(f.get("total")), gib(t.get("peak_reserved")),
            gib(f.get("device_used")), gib(t.get("device_used")),
            gib(f.get("planned_allocated")), gib(f.get("planned_total")),
        ])
    if not rows:
        print("gpu_compare: no step results in", folder)
        return 1
    head = ["TinyLlama-1.1B", "ftdist tok/s", "FSDP2 tok/s", "ratio", "ftdist MFU", "FSDP2 MFU",
            "ftdist alloc GiB", "FSDP2 alloc GiB", "ratio", "ftdist resv GiB", "FSDP2 resv GiB",
            "ftdist used GiB", "FSDP2 used GiB", "planned alloc GiB", "planned total GiB"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print("(one GPU, bf16-mixed, micro-batch 4 x 2048 tokens; alloc/resv: the caching allocator's peaks over the timed"
          " steps; used: the whole GPU after them (cudaMemGetInfo), CUDA context and NCCL included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
