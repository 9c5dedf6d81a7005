//! forgetlab's Gated DeltaNet layer against an independent float64 implementation of fla
//! 0.6.0's maths (fixture in tests/fixtures/gated-deltanet-tiny): per-layer intermediates,
//! final states and, through a test-only model assembly, logits, in chunked, recurrent and
//! streaming modes; gradients of the chunked path against the recurrent one; fla-layout
//! import and export.
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
use burn::optim::GradientsParams;
use burn::prelude::*;
use forgetlab_model::gated_deltanet::{
    DeltaMode, GatedDeltaNet, GatedDeltaNetDims, GatedDeltaNetState, GatedDeltaNetTrace, Mlp,
};

type Named = HashMap<String, (Vec<usize>, Vec<f32>)>;

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

/// The fixture's float32 parameters, by fla name.
fn parameters() -> Named {
    let bytes = std::fs::read(fixture_dir().join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name.to_string(), (view.shape().to_vec(), values))
        })
        .collect()
}

fn config() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture_dir().join("config.json")).unwrap()).unwrap()
}

/// The layer sizes from fla's config.json.
fn dims(chunk_size: usize) -> GatedDeltaNetDims {
    let c = config();
    let get = |key: &str| c[key].as_f64().unwrap_or_else(|| panic!("config {key}"));
    let head_k_dim = get("head_dim") as usize;
    GatedDeltaNetDims {
        d_model: get("hidden_size") as usize,
        heads: get("num_heads") as usize,
        head_k_dim,
        head_v_dim: (head_k_dim as f64 * get("expand_v")) as usize,
        conv_size: get("conv_size") as usize,
        chunk_size,
        norm_eps: get("norm_eps"),
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

/// Layer `l` of the fixture, from its fla names.
fn layer(params: &Named, l: usize, chunk_size: usize, device: &Device) -> GatedDeltaNet {
    let prefix = format!("model.layers.{l}.attn.");
    GatedDeltaNet::from_tensors(
        dims(chunk_size),
        |suffix| params.get(&format!("{prefix}{suffix}")).cloned(),
        device,
    )
    .unwrap()
}

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
            layer.forward_with(x_bld.clone().narrow(1, start, size), state, mode);
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

#[test]
fn layers_match_the_fixture_in_every_mode() {
    let dev = cpu();
    let params = parameters();
    let reference = npz("intermediates_f64.npz");
    let states = npy("final_state_f32.npy");
    for run in RUNS {
        let mut worst = 0f64;
        for l in 0..2 {
            let layer = layer(&params, l, run.chunk(), &dev);
            let want = |name: &str| reference[&format!("l{l}.{name}")].clone();
            let (trace, state) = run_layer(&layer, tensor(&want("attn_in"), &dev), run);
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
            worst = worst.max(check(
                &array(state.state_bhvk),
                &final_state(&states, l),
                TOL,
                &what("final state"),
            ));
            for (name, cache) in [
                ("q", state.conv_q_bkc),
                ("k", state.conv_k_bkc),
                ("v", state.conv_v_bkc),
            ] {
                let want = conv_cache(&want(&format!("conv_state_{name}")));
                worst = worst.max(check(&array(cache), &want, TOL, &what("conv cache")));
            }
        }
        println!("{run:?}: layer intermediates and states, max |diff| {worst:.2e}");
    }
}

/// `step` is the recurrent mode one token at a time.
#[test]
fn step_equals_the_recurrent_mode() {
    let dev = cpu();
    let params = parameters();
    let reference = npz("intermediates_f64.npz");
    let layer = layer(&params, 1, 16, &dev);
    let x_bld: Tensor<3> = tensor(&reference["l1.attn_in"], &dev);
    let [batch, len, _] = x_bld.dims();
    let mut state = GatedDeltaNetState::zeros(&layer.dims, batch, &dev);
    let mut outs = Vec::new();
    for t in 0..len {
        let x_bd = x_bld.clone().narrow(1, t, 1).squeeze_dim::<2>(1);
        let (out, next) = layer.step(x_bd, state);
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

/// d(loss)/d(every parameter, the input and the initial state) through the chunked path
/// equals the gradient through the token-by-token recurrent path, for a loss that weights
/// every output and the final state.
#[test]
fn chunked_gradients_equal_recurrent_gradients() {
    let dev = Device::flex().autodiff();
    let params = parameters();
    let reference = npz("intermediates_f64.npz");
    let mut worst = 0f32;
    for (l, chunk) in [(0, 16), (1, 7)] {
        let layer = layer(&params, l, chunk, &dev);
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
                layer.forward(x_bld.clone(), init.clone())
            } else {
                let mut state = init.clone();
                let mut outs = Vec::new();
                for t in 0..len {
                    let (out, next) =
                        layer.step(x_bld.clone().narrow(1, t, 1).squeeze_dim::<2>(1), state);
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
                x_bld
                    .grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_into_vec::<f32>()
                    .unwrap(),
                init.conv_q_bkc
                    .grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_into_vec()
                    .unwrap(),
                init.conv_k_bkc
                    .grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_into_vec()
                    .unwrap(),
                init.conv_v_bkc
                    .grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_into_vec()
                    .unwrap(),
                init.state_bhvk
                    .grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_into_vec()
                    .unwrap(),
            ];
            all.extend(flat_grads(
                &layer,
                &GradientsParams::from_grads(grads, &layer),
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

#[test]
fn parameters_round_trip_in_fla_layout() {
    let dev = cpu();
    let params = parameters();
    for l in 0..2 {
        let attn = format!("model.layers.{l}.attn.");
        for named in layer(&params, l, 16, &dev).to_tensors() {
            let (shape, values) = &params[&format!("{attn}{}", named.name)];
            assert_eq!(&named.shape, shape, "{}", named.name);
            assert_eq!(&named.values, values, "{}: values", named.name);
        }
        let mlp = format!("model.layers.{l}.mlp.");
        let hidden = config()["intermediate_size"].as_u64().unwrap() as usize;
        let block = Mlp::from_tensors(
            48,
            hidden,
            |s| params.get(&format!("{mlp}{s}")).cloned(),
            &dev,
        )
        .unwrap();
        for named in block.to_tensors() {
            assert_eq!(params[&format!("{mlp}{}", named.name)].1, named.values);
        }
    }
    // Every attn tensor of the fixture is read.
    let read = layer(&params, 0, 16, &dev).to_tensors().len();
    let stored = params
        .keys()
        .filter(|k| k.starts_with("model.layers.0.attn."))
        .count();
    assert_eq!(read, stored);
}

#[test]
fn missing_and_misshaped_tensors_are_named() {
    let params = parameters();
    let error = GatedDeltaNet::from_tensors(
        dims(16),
        |suffix| match suffix {
            "A_log" => None,
            "o_norm.weight" => Some((vec![31], vec![0.0; 31])),
            _ => params
                .get(&format!("model.layers.0.attn.{suffix}"))
                .cloned(),
        },
        &cpu(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("missing (1): A_log"), "{error}");
    assert!(
        error.contains("o_norm.weight [31] (expected [32])"),
        "{error}"
    );
}

/// The fixture's whole model, assembled here from the layer and MLP (the model-level seam is
/// built elsewhere): embedding → 2 × (attn_norm → layer → residual, mlp_norm → MLP →
/// residual) → norm → untied lm_head.
struct TinyModel {
    embeddings_vd: Tensor<2>,
    blocks: Vec<(Tensor<1>, GatedDeltaNet, Tensor<1>, Mlp)>,
    norm: Tensor<1>,
    lm_head_dv: Tensor<2>,
    eps: f64,
}

impl TinyModel {
    fn new(params: &Named, chunk: usize, device: &Device) -> Self {
        let t1 = |name: &str| -> Tensor<1> {
            let (shape, values) = &params[name];
            Tensor::from_data(TensorData::new(values.clone(), [shape[0]]), device)
        };
        let t2 = |name: &str| -> Tensor<2> {
            let (shape, values) = &params[name];
            Tensor::from_data(
                TensorData::new(values.clone(), [shape[0], shape[1]]),
                device,
            )
        };
        let hidden = config()["intermediate_size"].as_u64().unwrap() as usize;
        let blocks = (0..2)
            .map(|l| {
                let mlp = format!("model.layers.{l}.mlp.");
                (
                    t1(&format!("model.layers.{l}.attn_norm.weight")),
                    layer(params, l, chunk, device),
                    t1(&format!("model.layers.{l}.mlp_norm.weight")),
                    Mlp::from_tensors(
                        48,
                        hidden,
                        |s| params.get(&format!("{mlp}{s}")).cloned(),
                        device,
                    )
                    .unwrap(),
                )
            })
            .collect();
        Self {
            embeddings_vd: t2("model.embeddings.weight"),
            blocks,
            norm: t1("model.norm.weight"),
            lm_head_dv: t2("lm_head.weight").transpose(),
            eps: config()["norm_eps"].as_f64().unwrap(),
        }
    }

    fn rms_norm(&self, x: Tensor<3>, weight: &Tensor<1>) -> Tensor<3> {
        let d = weight.dims()[0];
        forgetlab_model::gated_deltanet::layer::rms_normalize(x, self.eps)
            * weight.clone().reshape([1, 1, d])
    }

    /// Logits for a segment of ids, continuing from `states` (one per layer).
    fn forward(
        &self,
        ids_bl: Tensor<2, Int>,
        states: Vec<GatedDeltaNetState>,
        mode: DeltaMode,
    ) -> (Tensor<3>, Vec<GatedDeltaNetState>) {
        let [batch, len] = ids_bl.dims();
        let d = self.embeddings_vd.dims()[1];
        let mut h = self
            .embeddings_vd
            .clone()
            .select(0, ids_bl.reshape([batch * len]))
            .reshape([batch, len, d]);
        let mut next = Vec::new();
        for ((attn_norm, layer, mlp_norm, mlp), state) in self.blocks.iter().zip(states) {
            let (out, state, _) =
                layer.forward_with(self.rms_norm(h.clone(), attn_norm), state, mode);
            h = h + out;
            h = h.clone() + mlp.forward(self.rms_norm(h, mlp_norm));
            next.push(state);
        }
        let logits = self
            .rms_norm(h, &self.norm)
            .matmul(self.lm_head_dv.clone().unsqueeze());
        (logits, next)
    }

    fn run(&self, ids_bl: Tensor<2, Int>, run: Run) -> (Tensor<3>, Vec<GatedDeltaNetState>) {
        let [batch, len] = ids_bl.dims();
        let device = ids_bl.device();
        let mut states = (0..2)
            .map(|_| GatedDeltaNetState::zeros(&self.blocks[0].1.dims, batch, &device))
            .collect();
        let mut logits = Vec::new();
        for (start, size, mode) in run.segments(len) {
            let (out, next) = self.forward(ids_bl.clone().narrow(1, start, size), states, mode);
            states = next;
            logits.push(out);
        }
        (Tensor::cat(logits, 1), states)
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

#[test]
fn assembled_model_logits_match_in_every_mode() {
    let dev = cpu();
    let params = parameters();
    let want = npy("logits.npy");
    let states = npy("final_state_f32.npy");
    for run in RUNS {
        let model = TinyModel::new(&params, run.chunk(), &dev);
        let (logits, last) = model.run(input_ids(&dev), run);
        let diff = check(&array(logits), &want, TOL, &format!("{run:?} logits"));
        let mut state_diff = 0f64;
        for (l, state) in last.into_iter().enumerate() {
            state_diff = state_diff.max(check(
                &array(state.state_bhvk),
                &final_state(&states, l),
                TOL,
                &format!("{run:?} final state {l}"),
            ));
        }
        println!("{run:?}: logits max |diff| {diff:.2e}, final states {state_diff:.2e}");
    }
}

/// Each parameter of the fixture matters to the logits test: scaling any one of them by 1.05
/// moves the logits by more than the tolerance.
#[test]
fn perturbing_any_parameter_breaks_the_logits() {
    let dev = cpu();
    let params = parameters();
    let want = npy("logits.npy");
    let mut names: Vec<&String> = params.keys().collect();
    names.sort();
    for name in names {
        let mut perturbed = params.clone();
        for v in perturbed.get_mut(name).unwrap().1.iter_mut() {
            *v *= 1.05;
        }
        let model = TinyModel::new(&perturbed, 16, &dev);
        let (logits, _) = model.run(input_ids(&dev), Run::Chunked(16));
        let diff = max_diff(&array(logits), &want, name);
        assert!(
            diff > 10.0 * TOL,
            "{name} x 1.05 moves the logits only {diff:e}"
        );
    }
}
