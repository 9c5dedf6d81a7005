//! The sbatch scripts. Their bash lives in `templates/` so it reads (and can be checked) as
//! a script; Rust only fills in the values: `#SBATCH` directives, setup lines, and paths
//! quoted for bash.

use std::path::{Path, PathBuf};

use super::config::SlurmConfig;

const ARRAY_TEMPLATE: &str = include_str!("templates/array.sh");
const FINISH_TEMPLATE: &str = include_str!("templates/finish.sh");

/// Everything an sbatch script needs.
#[derive(Debug, Clone)]
pub struct ScriptSpec {
    pub job_name: String,
    /// The forgetlab binary the job runs.
    pub exe: PathBuf,
    /// Working directory of the job (relative data paths resolve against it).
    pub workdir: PathBuf,
    /// Where Slurm writes the job's output.
    pub output_dir: PathBuf,
    pub config: SlurmConfig,
    pub gpus: u32,
}

/// The array script: task `i` trains and evaluates `run_dirs[i]`.
pub fn array_script(spec: &ScriptSpec, run_dirs: &[PathBuf]) -> String {
    let n = run_dirs.len();
    let mut array = format!("--array=0-{}", n.saturating_sub(1));
    if let Some(p) = spec.config.max_parallel {
        array.push_str(&format!("%{p}"));
    }
    let specific = [
        array,
        format!(
            "--output={}/{}_%A_%a.out",
            spec.output_dir.display(),
            spec.job_name
        ),
        "--requeue".to_string(),
        format!("--signal=B:USR1@{}", spec.config.signal_seconds()),
    ];
    let run_dirs = run_dirs
        .iter()
        .map(|dir| format!("  {}", quote(&dir.display().to_string())))
        .collect();
    render(
        ARRAY_TEMPLATE,
        &[
            (
                "sbatch_directives",
                Fill::Lines(sbatch_lines(spec, &specific)),
            ),
            ("setup", Fill::Lines(setup_lines(spec))),
            (
                "forgetlab",
                Fill::Text(quote(&spec.exe.display().to_string())),
            ),
            ("run_dirs", Fill::Lines(run_dirs)),
        ],
    )
}

/// The dependent job: evaluate leftovers (among `only`, when given), fit, report.
pub fn finish_script(spec: &ScriptSpec, experiment_dir: &Path, only: Option<&[String]>) -> String {
    let specific = [format!(
        "--output={}/{}_%j.out",
        spec.output_dir.display(),
        spec.job_name
    )];
    let only = only
        .map(|names| format!(" --only {}", quote(&names.join(","))))
        .unwrap_or_default();
    render(
        FINISH_TEMPLATE,
        &[
            (
                "sbatch_directives",
                Fill::Lines(sbatch_lines(spec, &specific)),
            ),
            ("setup", Fill::Lines(setup_lines(spec))),
            (
                "forgetlab",
                Fill::Text(quote(&spec.exe.display().to_string())),
            ),
            (
                "experiment_dir",
                Fill::Text(quote(&experiment_dir.display().to_string())),
            ),
            ("only", Fill::Text(only)),
        ],
    )
}

/// `s` as one bash word: as written when that is safe, single-quoted otherwise.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The options every job of the experiment shares.
fn directives(spec: &ScriptSpec) -> Vec<String> {
    let c = &spec.config;
    let mut lines = vec![
        format!("--job-name={}", spec.job_name),
        format!("--chdir={}", spec.workdir.display()),
        "--open-mode=append".to_string(),
        "--ntasks=1".to_string(),
    ];
    let mut opt = |name: &str, value: &Option<String>| {
        if let Some(v) = value {
            lines.push(format!("--{name}={v}"));
        }
    };
    opt("partition", &c.partition);
    opt("account", &c.account);
    opt("qos", &c.qos);
    opt("time", &c.time);
    opt("mem", &c.mem);
    if let Some(cpus) = c.cpus_per_task {
        lines.push(format!("--cpus-per-task={cpus}"));
    }
    if spec.gpus > 0 {
        lines.push(format!("--gres=gpu:{}", spec.gpus));
    }
    lines.extend(c.extra.iter().cloned());
    lines
}

