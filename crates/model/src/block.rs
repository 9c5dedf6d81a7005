//! The mixer seam: a block is `x + mixer(norm(x))`, then `x + mlp(norm(x))` when the mixer
//! family has an MLP, and everything outside this file sees a mixer only through [`Mixer`],
//! its [`LayerState`] and its [`LayerTrace`].
//!
//! A new recurrent mixer is a folder with its module, state and parameter table, plus a
//! variant in each of the three enums here and in `forgetlab_runs::config::MixerKind`. Every
//! mixer's state has a per-head matrix (`[batch, heads, ·, ·]`) beside its conv caches: that
//! is what diagnostics measure and state-norm clipping shrinks.

use burn::module::Param;
use burn::prelude::*;

use crate::gated_deltanet::layer::{
    DeltaMode, GatedDeltaNet, GatedDeltaNetState, GatedDeltaNetTrace,
};
use crate::gated_deltanet::mlp::Mlp;
use crate::gated_deltanet::params as gated_deltanet_params;
use crate::mamba2::{Mamba2Mixer, Mamba2State, Mamba2Trace};
use crate::ops;
use crate::precision::Precision;
use crate::{ModelConfig, ScanHooks};

/// One residual block.
#[derive(Module, Debug)]
pub struct Block {
    /// RMSNorm weight before the mixer: [d_model].
    pub norm_weight: Param<Tensor<1>>,
    pub mixer: Mixer,
    /// The feed-forward half, for mixer families that have one.
    pub mlp: Option<MlpBlock>,
}

/// The feed-forward half of a block: `x + mlp(norm(x))`.
#[derive(Module, Debug)]
pub struct MlpBlock {
    /// RMSNorm weight before the MLP: [d_model].
    pub norm_weight: Param<Tensor<1>>,
    pub mlp: Mlp,
}

/// A block's recurrent mixer.
// The variants hold tensor handles and are moved, not copied, once per segment: boxing the
// larger one would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Mixer {
    Mamba2(Mamba2Mixer),
    GatedDeltaNet(GatedDeltaNet),
}

/// A mixer's recurrent state: everything it needs to continue a sequence.
// The variants hold tensor handles and are moved, not copied, once per segment: boxing the
// larger one would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum LayerState {
    Mamba2(Mamba2State),
    GatedDeltaNet(GatedDeltaNetState),
}

/// A mixer's intermediate activations for a segment (diagnostics, conformance tests).
// The variants hold tensor handles and are moved, not copied, once per segment: boxing the
// larger one would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum LayerTrace {
    Mamba2(Mamba2Trace),
    GatedDeltaNet(GatedDeltaNetTrace),
}

impl Mixer {
    /// Processes a segment `u_bld` ([batch, length, d_model]) from `state` (the chunked form).
    pub fn forward(
        &self,
        u_bld: Tensor<3>,
        state: LayerState,
        hooks: &ScanHooks,
        trace: Option<&mut Vec<LayerTrace>>,
    ) -> (Tensor<3>, LayerState) {
        match (self, state) {
            (Mixer::Mamba2(m), LayerState::Mamba2(state)) => {
                let mut traces = Vec::new();
                let (out, state) =
                    m.forward(u_bld, state, hooks, trace.is_some().then_some(&mut traces));
                if let Some(trace) = trace {
                    trace.extend(traces.into_iter().map(LayerTrace::Mamba2));
                }
                (out, LayerState::Mamba2(state))
            }
            (Mixer::GatedDeltaNet(m), LayerState::GatedDeltaNet(state)) => {
                let (out, state, layer_trace) =
                    m.forward_with(u_bld, state, hooks, DeltaMode::Chunked);
                if let Some(trace) = trace {
                    trace.push(LayerTrace::GatedDeltaNet(layer_trace));
                }
                (out, LayerState::GatedDeltaNet(state))
            }
            _ => panic!("a layer state belongs to the mixer that made it"),
        }
    }

