#!/usr/bin/env bash
# check_nonfinite_skip.sh FTDIST TMPDIR — lr 1e30 blows the weights up after step 1; with
# train.nonfinite = skip (the default) and no clipping, steps 2-4 are skipped and reported, in the
# log and in the metrics. With train.peak_tflops set, every metrics line carries a number for mfu.
set -u
ftdist=$1 out=$2
rm -rf "$out"
log=$("$ftdist" train --config examples/tiny/ftdist.toml --set train.steps=4 --set train.warmup_steps=1 --set train.lr=1e30 \
  --set train.grad_clip=0 --set train.peak_tflops=0.05 --set output.dir="$out" 2>&1) || { echo "FAIL: exit $?"; echo "$log"; exit 1; }
fail=0
n=$(grep -c "optimizer step was skipped" <<<"$log")
[ "$n" = 3 ] && echo "ok   3 steps skipped and reported" || { echo "FAIL: $n skipped steps reported, expected 3"; fail=1; }
grep -q '"step":4,.*"skipped":true' "$out/metrics.jsonl" && echo "ok   metrics mark step 4 skipped" || { echo "FAIL: step 4 not marked"; fail=1; }
[ "$(grep -Ec '"mfu":[0-9][0-9.e+-]*,' "$out/metrics.jsonl")" = 4 ] && echo "ok   mfu on every line" || { echo "FAIL: mfu missing"; fail=1; }
exit $fail
