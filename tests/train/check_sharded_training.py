#!/usr/bin/env python3
"""check_sharded_training.py FTDIST MPIRUN TMPDIR [equivalence|bad-input|data|host-memory] — training from shards, end to end.

Default: training from a Hugging Face directory on 4 ranks (each rank reads only its shards of the
safetensors file) gives 1 rank's per-step losses (fp32, 1e-5), and the random init starts 1, 3 and
4 ranks from the same weights (the first loss of each run is the same to 1e-6).

bad-input: a missing or truncated shard file, a config that does not match the weights, a token
beyond the vocabulary: exit 2 on every rank within seconds, naming the file.

data: a 2 GiB token file is mapped, not read (peak RSS against a run on a small file).

host-memory: a 494M-parameter preset (qwen2.5-0.5b, fp32, shard full) trained 1 step on 4 ranks:
the counting allocator's peak from the start of the run (the model's construction and loading
included) stays within the planner's allocated bytes, and every rank's peak resident memory up to
the end of the step is within 10 % + 300 MiB of the planner's host memory per rank
(<output.dir>/memory.json holds both, the largest rank's).
"""
import json
import os
import subprocess
import sys

ftdist, mpirun, tmp = sys.argv[1:4]
mode = sys.argv[4] if len(sys.argv) > 4 else "equivalence"
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.makedirs(tmp, exist_ok=True)
corpus = os.path.join(root, "examples/tiny/corpus.jsonl")
failures = []
MiB = 1 << 20


def run(cmd):
    p = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout + p.stderr


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def config(name, model, extra=""):
    path = os.path.join(tmp, name + ".toml")
    with open(path, "w") as f:
        f.write(f"""[model]
{model}
[data]
train = "{corpus}"
seq_len = 64
[train]
steps = 20
micro_batch = 2
global_batch = 8
lr = 3e-3
warmup_steps = 2
seed = 3
log_every = 100
[parallel]
shard = "full"
precision = "fp32"
{extra}
""")
    return path


def train(np, cfg, out, sets=()):
    subprocess.run(["rm", "-rf", out])
    log = run([mpirun, "-np", str(np), ftdist, "train", "--config", cfg, "--set", f"output.dir={out}"] +
              [a for s in sets for a in ("--set", s)])
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()], log


def same(a, b, tol):
    return len(a) == len(b) > 0 and all(abs(x - y) <= tol * abs(y) for x, y in zip(a, b))


if mode == "equivalence":
    tiny = f'config = "{os.path.join(root, "examples/tiny/config.json")}"'
    # An fp32 Hugging Face directory to start from: a short run's export.
    src = os.path.join(tmp, "src")
    src_rows, _ = train(1, config("src", tiny), src, ["train.steps=3", "output.export=true", "output.export_dtype=fp32"])
    hf = config("hf", f'path = "{os.path.join(src, "hf")}"')
    four, log = train(4, hf, os.path.join(tmp, "hf4"))
    one, _ = train(1, hf, os.path.join(tmp, "hf1"), ["parallel.shard=none"])
    check("loaded" in log and os.path.join(src, "hf") in log, "the 4-rank run loaded its shards from the HF directory")
    check(same([r["loss"] for r in four], [r["loss"] for r in one], 1e-5),
          f"4 ranks (full) from HF = 1 rank (none), 20 steps: {[round(r['loss'], 6) for r in four[:3]]}... vs "
          f"{[round(r['loss'], 6) for r in one[:3]]}...")
    check(one[0]["loss"] < src_rows[0]["loss"] - 0.1,
          f"the runs start from the exported weights (first loss {one[0]['loss']:.4f}, the random init's "
          f"{src_rows[0]['loss']:.4f})")
    # The random init: 1, 3 and 4 ranks start from the same weights (and train alike).
    rnd = config("random", tiny)
    firsts = {}
    for np, stage, micro in ((1, "none", 4), (3, "full", 4), (4, "grad-op", 3)):  # 12 sequences a step each
        rows, _ = train(np, rnd, os.path.join(tmp, f"rand{np}"),
                        ["train.steps=2", "train.warmup_steps=0", "train.global_batch=12", f"train.micro_batch={micro}", f"parallel.shard={stage}"])
        firsts[np] = rows[0]["loss"]
    print("first losses from the random init:", firsts)
    for np in (3, 4):
        check(abs(firsts[np] - firsts[1]) <= 1e-6 * abs(firsts[1]), f"random init: {np} ranks start where 1 rank does")
