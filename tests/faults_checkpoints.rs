//! Fault injection: damaged checkpoints and changed provenance (tokenizer, data, edited
//! config) at resume and evaluation. Real processes, real files.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{
    corpus, error_line, final_weights, forgetlab, run_ok, serial, tiny_run_config, write,
};
use forgetlab_runs::{MetricRecord, RunConfig, RunDir, read_metrics};

/// A 24-step run checkpointed at steps 8, 16 and 24 (all kept).
fn small_run_config() -> String {
    tiny_run_config(32, 24 * 1024, "checkpoint_every = 8\nkeep_checkpoints = 3")
}

/// Trains `config_text` into `dir/name` to completion.
fn trained(dir: &Path, name: &str, config_text: &str) -> RunDir {
    let config = write(dir, &format!("{name}.toml"), config_text);
    let run = RunDir::new(dir.join(name));
    run_ok(&[
        "train",
        config.to_str().unwrap(),
        "--run-dir",
        run.root().to_str().unwrap(),
    ]);
    assert_eq!(run.complete_checkpoints(), vec![8, 16, 24]);
    run
}

/// Runs `forgetlab ARGS`, which must fail; returns its stderr.
fn run_refused(args: &[&str]) -> String {
    let out: Output = forgetlab().args(args).output().expect("forgetlab runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "forgetlab {args:?} succeeded but should have been refused:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// Loss, lr and grad norm of every record, floats as bit patterns (timings differ).
fn trajectory(run: &RunDir) -> Vec<(u64, u64, Option<u64>, Option<u64>)> {
    let (records, bad) = read_metrics(&run.metrics()).expect("metrics");
    assert_eq!(bad, 0);
    records
        .iter()
        .map(|r: &MetricRecord| {
            (
                r.step,
                r.loss.to_bits(),
                r.lr.map(f64::to_bits),
                r.grad_norm.map(f64::to_bits),
            )
        })
        .collect()
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    out
}

fn truncate(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len / 2).unwrap();
}

fn flip_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

/// Checkpoint directories moved aside as damaged.
fn set_aside(run: &RunDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run.checkpoints())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".damaged-"))
        .collect();
    names.sort();
    names
}

fn data_json(run: &RunDir) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.root().join("data.json")).unwrap()).unwrap()
}

#[test]
fn a_truncated_newest_model_file_falls_back_to_the_previous_checkpoint() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "run", &small_run_config());
    let reference = trajectory(&run);
    let weights = final_weights(&run);
    truncate(&run.checkpoint(24).join("model.bpk"));
    std::fs::remove_dir_all(run.final_model()).unwrap();

    let out = run_ok(&["train", "--resume", run.root().to_str().unwrap()]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("step-24 is damaged: model.bpk is")
            && log.contains("the marker says")
            && log.contains("resumed")
            && log.contains("from step 16"),
        "{log}"
    );
    // Continued from step 16 exactly as the first time.
    assert_eq!(trajectory(&run), reference);
    assert!(final_weights(&run) == weights, "final weights differ");
    // The damaged checkpoint is kept aside, and a new step 24 was written.
    let aside = set_aside(&run);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].starts_with("step-24.damaged-"));
    assert_eq!(run.complete_checkpoints(), vec![8, 16, 24]);
}

#[test]
fn flipped_bytes_in_the_newest_optimizer_file_are_detected() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "run", &small_run_config());
    let reference = trajectory(&run);
    let optimizer = run.checkpoint(24).join("optimizer.bpk");
    let size = std::fs::metadata(&optimizer).unwrap().len();
    flip_byte(&optimizer);
    assert_eq!(std::fs::metadata(&optimizer).unwrap().len(), size);

    let out = run_ok(&["train", "--resume", run.root().to_str().unwrap()]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("step-24 is damaged: optimizer.bpk has sha256")
            && log.contains("from step 16"),
        "{log}"
    );
    assert_eq!(trajectory(&run), reference);
    assert_eq!(set_aside(&run).len(), 1);
}

