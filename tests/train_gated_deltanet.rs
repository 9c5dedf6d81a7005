//! Gated DeltaNet through the real `forgetlab` binary, as Mamba-2 goes through it: a tiny run
//! trains, is SIGKILLed and resumed bit for bit, and evaluates (per-position loss, verdict,
//! diagnostics, passkey; Mamba-2-only mitigations refused in one line); `model info` reports
//! its sizes; `model logits` reads fla's layout directly and matches the fixture in every mode.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{corpus, error_line, final_weights, forgetlab, repo, run_ok, serial, write};
use forgetlab_runs::results::{Diagnostics, ForgetVerdict, PasskeySummary, PerPositionReport};
use forgetlab_runs::{MetricKind, MetricRecord, RunDir, read_metrics};

/// A tiny Gated DeltaNet run over the fetched corpus: 2 layers of 2 heads (d_k 8, d_v 16) with
/// a 32-wide MLP, 80 steps of 1024 tokens in sequences of 32.
fn run_config() -> String {
    let corpus = corpus();
    format!(
        r#"seed = 1

[model]
mixer = "gated-deltanet"
d_model = 32
n_layer = 2
chunk_size = 16
vocab_size = 4096

[model.gated_deltanet]
heads = 2
head_k_dim = 8
expand_v = 2.0
intermediate_size = 32

[data]
train = ["{corpus}/slimpajama/train/**/*.jsonl.zst"]
validation = ["{corpus}/slimpajama/validation/**/*.jsonl.zst"]
tokenizer = "{corpus}/tokenizer-4k.json"

[train]
seq_len = 32
tokens_per_step = 1024
total_tokens = 81920
log_every = 1
val_tokens = 2048
val_every = 10
checkpoint_every = 4

[optim]
lr = 1e-2
warmup_steps = 5

[eval]
windows = 4
range_tokens = 4096
ngram_tokens = 50000

[eval.passkey]
lengths = [128, 256]
samples = 2
"#,
        corpus = corpus.display()
    )
}

/// A metric record without its timing fields, floats as bit patterns.
type Point = (MetricKind, u64, u64, u64, Option<u64>, Option<u64>);

