//! The verdict on models with a known answer, through the real trainer and evaluator: a tiny
//! model trained here is judged "forgets"; the same weights with every decay forced to 1 (its
//! state never decays, so it cannot forget) are judged "does not forget".

mod common;

use std::path::Path;

use common::{corpus, run_ok, write};
use forgetlab_runs::RunDir;
use forgetlab_runs::results::{ForgetVerdict, Outcome};

fn read_verdict(run: &RunDir) -> ForgetVerdict {
    let path = run.verdict();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn config(seq_len: usize, total_tokens: usize) -> String {
    let corpus = corpus();
    format!(
        r#"seed = 3

[model]
d_model = 64
n_layer = 2
d_state = 16
headdim = 16
chunk_size = 16
vocab_size = 4096

[data]
train = ["{corpus}/slimpajama/train/**/*.jsonl.zst"]
validation = ["{corpus}/slimpajama/validation/**/*.jsonl.zst"]
tokenizer = "{corpus}/tokenizer-4k.json"

[train]
seq_len = {seq_len}
tokens_per_step = 8192
total_tokens = {total_tokens}
log_every = 50
val_every = 100000
checkpoint_every = 100000
workers = 2

[optim]
lr = 2e-3
warmup_steps = 20

[eval]
horizon = 1024
range_tokens = 131072
ngram_order = 0
prompts = []

[eval.passkey]
lengths = [128]
samples = 1
"#,
        corpus = corpus.display()
    )
}

/// Copies `from`'s config and final weights into `to` with every layer's `A_log` set to -30
/// (`forgetlab model set`): A = -exp(-30), so each decay alpha = exp(dt A) is 1 to float
/// precision.
fn with_decay_forced_to_one(from: &RunDir, to: &RunDir) {
    std::fs::create_dir_all(to.root()).unwrap();
    std::fs::copy(from.config(), to.config()).unwrap();
    let out = run_ok(&[
        "model",
        "set",
        "--checkpoint",
        from.final_model().to_str().unwrap(),
        "--output",
        to.final_model().to_str().unwrap(),
        "--param",
        "A_log",
        "--value",
        "-30",
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("layers.0.mixer.A_log") && said.contains("layers.1.mixer.A_log"),
        "{said}"
    );
}

#[test]
fn a_trained_model_forgets_and_its_never_decaying_copy_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "run.toml", &config(16, 1 << 21));
    let trained = RunDir::new(dir.path().join("trained"));
    let path = |p: &Path| p.to_str().unwrap().to_string();
    run_ok(&["train", &path(&config), "--run-dir", &path(trained.root())]);

    let stuck = RunDir::new(dir.path().join("stuck"));
    with_decay_forced_to_one(&trained, &stuck);

    for run in [&trained, &stuck] {
        run_ok(&["eval", "all", &path(run.root()), "--windows", "64"]);
    }
    let forgets = read_verdict(&trained);
    let cannot = read_verdict(&stuck);
    println!(
        "trained: {}\nforced alpha = 1: {}",
        forgets.note, cannot.note
    );
    assert_eq!(forgets.forgets, Some(true), "{}", forgets.note);
    assert_eq!(cannot.forgets, Some(false), "{}", cannot.note);
    let decision = cannot.decision.as_ref().unwrap();
    assert_eq!(decision.outcome, Outcome::DoesNotForget);
    // Every range is measured on at least the 64 windows asked for; narrow ones on more.
    assert!(decision.ranges.iter().all(|r| r.windows >= 64));
    assert_eq!(decision.ranges.last().unwrap().windows, 128);
    assert_eq!(decision.windows, 131072 / 16);
    // The never-decaying copy remembers everything.
    assert!(cannot.memory.as_ref().unwrap().max >= 1e15);

    // The verdict is recomputed from the stored files alone, to the same answer.
    run_ok(&["eval", "verdict", &path(stuck.root())]);
    assert_eq!(read_verdict(&stuck), cannot);
}
