//! forgetlab-eval: runs trained models to measure what the science needs.
//!
//! Everything here drives a burn model with the streaming forward; the statistics made of its
//! measurements (buckets, the n-gram baseline, the verdict, passkey scoring, the law fits) live
//! in [`forgetlab_stats`], which builds and tests without burn:
//!
//! - [`per_position`]: per-token loss far past the training length, memory independent of it;
//! - [`passkey`]: the paper's passkey retrieval with greedy recurrent decoding;
//! - [`diagnostics`]: decays, first-token retention and state statistics over time;
//! - [`mitigation`]: RRI, Δ scaling, state-norm clipping and the exact sliding window;
//! - [`run_eval`]: everything above for one run directory (`forgetlab eval`).

pub mod diagnostics;
pub mod mitigation;
pub mod passkey;
pub mod per_position;
pub mod run_eval;
