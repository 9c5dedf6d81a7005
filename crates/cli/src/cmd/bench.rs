//! `forgetlab bench`: throughput and memory measurements whose numbers go into reports.

use anyhow::Result;
use clap::Subcommand;
use forgetlab_model::bench::{BenchResult, bench_streaming, bench_training, reference_models};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Model alone: training (forward + backward) and streaming-eval tokens/s and peak memory
    /// for the reference configurations A and B at sequence lengths 256, 1024 and 4096.
    Model {
        /// One timed step per point and a shorter streaming run.
        #[arg(long)]
        quick: bool,
        /// SSD chunk size.
        #[arg(long, default_value_t = 64)]
        chunk: usize,
        /// Tokens per training step.
        #[arg(long, default_value_t = 8192)]
        tokens_per_step: usize,
        /// Sequence lengths to measure.
        #[arg(long, value_delimiter = ',', default_values_t = [256, 1024, 4096])]
        lengths: Vec<usize>,
        /// Print one JSON object per measurement instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        BenchCommand::Model {
            quick,
            chunk,
            tokens_per_step,
            lengths,
            json,
        } => {
            let steps = if quick { 1 } else { 3 };
            let stream_len = if quick { 16_384 } else { 65_536 };
            let mut results = Vec::new();
            for model in reference_models(chunk) {
                for &seq_len in &lengths {
                    tracing::info!("model {} training at length {seq_len}", model.name);
                    results.push(bench_training(&model, seq_len, tokens_per_step, steps));
                }
                tracing::info!("model {} streaming {stream_len} tokens", model.name);
                results.push(bench_streaming(&model, stream_len, 4096));
            }
            print_results(&results, json)
        }
    }
}

fn print_results(results: &[BenchResult], json: bool) -> Result<()> {
    if json {
        for r in results {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    println!("model  mode           seq_len  tokens/step  tokens/s   s/step  peak RSS MiB");
    for r in results {
        println!(
            "{:<6} {:<13} {:>8} {:>12} {:>9.0} {:>8.3} {:>13}",
            r.model,
            r.mode,
            r.seq_len,
            r.tokens_per_step,
            r.tokens_per_s,
            r.seconds_per_step,
            r.peak_rss_mib
                .map(|m| format!("{m:.0}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
