//! `forgetlab tokenizer train | info | encode`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use forgetlab_data::shards::{SkipCounts, read_shard, resolve_shards};
use forgetlab_data::{Tokenizer, train_bpe};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TokenizerCommand,
}

#[derive(Subcommand)]
enum TokenizerCommand {
    /// Train a byte-level BPE (<|endoftext|> = 0, <|padding|> = 1) on text or shards.
    Train {
        /// Shards, directories, globs or .txt files to learn from.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Vocabulary size.
        #[arg(long, default_value_t = 4096)]
        vocab: usize,
        /// Output tokenizer.json.
        #[arg(long)]
        output: PathBuf,
    },
    /// Vocabulary size, end-of-text id and sha256 of a tokenizer.json.
    Info { tokenizer: PathBuf },
    /// Token ids of a text.
    Encode { tokenizer: PathBuf, text: String },
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        TokenizerCommand::Train {
            paths,
            vocab,
            output,
        } => {
            let files = resolve_shards(&paths)?;
            // Shards are flattened to one text file so the trainer sees plain text.
            let tmp = tempfile::NamedTempFile::new().context("temporary file")?;
            {
                use std::io::Write;
                let mut out = std::io::BufWriter::new(tmp.as_file());
                let mut skipped = SkipCounts::new();
                for f in &files {
                    read_shard(f, false, &mut skipped, |r| {
                        out.write_all(r.text.as_bytes())
                            .and_then(|_| out.write_all(b"\n"))
                            .map_err(|e| forgetlab_data::DataError::Io {
                                path: f.clone(),
                                error: e,
                            })
                    })?;
                }
                out.flush().context("writing training text")?;
            }
            if vocab < 300 {
                bail!("--vocab must be at least 300 (256 bytes plus merges and special tokens)");
            }
            let tok = train_bpe(&[tmp.path().to_path_buf()], vocab, &output)?;
            println!(
                "{}: {} tokens, sha256 {}",
                output.display(),
                tok.vocab_size(),
                tok.sha256()
            );
        }
        TokenizerCommand::Info { tokenizer } => {
            let tok = Tokenizer::from_file(&tokenizer)?;
            println!(
                "{}: vocab {} (with added tokens), eos id {}, sha256 {}",
                tokenizer.display(),
                tok.vocab_size(),
                tok.eos_id(),
                tok.sha256()
            );
        }
        TokenizerCommand::Encode { tokenizer, text } => {
            let tok = Tokenizer::from_file(&tokenizer)?;
            println!("{:?}", tok.encode(&text)?);
        }
    }
    Ok(())
}
