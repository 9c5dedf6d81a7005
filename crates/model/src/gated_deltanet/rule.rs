//! The gated delta rule, in two exact forms.
//!
//! Per head, with state S ∈ R^{V×K} (fla's `state_v_first` layout), decay α_t = exp(g_t),
//! write strength β_t, and unit-norm key k_t:
//!
//! ```text
//! S_t = α_t S_{t-1} (I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ        o_t = S_t q_t
//! ```
//!
//! equivalently `u_t = β_t (v_t − α_t S_{t-1} k_t)`, `S_t = α_t S_{t-1} + u_t k_tᵀ`.
//!
//! [`delta_step`] applies it to one token. [`delta_chunked`] computes the same thing for a
//! segment in chunks of Q tokens. Within a chunk, with G the chunk-local cumsum of g,
//! D_ij = exp(G_i − G_j) (i ≥ j) and S₀ the state entering the chunk, the u's solve the unit
//! lower-triangular system
//!
//! ```text
//! (I + L) U = diag(β) V − diag(β e^G) K S₀ᵀ,     L = strict_lower(diag(β) K Kᵀ ⊙ D)
//! ```
//!
//! so with T = (I + L)⁻¹ (the WY/UT transform), W = T diag(β e^G) K and Ũ = T diag(β) V,
//! every chunk's `U = Ũ − W S₀ᵀ`, `O = diag(e^G) Q S₀ᵀ + (Q Kᵀ ⊙ D) U` and
//! `S_Q = e^{G_Q} S₀ + Uᵀ diag(e^{G_Q − G}) K`. Everything but the last three products is
//! computed for all chunks at once; those run chunk by chunk. T comes from recursive 2×2 block
//! inversion ([`unit_lower_inverse`]), which is exact and as stable as forward substitution.
//! Exponents are masked before `exp`, so none is positive.
//!
//! Stock burn tensor ops only, so it runs and differentiates on every backend. Shape
//! suffixes: b batch, l length, h heads, k key dim, v value dim, n chunks, c chunk position.

use burn::prelude::*;

/// One segment's delta-rule inputs, per token and head.
#[derive(Debug, Clone)]
pub struct DeltaInputs {
    /// Queries, L2-normalised and scaled by K^-1/2: [batch, length, heads, K].
    pub q_blhk: Tensor<4>,
    /// Keys, L2-normalised: [batch, length, heads, K].
    pub k_blhk: Tensor<4>,
    /// Values: [batch, length, heads, V].
    pub v_blhv: Tensor<4>,
    /// log α (at most 0): [batch, length, heads].
    pub g_blh: Tensor<3>,
    /// β in (0, 1): [batch, length, heads].
    pub beta_blh: Tensor<3>,
}

impl DeltaInputs {
    /// Tokens `start..start + len`.
    pub fn narrow(&self, start: usize, len: usize) -> Self {
        Self {
            q_blhk: self.q_blhk.clone().narrow(1, start, len),
            k_blhk: self.k_blhk.clone().narrow(1, start, len),
            v_blhv: self.v_blhv.clone().narrow(1, start, len),
            g_blh: self.g_blh.clone().narrow(1, start, len),
            beta_blh: self.beta_blh.clone().narrow(1, start, len),
        }
    }
}

/// Advances the rule by one token. Shapes: q, k [b, h, K], v [b, h, V], g and β [b, h],
/// state [b, h, V, K]. Returns `(o_bhv, state_bhvk)`.
pub fn delta_step(
    q_bhk: Tensor<3>,
    k_bhk: Tensor<3>,
    v_bhv: Tensor<3>,
    g_bh: Tensor<2>,
    beta_bh: Tensor<2>,
    state_bhvk: Tensor<4>,
) -> (Tensor<3>, Tensor<4>) {
    let [batch, heads, value] = v_bhv.dims();
    let decayed_bhvk = state_bhvk * g_bh.exp().reshape([batch, heads, 1, 1]);
    let k_bhk1 = k_bhk.unsqueeze_dim::<4>(3);
    let predicted_bhv1 = decayed_bhvk.clone().matmul(k_bhk1.clone());
    let u_bhv1 =
        (v_bhv.unsqueeze_dim::<4>(3) - predicted_bhv1) * beta_bh.reshape([batch, heads, 1, 1]);
    let state_bhvk = decayed_bhvk + u_bhv1.matmul(k_bhk1.swap_dims(2, 3));
    let o_bhv = state_bhvk
        .clone()
        .matmul(q_bhk.unsqueeze_dim::<4>(3))
        .reshape([batch, heads, value]);
    (o_bhv, state_bhvk)
}

