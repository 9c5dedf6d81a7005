//! The elementwise neighbours of the scan in a Mamba-2 layer, on host memory: the causal
//! depthwise convolution with its SiLU, and the gated RMSNorm.
//!
//! As tensor ops the convolution is a concatenation with the carried cache, then one narrow,
//! multiply and add per tap, a bias add and a SiLU, each a pass over the `[b, l, conv_dim]`
//! activations, and autodiff adds a zero-filled buffer per tap in the backward; the gated norm
//! is eight more passes each way. Here each is one pass over rows forward and one or two
//! backward, on all cores, with partial sums over rows combined in a fixed order.
//! [`crate::host_ops`] makes these kernels burn ops.

use rayon::prelude::*;

use crate::host_kernels::{dot, silu_and_slope, widest};

/// Sizes of one convolution: x `[batch, len, channels]`, the cache of the previous
/// `width - 1` input rows `[batch, width - 1, channels]`, weight `[channels, width]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvDims {
    pub batch: usize,
    pub len: usize,
    pub channels: usize,
    pub width: usize,
}

/// Read-only views of the convolution's inputs, row-major.
pub(crate) struct ConvInputs<'a> {
    pub x: &'a [f32],
    pub cache: &'a [f32],
    /// `[channels, width]`.
    pub weight: &'a [f32],
    pub bias: &'a [f32],
}

/// Input gradients, in the inputs' layouts.
pub(crate) struct ConvGrads {
    pub x: Vec<f32>,
    pub cache: Vec<f32>,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 64;

impl ConvDims {
    fn context(&self) -> usize {
        self.width - 1
    }

    /// Row `s` of sequence `batch` in `cache ++ x` (s < context + len).
    #[inline(always)]
    fn padded_row<'a>(&self, inputs: &ConvInputs<'a>, batch: usize, s: usize) -> &'a [f32] {
        let c = self.channels;
        if s < self.context() {
            &inputs.cache[(batch * self.context() + s) * c..][..c]
        } else {
            &inputs.x[(batch * self.len + s - self.context()) * c..][..c]
        }
    }

    /// `buf` (`[batch, len, channels]`) cut into one slice of rows per task.
    fn task_rows<'b>(
        &self,
        buf: &'b mut [f32],
        tasks: &[(usize, usize, usize)],
    ) -> Vec<&'b mut [f32]> {
        let mut slices = Vec::with_capacity(tasks.len());
        let mut rest = buf;
        for &(_, _, rows) in tasks {
            let (head, tail) = rest.split_at_mut(rows * self.channels);
            slices.push(head);
            rest = tail;
        }
        slices
    }

    /// Task boundaries: `(batch, first row, rows)`, never crossing a sequence.
    fn tasks(&self) -> Vec<(usize, usize, usize)> {
        (0..self.batch)
            .flat_map(|b| {
                (0..self.len)
                    .step_by(ROWS_PER_TASK)
                    .map(move |t| (b, t, ROWS_PER_TASK.min(self.len - t)))
            })
            .collect()
    }
}

/// The weight as `[width, channels]`, so each tap is a contiguous row.
fn taps(dims: &ConvDims, weight: &[f32]) -> Vec<f32> {
    let (c, k) = (dims.channels, dims.width);
    let mut taps = vec![0.0f32; k * c];
    for ci in 0..c {
        for ki in 0..k {
            taps[ki * c + ci] = weight[ci * k + ki];
        }
    }
    taps
}

/// `pre[t] = bias + Σ_k tap_k ∘ padded[t + k]` for one row.
#[inline(always)]
fn pre_activation(
    dims: &ConvDims,
    inputs: &ConvInputs,
    taps: &[f32],
    batch: usize,
    t: usize,
    pre: &mut [f32],
) {
    let c = dims.channels;
    pre.copy_from_slice(&inputs.bias[..c]);
    for k in 0..dims.width {
        let row = dims.padded_row(inputs, batch, t + k);
        for ((p, &w), &v) in pre.iter_mut().zip(&taps[k * c..][..c]).zip(row) {
            *p += w * v;
        }
    }
}

