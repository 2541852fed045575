#!/usr/bin/env bash
# check_emit_run_config.sh FTDIST MPIRUN WORKDIR: `ftdist plan --emit mpirun` for the bundled tiny
# model writes a run.toml that `ftdist train` accepts once data.train is set, and the run uses the
# planned stage, micro-batch, ranks and optimizer (8-bit AdamW here). An --offload plan's run.toml offloads; --emit refuses a run.toml
# it did not write.
set -u
ftdist=$1 mpirun=$2 work=$3
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$work"; mkdir -p "$work/emit"
plan=("$ftdist" plan --model-config examples/tiny/config.json --gpu a100-80gb --seq-len 64 --examples 2000 --optimizer adamw-8bit)
"${plan[@]}" --emit mpirun --emit-dir "$work/emit" >"$work/plan.log" 2>&1 || { tail -5 "$work/plan.log"; fail "plan --emit"; }
planned=$(grep '^# planned:' "$work/emit/run.toml") || fail "no '# planned:' line in run.toml"
np=$(sed -nE 's/.*on ([0-9]+) x .*/\1/p' <<<"$planned")
shard=$(sed -nE 's/.*shard ([a-z-]+),.*/\1/p' <<<"$planned")
mb=$(sed -nE 's/^micro_batch = ([0-9]+)/\1/p' "$work/emit/run.toml")
gb=$(sed -nE 's/^global_batch = ([0-9]+).*/\1/p' "$work/emit/run.toml")
[ -n "$np" ] && [ -n "$shard" ] && [ -n "$mb" ] && [ -n "$gb" ] || fail "could not read the plan from: $planned"
"$ftdist" train --config "$work/emit/run.toml" >"$work/unset.log" 2>&1 && fail "trained with the data placeholder"
grep -q "REPLACE-WITH-YOUR-TRAINING-DATA" "$work/unset.log" || fail "the placeholder is not named in the error"
"$mpirun" -np "$np" "$ftdist" train --config "$work/emit/run.toml" --set data.train=examples/tiny/corpus.jsonl \
  --set output.dir="$work/run" >"$work/train.log" 2>&1 || { tail -5 "$work/train.log"; fail "train from the emitted run.toml"; }
grep -qE "steps of $gb sequences on $np rank\(s\), shard $shard" "$work/train.log" || { grep 'train:' "$work/train.log"; fail "not the planned layout ($np ranks, shard $shard, global batch $gb)"; }
meta="$work/run/checkpoints/$(cat "$work/run/checkpoints/latest")/meta.json"
[ "$(python3 -c "import json;print(json.load(open('$meta'))['stage'])")" = "$shard" ] || fail "checkpoint stage"
[ "$(python3 -c "import json;print(json.load(open('$meta'))['optimizer']['name'])")" = "adamw-8bit" ] || fail "checkpoint optimizer"
grep -q '^optimizer = "adamw-8bit"' "$work/emit/run.toml" || fail "run.toml does not name the planned optimizer"
# A plan with the optimizer offloaded hands over a run.toml that offloads, and the trainer runs it so.
mkdir -p "$work/emit-off"
"${plan[@]}" --offload --gpus 2 --emit mpirun --emit-dir "$work/emit-off" >"$work/offload.log" 2>&1 || { tail -5 "$work/offload.log"; fail "plan --offload --emit"; }
grep -q '^offload = "optimizer"' "$work/emit-off/run.toml" || fail "run.toml of an --offload plan does not offload"
np_off=$(grep '^# planned:' "$work/emit-off/run.toml" | sed -nE 's/.*on ([0-9]+) x .*/\1/p')
"$mpirun" -np "$np_off" "$ftdist" train --config "$work/emit-off/run.toml" --set data.train=examples/tiny/corpus.jsonl \
  --set output.dir="$work/run-off" --set train.steps=3 >"$work/train-off.log" 2>&1 || { tail -5 "$work/train-off.log"; fail "train from the offloaded run.toml"; }
grep -q "offloaded to host memory" "$work/train-off.log" || fail "the trainer did not offload"
grep -qE "^host: master +[0-9.]+ [KMG]i?B +[0-9.]+ [KMG]i?B" "$work/train-off.log" || fail "no host rows in the memory table"
# A run.toml --emit did not write is kept.
mkdir -p "$work/mine" && echo "mine" >"$work/mine/run.toml"
"${plan[@]}" --emit mpirun --emit-dir "$work/mine" >"$work/mine.log" 2>&1 && fail "overwrote a run.toml it did not write"
[ "$(cat "$work/mine/run.toml")" = "mine" ] || fail "run.toml was changed"
echo "PASS: run.toml trains $np rank(s), shard $shard, micro-batch $mb, global batch $gb"
