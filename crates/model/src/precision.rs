//! Mixed precision for GPU training: bf16 operands for the large matrix products (in_proj,
//! out_proj and the LM head), f32 for everything else.
//!
//! This is what `mamba_ssm` gets under torch autocast: parameters, optimizer state, norms,
//! the convolution and the whole selective scan (Δ, the decay exp(Δ·A), the chunk states and the
//! carried state) stay in f32, because the decay products over thousands of steps are exactly
//! where bf16's 8-bit mantissa would drift. Products take bf16 inputs and return f32, so
//! gradients flow back through the casts in the same precisions. On the CPU, burn's Flex
//! backend emulates bf16 products through f32 (slower than f32; useful to test numerics).

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::{DType, FloatDType};

use crate::ops;
pub use forgetlab_runs::config::Precision;

/// `x W + b` for a burn `Linear`, with the product in `precision`.
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>, precision: Precision) -> Tensor<D> {
    match precision {
        Precision::F32 => ops::linear(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val())),
        Precision::Bf16 => {
            let y = burn::tensor::module::linear(
                x.cast(FloatDType::BF16),
                layer.weight.val().cast(FloatDType::BF16),
                None,
            )
            .cast(FloatDType::F32);
            match &layer.bias {
                Some(bias) => y + bias.val().unsqueeze(),
                None => y,
            }
        }
    }
}

/// Output columns `start..start + size` of `layer` alone: `x W[:, cols] + b[cols]`, with the
/// product in `precision`.
pub fn linear_columns<const D: usize>(
    layer: &Linear,
    x: Tensor<D>,
    start: usize,
    size: usize,
    precision: Precision,
) -> Tensor<D> {
    let weight = layer.weight.val().narrow(1, start, size);
    let bias = layer.bias.as_ref().map(|b| b.val().narrow(0, start, size));
    match precision {
        Precision::F32 => ops::linear(x, weight, bias),
        Precision::Bf16 => {
            let y = burn::tensor::module::linear(
                x.cast(FloatDType::BF16),
                weight.cast(FloatDType::BF16),
                None,
            )
            .cast(FloatDType::F32);
            match bias {
                Some(bias) => y + bias.unsqueeze(),
                None => y,
            }
        }
    }
}

/// `a · b` (2-d) with the operands in `precision` and an f32 result. Operands already in
/// `precision` (see [`operand`]) are used as they are.
pub fn matmul(a: Tensor<2>, b: Tensor<2>, precision: Precision) -> Tensor<2> {
    match precision {
        Precision::F32 => ops::matmul(a, b),
        Precision::Bf16 => operand(a, precision)
            .matmul(operand(b, precision))
            .cast(FloatDType::F32),
    }
}

/// `t` as a product operand in `precision`, to cast a tensor used in many products once.
pub fn operand<const D: usize>(t: Tensor<D>, precision: Precision) -> Tensor<D> {
    match precision {
        Precision::Bf16 if t.dtype() != DType::BF16 => t.cast(FloatDType::BF16),
        _ => t,
    }
}

/// Whether `device` can run `precision`.
pub fn supported(device: &Device, precision: Precision) -> bool {
    match precision {
        Precision::F32 => true,
        Precision::Bf16 => device.supports_dtype(DType::BF16),
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::GradientsParams;

    use super::*;
    use crate::testing::{cpu, flat_grads, tiny_config};
    use crate::{Model, ScanHooks};

    fn ids(seed: u64, dev: &Device) -> Tensor<2, Int> {
        let values: Vec<i64> = (0..3 * 21)
            .map(|i| ((i as u64 * 7919 + seed * 104_729) % 100) as i64)
            .collect();
        Tensor::from_data(TensorData::new(values, [3, 21]), dev)
    }

    /// bf16 products change the numbers (the path is taken) by about bf16's rounding, and no
    /// more: logits, loss and every parameter's gradient stay close to f32's.
    #[test]
    fn bf16_products_stay_close_to_f32() {
        for tie in [true, false] {
            let dev = cpu().autodiff();
            let mut config = tiny_config();
            config.tie_embeddings = tie;
            let f32_model = Model::init(&config, 5, &dev).unwrap();
            let bf16_model = f32_model.clone().with_precision(Precision::Bf16);
            let hooks = ScanHooks::default();
            let ids = ids(1, &dev);
            let (inputs, targets) = (ids.clone().narrow(1, 0, 20), ids.narrow(1, 1, 20));

            let (a, _) = f32_model.forward(inputs.clone(), None, &hooks);
            let (b, _) = bf16_model.forward(inputs.clone(), None, &hooks);
            assert_eq!(b.dtype(), DType::F32);
            let scale = a.clone().abs().max().into_scalar::<f32>();
            let diff = (a - b).abs().max().into_scalar::<f32>();
            assert!(diff > 0.0, "bf16 products changed nothing");
            assert!(diff < 0.03 * scale, "logits: {diff} vs scale {scale}");

            let grads = |model: &Model| {
                let (loss, _) =
                    model.forward_loss(inputs.clone(), targets.clone(), None, &hooks, 0.1);
                let value = loss.value.into_scalar::<f32>();
                let grads = GradientsParams::from_grads(loss.surrogate.backward(), model);
                (value, flat_grads(model, &grads))
            };
            let (loss_a, grads_a) = grads(&f32_model);
            let (loss_b, grads_b) = grads(&bf16_model);
            assert!(
                (loss_a - loss_b).abs() < 1e-2 * loss_a.abs(),
                "{loss_a} vs {loss_b}"
            );
            for (i, (ga, gb)) in grads_a.iter().zip(&grads_b).enumerate() {
                let dot: f64 = ga.iter().zip(gb).map(|(x, y)| (x * y) as f64).sum();
                let na: f64 = ga.iter().map(|x| (x * x) as f64).sum::<f64>().sqrt();
                let nb: f64 = gb.iter().map(|x| (x * x) as f64).sum::<f64>().sqrt();
                let cosine = dot / (na * nb).max(1e-30);
                assert!(cosine > 0.99, "parameter {i}: gradient cosine {cosine}");
                assert!(
                    (na - nb).abs() < 0.05 * na,
                    "parameter {i}: norm {na} vs {nb}"
                );
            }
        }
    }
}
