//! The training loss, with the LM head and cross-entropy differentiated by hand.
//!
//! For small models the vocabulary projection dominates a training step: at d_model 128 and a
//! vocabulary of 8192, the logits of an 8192-token step are 268 MB, and autodiff over
//! `log_softmax(x W^T)` streams that buffer through a dozen elementwise passes forward and
//! backward. The gradient of the summed cross-entropy is known in closed form, so this module
//! computes it directly, a block of rows at a time, without recording the head in the graph:
//!
//! ```text
//! logits = x W^T            p = softmax(logits)          g = p - onehot(target)
//! loss   = max(logits) - logits[target] - ln(max(p))    (= logsumexp - logits[target])
//! dL/dx  = g W              dL/dW = g^T x               dL/db = sum_rows(g)
//! ```
//!
//! and hands the graph a surrogate scalar, `sum(x * dL/dx) + sum(W * dL/dW)`, whose gradients
//! are exactly those. The rest of the model (final norm included) is differentiated by autodiff
//! as usual. Only one block of logits exists at a time, so the head's memory no longer grows
//! with the tokens per step. `max(p) = 1 / sum(exp(logits - max))` never underflows, so the loss
//! is as accurate as a log-sum-exp. On the CPU the softmax cross-entropy of a block runs as
//! one fused pass over host memory ([`crate::host_kernels`]); other backends use tensor ops.

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::activation::{log_softmax, softmax};

use crate::host_kernels;
use crate::precision;
use crate::{Mamba2, ModelState, ScanHooks};

/// Logit elements per block of rows (4M floats = 16 MB): large enough for efficient GEMMs,
/// small enough that a block stays near the cache.
const BLOCK_ELEMENTS: usize = 1 << 22;

/// The loss of one segment, ready for `backward`.
#[derive(Debug, Clone)]
pub struct SegmentLoss {
    /// A scalar in the autodiff graph whose gradient is that of `scale * summed cross-entropy`;
    /// its value is not the loss. Add the surrogates of several segments and call `backward`.
    pub surrogate: Tensor<1>,
    /// `scale * summed cross-entropy`, outside the graph.
    pub value: Tensor<1>,
}

/// Summed next-token cross-entropy of materialised logits `[b, l, v]` against targets
/// `[b, l]`, by tensor ops, differentiable (the naive-head benchmark and tests; training uses
/// [`Mamba2::forward_loss`], evaluation [`token_losses`]).
pub fn cross_entropy_sum(logits_blv: Tensor<3>, targets_bl: Tensor<2, Int>) -> Tensor<1> {
    let [batch, len, vocab] = logits_blv.dims();
    log_softmax(logits_blv.reshape([batch * len, vocab]), 1)
        .gather(1, targets_bl.reshape([batch * len, 1]))
        .sum()
        .neg()
}

/// The next-token loss of every position of materialised logits `[b, l, v]` against targets
/// `[b, l]`, row-major (`b * l` values), for evaluation. On the CPU one fused pass over host
/// memory ([`host_kernels::cross_entropy_rows`]); elsewhere `log_softmax` and a gather.
pub fn token_losses(logits_blv: Tensor<3>, targets_bl: Tensor<2, Int>) -> Vec<f32> {
    let [batch, len, vocab] = logits_blv.dims();
    if crate::host_ops::on_host(&logits_blv) {
        let logits = logits_blv.into_data();
        let targets = targets_bl.into_data().convert::<i64>();
        return host_kernels::cross_entropy_rows(
            logits.as_slice::<f32>().expect("on_host means f32"),
            vocab,
            targets.as_slice::<i64>().expect("converted to i64"),
        );
    }
    log_softmax(logits_blv.reshape([batch * len, vocab]), 1)
        .gather(1, targets_bl.reshape([batch * len, 1]))
        .neg()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 losses")
}

fn f32_slice(data: &TensorData) -> &[f32] {
    data.as_slice::<f32>().expect("converted to f32")
}

impl Mamba2 {
    /// Training loss of a segment: runs the model on `inputs_bl` from `state` and returns
    /// `scale` times the summed next-token cross-entropy against `targets_bl` (same shape), as
    /// a [`SegmentLoss`], and the state after the segment. Gradients equal those of
    /// `log_softmax(forward(..)).gather(targets).sum().neg() * scale`, at a fraction of the
    /// time and memory (see the module docs).
    pub fn forward_loss(
        &self,
        inputs_bl: Tensor<2, Int>,
        targets_bl: Tensor<2, Int>,
        state: Option<ModelState>,
        hooks: &ScanHooks,
        scale: f32,
    ) -> (SegmentLoss, ModelState) {
        let (normed, state) = self.forward_normed(inputs_bl, state, hooks);
        (
            self.head_loss(normed, targets_bl, scale, BLOCK_ELEMENTS, true),
            state,
        )
    }

