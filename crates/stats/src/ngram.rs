//! A count n-gram language model: the position-matched baseline.
//!
//! Text difficulty varies with position inside a window (a document start is easier than its
//! middle), so a raw loss curve can rise past T_train even in a model that forgets well. An
//! n-gram model has a bounded context of `order - 1` tokens, so it cannot forget or fail to
//! forget; its per-position loss on the *same* windows measures how hard the text at each
//! position is, and `model - n-gram` isolates what the model does with long context.
//!
//! Smoothing is interpolated modified Kneser-Ney (Chen & Goodman 1998): three discounts per
//! order (for counts 1, 2 and 3+) estimated from count-of-counts, continuation counts for the
//! lower orders, and a uniform distribution over the known vocabulary at the bottom, so every
//! token, seen or not, has a finite loss:
//!
//! ```text
//! P_k(w | h) = max(c_k(h w) - D_k(c), 0) / c_k(h .)  +  gamma_k(h) P_{k-1}(w | h')
//! gamma_k(h) = (D_k1 N1(h .) + D_k2 N2(h .) + D_k3+ N3+(h .)) / c_k(h .)
//! P_0(w)     = 1 / V
//! ```
//!
//! `c_n` are raw counts; `c_k` for `k < n` are continuation counts N1+(. h w). A context never
//! seen at order `k` backs off entirely to order `k - 1`. The first `k`-gram of each training
//! sequence has no left neighbour and so no continuation count (no sentence-start symbol is
//! used); with millions of tokens this is negligible.
//!
//! Loss convention (shared with [`crate::bucket`]): for a window of `L` tokens the losses have
//! `L - 1` entries, and entry `p` is `-ln P(window[p + 1] | window[..=p])`, the context
//! truncated to the last `order - 1` tokens.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// Why an n-gram model could not be fitted or used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NgramError {
    #[error("n-gram order must be at least 1")]
    ZeroOrder,
    #[error("vocabulary size must be at least 2, got {0}")]
    TinyVocab(usize),
    #[error(
        "order {order} with a vocabulary of {vocab_size} ({bits} bits per token) does not fit \
         the 128-bit n-gram key; the largest order for this vocabulary is {max_order}"
    )]
    OrderTooLarge {
        order: usize,
        vocab_size: usize,
        bits: u32,
        max_order: usize,
    },
    #[error(
        "{what}: token id {token} at position {position} is outside the vocabulary of {vocab_size}"
    )]
    TokenOutOfVocab {
        what: String,
        token: u32,
        position: usize,
        vocab_size: usize,
    },
    #[error("no training sequence is long enough to hold a single {order}-gram")]
    NoData { order: usize },
}

/// Per-context statistics at one order.
#[derive(Debug, Clone, Copy)]
struct ContextStats {
    /// Sum of the (continuation) counts of all words after this context.
    total: f64,
    /// gamma(h): the probability mass handed to the lower order.
    backoff: f64,
}

/// One order's counts, context statistics and discounts.
#[derive(Debug, Clone)]
struct Level {
    /// Packed `(context, word)` -> count (raw at the top order, continuation below).
    counts: FxHashMap<u128, u32>,
    /// Packed context -> statistics.
    contexts: FxHashMap<u128, ContextStats>,
    /// Discounts for counts 1, 2 and 3+.
    discounts: [f64; 3],
}

impl Level {
    fn discount(&self, count: u32) -> f64 {
        match count {
            0 => 0.0,
            1 => self.discounts[0],
            2 => self.discounts[1],
            _ => self.discounts[2],
        }
    }
}

/// Sizes of a fitted model, for logs.
#[derive(Debug, Clone, PartialEq)]
pub struct NgramStats {
    pub order: usize,
    pub vocab_size: usize,
    pub training_tokens: u64,
    /// Distinct n-grams per order (index 0 = unigrams).
    pub ngrams: Vec<usize>,
    /// Discounts (D1, D2, D3+) per order.
    pub discounts: Vec<[f64; 3]>,
}

/// An interpolated modified Kneser-Ney n-gram model over token ids `< vocab_size`.
#[derive(Debug, Clone)]
pub struct NgramModel {
    order: usize,
    vocab_size: usize,
    bits: u32,
    training_tokens: u64,
    /// `levels[k - 1]` is order `k`.
    levels: Vec<Level>,
}

