#!/usr/bin/env python3
"""ftdist's own byte-level BPE tokenizer.json reader against Transformers (the oracle), offline.

Small tokenizers are trained here with Hugging Face tokenizers on the bundled corpus plus Unicode
text, built as the model families build theirs: Llama-3 (its Split regex, ByteLevel without regex,
ignore_merges, a TemplateProcessing BOS), Qwen2 (NFC, its regex, no BOS), GPT-2 (ByteLevel's own
regex), and others that use the rest of what ftdist reads (every Split behavior, invert, a string
pattern, prefix space, lstrip / rstrip / single_word added tokens, lazy and possessive quantifiers,
\\w \\d classes, case-insensitive groups, lookahead, byte_fallback, unk_token). For each, one JSONL
of generated documents — text, prompt/completion and chat `messages` — goes through
`ftdist prepare-data --tokenizer DIR` and through scripts/tokenize_hf.py (Transformers'
AutoTokenizer, or tokenizers alone for a lone tokenizer.json); the two token files must hold the
same tokens and loss masks, document by document. The documents mix scripts, combining marks
(NFC reorders and composes them), Hangul jamo, digits of several kinds, emoji, every kind of
whitespace, contractions in odd cases (ſ, the Kelvin sign), long runs and the special tokens.

Then: a tokenizer.json ftdist cannot read (WordPiece, Metaspace, a lookbehind, a merge of unknown
tokens, bad JSON) exits 2 naming the file and the key; `ftdist train` reads chat JSONL through a
tokenizer.json model directory.

usage: check_bpe_tokenizer.py FTDIST_BINARY SOURCE_DIR WORKDIR
"""
import json
import os
import random
import shutil
import subprocess
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from ftok import read_ftok

binary, src, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
script = os.path.join(src, "scripts/tokenize_hf.py")
corpus = [json.loads(l)["text"] for l in open(os.path.join(src, "examples/tiny/corpus.jsonl"))]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
          r"\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
         r"\s+(?!\S)|\s+")
# GPT-4o's, with possessive-free alternatives ftdist reads: upper-then-lower words, optional
# contractions after them, a class of slashes
O200K = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
         r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
         r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
ODD = r"\w+?x|\d{2,}+|[a-cX-Z\-]+|(?:ab)?c|\p{^L}{3}|(?=\s)\s\S|[\u00e0-\u00ff]+|\x41\u0042|\.|\P{N}"

CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
          "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3_TEMPLATE = ("{{ bos_token }}{% for message in messages %}"
                   "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
                   "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

FRAGMENTS = [
    "the", "cat", "sat", " on", " the mat", "Hello", "WORLD", "it's", "IT'S", "we'll", "WE'LL", "they'Re", "x'ſ", "y'\u212a",
    "don't", "1", "12", "1234567", "\u0663\u0664\u0665", "\u00b2\u00b3", "\u2167", "3.14159", "日本語", "中文文本", "한국어",
    "e\u0301", "cafe\u0301", "\u1100\u1161\u11a8", "\u212b", "A\u030a", "a\u0323\u0307", "a\u0307\u0323", "\u0958",
    "o\u0308\u0301", "😀", "👍🏽", "👨\u200d👩\u200d👧", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n\n", " \n ", "\u00a0",
    "\u3000", "\u2028", "\x0b", "\x0c", "\x1c", "\x85", "\u200b", "...", "!!!", "—", "«»", "--->", "/**/", "a/b//c",
    "snake_case", "CamelCaseWord", "ΑΒΓ αβγ", "Ǆǅǆ", "ﬁ", "Straße", "İstanbul", "ĳ", "\u0301", "\ufeff", "x" * 300,
    " " * 200, "9" * 120, "ab" * 80, "\\u0041", "\"quoted\"", "<tag>", "&amp;",
    # letters of Unicode 15.1 and 16.0; marks and a composition tokenizers' NFC does not know
    "\U0002EBF0\U0002EBF1", "\U00010D50\U00013460", "\u0628\u08ca\u0650", "\u0995\u09fe\u09bc", "\U00011935\U00011930",
]


def special_fragments(specials):
    return [s for s in specials] + [" " + s + " " for s in specials] + ["\n" + s + "\n" for s in specials]


