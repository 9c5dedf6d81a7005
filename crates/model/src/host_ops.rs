//! forgetlab's own burn ops, for the CPU backend, each with a hand-written backward: the chunked
//! scan ([`crate::host_scan`]), the causal conv with its SiLU and the gated RMSNorm
//! ([`crate::host_layer`]), and SiLU.
//!
//! burn's CPU backend runs each tensor op as its own pass over memory and computes `exp` with
//! scalar libm calls; as tensor ops, the SSD and the elementwise work around it were most of a
//! training step's non-GEMM time. These ops run on host memory with vectorised kernels instead.
//! They reach burn through a backend extension ([`HostOps`]): Flex runs the kernels, and its
//! autodiff wrapper records one graph node per call whose backward calls the matching kernel.
//! Other backends never see them: [`on_host`] decides, and GPUs keep the tensor-op paths.

use burn::backend::{
    AutodiffBackend, Backend, Flex, TensorMetadata, backend_extension, tensor::FloatTensor,
};
use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use burn_autodiff::{
    Autodiff, NodeId,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn_flex::FlexTensor;

use crate::host_kernels::{self, Threads, View};
use crate::host_layer::{self, ConvDims, ConvInputs, NormDims};
use crate::host_scan::{self, Dims, Inputs};
use crate::ssd::ScanInputs;

/// Whether a tensor runs the host ops: f32 on the CPU backend.
pub fn on_host<const D: usize>(tensor: &Tensor<D>) -> bool {
    tensor.dtype() == DType::F32 && crate::device::is_cpu(&tensor.device().without_autodiff())
}

/// Whether [`scan`] can run these inputs.
pub fn scan_applies(inputs: &ScanInputs, initial_bhpn: &Tensor<4>) -> bool {
    on_host(&inputs.x_blhp)
        && on_host(&inputs.dt_blh)
        && on_host(&inputs.log_alpha_blh)
        && on_host(&inputs.b_blgn)
        && on_host(&inputs.c_blgn)
        && on_host(initial_bhpn)
}

/// `x · sigmoid(x)`: the host kernel when [`on_host`], else burn's.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if on_host(&x) {
        Tensor::from_dispatch(<burn::backend::Dispatch as HostOps>::host_silu(
            x.into_dispatch(),
        ))
    } else {
        burn::tensor::activation::silu(x)
    }
}

/// `silu(conv(cache ++ x) + bias)`, the causal depthwise convolution of a layer
/// ([`crate::host_layer`]): x `[b, l, c]`, cache `[b, k - 1, c]`, weight `[c, k]`, bias `[c]`.
/// Call only when every tensor is [`on_host`].
pub fn conv_silu(
    x_blc: Tensor<3>,
    cache_bkc: Tensor<3>,
    weight_ck: Tensor<2>,
    bias_c: Option<Tensor<1>>,
) -> Tensor<3> {
    let [channels, _] = weight_ck.dims();
    let bias_c = bias_c.unwrap_or_else(|| Tensor::zeros([channels], &weight_ck.device()));
    Tensor::from_dispatch(<burn::backend::Dispatch as HostOps>::host_conv_silu(
        x_blc.into_dispatch(),
        cache_bkc.into_dispatch(),
        weight_ck.into_dispatch(),
        bias_c.into_dispatch(),
    ))
}

/// `rmsnorm(y ∘ silu(z)) ∘ weight` with the RMS over `groups` equal groups of channels
/// ([`crate::host_layer`]). Call only when every tensor is [`on_host`].
pub fn gated_norm(
    y_bli: Tensor<3>,
    z_bli: Tensor<3>,
    weight_i: Tensor<1>,
    groups: usize,
    eps: f64,
) -> Tensor<3> {
    Tensor::from_dispatch(<burn::backend::Dispatch as HostOps>::host_gated_norm(
        y_bli.into_dispatch(),
        z_bli.into_dispatch(),
        weight_i.into_dispatch(),
        groups,
        eps as f32,
    ))
}

