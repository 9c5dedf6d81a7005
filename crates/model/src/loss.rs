//! The training loss, with the LM head and cross-entropy differentiated by hand.
//!
//! For small models the vocabulary projection dominates a training step: the logits of a step
//! hold a vocabulary's worth of floats per token, and autodiff over `log_softmax(x W^T)`
//! streams that buffer through a dozen elementwise passes forward and backward. The gradient of
//! the summed cross-entropy is known in closed form, so this module computes it directly, a
//! block of rows at a time, without recording the head in the graph:
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
//! is as accurate as a log-sum-exp. The head is computed one of three ways, which
//! [`crate::ops::head_loss`] chooses between: all on host memory ([`head_on_host`]), tensor
//! products with the host's fused softmax cross-entropy ([`head_blocks_host_softmax`]), or
//! tensor ops throughout ([`head_blocks_tensor_ops`]).

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::activation::{log_softmax, softmax};

use crate::host_kernels;
use crate::ops;
use crate::precision::{self, Precision};
use crate::{Model, ModelState, ScanHooks};

pub use crate::ops::token_losses;

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
/// [`Model::forward_loss`], evaluation [`token_losses`]).
pub fn cross_entropy_sum(logits_blv: Tensor<3>, targets_bl: Tensor<2, Int>) -> Tensor<1> {
    let [batch, len, vocab] = logits_blv.dims();
    log_softmax(logits_blv.reshape([batch * len, vocab]), 1)
        .gather(1, targets_bl.reshape([batch * len, 1]))
        .sum()
        .neg()
}

/// The head's operands, constants outside the graph: rows x `[rows, d]`, the head as
/// W `[vocab, d]` and its bias `[vocab]`, and the targets `[rows]`.
pub(crate) struct HeadInputs {
    pub x_rd: Tensor<2>,
    pub weight_vd: Tensor<2>,
    pub bias_v: Option<Tensor<1>>,
    pub targets_r: Tensor<1, Int>,
}

/// `scale` times the head's summed cross-entropy and the gradients of that of x, W and b.
pub(crate) struct HeadGrads {
    pub loss: Tensor<1>,
    pub x_rd: Tensor<2>,
    pub weight_vd: Tensor<2>,
    pub bias_v: Option<Tensor<1>>,
}

/// The whole head on host memory ([`host_kernels::head_loss_and_grads`]): gemm straight into
/// one reused logits buffer, the softmax cross-entropy in place. f32 on the CPU only.
pub(crate) fn head_on_host(head: HeadInputs, scale: f32, block_rows: usize) -> HeadGrads {
    let device = head.x_rd.device();
    let [rows, d] = head.x_rd.dims();
    let [vocab, _] = head.weight_vd.dims();
    let to_host = |t: Tensor<2>| t.into_data().convert::<f32>();
    let (x_host, weight_host) = (to_host(head.x_rd), to_host(head.weight_vd));
    let bias_host = head.bias_v.map(|b| b.into_data().convert::<f32>());
    let targets_host = head.targets_r.into_data().convert::<i64>();
    let (loss, grad_x, grad_weight, grad_bias) = host_kernels::head_loss_and_grads(
        f32_slice(&x_host),
        f32_slice(&weight_host),
        bias_host.as_ref().map(f32_slice),
        targets_host.as_slice::<i64>().expect("converted to i64"),
        scale,
        block_rows,
    );
    HeadGrads {
        loss: Tensor::<1>::from_floats([(loss * scale as f64) as f32], &device),
        x_rd: Tensor::from_data(TensorData::new(grad_x, [rows, d]), &device),
        weight_vd: Tensor::from_data(TensorData::new(grad_weight, [vocab, d]), &device),
        bias_v: grad_bias.map(|gb| Tensor::from_data(TensorData::new(gb, [vocab]), &device)),
    }
}

/// Tensor products in `precision`, and each block's softmax cross-entropy as one fused pass
/// over host memory ([`host_kernels::softmax_cross_entropy_in_place`]): the CPU with bf16
/// operands.
pub(crate) fn head_blocks_host_softmax(
    head: HeadInputs,
    scale: f32,
    block_rows: usize,
    precision: Precision,
) -> HeadGrads {
    let device = head.x_rd.device();
    let [vocab, _] = head.weight_vd.dims();
    let targets = head
        .targets_r
        .clone()
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .expect("converted to i64");
    let mut loss = 0.0f64;
    let (x_rd, weight_vd, bias_v) = head_blocks(head, block_rows, precision, |logits, start| {
        let n = logits.dims()[0];
        let mut values = logits
            .into_data()
            .try_into_vec::<f32>()
            .expect("logits are f32");
        loss += host_kernels::softmax_cross_entropy_in_place(
            &mut values,
            vocab,
            &targets[start..start + n],
            scale,
        );
        Tensor::<2>::from_data(TensorData::new(values, [n, vocab]), &device)
    });
    HeadGrads {
        loss: Tensor::<1>::from_floats([loss as f32], &device) * scale,
        x_rd,
        weight_vd,
        bias_v,
    }
}

