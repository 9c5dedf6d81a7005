//! forgetlab's Mamba-2 against an independent implementation (Hugging Face transformers'
//! pure-PyTorch Mamba2, fixtures in tests/fixtures/mamba2-hf-tiny): logits, intermediates,
//! final states, gradients, every forward path, and both checkpoint namings.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use forgetlab_model::checkpoint::{self, Flavor};
use forgetlab_model::{LayerState, LayerTrace, Model, ModelState, ScanHooks, Weights};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mamba2-hf-tiny")
}

fn cpu() -> Device {
    Device::flex()
}

/// A safetensors file as (shape, f32 values), any float dtype, ints converted.
fn read_io(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.iter()
        .map(|(name, view)| {
            let raw = view.data();
            let values: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                safetensors::Dtype::I64 => raw
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (name.to_string(), (view.shape().to_vec(), values))
        })
        .collect()
}

fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let file = npyz::NpyFile::new(std::fs::File::open(path).unwrap()).unwrap();
    let shape = file.shape().iter().map(|&d| d as usize).collect();
    (shape, file.into_vec::<f32>().unwrap())
}

fn input_ids(device: &Device) -> Tensor<2, Int> {
    let file =
        npyz::NpyFile::new(std::fs::File::open(fixture_dir().join("input_ids.npy")).unwrap())
            .unwrap();
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    let ids: Vec<i64> = file.into_vec().unwrap();
    Tensor::from_data(TensorData::new(ids, [shape[0], shape[1]]), device)
}

fn load(device: &Device) -> Model {
    let (model, flavor) = checkpoint::load(&fixture_dir(), device).unwrap();
    assert_eq!(flavor, Flavor::HuggingFace);
    model
}

fn values<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let data = t.into_data();
    (
        data.shape().to_vec(),
        data.convert::<f32>().try_to_vec().unwrap(),
    )
}

