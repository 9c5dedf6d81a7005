//! End-to-end tests of `forgetlab train`: learning on real text, exact resume after SIGKILL,
//! SIGTERM, a corrupted checkpoint, a non-finite loss, and config errors.

mod common;

use std::time::{Duration, Instant};

use common::{error_line, final_weights, forgetlab, run_ok, serial, tiny_run_config, write};
use forgetlab_runs::{MetricKind, MetricRecord, RunDir, RunState, RunStatus, read_metrics};

fn status(run: &RunDir) -> RunStatus {
    serde_json::from_slice(&std::fs::read(run.status()).expect("status.json"))
        .expect("status parses")
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

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `forgetlab train CONFIG --run-dir RUN`, which must succeed.
fn train_to_completion(config: &std::path::Path, run: &RunDir) {
    run_ok(&[
        "train",
        config.to_str().unwrap(),
        "--run-dir",
        run.root().to_str().unwrap(),
    ]);
}

#[test]
fn validation_loss_falls_well_below_the_unigram_entropy() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path().join("smoke"));
    train_to_completion(std::path::Path::new("experiments/smoke-run.toml"), &run);
    let config = forgetlab_runs::RunConfig::load(&run.config()).unwrap();
    // Unigram entropy of the training tokens the run saw.
    let mut stream =
        forgetlab_data::TrainStream::open(&config.data, config.train.seq_len, config.seed).unwrap();
    let tokens = stream.next_sequences(4800).unwrap();
    let mut counts = vec![0u64; config.model.vocab_size];
    for &t in &tokens {
        counts[t as usize] += 1;
    }
    let n = tokens.len() as f64;
    let unigram: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum();
    let (records, _) = read_metrics(&run.metrics()).unwrap();
    let val: Vec<f64> = records
        .iter()
        .filter(|r| r.kind == MetricKind::Val)
        .map(|r| r.loss)
        .collect();
    let last = *val.last().expect("validation records");
    println!("unigram entropy {unigram:.3} nats; validation losses {val:?}");
    // 0.75 nats below the unigram entropy is a perplexity less than half the unigram model's.
    assert!(
        last < unigram - 0.75,
        "validation loss {last} is not well below the unigram entropy {unigram}"
    );
    assert!(val[0] > last, "validation loss should fall: {val:?}");
    assert_eq!(status(&run).state, RunState::Completed);
    assert!(run.final_model().join("model.safetensors").is_file());
    // TensorBoard itself reads the event files: every training and validation record.
    let script = format!(
        "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator as E\n\
         a = E('{}'); a.Reload()\n\
         print(len(a.Scalars('train/loss')), len(a.Scalars('val/loss')), a.Scalars('train/loss')[-1].step)",
        run.tensorboard().display()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "TensorBoard could not read the events (pip install tensorboard): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let train_records = records
        .iter()
        .filter(|r| r.kind == MetricKind::Train)
        .count();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{train_records} {} 600", val.len())
    );
}

#[test]
fn sigkill_then_resume_is_bit_identical() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "run.toml",
        &tiny_run_config(64, 40 * 1024, "checkpoint_every = 4\nval_every = 10"),
    );
    let reference = RunDir::new(dir.path().join("reference"));
    train_to_completion(&config, &reference);

    let killed = RunDir::new(dir.path().join("killed"));
    // Kill at a pseudo-random point after the first checkpoint.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let extra_wait = Duration::from_millis(u64::from(nanos % 1500));
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
    wait_for("a first checkpoint", Duration::from_secs(120), || {
        !killed.complete_checkpoints().is_empty()
    });
    std::thread::sleep(extra_wait);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = killed.complete_checkpoints();
    println!("killed after {extra_wait:?}; checkpoints {killed_at:?}");

    run_ok(&["train", "--resume", killed.root().to_str().unwrap()]);
    assert_eq!(
        trajectory(&killed),
        trajectory(&reference),
        "metrics differ after resume"
    );
    let a = final_weights(&reference);
    let b = final_weights(&killed);
    assert!(a == b, "final weights differ after resume");
    assert_eq!(status(&killed).state, RunState::Completed);
}

