//! `forgetlab model`: info, init, set, export-fla and logits (the conformance entry point).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::{Subcommand, ValueEnum};
use forgetlab_model::checkpoint::{self, Flavor};
use forgetlab_model::params::Naming;
use forgetlab_model::weights::expected_shapes;
use forgetlab_model::{Model, ModelConfig, ScanHooks};
use forgetlab_runs::{DirLock, RunConfig, RunDir};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Parameter count, state size N_S and layer shapes of a config or checkpoint.
    Info {
        /// A run config (.toml with [model]), a bare model config (.toml), or a checkpoint
        /// (directory or weights file with config.json beside it).
        path: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a freshly initialised model (mamba_ssm's init, seeded) in forgetlab's format.
    Init {
        /// A run config or bare model config (.toml).
        config: PathBuf,
        /// Output directory (config.json + model.safetensors).
        #[arg(long)]
        output: PathBuf,
        /// Seed (default: the run config's seed, else 0).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Copy a checkpoint with every parameter whose name ends in PARAM set to VALUE: a known
    /// intervention, e.g. `--param A_log --value -30` makes every decay 1 (a state that never
    /// forgets).
    Set {
        /// Checkpoint directory, or a weights file with config.json beside it.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Output directory (config.json + model.safetensors, forgetlab format).
        #[arg(long)]
        output: PathBuf,
        /// Parameter name suffix, e.g. `A_log`, `dt_bias`, `D`.
        #[arg(long)]
        param: String,
        #[arg(long, allow_negative_numbers = true)]
        value: f32,
    },
    /// Copy a Gated DeltaNet checkpoint (e.g. a run's `model/`) into fla's layout: fla's
    /// config.json (`model_type` gated_deltanet) and model.safetensors, which
    /// `GatedDeltaNetForCausalLM.from_pretrained` loads.
    ExportFla {
        /// Checkpoint directory, or a weights file with config.json beside it.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Output directory.
        #[arg(long)]
        output: PathBuf,
    },
    /// Logits of a checkpoint for token ids from a .npy file.
    Logits {
        /// Checkpoint directory, or a weights file with config.json beside it.
        #[arg(long)]
        checkpoint: PathBuf,
        /// int64 or int32 token ids, shape (batch, seq).
        #[arg(long)]
        input: PathBuf,
        /// float32 logits, shape (batch, seq, vocab).
        #[arg(long)]
        output: PathBuf,
        /// Which forward path computes them.
        #[arg(long, value_enum, default_value = "chunked")]
        mode: Mode,
        /// Segment length for `--mode streaming`.
        #[arg(long, default_value_t = 64)]
        segment: usize,
        /// Device: cpu, wgpu, cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// One pass of the chunked SSD.
    Chunked,
    /// Token by token with the recurrent step.
    Recurrent,
    /// Segment by segment, carrying the state.
    Streaming,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        ModelCommand::Info { path, json } => info(&path, json),
        ModelCommand::Init {
            config,
            output,
            seed,
        } => {
            let (model_config, _) = model_config(&config)?;
            let seed = match seed {
                Some(s) => s,
                None => RunConfig::load(&config).map(|c| c.seed).unwrap_or(0),
            };
            let model = Model::init(&model_config, seed, &Device::flex())?;
            let _lock = lock_enclosing_run(&output)?;
            checkpoint::save(&model, &output)?;
            println!("{}: initialised with seed {seed}", output.display());
            Ok(())
        }
        ModelCommand::Set {
            checkpoint,
            output,
            param,
            value,
        } => set_param(&checkpoint, &output, &param, value),
        ModelCommand::ExportFla { checkpoint, output } => export_fla(&checkpoint, &output),
        ModelCommand::Logits {
            checkpoint,
            input,
            output,
            mode,
            segment,
            device,
        } => logits(&checkpoint, &input, &output, mode, segment, &device),
    }
}

/// Weights written into a run directory (`RUN/model`) belong to that run: hold its lock while
/// writing them.
fn lock_enclosing_run(output: &Path) -> Result<Option<DirLock>> {
    match output.parent().map(RunDir::new) {
        Some(run) if run.exists() => Ok(Some(DirLock::acquire(run.root())?)),
        _ => Ok(None),
    }
}

fn export_fla(checkpoint: &Path, output: &Path) -> Result<()> {
    let (model, _) = checkpoint::load(checkpoint, &Device::flex())?;
    checkpoint::save_fla(&model, output)
        .with_context(|| format!("exporting {} to fla's layout", checkpoint.display()))?;
    let (back, flavor) = checkpoint::load(output, &Device::flex())
        .with_context(|| format!("reading back {}", output.display()))?;
    if flavor != Flavor::Fla
        || forgetlab_model::Weights::from_model(&back)
            != forgetlab_model::Weights::from_model(&model)
    {
        bail!(
            "{}: the exported checkpoint does not read back as the same model",
            output.display()
        );
    }
    println!("{}: fla Gated DeltaNet checkpoint", output.display());
    Ok(())
}

fn set_param(checkpoint: &Path, output: &Path, param: &str, value: f32) -> Result<()> {
    let (model, _) = checkpoint::load(checkpoint, &Device::flex())?;
    let mut weights = forgetlab_model::weights::Weights::from_model(&model);
    let mut names = Vec::new();
    for (name, tensor) in weights.tensors.iter_mut() {
        if name.ends_with(param) {
            tensor.data.iter_mut().for_each(|v| *v = value);
            names.push(name.clone());
        }
    }
    if names.is_empty() {
        bail!(
            "{}: no parameter name ends in `{param}` (names look like {})",
            checkpoint.display(),
            weights.tensors.keys().next().map_or("-", String::as_str)
        );
    }
    let _lock = lock_enclosing_run(output)?;
    checkpoint::save(&model, output)?;
    let weights_path = output.join("model.safetensors");
    forgetlab_runs::write_atomic(&weights_path, &checkpoint::to_safetensors(&weights)?)
        .with_context(|| format!("writing {}", weights_path.display()))?;
    checkpoint::load(output, &Device::flex())
        .with_context(|| format!("reading back {}", output.display()))?;
    println!("{}: set {} to {value}", output.display(), names.join(", "));
    Ok(())
}

/// Reads a model config from a run config, a bare model config, or a checkpoint.
fn model_config(path: &Path) -> Result<(ModelConfig, String)> {
    if path.extension().is_some_and(|e| e == "toml") {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        if table.contains_key("model") {
            let run = RunConfig::load(path)?;
            return Ok((run.model, "run config".into()));
        }
        let config: ModelConfig =
            forgetlab_runs::config::parse_validated(&text, |c: &ModelConfig| c.validate())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok((config, "model config".into()));
    }
    let files = checkpoint::CheckpointFiles::locate(path)?;
    let (config, flavor) = checkpoint::read_config(&files.config)?;
    let flavor = match flavor {
        Flavor::Forgetlab => "forgetlab checkpoint",
        Flavor::Official => "official state-spaces checkpoint",
        Flavor::HuggingFace => "Hugging Face checkpoint",
        Flavor::Fla => "fla Gated DeltaNet checkpoint",
    };
    Ok((config, flavor.into()))
}

fn info(path: &Path, json: bool) -> Result<()> {
    let (config, source) = model_config(path)?;
    let state = config.state_size();
    let shapes = expected_shapes(&config);
    if json {
        let value = serde_json::json!({
            "source": source,
            "config": config,
            "params": config.param_count(),
            "state_size": state.total,
            "state_size_ssm": state.ssm,
            "state_size_conv": state.conv,
            "d_inner": config.d_inner(),
            "nheads": config.nheads(),
            "padded_vocab_size": config.padded_vocab_size(),
            "tensors": shapes.iter().map(|(n, s)| serde_json::json!({"name": n, "shape": s})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("{} ({source})", path.display());
    match config.gated_deltanet_sizes() {
        None => println!(
            "  Mamba-2  d_model {}  n_layer {}  d_inner {}  heads {} x headdim {}  d_state {}  ngroups {}  d_conv {}",
            config.d_model,
            config.n_layer,
            config.d_inner(),
            config.nheads(),
            config.headdim,
            config.d_state,
            config.ngroups,
            config.d_conv
        ),
        Some(g) => println!(
            "  Gated DeltaNet  d_model {}  n_layer {}  heads {} x d_k {} x d_v {}  MLP {}  d_conv {}",
            config.d_model,
            config.n_layer,
            g.heads,
            g.head_k_dim,
            g.head_v_dim(),
            g.mlp_width(config.d_model),
            config.d_conv
        ),
    }
    println!(
        "  vocab {} (padded {}), tied embeddings: {}",
        config.vocab_size,
        config.padded_vocab_size(),
        config.tie_embeddings
    );
    println!(
        "  parameters        {:>14} ({:.3}M)",
        config.param_count(),
        config.param_count() as f64 / 1e6
    );
    println!(
        "  state size N_S    {:>14} ({:.4}M)",
        state.total,
        state.millions()
    );
    let recurrent = if config.mixer.is_mamba2() {
        "SSM states"
    } else {
        "delta-rule states"
    };
    println!("    {recurrent:<18}{:>12}", state.ssm);
    println!("    conv caches     {:>14}", state.conv);
    println!("  tensors (checkpoint names, PyTorch layouts):");
    let naming = Naming::of(config.mixer);
    let layer0 = naming.layer(0);
    for (name, shape) in &shapes {
        let is_other_layer = name.starts_with(naming.layers) && !name.starts_with(&layer0);
        if !is_other_layer {
            println!("    {name:<45} {shape:?}");
        }
    }
    if config.n_layer > 1 {
        println!(
            "    (layers 1..{} repeat layer 0's shapes)",
            config.n_layer - 1
        );
    }
    Ok(())
}

fn read_ids(path: &Path) -> Result<(usize, usize, Vec<i64>)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
        .with_context(|| format!("{} is not a .npy file", path.display()))?;
    let shape = npy.shape().to_vec();
    let [batch, seq] = shape[..] else {
        bail!(
            "{}: expected token ids of shape (batch, seq), got {shape:?}",
            path.display()
        );
    };
    let type_str = match npy.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        other => bail!("{}: unsupported dtype {other:?}", path.display()),
    };
    let ids: Vec<i64> = match &type_str[1..] {
        "i8" => npy.into_vec::<i64>()?,
        "i4" => npy.into_vec::<i32>()?.into_iter().map(i64::from).collect(),
        _ => bail!(
            "{}: token ids must be int64 or int32, got {type_str}",
            path.display()
        ),
    };
    Ok((batch as usize, seq as usize, ids))
}

fn logits(
    checkpoint_path: &Path,
    input: &Path,
    output: &Path,
    mode: Mode,
    segment: usize,
    device: &str,
) -> Result<()> {
    let device = forgetlab_model::device::parse_device(device)?;
    let (model, _) = checkpoint::load(checkpoint_path, &device)
        .with_context(|| format!("loading {}", checkpoint_path.display()))?;
    let (batch, seq, ids) = read_ids(input)?;
    let vocab = model.config().padded_vocab_size() as i64;
    if let Some(bad) = ids.iter().find(|&&t| t < 0 || t >= vocab) {
        bail!(
            "{}: token id {bad} is outside the model's vocabulary 0..{vocab}",
            input.display()
        );
    }
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, seq]), &device);
    let logits = compute_logits(&model, ids, mode, segment);
    let [b, l, v] = logits.dims();
    let values: Vec<f32> = logits
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading logits back: {e:?}"))?;
    let mut bytes = Vec::new();
    {
        use npyz::WriterBuilder;
        let mut writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[b as u64, l as u64, v as u64])
            .writer(&mut bytes)
            .begin_nd()?;
        writer.extend(values)?;
        writer.finish()?;
    }
    forgetlab_runs::write_atomic(output, &bytes)
        .with_context(|| format!("writing {}", output.display()))?;
    Ok(())
}

fn compute_logits(model: &Model, ids: Tensor<2, Int>, mode: Mode, segment: usize) -> Tensor<3> {
    let hooks = ScanHooks::default();
    let [batch, seq] = ids.dims();
    match mode {
        Mode::Chunked => model.forward(ids, None, &hooks).0,
        Mode::Streaming => {
            let mut pieces = Vec::new();
            model.forward_streaming(ids, segment, None, &hooks, |_, l| pieces.push(l));
            Tensor::cat(pieces, 1)
        }
        Mode::Recurrent => {
            let mut state = model.zero_state(batch);
            let mut steps = Vec::with_capacity(seq);
            for t in 0..seq {
                let column: Tensor<1, Int> = ids.clone().narrow(1, t, 1).reshape([batch]);
                let (logits, next) = model.step(column, state, &hooks);
                steps.push(logits.unsqueeze_dim::<3>(1));
                state = next;
            }
            Tensor::cat(steps, 1)
        }
    }
}