/// `x · weight` for x `[.., k]` and weight `[k, n]`, which may be a strided view such as a
/// column range of a larger weight. Call only when both are [`on_host`].
pub fn linear<const D: usize>(x: Tensor<D>, weight: Tensor<2>) -> Tensor<D> {
    let mut dims = x.dims();
    let rows = dims[..D - 1].iter().product::<usize>();
    let x_rows = x.reshape([rows, dims[D - 1]]);
    dims[D - 1] = weight.dims()[1];
    let y = Tensor::<2>::from_dispatch(<burn::backend::Dispatch as HostOps>::host_linear(
        x_rows.into_dispatch(),
        weight.into_dispatch(),
    ));
    y.reshape(dims)
}

/// The chunked scan of a segment from `initial_bhpn` on host memory ([`crate::host_scan`]);
/// same contract as [`crate::ssd::scan_chunked`]. Call only when [`scan_applies`].
pub fn scan(
    inputs: ScanInputs,
    initial_bhpn: Tensor<4>,
    chunk_size: usize,
) -> (Tensor<4>, Tensor<4>) {
    let [batch, len, heads, headdim] = inputs.x_blhp.dims();
    let d_state = inputs.b_blgn.dims()[3];
    let packed = <burn::backend::Dispatch as HostOps>::host_scan(
        inputs.x_blhp.into_dispatch(),
        inputs.dt_blh.into_dispatch(),
        inputs.log_alpha_blh.into_dispatch(),
        inputs.b_blgn.into_dispatch(),
        inputs.c_blgn.into_dispatch(),
        initial_bhpn.into_dispatch(),
        chunk_size,
    );
    let packed = Tensor::<1>::from_dispatch(packed);
    let y_len = batch * len * heads * headdim;
    let state_len = batch * heads * headdim * d_state;
    let y = packed
        .clone()
        .narrow(0, 0, y_len)
        .reshape([batch, len, heads, headdim]);
    let last = packed
        .narrow(0, y_len, state_len)
        .reshape([batch, heads, headdim, d_state]);
    (y, last)
}

/// The host ops. The scan methods take x `[b, l, h, p]`, Δ and log α `[b, l, h]`, B and C
/// `[b, l, g, n]` and the initial state `[b, h, p, n]`, all f32.
#[backend_extension(Flex, Autodiff)]
pub trait HostOps: Backend {
    /// The outputs packed in one flat tensor: y `[b, l, h, p]` then the final state
    /// `[b, h, p, n]`.
    fn host_scan(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        log_alpha: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        initial: FloatTensor<Self>,
        chunk_size: usize,
    ) -> FloatTensor<Self>;

    /// Gradients of the inputs, in input order, given the gradient of `host_scan`'s packed
    /// output.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn host_scan_backward(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        log_alpha: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        initial: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        chunk_size: usize,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    );