#[test]
fn sigterm_checkpoints_and_leaves_a_resumable_run() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "run.toml",
        &tiny_run_config(64, 400 * 1024, "checkpoint_every = 1000"),
    );
    let run = RunDir::new(dir.path().join("run"));
    let child = forgetlab()
        .args([
            "train",
            config.to_str().unwrap(),
            "--run-dir",
            run.root().to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("training to log", Duration::from_secs(120), || {
        read_metrics(&run.metrics())
            .map(|(r, _)| r.len() >= 3)
            .unwrap_or(false)
    });
    let status_code = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status_code.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted, resumable"));
    let s = status(&run);
    assert_eq!(s.state, RunState::Interrupted);
    assert!(s.resumable);
    let newest = *run
        .complete_checkpoints()
        .last()
        .expect("a checkpoint was written on SIGTERM");
    assert_eq!(Some(newest), s.last_checkpoint);
    assert!(newest >= 3);
}

#[test]
fn a_checkpoint_without_its_marker_is_skipped() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "run.toml",
        &tiny_run_config(32, 24 * 1024, "checkpoint_every = 8\nkeep_checkpoints = 3"),
    );
    let run = RunDir::new(dir.path().join("run"));
    train_to_completion(&config, &run);
    assert_eq!(run.complete_checkpoints(), vec![8, 16, 24]);
    let reference = trajectory(&run);
    let weights = final_weights(&run);
    // A crash while writing the newest checkpoint would leave it without its marker.
    std::fs::remove_file(run.checkpoint(24).join(forgetlab_runs::CHECKPOINT_MARKER)).unwrap();
    std::fs::remove_dir_all(run.final_model()).unwrap();
    let out = run_ok(&["train", "--resume", run.root().to_str().unwrap()]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("resumed") && log.contains("step 16"), "{log}");
    assert_eq!(trajectory(&run), reference);
    assert_eq!(final_weights(&run), weights);
}

#[test]
fn a_non_finite_loss_fails_the_run_and_keeps_the_last_good_checkpoint() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    // An absurd learning rate without clipping blows the weights up within a few steps.
    let text = tiny_run_config(32, 64 * 1024, "checkpoint_every = 1")
        .replace("lr = 3e-3", "lr = 1.0e30\ngrad_clip = 0.0");
    let config = write(dir.path(), "run.toml", &text);
    let run = RunDir::new(dir.path().join("run"));
    let out = forgetlab()
        .args([
            "train",
            config.to_str().unwrap(),
            "--run-dir",
            run.root().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let s = status(&run);
    assert_eq!(s.state, RunState::Failed);
    let reason = s.reason.unwrap();
    assert!(
        reason.contains("loss became") && reason.contains("at step"),
        "{reason}"
    );
    // The failing step was not checkpointed: the newest checkpoint is the last good step.
    assert!(s.step >= 1);
    assert_eq!(s.last_checkpoint, Some(s.step));
    assert_eq!(run.complete_checkpoints().last().copied(), Some(s.step));
}

#[test]
fn config_errors_are_one_line_with_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let base = tiny_run_config(32, 4096, "");
    let cases = [
        (
            base.replace("lr = 3e-3", "lr = 3e-3\nlearning_rate = 1"),
            "learning_rate",
            "run.toml:",
        ),
        (
            base.replace("seq_len = 32", "seq_len = \"long\""),
            "train.seq_len",
            "run.toml:",
        ),
        (
            base.replace("headdim = 16", "headdim = 24"),
            "model.headdim",
            "run.toml:",
        ),
    ];
    for (text, key, file) in cases {
        let path = write(dir.path(), "run.toml", &text);
        let out = forgetlab()
            .args([
                "train",
                path.to_str().unwrap(),
                "--run-dir",
                dir.path().join("r").to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = error_line(&stderr);
        assert!(line.contains(key) && line.contains(file), "{stderr}");
        let number = line
            .split(file)
            .nth(1)
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse::<usize>().ok());
        assert!(number.is_some(), "no line number in {stderr}");
    }
}

/// A sequence trained as segments with the state passed and back-propagated through is the
/// same computation as one segment; detaching the state at the boundaries (truncated BPTT)
/// leaves the first forward pass alone but changes the gradients. Gradient norms are compared,
/// not losses: a handful of warm-up steps moves the loss too little for truncation's effect
/// on it to be reliable on every corpus sample.
#[test]
fn segments_with_bptt_train_like_one_segment_and_detach_differs() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let first_steps = |name: &str, extra: &str| -> Vec<(f64, f64)> {
        let config = write(
            dir.path(),
            &format!("{name}.toml"),
            &tiny_run_config(128, 6 * 1024, extra),
        );
        let run = RunDir::new(dir.path().join(name));
        train_to_completion(&config, &run);
        let (records, _) = read_metrics(&run.metrics()).unwrap();
        records
            .iter()
            .filter(|r| r.kind == MetricKind::Train)
            .map(|r| {
                (
                    r.loss,
                    r.grad_norm.expect("train records carry the gradient norm"),
                )
            })
            .collect()
    };
    let whole = first_steps("whole", "");
    let bptt = first_steps("bptt", "segment_len = 32\nstate_passing = \"bptt\"");
    let detach = first_steps("detach", "segment_len = 16\nstate_passing = \"detach\"");
    println!("one segment {whole:?}\nbptt        {bptt:?}\ndetach      {detach:?}");
    assert_eq!(whole.len(), 6);
    for ((loss_a, _), (loss_b, _)) in whole.iter().zip(&bptt) {
        assert!(
            (loss_a - loss_b).abs() < 2e-4,
            "bptt over segments differs from one segment: {loss_a} vs {loss_b}"
        );
    }
    let relative = |a: f64, b: f64| (a - b).abs() / a.abs().max(b.abs());
    let largest_change = |other: &[(f64, f64)]| {
        whole
            .iter()
            .zip(other)
            .map(|((_, a), (_, b))| relative(*a, *b))
            .fold(0.0, f64::max)
    };
    let (bptt_change, detach_change) = (largest_change(&bptt), largest_change(&detach));
    assert!(
        bptt_change < 1e-5,
        "bptt's gradients are one segment's, yet their norms differ by {bptt_change:e}"
    );
    assert!(
        (whole[0].0 - detach[0].0).abs() < 2e-4,
        "the first forward pass is the same"
    );
    assert!(
        detach_change > 1e-3,
        "detaching the state changes the gradients, yet their norms differ by at most {detach_change:e}"
    );
}