/// [`delta_step`] token by token over a segment: `(o_blhv, final_bhvk)`.
pub fn delta_recurrent(inputs: DeltaInputs, initial_bhvk: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let len = inputs.g_blh.dims()[1];
    let mut state_bhvk = initial_bhvk;
    let mut outputs = Vec::with_capacity(len);
    for t in 0..len {
        let at4 = |x: &Tensor<4>| x.clone().narrow(1, t, 1).squeeze_dim::<3>(1);
        let at3 = |x: &Tensor<3>| x.clone().narrow(1, t, 1).squeeze_dim::<2>(1);
        let (o_bhv, next) = delta_step(
            at4(&inputs.q_blhk),
            at4(&inputs.k_blhk),
            at4(&inputs.v_blhv),
            at3(&inputs.g_blh),
            at3(&inputs.beta_blh),
            state_bhvk,
        );
        state_bhvk = next;
        outputs.push(o_bhv.unsqueeze_dim::<4>(1));
    }
    (Tensor::cat(outputs, 1), state_bhvk)
}

/// The rule over a segment in chunks of `chunk_size` tokens (any length; the last chunk is
/// padded with β = 0, g = 0, zero keys, which leave the state alone): `(o_blhv, final_bhvk)`.
pub fn delta_chunked(
    inputs: DeltaInputs,
    initial_bhvk: Tensor<4>,
    chunk_size: usize,
) -> (Tensor<4>, Tensor<4>) {
    let [batch, len, heads, _] = inputs.q_blhk.dims();
    let value = inputs.v_blhv.dims()[3];
    if len == 0 {
        return (inputs.v_blhv, initial_bhvk);
    }
    let q = chunk_size.clamp(1, len);
    let chunks = len.div_ceil(q);
    let pad = chunks * q - len;

    // [b, l, h, d] → [b, h, n, c, d] and [b, l, h] → [b, h, n, c].
    let chunked4 = |x: Tensor<4>| -> Tensor<5> {
        let dim = x.dims()[3];
        pad_length(x, pad)
            .reshape([batch, chunks, q, heads, dim])
            .permute([0, 3, 1, 2, 4])
    };
    let chunked3 = |x: Tensor<3>| -> Tensor<4> {
        pad_length(x, pad)
            .reshape([batch, chunks, q, heads])
            .permute([0, 3, 1, 2])
    };
    let q_bhnck = chunked4(inputs.q_blhk);
    let k_bhnck = chunked4(inputs.k_blhk);
    let v_bhncv = chunked4(inputs.v_blhv);
    let beta_bhnc = chunked3(inputs.beta_blh);
    let cum_bhnc = chunked3(inputs.g_blh).cumsum(3);

    let decay_bhncc = causal_decay(cum_bhnc.clone());
    let beta_bhnc1 = beta_bhnc.unsqueeze_dim::<5>(4);
    let kkt_bhncc = k_bhnck.clone().matmul(k_bhnck.clone().swap_dims(3, 4));
    let strict_bhncc = (kkt_bhncc * decay_bhncc.clone() * beta_bhnc1.clone()).mask_fill(
        Tensor::<5, Bool>::tril_mask([1, 1, 1, q, q], -1, &q_bhnck.device())
            .expand([batch, heads, chunks, q, q]),
        0.0,
    );
    let t_bhncc = unit_lower_inverse(strict_bhncc.reshape([batch * heads * chunks, q, q]))
        .reshape([batch, heads, chunks, q, q]);
    let from_start_bhnc1 = cum_bhnc.clone().exp().unsqueeze_dim::<5>(4);
    let w_bhnck = t_bhncc
        .clone()
        .matmul(k_bhnck.clone() * (beta_bhnc1.clone() * from_start_bhnc1.clone()));
    let u_tilde_bhncv = t_bhncc.matmul(v_bhncv * beta_bhnc1);
    let attn_bhncc = q_bhnck.clone().matmul(k_bhnck.clone().swap_dims(3, 4)) * decay_bhncc;
    let q_decayed_bhnck = q_bhnck * from_start_bhnc1;
    let last_bhn1 = cum_bhnc.clone().narrow(3, q - 1, 1);
    let k_to_end_bhnck = k_bhnck * (last_bhn1.clone() - cum_bhnc).exp().unsqueeze_dim::<5>(4);
    let chunk_decay_bhn1 = last_bhn1.exp();

    let mut state_bhvk = initial_bhvk;
    let mut outputs = Vec::with_capacity(chunks);
    for i in 0..chunks {
        let at = |x: &Tensor<5>| x.clone().narrow(2, i, 1).squeeze_dim::<4>(2);
        let state_bhkv = state_bhvk.clone().swap_dims(2, 3);
        let u_bhcv = at(&u_tilde_bhncv) - at(&w_bhnck).matmul(state_bhkv.clone());
        outputs
            .push(at(&q_decayed_bhnck).matmul(state_bhkv) + at(&attn_bhncc).matmul(u_bhcv.clone()));
        let chunk_decay_bh11 = chunk_decay_bhn1
            .clone()
            .narrow(2, i, 1)
            .reshape([batch, heads, 1, 1]);
        state_bhvk =
            state_bhvk * chunk_decay_bh11 + u_bhcv.swap_dims(2, 3).matmul(at(&k_to_end_bhnck));
    }
    let o_bhlv = Tensor::cat(outputs, 2).narrow(2, 0, len);
    (
        o_bhlv.swap_dims(1, 2).reshape([batch, len, heads, value]),
        state_bhvk,
    )
}