#[test]
fn with_no_intact_checkpoint_resume_refuses_keeps_everything_and_restart_starts_over() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "run", &small_run_config());
    let reference = trajectory(&run);
    let weights = final_weights(&run);
    truncate(&run.checkpoint(8).join("optimizer.bpk"));
    flip_byte(&run.checkpoint(16).join("model.bpk"));
    truncate(&run.checkpoint(24).join("model.bpk"));
    let before = snapshot(run.root());

    let stderr = run_refused(&["train", "--resume", run.root().to_str().unwrap()]);
    let error = error_line(&stderr);
    assert!(error.contains("no intact checkpoint"), "{error}");
    for problem in [
        "step-24: model.bpk is",
        "step-16: model.bpk has sha256",
        "step-8: optimizer.bpk is",
        "--restart",
    ] {
        assert!(error.contains(problem), "{problem:?} not in {error}");
    }
    // Nothing was deleted, moved or rewritten.
    assert!(snapshot(run.root()) == before, "the run directory changed");

    // --restart moves the old attempt aside and trains from step 0, like the first time.
    run_ok(&[
        "train",
        "--resume",
        run.root().to_str().unwrap(),
        "--restart",
    ]);
    assert_eq!(trajectory(&run), reference);
    assert!(final_weights(&run) == weights, "final weights differ");
    assert_eq!(run.complete_checkpoints(), vec![8, 16, 24]);
    let old: Vec<PathBuf> = std::fs::read_dir(run.root().join(".old"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(old.len(), 1, "{old:?}");
    for (path, bytes) in &before {
        if path.starts_with("checkpoints") || path.starts_with("metrics.jsonl") {
            assert!(
                std::fs::read(old[0].join(path)).ok().as_ref() == Some(bytes),
                "{} was not kept in {}",
                path.display(),
                old[0].display()
            );
        }
    }
}

#[test]
fn a_replaced_tokenizer_is_refused_at_resume_and_eval_naming_both_hashes() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let original = corpus().join("tokenizer-4k.json");
    let tokenizer = dir.path().join("tokenizer.json");
    std::fs::copy(&original, &tokenizer).unwrap();
    let text = small_run_config().replace(
        &format!("tokenizer = \"{}\"", original.display()),
        &format!("tokenizer = \"{}\"", tokenizer.display()),
    );
    assert!(text.contains(tokenizer.to_str().unwrap()));
    let run = trained(dir.path(), "run", &text);
    let recorded = data_json(&run)["tokenizer_sha256"]
        .as_str()
        .unwrap()
        .to_string();

    // Replaced in place by a file with other bytes (here the same tokenizer, reformatted).
    let mut bytes = std::fs::read(&tokenizer).unwrap();
    bytes.extend_from_slice(b"\n\n");
    std::fs::write(&tokenizer, &bytes).unwrap();
    let current = forgetlab_runs::marker::sha256_hex(&bytes);
    assert_ne!(current, recorded);
    let before = snapshot(run.root());

    let stderr = run_refused(&["train", "--resume", run.root().to_str().unwrap()]);
    let error = error_line(&stderr);
    assert!(
        error.contains("tokenizer changed")
            && error.contains(&recorded)
            && error.contains(&current)
            && error.contains(tokenizer.to_str().unwrap()),
        "{error}"
    );
    assert!(snapshot(run.root()) == before, "the run directory changed");
    assert_eq!(data_json(&run)["tokenizer_sha256"], recorded.as_str());

    let stderr = run_refused(&[
        "eval",
        "diagnostics",
        run.root().to_str().unwrap(),
        "--length",
        "64",
    ]);
    let error = error_line(&stderr);
    assert!(
        error.contains("tokenizer changed")
            && error.contains(&recorded)
            && error.contains(&current),
        "{error}"
    );
    assert!(!run.diagnostics().exists());
}

#[test]
fn changed_training_data_is_refused_at_resume_and_eval() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let shards = dir.path().join("shards");
    std::fs::create_dir_all(&shards).unwrap();
    let source = corpus().join("slimpajama/train/chunk1");
    std::fs::copy(
        source.join("example_train_16.jsonl.zst"),
        shards.join("a.jsonl.zst"),
    )
    .unwrap();
    let pattern = format!("{}/slimpajama/train/**/*.jsonl.zst", corpus().display());
    let text = small_run_config().replace(&pattern, &format!("{}/*.jsonl.zst", shards.display()));
    assert!(text.contains(shards.to_str().unwrap()));
    let run = trained(dir.path(), "run", &text);
    let recorded = data_json(&run)["data"]["sha256"]
        .as_str()
        .expect("data.json records the data identity")
        .to_string();

    // A second shard appears under the run's glob.
    std::fs::copy(
        source.join("example_train_0.jsonl.zst"),
        shards.join("b.jsonl.zst"),
    )
    .unwrap();
    let before = snapshot(run.root());
    let stderr = run_refused(&["train", "--resume", run.root().to_str().unwrap()]);
    let error = error_line(&stderr);
    assert!(
        error.contains("training data changed")
            && error.contains(&recorded)
            && error.contains("b.jsonl.zst (train) is new"),
        "{error}"
    );
    assert!(snapshot(run.root()) == before, "the run directory changed");
    let stderr = run_refused(&[
        "eval",
        "diagnostics",
        run.root().to_str().unwrap(),
        "--length",
        "64",
    ]);
    assert!(
        error_line(&stderr).contains(&recorded),
        "{}",
        error_line(&stderr)
    );
}

#[test]
fn an_edited_config_names_the_changed_keys_and_execution_settings_may_change() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "run", &small_run_config());
    let original = std::fs::read_to_string(run.config()).unwrap();
    let config = RunConfig::load(&run.config()).unwrap();

    let mut edited = config.clone();
    edited.model.d_state = 16;
    std::fs::write(run.config(), edited.to_toml()).unwrap();
    let before = snapshot(run.root());
    let stderr = run_refused(&["train", "--resume", run.root().to_str().unwrap()]);
    let error = error_line(&stderr);
    assert!(
        error.contains("config.toml changed since the run started: model.d_state 8 -> 16"),
        "{error}"
    );
    assert!(!error.contains("shape"), "{error}");
    assert!(snapshot(run.root()) == before, "the run directory changed");

    // Execution settings are not the experiment: a resume may change them.
    let mut moved = config.clone();
    moved.train.threads = Some(1);
    moved.train.workers = Some(2);
    std::fs::write(run.config(), moved.to_toml()).unwrap();
    std::fs::remove_dir_all(run.final_model()).unwrap();
    run_ok(&["train", "--resume", run.root().to_str().unwrap()]);
    assert!(run.final_model().join("model.safetensors").is_file());
    std::fs::write(run.config(), original).unwrap();
}
