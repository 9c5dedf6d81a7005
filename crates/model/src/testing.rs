//! Helpers for the model's unit tests.

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn cpu() -> Device {
    Device::flex()
}

/// A tensor of standard-normal-ish values from a seed (uniform in [-1.7, 1.7]).
pub fn random<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let count: usize = shape.iter().product();
    let values: Vec<f32> = (0..count)
        .map(|_| rng.random_range(-1.7f32..1.7f32))
        .collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff<const D: usize>(a: &Tensor<D>, b: &Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    (a.clone() - b.clone()).abs().max().into_scalar::<f32>()
}

pub fn assert_close<const D: usize>(a: &Tensor<D>, b: &Tensor<D>, tol: f32, what: &str) {
    let diff = max_abs_diff(a, b);
    assert!(diff <= tol, "{what}: max |diff| = {diff} > {tol}");
}

/// A two-layer model small enough for unit tests (vocabulary 100, chunk 8).
pub fn tiny_config() -> crate::ModelConfig {
    let mut config = crate::ModelConfig::new(32, 2, 100);
    config.d_state = 8;
    config.headdim = 16;
    config.chunk_size = 8;
    config
}

/// Every parameter's gradient in `grads`, flattened, in the model's visiting order.
pub fn flat_grads(model: &crate::Model, grads: &burn::optim::GradientsParams) -> Vec<Vec<f32>> {
    struct Collect<'a>(&'a burn::optim::GradientsParams, Vec<Vec<f32>>);
    impl burn::module::ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let grad = self
                .0
                .get::<D>(param.id)
                .expect("every parameter has a gradient");
            self.1
                .push(grad.into_data().try_to_vec::<f32>().expect("f32 gradients"));
        }
    }
    let mut collect = Collect(grads, Vec::new());
    model.visit(&mut collect);
    collect.1
}
