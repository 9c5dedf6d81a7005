//! The Mamba-2 language model: embedding → n_layer × (RMSNorm → mixer, residual) → RMSNorm →
//! LM head (tied to the embedding by default).
//!
//! Three ways to run it, all computing the same function:
//! - [`Model::forward`]: a whole segment with the chunked SSD (training, prefill);
//! - [`Model::step`]: one token with the recurrence (decoding);
//! - [`Model::forward_streaming`]: an arbitrarily long sequence, segment by segment, handing
//!   each segment's logits to a callback so memory does not grow with the length.
//!
//! All three apply [`ScanHooks`] alike; state-norm clipping happens at a cadence counted in
//! tokens ([`ModelState::tokens_seen`]), so it lands at the same positions in every path.

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;

use crate::ModelConfig;
use crate::block::{Block, LayerState, LayerTrace};
use crate::ops::rms_normalize;
use crate::precision::{self, Precision};

/// Inference-time interventions on the recurrence (paper.md section 6). Default: none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanHooks {
    /// RRI: α_t ← λ_α α_t, applied as log α + ln λ_α after the softplus.
    pub rri_alpha: Option<f64>,
    /// RRI: B_t ← λ_B B_t.
    pub rri_b: Option<f64>,
    /// Δ_t ← s Δ_t after the softplus (affects decay and insertion).
    pub dt_scale: Option<f64>,
    /// Exact sliding window: y_t reads h_t − α_{t−r+1:t} h_{t−r}, the state of the last r
    /// tokens; the recurrence keeps the full state.
    pub sliding_window: Option<usize>,
    /// State-norm clipping at a fixed cadence, in every forward path.
    pub state_norm_clip: Option<StateNormClip>,
}

impl ScanHooks {
    /// The first intervention set here that only Mamba-2 has (RRI's λ_B scales B, which Gated
    /// DeltaNet does not have; the exact sliding window is written for Mamba-2's scan), if any.
    pub fn unsupported_by_gated_deltanet(&self) -> Option<&'static str> {
        if self.rri_b.is_some_and(|v| v != 1.0) {
            Some("rri_b")
        } else if self.sliding_window.is_some() {
            Some("sliding_window")
        } else {
            None
        }
    }

    /// Whether RRI is configured as the identity (λ_α = λ_B = 1) or off.
    pub fn rri_is_identity(&self) -> bool {
        self.rri_alpha.is_none_or(|v| v == 1.0) && self.rri_b.is_none_or(|v| v == 1.0)
    }
}

/// State-norm clipping: whenever the tokens read since the zero state reach a multiple of
/// `every`, each head's SSM state is shrunk to at most its limit, h ← h · min(1, τ/‖h‖).
/// The cadence is counted in tokens (not in calls), so the chunked, streaming and step paths
/// clip at the same positions whatever their segmentation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StateNormClip {
    /// Largest Frobenius norm of each head's SSM state: `[layer][head]`.
    pub limits: Vec<Vec<f32>>,
    /// Cadence in tokens (0 is read as 1).
    pub every: usize,
}

impl StateNormClip {
    /// The cadence, at least 1.
    pub fn cadence(&self) -> usize {
        self.every.max(1)
    }

    /// Whether the state is clipped once `tokens_seen` tokens have been read.
    pub fn due(&self, tokens_seen: usize) -> bool {
        tokens_seen > 0 && tokens_seen.is_multiple_of(self.cadence())
    }

    /// Cuts `len` tokens read after `tokens_seen` at the cadence's multiples: each piece's
    /// length and whether the state is clipped after it.
    pub fn pieces(&self, tokens_seen: usize, len: usize) -> Vec<(usize, bool)> {
        let every = self.cadence();
        let mut out = Vec::new();
        let (mut seen, end) = (tokens_seen, tokens_seen + len);
        while seen < end {
            let next = (seen / every + 1) * every;
            let take = next.min(end) - seen;
            seen += take;
            out.push((take, self.due(seen)));
        }
        out
    }
}

