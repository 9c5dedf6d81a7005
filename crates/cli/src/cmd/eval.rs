//! `forgetlab eval ...`: per-position loss, the forget verdict, passkey retrieval, state
//! diagnostics and mitigations for a trained run; and the exact passkey prompt text.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use forgetlab_data::{Tokenizer, passkey};
use forgetlab_eval::run_eval::{RunEval, verdict_from_files};
use forgetlab_runs::config::{Mitigation, VerdictCurve};
use forgetlab_runs::{DirLock, RunConfig, RunDir};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: EvalCommand,
}

/// Inference-time interventions (override the run's `[eval.mitigation]`).
#[derive(clap::Args, Clone, Default)]
struct MitigationArgs {
    /// RRI: multiply the decay α_t by this (in log space, after the softplus).
    #[arg(long)]
    rri_alpha: Option<f64>,
    /// RRI: multiply B_t by this.
    #[arg(long)]
    rri_b: Option<f64>,
    /// Multiply Δ_t by this after the softplus.
    #[arg(long)]
    dt_scale: Option<f64>,
    /// Clip each head's state norm to this multiple of its norm at T_train.
    #[arg(long)]
    state_norm_clip: Option<f64>,
    /// Read outputs from the state of the last R tokens only (exact sliding window).
    #[arg(long, value_name = "R")]
    sliding_window: Option<usize>,
}

impl MitigationArgs {
    fn apply(&self, m: &mut Mitigation) {
        m.rri_alpha = self.rri_alpha.or(m.rri_alpha);
        m.rri_b = self.rri_b.or(m.rri_b);
        m.dt_scale = self.dt_scale.or(m.dt_scale);
        m.state_norm_clip = self.state_norm_clip.or(m.state_norm_clip);
        m.sliding_window = self.sliding_window.or(m.sliding_window);
    }
}

/// Options shared by the evaluations of a run.
#[derive(clap::Args, Clone)]
struct RunArgs {
    /// The run directory.
    run: PathBuf,
    /// Device: cpu, wgpu, cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Per-position horizon in tokens (default: eval.horizon_factor x T_train).
    #[arg(long)]
    horizon: Option<usize>,
    /// Number of random text windows.
    #[arg(long)]
    windows: Option<usize>,
    /// Bucket size in tokens.
    #[arg(long)]
    bucket: Option<usize>,
    #[command(flatten)]
    mitigation: MitigationArgs,
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Per-position loss, diagnostics, verdict and passkey, as the run's [eval] says.
    All(RunArgs),
    /// Per-token loss from position 0 to the horizon (table + plot).
    PerPosition(RunArgs),
    /// Recompute the forget verdict from the stored per-position table and diagnostics (no
    /// model is run), under the run's [eval.verdict] or the options given here.
    Verdict {
        /// The run directory.
        run: PathBuf,
        /// The margin in nats (eval.verdict.epsilon).
        #[arg(long)]
        epsilon: Option<f64>,
        /// Confidence level of the intervals (eval.verdict.confidence).
        #[arg(long)]
        confidence: Option<f64>,
        /// The deciding curve: raw or excess (eval.verdict.on).
        #[arg(long, value_parser = ["raw", "excess"])]
        on: Option<String>,
    },
    /// Passkey retrieval accuracy, heatmap and T_recall.
    Passkey {
        #[command(flatten)]
        run: RunArgs,
        /// Context lengths in tokens (comma-separated).
        #[arg(long, value_delimiter = ',')]
        lengths: Vec<usize>,
        /// Samples per length.
        #[arg(long)]
        samples: Option<usize>,
    },
    /// Decay, retention and state statistics per layer and head over time.
    Diagnostics {
        #[command(flatten)]
        run: RunArgs,
        /// Sample every this many tokens.
        #[arg(long)]
        sample_every: Option<usize>,
        /// Length of the diagnostic sequence.
        #[arg(long)]
        length: Option<usize>,
    },
    /// Print the exact passkey prompt text fed for one sample.
    PasskeyPrompt {
        #[arg(long)]
        tokenizer: PathBuf,
        /// Context length in tokens.
        #[arg(long)]
        length: usize,
        /// Relative needle position in (0, 1).
        #[arg(long)]
        depth: f64,
        /// The 5-digit passkey.
        #[arg(long)]
        passkey: String,
        /// Prepend the end-of-text token, as `use_bos` does.
        #[arg(long)]
        use_bos: bool,
    },
}

