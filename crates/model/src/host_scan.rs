//! The chunked scan on host memory, with a hand-written backward, for the CPU backend.
//!
//! As tensor ops ([`crate::mamba2::ssd::scan_chunked`]) the SSD materialises a `[.., Q, Q]` decay
//! mask and mixing matrix for every head and chunk, and burn's CPU backend streams them through
//! a dozen separate passes forward and again backward, on one thread, with a scalar `exp`. At
//! chunk 256 that is 16M mask elements per layer of an 8192-token step. Here each
//! (sequence, head) pair walks its chunks once, with the chunk's rows in cache, building one
//! row of the mask at a time; the pairs run on all cores. The math is the same chunked form
//! (see [`crate::mamba2::ssd`]); per chunk, with `cum` the inclusive cumulative log decay,
//!
//! ```text
//! y_i   = e^{cum_i} S_in C_i + Σ_{j≤i} e^{cum_i - cum_j} (C_i·B_j) xΔ_j
//! S_out = e^{cum_last} S_in + Σ_j e^{cum_last - cum_j} xΔ_j B_jᵀ
//! ```
//!
//! and the backward walks the chunks in reverse, carrying dL/dS, after recomputing the states
//! entering each chunk (one cheap pass; nothing but the inputs is kept from the forward).
//!
//! These are the kernels on slices; [`crate::host_ops`] makes them a burn op with this
//! backward. GPU backends never call them; they keep the tensor-op path. Reductions use a fixed
//! lane order, so results are deterministic whatever the thread count or instruction set.

use rayon::prelude::*;

use crate::host_kernels::{Threads, View, dot, exp, matmul, widest};

/// The longest chunk the kernels use. The chunk length only blocks the computation (any
/// length gives the same function), and its intra-chunk work grows with it: on the CPU, chunks
/// of 32 to 64 tokens were fastest for both reference models, 128 slower, 256 twice as slow.
/// A configured `chunk_size` above this runs as chunks of this length here (GPU backends use
/// it as given).
pub(crate) const MAX_CHUNK: usize = 64;

/// Sizes of one scan call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    batch: usize,
    len: usize,
    heads: usize,
    headdim: usize,
    groups: usize,
    d_state: usize,
    /// Chunk length Q (at most `len`, at least 1).
    chunk: usize,
}

impl Dims {
    /// From the shapes of x `[b, l, h, p]` and B `[b, l, g, n]`.
    pub(crate) fn new(xs: &[usize], bs: &[usize], chunk_size: usize) -> Self {
        Self {
            batch: xs[0],
            len: xs[1],
            heads: xs[2],
            headdim: xs[3],
            groups: bs[2],
            d_state: bs[3],
            chunk: chunk_size.clamp(1, MAX_CHUNK).min(xs[1].max(1)),
        }
    }

    fn units(&self) -> usize {
        self.batch * self.heads
    }

    fn chunks(&self) -> usize {
        self.len.div_ceil(self.chunk)
    }

    fn state_len(&self) -> usize {
        self.headdim * self.d_state
    }
}

/// The inputs in their tensor layouts (row-major): x `[b, l, h, p]`, Δ and log α `[b, l, h]`,
/// B and C `[b, l, g, n]`, the initial state `[b, h, p, n]`.
pub(crate) struct Inputs<'a> {
    pub x: &'a [f32],
    pub dt: &'a [f32],
    pub log_alpha: &'a [f32],
    pub b: &'a [f32],
    pub c: &'a [f32],
    pub initial: &'a [f32],
}

/// One (sequence, head) pair: the unit of parallel work.
#[derive(Debug, Clone, Copy)]
struct Unit {
    batch: usize,
    head: usize,
    group: usize,
}

impl Unit {
    fn new(dims: &Dims, index: usize) -> Self {
        let head = index % dims.heads;
        Self {
            batch: index / dims.heads,
            head,
            group: head / (dims.heads / dims.groups),
        }
    }

    /// Offset of token `t`'s row for this head in a `[b, l, h, width]` tensor.
    fn row(&self, dims: &Dims, t: usize, width: usize) -> usize {
        ((self.batch * dims.len + t) * dims.heads + self.head) * width
    }

