//! Seeded initialisation from the parameter table (each mixer's table says how each tensor
//! starts; see [`crate::mamba2::params`] and [`crate::gated_deltanet::params`]).
//!
//! Values are drawn on the host from one ChaCha stream in table order, so the same seed gives
//! the same model on every backend.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ModelConfig;
use crate::params::{Init, model_table};
use crate::weights::{WeightTensor, Weights};

/// Initial weights for `config` from `seed`: each row of the parameter table in order, drawn
/// as its [`Init`] says (the embedding and an untied head N(0, 0.02), norm weights one).
pub fn init_weights(config: &ModelConfig, seed: u64) -> Weights {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = std::collections::BTreeMap::new();
    for spec in model_table(config) {
        let count: usize = spec.shape.iter().product();
        let data: Vec<f32> = match spec.init {
            Init::Normal(std) => (0..count)
                .map(|_| std as f32 * normal(&mut rng) as f32)
                .collect(),
            Init::Uniform(bound) => uniform(&mut rng, count, bound),
            Init::Constant(value) => vec![value; count],
            Init::DtBias => (0..count)
                .map(|_| dt_bias_draw(config, &mut rng) as f32)
                .collect(),
            Init::ALog => {
                let (lo, hi) = config.a_init_range;
                (0..count)
                    .map(|_| (lo + (hi - lo) * rng.random::<f64>()).ln() as f32)
                    .collect()
            }
        };
        tensors.insert(spec.name, WeightTensor::new(spec.shape, data));
    }
    Weights { tensors }
}

fn uniform(rng: &mut ChaCha8Rng, count: usize, bound: f64) -> Vec<f32> {
    (0..count)
        .map(|_| (bound * (2.0 * rng.random::<f64>() - 1.0)) as f32)
        .collect()
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// softplus⁻¹ of a log-uniform dt: dt + log(-expm1(-dt)).
fn dt_bias_draw(config: &ModelConfig, rng: &mut ChaCha8Rng) -> f64 {
    let (lo, hi) = (config.dt_min.ln(), config.dt_max.ln());
    let dt = (lo + (hi - lo) * rng.random::<f64>())
        .exp()
        .max(config.dt_init_floor);
    dt + (-(-dt).exp_m1()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_seeded_and_follows_the_recipe() {
        let mut config = ModelConfig::new(32, 2, 100);
        config.headdim = 16;
        config.d_state = 8;
        let a = init_weights(&config, 7);
        assert_eq!(a, init_weights(&config, 7));
        assert_ne!(a, init_weights(&config, 8));
        let dt_bias = &a.tensors["backbone.layers.0.mixer.dt_bias"].data;
        for &b in dt_bias {
            let dt = (b as f64).exp().ln_1p();
            assert!((1e-3 - 1e-6..=0.1 + 1e-6).contains(&dt), "dt {dt}");
        }
        for &a_log in &a.tensors["backbone.layers.1.mixer.A_log"].data {
            assert!((0.0..=16f32.ln() + 1e-6).contains(&a_log));
        }
        let emb = &a.tensors["backbone.embedding.weight"].data;
        let var = emb.iter().map(|x| (x * x) as f64).sum::<f64>() / emb.len() as f64;
        assert!(
            (var.sqrt() - 0.02).abs() < 0.002,
            "embedding std {}",
            var.sqrt()
        );
    }
}
