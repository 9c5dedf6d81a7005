//! The Mamba-2 architecture as configuration: sizes, derived dimensions, the recurrent state
//! size N_S and the parameter count.
//!
//! It lives here, not in the model crate, because the sweep planner and the dashboard must
//! report N_S for runs without linking burn. The model crate re-exports it as `Mamba2Config`.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

/// A Mamba-2 language model's hyper-parameters (names follow `mamba_ssm`'s `Mamba2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of Mamba-2 blocks.
    pub n_layer: usize,
    /// SSM state dimension N per head.
    #[serde(default = "defaults::d_state")]
    pub d_state: usize,
    /// Head dimension P.
    #[serde(default = "defaults::headdim")]
    pub headdim: usize,
    /// d_inner = expand * d_model.
    #[serde(default = "defaults::expand")]
    pub expand: usize,
    /// Number of B/C groups G (heads in a group share B and C).
    #[serde(default = "defaults::one")]
    pub ngroups: usize,
    /// Depthwise causal convolution width.
    #[serde(default = "defaults::d_conv")]
    pub d_conv: usize,
    /// Block length Q of the chunked SSD algorithm (does not change the function computed; the
    /// CPU kernel caps it at 64, its fastest, so larger values only matter on GPUs).
    #[serde(default = "defaults::chunk_size")]
    pub chunk_size: usize,
    /// Tokenizer vocabulary size (before padding).
    pub vocab_size: usize,
    /// The embedding and LM head are padded to a multiple of this.
    #[serde(default = "defaults::pad_vocab")]
    pub pad_vocab_size_multiple: usize,
    /// Share the embedding matrix with the LM head.
    #[serde(default = "defaults::yes")]
    pub tie_embeddings: bool,
    /// RMSNorm epsilon.
    #[serde(default = "defaults::norm_eps")]
    pub norm_eps: f64,
    /// Smallest initial step size dt.
    #[serde(default = "defaults::dt_min")]
    pub dt_min: f64,
    /// Largest initial step size dt.
    #[serde(default = "defaults::dt_max")]
    pub dt_max: f64,
    /// Initial dt values are floored at this.
    #[serde(default = "defaults::dt_init_floor")]
    pub dt_init_floor: f64,
    /// dt is clamped into [lo, hi] after the softplus (`[0.0, inf]` = no clamp). JSON has no
    /// infinity: there an unbounded upper end is written `null` (also read: `"inf"`).
    #[serde(default = "defaults::dt_limit", with = "unbounded_pair")]
    pub dt_limit: (f64, f64),
    /// A is initialised as -U[lo, hi] (stored as A_log = log U[lo, hi]).
    #[serde(rename = "A_init_range", default = "defaults::a_init_range")]
    pub a_init_range: (f64, f64),
    /// Bias on the depthwise convolution.
    #[serde(default = "defaults::yes")]
    pub conv_bias: bool,
    /// Bias on in_proj and out_proj.
    #[serde(default)]
    pub bias: bool,
}

mod defaults {
    pub fn d_state() -> usize {
        128
    }
    pub fn headdim() -> usize {
        64
    }
    pub fn expand() -> usize {
        2
    }
    pub fn one() -> usize {
        1
    }
    pub fn d_conv() -> usize {
        4
    }
    pub fn chunk_size() -> usize {
        64
    }
    pub fn pad_vocab() -> usize {
        16
    }
    pub fn yes() -> bool {
        true
    }
    pub fn norm_eps() -> f64 {
        1e-5
    }
    pub fn dt_min() -> f64 {
        1e-3
    }
    pub fn dt_max() -> f64 {
        0.1
    }
    pub fn dt_init_floor() -> f64 {
        1e-4
    }
    pub fn dt_limit() -> (f64, f64) {
        (0.0, f64::INFINITY)
    }
    pub fn a_init_range() -> (f64, f64) {
        (1.0, 16.0)
    }
}

/// (lo, hi) pairs whose upper end may be infinite, in formats with and without infinity.
mod unbounded_pair {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Bound {
        Number(f64),
        Text(String),
        Null(()),
    }

    impl Bound {
        fn value<E: serde::de::Error>(self) -> Result<f64, E> {
            match self {
                Bound::Number(v) => Ok(v),
                Bound::Null(()) => Ok(f64::INFINITY),
                Bound::Text(text) => match text.trim() {
                    "inf" | "+inf" | "Infinity" => Ok(f64::INFINITY),
                    other => other
                        .parse()
                        .map_err(|_| E::custom(format!("not a number: {other:?}"))),
                },
            }
        }
    }

