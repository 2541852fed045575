#!/usr/bin/env bash
# same_loss.sh PYTHON [--tol REL] -- CMD_A... -- CMD_B...
# Runs two `ftdist eval --json` commands and passes when they report the same token count and the
# same loss to REL relative (default 1e-9).
set -u
py=$1; shift
tol=1e-9; if [ "$1" = "--tol" ]; then tol=$2; shift 2; fi
[ "$1" = "--" ] && shift
a=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do a+=("$1"); shift; done; shift
b=("$@")
out_a=$("${a[@]}") || { echo "FAIL: first command exited $?"; exit 1; }
out_b=$("${b[@]}") || { echo "FAIL: second command exited $?"; exit 1; }
echo "A: $out_a"; echo "B: $out_b"
"$py" - "$out_a" "$out_b" "$tol" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1].splitlines()[-1]), json.loads(sys.argv[2].splitlines()[-1])
ok = a["tokens"] == b["tokens"] and abs(a["loss"] - b["loss"]) <= float(sys.argv[3]) * abs(a["loss"])
print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
sys.exit(0 if ok else 1)
PY
