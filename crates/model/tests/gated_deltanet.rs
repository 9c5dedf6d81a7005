//! forgetlab's Gated DeltaNet against an independent float64 implementation of fla 0.6.0's
//! maths (fixture in tests/fixtures/gated-deltanet-tiny), loaded through the one real path (fla's
//! config.json and model.safetensors read by `checkpoint`, built by the parameter table): each
//! layer's intermediates and final states, and the whole model's logits and final states, in
//! chunked, recurrent and streaming modes; gradients of the chunked path against the recurrent
//! one; fla-layout and forgetlab-format round trips; seeded initialisation.
//!
//! Tolerances: the reference is float64 and forgetlab computes in float32, over 40 tokens of
//! activations of order 1. Float32 rounding alone leaves about 1e-6 here (the README's fla-in-
//! float32 comparison: 4e-6 on the logits), so 1e-4 absolute, the fixture's own float32 bound,
//! is met with a wide margin by a correct port, while any wrong formula, layout or eps moves
//! the outputs by far more (see `perturbing_any_parameter_breaks_the_logits`).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use forgetlab_model::block::Mixer;
use forgetlab_model::checkpoint::{self, Flavor};
use forgetlab_model::gated_deltanet::GatedDeltaNetTrace;
use forgetlab_model::gated_deltanet::{DeltaMode, GatedDeltaNet, GatedDeltaNetState};
use forgetlab_model::{
    GatedDeltaNetConfig, LayerState, Model, ModelConfig, ModelError, ModelState, ScanHooks, Weights,
};

/// A reference array: shape and float64 values.
#[derive(Debug, Clone)]
struct Array {
    shape: Vec<usize>,
    values: Vec<f64>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gated-deltanet-tiny")
}

fn cpu() -> Device {
    Device::flex()
}

fn hooks() -> ScanHooks {
    ScanHooks::default()
}

/// The fixture's fla config as forgetlab reads it, with the chunk size of the chunked rule.
fn config(chunk_size: usize) -> ModelConfig {
    let (mut config, flavor) = checkpoint::read_config(&fixture_dir().join("config.json")).unwrap();
    assert_eq!(flavor, Flavor::Fla);
    config.chunk_size = chunk_size;
    config
}

/// The fixture's weights, by fla name.
fn fixture_weights() -> Weights {
    checkpoint::read_weights(&fixture_dir().join("model.safetensors")).unwrap()
}

/// The fixture's model, built as every checkpoint is (parameter table, validation), with the
/// given chunk size.
fn model(chunk_size: usize, device: &Device) -> Model {
    fixture_weights()
        .into_model(&config(chunk_size), device, "fixture")
        .unwrap()
}

/// Block `l`'s mixer.
fn gdn(model: &Model, l: usize) -> &GatedDeltaNet {
    match &model.layers[l].mixer {
        Mixer::GatedDeltaNet(layer) => layer,
        Mixer::Mamba2(_) => panic!("the fixture's layer {l} is Gated DeltaNet"),
    }
}

/// Layer `l`'s state in a model state.
fn gdn_state(state: &ModelState, l: usize) -> &GatedDeltaNetState {
    match &state.layers[l] {
        LayerState::GatedDeltaNet(s) => s,
        LayerState::Mamba2(_) => panic!("layer {l}'s state is Gated DeltaNet's"),
    }
}

/// An .npy file (f32, f64 or i64) as float64.
fn read_npy(reader: impl Read) -> Array {
    let file = npyz::NpyFile::new(reader).unwrap();
    let shape = file.shape().iter().map(|&d| d as usize).collect();
    let values = match file.dtype().descr().trim_matches('\'') {
        "<f8" => file.into_vec::<f64>().unwrap(),
        "<f4" => file
            .into_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
        "<i8" => file
            .into_vec::<i64>()
            .unwrap()
            .into_iter()
            .map(|v| v as f64)
            .collect(),
        other => panic!("unexpected dtype {other}"),
    };
    Array { shape, values }
}

