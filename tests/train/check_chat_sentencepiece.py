#!/usr/bin/env python3
"""check_chat_sentencepiece.py FTDIST SPM_DIR WORKDIR — chat `messages` through `ftdist prepare-data`
with a SentencePiece model directory (the tokenizer.model SentencePieceChat writes to SPM_DIR), for
several chat templates (Llama-2's, ChatML / Qwen2's, Zephyr's multi-line one, Llama-3's, and one that
uses namespaces, filters, tests, slices and loop variables):
  * each conversation's rendered text (`--show`) equals what Transformers' own Jinja environment
    renders from the same template (the oracle);
  * the trained bytes are each assistant turn's, up to the end of its turn marker: every non-space
    byte of a turn is trained, none outside (a word piece may carry the space before a turn);
  * a bad line — no assistant turn, an unknown role, non-string content, a template raising
    (Llama-2's roles must alternate), a model directory without a chat template, a template
    construct ftdist does not render (which text lines do not need) — exits 2 naming the file and
    line, and writes nothing;
  * `ftdist train` trains on the chat JSONL with the model directory (its tokenizer and template)."""
import json
import struct
import os
import shutil
import subprocess
import sys

from transformers.utils.chat_template_utils import _compile_jinja_template

ftdist, spm_dir, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
failed = 0


def check(ok, what):
    global failed
    print(("ok   " if ok else "FAIL ") + what)
    failed += not ok


TEMPLATES = {
    "llama2": "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
              "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
              "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
              "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = "
              "'<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}"
              "{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
              "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
    "chatml": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a "
              "helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
              "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    "zephyr": "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + eos_token }}\n"
              "{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n{% elif message['role'] == "
              "'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and "
              "add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
    "llama3": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
              "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
              "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
              "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
    "features": "{#- every construct at once -#}\n{%- set ns = namespace(sys='', n=0) -%}\n{%- for m in messages -%}\n"
                "  {%- if m.role == 'system' -%}{%- set ns.sys = m.content | trim -%}{%- endif -%}\n{%- endfor -%}\n"
                "{{- bos_token -}}{{ {'k': [1, 2.5, none, true, 'q\"uote']} | tojson }} {{ (3 // 2) ~ '|' ~ (7 % 3) ~ '|' ~ 2 ** 3 ~ '|' ~ -1.5 }}\n"
                "{%- if ns.sys %}[SYS {{ ns.sys | upper }} ({{ ns.sys | length }}) {{ ns.sys.split(' ')[:2] | join('+') }}]\n{% endif -%}\n"
                "{%- for m in messages if m.role != 'system' -%}\n"
                "  {%- set ns.n = ns.n + 1 -%}\n"
                "  {{- '#' ~ loop.index ~ ' ' ~ (m['role'] if m.role in ['user', 'assistant'] else 'other') ~ ': ' -}}\n"
                "  {{- m.content.strip() ~ (eos_token if m.role == 'assistant' else '') }}\n"
                "  {% if loop.last and add_generation_prompt %}#{{ loop.length + 1 }} assistant: {% endif %}\n"
                "{%- endfor -%}\n"
                "{%- if nothing is defined or ns.n is not number %}{{ raise_exception('never') }}{% endif -%}",
}
SPECIALS = ["<|im_start|>", "<|im_end|>"]

CONVERSATIONS = [
    [{"role": "user", "content": "the cat sat"}, {"role": "assistant", "content": "on the mat"}],
    [{"role": "system", "content": "Be brief and kind."}, {"role": "user", "content": "hello there"},
     {"role": "assistant", "content": " hi! "}, {"role": "user", "content": "what is 2+2?"}, {"role": "assistant", "content": "4\n\nfour"}],
    [{"role": "user", "content": "a \"quoted\" word & <tag>"}, {"role": "assistant", "content": "café — ünïcode ✓"}],
    # (a turn that starts with a character the model spells in byte-fallback pieces: every piece trained)
    [{"role": "user", "content": "emoji?"}, {"role": "assistant", "content": "😀 smile 龘"}],
]


def model_dir(name, template):
    d = os.path.join(work, name)
    os.makedirs(d)
    shutil.copyfile(os.path.join(spm_dir, "tokenizer.model"), os.path.join(d, "tokenizer.model"))
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "legacy": name != "llama2"}
    if template is not None:
        config["chat_template"] = template
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(config, f)
    return d


