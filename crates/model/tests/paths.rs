//! Chunked, recurrent and streaming forwards agree on configurations the fixture does not
//! cover: several B/C groups, projection biases, an untied head, chunk sizes that do not divide
//! the length, and segment boundaries that fall inside chunks.

use burn::prelude::*;
use forgetlab_model::{Model, ModelConfig, ModelState, ScanHooks, StateNormClip};

fn tiny(ngroups: usize, chunk_size: usize, tie: bool, bias: bool) -> ModelConfig {
    let mut c = ModelConfig::new(32, 2, 97);
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
        let model = Model::init(&config, 11, &dev).unwrap();
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
    let a = Model::init(&config, 3, &dev).unwrap();
    let b = Model::init(&config, 3, &dev).unwrap();
    let input = ids(2, 20, config.vocab_size, &dev);
    let (la, _) = a.forward(input.clone(), None, &ScanHooks::default());
    let (lb, _) = b.forward(input, None, &ScanHooks::default());
    assert_eq!(max_diff(la.clone(), lb), 0.0);
    // A fresh model predicts nearly uniformly: logits are small.
    let biggest: f32 = la.abs().max().into_scalar();
    assert!(biggest < 5.0, "initial logits too large: {biggest}");
    assert_eq!(config.padded_vocab_size(), 112);
}

fn stepped(model: &Model, input: &Tensor<2, Int>, hooks: &ScanHooks) -> Tensor<3> {
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
    let model = Model::init(&config, 5, &dev).unwrap();
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
    let model = Model::init(&config, 9, &dev).unwrap();
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
    let model = Model::init(&config, 2, &dev).unwrap();
    let input = ids(2, 64, config.vocab_size, &dev);
    let free = model.forward_streaming(input.clone(), 16, None, &ScanHooks::default(), |_, _| {});
    let norms = free.ssm_norms();
    let limits: Vec<Vec<f32>> = norms
        .iter()
        .map(|layer| layer[..config.nheads()].iter().map(|n| n * 0.5).collect())
        .collect();
    let clipped = clip_hooks(limits.clone(), 16);
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

fn clip_hooks(limits: Vec<Vec<f32>>, every: usize) -> ScanHooks {
    ScanHooks {
        state_norm_clip: Some(StateNormClip { limits, every }),
        ..ScanHooks::default()
    }
}

/// Per-head limits at `fraction` of the norms the free model reaches after `input`.
fn limits_below_free(model: &Model, input: &Tensor<2, Int>, fraction: f32) -> Vec<Vec<f32>> {
    let heads = model.config().nheads();
    let (_, free) = model.forward(input.clone(), None, &ScanHooks::default());
    free.ssm_norms()
        .iter()
        .map(|layer| layer[..heads].iter().map(|n| n * fraction).collect())
        .collect()
}

fn streamed(
    model: &Model,
    input: &Tensor<2, Int>,
    segment: usize,
    hooks: &ScanHooks,
) -> (Tensor<3>, ModelState) {
    let [_, len] = input.dims();
    let mut pieces = Vec::new();
    let mut next = 0;
    let state = model.forward_streaming(input.clone(), segment, None, hooks, |start, l| {
        assert_eq!(start, next, "segments are contiguous");
        next += l.dims()[1];
        pieces.push(l);
    });
    assert_eq!(next, len, "every position exactly once");
    (Tensor::cat(pieces, 1), state)
}

fn max_state_diff(a: &ModelState, b: &ModelState) -> f32 {
    a.ssm_norms()
        .iter()
        .flatten()
        .zip(b.ssm_norms().iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn clipping_at_a_cadence_equals_a_manual_loop_in_every_path() {
    let dev = Device::flex();
    let config = tiny(2, 8, true, false);
    let model = Model::init(&config, 21, &dev).unwrap();
    let (batch, len, every) = (2, 45, 8);
    let input = ids(batch, len, config.vocab_size, &dev);
    let limits = limits_below_free(&model, &input, 0.3);
    // Reference: c-token forwards without hooks, clipping after each full piece.
    let mut state = model.zero_state(batch);
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < len {
        let take = every.min(len - start);
        let (logits, next) = model.forward(
            input.clone().narrow(1, start, take),
            Some(state),
            &ScanHooks::default(),
        );
        pieces.push(logits);
        start += take;
        state = if start % every == 0 {
            next.clip_norms(&limits)
        } else {
            next
        };
    }
    let reference = Tensor::cat(pieces, 1);
    let free = model.forward(input.clone(), None, &ScanHooks::default()).0;
    assert!(
        max_diff(reference.clone(), free) > 1e-3,
        "the limits are tight enough to change the outputs"
    );
    let hooks = clip_hooks(limits, every);
    for segment in [3, 8, 13, 16, 45] {
        let (logits, end) = streamed(&model, &input, segment, &hooks);
        let diff = max_diff(logits, reference.clone());
        assert!(diff < 1e-4, "streaming, segment {segment}: {diff}");
        assert_eq!(end.tokens_seen, len);
        assert!(
            max_state_diff(&end, &state) < 1e-4,
            "segment {segment}: final state"
        );
    }
    let (chunked, end) = model.forward(input.clone(), None, &hooks);
    assert!(
        max_diff(chunked, reference.clone()) < 1e-4,
        "one chunked forward"
    );
    assert_eq!(end.tokens_seen, len);
    let diff = max_diff(stepped(&model, &input, &hooks), reference);
    assert!(diff < 1e-4, "step-by-step decoding: {diff}");
    // Prefill then decode, as the passkey evaluation does: the token clock carries over.
    let prefill = 20;
    let (_, mut state) = model.forward(input.clone().narrow(1, 0, prefill), None, &hooks);
    let mut last = None;
    for t in prefill..len {
        let column: Tensor<1, Int> = input.clone().narrow(1, t, 1).reshape([batch]);
        let (logits, next) = model.step(column, state, &hooks);
        last = Some(logits);
        state = next;
    }
    let (streamed_all, _) = streamed(&model, &input, 7, &hooks);
    let want: Tensor<2> = streamed_all
        .narrow(1, len - 1, 1)
        .reshape([batch, config.padded_vocab_size()]);
    let got = last.unwrap();
    assert!((got - want).abs().max().into_scalar::<f32>() < 1e-4);
}

#[test]
fn a_cadence_that_never_triggers_changes_nothing() {
    let dev = Device::flex();
    let config = tiny(1, 8, false, true);
    let model = Model::init(&config, 8, &dev).unwrap();
    let len = 37;
    let input = ids(2, len, config.vocab_size, &dev);
    let hooks = clip_hooks(limits_below_free(&model, &input, 0.01), len + 1);
    let plain = ScanHooks::default();
    for segment in [5, 16, len] {
        let (clipped, _) = streamed(&model, &input, segment, &hooks);
        let (free, _) = streamed(&model, &input, segment, &plain);
        assert_eq!(max_diff(clipped, free), 0.0, "segment {segment}");
    }
    assert_eq!(
        max_diff(
            stepped(&model, &input, &hooks),
            stepped(&model, &input, &plain)
        ),
        0.0
    );
    // The first multiple of the cadence does trigger.
    let hooks = clip_hooks(limits_below_free(&model, &input, 0.01), len - 1);
    let (clipped, _) = streamed(&model, &input, 16, &hooks);
    let (free, _) = streamed(&model, &input, 16, &plain);
    let before = max_diff(
        clipped.clone().narrow(1, 0, len - 1),
        free.clone().narrow(1, 0, len - 1),
    );
    assert!(before < 1e-5, "before the first clip: {before}");
    assert!(max_diff(clipped, free) > 1e-4);
}