fn npy(name: &str) -> Array {
    read_npy(std::fs::File::open(fixture_dir().join(name)).unwrap())
}

/// The members of an uncompressed (numpy `savez`) .npz archive, read from its local file
/// headers (zip64 sizes included), by name without `.npy`.
fn npz(name: &str) -> HashMap<String, Array> {
    let bytes = std::fs::read(fixture_dir().join(name)).unwrap();
    let u16_at = |i: usize| u16::from_le_bytes(bytes[i..i + 2].try_into().unwrap()) as usize;
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as u64;
    let mut members = HashMap::new();
    let mut at = 0;
    while u32_at(at) == 0x0403_4b50 {
        assert_eq!(u16_at(at + 8), 0, "npz member not stored uncompressed");
        let mut size = u32_at(at + 18);
        let (name_len, extra_len) = (u16_at(at + 26), u16_at(at + 28));
        let name = std::str::from_utf8(&bytes[at + 30..at + 30 + name_len]).unwrap();
        let extra = at + 30 + name_len;
        if size == 0xffff_ffff {
            // zip64 extended information: id 1, then uncompressed and compressed sizes.
            let mut field = extra;
            while u16_at(field) != 1 {
                field += 4 + u16_at(field + 2);
            }
            size = u64::from_le_bytes(bytes[field + 12..field + 20].try_into().unwrap());
        }
        let data = extra + extra_len;
        let end = data + size as usize;
        let key = name.trim_end_matches(".npy").to_string();
        members.insert(key, read_npy(&bytes[data..end]));
        at = end;
    }
    assert!(!members.is_empty(), "{name}: no members read");
    members
}

