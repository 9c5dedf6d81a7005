//! `forgetlab bench`: throughput and memory measurements whose numbers go into reports.

use anyhow::{Context, Result};
use clap::Subcommand;
use forgetlab_model::ModelConfig;
use forgetlab_model::bench::{
    BenchModel, BenchResult, HeadGradient, bench_streaming, bench_training, gemm_gflops,
    reference_models,
};
use forgetlab_runs::RunConfig;
use forgetlab_sweep::Experiment;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The whole trainer (data + model + optimizer + logging) on the fetched corpus: training
    /// tokens/s for configurations A and B, and the cost of a checkpoint and of a log line.
    Train {
        /// Optimizer steps timed per point (after one warm-up step).
        #[arg(long, default_value_t = 4)]
        steps: u64,
        /// Sequence lengths to measure.
        #[arg(long, value_delimiter = ',', default_values_t = [256, 1024, 4096])]
        lengths: Vec<usize>,
        /// Tokens per optimizer step.
        #[arg(long, default_value_t = 8192)]
        tokens_per_step: usize,
        /// Corpus directory (`forgetlab data fetch`).
        #[arg(long, default_value = "data/corpus")]
        corpus: std::path::PathBuf,
        /// Concurrent micro-batch workers (`train.workers`); default: the number of cores.
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Model alone: training (forward + backward) and streaming-eval tokens/s and peak memory
    /// for the reference configurations A and B at sequence lengths 256, 1024 and 4096, or for
    /// the models of an experiment or run config (`--config`), with where a step's time goes.
    Model {
        /// An experiment file or run config: measure its models at its training lengths and
        /// tokens per step instead of the reference configurations (each with its mixer and
        /// N_S, so two mixers compare at matched state size), and split each step's time into
        /// the layers and the rest (embedding, LM head and loss).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// One timed step per point and a shorter streaming run.
        #[arg(long)]
        quick: bool,
        /// SSD chunk size (reference configurations only; a config brings its own).
        #[arg(long, default_value_t = 64)]
        chunk: usize,
        /// Tokens per training step (default: 8192, or the config's).
        #[arg(long)]
        tokens_per_step: Option<usize>,
        /// Sequence lengths to measure (default: 256, 1024 and 4096, or the config's training
        /// lengths).
        #[arg(long, value_delimiter = ',')]
        lengths: Vec<usize>,
        /// Print one JSON object per measurement instead of a table.
        #[arg(long)]
        json: bool,
        /// Also time training with autodiff over the LM head and log-softmax (the naive path),
        /// to compare with the trainer's hand-written head gradient.
        #[arg(long)]
        autodiff_head: bool,
        /// Concurrent micro-batch workers to time the training path with (the trainer's
        /// `train.workers`); default: 1 and the number of cores.
        #[arg(long, value_delimiter = ',')]
        workers: Vec<usize>,
    },
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        BenchCommand::Train {
            steps,
            lengths,
            tokens_per_step,
            corpus,
            workers,
        } => {
            let workers = workers.unwrap_or_else(|| *default_workers().last().unwrap_or(&1));
            bench_train(steps, &lengths, tokens_per_step, &corpus, workers)
        }
        BenchCommand::Model {
            config: Some(config),
            quick,
            tokens_per_step,
            lengths,
            json,
            workers,
            ..
        } => {
            let points = bench_points(&config, tokens_per_step, &lengths)?;
            let steps = if quick { 1 } else { 3 };
            let gemm = gemm_gflops();
            let mut results = Vec::new();
            let mut splits = Vec::new();
            for point in &points {
                let workers = workers.first().copied().unwrap_or(point.workers);
                for &seq_len in &point.lengths {
                    tracing::info!("model {} training at length {seq_len}", point.model.name);
                    let whole = bench_training(
                        &point.model,
                        seq_len,
                        point.tokens_per_step,
                        steps,
                        HeadGradient::HandWritten,
                        workers,
                    );
                    if point.model.config.n_layer > 1 {
                        let one_layer = BenchModel {
                            name: format!("{} (1 layer)", point.model.name),
                            config: ModelConfig {
                                n_layer: 1,
                                ..point.model.config.clone()
                            },
                        };
                        let single = bench_training(
                            &one_layer,
                            seq_len,
                            point.tokens_per_step,
                            steps,
                            HeadGradient::HandWritten,
                            workers,
                        );
                        splits.push(TimeSplit::new(&point.model, &whole, &single));
                        results.push(whole);
                        results.push(single);
                    } else {
                        results.push(whole);
                    }
                }
            }
            print_results(&results, gemm, json)?;
            if !json {
                print_splits(&splits);
            }
            Ok(())
        }
        BenchCommand::Model {
            config: None,
            quick,
            chunk,
            tokens_per_step,
            lengths,
            json,
            autodiff_head,
            workers,
        } => {
            let workers = if workers.is_empty() {
                default_workers()
            } else {
                workers
            };
            let tokens_per_step = tokens_per_step.unwrap_or(8192);
            let lengths = if lengths.is_empty() {
                vec![256, 1024, 4096]
            } else {
                lengths
            };
            let gemm = gemm_gflops();
            let steps = if quick { 1 } else { 3 };
            let stream_len = if quick { 16_384 } else { 65_536 };
            let mut results = Vec::new();
            for model in reference_models(chunk) {
                for &seq_len in &lengths {
                    tracing::info!("model {} training at length {seq_len}", model.name);
                    for &w in &workers {
                        results.push(bench_training(
                            &model,
                            seq_len,
                            tokens_per_step,
                            steps,
                            HeadGradient::HandWritten,
                            w,
                        ));
                    }
                    if autodiff_head {
                        results.push(bench_training(
                            &model,
                            seq_len,
                            tokens_per_step,
                            steps,
                            HeadGradient::Autodiff,
                            1,
                        ));
                    }
                }
                tracing::info!("model {} streaming {stream_len} tokens", model.name);
                results.push(bench_streaming(&model, stream_len, 4096));
            }
            print_results(&results, gemm, json)
        }
    }
}

