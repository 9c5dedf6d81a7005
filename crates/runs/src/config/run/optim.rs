//! `[optim]`: the optimizer and learning-rate schedule. Every key has a default (the paper's
//! recipe), so a run file may omit the section.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

/// AdamW and the learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate as a fraction of the peak.
    pub min_lr_ratio: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay; never applied to A_log, D, dt_bias, norms and biases.
    pub weight_decay: f64,
    /// Global gradient-norm clip across all parameters (0 = off).
    pub grad_clip: f64,
    pub schedule: Schedule,
    /// Linear warmup steps from lr/warmup to lr.
    pub warmup_steps: usize,
    /// For `wsd`: fraction of all steps spent in the final linear decay.
    pub decay_fraction: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 5e-4,
            min_lr_ratio: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            grad_clip: 1.0,
            schedule: Schedule::default(),
            warmup_steps: 100,
            decay_fraction: 0.1,
        }
    }
}

impl OptimConfig {
    /// Checks value ranges; keys are reported as `optim.<key>`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Invalid::new(
                "optim.lr",
                format!("must be positive, got {}", self.lr),
            ));
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return Err(Invalid::new("optim.min_lr_ratio", "must be in [0, 1]"));
        }
        for (key, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(Invalid::new(format!("optim.{key}"), "must be in [0, 1)"));
            }
        }
        if self.eps.is_nan() || self.eps <= 0.0 {
            return Err(Invalid::new("optim.eps", "must be positive"));
        }
        if self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            return Err(Invalid::new("optim.weight_decay", "must be >= 0"));
        }
        if self.grad_clip.is_nan() || self.grad_clip < 0.0 {
            return Err(Invalid::new("optim.grad_clip", "must be >= 0 (0 = off)"));
        }
        if !(0.0..=1.0).contains(&self.decay_fraction) {
            return Err(Invalid::new("optim.decay_fraction", "must be in [0, 1]"));
        }
        Ok(())
    }
}

/// Learning-rate schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Cosine decay to min_lr_ratio * lr.
    #[default]
    Cosine,
    /// Warmup-stable-decay (MiniCPM): constant, then linear decay over the last
    /// decay_fraction of steps.
    Wsd,
    /// Constant after warmup.
    Constant,
}
