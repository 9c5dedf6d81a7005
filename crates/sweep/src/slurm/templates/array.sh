#!/usr/bin/env bash
{{sbatch_directives}}
# Written by `forgetlab sweep run --executor slurm`. One task per run: train (resuming
# from the newest checkpoint) and evaluate. On SIGUSR1 (time limit near) the task
# checkpoints, exits 3 and is requeued; the requeued task resumes.
set -u
{{setup}}
FORGETLAB={{forgetlab}}
RUNS=(
{{run_dirs}}
)
TASK="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
RUN_DIR="${RUNS[$SLURM_ARRAY_TASK_ID]}"
THREADS="${SLURM_CPUS_PER_TASK:-1}"
say() { echo "[$(date '+%F %T')] forgetlab task $TASK: $*"; }
say "start run=$RUN_DIR restart=${SLURM_RESTART_COUNT:-0} host=$(hostname)"
child=""
on_usr1() {
  say "got SIGUSR1: checkpointing"
  rc=3
  if [ -n "$child" ]; then
    kill -USR1 "$child" 2>/dev/null
    wait "$child"; rc=$?
  fi
  if [ "$rc" = 3 ]; then
    say "checkpointed; requeue"
    scontrol requeue "$TASK" || say "scontrol requeue failed; rerun the sweep to resume"
  else
    say "forgetlab exited $rc; not requeued"
  fi
  exit "$rc"
}
trap on_usr1 USR1
"$FORGETLAB" --threads "$THREADS" sweep task "$RUN_DIR" &
child=$!
wait "$child"; rc=$?
say "exit $rc"
exit "$rc"