widest!(forward_rows(dims: &ConvDims, inputs: &ConvInputs, taps: &[f32], batch: usize, t0: usize, out: &mut [f32]) -> () = forward_rows_kernel);
widest!(slope_rows(dims: &ConvDims, inputs: &ConvInputs, taps: &[f32], grad: &[f32], batch: usize, t0: usize, d_pre: &mut [f32], d_taps: &mut [f32]) -> () = slope_rows_kernel);
widest!(input_grad_rows(dims: &ConvDims, taps: &[f32], d_pre: &[f32], batch: usize, s0: usize, out: &mut [f32]) -> () = input_grad_rows_kernel);

#[inline(always)]
fn forward_rows_kernel(
    dims: &ConvDims,
    inputs: &ConvInputs,
    taps: &[f32],
    batch: usize,
    t0: usize,
    out: &mut [f32],
) {
    let c = dims.channels;
    for (i, row) in out.chunks_exact_mut(c).enumerate() {
        pre_activation(dims, inputs, taps, batch, t0 + i, row);
        for v in row.iter_mut() {
            *v = silu_and_slope(*v).0;
        }
    }
}

/// `silu(conv(cache ++ x))`: `[batch, len, channels]`.
pub(crate) fn forward(dims: &ConvDims, inputs: &ConvInputs) -> Vec<f32> {
    let c = dims.channels;
    let taps = taps(dims, inputs.weight);
    let mut out = vec![0.0f32; dims.batch * dims.len * c];
    let tasks = dims.tasks();
    dims.task_rows(&mut out, &tasks)
        .into_par_iter()
        .zip(tasks.par_iter())
        .for_each(|(slice, &(b, t0, _))| forward_rows(dims, inputs, &taps, b, t0, slice));
    out
}

/// For a block of rows: the pre-activation gradient `grad ∘ silu'(pre)` into `d_pre`, and the
/// block's partial tap gradients `Σ_t d_pre[t] ∘ padded[t + k]` (row k of `d_taps`, then the
/// bias gradient as row `width`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn slope_rows_kernel(
    dims: &ConvDims,
    inputs: &ConvInputs,
    taps: &[f32],
    grad: &[f32],
    batch: usize,
    t0: usize,
    d_pre: &mut [f32],
    d_taps: &mut [f32],
) {
    let c = dims.channels;
    for (i, row) in d_pre.chunks_exact_mut(c).enumerate() {
        let t = t0 + i;
        pre_activation(dims, inputs, taps, batch, t, row);
        let g = &grad[(batch * dims.len + t) * c..][..c];
        for (v, &g) in row.iter_mut().zip(g) {
            *v = g * silu_and_slope(*v).1;
        }
        for k in 0..dims.width {
            let input = dims.padded_row(inputs, batch, t + k);
            for ((d, &dp), &v) in d_taps[k * c..][..c].iter_mut().zip(row.iter()).zip(input) {
                *d += dp * v;
            }
        }
        for (d, &dp) in d_taps[dims.width * c..][..c].iter_mut().zip(row.iter()) {
            *d += dp;
        }
    }
}

/// Rows `s0..` of the gradient of `cache ++ x`: `Σ_k tap_k ∘ d_pre[s - k]`.
#[inline(always)]
fn input_grad_rows_kernel(
    dims: &ConvDims,
    taps: &[f32],
    d_pre: &[f32],
    batch: usize,
    s0: usize,
    out: &mut [f32],
) {
    let c = dims.channels;
    for (i, row) in out.chunks_exact_mut(c).enumerate() {
        let s = s0 + i;
        row.fill(0.0);
        for k in 0..dims.width {
            if s < k || s - k >= dims.len {
                continue;
            }
            let dp = &d_pre[(batch * dims.len + s - k) * c..][..c];
            for ((r, &w), &d) in row.iter_mut().zip(&taps[k * c..][..c]).zip(dp) {
                *r += w * d;
            }
        }
    }
}

