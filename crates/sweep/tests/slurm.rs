//! A real Slurm cluster (one node on loopback, brought up by tests/slurm/up.sh): an experiment
//! is submitted as an array job with the fake forgetlab, one task gets SIGUSR1 as before a time
//! limit, checkpoints, requeues itself and resumes; every task completes, the dependent job
//! fits and reports, and the tracker reads the final states without accounting.
//!
//! Needs root (it installs slurmctld, slurmd, slurm-client and munge with apt when missing) and
//! takes about 3 minutes, most of it Slurm's fixed delay before a requeued job may restart, so
//! it runs only when asked: `FORGETLAB_SLURM_TEST=1 cargo test --release -p forgetlab-sweep
//! --test slurm` (or `just test-slurm`). Ports 6817/6818 must be free.
//!
//! This binary is also the sweep driver inside the jobs: the fake forgetlab hands
//! `forgetlab sweep task|finish ...` to it, so the real `run_task` / `finish_experiment` code
//! runs under Slurm, with the fake as its trainer.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{BASE, Fixture};
use forgetlab_runs::{ExperimentDir, RunDir, RunState, RunStatus};
use forgetlab_sweep::slurm::{self, SlurmOptions, StateSource, TrackOptions};
use forgetlab_sweep::{Experiment, FinishOptions, FinishOutcome, Forgetlab, RunOutcome};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().skip(1).any(|a| a == "sweep") {
        std::process::exit(driver(&args[1..]));
    }
    let asked = std::env::var("FORGETLAB_SLURM_TEST").is_ok_and(|v| v == "1")
        || args
            .iter()
            .any(|a| a == "--ignored" || a == "--include-ignored");
    if args.iter().any(|a| a == "--list") {
        println!("slurm_array_requeue_resume: test");
        return;
    }
    if !asked {
        println!(
            "test slurm_array_requeue_resume ... ignored (set FORGETLAB_SLURM_TEST=1; needs root, ~3 min)"
        );
        return;
    }
    slurm_array_requeue_resume();
    println!("test slurm_array_requeue_resume ... ok");
}

/// `[--threads N] sweep task <run-dir>` and `[--threads N] sweep finish <experiment-dir>`,
/// with the fake forgetlab (FORGETLAB_TEST_TRAINER) as the trainer.
fn driver(args: &[String]) -> i32 {
    let mut threads = 1;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--threads" {
            threads = it.next().and_then(|t| t.parse().ok()).unwrap_or(1);
        } else {
            rest.push(a.as_str());
        }
    }
    let Ok(trainer) = std::env::var("FORGETLAB_TEST_TRAINER") else {
        eprintln!("driver: FORGETLAB_TEST_TRAINER is not set");
        return 2;
    };
    let forgetlab = Forgetlab::new(trainer, threads);
    match rest.as_slice() {
        ["sweep", "task", run] => match forgetlab_sweep::run_task(Path::new(run), &forgetlab) {
            Ok(outcome) => {
                println!("driver: {run}: {}", outcome.describe());
                match outcome {
                    RunOutcome::Interrupted(_) => 3,
                    o if o.is_failure() => 1,
                    _ => 0,
                }
            }
            Err(err) => {
                eprintln!("driver: {err}");
                1
            }
        },
        ["sweep", "finish", dir, only @ ..] => {
            let only = match only {
                [] => None,
                ["--only", names] => Some(names.split(',').map(str::to_string).collect()),
                other => {
                    eprintln!("driver: unexpected arguments {other:?}");
                    return 2;
                }
            };
            let options = FinishOptions {
                local: false,
                only,
                ..FinishOptions::default()
            };
            match forgetlab_sweep::finish_experiment(&ExperimentDir::new(dir), &forgetlab, &options)
            {
                Ok((_, FinishOutcome::Done)) => {
                    println!("driver: fit and report done");
                    0
                }
                Ok((_, other)) => {
                    eprintln!("driver: finish: {other:?}");
                    1
                }
                Err(err) => {
                    eprintln!("driver: {err}");
                    1
                }
            }
        }
        other => {
            eprintln!("driver: unexpected arguments {other:?}");
            2
        }
    }
}

struct Cluster {
    scripts: PathBuf,
    base: PathBuf,
}

