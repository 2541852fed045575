#!/usr/bin/env python3
"""Tokenizes JSONL text with a Hugging Face tokenizer.json (Llama-3, Qwen2, ...) into ftdist's
packed token file (.ftok, the format of include/ftdist/data/token_file.h), which `ftdist train`
reads as [data] train = "....ftok".

  python3 scripts/tokenize_hf.py --tokenizer tokenizer.json --input data.jsonl --output data.ftok

Lines are {"text": ...} (every token predicted) or {"prompt": ..., "completion": ...} (loss on the
completion only). Uses the `tokenizers` package (installed with transformers by scripts/setup.sh).
"""
import argparse
import json
import os
import struct
import sys

from tokenizers import Tokenizer


def documents(path, tok):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not valid JSON ({e})")
            if "text" in d:
                ids = tok.encode(d["text"]).ids
                yield ids, [1] * len(ids)
            elif "prompt" in d and "completion" in d:
                p = tok.encode(d["prompt"]).ids
                c = tok.encode(d["completion"], add_special_tokens=False).ids
                yield p + c, [0] * len(p) + [1] * len(c)
            else:
                sys.exit(f"{path}:{n}: expected \"text\", or \"prompt\" and \"completion\"")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()
    if not args.output.endswith(".ftok"):
        sys.exit(f"--output: the file name must end in .ftok, got '{args.output}'")
    tok = Tokenizer.from_file(args.tokenizer)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    offsets, tokens, mask = [0], [], []
    for ids, m in documents(args.input, tok):
        if not ids:
            continue
        tokens += ids
        mask += m
        offsets.append(len(tokens))
    masked = any(x == 0 for x in mask)
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"FTDTOK01")
        f.write(struct.pack("<IIQQII", 1, vocab, len(offsets) - 1, len(tokens), 1 if masked else 0, 0))
        f.write(struct.pack(f"<{len(offsets)}Q", *offsets))
        f.write(struct.pack(f"<{len(tokens)}I", *tokens))
        if masked:
            f.write(bytes(mask))
    os.replace(tmp, args.output)
    print(f"wrote {args.output}: {len(offsets) - 1} documents, {len(tokens)} tokens, vocabulary {vocab}")


if __name__ == "__main__":
    main()
