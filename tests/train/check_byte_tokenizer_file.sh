#!/usr/bin/env bash
# check_byte_tokenizer_file.sh FTDIST WORKDIR — which tokenizer a run's export carries:
#  * text read by the byte-level tokenizer (the tiny example): ftdist-tokenizer.json, with which
#    `ftdist eval` reads text with the export as bytes again (the checkpoint's loss);
#  * data of token ids (input_ids lines): none, and `ftdist eval` refuses text with the export;
#  * a model directory and a data.tokenizer directory, each with a generation_config.json: the
#    model's travels, in the checkpoint, the export, and `ftdist export` of the checkpoint (with the
#    tokenizer's additional_chat_templates/).
set -u
ftdist=$1 work=$2
fail=0
check() { if [ "$1" = 0 ]; then echo "ok   $2"; else echo "FAIL $2"; fail=1; fi; }
rm -rf "$work" && mkdir -p "$work"
common=(--config examples/tiny/ftdist.toml --set train.steps=2 --set train.warmup_steps=0 --set output.export=true)
"$ftdist" train "${common[@]}" --set output.dir="$work/text" >"$work/text.log" 2>&1
check $? "trained on text"
[ "$(cat "$work/text/hf/ftdist-tokenizer.json" 2>/dev/null)" = '{"tokenizer": "byte-level"}' ]
check $? "the export of a byte-level run carries ftdist-tokenizer.json"
"$ftdist" eval --model "$work/text/hf" --data examples/tiny/corpus.jsonl --seq-len 64 >"$work/eval-text.log" 2>&1
check $? "eval reads text with that export"
"$ftdist" train "${common[@]}" --set data.train=tests/data/tiny-llama/tokens.jsonl --set data.seq_len=16 \
  --set train.micro_batch=1 --set output.dir="$work/ids" >"$work/ids.log" 2>&1
check $? "trained on token ids"
[ ! -e "$work/ids/hf/ftdist-tokenizer.json" ]
check $? "the export of a run on token ids carries no tokenizer"
"$ftdist" eval --model "$work/ids/hf" --data examples/tiny/corpus.jsonl >"$work/eval-ids.log" 2>&1
code=$?
[ $code = 2 ] && grep -q "text lines need a tokenizer" "$work/eval-ids.log"
check $? "eval refuses text with it (exit $code)"
# (the byte-level export as a model directory, and a tokenizer directory beside it)
mkdir -p "$work/model" "$work/tok"
cp "$work/text/hf/"* "$work/model/" && rm "$work/model/ftdist-tokenizer.json"
echo '{"eos_token_id": 257, "max_new_tokens": 17}' >"$work/model/generation_config.json"
cp "$work/text/hf/ftdist-tokenizer.json" "$work/tok/"
echo '{"eos_token_id": 1, "max_new_tokens": 99}' >"$work/tok/generation_config.json"
mkdir -p "$work/tok/additional_chat_templates" && echo '{{ tools }}' >"$work/tok/additional_chat_templates/tool_use.jinja"
"$ftdist" train --config examples/tiny/ftdist.toml --set model.config= --set model.path="$work/model" --set data.tokenizer="$work/tok" \
  --set train.steps=2 --set train.warmup_steps=0 --set output.export=true --set checkpoint.every=2 \
  --set checkpoint.dir="$work/both/ckpt" --set output.dir="$work/both" >"$work/both.log" 2>&1
check $? "trained with model.path and data.tokenizer"
for f in "$work/both/hf" "$work/both/ckpt/step-00000002"; do
  cmp -s "$work/model/generation_config.json" "$f/generation_config.json" && [ -e "$f/ftdist-tokenizer.json" ] &&
    cmp -s "$work/tok/additional_chat_templates/tool_use.jinja" "$f/additional_chat_templates/tool_use.jinja"
  check $? "$f carries the model's generation_config.json and the tokenizer's files (its named chat templates too)"
done
"$ftdist" export --checkpoint "$work/both/ckpt" --out "$work/both-export" >"$work/both-export.log" 2>&1 &&
  cmp -s "$work/model/generation_config.json" "$work/both-export/generation_config.json" &&
  [ -e "$work/both-export/additional_chat_templates/tool_use.jinja" ]
check $? "ftdist export of that checkpoint carries the model's generation_config.json"
[ $fail = 0 ] && echo "all passed" || { echo "see $work/*.log"; exit 1; }
