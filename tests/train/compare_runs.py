#!/usr/bin/env python3
"""compare_runs.py [--same-only] METRICS_A METRICS_B — the per-step losses of two training runs are
equal to 1e-5 relative (e.g. 4 ranks with full sharding vs 1 rank without), and (unless
--same-only) the loss fell by half."""
import json
import sys


def losses(path):
    with open(path) as f:
        return [json.loads(line)["loss"] for line in f if line.strip()]


args = sys.argv[1:]
same_only = args and args[0] == "--same-only"
if same_only:
    args = args[1:]
a, b = losses(args[0]), losses(args[1])
ok = len(a) == len(b) and len(a) > 0
worst = 0.0
for x, y in zip(a, b):
    worst = max(worst, abs(x - y) / abs(y))
ok = ok and worst <= 1e-5
fell = same_only or a[-1] < 0.5 * a[0]
print(f"{len(a)} steps; max relative loss difference {worst:.2e}; loss {a[0]:.4f} -> {a[-1]:.4f}")
passed = int(ok) + int(fell)
print(f"{passed} passed, {2 - passed} failed")
sys.exit(0 if ok and fell else 1)
