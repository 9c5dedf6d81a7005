//! Where each op of the model chooses between forgetlab's host kernels and burn tensor ops.
//!
//! On the CPU backend in f32, the scan, the convolution with its SiLU, the gated RMSNorm, the
//! products and the LM head's loss run as host kernels with hand-written backwards
//! ([`crate::host_ops`], [`crate::host_kernels`]). Every other backend and dtype (GPUs, bf16
//! operands) runs the tensor-op form, which is also what the host kernels are tested against.
//! Each function here makes that choice for one op, from its own inputs, so the model code
//! ([`crate::mamba2::mixer`], [`crate::mamba2::ssd`], [`crate::loss`]) is written once, as its math.

use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::log_softmax;

use crate::host_kernels;
use crate::host_ops;
use crate::loss::{self, HeadGrads, HeadInputs};
use crate::mamba2::ssd::{self, ScanInputs};
use crate::precision::Precision;

/// Whether a tensor runs the host ops: f32 on the CPU backend.
pub fn on_host<const D: usize>(tensor: &Tensor<D>) -> bool {
    tensor.dtype() == DType::F32 && crate::device::is_cpu(&tensor.device().without_autodiff())
}

/// `x · sigmoid(x)`.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if on_host(&x) {
        host_ops::silu(x)
    } else {
        burn::tensor::activation::silu(x)
    }
}

/// `silu(bias + Σ_k weight[:, k] ∘ (cache ++ x)[t + k])`, a causal depthwise convolution over
/// x `[b, l, c]` with the `k - 1` rows before it in cache `[b, k - 1, c]`, weight `[c, k]`.
pub fn conv_silu(
    x_blc: Tensor<3>,
    cache_bkc: Tensor<3>,
    weight_ck: Tensor<2>,
    bias_c: Option<Tensor<1>>,
) -> Tensor<3> {
    let all_on_host = on_host(&x_blc)
        && on_host(&cache_bkc)
        && on_host(&weight_ck)
        && bias_c.as_ref().is_none_or(on_host);
    if all_on_host {
        host_ops::conv_silu(x_blc, cache_bkc, weight_ck, bias_c)
    } else {
        conv_silu_tensor_ops(x_blc, cache_bkc, weight_ck, bias_c)
    }
}

/// [`conv_silu`] in tensor ops: one shifted slice of `cache ++ x` per tap.
pub fn conv_silu_tensor_ops(
    x_blc: Tensor<3>,
    cache_bkc: Tensor<3>,
    weight_ck: Tensor<2>,
    bias_c: Option<Tensor<1>>,
) -> Tensor<3> {
    let [_, len, channels] = x_blc.dims();
    let [_, width] = weight_ck.dims();
    let padded_btc = Tensor::cat(vec![cache_bkc, x_blc], 1);
    let tap = |k: usize| {
        padded_btc
            .clone()
            .narrow(1, k, len)
            .mul(weight_ck.clone().narrow(1, k, 1).reshape([1, 1, channels]))
    };
    let mut out = tap(0);
    for k in 1..width {
        out = out + tap(k);
    }
    if let Some(bias) = bias_c {
        out = out + bias.reshape([1, 1, channels]);
    }
    silu(out)
}

/// `rmsnorm(y ∘ silu(z)) ∘ weight`, the RMS taken within each of `groups` equal groups of
/// channels: y and z `[b, l, i]`, weight `[i]` (mamba_ssm's RMSNormGated with
/// norm_before_gate = False).
pub fn gated_norm(
    y_bli: Tensor<3>,
    z_bli: Tensor<3>,
    weight_i: Tensor<1>,
    groups: usize,
    eps: f64,
) -> Tensor<3> {
    if on_host(&y_bli) && on_host(&z_bli) && on_host(&weight_i) {
        host_ops::gated_norm(y_bli, z_bli, weight_i, groups, eps)
    } else {
        gated_norm_tensor_ops(y_bli, z_bli, weight_i, groups, eps)
    }
}

/// [`gated_norm`] in tensor ops.
pub fn gated_norm_tensor_ops(
    y_bli: Tensor<3>,
    z_bli: Tensor<3>,
    weight_i: Tensor<1>,
    groups: usize,
    eps: f64,
) -> Tensor<3> {
    let [batch, len, d_inner] = y_bli.dims();
    let gated_blgi: Tensor<4> =
        (y_bli * silu(z_bli)).reshape([batch, len, groups, d_inner / groups]);
    rms_normalize(gated_blgi, eps).reshape([batch, len, d_inner])
        * weight_i.reshape([1, 1, d_inner])
}

