//! Shared helpers of the end-to-end tests: the repository root, the fetched corpus, tiny run
//! configs and the `forgetlab` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The `forgetlab` binary under test.
pub fn forgetlab() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_forgetlab"));
    cmd.current_dir(repo());
    cmd
}

/// Runs `forgetlab ARGS`, panicking with its output unless it succeeds.
pub fn run_ok(args: &[&str]) -> Output {
    let out = forgetlab().args(args).output().expect("forgetlab runs");
    assert!(
        out.status.success(),
        "forgetlab {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The fetched corpus (SlimPajama-format shards and the 4K tokenizer). The test command
/// (`tests/run-all`) fetches it first; run `forgetlab data fetch` when running tests by hand.
pub fn corpus() -> PathBuf {
    let dir = repo().join("data/corpus");
    assert!(
        dir.join("tokenizer-4k.json").is_file() && dir.join("slimpajama/train").is_dir(),
        "the corpus is missing: run `cargo run --release -p forgetlab-cli -- data fetch` (tests/run-all does)"
    );
    dir
}

/// A tiny run config over the fetched corpus, as TOML, with `extra` appended to `[train]`.
pub fn tiny_run_config(seq_len: usize, total_tokens: usize, train_extra: &str) -> String {
    let corpus = corpus();
    format!(
        r#"seed = 1

[model]
d_model = 32
n_layer = 2
d_state = 8
headdim = 16
chunk_size = 16
vocab_size = 4096

[data]
train = ["{corpus}/slimpajama/train/**/*.jsonl.zst"]
validation = ["{corpus}/slimpajama/validation/**/*.jsonl.zst"]
tokenizer = "{corpus}/tokenizer-4k.json"

[train]
seq_len = {seq_len}
tokens_per_step = 1024
total_tokens = {total_tokens}
log_every = 1
val_tokens = 2048
{train_extra}

[optim]
lr = 3e-3
warmup_steps = 5

[eval]
windows = 4
range_tokens = 16384
ngram_tokens = 50000

[eval.passkey]
lengths = [128, 256]
samples = 2
"#,
        corpus = corpus.display()
    )
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the machine for one test of this file at a time (they each train on all cores).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The one `error: ...` line of a failed command's stderr (panics unless there is exactly one).
pub fn error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line:\n{stderr}");
    lines[0]
}

/// The bytes of a finished run's final weights.
pub fn final_weights(run: &forgetlab_runs::RunDir) -> Vec<u8> {
    std::fs::read(run.final_model().join("model.safetensors")).expect("final weights")
}
