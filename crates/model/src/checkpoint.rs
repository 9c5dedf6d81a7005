//! Model checkpoints on disk: the official `state-spaces/mamba2-*` layout, Hugging Face
//! transformers' `Mamba2ForCausalLM`, fla's `GatedDeltaNetForCausalLM`, and forgetlab's own.
//!
//! A checkpoint is a directory with a `config.json` and a weights file (`model.safetensors` or
//! `pytorch_model.bin`; f32, f16 or bf16). The config's flavour is recognised by its fields:
//! forgetlab writes `"format": "forgetlab-mamba2"`, HF writes `"model_type": "mamba2"`, the
//! official configs have `d_model` and `ssm_cfg`. Tensor names differ only in the embedding
//! (`backbone.embedding.weight` officially, `backbone.embeddings.weight` in HF) and in whether a
//! tied `lm_head.weight` is stored; both are normalised to the official naming. fla's configs
//! have `"model_type": "gated_deltanet"`; their tensors keep fla's names, which are Gated
//! DeltaNet's table names here, so [`save_fla`] writes a directory fla loads as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use half::{bf16, f16};
use serde_json::Value;

use crate::ModelConfig;
use crate::error::ModelError;
use crate::model::Model;
use crate::weights::{WeightTensor, Weights};

/// Marker of forgetlab's own config.json.
pub const FORMAT_TAG: &str = "forgetlab-mamba2";
/// Weights file name of forgetlab checkpoints.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Config file name of every checkpoint flavour.
pub const CONFIG_FILE: &str = "config.json";

/// Where a config.json came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Forgetlab,
    Official,
    HuggingFace,
    /// flash-linear-attention's Gated DeltaNet.
    Fla,
}

/// A checkpoint's config and weights file, resolved from a directory or a weights file.
#[derive(Debug, Clone)]
pub struct CheckpointFiles {
    pub config: PathBuf,
    pub weights: PathBuf,
}

impl CheckpointFiles {
    /// Accepts a checkpoint directory, or a weights file with config.json beside it.
    pub fn locate(path: &Path) -> Result<Self, ModelError> {
        let (dir, weights) = if path.is_dir() {
            let weights = ["model.safetensors", "pytorch_model.bin"]
                .iter()
                .map(|name| path.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| ModelError::Config {
                    path: path.to_path_buf(),
                    message: "no model.safetensors or pytorch_model.bin in this directory"
                        .to_string(),
                })?;
            (path.to_path_buf(), weights)
        } else if path.is_file() {
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            (dir, path.to_path_buf())
        } else {
            return Err(ModelError::Io {
                path: path.to_path_buf(),
                error: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file or directory",
                ),
            });
        };
        let config = dir.join(CONFIG_FILE);
        if !config.is_file() {
            return Err(ModelError::Config {
                path: config,
                message: "missing: a checkpoint needs its config.json".to_string(),
            });
        }
        Ok(Self { config, weights })
    }
}

/// Loads a checkpoint onto `device`.
pub fn load(path: &Path, device: &Device) -> Result<(Model, Flavor), ModelError> {
    let files = CheckpointFiles::locate(path)?;
    let (config, flavor) = read_config(&files.config)?;
    let weights = read_weights(&files.weights)?;
    let model = weights.into_model(&config, device, &files.weights.display().to_string())?;
    Ok((model, flavor))
}

/// Saves `model` in forgetlab's format into `dir` (config.json + model.safetensors, f32,
/// official naming). Each file is written atomically.
pub fn save(model: &Model, dir: &Path) -> Result<(), ModelError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| ModelError::Io { path, error }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let weights = Weights::from_model(model);
    let bytes = to_safetensors(&weights)?;
    let weights_path = dir.join(WEIGHTS_FILE);
    forgetlab_runs::write_atomic(&weights_path, &bytes).map_err(io(&weights_path))?;
    let config_path = dir.join(CONFIG_FILE);
    let config = serde_json::json!({
        "format": FORMAT_TAG,
        "version": 1,
        "model": model.config(),
    });
    let text = serde_json::to_vec_pretty(&config).map_err(|e| ModelError::Config {
        path: config_path.clone(),
        message: e.to_string(),
    })?;
    forgetlab_runs::write_atomic(&config_path, &text).map_err(io(&config_path))
}

