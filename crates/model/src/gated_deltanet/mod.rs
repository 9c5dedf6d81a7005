//! Gated DeltaNet (Yang, Kautz, Hatamizadeh, ICLR 2025) as fla 0.6.0 computes it: the delta
//! rule ([`rule`]), the mixer layer with its short convs and gates ([`layer`]) and the SwiGLU
//! MLP of fla's blocks ([`mlp`]), and their parameter table in fla's names and PyTorch layouts
//! ([`params`]). Tensor ops only, so every backend runs and differentiates it.

pub mod layer;
pub mod mlp;
pub mod params;
pub mod rule;

pub use layer::{
    DeltaMode, GatedDeltaNet, GatedDeltaNetDims, GatedDeltaNetState, GatedDeltaNetTrace,
};
pub use mlp::Mlp;
pub use rule::{DeltaInputs, delta_chunked, delta_recurrent, delta_step};
