//! `[eval.mitigation]`: the inference-time interventions of paper.md section 6. A run's own
//! mitigation is part of its config so that every eval of the run applies it; the label names
//! result files, so results with and without an intervention sit side by side.

use serde::{Deserialize, Serialize};

use crate::config::{Invalid, MixerKind};

/// Inference-time interventions on the recurrence (paper.md section 6). All default to off.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mitigation {
    /// RRI: alpha_t <- lambda_alpha * alpha_t (applied in log space after the softplus).
    pub rri_alpha: Option<f64>,
    /// RRI: B_t <- lambda_B * B_t.
    pub rri_b: Option<f64>,
    /// dt <- dt_scale * dt after the softplus (LongMamba/DeciMamba-style baseline).
    pub dt_scale: Option<f64>,
    /// State-norm clipping: every 128 tokens (the calibration cadence) each head's state is
    /// shrunk to at most this multiple of the largest norm that head reaches within T_train
    /// tokens of held-out text
    /// (h ← h · min(1, τ_head/‖h‖); the official code inverts the scale). The per-head
    /// thresholds are calibrated by the evaluator and recorded with its results.
    pub state_norm_clip: Option<f64>,
    /// Sliding window by state difference: y_t reads h_t - alpha_{t-r+1:t} h_{t-r}.
    pub sliding_window: Option<usize>,
}

impl Mitigation {
    /// True when no intervention is active.
    pub fn is_none(&self) -> bool {
        *self == Mitigation::default()
    }

    /// A short label such as `rri_alpha-0.9999_rri_b-0.75`, or `none`.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.rri_alpha {
            parts.push(format!("rri_alpha-{v}"));
        }
        if let Some(v) = self.rri_b {
            parts.push(format!("rri_b-{v}"));
        }
        if let Some(v) = self.dt_scale {
            parts.push(format!("dt_scale-{v}"));
        }
        if let Some(v) = self.state_norm_clip {
            parts.push(format!("state_norm_clip-{v}"));
        }
        if let Some(v) = self.sliding_window {
            parts.push(format!("sliding_window-{v}"));
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join("_")
        }
    }

    /// Refuses interventions the model's mixer does not have: RRI's λ_B (Gated DeltaNet has
    /// no B) and the exact sliding window (written for Mamba-2's scan) are Mamba-2's.
    pub fn check_mixer(&self, mixer: MixerKind, prefix: &str) -> Result<(), Invalid> {
        if mixer == MixerKind::Mamba2 {
            return Ok(());
        }
        let mamba2_only = [
            ("rri_b", self.rri_b.is_some()),
            ("sliding_window", self.sliding_window.is_some()),
        ];
        match mamba2_only.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(Invalid::new(
                format!("{prefix}.{key}"),
                format!(
                    "Mamba-2 only; {} (model.mixer = \"{}\") has no such intervention",
                    mixer.label(),
                    mixer.name()
                ),
            )),
            None => Ok(()),
        }
    }

    /// Checks value ranges; `prefix` is the dotted key of the table.
    pub fn validate(&self, prefix: &str) -> Result<(), Invalid> {
        let in_unit = |key: &str, v: Option<f64>| match v {
            Some(v) if !(v > 0.0 && v <= 1.0) => Err(Invalid::new(
                format!("{prefix}.{key}"),
                format!("must be in (0, 1], got {v}"),
            )),
            _ => Ok(()),
        };
        in_unit("rri_alpha", self.rri_alpha)?;
        match self.rri_b {
            Some(v) if !(v >= 0.0 && v.is_finite()) => {
                return Err(Invalid::new(
                    format!("{prefix}.rri_b"),
                    format!("must be a finite number >= 0, got {v}"),
                ));
            }
            _ => {}
        }
        for (key, v) in [
            ("dt_scale", self.dt_scale),
            ("state_norm_clip", self.state_norm_clip),
        ] {
            if let Some(v) = v
                && !(v > 0.0 && v.is_finite())
            {
                return Err(Invalid::new(
                    format!("{prefix}.{key}"),
                    format!("must be a positive number, got {v}"),
                ));
            }
        }
        if self.sliding_window == Some(0) {
            return Err(Invalid::new(
                format!("{prefix}.sliding_window"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mamba2_only_interventions_are_refused_for_other_mixers() {
        let window = Mitigation {
            sliding_window: Some(64),
            ..Mitigation::default()
        };
        let key = |m: &Mitigation| {
            m.check_mixer(MixerKind::GatedDeltaNet, "eval.mitigation")
                .map_err(|e| e.key)
        };
        assert_eq!(
            key(&window),
            Err("eval.mitigation.sliding_window".to_string())
        );
        assert!(
            window
                .check_mixer(MixerKind::Mamba2, "eval.mitigation")
                .is_ok()
        );
        let decay = Mitigation {
            rri_alpha: Some(0.999),
            dt_scale: Some(0.5),
            state_norm_clip: Some(1.0),
            ..Mitigation::default()
        };
        assert_eq!(key(&decay), Ok(()));
    }
}
