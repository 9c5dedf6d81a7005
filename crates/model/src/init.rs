//! Seeded initialisation as `mamba_ssm` does it for training from scratch (paper.md section 8).
//!
//! Values are drawn on the host from one ChaCha stream in a fixed order, so the same seed gives
//! the same model on every backend.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Mamba2Config;
use crate::weights::{WeightTensor, Weights, expected_shapes};

/// Initial weights for `config` from `seed`:
/// - embedding N(0, 0.02);
/// - linear layers PyTorch's default, kaiming-uniform(a=√5), i.e. U(±1/√fan_in), zero biases;
///   out_proj additionally divided by √n_layer (one residual per layer, no MLP);
/// - conv weight and bias PyTorch's default, U(±1/√d_conv);
/// - dt_bias = softplus⁻¹(dt) with dt log-uniform in [dt_min, dt_max], floored at dt_init_floor;
/// - A_log = log U[A_init_range]; D = 1; norm weights = 1.
pub fn init_weights(config: &Mamba2Config, seed: u64) -> Weights {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = std::collections::BTreeMap::new();
    for (name, shape) in expected_shapes(config) {
        let count: usize = shape.iter().product();
        let suffix = name.rsplit_once("mixer.").map(|(_, s)| s).unwrap_or(&name);
        let data: Vec<f32> = if name.ends_with("embedding.weight") || name == "lm_head.weight" {
            (0..count).map(|_| 0.02 * normal(&mut rng) as f32).collect()
        } else if name.ends_with("norm.weight") || name.ends_with("norm_f.weight") || suffix == "D"
        {
            vec![1.0; count]
        } else if suffix.ends_with("proj.bias") {
            vec![0.0; count]
        } else if suffix == "in_proj.weight" {
            uniform(&mut rng, count, 1.0 / (config.d_model as f64).sqrt())
        } else if suffix == "out_proj.weight" {
            let bound = 1.0 / (config.d_inner() as f64).sqrt() / (config.n_layer as f64).sqrt();
            uniform(&mut rng, count, bound)
        } else if suffix.starts_with("conv1d.") {
            uniform(&mut rng, count, 1.0 / (config.d_conv as f64).sqrt())
        } else if suffix == "dt_bias" {
            (0..count)
                .map(|_| dt_bias_draw(config, &mut rng) as f32)
                .collect()
        } else if suffix == "A_log" {
            let (lo, hi) = config.a_init_range;
            (0..count)
                .map(|_| (lo + (hi - lo) * rng.random::<f64>()).ln() as f32)
                .collect()
        } else {
            unreachable!("expected_shapes lists no other tensor: {name}")
        };
        tensors.insert(name, WeightTensor::new(shape, data));
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
fn dt_bias_draw(config: &Mamba2Config, rng: &mut ChaCha8Rng) -> f64 {
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
        let mut config = Mamba2Config::new(32, 2, 100);
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