/// Max absolute difference; panics on shape mismatch.
fn max_diff(got: &(Vec<usize>, Vec<f32>), want: &(Vec<usize>, Vec<f32>), what: &str) -> f32 {
    assert_eq!(got.0, want.0, "{what}: shape");
    got.1
        .iter()
        .zip(&want.1)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn assert_within(got: (Vec<usize>, Vec<f32>), want: &(Vec<usize>, Vec<f32>), tol: f32, what: &str) {
    let diff = max_diff(&got, want, what);
    assert!(diff <= tol, "{what}: max |diff| {diff} > {tol}");
}

#[test]
fn chunked_logits_match_transformers() {
    let dev = cpu();
    let model = load(&dev);
    let (logits, _) = model.forward(input_ids(&dev), None, &ScanHooks::default());
    let want = read_npy_f32(&fixture_dir().join("logits.npy"));
    assert_within(values(logits), &want, 1e-4, "logits vs logits.npy");
}

#[test]
fn intermediates_and_final_states_match_transformers() {
    let dev = cpu();
    let model = load(&dev);
    let io = read_io(&fixture_dir().join("tiny_io.safetensors"));
    let (logits, state, trace) = model.forward_traced(input_ids(&dev), None, &ScanHooks::default());
    assert_within(values(logits), &io["logits"], 1e-4, "logits");
    assert_within(
        values(trace.embeddings_bld.unwrap()),
        &io["embeddings_out"],
        1e-5,
        "embeddings",
    );
    for (i, block) in trace.block_outputs.into_iter().enumerate() {
        assert_within(
            values(block),
            &io[&format!("block_out.{i}")],
            1e-4,
            &format!("block_out.{i}"),
        );
    }
    assert_within(
        values(trace.norm_f_bld.unwrap()),
        &io["norm_f_out"],
        1e-4,
        "norm_f_out",
    );
    let LayerTrace::Mamba2(l0) = &trace.layers[0] else {
        panic!("a Mamba-2 model's trace")
    };
    assert_within(
        values(l0.in_proj_bld.clone()),
        &io["l0.mixer.in_proj_out"],
        1e-4,
        "in_proj_out",
    );
    assert_within(
        values(l0.scan_y_bli.clone()),
        &io["l0.mixer.scan_out_y"],
        1e-4,
        "scan_out_y",
    );
    assert_within(
        values(l0.gate_z_bli.clone()),
        &io["l0.mixer.gate_z"],
        1e-4,
        "gate_z",
    );
    assert_within(
        values(l0.gated_norm_bli.clone()),
        &io["l0.mixer.gated_norm_out"],
        1e-4,
        "gated_norm_out",
    );
    assert_within(
        values(l0.out_bld.clone()),
        &io["l0.mixer.out_proj_out"],
        1e-4,
        "out_proj_out",
    );
    assert_states_match(&state, &io, "chunked");
}

/// The fixture stores the last d_conv (4) columns as (batch, conv_dim, 4); forgetlab keeps the
/// last d_conv - 1 as (batch, 3, conv_dim).
fn assert_states_match(
    state: &ModelState,
    io: &HashMap<String, (Vec<usize>, Vec<f32>)>,
    what: &str,
) {
    for (i, layer) in state.layers.iter().enumerate() {
        let LayerState::Mamba2(layer) = layer else {
            panic!("a Mamba-2 model's state")
        };
        assert_within(
            values(layer.ssm_bhpn.clone()),
            &io[&format!("final_state.{i}.ssm")],
            1e-4,
            &format!("{what}: ssm state {i}"),
        );
        let (shape, full) = &io[&format!("final_state.{i}.conv")];
        let (batch, channels, width) = (shape[0], shape[1], shape[2]);
        let mut last = Vec::with_capacity(batch * (width - 1) * channels);
        for b in 0..batch {
            for k in 1..width {
                for c in 0..channels {
                    last.push(full[(b * channels + c) * width + k]);
                }
            }
        }
        assert_within(
            values(layer.conv_bkc.clone()),
            &(vec![batch, width - 1, channels], last),
            1e-4,
            &format!("{what}: conv state {i}"),
        );
    }
}

#[test]
fn recurrent_and_streaming_equal_chunked() {
    let dev = cpu();
    let model = load(&dev);
    let ids = input_ids(&dev);
    let hooks = ScanHooks::default();
    let [batch, len] = ids.dims();
    let (chunked, _) = model.forward(ids.clone(), None, &hooks);
    let chunked = values(chunked);
    let io = read_io(&fixture_dir().join("tiny_io.safetensors"));
    assert_within(
        chunked.clone(),
        &io["logits_recurrent"],
        1e-4,
        "chunked vs HF recurrent",
    );

    // Token by token.
    let mut state = model.zero_state(batch);
    let mut steps = Vec::new();
    for t in 0..len {
        let column: Tensor<1, Int> = ids.clone().narrow(1, t, 1).reshape([batch]);
        let (logits, next) = model.step(column, state, &hooks);
        steps.push(logits.unsqueeze_dim::<3>(1));
        state = next;
    }
    assert_within(
        values(Tensor::cat(steps, 1)),
        &chunked,
        1e-4,
        "recurrent vs chunked",
    );
    assert_states_match(&state, &io, "recurrent");

    // Streaming with segment sizes that do not divide the length nor the chunk size (16).
    for segment in [1, 3, 7, 13, 37, 64, 100, 250] {
        let mut pieces = Vec::new();
        let state = model.forward_streaming(ids.clone(), segment, None, &hooks, |_, logits| {
            pieces.push(logits)
        });
        assert_within(
            values(Tensor::cat(pieces, 1)),
            &chunked,
            1e-4,
            &format!("streaming segment {segment}"),
        );
        assert_states_match(&state, &io, &format!("streaming segment {segment}"));
    }

    // Prefill 37 tokens chunked, then step the rest.
    let (prefill, mut state) = model.forward(ids.clone().narrow(1, 0, 37), None, &hooks);
    let mut pieces = vec![prefill];
    for t in 37..len {
        let column: Tensor<1, Int> = ids.clone().narrow(1, t, 1).reshape([batch]);
        let (logits, next) = model.step(column, state, &hooks);
        pieces.push(logits.unsqueeze_dim::<3>(1));
        state = next;
    }
    assert_within(
        values(Tensor::cat(pieces, 1)),
        &chunked,
        1e-4,
        "prefill + steps",
    );
}

/// Mean next-token cross-entropy of logits[:, :-1] against ids[:, 1:].
fn next_token_loss(logits: Tensor<3>, ids: Tensor<2, Int>) -> Tensor<1> {
    let [batch, len, vocab] = logits.dims();
    let pred = logits
        .narrow(1, 0, len - 1)
        .reshape([batch * (len - 1), vocab]);
    let target = ids.narrow(1, 1, len - 1).reshape([batch * (len - 1), 1]);
    log_softmax(pred, 1).gather(1, target).mean().neg()
}

#[test]
fn gradients_match_transformers() {
    let dev = cpu().autodiff();
    let model = load(&dev);
    let ids = input_ids(&dev);
    let (logits, _) = model.forward(ids.clone(), None, &ScanHooks::default());
    let loss = next_token_loss(logits, ids);
    assert_loss_matches(loss.clone().into_scalar());
    let grads = loss.backward();
    assert_gradients_match(Weights::from_grads(&model, &grads));
}

/// The trainer's loss path (hand-written head and cross-entropy) gives the same loss and
/// gradients.
#[test]
fn training_loss_path_matches_transformers_gradients() {
    let dev = cpu().autodiff();
    let model = load(&dev);
    let ids = input_ids(&dev);
    let [batch, len] = ids.dims();
    let inputs = ids.clone().narrow(1, 0, len - 1);
    let targets = ids.narrow(1, 1, len - 1);
    let scale = 1.0 / (batch * (len - 1)) as f32;
    let (loss, _) = model.forward_loss(inputs, targets, None, &ScanHooks::default(), scale);
    assert_loss_matches(loss.value.into_scalar());
    let grads = loss.surrogate.backward();
    assert_gradients_match(Weights::from_grads(&model, &grads));
}

fn assert_loss_matches(loss_value: f32) {
    let io = read_io(&fixture_dir().join("tiny_io.safetensors"));
    assert!(
        (loss_value - io["loss"].1[0]).abs() < 1e-4,
        "loss {loss_value} vs {}",
        io["loss"].1[0]
    );
}

fn assert_gradients_match(got: Weights) {
    let want = read_io(&fixture_dir().join("tiny_grads.safetensors"));
    assert_eq!(
        got.tensors.len(),
        want.len(),
        "every parameter has a gradient"
    );
    for (name, (shape, reference)) in want {
        let name = checkpoint::official_name(&name);
        let g = &got.tensors[&name];
        assert_eq!(&g.shape, &shape, "{name}: gradient shape");
        let scale = reference
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()))
            .max(1e-12);
        let diff = g
            .data
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            diff / scale <= 1e-3,
            "{name}: max |diff| / max |ref| = {}",
            diff / scale
        );
    }
}

