//! `checkpoints/step-N/`: everything needed to continue a run exactly.
//!
//! A checkpoint is assembled in a hidden temporary directory, the `COMPLETE` marker is written
//! last, and the directory is renamed into place. Readers take only directories with the
//! marker, so a crash at any point leaves either the old set of checkpoints or the new one.
//!
//! A crash is not the only way to lose a checkpoint: a full disk, a truncating copy or a bad
//! sector damages files after the marker was written. The marker therefore records the size
//! and sha256 of every file (see [`forgetlab_runs::marker`]), and resume takes the newest
//! checkpoint that verifies, moving damaged newer ones aside (never deleting them) so that
//! rotation counts only intact checkpoints. When none verifies, resume refuses and changes
//! nothing. Each checkpoint also carries the run config it was trained under, so a resume can
//! name the keys of an edited config instead of failing on tensor shapes.

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use forgetlab_data::DataCursor;
use forgetlab_model::Model;
use forgetlab_runs::marker::{CheckpointMarker, Damage, Integrity, set_aside_path, verify};
use forgetlab_runs::{RunConfig, RunDir, unix_now, write_json_atomic};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

const MODEL_FILE: &str = "model.bpk";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const STATE_FILE: &str = "trainer.json";
const CONFIG_FILE: &str = "config.toml";
/// Files a checkpoint cannot resume without.
const REQUIRED: [&str; 3] = [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE];

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

/// Writes a complete checkpoint for `state.step`, trained under `config`, and prunes old ones
/// down to `train.keep_checkpoints`.
pub fn save(
    run: &RunDir,
    model: &Model,
    optimizer: &ModuleOptimizer,
    state: &TrainerState,
    config: &RunConfig,
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
    forgetlab_runs::write_atomic(&tmp.join(CONFIG_FILE), config.to_toml().as_bytes())
        .map_err(TrainError::io(&tmp))?;
    sync_dir_files(&tmp)?;
    CheckpointMarker::of_dir(&tmp)
        .and_then(|marker| marker.write(&tmp))
        .map_err(TrainError::io(&tmp))?;
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(TrainError::io(&final_dir))?;
    }
    fs::rename(&tmp, &final_dir).map_err(TrainError::io(&final_dir))?;
    if let Ok(d) = fs::File::open(&parent) {
        let _ = d.sync_all();
    }
    prune(run, config.train.keep_checkpoints)?;
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
        let incomplete = name.starts_with("step-")
            && !name.contains(".damaged-")
            && !entry
                .path()
                .join(forgetlab_runs::CHECKPOINT_MARKER)
                .exists();
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
    /// The run config the checkpoint was trained under (`None` for checkpoints written before
    /// it was recorded).
    pub config: Option<RunConfig>,
    pub integrity: Integrity,
}

impl Restored {
    /// Loads the model weights (with their parameter ids, which key the optimizer state) into
    /// `model`, which must have the run's architecture.
    pub fn model(&self, model: Model) -> Result<Model, TrainError> {
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

/// The newest complete checkpoint that verifies against its marker, if any. Damaged newer
/// checkpoints are reported and moved aside (`step-N.damaged-<unix time>`), so that rotation
/// never deletes an intact checkpoint in favour of them. When checkpoints exist but none is
/// intact, nothing is moved and the error names what is wrong with each.
pub fn latest(run: &RunDir) -> Result<Option<Restored>, TrainError> {
    let mut damaged: Vec<(PathBuf, String)> = Vec::new();
    for step in run.complete_checkpoints().into_iter().rev() {
        let dir = run.checkpoint(step);
        match inspect(&dir, step) {
            Ok(restored) => {
                if restored.integrity == Integrity::Unverified {
                    tracing::warn!(
                        "{}: written before checkpoints carried checksums; resuming from it unverified",
                        dir.display()
                    );
                }
                let now = unix_now() as u64;
                for (bad, _) in &damaged {
                    let aside = set_aside_path(bad, now);
                    fs::rename(bad, &aside).map_err(TrainError::io(bad))?;
                    tracing::warn!("moved the damaged {} to {}", bad.display(), aside.display());
                }
                if !damaged.is_empty() {
                    tracing::warn!("falling back to the intact checkpoint of step {step}");
                }
                return Ok(Some(restored));
            }
            Err(problem) => {
                tracing::warn!("{} is damaged: {problem}", dir.display());
                damaged.push((dir, problem));
            }
        }
    }
    if damaged.is_empty() {
        return Ok(None);
    }
    Err(TrainError::NoIntactCheckpoint {
        run: run.root().to_path_buf(),
        problems: damaged
            .iter()
            .map(|(dir, problem)| {
                let name = dir.file_name().unwrap_or_default().to_string_lossy();
                format!("{name}: {problem}")
            })
            .collect(),
    })
}

/// Verifies one checkpoint and reads its trainer state and config; the error is a clause
/// naming the damaged file.
fn inspect(dir: &Path, step: u64) -> Result<Restored, String> {
    let integrity = verify(dir, &REQUIRED).map_err(|d: Damage| d.to_string())?;
    let bytes = fs::read(dir.join(STATE_FILE)).map_err(|e| format!("{STATE_FILE}: {e}"))?;
    let state: TrainerState =
        serde_json::from_slice(&bytes).map_err(|e| format!("{STATE_FILE} is unreadable: {e}"))?;
    if state.step != step {
        return Err(format!("{STATE_FILE} is of step {}", state.step));
    }
    let config_path = dir.join(CONFIG_FILE);
    let config = if config_path.is_file() {
        match RunConfig::load(&config_path) {
            Ok(config) => Some(config),
            Err(e) if integrity == Integrity::Verified => {
                // Intact bytes that no longer parse: written by another forgetlab version.
                tracing::warn!("{e}; the run config is not compared on resume");
                None
            }
            Err(e) => return Err(e.to_string()),
        }
    } else {
        None
    };
    Ok(Restored {
        state,
        dir: dir.to_path_buf(),
        config,
        integrity,
    })
}