    /// Offset of token `t`'s row for this head's group in a `[b, l, g, n]` tensor.
    fn group_row(&self, dims: &Dims, t: usize) -> usize {
        ((self.batch * dims.len + t) * dims.groups + self.group) * dims.d_state
    }
}

/// Row `i` of the row-major matrix `src` (rows of `width`) times `scales[i]`, into the same
/// rows of `dst`.
#[inline(always)]
fn scaled_rows(dst: &mut [f32], src: &[f32], width: usize, scales: &[f32]) {
    for ((dst, src), &s) in dst
        .chunks_exact_mut(width)
        .zip(src.chunks_exact(width))
        .zip(scales)
    {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = v * s;
        }
    }
}

/// Multiplies row `i` of the row-major `rows × width` matrix in `matrix` by `scales[i]`.
#[inline(always)]
fn scale_rows(matrix: &mut [f32], width: usize, scales: &[f32]) {
    for (row, &s) in matrix.chunks_exact_mut(width).zip(scales) {
        for v in row {
            *v *= s;
        }
    }
}

/// `y += a x`.
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// One chunk of a unit's inputs gathered row-major (rows = the chunk's `q` tokens), and the
/// chunk's `q × q` mixing matrices.
struct Chunk {
    /// Tokens in this chunk (the last one may be short).
    q: usize,
    x: Vec<f32>,
    dt: Vec<f32>,
    /// x·Δ: [q, p].
    xdt: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    /// Inclusive cumulative log decay from the chunk start: [q].
    cum: Vec<f32>,
    /// L[i, j] = e^{cum_i - cum_j} for j ≤ i, else 0: [q, q].
    decay: Vec<f32>,
    /// (C Bᵀ) ∘ L: [q, q].
    mix: Vec<f32>,
}

impl Chunk {
    fn new(dims: &Dims) -> Self {
        let (q, p, n) = (dims.chunk, dims.headdim, dims.d_state);
        Self {
            q,
            x: vec![0.0; q * p],
            dt: vec![0.0; q],
            xdt: vec![0.0; q * p],
            b: vec![0.0; q * n],
            c: vec![0.0; q * n],
            cum: vec![0.0; q],
            decay: vec![0.0; q * q],
            mix: vec![0.0; q * q],
        }
    }

    /// Gathers the chunk of `unit` starting at token `t0`.
    fn load(&mut self, dims: &Dims, inputs: &Inputs, unit: Unit, t0: usize) {
        let (p, n) = (dims.headdim, dims.d_state);
        self.q = dims.chunk.min(dims.len - t0);
        let mut cum = 0.0f32;
        for i in 0..self.q {
            let at = unit.row(dims, t0 + i, 1);
            let dt = inputs.dt[at];
            cum += inputs.log_alpha[at];
            self.cum[i] = cum;
            self.dt[i] = dt;
            let x = &inputs.x[at * p..][..p];
            self.x[i * p..][..p].copy_from_slice(x);
            for (out, &v) in self.xdt[i * p..][..p].iter_mut().zip(x) {
                *out = v * dt;
            }
            let bc = unit.group_row(dims, t0 + i);
            self.b[i * n..][..n].copy_from_slice(&inputs.b[bc..][..n]);
            self.c[i * n..][..n].copy_from_slice(&inputs.c[bc..][..n]);
        }
    }

    fn views(&self, n: usize, p: usize) -> (View<'_>, View<'_>, View<'_>) {
        (
            View::new(&self.xdt, self.q, p),
            View::new(&self.b, self.q, n),
            View::new(&self.c, self.q, n),
        )
    }

    /// Computes [`Chunk::decay`] and [`Chunk::mix`].
    fn mixing(&mut self, n: usize) {
        let q = self.q;
        matmul(
            &mut self.mix,
            View::new(&self.c, q, n),
            View::new(&self.b, q, n).t(),
            None,
            Threads::One,
        );
        for i in 0..q {
            let cum_i = self.cum[i];
            // Causal: only j ≤ i decays; the upper triangle is zero.
            let (past, future) = self.decay[i * q..][..q].split_at_mut(i + 1);
            for (d, &cj) in past.iter_mut().zip(&self.cum[..=i]) {
                *d = exp(cum_i - cj);
            }
            future.fill(0.0);
            let (mix_past, mix_future) = self.mix[i * q..][..q].split_at_mut(i + 1);
            for (m, &d) in mix_past.iter_mut().zip(past.iter()) {
                *m *= d;
            }
            mix_future.fill(0.0);
        }
    }