impl NgramModel {
    /// Fits on training sequences (n-grams never cross a sequence boundary). For a token
    /// stream that is already concatenated with EOS separators, pass it as one sequence.
    pub fn fit<'a, I>(order: usize, vocab_size: usize, sequences: I) -> Result<Self, NgramError>
    where
        I: IntoIterator<Item = &'a [u32]>,
    {
        let bits = key_bits(order, vocab_size)?;
        let mut top: FxHashMap<u128, u32> = FxHashMap::default();
        let mut training_tokens = 0u64;
        for (seq_index, seq) in sequences.into_iter().enumerate() {
            check_tokens(seq, vocab_size, || format!("training sequence {seq_index}"))?;
            training_tokens += seq.len() as u64;
            if seq.len() < order {
                continue;
            }
            let mask = low_mask(bits * order as u32);
            let mut key = pack(&seq[..order - 1], bits);
            for &token in &seq[order - 1..] {
                key = ((key << bits) | token as u128) & mask;
                *top.entry(key).or_insert(0) += 1;
            }
        }
        if top.is_empty() {
            return Err(NgramError::NoData { order });
        }
        // Continuation counts, from the top order down: N1+(. g) = distinct left extensions.
        let mut counts_by_order: Vec<FxHashMap<u128, u32>> = vec![top];
        for k in (1..order).rev() {
            let above = counts_by_order
                .last()
                .map(|m| m.keys())
                .into_iter()
                .flatten();
            let mask = low_mask(bits * k as u32);
            let mut level: FxHashMap<u128, u32> = FxHashMap::default();
            for &key in above {
                *level.entry(key & mask).or_insert(0) += 1;
            }
            counts_by_order.push(level);
        }
        counts_by_order.reverse();
        let levels = counts_by_order
            .into_iter()
            .map(|counts| build_level(counts, bits))
            .collect();
        Ok(Self {
            order,
            vocab_size,
            bits,
            training_tokens,
            levels,
        })
    }

