#!/usr/bin/env python3
"""Chat fine-tuning data end to end, offline: for a Qwen2-style and a Llama-3-style chat template
(small model directories written here: a byte-level BPE tokenizer.json trained on the bundled corpus
with the template's special tokens, and a tokenizer_config.json holding the template),
scripts/tokenize_hf.py turns `messages` lines into a .ftok whose tokens are Transformers'
apply_chat_template and whose loss mask covers exactly the assistant turns' tokens and the
end-of-turn (EOS) token that closes each; text gets EOS appended; every bad line exits 2 naming the
file and line. Then ftdist trains on the chat data (packed whole, per-example attention) and the
loss on the EOS tokens alone (an eval set that predicts only them) falls: the model learns to stop.

usage: check_chat_template.py FTDIST_BINARY SOURCE_DIR WORKDIR
"""
import json
import os
import subprocess
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer

from ftok import read_ftok, write_ftok

binary, src, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
script = os.path.join(src, "scripts/tokenize_hf.py")
texts = [json.loads(l)["text"] for l in open(os.path.join(src, "examples/tiny/corpus.jsonl"))]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


STYLES = {
    "qwen2": {
        "special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "config": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None},
        "template": ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                     "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
                     "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
                     "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"),
        "content": lambda c: c,
    },
    "llama3": {
        "special": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "config": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
        "template": ("{{ bos_token }}{% for message in messages %}"
                     "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
                     "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"),
        "content": lambda c: c.strip(),
    },
}


def model_dir(name, style):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=500, special_tokens=style["special"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(os.path.join(d, "tokenizer.json"))
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 4096, "chat_template": style["template"]}
    cfg.update(style["config"])
    json.dump(cfg, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)
    return d