fn tensor<const D: usize>(array: &Array, device: &Device) -> Tensor<D> {
    let values: Vec<f32> = array.values.iter().map(|&v| v as f32).collect();
    let shape: [usize; D] = array.shape.clone().try_into().unwrap();
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn array<const D: usize>(t: Tensor<D>) -> Array {
    let data = t.into_data();
    Array {
        shape: data.shape().to_vec(),
        values: data
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
    }
}

fn input_ids(device: &Device) -> Tensor<2, Int> {
    let ids = npy("input_ids.npy");
    let values: Vec<i64> = ids.values.iter().map(|&v| v as i64).collect();
    Tensor::from_data(
        TensorData::new(values, [ids.shape[0], ids.shape[1]]),
        device,
    )
}

fn max_diff(got: &Array, want: &Array, what: &str) -> f64 {
    assert_eq!(got.shape, want.shape, "{what}: shape");
    got.values
        .iter()
        .zip(&want.values)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

/// Asserts `got` within `tol` of `want`; returns the max |diff|.
fn check(got: &Array, want: &Array, tol: f64, what: &str) -> f64 {
    let diff = max_diff(got, want, what);
    assert!(diff <= tol, "{what}: max |diff| {diff:e} > {tol:e}");
    diff
}

const TOL: f64 = 1e-4;

/// How a sequence is run through a layer or model.
#[derive(Debug, Clone, Copy)]
enum Run {
    /// One chunked pass with this chunk size.
    Chunked(usize),
    /// Token by token with the recurrent rule.
    Recurrent,
    /// Chunked segments of this many tokens (chunk 5), carrying the state.
    Streaming(usize),
}

const RUNS: [Run; 5] = [
    Run::Chunked(16),
    Run::Chunked(64),
    Run::Chunked(7),
    Run::Recurrent,
    Run::Streaming(13),
];

impl Run {
    fn chunk(self) -> usize {
        match self {
            Run::Chunked(chunk) => chunk,
            Run::Recurrent | Run::Streaming(_) => 5,
        }
    }

    /// Segments `(start, len, mode)` covering `len` tokens.
    fn segments(self, len: usize) -> Vec<(usize, usize, DeltaMode)> {
        let cut = |size: usize, mode| -> Vec<(usize, usize, DeltaMode)> {
            (0..len)
                .step_by(size)
                .map(|start| (start, size.min(len - start), mode))
                .collect()
        };
        match self {
            Run::Chunked(_) => vec![(0, len, DeltaMode::Chunked)],
            Run::Recurrent => cut(1, DeltaMode::Recurrent),
            Run::Streaming(size) => cut(size, DeltaMode::Chunked),
        }
    }
}

/// Runs a layer over `x_bld` from the zero state as `run` says.
fn run_layer(
    layer: &GatedDeltaNet,
    x_bld: Tensor<3>,
    run: Run,
) -> (GatedDeltaNetTrace, GatedDeltaNetState) {
    let [batch, len, _] = x_bld.dims();
    let mut state = GatedDeltaNetState::zeros(&layer.dims, batch, &x_bld.device());
    let mut traces = Vec::new();
    for (start, size, mode) in run.segments(len) {
        let (_, next, trace) =
            layer.forward_with(x_bld.clone().narrow(1, start, size), state, &hooks(), mode);
        state = next;
        traces.push(trace);
    }
    (GatedDeltaNetTrace::concat(traces), state)
}

/// The fixture's [.., C, 4] conv state (newest last) as forgetlab's [.., 3, C] cache.
fn conv_cache(conv: &Array) -> Array {
    let (batch, channels, width) = (conv.shape[0], conv.shape[1], conv.shape[2]);
    let mut values = Vec::new();
    for b in 0..batch {
        for j in 1..width {
            for c in 0..channels {
                values.push(conv.values[(b * channels + c) * width + j]);
            }
        }
    }
    Array {
        shape: vec![batch, width - 1, channels],
        values,
    }
}

/// Layer `l`'s final delta-rule state from final_state_f32.npy ([layer, B, H, V, K]).
fn final_state(all: &Array, l: usize) -> Array {
    let per_layer: usize = all.shape[1..].iter().product();
    Array {
        shape: all.shape[1..].to_vec(),
        values: all.values[l * per_layer..(l + 1) * per_layer].to_vec(),
    }
}

/// Checks layer `l`'s final delta-rule state and conv caches against the fixture; returns the
/// max |diff|.
fn check_state(state: &GatedDeltaNetState, l: usize, what: &str) -> f64 {
    let reference = npz("intermediates_f64.npz");
    let mut worst = check(
        &array(state.state_bhvk.clone()),
        &final_state(&npy("final_state_f32.npy"), l),
        TOL,
        &format!("{what}: layer {l} final state"),
    );
    for (name, cache) in [
        ("q", &state.conv_q_bkc),
        ("k", &state.conv_k_bkc),
        ("v", &state.conv_v_bkc),
    ] {
        let want = conv_cache(&reference[&format!("l{l}.conv_state_{name}")]);
        let what = format!("{what}: layer {l} conv cache {name}");
        worst = worst.max(check(&array(cache.clone()), &want, TOL, &what));
    }
    worst
}

#[test]
fn layers_match_the_fixture_in_every_mode() {
    let dev = cpu();
    let reference = npz("intermediates_f64.npz");
    for run in RUNS {
        let model = model(run.chunk(), &dev);
        let mut worst = 0f64;
        for l in 0..2 {
            let want = |name: &str| reference[&format!("l{l}.{name}")].clone();
            let (trace, state) = run_layer(gdn(&model, l), tensor(&want("attn_in"), &dev), run);
            let what = |name: &str| format!("{run:?} layer {l} {name}");
            let got = [
                ("q", array(trace.q_blhk)),
                ("k", array(trace.k_blhk)),
                ("v", array(trace.v_blhv)),
                ("g", array(trace.g_blh)),
                ("beta", array(trace.beta_blh)),
                ("o", array(trace.o_blhv)),
                ("attn_out", array(trace.out_bld)),
            ];
            for (name, got) in &got {
                worst = worst.max(check(got, &want(name), TOL, &what(name)));
            }
            worst = worst.max(check_state(&state, l, &format!("{run:?}")));
        }
        println!("{run:?}: layer intermediates and states, max |diff| {worst:.2e}");
    }
}

/// `step` is the recurrent mode one token at a time.
#[test]
fn step_equals_the_recurrent_mode() {
    let dev = cpu();
    let reference = npz("intermediates_f64.npz");
    let model = model(16, &dev);
    let layer = gdn(&model, 1);
    let x_bld: Tensor<3> = tensor(&reference["l1.attn_in"], &dev);
    let [batch, len, _] = x_bld.dims();
    let mut state = GatedDeltaNetState::zeros(&layer.dims, batch, &dev);
    let mut outs = Vec::new();
    for t in 0..len {
        let x_bd = x_bld.clone().narrow(1, t, 1).squeeze_dim::<2>(1);
        let (out, next) = layer.step(x_bd, state, &hooks());
        state = next;
        outs.push(out.unsqueeze_dim::<3>(1));
    }
    let diff = check(
        &array(Tensor::cat(outs, 1)),
        &reference["l1.attn_out"],
        TOL,
        "step attn_out",
    );
    println!("step: attn_out max |diff| {diff:.2e}");
}

/// Every parameter's gradient in `grads`, in the module's visiting order.
fn flat_grads<M: Module>(module: &M, grads: &GradientsParams) -> Vec<Vec<f32>> {
    struct Collect<'a>(&'a GradientsParams, Vec<Vec<f32>>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let grad = self
                .0
                .get::<D>(param.id)
                .expect("every parameter has a gradient");
            self.1.push(grad.into_data().try_into_vec::<f32>().unwrap());
        }
    }
    let mut collect = Collect(grads, Vec::new());
    module.visit(&mut collect);
    collect.1
}

