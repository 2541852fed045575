#!/usr/bin/env python3
"""check_run_report.py FTDIST MPIRUN WORKDIR — `ftdist report` of the bundled tiny run (12 steps on 2
ranks, evaluation every 4, a checkpoint every 6): the HTML parses; its steps table lists every step
of the metrics log (output.metrics, here not the default name) with its loss; the loss curve has one point per step and the eval-loss curve one per
evaluation; the resolved config, memory.json and both checkpoints appear; a missing run is refused
naming metrics.jsonl; the checkpoints are found from any working directory; --out never replaces a
file that is not a page (the run's own metrics); a constant series' caption says its value, and the
summary's losses skip a step without one."""
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser

ftdist, mpirun, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
out = os.path.join(work, "run")
subprocess.run([mpirun, "-np", "2", ftdist, "train", "--config", "examples/tiny/ftdist.toml", "--set", "train.steps=12",
                "--set", "train.warmup_steps=1", "--set", "data.eval=examples/tiny/corpus.jsonl", "--set", "train.eval_every=4",
                "--set", "checkpoint.every=6", "--set", f"output.dir={os.path.relpath(out)}", "--set", "output.metrics=steps.jsonl"], check=True, stdout=subprocess.DEVNULL)
subprocess.run([ftdist, "report", out], check=True, stdout=subprocess.DEVNULL)


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.polylines, self.text, self._cell, self._row = [], {}, [], None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append({"class": a.get("class"), "rows": []})
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "polyline":
            self.polylines[a.get("class")] = a.get("points", "").split()

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append(self._row)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        self.text.append(data)


page = Page()
page.feed(open(os.path.join(out, "report.html")).read())
rows = [json.loads(line) for line in open(os.path.join(out, "steps.jsonl"))]  # output.metrics, read back from run_config.json
failed = 0


def check(ok, what):
    global failed
    print(("ok   " if ok else "FAIL ") + what)
    failed += not ok


steps = next((t for t in page.tables if t["class"] == "steps"), {"rows": []})["rows"][1:]
check([int(r[0]) for r in steps] == [r["step"] for r in rows], f"the steps table lists every step ({len(steps)} of {len(rows)})")
check(all(abs(float(s[1]) - r["loss"]) <= 1e-5 * abs(r["loss"]) for s, r in zip(steps, rows)), "each step's loss")
check(len(page.polylines.get("loss", [])) == len(rows), "one loss point per step")
check(len(page.polylines.get("eval_loss", [])) == sum("eval_loss" in r for r in rows) == 3, "one eval-loss point per evaluation")
text = " ".join(page.text)
check("train.steps" in text and "parallel.shard" in text, "the resolved run config")
check("planned" in text or "measured" in text, "memory.json")
check("step-00000006" in text and "step-00000012" in text, "both checkpoints")
bad = subprocess.run([ftdist, "report", os.path.join(work, "nothing")], capture_output=True, text=True)
check(bad.returncode != 0 and "metrics.jsonl' does not exist" in bad.stderr, f"a missing run is refused ({bad.stderr.strip()[:100]})")
# Lines the report must read whatever their values: a skipped step's null loss (no trained token)
# and a string where a number belongs (an edited file) leave empty cells, not an error.
odd = os.path.join(work, "odd")
os.makedirs(odd)
with open(os.path.join(odd, "metrics.jsonl"), "w") as f:
    f.write('{"step": 1, "loss": 2.5, "lr": 0.001}\n{"step": 2, "loss": null, "skipped": true}\n{"step": 3, "loss": "x", "lr": "y"}\n')
r = subprocess.run([ftdist, "report", odd], capture_output=True, text=True)
oddpage = Page()
if r.returncode == 0:
    oddpage.feed(open(os.path.join(odd, "report.html")).read())
