//! `forgetlab train --restart`: start a run over from step 0 without destroying what it had.
//!
//! Resume refuses when no checkpoint is intact, because silently starting over would throw away
//! hours of training that a restored file could have saved. Starting over is then an explicit
//! decision, and even then nothing is deleted: the checkpoints, logs, final weights,
//! evaluation results and data record of the old attempt move to
//! `<run>/.old/restart-<unix time>/` (with a copy of its config.toml), where they can be
//! inspected or moved back.

use std::path::PathBuf;

use forgetlab_runs::{RunDir, unix_now};

use crate::error::TrainError;

/// Moves the training products of `run` aside; returns where they went, or `None` when the run
/// had none.
pub fn set_aside(run: &RunDir) -> Result<Option<PathBuf>, TrainError> {
    let products: Vec<PathBuf> = [
        run.checkpoints(),
        run.final_model(),
        run.metrics(),
        run.tensorboard(),
        run.eval(),
        forgetlab_runs::provenance::path(run),
    ]
    .into_iter()
    .filter(|p| p.exists())
    .collect();
    if products.is_empty() {
        return Ok(None);
    }
    let old = run.root().join(".old");
    let stamp = unix_now() as u64;
    let mut target = old.join(format!("restart-{stamp}"));
    let mut n = 1;
    while target.exists() {
        target = old.join(format!("restart-{stamp}-{n}"));
        n += 1;
    }
    std::fs::create_dir_all(&target).map_err(TrainError::io(&target))?;
    if run.config().is_file() {
        let copy = target.join("config.toml");
        std::fs::copy(run.config(), &copy).map_err(TrainError::io(&copy))?;
    }
    for product in &products {
        let name = product.file_name().unwrap_or_default();
        let to = target.join(name);
        std::fs::rename(product, &to).map_err(TrainError::io(product))?;
    }
    tracing::warn!(
        "--restart: moved {} of {} to {}; training starts over from step 0",
        products
            .iter()
            .map(|p| p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned())
            .collect::<Vec<_>>()
            .join(", "),
        run.root().display(),
        target.display()
    );
    Ok(Some(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_move_aside_and_nothing_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        std::fs::write(run.config(), "seed = 1\n").unwrap();
        std::fs::create_dir_all(run.checkpoint(8)).unwrap();
        std::fs::write(run.checkpoint(8).join("model.bpk"), b"weights").unwrap();
        std::fs::write(run.metrics(), b"{}\n").unwrap();
        std::fs::write(run.status(), b"{}").unwrap();
        let target = set_aside(&run).unwrap().unwrap();
        assert!(target.starts_with(dir.path().join(".old")));
        assert_eq!(
            std::fs::read(target.join("checkpoints/step-8/model.bpk")).unwrap(),
            b"weights"
        );
        assert_eq!(
            std::fs::read(target.join("metrics.jsonl")).unwrap(),
            b"{}\n"
        );
        assert_eq!(
            std::fs::read(target.join("config.toml")).unwrap(),
            b"seed = 1\n"
        );
        assert!(!run.checkpoints().exists() && !run.metrics().exists());
        // The config and status stay: the run is restarted in place.
        assert!(run.config().is_file() && run.status().is_file());
        // A second restart with nothing to move does nothing.
        assert_eq!(set_aside(&run).unwrap(), None);
    }
}