/// Opens the run for evaluation, with the lock on its directory to hold while writing there.
fn open(args: &RunArgs, edit: impl FnOnce(&mut RunConfig)) -> Result<(RunEval, DirLock)> {
    let run = RunDir::new(&args.run);
    let mut config = RunConfig::load(&run.config())
        .with_context(|| format!("{} is not a run directory", args.run.display()))?;
    if let Some(h) = args.horizon {
        config.eval.horizon = Some(h);
    }
    if let Some(w) = args.windows {
        config.eval.windows = w;
    }
    if let Some(b) = args.bucket {
        config.eval.bucket = Some(b);
    }
    args.mitigation.apply(&mut config.eval.mitigation);
    edit(&mut config);
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid option: {e}"))?;
    let device = forgetlab_model::device::parse_device(&args.device)?;
    let lock = DirLock::acquire(run.root())?;
    Ok((RunEval::open(run, Some(config), &device)?, lock))
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        EvalCommand::All(args) => {
            let (eval, _lock) = open(&args, |_| {})?;
            let verdict = eval.all()?;
            println!("{}: {}", eval.run.name(), verdict.note);
        }
        EvalCommand::PerPosition(args) => {
            let (eval, _lock) = open(&args, |_| {})?;
            let mitigation = eval.config.eval.mitigation.clone();
            let report = eval.per_position(&mitigation)?;
            println!(
                "wrote {}",
                eval.run.per_position(&report.mitigation.label()).display()
            );
        }
        EvalCommand::Verdict {
            run,
            epsilon,
            confidence,
            on,
        } => {
            let run_dir = RunDir::new(&run);
            let mut config = RunConfig::load(&run_dir.config())
                .with_context(|| format!("{} is not a run directory", run.display()))?;
            let v = &mut config.eval.verdict;
            v.epsilon = epsilon.unwrap_or(v.epsilon);
            v.confidence = confidence.unwrap_or(v.confidence);
            match on.as_deref() {
                Some("raw") => v.on = VerdictCurve::Raw,
                Some("excess") => v.on = VerdictCurve::Excess,
                _ => {}
            }
            config
                .validate()
                .map_err(|e| anyhow::anyhow!("invalid option: {e}"))?;
            let _lock = DirLock::acquire(run_dir.root())?;
            let verdict = verdict_from_files(&run_dir, &config)?;
            println!("{}: {}", run_dir.name(), verdict.note);
        }
        EvalCommand::Passkey {
            run,
            lengths,
            samples,
        } => {
            let (eval, _lock) = open(&run, |c| {
                if !lengths.is_empty() {
                    c.eval.passkey.lengths = lengths.clone();
                }
                if let Some(s) = samples {
                    c.eval.passkey.samples = s;
                }
            })?;
            let mitigation = eval.config.eval.mitigation.clone();
            let summary = eval.passkey(&mitigation)?;
            for (length, acc) in summary.lengths.iter().zip(&summary.accuracy) {
                println!("length {length:>8}: accuracy {acc:.3}");
            }
            match summary.t_recall {
                Some(t) => println!("T_recall = {t} tokens (accuracy >= {})", summary.threshold),
                None => println!("T_recall: no length reaches accuracy {}", summary.threshold),
            }
        }
        EvalCommand::Diagnostics {
            run,
            sample_every,
            length,
        } => {
            let (eval, _lock) = open(&run, |c| {
                if let Some(s) = sample_every {
                    c.eval.diagnostics.sample_every = s;
                }
                if length.is_some() {
                    c.eval.diagnostics.length = length;
                }
            })?;
            let mitigation = eval.config.eval.mitigation.clone();
            eval.diagnostics(&mitigation)?;
            println!("wrote {}", eval.run.diagnostics().display());
        }
        EvalCommand::PasskeyPrompt {
            tokenizer,
            length,
            depth,
            passkey: key,
            use_bos,
        } => {
            let tokenizer = Tokenizer::from_file(&tokenizer)?;
            let prompt = passkey::build(&tokenizer, length, depth, &key, use_bos)?;
            print!("{}", prompt.text);
        }
    }
    Ok(())
}