def conversations():
    out = []
    for i, t in enumerate(texts):
        w = t.split()
        k = max(1, len(w) // 3)
        msgs = [{"role": "user", "content": " ".join(w[:k])}, {"role": "assistant", "content": " ".join(w[k:])}]
        if i % 3 == 0:
            msgs.insert(0, {"role": "system", "content": "Continue the story."})
        if i % 4 == 0:  # two assistant turns
            msgs += [{"role": "user", "content": "And then?"}, {"role": "assistant", "content": texts[(i + 1) % len(texts)]}]
        out.append({"messages": msgs})
    return out


def tokenize(tok_dir, data, out, *extra):
    return subprocess.run([sys.executable, script, "--tokenizer", tok_dir, "--input", data, "--output", out, *extra],
                          capture_output=True, text=True)


chats = conversations()
chat_path = os.path.join(work, "chat.jsonl")
with open(chat_path, "w") as f:
    for c in chats:
        f.write(json.dumps(c) + "\n")

for name, style in STYLES.items():
    d = model_dir(name, style)
    hf = AutoTokenizer.from_pretrained(d)
    eos = hf.eos_token_id
    out = os.path.join(work, f"{name}.ftok")
    r = tokenize(d, chat_path, out)
    check(r.returncode == 0, f"{name}: messages tokenized ({r.stdout.strip() or r.stderr.strip()})")
    docs, vocab = read_ftok(out)
    check(len(docs) == len(chats) and vocab == len(hf), f"{name}: {len(docs)} examples, vocabulary {vocab}")
    same_ids = same_text = exact_mask = True
    for (ids, mask), c in zip(docs, chats):
        want = hf.apply_chat_template(c["messages"], tokenize=True)
        if not isinstance(want, list):  # (a BatchEncoding in some versions)
            want = want["input_ids"]
        same_ids &= ids == want
        same_text &= hf.decode(ids) == hf.apply_chat_template(c["messages"], tokenize=False)
        predicted = [t for t, m in zip(ids, mask) if m]
        expected = []
        for m in c["messages"]:
            if m["role"] == "assistant":
                expected += hf(style["content"](m["content"]), add_special_tokens=False)["input_ids"] + [eos]
        exact_mask &= predicted == expected
    check(same_ids, f"{name}: tokens equal Transformers' apply_chat_template(tokenize=True)")
    check(same_text, f"{name}: the rendered text equals apply_chat_template's")
    check(exact_mask, f"{name}: the mask covers exactly each assistant turn's tokens and its EOS ({hf.eos_token})")

# text gets EOS appended (and not with --no-eos)
qwen = os.path.join(work, "qwen2")
text_path = os.path.join(work, "text.jsonl")
with open(text_path, "w") as f:
    for t in texts[:5]:
        f.write(json.dumps({"text": t}) + "\n")
eos_q = AutoTokenizer.from_pretrained(qwen).eos_token_id
for extra, want in (([], True), (["--no-eos"], False)):
    tokenize(qwen, text_path, os.path.join(work, "text.ftok"), *extra)
    docs, _ = read_ftok(os.path.join(work, "text.ftok"))
    check(all((ids[-1] == eos_q) == want for ids, _ in docs), f"text {' '.join(extra) or '(default)'}: EOS appended {want}")

# prompt/completion: one text, as TRL tokenizes it (prompt + completion), EOS appended; the tokens
# that reach into the completion are trained, the prompt's are not
pc_path = os.path.join(work, "pc.jsonl")
pairs = [(t[:len(t) // 2], t[len(t) // 2:]) for t in texts[:6]]  # cut mid-word, mostly
with open(pc_path, "w") as f:
    for p, c in pairs:
        f.write(json.dumps({"prompt": p, "completion": c}) + "\n")
r = tokenize(qwen, pc_path, os.path.join(work, "pc.ftok"))
docs, _ = read_ftok(os.path.join(work, "pc.ftok"))
hf_q = AutoTokenizer.from_pretrained(qwen)
same_ids = exact_mask = True
for (ids, mask), (p, c) in zip(docs, pairs):
    enc = hf_q(p + c, return_offsets_mapping=True)
    same_ids &= ids == enc["input_ids"] + [eos_q]
    exact_mask &= mask == [1 if e > len(p) else 0 for _, e in enc["offset_mapping"]] + [1]
check(r.returncode == 0 and len(docs) == len(pairs) and same_ids, "prompt/completion: the tokens of prompt + completion, then EOS")
check(exact_mask, "prompt/completion: trained from the first token that reaches into the completion, and EOS")

# bad lines: exit 2, file and line named
bad = {
    "no assistant turn": {"messages": [{"role": "user", "content": "hi"}]},
    "unknown role": {"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]},
    "must be a string": {"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "x"}]},
    "expected \"text\"": {"input": "x"},
    "holds both text and messages": {"text": "x", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]},
}
for why, line in bad.items():
    p = os.path.join(work, "bad.jsonl")
    with open(p, "w") as f:
        f.write(json.dumps(chats[0]) + "\n" + json.dumps(line) + "\n")
    r = tokenize(qwen, p, os.path.join(work, "bad.ftok"))
    check(r.returncode == 2 and f"{p}:2:" in r.stderr and why in r.stderr and not os.path.exists(os.path.join(work, "bad.ftok")),
          f"bad line ({why}): exit {r.returncode}, {r.stderr.strip()}")
with open(os.path.join(work, "bad.jsonl"), "w") as f:
    f.write("{not json\n")
r = tokenize(qwen, os.path.join(work, "bad.jsonl"), os.path.join(work, "bad.ftok"))
check(r.returncode == 2 and "bad.jsonl:1: not valid JSON" in r.stderr, f"not JSON: exit {r.returncode}, {r.stderr.strip()}")
r = tokenize(os.path.join(qwen, "tokenizer.json"), chat_path, os.path.join(work, "bad.ftok"))
check(r.returncode == 2 and "chat.jsonl:1:" in r.stderr and "chat template" in r.stderr,
      f"messages without a chat template: exit {r.returncode}, {r.stderr.strip()}")

# Training on the chat data teaches the model to stop: the loss on the EOS tokens alone falls.
docs, vocab = read_ftok(os.path.join(work, "qwen2.ftok"))
eos_only = [(ids, [1 if (t == eos_q and m) else 0 for t, m in zip(ids, ms)]) for ids, ms in docs]
write_ftok(os.path.join(work, "eos_eval.ftok"), eos_only, vocab)
cfg = json.load(open(os.path.join(src, "examples/tiny/config.json")))
cfg["vocab_size"] = vocab
cfg_path = os.path.join(work, "config.json")
json.dump(cfg, open(cfg_path, "w"))
run_dir = os.path.join(work, "run")
r = subprocess.run([binary, "train", "--config", os.path.join(src, "examples/tiny/ftdist.toml"),
                    "--set", f"model.config={cfg_path}", "--set", f"data.train={os.path.join(work, 'qwen2.ftok')}",
                    "--set", f"data.eval={os.path.join(work, 'eos_eval.ftok')}", "--set", "data.seq_len=256",
                    "--set", "train.steps=80", "--set", "train.eval_every=10", "--set", "train.warmup_steps=5",
                    "--set", f"output.dir={run_dir}"], capture_output=True, text=True)
print(r.stderr[-1500:])
check(r.returncode == 0 and "packed whole" in r.stderr and "packing efficiency" in r.stderr,
      "ftdist trains on the chat data, examples packed whole (efficiency printed)")
evals = [json.loads(l)["eval_loss"] for l in open(os.path.join(run_dir, "metrics.jsonl")) if json.loads(l).get("eval_loss") is not None]
check(len(evals) >= 2 and evals[-1] < 0.5 * evals[0], f"loss on EOS falls: {' -> '.join(f'{e:.3f}' for e in evals)}")

print(f"{'all passed' if not failures else str(len(failures)) + ' failed'}")
sys.exit(1 if failures else 0)
