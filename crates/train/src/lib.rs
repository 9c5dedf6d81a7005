//! Step-based training of one run, as the paper's recipe does it (AdamW with mamba_ssm's
//! parameter groups, global-norm clipping, warmup + cosine or WSD, a token budget with tokens
//! per step independent of the training length, long sequences as segments with the state
//! passed between them), built to be trusted in a 100-run sweep:
//!
//! - the run directory is the whole truth (config, metrics, TensorBoard, status, checkpoints);
//! - checkpoints are atomic and carry everything (model, optimizer, data cursor, step), so a
//!   resumed run on CPU continues bit for bit as if it had never stopped;
//! - SIGINT / SIGTERM / SIGUSR1 checkpoint and stop, a second signal exits at once;
//! - a non-finite loss stops the run as failed and keeps the last good checkpoint;
//! - a resume verifies checkpoint checksums and falls back to the newest intact one, and refuses
//!   (changing nothing) when the tokenizer, the data or the experiment changed since the start.
//!
//! The step loop itself is one function, `run_loop` in `trainer.rs`; [`train`] around it
//! prepares the run directory, checks a resume and records how the run ended.

pub mod checkpoint;
pub mod error;
mod logger;
pub mod memory;
pub mod optimizer;
pub mod preflight;
pub mod restart;
pub mod schedule;
pub mod signals;
mod sysmem;
pub mod tensorboard;
mod trainer;

pub use error::TrainError;
pub use preflight::check_inputs;
pub use signals::StopFlag;
pub use trainer::{TrainOptions, TrainOutcome, train};
