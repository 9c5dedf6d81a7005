//! The training loop, top to bottom in one function: [`train`].
//!
//! One optimizer step consumes `tokens_per_step` tokens as micro-batches of whole sequences.
//! Each sequence of T tokens runs as T / segment_len segments with the recurrent state passed
//! between them; with `state_passing = "bptt"` the gradient flows through the carried state
//! (one backward per sequence), with `"detach"` each segment is its own backward (truncated
//! BPTT). Losses are scaled by 1/tokens_per_step so the accumulated gradient is that of the
//! mean token loss of the step, whatever the micro-batching. With `workers` > 1 the
//! micro-batches run concurrently on model replicas (`forgetlab_model::parallel`), one worker
//! per CPU core or per listed device, and are summed in order, so the result is the same.

use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use forgetlab_data::{HeldOut, Tokenizer, TrainStream, data_identity, heldout_stream};
use forgetlab_model::loss::token_losses;
use forgetlab_model::parallel::{LossAndGradients, summed_gradients};
use forgetlab_model::{Model, ModelState, ScanHooks};
use forgetlab_runs::config::{Precision, RunConfig, StatePassing};
use forgetlab_runs::provenance::{DataIdentity, DataProvenance};
use forgetlab_runs::{MetricKind, MetricRecord, RunDir, RunState};

use crate::checkpoint::{self, TrainerState};
use crate::error::TrainError;
use crate::logger::Logger;
use crate::optimizer::{adamw, clip_global_norm};
use crate::schedule::learning_rate;
use crate::signals::StopFlag;

/// How a training process behaves around the loop.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Show a progress bar when stdout is a terminal.
    pub progress: bool,
    /// Set by signal handlers (or a test) to checkpoint and stop.
    pub stop: StopFlag,
    /// Start over from step 0, moving the run's old checkpoints, logs and results aside to
    /// `<run>/.old/restart-<unix time>/` first (see [`crate::restart`]).
    pub restart: bool,
}

/// How a call to [`train`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainOutcome {
    /// The token budget is spent; final weights are in `model/`.
    Completed {
        steps: u64,
        final_val_loss: Option<f64>,
    },
    /// Stopped on request after checkpointing step `step`; resumable.
    Interrupted { step: u64 },
}

/// Trains (or resumes) the run in `run`. If `config` is given it is written into the run
/// directory (a run directory with checkpoints must hold the same config); otherwise the
/// directory's own config.toml is used. Resumes from the newest intact checkpoint, after
/// checking that the experiment, the tokenizer and the data are those the run started with;
/// every refusal happens before anything in the run directory changes.
pub fn train(
    run: &RunDir,
    config: Option<&RunConfig>,
    options: &TrainOptions,
) -> Result<TrainOutcome, TrainError> {
    if options.restart {
        crate::restart::set_aside(run)?;
    }
    let config = prepare_run_dir(run, config)?;
    let total_steps = config.train.total_steps();
    let restored = checkpoint::latest(run)?;
    if let Some(r) = &restored {
        check_same_experiment(run, r, &config)?;
    }
    let provenance = check_provenance(run, &config, restored.is_some())?;
    let start_step = restored.as_ref().map_or(0, |r| r.state.step);
    let mut logger = Logger::open(run, start_step, total_steps, options.progress)?;
    let mut status = logger.status_now(RunState::Running, start_step, 0);
    status.last_checkpoint = restored.as_ref().map(|r| r.state.step);
    logger.status(&status)?;

    let result = run_loop(run, &config, restored, provenance, &mut logger, options);
    let final_status = match &result {
        Ok(TrainOutcome::Completed { steps, .. }) => {
            let mut s = logger.status_now(
                RunState::Completed,
                *steps,
                *steps * config.train.tokens_per_step as u64,
            );
            s.last_checkpoint = Some(*steps);
            s
        }
        Ok(TrainOutcome::Interrupted { step }) => {
            let mut s = logger.status_now(
                RunState::Interrupted,
                *step,
                *step * config.train.tokens_per_step as u64,
            );
            s.reason = Some("interrupted by a signal after checkpointing; resumable".to_string());
            s.resumable = true;
            s.last_checkpoint = run.complete_checkpoints().last().copied();
            s
        }
        Err(err) => {
            let last = run.complete_checkpoints().last().copied();
            let step = match err {
                TrainError::NonFinite { step, .. } => step - 1,
                _ => last.unwrap_or(0),
            };
            let mut s = logger.status_now(
                RunState::Failed,
                step,
                step * config.train.tokens_per_step as u64,
            );
            s.reason = Some(err.to_string());
            s.resumable = false;
            s.last_checkpoint = last;
            s
        }
    };
    logger.finish();
    logger.status(&final_status)?;
    result
}

