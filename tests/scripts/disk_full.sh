#!/usr/bin/env bash
# disk_full.sh FTDIST MPIRUN WORKDIR -- TRAIN_ARGS...: checkpoints go to a 2.5 MB tmpfs that holds
# one checkpoint of the tiny model (1.5 MB) but not two. The save that runs out of space must end
# the job with a clear error naming the file and "No space left on device", and the previous
# checkpoint must stay `latest` and resume. Needs root (mount); exits 77 (skipped) otherwise.
set -u
ftdist=$1 mpirun=$2 work=$3; shift 3; [ "${1:-}" = "--" ] && shift
rm -rf "$work"; mkdir -p "$work/ck"
if ! mount -t tmpfs -o size=2500k tmpfs "$work/ck" 2>/dev/null; then echo "SKIPPED: cannot mount a tmpfs here (needs root)"; exit 77; fi
# (a rank that has just exited may still hold the mount for a moment: retry, then detach it lazily)
unmount() { for _ in 1 2 3 4 5; do umount "$work/ck" 2>/dev/null && return 0; sleep 0.5; done; umount -l "$work/ck" 2>/dev/null; }
trap unmount EXIT
"$mpirun" -np 2 "$ftdist" train "$@" --set train.steps=6 --set train.warmup_steps=0 --set checkpoint.every=2 \
  --set checkpoint.keep=2 --set checkpoint.dir="$work/ck" --set output.dir="$work/run" >"$work/log" 2>&1
rc=$?
tail -n 3 "$work/log"
[ "$rc" != 0 ] || { echo "FAIL: the run did not fail on a full disk"; exit 1; }
grep -q "No space left on device" "$work/log" || { echo "FAIL: no 'No space left on device' in the error"; exit 1; }
[ "$(cat "$work/ck/latest")" = "step-00000002" ] || { echo "FAIL: latest is '$(cat "$work/ck/latest")', expected step-00000002"; exit 1; }
ls "$work/ck" | grep -q '^\.tmp-' && { echo "FAIL: a half-written checkpoint was left behind: $(ls -a "$work/ck")"; exit 1; }
# The kept checkpoint resumes.
cp -r "$work/ck" "$work/ck-copy"   # (the tmpfs goes with the test)
unmount; trap - EXIT
"$mpirun" -np 2 "$ftdist" train "$@" --set train.steps=3 --set train.warmup_steps=0 --set checkpoint.every=2 \
  --set checkpoint.dir="$work/ck-copy" --set checkpoint.resume=true --set output.dir="$work/run" >"$work/log2" 2>&1 \
  || { tail -n 5 "$work/log2"; echo "FAIL: resuming from the kept checkpoint failed"; exit 1; }
grep -q "resuming from .*step-00000002" "$work/log2" || { echo "FAIL: did not resume from step 2"; exit 1; }
echo "PASS: a full disk ended the job with a clear error; step 2 stayed latest and resumed"
