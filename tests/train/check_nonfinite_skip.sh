#!/usr/bin/env bash
# check_nonfinite_skip.sh FTDIST TMPDIR — lr 1e30 blows the weights up after step 1; with
# train.nonfinite = skip (the default) and no clipping, steps 2-4 are skipped and reported, in the
# log and in the metrics. With train.peak_tflops set, every metrics line carries a number for mfu.
# The same weights fail every step after: train.nonfinite_limit (5) of them in a row stop the run
# (exit 1) with no checkpoint saved during the streak, so the kept checkpoints are the good ones;
# a resumed run in which every step is skipped exits 1 too; nonfinite_limit = 0 never stops.
set -u
ftdist=$1 out=$2
rm -rf "$out"
diverge=(--config examples/tiny/ftdist.toml --set train.warmup_steps=1 --set train.lr=1e30 --set train.grad_clip=0)
log=$("$ftdist" train "${diverge[@]}" --set train.steps=4 --set train.peak_tflops=0.05 --set output.dir="$out" 2>&1) || { echo "FAIL: exit $?"; echo "$log"; exit 1; }
fail=0
n=$(grep -c "optimizer step was skipped" <<<"$log")
[ "$n" = 3 ] && echo "ok   3 steps skipped and reported" || { echo "FAIL: $n skipped steps reported, expected 3"; fail=1; }
grep -q '"step":4,.*"skipped":true' "$out/metrics.jsonl" && echo "ok   metrics mark step 4 skipped" || { echo "FAIL: step 4 not marked"; fail=1; }
[ "$(grep -Ec '"mfu":[0-9][0-9.e+-]*,' "$out/metrics.jsonl")" = 4 ] && echo "ok   mfu on every line" || { echo "FAIL: mfu missing"; fail=1; }

rm -rf "$out"
log=$("$ftdist" train "${diverge[@]}" --set train.steps=20 --set checkpoint.every=1 --set checkpoint.keep=1 --set output.dir="$out" 2>&1)
rc=$?
[ "$rc" = 1 ] && grep -q "steps 2-6: 5 steps in a row had a non-finite loss or gradient norm.*the last checkpoint is step 1" <<<"$log" &&
  echo "ok   5 non-finite steps in a row stop the run (exit 1), naming the last checkpoint" ||
  { echo "FAIL: rc $rc"; echo "$log" | tail -5; fail=1; }
[ "$(wc -l <"$out/metrics.jsonl")" = 6 ] && echo "ok   the metrics hold the 6 steps run" || { echo "FAIL: $(wc -l <"$out/metrics.jsonl") metrics lines"; fail=1; }
[ "$(readlink "$out/checkpoints/latest" 2>/dev/null || cat "$out/checkpoints/latest")" != "" ] &&
  ls "$out/checkpoints" | grep -qx "step-0*1" && ! ls "$out/checkpoints" | grep -q "step-0*[2-9]" &&
  echo "ok   no checkpoint during the streak: step 1 is kept (checkpoint.keep = 1)" || { echo "FAIL: checkpoints: $(ls "$out/checkpoints")"; fail=1; }

log=$("$ftdist" train "${diverge[@]}" --set train.steps=3 --set checkpoint.every=1 --set checkpoint.keep=1 --set checkpoint.resume=true \
  --set output.dir="$out" 2>&1)
rc=$?
[ "$rc" = 1 ] && grep -q "every step of this run (2-3) had a non-finite loss" <<<"$log" &&
  echo "ok   a resumed run that trains nothing exits 1" || { echo "FAIL: rc $rc"; echo "$log" | tail -5; fail=1; }

rm -rf "$out"
"$ftdist" train "${diverge[@]}" --set train.steps=8 --set train.nonfinite_limit=0 --set output.dir="$out" >/dev/null 2>&1 &&
  echo "ok   nonfinite_limit = 0: 7 skipped steps, exit 0" || { echo "FAIL: nonfinite_limit = 0 stopped the run"; fail=1; }
exit $fail
