#!/usr/bin/env bash
# preemption_stop.sh MODE FTDIST MPIRUN_LAUNCHER WORKDIR -- TRAIN_ARGS...
# A 2-rank training run whose checkpoint save takes seconds (FTDIST_TEST_SAVE_DELAY_S, as a large
# model's does) is stopped the way a scheduler stops it, and must save its last whole step and exit 0:
#   launcher  SIGTERM to launch/ftdist-mpirun alone (kill PID)
#   group     SIGTERM to the launcher's whole process group (Ctrl-C, `timeout`, kill -- -PGID)
#   ranks     SIGTERM to every rank directly, the launcher untouched (what srun / slurmstepd does)
#   loading   SIGTERM to the launcher while the model loads (FTDIST_TEST_LOAD_DELAY_S): the ranks stop
#             before step 1 with a message, exit 0, nothing trained or saved
#   starting  SIGTERM to the launcher while the ranks start, before MPI and the run are set up
#             (FTDIST_TEST_START_DELAY_S): as loading
set -u
mode=$1 ftdist=$2 launcher=$3 work=$4; shift 4; [ "${1:-}" = "--" ] && shift
rm -rf "$work"; mkdir -p "$work"
log="$work/log"
export FTDIST_TEST_SAVE_DELAY_S=3
[ "$mode" = loading ] && export FTDIST_TEST_LOAD_DELAY_S=4
[ "$mode" = starting ] && export FTDIST_TEST_START_DELAY_S=4
setsid "$launcher" -np 2 "$ftdist" train "$@" --set train.steps=1000000 --set checkpoint.every=100000000 \
  --set output.dir="$work/run" >"$log" 2>&1 &
pid=$!
# Wait for a few steps (loading: for the tokenized data, written just before the model loads).
for _ in $(seq 1 600); do
  if [ "$mode" = loading ]; then ls "$work/run/data/"*.ftok >/dev/null 2>&1 && break
  elif [ "$mode" = starting ]; then [ "$(grep -c "test start delay" "$log")" -ge 2 ] && break
  else [ -f "$work/run/metrics.jsonl" ] && [ "$(wc -l <"$work/run/metrics.jsonl")" -ge 5 ] && break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "FAIL: the run ended before it was signalled"; exit 1; }
  sleep 0.1
done
case "$mode" in
  launcher | loading | starting) kill -TERM "$pid" ;;
  group) kill -TERM -- "-$pid" ;;
  ranks) pkill -TERM -f -- "^$ftdist train .*$work/run" ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
start=$(date +%s)
for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid"; echo "FAIL: still running 60 s after the signal"; exit 1; fi
wait "$pid"; rc=$?
tail -n 4 "$log"
[ "$rc" = 0 ] || { echo "FAIL: exit code $rc"; exit 1; }
if [ "$mode" = loading ] || [ "$mode" = starting ]; then
  grep -q "stopping before step 1 on signal [0-9]* (nothing trained in this run)" "$log" || { echo "FAIL: no 'stopping before step 1' message"; exit 1; }
  grep -q "trained no step: stopped by a signal before the first" "$log" || { echo "FAIL: no summary line"; exit 1; }
  [ ! -s "$work/run/metrics.jsonl" ] && [ ! -e "$work/run/checkpoints/latest" ] || { echo "FAIL: a step was trained or saved"; exit 1; }
  echo "PASS ($mode): stopped before step 1 in $(( $(date +%s) - start )) s"
  exit 0
fi
grep -q "stopping after step" "$log" || { echo "FAIL: no 'stopping after step' message"; exit 1; }
last=$(tail -n 1 "$work/run/metrics.jsonl" | sed -E 's/^\{"step":([0-9]+),.*/\1/')
saved=$(cat "$work/run/checkpoints/latest" 2>/dev/null)
[ "$saved" = "$(printf 'step-%08d' "$last")" ] || { echo "FAIL: latest checkpoint '$saved', last step $last"; exit 1; }
echo "PASS ($mode): stopped after step $last, saved $saved in $(( $(date +%s) - start )) s (a save of >= 3 s)"