    /// `w_j = e^{cum_last - cum_j}`, the decay from each token to the chunk end, into `out`.
    fn to_end(&self, out: &mut [f32]) {
        let last = self.cum[self.q - 1];
        for (w, &c) in out.iter_mut().zip(&self.cum[..self.q]) {
            *w = exp(last - c);
        }
    }
}

widest!(forward_unit(dims: &Dims, inputs: &Inputs, index: usize) -> UnitOutput = forward_unit_kernel);
widest!(backward_unit(dims: &Dims, inputs: &Inputs, grad: &[f32], index: usize) -> UnitGrads = backward_unit_kernel);

/// A unit's forward results: y `[l, p]` and the final state `[n, p]` (transposed).
struct UnitOutput {
    y: Vec<f32>,
    last: Vec<f32>,
}

/// The initial state of `unit`, transposed to `[n, p]`: the kernels keep states as
/// `Sᵀ`, so that a chunk's outputs are `C Sᵀ` and its write is `Bᵀ (w ∘ xΔ)`.
fn initial_state(dims: &Dims, inputs: &Inputs, unit: Unit) -> Vec<f32> {
    let (p, n) = (dims.headdim, dims.d_state);
    let start = (unit.batch * dims.heads + unit.head) * p * n;
    let mut state = vec![0.0; n * p];
    for pi in 0..p {
        for k in 0..n {
            state[k * p + pi] = inputs.initial[start + pi * n + k];
        }
    }
    state
}

/// `Sᵀ ← e^{cum_last} Sᵀ + Bᵀ (w ∘ xΔ)`, with `weighted` as scratch.
#[inline(always)]
fn advance_state(
    chunk: &Chunk,
    state: &mut [f32],
    weights: &mut [f32],
    weighted: &mut [f32],
    p: usize,
    n: usize,
) {
    let q = chunk.q;
    chunk.to_end(weights);
    scaled_rows(weighted, &chunk.xdt[..q * p], p, weights);
    matmul(
        state,
        View::new(&chunk.b, q, n).t(),
        View::new(weighted, q, p),
        Some(exp(chunk.cum[q - 1])),
        Threads::One,
    );
}

#[inline(always)]
fn forward_unit_kernel(dims: &Dims, inputs: &Inputs, index: usize) -> UnitOutput {
    let unit = Unit::new(dims, index);
    let (p, n, big_q) = (dims.headdim, dims.d_state, dims.chunk);
    let mut chunk = Chunk::new(dims);
    let mut state = initial_state(dims, inputs, unit);
    let mut weights = vec![0.0f32; big_q];
    let mut weighted = vec![0.0f32; big_q * p];
    let mut carry = vec![0.0f32; big_q];
    let mut y = vec![0.0f32; dims.len * p];
    for index in 0..dims.chunks() {
        let t0 = index * big_q;
        chunk.load(dims, inputs, unit, t0);
        let q = chunk.q;
        chunk.mixing(n);
        let y = &mut y[t0 * p..][..q * p];
        // The carried state's read-out e^{cum_i} C_i Sᵀ, then the chunk's own tokens.
        let (xdt, _, c) = chunk.views(n, p);
        matmul(y, c, View::new(&state, n, p), None, Threads::One);
        for (e, &cum) in carry.iter_mut().zip(&chunk.cum[..q]) {
            *e = exp(cum);
        }
        scale_rows(y, p, &carry);
        matmul(y, View::new(&chunk.mix, q, q), xdt, Some(1.0), Threads::One);
        advance_state(&chunk, &mut state, &mut weights, &mut weighted, p, n);
    }
    UnitOutput { y, last: state }
}

