//! The selective state-space recurrence of Mamba-2, in two exact forms.
//!
//! Per head, with state h ∈ R^{P×N}, decay α_t = exp(Δ_t A) and input x_t ∈ R^P:
//!
//! ```text
//! h_t = α_t h_{t-1} + Δ_t x_t B_tᵀ        y_t = h_t C_t
//! ```
//!
//! [`scan_step`] applies this one token at a time (decoding, passkey generation).
//! [`scan_chunked`] computes the same thing for a whole segment with the chunked SSD algorithm of
//! the Mamba-2 paper (its "minimal" listing): split the segment into chunks of Q tokens, then
//!
//! 1. intra-chunk outputs, the quadratic "attention" form: `Y_diag = (L ∘ C Bᵀ) X`, with
//!    `L[i, j] = exp(Σ_{j<k≤i} log α_k)` for i ≥ j and 0 above the diagonal;
//! 2. each chunk's own final state, as if it started from zero;
//! 3. the states entering each chunk, by the same decay-matrix trick applied to chunk totals,
//!    starting from the carried `initial` state;
//! 4. the carried states' contribution to each chunk's outputs: `Y_off = C h_in · exp(cumsum)`.
//!
//! Everything is stock burn tensor ops, so it runs (and differentiates) on every backend; on
//! the CPU, [`crate::ops::scan_chunked`] runs the host kernel of the same chunked form instead.
//! Decays live in log space throughout: `log_alpha` is an input so that inference-time
//! interventions (RRI's λ_α) act exactly, after the softplus, in both paths.
//!
//! Shapes are written as suffixes: b batch, l length, c chunks, q chunk position, h heads,
//! g groups, k heads per group, p head dim, n state dim.

use burn::prelude::*;

/// One layer's discretised scan inputs for a segment.
#[derive(Debug, Clone)]
pub struct ScanInputs {
    /// x: [batch, length, heads, headdim].
    pub x_blhp: Tensor<4>,
    /// Δ after the softplus: [batch, length, heads]. Scales the input.
    pub dt_blh: Tensor<3>,
    /// log α = Δ·A (+ any log-space intervention): [batch, length, heads]. At most 0.
    pub log_alpha_blh: Tensor<3>,
    /// B: [batch, length, groups, d_state].
    pub b_blgn: Tensor<4>,
    /// C: [batch, length, groups, d_state].
    pub c_blgn: Tensor<4>,
}