/// Seeded values in [-1, 1).
fn noise<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let count = shape.iter().product();
    let values: Vec<f32> = (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Relative max difference: max |a − b| / max |b|.
fn relative(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn grad_values<const D: usize>(t: &Tensor<D>, grads: &burn::tensor::Gradients) -> Vec<f32> {
    t.grad(grads)
        .expect("a gradient")
        .into_data()
        .try_into_vec::<f32>()
        .unwrap()
}

/// d(loss)/d(every parameter, the input and the initial state) through the chunked path
/// equals the gradient through the token-by-token recurrent path, for a loss that weights
/// every output and the final state.
#[test]
fn chunked_gradients_equal_recurrent_gradients() {
    let dev = Device::flex().autodiff();
    let reference = npz("intermediates_f64.npz");
    let mut worst = 0f32;
    for (l, chunk) in [(0, 16), (1, 7)] {
        let model = model(chunk, &dev);
        let layer = gdn(&model, l);
        let x_bld: Tensor<3> = tensor(&reference[&format!("l{l}.attn_in")], &dev);
        let [batch, len, d_model] = x_bld.dims();
        let zeros = GatedDeltaNetState::zeros(&layer.dims, batch, &dev);
        // A non-zero initial state, so its gradient and its effect are tested too.
        let init = GatedDeltaNetState {
            conv_q_bkc: noise(zeros.conv_q_bkc.dims(), 11, &dev),
            conv_k_bkc: noise(zeros.conv_k_bkc.dims(), 12, &dev),
            conv_v_bkc: noise(zeros.conv_v_bkc.dims(), 13, &dev),
            state_bhvk: noise(zeros.state_bhvk.dims(), 14, &dev) * 0.3,
        };
        let out_weight = noise([batch, len, d_model], 21, &dev);
        let state_weight = noise(init.state_bhvk.dims(), 22, &dev);
        let gradients = |chunked: bool| {
            let x_bld = x_bld.clone().require_grad();
            let init = GatedDeltaNetState {
                conv_q_bkc: init.conv_q_bkc.clone().require_grad(),
                conv_k_bkc: init.conv_k_bkc.clone().require_grad(),
                conv_v_bkc: init.conv_v_bkc.clone().require_grad(),
                state_bhvk: init.state_bhvk.clone().require_grad(),
            };
            let (out_bld, last) = if chunked {
                layer.forward(x_bld.clone(), init.clone(), &hooks())
            } else {
                let mut state = init.clone();
                let mut outs = Vec::new();
                for t in 0..len {
                    let x_bd = x_bld.clone().narrow(1, t, 1).squeeze_dim::<2>(1);
                    let (out, next) = layer.step(x_bd, state, &hooks());
                    state = next;
                    outs.push(out.unsqueeze_dim::<3>(1));
                }
                (Tensor::cat(outs, 1), state)
            };
            let loss = (out_bld * out_weight.clone()).sum()
                + (last.state_bhvk * state_weight.clone()).sum()
                + last.conv_v_bkc.sum();
            let grads = loss.backward();
            let mut all = vec![
                grad_values(&x_bld, &grads),
                grad_values(&init.conv_q_bkc, &grads),
                grad_values(&init.conv_k_bkc, &grads),
                grad_values(&init.conv_v_bkc, &grads),
                grad_values(&init.state_bhvk, &grads),
            ];
            all.extend(flat_grads(
                layer,
                &GradientsParams::from_grads(grads, layer),
            ));
            all
        };
        let (chunked, recurrent) = (gradients(true), gradients(false));
        assert_eq!(
            chunked.len(),
            5 + 13,
            "every parameter and input has a gradient"
        );
        for (i, (c, r)) in chunked.iter().zip(&recurrent).enumerate() {
            assert!(
                r.iter().any(|v| *v != 0.0),
                "layer {l} gradient {i} is zero"
            );
            let diff = relative(c, r);
            assert!(
                diff <= 1e-4,
                "layer {l} gradient {i}: relative diff {diff:e}"
            );
            worst = worst.max(diff);
        }
    }
    println!("gradients chunked vs recurrent: max relative diff {worst:.2e}");
}

/// Runs the whole model over `ids_bl` from the zero state as `run` says: `forward`, `step`
/// token by token, or `forward_streaming`.
fn run_model(model: &Model, ids_bl: Tensor<2, Int>, run: Run) -> (Tensor<3>, ModelState) {
    let [batch, len] = ids_bl.dims();
    match run {
        Run::Chunked(_) => model.forward(ids_bl, None, &hooks()),
        Run::Recurrent => {
            let mut state = model.zero_state(batch);
            let mut logits = Vec::new();
            for t in 0..len {
                let ids_b = ids_bl.clone().narrow(1, t, 1).reshape([batch]);
                let (out, next) = model.step(ids_b, state, &hooks());
                state = next;
                logits.push(out.unsqueeze_dim::<3>(1));
            }
            (Tensor::cat(logits, 1), state)
        }
        Run::Streaming(segment) => {
            let mut logits = Vec::new();
            let state = model.forward_streaming(ids_bl, segment, None, &hooks(), |start, out| {
                assert_eq!(start, logits.len() * segment, "segments arrive in order");
                logits.push(out);
            });
            (Tensor::cat(logits, 1), state)
        }
    }
}

#[test]
fn model_logits_and_states_match_in_every_mode() {
    let dev = cpu();
    let want = npy("logits.npy");
    for run in RUNS {
        let model = model(run.chunk(), &dev);
        let (logits, last) = run_model(&model, input_ids(&dev), run);
        let diff = check(&array(logits), &want, TOL, &format!("{run:?} logits"));
        assert_eq!(last.tokens_seen, 40, "{run:?}");
        let mut state_diff = 0f64;
        for l in 0..2 {
            state_diff = state_diff.max(check_state(gdn_state(&last, l), l, &format!("{run:?}")));
        }
        println!("{run:?}: logits max |diff| {diff:.2e}, final states and caches {state_diff:.2e}");
    }
}

/// The residual stream after each block and the final norm, through `forward_traced`.
#[test]
fn traced_block_outputs_match() {
    let dev = cpu();
    let reference = npz("intermediates_f64.npz");
    let model = model(16, &dev);
    let (_, _, trace) = model.forward_traced(input_ids(&dev), None, &hooks());
    let mut worst = 0f64;
    for (l, out) in trace.block_outputs.into_iter().enumerate() {
        let what = format!("block {l} output");
        worst = worst.max(check(
            &array(out),
            &reference[&format!("l{l}.out")],
            TOL,
            &what,
        ));
    }
    let normed = array(trace.norm_f_bld.unwrap());
    worst = worst.max(check(&normed, &reference["final_norm"], TOL, "final norm"));
    println!("traced: block outputs and final norm max |diff| {worst:.2e}");
}

/// Each parameter of the fixture matters to the logits test: scaling any one of them by 1.05
/// moves the logits by more than the tolerance.
#[test]
fn perturbing_any_parameter_breaks_the_logits() {
    let dev = cpu();
    let want = npy("logits.npy");
    let weights = fixture_weights();
    assert_eq!(
        weights.tensors.len(),
        2 * 18 + 3,
        "every fixture tensor is perturbed"
    );
    for name in weights.tensors.keys() {
        let mut perturbed = weights.clone();
        for v in perturbed.tensors.get_mut(name).unwrap().data.iter_mut() {
            *v *= 1.05;
        }
        let model = perturbed.into_model(&config(16), &dev, name).unwrap();
        let (logits, _) = model.forward(input_ids(&dev), None, &hooks());
        let diff = max_diff(&array(logits), &want, name);
        assert!(
            diff > 10.0 * TOL,
            "{name} x 1.05 moves the logits only {diff:e}"
        );
    }
}

/// `save_fla` writes exactly the fixture's tensors, fla's config keys with the fixture's values,
/// and loads back to the same weights bit for bit.
#[test]
fn fla_layout_round_trips() {
    let dev = cpu();
    let (model, flavor) = checkpoint::load(&fixture_dir(), &dev).unwrap();
    assert_eq!(flavor, Flavor::Fla);
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save_fla(&model, dir.path()).unwrap();

    let saved = checkpoint::read_weights(&dir.path().join("model.safetensors")).unwrap();
    assert_eq!(
        saved,
        fixture_weights(),
        "saved tensors = the fixture's, names and bits"
    );
    let (again, flavor) = checkpoint::load(dir.path(), &dev).unwrap();
    assert_eq!(flavor, Flavor::Fla);
    assert_eq!(again.config(), model.config());
    assert_eq!(Weights::from_model(&again), Weights::from_model(&model));

    let read = |path: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path.join("config.json")).unwrap()).unwrap()
    };
    let (written, original) = (read(dir.path()), read(&fixture_dir()));
    assert_eq!(written["model_type"], "gated_deltanet");
    for key in [
        "architectures",
        "hidden_size",
        "num_hidden_layers",
        "vocab_size",
        "num_heads",
        "head_dim",
        "expand_v",
        "conv_size",
        "intermediate_size",
        "norm_eps",
        "tie_word_embeddings",
        "use_gate",
        "use_short_conv",
        "allow_neg_eigval",
        "hidden_act",
        "num_v_heads",
        "attn",
    ] {
        assert_eq!(written[key], original[key], "config.json {key}");
    }
}

