//! Per-position loss with the streaming forward: equal to one long chunked pass, and flat in
//! memory out to a million tokens.

use burn::prelude::*;
use forgetlab_eval::per_position::{PerPositionOptions, cut_windows, stream_losses};
use forgetlab_model::bench::{peak_rss_mib, reset_peak_rss};
use forgetlab_model::{Model, ModelConfig, ScanHooks};

fn tiny(vocab: usize) -> Model {
    let mut config = ModelConfig::new(32, 2, vocab);
    config.d_state = 8;
    config.headdim = 16;
    config.chunk_size = 16;
    Model::init(&config, 4, &Device::flex()).unwrap()
}

fn pool(len: usize, vocab: u32) -> Vec<u32> {
    let mut x: u64 = 99;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) % vocab as u64) as u32
        })
        .collect()
}

fn losses(
    model: &Model,
    windows: &[Vec<u32>],
    horizon: usize,
    segment_len: usize,
    batch: usize,
) -> Vec<Vec<f32>> {
    let mut out = vec![vec![f32::NAN; horizon]; windows.len()];
    let options = PerPositionOptions {
        horizon,
        bucket: 8,
        segment_len,
        batch,
    };
    stream_losses(
        model,
        windows,
        &options,
        &ScanHooks::default(),
        |w, start, l| {
            out[w][start..start + l.len()].copy_from_slice(l);
        },
    );
    out
}

#[test]
fn streaming_per_position_loss_equals_one_chunked_pass() {
    let model = tiny(256);
    let windows = cut_windows(&pool(5000, 256), 3, 301).unwrap();
    let whole = losses(&model, &windows, 300, 300, 3);
    for (segment, batch) in [(7, 2), (64, 1), (129, 3)] {
        let streamed = losses(&model, &windows, 300, segment, batch);
        for (a, b) in whole.iter().flatten().zip(streamed.iter().flatten()) {
            assert!(
                a.is_finite() && (a - b).abs() < 1e-4,
                "segment {segment}: {a} vs {b}"
            );
        }
    }
    // The losses are those of one chunked forward over the whole window.
    let dev = Device::flex();
    let ids: Vec<i64> = windows[0].iter().map(|&t| t as i64).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, 301]), &dev);
    let (logits, _) = model.forward(ids.clone().narrow(1, 0, 300), None, &ScanHooks::default());
    let reference = burn::tensor::activation::log_softmax(logits.reshape([300, 256]), 1)
        .gather(1, ids.narrow(1, 1, 300).reshape([300, 1]))
        .neg()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    for (a, b) in whole[0].iter().zip(&reference) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn a_million_token_evaluation_runs_in_flat_memory() {
    let model = tiny(256);
    let mut peaks = Vec::new();
    for horizon in [65_536usize, 1_048_576] {
        let windows = cut_windows(&pool(horizon + 1, 256), 1, horizon + 1).unwrap();
        reset_peak_rss();
        let start = std::time::Instant::now();
        let mut sum = 0.0f64;
        let mut count = 0usize;
        let options = PerPositionOptions {
            horizon,
            bucket: horizon / 64,
            segment_len: 4096,
            batch: 1,
        };
        stream_losses(
            &model,
            &windows,
            &options,
            &ScanHooks::default(),
            |_, _, l| {
                sum += l.iter().map(|&v| v as f64).sum::<f64>();
                count += l.len();
            },
        );
        let peak = peak_rss_mib().expect("Linux reports peak RSS");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "horizon {horizon}: peak RSS {peak:.0} MiB, {:.0} tokens/s, mean loss {:.3}",
            horizon as f64 / secs,
            sum / count as f64
        );
        assert_eq!(count, horizon);
        peaks.push(peak);
    }
    // 16x the tokens may only add the input itself (4 MB of token ids) and noise.
    assert!(
        peaks[1] < peaks[0] + 48.0,
        "peak RSS grew with the horizon: {peaks:?} MiB"
    );
}
