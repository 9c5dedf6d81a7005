//! `cargo bench -p forgetlab-data`: tokenize-and-pack throughput (MB/s and tokens/s, 1 and 2
//! threads) into a token cache, and reads of packed sequences from the cache, on the fetched
//! corpus (`forgetlab data fetch`) with the GPT-NeoX tokenizer and the 4K BPE.

use std::path::Path;
use std::time::Instant;

use forgetlab_data::{Tokenizer, TrainStream, prepare_cache};
use forgetlab_runs::config::{DataConfig, Packing, SyntheticConfig};

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/corpus");
    if !corpus.join("slimpajama").is_dir() {
        eprintln!("the corpus is missing: run `forgetlab data fetch` first");
        std::process::exit(1);
    }
    let scratch = tempfile::tempdir().expect("temporary directory");
    let data = |tokenizer: &str, cache: &str| DataConfig {
        train: vec![format!(
            "{}/slimpajama/train/**/*.jsonl.zst",
            corpus.display()
        )],
        validation: vec![format!(
            "{}/slimpajama/validation/**/*.jsonl.zst",
            corpus.display()
        )],
        validation_fraction: 0.0,
        tokenizer: corpus.join(tokenizer),
        packing: Packing::Concat,
        min_doc_tokens: 0,
        sources: Vec::new(),
        skip_bad: false,
        cache_dir: Some(scratch.path().join(cache)),
        synthetic: SyntheticConfig::default(),
    };
    println!("tokenizer               threads  MB/s   tokens/s   (tokenize + pack into the cache)");
    for tokenizer in ["gpt-neox-20b-tokenizer.json", "tokenizer-4k.json"] {
        for threads in [1, 2] {
            let config = data(tokenizer, &format!("{tokenizer}-{threads}"));
            let tok = Tokenizer::from_file(&config.tokenizer).expect("tokenizer");
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let start = Instant::now();
            let manifest = pool
                .install(|| {
                    prepare_cache(&config, &tok, config.cache_dir.as_ref().expect("set"), true)
                })
                .expect("prepare");
            let secs = start.elapsed().as_secs_f64();
            let bytes = (manifest.train.bytes + manifest.heldout.bytes) as f64;
            let tokens = (manifest.train.tokens + manifest.heldout.tokens) as f64;
            println!(
                "{tokenizer:<24}{threads:>4} {:>7.2} {:>10.0}",
                bytes / 1e6 / secs,
                tokens / secs
            );
        }
    }
    println!("\nsequence length  tokens/s  (packed sequences read from the cache, 4K BPE)");
    for seq_len in [256usize, 4096] {
        let config = data("tokenizer-4k.json", "tokenizer-4k.json-2");
        let mut stream = TrainStream::open(&config, seq_len, 0).expect("stream");
        let rows = (1 << 16) / (seq_len + 1) + 1;
        let start = Instant::now();
        let mut total = 0usize;
        while total < 100_000_000 {
            total += stream.next_sequences(rows).expect("sequences").len();
        }
        println!(
            "{seq_len:>15} {:>10.0}",
            total as f64 / start.elapsed().as_secs_f64()
        );
    }
}
