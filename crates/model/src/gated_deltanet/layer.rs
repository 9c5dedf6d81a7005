//! One Gated DeltaNet layer (fla's `GatedDeltaNet` with `use_gate`, `use_short_conv`, no
//! negative eigenvalues): q/k/v projections → short causal depthwise convs (carried caches) →
//! SiLU → per-head L2 norm of q and k → gated delta rule → per-head RMSNorm × silu(gate) →
//! o_proj, with α = exp(g), g = −exp(A_log)·softplus(a_proj(x) + dt_bias), β = sigmoid(b_proj(x)).
//!
//! The conv caches hold the last `conv_size − 1` pre-convolution inputs, prepended as left
//! context, so a sequence cut into segments anywhere computes exactly what one pass computes.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, silu, softplus};

use super::rule::{DeltaInputs, delta_chunked, delta_recurrent};
use crate::ops::rms_normalize;
use crate::{ScanHooks, ops};

/// The sizes of one layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GatedDeltaNetDims {
    pub d_model: usize,
    pub heads: usize,
    /// K: key (and query) size per head.
    pub head_k_dim: usize,
    /// V: value size per head.
    pub head_v_dim: usize,
    /// Width of the short convolutions (their caches keep `conv_size - 1` inputs).
    pub conv_size: usize,
    /// Tokens per chunk of the chunked rule (any value ≥ 1).
    pub chunk_size: usize,
    /// eps of the per-head output RMSNorm.
    pub norm_eps: f64,
}

impl GatedDeltaNetDims {
    /// H·K: channels of q and k.
    pub fn key_dim(&self) -> usize {
        self.heads * self.head_k_dim
    }

    /// H·V: channels of v, of the gate and of o_proj's input.
    pub fn value_dim(&self) -> usize {
        self.heads * self.head_v_dim
    }

    /// Floats in the delta-rule state: H·V·K.
    pub fn rule_state_floats(&self) -> usize {
        self.heads * self.head_v_dim * self.head_k_dim
    }

    /// Floats in the conv caches: (conv_size − 1)·(2·H·K + H·V).
    pub fn conv_cache_floats(&self) -> usize {
        (self.conv_size - 1) * (2 * self.key_dim() + self.value_dim())
    }
}

/// How [`GatedDeltaNet::forward_with`] runs the delta rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaMode {
    /// The chunked (WY) form, for training.
    Chunked,
    /// Token by token.
    Recurrent,
}

/// A layer's recurrent state: everything it needs to continue a sequence.
#[derive(Debug, Clone)]
pub struct GatedDeltaNetState {
    /// Last `conv_size - 1` pre-convolution inputs of q: [batch, conv_size - 1, H·K].
    pub conv_q_bkc: Tensor<3>,
    /// The same for k: [batch, conv_size - 1, H·K].
    pub conv_k_bkc: Tensor<3>,
    /// The same for v: [batch, conv_size - 1, H·V].
    pub conv_v_bkc: Tensor<3>,
    /// The delta-rule state S: [batch, heads, V, K].
    pub state_bhvk: Tensor<4>,
}

impl GatedDeltaNetState {
    /// The zero state that starts every sequence.
    pub fn zeros(dims: &GatedDeltaNetDims, batch: usize, device: &Device) -> Self {
        let context = dims.conv_size - 1;
        Self {
            conv_q_bkc: Tensor::zeros([batch, context, dims.key_dim()], device),
            conv_k_bkc: Tensor::zeros([batch, context, dims.key_dim()], device),
            conv_v_bkc: Tensor::zeros([batch, context, dims.value_dim()], device),
            state_bhvk: Tensor::zeros(
                [batch, dims.heads, dims.head_v_dim, dims.head_k_dim],
                device,
            ),
        }
    }

    /// Cuts the autodiff graph at this state (truncated BPTT).
    pub fn detach(self) -> Self {
        Self {
            conv_q_bkc: self.conv_q_bkc.detach(),
            conv_k_bkc: self.conv_k_bkc.detach(),
            conv_v_bkc: self.conv_v_bkc.detach(),
            state_bhvk: self.state_bhvk.detach(),
        }
    }
}