/// A unit's input gradients: x `[l, p]`, Δ and log α `[l]`, B and C `[l, n]`, the initial
/// state `[n, p]` (transposed).
struct UnitGrads {
    x: Vec<f32>,
    dt: Vec<f32>,
    log_alpha: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    initial: Vec<f32>,
}

/// Reverse pass over a unit's chunks, carrying dL/dSᵀ. Per chunk, with G = dL/dy:
///
/// ```text
/// state write  S_outᵀ = e^{cum_last} S_inᵀ + Bᵀ (w ∘ xΔ):
///     dxΔ = (w ∘ B) dS_outᵀ,  dB = w ∘ (xΔ dS_out),  dS_inᵀ = e^{cum_last} dS_outᵀ,
///     dcum_last += <dS_out, S_out>,  dcum_j -= xΔ_j · dxΔ_j
/// carried      y += e^{cum} ∘ (C S_inᵀ):
///     dC = (e^{cum} ∘ G) S_in,  dS_inᵀ += Cᵀ (e^{cum} ∘ G),  dcum_i += G_i · y_off_i
/// own tokens   y += M xΔ with M = (C Bᵀ) ∘ L:
///     dM = G xΔᵀ,  dxΔ += Mᵀ G,  dC += (dM ∘ L) B,  dB += (dM ∘ L)ᵀ C,
///     dcum_i += Σ_j (dM ∘ M)_ij,  dcum_j -= Σ_i (dM ∘ M)_ij
/// ```
///
/// then dlog α is the reverse cumulative sum of dcum within the chunk.
#[inline(always)]
fn backward_unit_kernel(dims: &Dims, inputs: &Inputs, grad: &[f32], index: usize) -> UnitGrads {
    let unit = Unit::new(dims, index);
    let (p, n, big_q, len) = (dims.headdim, dims.d_state, dims.chunk, dims.len);
    let state_len = dims.state_len();
    let chunks = dims.chunks();
    let mut chunk = Chunk::new(dims);
    let mut weights = vec![0.0f32; big_q];
    let mut weighted = vec![0.0f32; big_q * p];

    // The states entering each chunk, and the final one, recomputed.
    let mut states = vec![0.0f32; (chunks + 1) * state_len];
    states[..state_len].copy_from_slice(&initial_state(dims, inputs, unit));
    for index in 0..chunks {
        chunk.load(dims, inputs, unit, index * big_q);
        let (done, next) = states.split_at_mut((index + 1) * state_len);
        let next = &mut next[..state_len];
        next.copy_from_slice(&done[index * state_len..]);
        advance_state(&chunk, next, &mut weights, &mut weighted, p, n);
    }

    // dL/d(final state), transposed to [n, p].
    let final_start =
        dims.batch * len * dims.heads * p + (unit.batch * dims.heads + unit.head) * state_len;
    let mut d_state = vec![0.0f32; state_len];
    for pi in 0..p {
        for k in 0..n {
            d_state[k * p + pi] = grad[final_start + pi * n + k];
        }
    }

    let mut out = UnitGrads {
        x: vec![0.0; len * p],
        dt: vec![0.0; len],
        log_alpha: vec![0.0; len],
        b: vec![0.0; len * n],
        c: vec![0.0; len * n],
        initial: Vec::new(),
    };
    let mut d_state_in = vec![0.0f32; state_len];
    let mut g = vec![0.0f32; big_q * p];
    let mut scaled = vec![0.0f32; big_q * p.max(n)];
    let mut read = vec![0.0f32; big_q * p];
    let mut d_xdt = vec![0.0f32; big_q * p];
    let mut d_b = vec![0.0f32; big_q * n];
    let mut d_c = vec![0.0f32; big_q * n];
    let mut d_mix = vec![0.0f32; big_q * big_q];
    let mut d_cum = vec![0.0f32; big_q];
    let mut carry = vec![0.0f32; big_q];

    for index in (0..chunks).rev() {
        let t0 = index * big_q;
        chunk.load(dims, inputs, unit, t0);
        let q = chunk.q;
        chunk.mixing(n);
        let state_in = &states[index * state_len..][..state_len];
        let state_out = &states[(index + 1) * state_len..][..state_len];
        for i in 0..q {
            g[i * p..][..p].copy_from_slice(&grad[unit.row(dims, t0 + i, p)..][..p]);
        }
        let g = View::new(&g, q, p);
        let (xdt, b, c) = chunk.views(n, p);
        d_cum[..q].fill(0.0);

        // The chunk's write to the state.
        let last = chunk.cum[q - 1];
        let e_last = exp(last);
        for (din, &d) in d_state_in.iter_mut().zip(&d_state) {
            *din = e_last * d;
        }
        d_cum[q - 1] += dot(&d_state, state_out);
        chunk.to_end(&mut weights);
        let bw = &mut scaled[..q * n];
        scaled_rows(bw, &chunk.b[..q * n], n, &weights);
        matmul(
            &mut d_xdt,
            View::new(bw, q, n),
            View::new(&d_state, n, p),
            None,
            Threads::One,
        );
        for j in 0..q {
            d_cum[j] -= dot(&chunk.xdt[j * p..][..p], &d_xdt[j * p..][..p]);
        }
        let xw = &mut weighted[..q * p];
        scaled_rows(xw, &chunk.xdt[..q * p], p, &weights);
        matmul(
            &mut d_b,
            View::new(xw, q, p),
            View::new(&d_state, n, p).t(),
            None,
            Threads::One,
        );

        // The carried state's read-out.
        for (e, &cum) in carry.iter_mut().zip(&chunk.cum[..q]) {
            *e = exp(cum);
        }
        matmul(&mut read, c, View::new(state_in, n, p), None, Threads::One);
        for i in 0..q {
            d_cum[i] += carry[i] * dot(&g.data[i * p..][..p], &read[i * p..][..p]);
        }
        let ge = &mut scaled[..q * p];
        scaled_rows(ge, &g.data[..q * p], p, &carry);
        matmul(
            &mut d_c,
            View::new(ge, q, p),
            View::new(state_in, n, p).t(),
            None,
            Threads::One,
        );
        matmul(
            &mut d_state_in,
            c.t(),
            View::new(ge, q, p),
            Some(1.0),
            Threads::One,
        );

        // The chunk's own tokens.
        matmul(&mut d_mix, g, xdt.t(), None, Threads::One);
        matmul(
            &mut d_xdt,
            View::new(&chunk.mix, q, q).t(),
            g,
            Some(1.0),
            Threads::One,
        );
        let col_sums = &mut weights[..q];
        col_sums.fill(0.0);
        for i in 0..q {
            let row = &mut d_mix[i * q..][..q];
            let mut row_sum = 0.0f32;
            for ((dm, &l), (&m, col)) in row
                .iter_mut()
                .zip(&chunk.decay[i * q..][..q])
                .zip(chunk.mix[i * q..][..q].iter().zip(col_sums.iter_mut()))
            {
                let d_log = *dm * m;
                row_sum += d_log;
                *col += d_log;
                *dm *= l;
            }
            d_cum[i] += row_sum;
        }
        for (dc, &s) in d_cum[..q].iter_mut().zip(col_sums.iter()) {
            *dc -= s;
        }
        let d_cb = View::new(&d_mix, q, q);
        matmul(&mut d_c, d_cb, b, Some(1.0), Threads::One);
        matmul(&mut d_b, d_cb.t(), c, Some(1.0), Threads::One);

        // Into the unit's gradients.
        let mut suffix = 0.0f32;
        for i in (0..q).rev() {
            suffix += d_cum[i];
            out.log_alpha[t0 + i] = suffix;
        }
        for j in 0..q {
            let d_xdt_j = &d_xdt[j * p..][..p];
            let dt = chunk.dt[j];
            for (dx, &d) in out.x[(t0 + j) * p..][..p].iter_mut().zip(d_xdt_j) {
                *dx = d * dt;
            }
            out.dt[t0 + j] = dot(d_xdt_j, &chunk.x[j * p..][..p]);
        }
        out.b[t0 * n..][..q * n].copy_from_slice(&d_b[..q * n]);
        out.c[t0 * n..][..q * n].copy_from_slice(&d_c[..q * n]);
        std::mem::swap(&mut d_state, &mut d_state_in);
    }
    out.initial = d_state;
    out
}