/// Writes (or checks) the resolved config.toml and returns the config to train. A run with
/// checkpoints may continue under other execution settings (device, threads, workers), never
/// under another experiment.
fn prepare_run_dir(run: &RunDir, config: Option<&RunConfig>) -> Result<RunConfig, TrainError> {
    std::fs::create_dir_all(run.root()).map_err(TrainError::io(run.root()))?;
    let existing = run
        .config()
        .is_file()
        .then(|| RunConfig::load(&run.config()))
        .transpose()?;
    let Some(config) = config else {
        return existing.ok_or_else(|| TrainError::Invalid {
            message: format!("{} has no config.toml to resume from", run.root().display()),
        });
    };
    let cwd = std::env::current_dir().map_err(TrainError::io(run.root()))?;
    let resolved = config.with_absolute_paths(&cwd);
    if let Some(existing) = existing
        && !existing.same_experiment(&resolved)
        && !run.complete_checkpoints().is_empty()
    {
        let changes = existing.experiment_changes(&resolved);
        return Err(TrainError::Invalid {
            message: format!(
                "{} already holds checkpoints of a different config ({}); resume it with `forgetlab train --resume {}`, start it over with --restart, or choose another --run-dir",
                run.root().display(),
                changes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                run.root().display()
            ),
        });
    }
    forgetlab_runs::write_atomic(&run.config(), resolved.to_toml().as_bytes())
        .map_err(TrainError::io(&run.config()))?;
    Ok(resolved)
}

/// Refuses to resume `restored` under a config that differs from the one it was trained
/// under, except in execution settings, naming the changed keys.
fn check_same_experiment(
    run: &RunDir,
    restored: &checkpoint::Restored,
    config: &RunConfig,
) -> Result<(), TrainError> {
    let Some(trained) = &restored.config else {
        tracing::info!(
            "{} records no run config (written by an older forgetlab): config edits are not checked",
            restored.dir.display()
        );
        return Ok(());
    };
    let changes = trained.experiment_changes(config);
    if changes.is_empty() {
        return Ok(());
    }
    Err(TrainError::ConfigChanged {
        config: run.config(),
        run: run.root().to_path_buf(),
        step: restored.state.step,
        changes,
    })
}

/// The tokenizer and data of a run as they are now, and the run's record of them.
struct Provenance {
    data: DataIdentity,
    /// `data.json` as the run started it, when resuming.
    recorded: Option<DataProvenance>,
}

/// On resume, checks the tokenizer's sha256 and the data's identity against `data.json`,
/// refusing with both values when either changed.
fn check_provenance(
    run: &RunDir,
    config: &RunConfig,
    resuming: bool,
) -> Result<Provenance, TrainError> {
    let data = data_identity(&config.data)?;
    if !resuming {
        return Ok(Provenance {
            data,
            recorded: None,
        });
    }
    let recorded = DataProvenance::read(run)?;
    match &recorded {
        Some(record) => {
            let tokenizer = Tokenizer::from_file(&config.data.tokenizer)?;
            record.check(run, &config.data.tokenizer, tokenizer.sha256(), &data)?;
            if record.data.is_none() {
                tracing::info!(
                    "{} records no data identity (written by an older forgetlab): the data is not checked; recording it now",
                    forgetlab_runs::provenance::path(run).display()
                );
            }
        }
        None => tracing::warn!(
            "{} is missing: the tokenizer and data cannot be checked against the run's start; recording them now",
            forgetlab_runs::provenance::path(run).display()
        ),
    }
    Ok(Provenance { data, recorded })
}

