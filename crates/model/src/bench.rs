//! Throughput and memory of the model alone: training (forward + backward of the next-token
//! loss) and streaming evaluation, for the two reference configurations of the project's
//! benchmark (A: d_model 128, 4 layers, d_state 16, headdim 32; B: d_model 256, 4 layers,
//! d_state 64, headdim 64; vocab 8192), at several sequence lengths with a fixed number of
//! tokens per step. Used by `cargo bench -p forgetlab-model` and `forgetlab bench model`.

use std::time::Instant;

use burn::prelude::*;
use serde::Serialize;

use burn::optim::GradientsParams;

use crate::loss::{cross_entropy_sum, token_losses};
use crate::parallel::{LossAndGradients, summed_gradients};
use crate::{Model, ModelConfig, ScanHooks};

/// A named benchmark configuration.
#[derive(Debug, Clone)]
pub struct BenchModel {
    pub name: String,
    pub config: ModelConfig,
}

/// The project's two reference configurations.
pub fn reference_models(chunk_size: usize) -> Vec<BenchModel> {
    let make = |d_model, d_state, headdim| {
        let mut c = ModelConfig::new(d_model, 4, 8192);
        c.d_state = d_state;
        c.headdim = headdim;
        c.chunk_size = chunk_size;
        c
    };
    vec![
        BenchModel {
            name: "A".into(),
            config: make(128, 16, 32),
        },
        BenchModel {
            name: "B".into(),
            config: make(256, 64, 64),
        },
    ]
}

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub model: String,
    pub mode: String,
    pub seq_len: usize,
    pub tokens_per_step: usize,
    pub chunk_size: usize,
    pub tokens_per_s: f64,
    pub seconds_per_step: f64,
    /// Peak resident memory of the process during this measurement, MiB (Linux only).
    pub peak_rss_mib: Option<f64>,
    /// Model arithmetic per second ([`forward_macs_per_token`]: 6 FLOPs per multiply-add for
    /// training, 2 for streaming), GFLOP/s.
    pub model_gflops_per_s: f64,
    /// The model's mixer and its recurrent state size N_S (scalars), so runs of different
    /// mixers can be compared at matched state size.
    pub mixer: String,
    pub state_size: u64,
}

/// Multiply-adds per token of one forward pass that any implementation must do: in_proj,
/// out_proj and the LM head, and per head the causal half of a chunk's C·Bᵀ and mixing
/// products plus the chunk state's write and read, at the chunk length the CPU kernel runs.
/// The convolution, norms and elementwise work (under 1% of it at the reference sizes) are not
/// counted.
///
/// Gated DeltaNet: its q, k, v, a, b, gate and output projections, the MLP, the LM head, and
/// per head the causal halves of a chunk's K·Kᵀ, Q·Kᵀ and the WY products over keys and values
/// plus the state's two reads and one write (the triangular inverse is not counted).
pub fn forward_macs_per_token(config: &ModelConfig) -> f64 {
    let c = config;
    if let Some(g) = c.gated_deltanet_sizes() {
        let q = c.chunk_size;
        let (d, dk, dv) = (c.d_model, g.head_k_dim, g.head_v_dim());
        let projections = d * (2 * g.key_dim() + 2 * g.value_dim() + 2 * g.heads)
            + g.value_dim() * d
            + 3 * d * g.mlp_width(d);
        let rule = g.heads * (q * (3 * dk + dv) / 2 + 3 * dk * dv);
        return (c.n_layer * (projections + rule) + d * c.padded_vocab_size()) as f64;
    }
    let q = c.chunk_size.min(crate::host_scan::MAX_CHUNK);
    let (n, p) = (c.d_state, c.headdim);
    let projections = c.d_model * c.d_in_proj() + c.d_inner() * c.d_model;
    let scan = c.nheads() * (q * (n + p) / 2 + 2 * n * p);
    (c.n_layer * (projections + scan) + c.d_model * c.padded_vocab_size()) as f64
}

/// The f32 matrix-product throughput of this CPU, GFLOP/s: the best of five products of
/// 2048×2048 matrices by the gemm crate (the one burn's CPU backend and forgetlab's kernels use)
/// on all the pool's threads. The ceiling for [`BenchResult::model_gflops_per_s`].
pub fn gemm_gflops() -> f64 {
    use crate::host_kernels::{Threads, View, matmul};
    let size = 2048;
    let a = vec![1.0f32; size * size];
    let b = vec![1.0f32; size * size];
    let mut c = vec![0.0f32; size * size];
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            matmul(
                &mut c,
                View::new(&a, size, size),
                View::new(&b, size, size),
                None,
                Threads::All,
            );
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (size as f64).powi(3) / best / 1e9
}

fn tokens(batch: usize, len: usize, vocab: usize, seed: usize, device: &Device) -> Tensor<2, Int> {
    let values: Vec<i64> = (0..batch * len)
        .map(|i| ((i * 2654435761 + seed * 97) % vocab) as i64)
        .collect();
    Tensor::from_data(TensorData::new(values, [batch, len]), device)
}

/// How a training benchmark differentiates the LM head and cross-entropy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadGradient {
    /// The trainer's path, [`Model::forward_loss`] (closed-form gradient, blocked logits).
    HandWritten,
    /// Autodiff over `log_softmax(logits)`, for comparison.
    Autodiff,
}

