//! AdamW with `mamba_ssm`'s parameter groups, and PyTorch-style global gradient-norm clipping
//! (burn's own clipping is per tensor).

use burn::module::ParamGroup;
use burn::module::{ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use forgetlab_model::Model;
use forgetlab_runs::config::OptimConfig;

/// Parameters that get no weight decay, as the model's parameter table says: norm weights,
/// biases, the decay and step-size parameters (A_log, dt_bias) and Mamba-2's D.
pub fn no_decay_ids(model: &Model) -> Vec<ParamId> {
    model.no_decay_ids()
}

/// AdamW over `model` with decay on weight matrices only.
pub fn adamw(config: &OptimConfig, model: &Model) -> ModuleOptimizer {
    let base = || {
        AdamWConfig::new()
            .with_beta_1(config.beta1 as f32)
            .with_beta_2(config.beta2 as f32)
            .with_epsilon(config.eps as f32)
    };
    base()
        .with_weight_decay(config.weight_decay as f32)
        .init()
        .with_group(
            ParamGroup::from_ids(no_decay_ids(model)),
            base().with_weight_decay(0.0).build(),
            None,
        )
}

/// The L2 norm of all gradients together, as a scalar tensor.
pub fn global_grad_norm(model: &Model, grads: &GradientsParams) -> f64 {
    struct SquaredNorm<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SquaredNorm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let sq = g.square().sum();
                self.total = Some(match self.total.take() {
                    Some(t) => t + sq,
                    None => sq,
                });
            }
        }
    }
    let mut visitor = SquaredNorm { grads, total: None };
    model.visit(&mut visitor);
    visitor
        .total
        .map(|t| (t.into_scalar::<f32>() as f64).sqrt())
        .unwrap_or(0.0)
}

/// Scales every gradient by `factor`.
pub fn scale_grads(model: &Model, grads: &mut GradientsParams, factor: f64) {
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, g * self.factor);
            }
        }
    }
    model.visit(&mut Scale { grads, factor });
}

/// Clips the global gradient norm to `max_norm` (0 = no clipping) and returns the norm
/// before clipping.
pub fn clip_global_norm(model: &Model, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let norm = global_grad_norm(model, grads);
    if max_norm > 0.0 && norm > max_norm {
        scale_grads(model, grads, max_norm / (norm + 1e-6));
    }
    norm
}