fn run_loop(
    run: &RunDir,
    config: &RunConfig,
    restored: Option<checkpoint::Restored>,
    provenance: Provenance,
    logger: &mut Logger,
    options: &TrainOptions,
) -> Result<TrainOutcome, TrainError> {
    let train = &config.train;
    let devices = forgetlab_model::device::parse_devices(&train.device)?;
    if let Some(device) = devices
        .iter()
        .find(|d| !forgetlab_model::precision::supported(d, train.precision))
    {
        return Err(TrainError::Unsupported(format!(
            "train.precision = {:?}: device {device:?} has no such float type; use f32",
            train.precision
        )));
    }
    if train.precision != Precision::F32 && devices.iter().any(forgetlab_model::device::is_cpu) {
        tracing::warn!(
            "train.precision = bf16 on the CPU is emulated through f32 products: slower than f32, useful only to check numerics"
        );
    }
    // Before anything is allocated; the estimate is of host memory, so only for the CPU.
    if devices.iter().all(forgetlab_model::device::is_cpu) {
        crate::memory::check_available(config)?;
    }
    let device = devices[0].clone();
    let autodiff = device.clone().autodiff();
    // Worker k computes micro-batches on device k mod the number of devices.
    let workers: Vec<Device> = (0..train.workers())
        .map(|k| devices[k % devices.len()].clone().autodiff())
        .collect();
    let total_steps = train.total_steps();

    // Data: the stream continues exactly where the checkpoint left it.
    let mut stream = match &restored {
        Some(r) => TrainStream::resume(&config.data, train.seq_len, config.seed, &r.state.cursor)?,
        None => TrainStream::open(&config.data, train.seq_len, config.seed)?,
    };
    check_vocab(config, stream.tokenizer().vocab_size())?;
    let report = stream.report();
    tracing::info!(
        "data: {} documents / {} tokens eligible, token cache {}{}",
        report.eligible_documents,
        report.eligible_tokens,
        report.cache_dir.display(),
        if report.skipped.is_empty() {
            String::new()
        } else {
            format!(", skipped records {:?}", report.skipped)
        }
    );
    record_data_provenance(run, config, &stream, provenance)?;
    let validation = validation_sequences(&mut heldout_stream(&config.data)?, config)?;

    // Model and optimizer, fresh or restored (parameter ids come back with the weights and
    // key the optimizer state).
    let mut model =
        Model::init(&config.model, config.seed, &autodiff)?.with_precision(train.precision);
    let mut trainer = TrainerState {
        step: 0,
        tokens: 0,
        elapsed_s: 0.0,
        cursor: stream.cursor(),
        seed: config.seed,
        last_lr: 0.0,
    };
    if let Some(r) = &restored {
        model = r.model(model)?;
        model = model.with_precision(train.precision);
        trainer = r.state.clone();
        tracing::info!("resumed {} from step {}", run.name(), trainer.step);
    } else {
        tracing::info!(
            "training {}: {} params, N_S = {:.4}M, {} steps of {} tokens at length {}",
            run.name(),
            config.model.param_count(),
            config.model.state_size().millions(),
            total_steps,
            train.tokens_per_step,
            train.seq_len
        );
    }
    let mut optimizer = adamw(&config.optim, &model);
    if let Some(r) = &restored {
        optimizer = r.optimizer(optimizer)?;
    }

    let sequences_per_micro = train.sequences_per_micro_batch();
    let micro_batches = train.sequences_per_step() / sequences_per_micro;
    let loss_scale = 1.0 / train.tokens_per_step as f64;
    let session_start = Instant::now();
    let elapsed_before = trainer.elapsed_s;
    let mut interval_start = (Instant::now(), trainer.tokens);

    while trainer.step < total_steps {
        if options.stop.is_set() {
            return interrupt(run, config, &model, &optimizer, &trainer);
        }
        let step = trainer.step + 1;
        let cursor_before = stream.cursor();
        let micro_batch_tokens = (0..micro_batches)
            .map(|_| stream.next_sequences(sequences_per_micro))
            .collect::<Result<Vec<_>, _>>()?;
        let summed = summed_gradients(
            &model,
            &autodiff,
            &workers,
            micro_batch_tokens,
            |replica, device, tokens| {
                micro_batch_gradients(
                    replica,
                    &tokens,
                    sequences_per_micro,
                    config,
                    loss_scale,
                    device,
                )
            },
            || options.stop.is_set(),
        );
        let Some(LossAndGradients {
            loss: step_loss,
            mut grads,
        }) = summed
        else {
            // Abandon the partial step: the checkpoint is the state before it.
            trainer.cursor = cursor_before;
            return interrupt(run, config, &model, &optimizer, &trainer);
        };
        if !step_loss.is_finite() {
            return Err(TrainError::NonFinite {
                step,
                loss: step_loss,
            });
        }
        let grad_norm = clip_global_norm(&model, &mut grads, config.optim.grad_clip);
        let lr = learning_rate(&config.optim, step, total_steps);
        model = optimizer.step(lr, model, grads);

        trainer.step = step;
        trainer.tokens += train.tokens_per_step as u64;
        trainer.cursor = stream.cursor();
        trainer.last_lr = lr;
        trainer.elapsed_s = elapsed_before + session_start.elapsed().as_secs_f64();

        if step.is_multiple_of(train.log_every as u64) || step == total_steps {
            let (since, tokens_then) = interval_start;
            let tokens_per_s =
                (trainer.tokens - tokens_then) as f64 / since.elapsed().as_secs_f64().max(1e-9);
            logger.record(&MetricRecord {
                kind: MetricKind::Train,
                step,
                tokens: trainer.tokens,
                loss: step_loss,
                lr: Some(lr),
                grad_norm: Some(grad_norm),
                tokens_per_s: Some(tokens_per_s),
                elapsed_s: trainer.elapsed_s,
            })?;
            let mut status = logger.status_now(RunState::Running, step, trainer.tokens);
            status.last_checkpoint = run.complete_checkpoints().last().copied();
            logger.status(&status)?;
            interval_start = (Instant::now(), trainer.tokens);
        }
        let validate_now = train.val_every > 0 && step.is_multiple_of(train.val_every as u64);
        if validate_now || step == total_steps {
            let val = validation_loss(&model, &validation, config, &device);
            logger.record(&MetricRecord {
                kind: MetricKind::Val,
                step,
                tokens: trainer.tokens,
                loss: val,
                lr: None,
                grad_norm: None,
                tokens_per_s: None,
                elapsed_s: trainer.elapsed_s,
            })?;
        }
        let checkpoint_now =
            train.checkpoint_every > 0 && step.is_multiple_of(train.checkpoint_every as u64);
        if checkpoint_now || step == total_steps {
            let started = Instant::now();
            checkpoint::save(run, &model, &optimizer, &trainer, config)?;
            tracing::debug!(
                "checkpoint step {step} written in {:.3}s",
                started.elapsed().as_secs_f64()
            );
        }
    }

    forgetlab_model::checkpoint::save(&model.valid(), &run.final_model())?;
    let final_val_loss =
        forgetlab_runs::read_metrics(&run.metrics())
            .ok()
            .and_then(|(records, _)| {
                records
                    .iter()
                    .rev()
                    .find(|r| r.kind == MetricKind::Val)
                    .map(|r| r.loss)
            });
    Ok(TrainOutcome::Completed {
        steps: trainer.step,
        final_val_loss,
    })
}