impl Cluster {
    fn script(&self, name: &str) -> std::process::ExitStatus {
        Command::new("bash")
            .arg(self.scripts.join(name))
            .env("BASE", &self.base)
            .env("ACCOUNTING", if accounting() { "1" } else { "0" })
            .status()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.script("down.sh");
    }
}

/// FORGETLAB_SLURM_ACCOUNTING=1: bring the cluster up with slurmdbd + MariaDB, so the final
/// states come from sacct instead of scontrol.
fn accounting() -> bool {
    std::env::var("FORGETLAB_SLURM_ACCOUNTING").is_ok_and(|v| v == "1")
}

fn read_status(dir: &Path) -> Option<RunStatus> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).ok()?).ok()
}

fn slurm_array_requeue_resume() {
    let t0 = Instant::now();
    let base = PathBuf::from(
        std::env::var("FORGETLAB_SLURM_BASE").unwrap_or_else(|_| "/tmp/fl-slurm-test".into()),
    );
    let cluster = Cluster {
        scripts: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/slurm"),
        base: base.clone(),
    };
    cluster.script("down.sh");
    let _ = std::fs::remove_dir_all(&base);
    assert!(
        cluster.script("up.sh").success(),
        "tests/slurm/up.sh failed"
    );
    let up = t0.elapsed();
    // SAFETY: single-threaded at this point; every Slurm command and job below inherits it.
    unsafe { std::env::set_var("SLURM_CONF", base.join("etc/slurm.conf")) };

    let driver = std::env::current_exe().unwrap();
    let experiment_text = format!(
        "[experiment]\nname = \"slurmtest\"\n\n{}\n[sweep]\n\"model.d_state\" = [4, 8, 16]\n\n[slurm]\ntime = \"10\"\ncpus_per_task = 1\nmax_parallel = 2\nsignal_seconds = 90\n",
        BASE.replace("total_tokens = 320", "total_tokens = 512")
    );
    let f = Fixture::new(&experiment_text, Some(&driver));
    f.set("step_seconds", "1");
    let experiment = Experiment::load(&f.experiment).unwrap();
    let names: Vec<String> = experiment.runs.iter().map(|r| r.name.clone()).collect();
    assert_eq!(names, ["d_state-4", "d_state-8", "d_state-16"]);

    let mut options = SlurmOptions::new(&f.fake);
    options.runs_root = f.runs.clone();
    let submitted_at = Instant::now();
    let submission = slurm::submit(&experiment, &options).unwrap();
    let array = submission.array_job.clone().expect("array submitted");
    assert!(submission.finish_job.is_some());
    assert_eq!(submission.runs, names);
    let script = std::fs::read_to_string(submission.array_script.as_ref().unwrap()).unwrap();
    for directive in [
        "--array=0-2%2",
        "--requeue",
        "--open-mode=append",
        "--signal=B:USR1@90",
        "--time=10",
        "--cpus-per-task=1",
    ] {
        assert!(
            script.contains(&format!("#SBATCH {directive}\n")),
            "{directive} missing:\n{script}"
        );
    }
    let dir = experiment.dir(&f.runs);

    // A second submission while the first is queued leaves its runs alone.
    let again = slurm::submit(&experiment, &options).unwrap();
    assert!(
        again.array_job.is_none(),
        "runs queued in job {array} were submitted twice"
    );
    assert_eq!(again.skipped.len(), 3, "{:?}", again.skipped);
    assert!(
        again.finish_job.is_none(),
        "the queued finish job covers it"
    );

    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let tracker = {
        let (submission, dir, stop) = (submission.clone(), dir.clone(), stop.clone());
        std::thread::spawn(move || {
            slurm::track(
                &submission,
                &dir,
                &TrackOptions {
                    poll: Duration::from_secs(2),
                    progress: false,
                    stop: Some(stop),
                    timeout: Some(Duration::from_secs(330)),
                    handle_signals: false,
                },
            )
        })
    };

    // Task 0 (deliberately: its plain job id is the array's) gets the pre-timeout signal.
    let victim = dir.run(&names[0]);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = read_status(victim.root());
        if s.as_ref()
            .is_some_and(|s| s.state == RunState::Running && s.step >= 2)
        {
            break;
        }
        if Instant::now() > deadline {
            stop.store(true, Ordering::SeqCst);
            panic!("task 0 never reached step 2: {s:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let task0 = format!("{array}_0");
    let signalled_at = Instant::now();
    let ok = Command::new("scancel")
        .args(["--signal=USR1", "--batch", &task0])
        .status()
        .unwrap()
        .success();
    assert!(ok, "scancel --signal=USR1 --batch {task0}");
    let stopped_at_step = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = read_status(victim.root()).filter(|s| s.state == RunState::Interrupted)
            {
                break s.step;
            }
            assert!(
                Instant::now() < deadline,
                "task 0 did not checkpoint after SIGUSR1"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let checkpointed = signalled_at.elapsed();

    let report = tracker.join().unwrap().unwrap();
    let total = t0.elapsed();
    assert!(
        !report.stopped_early,
        "the jobs did not finish within the timeout"
    );

    // Every run trained, evaluated; the dependent job fitted and reported.
    for name in &names {
        let run = RunDir::new(dir.run(name).root());
        let s = read_status(run.root()).unwrap();
        assert_eq!(
            (s.state, s.step, s.total_steps),
            (RunState::Completed, 8, 8),
            "{name}"
        );
        assert!(run.verdict().is_file(), "{name} not evaluated");
        assert!(
            s.slurm_job
                .is_some_and(|j| j.starts_with(&format!("{array}_"))),
            "{name}"
        );
    }
    assert!(dir.law().is_file() && dir.report().join("index.html").is_file());
    let summaries = &report.runs;
    assert!(
        summaries
            .iter()
            .all(|r| r.state == Some(RunState::Completed) && r.has_verdict)
    );

    // The signalled task checkpointed, requeued itself and resumed from its checkpoint.
    let trains = f.calls_of("train", &names[0]);
    assert_eq!(trains.len(), 2, "{trains:?}");
    assert!(trains[0].contains("start=0"), "{trains:?}");
    assert!(stopped_at_step >= 2);
    assert!(
        trains[1].contains(&format!("start={stopped_at_step}")),
        "{trains:?}"
    );
    for other in &names[1..] {
        assert_eq!(
            f.calls_of("train", other).len(),
            1,
            "{other} must not be requeued"
        );
    }
    let out = std::fs::read_to_string(
        dir.slurm()
            .join(format!("forgetlab-slurmtest_{array}_0.out")),
    )
    .unwrap();
    for needle in [
        "restart=0",
        "got SIGUSR1",
        "checkpointed; requeue",
        "restart=1",
        "exit 0",
    ] {
        assert!(
            out.contains(needle),
            "{needle:?} not in the task log:\n{out}"
        );
    }

    // With accounting the final states come from sacct, without it from scontrol.
    let state = |id: &str| {
        report
            .jobs
            .iter()
            .find(|j| j.id == id)
            .unwrap_or_else(|| panic!("{id} in {:?}", report.jobs))
    };
    if accounting() {
        assert_eq!(report.source, StateSource::Sacct, "{:?}", report.sacct_note);
    } else {
        assert_eq!(
            report.source,
            StateSource::Scontrol,
            "{:?}",
            report.sacct_note
        );
        assert!(
            report
                .sacct_note
                .as_deref()
                .unwrap_or("")
                .contains("disabled"),
            "{:?}",
            report.sacct_note
        );
    }
    for task in 0..3 {
        let j = state(&format!("{array}_{task}"));
        assert_eq!(
            (j.state.as_str(), j.exit_code.as_str()),
            ("COMPLETED", "0:0"),
            "{j:?}"
        );
        if report.source == StateSource::Scontrol {
            assert_eq!(j.restarts, Some(u32::from(task == 0)), "{j:?}");
        }
    }
    let finish = state(submission.finish_job.as_deref().unwrap());
    assert_eq!(finish.state, "COMPLETED", "{finish:?}");
    let jobcomp = std::fs::read_to_string(base.join("log/jobcomp.txt")).unwrap();
    assert!(
        jobcomp.contains(&format!("ArrayJobId={array}")),
        "{jobcomp}"
    );

    println!(
        "slurm timings: cluster up {:.1}s; submit -> signal {:.1}s; signal -> checkpoint {:.1}s; \
         signal -> all done {:.1}s; submit -> all done {:.1}s; whole test {:.1}s",
        up.as_secs_f64(),
        (signalled_at - submitted_at).as_secs_f64(),
        checkpointed.as_secs_f64(),
        signalled_at.elapsed().as_secs_f64(),
        submitted_at.elapsed().as_secs_f64(),
        total.as_secs_f64(),
    );
    drop(cluster);
}
