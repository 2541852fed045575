#!/usr/bin/env python3
"""check_tensorboard.py FTDIST MPIRUN WORKDIR — output.tensorboard: TensorBoard's own reader
(the `tensorboard` package) finds, in <output.dir>/tb of a short 2-rank run of the bundled tiny
model with evaluation, every number of metrics.jsonl as a scalar at its step (float32 of the same
value); a copy of the event file cut in the middle of its last record still reads up to the record
before it."""
import glob
import json
import os
import shutil
import subprocess
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ftdist, mpirun, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
out = os.path.join(work, "run")
cmd = [mpirun, "-np", "2", ftdist, "train", "--config", "examples/tiny/ftdist.toml", "--set", "train.steps=6",
       "--set", "train.warmup_steps=1", "--set", "data.eval=examples/tiny/corpus.jsonl", "--set", "train.eval_every=3",
       "--set", "output.tensorboard=true", "--set", f"output.dir={out}"]
subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
failed = 0


def check(ok, what):
    global failed
    print(("ok   " if ok else "FAIL ") + what)
    failed += not ok


def scalars(directory):
    acc = EventAccumulator(directory, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
tb = scalars(os.path.join(out, "tb"))
want = {(k, r["step"]): v for r in rows for k, v in r.items() if k != "step" and isinstance(v, (int, float)) and v is not None}
check(len(want) >= 6 * 6 + 2, f"{len(want)} numbers in metrics.jsonl (6 steps, 2 evaluations)")
missing = [key for key in want if key[1] not in tb.get(key[0], {})]
check(not missing, f"every number is a scalar in the event file (missing: {missing[:5]})")
worst = max((abs(tb[k][s] - float(v)) / max(abs(float(v)), 1e-30) for (k, s), v in want.items() if (k, s) not in missing), default=1)
check(worst <= 1e-6, f"values equal metrics.jsonl to float32 (worst relative difference {worst:.1e})")
check("eval_loss" in tb and sorted(tb["eval_loss"]) == [3, 6], "eval_loss at steps 3 and 6")

# A file cut short (a killed run): the reader keeps every whole record.
files = glob.glob(os.path.join(out, "tb", "events.out.tfevents.*"))
check(len(files) == 1, f"one event file ({len(files)})")
cut = os.path.join(work, "cut")
os.makedirs(cut)
data = open(files[0], "rb").read()
open(os.path.join(cut, os.path.basename(files[0])), "wb").write(data[:-7])
short = scalars(cut)
check(sorted(short.get("loss", {})) == [1, 2, 3, 4, 5], f"truncated mid-record: steps 1-5 remain ({sorted(short.get('loss', {}))})")
print("all passed" if not failed else f"{failed} failed")
sys.exit(1 if failed else 0)
