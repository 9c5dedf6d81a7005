//! `checkpoints/step-N/`: everything needed to continue a run exactly.
//!
//! A checkpoint is assembled in a hidden temporary directory, the `COMPLETE` marker is written
//! last, and the directory is renamed into place. Readers take only directories with the
//! marker, so a crash at any point leaves either the old set of checkpoints or the new one.

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use forgetlab_data::DataCursor;
use forgetlab_model::Mamba2;
use forgetlab_runs::{CHECKPOINT_MARKER, RunDir, write_json_atomic};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

const MODEL_FILE: &str = "model.bpk";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const STATE_FILE: &str = "trainer.json";

/// The trainer's own progress: the step, the data position and the schedule's inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: u64,
    /// Training tokens consumed.
    pub tokens: u64,
    /// Training wall time so far.
    pub elapsed_s: f64,
    /// Position of the data stream (shard, offset, shuffle and synthetic-task RNG state).
    pub cursor: DataCursor,
    /// The run's seed (initialisation, data order); the schedule is a function of `step`.
    pub seed: u64,
    /// Learning rate of the last completed step, for the record.
    pub last_lr: f64,
}

/// Writes a complete checkpoint for `state.step` and prunes old ones down to `keep`.
pub fn save(
    run: &RunDir,
    model: &Mamba2,
    optimizer: &ModuleOptimizer,
    state: &TrainerState,
    keep: usize,
) -> Result<PathBuf, TrainError> {
    let final_dir = run.checkpoint(state.step);
    let parent = run.checkpoints();
    fs::create_dir_all(&parent).map_err(TrainError::io(&parent))?;
    let tmp = parent.join(format!(".step-{}.tmp-{}", state.step, std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(TrainError::io(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(TrainError::io(&tmp))?;
    let failed = |path: &Path, message: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    model
        .clone()
        .save_file(tmp.join(MODEL_FILE))
        .map_err(|e| failed(&tmp, format!("model: {e}")))?;
    optimizer
        .save(tmp.join(OPTIMIZER_FILE))
        .map_err(|e| failed(&tmp, format!("optimizer: {e}")))?;
    write_json_atomic(&tmp.join(STATE_FILE), state).map_err(TrainError::io(&tmp))?;
    sync_dir_files(&tmp)?;
    forgetlab_runs::write_atomic(&tmp.join(CHECKPOINT_MARKER), b"")
        .map_err(TrainError::io(&tmp))?;
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(TrainError::io(&final_dir))?;
    }
    fs::rename(&tmp, &final_dir).map_err(TrainError::io(&final_dir))?;
    if let Ok(d) = fs::File::open(&parent) {
        let _ = d.sync_all();
    }
    prune(run, keep)?;
    Ok(final_dir)
}

fn sync_dir_files(dir: &Path) -> Result<(), TrainError> {
    for entry in fs::read_dir(dir).map_err(TrainError::io(dir))?.flatten() {
        if let Ok(f) = fs::File::open(entry.path()) {
            f.sync_all().map_err(TrainError::io(&entry.path()))?;
        }
    }
    Ok(())
}

/// Removes all but the newest `keep` complete checkpoints, and leftovers of interrupted saves.
fn prune(run: &RunDir, keep: usize) -> Result<(), TrainError> {
    let complete = run.complete_checkpoints();
    let keep_from = complete.len().saturating_sub(keep);
    for step in &complete[..keep_from] {
        let dir = run.checkpoint(*step);
        fs::remove_dir_all(&dir).map_err(TrainError::io(&dir))?;
    }
    for entry in fs::read_dir(run.checkpoints())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_tmp =
            name.starts_with(".step-") && !name.ends_with(&format!("-{}", std::process::id()));
        let incomplete =
            name.starts_with("step-") && !entry.path().join(CHECKPOINT_MARKER).exists();
        if stale_tmp || incomplete {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// A checkpoint read back: the trainer state plus where its model and optimizer live.
pub struct Restored {
    pub state: TrainerState,
    pub dir: PathBuf,
}

impl Restored {
    /// Loads the model weights (with their parameter ids, which key the optimizer state) into
    /// `model`, which must have the run's architecture.
    pub fn model(&self, model: Mamba2) -> Result<Mamba2, TrainError> {
        model
            .try_load_file(self.dir.join(MODEL_FILE))
            .map_err(|e| TrainError::Checkpoint {
                path: self.dir.clone(),
                message: format!("model: {e}"),
            })
    }

    /// Loads the optimizer state into `optimizer`.
    pub fn optimizer(&self, optimizer: ModuleOptimizer) -> Result<ModuleOptimizer, TrainError> {
        optimizer
            .load(self.dir.join(OPTIMIZER_FILE))
            .map_err(|e| TrainError::Checkpoint {
                path: self.dir.clone(),
                message: format!("optimizer: {e}"),
            })
    }
}

/// The newest complete checkpoint whose trainer state reads back, if any. A checkpoint that
/// has its marker but cannot be read is reported and skipped in favour of an older one.
pub fn latest(run: &RunDir) -> Option<Restored> {
    for step in run.complete_checkpoints().into_iter().rev() {
        let dir = run.checkpoint(step);
        let parsed = fs::read(dir.join(STATE_FILE))
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<TrainerState>(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(state) if dir.join(MODEL_FILE).is_file() && dir.join(OPTIMIZER_FILE).is_file() => {
                return Some(Restored { state, dir });
            }
            Ok(_) => tracing::warn!(
                "{}: model or optimizer file missing; skipped",
                dir.display()
            ),
            Err(e) => tracing::warn!("{}: unreadable trainer state ({e}); skipped", dir.display()),
        }
    }
    None
}