    /// `x · weight` for x `[rows, k]` and weight `[k, n]` (any non-negative strides).
    fn host_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Gradients of x and weight given the gradient of `host_linear`.
    fn host_linear_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `x · sigmoid(x)`, elementwise.
    fn host_silu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradient of `host_silu` at `x` given the output gradient `grad`.
    fn host_silu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `silu(bias + Σ_k weight[:, k] ∘ padded[t + k])` with `padded = cache ++ x`: x
    /// `[b, l, c]`, cache `[b, k - 1, c]`, weight `[c, k]`, bias `[c]`; output like x.
    fn host_conv_silu(
        x: FloatTensor<Self>,
        cache: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Gradients of x, cache, weight and bias given the gradient of `host_conv_silu`.
    #[allow(clippy::type_complexity)]
    fn host_conv_silu_backward(
        x: FloatTensor<Self>,
        cache: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    );

    /// `rmsnorm(y ∘ silu(z)) ∘ weight`, the RMS taken over each of `groups` equal groups of the
    /// last dimension: y and z `[.., width]`, weight `[width]`; output like y.
    fn host_gated_norm(
        y: FloatTensor<Self>,
        z: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        groups: usize,
        eps: f32,
    ) -> FloatTensor<Self>;

    /// Gradients of y, z and weight given the gradient of `host_gated_norm`.
    fn host_gated_norm_backward(
        y: FloatTensor<Self>,
        z: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        groups: usize,
        eps: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl HostOps for Flex {
    fn host_scan(
        x: FlexTensor,
        dt: FlexTensor,
        log_alpha: FlexTensor,
        b: FlexTensor,
        c: FlexTensor,
        initial: FlexTensor,
        chunk_size: usize,
    ) -> FlexTensor {
        let dims = Dims::new(&x.shape(), &b.shape(), chunk_size);
        let host = [x, dt, log_alpha, b, c, initial].map(contiguous);
        let [x, dt, log_alpha, b, c, initial] = host.each_ref().map(f32_slice);
        let inputs = Inputs {
            x,
            dt,
            log_alpha,
            b,
            c,
            initial,
        };
        flat(host_scan::forward(&dims, &inputs))
    }

    fn host_scan_backward(
        x: FlexTensor,
        dt: FlexTensor,
        log_alpha: FlexTensor,
        b: FlexTensor,
        c: FlexTensor,
        initial: FlexTensor,
        grad: FlexTensor,
        chunk_size: usize,
    ) -> (
        FlexTensor,
        FlexTensor,
        FlexTensor,
        FlexTensor,
        FlexTensor,
        FlexTensor,
    ) {
        let dims = Dims::new(&x.shape(), &b.shape(), chunk_size);
        let shapes = [&x, &dt, &log_alpha, &b, &c, &initial].map(|t| t.shape());
        let host = [x, dt, log_alpha, b, c, initial, grad].map(contiguous);
        let [x, dt, log_alpha, b, c, initial, grad] = host.each_ref().map(f32_slice);
        let inputs = Inputs {
            x,
            dt,
            log_alpha,
            b,
            c,
            initial,
        };
        let grads = host_scan::backward(&dims, &inputs, grad);
        let [dx, ddt, dla, db, dc, dinit] = [
            grads.x,
            grads.dt,
            grads.log_alpha,
            grads.b,
            grads.c,
            grads.initial,
        ]
        .into_iter()
        .zip(shapes)
        .map(|(values, shape)| host_tensor(values, shape))
        .collect::<Vec<_>>()
        .try_into()
        .unwrap_or_else(|_| unreachable!("six gradients"));
        (dx, ddt, dla, db, dc, dinit)
    }

    fn host_linear(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        let (x, weight) = (contiguous(x), forward_strides(weight));
        let (x_view, w_view) = (matrix(&x), matrix(&weight));
        let y = host_kernels::product(x_view, w_view, Threads::All);
        host_tensor(y, [x_view.rows(), w_view.cols()])
    }

    fn host_linear_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let (x, weight, grad) = (contiguous(x), forward_strides(weight), contiguous(grad));
        let (x_view, w_view, g_view) = (matrix(&x), matrix(&weight), matrix(&grad));
        let dx = host_kernels::product(g_view, w_view.t(), Threads::All);
        let dw = host_kernels::product(x_view.t(), g_view, Threads::All);
        (
            host_tensor(dx, [x_view.rows(), x_view.cols()]),
            host_tensor(dw, [w_view.rows(), w_view.cols()]),
        )
    }

    fn host_silu(x: FlexTensor) -> FlexTensor {
        let shape = x.shape();
        let x = contiguous(x);
        let y = host_kernels::silu(f32_slice(&x));
        host_tensor(y, shape)
    }

    fn host_silu_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let shape = x.shape();
        let (x, grad) = (contiguous(x), contiguous(grad));
        let dx = host_kernels::silu_backward(f32_slice(&x), f32_slice(&grad));
        host_tensor(dx, shape)
    }

    fn host_conv_silu(
        x: FlexTensor,
        cache: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
    ) -> FlexTensor {
        let shape = x.shape();
        let dims = conv_dims(&x, &weight);
        let host = [x, cache, weight, bias].map(contiguous);
        let [x, cache, weight, bias] = host.each_ref().map(f32_slice);
        let inputs = ConvInputs {
            x,
            cache,
            weight,
            bias,
        };
        host_tensor(host_layer::forward(&dims, &inputs), shape)
    }

    fn host_conv_silu_backward(
        x: FlexTensor,
        cache: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor, FlexTensor) {
        let dims = conv_dims(&x, &weight);
        let shapes = [&x, &cache, &weight, &bias].map(|t| t.shape());
        let host = [x, cache, weight, bias, grad].map(contiguous);
        let [x, cache, weight, bias, grad] = host.each_ref().map(f32_slice);
        let inputs = ConvInputs {
            x,
            cache,
            weight,
            bias,
        };
        let grads = host_layer::backward(&dims, &inputs, grad);
        let [dx, dcache, dweight, dbias] = shapes;
        (
            host_tensor(grads.x, dx),
            host_tensor(grads.cache, dcache),
            host_tensor(grads.weight, dweight),
            host_tensor(grads.bias, dbias),
        )
    }

    fn host_gated_norm(
        y: FlexTensor,
        z: FlexTensor,
        weight: FlexTensor,
        groups: usize,
        eps: f32,
    ) -> FlexTensor {
        let shape = y.shape();
        let dims = norm_dims(&y, groups, eps);
        let host = [y, z, weight].map(contiguous);
        let [y, z, weight] = host.each_ref().map(f32_slice);
        let out = host_layer::norm_forward(&dims, y, z, weight);
        host_tensor(out, shape)
    }

    fn host_gated_norm_backward(
        y: FlexTensor,
        z: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        groups: usize,
        eps: f32,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let dims = norm_dims(&y, groups, eps);
        let shapes = [&y, &z, &weight].map(|t| t.shape());
        let host = [y, z, weight, grad].map(contiguous);
        let [y, z, weight, grad] = host.each_ref().map(f32_slice);
        let grads = host_layer::norm_backward(&dims, y, z, weight, grad);
        let [dy, dz, dweight] = shapes;
        (
            host_tensor(grads.y, dy),
            host_tensor(grads.z, dz),
            host_tensor(grads.weight, dweight),
        )
    }
}

/// Hands each tracked parent of an autodiff node its gradient: `parents` are the parents'
/// ids (`None` where a parent is not tracked), in the order of `input_grads`.
fn register_parents<B: Backend, const N: usize>(
    grads: &mut Gradients,
    parents: [Option<NodeId>; N],
    input_grads: [B::FloatTensorPrimitive; N],
) {
    for (parent, grad) in parents.into_iter().zip(input_grads) {
        if let Some(id) = parent {
            grads.register::<B>(id, grad);
        }
    }
}

fn conv_dims(x: &FlexTensor, weight: &FlexTensor) -> ConvDims {
    let (xs, ws) = (x.shape(), weight.shape());
    ConvDims {
        batch: xs[0],
        len: xs[1],
        channels: xs[2],
        width: ws[1],
    }
}

fn norm_dims(y: &FlexTensor, groups: usize, eps: f32) -> NormDims {
    let shape = y.shape();
    let width = shape[shape.num_dims() - 1];
    NormDims { width, groups, eps }
}

impl<B: Backend + HostOps, C: CheckpointStrategy> HostOps for Autodiff<B, C> {
    fn host_scan(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        log_alpha: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        initial: FloatTensor<Self>,
        chunk_size: usize,
    ) -> FloatTensor<Self> {
        /// The graph node of one scan; its state is the inputs, from which the backward
        /// recomputes what it needs.
        #[derive(Debug)]
        struct ScanBackward;

        impl<B: Backend + HostOps> Backward<B, 6> for ScanBackward {
            type State = ([B::FloatTensorPrimitive; 6], usize);

            fn backward(
                self,
                ops: Ops<Self::State, 6>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let ([x, dt, log_alpha, b, c, initial], chunk_size) = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let (dx, ddt, dla, db, dc, dinit) =
                    B::host_scan_backward(x, dt, log_alpha, b, c, initial, grad, chunk_size);
                register_parents::<B, _>(
                    grads,
                    ops.parents.map(|parent| parent.map(|node| node.id)),
                    [dx, ddt, dla, db, dc, dinit],
                );
            }
        }

        let tensors = [x, dt, log_alpha, b, c, initial];
        let nodes = tensors.each_ref().map(|t| t.node());
        let [x, dt, log_alpha, b, c, initial] = tensors.map(|t| t.into_primitive());
        let output = B::host_scan(
            x.clone(),
            dt.clone(),
            log_alpha.clone(),
            b.clone(),
            c.clone(),
            initial.clone(),
            chunk_size,
        );
        match ScanBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                prep.finish(([x, dt, log_alpha, b, c, initial], chunk_size), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    /// Not differentiable itself (no second derivatives): runs on the inner tensors and
    /// returns untracked gradients.
    fn host_scan_backward(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        log_alpha: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        initial: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        chunk_size: usize,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let (dx, ddt, dla, db, dc, dinit) = B::host_scan_backward(
            x.into_primitive(),
            dt.into_primitive(),
            log_alpha.into_primitive(),
            b.into_primitive(),
            c.into_primitive(),
            initial.into_primitive(),
            grad.into_primitive(),
            chunk_size,
        );
        (
            Self::from_inner(dx),
            Self::from_inner(ddt),
            Self::from_inner(dla),
            Self::from_inner(db),
            Self::from_inner(dc),
            Self::from_inner(dinit),
        )
    }

    fn host_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        /// The graph node of one product; its state is the two factors.
        #[derive(Debug)]
        struct LinearBackward;

        impl<B: Backend + HostOps> Backward<B, 2> for LinearBackward {
            type State = [B::FloatTensorPrimitive; 2];

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [x, weight] = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let (dx, dweight) = B::host_linear_backward(x, weight, grad);
                register_parents::<B, _>(
                    grads,
                    ops.parents.map(|parent| parent.map(|node| node.id)),
                    [dx, dweight],
                );
            }
        }

        let tensors = [x, weight];
        let nodes = tensors.each_ref().map(|t| t.node());
        let inner = tensors.map(|t| t.into_primitive());
        let [x, weight] = inner.clone();
        let output = B::host_linear(x, weight);
        match LinearBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(inner, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    /// Not differentiable itself: runs on the inner tensors, untracked.
    fn host_linear_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (dx, dweight) = B::host_linear_backward(
            x.into_primitive(),
            weight.into_primitive(),
            grad.into_primitive(),
        );
        (Self::from_inner(dx), Self::from_inner(dweight))
    }

    fn host_silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        /// The graph node of one SiLU; its state is the input.
        #[derive(Debug)]
        struct SiluBackward;

        impl<B: Backend + HostOps> Backward<B, 1> for SiluBackward {
            type State = B::FloatTensorPrimitive;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let grad = grads.consume::<B>(&ops.node);
                let dx = B::host_silu_backward(ops.state, grad);
                register_parents::<B, _>(
                    grads,
                    ops.parents.map(|parent| parent.map(|node| node.id)),
                    [dx],
                );
            }
        }

