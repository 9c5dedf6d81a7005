//! `sweep run --only`: the local executor trains and evaluates just the named runs (with the
//! run directories and names of the full sweep), leaves the others untouched, fits over every
//! evaluated run, refuses unknown names before writing anything, and `fresh` moves the old
//! directory aside instead of deleting it.

mod common;

use std::process::{Child, Command};

use common::{Fixture, tiny_experiment};
use forgetlab_runs::{ExperimentDir, RunDir};
use forgetlab_sweep::rundirs::Skip;
use forgetlab_sweep::{
    FinishOptions, FinishOutcome, Forgetlab, LocalOptions, RunOutcome, SweepError, run_experiment,
};

const RUNS: [&str; 4] = [
    "d_state-4_len-16",
    "d_state-4_len-32",
    "d_state-8_len-16",
    "d_state-8_len-32",
];

fn only(f: &Fixture, names: &[&str]) -> LocalOptions {
    let mut options = f.options();
    options.only = Some(names.iter().map(|n| n.to_string()).collect());
    options
}

fn verdicts_in_law(f: &Fixture) -> String {
    let law = std::fs::read_to_string(f.runs.join("tiny/law.json")).unwrap();
    let at = law.find("\"verdicts\":").unwrap();
    law[at..].trim_end_matches(['}', '\n']).to_string()
}

#[test]
fn only_the_named_runs_are_created_trained_and_evaluated() {
    let f = Fixture::new(&tiny_experiment(), None);
    let mut options = only(&f, &[RUNS[3], RUNS[1]]);
    options.jobs = 2;
    let outcome = run_experiment(&f.experiment, &options).unwrap();
    assert!(outcome.all_done(), "{outcome:?}");
    // In plan order, whatever order they were named in.
    assert_eq!(
        outcome.runs,
        vec![
            (RUNS[1].to_string(), RunOutcome::Completed { trained: true }),
            (RUNS[3].to_string(), RunOutcome::Completed { trained: true }),
        ]
    );
    for run in [RUNS[1], RUNS[3]] {
        assert!(f.run_dir("tiny", run).join("eval/verdict.json").is_file());
        assert_eq!(f.calls_of("train", run).len(), 1);
    }
    for run in [RUNS[0], RUNS[2]] {
        assert!(
            !f.run_dir("tiny", run).exists(),
            "{run} must not be created"
        );
        assert!(f.calls_of("train", run).is_empty() && f.calls_of("eval", run).is_empty());
    }
    // The fit and report run at the end, as after a full sweep.
    assert_eq!(outcome.finish, FinishOutcome::Done);
    assert_eq!(verdicts_in_law(&f), "\"verdicts\":2");

    // Named again: done, skipped, nothing runs.
    let calls = f.calls().len();
    let again = run_experiment(&f.experiment, &only(&f, &[RUNS[1]])).unwrap();
    assert_eq!(
        again.runs,
        vec![(RUNS[1].to_string(), RunOutcome::Skipped(Skip::Done))]
    );
    assert_eq!(again.finish, FinishOutcome::Skipped("up to date".into()));
    assert_eq!(f.calls().len(), calls, "{:?}", f.calls());

    // The full sweep then does only what is left.
    let full = run_experiment(&f.experiment, &f.options()).unwrap();
    assert!(full.all_done());
    for run in RUNS {
        assert_eq!(f.calls_of("train", run).len(), 1, "{run}");
    }
    assert_eq!(verdicts_in_law(&f), "\"verdicts\":4");
}

#[test]
fn a_missing_verdict_is_evaluated_again_and_the_fit_covers_every_run() {
    let f = Fixture::new(&tiny_experiment(), None);
    run_experiment(&f.experiment, &f.options()).unwrap();
    for run in [RUNS[2], RUNS[3]] {
        std::fs::remove_file(f.run_dir("tiny", run).join("eval/verdict.json")).unwrap();
    }
    let outcome = run_experiment(&f.experiment, &only(&f, &[RUNS[2]])).unwrap();
    assert_eq!(
        outcome.runs,
        vec![(
            RUNS[2].to_string(),
            RunOutcome::Completed { trained: false }
        )]
    );
    assert_eq!(f.calls_of("train", RUNS[2]).len(), 1, "not trained again");
    assert_eq!(f.calls_of("eval", RUNS[2]).len(), 2);
    // The unnamed run is left as it was.
    assert_eq!(f.calls_of("eval", RUNS[3]).len(), 1);
    assert!(
        !f.run_dir("tiny", RUNS[3])
            .join("eval/verdict.json")
            .exists()
    );
    assert_eq!(outcome.finish, FinishOutcome::Done);
    assert_eq!(verdicts_in_law(&f), "\"verdicts\":3");
}

