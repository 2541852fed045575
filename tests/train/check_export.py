#!/usr/bin/env python3
"""check_export.py FTDIST MPIRUN TMPDIR — checkpoint -> Hugging Face export, end to end:

1. Round trip: a 2-rank run on the tiny config checkpoints and exports; `ftdist eval` on the fp32
   export gives the checkpoint's own loss (ftdist eval on the checkpoint directory), to 1e-6; the bf16
   export is close; Transformers loads the sharded export and computes the same loss.
2. Bounded memory: exporting a 48-layer model (master weights ~150 MB) raises the process's resident
   memory (peak during the export, reset at its start, minus the resident memory before it) by no
   more than 4 x its largest unit + 16 MiB — far less than the model, so materializing it (or
   keeping the checkpoint's mapped pages) fails this check.
3. Pieces, not units: a model whose embedding alone is 256 MiB in fp32 exports with the resident
   memory growing by less than half of it (the export reads, converts and writes pieces of a unit).
"""
import json
import os
import subprocess
import sys

ftdist, mpirun, tmp = sys.argv[1:4]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.makedirs(tmp, exist_ok=True)
run_cfg = os.path.join(root, "examples/tiny/ftdist.toml")
corpus = os.path.join(root, "examples/tiny/corpus.jsonl")
failures = []


def run(cmd):
    p = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def train(out, extra):
    subprocess.run(["rm", "-rf", out])
    run([mpirun, "-np", "2", ftdist, "train", "--config", run_cfg, "--set", f"output.dir={out}",
         "--set", "checkpoint.every=5", "--set", "train.log_every=100"] + extra)
    return os.path.join(out, "checkpoints")


def export(ckpt, out, dtype, shard="5GB"):
    subprocess.run(["rm", "-rf", out])
    return json.loads(run([ftdist, "export", "--checkpoint", ckpt, "--out", out, "--dtype", dtype,
                           "--max-shard-size", shard, "--json"]))


def evaluate(model):
    return json.loads(run([ftdist, "eval", "--model", model, "--data", corpus, "--seq-len", "64",
                           "--dtype", "fp32", "--attention", "eager", "--json"]))


# 1. round trip on the tiny model (also exported by the trainer itself at the end)
tiny = train(os.path.join(tmp, "tiny"), ["--set", "train.steps=10", "--set", "train.warmup_steps=2",
                                         "--set", "output.export=true", "--set", "output.export_dtype=fp32"])
e32 = export(tiny, os.path.join(tmp, "tiny-fp32"), "fp32", "200KB")
e16 = export(tiny, os.path.join(tmp, "tiny-bf16"), "bf16")
check(e32["files"] > 1, f"fp32 export cut into {e32['files']} files at 200KB")
ref = evaluate(os.path.join(tiny, "step-00000010"))
l32 = evaluate(os.path.join(tmp, "tiny-fp32"))
l16 = evaluate(os.path.join(tmp, "tiny-bf16"))
lend = evaluate(os.path.join(tmp, "tiny", "hf"))
check(abs(l32["loss"] - ref["loss"]) <= 1e-6 * abs(ref["loss"]),
      f"eval of the fp32 export {l32['loss']:.8f} == eval of the checkpoint {ref['loss']:.8f}")
check(abs(lend["loss"] - ref["loss"]) <= 1e-6 * abs(ref["loss"]),
      f"the trainer's own export at the end {lend['loss']:.8f} == the checkpoint {ref['loss']:.8f}")
check(abs(l16["loss"] - ref["loss"]) <= 2e-2 * abs(ref["loss"]) and l16["loss"] != ref["loss"],
      f"bf16 export {l16['loss']:.6f} within 2% of fp32 {ref['loss']:.6f} (bf16 weights: 3 significant digits)")
try:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(os.path.join(tmp, "tiny-fp32"), dtype=torch.float32,
                                                 attn_implementation="eager")
    total, count = 0.0, 0
    with open(corpus) as f:
        for line in f:
            ids = [b for b in json.loads(line)["text"].encode()]
            ids = ([256] + ids + [257])[:64]
            t = torch.tensor([ids])
            with torch.no_grad():
                logits = model(t).logits[0, :-1].double()
            total += torch.nn.functional.cross_entropy(logits, t[0, 1:], reduction="sum").item()
            count += len(ids) - 1
    hf = total / count
    check(abs(hf - ref["loss"]) <= 1e-5 * abs(ref["loss"]),
          f"Transformers on the sharded export {hf:.8f} == ftdist on the checkpoint {ref['loss']:.8f}")
except ImportError as e:
    check(False, f"Transformers is needed for the oracle check ({e})")

# 2. bounded memory on a 48-layer model
big = train(os.path.join(tmp, "big"), ["--set", "model.config=tests/data/export_model/config.json",
                                       "--set", "train.steps=1", "--set", "train.warmup_steps=0",
                                       "--set", "train.global_batch=2", "--set", "train.micro_batch=1",
                                       "--set", "data.seq_len=32", "--set", "checkpoint.every=1"])
eb = export(big, os.path.join(tmp, "big-bf16"), "bf16")
model_bytes = sum(os.path.getsize(os.path.join(tmp, "big-bf16", n)) for n in os.listdir(os.path.join(tmp, "big-bf16"))) * 2
growth = eb["peak_rss_bytes"] - eb["start_rss_bytes"]
bound = 4 * eb["largest_unit_bytes"] + (16 << 20)
print(f"resident memory: {eb['start_rss_bytes'] / 2**20:.1f} MiB before the export, peak {eb['peak_rss_bytes'] / 2**20:.1f} MiB "
      f"during it; growth {growth / 2**20:.1f} MiB; bound {bound / 2**20:.1f} MiB; fp32 model {model_bytes / 2**20:.1f} MiB")
check(model_bytes > 4 * bound, "the model is much larger than the bound (the check can fail)")
check(growth <= bound, "peak memory stays within 4 x the largest unit of the baseline")

# 3. a unit larger than the pieces: memory does not grow with it
wide = train(os.path.join(tmp, "wide"), ["--set", "model.config=tests/data/export_wide_model/config.json",
                                         "--set", "train.steps=1", "--set", "train.warmup_steps=0",
                                         "--set", "train.global_batch=2", "--set", "train.micro_batch=1",
                                         "--set", "data.seq_len=32", "--set", "checkpoint.every=1"])
ew = export(wide, os.path.join(tmp, "wide-bf16"), "bf16")
growth = ew["peak_rss_bytes"] - ew["start_rss_bytes"]
print(f"wide model: resident memory grew {growth / 2**20:.1f} MiB exporting a {ew['largest_unit_bytes'] / 2**20:.1f} MiB unit")
check(growth <= ew["largest_unit_bytes"] // 2, "a unit is exported in pieces (memory grows by less than half the unit)")
subprocess.run(["rm", "-rf", os.path.join(tmp, "wide"), os.path.join(tmp, "wide-bf16")])

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
