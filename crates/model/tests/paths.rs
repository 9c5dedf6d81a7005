//! Chunked, recurrent and streaming forwards agree on configurations the fixture does not
//! cover: several B/C groups, projection biases, an untied head, chunk sizes that do not divide
//! the length, and segment boundaries that fall inside chunks.

use burn::prelude::*;
use forgetlab_model::{Mamba2, Mamba2Config, ScanHooks};

fn tiny(ngroups: usize, chunk_size: usize, tie: bool, bias: bool) -> Mamba2Config {
    let mut c = Mamba2Config::new(32, 2, 97);
    c.d_state = 8;
    c.headdim = 8;
    c.ngroups = ngroups;
    c.chunk_size = chunk_size;
    c.tie_embeddings = tie;
    c.bias = bias;
    c
}

fn ids(batch: usize, len: usize, vocab: usize, device: &Device) -> Tensor<2, Int> {
    let values: Vec<i64> = (0..batch * len)
        .map(|i| ((i * 7919 + 13) % vocab) as i64)
        .collect();
    Tensor::from_data(TensorData::new(values, [batch, len]), device)
}

fn max_diff(a: Tensor<3>, b: Tensor<3>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar()
}

#[test]
fn all_paths_agree_for_groups_biases_and_odd_sizes() {
    let dev = Device::flex();
    let hooks = ScanHooks::default();
    for (ngroups, chunk, tie, bias, len) in [
        (2, 8, true, false, 45),
        (4, 5, false, true, 31),
        (1, 64, true, false, 23),
        (8, 3, false, false, 17),
    ] {
        let config = tiny(ngroups, chunk, tie, bias);
        let model = Mamba2::init(&config, 11, &dev).unwrap();
        let input = ids(3, len, config.vocab_size, &dev);
        let (chunked, _) = model.forward(input.clone(), None, &hooks);
        let what = format!("groups {ngroups} chunk {chunk} len {len}");

        let mut state = model.zero_state(3);
        let mut steps = Vec::new();
        for t in 0..len {
            let column: Tensor<1, Int> = input.clone().narrow(1, t, 1).reshape([3]);
            let (logits, next) = model.step(column, state, &hooks);
            steps.push(logits.unsqueeze_dim::<3>(1));
            state = next;
        }
        let diff = max_diff(Tensor::cat(steps, 1), chunked.clone());
        assert!(diff < 1e-4, "{what}: recurrent vs chunked {diff}");

        for segment in [1, 2, 7, 11, len - 1] {
            let mut pieces = Vec::new();
            model.forward_streaming(input.clone(), segment, None, &hooks, |_, l| pieces.push(l));
            let diff = max_diff(Tensor::cat(pieces, 1), chunked.clone());
            assert!(
                diff < 1e-4,
                "{what}: streaming segment {segment} vs chunked {diff}"
            );
        }
    }
}

#[test]
fn init_is_deterministic_and_logits_are_sane() {
    let dev = Device::flex();
    let config = tiny(1, 16, true, false);
    let a = Mamba2::init(&config, 3, &dev).unwrap();
    let b = Mamba2::init(&config, 3, &dev).unwrap();
    let input = ids(2, 20, config.vocab_size, &dev);
    let (la, _) = a.forward(input.clone(), None, &ScanHooks::default());
    let (lb, _) = b.forward(input, None, &ScanHooks::default());
    assert_eq!(max_diff(la.clone(), lb), 0.0);
    // A fresh model predicts nearly uniformly: logits are small.
    let biggest: f32 = la.abs().max().into_scalar();
    assert!(biggest < 5.0, "initial logits too large: {biggest}");
    assert_eq!(config.padded_vocab_size(), 112);
}

fn stepped(model: &Mamba2, input: &Tensor<2, Int>, hooks: &ScanHooks) -> Tensor<3> {
    let [batch, len] = input.dims();
    let mut state = model.zero_state(batch);
    let mut steps = Vec::new();
    for t in 0..len {
        let column: Tensor<1, Int> = input.clone().narrow(1, t, 1).reshape([batch]);
        let (logits, next) = model.step(column, state, hooks);
        steps.push(logits.unsqueeze_dim::<3>(1));
        state = next;
    }
    Tensor::cat(steps, 1)
}

