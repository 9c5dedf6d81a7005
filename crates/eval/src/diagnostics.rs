//! State diagnostics (paper.md section 5): per layer and head, the decay α_t = exp(Δ_t A), the
//! first token's retention strength α_{1:t} (kept in log space: a running sum of log α, so it
//! never underflows), and the SSM state's mean, variance, RMS and norm over time, sampled every
//! `sample_every` tokens.
//!
//! The prompt is streamed in segments of `sample_every` tokens; after each segment the state is
//! read and the segment's log-decays (recorded by the traced forward) are folded in. Every
//! token's log decay is kept, so each head's memory is measured token by token (the verdict's
//! [`forgetlab_stats::verdict::token_memory_lengths`]): a time mean of log decay is biased short for
//! selective heads that reset rarely and hard. State-norm
//! clipping, when active, happens inside the model at its own token cadence (the one it was
//! calibrated at), not at the sampling points, so the diagnostics see the states that the
//! per-position and passkey evaluations see.

use burn::prelude::*;
use forgetlab_model::{Model, ModelState, ScanHooks};
use forgetlab_runs::config::Mitigation;
use forgetlab_runs::results::{Diagnostics, HeadDiagnostics, LayerDiagnostics};
use forgetlab_stats::verdict::head_memory;

fn to_vec(t: Tensor<1>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Diagnostics of `model` reading `tokens` (batch 1).
#[allow(clippy::too_many_arguments)]
pub fn diagnose(
    model: &Model,
    run: &str,
    prompt: &str,
    tokens: &[u32],
    seq_len: usize,
    sample_every: usize,
    mitigation: &Mitigation,
    hooks: &ScanHooks,
) -> Diagnostics {
    let config = model.config();
    let (layers, heads) = (config.n_layer, config.nheads());
    let device = model.device();
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, tokens.len()]), &device);
    let mut series: Vec<Vec<HeadDiagnostics>> = (0..layers)
        .map(|_| {
            (0..heads)
                .map(|head| HeadDiagnostics {
                    head,
                    alpha_mean: Vec::new(),
                    log_retention_first: Vec::new(),
                    state_mean: Vec::new(),
                    state_var: Vec::new(),
                    state_rms: Vec::new(),
                    state_norm: Vec::new(),
                    alpha_time_mean: 0.0,
                    memory_length: 0.0,
                    memory_max: None,
                })
                .collect()
        })
        .collect();
    let mut log_retention = vec![vec![0f64; heads]; layers];
    // Every token's log decay per head, for token-by-token memory lengths.
    let mut log_alpha = vec![vec![Vec::with_capacity(tokens.len()); heads]; layers];
    let mut alpha_sum = vec![vec![0f64; heads]; layers];
    let mut positions = Vec::new();
    let mut state: Option<ModelState> = None;
    let mut start = 0;
    while start < tokens.len() {
        let take = sample_every.min(tokens.len() - start);
        let (_, next, trace) =
            model.forward_traced(ids.clone().narrow(1, start, take), state, hooks);
        for (layer, layer_trace) in trace.layers.iter().enumerate() {
            let la: Tensor<2> = layer_trace.log_alpha_blh().clone().squeeze_dim(0);
            // One read of the segment's decays serves the memory lengths and both sums.
            let mut la_sum = vec![0f64; heads];
            let mut alpha_sum_seg = vec![0f64; heads];
            for (i, v) in to_vec(la.reshape([take * heads])).into_iter().enumerate() {
                log_alpha[layer][i % heads].push(v);
                la_sum[i % heads] += v;
                alpha_sum_seg[i % heads] += v.exp();
            }
            for h in 0..heads {
                log_retention[layer][h] += la_sum[h];
                alpha_sum[layer][h] += alpha_sum_seg[h];
                let s = &mut series[layer][h];
                s.alpha_mean.push(alpha_sum_seg[h] / take as f64);
                s.log_retention_first.push(log_retention[layer][h]);
            }
        }
        for (layer, layer_state) in next.layers.iter().enumerate() {
            let [_, _, p, n] = layer_state.heads().dims();
            let h_hx: Tensor<2> = layer_state.heads().clone().reshape([heads, p * n]);
            let mean = h_hx.clone().mean_dim(1);
            let sq_mean = to_vec(h_hx.clone().square().mean_dim(1).reshape([heads]));
            let centered = h_hx - mean.clone();
            let count = (p * n) as f64;
            let var = to_vec(centered.square().sum_dim(1).reshape([heads]));
            let mean = to_vec(mean.reshape([heads]));
            for h in 0..heads {
                let s = &mut series[layer][h];
                s.state_mean.push(mean[h]);
                s.state_var.push(var[h] / (count - 1.0).max(1.0));
                s.state_rms.push(sq_mean[h].sqrt());
                s.state_norm.push((sq_mean[h] * count).sqrt());
            }
        }
        state = Some(next);
        start += take;
        positions.push(start);
    }
    let total = tokens.len().max(1) as f64;
    for layer in 0..layers {
        for h in 0..heads {
            let s = &mut series[layer][h];
            s.alpha_time_mean = alpha_sum[layer][h] / total;
            let (median, max) = head_memory(&log_alpha[layer][h]);
            s.memory_length = median;
            s.memory_max = Some(max);
        }
    }
    Diagnostics {
        run: run.to_string(),
        prompt: prompt.to_string(),
        seq_len,
        length: tokens.len(),
        sample_every,
        positions,
        layers: series
            .into_iter()
            .enumerate()
            .map(|(layer, heads)| LayerDiagnostics { layer, heads })
            .collect(),
        mitigation: mitigation.clone(),
    }
}

/// `[layer][head]` values.
pub type HeadTable = Vec<Vec<f64>>;

/// The `[layer][head]` median and maximum token-by-token memory lengths of diagnostics, or
/// `None` for files written before memory was measured token by token.
pub fn head_memory_table(diagnostics: &Diagnostics) -> Option<(HeadTable, HeadTable)> {
    let mut medians = Vec::with_capacity(diagnostics.layers.len());
    let mut maxima = Vec::with_capacity(diagnostics.layers.len());
    for layer in &diagnostics.layers {
        medians.push(layer.heads.iter().map(|h| h.memory_length).collect());
        maxima.push(
            layer
                .heads
                .iter()
                .map(|h| h.memory_max)
                .collect::<Option<Vec<f64>>>()?,
        );
    }
    Some((medians, maxima))
}
