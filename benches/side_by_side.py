#!/usr/bin/env python3
"""forgetlab against transformers' pure-PyTorch Mamba2, measured side by side: training
tokens/s for configurations A and B at 256, 1024 and 4096 tokens, alternating the two programs
round by round on the same machine.

A shared 2-core machine's speed drifts by tens of percent within minutes, and the two programs
feel it differently (the reference is memory-bound, forgetlab mostly GEMM-bound), so one run of
each proves little. Each round runs both back to back, in alternating order; the table reports
each program's median and the median of the per-round ratios, with their range.

Setup (PyPI only):  python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch transformers
Run:                /tmp/refenv/bin/python benches/side_by_side.py [--rounds 3] [--chunk 256]
                    (256 is transformers' and mamba_ssm's default chunk size; 64 is its fastest
                    on CPU. forgetlab runs the same config; its CPU kernel blocks by at most 64.)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def forgetlab_binary():
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/forgetlab/target"))
    return Path(target) / "release" / "forgetlab"


def json_lines(command):
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def run_reference(args):
    rows = json_lines([sys.executable, str(HERE / "reference_transformers.py"),
                       "--threads", str(args.threads), "--steps", str(args.steps),
                       "--chunk", str(args.chunk)])
    return {(r["model"], r["seq_len"]): r["tokens_per_s"] for r in rows}


def run_forgetlab(args):
    rows = json_lines([str(args.forgetlab), "bench", "model", "--json", "--log", "warn",
                       "--chunk", str(args.chunk), "--threads", str(args.threads),
                       "--workers", str(args.threads)])
    return {(r["model"], r["seq_len"]): r["tokens_per_s"]
            for r in rows if r.get("mode", "").startswith("train/")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed reference steps per point")
    ap.add_argument("--forgetlab", type=Path, default=forgetlab_binary())
    args = ap.parse_args()
    if not args.forgetlab.exists():
        sys.exit(f"{args.forgetlab}: not found; build it with `cargo build --release -p forgetlab-cli`")

    ours, theirs = [], []
    for round_ in range(args.rounds):
        order = [(run_reference, theirs), (run_forgetlab, ours)]
        for run, into in order if round_ % 2 == 0 else reversed(order):
            into.append(run(args))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    print(f"chunk {args.chunk}, {args.threads} threads, {args.rounds} rounds; tokens/s (median)")
    print("| model | seq_len | transformers | forgetlab | ratio (median) | ratio (range) |")
    print("|---|---|---|---|---|---|")
    for key in sorted(theirs[0]):
        t = [r[key] for r in theirs]
        o = [r[key] for r in ours]
        ratios = [a / b for a, b in zip(o, t)]
        print(f"| {key[0]} | {key[1]} | {statistics.median(t):.0f} | {statistics.median(o):.0f} "
              f"| {statistics.median(ratios):.2f}x | {min(ratios):.2f}-{max(ratios):.2f}x |")


if __name__ == "__main__":
    main()
