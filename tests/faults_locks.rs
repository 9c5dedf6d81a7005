//! Fault injection: concurrent writers of one run directory or experiment, and runs whose
//! process died. Real processes, real files.

mod common;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{forgetlab, run_ok, serial, tiny_run_config, write};
use forgetlab_runs::lock::HOLDER_FILE;
use forgetlab_runs::{
    CHECKPOINT_MARKER, DirLock, ExperimentDir, RunDir, RunState, RunStatus, RunSummary,
    read_metrics,
};

/// A refused writer must give up at once, not after waiting for the holder.
const AT_ONCE: Duration = Duration::from_secs(20);

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn status(run: &RunDir) -> RunStatus {
    serde_json::from_slice(&std::fs::read(run.status()).expect("status.json"))
        .expect("status parses")
}

fn spawn(args: &[&str]) -> Child {
    forgetlab()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("forgetlab starts")
}

/// Runs `forgetlab ARGS`, which must fail within [`AT_ONCE`]; returns its output.
fn refused(args: &[&str]) -> Output {
    let start = Instant::now();
    let out = forgetlab().args(args).output().expect("forgetlab runs");
    let took = start.elapsed();
    assert!(
        !out.status.success(),
        "forgetlab {args:?} should have been refused:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took < AT_ONCE,
        "forgetlab {args:?} took {took:?} to give up"
    );
    out
}

/// The refusal names the holder: its pid, host and command, in one error line.
fn assert_names_holder(out: &Output, pid: u32, command_word: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"));
    for needed in [
        "in use by another writer".to_string(),
        format!("pid {pid} on {}", hostname()),
        " since ".to_string(),
        command_word.to_string(),
    ] {
        assert!(line.contains(&needed), "{needed:?} missing from: {line}");
    }
}

/// Every training record's step appears once, in order, and every complete checkpoint holds
/// the same files.
fn assert_one_writer_trace(run: &RunDir) {
    let (records, bad) = read_metrics(&run.metrics()).expect("metrics");
    assert_eq!(bad, 0, "torn metrics lines");
    let steps: Vec<u64> = records
        .iter()
        .filter(|r| r.kind == forgetlab_runs::MetricKind::Train)
        .map(|r| r.step)
        .collect();
    assert!(!steps.is_empty());
    assert!(
        steps.windows(2).all(|w| w[1] == w[0] + 1),
        "metrics steps not once each in order: {steps:?}"
    );
    let files = |step: u64| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(run.checkpoint(step))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let checkpoints = run.complete_checkpoints();
    assert!(!checkpoints.is_empty());
    let first = files(checkpoints[0]);
    assert!(first.contains(&CHECKPOINT_MARKER.to_string()));
    for step in &checkpoints {
        assert_eq!(files(*step), first, "checkpoint {step} differs");
    }
}

/// A training process that holds `run`'s lock now, and its config file.
struct Trainer {
    child: Child,
    config: std::path::PathBuf,
}

/// Starts `forgetlab train` on `run` (`steps` steps of 1024 tokens) and waits until it has
/// written its `running` status (so it holds the run directory's lock).
fn start_training(dir: &Path, run: &RunDir, steps: usize) -> Trainer {
    let config = write(
        dir,
        "run.toml",
        &tiny_run_config(64, steps * 1024, "checkpoint_every = 2\nval_every = 1000"),
    );
    let child = spawn(&[
        "train",
        config.to_str().unwrap(),
        "--run-dir",
        run.root().to_str().unwrap(),
    ]);
    let pid = child.id();
    wait_for("the trainer to start", Duration::from_secs(60), || {
        std::fs::read(run.status())
            .ok()
            .and_then(|b| serde_json::from_slice::<RunStatus>(&b).ok())
            .is_some_and(|s| s.pid == Some(pid) && s.state == RunState::Running)
    });
    Trainer { child, config }
}

#[test]
fn a_second_trainer_is_refused_at_once_and_the_first_is_untouched() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path().join("run"));
    let mut first = start_training(dir.path(), &run, 60);
    let pid = first.child.id();
    wait_for("a first metrics record", Duration::from_secs(60), || {
        run.metrics().is_file()
    });
    let config_before = std::fs::read(run.config()).unwrap();

    let out = refused(&[
        "train",
        first.config.to_str().unwrap(),
        "--run-dir",
        run.root().to_str().unwrap(),
    ]);
    assert_names_holder(&out, pid, "train");
    let out = refused(&["train", "--resume", run.root().to_str().unwrap()]);
    assert_names_holder(&out, pid, "train");
    assert!(
        first.child.try_wait().unwrap().is_none(),
        "the first trainer must still be running (make it longer)"
    );

    let exit = first.child.wait().unwrap();
    assert!(exit.success(), "the first trainer failed: {exit}");
    assert_eq!(std::fs::read(run.config()).unwrap(), config_before);
    assert_one_writer_trace(&run);
    assert_eq!(status(&run).state, RunState::Completed);
    assert_eq!(status(&run).pid, Some(pid));
    assert!(
        DirLock::holder(run.root()).is_none(),
        "the holder record goes with the lock"
    );
}

