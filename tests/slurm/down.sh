#!/usr/bin/env bash
# Stops the cluster started by up.sh (by the pids in its pid files); keeps $BASE for the logs.
# PURGE=1 also removes $BASE.
set -uo pipefail
BASE=${BASE:-/tmp/forgetlab-slurm}
for f in "$BASE"/run/slurmd-*.pid "$BASE/run/slurmctld.pid" "$BASE/run/slurmdbd.pid" \
         "$BASE/run/mariadbd.pid" "$BASE/munge/run/munged.pid"; do
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && echo "still running: $f ($pid)" >&2
  fi
  rm -f "$f"
done
if [ "${PURGE:-0}" = 1 ]; then
  case "$BASE" in
    /tmp/?*) rm -rf "$BASE" ;;
    *) echo "PURGE=1 only removes a BASE under /tmp (got $BASE)" >&2 ;;
  esac
fi