/// Tensor ops throughout, for every backend: `g = scale (p - onehot)` by a softmax and a
/// scatter, the loss as `max(logits) - ln(max(p)) - logits[target]`.
pub(crate) fn head_blocks_tensor_ops(
    head: HeadInputs,
    scale: f32,
    block_rows: usize,
    precision: Precision,
) -> HeadGrads {
    let device = head.x_rd.device();
    let targets = head.targets_r.clone();
    let mut loss = Tensor::<1>::zeros([1], &device);
    let (x_rd, weight_vd, bias_v) = head_blocks(head, block_rows, precision, |logits, start| {
        let n = logits.dims()[0];
        let target_block = targets.clone().narrow(0, start, n).reshape([n, 1]);
        let probs = softmax(logits.clone(), 1);
        let row_loss = logits.clone().max_dim(1)
            - probs.clone().max_dim(1).log()
            - logits.gather(1, target_block.clone());
        loss = loss.clone() + row_loss.sum();
        probs.scatter(
            1,
            target_block,
            Tensor::<2>::full([n, 1], -1.0, &device),
            IndexingUpdateOp::Add,
        ) * scale
    });
    HeadGrads {
        loss: loss * scale,
        x_rd,
        weight_vd,
        bias_v,
    }
}

/// The products of the blocked head: for each block of rows, `logits = x W^T + b` in
/// `precision`, `g = grad_logits(logits, first row)`, then `dx = g W`, `dW += g^T x`,
/// `db += sum_rows(g)`. Returns the gradients of x, W and b.
fn head_blocks(
    head: HeadInputs,
    block_rows: usize,
    precision: Precision,
    mut grad_logits: impl FnMut(Tensor<2>, usize) -> Tensor<2>,
) -> (Tensor<2>, Tensor<2>, Option<Tensor<1>>) {
    let device = head.x_rd.device();
    let [rows, d] = head.x_rd.dims();
    let [vocab, _] = head.weight_vd.dims();
    let weight_operand = precision::operand(head.weight_vd, precision);
    let x_operand = precision::operand(head.x_rd, precision);
    let mut grad_x_blocks = Vec::with_capacity(rows.div_ceil(block_rows));
    let mut grad_weight = Tensor::<2>::zeros([vocab, d], &device);
    let mut grad_bias = head.bias_v.as_ref().map(|b| b.zeros_like());
    for start in (0..rows).step_by(block_rows) {
        let n = block_rows.min(rows - start);
        let x_block = x_operand.clone().narrow(0, start, n);
        let mut logits = precision::matmul(
            x_block.clone(),
            weight_operand.clone().transpose(),
            precision,
        );
        if let Some(b) = &head.bias_v {
            logits = logits + b.clone().reshape([1, vocab]);
        }
        let g = grad_logits(logits, start);
        grad_x_blocks.push(precision::matmul(
            g.clone(),
            weight_operand.clone(),
            precision,
        ));
        grad_bias = grad_bias.map(|gb| gb + g.clone().sum_dim(0).reshape([vocab]));
        grad_weight = grad_weight + precision::matmul(g.transpose(), x_block, precision);
    }
    (Tensor::cat(grad_x_blocks, 0), grad_weight, grad_bias)
}

fn f32_slice(data: &TensorData) -> &[f32] {
    data.as_slice::<f32>().expect("converted to f32")
}

impl Model {
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
    /// about `block_elements` logits, as a surrogate for the graph. `fused_on_host` lets the
    /// CPU take the host kernels ([`ops::head_loss`]); without it, tensor ops everywhere.
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
        // The head as W [vocab, d] (and a bias); constants for the hand-written part.
        let (weight, bias) = match &self.lm_head {
            Some(head) => (
                head.weight.val().transpose(),
                head.bias.as_ref().map(|b| b.val()),
            ),
            None => (self.embedding.weight.val(), None),
        };
        let constant = |t: Tensor<2>| t.detach().without_autodiff();
        let head = HeadInputs {
            x_rd: constant(x.clone()),
            weight_vd: constant(weight.clone()),
            bias_v: bias.as_ref().map(|b| b.clone().detach().without_autodiff()),
            targets_r: targets_bl.reshape([rows]).without_autodiff(),
        };
        let [vocab, _] = head.weight_vd.dims();
        let block_rows = (block_elements / vocab).max(1).min(rows.max(1));
        let grads = ops::head_loss(head, scale, block_rows, self.precision, fused_on_host);

        let mut surrogate = (x * grads.x_rd).sum() + (weight * grads.weight_vd).sum();
        if let (Some(b), Some(gb)) = (bias, grads.bias_v) {
            surrogate = surrogate + (b * gb).sum();
        }
        SegmentLoss {
            surrogate,
            value: grads.loss,
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
            let model = Model::init(&config, 3, &dev).unwrap();
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