    /// The head and cross-entropy of final-norm outputs `normed_bld`, processed in blocks of
    /// about `block_elements` logits. With `fused_on_host`, tensors on the CPU take the fused
    /// softmax cross-entropy of [`host_kernels`]; otherwise (and on GPUs) tensor ops.
    pub(crate) fn head_loss(
        &self,
        normed_bld: Tensor<3>,
        targets_bl: Tensor<2, Int>,
        scale: f32,
        block_elements: usize,
        fused_on_host: bool,
    ) -> SegmentLoss {
        let [batch, len, d] = normed_bld.dims();
        let rows = batch * len;
        let x = normed_bld.reshape([rows, d]);
        let x_const = x.clone().detach().without_autodiff();
        let targets = targets_bl.reshape([rows]).without_autodiff();
        // The head as W [vocab, d] (and a bias), constants for the hand-written part.
        let (weight, bias) = match &self.lm_head {
            Some(head) => (
                head.weight.val().transpose(),
                head.bias.as_ref().map(|b| b.val()),
            ),
            None => (self.embedding.weight.val(), None),
        };
        let weight_const = weight.clone().detach().without_autodiff();
        let weight_operand = precision::operand(weight_const.clone(), self.precision);
        let x_operand = precision::operand(x_const.clone(), self.precision);
        let bias_const = bias.as_ref().map(|b| b.clone().detach().without_autodiff());
        let [vocab, _] = weight_const.dims();

        let device = x_const.device();
        let block = (block_elements / vocab).max(1).min(rows.max(1));
        let f32_on_host = fused_on_host
            && self.precision == precision::Precision::F32
            && crate::host_ops::on_host(&x_const)
            && crate::host_ops::on_host(&weight_const);
        if f32_on_host {
            // The whole head on host memory: gemm straight into one reused logits buffer.
            let to_host = |t: Tensor<2>| t.into_data().convert::<f32>();
            let (x_host, weight_host) = (to_host(x_const), to_host(weight_const));
            let bias_host = bias_const.map(|b| b.into_data().convert::<f32>());
            let targets_host = targets.into_data().convert::<i64>();
            let (loss, grad_x, grad_weight, grad_bias) = host_kernels::head_loss_and_grads(
                f32_slice(&x_host),
                f32_slice(&weight_host),
                bias_host.as_ref().map(f32_slice),
                targets_host.as_slice::<i64>().expect("converted to i64"),
                scale,
                block,
            );
            let grad_x = Tensor::<2>::from_data(TensorData::new(grad_x, [rows, d]), &device);
            let grad_weight =
                Tensor::<2>::from_data(TensorData::new(grad_weight, [vocab, d]), &device);
            let mut surrogate = (x * grad_x).sum() + (weight * grad_weight).sum();
            if let (Some(b), Some(gb)) = (bias, grad_bias) {
                surrogate = surrogate
                    + (b * Tensor::<1>::from_data(TensorData::new(gb, [vocab]), &device)).sum();
            }
            return SegmentLoss {
                surrogate,
                value: Tensor::<1>::from_floats([(loss * scale as f64) as f32], &device),
            };
        }
        // On the CPU the softmax cross-entropy runs fused on host memory (host_kernels).
        let host_targets = (fused_on_host && crate::device::is_cpu(&device))
            .then(|| {
                targets
                    .clone()
                    .into_data()
                    .convert::<i64>()
                    .try_into_vec::<i64>()
            })
            .and_then(Result::ok);
        let mut loss_tensor = Tensor::<1>::zeros([1], &device);
        let mut loss_host = 0.0f64;
        let mut grad_x_blocks = Vec::with_capacity(rows.div_ceil(block));
        let mut grad_weight = Tensor::<2>::zeros([vocab, d], &device);
        let mut grad_bias = bias_const.as_ref().map(|b| b.zeros_like());
        for start in (0..rows).step_by(block) {
            let n = block.min(rows - start);
            let x_block = x_operand.clone().narrow(0, start, n);
            let mut logits = precision::matmul(
                x_block.clone(),
                weight_operand.clone().transpose(),
                self.precision,
            );
            if let Some(b) = &bias_const {
                logits = logits + b.clone().reshape([1, vocab]);
            }
            let grad_logits = match &host_targets {
                Some(all_targets) => {
                    let mut values = logits
                        .into_data()
                        .try_into_vec::<f32>()
                        .expect("logits are f32");
                    loss_host += host_kernels::softmax_cross_entropy_in_place(
                        &mut values,
                        vocab,
                        &all_targets[start..start + n],
                        scale,
                    );
                    Tensor::<2>::from_data(TensorData::new(values, [n, vocab]), &device)
                }
                None => {
                    let target_block = targets.clone().narrow(0, start, n).reshape([n, 1]);
                    let probs = softmax(logits.clone(), 1);
                    // logsumexp - logit[target], with logsumexp = max(logits) - ln(max(p)).
                    let row_loss = logits.clone().max_dim(1)
                        - probs.clone().max_dim(1).log()
                        - logits.gather(1, target_block.clone());
                    loss_tensor = loss_tensor + row_loss.sum();
                    probs.scatter(
                        1,
                        target_block,
                        Tensor::<2>::full([n, 1], -1.0, &device),
                        IndexingUpdateOp::Add,
                    ) * scale
                }
            };
            grad_x_blocks.push(precision::matmul(
                grad_logits.clone(),
                weight_operand.clone(),
                self.precision,
            ));
            grad_bias = grad_bias.map(|gb| gb + grad_logits.clone().sum_dim(0).reshape([vocab]));
            grad_weight =
                grad_weight + precision::matmul(grad_logits.transpose(), x_block, self.precision);
        }
        let loss_sum = loss_tensor + loss_host as f32;
        let grad_x = Tensor::cat(grad_x_blocks, 0);

        let mut surrogate = (x * grad_x).sum() + (weight * grad_weight).sum();
        if let (Some(b), Some(gb)) = (bias, grad_bias) {
            surrogate = surrogate + (b * gb).sum();
        }
        SegmentLoss {
            surrogate,
            value: loss_sum * scale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, cpu, tiny_config};
    use crate::weights::Weights;

    fn ids(batch: usize, len: usize, vocab: usize, seed: usize, dev: &Device) -> Tensor<2, Int> {
        let v: Vec<i64> = (0..batch * len)
            .map(|i| ((i * 7919 + seed * 31 + i * i) % vocab) as i64)
            .collect();
        Tensor::from_data(TensorData::new(v, [batch, len]), dev)
    }

    /// The host per-token losses equal log_softmax-and-gather, position by position.
    #[test]
    fn token_losses_match_log_softmax() {
        let device = cpu();
        let (batch, len, vocab) = (3, 7, 37);
        let logits = crate::testing::random([batch, len, vocab], 9, &device) * 6.0;
        let targets = ids(batch, len, vocab, 2, &device);
        let host = token_losses(logits.clone(), targets.clone());
        let reference: Vec<f32> = log_softmax(logits.reshape([batch * len, vocab]), 1)
            .gather(1, targets.reshape([batch * len, 1]))
            .neg()
            .into_data()
            .try_into_vec()
            .expect("f32");
        assert_eq!(host.len(), batch * len);
        for (i, (h, r)) in host.iter().zip(&reference).enumerate() {
            assert!((h - r).abs() < 1e-5, "position {i}: {h} vs {r}");
        }
    }

    /// The hand-written head gives the loss and every parameter gradient of autodiff over
    /// `log_softmax`, tied and untied, with blocks that do not divide the rows.
    #[test]
    fn hand_written_head_matches_autodiff() {
        for tie in [true, false] {
            let dev = cpu().autodiff();
            let mut config = tiny_config();
            config.tie_embeddings = tie;
            let model = Mamba2::init(&config, 3, &dev).unwrap();
            let (batch, len) = (3, 13);
            let inputs = ids(batch, len, 100, 1, &dev);
            let targets = ids(batch, len, 100, 2, &dev);
            let scale = 0.25;

            let (logits, _) = model.forward(inputs.clone(), None, &ScanHooks::default());
            let vocab = logits.dims()[2];
            let reference = cross_entropy_sum(logits, targets.clone()) * scale;
            let reference_grads = Weights::from_grads(&model, &reference.backward());

            for fused_on_host in [true, false] {
                let (normed, _) = model.forward_normed(inputs.clone(), None, &ScanHooks::default());
                // 5 rows per block: 39 rows in 8 blocks, the last one short.
                let fused = model.head_loss(
                    normed.clone(),
                    targets.clone(),
                    scale,
                    5 * vocab,
                    fused_on_host,
                );
                assert_close(&fused.value, &reference.clone().detach(), 1e-4, "loss");
                let fused_grads = Weights::from_grads(&model, &fused.surrogate.backward());
                assert_eq!(fused_grads.tensors.len(), reference_grads.tensors.len());
                for (name, want) in &reference_grads.tensors {
                    let got = &fused_grads.tensors[name];
                    let scale = want.data.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                    let diff = got
                        .data
                        .iter()
                        .zip(&want.data)
                        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(
                        diff / scale < 1e-4,
                        "tie={tie} fused_on_host={fused_on_host} {name}: relative difference {}",
                        diff / scale
                    );
                }
            }
        }
    }
}
