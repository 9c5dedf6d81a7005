#!/usr/bin/env bash
# Reproduces experiments/results/verdict-known-answer/ (about 6 minutes on 2 cores, after
# `forgetlab data fetch`). FORGETLAB picks the binary (default: cargo run --release).
#   experiments/results/verdict-known-answer/reproduce.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
if [ -n "${FORGETLAB:-}" ]; then
  forgetlab() { "$FORGETLAB" "$@"; }
else
  forgetlab() { cargo run --release --quiet -p forgetlab-cli -- "$@"; }
fi
runs=runs/verdict-known-answer
out=experiments/results/verdict-known-answer
forgetlab train experiments/verdict-known-answer.toml --run-dir "$runs/trained"
mkdir -p "$runs/stuck"
cp "$runs/trained/config.toml" "$runs/stuck/config.toml"
forgetlab model set --checkpoint "$runs/trained/model" --output "$runs/stuck/model" \
  --param A_log --value -30
for run in trained stuck; do
  forgetlab eval all "$runs/$run" --horizon 4096 --windows 64 --bucket 64
  mkdir -p "$out/$run"
  for f in verdict.json per_position.json per_position.svg; do
    cp "$runs/$run/eval/$f" "$out/$run/$f"
  done
done
