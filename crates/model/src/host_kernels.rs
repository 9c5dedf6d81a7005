//! Kernels on host memory shared by the CPU paths: GEMM products on strided views, the LM
//! head's softmax cross-entropy and its gradient, SiLU, and the vector helpers (`exp`, `dot`,
//! `widest!`) that the scan and layer kernels build on.
//!
//! burn's CPU backend runs each elementwise op as its own pass over memory, computes `exp` with
//! scalar libm calls, keeps such passes on one thread, and zero-fills and copies the output of
//! every product. The softmax cross-entropy of the LM head is the largest elementwise workload
//! of a training step (a vocabulary's worth of logits per token) and takes a dozen passes as
//! tensor ops; here it is one pass per row over data in cache, with an `exp` the compiler can
//! vectorise, and the products call the gemm crate directly, writing their output once.
//! [`crate::host_ops`] makes SiLU and the products burn ops; the head runs outside the graph
//! ([`crate::loss`]). GPU backends never call any of this.

use rayon::prelude::*;

/// Runs `kernel` compiled for the widest vector unit the CPU has.
macro_rules! widest {
    ($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $kernel:ident) => {
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                fn avx512($($arg: $ty),*) -> $ret {
                    $kernel($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) -> $ret {
                    $kernel($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F, checked just above.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $kernel($($arg),*)
        }
    };
}
pub(crate) use widest;

/// A matrix view over a slice: element (r, c) is `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    /// The leading `rows × cols` row-major matrix in `data`.
    pub(crate) fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// A `rows × cols` matrix with element (r, c) at `data[r * row_stride + c * col_stride]`.
    pub(crate) fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// Number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// The transpose, without moving data.
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// Whether a product may use the thread pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    /// On the calling thread (the caller already runs in parallel).
    One,
    /// On all the pool's threads. gemm splits the output, never the sum, so the result does
    /// not depend on the thread count.
    All,
}

/// `dst = lhs · rhs`, or `dst = keep · dst + lhs · rhs` with `keep = Some(..)`; `dst` is the
/// leading row-major `lhs.rows × rhs.cols` matrix of its slice. The gemm crate directly
/// (what burn's CPU backend uses too, without its per-call output allocation and copies).
pub(crate) fn matmul(dst: &mut [f32], lhs: View, rhs: View, keep: Option<f32>, threads: Threads) {
    assert!(dst.len() >= lhs.rows * rhs.cols);
    // SAFETY: dst holds the whole output and is borrowed mutably, so it overlaps no input.
    unsafe { gemm_into(dst.as_mut_ptr(), lhs, rhs, keep, threads) }
}

/// `lhs · rhs` as a new row-major matrix. The output is written once, never zero-filled first
/// (burn's CPU backend zero-fills every product's output, then copies it into an aligned
/// buffer: two extra passes over memory per product).
pub(crate) fn product(lhs: View, rhs: View, threads: Threads) -> Vec<f32> {
    let len = lhs.rows * rhs.cols;
    if lhs.cols == 0 {
        return vec![0.0; len];
    }
    let mut out = Vec::with_capacity(len);
    // SAFETY: the buffer has room for the `len` outputs; with `keep = None` gemm only writes
    // them (every one of them, as the inner dimension is not empty) and never reads them, so
    // all `len` values are initialised when the length is set.
    unsafe {
        gemm_into(out.as_mut_ptr(), lhs, rhs, None, threads);
        out.set_len(len);
    }
    out
}

/// # Safety
/// `dst` must be valid for writes of `lhs.rows × rhs.cols` values (and for reads of them when
/// `keep` is set) and overlap neither input.
unsafe fn gemm_into(dst: *mut f32, lhs: View, rhs: View, keep: Option<f32>, threads: Threads) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(rhs.rows == k && lhs.in_bounds() && rhs.in_bounds());
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the assert keeps every input element gemm reads inside its slice; the caller
    // vouches for dst.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            keep.is_some(),
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            keep.unwrap_or(0.0),
            1.0,
            false,
            false,
            false,
            match threads {
                Threads::One => gemm::Parallelism::None,
                Threads::All => gemm::Parallelism::Rayon(rayon::current_num_threads()),
            },
        );
    }
}

