#!/usr/bin/env bash
# expect_exit.sh CODE PATTERNS SECONDS -- COMMAND...
# Runs COMMAND with a time limit and passes when it exits with CODE ("nonzero" for any failure)
# within SECONDS and its combined output matches every extended regex in PATTERNS (separated by
# " ;; ").
set -u
want=$1 pattern=$2 limit=$3
shift 3
[ "$1" = "--" ] && shift
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s%N)
timeout --kill-after=5 "$limit" "$@" >"$out" 2>&1
rc=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
cat "$out"
echo "--- exit code $rc after ${elapsed_ms} ms (expected $want within ${limit}s)"
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "FAIL: timed out (a hang)"; exit 1; fi
if [ "$want" = nonzero ]; then
  [ "$rc" != 0 ] || { echo "FAIL: exit code 0"; exit 1; }
else
  [ "$rc" = "$want" ] || { echo "FAIL: exit code $rc, expected $want"; exit 1; }
fi
rest="$pattern"
while [ -n "$rest" ]; do
  one="${rest%% ;; *}"
  if [ "$one" = "$rest" ]; then rest=""; else rest="${rest#* ;; }"; fi
  grep -Eq -- "$one" "$out" || { echo "FAIL: output does not match /$one/"; exit 1; }
done
echo "PASS"