def documents(specials, seed, n=160):
    rng = random.Random(seed)
    frags = FRAGMENTS + special_fragments(specials)

    def text(k):
        return "".join(rng.choice(frags) if rng.random() < 0.7 else " " + rng.choice(corpus).split()[0] for _ in range(rng.randint(1, k)))

    lines = []
    for i in range(n):
        kind = i % 4
        if kind == 0 or kind == 3:
            lines.append({"text": text(30)})
        elif kind == 1:
            lines.append({"prompt": text(10), "completion": text(10)})
        else:
            msgs = [{"role": "user", "content": text(8)}, {"role": "assistant", "content": text(8)}]
            if rng.random() < 0.5:
                msgs += [{"role": "user", "content": text(5)}, {"role": "assistant", "content": text(5)}]
            lines.append({"messages": msgs})
    return lines


def nfc_stress(seed, n=200):
    """Text lines that NFC changes: decomposed letters with marks in any order (canonical reordering),
    Hangul jamo that compose into syllables (LV, LVT), singletons, composition exclusions, Tibetan
    and Hebrew marks, letters of Unicode 15."""
    rng = random.Random(seed)
    bases = "aeoAEOuncsz" + "\u0915\u0916\u05d0\u0f40\uac00\u03b1\u0391\u1f00"
    marks = [chr(c) for c in list(range(0x300, 0x370)) + [0x323, 0x327, 0x328, 0x93c, 0x5b4, 0x5bc, 0xf71, 0xf72, 0xf74, 0xf80, 0x345]]
    jamo = [chr(c) for c in list(range(0x1100, 0x1113)) + list(range(0x1161, 0x1176)) + list(range(0x11a8, 0x11c3))]
    odd = [chr(c) for c in (0x212b, 0x2126, 0x340, 0x341, 0x343, 0x374, 0x37e, 0x387, 0x1f71, 0xf900, 0xfa0d, 0x958, 0x95f,
                            0x9dc, 0xfb1d, 0x2adc, 0x1e030, 0x31350, 0x11c2, 0xd7a3, 0x1d15e)]
    lines = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 25)):
            r = rng.random()
            if r < 0.4:
                parts.append(rng.choice(bases) + "".join(rng.choice(marks) for _ in range(rng.randint(0, 4))))
            elif r < 0.6:
                parts.append("".join(rng.choice(jamo) for _ in range(rng.randint(1, 4))))
            elif r < 0.75:
                parts.append(rng.choice(odd))
            else:
                parts.append(rng.choice([" ", "  ", "\n", " the", "x", "9", "'s"]))
        lines.append({"text": "".join(parts)})
    return lines


def train_tokenizer(pre, normalizer, specials, extra_train=(), model_kw=None, vocab=700, alphabet=True):
    tok = Tokenizer(models.BPE(unk_token=None, **(model_kw or {})))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    rng = random.Random(7)
    texts = corpus + ["".join(rng.choice(FRAGMENTS) for _ in range(20)) for _ in range(300)] + list(extra_train)
    kw = {"initial_alphabet": pre_tokenizers.ByteLevel.alphabet()} if alphabet else {}
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False, **kw))
    return tok


def byte_level(use_regex=False, prefix=False):
    return pre_tokenizers.ByteLevel(add_prefix_space=prefix, use_regex=use_regex)


def split_then_bytes(pattern, behavior="isolated", invert=False, prefix=False):
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior=behavior, invert=invert), byte_level(prefix=prefix)])


def save(name, tok, config=None, post=None, edit=None):
    d = os.path.join(work, name)
    os.makedirs(d)
    if post is not None:
        tok.post_processor = post
    path = os.path.join(d, "tokenizer.json")
    tok.save(path)
    if edit:  # a change the tokenizers API does not make (ignore_merges, byte_fallback)
        j = json.load(open(path))
        edit(j)
        json.dump(j, open(path, "w"), ensure_ascii=False)
    if config is not None:
        cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1 << 20}
        cfg.update(config)
        json.dump(cfg, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)
    return d