def prepare(d, lines, extra=()):
    data = os.path.join(d, "chat.jsonl")
    with open(data, "w", encoding="utf-8") as f:
        f.write("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    out = os.path.join(d, "chat.ftok")
    r = subprocess.run([ftdist, "prepare-data", "--tokenizer", d, "--input", data, "--output", out, *extra],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return r, data, out


def turn_spans(tmpl, msgs, render):
    full = render(msgs, False)
    spans = []
    for k, m in enumerate(msgs):
        if m["role"] == "assistant":
            before, upto = render(msgs[:k], True), render(msgs[:k + 1], False)
            spans.append((len(before.encode()), len(upto.rstrip().encode())))
    return full, spans


for name, template in TEMPLATES.items():
    d = model_dir(name, template)
    compiled = _compile_jinja_template(template)
    render = lambda msgs, gen: compiled.render(messages=msgs, bos_token="<s>", eos_token="</s>", add_generation_prompt=gen)
    convs = CONVERSATIONS if name != "llama2" else [c for c in CONVERSATIONS]
    r, data, out = prepare(d, [{"messages": c} for c in convs], ["--show", "10"])
    check(r.returncode == 0, f"{name}: prepare-data exit {r.returncode} {r.stderr.decode()[-300:]}")
    if r.returncode != 0:
        continue
    shown = [json.loads(x) for x in r.stdout.decode().splitlines() if x.startswith("{")]
    check(len(shown) == len(convs), f"{name}: {len(shown)} conversations shown of {len(convs)}")
    for c, s in zip(convs, shown):
        full, spans = turn_spans(template, c, render)
        check(s["text"] == full, f"{name} line {s['line']}: rendered text equals Transformers' ({s['text']!r} vs {full!r})")
        if s["text"] != full:
            continue
        raw = full.encode()
        want = {i for a, b in spans for i in range(a, b) if not chr(raw[i]).isspace()}
        got = {i for a, b in s["trained"] for i in range(a, b) if not chr(raw[i]).isspace()}
        check(got == want, f"{name} line {s['line']}: trained bytes are the assistant turns' "
                           f"(extra {sorted(got - want)[:8]}, missing {sorted(want - got)[:8]})")
        check(0 < s["trained_tokens"] < s["tokens"], f"{name} line {s['line']}: {s['trained_tokens']} of {s['tokens']} tokens trained")

# Dicts keep their keys in the order of the data line (tojson, items(), loops), a line's "tools" reach
# the template, and "tools" / "documents" are none where the line has none, as in Transformers.
TOOLS_TEMPLATE = ("{{ 10.0 ** 16 }} {{ 1.5 / 10000000 }} {{ 0.0001 }} {{ 123.0 }} {{ -2.5 / 100000 }} {{ [0.5, 2 / 3] | tojson }}\n"
                  "{%- if tools is not none %}[TOOLS {{ tools | tojson }}]{% endif %}{% if documents is none %}(no docs){% endif %}"
                  "{%- for m in messages %}{{ m.role }}: {{ m.content }}{% if m.tool_calls is defined %} {{ m.tool_calls | tojson }}"
                  "{% for k, v in m.tool_calls[0].items() %} {{ k }}{% endfor %}{% endif %} {{ 0.1 }} {{ 1 / 3 }}\n{% endfor %}")
d = model_dir("tools", TOOLS_TEMPLATE)
tool_lines = [
    {"messages": [{"role": "user", "content": "weather?"},
                  {"role": "assistant", "content": "calling",
                   "tool_calls": [{"name": "get_weather", "arguments": {"zeta": 1, "alpha": "x"}}]}],
     "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]},
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello", "tool_calls": None}]},
    # a tool call (content null beside tool_calls), its result as a "tool" message, then the answer
    # content as a list of parts, and a tool result as an object (templates render them)
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}, {"role": "assistant", "content": "ok"},
                  {"role": "tool", "content": {"temp": 21, "sky": "clear"}}, {"role": "assistant", "content": "done"}]},
    {"messages": [{"role": "user", "content": "weather?"},
                  {"role": "assistant", "content": None, "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
                  {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "It is sunny."}]},
]
r, data, out = prepare(d, tool_lines, ["--show", "4"])
shown = [json.loads(x) for x in r.stdout.decode().splitlines() if x.startswith("{")]
compiled = _compile_jinja_template(TOOLS_TEMPLATE)
for line, s in zip(tool_lines, shown):
    # (keys whose value is None dropped from each message, as apply_chat_template does)
    msgs = [{k: v for k, v in m.items() if v is not None} for m in line["messages"]]
    want = compiled.render(messages=msgs, tools=line.get("tools"), documents=None, bos_token="<s>", eos_token="</s>",
                           add_generation_prompt=False)
    check(s["text"] == want, f"tools and key order: rendered text equals Transformers' ({s['text']!r} vs {want!r})")
check(r.returncode == 0 and len(shown) == 4, f"tools lines: exit {r.returncode}, {len(shown)} shown {r.stderr.decode()[-200:]}")

# Named templates, as Transformers picks them: a line with "tools" renders with the "tool_use"
# template where there is one, any other with "default"; from a list in tokenizer_config.json's
# "chat_template", or from chat_template.jinja and additional_chat_templates/tool_use.jinja (the
# layout Transformers 5 saves).
DEFAULT_T = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
TOOL_USE_T = "[TOOLS {{ tools | tojson }}]\n{% for m in messages %}<{{ m.role }}> {{ m.content }}\n{% endfor %}"
named_lines = [{"messages": [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": "sunny"}],
                "tools": [{"type": "function", "function": {"name": "get_weather"}}]},
               {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
d_list = model_dir("named-list", [{"name": "default", "template": DEFAULT_T}, {"name": "tool_use", "template": TOOL_USE_T}])
d_files = model_dir("named-files", None)
open(os.path.join(d_files, "chat_template.jinja"), "w").write(DEFAULT_T)
os.makedirs(os.path.join(d_files, "additional_chat_templates"))
open(os.path.join(d_files, "additional_chat_templates", "tool_use.jinja"), "w").write(TOOL_USE_T)
for d in (d_list, d_files):
    r, data, out = prepare(d, named_lines, ["--show", "2"])
    shown = [json.loads(x)["text"] for x in r.stdout.decode().splitlines() if x.startswith("{")]
    want = [_compile_jinja_template(t).render(messages=line["messages"], tools=line.get("tools"), documents=None,
                                              bos_token="<s>", eos_token="</s>", add_generation_prompt=False)
            for t, line in zip([TOOL_USE_T, DEFAULT_T], named_lines)]
    check(r.returncode == 0 and shown == want,
          f"{os.path.basename(d)}: tools render with tool_use, the rest with default ({shown!r} vs {want!r}; {r.stderr.decode()[-200:]})")
# A tool_use template ftdist cannot render stops only the lines with tools (naming it); a malformed
# list of named templates is named as such.
open(os.path.join(d_files, "additional_chat_templates", "tool_use.jinja"), "w").write("{% macro x() %}{% endmacro %}")
r, data, out = prepare(d_files, named_lines[1:])
check(r.returncode == 0, f"a broken tool_use template leaves lines without tools alone: exit {r.returncode} {r.stderr.decode()[-200:]}")
r, data, out = prepare(d_files, named_lines[:1])
err = r.stderr.decode()
check(r.returncode == 2 and "tool_use.jinja (line 1)" in err and "macro" in err, f"a line with tools names the tool_use template: {err[-200:]!r}")
d_bad = model_dir("named-bad", [{"name": "default", "template": DEFAULT_T}, {"name": "rag"}])
r, data, out = prepare(d_bad, named_lines[1:])
err = r.stderr.decode()
check(r.returncode == 2 and '"chat_template" entries must be' in err, f"a malformed template list is named: {err[-200:]!r}")

# Strings are sequences of code points (length, indexing, slicing, loops, first/last), strip() and
# trim strip what Python calls whitespace (NBSP, U+3000), and case changes reach letters past ASCII.
UNICODE_TEMPLATE = ("{{ 'ÀÉÎ日本😀' | length }} {{ 'ÀÉÎ日本😀'[:2] }} {{ 'ÀÉÎ日本😀'[-1] }} {{ 'ÀÉÎ日本😀'[::-1] }} "
                    "[{{ '\u00a0hi\u3000' | trim }}] [{{ ' \u2003a\u2003 '.strip() }}] [{{ 'xxhixx' | trim('x') }}] "
                    "{{ 'héllo' | upper }} {{ 'HÉLLO'.lower() }} {{ 'élan vital' | title }} {{ 'élan' | capitalize }} "
                    "{% for c in '日本' %}<{{ c }}>{% endfor %} {{ '日本' | first }}{{ '日本' | last }} {{ true == 1 }} {{ 1.0 == true }} {{ false in [0] }} {{ strftime_now is defined }} {{ raise_exception is undefined }} "
                    "{{ '  a b  c '.split(none, 1) }} {{ 'a,b,c'.split(',', 1) }} {{ '\\u00e9\\x41\\U0001F600' }} {{ 'hello'.startswith(('x', 'he')) }}\n"
                    "{%- for m in messages %}{{ m.role }}: {{ m.content | trim }}\n{% endfor %}")


def check_rendered(name, template, messages, what):
    """One conversation through `template`: ftdist's rendering (--show) equals Transformers' Jinja's."""
    r, data, out = prepare(model_dir(name, template), [{"messages": messages}], ["--show", "1"])
    shown = [json.loads(x) for x in r.stdout.decode().splitlines() if x.startswith("{")]
    want = _compile_jinja_template(template).render(messages=messages, tools=None, documents=None, bos_token="<s>",
                                                    eos_token="</s>", add_generation_prompt=False)
    check(r.returncode == 0 and len(shown) == 1 and shown[0]["text"] == want,
          f"{what}: rendered text equals Transformers' ({shown[0]['text'] if shown else r.stderr.decode()[-300:]!r} vs {want!r})")


check_rendered("unicode", UNICODE_TEMPLATE,
               [{"role": "user", "content": "\u00a0héllo\u3000"}, {"role": "assistant", "content": "bonjour\u00a0"}], "unicode strings")

# The sequence filters and tests real templates use (Mistral v0.3: selectattr(...) | list).
FILTERS_TEMPLATE = ("{{ [1, 2, 3, 4] | select('divisibleby', 2) | list }} {{ [0, 1, '', 'a'] | select | list }} {{ 'ab' | list }} "
                    "{{ ['x', 'Y'] | map('upper') | list }} {{ 4 is divisibleby 2 }} {{ 'u' is in 'user' }} {{ 3 is gt 2 }}\n"
                    "{%- for m in messages %}{%- set seen = messages[:loop.index] %}"
                    "{%- set user_messages = seen | selectattr('role', 'equalto', 'user') | list %}"
                    "[{{ user_messages | length }} {{ seen | map(attribute='role') | join(',') }} "
                    "{{ seen | rejectattr('role', 'ne', 'user') | map(attribute='content') | list | tojson }} "
                    "{{ seen | map(attribute='nope', default='-') | join }} {{ seen | selectattr('tool_calls') | list | length }}] "
                    "{{ m.role }}: {{ m.content }}\n{% endfor %}")
check_rendered("filters", FILTERS_TEMPLATE, CONVERSATIONS[1], "sequence filters")
check_rendered("tojson-ascii", "{{ ['café', {'k': 'é日'}] | tojson(ensure_ascii=False) }}{{ {'k': 'é日'} | tojson(ensure_ascii=false, indent=2) }}"
               "{% for m in messages %}{{ m.content | tojson(ensure_ascii=False) }}{% endfor %}",
               [{"role": "user", "content": "café"}, {"role": "assistant", "content": "oui"}], "tojson(ensure_ascii=False)")
check_rendered("join-attribute", "{{ [{'role': 'x'}, {'role': 'y'}, {}] | join(', ', attribute='role') }} "
               "{{ [{'a': {'b': 1}}, {'a': {'b': 2}}] | join('+', attribute='a.b') }} {{ [[1, 2], [3, 4]] | join(attribute='1') }}\n"
               "{% for m in messages %}{{ messages[:loop.index] | join('|', attribute='role') }}: {{ m.content }}\n{% endfor %}",
               CONVERSATIONS[1], "join(attribute=), and '}}' inside a dict literal")
check_rendered("integers", "{{ -7 // 2 }} {{ -7 % 2 }} {{ 7 % -2 }} {{ 7 // -2 }} {{ 2 ** 62 }} {{ 9007199254740993 + 2 }} "
               "{{ (-1) ** 5 }} {{ 0 ** 0 }} {{ 2 ** -1 }} {{ 9223372036854775807 - 1 }} {{ -9223372036854775807 * 1 }}"
               "{% for m in messages %}{{ m.content }}{% endfor %}", CONVERSATIONS[1], "64-bit integers computed exactly")
# A filter keyword ftdist does not apply, or an integer past 64 bits, is an error naming the line,
# not other text than Transformers'.
for name, expr in [("pow64", "2 ** 64"), ("add64", "9223372036854775807 + 1")]:
    d = model_dir("int-" + name, "{{ " + expr + " }}{% for m in messages %}{{ m.content }}{% endfor %}")
    r, data, out = prepare(d, [{"messages": CONVERSATIONS[1]}])
    err = r.stderr.decode()
    check(r.returncode == 2 and f"{data}:1" in err and "does not fit 64 bits" in err, f"{expr}: refused ({err.strip()[-200:]!r})")
for kw in ["tojson(sort_keys=true)", "tojson(separators=(',', ':'))", "tojson(indent='\\t')", "upper(x=1)"]:
    d = model_dir("kw-" + kw.split("(")[1].split("=")[0], "{{ messages | " + kw + " }}{% for m in messages %}{{ m.content }}{% endfor %}")
    r, data, out = prepare(d, [{"messages": CONVERSATIONS[1]}])
    err = r.stderr.decode()
    check(r.returncode == 2 and f"{data}:1" in err and ("is not supported" in err or "only a number of spaces" in err),
          f"{kw}: refused naming the line ({err.strip()[-200:]!r})")

# Python's semantics where a naive rendering differs silently: chained comparisons, loop.previtem /
# nextitem undefined at the ends, replace's count and empty pattern, repr of strings in lists (quotes,
# escapes, characters Python does not print).
PYTHON_TEMPLATE = ("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1 != 2 }} {{ 'a' in 'abc' in ['abc'] }} "
                   "{{ \"it's\".replace('t', 'T', 1) }} {{ 'a b c'.replace(' ', '_', 1) }} {{ 'ab'.replace('', '-') }} "
                   "{{ 'ab'.replace('', '-', 2) }} {{ \"it's o'neil 3rd foo_bar a,b (x) -y [z] <w>\" | title }} {{ \"it's\".title() }} {{ [\"it's\", 'say \"hi\"', \"both ' \\\"\", 'tab\\there', 'nb\u00a0sp', 'del\x7f', "
                   "'ctl\x01', 'sep\u2028', 'é日😀', 'back\\\\slash'] }} "
                   "{% for x in [1, 2, 3] %}{{ loop.nextitem is defined }}{{ loop.nextitem }}{{ loop.previtem }} {% endfor %}\n"
                   "{%- for m in messages %}{{ loop.index }}: {{ 1 < loop.index <= 2 }} {{ loop.previtem is defined }} "
                   "{{ loop.previtem.role if loop.previtem is defined else '-' }} {{ m.content }}\n{% endfor %}")
check_rendered("python", PYTHON_TEMPLATE, CONVERSATIONS[1], "Python semantics")

# Added tokens past the SentencePiece model's pieces (Phi-3's 32000..32010): prepare-data's default
# vocabulary covers them, with no --vocab needed.
d = model_dir("past-pieces", "{% for m in messages %}<|turn|>{{ m.content }}{% endfor %}")
with open(os.path.join(d, "tokenizer_config.json")) as f:
    config = json.load(f)
config["added_tokens_decoder"] = {"5000": {"content": "<|turn|>", "special": True}}
with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
    json.dump(config, f)
r, data, out = prepare(d, [{"messages": CONVERSATIONS[0]}])
with open(out, "rb") as f:
    vocab = struct.unpack_from("<I", f.read(16), 12)[0] if r.returncode == 0 else None
check(r.returncode == 0 and vocab == 5001, f"added tokens past the pieces: exit {r.returncode}, vocabulary {vocab} {r.stderr.decode()[-200:]}")

# --train-on all: every token of the conversation trained.
r, data, out = prepare(model_dir("chatml-all", TEMPLATES["chatml"]), [{"messages": CONVERSATIONS[1]}], ["--show", "1", "--train-on", "all"])
shown = [json.loads(x) for x in r.stdout.decode().splitlines() if x.startswith("{")]
check(r.returncode == 0 and len(shown) == 1 and shown[0]["trained_tokens"] == shown[0]["tokens"]
      and shown[0]["trained"] == [[0, len(shown[0]["text"].encode())]], f"--train-on all trains every token: {shown[:1]}")

# Bad lines: exit 2, file:line named, nothing written.
d = model_dir("bad", TEMPLATES["llama2"])
good = {"messages": CONVERSATIONS[0]}
for what, line in [("no assistant turn", {"messages": [{"role": "user", "content": "x"}]}),
                   ("unknown role", {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}),
                   ("must be a string", {"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "y"}]}),
                   ("roles must alternate", {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                                          {"role": "assistant", "content": "c"}]})]:
    r, data, out = prepare(d, [good, line])
    err = r.stderr.decode()
    check(r.returncode == 2 and f"{data}:2" in err and what in err and not os.path.exists(out),
          f"bad line ({what}): exit {r.returncode}, {err.strip()[-200:]!r}")
d = model_dir("no-template", None)
r, data, out = prepare(d, [good])
err = r.stderr.decode()
check(r.returncode == 2 and f"{data}:1" in err and "chat template" in err, f"no chat template: exit {r.returncode}, {err.strip()[-200:]!r}")

d = model_dir("unsupported", "{% macro turn(m) %}{{ m.content }}{% endmacro %}{% for m in messages %}{{ turn(m) }}{% endfor %}")
r, data, out = prepare(d, [{"text": "the cat sat"}])
check(r.returncode == 0, f"a template ftdist cannot render does not stop text data: exit {r.returncode} {r.stderr.decode()[-200:]}")
r, data, out = prepare(d, [good])
err = r.stderr.decode()
check(r.returncode == 2 and f"{data}:1" in err and "tokenizer_config.json chat_template (line 1)" in err and "macro" in err,
      f"an unsupported template construct: exit {r.returncode}, {err.strip()[-200:]!r}")

# Training reads the same JSONL through the model directory's tokenizer and template.
d = os.path.join(work, "chatml")
with open("examples/tiny/config.json") as f:
    model = json.load(f)
model["vocab_size"] = 600  # the SentencePiece model's
with open(os.path.join(work, "config.json"), "w") as f:
    json.dump(model, f)
cfg = os.path.join(work, "train.toml")
with open(cfg, "w") as f:
    f.write(f'[model]\nconfig = "{work}/config.json"\n[data]\ntrain = "{d}/chat.jsonl"\n'
            f'tokenizer = "{d}/tokenizer.model"\nseq_len = 64\n[train]\nsteps = 3\nmicro_batch = 2\nwarmup_steps = 1\nlog_every = 1\n'
            f'[output]\ndir = "{work}/run"\n')
r = subprocess.run([ftdist, "train", "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
check(r.returncode == 0 and "trained 3 steps" in r.stdout.decode(), f"ftdist train on the chat JSONL: exit {r.returncode} {r.stdout.decode()[-400:]}")

# data.train_on = "all": the same run trains every token of the conversations, from a token cache
# of its own (unmasked) beside the assistant-turns one (masked).
def caches():
    return sorted(f for f in os.listdir(os.path.join(work, "run", "data")) if f.endswith(".ftok"))


def masked(ftok):  # the .ftok header's flags word at byte 32 (docs/training.md): bit 0, a loss mask follows
    with open(os.path.join(work, "run", "data", ftok), "rb") as f:
        head = f.read(36)
    return head[:8] == b"FTDTOK01" and bool(int.from_bytes(head[32:36], "little") & 1)


before = caches()
with open(cfg) as f:
    text = f.read()
with open(cfg, "w") as f:
    f.write(text.replace("seq_len = 64\n", 'seq_len = 64\ntrain_on = "all"\n'))
r = subprocess.run([ftdist, "train", "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
after = caches()
new = [f for f in after if f not in before]
check(r.returncode == 0 and "trained 3 steps" in r.stdout.decode() and len(before) == 1 and len(new) == 1
      and masked(before[0]) and not masked(new[0]),
      f"train_on = all: exit {r.returncode}, caches {before} -> {after}, {r.stdout.decode()[-400:]}")

print("FAILED" if failed else "OK")
sys.exit(1 if failed else 0)