fn interrupt(
    run: &RunDir,
    config: &RunConfig,
    model: &Model,
    optimizer: &burn::optim::ModuleOptimizer,
    trainer: &TrainerState,
) -> Result<TrainOutcome, TrainError> {
    if trainer.step > 0 {
        checkpoint::save(run, model, optimizer, trainer, config)?;
    }
    tracing::warn!(
        "stop requested: checkpointed step {}; resumable",
        trainer.step
    );
    Ok(TrainOutcome::Interrupted { step: trainer.step })
}

/// Forward and backward of one micro-batch (`batch` sequences of seq_len + 1 tokens, flat) on
/// `model` (the model or a replica of it on `device`): its gradients and its contribution to
/// the step's mean loss.
fn micro_batch_gradients(
    model: &Model,
    tokens: &[u32],
    batch: usize,
    config: &RunConfig,
    loss_scale: f64,
    device: &Device,
) -> LossAndGradients {
    let seq_len = config.train.seq_len;
    let segment = config.train.segment_len();
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, seq_len + 1]), device);
    let hooks = ScanHooks::default();
    let mut accumulator = GradientsAccumulator::<Model>::new();
    let mut state: Option<ModelState> = None;
    let mut pending: Option<Tensor<1>> = None;
    let mut total = 0.0;
    let segments = seq_len / segment;
    for s in 0..segments {
        let inputs = ids.clone().narrow(1, s * segment, segment);
        let targets = ids.clone().narrow(1, s * segment + 1, segment);
        let (loss, next) = model.forward_loss(inputs, targets, state, &hooks, loss_scale as f32);
        total += loss.value.into_scalar::<f32>() as f64;
        pending = Some(match pending.take() {
            Some(p) => p + loss.surrogate,
            None => loss.surrogate,
        });
        state = Some(next);
        let last = s + 1 == segments;
        if last || config.train.state_passing == StatePassing::Detach {
            let surrogate = pending.take().expect("a loss was just added");
            let grads = GradientsParams::from_grads(surrogate.backward(), model);
            accumulator.accumulate(model, grads);
            state = state.map(ModelState::detach);
        }
    }
    LossAndGradients {
        loss: total,
        grads: accumulator.grads(),
    }
}