/// The forward over all units, packed as y `[b, l, h, p]` then the final state `[b, h, p, n]`.
pub(crate) fn forward(dims: &Dims, inputs: &Inputs) -> Vec<f32> {
    let units: Vec<UnitOutput> = (0..dims.units())
        .into_par_iter()
        .map(|index| forward_unit(dims, inputs, index))
        .collect();
    let (p, n, len) = (dims.headdim, dims.d_state, dims.len);
    let y_len = dims.batch * len * dims.heads * p;
    let mut packed = vec![0.0f32; y_len + dims.units() * dims.state_len()];
    let (y, last) = packed.split_at_mut(y_len);
    for (index, output) in units.iter().enumerate() {
        let unit = Unit::new(dims, index);
        for t in 0..len {
            let at = ((unit.batch * len + t) * dims.heads + unit.head) * p;
            y[at..][..p].copy_from_slice(&output.y[t * p..][..p]);
        }
        scatter_state(&output.last, &mut last[index * p * n..][..p * n], p, n);
    }
    packed
}

/// Writes a `[n, p]` state into a `[p, n]` slot.
fn scatter_state(state_np: &[f32], slot_pn: &mut [f32], p: usize, n: usize) {
    for pi in 0..p {
        for k in 0..n {
            slot_pn[pi * n + k] = state_np[k * p + pi];
        }
    }
}

