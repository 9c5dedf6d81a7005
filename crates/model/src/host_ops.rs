//! forgetlab's own burn ops for the CPU backend, each with a hand-written backward: the chunked
//! scan ([`crate::host_scan`]), the causal conv with its SiLU and the gated RMSNorm
//! ([`crate::host_layer`]), SiLU, and the products of in_proj and out_proj as direct GEMM calls
//! ([`crate::host_kernels`]).
//!
//! burn's CPU backend runs each tensor op as its own pass over memory, computes `exp` with
//! scalar libm calls, and zero-fills and copies the output of every product; as tensor ops, the
//! SSD and the elementwise work around it were most of a training step's non-GEMM time. These
//! ops run on host memory with vectorised kernels instead. They reach burn through a backend
//! extension ([`HostOps`]) that only Flex implements: Flex runs the forward kernels, and its
//! autodiff wrapper records one graph node per call ([`HostBackward`]) whose backward runs the
//! matching backward kernel. The functions here assume their tensors qualify; [`crate::ops`]
//! decides which tensors take them, and GPUs keep the tensor-op forms.

use std::fmt::Debug;

use burn::backend::{Backend, Flex, TensorMetadata, backend_extension, tensor::FloatTensor};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn_autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn_flex::FlexTensor;

use crate::host_kernels::{self, Threads, View};
use crate::host_layer::{self, ConvDims, ConvInputs, NormDims};
use crate::host_scan::{self, Dims, Inputs};
use crate::mamba2::ssd::ScanInputs;

/// `x · sigmoid(x)` by the host kernel.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<burn::backend::Dispatch as HostOps>::host_silu(
        x.into_dispatch(),
    ))
}

/// `silu(conv(cache ++ x) + bias)`, the causal depthwise convolution of a layer
/// ([`crate::host_layer`]): x `[b, l, c]`, cache `[b, k - 1, c]`, weight `[c, k]`, bias `[c]`.
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
/// ([`crate::host_layer`]).
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
/// column range of a larger weight.
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
/// same contract as [`crate::mamba2::ssd::scan_chunked`].
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

/// The host ops, all f32. Their backwards are not part of the extension: only the autodiff
/// wrapper of Flex calls them ([`HostBackward`]).
#[backend_extension(Flex, Autodiff)]
pub trait HostOps: Backend {
    /// The scan of x `[b, l, h, p]` with Δ and log α `[b, l, h]`, B and C `[b, l, g, n]` from
    /// the initial state `[b, h, p, n]`; the outputs packed in one flat tensor: y
    /// `[b, l, h, p]` then the final state `[b, h, p, n]`.
    fn host_scan(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        log_alpha: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        initial: FloatTensor<Self>,
        chunk_size: usize,
    ) -> FloatTensor<Self>;

    /// `x · weight` for x `[rows, k]` and weight `[k, n]` (any non-negative strides).
    fn host_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `x · sigmoid(x)`, elementwise.
    fn host_silu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `silu(bias + Σ_k weight[:, k] ∘ padded[t + k])` with `padded = cache ++ x`: x
    /// `[b, l, c]`, cache `[b, k - 1, c]`, weight `[c, k]`, bias `[c]`; output like x.
    fn host_conv_silu(
        x: FloatTensor<Self>,
        cache: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `rmsnorm(y ∘ silu(z)) ∘ weight`, the RMS taken over each of `groups` equal groups of the
    /// last dimension: y and z `[.., width]`, weight `[width]`; output like y.
    fn host_gated_norm(
        y: FloatTensor<Self>,
        z: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        groups: usize,
        eps: f32,
    ) -> FloatTensor<Self>;
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

    fn host_linear(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        let (x, weight) = (contiguous(x), forward_strides(weight));
        let (x_view, w_view) = (matrix(&x), matrix(&weight));
        let y = host_kernels::product(x_view, w_view, Threads::All);
        host_tensor(y, [x_view.rows(), w_view.cols()])
    }

    fn host_silu(x: FlexTensor) -> FlexTensor {
        let shape = x.shape();
        let x = contiguous(x);
        let y = host_kernels::silu(f32_slice(&x));
        host_tensor(y, shape)
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
}

/// Each op on an autodiff tensor: the Flex forward on the inner tensors, recorded with the
/// op's backward kernel.
impl<C: CheckpointStrategy> HostOps for Autodiff<Flex, C> {
    fn host_scan(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        log_alpha: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        initial: FloatTensor<Self>,
        chunk_size: usize,
    ) -> FloatTensor<Self> {
        record::<C, _, 6>(
            [x, dt, log_alpha, b, c, initial],
            chunk_size,
            |[x, dt, log_alpha, b, c, initial], chunk_size| {
                Flex::host_scan(x, dt, log_alpha, b, c, initial, chunk_size)
            },
            scan_backward,
        )
    }

    fn host_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<C, _, 2>(
            [x, weight],
            (),
            |[x, weight], ()| Flex::host_linear(x, weight),
            linear_backward,
        )
    }

    fn host_silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<C, _, 1>([x], (), |[x], ()| Flex::host_silu(x), silu_backward)
    }

    fn host_conv_silu(
        x: FloatTensor<Self>,
        cache: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        record::<C, _, 4>(
            [x, cache, weight, bias],
            (),
            |[x, cache, weight, bias], ()| Flex::host_conv_silu(x, cache, weight, bias),
            conv_silu_backward,
        )
    }

