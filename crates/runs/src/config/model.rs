//! The architecture as configuration: sizes, derived dimensions, the recurrent state size N_S
//! and the parameter count, for each recurrent mixer (Mamba-2 by default, Gated DeltaNet).
//!
//! It lives here, not in the model crate, because the sweep planner and the dashboard must
//! report N_S for runs without linking burn.
//!
//! The Mamba-2 settings sit directly in `[model]` (older run directories keep parsing); a Gated
//! DeltaNet model sets `mixer = "gated-deltanet"` and gives its sizes in
//! `[model.gated_deltanet]`. What both mixers share (widths, depth, vocabulary, norm eps, conv
//! width, chunk length, the decay-gate initialisation) is read from the same keys.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

/// A recurrent language model's hyper-parameters (Mamba-2 names follow `mamba_ssm`'s
/// `Mamba2`; Gated DeltaNet's follow fla's `GatedDeltaNetConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Mamba-2: SSM state dimension N per head.
    #[serde(default = "defaults::d_state")]
    pub d_state: usize,
    /// Mamba-2: head dimension P.
    #[serde(default = "defaults::headdim")]
    pub headdim: usize,
    /// Mamba-2: d_inner = expand * d_model.
    #[serde(default = "defaults::expand")]
    pub expand: usize,
    /// Mamba-2: number of B/C groups G (heads in a group share B and C).
    #[serde(default = "defaults::one")]
    pub ngroups: usize,
    /// Width of the depthwise causal (short) convolutions.
    #[serde(default = "defaults::d_conv")]
    pub d_conv: usize,
    /// Block length Q of the chunked training form (does not change the function computed; the
    /// CPU Mamba-2 kernel caps it at 64, its fastest, so larger values only matter on GPUs).
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
    /// Smallest initial step size dt (Mamba-2 Δ; Gated DeltaNet's gate likewise).
    #[serde(default = "defaults::dt_min")]
    pub dt_min: f64,
    /// Largest initial step size dt.
    #[serde(default = "defaults::dt_max")]
    pub dt_max: f64,
    /// Initial dt values are floored at this.
    #[serde(default = "defaults::dt_init_floor")]
    pub dt_init_floor: f64,
    /// Mamba-2: dt is clamped into [lo, hi] after the softplus (`[0.0, inf]` = no clamp). JSON has no
    /// infinity: there an unbounded upper end is written `null` (also read: `"inf"`).
    #[serde(default = "defaults::dt_limit", with = "unbounded_pair")]
    pub dt_limit: (f64, f64),
    /// A is initialised as -U[lo, hi] (stored as A_log = log U[lo, hi]).
    #[serde(rename = "A_init_range", default = "defaults::a_init_range")]
    pub a_init_range: (f64, f64),
    /// Mamba-2: bias on the depthwise convolution.
    #[serde(default = "defaults::yes")]
    pub conv_bias: bool,
    /// Mamba-2: bias on in_proj and out_proj.
    #[serde(default)]
    pub bias: bool,
    /// The recurrent mixer of every block.
    #[serde(default, skip_serializing_if = "MixerKind::is_mamba2")]
    pub mixer: MixerKind,
    /// Gated DeltaNet's own sizes (`[model.gated_deltanet]`), only with that mixer; its
    /// defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gated_deltanet: Option<GatedDeltaNetConfig>,
}

/// Which recurrent mixer a model's blocks run (ordered as reports list them).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum MixerKind {
    /// Mamba-2's selective SSM (state-spaces/mamba): forgets by a scalar decay per head.
    #[default]
    #[serde(rename = "mamba2")]
    Mamba2,
    /// Gated DeltaNet (Yang, Kautz, Hatamizadeh 2025; fla): forgets by decay and by the delta
    /// rule's overwriting, S_t = α_t S_{t-1} (I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ.
    #[serde(rename = "gated-deltanet")]
    GatedDeltaNet,
}

/// `[model]` keys that only Mamba-2 reads. A Gated DeltaNet config must leave them at their
/// defaults, and a sweep names its Gated DeltaNet runs without them.
pub const MAMBA2_ONLY_KEYS: &[&str] = &[
    "d_state",
    "headdim",
    "expand",
    "ngroups",
    "dt_limit",
    "conv_bias",
    "bias",
];

