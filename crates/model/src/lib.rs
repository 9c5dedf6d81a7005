//! Recurrent language models in burn 0.22 (Mamba-2 and Gated DeltaNet), with exact training
//! and streaming paths.
//!
//! - [`ModelConfig`]: the architecture (it is `forgetlab_runs::ModelConfig`, so tools that do
//!   not link burn compute the same state size N_S and parameter count);
//! - [`Model`]: the model, with chunked ([`Model::forward`]), recurrent ([`Model::step`])
//!   and streaming ([`Model::forward_streaming`]) forward passes that agree to float
//!   rounding, across any segmentation;
//! - [`block`]: the mixer seam; [`mamba2`] and [`gated_deltanet`]: the two mixers, each with
//!   its parameter table;
//! - [`params`]: the parameter table behind [`init::init_weights`] (seeded), [`weights`],
//!   [`checkpoint`] (official state-spaces, Hugging Face and fla checkpoints in; forgetlab's
//!   and fla's out) and the optimizer's no-decay group;
//! - [`ops`]: host kernel or tensor ops, chosen once per op; [`loss`]: the training loss with a
//!   hand-written head gradient; [`parallel`]: micro-batches on model replicas; [`precision`]:
//!   bf16 products for GPUs.

pub mod bench;
pub mod block;
pub mod checkpoint;
pub mod device;
pub mod error;
pub mod gated_deltanet;
pub mod host_kernels;
pub mod host_layer;
pub mod host_ops;
pub mod host_scan;
pub mod init;
pub mod loss;
pub mod mamba2;
pub mod model;
pub mod ops;
pub mod parallel;
pub mod params;
pub mod precision;
pub mod weights;

#[cfg(test)]
mod testing;

pub use block::{LayerState, LayerTrace};
pub use error::ModelError;
pub use forgetlab_runs::config::{GatedDeltaNetConfig, MixerKind, ModelConfig, StateSize};
pub use loss::SegmentLoss;
pub use model::{Model, ModelState, ModelTrace, ScanHooks, StateNormClip};
pub use weights::Weights;

use burn::prelude::Device;

impl Model {
    /// A freshly initialised model (see [`init::init_weights`]).
    pub fn init(config: &ModelConfig, seed: u64, device: &Device) -> Result<Self, ModelError> {
        config.validate()?;
        init::init_weights(config, seed).into_model(config, device, "initialisation")
    }
}