/// Saves a Gated DeltaNet `model` in fla's layout into `dir`: fla's config.json
/// (`model_type` gated_deltanet) and model.safetensors (f32), each written atomically.
/// fla has no MLP-less blocks and no padded vocabulary of its own, so `vocab_size` is the
/// padded one and a model without MLPs is refused.
pub fn save_fla(model: &Model, dir: &Path) -> Result<(), ModelError> {
    let config = model.config();
    let config_path = dir.join(CONFIG_FILE);
    let refuse = |message: &str| ModelError::Config {
        path: config_path.clone(),
        message: message.to_string(),
    };
    let sizes = config
        .gated_deltanet_sizes()
        .ok_or_else(|| refuse("fla's layout is for Gated DeltaNet models; this one is Mamba-2"))?;
    let mlp_width = sizes.mlp_width(config.d_model);
    if mlp_width == 0 {
        return Err(refuse(
            "fla's Gated DeltaNet always has an MLP; this model has intermediate_size = 0",
        ));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| ModelError::Io { path, error }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let bytes = to_safetensors(&Weights::from_model(model))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    forgetlab_runs::write_atomic(&weights_path, &bytes).map_err(io(&weights_path))?;
    let fla = serde_json::json!({
        "model_type": "gated_deltanet",
        "architectures": ["GatedDeltaNetForCausalLM"],
        "hidden_size": config.d_model,
        "num_hidden_layers": config.n_layer,
        "vocab_size": config.padded_vocab_size(),
        "num_heads": sizes.heads,
        "num_v_heads": null,
        "head_dim": sizes.head_k_dim,
        "expand_v": sizes.expand_v,
        "conv_size": config.d_conv,
        "use_gate": true,
        "use_short_conv": true,
        "allow_neg_eigval": false,
        "intermediate_size": mlp_width,
        "hidden_act": "swish",
        "norm_eps": config.norm_eps,
        "tie_word_embeddings": config.tie_embeddings,
        "attn": null,
    });
    let text = serde_json::to_vec_pretty(&fla).map_err(|e| refuse(&e.to_string()))?;
    forgetlab_runs::write_atomic(&config_path, &text).map_err(io(&config_path))
}

/// Serialises weights as a safetensors file (f32).
pub fn to_safetensors(weights: &Weights) -> Result<Vec<u8>, ModelError> {
    let raw: BTreeMap<&str, (Vec<usize>, Vec<u8>)> = weights
        .tensors
        .iter()
        .map(|(name, t)| {
            let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.as_str(), (t.shape.clone(), bytes))
        })
        .collect();
    let views = raw
        .iter()
        .map(|(name, (shape, bytes))| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|view| (*name, view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ModelError::Checkpoint {
            origin: "safetensors writer".to_string(),
            message: e.to_string(),
        })?;
    safetensors::serialize(views, None).map_err(|e| ModelError::Checkpoint {
        origin: "safetensors writer".to_string(),
        message: e.to_string(),
    })
}

/// Reads every tensor of a weights file as f32, renaming HF names to official ones.
pub fn read_weights(path: &Path) -> Result<Weights, ModelError> {
    let origin = path.display().to_string();
    let bad = |message: String| ModelError::Checkpoint {
        origin: origin.clone(),
        message,
    };
    let mut tensors = BTreeMap::new();
    let is_bin = path
        .extension()
        .is_some_and(|e| e == "bin" || e == "pt" || e == "pth");
    if is_bin {
        let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| bad(e.to_string()))?;
        for (name, tensor) in reader.into_tensors() {
            let dtype = tensor.dtype();
            let shape = tensor.shape().to_vec();
            let bytes = tensor.read().map_err(|e| bad(e.to_string()))?;
            let data = match dtype {
                pytorch_reader::DType::F32 => decode(&bytes, 4, |b| {
                    f32::from_ne_bytes(b.try_into().expect("4 bytes"))
                }),
                pytorch_reader::DType::F16 => decode(&bytes, 2, |b| {
                    f16::from_ne_bytes(b.try_into().expect("2 bytes")).to_f32()
                }),
                pytorch_reader::DType::BF16 => decode(&bytes, 2, |b| {
                    bf16::from_ne_bytes(b.try_into().expect("2 bytes")).to_f32()
                }),
                pytorch_reader::DType::F64 => decode(&bytes, 8, |b| {
                    f64::from_ne_bytes(b.try_into().expect("8 bytes")) as f32
                }),
                other => return Err(bad(format!("{name}: unsupported dtype {other:?}"))),
            };
            tensors.insert(official_name(&name), WeightTensor::new(shape, data));
        }
    } else {
        let bytes = std::fs::read(path).map_err(|error| ModelError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        for (name, view) in file.iter() {
            let raw = view.data();
            let data = match view.dtype() {
                safetensors::Dtype::F32 => decode(raw, 4, |b| {
                    f32::from_le_bytes(b.try_into().expect("4 bytes"))
                }),
                safetensors::Dtype::F16 => decode(raw, 2, |b| {
                    f16::from_le_bytes(b.try_into().expect("2 bytes")).to_f32()
                }),
                safetensors::Dtype::BF16 => decode(raw, 2, |b| {
                    bf16::from_le_bytes(b.try_into().expect("2 bytes")).to_f32()
                }),
                safetensors::Dtype::F64 => decode(raw, 8, |b| {
                    f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32
                }),
                other => return Err(bad(format!("{name}: unsupported dtype {other:?}"))),
            };
            tensors.insert(
                official_name(name),
                WeightTensor::new(view.shape().to_vec(), data),
            );
        }
    }
    Ok(Weights { tensors })
}

fn decode(bytes: &[u8], width: usize, f: impl Fn(&[u8]) -> f32) -> Vec<f32> {
    bytes.chunks_exact(width).map(f).collect()
}

/// Maps Hugging Face tensor names onto the official ones.
pub fn official_name(name: &str) -> String {
    match name {
        "backbone.embeddings.weight" => "backbone.embedding.weight".to_string(),
        other => other.to_string(),
    }
}

/// Reads a config.json of any supported flavour.
pub fn read_config(path: &Path) -> Result<(ModelConfig, Flavor), ModelError> {
    let text = std::fs::read_to_string(path).map_err(|error| ModelError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        message: format!("not valid JSON: {e}"),
    })?;
    let (config, flavor) = parse_config(&value).map_err(|message| ModelError::Config {
        path: path.to_path_buf(),
        message,
    })?;
    config.validate().map_err(|invalid| ModelError::Config {
        path: path.to_path_buf(),
        message: invalid.to_string(),
    })?;
    Ok((config, flavor))
}

