//! Slurm scripts and settings without a cluster: what `--dry-run` writes, how [slurm] and
//! command-line values combine, GPUs from the device.

mod common;

use std::path::PathBuf;

use common::{BASE, Fixture};
use forgetlab_sweep::slurm::{
    ScriptSpec, SlurmConfig, SlurmOptions, array_script, finish_script, gpus_for, submit,
};
use forgetlab_sweep::{Experiment, SweepError};

fn spec(config: SlurmConfig, gpus: u32) -> ScriptSpec {
    ScriptSpec {
        job_name: "forgetlab-x".into(),
        exe: PathBuf::from("/opt/fl/forgetlab"),
        workdir: PathBuf::from("/home/me/proj"),
        output_dir: PathBuf::from("/home/me/proj/runs/x/slurm"),
        config,
        gpus,
    }
}

fn directives(script: &str) -> Vec<&str> {
    script
        .lines()
        .filter_map(|l| l.strip_prefix("#SBATCH "))
        .collect()
}

#[test]
fn array_script_carries_every_directive_and_the_requeue_handler() {
    let config = SlurmConfig {
        partition: Some("gpu".into()),
        account: Some("proj".into()),
        time: Some("4:00:00".into()),
        cpus_per_task: Some(8),
        mem: Some("64G".into()),
        max_parallel: Some(4),
        extra: vec!["--constraint=a100".into()],
        setup: vec!["module load cuda/12.4".into()],
        ..Default::default()
    };
    let runs = vec![
        PathBuf::from("/r/a"),
        PathBuf::from("/r/b c"),
        PathBuf::from("/r/d"),
    ];
    let script = array_script(&spec(config, 1), &runs);
    let d = directives(&script);
    for want in [
        "--job-name=forgetlab-x",
        "--chdir=/home/me/proj",
        "--partition=gpu",
        "--account=proj",
        "--time=4:00:00",
        "--cpus-per-task=8",
        "--mem=64G",
        "--gres=gpu:1",
        "--constraint=a100",
        "--array=0-2%4",
        "--output=/home/me/proj/runs/x/slurm/forgetlab-x_%A_%a.out",
        "--open-mode=append",
        "--requeue",
        "--signal=B:USR1@90",
    ] {
        assert!(d.contains(&want), "{want} missing in {d:?}");
    }
    assert!(script.contains("module load cuda/12.4\n"));
    assert!(
        script.contains("  '/r/b c'\n"),
        "paths are quoted:\n{script}"
    );
    assert!(script.contains(r#"scontrol requeue "$TASK""#));
    assert!(script.contains(r#"TASK="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}""#));
    assert!(script.contains(r#""$FORGETLAB" --threads "$THREADS" sweep task "$RUN_DIR" &"#));
    assert!(script.contains("trap on_usr1 USR1"));
    // Directives come before any command, as sbatch requires.
    let lines: Vec<&str> = script.lines().collect();
    let first_command = lines.iter().position(|l| !l.starts_with('#')).unwrap();
    let last_directive = lines
        .iter()
        .rposition(|l| l.starts_with("#SBATCH"))
        .unwrap();
    assert!(last_directive < first_command);
    let status = std::process::Command::new("bash")
        .args(["-n", "-c", &script])
        .status()
        .unwrap();
    assert!(status.success(), "the script must parse:\n{script}");

    let finish = finish_script(&spec(SlurmConfig::default(), 0), &PathBuf::from("/r"), None);
    assert!(
        !directives(&finish)
            .iter()
            .any(|d| d.starts_with("--gres") || d.starts_with("--array"))
    );
    assert!(finish.contains("sweep finish /r\n"), "{finish}");
    let only = ["a".to_string(), "b".to_string()];
    let finish = finish_script(
        &spec(SlurmConfig::default(), 0),
        &PathBuf::from("/r"),
        Some(&only),
    );
    assert!(finish.contains("sweep finish /r --only a,b\n"), "{finish}");
}

#[test]
fn command_line_values_override_the_experiment() {
    let file = SlurmConfig {
        partition: Some("cpu".into()),
        time: Some("1:00:00".into()),
        extra: vec!["--qos=low".into()],
        ..Default::default()
    };
    let flags = SlurmConfig {
        partition: Some("gpu".into()),
        signal_seconds: Some(120),
        extra: vec!["--exclusive".into()],
        ..Default::default()
    };
    let c = file.overridden_by(&flags);
    assert_eq!(c.partition.as_deref(), Some("gpu"));
    assert_eq!(c.time.as_deref(), Some("1:00:00"));
    assert_eq!(c.signal_seconds(), 120);
    assert_eq!(c.extra, ["--qos=low", "--exclusive"]);
    assert_eq!(SlurmConfig::default().signal_seconds(), 90);
    let bad = SlurmConfig {
        partition: Some("gpu a100".into()),
        ..Default::default()
    };
    assert_eq!(bad.validate().unwrap_err().key, "slurm.partition");
}

#[test]
fn gpus_follow_the_device() {
    let with_device = |device: &str| {
        let text = format!(
            "[experiment]\nname = \"g\"\n\n{}",
            BASE.replace(
                "total_tokens = 320",
                &format!("total_tokens = 320\ndevice = \"{device}\"")
            )
        );
        Experiment::from_source(&PathBuf::from("g.toml"), text).unwrap()
    };
    assert_eq!(gpus_for(&with_device("cpu")), 0);
    assert_eq!(gpus_for(&with_device("cuda")), 1);
    assert_eq!(gpus_for(&with_device("cuda:0,cuda:1")), 2);
}

#[test]
fn dry_run_writes_scripts_for_the_runs_that_need_work() {
    let f = Fixture::new(&common::tiny_experiment(), None);
    // Two runs are done already.
    let experiment = Experiment::load(&f.experiment).unwrap();
    forgetlab_sweep::prepare(&experiment, &f.runs).unwrap();
    let forgetlab = forgetlab_sweep::Forgetlab::new(&f.fake, 1);
    for run in ["d_state-4_len-16", "d_state-8_len-32"] {
        forgetlab_sweep::run_task(&f.run_dir("tiny", run), &forgetlab).unwrap();
    }
    let mut options = SlurmOptions::new(&f.fake);
    options.runs_root = f.runs.clone();
    options.dry_run = true;
    let sub = submit(&experiment, &options).unwrap();
    assert_eq!(sub.array_job, None);
    assert_eq!(sub.runs, ["d_state-4_len-32", "d_state-8_len-16"]);
    assert_eq!(sub.skipped.len(), 2);
    let script = std::fs::read_to_string(sub.array_script.unwrap()).unwrap();
    assert!(script.contains("#SBATCH --array=0-1\n"), "{script}");
    assert!(!script.contains("--gres"), "cpu runs get no GPU");
    let exe = f.runs.join("tiny/slurm/bin/forgetlab");
    assert!(
        script.contains(&format!("FORGETLAB={}", exe.display())),
        "{script}"
    );
    assert_eq!(
        std::fs::read(&exe).unwrap(),
        std::fs::read(&f.fake).unwrap(),
        "binary snapshot"
    );
    assert!(sub.finish_script.unwrap().is_file());
}

#[test]
fn dry_run_with_only_writes_an_array_of_just_those_runs() {
    let f = Fixture::new(&common::tiny_experiment(), None);
    let experiment = Experiment::load(&f.experiment).unwrap();
    let mut options = SlurmOptions::new(&f.fake);
    options.runs_root = f.runs.clone();
    options.dry_run = true;

    // An unknown name fails before anything is written.
    options.only = Some(vec!["d_state-8_len-32".into(), "d_state-8_len-64".into()]);
    let err = submit(&experiment, &options).unwrap_err();
    assert!(matches!(err, SweepError::UnknownRuns { .. }), "{err:?}");
    assert!(
        err.to_string().contains(
            "its runs: d_state-4_len-16, d_state-4_len-32, d_state-8_len-16, d_state-8_len-32"
        ),
        "{err}"
    );
    assert!(!f.runs.exists(), "nothing may be written");

    // Named out of order: the array follows the plan.
    options.only = Some(vec!["d_state-8_len-32".into(), "d_state-4_len-16".into()]);
    let sub = submit(&experiment, &options).unwrap();
    assert_eq!(sub.runs, ["d_state-4_len-16", "d_state-8_len-32"]);
    assert!(sub.skipped.is_empty(), "{:?}", sub.skipped);
    let script = std::fs::read_to_string(sub.array_script.unwrap()).unwrap();
    assert!(script.contains("#SBATCH --array=0-1\n"), "{script}");
    let exp_dir = std::path::absolute(f.runs.join("tiny")).unwrap();
    for run in ["d_state-4_len-16", "d_state-8_len-32"] {
        assert!(
            script.contains(&format!("  {}\n", exp_dir.join(run).display())),
            "{script}"
        );
        assert!(f.run_dir("tiny", run).join("config.toml").is_file());
    }
    for run in ["d_state-4_len-32", "d_state-8_len-16"] {
        assert!(!script.contains(run), "{script}");
        assert!(
            !f.run_dir("tiny", run).exists(),
            "{run} must not be created"
        );
    }
    // The finish job evaluates leftovers among the named runs only (then fits everything).
    let finish = std::fs::read_to_string(sub.finish_script.unwrap()).unwrap();
    assert!(
        finish.contains(&format!(
            "sweep finish {} --only d_state-4_len-16,d_state-8_len-32\n",
            exp_dir.display()
        )),
        "{finish}"
    );

    // A named run that is done is skipped, unless started fresh; a dry run moves nothing.
    let forgetlab = forgetlab_sweep::Forgetlab::new(&f.fake, 1);
    forgetlab_sweep::run_task(&f.run_dir("tiny", "d_state-4_len-16"), &forgetlab).unwrap();
    options.only = Some(vec!["d_state-4_len-16".into()]);
    let sub = submit(&experiment, &options).unwrap();
    assert!(sub.runs.is_empty());
    assert_eq!(
        sub.skipped,
        [("d_state-4_len-16".to_string(), "done".to_string())]
    );
    options.fresh = true;
    let sub = submit(&experiment, &options).unwrap();
    assert_eq!(sub.runs, ["d_state-4_len-16"]);
    assert!(sub.moved.is_empty());
    assert!(
        f.run_dir("tiny", "d_state-4_len-16")
            .join("eval/verdict.json")
            .is_file()
    );
    assert!(!f.runs.join("tiny/.old").exists());
    let script = std::fs::read_to_string(sub.array_script.unwrap()).unwrap();
    assert!(script.contains("#SBATCH --array=0-0\n"), "{script}");
}