#[test]
fn evaluation_is_refused_while_training_holds_the_run() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path().join("run"));
    let mut trainer = start_training(dir.path(), &run, 60);
    let pid = trainer.child.id();
    wait_for("config.toml", Duration::from_secs(60), || run.exists());
    for sub in [
        &["eval", "all"][..],
        &["eval", "per-position"],
        &["eval", "diagnostics"],
    ] {
        let mut args = sub.to_vec();
        args.push(run.root().to_str().unwrap());
        let out = refused(&args);
        assert_names_holder(&out, pid, "train");
    }
    assert!(
        trainer.child.try_wait().unwrap().is_none(),
        "the trainer must still be running (make it longer)"
    );
    assert!(
        !run.eval().exists(),
        "a refused evaluation wrote {:?}",
        run.eval()
    );
    trainer.child.kill().unwrap();
    trainer.child.wait().unwrap();
}

#[test]
fn a_killed_trainers_run_reads_interrupted_and_its_lock_is_taken_over_on_resume() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let experiment = ExperimentDir::new(dir.path().join("exp"));
    std::fs::create_dir_all(experiment.root()).unwrap();
    let run = experiment.run("killed");
    let mut trainer = start_training(dir.path(), &run, 24);
    let pid = trainer.child.id();
    wait_for("a first checkpoint", Duration::from_secs(120), || {
        !run.complete_checkpoints().is_empty()
    });
    trainer.child.kill().unwrap(); // SIGKILL: no status written, no lock released by us
    trainer.child.wait().unwrap();

    // What it left: a `running` status naming the dead process.
    let left = status(&run);
    assert_eq!(left.state, RunState::Running);
    assert_eq!(left.pid, Some(pid));
    assert_eq!(left.host.as_deref(), Some(hostname().as_str()));

    // Every reader takes it as interrupted.
    assert_eq!(RunSummary::read(&run).state, Some(RunState::Interrupted));
    let out = run_ok(&["sweep", "status", experiment.root().to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("killed "))
        .unwrap_or_else(|| panic!("no row for the run in:\n{table}"));
    assert!(row.contains("interrupted"), "{table}");
    assert!(!table.contains("running"), "{table}");
    assert!(row.contains(&format!("pid {pid}")), "{table}");

    // Resume takes the dead process's lock (its holder record) over, says so, and finishes.
    assert_eq!(DirLock::holder(run.root()).map(|h| h.pid), Some(pid));
    let out = run_ok(&["train", "--resume", run.root().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("taking over the lock") && stderr.contains(&format!("pid {pid} ")),
        "no takeover warning naming pid {pid}:\n{stderr}"
    );
    assert!(stderr.contains("no longer running"), "{stderr}");
    assert_eq!(status(&run).state, RunState::Completed);
    assert_one_writer_trace(&run);
    assert!(DirLock::holder(run.root()).is_none());
}

#[test]
fn a_second_sweep_on_one_experiment_is_refused_and_the_first_finishes() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let experiment_text = tiny_run_config(64, 24 * 1024, "checkpoint_every = 4")
        .replace(
            "seed = 1",
            "[experiment]\nname = \"locks\"\n\n[base]\nseed = 1",
        )
        .replace("[model]", "[base.model]")
        .replace("[data]", "[base.data]")
        .replace("[train]", "[base.train]")
        .replace("[optim]", "[base.optim]")
        .replace("[eval.passkey]", "[base.eval.passkey]")
        .replace("[eval]", "[base.eval]");
    let file = write(dir.path(), "locks.toml", &experiment_text);
    let runs_root = dir.path().join("runs");
    let args = [
        "sweep",
        "run",
        file.to_str().unwrap(),
        "--runs-dir",
        runs_root.to_str().unwrap(),
        "--no-fit",
    ];
    let mut first = spawn(&args);
    let pid = first.id();
    let experiment = ExperimentDir::new(runs_root.join("locks"));
    // It writes experiment.toml once it holds the experiment.
    wait_for("the sweep to start", Duration::from_secs(60), || {
        experiment.experiment_file().is_file()
    });

    let out = refused(&args);
    assert_names_holder(&out, pid, "sweep run");
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first sweep must still be running"
    );
    // The refused sweep started nothing: no second trainer ever held the run.
    let exit = first.wait().unwrap();
    assert!(exit.success(), "the first sweep failed: {exit}");
    let runs = experiment.runs();
    assert_eq!(runs.len(), 1);
    // The sweep's own children (train, then eval) locked the run directory under it.
    assert_eq!(status(&runs[0]).state, RunState::Completed);
    assert!(runs[0].verdict().is_file(), "the sweep's evaluation ran");
    assert_one_writer_trace(&runs[0]);
    assert!(!experiment.root().join(HOLDER_FILE).exists());
}