/// One model of a config to measure, at its training lengths.
struct BenchPoint {
    model: BenchModel,
    lengths: Vec<usize>,
    tokens_per_step: usize,
    workers: usize,
}

/// The distinct models of an experiment file (or the one model of a run config), each named
/// by the model keys its runs vary and measured at the lengths its runs train at.
fn bench_points(
    path: &std::path::Path,
    tokens_per_step: Option<usize>,
    lengths: &[usize],
) -> Result<Vec<BenchPoint>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_experiment = text
        .parse::<toml::Table>()
        .with_context(|| format!("{} is not TOML", path.display()))?
        .contains_key("experiment");
    let runs: Vec<(String, RunConfig)> = if is_experiment {
        let experiment = Experiment::load(path)?;
        experiment
            .runs
            .into_iter()
            .map(|run| {
                let label = run
                    .point
                    .iter()
                    .filter(|(key, _)| key.as_str() == "model" || key.starts_with("model."))
                    .map(|(key, value)| match key.strip_prefix("model.") {
                        Some(key) => format!("{key}={value}"),
                        None => value.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                (label, run.config)
            })
            .collect()
    } else {
        let config = RunConfig::load(path)?;
        vec![(String::new(), config)]
    };
    let mut points: Vec<BenchPoint> = Vec::new();
    for (label, config) in runs {
        let seq_len = config.train.seq_len;
        match points.iter_mut().find(|p| p.model.config == config.model) {
            Some(point) => {
                if !point.lengths.contains(&seq_len) {
                    point.lengths.push(seq_len);
                }
            }
            None => points.push(BenchPoint {
                model: BenchModel {
                    name: if label.is_empty() {
                        "model".into()
                    } else {
                        label
                    },
                    config: config.model.clone(),
                },
                lengths: vec![seq_len],
                tokens_per_step: tokens_per_step.unwrap_or(config.train.tokens_per_step),
                workers: config.train.workers(),
            }),
        }
    }
    for point in &mut points {
        if lengths.is_empty() {
            point.lengths.sort_unstable();
        } else {
            point.lengths = lengths.to_vec();
        }
    }
    Ok(points)
}

/// Where one training step's time goes, from the model and its one-layer copy: each layer
/// costs the difference, and the rest (embedding, LM head, loss) is what the copy spends
/// beyond its one layer.
struct TimeSplit {
    model: String,
    seq_len: usize,
    step_s: f64,
    per_layer_s: f64,
    outside_layers_s: f64,
}

impl TimeSplit {
    fn new(model: &BenchModel, whole: &BenchResult, single: &BenchResult) -> Self {
        let layers = model.config.n_layer;
        // Per token, so a different number of tokens per step cannot skew the split.
        let per_token = |r: &BenchResult| r.seconds_per_step / r.tokens_per_step as f64;
        let tokens = whole.tokens_per_step as f64;
        let per_layer = (per_token(whole) - per_token(single)) / (layers - 1) as f64 * tokens;
        Self {
            model: model.name.clone(),
            seq_len: whole.seq_len,
            step_s: whole.seconds_per_step,
            per_layer_s: per_layer,
            outside_layers_s: whole.seconds_per_step - layers as f64 * per_layer,
        }
    }
}

fn print_splits(splits: &[TimeSplit]) {
    if splits.is_empty() {
        return;
    }
    println!("\nwhere a training step's time goes (the model against its one-layer copy):");
    println!("model                seq_len   s/step  per layer  outside layers  outside share");
    for s in splits {
        println!(
            "{:<20} {:>7} {:>8.3} {:>10.3} {:>15.3} {:>13.0}%",
            s.model,
            s.seq_len,
            s.step_s,
            s.per_layer_s,
            s.outside_layers_s,
            100.0 * s.outside_layers_s / s.step_s
        );
    }
    println!(
        "(outside layers: embedding, final norm, LM head and loss, forward and backward; a \
         difference of two noisy timings, so small negative or >100% values mean noise)"
    );
}

/// 1 and the number of cores (once if they are the same).
fn default_workers() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores > 1 { vec![1, cores] } else { vec![1] }
}

