//! The optimizer's two departures from burn's defaults, tested by what they do to a model:
//! `mamba_ssm`'s parameter groups (no weight decay on A_log, D, dt_bias, norm weights and
//! biases) and PyTorch-style clipping of the global gradient norm. Parameters are named by
//! their checkpoint names, so the tests hold however the groups are computed inside.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use forgetlab_model::{Model, ModelConfig, Weights};
use forgetlab_runs::config::OptimConfig;
use forgetlab_train::optimizer::{adamw, clip_global_norm};

/// A small Mamba-2 with every kind of parameter: biases on the projections and the
/// convolution, and an untied LM head.
fn model(device: &Device) -> Model {
    let config: ModelConfig = forgetlab_runs::config::parse(
        "d_model = 32\nn_layer = 2\nd_state = 8\nheaddim = 16\nvocab_size = 64\n\
         tie_embeddings = false\nbias = true\nconv_bias = true\n",
    )
    .unwrap();
    Model::init(&config, 7, device).unwrap()
}

/// Whether a parameter, by checkpoint name, is one AdamW must not decay.
fn exempt_from_decay(name: &str) -> bool {
    name.ends_with(".A_log")
        || name.ends_with(".D")
        || name.ends_with(".dt_bias")
        || name.ends_with("norm.weight")
        || name.ends_with("norm_f.weight")
        || name.ends_with(".bias")
}

/// Gradients of `model` that are exactly zero for every parameter, taken through the
/// backward pass and `GradientsParams::from_grads` as in training.
fn zero_gradients(model: &Model) -> GradientsParams {
    struct Sum(Option<Tensor<1>>);
    impl ModuleVisitor for Sum {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let term = (param.val() * 0.0).sum();
            self.0 = Some(match self.0.take() {
                Some(total) => total + term,
                None => term,
            });
        }
    }
    let mut sum = Sum(None);
    model.visit(&mut sum);
    let loss = sum.0.expect("the model has parameters");
    GradientsParams::from_grads(loss.backward(), model)
}

/// After one step with zero gradients AdamW's adaptive update is zero, so what remains is
/// the decoupled decay: a decayed parameter becomes `(1 - lr * weight_decay)` times itself,
/// an exempt one stays bit for bit as it was.
#[test]
fn weight_decay_spares_a_log_d_dt_bias_norms_and_biases() {
    let device = Device::flex().autodiff();
    let model = model(&device);
    let (lr, weight_decay) = (0.05, 0.2);
    let config = OptimConfig {
        weight_decay,
        ..OptimConfig::default()
    };
    let mut optimizer = adamw(&config, &model);
    let before = Weights::from_model(&model);
    let grads = zero_gradients(&model);
    let model = optimizer.step(lr, model, grads);
    let after = Weights::from_model(&model);

    let shrink = (1.0 - lr * weight_decay) as f32;
    let (mut exempt, mut decayed) = (Vec::new(), Vec::new());
    for (name, old) in &before.tensors {
        let new = &after.tensors[name];
        if exempt_from_decay(name) {
            assert_eq!(new.data, old.data, "{name} has no weight decay");
            exempt.push(name.as_str());
        } else {
            for (i, (n, o)) in new.data.iter().zip(&old.data).enumerate() {
                let want = o * shrink;
                assert!(
                    (n - want).abs() <= 1e-6 * o.abs().max(1e-3),
                    "{name}[{i}]: {o} decayed to {n}, expected {want}"
                );
            }
            let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
            assert!(norm(&new.data) < norm(&old.data), "{name} shrinks");
            decayed.push(name.as_str());
        }
    }
    // Every kind of parameter was seen, so neither group is tested vacuously.
    for suffix in [
        "A_log",
        ".D",
        "dt_bias",
        "mixer.norm.weight",
        "0.norm.weight",
        "norm_f.weight",
        "in_proj.bias",
        "out_proj.bias",
        "conv1d.bias",
    ] {
        assert!(
            exempt.iter().any(|n| n.ends_with(suffix)),
            "no exempt {suffix} among {exempt:?}"
        );
    }
    for suffix in [
        "embedding.weight",
        "in_proj.weight",
        "conv1d.weight",
        "out_proj.weight",
        "lm_head.weight",
    ] {
        assert!(
            decayed.iter().any(|n| n.ends_with(suffix)),
            "no decayed {suffix} among {decayed:?}"
        );
    }
}

