//! `[train]`: the training length and the token budget, and beside them the execution settings
//! (`device`, `threads`, `workers`). The two kinds share a section because a researcher sets
//! them together, but only the first defines the experiment: a run may resume on other
//! hardware, so [`TrainConfig::without_execution`] is the one place that knows which is which.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

/// How the model is trained.
///
/// `seq_len`, `tokens_per_step` and `total_tokens` are required, so the section has no
/// `Default`; each other key names its default itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The training length T_train in tokens.
    pub seq_len: usize,
    /// Segment length; a sequence is processed as seq_len / segment_len segments with the
    /// recurrent state passed between them. Default: one segment.
    #[serde(default)]
    pub segment_len: Option<usize>,
    /// Whether gradients flow through the state carried between segments.
    #[serde(default)]
    pub state_passing: StatePassing,
    /// Tokens per optimizer step, independent of seq_len.
    pub tokens_per_step: usize,
    /// Largest number of tokens in one forward/backward; steps are split into micro-batches
    /// (gradient accumulation). Default: the whole step.
    #[serde(default)]
    pub micro_batch_tokens: Option<usize>,
    /// Training budget in tokens; the number of steps is total_tokens / tokens_per_step.
    pub total_tokens: u64,
    /// `cpu` (default), `wgpu`, `cuda`, `cuda:N`, or a comma-separated list for
    /// data-parallel training.
    #[serde(default = "default_device")]
    pub device: String,
    /// Compute precision.
    #[serde(default)]
    pub precision: Precision,
    /// Threads for the CPU backend (default: all cores).
    #[serde(default)]
    pub threads: Option<usize>,
    /// Micro-batches computed at the same time, each on its own replica of the model; workers
    /// take the listed devices in turn. Default: one per device in `device`. On the CPU, one
    /// worker per core overlaps the backend's remaining single-threaded passes (the fused
    /// kernels use all cores either way). Gradients are summed in micro-batch order, so for a
    /// given micro-batching the result does not depend on the number of workers. Without
    /// `micro_batch_tokens`, a step is split into one micro-batch per worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Log a metrics line every this many steps.
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    /// Validate every this many steps (0 = only at the end).
    #[serde(default)]
    pub val_every: usize,
    /// Tokens of held-out text per validation.
    #[serde(default = "default_val_tokens")]
    pub val_tokens: usize,
    /// Checkpoint every this many steps (0 = only at the end and on signals).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
    /// Number of complete checkpoints to keep.
    #[serde(default = "default_keep_checkpoints")]
    pub keep_checkpoints: usize,
}

fn default_device() -> String {
    "cpu".to_string()
}
fn default_log_every() -> usize {
    10
}
fn default_val_tokens() -> usize {
    16384
}
fn default_checkpoint_every() -> usize {
    200
}
fn default_keep_checkpoints() -> usize {
    2
}

/// Gradient flow through the state carried between training segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatePassing {
    /// Back-propagate through the carried state (exact gradient of the whole sequence).
    #[default]
    Bptt,
    /// Detach the carried state at segment boundaries (truncated BPTT).
    Detach,
}

/// Compute precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    #[default]
    F32,
    /// bf16 matmuls on GPU devices; SSM decay and state math stay f32.
    Bf16,
}

impl TrainConfig {
    /// Segment length (defaults to the whole sequence).
    pub fn segment_len(&self) -> usize {
        self.segment_len.unwrap_or(self.seq_len)
    }

    /// Sequences per optimizer step.
    pub fn sequences_per_step(&self) -> usize {
        self.tokens_per_step / self.seq_len.max(1)
    }

    /// Sequences per forward/backward pass: `micro_batch_tokens`, or else the step split
    /// evenly over the workers.
    pub fn sequences_per_micro_batch(&self) -> usize {
        let sequences = match self.micro_batch_tokens {
            Some(tokens) => tokens / self.seq_len.max(1),
            None => self.sequences_per_step() / self.workers(),
        };
        sequences.clamp(1, self.sequences_per_step().max(1))
    }

    /// Devices listed in `device`.
    pub fn device_count(&self) -> usize {
        self.device.split(',').count()
    }

    /// Concurrent micro-batch workers (`workers`, default one per device).
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| self.device_count()).max(1)
    }

    /// Optimizer steps in the token budget.
    pub fn total_steps(&self) -> u64 {
        self.total_tokens / self.tokens_per_step.max(1) as u64
    }

    /// The same settings with the execution settings (`device`, `threads`, `workers`) at
    /// their defaults.
    pub(crate) fn without_execution(&self) -> TrainConfig {
        TrainConfig {
            device: default_device(),
            threads: None,
            workers: None,
            ..self.clone()
        }
    }

    /// Checks every constraint between the training keys; keys are reported as
    /// `train.<key>`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.seq_len == 0 {
            return Err(Invalid::new("train.seq_len", "must be at least 1"));
        }
        let seg = self.segment_len();
        if seg == 0 || !self.seq_len.is_multiple_of(seg) {
            return Err(Invalid::new(
                "train.segment_len",
                format!(
                    "must divide seq_len = {} (got {seg}); a sequence is split into equal segments",
                    self.seq_len
                ),
            ));
        }
        if self.tokens_per_step < self.seq_len || !self.tokens_per_step.is_multiple_of(self.seq_len)
        {
            return Err(Invalid::new(
                "train.tokens_per_step",
                format!(
                    "must be a positive multiple of seq_len = {} (got {})",
                    self.seq_len, self.tokens_per_step
                ),
            ));
        }
        if let Some(m) = self.micro_batch_tokens {
            let per_micro = (m / self.seq_len).max(1);
            if m == 0 || !self.sequences_per_step().is_multiple_of(per_micro) {
                return Err(Invalid::new(
                    "train.micro_batch_tokens",
                    format!(
                        "must hold a whole number of sequences that divides the {} sequences of a step (got {m} tokens = {per_micro} sequences)",
                        self.sequences_per_step()
                    ),
                ));
            }
        }
        if self.total_steps() == 0 {
            return Err(Invalid::new(
                "train.total_tokens",
                format!(
                    "is smaller than one step of tokens_per_step = {}",
                    self.tokens_per_step
                ),
            ));
        }
        if self.log_every == 0 {
            return Err(Invalid::new("train.log_every", "must be at least 1"));
        }
        if self.keep_checkpoints == 0 {
            return Err(Invalid::new("train.keep_checkpoints", "must be at least 1"));
        }
        if self.threads == Some(0) {
            return Err(Invalid::new("train.threads", "must be at least 1"));
        }
        if self.workers == Some(0) {
            return Err(Invalid::new("train.workers", "must be at least 1"));
        }
        if self.micro_batch_tokens.is_none()
            && !self
                .sequences_per_step()
                .is_multiple_of(self.sequences_per_micro_batch())
        {
            return Err(Invalid::new(
                "train.workers",
                format!(
                    "{} workers cannot share the {} sequences of a step evenly; choose a divisor or set micro_batch_tokens",
                    self.workers(),
                    self.sequences_per_step()
                ),
            ));
        }
        if self.device.trim().is_empty() {
            return Err(Invalid::new("train.device", "must not be empty"));
        }
        Ok(())
    }
}