#[test]
fn rri_with_lambda_one_is_the_identity_and_otherwise_acts() {
    let dev = Device::flex();
    let config = tiny(2, 8, true, false);
    let model = Mamba2::init(&config, 5, &dev).unwrap();
    let input = ids(2, 33, config.vocab_size, &dev);
    let plain = model.forward(input.clone(), None, &ScanHooks::default()).0;
    let identity = ScanHooks {
        rri_alpha: Some(1.0),
        rri_b: Some(1.0),
        dt_scale: Some(1.0),
        ..ScanHooks::default()
    };
    assert!(identity.rri_is_identity());
    assert_eq!(
        max_diff(
            model.forward(input.clone(), None, &identity).0,
            plain.clone()
        ),
        0.0
    );
    assert_eq!(
        max_diff(
            stepped(&model, &input, &identity),
            stepped(&model, &input, &ScanHooks::default())
        ),
        0.0
    );
    let rri = ScanHooks {
        rri_alpha: Some(0.9),
        rri_b: Some(0.75),
        ..ScanHooks::default()
    };
    let changed = model.forward(input.clone(), None, &rri).0;
    assert!(
        max_diff(changed.clone(), plain) > 1e-4,
        "RRI changes the function"
    );
    // ... in the chunked and the step path alike.
    assert!(max_diff(stepped(&model, &input, &rri), changed) < 1e-4);
}

#[test]
fn sliding_window_agrees_across_paths_and_equals_full_model_when_window_covers_all() {
    let dev = Device::flex();
    let config = tiny(2, 8, true, false);
    let model = Mamba2::init(&config, 9, &dev).unwrap();
    let input = ids(2, 40, config.vocab_size, &dev);
    let windowed = ScanHooks {
        sliding_window: Some(7),
        ..ScanHooks::default()
    };
    let chunked = model.forward(input.clone(), None, &windowed).0;
    assert!(max_diff(stepped(&model, &input, &windowed), chunked.clone()) < 1e-4);
    for segment in [3, 7, 16] {
        let mut pieces = Vec::new();
        model.forward_streaming(input.clone(), segment, None, &windowed, |_, l| {
            pieces.push(l)
        });
        assert!(
            max_diff(Tensor::cat(pieces, 1), chunked.clone()) < 1e-4,
            "segment {segment}"
        );
    }
    let plain = model.forward(input.clone(), None, &ScanHooks::default()).0;
    assert!(
        max_diff(chunked, plain.clone()) > 1e-4,
        "a short window changes the outputs"
    );
    let everything = ScanHooks {
        sliding_window: Some(40),
        ..ScanHooks::default()
    };
    assert!(max_diff(model.forward(input, None, &everything).0, plain) < 1e-5);
}

#[test]
fn state_norm_clipping_bounds_every_head() {
    let dev = Device::flex();
    let config = tiny(1, 8, true, false);
    let model = Mamba2::init(&config, 2, &dev).unwrap();
    let input = ids(2, 64, config.vocab_size, &dev);
    let free = model.forward_streaming(input.clone(), 16, None, &ScanHooks::default(), |_, _| {});
    let norms = free.ssm_norms();
    let limits: Vec<Vec<f32>> = norms
        .iter()
        .map(|layer| layer[..config.nheads()].iter().map(|n| n * 0.5).collect())
        .collect();
    let clipped = ScanHooks {
        state_norm_max: Some(limits.clone()),
        ..ScanHooks::default()
    };
    let state = model.forward_streaming(input, 16, None, &clipped, |_, _| {});
    for (layer, got) in state.ssm_norms().iter().enumerate() {
        for (i, n) in got.iter().enumerate() {
            let limit = limits[layer][i % config.nheads()];
            assert!(
                *n <= limit * 1.0001,
                "layer {layer} head {i}: {n} > {limit}"
            );
        }
    }
}
