//! Inference-time interventions (paper.md section 6) from a run's `[eval.mitigation]`.
//!
//! RRI, Δ scaling and the sliding window map directly onto the model's scan hooks. State-norm
//! clipping needs per-head thresholds: they are calibrated here as a multiple of the norm each
//! head's state reaches within T_train tokens of held-out text, the regime the model was
//! trained in (the official code computes such thresholds but then inverts the scale; we
//! shrink). The norms are read at the same token cadence at which the model later clips, so a
//! threshold bounds exactly the states it was measured on, and the cadence is stored with them.

use burn::prelude::*;
use forgetlab_model::{Model, ScanHooks, StateNormClip};
use forgetlab_runs::config::Mitigation;

/// Default tokens between two state-norm clips (and between calibration readings).
pub const STATE_NORM_EVERY: usize = 128;

/// Scan hooks for `mitigation`. `calibration` (token ids, at least T_train long) is used only
/// for state-norm clipping, at cadence `every`; the clipping (thresholds and cadence) is also
/// returned for the record. An intervention the model's mixer does not have is refused, in one
/// line naming it, before anything runs.
pub fn hooks_for(
    model: &Model,
    mitigation: &Mitigation,
    calibration: &[u32],
    every: usize,
) -> Result<(ScanHooks, Option<StateNormClip>), String> {
    mitigation
        .check_mixer(model.config().mixer, "eval.mitigation")
        .map_err(|invalid| invalid.to_string())?;
    let clip = mitigation
        .state_norm_clip
        .map(|multiplier| calibrate_state_norms(model, calibration, every, multiplier));
    let hooks = ScanHooks {
        rri_alpha: mitigation.rri_alpha,
        rri_b: mitigation.rri_b,
        dt_scale: mitigation.dt_scale,
        sliding_window: mitigation.sliding_window,
        state_norm_clip: clip.clone(),
    };
    Ok((hooks, clip))
}

/// Per-head state-norm clipping at cadence `every`: `multiplier` times the largest norm each
/// head reaches at the cadence's multiples (and at the end) while reading `tokens` without
/// intervention.
pub fn calibrate_state_norms(
    model: &Model,
    tokens: &[u32],
    every: usize,
    multiplier: f64,
) -> StateNormClip {
    let every = every.max(1);
    let device = model.device();
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, tokens.len()]), &device);
    let heads = model.config().nheads();
    let mut max = vec![vec![0f32; heads]; model.config().n_layer];
    let mut state = None;
    let mut start = 0;
    while start < tokens.len() {
        let take = every.min(tokens.len() - start);
        let (_, next) = model.forward(
            ids.clone().narrow(1, start, take),
            state,
            &ScanHooks::default(),
        );
        for (layer, norms) in next.ssm_norms().iter().enumerate() {
            for (h, n) in norms.iter().enumerate() {
                max[layer][h] = max[layer][h].max(*n);
            }
        }
        state = Some(next);
        start += take;
    }
    let limits = max
        .into_iter()
        .map(|row| row.into_iter().map(|n| n * multiplier as f32).collect())
        .collect();
    StateNormClip { limits, every }
}

#[cfg(test)]
mod tests {
    use super::*;
    use forgetlab_model::ModelConfig;

    #[test]
    fn calibration_reads_norms_at_the_cadence_and_records_it() {
        let mut config = ModelConfig::new(32, 2, 64);
        config.d_state = 8;
        config.headdim = 16;
        config.chunk_size = 8;
        let device = Device::flex();
        let model = Model::init(&config, 3, &device).unwrap();
        let tokens: Vec<u32> = (0..50u32).map(|i| (i * 37 + 5) % 64).collect();
        let clip = calibrate_state_norms(&model, &tokens, 16, 2.0);
        assert_eq!(clip.every, 16);
        // Reference: norms after 16, 32, 48 and 50 tokens, read from whole-prefix forwards.
        let heads = config.nheads();
        let mut want = vec![vec![0f32; heads]; config.n_layer];
        for end in [16, 32, 48, 50] {
            let ids: Vec<i64> = tokens[..end].iter().map(|&t| t as i64).collect();
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, end]), &device);
            let (_, state) = model.forward(ids, None, &ScanHooks::default());
            for (layer, norms) in state.ssm_norms().iter().enumerate() {
                for (h, n) in norms.iter().enumerate() {
                    want[layer][h] = want[layer][h].max(2.0 * n);
                }
            }
        }
        for (got, want) in clip.limits.iter().flatten().zip(want.iter().flatten()) {
            assert!(
                (got - want).abs() <= 1e-4 * want.max(1.0),
                "{got} vs {want}"
            );
        }
        let (hooks, recorded) = hooks_for(
            &model,
            &Mitigation {
                state_norm_clip: Some(2.0),
                ..Mitigation::default()
            },
            &tokens,
            16,
        )
        .unwrap();
        assert_eq!(hooks.state_norm_clip, recorded);
        assert_eq!(recorded.map(|c| c.every), Some(16));
    }

    /// Gated DeltaNet takes the decay interventions and clipping, and refuses Mamba-2's own
    /// (RRI's λ_B, the exact sliding window) by name instead of ignoring them.
    #[test]
    fn gated_deltanet_refuses_mamba2_only_interventions() {
        let sizes = forgetlab_model::GatedDeltaNetConfig {
            heads: 2,
            head_k_dim: 8,
            expand_v: 2.0,
            intermediate_size: Some(0),
        };
        let config = ModelConfig::gated_deltanet(32, 2, 64, sizes);
        let model = Model::init(&config, 3, &Device::flex()).unwrap();
        let tokens: Vec<u32> = (0..32u32).collect();
        let with = |mitigation: Mitigation| hooks_for(&model, &mitigation, &tokens, 16);
        let supported = Mitigation {
            rri_alpha: Some(0.99),
            dt_scale: Some(0.5),
            state_norm_clip: Some(2.0),
            ..Mitigation::default()
        };
        let (hooks, clip) = with(supported).unwrap();
        assert_eq!(hooks.rri_alpha, Some(0.99));
        assert_eq!(clip.map(|c| c.limits.len()), Some(2));
        for (mitigation, setting) in [
            (
                Mitigation {
                    rri_b: Some(0.75),
                    ..Mitigation::default()
                },
                "rri_b",
            ),
            (
                Mitigation {
                    sliding_window: Some(16),
                    ..Mitigation::default()
                },
                "sliding_window",
            ),
        ] {
            let error = with(mitigation).unwrap_err();
            assert!(
                error.contains(setting) && error.contains("Gated DeltaNet"),
                "{error}"
            );
        }
    }
}
