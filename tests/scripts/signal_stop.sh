#!/usr/bin/env bash
# signal_stop.sh SECONDS -- COMMAND...: starts COMMAND, sends it SIGTERM after SECONDS, and passes
# when it then exits 0 within 30 s saying it stopped after a whole step.
set -u
wait_s=$1; shift; [ "$1" = "--" ] && shift
out=$(mktemp); trap 'rm -f "$out"' EXIT
"$@" >"$out" 2>&1 &
pid=$!
sleep "$wait_s"
kill -TERM "$pid"
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "FAIL: still running 30 s after SIGTERM"; exit 1; fi
wait "$pid"; rc=$?
tail -n 5 "$out"
[ "$rc" = 0 ] || { echo "FAIL: exit code $rc"; exit 1; }
grep -q "stopping after step" "$out" || { echo "FAIL: no 'stopping after step' message"; exit 1; }
echo "PASS"
