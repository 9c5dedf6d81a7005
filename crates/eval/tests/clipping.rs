//! State-norm clipping reaches the diagnostics at the hooks' token cadence, not at the
//! diagnostics' sampling points.

use burn::prelude::*;
use forgetlab_eval::diagnostics::diagnose;
use forgetlab_model::{Model, ModelConfig, ScanHooks, StateNormClip};
use forgetlab_runs::config::Mitigation;

#[test]
fn diagnostics_clip_at_the_hooks_cadence_not_at_samples() {
    let mut config = ModelConfig::new(32, 2, 64);
    config.d_state = 8;
    config.headdim = 16;
    config.chunk_size = 8;
    let device = Device::flex();
    let model = Model::init(&config, 7, &device).unwrap();
    let tokens: Vec<u32> = (0..60u32).map(|i| (i * 29 + 3) % 64).collect();
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, tokens.len()]), &device);
    let (_, free) = model.forward(ids.clone(), None, &ScanHooks::default());
    let limits: Vec<Vec<f32>> = free
        .ssm_norms()
        .iter()
        .map(|l| l.iter().map(|n| n * 0.3).collect())
        .collect();
    let (every, sample_every) = (16, 24);
    let hooks = ScanHooks {
        state_norm_clip: Some(StateNormClip {
            limits: limits.clone(),
            every,
        }),
        ..ScanHooks::default()
    };
    let diagnose_with = |hooks: &ScanHooks| {
        diagnose(
            &model,
            "r",
            "text",
            &tokens,
            32,
            sample_every,
            &Mitigation::default(),
            hooks,
        )
    };
    let clipped = diagnose_with(&hooks);
    assert_eq!(clipped.positions, vec![24, 48, 60]);
    // Reference: 4-token forwards without hooks, clipping at multiples of 16.
    let mut state = model.zero_state(1);
    let mut want = Vec::new();
    for start in (0..tokens.len()).step_by(4) {
        let (_, next) = model.forward(
            ids.clone().narrow(1, start, 4),
            Some(state),
            &ScanHooks::default(),
        );
        let end = start + 4;
        state = if end % every == 0 {
            next.clip_norms(&limits)
        } else {
            next
        };
        if clipped.positions.contains(&end) {
            want.push(state.ssm_norms());
        }
    }
    let unclipped = diagnose_with(&ScanHooks::default());
    let mut changed = false;
    for layer in 0..config.n_layer {
        for h in 0..config.nheads() {
            let got = &clipped.layers[layer].heads[h].state_norm;
            for (i, norms) in want.iter().enumerate() {
                let w = f64::from(norms[layer][h]);
                assert!(
                    (got[i] - w).abs() < 1e-4 * w.max(1.0),
                    "layer {layer} head {h} sample {i}: {} vs {w}",
                    got[i]
                );
            }
            let free = &unclipped.layers[layer].heads[h].state_norm;
            changed |= got.iter().zip(free).any(|(a, b)| (a - b).abs() > 1e-3);
        }
    }
    assert!(changed, "clipping changes the sampled norms");
}