/// Interprets a parsed config.json.
pub fn parse_config(value: &Value) -> Result<(ModelConfig, Flavor), String> {
    let obj = value
        .as_object()
        .ok_or_else(|| "config.json must hold a JSON object".to_string())?;
    if obj.get("format").and_then(Value::as_str) == Some(FORMAT_TAG) {
        let model = obj
            .get("model")
            .ok_or_else(|| "forgetlab config has no `model`".to_string())?;
        let config: ModelConfig =
            serde_json::from_value(model.clone()).map_err(|e| format!("model: {e}"))?;
        return Ok((config, Flavor::Forgetlab));
    }
    let fields = Fields(obj);
    if obj.get("model_type").and_then(Value::as_str) == Some("gated_deltanet") {
        return Ok((fla_config(obj)?, Flavor::Fla));
    }
    if obj.get("model_type").and_then(Value::as_str) == Some("mamba2") {
        let mut config = ModelConfig::new(
            fields.usize("hidden_size")?,
            fields.usize("num_hidden_layers")?,
            fields.usize("vocab_size")?,
        );
        config.d_state = fields.usize_or("state_size", 128)?;
        config.headdim = fields.usize_or("head_dim", 64)?;
        config.expand = fields.usize_or("expand", 2)?;
        config.ngroups = fields.usize_or("n_groups", 1)?;
        config.d_conv = fields.usize_or("conv_kernel", 4)?;
        config.chunk_size = fields.usize_or("chunk_size", 256)?;
        config.pad_vocab_size_multiple = fields.usize_or("pad_vocab_size_multiple", 1)?;
        config.tie_embeddings = fields.bool_or("tie_word_embeddings", true)?;
        config.norm_eps = fields.f64_or("layer_norm_epsilon", 1e-5)?;
        config.dt_min = fields.f64_or("time_step_min", 1e-3)?;
        config.dt_max = fields.f64_or("time_step_max", 0.1)?;
        config.dt_init_floor = fields.f64_or("time_step_floor", 1e-4)?;
        config.bias = fields.bool_or("use_bias", false)?;
        config.conv_bias = fields.bool_or("use_conv_bias", true)?;
        if let Some(limit) = obj.get("time_step_limit") {
            config.dt_limit = pair(limit).map_err(|e| format!("time_step_limit: {e}"))?;
        }
        if let Some(heads) = obj.get("num_heads").and_then(Value::as_u64)
            && heads as usize != config.nheads()
        {
            return Err(format!(
                "num_heads = {heads} but expand * hidden_size / head_dim = {}",
                config.nheads()
            ));
        }
        if fields.bool_or("norm_before_gate", false)? {
            return Err("norm_before_gate = true is not supported".to_string());
        }
        return Ok((config, Flavor::HuggingFace));
    }
    if obj.contains_key("d_model") && obj.contains_key("n_layer") {
        let mut config = ModelConfig::new(
            fields.usize("d_model")?,
            fields.usize("n_layer")?,
            fields.usize("vocab_size")?,
        );
        config.chunk_size = 256;
        config.pad_vocab_size_multiple = fields.usize_or("pad_vocab_size_multiple", 8)?;
        config.tie_embeddings = fields.bool_or("tie_embeddings", true)?;
        if fields.usize_or("d_intermediate", 0)? != 0 {
            return Err("d_intermediate > 0 (an MLP after each mixer) is not supported".into());
        }
        if obj
            .get("attn_layer_idx")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            return Err("attention layers (attn_layer_idx) are not supported".into());
        }
        if !fields.bool_or("rms_norm", true)? {
            return Err("rms_norm = false (LayerNorm blocks) is not supported".into());
        }
        if let Some(ssm) = obj.get("ssm_cfg").and_then(Value::as_object) {
            let ssm_fields = Fields(ssm);
            if let Some(layer) = ssm.get("layer").and_then(Value::as_str)
                && layer != "Mamba2"
            {
                return Err(format!("ssm_cfg.layer = {layer}: only Mamba2 is supported"));
            }
            config.d_state = ssm_fields.usize_or("d_state", 128)?;
            config.headdim = ssm_fields.usize_or("headdim", 64)?;
            config.expand = ssm_fields.usize_or("expand", 2)?;
            config.ngroups = ssm_fields.usize_or("ngroups", 1)?;
            config.d_conv = ssm_fields.usize_or("d_conv", 4)?;
            config.chunk_size = ssm_fields.usize_or("chunk_size", 256)?;
            config.dt_min = ssm_fields.f64_or("dt_min", 1e-3)?;
            config.dt_max = ssm_fields.f64_or("dt_max", 0.1)?;
            config.dt_init_floor = ssm_fields.f64_or("dt_init_floor", 1e-4)?;
            config.bias = ssm_fields.bool_or("bias", false)?;
            config.conv_bias = ssm_fields.bool_or("conv_bias", true)?;
            if let Some(limit) = ssm.get("dt_limit") {
                config.dt_limit = pair(limit).map_err(|e| format!("ssm_cfg.dt_limit: {e}"))?;
            }
            if let Some(range) = ssm.get("A_init_range") {
                config.a_init_range =
                    pair(range).map_err(|e| format!("ssm_cfg.A_init_range: {e}"))?;
            }
            for unsupported in ["norm_before_gate", "D_has_hdim"] {
                if ssm_fields.bool_or(unsupported, false)? {
                    return Err(format!("ssm_cfg.{unsupported} = true is not supported"));
                }
            }
            if !ssm_fields.bool_or("rmsnorm", true)? {
                return Err("ssm_cfg.rmsnorm = false is not supported".into());
            }
        }
        return Ok((config, Flavor::Official));
    }
    Err("unrecognised config.json: expected a forgetlab, official state-spaces or Hugging Face Mamba-2 config, or fla's Gated DeltaNet".into())
}

