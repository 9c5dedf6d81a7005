//! The local executor against a fake `forgetlab` (real processes, real files): skip, resume,
//! retry, failure isolation, stop requests, thread division and concurrency.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Fixture, tiny_experiment};
use forgetlab_runs::{ExperimentDir, RunDir, RunState, RunStatus};
use forgetlab_sweep::log::{Outcome, Stage, SweepLog};
use forgetlab_sweep::rundirs::Skip;
use forgetlab_sweep::{Experiment, FinishOutcome, RunOutcome, SweepError, run_experiment};

const RUNS: [&str; 4] = [
    "d_state-4_len-16",
    "d_state-4_len-32",
    "d_state-8_len-16",
    "d_state-8_len-32",
];

fn status(f: &Fixture, run: &str) -> RunStatus {
    let text = std::fs::read_to_string(f.run_dir("tiny", run).join("status.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn outcome_of<'a>(outcome: &'a forgetlab_sweep::SweepOutcome, run: &str) -> &'a RunOutcome {
    &outcome.runs.iter().find(|(n, _)| n == run).unwrap().1
}

#[test]
fn trains_evaluates_fits_then_skips_everything() {
    let f = Fixture::new(&tiny_experiment(), None);
    let mut options = f.options();
    options.jobs = 2;
    options.threads = Some(4);
    let outcome = run_experiment(&f.experiment, &options).unwrap();
    assert!(outcome.all_done(), "{outcome:?}");
    assert_eq!(outcome.threads_per_job, 2);
    assert_eq!(outcome.finish, FinishOutcome::Done);
    for run in RUNS {
        assert_eq!(
            outcome_of(&outcome, run),
            &RunOutcome::Completed { trained: true }
        );
        assert_eq!(status(&f, run).state, RunState::Completed);
        assert!(f.run_dir("tiny", run).join("eval/verdict.json").is_file());
        assert_eq!(f.calls_of("train", run).len(), 1);
        assert_eq!(f.calls_of("eval", run).len(), 1);
        // Each of the 2 jobs got half of the 4 threads.
        assert!(
            f.calls_of("train", run)[0].contains("threads=2"),
            "{:?}",
            f.calls()
        );
    }
    let exp = ExperimentDir::new(f.runs.join("tiny"));
    assert!(exp.law().is_file() && exp.report().join("index.html").is_file());
    assert!(exp.experiment_file().is_file());
    // The fit used every thread.
    assert!(
        f.calls().iter().any(|l| l == "fit tiny threads=4"),
        "{:?}",
        f.calls()
    );
    // Run dirs hold the resolved config, named by grid point.
    let config =
        forgetlab_runs::RunConfig::load(&RunDir::new(f.run_dir("tiny", RUNS[3])).config()).unwrap();
    assert_eq!((config.model.d_state, config.train.seq_len), (8, 32));
    assert_eq!(config.name.as_deref(), Some("tiny/d_state-8_len-32"));
    // ... with data paths made absolute, as `forgetlab train` rewrites it, so that a later
    // invocation recognises the config of a run that has trained.
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(config.data.tokenizer, cwd.join("data/none/tok.json"));
    assert_eq!(
        config.data.train,
        vec![cwd.join("data/none/*.jsonl").to_string_lossy().into_owned()]
    );

    let calls_before = f.calls().len();
    let again = run_experiment(&f.experiment, &options).unwrap();
    assert!(again.all_done());
    for run in RUNS {
        assert_eq!(outcome_of(&again, run), &RunOutcome::Skipped(Skip::Done));
    }
    assert_eq!(again.finish, FinishOutcome::Skipped("up to date".into()));
    assert_eq!(
        f.calls().len(),
        calls_before,
        "nothing may run again: {:?}",
        f.calls()
    );
}

#[test]
fn a_failed_run_is_isolated_recorded_and_retried_only_on_request() {
    let f = Fixture::new(&tiny_experiment(), None);
    let bad = RUNS[1];
    f.set(&format!("fail-train-{bad}"), "");
    let mut options = f.options();
    options.jobs = 2;
    let outcome = run_experiment(&f.experiment, &options).unwrap();
    assert_eq!(
        outcome_of(&outcome, bad),
        &RunOutcome::TrainFailed("fake failure".into())
    );
    assert_eq!(outcome.failures().len(), 1);
    for run in RUNS.iter().filter(|r| **r != bad) {
        assert_eq!(
            outcome_of(&outcome, run),
            &RunOutcome::Completed { trained: true }
        );
    }
    let s = status(&f, bad);
    assert_eq!(
        (s.state, s.reason.as_deref()),
        (RunState::Failed, Some("fake failure"))
    );
    assert!(
        f.calls_of("eval", bad).is_empty(),
        "a failed run is not evaluated"
    );
    // The others were still fitted.
    assert_eq!(outcome.finish, FinishOutcome::Done);
    let law = std::fs::read_to_string(f.runs.join("tiny/law.json")).unwrap();
    assert!(law.contains("\"verdicts\":3"), "{law}");
    let log = SweepLog::of(&ExperimentDir::new(f.runs.join("tiny"))).read();
    assert!(log.iter().any(|e| e.run == bad
        && e.stage == Stage::Train
        && e.outcome == Outcome::Failed
        && e.exit_code == Some(1)));

    // Not retried without the flag.
    let again = run_experiment(&f.experiment, &options).unwrap();
    assert!(
        matches!(outcome_of(&again, bad), RunOutcome::Skipped(Skip::Failed(r)) if r == "fake failure")
    );
    assert_eq!(f.calls_of("train", bad).len(), 1);

    // Retried with it, resuming from its checkpoint.
    f.unset(&format!("fail-train-{bad}"));
    options.retry_failed = true;
    let retried = run_experiment(&f.experiment, &options).unwrap();
    assert_eq!(
        outcome_of(&retried, bad),
        &RunOutcome::Completed { trained: true }
    );
    let trains = f.calls_of("train", bad);
    assert_eq!(trains.len(), 2);
    assert!(trains[1].contains("start=1"), "{trains:?}");
    assert!(retried.all_done());
    assert_eq!(retried.finish, FinishOutcome::Done);
}

#[test]
fn a_crash_without_a_status_is_recorded_by_the_sweep() {
    let f = Fixture::new(&tiny_experiment(), None);
    let bad = RUNS[2];
    f.set(&format!("crash-train-{bad}"), "");
    let outcome = run_experiment(&f.experiment, &f.options()).unwrap();
    let RunOutcome::TrainFailed(reason) = outcome_of(&outcome, bad) else {
        panic!("{outcome:?}");
    };
    assert!(reason.contains("exit status 101"), "{reason}");
    assert!(reason.contains("console.log"), "{reason}");
    let s = status(&f, bad);
    assert_eq!(s.state, RunState::Failed);
    assert_eq!(s.reason.as_deref(), Some(reason.as_str()));
    assert!(s.resumable, "a checkpoint exists");
    assert_eq!(s.step, 1);
    // The child's output went to the run's console log.
    let console = std::fs::read_to_string(f.run_dir("tiny", bad).join("console.log")).unwrap();
    assert!(console.contains(" train "), "{console}");
}

#[test]
fn an_interrupted_run_resumes_from_its_checkpoint() {
    let f = Fixture::new(&tiny_experiment(), None);
    let run = RUNS[0];
    f.set(&format!("interrupt-{run}"), "3");
    let first = run_experiment(&f.experiment, &f.options()).unwrap();
    assert_eq!(
        outcome_of(&first, run),
        &RunOutcome::Interrupted(Stage::Train)
    );
    assert!(!first.interrupted, "the sweep itself was not stopped");
    let s = status(&f, run);
    assert_eq!(
        (s.state, s.step, s.resumable),
        (RunState::Interrupted, 3, true)
    );
    assert_eq!(
        RunDir::new(f.run_dir("tiny", run)).complete_checkpoints(),
        vec![1, 2, 3]
    );

    let second = run_experiment(&f.experiment, &f.options()).unwrap();
    assert_eq!(
        outcome_of(&second, run),
        &RunOutcome::Completed { trained: true }
    );
    let trains = f.calls_of("train", run);
    assert_eq!(trains.len(), 2);
    assert!(trains[1].contains("start=3"), "{trains:?}");
    assert_eq!(status(&f, run).state, RunState::Completed);
    for other in &RUNS[1..] {
        assert_eq!(
            f.calls_of("train", other).len(),
            1,
            "finished runs are not retrained"
        );
    }
    assert!(second.all_done());
}

#[test]
fn a_stop_request_checkpoints_running_children_and_starts_nothing_new() {
    let f = Fixture::new(&tiny_experiment(), None);
    f.set("step_seconds", "0.3");
    let stop = Arc::new(AtomicBool::new(false));
    let mut options = f.options();
    options.stop = Some(stop.clone());
    let watched = f.run_dir("tiny", RUNS[0]);
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let step = std::fs::read_to_string(watched.join("status.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str::<RunStatus>(&t).ok())
                    .map(|s| s.step)
                    .unwrap_or(0);
                if step >= 2 {
                    stop.store(true, Ordering::SeqCst);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let outcome = run_experiment(&f.experiment, &options).unwrap();
    stopper.join().unwrap();
    assert!(outcome.interrupted);
    assert_eq!(
        outcome_of(&outcome, RUNS[0]),
        &RunOutcome::Interrupted(Stage::Train)
    );
    for run in &RUNS[1..] {
        assert_eq!(outcome_of(&outcome, run), &RunOutcome::NotStarted);
    }
    assert_eq!(outcome.finish, FinishOutcome::Skipped("interrupted".into()));
    let s = status(&f, RUNS[0]);
    assert_eq!(s.state, RunState::Interrupted);
    assert!(s.step >= 2 && s.step < 5, "{s:?}");
    assert!(
        f.calls()
            .iter()
            .any(|l| l.starts_with(&format!("train-stop {}", RUNS[0])))
    );

    f.set("step_seconds", "0.01");
    let resumed = run_experiment(&f.experiment, &f.options()).unwrap();
    assert!(resumed.all_done(), "{resumed:?}");
    let trains = f.calls_of("train", RUNS[0]);
    assert!(
        trains[1].contains(&format!("start={}", s.step)),
        "{trains:?}"
    );
}

#[test]
fn a_failed_evaluation_is_recorded_and_retried_only_on_request() {
    let f = Fixture::new(&tiny_experiment(), None);
    let run = RUNS[3];
    f.set(&format!("fail-eval-{run}"), "");
    let outcome = run_experiment(&f.experiment, &f.options()).unwrap();
    assert!(
        matches!(outcome_of(&outcome, run), RunOutcome::EvalFailed(r) if r.contains("exit status 1"))
    );
    assert_eq!(
        status(&f, run).state,
        RunState::Completed,
        "training stays complete"
    );
    let again = run_experiment(&f.experiment, &f.options()).unwrap();
    assert!(matches!(
        outcome_of(&again, run),
        RunOutcome::Skipped(Skip::EvalFailed(_))
    ));
    assert_eq!(f.calls_of("eval", run).len(), 1);
    assert_eq!(f.calls_of("train", run).len(), 1);

    f.unset(&format!("fail-eval-{run}"));
    let mut options = f.options();
    options.retry_failed = true;
    let retried = run_experiment(&f.experiment, &options).unwrap();
    assert_eq!(
        outcome_of(&retried, run),
        &RunOutcome::Completed { trained: false }
    );
    assert_eq!(
        f.calls_of("train", run).len(),
        1,
        "evaluation retried without retraining"
    );
    assert!(retried.all_done());
}

#[test]
fn a_failed_fit_is_reported() {
    let f = Fixture::new(&tiny_experiment(), None);
    f.set("fail-fit", "");
    let outcome = run_experiment(&f.experiment, &f.options()).unwrap();
    assert!(
        matches!(&outcome.finish, FinishOutcome::Failed { stage: Stage::Fit, message } if message.contains("exit status 1"))
    );
    assert!(!outcome.all_done());
    assert!(
        !f.calls().iter().any(|l| l.starts_with("report")),
        "no report after a failed fit"
    );
}

#[test]
fn jobs_run_concurrently() {
    let experiment = tiny_experiment().replace("\"model.d_state\" = [4, 8]\n", "");
    let f = Fixture::new(&experiment, None);
    f.set("step_seconds", "0.15");
    let mut options = f.options();
    options.jobs = 2;
    let started = Instant::now();
    let outcome = run_experiment(&f.experiment, &options).unwrap();
    assert!(outcome.all_done());
    let times = |prefix: &str, run: &str| -> f64 {
        f.calls()
            .iter()
            .find(|l| l.starts_with(&format!("{prefix} {run} ")))
            .and_then(|l| l.rsplit("t=").next())
            .and_then(|t| t.parse().ok())
            .unwrap()
    };
    let (a, b) = ("len-16", "len-32");
    let overlap =
        times("train-end", a).min(times("train-end", b)) - times("train", a).max(times("train", b));
    assert!(overlap > 0.3, "trainings must overlap, got {overlap:.2}s");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_changed_config_is_refused_once_a_run_has_progress() {
    let f = Fixture::new(&tiny_experiment(), None);
    let experiment = Experiment::load(&f.experiment).unwrap();
    // Only planned, nothing trained: a changed config simply replaces the old one.
    forgetlab_sweep::prepare(&experiment, &f.runs).unwrap();
    let changed =
        tiny_experiment().replace("[base.train]", "[base.optim]\nlr = 1e-3\n\n[base.train]");
    std::fs::write(&f.experiment, &changed).unwrap();
    let replanned = Experiment::load(&f.experiment).unwrap();
    forgetlab_sweep::prepare(&replanned, &f.runs).unwrap();
    let cfg = RunDir::new(f.run_dir("tiny", RUNS[0])).config();
    assert!(
        std::fs::read_to_string(&cfg)
            .unwrap()
            .contains("lr = 0.001")
    );

    // Trained: a different config is an error that names the key, and nothing is touched.
    run_experiment(&f.experiment, &f.options()).unwrap();
    let before = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&f.experiment, changed.replace("lr = 1e-3", "lr = 2e-3")).unwrap();
    let err = run_experiment(&f.experiment, &f.options()).unwrap_err();
    assert!(matches!(err, SweepError::RunConflict { .. }), "{err}");
    assert!(err.to_string().contains("optim.lr"), "{err}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);
    let copy = std::fs::read_to_string(f.runs.join("tiny/experiment.toml")).unwrap();
    assert!(
        copy.contains("lr = 1e-3"),
        "experiment.toml keeps the launched version"
    );
}

#[test]
fn status_table_shows_every_run_and_strays() {
    let f = Fixture::new(&tiny_experiment(), None);
    f.set(&format!("fail-train-{}", RUNS[1]), "");
    run_experiment(&f.experiment, &f.options()).unwrap();
    // A directory from an older plan.
    let stray = f.run_dir("tiny", "d_state-2_len-16");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::copy(
        f.run_dir("tiny", RUNS[0]).join("config.toml"),
        stray.join("config.toml"),
    )
    .unwrap();

    let reference = forgetlab_sweep::resolve_experiment(&f.experiment, &f.runs).unwrap();
    let (dir, rows) = forgetlab_sweep::status::status_rows(&reference, &f.runs).unwrap();
    let text = forgetlab_sweep::status::status_text(&dir, &rows);
    let line = |run: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(&format!("{run} ")))
            .unwrap_or_else(|| panic!("{run} missing:\n{text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let ok = line(RUNS[0]);
    assert_eq!(
        &ok[2..8],
        ["16", "completed", "5/5", "5.5000", "-", "forgets"],
        "{text}"
    );
    let bad = line(RUNS[1]);
    assert_eq!(&bad[3..5], ["failed", "1/5"], "{text}");
    assert!(text.contains("fake failure"), "{text}");
    assert!(
        line("d_state-2_len-16")
            .join(" ")
            .contains("not in the plan"),
        "{text}"
    );
    assert!(
        text.contains("3 completed, 1 failed, 1 unknown; 3 evaluated; law:"),
        "{text}"
    );
    // The same directory listed without the plan.
    let by_dir = forgetlab_sweep::resolve_experiment(&f.runs.join("tiny"), &f.runs).unwrap();
    let (_, rows) = forgetlab_sweep::status::status_rows(&by_dir, &f.runs).unwrap();
    assert_eq!(rows.len(), 5);
    let json = forgetlab_sweep::status::status_json(&rows);
    assert_eq!(json.lines().count(), 5);
    let first: forgetlab_runs::RunSummary =
        serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first.name, "d_state-2_len-16");
}

#[test]
fn a_task_trains_and_evaluates_one_run_and_finish_fits() {
    let f = Fixture::new(&tiny_experiment(), None);
    let experiment = Experiment::load(&f.experiment).unwrap();
    let dir = forgetlab_sweep::prepare(&experiment, &f.runs).unwrap();
    let forgetlab = forgetlab_sweep::Forgetlab::new(&f.fake, 3);
    let run = dir.run(RUNS[2]);
    let outcome = forgetlab_sweep::run_task(run.root(), &forgetlab).unwrap();
    assert_eq!(outcome, RunOutcome::Completed { trained: true });
    assert!(f.calls_of("train", RUNS[2])[0].contains("threads=3"));
    assert_eq!(
        forgetlab_sweep::run_task(run.root(), &forgetlab).unwrap(),
        RunOutcome::Skipped(Skip::Done)
    );
    // A failed run is retried by its task (the submission chose it).
    f.set(&format!("fail-train-{}", RUNS[0]), "");
    let failed = forgetlab_sweep::run_task(dir.run(RUNS[0]).root(), &forgetlab).unwrap();
    assert!(failed.is_failure());
    f.unset(&format!("fail-train-{}", RUNS[0]));
    let retried = forgetlab_sweep::run_task(dir.run(RUNS[0]).root(), &forgetlab).unwrap();
    assert_eq!(retried, RunOutcome::Completed { trained: true });
    let err = forgetlab_sweep::run_task(&f.runs.join("nope"), &forgetlab).unwrap_err();
    assert!(err.to_string().contains("config.toml"), "{err}");

    // Finish: a trained but unevaluated run gets its evaluation, then fit and report.
    let trained_only = dir.run(RUNS[3]);
    f.set(&format!("fail-eval-{}", RUNS[3]), "");
    assert!(
        forgetlab_sweep::run_task(trained_only.root(), &forgetlab)
            .unwrap()
            .is_failure()
    );
    f.unset(&format!("fail-eval-{}", RUNS[3]));
    let options = forgetlab_sweep::FinishOptions {
        retry_failed: true,
        ..Default::default()
    };
    let (evaluated, finish) =
        forgetlab_sweep::finish_experiment(&dir, &forgetlab, &options).unwrap();
    assert_eq!(
        evaluated,
        vec![(
            RUNS[3].to_string(),
            RunOutcome::Completed { trained: false }
        )]
    );
    assert_eq!(finish, FinishOutcome::Done);
    assert!(dir.law().is_file());
    // Runs never trained are not touched by finish.
    assert!(f.calls_of("train", RUNS[1]).is_empty());
}