/// The recurrent state of the whole model.
#[derive(Debug, Clone)]
pub struct ModelState {
    pub layers: Vec<LayerState>,
    /// Tokens read since the zero state (per sequence): the clock of [`StateNormClip`].
    pub tokens_seen: usize,
}

impl ModelState {
    pub fn zeros(config: &ModelConfig, batch: usize, device: &Device) -> Self {
        Self {
            layers: (0..config.n_layer)
                .map(|_| LayerState::zeros(config, batch, device))
                .collect(),
            tokens_seen: 0,
        }
    }

    /// Cuts the autodiff graph at this state (truncated BPTT between segments).
    pub fn detach(self) -> Self {
        Self {
            layers: self.layers.into_iter().map(LayerState::detach).collect(),
            tokens_seen: self.tokens_seen,
        }
    }

    /// Shrinks each head's SSM state to at most `max_norm[layer][head]` (Frobenius norm);
    /// layers without limits are left as they are.
    pub fn clip_norms(self, max_norm: &[Vec<f32>]) -> Self {
        let layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, layer)| match max_norm.get(i) {
                Some(limits) => layer.clip_norm(limits),
                None => layer,
            })
            .collect();
        Self {
            layers,
            tokens_seen: self.tokens_seen,
        }
    }

    /// Frobenius norm of every head's SSM state: `[layer][batch * heads]`, batch-major.
    pub fn ssm_norms(&self) -> Vec<Vec<f32>> {
        self.layers
            .iter()
            .map(|l| {
                l.heads()
                    .clone()
                    .square()
                    .sum_dim(3)
                    .sum_dim(2)
                    .sqrt()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("f32 data")
            })
            .collect()
    }
}

/// Activations recorded by [`Model::forward_traced`].
#[derive(Debug, Clone, Default)]
pub struct ModelTrace {
    /// Embedding output: [batch, length, d_model].
    pub embeddings_bld: Option<Tensor<3>>,
    /// Residual stream after each block.
    pub block_outputs: Vec<Tensor<3>>,
    /// Final RMSNorm output.
    pub norm_f_bld: Option<Tensor<3>>,
    /// Each mixer's intermediates.
    pub layers: Vec<LayerTrace>,
}

/// A Mamba-2 causal language model.
#[derive(Module, Debug)]
pub struct Model {
    /// Token embedding: [padded_vocab, d_model].
    pub embedding: Embedding,
    pub layers: Vec<Block>,
    /// Final RMSNorm weight: [d_model].
    pub norm_f_weight: Param<Tensor<1>>,
    /// Untied LM head (d_model → padded_vocab); `None` when tied to the embedding.
    pub lm_head: Option<Linear>,
    #[module(skip)]
    pub config: ModelConfig,
    /// Precision of the large products (see [`crate::precision`]); f32 unless set with
    /// [`Model::with_precision`].
    #[module(skip)]
    pub precision: Precision,
}

