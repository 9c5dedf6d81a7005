//! Inference-time interventions (paper.md section 6) from a run's `[eval.mitigation]`.
//!
//! RRI, Δ scaling and the sliding window map directly onto the model's scan hooks. State-norm
//! clipping needs per-head thresholds: they are calibrated here as a multiple of the norm each
//! head's state reaches after T_train tokens of held-out text, the regime the model was trained
//! in (the official code computes such thresholds but then inverts the scale; we shrink).

use burn::prelude::*;
use forgetlab_model::{Mamba2, ScanHooks};
use forgetlab_runs::config::Mitigation;

/// Scan hooks for `mitigation`. `calibration` (token ids, at least T_train long) is used only
/// for state-norm clipping; the returned thresholds are `[layer][head]`.
pub fn hooks_for(
    model: &Mamba2,
    mitigation: &Mitigation,
    calibration: &[u32],
    segment_len: usize,
) -> (ScanHooks, Option<Vec<Vec<f32>>>) {
    let mut hooks = ScanHooks {
        rri_alpha: mitigation.rri_alpha,
        rri_b: mitigation.rri_b,
        dt_scale: mitigation.dt_scale,
        sliding_window: mitigation.sliding_window,
        state_norm_max: None,
    };
    let thresholds = mitigation.state_norm_clip.map(|multiplier| {
        let thresholds = calibrate_state_norms(model, calibration, segment_len, multiplier);
        hooks.state_norm_max = Some(thresholds.clone());
        thresholds
    });
    (hooks, thresholds)
}

/// Per-head state-norm thresholds: `multiplier` times the largest norm each head reaches at
/// segment ends while reading `tokens` without intervention.
pub fn calibrate_state_norms(
    model: &Mamba2,
    tokens: &[u32],
    segment_len: usize,
    multiplier: f64,
) -> Vec<Vec<f32>> {
    let device = model.device();
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, tokens.len()]), &device);
    let heads = model.config().nheads();
    let mut max = vec![vec![0f32; heads]; model.config().n_layer];
    let mut state = None;
    let mut start = 0;
    while start < tokens.len() {
        let take = segment_len.min(tokens.len() - start);
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
    max.into_iter()
        .map(|row| row.into_iter().map(|n| n * multiplier as f32).collect())
        .collect()
}