/// The LM head's summed cross-entropy and its gradients, on host memory: for rows `x`
/// (`[rows, d]`), head weight `w` (`[vocab, d]`), optional bias and targets, block by block of
/// `block_rows` rows, `logits = x wᵀ + b` into one reused buffer, turned in place into
/// `g = scale (softmax - onehot)`, then `dx = g w` and `dw += gᵀ x`, `db += Σ_rows g`.
/// Returns `(summed cross-entropy (unscaled), dx, dw, db)`.
pub(crate) fn head_loss_and_grads(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    targets: &[i64],
    scale: f32,
    block_rows: usize,
) -> (f64, Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
    let rows = targets.len();
    let d = x.len() / rows.max(1);
    let vocab = w.len() / d.max(1);
    let block_rows = block_rows.clamp(1, rows.max(1));
    let mut logits = vec![0.0f32; block_rows * vocab];
    let mut dx = vec![0.0f32; rows * d];
    let mut dw = vec![0.0f32; vocab * d];
    let mut db = bias.map(|_| vec![0.0f32; vocab]);
    let mut loss = 0.0f64;
    for start in (0..rows).step_by(block_rows) {
        let n = block_rows.min(rows - start);
        let x_block = View::new(&x[start * d..], n, d);
        let logits = &mut logits[..n * vocab];
        matmul(
            logits,
            x_block,
            View::new(w, vocab, d).t(),
            None,
            Threads::All,
        );
        if let Some(bias) = bias {
            for row in logits.chunks_exact_mut(vocab) {
                for (v, &b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
            }
        }
        loss += softmax_cross_entropy_in_place(logits, vocab, &targets[start..start + n], scale);
        let g = View::new(logits, n, vocab);
        matmul(
            &mut dx[start * d..],
            g,
            View::new(w, vocab, d),
            None,
            Threads::All,
        );
        matmul(&mut dw, g.t(), x_block, Some(1.0), Threads::All);
        if let Some(db) = db.as_mut() {
            for row in logits.chunks_exact(vocab) {
                for (d, &v) in db.iter_mut().zip(row) {
                    *d += v;
                }
            }
        }
    }
    (loss, dx, dw, db)
}

/// Turns each row of `logits` (`vocab` values per row, one row per target) into its gradient
/// `scale * (softmax(row) - onehot(target))`, in place, and returns the summed cross-entropy
/// `sum(logsumexp(row) - row[target])` (unscaled).
///
/// The loops are compiled for the widest vector unit the CPU has (AVX-512, AVX2, else SSE2);
/// the partial sums are kept in a fixed number of lanes, so every variant gives the same bits.
///
/// # Panics
/// If a target is not below `vocab` (the trainer checks token ids against the vocabulary).
pub fn softmax_cross_entropy_in_place(
    logits: &mut [f32],
    vocab: usize,
    targets: &[i64],
    scale: f32,
) -> f64 {
    assert_eq!(
        logits.len(),
        vocab * targets.len(),
        "one row of logits per target"
    );
    // Blocks of rows on all cores; their sums added in block order, so the same bits whatever
    // the thread count.
    const ROWS_PER_TASK: usize = 16;
    let sums: Vec<f64> = logits
        .par_chunks_mut(ROWS_PER_TASK * vocab.max(1))
        .zip(targets.par_chunks(ROWS_PER_TASK))
        .map(|(logits, targets)| rows_widest(logits, vocab, targets, scale))
        .collect();
    sums.iter().sum()
}

fn rows_widest(logits: &mut [f32], vocab: usize, targets: &[i64], scale: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { rows_avx512(logits, vocab, targets, scale) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { rows_avx2(logits, vocab, targets, scale) };
        }
    }
    rows(logits, vocab, targets, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn rows_avx512(logits: &mut [f32], vocab: usize, targets: &[i64], scale: f32) -> f64 {
    rows(logits, vocab, targets, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rows_avx2(logits: &mut [f32], vocab: usize, targets: &[i64], scale: f32) -> f64 {
    rows(logits, vocab, targets, scale)
}

/// The kernel itself, inlined into each instruction-set variant above.
#[inline(always)]
fn rows(logits: &mut [f32], vocab: usize, targets: &[i64], scale: f32) -> f64 {
    let mut total = 0.0f64;
    for (row, &target) in logits.chunks_exact_mut(vocab).zip(targets) {
        let target = usize::try_from(target)
            .ok()
            .filter(|&t| t < vocab)
            .unwrap_or_else(|| panic!("target {target} outside the vocabulary of {vocab}"));
        let max = row_max(row);
        let target_logit = row[target];
        let sum = exp_shifted_in_place(row, max);
        total += max as f64 + (sum as f64).ln() - target_logit as f64;
        let normalise = scale / sum;
        for value in row.iter_mut() {
            *value *= normalise;
        }
        row[target] -= scale;
    }
    total
}

/// The next-token loss `logsumexp(row) - row[target]` of each row of `logits` (`vocab` values
/// per row, one row per target), rows on all cores; `logits` is only read.
///
/// # Panics
/// If a target is not below `vocab`.
pub fn cross_entropy_rows(logits: &[f32], vocab: usize, targets: &[i64]) -> Vec<f32> {
    assert_eq!(
        logits.len(),
        vocab * targets.len(),
        "one row of logits per target"
    );
    let mut losses = vec![0.0f32; targets.len()];
    losses
        .par_iter_mut()
        .zip(logits.par_chunks(vocab.max(1)).zip(targets.par_iter()))
        .for_each(|(loss, (row, &target))| *loss = row_loss(row, target));
    losses
}

widest!(row_loss(row: &[f32], target: i64) -> f32 = row_loss_kernel);

#[inline(always)]
fn row_loss_kernel(row: &[f32], target: i64) -> f32 {
    let vocab = row.len();
    let target = usize::try_from(target)
        .ok()
        .filter(|&t| t < vocab)
        .unwrap_or_else(|| panic!("target {target} outside the vocabulary of {vocab}"));
    let max = row_max(row);
    let mut lanes = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| exp(v - max)).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += exp(v - max);
        }
    }
    let sum = lanes.iter().sum::<f32>() + tail;
    max + sum.ln() - row[target]
}

/// Lanes of the partial maxima and sums, so the loops vectorise.
const LANES: usize = 8;

#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = if v > *lane { v } else { *lane };
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// `row[i] = exp(row[i] - shift)`; returns the sum.
#[inline(always)]
fn exp_shifted_in_place(row: &mut [f32], shift: f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *v = exp(*v - shift);
            *lane += *v;
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp(*v - shift);
        sum += *v;
    }
    sum
}