/// The chunked scan of a segment from `initial_bhpn`, with the contract of
/// [`ssd::scan_chunked`]: the host kernel ([`crate::host_scan`]) when every input is on the
/// host, else that tensor-op form.
pub fn scan_chunked(
    inputs: ScanInputs,
    initial_bhpn: Tensor<4>,
    chunk_size: usize,
) -> (Tensor<4>, Tensor<4>) {
    let all_on_host = on_host(&inputs.x_blhp)
        && on_host(&inputs.dt_blh)
        && on_host(&inputs.log_alpha_blh)
        && on_host(&inputs.b_blgn)
        && on_host(&inputs.c_blgn)
        && on_host(&initial_bhpn);
    if all_on_host {
        host_ops::scan(inputs, initial_bhpn, chunk_size)
    } else {
        ssd::scan_chunked(inputs, initial_bhpn, chunk_size)
    }
}

/// `x W + b` in f32, for x `[.., k]` and W `[k, n]` (which may be a column range of a larger
/// weight).
pub fn linear<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    if !(on_host(&x) && on_host(&weight)) {
        return burn::tensor::module::linear(x, weight, bias);
    }
    let y = host_ops::linear(x, weight);
    match bias {
        Some(bias) => y + bias.unsqueeze(),
        None => y,
    }
}

/// `a · b` (2-d) in f32.
pub fn matmul(a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    if on_host(&a) && on_host(&b) {
        host_ops::linear(a, b)
    } else {
        a.matmul(b)
    }
}

/// The next-token loss of every position of materialised logits `[b, l, v]` against targets
/// `[b, l]`, row-major (`b * l` values), for evaluation: `logsumexp(logits) - logits[target]`,
/// on the host in one pass per row ([`host_kernels::cross_entropy_rows`]), else as
/// `log_softmax` and a gather.
pub fn token_losses(logits_blv: Tensor<3>, targets_bl: Tensor<2, Int>) -> Vec<f32> {
    let [batch, len, vocab] = logits_blv.dims();
    if on_host(&logits_blv) {
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

/// The LM head's scaled cross-entropy and its gradients ([`crate::loss`]), in blocks of
/// `block_rows` rows: entirely on the host for f32 on the CPU; with bf16 products on the CPU,
/// tensor products and the host softmax cross-entropy; elsewhere tensor ops. Without
/// `fused_on_host`, tensor ops on every backend.
pub(crate) fn head_loss(
    head: HeadInputs,
    scale: f32,
    block_rows: usize,
    precision: Precision,
    fused_on_host: bool,
) -> HeadGrads {
    if fused_on_host
        && precision == Precision::F32
        && on_host(&head.x_rd)
        && on_host(&head.weight_vd)
    {
        loss::head_on_host(head, scale, block_rows)
    } else if fused_on_host && crate::device::is_cpu(&head.x_rd.device()) {
        loss::head_blocks_host_softmax(head, scale, block_rows, precision)
    } else {
        loss::head_blocks_tensor_ops(head, scale, block_rows, precision)
    }
}

/// x / sqrt(mean(x², last dim) + eps).
pub fn rms_normalize<const D: usize>(x: Tensor<D>, eps: f64) -> Tensor<D> {
    let rstd = (x.clone().square().mean_dim(D - 1) + eps).sqrt().recip();
    x * rstd
}

/// The last `k - 1` rows of `cache ++ x`, for x `[b, l, c]` and cache `[b, k - 1, c]`: the
/// cache after x.
pub fn shift_cache(cache_bkc: Tensor<3>, x_blc: Tensor<3>) -> Tensor<3> {
    let [_, len, _] = x_blc.dims();
    let context = cache_bkc.dims()[1];
    if len >= context {
        x_blc.narrow(1, len - context, context)
    } else {
        Tensor::cat(vec![cache_bkc.narrow(1, len, context - len), x_blc], 1)
    }
}

/// `h ← h · min(1, τ_head / ‖h‖)` for each head's matrix of `[batch, heads, ·, ·]`.
pub fn clip_head_norms(state_bhxy: Tensor<4>, limits: &[f32]) -> Tensor<4> {
    let [batch, heads, _, _] = state_bhxy.dims();
    assert_eq!(limits.len(), heads, "one state-norm limit per head");
    let device = state_bhxy.device();
    let limit = Tensor::<1>::from_data(TensorData::new(limits.to_vec(), [heads]), &device)
        .reshape([1, heads, 1, 1]);
    let norm = state_bhxy.clone().square().sum_dim(3).sum_dim(2).sqrt();
    let scale = (limit.expand([batch, heads, 1, 1]) / norm).clamp_max(1.0);
    state_bhxy * scale
}