/// forgetlab's own format keeps the mixer, its sizes and every weight.
#[test]
fn forgetlab_format_round_trips() {
    let dev = cpu();
    let model = model(16, &dev);
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(&model, dir.path()).unwrap();
    let (again, flavor) = checkpoint::load(dir.path(), &dev).unwrap();
    assert_eq!(flavor, Flavor::Forgetlab);
    assert_eq!(again.config(), model.config());
    assert_eq!(Weights::from_model(&again), Weights::from_model(&model));
    let logits = |m: &Model| array(m.forward(input_ids(&dev), None, &hooks()).0);
    assert_eq!(logits(&again).values, logits(&model).values);
}

/// A weights file with a tensor missing and another misshaped is refused, naming both.
#[test]
fn missing_and_misshaped_tensors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let mut weights = fixture_weights();
    weights.tensors.remove("model.layers.1.attn.A_log").unwrap();
    weights
        .tensors
        .get_mut("model.layers.0.attn.o_norm.weight")
        .unwrap()
        .shape = vec![4, 8];
    std::fs::write(
        dir.path().join("model.safetensors"),
        checkpoint::to_safetensors(&weights).unwrap(),
    )
    .unwrap();
    let error = checkpoint::load(dir.path(), &cpu()).unwrap_err();
    let ModelError::TensorMismatch {
        missing, misshaped, ..
    } = &error
    else {
        panic!("expected a tensor mismatch, got {error}");
    };
    assert_eq!(missing, &["model.layers.1.attn.A_log"]);
    assert_eq!(
        misshaped,
        &["model.layers.0.attn.o_norm.weight: expected [32], found [4, 8]"]
    );
    let message = error.to_string();
    assert!(message.contains("model.safetensors"), "{message}");
    assert!(message.contains("model.layers.1.attn.A_log"), "{message}");
}