/// `x · sigmoid(x)` of each value, on all cores.
pub fn silu(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(ELEMENTWISE_BLOCK)
        .zip(x.par_chunks(ELEMENTWISE_BLOCK))
        .for_each(|(y, x)| silu_block(x, y));
    y
}

/// The gradient of [`silu`] at `x` given the output gradient `grad`:
/// `grad · σ(x) (1 + x (1 - σ(x)))`.
pub fn silu_backward(x: &[f32], grad: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), grad.len(), "one gradient per input");
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(ELEMENTWISE_BLOCK)
        .zip(
            x.par_chunks(ELEMENTWISE_BLOCK)
                .zip(grad.par_chunks(ELEMENTWISE_BLOCK)),
        )
        .for_each(|(dx, (x, g))| silu_backward_block(x, g, dx));
    dx
}

/// Elements per parallel task of the elementwise kernels.
const ELEMENTWISE_BLOCK: usize = 1 << 14;

widest!(silu_block(x: &[f32], y: &mut [f32]) -> () = silu_kernel);
widest!(silu_backward_block(x: &[f32], grad: &[f32], dx: &mut [f32]) -> () = silu_backward_kernel);

/// `(silu(x), silu'(x))` = `(x σ, σ (1 + x (1 - σ)))` with `σ = 1 / (1 + e^{-x})`; `exp`
/// saturates, so neither is ever NaN.
#[inline(always)]
pub(crate) fn silu_and_slope(x: f32) -> (f32, f32) {
    let s = 1.0 / (1.0 + exp(-x));
    (x * s, s * (1.0 + x * (1.0 - s)))
}

