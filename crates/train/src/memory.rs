//! A rough memory estimate of a training run, checked before the model is allocated.
//!
//! A model too large for the machine otherwise dies in an allocation failure or by the OOM
//! killer, leaving a "running" status and no reason. The estimate counts what training keeps
//! alive: f32 parameters, AdamW's two moments, one gradient per worker plus their sum, the
//! activations of the micro-batches computed at once, and a fixed allowance for the process
//! itself (binary, tokenizer, data pages). It is an honest rough estimate, not a measurement:
//! the per-token activation count follows the mixer's tensors kept for the backward
//! (the fused loss never holds a whole micro-batch's logits, so they are not counted per
//! token) and was checked against the peak RSS of CPU training (2-layer d_model 64,
//! 8K and 32K tokens per micro-batch: 13.4 KB per token measured, 12.7 KB estimated), but
//! allocator slack and burn's temporaries vary with the backend, so it can be off by a factor
//! of about two. It only refuses runs whose estimate exceeds what is available; what fits
//! narrowly may still run out.

use forgetlab_runs::RunConfig;
use forgetlab_runs::config::{ModelConfig, StatePassing};

use crate::sysmem::Available;

const F32: u64 = 4;

/// The allowance for everything but the model and its batch (measured: about 70 MB).
pub const RUNTIME_BYTES: u64 = 128 << 20;

/// Bytes a training run needs, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// f32 weights.
    pub parameters: u64,
    /// AdamW's first and second moments.
    pub optimizer: u64,
    /// One gradient per concurrent worker, and the accumulated sum.
    pub gradients: u64,
    /// Activations of the micro-batches in flight, kept for the backward.
    pub activations: u64,
    /// The process itself: binary, tokenizer, data pages ([`RUNTIME_BYTES`]).
    pub runtime: u64,
    /// Tokens whose activations are alive at once.
    pub tokens_in_flight: u64,
}

impl MemoryEstimate {
    /// The whole estimate, in bytes.
    pub fn total(&self) -> u64 {
        self.parameters + self.optimizer + self.gradients + self.activations + self.runtime
    }
}

/// Estimates what training `config` needs (see the module documentation for how rough).
pub fn estimate(config: &RunConfig) -> MemoryEstimate {
    let m = &config.model;
    let t = &config.train;
    let params = m.param_count();
    let micro_batches = (t.sequences_per_step() / t.sequences_per_micro_batch().max(1)).max(1);
    let concurrent = t.workers().min(micro_batches) as u64;
    // With back-propagation through the carried state, a whole sequence's activations are
    // alive until its backward; detached segments free theirs segment by segment.
    let kept_len = match t.state_passing {
        StatePassing::Bptt => t.seq_len,
        StatePassing::Detach => t.segment_len(),
    } as u64;
    let tokens_in_flight = concurrent * t.sequences_per_micro_batch() as u64 * kept_len;

    let activations = F32 * m.n_layer as u64 * floats_per_token_and_layer(m) * tokens_in_flight;

    MemoryEstimate {
        parameters: F32 * params,
        optimizer: 2 * F32 * params,
        gradients: F32 * params * (concurrent + 1),
        activations,
        runtime: RUNTIME_BYTES,
        tokens_in_flight,
    }
}

/// Floats one token keeps alive in one layer until the backward, by the layer's tensors.
fn floats_per_token_and_layer(m: &ModelConfig) -> u64 {
    let d = m.d_model as u64;
    let heads = m.nheads() as u64;
    let chunk = m.chunk_size.max(1) as u64;
    match m.gated_deltanet_sizes() {
        // Mamba-2: norms and residual (2 d), in_proj's output, the convolution's output and
        // activation, the gated norm's inputs and output and y (4 d_inner), a row of the
        // intra-chunk score and decay matrices per head (2 H chunk), and the chunk states
        // shared by the chunk's tokens.
        None => {
            let state = heads * m.headdim as u64 * m.d_state as u64;
            2 * d
                + m.d_in_proj() as u64
                + 2 * m.conv_dim() as u64
                + 4 * m.d_inner() as u64
                + 2 * heads * chunk
                + 2 * state / chunk
        }
        // Gated DeltaNet (counted the same way, not separately calibrated): norms and
        // residuals of both halves (4 d), q, k, v before and after the conv and SiLU and the
        // normalised q, k (2 (2K + V) + 2K), g and beta (2 H), the gate, the rule's output and
        // the normed output (3 V), the MLP's gate, up and product (3 W), a row of the chunk's
        // triangular matrices per head (3 H chunk), the WY vectors (K + V), and the chunk
        // states shared by the chunk's tokens.
        Some(g) => {
            let (key, value) = (g.key_dim() as u64, g.value_dim() as u64);
            let mlp = g.mlp_width(m.d_model) as u64;
            let state = key * g.head_v_dim() as u64;
            4 * d
                + 2 * (2 * key + value)
                + 2 * key
                + 2 * heads
                + 3 * value
                + 3 * mlp
                + 3 * heads * chunk
                + key
                + value
                + 2 * state / chunk
        }
    }
}