impl MixerKind {
    /// Every mixer, in the order reports list them.
    pub const ALL: [MixerKind; 2] = [MixerKind::Mamba2, MixerKind::GatedDeltaNet];

    /// The name readers see in figures and reports: "Mamba-2", "Gated DeltaNet".
    pub fn label(&self) -> &'static str {
        match self {
            MixerKind::Mamba2 => "Mamba-2",
            MixerKind::GatedDeltaNet => "Gated DeltaNet",
        }
    }

    /// Whether this is the default mixer (its key is then left out of written configs, so
    /// Mamba-2 configs read and hash as they did before there was a choice).
    pub fn is_mamba2(&self) -> bool {
        *self == MixerKind::Mamba2
    }

    /// The name used in configs and reports.
    pub fn name(&self) -> &'static str {
        match self {
            MixerKind::Mamba2 => "mamba2",
            MixerKind::GatedDeltaNet => "gated-deltanet",
        }
    }
}

/// Gated DeltaNet's sizes (names follow fla's `GatedDeltaNetConfig`). Each block is
/// `x + mixer(norm(x))`, then `x + mlp(norm(x))` with a SwiGLU MLP, as in fla.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatedDeltaNetConfig {
    /// Heads H (fla `num_heads`).
    pub heads: usize,
    /// Query and key width per head d_k (fla `head_dim`).
    pub head_k_dim: usize,
    /// Value width per head d_v = expand_v * d_k (fla `expand_v`).
    pub expand_v: f64,
    /// Hidden width of the SwiGLU MLP after each mixer; absent: fla's default
    /// (d_model * 4 * 2/3 rounded up to a multiple of 256); 0: no MLP (blocks like Mamba-2's).
    pub intermediate_size: Option<usize>,
}

impl Default for GatedDeltaNetConfig {
    fn default() -> Self {
        Self {
            heads: 6,
            head_k_dim: 256,
            expand_v: 2.0,
            intermediate_size: None,
        }
    }
}

impl GatedDeltaNetConfig {
    /// Value width per head d_v.
    pub fn head_v_dim(&self) -> usize {
        (self.head_k_dim as f64 * self.expand_v) as usize
    }

    /// Query and key channels H * d_k.
    pub fn key_dim(&self) -> usize {
        self.heads * self.head_k_dim
    }

    /// Value channels H * d_v.
    pub fn value_dim(&self) -> usize {
        self.heads * self.head_v_dim()
    }