    fn host_gated_norm(
        y: FloatTensor<Self>,
        z: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        groups: usize,
        eps: f32,
    ) -> FloatTensor<Self> {
        record::<C, _, 3>(
            [y, z, weight],
            (groups, eps),
            |[y, z, weight], (groups, eps)| Flex::host_gated_norm(y, z, weight, groups, eps),
            gated_norm_backward,
        )
    }
}

/// A backward kernel: the gradients of an op's `N` inputs, in input order, from the inputs,
/// the op's settings `S` and the gradient of its output.
type BackwardKernel<S, const N: usize> = fn([FlexTensor; N], S, FlexTensor) -> [FlexTensor; N];

/// The graph node of one host op call. Its state is the op's inputs and settings, from which
/// the backward kernel recomputes whatever else it needs (the scan keeps nothing else).
#[derive(Debug)]
struct HostBackward<S, const N: usize> {
    kernel: BackwardKernel<S, N>,
}

impl<S: Clone + Send + Debug + 'static, const N: usize> Backward<Flex, N> for HostBackward<S, N> {
    type State = ([FlexTensor; N], S);

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (inputs, settings) = ops.state;
        let grad = grads.consume::<Flex>(&ops.node);
        let input_grads = (self.kernel)(inputs, settings, grad);
        for (parent, input_grad) in ops.parents.into_iter().zip(input_grads) {
            if let Some(parent) = parent {
                grads.register::<Flex>(parent.id, input_grad);
            }
        }
    }
}

/// Runs `forward` on the inner tensors of `inputs` and, when any of them is tracked, records a
/// graph node whose backward is `kernel`. The ops are compute-bound: a checkpointing graph
/// keeps their inputs rather than recomputing them.
fn record<C: CheckpointStrategy, S: Clone + Send + Debug + 'static, const N: usize>(
    inputs: [FloatTensor<Autodiff<Flex, C>>; N],
    settings: S,
    forward: fn([FlexTensor; N], S) -> FlexTensor,
    kernel: BackwardKernel<S, N>,
) -> FloatTensor<Autodiff<Flex, C>> {
    let nodes = inputs.each_ref().map(|t| t.node());
    let inner = inputs.map(|t| t.into_primitive());
    let output = forward(inner.clone(), settings.clone());
    let node = HostBackward { kernel };
    match node.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((inner, settings), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

fn scan_backward(inputs: [FlexTensor; 6], chunk_size: usize, grad: FlexTensor) -> [FlexTensor; 6] {
    let [x, dt, log_alpha, b, c, initial] = inputs;
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
    let [dx, ddt, dla, db, dc, dinit] = shapes;
    [
        host_tensor(grads.x, dx),
        host_tensor(grads.dt, ddt),
        host_tensor(grads.log_alpha, dla),
        host_tensor(grads.b, db),
        host_tensor(grads.c, dc),
        host_tensor(grads.initial, dinit),
    ]
}

fn linear_backward([x, weight]: [FlexTensor; 2], (): (), grad: FlexTensor) -> [FlexTensor; 2] {
    let (x, weight, grad) = (contiguous(x), forward_strides(weight), contiguous(grad));
    let (x_view, w_view, g_view) = (matrix(&x), matrix(&weight), matrix(&grad));
    let dx = host_kernels::product(g_view, w_view.t(), Threads::All);
    let dw = host_kernels::product(x_view.t(), g_view, Threads::All);
    [
        host_tensor(dx, [x_view.rows(), x_view.cols()]),
        host_tensor(dw, [w_view.rows(), w_view.cols()]),
    ]
}

fn silu_backward([x]: [FlexTensor; 1], (): (), grad: FlexTensor) -> [FlexTensor; 1] {
    let shape = x.shape();
    let (x, grad) = (contiguous(x), contiguous(grad));
    let dx = host_kernels::silu_backward(f32_slice(&x), f32_slice(&grad));
    [host_tensor(dx, shape)]
}

fn conv_silu_backward(inputs: [FlexTensor; 4], (): (), grad: FlexTensor) -> [FlexTensor; 4] {
    let [x, cache, weight, bias] = inputs;
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
    [
        host_tensor(grads.x, dx),
        host_tensor(grads.cache, dcache),
        host_tensor(grads.weight, dweight),
        host_tensor(grads.bias, dbias),
    ]
}

fn gated_norm_backward(
    [y, z, weight]: [FlexTensor; 3],
    (groups, eps): (usize, f32),
    grad: FlexTensor,
) -> [FlexTensor; 3] {
    let dims = norm_dims(&y, groups, eps);
    let shapes = [&y, &z, &weight].map(|t| t.shape());
    let host = [y, z, weight, grad].map(contiguous);
    let [y, z, weight, grad] = host.each_ref().map(f32_slice);
    let grads = host_layer::norm_backward(&dims, y, z, weight, grad);
    let [dy, dz, dweight] = shapes;
    [
        host_tensor(grads.y, dy),
        host_tensor(grads.z, dz),
        host_tensor(grads.weight, dweight),
    ]
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
        assert!(crate::ops::on_host(&Tensor::<1>::zeros(
            [1],
            &Device::flex()
        )));
    }
}
