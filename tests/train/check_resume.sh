#!/usr/bin/env bash
# check_resume.sh FTDIST MPIRUN PYTHON TMPDIR — resuming a killed run equals the uninterrupted one.
#  A: 20 steps on 2 ranks, a checkpoint every 5 steps.
#  B: the same run, but the last rank SIGKILLs itself while saving step 10 (test hook): the job
#     dies, step-10 stays a temporary directory, `latest` still names step 5. Resumed on 2 ranks, it
#     must give bit-identical per-step losses and bit-identical final rank files.
#  C: killed the same way, then resumed on 4 ranks with another stage (grad-op): the losses equal
#     A's to 1e-5 relative (only the reduction order differs).
#  D: a fresh run (resume = false) into C's checkpoint directory is refused, naming the key.
#  E: A's run resumed for more steps warns that the cosine schedule's learning rate jumps; resumed
#     on a data file of more samples, it warns that the order changes.
#  G: with train.global_batch = 0 (micro_batch x ranks: 8 on 2 ranks), resumed at step 10 on 4 ranks
#     with micro_batch 1 it keeps the batch of 8 (2 micro-batches; said, no warning) and matches the uninterrupted
#     run to 1e-5; with micro_batch 4 (a batch of 16) it warns, naming both batches.
set -u
ftdist=$1 mpirun=$2 py=$3 tmp=$4
here=$(cd "$(dirname "$0")" && pwd)
cfg=examples/tiny/ftdist.toml
common=(--config "$cfg" --set train.steps=20 --set train.warmup_steps=4 --set checkpoint.every=5 --set train.log_every=100)
fail=0
rm -rf "$tmp" && mkdir -p "$tmp"
check() { if [ "$1" = 0 ]; then echo "ok   $2"; else echo "FAIL $2"; fail=1; fi; }

"$mpirun" -np 2 "$ftdist" train "${common[@]}" --set output.dir="$tmp/a" >"$tmp/a.log" 2>&1
check $? "uninterrupted run"

for run in b c; do
  FTDIST_TEST_KILL_DURING_SAVE=10 "$mpirun" -np 2 "$ftdist" train "${common[@]}" --set output.dir="$tmp/$run" >"$tmp/$run.killed.log" 2>&1
  [ $? != 0 ]; check $? "run $run killed during the save of step 10"
  [ "$(cat "$tmp/$run/checkpoints/latest")" = step-00000005 ]; check $? "latest still names step-00000005"
  [ -d "$tmp/$run/checkpoints/.tmp-step-00000010" ] && [ ! -d "$tmp/$run/checkpoints/step-00000010" ]
  check $? "the broken save is only a temporary directory"
done

"$mpirun" -np 2 "$ftdist" train "${common[@]}" --set output.dir="$tmp/b" --set checkpoint.resume=true >"$tmp/b.log" 2>&1
check $? "resumed on 2 ranks"
grep -q "resuming from .*step-00000005" "$tmp/b.log"; check $? "resumed from step-00000005"
[ ! -d "$tmp/b/checkpoints/.tmp-step-00000010" ]; check $? "the next save removed the broken temporary directory"
"$py" - "$tmp/a/metrics.jsonl" "$tmp/b/metrics.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
b = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
keys = ("step", "loss", "lr", "grad_norm", "tokens")
same = len(a) == len(b) == 20 and all(all(x[k] == y[k] for k in keys) for x, y in zip(a, b))
print(f"steps {len(a)} vs {len(b)}; losses bitwise equal: {same}")
sys.exit(0 if same else 1)
PY
check $? "per-step metrics bitwise equal to the uninterrupted run (20 lines, none repeated)"
for f in "$tmp"/a/checkpoints/step-00000020/rank-*.safetensors; do
  cmp -s "$f" "$tmp/b/checkpoints/step-00000020/$(basename "$f")"; check $? "final $(basename "$f") bitwise equal"
done

