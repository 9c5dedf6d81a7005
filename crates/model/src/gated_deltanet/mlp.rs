//! The SwiGLU feed-forward block of fla's Gated DeltaNet: `down(silu(gate(x)) ⊙ up(x))`.

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::silu;

use super::layer::{Loader, NamedTensor, linear_tensor};
use crate::ModelError;

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

    /// Builds the block from tensors in fla's layout, named relative to
    /// `model.layers.i.mlp.`: `gate_proj.weight`, `up_proj.weight` ([hidden, d_model]) and
    /// `down_proj.weight` ([d_model, hidden]). `get` returns (shape, values) or `None`.
    pub fn from_tensors(
        d_model: usize,
        hidden: usize,
        get: impl FnMut(&str) -> Option<(Vec<usize>, Vec<f32>)>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let mut loader = Loader::new(get, device);
        let mlp = Self {
            gate_proj: loader.linear("gate_proj.weight", d_model, hidden),
            up_proj: loader.linear("up_proj.weight", d_model, hidden),
            down_proj: loader.linear("down_proj.weight", hidden, d_model),
        };
        loader.finish("Gated DeltaNet MLP").map(|()| mlp)
    }

    /// The parameters in fla's layout, named as [`Mlp::from_tensors`] reads them.
    pub fn to_tensors(&self) -> Vec<NamedTensor> {
        vec![
            linear_tensor("gate_proj.weight", &self.gate_proj),
            linear_tensor("up_proj.weight", &self.up_proj),
            linear_tensor("down_proj.weight", &self.down_proj),
        ]
    }
}