odd_steps = next((t for t in oddpage.tables if t["class"] == "steps"), {"rows": []})["rows"][1:]
check(r.returncode == 0 and [s[:2] for s in odd_steps] == [["1", "2.5"], ["2", ""], ["3", ""]],
      f"null and string values leave empty cells (exit {r.returncode} {r.stderr.strip()[:120]}; {odd_steps})")
# A long run (200k steps, a loss spike at one step, an evaluation every 1000): the page stays small,
# the table lists one row per 100 steps plus the evaluated ones, and the chart keeps the spike.
long_run = os.path.join(work, "long")
os.makedirs(long_run)
with open(os.path.join(long_run, "metrics.jsonl"), "w") as f:
    for step in range(1, 200001):
        loss = 50.0 if step == 123457 else 3.0 - step * 1e-5
        f.write(f'{{"step": {step}, "loss": {loss}, "lr": 0.001' + (f', "eval_loss": {loss}' if step % 1000 == 0 else "") + "}\n")
r = subprocess.run([ftdist, "report", long_run], capture_output=True, text=True)
size = os.path.getsize(os.path.join(long_run, "report.html")) if r.returncode == 0 else -1
longpage = Page()
if r.returncode == 0:
    longpage.feed(open(os.path.join(long_run, "report.html")).read())
long_steps = next((t for t in longpage.tables if t["class"] == "steps"), {"rows": []})["rows"][1:]
points = longpage.polylines.get("loss", [])
check(0 < size < 1_000_000, f"a 200k-step report stays under 1 MB ({size} bytes)")
check(2000 <= len(long_steps) <= 2201, f"one table row per 100 steps plus evaluations ({len(long_steps)} rows)")
check(0 < len(points) <= 2000 and min(float(p.split(",")[1]) for p in points) <= 10.0001,
      f"the loss chart has at most 2000 points and keeps the spike ({len(points)} points)")
# From another working directory (run_config.json names checkpoint.dir absolute, though output.dir
# was relative).
other_cwd = os.path.join(os.path.abspath(work), "a", "b", "c", "d", "e")
os.makedirs(other_cwd)
elsewhere = subprocess.run([os.path.abspath(ftdist), "report", os.path.abspath(out), "--out", os.path.join(os.path.abspath(work), "elsewhere.html")],
                           capture_output=True, text=True, cwd=other_cwd)
html = open(os.path.join(work, "elsewhere.html")).read() if elsewhere.returncode == 0 else ""
check("step-00000006" in html and "step-00000012" in html, f"the checkpoints from another directory (exit {elsewhere.returncode})")
metrics_before = open(os.path.join(out, "steps.jsonl")).read()
clobber = subprocess.run([ftdist, "report", out, "--out", os.path.join(out, "steps.jsonl")], capture_output=True, text=True)
check(clobber.returncode == 2 and "is not an HTML page" in clobber.stderr and open(os.path.join(out, "steps.jsonl")).read() == metrics_before,
      f"--out on the run's metrics is refused, the file kept (exit {clobber.returncode})")
again = subprocess.run([ftdist, "report", out], capture_output=True, text=True)
check(again.returncode == 0, "a report replaces the report it wrote")
# A constant learning rate, and a skipped first and last step.
flat = os.path.join(work, "flat")
os.makedirs(flat)
with open(os.path.join(flat, "metrics.jsonl"), "w") as f:
    f.write('{"step": 1, "loss": null, "lr": 0.003}\n{"step": 2, "loss": 4.5, "lr": 0.003}\n{"step": 3, "loss": 4.25, "lr": 0.003}\n'
            '{"step": 4, "loss": null, "lr": 0.003}\n')
r = subprocess.run([ftdist, "report", flat], capture_output=True, text=True)
flat_html = open(os.path.join(flat, "report.html")).read() if r.returncode == 0 else ""
check("learning rate (0.003 throughout)" in flat_html, "a constant series' caption says its value")
check("loss 4.5 &rarr; 4.25" in flat_html, "the summary's first and last losses skip steps without one")
print("all passed" if not failed else f"{failed} failed")
sys.exit(1 if failed else 0)