/// Writes the fixture in the official state-spaces layout (embedding singular, tied lm_head
/// stored, official config.json) as safetensors and as pytorch_model.bin (f16 and bf16).
#[test]
fn official_naming_loads_with_the_same_logits() {
    let dev = cpu();
    let reference = values(
        load(&dev)
            .forward(input_ids(&dev), None, &ScanHooks::default())
            .0,
    );
    let hf = checkpoint::read_weights(&fixture_dir().join("model.safetensors")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let official_config = serde_json::json!({
        "d_model": 64, "d_intermediate": 0, "n_layer": 2, "vocab_size": 256,
        "ssm_cfg": {"layer": "Mamba2", "d_state": 16, "headdim": 16, "chunk_size": 16},
        "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": true, "residual_in_fp32": true,
        "fused_add_norm": true, "pad_vocab_size_multiple": 16, "tie_embeddings": true
    });

    // safetensors, f32, official names with the tied head stored.
    let st_dir = dir.path().join("st");
    std::fs::create_dir_all(&st_dir).unwrap();
    std::fs::write(st_dir.join("config.json"), official_config.to_string()).unwrap();
    let mut official = hf.clone();
    let emb = official.tensors["backbone.embedding.weight"].clone();
    official.tensors.insert("lm_head.weight".into(), emb);
    std::fs::write(
        st_dir.join("model.safetensors"),
        checkpoint::to_safetensors(&official).unwrap(),
    )
    .unwrap();
    let (model, flavor) = checkpoint::load(&st_dir, &dev).unwrap();
    assert_eq!(flavor, Flavor::Official);
    let got = values(
        model
            .forward(input_ids(&dev), None, &ScanHooks::default())
            .0,
    );
    assert_within(got, &reference, 1e-6, "official safetensors");

    // pytorch_model.bin at f32, f16 and bf16: exactly the function of the rounded weights.
    for dtype in ["f32", "f16", "bf16"] {
        let bin_dir = dir.path().join(format!("bin-{dtype}"));
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::fs::write(bin_dir.join("config.json"), official_config.to_string()).unwrap();
        let status = std::process::Command::new("python3")
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../tests/tools/safetensors_to_torch_bin.py"),
            )
            .arg(fixture_dir().join("model.safetensors"))
            .arg(bin_dir.join("pytorch_model.bin"))
            .args([
                "--dtype",
                dtype,
                "--rename",
                "backbone.embeddings.weight=backbone.embedding.weight",
                "--duplicate",
                "backbone.embedding.weight=lm_head.weight",
            ])
            .status()
            .expect("python3 runs");
        assert!(status.success());
        let (model, flavor) = checkpoint::load(&bin_dir, &dev).unwrap();
        assert_eq!(flavor, Flavor::Official);
        let got = values(
            model
                .forward(input_ids(&dev), None, &ScanHooks::default())
                .0,
        );
        let mut rounded = hf.clone();
        for t in rounded.tensors.values_mut() {
            for v in &mut t.data {
                *v = match dtype {
                    "f16" => half::f16::from_f32(*v).to_f32(),
                    "bf16" => half::bf16::from_f32(*v).to_f32(),
                    _ => *v,
                };
            }
        }
        let config = checkpoint::read_config(&bin_dir.join("config.json"))
            .unwrap()
            .0;
        let want = rounded.into_model(&config, &dev, "rounded").unwrap();
        let want = values(want.forward(input_ids(&dev), None, &ScanHooks::default()).0);
        assert_within(got, &want, 1e-6, &format!("pytorch_model.bin {dtype}"));
        if dtype == "f32" {
            assert_within(want, &reference, 1e-6, "official config = HF config");
        }
    }
}