/// `D[.., i, j] = exp(cum[i] − cum[j])` for i ≥ j, else 0 (masked before the `exp`).
fn causal_decay(cum_bhnc: Tensor<4>) -> Tensor<5> {
    let [batch, heads, chunks, q] = cum_bhnc.dims();
    let diff_bhncc = cum_bhnc.clone().unsqueeze_dim::<5>(4) - cum_bhnc.unsqueeze_dim::<5>(3);
    let above = Tensor::<5, Bool>::tril_mask([1, 1, 1, q, q], 0, &diff_bhncc.device())
        .expand([batch, heads, chunks, q, q]);
    diff_bhncc.mask_fill(above, f32::NEG_INFINITY).exp()
}

/// `(I + L)⁻¹` for strictly lower-triangular `L` ([n, q, q]), by recursive block inversion:
/// `[[A, 0], [B, D]]⁻¹ = [[A⁻¹, 0], [−D⁻¹ B A⁻¹, D⁻¹]]`, doubling the block size from 1
/// (the unit diagonal) in log2(q) batched steps. `L` is padded with zeros to a power of two.
pub fn unit_lower_inverse(l_nqq: Tensor<3>) -> Tensor<3> {
    let [n, q, _] = l_nqq.dims();
    let device = l_nqq.device();
    let size = q.next_power_of_two();
    let l_npp = if size == q {
        l_nqq
    } else {
        let wide = Tensor::cat(vec![l_nqq, Tensor::zeros([n, q, size - q], &device)], 2);
        Tensor::cat(vec![wide, Tensor::zeros([n, size - q, size], &device)], 1)
    };
    // Inverses of the diagonal blocks of side `s`: [n, size / s, s, s].
    let mut inverse = Tensor::<4>::ones([n, size, 1, 1], &device);
    let mut s = 1;
    while s < size {
        let pairs = size / (2 * s);
        let lower_left = diagonal_blocks(l_npp.clone(), 2 * s)
            .narrow(2, s, s)
            .narrow(3, 0, s);
        let halves = inverse.reshape([n, pairs, 2, s, s]);
        let a_inv = halves.clone().narrow(2, 0, 1).reshape([n, pairs, s, s]);
        let d_inv = halves.narrow(2, 1, 1).reshape([n, pairs, s, s]);
        let corner = d_inv.clone().matmul(lower_left).matmul(a_inv.clone()).neg();
        let top = Tensor::cat(vec![a_inv, Tensor::zeros([n, pairs, s, s], &device)], 3);
        let bottom = Tensor::cat(vec![corner, d_inv], 3);
        inverse = Tensor::cat(vec![top, bottom], 2);
        s *= 2;
    }
    let inverse = inverse.reshape([n, size, size]);
    if size == q {
        inverse
    } else {
        inverse.narrow(1, 0, q).narrow(2, 0, q)
    }
}

/// The diagonal blocks of side `s` of `m` ([n, p, p]): [n, p / s, s, s].
fn diagonal_blocks(m_npp: Tensor<3>, s: usize) -> Tensor<4> {
    let [n, p, _] = m_npp.dims();
    let blocks = p / s;
    let eye = Tensor::<2>::eye(blocks, &m_npp.device()).reshape([1, blocks, 1, blocks, 1]);
    (m_npp.reshape([n, blocks, s, blocks, s]) * eye)
        .sum_dim(3)
        .reshape([n, blocks, s, s])
}