/// All input gradients, in the inputs' layouts.
pub(crate) struct Grads {
    pub x: Vec<f32>,
    pub dt: Vec<f32>,
    pub log_alpha: Vec<f32>,
    pub b: Vec<f32>,
    pub c: Vec<f32>,
    pub initial: Vec<f32>,
}

/// The input gradients given `grad`, the gradient of [`forward`]'s packed output.
pub(crate) fn backward(dims: &Dims, inputs: &Inputs, grad: &[f32]) -> Grads {
    let units: Vec<UnitGrads> = (0..dims.units())
        .into_par_iter()
        .map(|index| backward_unit(dims, inputs, grad, index))
        .collect();
    let (p, n, len, heads) = (dims.headdim, dims.d_state, dims.len, dims.heads);
    let mut grads = Grads {
        x: vec![0.0; inputs.x.len()],
        dt: vec![0.0; inputs.dt.len()],
        log_alpha: vec![0.0; inputs.log_alpha.len()],
        b: vec![0.0; inputs.b.len()],
        c: vec![0.0; inputs.c.len()],
        initial: vec![0.0; inputs.initial.len()],
    };
    // Units in (sequence, head) order, so the sums over a group's heads are deterministic.
    for (index, unit_grads) in units.iter().enumerate() {
        let unit = Unit::new(dims, index);
        for t in 0..len {
            let token = unit.batch * len + t;
            let at = token * heads + unit.head;
            grads.x[at * p..][..p].copy_from_slice(&unit_grads.x[t * p..][..p]);
            grads.dt[at] = unit_grads.dt[t];
            grads.log_alpha[at] = unit_grads.log_alpha[t];
            let bc_at = (token * dims.groups + unit.group) * n;
            axpy(&mut grads.b[bc_at..][..n], 1.0, &unit_grads.b[t * n..][..n]);
            axpy(&mut grads.c[bc_at..][..n], 1.0, &unit_grads.c[t * n..][..n]);
        }
        scatter_state(
            &unit_grads.initial,
            &mut grads.initial[index * p * n..][..p * n],
            p,
            n,
        );
    }
    grads
}

#[cfg(test)]
mod tests {
    use crate::host_ops::scan;
    use crate::mamba2::ssd::{ScanInputs, scan_chunked};
    use burn::prelude::*;
    use burn::tensor::Distribution;

    fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    /// Scan inputs shaped like a layer's; autodiff leaves on an autodiff device.
    fn leaves(dims: [usize; 6], device: &Device) -> (ScanInputs, Tensor<4>) {
        let [batch, len, heads, headdim, groups, d_state] = dims;
        fn leaf<const D: usize>(t: Tensor<D>) -> Tensor<D> {
            let t = t.detach();
            if t.is_autodiff() { t.require_grad() } else { t }
        }
        let dt = random([batch, len, heads], device).exp() * 0.3;
        let log_alpha = dt.clone() * random([1, 1, heads], device).abs().neg() * 2.0;
        let inputs = ScanInputs {
            x_blhp: leaf(random([batch, len, heads, headdim], device)),
            dt_blh: leaf(dt),
            log_alpha_blh: leaf(log_alpha),
            b_blgn: leaf(random([batch, len, groups, d_state], device)),
            c_blgn: leaf(random([batch, len, groups, d_state], device)),
        };
        let initial = leaf(random([batch, heads, headdim, d_state], device));
        (inputs, initial)
    }

    fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
        (a - b).abs().max().into_scalar::<f32>() / scale
    }

    /// Outputs and all six input gradients of the host scan match autodiff through the
    /// tensor-op scan, for odd lengths and chunks, several groups and a carried state.
    #[test]
    fn host_scan_matches_the_tensor_ops_forward_and_backward() {
        let device = Device::flex().autodiff();
        for (dims, chunk) in [
            ([2, 13, 4, 8, 2, 5], 4),
            ([1, 37, 2, 16, 1, 8], 16),
            ([3, 8, 6, 4, 3, 3], 64),
            ([1, 1, 1, 3, 1, 2], 8),
            // Above MAX_CHUNK: the host runs chunks of 64, the tensor ops chunks of 128.
            ([1, 150, 2, 4, 1, 3], 128),
        ] {
            let (inputs, initial) = leaves(dims, &device);
            let [batch, len, heads, headdim, _, d_state] = dims;
            let y_weight = random([batch, len, heads, headdim], &device);
            let s_weight = random([batch, heads, headdim, d_state], &device);
            let run = |host: bool| {
                let (y, last) = if host {
                    scan(inputs.clone(), initial.clone(), chunk)
                } else {
                    scan_chunked(inputs.clone(), initial.clone(), chunk)
                };
                let loss =
                    (y.clone() * y_weight.clone()).sum() + (last.clone() * s_weight.clone()).sum();
                let grads = loss.backward();
                let g = |t: &Tensor<4>| t.grad(&grads).expect("tracked");
                let g3 = |t: &Tensor<3>| t.grad(&grads).expect("tracked");
                (
                    y.inner(),
                    last.inner(),
                    [
                        g(&inputs.x_blhp),
                        g(&inputs.b_blgn),
                        g(&inputs.c_blgn),
                        g(&initial),
                    ],
                    [g3(&inputs.dt_blh), g3(&inputs.log_alpha_blh)],
                )
            };
            let (y_host, last_host, g4_host, g3_host) = run(true);
            let (y_ops, last_ops, g4_ops, g3_ops) = run(false);
            assert!(
                max_abs_diff(y_host, y_ops) < 1e-5,
                "y, {dims:?} chunk {chunk}"
            );
            assert!(max_abs_diff(last_host, last_ops) < 1e-5, "state, {dims:?}");
            for (name, (h, o)) in ["x", "B", "C", "initial"]
                .iter()
                .zip(g4_host.into_iter().zip(g4_ops))
            {
                let diff = max_abs_diff(h, o);
                assert!(diff < 1e-4, "grad {name}: {diff}, {dims:?} chunk {chunk}");
            }
            for (name, (h, o)) in ["dt", "log_alpha"]
                .iter()
                .zip(g3_host.into_iter().zip(g3_ops))
            {
                let diff = max_abs_diff(h, o);
                assert!(diff < 1e-4, "grad {name}: {diff}, {dims:?} chunk {chunk}");
            }
        }
    }

    /// Without autodiff (evaluation) the op runs on plain tensors and agrees too.
    #[test]
    fn host_scan_runs_without_autodiff() {
        let device = Device::flex();
        let (inputs, initial) = leaves([2, 21, 4, 8, 2, 4], &device);
        let (y_host, s_host) = scan(inputs.clone(), initial.clone(), 8);
        let (y_ops, s_ops) = scan_chunked(inputs, initial, 8);
        assert!(max_abs_diff(y_host, y_ops) < 1e-5);
        assert!(max_abs_diff(s_host, s_ops) < 1e-5);
    }
}