/// Times `steps` training steps (after one warm-up) of `model` at `seq_len`, with
/// `tokens_per_step` tokens per step. With `workers` > 1 the step is split into that many
/// micro-batches run concurrently on model replicas ([`crate::parallel`]), as the trainer does.
pub fn bench_training(
    bench: &BenchModel,
    seq_len: usize,
    tokens_per_step: usize,
    steps: usize,
    head: HeadGradient,
    workers: usize,
) -> BenchResult {
    let device = Device::flex().autodiff();
    let model = Model::init(&bench.config, 0, &device).expect("reference configs are valid");
    let batch = (tokens_per_step / seq_len).max(1);
    let workers = workers.clamp(1, batch);
    let micro = batch / workers;
    let vocab = bench.config.vocab_size;
    let scale = 1.0 / (micro * workers * seq_len) as f32;
    let micro_batch = |replica: &Model, device: &Device, seed: usize| {
        let ids = tokens(micro, seq_len + 1, vocab, seed, device);
        let inputs = ids.clone().narrow(1, 0, seq_len);
        let targets = ids.narrow(1, 1, seq_len);
        let hooks = ScanHooks::default();
        let (loss, grads) = match head {
            HeadGradient::HandWritten => {
                let (loss, _) = replica.forward_loss(inputs, targets, None, &hooks, scale);
                (loss.value, loss.surrogate.backward())
            }
            HeadGradient::Autodiff => {
                let (logits, _) = replica.forward(inputs, None, &hooks);
                let loss = cross_entropy_sum(logits, targets) * scale;
                (loss.clone(), loss.backward())
            }
        };
        LossAndGradients {
            loss: loss.into_scalar::<f32>() as f64,
            grads: GradientsParams::from_grads(grads, replica),
        }
    };
    let replicas = vec![device.clone(); workers];
    let run = |i: usize| {
        let jobs: Vec<usize> = (0..workers).map(|w| i * workers + w).collect();
        let summed = summed_gradients(&model, &device, &replicas, jobs, micro_batch, || false)
            .expect("never stopped");
        assert!(summed.loss.is_finite());
    };
    run(0);
    reset_peak_rss();
    let start = Instant::now();
    for i in 0..steps {
        run(i + 1);
    }
    let seconds = start.elapsed().as_secs_f64() / steps as f64;
    let tokens = micro * workers * seq_len;
    BenchResult {
        model: bench.name.to_string(),
        mode: match (head, workers) {
            (HeadGradient::HandWritten, 1) => "train".to_string(),
            (HeadGradient::HandWritten, w) => format!("train/{w}-workers"),
            (HeadGradient::Autodiff, _) => "train/autodiff-head".to_string(),
        },
        seq_len,
        tokens_per_step: tokens,
        chunk_size: bench.config.chunk_size,
        tokens_per_s: tokens as f64 / seconds,
        seconds_per_step: seconds,
        peak_rss_mib: peak_rss_mib(),
        mixer: bench.config.mixer.name().to_string(),
        state_size: bench.config.state_size().total,
        model_gflops_per_s: 6.0 * forward_macs_per_token(&bench.config) * tokens as f64
            / seconds
            / 1e9,
    }
}

/// Times a streaming evaluation of `total_len` tokens (batch 1) in segments of `segment_len`,
/// computing the per-token loss of each segment and dropping its logits.
pub fn bench_streaming(bench: &BenchModel, total_len: usize, segment_len: usize) -> BenchResult {
    let device = Device::flex();
    let model = Model::init(&bench.config, 0, &device).expect("reference configs are valid");
    let ids = tokens(1, total_len + 1, bench.config.vocab_size, 1, &device);
    let inputs = ids.clone().narrow(1, 0, total_len);
    reset_peak_rss();
    let start = Instant::now();
    let mut loss_sum = 0.0f64;
    model.forward_streaming(
        inputs,
        segment_len,
        None,
        &ScanHooks::default(),
        |begin, logits| {
            let len = logits.dims()[1];
            let targets = ids.clone().narrow(1, begin + 1, len);
            loss_sum += token_losses(logits, targets)
                .iter()
                .map(|&l| l as f64)
                .sum::<f64>();
        },
    );
    let seconds = start.elapsed().as_secs_f64();
    assert!(loss_sum.is_finite());
    BenchResult {
        model: bench.name.to_string(),
        mode: format!("stream/{segment_len}"),
        seq_len: total_len,
        tokens_per_step: segment_len,
        chunk_size: bench.config.chunk_size,
        tokens_per_s: total_len as f64 / seconds,
        seconds_per_step: seconds * segment_len as f64 / total_len as f64,
        peak_rss_mib: peak_rss_mib(),
        mixer: bench.config.mixer.name().to_string(),
        state_size: bench.config.state_size().total,
        model_gflops_per_s: 2.0 * forward_macs_per_token(&bench.config) * total_len as f64
            / seconds
            / 1e9,
    }
}

/// Resets the kernel's peak-RSS counter of this process (Linux; no-op elsewhere).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size of this process in MiB since the last reset (Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
