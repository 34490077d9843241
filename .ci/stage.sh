#!/usr/bin/env bash
# Runs one stage of `make test` and records its wall time, so a slow stage is visible in CI's log.
#
#   .ci/stage.sh NAME CMD [ARGS...]    run CMD, print "==> NAME: ok in N s" (or failed), append to the timing file
#   .ci/stage.sh --summary             print every recorded stage and the total, then forget them
set -uo pipefail
times="${STOREAGENT_STAGE_TIMES:-${TMPDIR:-/tmp}/storeagent-stages-$(id -u).txt}"
if [[ "${1:-}" == "--summary" ]]; then
    [[ -f "$times" ]] || exit 0
    echo "==> stage times (wall clock)"
    awk '{printf "    %-14s %6d s  %s\n", $1, $2, $3; t += $2} END {printf "    %-14s %6d s\n", "total", t}' "$times"
    rm -f "$times"
    exit 0
fi
name="$1"; shift
echo "==> $name: $* ($(date -u +%H:%M:%S))"
start=$SECONDS
"$@"
rc=$?
took=$((SECONDS - start))
if [[ $rc -eq 0 ]]; then
    echo "$name $took ok" >>"$times"
    echo "==> $name: ok in $took s"
else
    echo "$name $took FAILED(rc=$rc)" >>"$times"
    echo "==> $name: FAILED (rc=$rc) after $took s"
    "$0" --summary
fi
exit $rc
