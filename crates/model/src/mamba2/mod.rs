//! Mamba-2 (Dao and Gu, 2024) as `mamba_ssm` computes it: the selective scan in its chunked and
//! recurrent forms ([`ssd`]), the mixer around it ([`mixer`]) and its parameter table in the
//! official `state-spaces/mamba` names ([`params`]). On the CPU its hot ops run the fused
//! kernels that [`crate::ops`] chooses.

pub mod mixer;
pub mod params;
pub mod ssd;

pub use mixer::{Mamba2Mixer, Mamba2State, Mamba2Trace};