    pub fn serialize<S: Serializer>(pair: &(f64, f64), serializer: S) -> Result<S::Ok, S::Error> {
        pair.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(f64, f64), D::Error> {
        let (lo, hi) = <(Bound, Bound)>::deserialize(deserializer)?;
        Ok((lo.value()?, hi.value()?))
    }
}

/// The recurrent state size of a model, in scalars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSize {
    /// N_S = n_layer * (H*P*N + (d_inner + 2*G*N)*(d_conv - 1)): SSM states plus conv caches.
    /// This is the definition consistent with every point plotted in the paper.
    pub total: u64,
    /// n_layer * H*P*N: the SSM states alone.
    pub ssm: u64,
    /// n_layer * (d_inner + 2*G*N)*(d_conv - 1): the depthwise-convolution caches.
    pub conv: u64,
}

impl StateSize {
    /// N_S in millions of scalars, the unit of the paper's law.
    pub fn millions(&self) -> f64 {
        self.total as f64 / 1e6
    }
}

impl ModelConfig {
    /// A config with every optional field at its `mamba_ssm` default.
    pub fn new(d_model: usize, n_layer: usize, vocab_size: usize) -> Self {
        Self {
            d_model,
            n_layer,
            d_state: defaults::d_state(),
            headdim: defaults::headdim(),
            expand: defaults::expand(),
            ngroups: 1,
            d_conv: defaults::d_conv(),
            chunk_size: defaults::chunk_size(),
            vocab_size,
            pad_vocab_size_multiple: defaults::pad_vocab(),
            tie_embeddings: true,
            norm_eps: defaults::norm_eps(),
            dt_min: defaults::dt_min(),
            dt_max: defaults::dt_max(),
            dt_init_floor: defaults::dt_init_floor(),
            dt_limit: defaults::dt_limit(),
            a_init_range: defaults::a_init_range(),
            conv_bias: true,
            bias: false,
        }
    }

    /// d_inner = expand * d_model.
    pub fn d_inner(&self) -> usize {
        self.expand * self.d_model
    }

    /// Number of SSM heads H = d_inner / headdim.
    pub fn nheads(&self) -> usize {
        self.d_inner() / self.headdim.max(1)
    }

    /// Channels of the depthwise convolution: x, B and C.
    pub fn conv_dim(&self) -> usize {
        self.d_inner() + 2 * self.ngroups * self.d_state
    }

    /// Output width of in_proj: z | x | B | C | dt.
    pub fn d_in_proj(&self) -> usize {
        2 * self.d_inner() + 2 * self.ngroups * self.d_state + self.nheads()
    }

    /// Vocabulary rows of the embedding after padding.
    pub fn padded_vocab_size(&self) -> usize {
        let m = self.pad_vocab_size_multiple.max(1);
        self.vocab_size.div_ceil(m) * m
    }

    /// The recurrent state size N_S (see [`StateSize`]).
    pub fn state_size(&self) -> StateSize {
        let layers = self.n_layer as u64;
        let ssm = layers * (self.nheads() * self.headdim * self.d_state) as u64;
        let conv = layers * (self.conv_dim() * self.d_conv.saturating_sub(1)) as u64;
        StateSize {
            total: ssm + conv,
            ssm,
            conv,
        }
    }

    /// Number of trainable parameters (the tied LM head counted once).
    pub fn param_count(&self) -> u64 {
        let d = self.d_model as u64;
        let v = self.padded_vocab_size() as u64;
        let d_inner = self.d_inner() as u64;
        let h = self.nheads() as u64;
        let conv_dim = self.conv_dim() as u64;
        let d_in_proj = self.d_in_proj() as u64;
        let bias = u64::from(self.bias);
        let per_layer = d // block norm
            + d * d_in_proj + bias * d_in_proj
            + conv_dim * self.d_conv as u64 + u64::from(self.conv_bias) * conv_dim
            + 3 * h // dt_bias, A_log, D
            + d_inner // gated norm
            + d_inner * d + bias * d;
        let head = if self.tie_embeddings { 0 } else { v * d };
        v * d + self.n_layer as u64 * per_layer + d + head
    }