fn check_vocab(config: &RunConfig, tokenizer_vocab: usize) -> Result<(), TrainError> {
    if tokenizer_vocab > config.model.vocab_size {
        return Err(TrainError::Invalid {
            message: format!(
                "model.vocab_size = {} is smaller than the {tokenizer_vocab} tokens of {}",
                config.model.vocab_size,
                config.data.tokenizer.display()
            ),
        });
    }
    Ok(())
}

/// `data.json`: which tokenizer (by sha256) and data the run used, written when the run
/// starts and never rewritten on resume (an older record only gains the data identity).
fn record_data_provenance(
    run: &RunDir,
    config: &RunConfig,
    stream: &TrainStream,
    provenance: Provenance,
) -> Result<(), TrainError> {
    let record = match provenance.recorded {
        Some(record) if record.data.is_some() => return Ok(()),
        Some(record) => DataProvenance {
            data: Some(provenance.data),
            ..record
        },
        None => {
            let report = stream.report();
            DataProvenance {
                tokenizer: config.data.tokenizer.clone(),
                tokenizer_sha256: stream.tokenizer().sha256().to_string(),
                tokenizer_vocab_size: stream.tokenizer().vocab_size(),
                train: config.data.train.clone(),
                validation: config.data.validation.clone(),
                packing: config.data.packing,
                token_cache: report.cache_dir,
                eligible_documents: report.eligible_documents,
                eligible_tokens: report.eligible_tokens,
                skipped_records: report.skipped,
                data: Some(provenance.data),
            }
        }
    };
    Ok(record.write(run)?)
}

/// Held-out sequences of seq_len + 1 tokens for validation, fixed for the whole run.
fn validation_sequences(heldout: &mut HeldOut, config: &RunConfig) -> Result<Vec<u32>, TrainError> {
    let window = config.train.seq_len + 1;
    let wanted = config.train.val_tokens.max(window);
    let tokens = heldout.tokens(wanted.div_ceil(window) * window)?;
    let usable = tokens.len() / window * window;
    if usable == 0 {
        return Err(TrainError::Invalid {
            message: format!(
                "held-out text has {} tokens, fewer than one validation sequence of {window}",
                tokens.len()
            ),
        });
    }
    Ok(tokens[..usable].to_vec())
}

/// Mean next-token loss on the validation sequences, without gradients, with the training
/// segmentation.
fn validation_loss(model: &Model, sequences: &[u32], config: &RunConfig, device: &Device) -> f64 {
    let model = model.valid();
    let window = config.train.seq_len + 1;
    let batch = config.train.sequences_per_micro_batch().max(1);
    let hooks = ScanHooks::default();
    let mut sum = 0.0f64;
    let mut count = 0usize;
    for chunk in sequences.chunks(batch * window) {
        let rows = chunk.len() / window;
        let ids: Vec<i64> = chunk.iter().map(|&t| t as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [rows, window]), device);
        let inputs = ids.clone().narrow(1, 0, config.train.seq_len);
        model.forward_streaming(
            inputs,
            config.train.segment_len(),
            None,
            &hooks,
            |start, logits| {
                let len = logits.dims()[1];
                let targets = ids.clone().narrow(1, start + 1, len);
                sum += token_losses(logits, targets)
                    .iter()
                    .map(|&l| l as f64)
                    .sum::<f64>();
                count += rows * len;
            },
        );
    }
    sum / count.max(1) as f64
}
