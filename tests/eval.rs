//! End-to-end evaluation of an untrained and a briefly trained run through the CLI: every
//! output file, the mitigations, and the exact passkey prompt.

mod common;

use std::path::Path;

use common::{corpus, run_ok, tiny_run_config, write};
use forgetlab_model::StateNormClip;
use forgetlab_runs::RunDir;
use forgetlab_runs::results::{Diagnostics, ForgetVerdict, PasskeySummary, PerPositionReport};

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        text.contains("<svg") && text.len() > 1000,
        "{} is not a chart",
        path.display()
    );
}

/// Evaluates `run` and checks every result file; returns the text curve's in-length mean loss.
fn evaluate(run: &RunDir) -> f64 {
    run_ok(&["eval", "all", run.root().to_str().unwrap()]);
    let report: PerPositionReport = read(&run.per_position("none"));
    assert_eq!(report.seq_len, 64);
    assert_eq!(report.horizon, 512);
    let prompts: Vec<&str> = report.curves.iter().map(|c| c.prompt.as_str()).collect();
    assert_eq!(prompts, ["text", "newlines", "capital"]);
    let text = &report.curves[0];
    assert_eq!(text.sequences, 4);
    assert!(
        text.buckets
            .iter()
            .all(|b| b.loss.is_finite() && b.ngram.is_some())
    );
    assert_svg(&run.per_position_plot("none"));
    let verdict: ForgetVerdict = read(&run.verdict());
    assert!(verdict.is_current() && verdict.test("excess").is_some());
    assert!(
        verdict
            .memory
            .as_ref()
            .is_some_and(|m| !m.per_head_max.is_empty())
    );
    let ranges = text.ranges.as_ref().expect("per-window verdict ranges");
    let bounds: Vec<(usize, usize)> = ranges.ranges.iter().map(|r| (r.start, r.end)).collect();
    assert_eq!(bounds, [(32, 64), (64, 128), (128, 256), (256, 512)]);
    // range_tokens = 16384: 256 windows of the narrow range, at least 4 of every one.
    let counts: Vec<usize> = ranges.ranges.iter().map(|r| r.windows).collect();
    assert_eq!(counts, [256, 128, 64, 32]);
    assert!(text.blocks.as_ref().is_some_and(|b| b.model.len() == 4));
    assert!(!verdict.note.is_empty());
    let diagnostics: Diagnostics = read(&run.diagnostics());
    assert_eq!(diagnostics.layers.len(), 2);
    assert_eq!(diagnostics.positions.len(), 512 / 64);
    for chart in ["alpha_per_head", "log_retention_first", "state_norm"] {
        assert_svg(&run.eval().join(format!("diagnostics-{chart}.svg")));
    }
    let passkey: PasskeySummary = read(&run.passkey_dir("none").join("summary.json"));
    assert_eq!(passkey.lengths, [128, 256]);
    assert_svg(&run.passkey_dir("none").join("heatmap.svg"));
    let in_length: Vec<f64> = text
        .buckets
        .iter()
        .filter(|b| b.end <= 64)
        .map(|b| b.loss)
        .collect();
    in_length.iter().sum::<f64>() / in_length.len() as f64
}

#[test]
fn untrained_and_briefly_trained_runs_evaluate_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "run.toml", &tiny_run_config(64, 120 * 1024, ""));

    let trained = RunDir::new(dir.path().join("trained"));
    run_ok(&[
        "train",
        config.to_str().unwrap(),
        "--run-dir",
        trained.root().to_str().unwrap(),
    ]);
    let trained_loss = evaluate(&trained);

    // An untrained run: the same config, the seeded initial weights.
    let untrained = RunDir::new(dir.path().join("untrained"));
    std::fs::create_dir_all(untrained.root()).unwrap();
    std::fs::copy(trained.config(), untrained.config()).unwrap();
    run_ok(&[
        "model",
        "init",
        untrained.config().to_str().unwrap(),
        "--output",
        untrained.final_model().to_str().unwrap(),
    ]);
    let untrained_loss = evaluate(&untrained);
    println!("in-length text loss: untrained {untrained_loss:.3}, trained {trained_loss:.3}");
    assert!(
        untrained_loss > 8.0,
        "an untrained model is near uniform over 4096 tokens"
    );
    assert!(trained_loss < untrained_loss - 1.0);

    // Mitigations, each recorded in its outputs.
    let run = trained.root().to_str().unwrap();
    run_ok(&[
        "eval",
        "per-position",
        run,
        "--rri-alpha",
        "0.99",
        "--rri-b",
        "0.75",
    ]);
    let rri: PerPositionReport = read(&trained.per_position("rri_alpha-0.99_rri_b-0.75"));
    assert_eq!(rri.mitigation.rri_alpha, Some(0.99));
    run_ok(&["eval", "per-position", run, "--sliding-window", "16"]);
    let window: PerPositionReport = read(&trained.per_position("sliding_window-16"));
    assert_eq!(window.mitigation.sliding_window, Some(16));
    run_ok(&["eval", "per-position", run, "--state-norm-clip", "1.0"]);
    let thresholds: StateNormClip = read(
        &trained
            .eval()
            .join("state_norm_thresholds-state_norm_clip-1.json"),
    );
    assert_eq!(thresholds.limits.len(), 2);
    assert_eq!(thresholds.every, 128);
    run_ok(&[
        "eval",
        "passkey",
        run,
        "--lengths",
        "192",
        "--samples",
        "3",
        "--dt-scale",
        "0.5",
    ]);
    let scaled: PasskeySummary = read(&trained.passkey_dir("dt_scale-0.5").join("summary.json"));
    assert_eq!(
        (scaled.lengths.as_slice(), scaled.samples_per_length),
        ([192].as_slice(), 3)
    );
    // Recomputing the verdict from the stored tables gives the same decision.
    let before: ForgetVerdict = read(&trained.verdict());
    run_ok(&["eval", "verdict", run]);
    let after: ForgetVerdict = read(&trained.verdict());
    assert_eq!(before.forgets, after.forgets);
}

#[test]
fn the_passkey_prompt_command_prints_the_exact_prompt() {
    let tokenizer = corpus().join("gpt-neox-20b-tokenizer.json");
    let out = run_ok(&[
        "eval",
        "passkey-prompt",
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--length",
        "300",
        "--depth",
        "0.5",
        "--passkey",
        "54321",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    let prefix = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it.\n\n";
    let filler = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n";
    let needle = "The passkey is 54321. Remember it. 54321 is the passkey.\n";
    assert!(text.starts_with(prefix) && text.ends_with("\nWhat is the pass key? The passkey is"));
    // GPT-NeoX: prefix 21 tokens, suffix 11, filler block 25 -> (300 - 32) / 25 = 10 blocks, the
    // needle in block int(0.5 * 9) = 4.
    let body = &text[prefix.len()..text.len() - "\nWhat is the pass key? The passkey is".len()];
    let mut expected = String::new();
    for i in 0..10 {
        expected.push_str(if i == 4 { needle } else { filler });
    }
    assert_eq!(body, expected);
}