/// Runs the recurrence over a segment with the chunked SSD algorithm.
///
/// `initial_bhpn` is the state before the segment ([batch, heads, headdim, d_state]); the
/// result is `(y_blhp, final_bhpn)`. Any length works: the last chunk is padded with Δ = 0 and
/// log α = 0 positions, which neither decay nor write the state.
pub fn scan_chunked(
    inputs: ScanInputs,
    initial_bhpn: Tensor<4>,
    chunk_size: usize,
) -> (Tensor<4>, Tensor<4>) {
    let [batch, len, heads, headdim] = inputs.x_blhp.dims();
    let [_, _, groups, d_state] = inputs.b_blgn.dims();
    let per_group = heads / groups;
    let q = chunk_size.clamp(1, len.max(1));
    let chunks = len.div_ceil(q);
    let padded = chunks * q;

    let xdt_blhp = inputs.x_blhp * inputs.dt_blh.unsqueeze_dim::<4>(3);
    let (xdt_blhp, log_alpha_blh, b_blgn, c_blgn) = if padded == len {
        (xdt_blhp, inputs.log_alpha_blh, inputs.b_blgn, inputs.c_blgn)
    } else {
        let pad = padded - len;
        (
            pad_length(xdt_blhp, pad),
            pad_length(inputs.log_alpha_blh, pad),
            pad_length(inputs.b_blgn, pad),
            pad_length(inputs.c_blgn, pad),
        )
    };

    // Chunked, head-major layouts.
    let xdt_bcgkqp = xdt_blhp
        .reshape([batch, chunks, q, heads, headdim])
        .permute([0, 1, 3, 2, 4])
        .reshape([batch, chunks, groups, per_group, q, headdim]);
    let log_alpha_bchq = log_alpha_blh
        .reshape([batch, chunks, q, heads])
        .permute([0, 1, 3, 2]);
    let b_bcgqn = b_blgn
        .reshape([batch, chunks, q, groups, d_state])
        .permute([0, 1, 3, 2, 4]);
    let c_bcgqn = c_blgn
        .reshape([batch, chunks, q, groups, d_state])
        .permute([0, 1, 3, 2, 4]);

    // Log decay from the chunk start to each position (inclusive).
    let cum_bchq = log_alpha_bchq.cumsum(3);
    let cum_bcgkq = cum_bchq
        .clone()
        .reshape([batch, chunks, groups, per_group, q]);

    // 1. Intra-chunk outputs.
    let decay_bcgkqq = causal_decay(cum_bcgkq.clone());
    let cb_bcgqq = c_bcgqn.clone().matmul(b_bcgqn.clone().swap_dims(3, 4));
    let mixing_bcgkqq = cb_bcgqq.unsqueeze_dim::<6>(3) * decay_bcgkqq;
    let y_diag_bcgkqp = mixing_bcgkqq.matmul(xdt_bcgkqp.clone());

    // 2. Each chunk's final state from its own inputs, decayed to the chunk end.
    let cum_last_bcgk1 = cum_bcgkq.clone().narrow(4, q - 1, 1);
    let to_end_bcgkq = (cum_last_bcgk1.clone() - cum_bcgkq.clone()).exp();
    let weighted_bcgkqp = xdt_bcgkqp * to_end_bcgkq.unsqueeze_dim::<6>(5);
    let local_bcgknp = b_bcgqn
        .clone()
        .swap_dims(3, 4)
        .unsqueeze_dim::<6>(3)
        .matmul(weighted_bcgkqp);

    // 3. States entering each chunk: s_in[0] = initial, s_in[i+1] = α_chunk[i] s_in[i] + local[i].
    let initial_b1gknp = initial_bhpn
        .swap_dims(2, 3)
        .reshape([batch, 1, groups, per_group, d_state, headdim]);
    let all_local_bcgknp = Tensor::cat(vec![initial_b1gknp, local_bcgknp], 1);
    let chunk_totals_bgkc = cum_last_bcgk1
        .reshape([batch, chunks, groups, per_group])
        .permute([0, 2, 3, 1]);
    let carry_bgkcc = chunk_carry_matrix(chunk_totals_bgkc);
    let states_bgkcx = carry_bgkcc.matmul(all_local_bcgknp.permute([0, 2, 3, 1, 4, 5]).reshape([
        batch,
        groups,
        per_group,
        chunks + 1,
        d_state * headdim,
    ]));
    let final_bhpn = states_bgkcx
        .clone()
        .narrow(3, chunks, 1)
        .reshape([batch, heads, d_state, headdim])
        .swap_dims(2, 3);
    let entering_bcgknp = states_bgkcx
        .narrow(3, 0, chunks)
        .reshape([batch, groups, per_group, chunks, d_state, headdim])
        .permute([0, 3, 1, 2, 4, 5]);

    // 4. Carried states' contribution: y_off[t] = exp(cum[t]) · C_t h_in.
    let y_off_bcgkqp = c_bcgqn.unsqueeze_dim::<6>(3).matmul(entering_bcgknp)
        * cum_bcgkq.exp().unsqueeze_dim::<6>(5);

    let y_blhp = (y_diag_bcgkqp + y_off_bcgkqp)
        .reshape([batch, chunks, heads, q, headdim])
        .permute([0, 1, 3, 2, 4])
        .reshape([batch, padded, heads, headdim]);
    let y_blhp = if padded == len {
        y_blhp
    } else {
        y_blhp.narrow(1, 0, len)
    };
    (y_blhp, final_bhpn)
}

/// `L[.., i, j] = exp(cum[i] - cum[j])` for i ≥ j, else 0: the decay from position j to i
/// within a chunk (the "segment sum" mask of the SSD paper).
fn causal_decay<const D: usize, const D1: usize>(cum: Tensor<D>) -> Tensor<D1> {
    let dims = cum.dims();
    let q = dims[D - 1];
    let device = cum.device();
    let diff: Tensor<D1> = cum.clone().unsqueeze_dim(D) - cum.unsqueeze_dim(D - 1);
    let above = Tensor::<2, Bool>::tril_mask([q, q], 0, &device);
    let mut mask_dims = [1usize; D1];
    mask_dims[D1 - 2] = q;
    mask_dims[D1 - 1] = q;
    let above: Tensor<D1, Bool> = above.reshape(mask_dims);
    diff.mask_fill(above.expand(diff_dims(&dims, q)), f32::NEG_INFINITY)
        .exp()
}