    /// The MLP's hidden width for a residual stream of `d_model` (0: no MLP).
    pub fn mlp_width(&self, d_model: usize) -> usize {
        self.intermediate_size.unwrap_or_else(|| {
            let raw = d_model * 4 * 2 / 3;
            raw.div_ceil(256) * 256
        })
    }
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
    /// N_S = recurrent states plus conv caches, over all layers. Mamba-2:
    /// n_layer * (H*P*N + (d_inner + 2*G*N)*(d_conv - 1)), the definition consistent with every
    /// point plotted in the paper. Gated DeltaNet: n_layer * (H*d_k*d_v + (2*H*d_k +
    /// H*d_v)*(d_conv - 1)).
    pub total: u64,
    /// The recurrent (SSM or delta-rule) states alone: n_layer * H*P*N, or n_layer * H*d_k*d_v.
    pub ssm: u64,
    /// The depthwise-convolution caches.
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
            mixer: MixerKind::Mamba2,
            gated_deltanet: None,
        }
    }

    /// A Gated DeltaNet config with `sizes`, every shared field at its default.
    pub fn gated_deltanet(
        d_model: usize,
        n_layer: usize,
        vocab_size: usize,
        sizes: GatedDeltaNetConfig,
    ) -> Self {
        Self {
            mixer: MixerKind::GatedDeltaNet,
            gated_deltanet: Some(sizes),
            ..Self::new(d_model, n_layer, vocab_size)
        }
    }

    /// Gated DeltaNet's sizes (its defaults when the table is absent); `None` for Mamba-2.
    pub fn gated_deltanet_sizes(&self) -> Option<GatedDeltaNetConfig> {
        match self.mixer {
            MixerKind::Mamba2 => None,
            MixerKind::GatedDeltaNet => Some(self.gated_deltanet.clone().unwrap_or_default()),
        }
    }

    /// d_inner = expand * d_model.
    pub fn d_inner(&self) -> usize {
        self.expand * self.d_model
    }

    /// Heads of the recurrence: Mamba-2's H = d_inner / headdim, or Gated DeltaNet's heads.
    pub fn nheads(&self) -> usize {
        match self.gated_deltanet_sizes() {
            Some(sizes) => sizes.heads,
            None => self.d_inner() / self.headdim.max(1),
        }
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
        let (ssm, conv_channels) = match self.gated_deltanet_sizes() {
            Some(g) => (
                g.heads * g.head_k_dim * g.head_v_dim(),
                2 * g.key_dim() + g.value_dim(),
            ),
            None => (self.nheads() * self.headdim * self.d_state, self.conv_dim()),
        };
        let ssm = layers * ssm as u64;
        let conv = layers * (conv_channels * self.d_conv.saturating_sub(1)) as u64;
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
        let head = if self.tie_embeddings { 0 } else { v * d };
        if let Some(g) = self.gated_deltanet_sizes() {
            let (h, key, value) = (g.heads as u64, g.key_dim() as u64, g.value_dim() as u64);
            let mlp = g.mlp_width(self.d_model) as u64;
            let mixer = d * (2 * key + 2 * value + 2 * h) // q, k, v, g, a, b projections
                + 2 * h // A_log, dt_bias
                + (2 * key + value) * self.d_conv as u64 // short convolutions
                + g.head_v_dim() as u64 // output norm
                + value * d; // o_proj
            let mlp_block = if mlp == 0 { 0 } else { d + 3 * d * mlp };
            let per_layer = d + mixer + mlp_block;
            return v * d + self.n_layer as u64 * per_layer + d + head;
        }
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
        v * d + self.n_layer as u64 * per_layer + d + head
    }

    /// Checks that the sizes fit together; the error names the offending key.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.validate_shared()?;
        match self.mixer {
            MixerKind::Mamba2 => self.validate_mamba2(),
            MixerKind::GatedDeltaNet => self.validate_gated_deltanet(),
        }
    }

    /// What every mixer reads: widths, vocabulary, conv width, chunk, norm eps, gate init.
    fn validate_shared(&self) -> Result<(), Invalid> {
        let positive = [
            ("d_model", self.d_model),
            ("n_layer", self.n_layer),
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
        let (lo, hi) = self.a_init_range;
        if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
            return Err(Invalid::new(
                "model.A_init_range",
                format!("need 0 < lo <= hi < inf, got [{lo}, {hi}]"),
            ));
        }
        Ok(())
    }

    /// Gated DeltaNet's sizes, and no Mamba-2-only setting changed from its default (it
    /// would be silently ignored, and a run labelled by it would be mislabelled).
    fn validate_gated_deltanet(&self) -> Result<(), Invalid> {
        let defaults = Self::new(self.d_model, self.n_layer, self.vocab_size);
        let mamba2_only = [
            ("d_state", self.d_state != defaults.d_state),
            ("headdim", self.headdim != defaults.headdim),
            ("expand", self.expand != defaults.expand),
            ("ngroups", self.ngroups != defaults.ngroups),
            ("dt_limit", self.dt_limit != defaults.dt_limit),
            ("conv_bias", self.conv_bias != defaults.conv_bias),
            ("bias", self.bias != defaults.bias),
        ];
        debug_assert!(
            mamba2_only
                .iter()
                .map(|(k, _)| *k)
                .eq(MAMBA2_ONLY_KEYS.iter().copied())
        );
        if let Some((key, _)) = mamba2_only.iter().find(|(_, changed)| *changed) {
            return Err(Invalid::new(
                format!("model.{key}"),
                "a Mamba-2 setting, but mixer = \"gated-deltanet\" (its sizes go in [model.gated_deltanet])",
            ));
        }
        let sizes = self.gated_deltanet.clone().unwrap_or_default();
        for (key, value) in [("heads", sizes.heads), ("head_k_dim", sizes.head_k_dim)] {
            if value == 0 {
                return Err(Invalid::new(
                    format!("model.gated_deltanet.{key}"),
                    "must be at least 1",
                ));
            }
        }
        let v = sizes.head_k_dim as f64 * sizes.expand_v;
        if !(v >= 1.0 && v.fract() == 0.0) {
            return Err(Invalid::new(
                "model.gated_deltanet.expand_v",
                format!(
                    "head_k_dim * expand_v = {v} must be a whole number of channels (at least 1)"
                ),
            ));
        }
        Ok(())
    }

    /// Mamba-2's sizes, and no Gated DeltaNet table.
    fn validate_mamba2(&self) -> Result<(), Invalid> {
        if self.gated_deltanet.is_some() {
            return Err(Invalid::new(
                "model.gated_deltanet",
                "Gated DeltaNet sizes, but mixer = \"mamba2\" (set mixer = \"gated-deltanet\" or remove the table)",
            ));
        }
        let positive = [
            ("d_state", self.d_state),
            ("headdim", self.headdim),
            ("expand", self.expand),
            ("ngroups", self.ngroups),
            ("d_state", self.d_state),
            ("headdim", self.headdim),
            ("expand", self.expand),
            ("ngroups", self.ngroups),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(Invalid::new(format!("model.{key}"), "must be at least 1"));
            }
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
        let (lo, hi) = self.dt_limit;
        if lo.is_nan() || hi.is_nan() || lo < 0.0 || lo >= hi {
            return Err(Invalid::new(
                "model.dt_limit",
                format!("need 0 <= lo < hi, got [{lo}, {hi}]"),
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

    /// The fixture's fla model (../shared/fixtures/gated-deltanet-tiny): 91,960 parameters.
    fn fla_tiny() -> ModelConfig {
        let mut c = ModelConfig::gated_deltanet(
            48,
            2,
            300,
            GatedDeltaNetConfig {
                heads: 2,
                head_k_dim: 16,
                expand_v: 2.0,
                intermediate_size: Some(128),
            },
        );
        c.pad_vocab_size_multiple = 1;
        c.tie_embeddings = false;
        c
    }

    #[test]
    fn gated_deltanet_counts_match_fla() {
        let c = fla_tiny();
        c.validate().unwrap();
        assert_eq!(c.param_count(), 91_960);
        let s = c.state_size();
        assert_eq!(s.ssm, 2 * 2 * 16 * 32);
        assert_eq!(s.conv, 2 * (32 + 32 + 64) * 3);
        assert_eq!(c.nheads(), 2);
        let mut no_mlp = c.clone();
        no_mlp.gated_deltanet.as_mut().unwrap().intermediate_size = Some(0);
        assert_eq!(no_mlp.param_count(), 91_960 - 2 * (48 + 3 * 48 * 128));
        // fla's default MLP width: 48 * 4 * 2/3 = 128, rounded up to 256.
        assert_eq!(GatedDeltaNetConfig::default().mlp_width(48), 256);
    }

    #[test]
    fn mixer_choice_parses_and_mamba2_configs_serialise_as_before() {
        let text = "d_model = 48\nn_layer = 2\nvocab_size = 300\nmixer = \"gated-deltanet\"\n\
                    [gated_deltanet]\nheads = 2\nhead_k_dim = 16\nintermediate_size = 128\n";
        let c: ModelConfig = toml::from_str(text).unwrap();
        assert_eq!(c.mixer, MixerKind::GatedDeltaNet);
        assert_eq!(c.gated_deltanet_sizes().unwrap().head_v_dim(), 32);
        let back: ModelConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let mamba = ModelConfig::new(64, 2, 256);
        let json = serde_json::to_string(&mamba).unwrap();
        assert!(
            !json.contains("mixer") && !json.contains("gated_deltanet"),
            "{json}"
        );
        let unknown = "d_model = 8\nn_layer = 1\nvocab_size = 9\nmixer = \"gated-deltanet\"\n\
                       [gated_deltanet]\nhead_dim = 4\n";
        let err = toml::from_str::<ModelConfig>(unknown)
            .unwrap_err()
            .to_string();
        assert!(err.contains("head_dim"), "{err}");
    }

    #[test]
    fn settings_of_the_other_mixer_are_refused() {
        let mut c = fla_tiny();
        c.d_state = 64;
        assert_eq!(c.validate().unwrap_err().key, "model.d_state");
        let mut c = fla_tiny();
        c.gated_deltanet.as_mut().unwrap().expand_v = 0.3;
        assert_eq!(
            c.validate().unwrap_err().key,
            "model.gated_deltanet.expand_v"
        );
        let mut c = ModelConfig::new(64, 2, 256);
        c.headdim = 16;
        c.gated_deltanet = Some(GatedDeltaNetConfig::default());
        assert_eq!(c.validate().unwrap_err().key, "model.gated_deltanet");
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