impl Model {
    /// The same model computing its projections and head in `precision`.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        for block in &mut self.layers {
            block.mixer.set_precision(precision);
        }
        self
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The device holding the parameters.
    pub fn device(&self) -> Device {
        self.norm_f_weight.val().device()
    }

    /// A zero state for `batch` sequences.
    pub fn zero_state(&self, batch: usize) -> ModelState {
        ModelState::zeros(&self.config, batch, &self.device())
    }

    fn norm(&self, x: Tensor<3>, weight: &Param<Tensor<1>>) -> Tensor<3> {
        let d = self.config.d_model;
        rms_normalize(x, self.config.norm_eps) * weight.val().reshape([1, 1, d])
    }

    /// The block's feed-forward half `x + mlp(norm(x))`, when it has one.
    fn feed_forward(&self, hidden_bld: Tensor<3>, block: &Block) -> Tensor<3> {
        match &block.mlp {
            Some(ff) => {
                let normed = self.norm(hidden_bld.clone(), &ff.norm_weight);
                hidden_bld + ff.mlp.forward(normed)
            }
            None => hidden_bld,
        }
    }

    fn head(&self, hidden_bld: Tensor<3>) -> Tensor<3> {
        self.logits(self.norm(hidden_bld, &self.norm_f_weight))
    }

    fn logits(&self, normed: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => precision::linear(head, normed, self.precision),
            None => {
                let [batch, len, d] = normed.dims();
                let vocab = self.config.padded_vocab_size();
                precision::matmul(
                    normed.reshape([batch * len, d]),
                    self.embedding.weight.val().transpose(),
                    self.precision,
                )
                .reshape([batch, len, vocab])
            }
        }
    }

    /// Logits `[batch, length, padded_vocab]` for a segment of token ids `[batch, length]`,
    /// continuing from `state` (or from zero), and the state after the segment.
    pub fn forward(
        &self,
        ids_bl: Tensor<2, Int>,
        state: Option<ModelState>,
        hooks: &ScanHooks,
    ) -> (Tensor<3>, ModelState) {
        let (normed, state) = self.forward_normed(ids_bl, state, hooks);
        (self.logits(normed), state)
    }

    /// Like [`Model::forward`], also recording intermediate activations.
    pub fn forward_traced(
        &self,
        ids_bl: Tensor<2, Int>,
        state: Option<ModelState>,
        hooks: &ScanHooks,
    ) -> (Tensor<3>, ModelState, ModelTrace) {
        let mut trace = ModelTrace::default();
        let (hidden, state) = self.forward_hidden(ids_bl, state, hooks, Some(&mut trace));
        let normed = self.norm(hidden, &self.norm_f_weight);
        trace.norm_f_bld = Some(normed.clone());
        (self.logits(normed), state, trace)
    }

    /// The final-norm outputs `[batch, length, d_model]` (the LM head's input) and the state.
    pub(crate) fn forward_normed(
        &self,
        ids_bl: Tensor<2, Int>,
        state: Option<ModelState>,
        hooks: &ScanHooks,
    ) -> (Tensor<3>, ModelState) {
        let (hidden, state) = self.forward_hidden(ids_bl, state, hooks, None);
        (self.norm(hidden, &self.norm_f_weight), state)
    }

    fn forward_hidden(
        &self,
        ids_bl: Tensor<2, Int>,
        state: Option<ModelState>,
        hooks: &ScanHooks,
        mut trace: Option<&mut ModelTrace>,
    ) -> (Tensor<3>, ModelState) {
        let [batch, len] = ids_bl.dims();
        let state = state.unwrap_or_else(|| self.zero_state(batch));
        let seen = state.tokens_seen;
        let mut hidden = self.embedding.forward(ids_bl);
        if let Some(trace) = trace.as_deref_mut() {
            trace.embeddings_bld = Some(hidden.clone());
        }
        let mut next = Vec::with_capacity(self.layers.len());
        for (index, (block, layer_state)) in self.layers.iter().zip(state.layers).enumerate() {
            let normed = self.norm(hidden.clone(), &block.norm_weight);
            let (out, new_state) = mix_clipped(
                block,
                index,
                normed,
                layer_state,
                seen,
                hooks,
                trace.as_deref_mut().map(|t| &mut t.layers),
            );
            hidden = self.feed_forward(hidden + out, block);
            if let Some(trace) = trace.as_deref_mut() {
                trace.block_outputs.push(hidden.clone());
            }
            next.push(new_state);
        }
        let state = ModelState {
            layers: next,
            tokens_seen: seen + len,
        };
        (hidden, state)
    }

    /// Logits `[batch, padded_vocab]` for one token per sequence, and the advanced state.
    pub fn step(
        &self,
        ids_b: Tensor<1, Int>,
        state: ModelState,
        hooks: &ScanHooks,
    ) -> (Tensor<2>, ModelState) {
        let mut hidden = self.embedding.forward(ids_b.unsqueeze_dim::<2>(1));
        let mut next = Vec::with_capacity(self.layers.len());
        for (block, layer_state) in self.layers.iter().zip(state.layers) {
            let normed: Tensor<2> = self.norm(hidden.clone(), &block.norm_weight).squeeze_dim(1);
            let (out, new_state) = block.mixer.step(normed, layer_state, hooks);
            hidden = self.feed_forward(hidden + out.unsqueeze_dim::<3>(1), block);
            next.push(new_state);
        }
        let mut next = ModelState {
            layers: next,
            tokens_seen: state.tokens_seen + 1,
        };
        // A layer's state feeds only its own later outputs, so clipping after all layers
        // equals clipping each layer right after its step.
        if let Some(clip) = &hooks.state_norm_clip
            && clip.due(next.tokens_seen)
        {
            next = next.clip_norms(&clip.limits);
        }
        (self.head(hidden).squeeze_dim(1), next)
    }

    /// Runs `ids_bl` segment by segment (`segment_len` tokens each, the last may be shorter),
    /// carrying the state, and calls `on_segment(start, logits)` for each segment. Only one
    /// segment's activations exist at a time. State-norm clipping happens at its own cadence
    /// inside segments (see [`StateNormClip`]). Returns the final state.
    pub fn forward_streaming(
        &self,
        ids_bl: Tensor<2, Int>,
        segment_len: usize,
        state: Option<ModelState>,
        hooks: &ScanHooks,
        mut on_segment: impl FnMut(usize, Tensor<3>),
    ) -> ModelState {
        let [batch, len] = ids_bl.dims();
        let segment_len = segment_len.max(1);
        let mut state = state.unwrap_or_else(|| self.zero_state(batch));
        let mut start = 0;
        while start < len {
            let take = segment_len.min(len - start);
            let (logits, next) =
                self.forward(ids_bl.clone().narrow(1, start, take), Some(state), hooks);
            on_segment(start, logits);
            state = next;
            start += take;
        }
        state
    }
}