elif mode == "bad-input":
    # Loading shards keeps the clear errors: exit 2 on every rank within seconds, naming the file.
    import shutil
    import struct
    import time
    tiny_hf = os.path.join(root, "tests/data/tiny-llama")

    def expect_error(what, np, cfg, pattern, sets=()):
        t0 = time.time()
        p = subprocess.run([mpirun, "-np", str(np), ftdist, "train", "--config", cfg,
                            "--set", f"output.dir={os.path.join(tmp, 'bad')}"] + [a for s in sets for a in ("--set", s)],
                           cwd=root, capture_output=True, text=True, timeout=120)
        out = p.stdout + p.stderr
        secs = time.time() - t0
        check(p.returncode == 2 and pattern in out and secs < 60,
              f"{what}: exit {p.returncode} in {secs:.1f} s, names '{pattern}'" + ("" if pattern in out else f"\n{out[-1500:]}"))

    def hf_copy(name):
        d = os.path.join(tmp, name)
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(tiny_hf, d)
        return d

    data_cfg = os.path.join(root, "tests/data/tiny-llama/tokens.jsonl")
    # An index that lists a shard file that is not there.
    missing = hf_copy("missing_shard")
    os.rename(os.path.join(missing, "model.safetensors"), os.path.join(missing, "model-00001-of-00002.safetensors"))
    with open(os.path.join(missing, "model.safetensors.index.json"), "w") as f:
        json.dump({"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                                  "lm_head.weight": "model-00002-of-00002.safetensors"}}, f)
    cfg = config("missing", f'path = "{missing}"')
    expect_error("a missing shard file", 2, cfg, "model-00002-of-00002.safetensors", [f"data.train={data_cfg}", "data.seq_len=8"])
    # A truncated safetensors file.
    trunc = hf_copy("truncated")
    st = os.path.join(trunc, "model.safetensors")
    with open(st, "r+b") as f:
        f.truncate(os.path.getsize(st) - 100)
    expect_error("a truncated shard file", 2, config("trunc", f'path = "{trunc}"'), st,
                 [f"data.train={data_cfg}", "data.seq_len=8"])
    # A config.json that does not match the weights.
    wrong = hf_copy("mismatched")
    with open(os.path.join(wrong, "config.json")) as f:
        c = json.load(f)
    c["intermediate_size"] = 40
    with open(os.path.join(wrong, "config.json"), "w") as f:
        json.dump(c, f)
    expect_error("a config that does not match the weights", 2, config("wrong", f'path = "{wrong}"'), wrong,
                 [f"data.train={data_cfg}", "data.seq_len=8"])
    # A token file with a token beyond the vocabulary: found before the first step (each rank scans its
    # share of the file), the same error on every rank.
    bad = os.path.join(tmp, "bad_token.ftok")
    tokens = [1, 2, 3] * 200 + [300] + [4] * 100
    with open(bad, "wb") as f:
        f.write(b"FTDTOK01" + struct.pack("<IIQQII", 1, 258, 1, len(tokens), 0, 0) + struct.pack("<QQ", 0, len(tokens)))
        f.write(struct.pack(f"<{len(tokens)}I", *tokens))
    tiny = f'config = "{os.path.join(root, "examples/tiny/config.json")}"'
    expect_error("a token beyond the vocabulary", 2, config("badtok", tiny),
                 f"{bad}: token 300 (document 0) at position 600 of the document is outside the vocabulary [0, 258)",
                 [f"data.train={bad}", "train.steps=30", "train.warmup_steps=0"])
elif mode == "data":
    # A 2 GiB token file (sparse: one document of token 0) is mapped, not read: training 10 steps on
    # it leaves each rank's peak RSS within 5 % of the file of the same run on a small token file.
    import struct
    tokens = (2 << 30) // 4
    big = os.path.join(tmp, "big.ftok")
    with open(big, "wb") as f:
        f.write(b"FTDTOK01" + struct.pack("<IIQQII", 1, 258, 1, tokens, 0, 0) + struct.pack("<QQ", 0, tokens))
        f.truncate(40 + 16 + 4 * tokens)
    small = os.path.join(tmp, "small.ftok")
    run([ftdist, "prepare-data", "--input", corpus, "--output", small])
    tiny = f'config = "{os.path.join(root, "examples/tiny/config.json")}"'
    peaks = {}
    for name, data in (("small", small), ("big", big)):
        rows, _ = train(2, config("data_" + name, tiny), os.path.join(tmp, "data_" + name),
                        ["train.steps=10", f"data.train={data}"])
        peaks[name] = max(r["peak_mem_bytes"] for r in rows)
    size = os.path.getsize(big)
    grew = peaks["big"] - peaks["small"]
    check(grew < 0.05 * size, f"a {size / (1 << 30):.1f} GiB token file: peak RSS {peaks['big'] / MiB:.0f} MiB vs "
          f"{peaks['small'] / MiB:.0f} MiB on a small file (grew {grew / MiB:.0f} MiB, limit {0.05 * size / MiB:.0f} MiB)")
else:
    cfg = config("big", 'preset = "qwen2.5-0.5b"', 'checkpointing = "none"')
    out = os.path.join(tmp, "host")
    train(4, cfg, out, ["train.steps=1", "train.warmup_steps=0", "data.seq_len=32", "train.micro_batch=1", "train.global_batch=4"])
    with open(os.path.join(out, "memory.json")) as f:
        m = json.load(f)
    planned, measured = m["planned_per_rank"], m["measured_largest_rank"]
    print(json.dumps(m, indent=1))
    # The plan is the step's peak (a timeline, docs/planner.md#the-step-timeline), held to 3 % of what
    # the run allocated at its peak, loading included; the overhead row comes on top of it.
    got, want = measured["allocated_peak_bytes"], planned["allocated_bytes"]
    check(abs(got - want) <= 0.03 * want,
          f"allocated from the start (loading included) {got / MiB:.1f} MiB within 3 % of planned "
          f"{want / MiB:.1f} MiB ({100 * (got / want - 1):+.3f} %, peak phase planned: {planned['peak_phase']})")
    host, rss = planned["host_steady_bytes"], measured["peak_rss_bytes"]
    check(abs(rss - host) <= 0.1 * host + 300 * MiB,
          f"peak RSS {rss / MiB:.0f} MiB within 10 % + 300 MiB of the planned {host / MiB:.0f} MiB per rank")

print(f"{'all passed' if not failures else str(len(failures)) + ' failed'}")
sys.exit(1 if failures else 0)