        let node = x.node();
        let x = x.into_primitive();
        let output = B::host_silu(x.clone());
        match SiluBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(x, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    /// Not differentiable itself: runs on the inner tensors, untracked.
    fn host_silu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::from_inner(B::host_silu_backward(
            x.into_primitive(),
            grad.into_primitive(),
        ))
    }

    fn host_conv_silu(
        x: FloatTensor<Self>,
        cache: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        /// The graph node of one convolution; its state is the inputs.
        #[derive(Debug)]
        struct ConvBackward;

        impl<B: Backend + HostOps> Backward<B, 4> for ConvBackward {
            type State = [B::FloatTensorPrimitive; 4];

            fn backward(
                self,
                ops: Ops<Self::State, 4>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [x, cache, weight, bias] = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let (dx, dcache, dweight, dbias) =
                    B::host_conv_silu_backward(x, cache, weight, bias, grad);
                register_parents::<B, _>(
                    grads,
                    ops.parents.map(|parent| parent.map(|node| node.id)),
                    [dx, dcache, dweight, dbias],
                );
            }
        }

        let tensors = [x, cache, weight, bias];
        let nodes = tensors.each_ref().map(|t| t.node());
        let inner = tensors.map(|t| t.into_primitive());
        let [x, cache, weight, bias] = inner.clone();
        let output = B::host_conv_silu(x, cache, weight, bias);
        match ConvBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(inner, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    /// Not differentiable itself: runs on the inner tensors, untracked.
    fn host_conv_silu_backward(
        x: FloatTensor<Self>,
        cache: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let (dx, dcache, dweight, dbias) = B::host_conv_silu_backward(
            x.into_primitive(),
            cache.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
            grad.into_primitive(),
        );
        (
            Self::from_inner(dx),
            Self::from_inner(dcache),
            Self::from_inner(dweight),
            Self::from_inner(dbias),
        )
    }

    fn host_gated_norm(
        y: FloatTensor<Self>,
        z: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        groups: usize,
        eps: f32,
    ) -> FloatTensor<Self> {
        /// The graph node of one gated norm; its state is the inputs and the sizes.
        #[derive(Debug)]
        struct NormBackward;

        impl<B: Backend + HostOps> Backward<B, 3> for NormBackward {
            type State = ([B::FloatTensorPrimitive; 3], usize, f32);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let ([y, z, weight], groups, eps) = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let (dy, dz, dweight) =
                    B::host_gated_norm_backward(y, z, weight, grad, groups, eps);
                register_parents::<B, _>(
                    grads,
                    ops.parents.map(|parent| parent.map(|node| node.id)),
                    [dy, dz, dweight],
                );
            }
        }

        let tensors = [y, z, weight];
        let nodes = tensors.each_ref().map(|t| t.node());
        let inner = tensors.map(|t| t.into_primitive());
        let [y, z, weight] = inner.clone();
        let output = B::host_gated_norm(y, z, weight, groups, eps);
        match NormBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((inner, groups, eps), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    /// Not differentiable itself: runs on the inner tensors, untracked.
    fn host_gated_norm_backward(
        y: FloatTensor<Self>,
        z: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        groups: usize,
        eps: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (dy, dz, dweight) = B::host_gated_norm_backward(
            y.into_primitive(),
            z.into_primitive(),
            weight.into_primitive(),
            grad.into_primitive(),
            groups,
            eps,
        );
        (
            Self::from_inner(dy),
            Self::from_inner(dz),
            Self::from_inner(dweight),
        )
    }
}

fn contiguous(tensor: FlexTensor) -> FlexTensor {
    if tensor.as_slice::<f32>().is_some() {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

fn f32_slice(tensor: &FlexTensor) -> &[f32] {
    tensor
        .as_slice::<f32>()
        .unwrap_or_else(|| panic!("host scan: expected f32, got {:?}", tensor.dtype()))
}

/// `tensor`, copied to a contiguous layout only if a stride is negative (a flipped view).
fn forward_strides(tensor: FlexTensor) -> FlexTensor {
    if tensor.layout().strides().iter().all(|&s| s >= 0) {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// A 2-d f32 tensor with non-negative strides as a matrix view, without copying: strided views
/// (such as a column range of a weight) are read in place.
fn matrix(tensor: &FlexTensor) -> View<'_> {
    let layout = tensor.layout();
    let shape = layout.shape();
    assert_eq!(
        shape.num_dims(),
        2,
        "host linear: expected a matrix, got {shape:?}"
    );
    let (rows, cols) = (shape[0], shape[1]);
    let strides = layout.strides();
    let (row_stride, col_stride) = (
        usize::try_from(strides[0]).expect("strides made non-negative first"),
        usize::try_from(strides[1]).expect("strides made non-negative first"),
    );
    let data = &tensor.storage::<f32>()[layout.start_offset()..];
    View::strided(data, rows, cols, row_stride, col_stride)
}

fn flat(values: Vec<f32>) -> FlexTensor {
    let len = values.len();
    host_tensor(values, [len])
}

/// A kernel's output as a tensor, taking ownership of the buffer (no copy).
fn host_tensor(values: Vec<f32>, shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// The host product and both its gradients match burn's linear, for a 3-d input and for a
    /// weight that is a column range of a larger one (a strided view, as in_proj's pieces are).
    #[test]
    fn host_linear_matches_burn_value_and_gradients() {
        let device = Device::flex().autodiff();
        let x = Tensor::<3>::random([3, 37, 29], Distribution::Normal(0.0, 1.0), &device);
        let full = Tensor::<2>::random([29, 50], Distribution::Normal(0.0, 1.0), &device);
        for (start, size) in [(0, 50), (7, 13), (37, 13)] {
            let probe = Tensor::<3>::random([3, 37, size], Distribution::Normal(0.0, 1.0), &device);
            let run = |host: bool| {
                let x = x.clone().detach().require_grad();
                let full = full.clone().detach().require_grad();
                let weight = full.clone().narrow(1, start, size);
                let y = if host {
                    linear(x.clone(), weight)
                } else {
                    burn::tensor::module::linear(x.clone(), weight, None)
                };
                let grads = (y.clone() * probe.clone()).sum().backward();
                (
                    y.inner(),
                    x.grad(&grads).expect("x tracked"),
                    full.grad(&grads).expect("weight tracked"),
                )
            };
            let ((y_host, dx_host, dw_host), (y_ref, dx_ref, dw_ref)) = (run(true), run(false));
            let y_diff = (y_host - y_ref).abs().max().into_scalar::<f32>();
            let dx_diff = (dx_host - dx_ref).abs().max().into_scalar::<f32>();
            let dw_diff = (dw_host - dw_ref).abs().max().into_scalar::<f32>();
            assert!(
                y_diff < 1e-4 && dx_diff < 1e-4 && dw_diff < 1e-4,
                "columns {start}..+{size}: output {y_diff}, dx {dx_diff}, dweight {dw_diff}"
            );
        }
    }

    /// The host SiLU and its gradient match burn's, over ordinary and saturating inputs.
    #[test]
    fn host_silu_matches_burn_value_and_gradient() {
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::random([37, 53], Distribution::Normal(0.0, 4.0), &device);
        let extremes = Tensor::<2>::from_floats([[-100.0, -30.0, 0.0, 30.0, 100.0]], &device);
        for x in [x, extremes] {
            let weight = Tensor::<2>::random(x.dims(), Distribution::Normal(0.0, 1.0), &device);
            let run = |host: bool| {
                let x = x.clone().detach().require_grad();
                let y = if host {
                    silu(x.clone())
                } else {
                    burn::tensor::activation::silu(x.clone())
                };
                let grads = (y.clone() * weight.clone()).sum().backward();
                (y.inner(), x.grad(&grads).expect("tracked"))
            };
            let ((y_host, g_host), (y_ref, g_ref)) = (run(true), run(false));
            let y_diff = (y_host - y_ref).abs().max().into_scalar::<f32>();
            let g_diff = (g_host - g_ref).abs().max().into_scalar::<f32>();
            assert!(
                y_diff < 1e-4 && g_diff < 1e-5,
                "silu {y_diff}, gradient {g_diff}"
            );
        }
        assert!(on_host(&Tensor::<1>::zeros([1], &Device::flex())));
    }
}
