#!/bin/sh
# Sanity check without a test framework: the quick benchmark must finish (by itself) in < 60 s.
# Usage: bench/smoke.sh   (uses .venv/bin/python of the repo; the reference runs if
# EXEC_SERVER_REFERENCE_BIN is set)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py="${PYTHON:-$here/../.venv/bin/python}"
start=$(date +%s)
rc=0
timeout 60 "$py" "$here/bench.py" --quick --no-save --quiet "$@" || rc=$?
echo "bench --quick: rc=$rc in $(( $(date +%s) - start )) s"
exit $rc