fn diff_dims<const D: usize, const D1: usize>(dims: &[usize; D], q: usize) -> [usize; D1] {
    let mut out = [0usize; D1];
    out[..D].copy_from_slice(dims);
    out[D1 - 1] = q;
    out
}

/// The (chunks+1)×(chunks+1) carry matrix over chunk totals: entry (i, j) is the decay from
/// the end of chunk j-1 (or the initial state, j = 0) to the end of chunk i-1.
fn chunk_carry_matrix(chunk_totals_bgkc: Tensor<4>) -> Tensor<5> {
    let [batch, groups, per_group, _] = chunk_totals_bgkc.dims();
    let zero = Tensor::zeros([batch, groups, per_group, 1], &chunk_totals_bgkc.device());
    let cum = Tensor::cat(vec![zero, chunk_totals_bgkc], 3).cumsum(3);
    causal_decay(cum)
}

/// Appends `pad` zero positions along dimension 1.
fn pad_length<const D: usize>(tensor: Tensor<D>, pad: usize) -> Tensor<D> {
    let mut dims = tensor.dims();
    dims[1] = pad;
    let zeros = Tensor::zeros(dims, &tensor.device());
    Tensor::cat(vec![tensor, zeros], 1)
}

/// Advances the recurrence by one token. Shapes: x [b, h, p], dt and log α [b, h],
/// B and C [b, g, n], state [b, h, p, n]. Returns `(y_bhp, state_bhpn)`.
pub fn scan_step(
    x_bhp: Tensor<3>,
    dt_bh: Tensor<2>,
    log_alpha_bh: Tensor<2>,
    b_bgn: Tensor<3>,
    c_bgn: Tensor<3>,
    state_bhpn: Tensor<4>,
) -> (Tensor<3>, Tensor<4>) {
    let [batch, heads, headdim] = x_bhp.dims();
    let [_, groups, d_state] = b_bgn.dims();
    let per_group = heads / groups;
    let per_head = |t: Tensor<3>| -> Tensor<3> {
        t.unsqueeze_dim::<4>(2)
            .expand([batch, groups, per_group, d_state])
            .reshape([batch, heads, d_state])
    };
    let b_bhn = per_head(b_bgn);
    let c_bhn = per_head(c_bgn);
    let alpha_bh11 = log_alpha_bh.exp().reshape([batch, heads, 1, 1]);
    let input_bhpn =
        (x_bhp * dt_bh.unsqueeze_dim::<3>(2)).unsqueeze_dim::<4>(3) * b_bhn.unsqueeze_dim::<4>(2);
    let state_bhpn = state_bhpn * alpha_bh11 + input_bhpn;
    let y_bhp = state_bhpn
        .clone()
        .matmul(c_bhn.unsqueeze_dim::<4>(3))
        .reshape([batch, heads, headdim]);
    (y_bhp, state_bhpn)
}

/// State of the exact sliding-window read-out (paper.md section 6, method 3) for one layer.
///
/// Because the state is a decayed sum, `h_t − α_{t−r+1:t} h_{t−r}` is exactly the state built from
/// the last r tokens. `h_{t−r}` is the state of the same recurrence run on inputs delayed by r
/// positions, so it is computed by a second scan over the delayed inputs; this keeps the last r
/// inputs and that lagged state.
#[derive(Debug, Clone)]
pub struct WindowState {
    /// The last r positions of x, Δ, log α and B.
    pub x_brhp: Tensor<4>,
    pub dt_brh: Tensor<3>,
    pub log_alpha_brh: Tensor<3>,
    pub b_brgn: Tensor<4>,
    /// h_{t−r}: [batch, heads, headdim, d_state].
    pub lagged_bhpn: Tensor<4>,
}