/// A model config from fla's `GatedDeltaNetConfig`, refusing the options forgetlab does not
/// implement (hybrid attention layers, separate value heads, negative eigenvalues, no gate or
/// no short convolutions, other activations).
fn fla_config(obj: &serde_json::Map<String, Value>) -> Result<ModelConfig, String> {
    let fields = Fields(obj);
    let d_model = fields.usize("hidden_size")?;
    let heads = fields.usize_or("num_heads", 6)?;
    if let Some(v_heads) = obj.get("num_v_heads").and_then(Value::as_u64)
        && v_heads as usize != heads
    {
        return Err(format!(
            "num_v_heads = {v_heads} differs from num_heads = {heads}: not supported"
        ));
    }
    if obj.get("attn").is_some_and(|a| !a.is_null()) {
        return Err("attn (hybrid attention layers) is not supported".into());
    }
    for (key, want) in [
        ("use_gate", true),
        ("use_short_conv", true),
        ("allow_neg_eigval", false),
        ("use_l2warp", false),
    ] {
        if fields.bool_or(key, want)? != want {
            return Err(format!("{key} = {} is not supported", !want));
        }
    }
    for key in ["hidden_act", "output_gate_activation"] {
        if let Some(act) = obj.get(key).and_then(Value::as_str)
            && !matches!(act, "swish" | "silu")
        {
            return Err(format!("{key} = {act} is not supported (only swish)"));
        }
    }
    let hidden_ratio = fields.f64_or("hidden_ratio", 4.0)?;
    let intermediate_size = match obj.get("intermediate_size") {
        None | Some(Value::Null) => {
            let raw = (d_model as f64 * hidden_ratio * 2.0 / 3.0) as usize;
            raw.div_ceil(256) * 256
        }
        Some(_) => fields.usize("intermediate_size")?,
    };
    let sizes = forgetlab_runs::config::GatedDeltaNetConfig {
        heads,
        head_k_dim: fields.usize_or("head_dim", 256)?,
        expand_v: fields.f64_or("expand_v", 2.0)?,
        intermediate_size: Some(intermediate_size),
    };
    let mut config = ModelConfig::gated_deltanet(
        d_model,
        fields.usize("num_hidden_layers")?,
        fields.usize("vocab_size")?,
        sizes,
    );
    config.pad_vocab_size_multiple = 1;
    config.d_conv = fields.usize_or("conv_size", 4)?;
    config.norm_eps = fields.f64_or("norm_eps", 1e-6)?;
    config.tie_embeddings = fields.bool_or("tie_word_embeddings", false)?;
    Ok(config)
}