/// Loss, lr and grad norm of every record (timing fields differ between runs).
fn trajectory(run: &RunDir) -> Vec<Point> {
    let (records, bad) = read_metrics(&run.metrics()).expect("metrics");
    assert_eq!(bad, 0);
    records
        .iter()
        .map(|r: &MetricRecord| {
            (
                r.kind,
                r.step,
                r.tokens,
                r.loss.to_bits(),
                r.lr.map(f64::to_bits),
                r.grad_norm.map(f64::to_bits),
            )
        })
        .collect()
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `forgetlab ARGS`, which must fail: its one error line.
fn run_err(args: &[&str]) -> String {
    let out = forgetlab().args(args).output().expect("forgetlab runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "forgetlab {args:?} succeeded:\n{stderr}"
    );
    error_line(&stderr).to_string()
}

#[test]
fn a_gated_deltanet_run_trains_resumes_bit_for_bit_and_evaluates() {
    let _guard = serial();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "run.toml", &run_config());
    let reference = RunDir::new(dir.path().join("reference"));
    run_ok(&[
        "train",
        config.to_str().unwrap(),
        "--run-dir",
        reference.root().to_str().unwrap(),
    ]);
    let losses: Vec<f64> = read_metrics(&reference.metrics())
        .unwrap()
        .0
        .iter()
        .filter(|r| r.kind == MetricKind::Train)
        .map(|r| r.loss)
        .collect();
    assert_eq!(losses.len(), 80);
    // The first loss is ln(4096) = 8.32; the last ten average about 7.0.
    let (first, last) = (losses[0], losses[70..].iter().sum::<f64>() / 10.0);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        last < first - 0.8,
        "training loss {first} -> {last} (last ten)"
    );
    println!(
        "trained in {:?}: loss {first:.3} -> {last:.3}",
        started.elapsed()
    );

    // The same run SIGKILLed after its first checkpoint, then resumed.
    let killed = RunDir::new(dir.path().join("killed"));
    let mut child = forgetlab()
        .args([
            "train",
            config.to_str().unwrap(),
            "--run-dir",
            killed.root().to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let wait = Instant::now();
    while killed.complete_checkpoints().is_empty() {
        assert!(
            wait.elapsed() < Duration::from_secs(120),
            "no first checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = killed.complete_checkpoints();
    assert!(
        !killed.final_model().exists() && at_kill.iter().all(|&s| s < 80),
        "the run finished before it was killed: checkpoints {at_kill:?}"
    );
    run_ok(&["train", "--resume", killed.root().to_str().unwrap()]);
    assert_eq!(
        trajectory(&killed),
        trajectory(&reference),
        "metrics differ after resume (killed after checkpoints {at_kill:?})"
    );
    assert!(
        final_weights(&killed) == final_weights(&reference),
        "final weights differ after resume"
    );
    println!(
        "killed after checkpoints {at_kill:?}, resumed bit for bit ({:?})",
        started.elapsed()
    );

    // Evaluation: every result file, with the model's own architecture.
    let run = reference.root().to_str().unwrap();
    run_ok(&["eval", "all", run]);
    let report: PerPositionReport = read(&reference.per_position("none"));
    assert_eq!((report.seq_len, report.horizon), (32, 256));
    let text = &report.curves[0];
    assert_eq!((text.prompt.as_str(), text.sequences), ("text", 4));
    assert!(text.buckets.iter().all(|b| b.loss.is_finite()));
    let in_length: Vec<f64> = text
        .buckets
        .iter()
        .filter(|b| b.end <= 32)
        .map(|b| b.loss)
        .collect();
    let mean = in_length.iter().sum::<f64>() / in_length.len() as f64;
    assert!(
        mean < (4096f64).ln() - 0.5,
        "in-length loss {mean} is near uniform"
    );
    let verdict: ForgetVerdict = read(&reference.verdict());
    assert!(verdict.is_current() && verdict.test("excess").is_some());
    let diagnostics: Diagnostics = read(&reference.diagnostics());
    assert_eq!(diagnostics.layers.len(), 2);
    let passkey: PasskeySummary = read(&reference.passkey_dir("none").join("summary.json"));
    assert_eq!(passkey.lengths, [128, 256]);

    // Mitigations: those Gated DeltaNet has run; Mamba-2's are refused before anything runs.
    run_ok(&["eval", "per-position", run, "--rri-alpha", "0.99"]);
    let rri: PerPositionReport = read(&reference.per_position("rri_alpha-0.99"));
    assert_eq!(rri.mitigation.rri_alpha, Some(0.99));
    for (flag, value, label) in [
        ("--rri-b", "0.75", "rri_b-0.75"),
        ("--sliding-window", "16", "sliding_window-16"),
    ] {
        let error = run_err(&["eval", "per-position", run, flag, value]);
        let setting = &flag[2..].replace('-', "_");
        assert!(
            error.contains(setting)
                && error.contains("Mamba-2 only")
                && error.contains("Gated DeltaNet"),
            "{error}"
        );
        assert!(!reference.per_position(label).exists(), "{label} written");
    }
    println!("evaluated ({:?})", started.elapsed());
}

#[test]
fn model_info_reports_gated_deltanet_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "run.toml", &run_config());
    let out = run_ok(&["model", "info", config.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Gated DeltaNet  d_model 32  n_layer 2  heads 2 x d_k 8 x d_v 16  MLP 32"),
        "{text}"
    );
    // N_S = 2 layers x (2 x 8 x 16 + (2 x 16 + 32) x 3).
    let n_s = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("state size N_S"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no N_S line:\n{text}"));
    assert_eq!(n_s, "896", "{text}");
    assert!(text.contains("model.layers.0.attn.q_proj.weight"), "{text}");
    assert!(
        !text.contains("model.layers.1."),
        "one layer's tensors listed:\n{text}"
    );
    let out = run_ok(&["model", "info", "--json", config.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["state_size"], 896);
    assert_eq!(json["state_size_ssm"], 512);
    assert_eq!(json["config"]["mixer"], "gated-deltanet");
}

/// An .npy file of f32 values: shape and values.
fn read_f32_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let file = npyz::NpyFile::new(std::fs::File::open(path).unwrap()).unwrap();
    let shape = file.shape().to_vec();
    (shape, file.into_vec::<f32>().unwrap())
}

#[test]
fn model_logits_read_fla_layout_and_match_the_fixture_in_every_mode() {
    let fixture = repo().join("tests/fixtures/gated-deltanet-tiny");
    let (shape, want) = read_f32_npy(&fixture.join("logits.npy"));
    assert_eq!(shape, [2, 40, 300]);
    let dir = tempfile::tempdir().unwrap();
    for mode in ["chunked", "recurrent", "streaming"] {
        let output = dir.path().join(format!("{mode}.npy"));
        run_ok(&[
            "model",
            "logits",
            "--checkpoint",
            fixture.to_str().unwrap(),
            "--input",
            fixture.join("input_ids.npy").to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--mode",
            mode,
            "--segment",
            "13",
        ]);
        let (got_shape, got) = read_f32_npy(&output);
        assert_eq!(got_shape, shape, "{mode}");
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-4, "{mode}: logits max |diff| {diff:e}");
        println!("model logits --mode {mode}: max |diff| {diff:.2e}");
    }
}

/// A forgetlab checkpoint of a Gated DeltaNet exports to fla's layout (fla's config.json) and
/// computes the same logits, bit for bit, when read back; a Mamba-2 checkpoint is refused.
#[test]
fn export_fla_writes_a_checkpoint_that_computes_the_same_logits() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    write(
        dir.path(),
        "model.toml",
        "d_model = 32\nn_layer = 2\nvocab_size = 300\nchunk_size = 8\n\
         mixer = \"gated-deltanet\"\n[gated_deltanet]\nheads = 2\nhead_k_dim = 8\n\
         intermediate_size = 32\n",
    );
    run_ok(&[
        "model",
        "init",
        &path("model.toml"),
        "--output",
        &path("ours"),
        "--seed",
        "4",
    ]);
    run_ok(&[
        "model",
        "export-fla",
        "--checkpoint",
        &path("ours"),
        "--output",
        &path("fla"),
    ]);
    let config: serde_json::Value = read(&dir.path().join("fla/config.json"));
    assert_eq!(config["model_type"], "gated_deltanet");
    assert_eq!(config["num_heads"], 2);
    let ids = repo().join("tests/fixtures/gated-deltanet-tiny/input_ids.npy");
    for checkpoint in ["ours", "fla"] {
        run_ok(&[
            "model",
            "logits",
            "--checkpoint",
            &path(checkpoint),
            "--input",
            ids.to_str().unwrap(),
            "--output",
            &path(&format!("{checkpoint}.npy")),
        ]);
    }
    // The same weights (export-fla checks them bit for bit); fla's config has no chunk length,
    // so the copy runs at the default chunk and agrees to float rounding.
    let (ours_shape, ours) = read_f32_npy(&dir.path().join("ours.npy"));
    let (fla_shape, fla) = read_f32_npy(&dir.path().join("fla.npy"));
    assert_eq!(ours_shape, fla_shape);
    let diff = ours
        .iter()
        .zip(&fla)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff <= 1e-5, "logits max |diff| {diff:e}");

    write(
        dir.path(),
        "mamba.toml",
        "d_model = 32\nn_layer = 1\nvocab_size = 300\nheaddim = 16\nd_state = 8\n",
    );
    run_ok(&[
        "model",
        "init",
        &path("mamba.toml"),
        "--output",
        &path("mamba"),
    ]);
    let err = run_err(&[
        "model",
        "export-fla",
        "--checkpoint",
        &path("mamba"),
        "--output",
        &path("x"),
    ]);
    assert!(err.contains("Gated DeltaNet"), "{err}");
}