#[test]
fn missing_and_misshaped_tensors_are_named() {
    let dev = cpu();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let mut weights = checkpoint::read_weights(&fixture_dir().join("model.safetensors")).unwrap();
    weights.tensors.remove("backbone.layers.1.mixer.D");
    let bad = weights
        .tensors
        .get_mut("backbone.layers.0.mixer.A_log")
        .unwrap();
    bad.shape = vec![4, 2];
    std::fs::write(
        dir.path().join("model.safetensors"),
        checkpoint::to_safetensors(&weights).unwrap(),
    )
    .unwrap();
    let err = checkpoint::load(dir.path(), &dev).unwrap_err().to_string();
    assert!(err.contains("backbone.layers.1.mixer.D"), "{err}");
    assert!(
        err.contains("backbone.layers.0.mixer.A_log: expected [8], found [4, 2]"),
        "{err}"
    );
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn forgetlab_format_round_trips() {
    let dev = cpu();
    let model = load(&dev);
    let reference = values(
        model
            .forward(input_ids(&dev), None, &ScanHooks::default())
            .0,
    );
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(&model, dir.path()).unwrap();
    let (again, flavor) = checkpoint::load(dir.path(), &dev).unwrap();
    assert_eq!(flavor, Flavor::Forgetlab);
    assert_eq!(again.config(), model.config());
    let got = values(
        again
            .forward(input_ids(&dev), None, &ScanHooks::default())
            .0,
    );
    assert_within(got, &reference, 0.0, "saved and reloaded");
}