    pub fn order(&self) -> usize {
        self.order
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Sizes and discounts, for logs.
    pub fn stats(&self) -> NgramStats {
        NgramStats {
            order: self.order,
            vocab_size: self.vocab_size,
            training_tokens: self.training_tokens,
            ngrams: self.levels.iter().map(|l| l.counts.len()).collect(),
            discounts: self.levels.iter().map(|l| l.discounts).collect(),
        }
    }

    /// P(token | context), using at most the last `order - 1` tokens of `context`. Token ids
    /// must be below the vocabulary size (checked by the public loss functions).
    pub fn prob(&self, context: &[u32], token: u32) -> f64 {
        let usable = context.len().min(self.order - 1);
        let context = &context[context.len() - usable..];
        let mut p = 1.0 / self.vocab_size as f64;
        let mut ctx_key: u128 = 0;
        for k in 1..=usable + 1 {
            // Order k uses the last k - 1 context tokens.
            if k > 1 {
                let t = context[usable - (k - 1)] as u128;
                ctx_key |= t << (self.bits * (k as u32 - 2));
            }
            let level = &self.levels[k - 1];
            let Some(stats) = level.contexts.get(&ctx_key) else {
                break;
            };
            let count = level
                .counts
                .get(&((ctx_key << self.bits) | token as u128))
                .copied()
                .unwrap_or(0);
            let discounted = (count as f64 - level.discount(count)).max(0.0);
            p = discounted / stats.total + stats.backoff * p;
        }
        p
    }

    /// Per-position log-loss (nats) of a window: `window.len() - 1` entries.
    pub fn losses(&self, window: &[u32]) -> Result<Vec<f32>, NgramError> {
        let mut out = Vec::with_capacity(window.len().saturating_sub(1));
        self.losses_into(window, &mut out)?;
        Ok(out)
    }

    /// Like [`NgramModel::losses`], appending to `out` (cleared first).
    pub fn losses_into(&self, window: &[u32], out: &mut Vec<f32>) -> Result<(), NgramError> {
        check_tokens(window, self.vocab_size, || "scored window".to_string())?;
        out.clear();
        for p in 1..window.len() {
            let lo = p.saturating_sub(self.order - 1);
            let prob = self.prob(&window[lo..p], window[p]);
            out.push((-prob.ln()) as f32);
        }
        Ok(())
    }

    /// Per-position losses of many windows, in parallel.
    pub fn losses_many(&self, windows: &[&[u32]]) -> Result<Vec<Vec<f32>>, NgramError> {
        windows
            .par_iter()
            .enumerate()
            .map(|(i, w)| {
                self.losses(w).map_err(|e| match e {
                    NgramError::TokenOutOfVocab {
                        token,
                        position,
                        vocab_size,
                        ..
                    } => NgramError::TokenOutOfVocab {
                        what: format!("window {i}"),
                        token,
                        position,
                        vocab_size,
                    },
                    other => other,
                })
            })
            .collect()
    }
}

/// Bits per token and a check that `order` tokens fit a 128-bit key.
fn key_bits(order: usize, vocab_size: usize) -> Result<u32, NgramError> {
    if order == 0 {
        return Err(NgramError::ZeroOrder);
    }
    if vocab_size < 2 {
        return Err(NgramError::TinyVocab(vocab_size));
    }
    let bits = usize::BITS - (vocab_size - 1).leading_zeros();
    let max_order = (128 / bits) as usize;
    if order > max_order {
        return Err(NgramError::OrderTooLarge {
            order,
            vocab_size,
            bits,
            max_order,
        });
    }
    Ok(bits)
}

fn low_mask(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// Packs tokens, first token in the highest bits.
fn pack(tokens: &[u32], bits: u32) -> u128 {
    tokens
        .iter()
        .fold(0u128, |key, &t| (key << bits) | t as u128)
}

fn check_tokens(
    tokens: &[u32],
    vocab_size: usize,
    what: impl FnOnce() -> String,
) -> Result<(), NgramError> {
    match tokens.iter().position(|&t| t as usize >= vocab_size) {
        Some(position) => Err(NgramError::TokenOutOfVocab {
            what: what(),
            token: tokens[position],
            position,
            vocab_size,
        }),
        None => Ok(()),
    }
}

/// Discounts and per-context statistics of one order from its counts.
fn build_level(counts: FxHashMap<u128, u32>, bits: u32) -> Level {
    let mut count_of_counts = [0u64; 4];
    for &c in counts.values() {
        if (1..=4).contains(&c) {
            count_of_counts[c as usize - 1] += 1;
        }
    }
    let discounts = modified_kn_discounts(count_of_counts);
    // Per context: total count and the numbers of words seen once, twice, 3+ times.
    let mut per_context: FxHashMap<u128, (u64, [u32; 3])> = FxHashMap::default();
    for (&key, &c) in &counts {
        let entry = per_context.entry(key >> bits).or_insert((0, [0; 3]));
        entry.0 += c as u64;
        entry.1[(c.min(3) - 1) as usize] += 1;
    }
    let contexts = per_context
        .into_iter()
        .map(|(ctx, (total, n))| {
            let mass: f64 = (0..3).map(|i| discounts[i] * n[i] as f64).sum();
            let total = total as f64;
            (
                ctx,
                ContextStats {
                    total,
                    backoff: mass / total,
                },
            )
        })
        .collect();
    Level {
        counts,
        contexts,
        discounts,
    }
}

/// Smallest discount used, so that every level hands some mass down and the uniform floor
/// keeps every token's probability positive.
const MIN_DISCOUNT: f64 = 1e-3;
/// Absolute discount used when count-of-counts are too sparse for the estimate.
const FALLBACK_DISCOUNT: f64 = 0.75;

/// Chen & Goodman's estimates from n1..n4 (numbers of n-grams seen exactly 1..4 times):
/// Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3, each
/// clamped to [MIN_DISCOUNT, c] so that no count is discounted below zero.
pub fn modified_kn_discounts(n: [u64; 4]) -> [f64; 3] {
    let [n1, n2, n3, n4] = n.map(|v| v as f64);
    let raw = if n1 > 0.0 && n2 > 0.0 && n3 > 0.0 && n4 > 0.0 {
        let y = n1 / (n1 + 2.0 * n2);
        [
            1.0 - 2.0 * y * n2 / n1,
            2.0 - 3.0 * y * n3 / n2,
            3.0 - 4.0 * y * n4 / n3,
        ]
    } else {
        [FALLBACK_DISCOUNT; 3]
    };
    [
        raw[0].clamp(MIN_DISCOUNT, 1.0),
        raw[1].clamp(MIN_DISCOUNT, 2.0),
        raw[2].clamp(MIN_DISCOUNT, 3.0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A toy "language": a random walk over a small transition table, so trigrams matter.
    fn markov_tokens(n: usize, vocab: u32, seed: u64) -> Vec<u32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = vec![0u32, 1];
        while out.len() < n {
            let a = out[out.len() - 2];
            let b = out[out.len() - 1];
            // A successor fixed by the last token, or by the last two, or random.
            let u: f64 = rng.random();
            let next = if u < 0.4 {
                (b * 3 + 1) % vocab
            } else if u < 0.8 {
                (a * 7 + b * 5 + 2) % vocab
            } else {
                rng.random_range(0..vocab)
            };
            out.push(next);
        }
        out
    }

    #[test]
    fn probabilities_sum_to_one_over_the_vocabulary() {
        let vocab = 40;
        let tokens = markov_tokens(5000, 30, 1); // ids 30..40 never seen
        for order in 1..=4 {
            let model = NgramModel::fit(order, vocab, [tokens.as_slice()]).unwrap();
            for context in [
                vec![],
                vec![3],
                vec![5, 9],
                vec![1, 2, 3],
                vec![35, 36],
                vec![0, 39, 1],
            ] {
                let total: f64 = (0..vocab as u32).map(|w| model.prob(&context, w)).sum();
                assert!(
                    (total - 1.0).abs() < 1e-9,
                    "order {order} ctx {context:?}: {total}"
                );
            }
        }
    }

    #[test]
    fn unseen_tokens_and_contexts_have_finite_loss() {
        let tokens = markov_tokens(2000, 20, 2);
        let model = NgramModel::fit(3, 1000, [tokens.as_slice()]).unwrap();
        let losses = model.losses(&[999, 998, 5, 997, 3]).unwrap();
        assert_eq!(losses.len(), 4);
        assert!(
            losses.iter().all(|l| l.is_finite() && *l > 0.0),
            "{losses:?}"
        );
        // An unseen token costs more than log V would only if it were impossible; it must be
        // bounded by the uniform floor scaled by the backoff masses, so well under 100 nats.
        assert!(losses.iter().all(|l| *l < 100.0));
        assert!(model.losses(&[1, 1000]).is_err());
    }

    #[test]
    fn longer_context_helps_on_structured_text() {
        let train = markov_tokens(200_000, 50, 3);
        let test = markov_tokens(20_000, 50, 4);
        let mean = |order| {
            let model = NgramModel::fit(order, 50, [train.as_slice()]).unwrap();
            let l = model.losses(&test).unwrap();
            l.iter().map(|&x| x as f64).sum::<f64>() / l.len() as f64
        };
        let (uni, bi, tri) = (mean(1), mean(2), mean(3));
        assert!(
            uni > bi && bi > tri,
            "unigram {uni} bigram {bi} trigram {tri}"
        );
        // Given two tokens the source has two likely successors (0.404 each) and 48 others
        // (0.004 each): its entropy is the best any model can do, and the trigram model has
        // the right context to get close to it.
        let entropy = -2.0 * 0.404 * 0.404f64.ln() - 48.0 * 0.004 * 0.004f64.ln();
        assert!(
            tri > entropy - 0.05 && tri < entropy + 0.05,
            "trigram {tri}, entropy {entropy}"
        );
        assert!(uni > 3.0, "unigram loss {uni}");
    }

    #[test]
    fn window_start_uses_shorter_context_and_sequences_do_not_join() {
        let model = NgramModel::fit(3, 10, [&[1u32, 2, 3][..], &[4, 5, 6][..]]).unwrap();
        // Only the trigrams (1, 2, 3) and (4, 5, 6) exist; joined sequences would add
        // (2, 3, 4) and (3, 4, 5), making the bigram context 4 known.
        assert_eq!(model.stats().ngrams[2], 2);
        assert_eq!(model.prob(&[3, 4], 5), model.prob(&[], 5));
        assert!(model.prob(&[4, 5], 6) > model.prob(&[], 6));
        let losses = model.losses(&[1, 2, 3]).unwrap();
        assert!((losses[0] as f64 - -(model.prob(&[1], 2)).ln()).abs() < 1e-6);
        assert!((losses[1] as f64 - -(model.prob(&[1, 2], 3)).ln()).abs() < 1e-6);
        assert!(model.losses(&[7]).unwrap().is_empty());
    }

    #[test]
    fn discounts_follow_chen_goodman_and_stay_in_range() {
        let d = modified_kn_discounts([100, 40, 20, 10]);
        let y = 100.0 / 180.0;
        assert!((d[0] - (1.0 - 2.0 * y * 0.4)).abs() < 1e-12);
        assert!((d[1] - (2.0 - 3.0 * y * 0.5)).abs() < 1e-12);
        assert!((d[2] - (3.0 - 4.0 * y * 0.5)).abs() < 1e-12);
        assert_eq!(modified_kn_discounts([0, 0, 5, 5]), [0.75; 3]);
        let odd = modified_kn_discounts([1, 1, 1000, 1]);
        assert!(odd[1] >= MIN_DISCOUNT && odd[1] <= 2.0);
    }

    #[test]
    fn bad_configurations_are_rejected() {
        let t = [1u32, 2, 3];
        assert_eq!(
            NgramModel::fit(0, 10, [&t[..]]).unwrap_err(),
            NgramError::ZeroOrder
        );
        assert_eq!(
            NgramModel::fit(2, 1, [&t[..]]).unwrap_err(),
            NgramError::TinyVocab(1)
        );
        assert!(matches!(
            NgramModel::fit(9, 50288, [&t[..]]).unwrap_err(),
            NgramError::OrderTooLarge { max_order: 8, .. }
        ));
        assert_eq!(
            NgramModel::fit(4, 10, [&t[..]]).unwrap_err(),
            NgramError::NoData { order: 4 }
        );
        let err = NgramModel::fit(2, 3, [&t[..]]).unwrap_err();
        assert!(
            err.to_string().contains("token id 3 at position 2"),
            "{err}"
        );
    }

    #[test]
    fn parallel_scoring_matches_sequential() {
        let train = markov_tokens(50_000, 64, 5);
        let model = NgramModel::fit(3, 64, [train.as_slice()]).unwrap();
        let test = markov_tokens(4000, 64, 6);
        let windows: Vec<&[u32]> = test.chunks(1000).collect();
        let many = model.losses_many(&windows).unwrap();
        for (w, l) in windows.iter().zip(&many) {
            assert_eq!(&model.losses(w).unwrap(), l);
        }
        let bad: Vec<&[u32]> = vec![&test[..10], &[1, 2, 64]];
        let err = model.losses_many(&bad).unwrap_err();
        assert!(err.to_string().starts_with("window 1:"), "{err}");
    }

    /// Fit on 2M tokens of a 50K vocabulary and score 1M positions; prints the timings.
    #[test]
    fn fit_and_score_at_realistic_size() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // Zipf-ish ids from a 50K vocabulary.
        let zipf = |rng: &mut ChaCha8Rng| -> u32 {
            let u: f64 = rng.random_range(1e-9..1.0);
            ((50_000.0f64).powf(u) as u32).min(50_287)
        };
        let train: Vec<u32> = (0..2_000_000).map(|_| zipf(&mut rng)).collect();
        let test: Vec<u32> = (0..1_000_000).map(|_| zipf(&mut rng)).collect();
        let t0 = std::time::Instant::now();
        let model = NgramModel::fit(3, 50_288, [train.as_slice()]).unwrap();
        let fit_s = t0.elapsed().as_secs_f64();
        let t1 = std::time::Instant::now();
        let windows: Vec<&[u32]> = test.chunks(125_000).collect();
        let losses = model.losses_many(&windows).unwrap();
        let score_s = t1.elapsed().as_secs_f64();
        let n: usize = losses.iter().map(Vec::len).sum();
        eprintln!(
            "ngram: fit 2M tokens in {fit_s:.2}s ({:?} n-grams); scored {n} positions in {score_s:.2}s",
            model.stats().ngrams
        );
        assert!(losses.iter().flatten().all(|l| l.is_finite()));
        assert!(fit_s < 30.0 && score_s < 30.0);
    }
}