/// Appends `pad` zero positions along dimension 1.
fn pad_length<const D: usize>(tensor: Tensor<D>, pad: usize) -> Tensor<D> {
    if pad == 0 {
        return tensor;
    }
    let mut dims = tensor.dims();
    dims[1] = pad;
    let zeros = Tensor::zeros(dims, &tensor.device());
    Tensor::cat(vec![tensor, zeros], 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, cpu, random};

    fn inputs(batch: usize, len: usize, heads: usize, seed: u64) -> (DeltaInputs, Tensor<4>) {
        let dev = cpu();
        let (key, value) = (8, 6);
        let unit = |x: Tensor<4>| {
            let norm = x.clone().square().sum_dim(3).add_scalar(1e-6).sqrt();
            x / norm
        };
        let inputs = DeltaInputs {
            q_blhk: unit(random([batch, len, heads, key], seed, &dev)),
            k_blhk: unit(random([batch, len, heads, key], seed + 1, &dev)),
            v_blhv: random([batch, len, heads, value], seed + 2, &dev),
            g_blh: random([batch, len, heads], seed + 3, &dev).abs().neg(),
            beta_blh: burn::tensor::activation::sigmoid(random(
                [batch, len, heads],
                seed + 4,
                &dev,
            )),
        };
        (inputs, random([batch, heads, value, key], seed + 5, &dev))
    }

    #[test]
    fn block_inverse_inverts() {
        let dev = cpu();
        for q in [1, 2, 5, 8, 13, 64] {
            // Entries of the size the rule produces (|β kᵢ·kⱼ D_ij| < 1); larger random ones
            // make (I + L)⁻¹ grow exponentially with q, beyond float32.
            let l = random([3, q, q], q as u64, &dev).mask_fill(
                Tensor::<3, Bool>::tril_mask([1, q, q], -1, &dev).expand([3, q, q]),
                0.0,
            ) * 0.3;
            let eye = Tensor::<2>::eye(q, &dev)
                .unsqueeze_dim::<3>(0)
                .expand([3, q, q]);
            let product = (eye.clone() + l.clone()).matmul(unit_lower_inverse(l));
            assert_close(&product, &eye, 1e-4, &format!("(I + L) T at q = {q}"));
        }
    }

    #[test]
    fn chunked_equals_recurrent_for_any_length_and_chunk() {
        for (len, chunk) in [(1, 4), (7, 4), (16, 4), (13, 5), (9, 64), (40, 16), (33, 7)] {
            let (inp, init) = inputs(2, len, 3, len as u64 * 10 + chunk as u64);
            let (o_ref, s_ref) = delta_recurrent(inp.clone(), init.clone());
            let (o, s) = delta_chunked(inp, init, chunk);
            assert_close(&o, &o_ref, 1e-4, &format!("o len {len} chunk {chunk}"));
            assert_close(&s, &s_ref, 1e-4, &format!("state len {len} chunk {chunk}"));
        }
    }

    /// Nearly parallel keys, β near 1 and almost no decay make L close to a full lower
    /// triangle of ones, the hardest case for the inverse; chunk 64 still matches.
    #[test]
    fn chunked_is_stable_for_nearly_parallel_keys() {
        let (mut inp, init) = inputs(1, 130, 2, 5);
        let dev = cpu();
        let shared = random([1, 1, 2, 8], 6, &dev);
        let k = shared.expand([1, 130, 2, 8]) + random([1, 130, 2, 8], 7, &dev) * 0.05;
        let norm = k.clone().square().sum_dim(3).sqrt();
        inp.k_blhk = k / norm;
        inp.beta_blh = inp.beta_blh.clone() * 0.1 + 0.9;
        inp.g_blh = inp.g_blh.clone() * 0.01;
        let (o_ref, s_ref) = delta_recurrent(inp.clone(), init.clone());
        let (o, s) = delta_chunked(inp, init, 64);
        assert_close(&o, &o_ref, 1e-4, "o");
        assert_close(&s, &s_ref, 1e-4, "state");
    }

    #[test]
    fn segments_compose() {
        let (inp, init) = inputs(1, 23, 2, 99);
        let (o_all, s_all) = delta_chunked(inp.clone(), init.clone(), 4);
        let (o1, s1) = delta_chunked(inp.narrow(0, 10), init, 4);
        let (o2, s2) = delta_chunked(inp.narrow(10, 13), s1, 4);
        assert_close(&Tensor::cat(vec![o1, o2], 1), &o_all, 1e-5, "o");
        assert_close(&s2, &s_all, 1e-5, "state");
    }
}