fn bench_train(
    steps: u64,
    lengths: &[usize],
    tokens_per_step: usize,
    corpus: &std::path::Path,
    workers: usize,
) -> Result<()> {
    use forgetlab_runs::{MetricKind, RunConfig, RunDir, read_metrics};
    let corpus = corpus
        .canonicalize()
        .with_context(|| format!("{} (run `forgetlab data fetch`)", corpus.display()))?;
    let scratch = tempfile::tempdir()?;
    println!(
        "model  seq_len  tokens/s  s/step   checkpoint s  (data + model + AdamW, end to end, {workers} worker{})",
        if workers == 1 { "" } else { "s" }
    );
    let mut log_line_us = None;
    for model in reference_models(64) {
        for &seq_len in lengths {
            let total = tokens_per_step as u64 * (steps + 1);
            let text = format!(
                r#"[model]
d_model = {d}
n_layer = 4
d_state = {n}
headdim = {p}
chunk_size = 64
vocab_size = 8192
[data]
train = ["{c}/slimpajama/train/**/*.jsonl.zst"]
validation = ["{c}/slimpajama/validation/**/*.jsonl.zst"]
tokenizer = "{c}/tokenizer-4k.json"
[train]
seq_len = {seq_len}
tokens_per_step = {tokens_per_step}
total_tokens = {total}
log_every = 1
val_tokens = {seq_len}
checkpoint_every = 0
workers = {workers}
"#,
                d = model.config.d_model,
                n = model.config.d_state,
                p = model.config.headdim,
                c = corpus.display(),
            );
            let config = RunConfig::from_toml_str(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
            let run = RunDir::new(scratch.path().join(format!("{}-{seq_len}", model.name)));
            forgetlab_train::train(
                &run,
                Some(&config),
                &forgetlab_train::TrainOptions::default(),
            )?;
            let (records, _) = read_metrics(&run.metrics())?;
            let rates: Vec<f64> = records
                .iter()
                .filter(|r| r.kind == MetricKind::Train && r.step > 1)
                .filter_map(|r| r.tokens_per_s)
                .collect();
            let tokens_per_s = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
            // The final checkpoint was written at the last step; time one more of the same size.
            let checkpoint = run.checkpoint(steps + 1);
            let bytes: u64 = std::fs::read_dir(&checkpoint)?
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum();
            let start = std::time::Instant::now();
            copy_dir(&checkpoint, &scratch.path().join("copy"))?;
            let checkpoint_s = start.elapsed().as_secs_f64();
            println!(
                "{:<6} {seq_len:>7} {tokens_per_s:>9.0} {:>7.3} {checkpoint_s:>13.3}  ({:.1} MB)",
                model.name,
                tokens_per_step as f64 / tokens_per_s,
                bytes as f64 / 1e6
            );
            if log_line_us.is_none() {
                let path = scratch.path().join("log-probe.jsonl");
                let record = records.last().cloned().context("metrics")?;
                let start = std::time::Instant::now();
                for _ in 0..200 {
                    forgetlab_runs::append_json_line(&path, &record)?;
                }
                log_line_us = Some(start.elapsed().as_secs_f64() * 1e6 / 200.0);
            }
        }
    }
    if let Some(us) = log_line_us {
        println!("\none metrics line (appended and fsynced): {us:.0} µs");
    }
    println!(
        "checkpoint s: writing a copy of a complete checkpoint directory (synced), an upper bound of the save cost"
    );
    Ok(())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)?.flatten() {
        let bytes = std::fs::read(entry.path())?;
        forgetlab_runs::write_atomic(&to.join(entry.file_name()), &bytes)?;
    }
    Ok(())
}

