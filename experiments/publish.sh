#!/usr/bin/env bash
# Publishes an experiment's evidence: copies the small text files of runs/<name>/ (never
# checkpoints or weights) into experiments/results/<name>/, re-fits the law from the copies and
# regenerates the report there, so anyone can check the figures against the files beside them.
#
#   experiments/publish.sh law-on-cpu "just sweep law-on-cpu --jobs 2"
#
# The second argument is the command that produced runs/<name>/; it is recorded in
# PROVENANCE.md with the commit. FORGETLAB picks the binary (default: cargo run --release).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: experiments/publish.sh NAME [COMMAND]" >&2; exit 2; }
name=$1
command=${2:-"forgetlab sweep run experiments/$name.toml --jobs 2"}
src=runs/$name
out=experiments/results/$name
if [ -n "${FORGETLAB:-}" ]; then
  forgetlab() { "$FORGETLAB" "$@"; }
else
  forgetlab() { cargo run --release --quiet -p forgetlab-cli -- "$@"; }
fi
[ -f "$src/experiment.toml" ] || { echo "error: $src/experiment.toml not found: run the experiment first" >&2; exit 1; }

mkdir -p "$out"
copy() { # copy FILE DEST_DIR, if FILE exists
  if [ -f "$1" ]; then mkdir -p "$2" && cp "$1" "$2/"; fi
}
for f in experiment.toml sweep-log.jsonl; do copy "$src/$f" "$out"; done
runs=0
for run in "$src"/*/; do
  run=${run%/}
  [ -f "$run/config.toml" ] || continue
  dest=$out/$(basename "$run")
  for f in config.toml status.json metrics.jsonl; do copy "$run/$f" "$dest"; done
  for f in verdict.json per_position.json; do copy "$run/eval/$f" "$dest/eval"; done
  copy "$run/eval/passkey/summary.json" "$dest/eval/passkey"
  runs=$((runs + 1))
done

forgetlab fit "$out"
forgetlab report "$out"

commit=$(git rev-parse HEAD)
dirty=""
git diff --quiet HEAD -- . ":(exclude)$out" || dirty=" (with uncommitted changes)"
{
  echo "# Provenance of experiments/results/$name"
  echo
  echo "- $runs runs, produced by \`$command\` at commit $commit$dirty;"
  echo "  sweep-log.jsonl has the time of every stage of every run."
  echo "- Published $(date -u +%Y-%m-%dT%H:%MZ) by \`experiments/publish.sh $name\`, which copied each"
  echo "  run's config, status, metrics, verdict, per-position table and passkey summary, then ran"
  echo "  \`forgetlab fit $out\` and \`forgetlab report $out\` on the copies."
} > "$out/PROVENANCE.md"
echo "published $runs run(s) to $out"
