#!/usr/bin/env python3
"""compare_runs.py [--same-only] [--key K] [--tol T] [--final] METRICS_A METRICS_B — the per-step values
of K (default "loss") in two training runs' metrics are equal to T relative (default 1e-5; e.g. 4
ranks with full sharding vs 1 rank without; lines without K are skipped, so "eval_loss" compares the
evaluations), and (unless --same-only) the value fell by half.
--curve compares two optimizers, which take different paths: A's curve lies within T of B's by area
(sum |a - b| / sum b <= T) and A ends no worse than T above B (means of the last 10 values). Per
step, two such runs of the bundled tiny model agree to 2 % while they learn, then both memorize the
corpus (loss ~0.1), where runs that differ in the last bit drift apart by +-15 % either way."""
import json
import sys


def values(path, key):
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r[key] for r in rows if r.get(key) is not None]


args = sys.argv[1:]
same_only = "--same-only" in args
if same_only:
    args.remove("--same-only")
key = "loss"
if "--key" in args:
    i = args.index("--key")
    key = args[i + 1]
    del args[i:i + 2]
tol = 1e-5
if "--tol" in args:
    i = args.index("--tol")
    tol = float(args[i + 1])
    del args[i:i + 2]
curve = "--curve" in args
if curve:
    args.remove("--curve")
a, b = values(args[0], key), values(args[1], key)
ok = len(a) == len(b) and len(a) > 0
worst = 0.0
if curve and ok:
    worst = sum(abs(x - y) for x, y in zip(a, b)) / sum(b)
    end_a, end_b = sum(a[-10:]) / len(a[-10:]), sum(b[-10:]) / len(b[-10:])
    print(f"curves apart by {worst:.2e} of B's area; final {end_a:.4f} vs {end_b:.4f}")
    worst = max(worst, end_a / end_b - 1)
else:
    for x, y in zip(a, b):
        worst = max(worst, abs(x - y) / abs(y))
ok = ok and worst <= tol
fell = same_only or (len(a) > 0 and a[-1] < 0.5 * a[0])
print(f"{len(a)} vs {len(b)} values of {key}; {'worst of the two' if curve else 'max relative difference'} {worst:.2e}" +
      (f"; {a[0]:.4f} -> {a[-1]:.4f}" if a else ""))
passed = int(ok) + int(fell)
print(f"{passed} passed, {2 - passed} failed")
sys.exit(0 if ok and fell else 1)
