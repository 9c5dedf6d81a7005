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
            assert!(diff < 1e-4, "{what}: streaming segment {segment} vs chunked {diff}");
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