fn tiny_config() -> ModelConfig {
    let sizes = GatedDeltaNetConfig {
        heads: 2,
        head_k_dim: 8,
        expand_v: 2.0,
        intermediate_size: Some(32),
    };
    let mut config = ModelConfig::gated_deltanet(32, 2, 64, sizes);
    config.chunk_size = 8;
    config
}

/// `Model::init` of a Gated DeltaNet config fills every row of the table, the same for the
/// same seed and differently for another.
#[test]
fn seeded_init_is_deterministic() {
    let dev = cpu();
    let config = tiny_config();
    let weights = |seed| Weights::from_model(&Model::init(&config, seed, &dev).unwrap());
    let first = weights(7);
    assert_eq!(first, weights(7), "same seed, same weights");
    let other = weights(8);
    for (name, tensor) in &first.tensors {
        let varies = tensor.data.iter().any(|v| *v != tensor.data[0]);
        if varies {
            assert_ne!(tensor, &other.tensors[name], "{name}: another seed");
        }
    }
    let names: Vec<_> = forgetlab_model::weights::expected_shapes(&config)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(first.tensors.keys().cloned().collect::<Vec<_>>(), {
        let mut sorted = names;
        sorted.sort();
        sorted
    });
    assert_eq!(
        first
            .tensors
            .values()
            .map(|t| t.data.len() as u64)
            .sum::<u64>(),
        config.param_count()
    );
}

/// A freshly initialised model trains: AdamW on one fixed batch drives the loss down, finite
/// all the way.
#[test]
fn seeded_init_trains() {
    let dev = Device::flex().autodiff();
    let config = tiny_config();
    let mut model = Model::init(&config, 3, &dev).unwrap();
    let ids: Vec<i64> = (0..2 * 33).map(|i| (i * 7 % 64) as i64).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [2, 33]), &dev);
    let (inputs, targets) = (ids.clone().narrow(1, 0, 32), ids.narrow(1, 1, 32));
    let mut optimizer = AdamWConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..30 {
        let (loss, _) =
            model.forward_loss(inputs.clone(), targets.clone(), None, &hooks(), 1.0 / 64.0);
        losses.push(loss.value.into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.surrogate.backward(), &model);
        model = optimizer.step(1e-2, model, grads);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(
        (first - (64f32).ln()).abs() < 0.5,
        "starts near ln(vocab): {first}"
    );
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    println!("seeded init trains: loss {first:.3} -> {last:.3}");
}
