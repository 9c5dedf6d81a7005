//! Some runs of an experiment by name (`sweep run EXP --only RUN,...`), and a fresh start for
//! them (`--fresh`). A researcher re-checks one published result by naming its run: a typo must
//! fail before anything is written and say which names exist, and a fresh start must never
//! destroy the result it re-checks. The old directory goes to `<experiment>/.old/`, where
//! neither the fit nor the status table nor the dashboard sees it: they list the experiment
//! directory's own subdirectories, and a second copy of a grid point would count twice.

use std::path::PathBuf;

use forgetlab_runs::{ExperimentDir, RunDir, RunState};

use crate::error::SweepError;
use crate::experiment::{Experiment, PlannedRun};
use crate::process::live_elsewhere;
use crate::rundirs::{has_progress, read_status};

/// Where `--fresh` moves old run directories, inside the experiment directory.
pub const OLD_DIR: &str = ".old";

/// Up to this many runs, an unknown name is answered with every name; beyond, the closest.
const LIST_ALL_UP_TO: usize = 12;

/// The planned runs named in `only` (every run for `None`), in plan order. Empty names (a
/// trailing comma) are ignored, repeated names count once; a name the plan does not have is
/// an error listing the experiment's runs, or the closest ones when there are many.
pub fn select<'a>(
    experiment: &'a Experiment,
    only: Option<&[String]>,
) -> Result<Vec<&'a PlannedRun>, SweepError> {
    let Some(only) = only else {
        return Ok(experiment.runs.iter().collect());
    };
    let known: Vec<&str> = experiment.runs.iter().map(|r| r.name.as_str()).collect();
    let names = check_names(
        &experiment.meta.name,
        only,
        &known,
        &format!(
            "`forgetlab sweep plan {}` lists them",
            experiment.path.display()
        ),
    )?;
    Ok(experiment
        .runs
        .iter()
        .filter(|r| names.contains(&r.name.as_str()))
        .collect())
}

/// The non-empty names of `only`, each checked against `known`.
pub(crate) fn check_names<'a>(
    experiment: &str,
    only: &'a [String],
    known: &[&str],
    how_to_list: &str,
) -> Result<Vec<&'a str>, SweepError> {
    let mut names: Vec<&str> = Vec::new();
    for name in only.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(unknown_runs(
            experiment,
            vec![String::new()],
            known,
            how_to_list,
        ));
    }
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| !known.contains(n))
        .map(|n| n.to_string())
        .collect();
    if unknown.is_empty() {
        Ok(names)
    } else {
        Err(unknown_runs(experiment, unknown, known, how_to_list))
    }
}

fn unknown_runs(
    experiment: &str,
    unknown: Vec<String>,
    known: &[&str],
    how_to_list: &str,
) -> SweepError {
    let known_text = if known.is_empty() {
        "it has no runs".to_string()
    } else if known.len() <= LIST_ALL_UP_TO {
        format!("its runs: {}", known.join(", "))
    } else {
        format!(
            "closest: {} (of {} runs; {how_to_list})",
            closest(&unknown, known, 3).join(", "),
            known.len()
        )
    };
    SweepError::UnknownRuns {
        experiment: experiment.to_string(),
        unknown,
        known: known_text,
    }
}

/// Up to `per_name` known names nearest to each unknown one (edit distance), nearest first.
fn closest<'a>(unknown: &[String], known: &[&'a str], per_name: usize) -> Vec<&'a str> {
    let mut picked: Vec<(usize, &str)> = Vec::new();
    for name in unknown {
        let mut ranked: Vec<(usize, &str)> =
            known.iter().map(|k| (edit_distance(name, k), *k)).collect();
        ranked.sort();
        picked.extend(ranked.into_iter().take(per_name));
    }
    picked.sort();
    let mut out: Vec<&str> = Vec::new();
    for (_, name) in picked {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Refuses a fresh start for any of `runs` that a live process (here or a Slurm job) is
/// training now; checked for all before any is moved.
pub(crate) fn check_fresh(dir: &ExperimentDir, runs: &[&PlannedRun]) -> Result<(), SweepError> {
    for run in runs {
        if let Some(status) = read_status(&dir.run(&run.name))
            && status.state == RunState::Running
            && let Some(who) = live_elsewhere(&status)
        {
            return Err(SweepError::RunConflict {
                run: run.name.clone(),
                message: format!("is being trained now ({who}); stop it before starting it fresh"),
            });
        }
    }
    Ok(())
}

/// Moves the directory of each of `runs` that holds any trace of training or evaluation to
/// `<experiment>/.old/<run>.old-<unix time>`, so the next turn trains it from scratch.
/// Returns each run moved with its new place. Never deletes anything.
pub(crate) fn move_aside(
    dir: &ExperimentDir,
    runs: &[&PlannedRun],
) -> Result<Vec<(String, PathBuf)>, SweepError> {
    let old = dir.root().join(OLD_DIR);
    let mut moved = Vec::new();
    for run in runs {
        let run_dir = dir.run(&run.name);
        if !holds_results(&run_dir) {
            continue;
        }
        std::fs::create_dir_all(&old).map_err(|e| SweepError::io(&old, e))?;
        let stamp = forgetlab_runs::unix_now() as u64;
        let mut target = old.join(format!("{}.old-{stamp}", run.name));
        let mut n = 2;
        while target.exists() {
            target = old.join(format!("{}.old-{stamp}-{n}", run.name));
            n += 1;
        }
        std::fs::rename(run_dir.root(), &target).map_err(|e| SweepError::io(run_dir.root(), e))?;
        tracing::info!("{}: moved aside to {}", run.name, target.display());
        moved.push((run.name.clone(), target));
    }
    Ok(moved)
}

/// Whether a run directory holds anything worth keeping, and so would be moved aside (a
/// directory the sweep created and nothing has touched since is not).
pub fn holds_results(run: &RunDir) -> bool {
    has_progress(run) || run.eval().exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("d_state-8_len-32", "d_state-8_len-32"), 0);
        assert_eq!(edit_distance("d_state-8_len-23", "d_state-8_len-32"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_names_first() {
        let known = [
            "d_state-4_len-16",
            "d_state-8_len-16",
            "d_state-16_len-1024",
        ];
        let unknown = vec!["d_state-8_len-61".to_string()];
        assert_eq!(
            closest(&unknown, &known, 2),
            ["d_state-8_len-16", "d_state-4_len-16"]
        );
    }

    #[test]
    fn names_are_trimmed_deduplicated_and_checked() {
        let known = ["a", "b", "c"];
        let only: Vec<String> = ["b", "a", " b", ""].iter().map(|s| s.to_string()).collect();
        assert_eq!(check_names("x", &only, &known, "").unwrap(), ["b", "a"]);
        let err = check_names("x", &["z".to_string()], &known, "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "experiment x has no run \"z\"; its runs: a, b, c"
        );
        let err = check_names("x", &[String::new()], &known, "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "experiment x has no run \"\"; its runs: a, b, c"
        );
        let many: Vec<String> = (0..20).map(|i| format!("d_state-{i}_len-32")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = check_names("x", &["d_state-7_len-23".to_string()], &many, "see plan")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "experiment x has no run \"d_state-7_len-23\"; closest: d_state-7_len-32, "
            ),
            "{err}"
        );
        assert!(err.ends_with(" (of 20 runs; see plan)"), "{err}");
    }
}
