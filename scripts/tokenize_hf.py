#!/usr/bin/env python3
"""Tokenizes JSONL fine-tuning data with a Hugging Face tokenizer (Llama-3, Qwen2, ...) into ftdist's
token file (.ftok, the format of include/ftdist/data/token_file.h), which `ftdist train` reads as
[data] train = "....ftok".

  python3 scripts/tokenize_hf.py --tokenizer MODEL_DIR --input chat.jsonl --output chat.ftok
  python3 scripts/tokenize_hf.py --tokenizer tokenizer.json --input text.jsonl --output text.ftok

--tokenizer is a model directory (tokenizer.json, or a SentencePiece tokenizer.model, with
tokenizer_config.json, which holds the chat template and the special tokens) or a tokenizer.json
file alone. One JSON object per line:

  {"text": ...}                          every token predicted, EOS appended
  {"prompt": ..., "completion": ...}     the loss on the completion (and its EOS) only
  {"messages": [{"role": "system" | "user" | "assistant", "content": ...}, ...]}
                                         rendered with the model's chat template (Transformers'
                                         apply_chat_template); the loss on the assistant turns only,
                                         each with the end-of-turn token the template closes it with
                                         (--train-on all: every token)

EOS is the tokenizer's eos_token (tokenizer_config.json); --no-eos leaves it out of text and
completions. A bad line (not JSON, no known format, an unknown role, a non-string content, a
conversation without an assistant turn, messages without a chat template) stops the script with
exit 2 and names the file and line. The file is written atomically: nothing at --output on error.
Prints the counts; `ftdist train` prints the packing efficiency at its start.
"""
import argparse
import json
import os
import struct
import sys

ROLES = ("system", "user", "assistant", "tool", "ipython", "developer")


class BadLine(Exception):
    pass


def fail(msg):
    print(f"tokenize_hf.py: {msg}", file=sys.stderr)
    sys.exit(2)


class Tok:
    """The tokenizer: a Transformers fast tokenizer for a model directory, else tokenizers alone."""

    def __init__(self, path):
        self.hf = None
        if os.path.isdir(path):
            if not any(os.path.exists(os.path.join(path, f)) for f in ("tokenizer.json", "tokenizer.model")):
                fail(f"{path}: no tokenizer.json or SentencePiece tokenizer.model in the model directory")
            from transformers import AutoTokenizer
            try:
                self.hf = AutoTokenizer.from_pretrained(path)
            except Exception as e:  # noqa: BLE001 (a tokenizer.model alone needs the sentencepiece package)
                spm_only = not os.path.exists(os.path.join(path, "tokenizer.json"))
                fail(f"{path}: cannot load the model directory's tokenizer ({type(e).__name__}: {e})" +
                     ("; a SentencePiece tokenizer.model alone needs the sentencepiece package (pip install sentencepiece), "
                      "or let ftdist read it: ftdist prepare-data --tokenizer " + path + " ..." if spm_only else ""))
            self.vocab = len(self.hf)
            self.eos = self.hf.eos_token_id
            self.template = getattr(self.hf, "chat_template", None)
        else:
            from tokenizers import Tokenizer
            try:
                self.raw = Tokenizer.from_file(path)
            except Exception as e:  # noqa: BLE001 (the library's own message names the problem)
                fail(f"{path}: not a tokenizer.json ({e})")
            self.vocab = self.raw.get_vocab_size(with_added_tokens=True)
            self.eos = None
            self.template = None
        self.untrim_offsets()

    def encode(self, text, special=True):
        if self.hf is not None:
            return self.hf(text, add_special_tokens=special)["input_ids"]
        return self.raw.encode(text, add_special_tokens=special).ids

    def untrim_offsets(self):
        """The post-processor's trim_offsets turned off: the offsets then hold each token's
        bytes, leading space included, as ftdist counts them (the ids do not change)."""
        backend = getattr(self.hf, "backend_tokenizer", None) if self.hf is not None else self.raw
        if backend is None:  # (a slow tokenizer: no post-processor to change)
            return
        j = json.loads(backend.to_str())

        def untrim(p):
            if isinstance(p, dict):
                if p.get("trim_offsets"):  # ByteLevel, RobertaProcessing
                    p["trim_offsets"] = False
                for v in p.get("processors") or []:
                    untrim(v)
        if j.get("post_processor"):
            untrim(j["post_processor"])
            from tokenizers import Tokenizer
            backend.post_processor = Tokenizer.from_str(json.dumps(j)).post_processor

    def encode_offsets(self, text):
        """Token ids of `text` with the special tokens the tokenizer adds (BOS, a post-processor's
        closing token), and each token's (start, end) character; (0, 0) for an added token."""
        if self.hf is not None:
            enc = self.hf(text, return_offsets_mapping=True)
            return enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]
        enc = self.raw.encode(text)
        return enc.ids, list(enc.offsets)

    def encode_spans(self, text):
        """Token ids of `text` (special tokens in it parsed, none added) and each token's (start, end) character."""
        enc = self.hf(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]