/// Gradients of [`forward`]'s inputs given `grad` (`[batch, len, channels]`).
pub(crate) fn backward(dims: &ConvDims, inputs: &ConvInputs, grad: &[f32]) -> ConvGrads {
    let (c, k, context) = (dims.channels, dims.width, dims.context());
    let taps = taps(dims, inputs.weight);
    let tasks = dims.tasks();

    // Pass 1: pre-activation gradients, and per-task partial tap and bias gradients.
    let mut d_pre = vec![0.0f32; dims.batch * dims.len * c];
    let partials: Vec<Vec<f32>> = dims
        .task_rows(&mut d_pre, &tasks)
        .into_par_iter()
        .zip(tasks.par_iter())
        .map(|(slice, &(b, t0, _))| {
            let mut d_taps = vec![0.0f32; (k + 1) * c];
            slope_rows(dims, inputs, &taps, grad, b, t0, slice, &mut d_taps);
            d_taps
        })
        .collect();
    let d_taps = sum_in_order(&partials, (k + 1) * c);
    let mut weight = vec![0.0f32; c * k];
    for ci in 0..c {
        for ki in 0..k {
            weight[ci * k + ki] = d_taps[ki * c + ci];
        }
    }
    let bias = d_taps[k * c..].to_vec();

    // Pass 2: gradients of the padded input rows, split into the cache's and x's.
    let padded_len = context + dims.len;
    let mut d_padded = vec![0.0f32; dims.batch * padded_len * c];
    d_padded
        .par_chunks_mut(padded_len * c)
        .enumerate()
        .for_each(|(b, sequence)| {
            for (block, rows) in sequence.chunks_mut(ROWS_PER_TASK * c).enumerate() {
                input_grad_rows(dims, &taps, &d_pre, b, block * ROWS_PER_TASK, rows);
            }
        });
    let mut x = Vec::with_capacity(dims.batch * dims.len * c);
    let mut cache = Vec::with_capacity(dims.batch * context * c);
    for sequence in d_padded.chunks_exact(padded_len * c) {
        cache.extend_from_slice(&sequence[..context * c]);
        x.extend_from_slice(&sequence[context * c..]);
    }
    ConvGrads {
        x,
        cache,
        weight,
        bias,
    }
}

/// The element-wise sum of per-task partial sums (each `len` long), added in task order: the
/// same bits whatever the thread count.
fn sum_in_order(partials: &[Vec<f32>], len: usize) -> Vec<f32> {
    let mut total = vec![0.0f32; len];
    for partial in partials {
        for (t, &p) in total.iter_mut().zip(partial) {
            *t += p;
        }
    }
    total
}

/// Sizes of one gated RMSNorm: rows of `width` channels, normalised in `groups` equal groups
/// of channels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NormDims {
    pub width: usize,
    pub groups: usize,
    pub eps: f32,
}

/// Gradients of the gated norm's inputs y, z and weight.
pub(crate) struct NormGrads {
    pub y: Vec<f32>,
    pub z: Vec<f32>,
    pub weight: Vec<f32>,
}

widest!(norm_rows(dims: &NormDims, y: &[f32], z: &[f32], weight: &[f32], out: &mut [f32]) -> () = norm_rows_kernel);
widest!(norm_grad_rows(dims: &NormDims, y: &[f32], z: &[f32], weight: &[f32], grad: &[f32], d_y: &mut [f32], d_z: &mut [f32], d_weight: &mut [f32]) -> () = norm_grad_rows_kernel);

/// `g = y ∘ silu(z)` into `gated`; returns `1 / sqrt(mean(g²) + eps)` of each group.
#[inline(always)]
fn gate_group(y: &[f32], z: &[f32], eps: f32, gated: &mut [f32]) -> f32 {
    for ((g, &y), &z) in gated.iter_mut().zip(y).zip(z) {
        *g = y * silu_and_slope(z).0;
    }
    let mean = dot(gated, gated) / gated.len() as f32;
    1.0 / (mean + eps).sqrt()
}

