//! The real `forgetlab` on a real Slurm cluster (one node on loopback, tests/slurm/up.sh): a
//! small sweep is submitted as an array with `forgetlab sweep run --executor slurm`, one task
//! gets SIGUSR1 as before a time limit, the trainer checkpoints, the task requeues itself and
//! resumes from the checkpoint; every run trains and is evaluated, the dependent job fits and
//! reports, and `forgetlab sweep status` says so.
//!
//! Needs root (installs Slurm with apt when missing) and about 4 minutes, most of it Slurm's
//! delay before a requeued job restarts, so it runs only when asked: FORGETLAB_SLURM_TEST=1
//! (tests/run-all sets it). The sweep crate's own Slurm test covers the executor's edge cases
//! with a scripted trainer; this one proves the pieces work together.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{forgetlab, repo, run_ok, tiny_run_config};
use forgetlab_runs::{ExperimentDir, RunState, RunStatus};

fn status(dir: &Path) -> Option<RunStatus> {
    serde_json::from_slice(&std::fs::read(dir.join("status.json")).ok()?).ok()
}

fn slurm(base: &Path, script: &str) -> bool {
    Command::new("bash")
        .arg(repo().join("tests/slurm").join(script))
        .env("BASE", base)
        .env("ACCOUNTING", "0")
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

struct Cluster(std::path::PathBuf);

impl Drop for Cluster {
    fn drop(&mut self) {
        slurm(&self.0, "down.sh");
    }
}

#[test]
fn a_real_sweep_on_slurm_requeues_and_resumes() {
    if std::env::var("FORGETLAB_SLURM_TEST").ok().as_deref() != Some("1") {
        println!(
            "skipped: set FORGETLAB_SLURM_TEST=1 (needs root and ~4 minutes; tests/run-all sets it)"
        );
        return;
    }
    let started = Instant::now();
    let base = std::path::PathBuf::from("/tmp/fl-slurm-e2e");
    slurm(&base, "down.sh");
    let _ = std::fs::remove_dir_all(&base);
    assert!(slurm(&base, "up.sh"), "tests/slurm/up.sh failed");
    let cluster = Cluster(base.clone());
    let slurm_conf = base.join("etc/slurm.conf");

    // Two tiny runs, long enough (about a minute each) to be signalled mid-training.
    let dir = tempfile::tempdir().unwrap();
    let base_config = tiny_run_config(64, 600 * 1024, "checkpoint_every = 1000")
        .replace("[model]", "[base.model]");
    let experiment = base_config
        .replace(
            "seed = 1",
            "[experiment]\nname = \"slurm-e2e\"\n\n[base]\nseed = 1",
        )
        .replace("[data]", "[base.data]")
        .replace("[train]", "[base.train]")
        .replace("[optim]", "[base.optim]")
        .replace("[eval.passkey]", "[base.eval.passkey]")
        .replace("[eval]", "[base.eval]")
        + "\n[sweep]\n\"model.d_state\" = [4, 8]\n\n[slurm]\ntime = \"15\"\ncpus_per_task = 1\nmax_parallel = 2\nsignal_seconds = 90\n";
    let experiment_file = dir.path().join("slurm-e2e.toml");
    std::fs::write(&experiment_file, experiment).unwrap();
    let runs_root = dir.path().join("runs");
    let submit = forgetlab()
        .env("SLURM_CONF", &slurm_conf)
        .args([
            "sweep",
            "run",
            experiment_file.to_str().unwrap(),
            "--executor",
            "slurm",
            "--no-wait",
            "--runs-dir",
            runs_root.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        submit.status.success(),
        "submission failed: {}\n{}",
        String::from_utf8_lossy(&submit.stdout),
        String::from_utf8_lossy(&submit.stderr)
    );
    let exp = ExperimentDir::new(runs_root.join("slurm-e2e"));
    let victim = exp.run("d_state-4");

    // Signal task 0's batch shell as Slurm does before a time limit.
    let deadline = Instant::now() + Duration::from_secs(180);
    let job = loop {
        if let Some(s) =
            status(victim.root()).filter(|s| s.state == RunState::Running && s.step >= 20)
        {
            break s.slurm_job.expect("the run records its Slurm job");
        }
        assert!(
            Instant::now() < deadline,
            "task 0 never reached step 20: {:?}",
            status(victim.root())
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let signalled = Instant::now();
    let ok = Command::new("scancel")
        .env("SLURM_CONF", &slurm_conf)
        .args(["--signal=USR1", "--batch", &job])
        .status()
        .unwrap()
        .success();
    assert!(ok, "scancel --signal=USR1 --batch {job}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let interrupted_at = loop {
        if let Some(s) = status(victim.root()).filter(|s| s.state == RunState::Interrupted) {
            assert!(s.resumable);
            break s.step;
        }
        assert!(
            Instant::now() < deadline,
            "task 0 did not checkpoint after SIGUSR1"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        victim.complete_checkpoints().last().copied(),
        Some(interrupted_at)
    );
    println!(
        "task {job}: SIGUSR1 -> checkpoint at step {interrupted_at} in {:.1}s",
        signalled.elapsed().as_secs_f64()
    );

    // Requeued, resumed, finished; then the dependent job fits and reports.
    let deadline = Instant::now() + Duration::from_secs(420);
    while !(exp.law().is_file() && exp.report().join("index.html").is_file()) {
        assert!(
            Instant::now() < deadline,
            "the sweep did not finish: {:?}",
            status(victim.root())
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    for run in exp.runs() {
        let s = status(run.root()).unwrap();
        assert_eq!(
            (s.state, s.step),
            (RunState::Completed, 600),
            "{}",
            run.name()
        );
        assert!(run.verdict().is_file(), "{} not evaluated", run.name());
    }
    let log = std::fs::read_to_string(victim.log()).unwrap_or_default()
        + &std::fs::read_dir(exp.slurm())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("_0.out"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>();
    assert!(
        log.contains(&format!("from step {interrupted_at}")),
        "the requeued task did not resume from its checkpoint:\n{log}"
    );
    let table = run_ok(&[
        "sweep",
        "status",
        experiment_file.to_str().unwrap(),
        "--runs-dir",
        runs_root.to_str().unwrap(),
    ]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("2 completed") && table.contains("2 evaluated"),
        "{table}"
    );
    println!("whole test {:.0}s", started.elapsed().as_secs_f64());
    drop(cluster);
}