    /// Processes one token `u_bd` ([batch, d_model]) from `state` (the recurrent form).
    pub fn step(
        &self,
        u_bd: Tensor<2>,
        state: LayerState,
        hooks: &ScanHooks,
    ) -> (Tensor<2>, LayerState) {
        match (self, state) {
            (Mixer::Mamba2(m), LayerState::Mamba2(state)) => {
                let (out, state) = m.step(u_bd, state, hooks);
                (out, LayerState::Mamba2(state))
            }
            (Mixer::GatedDeltaNet(m), LayerState::GatedDeltaNet(state)) => {
                let (out, state) = m.step(u_bd, state, hooks);
                (out, LayerState::GatedDeltaNet(state))
            }
            _ => panic!("a layer state belongs to the mixer that made it"),
        }
    }

    /// Sets the precision of the large products (Mamba-2 only; Gated DeltaNet runs in f32).
    pub fn set_precision(&mut self, precision: Precision) {
        if let Mixer::Mamba2(m) = self {
            m.precision = precision;
        }
    }
}

impl LayerState {
    /// The zero state of a layer of `config`'s mixer, for `batch` sequences.
    pub fn zeros(config: &ModelConfig, batch: usize, device: &Device) -> Self {
        match config.gated_deltanet_sizes() {
            None => LayerState::Mamba2(Mamba2State::zeros(config, batch, device)),
            Some(sizes) => LayerState::GatedDeltaNet(GatedDeltaNetState::zeros(
                &gated_deltanet_params::dims(config, &sizes),
                batch,
                device,
            )),
        }
    }

    /// The per-head recurrent matrix: Mamba-2's SSM state [batch, heads, headdim, d_state],
    /// Gated DeltaNet's S [batch, heads, d_v, d_k].
    pub fn heads(&self) -> &Tensor<4> {
        match self {
            LayerState::Mamba2(s) => &s.ssm_bhpn,
            LayerState::GatedDeltaNet(s) => &s.state_bhvk,
        }
    }

    /// Shrinks each head's matrix to at most `limits[head]` (Frobenius norm).
    pub fn clip_norm(self, limits: &[f32]) -> Self {
        match self {
            LayerState::Mamba2(s) => LayerState::Mamba2(s.clip_norm(limits)),
            LayerState::GatedDeltaNet(mut s) => {
                s.state_bhvk = ops::clip_head_norms(s.state_bhvk, limits);
                LayerState::GatedDeltaNet(s)
            }
        }
    }

    /// Cuts the autodiff graph at this state (truncated BPTT).
    pub fn detach(self) -> Self {
        match self {
            LayerState::Mamba2(s) => LayerState::Mamba2(s.detach()),
            LayerState::GatedDeltaNet(s) => LayerState::GatedDeltaNet(s.detach()),
        }
    }
}

impl LayerTrace {
    /// log α_t per head, [batch, length, heads]: the decay every mixer here has.
    pub fn log_alpha_blh(&self) -> &Tensor<3> {
        match self {
            LayerTrace::Mamba2(t) => &t.log_alpha_blh,
            LayerTrace::GatedDeltaNet(t) => &t.g_blh,
        }
    }

    /// One trace for consecutive pieces of a segment (all from one mixer).
    pub fn concat(pieces: Vec<LayerTrace>) -> LayerTrace {
        let gated_deltanet = matches!(pieces.first(), Some(LayerTrace::GatedDeltaNet(_)));
        if gated_deltanet {
            let pieces = pieces.into_iter().map(|p| match p {
                LayerTrace::GatedDeltaNet(t) => t,
                LayerTrace::Mamba2(_) => panic!("a segment's pieces come from one mixer"),
            });
            return LayerTrace::GatedDeltaNet(GatedDeltaNetTrace::concat(pieces.collect()));
        }
        let pieces = pieces.into_iter().map(|p| match p {
            LayerTrace::Mamba2(t) => t,
            LayerTrace::GatedDeltaNet(_) => panic!("a segment's pieces come from one mixer"),
        });
        LayerTrace::Mamba2(Mamba2Trace::concat(pieces.collect()))
    }
}