#[inline(always)]
fn norm_rows_kernel(dims: &NormDims, y: &[f32], z: &[f32], weight: &[f32], out: &mut [f32]) {
    let group = dims.width / dims.groups;
    for ((out, y), z) in out
        .chunks_exact_mut(dims.width)
        .zip(y.chunks_exact(dims.width))
        .zip(z.chunks_exact(dims.width))
    {
        for at in (0..dims.width).step_by(group) {
            let out = &mut out[at..][..group];
            let r = gate_group(&y[at..][..group], &z[at..][..group], dims.eps, out);
            for (o, &w) in out.iter_mut().zip(&weight[at..][..group]) {
                *o = *o * r * w;
            }
        }
    }
}

/// For a block of rows, with ĝ = g r the normalised gate output and dĝ = grad ∘ weight:
/// `dg = r (dĝ - ĝ mean(dĝ ∘ ĝ))`, `dy = dg ∘ silu(z)`, `dz = dg ∘ y ∘ silu'(z)`, and the
/// block's partial weight gradient `Σ grad ∘ ĝ`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn norm_grad_rows_kernel(
    dims: &NormDims,
    y: &[f32],
    z: &[f32],
    weight: &[f32],
    grad: &[f32],
    d_y: &mut [f32],
    d_z: &mut [f32],
    d_weight: &mut [f32],
) {
    let (width, group) = (dims.width, dims.width / dims.groups);
    let mut normed = vec![0.0f32; group];
    let mut d_normed = vec![0.0f32; group];
    for row in 0..y.len() / width {
        for at in (row * width..(row + 1) * width).step_by(group) {
            let channel = at % width;
            let (y, z, grad) = (&y[at..][..group], &z[at..][..group], &grad[at..][..group]);
            let r = gate_group(y, z, dims.eps, &mut normed);
            for n in normed.iter_mut() {
                *n *= r;
            }
            for (((dn, dw), (&g, &n)), &w) in d_normed
                .iter_mut()
                .zip(&mut d_weight[channel..][..group])
                .zip(grad.iter().zip(&normed))
                .zip(&weight[channel..][..group])
            {
                *dn = g * w;
                *dw += g * n;
            }
            let mean = dot(&d_normed, &normed) / group as f32;
            for (i, (dy, dz)) in d_y[at..][..group]
                .iter_mut()
                .zip(&mut d_z[at..][..group])
                .enumerate()
            {
                let d_gated = r * (d_normed[i] - normed[i] * mean);
                let (silu, slope) = silu_and_slope(z[i]);
                *dy = d_gated * silu;
                *dz = d_gated * y[i] * slope;
            }
        }
    }
}

/// The gated RMSNorm of `[rows, width]` inputs: `rmsnorm_groups(y ∘ silu(z)) ∘ weight`.
pub(crate) fn norm_forward(dims: &NormDims, y: &[f32], z: &[f32], weight: &[f32]) -> Vec<f32> {
    let block = ROWS_PER_TASK * dims.width;
    let mut out = vec![0.0f32; y.len()];
    out.par_chunks_mut(block)
        .zip(y.par_chunks(block).zip(z.par_chunks(block)))
        .for_each(|(out, (y, z))| norm_rows(dims, y, z, weight, out));
    out
}

/// Gradients of [`norm_forward`]'s inputs given `grad`.
pub(crate) fn norm_backward(
    dims: &NormDims,
    y: &[f32],
    z: &[f32],
    weight: &[f32],
    grad: &[f32],
) -> NormGrads {
    let block = ROWS_PER_TASK * dims.width;
    let mut d_y = vec![0.0f32; y.len()];
    let mut d_z = vec![0.0f32; z.len()];
    let partials: Vec<Vec<f32>> = d_y
        .par_chunks_mut(block)
        .zip(d_z.par_chunks_mut(block))
        .zip(y.par_chunks(block).zip(z.par_chunks(block)))
        .zip(grad.par_chunks(block))
        .map(|(((d_y, d_z), (y, z)), grad)| {
            let mut d_weight = vec![0.0f32; dims.width];
            norm_grad_rows(dims, y, z, weight, grad, d_y, d_z, &mut d_weight);
            d_weight
        })
        .collect();
    let d_weight = sum_in_order(&partials, dims.width);
    NormGrads {
        y: d_y,
        z: d_z,
        weight: d_weight,
    }
}