/// A segment's intermediate activations (handles to tensors computed anyway).
#[derive(Debug, Clone)]
pub struct GatedDeltaNetTrace {
    /// q after conv + SiLU, before the L2 norm: [batch, length, heads, K].
    pub q_blhk: Tensor<4>,
    /// k after conv + SiLU, before the L2 norm: [batch, length, heads, K].
    pub k_blhk: Tensor<4>,
    /// v after conv + SiLU: [batch, length, heads, V].
    pub v_blhv: Tensor<4>,
    /// g = log α: [batch, length, heads].
    pub g_blh: Tensor<3>,
    /// β: [batch, length, heads].
    pub beta_blh: Tensor<3>,
    /// Delta-rule output before the output norm: [batch, length, heads, V].
    pub o_blhv: Tensor<4>,
    /// Layer output (after o_proj): [batch, length, d_model].
    pub out_bld: Tensor<3>,
}

impl GatedDeltaNetTrace {
    /// One trace for consecutive pieces of a segment (each field concatenated over time).
    pub fn concat(pieces: Vec<GatedDeltaNetTrace>) -> Self {
        fn cat<const D: usize>(
            pieces: &[GatedDeltaNetTrace],
            get: fn(&GatedDeltaNetTrace) -> &Tensor<D>,
        ) -> Tensor<D> {
            Tensor::cat(pieces.iter().map(|p| get(p).clone()).collect(), 1)
        }
        Self {
            q_blhk: cat(&pieces, |p| &p.q_blhk),
            k_blhk: cat(&pieces, |p| &p.k_blhk),
            v_blhv: cat(&pieces, |p| &p.v_blhv),
            g_blh: cat(&pieces, |p| &p.g_blh),
            beta_blh: cat(&pieces, |p| &p.beta_blh),
            o_blhv: cat(&pieces, |p| &p.o_blhv),
            out_bld: cat(&pieces, |p| &p.out_bld),
        }
    }
}

/// The Gated DeltaNet mixer. Field names mirror fla's (`a_log` is `A_log`, `*_conv` are
/// `*_conv1d.weight`, `o_norm` is `o_norm.weight`).
#[derive(Module, Debug)]
pub struct GatedDeltaNet {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    /// d_model → heads: the input of the decay.
    pub a_proj: Linear,
    /// d_model → heads: the input of β.
    pub b_proj: Linear,
    /// d_model → H·V: the output gate.
    pub g_proj: Linear,
    pub o_proj: Linear,
    /// Depthwise conv weights: [H·K, conv_size], [H·K, conv_size], [H·V, conv_size].
    pub q_conv: Param<Tensor<2>>,
    pub k_conv: Param<Tensor<2>>,
    pub v_conv: Param<Tensor<2>>,
    /// −exp(A_log) scales the decay: [heads].
    pub a_log: Param<Tensor<1>>,
    /// Added before the softplus: [heads].
    pub dt_bias: Param<Tensor<1>>,
    /// Output RMSNorm weight, shared by the heads: [V].
    pub o_norm: Param<Tensor<1>>,
    #[module(skip)]
    pub dims: GatedDeltaNetDims,
}

impl GatedDeltaNet {
    /// Processes a segment `x_bld` ([batch, length, d_model]) from `state`, chunked.
    pub fn forward(
        &self,
        x_bld: Tensor<3>,
        state: GatedDeltaNetState,
        hooks: &ScanHooks,
    ) -> (Tensor<3>, GatedDeltaNetState) {
        let (out_bld, state, _) = self.forward_with(x_bld, state, hooks, DeltaMode::Chunked);
        (out_bld, state)
    }

    /// Processes one token `x_bd` ([batch, d_model]) from `state`, recurrently.
    pub fn step(
        &self,
        x_bd: Tensor<2>,
        state: GatedDeltaNetState,
        hooks: &ScanHooks,
    ) -> (Tensor<2>, GatedDeltaNetState) {
        let (out_b1d, state, _) = self.forward_with(
            x_bd.unsqueeze_dim::<3>(1),
            state,
            hooks,
            DeltaMode::Recurrent,
        );
        (out_b1d.squeeze_dim::<2>(1), state)
    }