fn sbatch_lines(spec: &ScriptSpec, specific: &[String]) -> Vec<String> {
    directives(spec)
        .iter()
        .chain(specific)
        .map(|d| format!("#SBATCH {d}"))
        .collect()
}

fn setup_lines(spec: &ScriptSpec) -> Vec<String> {
    if spec.config.setup.is_empty() {
        return Vec::new();
    }
    std::iter::once("# [slurm] setup".to_string())
        .chain(spec.config.setup.iter().cloned())
        .collect()
}

/// A value for a `{{name}}` placeholder of a template.
enum Fill {
    /// Replaces the placeholder inside its line.
    Text(String),
    /// Replaces a line holding only the placeholder with these lines (none: the line goes).
    Lines(Vec<String>),
}

/// `template` with its placeholders filled. Values are inserted as given and never scanned
/// for placeholders themselves; a placeholder without a value is left as written.
fn render(template: &str, fills: &[(&str, Fill)]) -> String {
    let fill = |name: &str| fills.iter().find(|(n, _)| *n == name).map(|(_, f)| f);
    let mut out = String::with_capacity(template.len());
    for line in template.split_inclusive('\n') {
        let whole = line
            .trim_end_matches('\n')
            .strip_prefix("{{")
            .and_then(|l| l.strip_suffix("}}"));
        if let Some(Fill::Lines(lines)) = whole.and_then(fill) {
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let value = after.find("}}").and_then(|end| match fill(&after[..end]) {
                Some(Fill::Text(value)) => Some((value, end)),
                _ => None,
            });
            match value {
                Some((value, end)) => {
                    out.push_str(value);
                    rest = &after[end + 2..];
                }
                None => {
                    out.push_str("{{");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(setup: &[&str]) -> ScriptSpec {
        ScriptSpec {
            job_name: "forgetlab-x".into(),
            exe: PathBuf::from("/opt/fl/forgetlab"),
            workdir: PathBuf::from("/w"),
            output_dir: PathBuf::from("/w/runs/x/slurm"),
            config: SlurmConfig {
                setup: setup.iter().map(|s| s.to_string()).collect(),
                ..SlurmConfig::default()
            },
            gpus: 0,
        }
    }

    #[test]
    fn every_placeholder_is_filled_and_values_are_not_expanded() {
        for setup in [&[][..], &["echo {{forgetlab}}"][..]] {
            let spec = spec(setup);
            let array = array_script(&spec, &[PathBuf::from("/r/a")]);
            let finish = finish_script(&spec, Path::new("/w/runs/x"), Some(&["a".into()]));
            for script in [&array, &finish] {
                let without_setup = script.replace("echo {{forgetlab}}", "");
                assert!(!without_setup.contains("{{"), "{script}");
                assert!(script.starts_with("#!/usr/bin/env bash\n#SBATCH "));
            }
            assert_eq!(
                array.contains("echo {{forgetlab}}\n"),
                !setup.is_empty(),
                "{array}"
            );
        }
    }

    #[test]
    fn an_empty_block_removes_its_line() {
        let text = render(
            "a\n{{block}}\nb {{word}}!\n",
            &[
                ("block", Fill::Lines(Vec::new())),
                ("word", Fill::Text("w".into())),
            ],
        );
        assert_eq!(text, "a\nb w!\n");
        let text = render(
            "{{block}}\n",
            &[("block", Fill::Lines(vec!["x".into(), "y".into()]))],
        );
        assert_eq!(text, "x\ny\n");
        assert_eq!(render("{{unknown}} {{", &[]), "{{unknown}} {{");
    }
}