def compare(name, tok_arg, lines):
    data = os.path.join(work, name + ".jsonl")
    with open(data, "w", encoding="utf-8") as f:
        f.write("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    ours, theirs = os.path.join(work, name + ".ftdist.ftok"), os.path.join(work, name + ".hf.ftok")
    a = subprocess.run([binary, "prepare-data", "--tokenizer", tok_arg, "--input", data, "--output", ours], capture_output=True, text=True)
    b = subprocess.run([sys.executable, script, "--tokenizer", tok_arg, "--input", data, "--output", theirs], capture_output=True, text=True)
    check(a.returncode == 0 and b.returncode == 0, f"{name}: prepare-data exit {a.returncode} {a.stderr[-400:] if a.returncode else ''}; "
                                                   f"tokenize_hf.py exit {b.returncode} {b.stderr[-400:] if b.returncode else ''}")
    if a.returncode or b.returncode:
        return
    (da, va), (db, vb) = read_ftok(ours), read_ftok(theirs)
    check(va == vb, f"{name}: vocabulary {va} (Transformers: {vb})")
    bad = [i for i, (x, y) in enumerate(zip(da, db)) if x != y]
    detail = ""
    if bad:
        i = bad[0]
        (ia, ma), (ib, mb) = da[i], db[i]
        k = next((j for j in range(min(len(ia), len(ib))) if ia[j] != ib[j] or ma[j] != mb[j]), min(len(ia), len(ib)))
        detail = (f"; first at line {i + 1} {json.dumps(lines[i], ensure_ascii=False)[:300]}: token {k}: "
                  f"ftdist {ia[max(0, k - 3):k + 4]} mask {ma[max(0, k - 3):k + 4]}, Transformers {ib[max(0, k - 3):k + 4]} mask {mb[max(0, k - 3):k + 4]}")
    ntok = sum(len(x[0]) for x in db)
    check(len(da) == len(db) and not bad, f"{name}: {len(db)} documents, {ntok} tokens: the same tokens and masks "
                                          f"({len(bad)} documents differ{detail})")


# The families, each a model directory (tokenizer.json + tokenizer_config.json) or a lone tokenizer.json.
LLAMA_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CASES = []

t = train_tokenizer(split_then_bytes(LLAMA3), None, LLAMA_SPECIALS)
bos = t.token_to_id("<|begin_of_text|>")
CASES.append(("llama3", save("llama3", t, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": LLAMA3_TEMPLATE},
                             processors.Sequence([processors.ByteLevel(trim_offsets=False),
                                                  processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])]),
                             edit=lambda j: j["model"].update(ignore_merges=True)), LLAMA_SPECIALS))

t = train_tokenizer(split_then_bytes(QWEN2), normalizers.NFC(), QWEN_SPECIALS)
CASES.append(("qwen2", save("qwen2", t, {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": CHATML},
                            processors.ByteLevel(trim_offsets=False)), QWEN_SPECIALS))

t = train_tokenizer(pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(O200K), behavior="isolated"), byte_level()]), None, QWEN_SPECIALS)
CASES.append(("o200k", save("o200k", t, {"bos_token": None, "eos_token": "<|im_end|>", "chat_template": CHATML}), QWEN_SPECIALS))

# GPT-2: ByteLevel's own regex; the config names a BOS the post-processor does not add.
t = train_tokenizer(byte_level(use_regex=True), None, ["<|endoftext|>"])
CASES.append(("gpt2", save("gpt2", t, {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}, processors.ByteLevel()), ["<|endoftext|>"]))

# tokenizer_config.json's add_bos_token over the post-processor: off for a Llama-3 tokenizer, on for a
# GPT-2 one.
for name, base, bos_token, add in (("llama3-no-bos", "llama3", "<|begin_of_text|>", False), ("gpt2-bos", "gpt2", "<|endoftext|>", True)):
    d = os.path.join(work, name)
    os.makedirs(d)
    shutil.copyfile(os.path.join(work, base, "tokenizer.json"), os.path.join(d, "tokenizer.json"))
    cfg = json.load(open(os.path.join(work, base, "tokenizer_config.json")))
    cfg.update(bos_token=bos_token, add_bos_token=add)
    json.dump(cfg, open(os.path.join(d, "tokenizer_config.json"), "w"))
    CASES.append((name, d, LLAMA_SPECIALS if base == "llama3" else ["<|endoftext|>"]))

# Prefix space, a string split, digits merged with what follows, added tokens that strip, a
# single-word one, and one that is not special; a lone tokenizer.json (no config: no EOS).
t = train_tokenizer(pre_tokenizers.Sequence([pre_tokenizers.Split(" - ", behavior="removed"),
                                             pre_tokenizers.Split(Regex(r"\p{N}"), behavior="merged_with_next"),
                                             byte_level(use_regex=True, prefix=True)]), None, ["<s>", "</s>"])