/// Micro-batches computed concurrently on model replicas are summed in micro-batch order, so
/// the number of workers changes the speed, never the result: one worker, three workers, and a
/// run interrupted under one worker and resumed under three train bit-identical models.
#[test]
fn workers_change_the_speed_not_the_result() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let config_with = |workers: usize| {
        write(
            dir.path(),
            &format!("workers-{workers}.toml"),
            &tiny_run_config(
                64,
                40 * 1024,
                &format!(
                    "micro_batch_tokens = 256\nworkers = {workers}\nval_every = 8\ncheckpoint_every = 4"
                ),
            ),
        )
    };
    let train = |name: &str, workers: usize| -> RunDir {
        let run = RunDir::new(dir.path().join(name));
        train_to_completion(&config_with(workers), &run);
        run
    };
    let one = train("one-worker", 1);
    let three = train("three-workers", 3);
    assert_eq!(
        trajectory(&one).len(),
        40 + 5,
        "40 train records, 5 validations"
    );
    assert_eq!(trajectory(&one), trajectory(&three), "metrics differ");
    assert!(
        final_weights(&one) == final_weights(&three),
        "final weights differ between 1 and 3 workers"
    );

    // Interrupted under one worker, resumed with `--workers 3`.
    let moved = RunDir::new(dir.path().join("moved"));
    let child = forgetlab()
        .args([
            "train",
            config_with(1).to_str().unwrap(),
            "--run-dir",
            moved.root().to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("a first checkpoint", Duration::from_secs(120), || {
        !moved.complete_checkpoints().is_empty()
    });
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait_with_output().unwrap();
    let stopped_at = moved.complete_checkpoints();
    println!("interrupted with checkpoints {stopped_at:?}");
    run_ok(&[
        "train",
        "--resume",
        moved.root().to_str().unwrap(),
        "--workers",
        "3",
    ]);
    assert_eq!(status(&moved).state, RunState::Completed);
    assert_eq!(
        trajectory(&moved),
        trajectory(&one),
        "metrics differ after moving to 3 workers"
    );
    assert!(
        final_weights(&moved) == final_weights(&one),
        "final weights differ after moving to 3 workers"
    );
}

/// `precision = "bf16"` (products in bf16, the scan in f32; emulated on the CPU) trains a run
/// end to end whose losses follow f32's to within bf16's rounding, but are not identical.
#[test]
fn bf16_products_train_close_to_f32() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let losses = |name: &str, extra: &str| -> Vec<f64> {
        let config = write(
            dir.path(),
            &format!("{name}.toml"),
            &tiny_run_config(64, 8 * 1024, extra),
        );
        let run = RunDir::new(dir.path().join(name));
        train_to_completion(&config, &run);
        assert_eq!(status(&run).state, RunState::Completed);
        let (records, _) = read_metrics(&run.metrics()).unwrap();
        records.iter().map(|r| r.loss).collect()
    };
    let full = losses("f32", "");
    let mixed = losses("bf16", "precision = \"bf16\"");
    println!("f32  {full:?}\nbf16 {mixed:?}");
    assert_eq!(full.len(), mixed.len());
    assert!(full != mixed, "bf16 products changed nothing");
    for (a, b) in full.iter().zip(&mixed) {
        assert!((a - b).abs() < 2e-3 * a, "loss {a} (f32) vs {b} (bf16)");
    }
}