"$mpirun" -np 4 "$ftdist" train "${common[@]}" --set output.dir="$tmp/c" --set checkpoint.resume=true --set parallel.shard=grad-op >"$tmp/c.log" 2>&1
check $? "resumed on 4 ranks with grad-op"
"$py" "$here/compare_runs.py" --same-only "$tmp/a/metrics.jsonl" "$tmp/c/metrics.jsonl"
check $? "losses equal the uninterrupted 2-rank run to 1e-5"

"$mpirun" -np 2 "$ftdist" train "${common[@]}" --set output.dir="$tmp/c" >"$tmp/d.log" 2>&1
code=$?
[ $code = 2 ] && grep -q "already holds checkpoints.*checkpoint.resume = true" "$tmp/d.log"
check $? "a fresh run into a used checkpoint directory is refused (exit $code)"

cp -r "$tmp/a" "$tmp/e" && cp -r "$tmp/a" "$tmp/f"
"$mpirun" -np 2 "$ftdist" train "${common[@]}" --set output.dir="$tmp/e" --set checkpoint.resume=true --set train.steps=30 >"$tmp/e.log" 2>&1
check $? "resumed for 30 steps"
grep -q "train.steps is 30, the checkpoint's run had 20: the cosine schedule decays over the new count" "$tmp/e.log"
check $? "a longer run warns that the learning rate jumps"
{ cat "$(dirname "$cfg")/corpus.jsonl"; head -40 "$(dirname "$cfg")/corpus.jsonl"; } > "$tmp/more.jsonl"
"$mpirun" -np 2 "$ftdist" train "${common[@]}" --set output.dir="$tmp/f" --set checkpoint.resume=true --set data.train="$tmp/more.jsonl" >"$tmp/f.log" 2>&1
check $? "resumed on more data"
grep -q "data.train (.*) holds [0-9]* samples, the checkpoint's run had [0-9]*: .*drawn in another order" "$tmp/f.log"
check $? "other data warns that the order changes"

gb0=(--config "$cfg" --set train.global_batch=0 --set train.schedule=constant --set train.warmup_steps=0 --set train.log_every=100)
"$mpirun" -np 2 "$ftdist" train "${gb0[@]}" --set train.steps=20 --set output.dir="$tmp/g0" >"$tmp/g0.log" 2>&1
check $? "uninterrupted run, global_batch = 0"
"$mpirun" -np 2 "$ftdist" train "${gb0[@]}" --set train.steps=10 --set checkpoint.every=10 --set output.dir="$tmp/g" >"$tmp/g10.log" 2>&1
check $? "10 steps of it, saved"
cp -r "$tmp/g" "$tmp/h"
"$mpirun" -np 4 "$ftdist" train "${gb0[@]}" --set train.steps=20 --set train.micro_batch=1 --set checkpoint.every=10 \
  --set checkpoint.resume=true --set output.dir="$tmp/g" >"$tmp/g.log" 2>&1
check $? "resumed on 4 ranks with micro_batch 1"
grep -q "keeping the resumed checkpoint's global batch of 8 sequences" "$tmp/g.log" && ! grep -q "warning" "$tmp/g.log"
check $? "it keeps the global batch of 8, without a warning"
"$py" "$here/compare_runs.py" --same-only "$tmp/g0/metrics.jsonl" "$tmp/g/metrics.jsonl"
check $? "losses equal the uninterrupted run to 1e-5"
"$mpirun" -np 4 "$ftdist" train "${gb0[@]}" --set train.steps=12 --set checkpoint.every=10 \
  --set checkpoint.resume=true --set output.dir="$tmp/h" >"$tmp/h.log" 2>&1
check $? "resumed on 4 ranks with micro_batch 4"
grep -q "the global batch is 16 sequences per step (train.global_batch = 0: micro_batch x ranks), the checkpoint's run had 8" "$tmp/h.log"
check $? "a batch of 16 warns, naming the saved batch of 8"

[ $fail = 0 ] && echo "all passed" || { echo "see $tmp/*.log"; exit 1; }