t.add_special_tokens([AddedToken("<mask>", lstrip=True), AddedToken("[R]", rstrip=True), AddedToken("cat", single_word=True)])
t.add_tokens([AddedToken("<extra>", normalized=False)])
d = save("strip", t, post=processors.RobertaProcessing(("</s>", t.token_to_id("</s>")), ("<s>", t.token_to_id("<s>"))))
CASES.append(("strip", os.path.join(d, "tokenizer.json"), ["<mask>", "[R]", "cat", "<extra>", "<s>"]))

# A post-processor closing token beside the config's EOS; tokenizer.json's own stripping EOS with no
# added_tokens_decoder in the config.
t = train_tokenizer(split_then_bytes(QWEN2), None, QWEN_SPECIALS)
CASES.append(("closing", save("closing", t, {"bos_token": None, "eos_token": "<|im_end|>"},
                              processors.TemplateProcessing(single="$A <|endoftext|>", special_tokens=[("<|endoftext|>", 0)])), QWEN_SPECIALS))
t = train_tokenizer(split_then_bytes(QWEN2), None, QWEN_SPECIALS)
t.add_special_tokens([AddedToken("<|im_end|>", lstrip=True, rstrip=True)])
CASES.append(("qwen2-strip", save("qwen2-strip", t, {"bos_token": None, "eos_token": "<|im_end|>", "chat_template": CHATML}), QWEN_SPECIALS))
# A template that writes no end marker after a turn (its trailing Unicode whitespace is not the
# turn's), and a config whose added_tokens_decoder gives an existing token other flags (they win).
t = train_tokenizer(split_then_bytes(QWEN2), None, QWEN_SPECIALS)
PLAIN = ("{% for m in messages %}{{ m.role + ': ' + m.content + '\\n' }}{% endfor %}"
         "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
CASES.append(("plain-template", save("plain-template", t, {"bos_token": None, "eos_token": "<|im_end|>", "chat_template": PLAIN}), QWEN_SPECIALS))
t = train_tokenizer(split_then_bytes(QWEN2), None, QWEN_SPECIALS)
decoder = {str(t.token_to_id(x)): {"content": x, "lstrip": x == "<|im_end|>", "rstrip": x == "<|im_end|>", "special": True}
           for x in QWEN_SPECIALS}
CASES.append(("config-flags", save("config-flags", t, {"bos_token": None, "eos_token": "<|im_end|>", "chat_template": CHATML,
                                                       "added_tokens_decoder": decoder}), QWEN_SPECIALS))

# Config-only added tokens: numbered from the next free id, as Transformers numbers them; a gap is
# refused (below).
t = train_tokenizer(split_then_bytes(QWEN2), None, QWEN_SPECIALS)
n = t.get_vocab_size(with_added_tokens=True)
decoder = {str(n + k): {"content": x, "lstrip": False, "rstrip": k == 1, "special": True} for k, x in enumerate(["<|tool|>", "<|think|>"])}
CASES.append(("config-tokens", save("config-tokens", t, {"bos_token": None, "eos_token": "<|im_end|>", "chat_template": CHATML,
                                                         "added_tokens_decoder": decoder}), QWEN_SPECIALS + ["<|tool|>", "<|think|>"]))

# Tokens the config names that tokenizer.json lacks: each becomes an added token, a new one numbered
# from the next free id in Transformers' order (bos ... mask, other "*_token" keys, those given as
# objects first, extra_special_tokens), a piece of the vocabulary ("the") keeping its id.
t = train_tokenizer(split_then_bytes(QWEN2), None, QWEN_SPECIALS)
NAMED = {"bos_token": None, "eos_token": "<|eos|>", "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "the",
         "sep_token": {"content": "<sep>", "lstrip": True, "rstrip": True, "special": True, "__type": "AddedToken"},
         "image_token": "<image>", "boi_token": {"content": "<boi>", "rstrip": True, "__type": "AddedToken"},
         "extra_special_tokens": ["<x1>", "<|im_end|>", "<x2>"], "chat_template": CHATML}
CASES.append(("named-tokens", save("named-tokens", t, NAMED),
              QWEN_SPECIALS + ["<|eos|>", "<pad>", "<unk>", "<sep>", "<image>", "<boi>", "<x1>", "<x2>"]))
# Named ones of extra_special_tokens replace a "*_token" key of their name; a named token given as an
# object without "normalized" is matched in the text as given (NFC would compose "e\u0301").
t = train_tokenizer(split_then_bytes(QWEN2), normalizers.NFC(), QWEN_SPECIALS)
CASES.append(("named-dict", save("named-dict", t, {"bos_token": None, "eos_token": "<|im_end|>", "x_token": "<x3>",
                                                   "pad_token": {"content": "<pe\u0301>", "__type": "AddedToken"},
                                                   "extra_special_tokens": {"x_token": "<x1>", "y_token": "<y1>"}}),
              QWEN_SPECIALS + ["<x3>", "<x1>", "<y1>", "<pe\u0301>", "<p\u00e9>"]))
# A config saved without added_tokens_decoder (before Transformers 4.34): special_tokens_map.json
# beside it overrides its tokens.
t = train_tokenizer(split_then_bytes(QWEN2), None, QWEN_SPECIALS)
d = save("legacy-map", t, {"bos_token": None, "eos_token": "<|old|>", "additional_special_tokens": ["<a1>"]})
json.dump({"eos_token": {"content": "<|im_end|>", "lstrip": False}, "pad_token": "<pad>", "additional_special_tokens": ["<a2>"]},
          open(os.path.join(d, "special_tokens_map.json"), "w"))
CASES.append(("legacy-map", d, QWEN_SPECIALS + ["<|old|>", "<pad>", "<a1>", "<a2>"]))

# Quantifiers as Oniguruma reads them ({n,m}+, {n}?, {,m}, (?:..){1}, (?i) to the group's end), and
# empty matches beside matches.
t = train_tokenizer(pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(r"\p{N}{1,3}+|(?:ab){1}|e{2}?t|o{,2}n|h(?i)e|s|\s+"), behavior="isolated"),
    pre_tokenizers.Split(Regex(r"x*"), behavior="merged_with_next"),
    pre_tokenizers.Split(Regex(r"\s*"), behavior="merged_with_previous", invert=True), byte_level()]), None, QWEN_SPECIALS)