/// One block's mixer over a segment, clipping its state at the cadence's multiples: the
/// segment is cut there, which leaves the function unchanged when no cut falls inside it.
fn mix_clipped(
    block: &Block,
    index: usize,
    normed: Tensor<3>,
    state: LayerState,
    seen: usize,
    hooks: &ScanHooks,
    trace: Option<&mut Vec<LayerTrace>>,
) -> (Tensor<3>, LayerState) {
    let [_, len, _] = normed.dims();
    let (clip, limits) = match &hooks.state_norm_clip {
        Some(clip) => match clip.limits.get(index) {
            Some(limits) => (clip, limits),
            None => return block.mixer.forward(normed, state, hooks, trace),
        },
        None => return block.mixer.forward(normed, state, hooks, trace),
    };
    let pieces = clip.pieces(seen, len);
    if let [(_, due)] = pieces[..] {
        let (out, state) = block.mixer.forward(normed, state, hooks, trace);
        return (out, if due { state.clip_norm(limits) } else { state });
    }
    if pieces.is_empty() {
        return block.mixer.forward(normed, state, hooks, trace);
    }
    let mut outs = Vec::with_capacity(pieces.len());
    let mut traces = Vec::new();
    let (mut state, mut start) = (state, 0);
    for (take, due) in pieces {
        let piece_trace = trace.is_some().then_some(&mut traces);
        let (out, next) = block.mixer.forward(
            normed.clone().narrow(1, start, take),
            state,
            hooks,
            piece_trace,
        );
        state = if due { next.clip_norm(limits) } else { next };
        outs.push(out);
        start += take;
    }
    if let Some(trace) = trace {
        trace.push(LayerTrace::concat(traces));
    }
    (Tensor::cat(outs, 1), state)
}
