#!/usr/bin/env python3
"""Trains a small BPE tokenizer.json on the bundled corpus (no download), writes a .ftok with
scripts/tokenize_hf.py, and trains ftdist on it for a few steps with a matching model config.

usage: check_hf_tokenizer.py FTDIST_BINARY SOURCE_DIR WORKDIR
"""
import json
import os
import subprocess
import sys

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

binary, src, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
corpus = os.path.join(src, "examples/tiny/corpus.jsonl")
texts = [json.loads(l)["text"] for l in open(corpus)]
tok = Tokenizer(models.BPE(unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.ByteLevel()
tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>"]))
tok_path = os.path.join(work, "tokenizer.json")
tok.save(tok_path)
vocab = tok.get_vocab_size(with_added_tokens=True)

ftok = os.path.join(work, "corpus.ftok")
subprocess.run([sys.executable, os.path.join(src, "scripts/tokenize_hf.py"), "--tokenizer", tok_path,
                "--input", corpus, "--output", ftok], check=True)
cfg = json.load(open(os.path.join(src, "examples/tiny/config.json")))
cfg["vocab_size"] = vocab
cfg_path = os.path.join(work, "config.json")
json.dump(cfg, open(cfg_path, "w"))
out = subprocess.run([binary, "train", "--config", os.path.join(src, "examples/tiny/ftdist.toml"),
                      "--set", f"model.config={cfg_path}", "--set", f"data.train={ftok}",
                      "--set", "train.steps=30", "--set", "train.warmup_steps=5",
                      "--set", f"output.dir={os.path.join(work, 'run')}"], capture_output=True, text=True)
print(out.stdout[-400:], out.stderr[-400:])
losses = [json.loads(l)["loss"] for l in open(os.path.join(work, "run/metrics.jsonl"))]
ok = out.returncode == 0 and len(losses) == 30 and losses[-1] < losses[0]
print(f"vocabulary {vocab}; loss {losses[0]:.3f} -> {losses[-1]:.3f}")
print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
sys.exit(0 if ok else 1)
