#!/usr/bin/env python3
"""The red-team cases that once crashed, answered wrongly, echoed a file, lost data or clashed:
each must now end with a clear error (the expected exit code and message), within seconds, and
leave what it must leave untouched.

  check_red_team.py FTDIST LAUNCHER WORKDIR [CASE ...]     (no CASE: all)
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_RUN = os.path.join(ROOT, "examples/tiny/ftdist.toml")
TINY_CONFIG = os.path.join(ROOT, "examples/tiny/config.json")
TINY_LLAMA = os.path.join(ROOT, "tests/data/tiny-llama")


def run(cmd, expect_rc, pattern, timeout=60, cwd=ROOT):
    t0 = time.time()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    took = time.time() - t0
    ok = p.returncode == expect_rc and re.search(pattern, out, re.S) is not None
    if not ok:
        print(out[-3000:])
        raise AssertionError(f"{' '.join(cmd[:4])}...: exit {p.returncode} (expected {expect_rc}), "
                             f"message matching {pattern!r} {'found' if re.search(pattern, out, re.S) else 'not found'}")
    return out, took


def write_config(path, **changes):
    c = json.load(open(TINY_CONFIG))
    c.update(changes)
    json.dump(c, open(path, "w"))
    return path


class Cases:
    def __init__(self, ftdist, launcher, work):
        self.ftdist, self.launcher, self.work = ftdist, launcher, work

    def train(self, *sets, config=TINY_RUN):
        cmd = [self.ftdist, "train", "--config", config, "--set", "train.warmup_steps=0"]
        for s in sets:
            cmd += ["--set", s]
        return cmd

    # 1. Absurd sizes: errors naming the key and its range, not SIGABRT.
    def absurd_sizes(self):
        # A global batch whose step inputs alone outgrow host memory: exit 3 before loading, not swap.
        out_dir = os.path.join(self.work, "huge-batch")
        run(self.train("train.steps=2", "train.global_batch=2000000000", f"output.dir={out_dir}"), 3,
            r"host memory: train\.global_batch = 2000000000 makes each rank build .* lower train\.global_batch")
        big = write_config(os.path.join(self.work, "vocab1e12.json"), vocab_size=10**12)
        run([self.ftdist, "plan", "--model-config", big, "--gpu", "a100-80gb", "--examples", "10"], 2,
            r"vocab_size \(1000000000000\) is beyond what ftdist models \(1\.\.16777216\)")
        model = os.path.join(self.work, "eval-model")
        shutil.copytree(TINY_LLAMA, model)
        c = json.load(open(os.path.join(model, "config.json")))
        c["vocab_size"] = 10**12
        json.dump(c, open(os.path.join(model, "config.json"), "w"))
        run([self.ftdist, "eval", "--model", model, "--data", os.path.join(TINY_LLAMA, "tokens.jsonl")], 2,
            r"vocab_size .* is beyond what ftdist models")
        # Within the limits but far beyond the machine, with a budget that lets the plan pass: the
        # allocation fails and becomes "does not fit" (exit 3) naming the category, not an abort.
        huge = write_config(os.path.join(self.work, "huge.json"), vocab_size=10**7, hidden_size=131072,
                            num_attention_heads=128, num_key_value_heads=128)
        run(self.train(f"model.config={huge}", 'parallel.memory_limit="999TiB"', f"output.dir={self.work}/huge"), 3,
            r"does not fit: out of memory while loading the model.*params_sharded did not fit.*cannot allocate")

    def deep_jsonl(self):
        data = os.path.join(self.work, "deep.jsonl")
        with open(data, "w") as f:
            f.write('{"text": "fine"}\n' + "[" * 100000 + "]" * 100000 + "\n")
        out, _ = run(self.train(f"data.train={data}", f"output.dir={self.work}/deep"), 2,
                     r"deep\.jsonl:2: JSON nested deeper than 64 levels")
        assert len(out) < 20000, "the bad line was printed into the message"

    # 2. Wrong answers with exit 0: refused instead.
    def planner_ranges(self):
        plan = [self.ftdist, "plan", "--model", "mistral-7b", "--gpu", "a100-80gb"]
        run(plan + ["--tokens", "1e23"], 2, r"--tokens: expected a whole count .*1 to 1e\+18")
        run(plan + ["--examples", "0.5"], 2, r"--examples: expected a whole count .*got '0\.5'")
        run(plan + ["--examples", "100", "--mfu", "1e-30"], 2, r"--mfu must be in \[0\.001, 1\]")
        run(plan + ["--examples", "100", "--lora-targets", ","], 2, r"--lora-targets: expected modules separated by commas")
        # fixed choices that admit no layout: bad input (2), each reason named, not "does not fit" (3)
        run(plan + ["--examples", "100", "--gpus", "8", "--nodes", "3"], 2,
            r"no candidate could be laid out: --nodes 3, but 8 GPUs at 8 per node fill 1 node")
        run(plan + ["--examples", "100", "--gpus", "2", "--micro-batch", "2", "--global-batch", "7"], 2,
            r"global batch 7 is not a multiple of micro-batch x ranks = 4")
        run(plan + ["--seq-len", "1000000000000", "--examples", "10"], 2, r"--seq-len must be 2\.\.16777216")
        out, _ = run(plan + ["--seq-len", "16000000", "--micro-batch", "65536", "--examples", "1e9", "--json"], 3, r"no candidate fits")
        doc = json.loads(out[:out.rfind("}") + 1])
        for c in doc["candidates"]:
            assert c["memory_per_gpu_bytes"]["total"] > 0 and c["time"]["steps"] > 0 and c["cost_usd"] >= 0, c
            assert not c["fits"], c

    # 3. A checkpoint's `latest` pointing at another file: a short excerpt, not the file.
    def latest_elsewhere(self):
        ck = os.path.join(self.work, "latest-ck")
        os.makedirs(ck)
        with open(os.path.join(ck, "latest"), "w") as f:
            f.write("x" * 5_000_000)
        out, _ = run(self.train(f"output.dir={self.work}/latest-run", f"checkpoint.dir={ck}", "checkpoint.resume=true"), 2,
                     r"latest.*has 5000000 bytes, more than the 4096 expected")
        assert len(out) < 20000
        with open(os.path.join(ck, "latest"), "w") as f:
            f.write("step-1\n" + "y" * 3000)
        out, _ = run(self.train(f"output.dir={self.work}/latest-run", f"checkpoint.dir={ck}", "checkpoint.resume=true"), 2,
                     r"expected the name of a checkpoint directory, got 'step-1\\nyyy.*\(3007 bytes\)'")
        assert len(out) < 20000

    # 4. The export replaces only an export ftdist wrote; anything else there stops the run first.
    def export_keeps_foreign_files(self):
        out_dir = os.path.join(self.work, "export-run")
        os.makedirs(os.path.join(out_dir, "hf"))
        mine = os.path.join(out_dir, "hf", "notes.txt")
        open(mine, "w").write("mine")
        run(self.train("train.steps=2", "output.export=true", f"output.dir={out_dir}"), 2,
            r"output.export: '.*hf' exists and was not written by ftdist")
        assert open(mine).read() == "mine"
        assert not os.path.exists(os.path.join(out_dir, "metrics.jsonl")), "it trained before refusing"
        os.remove(mine)
        os.rmdir(os.path.join(out_dir, "hf"))
        run(self.train("train.steps=2", "output.export=true", f"output.dir={out_dir}"), 0, r"exported the model")
        run(self.train("train.steps=2", "output.export=true", f"output.dir={out_dir}"), 0, r"exported the model")  # replaces its own
        open(os.path.join(out_dir, "hf", "extra.bin"), "w").write("x")
        run(self.train("train.steps=2", "output.export=true", f"output.dir={out_dir}"), 2,
            r"holds files ftdist did not write \(extra\.bin\)")
        assert os.path.exists(os.path.join(out_dir, "hf", "extra.bin"))
        # `ftdist export --out DIR/` (a shell's completion adds the slash) writes DIR, not DIR/.tmp inside it.
        ck_run = os.path.join(self.work, "export-ck")
        run(self.train("train.steps=2", "checkpoint.every=2", f"output.dir={ck_run}"), 0, r"trained 2 steps")
        slash = os.path.join(self.work, "export-slash")
        run([self.ftdist, "export", "--checkpoint", os.path.join(ck_run, "checkpoints"), "--out", slash + "/"], 0, r"exported")
        assert os.path.exists(os.path.join(slash, "config.json")) and not os.path.exists(slash + ".tmp")

    # 6. Two jobs on one directory: the second is refused naming the holder.
    def one_job_per_directory(self):
        out_dir = os.path.join(self.work, "locked")
        first = subprocess.Popen(self.train("train.steps=1000000", "checkpoint.every=1000000", f"output.dir={out_dir}"),
                                 cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                if os.path.exists(os.path.join(out_dir, "metrics.jsonl")):
                    break
                time.sleep(0.1)
            run(self.train("train.steps=2", f"output.dir={out_dir}"), 2,
                rf"output.dir: '{re.escape(out_dir)}' is in use by another ftdist job \(\S+ pid {first.pid}\)")
            # its default checkpoint.dir (<output.dir>/checkpoints) named by another job's config
            run(self.train("train.steps=2", "checkpoint.every=1", f"output.dir={out_dir}-other",
                           f"checkpoint.dir={out_dir}/checkpoints", "checkpoint.resume=true"), 2,
                rf"checkpoint.dir: '{re.escape(out_dir)}/checkpoints' is in use by another ftdist job \(\S+ pid {first.pid}\)")
            ck = os.path.join(self.work, "shared-ck")
            second = subprocess.Popen(self.train("train.steps=1000000", "checkpoint.every=1000000", f"output.dir={out_dir}-b",
                                                 f"checkpoint.dir={ck}"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                for _ in range(300):
                    if os.path.exists(os.path.join(out_dir + "-b", "metrics.jsonl")):
                        break
                    time.sleep(0.1)
                run(self.train("train.steps=2", "checkpoint.every=1", f"output.dir={out_dir}-c", f"checkpoint.dir={ck}"), 2,
                    r"checkpoint.dir: .* is in use by another ftdist job")
            finally:
                second.send_signal(signal.SIGKILL)
                second.wait()
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        run(self.train("train.steps=2", f"output.dir={out_dir}"), 0, r"trained 2 steps")  # released with the process

    # 6b. Two jobs writing one export or token file (they would share its scratch files): the second
    # is refused, and touches neither the output nor the first one's temporaries.
    def one_writer_per_output(self):
        import fcntl
        run_dir = os.path.join(self.work, "writer-run")
        run(self.train("train.steps=2", "checkpoint.every=2", f"output.dir={run_dir}"), 0, r"trained 2 steps")
        ckpt = os.path.join(run_dir, "checkpoints")
        data = os.path.join(self.work, "docs.jsonl")
        open(data, "w").write('{"text": "hello"}\n')
        for out, cmd in ((os.path.join(self.work, "export-out"), [self.ftdist, "export", "--checkpoint", ckpt]),
                         (os.path.join(self.work, "tokens.ftok"), [self.ftdist, "prepare-data", "--input", data])):
            cmd = cmd + (["--out", out] if "export" in cmd else ["--output", out])
            scratch = out + (".tmp" if "export" in cmd else ".tmp-tokens")
            lock_path = os.path.join(os.path.dirname(out), "." + os.path.basename(out) + ".ftdist.lock")
            with open(lock_path, "a+") as held:  # another job writing `out`
                fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.makedirs(scratch) if "export" in cmd else open(scratch, "w").write("theirs")
                run(cmd, 2, rf"'{re.escape(out)}' is in use by another ftdist job")
                assert os.path.exists(scratch) and not os.path.exists(out), "the second writer touched the first one's files"
            shutil.rmtree(scratch) if os.path.isdir(scratch) else os.remove(scratch)
            run(cmd, 0, r"")  # once released, the same command writes it
            assert os.path.exists(out)

    # 6c. NaN weights: eval prints what it measured and fails; export writes nothing.
    def non_finite_weights(self):
        import torch
        from safetensors import safe_open
        from safetensors.torch import save_file
        def poison(path, pick):
            with safe_open(path, "pt") as f:
                meta = f.metadata()
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            name = next(k for k in sorted(tensors) if pick(k))
            tensors[name].view(-1)[0] = float("nan")
            save_file(tensors, path, metadata=meta)
        model = os.path.join(self.work, "nan-model")
        shutil.copytree(TINY_LLAMA, model)
        poison(os.path.join(model, "model.safetensors"), lambda k: "down_proj" in k)  # (PyTorch's CPU flash attention drops a NaN in q)
        data = os.path.join(self.work, "nan.jsonl")
        open(data, "w").write('{"input_ids": [1, 2, 3, 4, 5]}\n')
        run([self.ftdist, "eval", "--model", model, "--data", data], 1,
            r"loss nan.*eval: the loss is not finite \(nan\): .*nan-model computes NaN or Inf")
        # Training from them: refused before step 1, naming the unit (not every step skipped).
        run(self.train("model.config=", f"model.path={model}", f"data.train={os.path.join(TINY_LLAMA, 'tokens.jsonl')}",
                       "data.seq_len=16", "train.micro_batch=1", "train.global_batch=1", f"output.dir={self.work}/nan-hf-run"), 2,
            re.escape(model) + r": unit layers\.\d+ holds NaN or Inf values in its weights \(master\)")
        assert not os.path.exists(os.path.join(self.work, "nan-hf-run", "metrics.jsonl")), "it trained before refusing"
        run_dir = os.path.join(self.work, "nan-run")
        run(self.train("train.steps=2", "checkpoint.every=2", f"output.dir={run_dir}"), 0, r"trained 2 steps")
        step = os.path.join(run_dir, "checkpoints", "step-00000002")
        poison(os.path.join(step, "rank-00000-of-00001.safetensors"), lambda k: k.endswith("/master") and "layers" in k)
        out = os.path.join(self.work, "nan-export")
        run([self.ftdist, "export", "--checkpoint", step, "--out", out], 2, r"holds NaN or Inf weights; nothing was written")
        assert not os.path.exists(out) and not os.path.exists(out + ".tmp")
        run(self.train("train.steps=4", "checkpoint.every=2", "checkpoint.resume=true", f"output.dir={run_dir}"), 2,
            "the checkpoint " + re.escape(step) + r": unit layers\.\d+ holds NaN or Inf values in its weights")

    # 7. Unwritable directories before training; tampered checkpoint metadata named.
    def early_and_named_errors(self):
        not_dir = os.path.join(self.work, "a-file")
        open(not_dir, "w").write("x")
        out_dir = os.path.join(self.work, "early")
        run(self.train("checkpoint.every=5", f"checkpoint.dir={not_dir}/ck", f"output.dir={out_dir}"), 2,
            r"checkpoint.dir: cannot create directory '.*a-file' \(a file of that name is in the way\)")
        assert not os.path.exists(os.path.join(out_dir, "metrics.jsonl")), "it trained before refusing"
        # A directory that cannot be created says why (the error of mkdir, not of a later stat).
        run(self.train("checkpoint.every=5", "checkpoint.dir=/sys/ftdist-red-team/ck", f"output.dir={out_dir}"), 2,
            r"checkpoint.dir: cannot create directory '/sys/ftdist-red-team' \((?!No such file)[^)]+\)")
        run(self.train("model.config=", f"model.path={not_dir}-missing", f"output.dir={out_dir}"), 2,
            r"model\.path: '.*a-file-missing' is not a directory")
        # eval --dump-logits writes over neither the model nor the data.
        model = os.path.join(self.work, "dump-model")
        shutil.copytree(TINY_LLAMA, model)
        data = os.path.join(self.work, "dump-data.jsonl")
        shutil.copy(os.path.join(TINY_LLAMA, "tokens.jsonl"), data)
        weights = open(os.path.join(model, "model.safetensors"), "rb").read()
        run([self.ftdist, "eval", "--model", model, "--data", data, "--dump-logits", os.path.join(model, "model.safetensors")], 2,
            r"--dump-logits: '.*model\.safetensors' is in the model being read")
        run([self.ftdist, "eval", "--model", model, "--data", data, "--dump-logits", data], 2, r"--dump-logits: '.*' is the --data file")
        assert open(os.path.join(model, "model.safetensors"), "rb").read() == weights
        # One --set is one key=value: a value's commas are its own (not a second key).
        comma_dir = os.path.join(self.work, "lr=3e-3,train.steps=5")
        run(self.train("train.steps=2", f"output.dir={comma_dir}"), 0, r"trained 2 steps: .*metrics in " + re.escape(comma_dir))
        good = os.path.join(self.work, "tamper")
        run(self.train("train.steps=2", "checkpoint.every=2", f"output.dir={good}"), 0, r"trained 2 steps")
        step = open(os.path.join(good, "checkpoints", "latest")).read().strip()
        meta_path = os.path.join(good, "checkpoints", step, "meta.json")
        original = json.load(open(meta_path))
        for field, value, pattern in [("trainer", "garbage", r'"trainer" must be an object, got "garbage"'),
                                      ("optimizer", {**original["optimizer"], "step": -5},
                                       r'"optimizer.step" must be a non-negative integer, got -5'),
                                      ("optimizer", {**original["optimizer"], "step": 99},
                                       r'"optimizer.step" \(99\) is past the checkpoint\'s step 2'),
                                      ("trainer", {**original["trainer"], "skipped_steps": 7},
                                       r'"trainer.skipped_steps" \(7\) is past the checkpoint\'s step 2'),
                                      ("stage", "zero9", r'"stage" "zero9" or "precision" "\S+" is not one ftdist writes'),
                                      ("step", 2.5, r'key "step" must be an integer, got 2\.5'),
                                      ("trainer", {**original["trainer"], "run_config": {"train": "x"}},
                                       r'"trainer\.run_config\.train" must be an object, got "x"'),
                                      ("trainer", {**original["trainer"], "run_config": {"train": {"steps": "x"}}},
                                       r'"trainer\.run_config\.train\.steps" must be a non-negative integer, got "x"'),
                                      ("trainer", {**original["trainer"], "sampler": {**original["trainer"]["sampler"], "global_batch": 0}},
                                       r'"trainer\.sampler\.global_batch" must be positive, got 0')]:
            json.dump({**original, field: value}, open(meta_path, "w"))
            run(self.train("train.steps=4", "checkpoint.every=2", "checkpoint.resume=true", f"output.dir={good}"), 2,
                re.escape(meta_path) + ": " + pattern)
        json.dump(original, open(meta_path, "w"))

    # 10. Ranks that read different configs (one node's copy has another train.steps) would sit in
    # different collectives until the timeout: every rank stops at once (exit 2), and the rank that
    # differs names the key.
    def ranks_disagree(self):
        wrapper = os.path.join(self.work, "rank1-differs.sh")
        open(wrapper, "w").write('#!/bin/bash\nif [ "${OMPI_COMM_WORLD_RANK:-0}" = 1 ]; then exec "$@" --set train.steps=37; '
                                 'else exec "$@"; fi\n')
        os.chmod(wrapper, 0o755)
        out_dir = os.path.join(self.work, "disagree")
        out, took = run([self.launcher, "-np", "2", wrapper] + self.train(f"output.dir={out_dir}"), 2,
                        r"rank 1's run config differs from rank 0's in train\.steps", timeout=120)
        assert "rank 1's run config differs from rank 0's (its message names them)" in out, "rank 0 did not say why it stopped"
        assert not os.path.exists(os.path.join(out_dir, "metrics.jsonl")), "it trained before refusing"
        # The same config naming node-local copies (a relative path from each node's directory) whose
        # contents differ: another rope_theta in config.json, other data — each trained silently.
        node_local = os.path.join(self.work, "node-local.sh")
        open(node_local, "w").write('#!/bin/bash\ncd "$(dirname "$0")/node${OMPI_COMM_WORLD_RANK:-0}" && exec "$@"\n')
        os.chmod(node_local, 0o755)
        corpus = open(os.path.join(ROOT, "examples/tiny/corpus.jsonl")).read()
        for r in (0, 1):
            os.makedirs(os.path.join(self.work, f"node{r}"))
            write_config(os.path.join(self.work, f"node{r}", "config.json"), rope_theta=10000.0 if r == 0 else 500000.0)
            open(os.path.join(self.work, f"node{r}", "corpus.jsonl"), "w").write(corpus)
        out, took = run([self.launcher, "-np", "2", node_local] + self.train("model.config=config.json", f"output.dir={out_dir}"), 2,
                        r"rank 1's copies of the input files differ from rank 0's in model\.config; every rank must read the same "
                        r"files", timeout=120)
        assert "rank 1's copies of the input files differ from rank 0's (its message names them)" in out, out[-2000:]
        write_config(os.path.join(self.work, "node1", "config.json"), rope_theta=10000.0)
        open(os.path.join(self.work, "node1", "corpus.jsonl"), "w").write(corpus.replace("the", "The", 1))
        run([self.launcher, "-np", "2", node_local] + self.train("model.config=config.json", "data.train=corpus.jsonl",
                                                                 f"output.dir={out_dir}"), 2,
            r"rank 1's copies of the input files differ from rank 0's in data\.train", timeout=120)
        run([self.launcher, "-np", "2", node_local] + self.train("model.config=config.json", "train.steps=2", f"output.dir={out_dir}",
                                                                 f"data.train={ROOT}/examples/tiny/corpus.jsonl"),
            0, r"trained 2 steps", timeout=120)  # the same copies train

    # 11. Data that trains nothing (every label masked) ran every step as "skipped" and exited 0; a
    # mask byte other than 0 or 1 was taken as trained. Both are refused before step 1, for the
    # training and the evaluation data alike.
    def nothing_to_train(self):
        import struct

        def ftok(name, docs, masks):
            path = os.path.join(self.work, name)
            offsets = [0]
            for d in docs:
                offsets.append(offsets[-1] + len(d))
            with open(path, "wb") as f:
                f.write(b"FTDTOK01" + struct.pack("<IIQQII", 1, 256, len(docs), offsets[-1], 1, 0))
                f.write(struct.pack(f"<{len(offsets)}Q", *offsets))
                for d in docs:
                    f.write(struct.pack(f"<{len(d)}I", *d))
                for m in masks:
                    f.write(bytes(m))
            return path

        docs = [[(7 * i + j) % 200 + 1 for j in range(40)] for i in range(20)]
        silent = ftok("silent.ftok", docs, [[0] * 40 for _ in docs])
        out_dir = os.path.join(self.work, "silent-run")
        run(self.train("train.steps=3", "data.seq_len=16", f"data.train={silent}", f"output.dir={out_dir}"), 2,
            r"data\.train: .*silent\.ftok has no token to train on: every label is masked")
        assert not os.path.exists(os.path.join(out_dir, "metrics.jsonl")), "it trained before refusing"
        run(self.train("train.steps=3", "data.seq_len=16", f"data.eval={silent}", f"output.dir={out_dir}"), 2,
            r"data\.eval: .*silent\.ftok has no token to train on")
        # Too little data is named by the key and the file given (the tokenized cache beside it).
        short = os.path.join(self.work, "short.jsonl")
        open(short, "w").write('{"text": "hi"}\n')
        run(self.train("train.steps=3", f"data.eval={short}", f"output.dir={out_dir}"), 2,
            r"data\.eval: " + re.escape(short) + r" \(tokenized into .*\.ftok\): the data holds fewer than seq_len = 64 tokens")
        odd = ftok("odd-mask.ftok", docs, [[1] * 40 for _ in docs[:-1]] + [[1] * 39 + [7]])
        run(self.train("train.steps=3", "data.seq_len=16", f"data.train={odd}", f"output.dir={out_dir}"), 2,
            r"bad input error: \S*odd-mask\.ftok: document 19, token 39: the loss mask byte is 7 \(0 or 1 expected\)")

    # 12. A first save killed between committing its directory and writing `latest` (or a removed
    # `latest`) made the next run start at step 0 over the checkpoints; a checkpoint whose weights an
    # update had made NaN was written and rotated the good one away; a negative second moment loaded.
    def checkpoint_gaps(self):
        import torch
        from safetensors import safe_open
        from safetensors.torch import save_file

        def set_first(path, pick, value):
            with safe_open(path, "pt") as f:
                meta = f.metadata()
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            name = next(k for k in sorted(tensors) if pick(k))
            tensors[name].view(-1)[0] = value
            save_file(tensors, path, metadata=meta)

        run_dir = os.path.join(self.work, "gaps")
        ck = os.path.join(run_dir, "checkpoints")
        base = ["checkpoint.every=2", "checkpoint.keep=3", "train.optimizer=adamw", f"output.dir={run_dir}"]
        run(self.train("train.steps=4", *base), 0, r"trained 4 steps")
        os.remove(os.path.join(ck, "latest"))
        step2 = open(os.path.join(ck, "step-00000002", "rank-00000-of-00001.safetensors"), "rb").read()
        run(self.train("train.steps=4", *base), 2, r"already holds checkpoints \(latest: \S*step-00000004\)")
        out, _ = run(self.train("train.steps=6", "checkpoint.resume=true", *base), 0,
                     r"has checkpoints but no 'latest' .*using the newest complete one, step-00000004")
        assert "trained 2 steps (5-6, resumed from step 4)" in out, out[-2000:]
        assert open(os.path.join(ck, "step-00000002", "rank-00000-of-00001.safetensors"), "rb").read() == step2
        assert open(os.path.join(ck, "latest")).read().strip() == "step-00000006"
        os.remove(os.path.join(ck, "latest"))
        os.makedirs(os.path.join(ck, "latest"))
        run(self.train("train.steps=8", "checkpoint.resume=true", *base), 2,
            re.escape(os.path.join(ck, "latest")) + r": expected a file naming the newest checkpoint directory, found a directory")
        os.rmdir(os.path.join(ck, "latest"))
        open(os.path.join(ck, "latest"), "w").write("step-00000006\n")
        # A negative second moment (damaged) is refused like NaN.
        step6 = os.path.join(ck, "step-00000006", "rank-00000-of-00001.safetensors")
        good6 = open(step6, "rb").read()
        set_first(step6, lambda k: k.endswith("/exp_avg_sq") and "layers" in k, -1000.0)
        run(self.train("train.steps=8", "checkpoint.resume=true", *base), 2,
            r"unit layers\.\d+ holds NaN or Inf values in its optimizer state exp_avg_sq \(or negative ones\)")
        # A first moment of 3e38 is finite, but the next update overflows the weights: the step's loss
        # is finite, its weights are not; they are not checkpointed, the earlier ones are kept.
        open(step6, "wb").write(good6)
        set_first(step6, lambda k: k.endswith("/exp_avg") and "layers" in k, 3e38)
        out, _ = run(self.train("train.steps=8", "checkpoint.resume=true", "checkpoint.keep=1", *base[:1], *base[2:]), 1,
                     r"holds NaN or Inf values in its weights \(master\); no checkpoint of them is written.*"
                     r"they are not checkpointed or exported; the last checkpoint is step 6")
        assert sorted(d for d in os.listdir(ck) if d.startswith("step-")) == ["step-00000002", "step-00000004", "step-00000006"], \
            os.listdir(ck)
        assert open(os.path.join(ck, "latest")).read().strip() == "step-00000006"

    # 13. Ranks whose checkpoint.dir is a node-local path (the same relative path from another
    # directory) each wrote their file elsewhere, and rank 0 committed a checkpoint without them.
    def commit_needs_every_rank_file(self):
        wrapper = os.path.join(self.work, "node-local.sh")
        open(wrapper, "w").write('#!/bin/bash\ncd "$(dirname "$0")/node${OMPI_COMM_WORLD_RANK:-0}" && exec "$@"\n')
        os.chmod(wrapper, 0o755)
        for r in (0, 1):
            os.makedirs(os.path.join(self.work, f"node{r}"))
        os.makedirs(os.path.join(self.work, "node1", "ck", ".tmp-step-00000002"))  # as if rank 0 made it there
        config = os.path.join(self.work, "node-local.toml")
        open(config, "w").write(open(TINY_RUN).read().replace('"examples/tiny/', '"' + ROOT + '/examples/tiny/'))
        run([self.launcher, "-np", "2", wrapper] + self.train("train.steps=2", "checkpoint.every=2", "checkpoint.dir=ck",
                                                                f"output.dir={self.work}/shared-out", config=config),
            2, r"rank-00001-of-00002\.safetensors is missing after every rank wrote its file; checkpoint\.dir must be one "
               r"directory that every rank shares", timeout=120)
        assert not os.path.exists(os.path.join(self.work, "node0", "ck", "latest")), "it committed"

    # 14. A metrics file that cannot be written (a full disk) lost its lines without a word.
    def metrics_write_fails(self):
        out_dir = os.path.join(self.work, "metrics-full")
        run(self.train("train.steps=2", f"output.dir={out_dir}"), 0, r"trained 2 steps")  # (the tokenized data exists)
        os.remove(os.path.join(out_dir, "metrics.jsonl"))
        limited = ["bash", "-c", 'trap "" XFSZ; ulimit -f 12; exec "$@"', "limited"]  # files of at most 12 KiB: EFBIG
        run(limited + self.train("train.steps=100", "train.log_every=50", f"output.dir={out_dir}"), 0,
            r"output\.metrics: writing '.*metrics\.jsonl' failed at step (\d+) \(File too large\); the metrics of this and later "
            r"steps are not kept, the training goes on.*lacks the lines of steps \1-100")

    # 15. A checkpoint's master weights start a new run (model.path naming the checkpoint root or a
    # step directory), with another optimizer: the message that refuses the switch on resume says so.
    def new_run_from_checkpoint(self):
        first = os.path.join(self.work, "first")
        run(self.train("train.steps=2", "checkpoint.every=2", "train.optimizer=adamw-8bit", f"output.dir={first}"), 0, r"trained 2 steps")
        ck = os.path.join(first, "checkpoints")
        run(self.train("train.steps=4", "checkpoint.every=2", "checkpoint.resume=true", "train.optimizer=adamw", f"output.dir={first}"),
            2, r"start a new run from the checkpoint's weights \(model\.path = \"" + re.escape(os.path.join(ck, "step-00000002")))
        corpus = os.path.join(ROOT, "examples/tiny/corpus.jsonl")
        def eval_loss(model):
            p = subprocess.run([self.ftdist, "eval", "--model", model, "--data", corpus, "--seq-len", "64", "--json"],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p.stderr[-2000:]
            return json.loads(p.stdout)["loss"]
        ref = eval_loss(os.path.join(ck, "step-00000002"))
        for given in (ck, os.path.join(ck, "step-00000002")):
            second = os.path.join(self.work, "second")
            shutil.rmtree(second, ignore_errors=True)
            out, _ = run(self.train("model.config=", f"model.path={given}", "train.steps=1", "train.lr=1e-30", "train.min_lr=0",
                                    "train.optimizer=adamw", "output.export=true", "output.export_dtype=fp32", f"output.dir={second}"),
                         0, r"loaded .* from \S*step-00000002")
            loss = eval_loss(os.path.join(second, "hf"))
            assert abs(loss - ref) <= 1e-6 * abs(ref), f"model.path={given}: the new run's weights give {loss}, the checkpoint's {ref}"

    # 16. The export at the end of a `none` or `hybrid` run: the ranks that write nothing waited in
    # one barrier bounded by the communicators' timeout, which a slow disk outlasted (the job was
    # killed mid-export). They now wait on a heartbeat, however long the export takes.
    def slow_export_outlasts_the_timeout(self):
        # A heartbeat every 5 s at least, or after a unit's gather (paced by rank 0's writes): the
        # waits stay under the 12 s timeout while the export takes 16 s (4 units; hybrid: 2 pieces each).
        for ranks, delay, sets in [(2, "4", ["parallel.shard=none"]), (4, "2", ["parallel.shard=hybrid", "parallel.shard_group=2"])]:
            env = {**os.environ, "FTDIST_COMM_TIMEOUT_S": "12", "FTDIST_TEST_EXPORT_DELAY_S": delay}
            out_dir = os.path.join(self.work, f"slow-export-{ranks}")
            cmd = [self.launcher, "-np", str(ranks)] + self.train("train.steps=1", "output.export=true", "train.global_batch=16",
                                                                  f"output.dir={out_dir}", *sets)
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180, env=env)
            assert p.returncode == 0 and os.path.exists(os.path.join(out_dir, "hf", "model.safetensors.index.json")), \
                f"{sets}: exit {p.returncode}\n{(p.stdout + p.stderr)[-3000:]}"

    def slow_save_outlasts_the_timeout(self):
        # Rank 1 writes its checkpoint file 24 s longer than rank 0 (a busy shared disk): rank 0
        # waits past the collectives' 12 s timeout, up to FTDIST_IO_TIMEOUT_S (default 1800 s).
        base = {**os.environ, "FTDIST_COMM_TIMEOUT_S": "12", "FTDIST_TEST_SAVE_DELAY_S": "24", "FTDIST_TEST_SAVE_DELAY_RANK": "1"}
        base.pop("FTDIST_IO_TIMEOUT_S", None)
        for io_timeout, ok in [(None, True), ("1", False)]:
            env = dict(base, **({"FTDIST_IO_TIMEOUT_S": io_timeout} if io_timeout else {}))
            out_dir = os.path.join(self.work, f"slow-save-{io_timeout}")
            cmd = [self.launcher, "-np", "2"] + self.train("train.steps=1", "checkpoint.every=1", f"output.dir={out_dir}")
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180, env=env)
            committed = os.path.exists(os.path.join(out_dir, "checkpoints", "step-00000001", "meta.json"))
            log = (p.stdout + p.stderr)[-3000:]
            if ok:
                assert p.returncode == 0 and committed, f"exit {p.returncode}, committed {committed}\n{log}"
            else:  # the bound still holds (at least the collectives' timeout): a hung writer ends the job
                assert p.returncode != 0 and not committed, f"exit {p.returncode}, committed {committed}\n{log}"
                assert re.search(r"barrier after writing the checkpoint's rank files \(mpi\) did not finish within 12\.?\d* s "
                                 r"\(FTDIST_IO_TIMEOUT_S", log), log

    def metrics_of_an_earlier_run_kept(self):
        # A new run (not resumed) into an output.dir holding another run's metrics: moved aside with
        # a warning, not replaced in silence.
        out_dir = os.path.join(self.work, "metrics-twice")
        run(self.train("train.steps=3", f"output.dir={out_dir}"), 0, r"trained 3 steps")
        first = open(os.path.join(out_dir, "metrics.jsonl")).read()
        assert first.count("\n") >= 3, first
        run(self.train("train.steps=2", f"output.dir={out_dir}"), 0,
            r"output\.metrics: \S*metrics\.jsonl held an earlier run's metrics; moved to \S*metrics\.jsonl\.previous")
        assert open(os.path.join(out_dir, "metrics.jsonl.previous")).read() == first
        assert '"step":2' in open(os.path.join(out_dir, "metrics.jsonl")).read().replace(" ", "")


def main(argv):
    ftdist, launcher, work = argv[:3]
    wanted = argv[3:]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    cases = Cases(os.path.abspath(ftdist), launcher, os.path.abspath(work))
    names = wanted or ["absurd_sizes", "deep_jsonl", "planner_ranges", "latest_elsewhere", "export_keeps_foreign_files",
                       "one_job_per_directory", "one_writer_per_output", "non_finite_weights", "early_and_named_errors", "ranks_disagree", "nothing_to_train",
                       "checkpoint_gaps", "commit_needs_every_rank_file", "metrics_write_fails",
                       "new_run_from_checkpoint", "slow_export_outlasts_the_timeout", "slow_save_outlasts_the_timeout",
                       "metrics_of_an_earlier_run_kept"]
    for name in names:
        t0 = time.time()
        getattr(cases, name)()
        print(f"PASS {name} ({time.time() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