def token_ends(offsets, size):
    """Where each token ends for the loss mask: at the next token's start (the whitespace before a word
    belongs to the word's token), or at its own end where that is later (a byte-level token ending
    inside a character shares it with the next); a token added by the tokenizer ((0, 0)) is skipped."""
    ends, nxt = [0] * len(offsets), size
    for i in range(len(offsets) - 1, -1, -1):
        ends[i] = max(nxt, offsets[i][1])
        if offsets[i] != (0, 0):
            nxt = offsets[i][0]
    return ends


def with_eos(ids, tok, eos):
    return ids + [tok.eos] if eos and tok.eos is not None and (not ids or ids[-1] != tok.eos) else ids


def render(tok, messages, generation_prompt=False, tools=None):
    import jinja2  # (Transformers' template engine: a template that raises is the line's error, exit 2)
    try:
        return tok.hf.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt)
    except jinja2.TemplateError as e:
        raise BadLine(f"the chat template raised: {e}")


def messages_doc(d, tok, train_on, first_trained=0):
    msgs = d["messages"]
    tools = d.get("tools")  # the line's tool schemas, passed to the template as Transformers' tools=
    if not isinstance(msgs, list) or not msgs:
        raise BadLine("\"messages\" must be a non-empty list of {\"role\", \"content\"}")
    for k, m in enumerate(msgs):
        if not isinstance(m, dict) or "role" not in m:
            raise BadLine(f"message {k}: expected {{\"role\": ..., \"content\": ...}}")
        if m["role"] not in ROLES:
            raise BadLine(f"message {k}: unknown role {json.dumps(m['role'])} (expected {', '.join(ROLES[:-1])} or {ROLES[-1]})")
        calls = isinstance(m.get("tool_calls"), list) and len(m["tool_calls"]) > 0
        if not (isinstance(m.get("content"), (str, list, dict)) or (calls and m.get("content") is None)):
            raise BadLine(f"message {k}: \"content\" must be a string, got {type(m.get('content')).__name__}"
                          + ("" if calls else "; null or absent only beside \"tool_calls\""))
    turns = [k for k, m in enumerate(msgs) if m["role"] == "assistant" and k >= first_trained]
    if not turns:
        raise BadLine("the completion has no assistant message (nothing to learn from)" if first_trained
                      else "the conversation has no assistant turn (nothing to learn from)")
    if tok.hf is None or not tok.template:
        raise BadLine("\"messages\" need the model's chat template: give --tokenizer a model directory whose "
                      "tokenizer_config.json has a chat_template")
    full = render(tok, msgs, tools=tools)
    # Each assistant turn's characters: what its rendering adds after the prompt for it, up to the end
    # of its turn marker (whitespace the template puts after that marker belongs to the next turn).
    spans = []
    for k in turns:
        before, upto = render(tok, msgs[:k], generation_prompt=True, tools=tools), render(tok, msgs[:k + 1], tools=tools)
        # A template that closes a conversation with EOS where no generation prompt follows (Phi-3)
        # has it after the last turn only.
        eos_text = tok.hf.eos_token or ""
        if k + 1 < len(msgs) and eos_text and upto.rstrip().endswith(eos_text) and not full.startswith(upto):
            upto = upto.rstrip()[:-len(eos_text)]
        if not (upto.startswith(before) and full.startswith(upto)):
            raise BadLine("the chat template does not render a conversation's beginning as a prefix of it: "
                          "its assistant turns cannot be located")
        spans.append((len(before), len(upto.rstrip())))
    # A token is trained when its characters (up to the next token's start) overlap a turn's, as
    # Transformers' assistant mask marks each token holding a character of the turn.
    ids, offsets = tok.encode_spans(full)
    ends = token_ends(offsets, len(full))
    labels = [1 if train_on == "all" or any(s < b and e > a for a, b in spans) else 0 for (s, _), e in zip(offsets, ends)]
    return ids, labels


