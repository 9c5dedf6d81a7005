//! The SwiGLU feed-forward block of fla's Gated DeltaNet: `down(silu(gate(x)) ⊙ up(x))`.

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::silu;

/// SwiGLU MLP with no biases; parameter names mirror fla's `GatedMLP`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// d_model → hidden.
    pub gate_proj: Linear,
    /// d_model → hidden.
    pub up_proj: Linear,
    /// hidden → d_model.
    pub down_proj: Linear,
}

impl Mlp {
    /// `down(silu(gate(x)) ⊙ up(x))` over the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.down_proj
            .forward(silu(self.gate_proj.forward(x.clone())) * self.up_proj.forward(x))
    }
}