/// Every parameter's gradient as f32 values, in the model's visiting order.
fn gradient_values(model: &Model, grads: &GradientsParams) -> Vec<Vec<f32>> {
    struct Read<'a> {
        grads: &'a GradientsParams,
        out: Vec<Vec<f32>>,
    }
    impl ModuleVisitor for Read<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = self
                .grads
                .get::<D>(param.id)
                .expect("every parameter has a gradient");
            self.out
                .push(g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
        }
    }
    let mut read = Read {
        grads,
        out: Vec::new(),
    };
    model.visit(&mut read);
    read.out
}

/// Gradients with fixed, varied values (both signs, a range of magnitudes) for every
/// parameter of `model`.
fn fixed_gradients(model: &Model) -> GradientsParams {
    struct Fill {
        grads: GradientsParams,
        next: u64,
    }
    impl ModuleVisitor for Fill {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            let shape = value.shape();
            let values: Vec<f32> = (0..shape.num_elements())
                .map(|_| {
                    self.next += 1;
                    ((self.next * 7919 % 1000) as f32 - 499.5) * 1e-3
                })
                .collect();
            let grad = Tensor::<D>::from_data(TensorData::new(values, shape), &value.device());
            self.grads.register(param.id, grad);
        }
    }
    let mut fill = Fill {
        grads: GradientsParams::new(),
        next: 0,
    };
    model.visit(&mut fill);
    fill.grads
}

fn global_norm(values: &[Vec<f32>]) -> f64 {
    values
        .iter()
        .flatten()
        .map(|v| (*v as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Above the threshold every gradient is scaled by the same factor, max_norm / global norm,
/// where the norm is taken over all parameters together (not per tensor, as burn's own
/// clipping does); the returned value is the norm before clipping.
#[test]
fn clipping_scales_all_gradients_by_max_norm_over_the_global_norm() {
    let model = model(&Device::flex());
    let mut grads = fixed_gradients(&model);
    let original = gradient_values(&model, &grads);
    let norm = global_norm(&original);
    assert!(
        original.len() > 10 && norm > 1.0,
        "{} tensors, norm {norm}",
        original.len()
    );

    let max_norm = norm / 4.0;
    let reported = clip_global_norm(&model, &mut grads, max_norm);
    assert!(
        (reported - norm).abs() <= 1e-5 * norm,
        "norm {reported}, want {norm}"
    );
    let clipped = gradient_values(&model, &grads);
    let scale = max_norm / norm;
    for (t, (new, old)) in clipped.iter().zip(&original).enumerate() {
        for (n, o) in new.iter().zip(old) {
            let want = *o as f64 * scale;
            assert!(
                (*n as f64 - want).abs() <= 1e-5 * o.abs().max(1e-3) as f64,
                "tensor {t}: {o} clipped to {n}, expected {want}"
            );
        }
    }
    let after = global_norm(&clipped);
    assert!(
        (after - max_norm).abs() <= 1e-4 * max_norm,
        "norm after {after}"
    );
}

/// At or below the threshold, and with clipping off (0), the gradients are left exactly as
/// they were.
#[test]
fn gradients_within_the_threshold_are_not_clipped() {
    let model = model(&Device::flex());
    let norm = global_norm(&gradient_values(&model, &fixed_gradients(&model)));
    for max_norm in [norm * 1.5, 0.0] {
        let mut grads = fixed_gradients(&model);
        let original = gradient_values(&model, &grads);
        let reported = clip_global_norm(&model, &mut grads, max_norm);
        assert!(
            (reported - norm).abs() <= 1e-5 * norm,
            "norm {reported}, want {norm}"
        );
        assert_eq!(
            gradient_values(&model, &grads),
            original,
            "max_norm {max_norm}: left as is"
        );
    }
}