def documents(path, tok, eos, train_on):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as e:
                    raise BadLine(f"not valid JSON ({e})")
                if not isinstance(d, dict):
                    raise BadLine("expected a JSON object")
                kinds = [k for k in ("text", "messages") if k in d] + (["prompt/completion"] if "prompt" in d and "completion" in d else [])
                if len(kinds) > 1:  # (as ftdist refuses it: a line is one document)
                    raise BadLine(f"the line holds both {kinds[0]} and {kinds[1]}; a line is one document: keep one of them")
                if "messages" in d:
                    yield messages_doc(d, tok, train_on)
                elif "text" in d:
                    if not isinstance(d["text"], str):
                        raise BadLine("\"text\" must be a string")
                    ids = with_eos(tok.encode(d["text"]), tok, eos)
                    yield ids, [1] * len(ids)
                elif isinstance(d.get("prompt"), list) and isinstance(d.get("completion"), list):
                    # TRL's conversational prompt/completion: the prompt's messages are context only
                    line = {"messages": d["prompt"] + d["completion"], "tools": d.get("tools")}
                    yield messages_doc(line, tok, train_on, first_trained=len(d["prompt"]))
                elif "prompt" in d and "completion" in d:
                    if not isinstance(d["prompt"], str) or not isinstance(d["completion"], str):
                        raise BadLine("\"prompt\" and \"completion\" must be strings")
                    # One text, as TRL tokenizes it (the completion tokenized on its own would take a
                    # word start the joined text does not have); a token is trained when it reaches
                    # into the completion.
                    n = len(d["prompt"])
                    ids, offsets = tok.encode_offsets(d["prompt"] + d["completion"])
                    # the tokens the tokenizer adds before the text (BOS) are not trained, those it
                    # adds after it (a post-processor's closing token, as EOS) are
                    lead = next((i for i, o in enumerate(offsets) if o != (0, 0)), len(ids))
                    ends = token_ends(offsets, len(d["prompt"] + d["completion"]))
                    labels = [1 if e > n or (i >= lead and all(o == (0, 0) for o in offsets[i:])) else 0
                              for i, e in enumerate(ends)]
                    full = with_eos(ids, tok, eos)
                    yield full, labels + [1] * (len(full) - len(ids))
                else:
                    raise BadLine("expected \"text\", \"prompt\" and \"completion\", or \"messages\"")
            except BadLine as e:
                fail(f"{path}:{n}: {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True, help="a model directory (chat template, special tokens) or a tokenizer.json")
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--no-eos", action="store_true", help="do not append EOS to text and completions")
    ap.add_argument("--train-on", choices=("assistant", "all"), default="assistant",
                    help="messages: the loss on the assistant turns (default) or on every token")
    args = ap.parse_args()
    if not args.output.endswith(".ftok"):
        fail(f"--output: the file name must end in .ftok, got '{args.output}'")
    if not os.path.exists(args.input):
        fail(f"{args.input}: no such file")
    if not os.path.exists(args.tokenizer):
        fail(f"{args.tokenizer}: no such file or directory")
    tok = Tok(args.tokenizer)
    offsets, tokens, mask = [0], [], []
    for ids, m in documents(args.input, tok, not args.no_eos, args.train_on):
        if not ids:
            continue
        tokens += ids
        mask += m
        offsets.append(len(tokens))
    if len(offsets) == 1:
        fail(f"{args.input}: no example")
    masked = any(x == 0 for x in mask)
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"FTDTOK01")
        f.write(struct.pack("<IIQQII", 1, tok.vocab, len(offsets) - 1, len(tokens), 1 if masked else 0, 0))
        f.write(struct.pack(f"<{len(offsets)}Q", *offsets))
        f.write(struct.pack(f"<{len(tokens)}I", *tokens))
        if masked:
            f.write(bytes(mask))
    os.replace(tmp, args.output)
    predicted = sum(mask)
    print(f"wrote {args.output}: {len(offsets) - 1} examples, {len(tokens)} tokens ({predicted} predicted), "
          f"vocabulary {tok.vocab}, EOS {tok.eos if tok.eos is not None and not args.no_eos else 'none'}")


if __name__ == "__main__":
    main()
