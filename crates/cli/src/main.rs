//! `forgetlab`: train Mamba-2 models of any state size at any length, evaluate whether they
//! learned to forget, and fit the T_forget(N_S) law. Each subcommand lives in `cmd/` and is a
//! thin layer over one library crate.

mod cmd;

/// Training allocates and frees tensors of tens of megabytes every step; glibc's malloc hands
/// those back to the kernel each time and pays for the page faults again (measured: a third
/// of training throughput). mimalloc keeps them; see also [`keep_freed_memory`].
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tells mimalloc never to return freed memory to the kernel. By default it does so after
/// 10 ms, and the next step's tensors then fault in freshly zeroed pages again (measured: a
/// tenth of a training step in the kernel's page clearing, about 15% of throughput). The
/// process keeps its peak footprint instead. `MIMALLOC_PURGE_DELAY` in the environment wins.
fn keep_freed_memory() {
    /// `mi_option_purge_delay` in mimalloc.h (v2 and v3): milliseconds, -1 = never purge.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide integer option; mimalloc reads it when it next purges.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "forgetlab", version, about = "State size, training length, and learning to forget in Mamba-2", long_about = None)]
struct Cli {
    /// Threads for CPU compute (default: all cores; also RAYON_NUM_THREADS).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Log filter, e.g. `info`, `debug`, `forgetlab_train=debug` (also RUST_LOG).
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect models and run the conformance forward.
    Model(cmd::model::Args),
    /// Read, inspect, fetch and cache training data.
    Data(cmd::data::Args),
    /// Train or inspect tokenizers.
    Tokenizer(cmd::tokenizer::Args),
    /// Train one run from a run config (resumes automatically).
    Train(cmd::train::Args),
    /// Evaluate a trained run: per-position loss, verdict, passkey, diagnostics.
    Eval(cmd::eval::Args),
    /// Fit T_forget(N_S) and T_recall(N_S) over an experiment's runs.
    Fit(cmd::fit::Args),
    /// Plan, run and track experiment grids, locally or on Slurm.
    Sweep(cmd::sweep::Args),
    /// Serve the live dashboard over a runs directory.
    Dashboard(cmd::dashboard::Args),
    /// Write a static HTML and Markdown report for an experiment.
    Report(cmd::report::Args),
    /// Measure model, data and training throughput.
    Bench(cmd::bench::Args),
    /// Fetch data, run the quickstart experiment end to end, and write its report.
    Quickstart(cmd::quickstart::Args),
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    cmd::init_logging(&cli.log);
    if let Some(threads) = cli.threads {
        cmd::set_threads(threads);
    }
    let result = match cli.command {
        Command::Model(args) => cmd::model::run(args),
        Command::Data(args) => cmd::data::run(args),
        Command::Tokenizer(args) => cmd::tokenizer::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Fit(args) => cmd::fit::run(args),
        Command::Sweep(args) => cmd::sweep::run(args),
        Command::Dashboard(args) => cmd::dashboard::run(args),
        Command::Report(args) => cmd::report::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Quickstart(args) => cmd::quickstart::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(interrupted) = err.downcast_ref::<cmd::Interrupted>() {
                eprintln!("forgetlab: {interrupted}");
                return ExitCode::from(cmd::EXIT_INTERRUPTED);
            }
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