#[inline(always)]
fn silu_kernel(x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = silu_and_slope(x).0;
    }
}

#[inline(always)]
fn silu_backward_kernel(x: &[f32], grad: &[f32], dx: &mut [f32]) {
    for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(grad) {
        *dx = g * silu_and_slope(x).1;
    }
}

/// Lanes of the partial sums in [`dot`], so the loop vectorises with a fixed order.
const DOT_LANES: usize = 8;

/// `Σ a_i b_i`, summed in a fixed order of lanes (the same bits on every instruction set).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; DOT_LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(DOT_LANES), b.chunks_exact(DOT_LANES));
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (ca, cb) in a_chunks.zip(b_chunks) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(ca).zip(cb) {
            *lane += x * y;
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// `exp(x)` to about 1 ulp for x in [-87, 88], branch-free so that loops over it vectorise:
/// x = n ln 2 + r with |r| <= ln 2 / 2, exp(r) by a degree-7 polynomial (Cephes' `expf`
/// coefficients), 2^n assembled in the exponent bits. Inputs below -87 give about 1e-38.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n * LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to the nearest integer, kept in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let exp_r = p * r * r + r + 1.0;
    let n_int = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    exp_r * f32::from_bits(((n_int + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 88.0 * i as f32 / 200_000.0;
            let exact = (x as f64).exp();
            let rel = ((exp(x) as f64 - exact) / exact).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert!(exp(-1000.0) < 1e-37 && exp(f32::NEG_INFINITY) < 1e-37);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn rows_become_scaled_softmax_minus_onehot() {
        let vocab = 37; // not a multiple of the lanes
        let rows = 3;
        let mut logits: Vec<f32> = (0..rows * vocab)
            .map(|i| ((i * 7919) % 101) as f32 / 9.0 - 5.0)
            .collect();
        let original = logits.clone();
        let targets = [0i64, 36, 17];
        let scale = 0.5;
        let loss = softmax_cross_entropy_in_place(&mut logits, vocab, &targets, scale);
        let mut expected_loss = 0.0f64;
        for r in 0..rows {
            let row = &original[r * vocab..(r + 1) * vocab];
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
            let t = targets[r] as usize;
            expected_loss += max + sum.ln() - row[t] as f64;
            for (j, &v) in row.iter().enumerate() {
                let p = (v as f64 - max).exp() / sum;
                let g = scale as f64 * (p - if j == t { 1.0 } else { 0.0 });
                let got = logits[r * vocab + j] as f64;
                assert!((got - g).abs() < 1e-6, "row {r} column {j}: {got} vs {g}");
            }
        }
        assert!(
            (loss - expected_loss).abs() < 1e-5 * expected_loss,
            "{loss} vs {expected_loss}"
        );
    }

    /// Every instruction-set variant the CPU can run gives the portable kernel's exact bits.
    #[test]
    fn variants_agree_bit_for_bit() {
        let vocab = 1000;
        let original: Vec<f32> = (0..4 * vocab)
            .map(|i| ((i * 7919) % 1013) as f32 / 50.0 - 10.0)
            .collect();
        let targets = [3i64, 999, 0, 512];
        let run = |kernel: &dyn Fn(&mut [f32]) -> f64| {
            let mut values = original.clone();
            let loss = kernel(&mut values);
            (
                loss.to_bits(),
                values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            )
        };
        let portable = run(&|v| rows(v, vocab, &targets, 0.3));
        assert_eq!(
            run(&|v| softmax_cross_entropy_in_place(v, vocab, &targets, 0.3)),
            portable
        );
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: checked just above.
                assert_eq!(
                    run(&|v| unsafe { rows_avx2(v, vocab, &targets, 0.3) }),
                    portable
                );
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: checked just above.
                assert_eq!(
                    run(&|v| unsafe { rows_avx512(v, vocab, &targets, 0.3) }),
                    portable
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "outside the vocabulary")]
    fn a_target_outside_the_vocabulary_is_refused() {
        let mut logits = vec![0.0; 4];
        softmax_cross_entropy_in_place(&mut logits, 4, &[4], 1.0);
    }
}
