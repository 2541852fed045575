#!/usr/bin/env bash
# check_emit_run_config.sh FTDIST MPIRUN WORKDIR: `ftdist plan --emit mpirun` for the bundled tiny
# model writes a run.toml that `ftdist train` accepts once data.train is set, and the run uses the
# planned stage, micro-batch, ranks and optimizer (8-bit AdamW here). An --offload plan's run.toml offloads; --emit refuses a run.toml
# it did not write.
set -u
ftdist=$1 mpirun=$2 work=$3
ftdist_abs=$(readlink -f "$ftdist")
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$work"; mkdir -p "$work/emit"
plan=("$ftdist" plan --model-config examples/tiny/config.json --gpu a100-80gb --seq-len 64 --examples 2000 --optimizer adamw-8bit)
"${plan[@]}" --emit mpirun --emit-dir "$work/emit" >"$work/plan.log" 2>&1 || { tail -5 "$work/plan.log"; fail "plan --emit"; }
planned=$(grep '^# planned:' "$work/emit/run.toml") || fail "no '# planned:' line in run.toml"
# A directory with a space in its name: the paths are quoted for the shell.
mkdir -p "$work/emit dir"
"${plan[@]}" --emit mpirun --emit-dir "$work/emit dir" >"$work/plan-space.log" 2>&1 || { tail -5 "$work/plan-space.log"; fail "plan --emit into a directory with a space"; }
grep -qF -- "--config '$(cd "$work/emit dir" && pwd)/run.toml'" "$work/emit dir/launch.sh" || { cat "$work/emit dir/launch.sh"; fail "launch.sh does not quote a path with a space"; }
# launch.sh names the emitted run.toml and this binary by absolute paths: it runs from any directory.
grep -qF -- "$ftdist_abs train --config $(cd "$work/emit" && pwd)/run.toml" "$work/emit/launch.sh" || { cat "$work/emit/launch.sh"; fail "launch.sh does not name run.toml and ftdist by absolute paths"; }
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
# The run.toml carries what was priced: the loss chunk and the packing (the trainer's own defaults
# could differ), and the GPU's peak as a number, so that a GPU of a catalog of the user's own
# (not the trainer's default) trains too.
mkdir -p "$work/emit-own"
printf '[gpu.mini]\ndisplay = "mini test GPU"\nmemory_gib = 4\nbf16_tflops = 10\nhbm_gbs = 100\nlink_busbw_gbs = 10\nnetwork_busbw_gbs = 1\ngpus_per_node = 2\nefficiency = 0.4\nprice_per_hour = 1.0\n' >"$work/gpus.toml"
"$ftdist" plan --model-config examples/tiny/config.json --gpu-catalog "$work/gpus.toml" --gpu mini --gpus 1 --seq-len 64 \
  --examples 200 --loss-chunk 32 --packing documents --emit mpirun --emit-dir "$work/emit-own" >"$work/own.log" 2>&1 || { tail -5 "$work/own.log"; fail "plan --gpu-catalog --emit"; }
grep -q '^loss_chunk = 32 ' "$work/emit-own/run.toml" || fail "run.toml does not carry --loss-chunk 32"
grep -q '^packing = "documents"' "$work/emit-own/run.toml" || fail "run.toml does not carry --packing documents"
grep -q '^peak_tflops = 10 ' "$work/emit-own/run.toml" || fail "run.toml does not carry the GPU's peak"
"$ftdist" train --config "$work/emit-own/run.toml" --set data.train=examples/tiny/corpus.jsonl --set output.dir="$work/run-own" \
  --set train.steps=2 --set train.warmup_steps=0 >"$work/train-own.log" 2>&1 || { tail -5 "$work/train-own.log"; fail "train from a run.toml planned on a catalog of the user's own"; }
grep -q '"mfu":[0-9]' "$work/run-own/metrics.jsonl" || fail "no mfu from the planned GPU's peak"
# A GPU the trainer's catalog does not hold is named by its key.
"$ftdist" train --config "$work/emit-own/run.toml" --set data.train=examples/tiny/corpus.jsonl --set output.dir="$work/run-own2" \
  --set parallel.gpu=mini >"$work/gpu-key.log" 2>&1 && fail "trained with an unknown parallel.gpu"
grep -q '\[parallel\]: "gpu": unknown GPU' "$work/gpu-key.log" || { tail -2 "$work/gpu-key.log"; fail "the unknown GPU is not named by its key"; }
# A model directory without weights (a config.json alone) is handed over as a config to initialize
# from, which the trainer runs, not as model.path, which it would refuse.
mkdir -p "$work/config-only" "$work/emit-config"
cp examples/tiny/config.json "$work/config-only/"
"$ftdist" plan --model-config "$work/config-only" --gpu a100-80gb --gpus 1 --seq-len 64 --examples 200 --emit mpirun \
  --emit-dir "$work/emit-config" >"$work/config.log" 2>&1 || { tail -5 "$work/config.log"; fail "plan --emit for a directory without weights"; }
grep -q "^config = \"$work/config-only/config.json\"" "$work/emit-config/run.toml" || fail "a directory without weights is not handed over as its config.json"
# A run.toml --emit did not write is kept.
mkdir -p "$work/mine" && echo "mine" >"$work/mine/run.toml"
"${plan[@]}" --emit mpirun --emit-dir "$work/mine" >"$work/mine.log" 2>&1 && fail "overwrote a run.toml it did not write"
[ "$(cat "$work/mine/run.toml")" = "mine" ] || fail "run.toml was changed"
echo "PASS: run.toml trains $np rank(s), shard $shard, micro-batch $mb, global batch $gb"
