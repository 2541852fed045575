#!/usr/bin/env python3
"""compare_runs.py METRICS_A METRICS_B — the per-step losses of two training runs are equal to
1e-5 relative (e.g. 4 ranks with full sharding vs 1 rank without), and the loss fell by half."""
import json
import sys


def losses(path):
    with open(path) as f:
        return [json.loads(line)["loss"] for line in f if line.strip()]


a, b = losses(sys.argv[1]), losses(sys.argv[2])
ok = len(a) == len(b) and len(a) > 0
worst = 0.0
for x, y in zip(a, b):
    worst = max(worst, abs(x - y) / abs(y))
ok = ok and worst <= 1e-5
fell = a[-1] < 0.5 * a[0]
print(f"{len(a)} steps; max relative loss difference {worst:.2e}; loss {a[0]:.4f} -> {a[-1]:.4f}")
passed = int(ok) + int(fell)
print(f"{passed} passed, {2 - passed} failed")
sys.exit(0 if ok and fell else 1)