/// A run refused because its estimate exceeds the memory available to the process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "training needs about {} by a rough estimate (parameters {}, optimizer state {}, gradients {}, activations of {} tokens in flight {}) but only {} is available to this process ({}); {}",
    gib(estimate.total()),
    gib(estimate.parameters),
    gib(estimate.optimizer),
    gib(estimate.gradients),
    estimate.tokens_in_flight,
    gib(estimate.activations),
    gib(available.bytes),
    available.source,
    advice
)]
pub struct MemoryError {
    pub estimate: MemoryEstimate,
    pub available: Available,
    /// What to change, by the part that dominates.
    pub advice: String,
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Checks `config` against the memory available to this process now; nothing is refused
/// when that cannot be read.
pub fn check_available(config: &RunConfig) -> Result<(), MemoryError> {
    let Some(available) = crate::sysmem::available() else {
        return Ok(());
    };
    let estimate = check(config, &available)?;
    tracing::debug!(
        "memory: about {} needed by a rough estimate, {} available ({})",
        gib(estimate.total()),
        gib(available.bytes),
        available.source
    );
    Ok(())
}

/// Refuses `config` when its estimate exceeds `available`.
pub fn check(config: &RunConfig, available: &Available) -> Result<MemoryEstimate, MemoryError> {
    let estimate = estimate(config);
    if estimate.total() <= available.bytes {
        return Ok(estimate);
    }
    let model = estimate.parameters + estimate.optimizer + estimate.gradients;
    let t = &config.train;
    let advice = if model >= estimate.activations {
        format!(
            "the model alone needs {} ({} parameters): reduce model.d_model (now {}), \
             model.n_layer (now {}) or model.vocab_size",
            gib(model),
            config.model.param_count(),
            config.model.d_model,
            config.model.n_layer
        )
    } else {
        format!(
            "the activations dominate: set train.micro_batch_tokens below the {} tokens of a \
             micro-batch now (or lower train.tokens_per_step = {}), use fewer train.workers \
             (now {}), or set state_passing = \"detach\" with a shorter segment_len",
            t.sequences_per_micro_batch() * t.seq_len,
            t.tokens_per_step,
            t.workers()
        )
    };
    Err(MemoryError {
        estimate,
        available: available.clone(),
        advice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(model: &str, train: &str) -> RunConfig {
        RunConfig::from_toml_str(&format!(
            "[model]\n{model}\n[data]\ntrain = [\"x\"]\ntokenizer = \"t.json\"\n[train]\n{train}\n"
        ))
        .unwrap()
    }

    const TINY: &str =
        "d_model = 32\nn_layer = 2\nd_state = 8\nheaddim = 16\nchunk_size = 16\nvocab_size = 4096";
    const STEP: &str = "seq_len = 128\ntokens_per_step = 8192\ntotal_tokens = 81920";

    fn available(bytes: u64) -> Available {
        Available {
            bytes,
            source: "test".into(),
        }
    }

    #[test]
    fn parts_scale_as_training_keeps_them() {
        let base = estimate(&config(TINY, STEP));
        let p = config(TINY, STEP).model.param_count() * 4;
        assert_eq!(base.parameters, p);
        assert_eq!(base.optimizer, 2 * p);
        assert_eq!(base.gradients, 2 * p, "one worker's gradient and the sum");
        assert_eq!(base.tokens_in_flight, 8192);
        // Half the micro-batch, half the activations; detached segments keep only a segment.
        let half = estimate(&config(TINY, &format!("{STEP}\nmicro_batch_tokens = 4096")));
        assert_eq!(half.activations * 2, base.activations);
        let detach = estimate(&config(
            TINY,
            &format!("{STEP}\nsegment_len = 32\nstate_passing = \"detach\""),
        ));
        assert_eq!(detach.activations * 4, base.activations);
        // Two workers: two micro-batches in flight, two gradients.
        let two = estimate(&config(TINY, &format!("{STEP}\nworkers = 2")));
        assert_eq!(two.activations, base.activations);
        assert_eq!(two.gradients, 3 * p);
    }

    /// Gated DeltaNet's activations follow its own sizes (its MLP, its heads), not the
    /// Mamba-2 fields its config leaves at their defaults.
    #[test]
    fn gated_deltanet_counts_its_own_tensors() {
        let gdn = |mlp: usize, d_state: usize| {
            let model = format!(
                "mixer = \"gated-deltanet\"\nd_model = 32\nn_layer = 2\nchunk_size = 16\n\
                 vocab_size = 4096\n[model.gated_deltanet]\nheads = 2\nhead_k_dim = 8\n\
                 intermediate_size = {mlp}"
            );
            let mut config = config(&model, STEP);
            config.model.d_state = d_state;
            estimate(&config)
        };
        let (with, without) = (gdn(32, 128), gdn(0, 128));
        // 3 floats per MLP channel per token and layer (the MLP's norm is counted with the
        // block's norms); 2 layers, 8192 tokens.
        assert_eq!(
            with.activations - without.activations,
            4 * 2 * 3 * 32 * 8192
        );
        assert_eq!(
            gdn(32, 8).activations,
            with.activations,
            "d_state is Mamba-2's"
        );
        assert!(with.total() < 1 << 29, "{with:?}");
    }

    #[test]
    fn small_runs_pass_and_absurd_ones_are_refused_with_what_to_change() {
        // The smoke and law configs fit in well under a gigabyte.
        let tiny = check(&config(TINY, STEP), &available(1 << 30)).unwrap();
        assert!(tiny.total() < 1 << 29, "{tiny:?}");
        let big = TINY.replace("d_model = 32", "d_model = 65536");
        let err = check(&config(&big, STEP), &available(16 << 30)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("model.d_model (now 65536)"), "{text}");
        assert!(text.contains("16.00 GiB is available"), "{text}");
        // A long micro-batch of a small model: the advice is about the batch.
        let long = "seq_len = 65536\ntokens_per_step = 1048576\ntotal_tokens = 1048576";
        let err = check(&config(TINY, long), &available(1 << 30)).unwrap_err();
        assert!(
            err.to_string().contains("train.micro_batch_tokens"),
            "{err}"
        );
    }
}