impl WindowState {
    /// The state before any token: an empty (all-zero) window.
    pub fn zeros(
        window: usize,
        [batch, heads, headdim, groups, d_state]: [usize; 5],
        device: &Device,
    ) -> Self {
        Self {
            x_brhp: Tensor::zeros([batch, window, heads, headdim], device),
            dt_brh: Tensor::zeros([batch, window, heads], device),
            log_alpha_brh: Tensor::zeros([batch, window, heads], device),
            b_brgn: Tensor::zeros([batch, window, groups, d_state], device),
            lagged_bhpn: Tensor::zeros([batch, heads, headdim, d_state], device),
        }
    }

    /// The window length r.
    pub fn len(&self) -> usize {
        self.dt_brh.dims()[1]
    }

    /// Whether the window has length zero (never: a window is at least one token).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the sliding window removes from a segment's outputs: `α_{t−r+1:t} · C_t h_{t−r}` for
/// each position ([batch, length, heads, headdim]), and the advanced window state. Subtracting
/// it from [`scan_chunked`]'s output gives the output of the state of the last r tokens.
pub fn window_correction(
    inputs: &ScanInputs,
    window: WindowState,
    chunk_size: usize,
) -> (Tensor<4>, WindowState) {
    let len = inputs.dt_blh.dims()[1];
    let r = window.len();
    // Concatenate the kept inputs with this segment's; the first `len` are the delayed inputs,
    // the last `r` are the next window.
    fn shift<const D: usize>(
        kept: Tensor<D>,
        new: Tensor<D>,
        len: usize,
        r: usize,
    ) -> (Tensor<D>, Tensor<D>) {
        let all = Tensor::cat(vec![kept, new], 1);
        (all.clone().narrow(1, 0, len), all.narrow(1, len, r))
    }
    let (x_d, x_keep) = shift(window.x_brhp, inputs.x_blhp.clone(), len, r);
    let (dt_d, dt_keep) = shift(window.dt_brh, inputs.dt_blh.clone(), len, r);
    let all_log_alpha = Tensor::cat(vec![window.log_alpha_brh, inputs.log_alpha_blh.clone()], 1);
    let la_d = all_log_alpha.clone().narrow(1, 0, len);
    let la_keep = all_log_alpha.clone().narrow(1, len, r);
    let (b_d, b_keep) = shift(window.b_brgn, inputs.b_blgn.clone(), len, r);

    let (y_lag_blhp, lagged_bhpn) = crate::ops::scan_chunked(
        ScanInputs {
            x_blhp: x_d,
            dt_blh: dt_d,
            log_alpha_blh: la_d,
            b_blgn: b_d,
            c_blgn: inputs.c_blgn.clone(),
        },
        window.lagged_bhpn,
        chunk_size,
    );
    // log α_{t−r+1:t}: a difference of prefix sums over the concatenation.
    let cum = all_log_alpha.cumsum(1);
    let window_log_decay_blh = cum.clone().narrow(1, r, len) - cum.narrow(1, 0, len);
    let correction = y_lag_blhp * window_log_decay_blh.exp().unsqueeze_dim::<4>(3);
    (
        correction,
        WindowState {
            x_brhp: x_keep,
            dt_brh: dt_keep,
            log_alpha_brh: la_keep,
            b_brgn: b_keep,
            lagged_bhpn,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::scan_chunked;
    use crate::testing::{assert_close, cpu, random};

    fn inputs(
        batch: usize,
        len: usize,
        heads: usize,
        groups: usize,
        seed: u64,
    ) -> (ScanInputs, Tensor<4>) {
        let dev = cpu();
        let (p, n) = (4, 3);
        let dt = random([batch, len, heads], seed, &dev).abs() * 0.5;
        let a = random([heads], seed + 1, &dev).abs().neg() - 0.1;
        let log_alpha = dt.clone() * a.reshape([1, 1, heads]);
        let inputs = ScanInputs {
            x_blhp: random([batch, len, heads, p], seed + 2, &dev),
            dt_blh: dt,
            log_alpha_blh: log_alpha,
            b_blgn: random([batch, len, groups, n], seed + 3, &dev),
            c_blgn: random([batch, len, groups, n], seed + 4, &dev),
        };
        let initial = random([batch, heads, p, n], seed + 5, &dev);
        (inputs, initial)
    }

    fn sequential(inputs: &ScanInputs, initial: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let len = inputs.x_blhp.dims()[1];
        let mut state = initial;
        let mut ys = Vec::new();
        for t in 0..len {
            let at = |x: Tensor<4>| -> Tensor<3> { x.narrow(1, t, 1).squeeze_dim(1) };
            let at3 = |x: Tensor<3>| -> Tensor<2> { x.narrow(1, t, 1).squeeze_dim(1) };
            let (y, s) = scan_step(
                at(inputs.x_blhp.clone()),
                at3(inputs.dt_blh.clone()),
                at3(inputs.log_alpha_blh.clone()),
                at(inputs.b_blgn.clone()),
                at(inputs.c_blgn.clone()),
                state,
            );
            state = s;
            ys.push(y.unsqueeze_dim::<4>(1));
        }
        (Tensor::cat(ys, 1), state)
    }

    #[test]
    fn chunked_equals_sequential_for_any_length_and_chunk() {
        for (len, chunk, groups) in [(1, 4, 1), (7, 4, 1), (16, 4, 2), (13, 5, 2), (9, 64, 1)] {
            let (inp, init) = inputs(2, len, 4, groups, len as u64 * 10 + chunk as u64);
            let (y_ref, s_ref) = sequential(&inp, init.clone());
            let (y, s) = scan_chunked(inp, init, chunk);
            assert_close(&y, &y_ref, 1e-5, &format!("y len {len} chunk {chunk}"));
            assert_close(&s, &s_ref, 1e-5, &format!("state len {len} chunk {chunk}"));
        }
    }

    #[test]
    fn segments_compose() {
        let (inp, init) = inputs(1, 23, 2, 1, 99);
        let (y_all, s_all) = scan_chunked(inp.clone(), init.clone(), 4);
        let part = |t: &ScanInputs, start: usize, len: usize| ScanInputs {
            x_blhp: t.x_blhp.clone().narrow(1, start, len),
            dt_blh: t.dt_blh.clone().narrow(1, start, len),
            log_alpha_blh: t.log_alpha_blh.clone().narrow(1, start, len),
            b_blgn: t.b_blgn.clone().narrow(1, start, len),
            c_blgn: t.c_blgn.clone().narrow(1, start, len),
        };
        let (y1, s1) = scan_chunked(part(&inp, 0, 10), init, 4);
        let (y2, s2) = scan_chunked(part(&inp, 10, 13), s1, 4);
        assert_close(&Tensor::cat(vec![y1, y2], 1), &y_all, 1e-5, "y");
        assert_close(&s2, &s_all, 1e-5, "state");
    }

    #[test]
    fn sliding_window_reads_the_state_of_the_last_r_tokens() {
        let (len, r, chunk) = (29, 6, 4);
        let (inp, _) = inputs(2, len, 4, 2, 7);
        let zero = Tensor::zeros([2, 4, 4, 3], &cpu());
        let (y_full, _) = scan_chunked(inp.clone(), zero.clone(), chunk);
        // In two segments, to cross a boundary inside the window.
        let part = |start: usize, n: usize| ScanInputs {
            x_blhp: inp.x_blhp.clone().narrow(1, start, n),
            dt_blh: inp.dt_blh.clone().narrow(1, start, n),
            log_alpha_blh: inp.log_alpha_blh.clone().narrow(1, start, n),
            b_blgn: inp.b_blgn.clone().narrow(1, start, n),
            c_blgn: inp.c_blgn.clone().narrow(1, start, n),
        };
        let window = WindowState::zeros(r, [2, 4, 4, 2, 3], &cpu());
        let (c1, window) = window_correction(&part(0, 11), window, chunk);
        let (c2, _) = window_correction(&part(11, len - 11), window, chunk);
        let y_window = y_full - Tensor::cat(vec![c1, c2], 1);
        // Reference: for each t, run the recurrence from zero over tokens t-r+1..t only.
        for t in 0..len {
            let start = (t + 1).saturating_sub(r);
            let (y_ref, _) = scan_chunked(part(start, t + 1 - start), zero.clone(), chunk);
            let got = y_window.clone().narrow(1, t, 1);
            let want = y_ref.narrow(1, t - start, 1);
            assert_close(&got, &want, 1e-5, &format!("position {t}"));
        }
    }
}