    /// Checks that the sizes fit together; the error names the offending key.
    pub fn validate(&self) -> Result<(), Invalid> {
        let positive = [
            ("d_model", self.d_model),
            ("n_layer", self.n_layer),
            ("d_state", self.d_state),
            ("headdim", self.headdim),
            ("expand", self.expand),
            ("ngroups", self.ngroups),
            ("d_conv", self.d_conv),
            ("chunk_size", self.chunk_size),
            ("vocab_size", self.vocab_size),
            ("pad_vocab_size_multiple", self.pad_vocab_size_multiple),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(Invalid::new(format!("model.{key}"), "must be at least 1"));
            }
        }
        if self.d_conv < 2 {
            return Err(Invalid::new("model.d_conv", "must be at least 2"));
        }
        if !self.d_inner().is_multiple_of(self.headdim) {
            return Err(Invalid::new(
                "model.headdim",
                format!(
                    "d_inner = expand * d_model = {} is not divisible by headdim = {}",
                    self.d_inner(),
                    self.headdim
                ),
            ));
        }
        if !self.nheads().is_multiple_of(self.ngroups) {
            return Err(Invalid::new(
                "model.ngroups",
                format!(
                    "ngroups = {} does not divide the number of heads {}",
                    self.ngroups,
                    self.nheads()
                ),
            ));
        }
        if !(self.norm_eps > 0.0 && self.norm_eps.is_finite()) {
            return Err(Invalid::new("model.norm_eps", "must be a positive number"));
        }
        if !(self.dt_min > 0.0 && self.dt_min <= self.dt_max && self.dt_max.is_finite()) {
            return Err(Invalid::new(
                "model.dt_min",
                format!(
                    "need 0 < dt_min <= dt_max < inf, got dt_min = {} and dt_max = {}",
                    self.dt_min, self.dt_max
                ),
            ));
        }
        if self.dt_init_floor < 0.0 || !self.dt_init_floor.is_finite() {
            return Err(Invalid::new(
                "model.dt_init_floor",
                "must be a finite number >= 0",
            ));
        }
        let (lo, hi) = self.dt_limit;
        if lo.is_nan() || hi.is_nan() || lo < 0.0 || lo >= hi {
            return Err(Invalid::new(
                "model.dt_limit",
                format!("need 0 <= lo < hi, got [{lo}, {hi}]"),
            ));
        }
        let (lo, hi) = self.a_init_range;
        if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
            return Err(Invalid::new(
                "model.A_init_range",
                format!("need 0 < lo <= hi < inf, got [{lo}, {hi}]"),
            ));
        }
        Ok(())
    }

    /// Whether dt is clamped after the softplus.
    pub fn has_dt_limit(&self) -> bool {
        self.dt_limit.0 > 0.0 || self.dt_limit.1.is_finite()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn official(d_model: usize, n_layer: usize) -> ModelConfig {
        ModelConfig::new(d_model, n_layer, 50277)
    }

    #[test]
    fn official_parameter_counts_match_mamba_ssm() {
        // paper.md section 8: 130M = 129.0M, 370M = 368.3M, 780M = 780.2M parameters.
        let cases = [(768, 24, 129.0), (1024, 48, 368.3), (1536, 48, 780.2)];
        for (d, l, expected) in cases {
            let got = official(d, l).param_count() as f64 / 1e6;
            assert!(
                (got - expected).abs() < 0.05,
                "{d}/{l}: {got} vs {expected}"
            );
        }
        assert_eq!(official(768, 24).padded_vocab_size(), 50288);
        assert_eq!(official(768, 24).d_in_proj(), 3352);
        assert_eq!(official(1024, 48).conv_dim(), 2304);
    }

    #[test]
    fn state_size_matches_the_plotted_points() {
        // paper.md section 1: 130M = 4.848M, 370M = 12.915M, 780M = 19.354M (conv included);
        // the SSM-only part of 370M is 12.583M.
        let cases = [(768, 24, 4.848), (1024, 48, 12.915), (1536, 48, 19.354)];
        for (d, l, expected) in cases {
            let got = official(d, l).state_size().millions();
            assert!(
                (got - expected).abs() < 0.001,
                "{d}/{l}: {got} vs {expected}"
            );
        }
        let s = official(1024, 48).state_size();
        assert_eq!(s.ssm, 48 * 32 * 64 * 128);
        assert_eq!(s.total, s.ssm + s.conv);
    }

    #[test]
    fn infinite_dt_limit_survives_json() {
        let c = ModelConfig::new(64, 2, 256);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"dt_limit\":[0.0,null]"), "{json}");
        let back: ModelConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        let toml_text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<ModelConfig>(&toml_text).unwrap(), c);
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = ModelConfig::new(64, 2, 256);
        c.headdim = 48;
        assert_eq!(c.validate().unwrap_err().key, "model.headdim");
        let mut c = ModelConfig::new(64, 2, 256);
        c.headdim = 16;
        c.ngroups = 3;
        assert_eq!(c.validate().unwrap_err().key, "model.ngroups");
        let mut c = ModelConfig::new(64, 2, 256);
        c.d_state = 0;
        assert_eq!(c.validate().unwrap_err().key, "model.d_state");
    }
}
