#!/usr/bin/env bash
# A stand-in for the `forgetlab` binary that obeys the sweep's process contract, for testing
# the executors without training anything:
#   forgetlab [--threads N] train <config> --run-dir <dir>   resumes from checkpoints/step-N/COMPLETE,
#       writes status.json and metrics.jsonl, checkpoints every step; on SIGUSR1/SIGTERM/SIGINT
#       it checkpoints, writes status interrupted and exits 3
#   forgetlab [--threads N] eval all <dir>        writes eval/verdict.json (needs a completed run)
#   forgetlab [--threads N] fit|report <exp-dir>  writes law.json / report/index.html
#   forgetlab [--threads N] sweep ...             runs $DRIVER (the real sweep code) with this
#       script as its trainer
# Behaviour is steered by files in $CONTROL (set when the test writes this script):
#   step_seconds              seconds per training step (default 0.02)
#   fail-train-<run>          training fails after one step (status failed, exit 1)
#   crash-train-<run>         training dies (exit 101) without writing a failed status
#   interrupt-<run>           holds a step k: training stops there once as if signalled (exit 3)
#   fail-eval-<run>           evaluation exits 1
#   fail-fit                  fit exits 1
# Every call is appended to $CONTROL/calls.log.
set -u
CONTROL=__CONTROL__
DRIVER=__DRIVER__
orig=("$@")
THREADS=default
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --*) shift ;;
    *) break ;;
  esac
done
cmd=${1:-}; shift || true
now() { date +%s.%N; }
log() { echo "$*" >> "$CONTROL/calls.log"; }

write_status() { # state step total reason
  local state=$1 step=$2 total=$3 reason=${4:-}
  local resumable=false last=null
  [ "$state" = interrupted ] && resumable=true
  [ "$step" -gt 0 ] && last=$step
  local r=null
  [ -n "$reason" ] && r="\"$reason\""
  local slurm=null
  [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && slurm="\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\""
  printf '{"state":"%s","step":%d,"total_steps":%d,"tokens":%d,"reason":%s,"resumable":%s,"last_checkpoint":%s,"updated_unix":%s,"host":"%s","pid":%d,"slurm_job":%s}\n' \
    "$state" "$step" "$total" "$((step * 64))" "$r" "$resumable" "$last" "$(now)" \
    "$(cat /proc/sys/kernel/hostname)" "$$" "$slurm" > "$RUN/.status.tmp"
  mv "$RUN/.status.tmp" "$RUN/status.json"
}

checkpoint() {
  mkdir -p "$RUN/checkpoints/step-$1"
  echo "$1" > "$RUN/checkpoints/step-$1/state"
  touch "$RUN/checkpoints/step-$1/COMPLETE"
}

case "$cmd" in
  train)
    RUN=$3
    name=$(basename "$RUN")
    total=$(sed -n 's/.*"total_steps": *\([0-9]*\).*/\1/p' "$RUN/status.json" 2>/dev/null | head -1)
    total=${total:-5}
    step_seconds=$(cat "$CONTROL/step_seconds" 2>/dev/null || echo 0.02)
    start=0
    for d in "$RUN"/checkpoints/step-*; do
      [ -f "$d/COMPLETE" ] || continue
      n=${d##*step-}
      [ "$n" -gt "$start" ] && start=$n
    done
    log "train $name threads=$THREADS start=$start t=$(now)"
    stop=""
    trap 'stop=1' USR1 TERM INT
    step=$start
    write_status running "$step" "$total"
    while [ "$step" -lt "$total" ]; do
      sleep "$step_seconds" & wait $!
      if [ -n "$stop" ]; then
        checkpoint "$step"
        write_status interrupted "$step" "$total" "signal"
        log "train-stop $name step=$step t=$(now)"
        exit 3
      fi
      step=$((step + 1))
      echo "{\"kind\":\"train\",\"step\":$step,\"tokens\":$((step * 64)),\"loss\":$((10 - step)).5,\"elapsed_s\":0.1}" >> "$RUN/metrics.jsonl"
      checkpoint "$step"
      write_status running "$step" "$total"
      if [ -f "$CONTROL/crash-train-$name" ]; then
        exit 101
      fi
      if [ -f "$CONTROL/fail-train-$name" ]; then
        write_status failed "$step" "$total" "fake failure"
        log "train-fail $name step=$step"
        exit 1
      fi
      if [ -f "$CONTROL/interrupt-$name" ] && [ "$(cat "$CONTROL/interrupt-$name")" = "$step" ]; then
        rm -f "$CONTROL/interrupt-$name"
        write_status interrupted "$step" "$total" "signal"
        log "train-stop $name step=$step t=$(now)"
        exit 3
      fi
    done
    mkdir -p "$RUN/model"
    write_status completed "$step" "$total"
    log "train-end $name t=$(now)"
    exit 0
    ;;
  eval)
    RUN=$2
    name=$(basename "$RUN")
    log "eval $name threads=$THREADS"
    trap 'exit 3' USR1 TERM INT
    if ! grep -q '"state":"completed"' "$RUN/status.json"; then
      echo "eval: $name is not trained" >&2
      exit 1
    fi
    if [ -f "$CONTROL/fail-eval-$name" ]; then
      echo "eval: fake failure" >&2
      exit 1
    fi
    mkdir -p "$RUN/eval"
    crit='{"curve":"raw","windows":8,"in_length":[8,16],"in_length_mean":3.0,"ranges":[{"start":16,"end":32,"rise":0.01,"stderr":0.01,"low":-0.02,"high":0.03}],"decisive":0,"outcome":"forgets"}'
    printf '{"version":2,"run":"%s","seq_len":16,"state_size":100,"forgets":true,"decided_on":"raw","prompt":"text","margin":0.1,"confidence":0.95,"decision":%s,"tests":[%s],"note":"fake"}\n' "$name" "$crit" "$crit" > "$RUN/eval/.verdict.tmp"
    mv "$RUN/eval/.verdict.tmp" "$RUN/eval/verdict.json"
    exit 0
    ;;
  fit)
    log "fit $(basename "$1") threads=$THREADS"
    [ -f "$CONTROL/fail-fit" ] && { echo "fit: fake failure" >&2; exit 1; }
    n=$(ls "$1"/*/eval/verdict.json 2>/dev/null | wc -l)
    echo "{\"experiment\":\"$(basename "$1")\",\"verdicts\":$n}" > "$1/law.json"
    exit 0
    ;;
  report)
    log "report $(basename "$1") threads=$THREADS"
    mkdir -p "$1/report"
    echo "<html>fake report</html>" > "$1/report/index.html"
    exit 0
    ;;
  sweep)
    log "sweep $* threads=$THREADS"
    FORGETLAB_TEST_TRAINER=$0 exec "$DRIVER" "${orig[@]}"
    ;;
  *)
    echo "fake forgetlab: unknown command ${cmd}" >&2
    exit 2
    ;;
esac