CASES.append(("quantifiers", save("quantifiers", t, {"bos_token": None, "eos_token": "<|im_end|>"}), QWEN_SPECIALS))

# The remaining behaviors and invert, an odd pattern, merged with previous; byte_fallback and an
# unk token where the byte alphabet is incomplete.
for behavior, invert in (("merged_with_previous", False), ("contiguous", True), ("isolated", True)):
    t = train_tokenizer(split_then_bytes(r"\s+|[.,!?]", behavior, invert), None, QWEN_SPECIALS)
    CASES.append((f"{behavior}-{invert}", save(f"{behavior}-{invert}", t, {"bos_token": None, "eos_token": "<|im_end|>"}), QWEN_SPECIALS))
t = train_tokenizer(split_then_bytes(ODD), None, QWEN_SPECIALS)
CASES.append(("odd", save("odd", t, {"bos_token": None, "eos_token": "<|im_end|>"}), QWEN_SPECIALS))
t = train_tokenizer(split_then_bytes(QWEN2), None, ["<unk>", "<|im_end|>"] + [f"<0x{b:02X}>" for b in range(256)], alphabet=False)
CASES.append(("fallback", save("fallback", t, {"bos_token": None, "eos_token": "<|im_end|>"},
                               edit=lambda j: j["model"].update(byte_fallback=True, unk_token="<unk>")), ["<|im_end|>"]))
t = train_tokenizer(split_then_bytes(QWEN2), None, ["<unk>", "<|im_end|>"], alphabet=False, vocab=300)
CASES.append(("unk", save("unk", t, {"bos_token": None, "eos_token": "<|im_end|>"},
                          edit=lambda j: j["model"].update(unk_token="<unk>", fuse_unk=True)), ["<|im_end|>"]))

