#!/usr/bin/env bash
# prepare_data_signal.sh FTDIST WORKDIR — SIGTERM stops `ftdist prepare-data` midway without
# leaving its temporaries: the --output an earlier run wrote stays as it was, nothing else is left
# in the directory, and the process dies of the signal (exit status 143), saying so.
set -u
ftdist=$1 work=$2
fail=0
check() { if [ "$1" = 0 ]; then echo "ok   $2"; else echo "FAIL $2"; fail=1; fi; }
rm -rf "$work" && mkdir -p "$work"
echo '{"text": "an earlier output"}' >"$work/small.jsonl"
"$ftdist" prepare-data --input "$work/small.jsonl" --output "$work/out.ftok" >/dev/null 2>&1
check $? "an earlier output"
cp "$work/out.ftok" "$work/before"
# (a slow writer: the command is reading, line by line, when the signal comes)
(for i in $(seq 3000); do echo '{"text": "a line of text"}'; sleep 0.01; done) |
  "$ftdist" prepare-data --input /dev/stdin --output "$work/out.ftok" >"$work/log" 2>&1 &
pid=$!
sleep 1.5
kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" = 143 ] && grep -q "stopped by SIGTERM; the partial output was removed" "$work/log"
check $? "stopped by SIGTERM (exit status $rc)"
cmp -s "$work/before" "$work/out.ftok"
check $? "the earlier --output is as it was"
left=$(cd "$work" && ls -A | grep -v -x -e small.jsonl -e out.ftok -e before -e log)
[ -z "$left" ]
check $? "no temporary is left (found: ${left:-none})"
[ $fail = 0 ] && echo "all passed" || { cat "$work/log"; exit 1; }