/// The table (or JSON lines, the last one `{"gemm_gflops": ..}`), with each row's model
/// arithmetic rate as a share of the measured matrix-product ceiling `gemm`.
fn print_results(results: &[BenchResult], gemm: f64, json: bool) -> Result<()> {
    if json {
        for r in results {
            println!("{}", serde_json::to_string(r)?);
        }
        println!("{}", serde_json::json!({ "gemm_gflops": gemm }));
        return Ok(());
    }
    let width = results
        .iter()
        .map(|r| r.model.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<width$} mixer           N_S (M)  mode                 seq_len  tokens/step  tokens/s   s/step  peak RSS MiB  GFLOP/s  of GEMM",
        "model"
    );
    for r in results {
        println!(
            "{:<width$} {:<14} {:>8.4}  {:<19} {:>8} {:>12} {:>9.0} {:>8.3} {:>13} {:>8.1} {:>7.0}%",
            r.model,
            r.mixer,
            r.state_size as f64 / 1e6,
            r.mode,
            r.seq_len,
            r.tokens_per_step,
            r.tokens_per_s,
            r.seconds_per_step,
            r.peak_rss_mib
                .map(|m| format!("{m:.0}"))
                .unwrap_or_default(),
            r.model_gflops_per_s,
            100.0 * r.model_gflops_per_s / gemm
        );
    }
    println!(
        "(GFLOP/s: the model's necessary arithmetic per second (matrix products and the causal \
         chunked scan); of GEMM: as a share of this machine's f32 2048² matrix product, \
         {gemm:.0} GFLOP/s measured first, the ceiling for any implementation)"
    );
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        println!(
            "(peak RSS is the process's high-water mark so far: the allocator keeps freed \
             memory; MIMALLOC_PURGE_DELAY=10 measures each row on its own, a little slower)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(path: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    }

    #[test]
    fn an_experiment_brings_one_model_per_state_size_at_its_lengths() {
        let points = bench_points(&repo_file("experiments/law-on-cpu.toml"), None, &[]).unwrap();
        let names: Vec<&str> = points.iter().map(|p| p.model.name.as_str()).collect();
        assert_eq!(names, ["d_state=2", "d_state=4", "d_state=8", "d_state=16"]);
        for point in &points {
            assert_eq!(point.lengths, [64, 128, 256, 512, 1024, 2048]);
            assert_eq!(point.tokens_per_step, 8192);
        }
        let chosen = bench_points(
            &repo_file("experiments/law-on-cpu.toml"),
            Some(4096),
            &[256],
        )
        .unwrap();
        assert!(
            chosen
                .iter()
                .all(|p| p.lengths == [256] && p.tokens_per_step == 4096)
        );
    }

    #[test]
    fn a_run_config_brings_its_one_model() {
        let points = bench_points(
            &repo_file("experiments/verdict-known-answer.toml"),
            None,
            &[],
        )
        .unwrap();
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].model.name, "model");
        assert_eq!(points[0].lengths, [16]);
        assert_eq!(points[0].workers, 2);
    }

    #[test]
    fn a_step_splits_into_its_layers_and_the_rest() {
        let mut config = ModelConfig::new(64, 3, 512);
        config.headdim = 16;
        let model = BenchModel {
            name: "m".into(),
            config,
        };
        let result = |seconds_per_step: f64| BenchResult {
            model: "m".into(),
            mode: "train".into(),
            seq_len: 64,
            tokens_per_step: 1024,
            chunk_size: 16,
            tokens_per_s: 1024.0 / seconds_per_step,
            seconds_per_step,
            peak_rss_mib: None,
            model_gflops_per_s: 0.0,
            mixer: "mamba2".into(),
            state_size: 0,
        };
        // Three layers of 0.1 s and 0.2 s outside them, against one layer and the same rest.
        let split = TimeSplit::new(&model, &result(0.5), &result(0.3));
        assert!((split.per_layer_s - 0.1).abs() < 1e-12);
        assert!((split.outside_layers_s - 0.2).abs() < 1e-12);
    }
}