struct Fields<'a>(&'a serde_json::Map<String, Value>);

impl Fields<'_> {
    fn usize(&self, key: &str) -> Result<usize, String> {
        self.0
            .get(key)
            .ok_or_else(|| format!("missing `{key}`"))
            .and_then(|v| {
                v.as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| format!("`{key}` must be a non-negative integer"))
            })
    }
    fn usize_or(&self, key: &str, default: usize) -> Result<usize, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => self.usize(key),
        }
    }
    fn f64_or(&self, key: &str, default: f64) -> Result<f64, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => number(v).map_err(|e| format!("`{key}`: {e}")),
        }
    }
    fn bool_or(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| format!("`{key}` must be true or false")),
        }
    }
}

/// A JSON number, or transformers 5's `{"__float__": "Infinity"}` encoding, or a string.
fn number(value: &Value) -> Result<f64, String> {
    let text = match value {
        Value::Number(n) => return n.as_f64().ok_or_else(|| "not a number".to_string()),
        Value::Object(map) => map.get("__float__").and_then(Value::as_str),
        Value::String(s) => Some(s.as_str()),
        _ => None,
    };
    match text.map(str::trim) {
        Some("Infinity" | "inf" | "+inf") => Ok(f64::INFINITY),
        Some("-Infinity" | "-inf") => Ok(f64::NEG_INFINITY),
        Some(other) => other.parse().map_err(|_| format!("not a number: {other}")),
        None => Err(format!("not a number: {value}")),
    }
}

fn pair(value: &Value) -> Result<(f64, f64), String> {
    match value.as_array().map(Vec::as_slice) {
        Some([a, b]) => Ok((number(a)?, number(b)?)),
        _ => Err("expected a pair [lo, hi]".into()),
    }
}