    /// [`GatedDeltaNet::forward`] in either mode, with the segment's trace. Of the
    /// interventions in `hooks`, the decay ones apply (RRI's λ_α and the step-size scale, see
    /// [`GatedDeltaNet::log_decay`]); state-norm clipping is the model's; the others are
    /// Mamba-2's and refused by [`ScanHooks::unsupported_by_gated_deltanet`].
    pub fn forward_with(
        &self,
        x_bld: Tensor<3>,
        state: GatedDeltaNetState,
        hooks: &ScanHooks,
        mode: DeltaMode,
    ) -> (Tensor<3>, GatedDeltaNetState, GatedDeltaNetTrace) {
        if let Some(setting) = hooks.unsupported_by_gated_deltanet() {
            panic!("{setting} is a Mamba-2 intervention; callers check it first");
        }
        let d = &self.dims;
        let [batch, len, _] = x_bld.dims();
        let (q_blc, conv_q_bkc) = conv_silu(
            self.q_proj.forward(x_bld.clone()),
            state.conv_q_bkc,
            self.q_conv.val(),
        );
        let (k_blc, conv_k_bkc) = conv_silu(
            self.k_proj.forward(x_bld.clone()),
            state.conv_k_bkc,
            self.k_conv.val(),
        );
        let (v_blc, conv_v_bkc) = conv_silu(
            self.v_proj.forward(x_bld.clone()),
            state.conv_v_bkc,
            self.v_conv.val(),
        );
        let q_blhk = q_blc.reshape([batch, len, d.heads, d.head_k_dim]);
        let k_blhk = k_blc.reshape([batch, len, d.heads, d.head_k_dim]);
        let v_blhv = v_blc.reshape([batch, len, d.heads, d.head_v_dim]);
        let g_blh = self.log_decay(x_bld.clone(), hooks);
        let beta_blh = sigmoid(self.b_proj.forward(x_bld.clone()));
        let inputs = DeltaInputs {
            q_blhk: l2_normalize(q_blhk.clone()) * (d.head_k_dim as f64).powf(-0.5),
            k_blhk: l2_normalize(k_blhk.clone()),
            v_blhv: v_blhv.clone(),
            g_blh: g_blh.clone(),
            beta_blh: beta_blh.clone(),
        };
        let (o_blhv, state_bhvk) = match mode {
            DeltaMode::Chunked => delta_chunked(inputs, state.state_bhvk, d.chunk_size),
            DeltaMode::Recurrent => delta_recurrent(inputs, state.state_bhvk),
        };
        let gate_blhv = self
            .g_proj
            .forward(x_bld)
            .reshape([batch, len, d.heads, d.head_v_dim]);
        let normed_blhv = rms_normalize(o_blhv.clone(), d.norm_eps)
            * self.o_norm.val().reshape([1, 1, 1, d.head_v_dim])
            * silu(gate_blhv);
        let out_bld = self
            .o_proj
            .forward(normed_blhv.reshape([batch, len, d.value_dim()]));
        let trace = GatedDeltaNetTrace {
            q_blhk,
            k_blhk,
            v_blhv,
            g_blh,
            beta_blh,
            o_blhv,
            out_bld: out_bld.clone(),
        };
        let state = GatedDeltaNetState {
            conv_q_bkc,
            conv_k_bkc,
            conv_v_bkc,
            state_bhvk,
        };
        (out_bld, state, trace)
    }

    /// g = log α = −exp(A_log) · s·softplus(a_proj(x) + dt_bias) + ln λ_α: [batch, length,
    /// heads], with the step-size scale s and RRI's λ_α from `hooks` (both 1 by default).
    pub fn log_decay(&self, x_bld: Tensor<3>, hooks: &ScanHooks) -> Tensor<3> {
        let heads = self.dims.heads;
        let a = self.a_log.val().exp().neg().reshape([1, 1, heads]);
        let mut step = softplus(
            self.a_proj.forward(x_bld) + self.dt_bias.val().reshape([1, 1, heads]),
            1.0,
        );
        if let Some(scale) = hooks.dt_scale {
            step = step * scale;
        }
        let mut g = step * a;
        if let Some(lambda) = hooks.rri_alpha {
            g = g + lambda.ln();
        }
        g
    }
}

/// `silu(conv(cache ++ x))` of a depthwise causal convolution without bias (x `[b, l, c]`,
/// cache `[b, w - 1, c]`, weight `[c, w]`), and the new cache: the last `w - 1` rows of
/// `cache ++ x` (the same kernels as Mamba-2's convolution).
pub fn conv_silu(
    x_blc: Tensor<3>,
    cache_bkc: Tensor<3>,
    weight_cw: Tensor<2>,
) -> (Tensor<3>, Tensor<3>) {
    let next_cache_bkc = ops::shift_cache(cache_bkc.clone(), x_blc.clone());
    (
        ops::conv_silu(x_blc, cache_bkc, weight_cw, None),
        next_cache_bkc,
    )
}

/// x / sqrt(Σ x² + 1e-6) over the last dimension (fla's L2 norm of q and k).
pub fn l2_normalize<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let rnorm = (x.clone().square().sum_dim(D - 1) + 1e-6).sqrt().recip();
    x * rnorm
}
