//! `cargo bench -p forgetlab-model [-- --quick] [-- --chunk N]`: training and streaming
//! throughput of the reference configurations on the CPU backend. Prints one JSON object per
//! measurement and a table.

use forgetlab_model::bench::{HeadGradient, bench_streaming, bench_training, reference_models};

/// The same allocator and settings as the `forgetlab` binary (see crates/cli/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets mimalloc's process-wide `mi_option_purge_delay` (15) to -1: never purge.
        unsafe { libmimalloc_sys::mi_option_set(15, -1) };
    }
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let chunk = args
        .iter()
        .position(|a| a == "--chunk")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let steps = if quick { 1 } else { 3 };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut results = Vec::new();
    for model in reference_models(chunk) {
        for seq_len in [256, 1024, 4096] {
            for workers in [1, cores] {
                let r = bench_training(
                    &model,
                    seq_len,
                    8192,
                    steps,
                    HeadGradient::HandWritten,
                    workers,
                );
                println!("{}", serde_json::to_string(&r).expect("serialisable"));
                results.push(r);
                if cores == 1 {
                    break;
                }
            }
        }
        let r = bench_streaming(&model, if quick { 16384 } else { 65536 }, 4096);
        println!("{}", serde_json::to_string(&r).expect("serialisable"));
        results.push(r);
    }
    println!("\nmodel  mode              seq_len  tokens/s  s/step  peak RSS MiB");
    for r in &results {
        println!(
            "{:<6} {:<17} {:>7} {:>9.0} {:>7.3} {:>12}",
            r.model,
            r.mode,
            r.seq_len,
            r.tokens_per_s,
            r.seconds_per_step,
            r.peak_rss_mib
                .map(|m| format!("{m:.0}"))
                .unwrap_or_default()
        );
    }
}