#[test]
fn an_unknown_name_fails_with_the_run_names_and_writes_nothing() {
    let f = Fixture::new(&tiny_experiment(), None);
    let err = run_experiment(&f.experiment, &only(&f, &[RUNS[0], "d_state-4_len-61"])).unwrap_err();
    assert!(matches!(err, SweepError::UnknownRuns { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "experiment tiny has no run \"d_state-4_len-61\"; its runs: {}",
            RUNS.join(", ")
        )
    );
    assert!(!f.runs.exists(), "nothing may be written");
    assert!(f.calls().is_empty());

    // Nor in an experiment directory that exists.
    run_experiment(&f.experiment, &only(&f, &[RUNS[0]])).unwrap();
    let log = ExperimentDir::new(f.runs.join("tiny"))
        .root()
        .join("sweep-log.jsonl");
    let before = std::fs::read_to_string(&log).unwrap();
    let calls = f.calls().len();
    for names in [&["nope"][..], &[""][..]] {
        let err = run_experiment(&f.experiment, &only(&f, names)).unwrap_err();
        assert!(matches!(err, SweepError::UnknownRuns { .. }), "{err:?}");
    }
    assert_eq!(std::fs::read_to_string(&log).unwrap(), before);
    assert_eq!(f.calls().len(), calls);
    assert!(!f.run_dir("tiny", RUNS[1]).exists());
}

#[test]
fn failed_runs_are_retried_only_on_request() {
    let f = Fixture::new(&tiny_experiment(), None);
    f.set(&format!("fail-train-{}", RUNS[1]), "");
    let outcome = run_experiment(&f.experiment, &only(&f, &[RUNS[1]])).unwrap();
    assert_eq!(outcome.failures().len(), 1);
    // No run has a verdict: nothing to fit.
    assert_eq!(
        outcome.finish,
        FinishOutcome::Skipped("no run has been evaluated yet".into())
    );
    f.unset(&format!("fail-train-{}", RUNS[1]));
    let again = run_experiment(&f.experiment, &only(&f, &[RUNS[1]])).unwrap();
    assert!(matches!(
        again.runs[0].1,
        RunOutcome::Skipped(Skip::Failed(_))
    ));
    let mut options = only(&f, &[RUNS[1]]);
    options.retry_failed = true;
    let retried = run_experiment(&f.experiment, &options).unwrap();
    assert_eq!(
        retried.runs,
        vec![(RUNS[1].to_string(), RunOutcome::Completed { trained: true })]
    );
    assert_eq!(f.calls_of("train", RUNS[1]).len(), 2);
    assert!(!f.run_dir("tiny", RUNS[0]).exists());
}

#[test]
fn fresh_moves_the_old_directory_aside_and_trains_from_scratch() {
    let f = Fixture::new(&tiny_experiment(), None);
    run_experiment(&f.experiment, &f.options()).unwrap();
    let mut options = only(&f, &[RUNS[0]]);
    options.fresh = true;
    let outcome = run_experiment(&f.experiment, &options).unwrap();
    assert_eq!(
        outcome.runs,
        vec![(RUNS[0].to_string(), RunOutcome::Completed { trained: true })]
    );
    assert_eq!(outcome.moved.len(), 1);
    let (name, old) = &outcome.moved[0];
    assert_eq!(name, RUNS[0]);
    assert_eq!(old.parent().unwrap(), f.runs.join("tiny/.old"));
    let old_name = old.file_name().unwrap().to_str().unwrap();
    assert!(
        old_name.starts_with(&format!("{}.old-", RUNS[0])),
        "{old_name}"
    );
    // The old result is kept whole; the new run started at step 0.
    assert!(old.join("eval/verdict.json").is_file());
    assert!(old.join("checkpoints/step-5/COMPLETE").is_file());
    let trains = f.calls_of("train", RUNS[0]);
    assert_eq!(trains.len(), 2);
    assert!(trains[1].contains("start=0"), "{trains:?}");
    assert!(
        f.run_dir("tiny", RUNS[0])
            .join("eval/verdict.json")
            .is_file()
    );
    // Only the experiment's own runs are fitted, never the copy set aside.
    assert_eq!(verdicts_in_law(&f), "\"verdicts\":4");
    let dir = ExperimentDir::new(f.runs.join("tiny"));
    assert_eq!(dir.runs().len(), 4);
    // The other runs were not touched.
    for run in &RUNS[1..] {
        assert_eq!(f.calls_of("train", run).len(), 1);
    }

    // Again at once: a second, distinct place.
    let second = run_experiment(&f.experiment, &options).unwrap();
    assert_eq!(second.moved.len(), 1);
    assert_ne!(&second.moved[0].1, old);
    assert!(old.is_dir() && second.moved[0].1.is_dir());
}

/// A process on this host whose command line holds the word `train`, as a trainer's does.
fn fake_trainer() -> Child {
    Command::new("bash")
        .args(["-c", "sleep 60; true", "train"])
        .spawn()
        .unwrap()
}

#[test]
fn fresh_refuses_a_run_being_trained_and_moves_nothing() {
    let f = Fixture::new(&tiny_experiment(), None);
    run_experiment(&f.experiment, &f.options()).unwrap();
    let mut child = fake_trainer();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let run = RunDir::new(f.run_dir("tiny", RUNS[1]));
    let status = format!(
        "{{\"state\":\"running\",\"step\":2,\"total_steps\":5,\"tokens\":128,\"reason\":null,\"resumable\":false,\"last_checkpoint\":2,\"updated_unix\":1.0,\"host\":\"{}\",\"pid\":{},\"slurm_job\":null}}\n",
        host.trim(),
        child.id()
    );
    std::fs::write(run.status(), status).unwrap();
    let mut options = only(&f, &[RUNS[0], RUNS[1]]);
    options.fresh = true;
    let result = run_experiment(&f.experiment, &options);
    child.kill().unwrap();
    child.wait().unwrap();
    let err = result.unwrap_err();
    assert!(
        matches!(&err, SweepError::RunConflict { run, .. } if run == RUNS[1]),
        "{err:?}"
    );
    assert!(err.to_string().contains("is being trained now"), "{err}");
    assert!(!f.runs.join("tiny/.old").exists(), "nothing may be moved");
    assert!(
        f.run_dir("tiny", RUNS[0])
            .join("eval/verdict.json")
            .is_file()
    );
}

#[test]
fn finish_evaluates_leftovers_among_the_named_runs_only() {
    let f = Fixture::new(&tiny_experiment(), None);
    let experiment = forgetlab_sweep::Experiment::load(&f.experiment).unwrap();
    let dir = forgetlab_sweep::prepare(&experiment, &f.runs).unwrap();
    let forgetlab = Forgetlab::new(&f.fake, 1);
    // Two runs trained, neither evaluated (their evaluation failed).
    for run in [RUNS[2], RUNS[3]] {
        f.set(&format!("fail-eval-{run}"), "");
        forgetlab_sweep::run_task(&f.run_dir("tiny", run), &forgetlab).unwrap();
        f.unset(&format!("fail-eval-{run}"));
    }
    let options = FinishOptions {
        retry_failed: true,
        only: Some(vec![RUNS[3].to_string()]),
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
    assert_eq!(f.calls_of("eval", RUNS[2]).len(), 1, "left alone");

    let options = FinishOptions {
        only: Some(vec!["d_state-9_len-16".to_string()]),
        ..Default::default()
    };
    let err = forgetlab_sweep::finish_experiment(&dir, &forgetlab, &options).unwrap_err();
    assert!(matches!(err, SweepError::UnknownRuns { .. }), "{err:?}");
}
