//! Where things live in a run directory and an experiment directory.
//!
//! ```text
//! runs/<experiment>/                 ExperimentDir
//!   experiment.toml                  the experiment file as launched
//!   law.json  law.svg                T_forget(N_S) and T_recall(N_S) fits
//!   report/                          static report (HTML, Markdown, SVG)
//!   slurm/                           sbatch scripts and Slurm logs
//!   <d_state-16_len-1024_seed-0>/    RunDir, named by its grid point
//!     config.toml status.json metrics.jsonl train.log
//!     tb/                            TensorBoard event files
//!     checkpoints/step-N/            model, optimizer, scheduler, data cursor, RNG; COMPLETE last
//!     model/                         final weights (model.safetensors + config.json)
//!     eval/                          per_position.json/.svg, verdict.json, passkey/, diagnostics.json
//! ```

use std::path::{Path, PathBuf};

/// Name of the file written last into a checkpoint directory; a checkpoint without it is
/// incomplete and ignored.
pub const CHECKPOINT_MARKER: &str = "COMPLETE";

/// One training run's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The directory name, used as the run's name.
    pub fn name(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.root.display().to_string())
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn status(&self) -> PathBuf {
        self.root.join("status.json")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("train.log")
    }
    pub fn tensorboard(&self) -> PathBuf {
        self.root.join("tb")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    pub fn checkpoint(&self, step: u64) -> PathBuf {
        self.checkpoints().join(format!("step-{step}"))
    }
    /// Final weights in forgetlab's own format.
    pub fn final_model(&self) -> PathBuf {
        self.root.join("model")
    }
    pub fn eval(&self) -> PathBuf {
        self.root.join("eval")
    }
    /// Per-position loss table for a mitigation label (`none` = unmodified model).
    pub fn per_position(&self, mitigation: &str) -> PathBuf {
        self.eval()
            .join(suffixed("per_position", mitigation, "json"))
    }
    pub fn per_position_plot(&self, mitigation: &str) -> PathBuf {
        self.eval()
            .join(suffixed("per_position", mitigation, "svg"))
    }
    pub fn verdict(&self) -> PathBuf {
        self.eval().join("verdict.json")
    }
    pub fn passkey_dir(&self, mitigation: &str) -> PathBuf {
        self.eval().join(if mitigation == "none" {
            "passkey".to_string()
        } else {
            format!("passkey-{mitigation}")
        })
    }
    pub fn diagnostics(&self) -> PathBuf {
        self.eval().join("diagnostics.json")
    }
    /// Steps of every complete checkpoint, ascending.
    pub fn complete_checkpoints(&self) -> Vec<u64> {
        let mut steps: Vec<u64> = std::fs::read_dir(self.checkpoints())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let step = name.to_str()?.strip_prefix("step-")?.parse().ok()?;
                entry
                    .path()
                    .join(CHECKPOINT_MARKER)
                    .is_file()
                    .then_some(step)
            })
            .collect();
        steps.sort_unstable();
        steps
    }
    /// Whether this directory looks like a run (has a config).
    pub fn exists(&self) -> bool {
        self.config().is_file()
    }
}

fn suffixed(stem: &str, mitigation: &str, ext: &str) -> String {
    if mitigation == "none" {
        format!("{stem}.{ext}")
    } else {
        format!("{stem}-{mitigation}.{ext}")
    }
}

/// An experiment's directory: its runs plus experiment-level results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentDir {
    root: PathBuf,
}

impl ExperimentDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn name(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
    pub fn experiment_file(&self) -> PathBuf {
        self.root.join("experiment.toml")
    }
    pub fn law(&self) -> PathBuf {
        self.root.join("law.json")
    }
    pub fn law_plot(&self) -> PathBuf {
        self.root.join("law.svg")
    }
    pub fn report(&self) -> PathBuf {
        self.root.join("report")
    }
    pub fn slurm(&self) -> PathBuf {
        self.root.join("slurm")
    }
    pub fn run(&self, name: &str) -> RunDir {
        RunDir::new(self.root.join(name))
    }
    /// Every subdirectory holding a `config.toml`, sorted by name.
    pub fn runs(&self) -> Vec<RunDir> {
        let mut runs: Vec<RunDir> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| RunDir::new(e.path()))
            .filter(RunDir::exists)
            .collect();
        runs.sort_by_key(RunDir::name);
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_marked_checkpoints_count() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        for step in [100, 200, 300] {
            std::fs::create_dir_all(run.checkpoint(step)).unwrap();
        }
        std::fs::write(run.checkpoint(100).join(CHECKPOINT_MARKER), "").unwrap();
        std::fs::write(run.checkpoint(200).join(CHECKPOINT_MARKER), "").unwrap();
        assert_eq!(run.complete_checkpoints(), vec![100, 200]);
    }
}