for k, (name, tok_arg, specials) in enumerate(CASES):
    lines = documents(specials, seed=k)
    has_template = os.path.isdir(tok_arg) and "chat_template" in json.load(open(os.path.join(tok_arg, "tokenizer_config.json")))
    if not has_template:
        lines = [x for x in lines if "messages" not in x]
    if name in ("qwen2", "llama3"):
        lines += nfc_stress(k)
    if name == "plain-template":
        lines += [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure" + ws},
                                {"role": "user", "content": "x"}, {"role": "assistant", "content": "y" + ws}]}
                  for ws in ("\u00a0", "\u3000", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", " \u00a0 ")]
    compare(name, tok_arg, lines)


# Tokenizer files ftdist cannot read: exit 2 naming the file and the key, nothing written.
def refused(name, edit, key):
    base = json.load(open(os.path.join(work, "qwen2", "tokenizer.json")))
    edit(base)
    d = os.path.join(work, "bad-" + name)
    os.makedirs(d)
    path = os.path.join(d, "tokenizer.json")
    with open(path, "w") as f:
        f.write(base if isinstance(base, str) else json.dumps(base))
    out = os.path.join(d, "out.ftok")
    r = subprocess.run([binary, "prepare-data", "--tokenizer", d, "--input", os.path.join(src, "examples/tiny/corpus.jsonl"),
                        "--output", out], capture_output=True, text=True, timeout=60)
    check(r.returncode == 2 and path in r.stderr and key in r.stderr and not os.path.exists(out),
          f"{name}: exit {r.returncode} naming the file and {key!r}: {r.stderr.strip()[-300:]}")


refused("wordpiece", lambda j: j["model"].update(type="WordPiece"), "model.type")
refused("metaspace", lambda j: j.update(pre_tokenizer={"type": "Metaspace", "replacement": "\u2581"}), "pre_tokenizer.type")
refused("lookbehind", lambda j: j["pre_tokenizer"]["pretokenizers"][0]["pattern"].update(Regex="(?<=a)b"), "(?<=a)b")
refused("script", lambda j: j["pre_tokenizer"]["pretokenizers"][0]["pattern"].update(Regex=r"\p{Han}+"), "Han")
refused("merge", lambda j: j["model"]["merges"].insert(0, ["nosuch", "token"]), "model.merges entry 0")
refused("normalizer", lambda j: j.update(normalizer={"type": "NFKC"}), "normalizer")
refused("no-byte-level", lambda j: j["pre_tokenizer"]["pretokenizers"].pop(), "ByteLevel")
refused("dropout", lambda j: j["model"].update(dropout=0.1), "model.dropout")
refused("nesting", lambda j: j["pre_tokenizer"]["pretokenizers"][0]["pattern"].update(Regex="(" * 100 + "a" + ")" * 100), "nested more than 64")
refused("flag-type", lambda j: j["model"].update(ignore_merges="yes"), "model.ignore_merges")
refused("behavior-type", lambda j: j["pre_tokenizer"]["pretokenizers"][0].update(behavior=3), "behavior")
# A pattern that backtracks without end on some text: an error naming the line and the pattern
# within seconds, not a hang.
base = json.load(open(os.path.join(work, "qwen2", "tokenizer.json")))
base["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\s*[\r\n]+| "
d = os.path.join(work, "bad-backtracking")
os.makedirs(d)
json.dump(base, open(os.path.join(d, "tokenizer.json"), "w"))
data = os.path.join(d, "spaces.jsonl")
open(data, "w").write(json.dumps({"text": "ok"}) + "\n" + json.dumps({"text": " " * 300000}) + "\n")
r = subprocess.run([binary, "prepare-data", "--tokenizer", d, "--input", data, "--output", os.path.join(d, "o.ftok")],
                   capture_output=True, text=True, timeout=60)
check(r.returncode == 2 and "spaces.jsonl:2" in r.stderr and "backtracks" in r.stderr and not os.path.exists(os.path.join(d, "o.ftok")),
      f"a pattern backtracking without end: exit {r.returncode}: {r.stderr.strip()[-300:]}")
d = os.path.join(work, "bad-config-id")
os.makedirs(d)
shutil.copyfile(os.path.join(work, "config-tokens", "tokenizer.json"), os.path.join(d, "tokenizer.json"))
cfg = json.load(open(os.path.join(work, "config-tokens", "tokenizer_config.json")))
cfg["added_tokens_decoder"] = {str(int(k) + 10): v for k, v in cfg["added_tokens_decoder"].items()}
json.dump(cfg, open(os.path.join(d, "tokenizer_config.json"), "w"))
r = subprocess.run([binary, "prepare-data", "--tokenizer", d, "--input", os.path.join(src, "examples/tiny/corpus.jsonl"),
                    "--output", os.path.join(d, "o.ftok")], capture_output=True, text=True, timeout=60)
check(r.returncode == 2 and "tokenizer_config.json" in r.stderr and "next free id" in r.stderr,
      f"a config-only added token with an id Transformers would not give it: exit {r.returncode}: {r.stderr.strip()[-300:]}")
d = os.path.join(work, "bad-json")
os.makedirs(d)
open(os.path.join(d, "tokenizer.json"), "w").write('{"model": {"type": "BPE", ')
r = subprocess.run([binary, "prepare-data", "--tokenizer", d, "--input", os.path.join(src, "examples/tiny/corpus.jsonl"),
                    "--output", os.path.join(d, "o.ftok")], capture_output=True, text=True, timeout=60)
check(r.returncode == 2 and "tokenizer.json" in r.stderr and "not a JSON object" in r.stderr, f"bad JSON: exit {r.returncode}: {r.stderr.strip()[-200:]}")

# `ftdist train` on chat JSONL through a tokenizer.json model directory (examples/chat's), packed.
run = os.path.join(work, "train")
r = subprocess.run([binary, "train", "--config", os.path.join(src, "examples/chat/ftdist.toml"),
                    "--set", f"data.train={os.path.join(src, 'examples/chat/chat.jsonl')}",
                    "--set", f"data.tokenizer={os.path.join(src, 'examples/chat/model')}",
                    "--set", f"model.config={os.path.join(src, 'examples/chat/config.json')}",
                    "--set", "train.steps=4", "--set", "train.warmup_steps=1", "--set", f"output.dir={run}"],
                   capture_output=True, text=True, timeout=600)
losses = [json.loads(l)["loss"] for l in open(os.path.join(run, "metrics.jsonl"))] if r.returncode == 0 else []
check(r.returncode == 0 and len(losses) == 4 and losses[-1] < losses[0],
      f"train on chat JSONL with the tokenizer.json directory: exit {r.returncode}, losses {losses} {r.stderr[-300:] if r.returncode else ''}")

# `ftdist eval` reads chat JSONL through the tokenizer: --tokenizer, or the model directory's own;
# the loss equals that of the same tokens given as input_ids / labels.
def eval_loss(*args):
    r = subprocess.run([binary, "eval", "--json", *args], capture_output=True, text=True, timeout=300)
    return json.loads(r.stdout.strip().splitlines()[-1])["loss"] if r.returncode == 0 else f"exit {r.returncode}: {r.stderr[-300:]}"


if r.returncode == 0:
    hf, chat_model = os.path.join(run, "hf"), os.path.join(src, "examples/chat/model")
    chat = os.path.join(src, "examples/chat/chat.jsonl")
    ftok = os.path.join(work, "chat-eval.ftok")
    subprocess.run([binary, "prepare-data", "--tokenizer", chat_model, "--input", chat, "--output", ftok], check=True, capture_output=True)
    ids_path = os.path.join(work, "chat-ids.jsonl")
    with open(ids_path, "w") as f:
        for ids, mask in read_ftok(ftok)[0]:
            f.write(json.dumps({"input_ids": ids, "labels": [t if m else -100 for t, m in zip(ids, mask)]}) + "\n")
    want = eval_loss("--model", hf, "--data", ids_path)
    given = eval_loss("--model", hf, "--data", chat, "--tokenizer", chat_model)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(chat_model, f), os.path.join(hf, f))
    own = eval_loss("--model", hf, "--data", chat)
    check(isinstance(want, float) and given == want and own == want,
          f"eval on chat JSONL: --tokenizer {given}, the model directory's {own}, as input_ids {want}")
    # a model directory whose tokenizer.json ftdist does not read: token ids still evaluate, text
    # is refused naming the file and the key
    j = json.load(open(os.path.join(hf, "tokenizer.json")))
    j["model"]["type"] = "WordPiece"
    json.dump(j, open(os.path.join(hf, "tokenizer.json"), "w"))
    ids_loss = eval_loss("--model", hf, "--data", ids_path)
    text_loss = eval_loss("--model", hf, "--data", chat)
    check(ids_loss == want and isinstance(text_loss, str) and text_loss.startswith("exit 2") and "model.type" in text_loss,
          f"a model directory with an unreadable tokenizer.json: input_ids {ids_loss}, chat: {text_loss}")

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
