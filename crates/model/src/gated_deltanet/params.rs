//! Gated DeltaNet's parameter table (fla's names and PyTorch layouts) and the layer's and
//! MLP's side of it.
//!
//! Initialisation is forgetlab's, the same recipe as its Mamba-2 rather than fla's N(0, 0.02)
//! for every matrix: linear layers and the short convolutions PyTorch's default
//! U(±1/√fan_in), the two residual outputs (o_proj, down_proj) further divided by
//! √(residuals per layer × n_layer) as `mamba_ssm` and fla rescale them; A_log = log
//! U[A_init_range] and dt_bias the inverse softplus of a log-uniform dt, as fla does; norm
//! weights one.

use super::layer::{GatedDeltaNet, GatedDeltaNetDims};
use super::mlp::Mlp;
use crate::params::{Init, Layout, ParamRef, ParamSpec, Parameters};
use crate::weights::Source;
use forgetlab_runs::config::{GatedDeltaNetConfig, ModelConfig};

/// Bound of PyTorch's default initialisation for a fan-in.
fn default_bound(fan_in: usize) -> Init {
    Init::Uniform(1.0 / (fan_in as f64).sqrt())
}

/// Residual branches per block: the mixer, and the MLP when there is one.
fn residuals(config: &ModelConfig, sizes: &GatedDeltaNetConfig) -> f64 {
    let per_layer = if sizes.mlp_width(config.d_model) > 0 {
        2
    } else {
        1
    };
    (per_layer * config.n_layer) as f64
}

/// The layer's sizes from the model config.
pub fn dims(config: &ModelConfig, sizes: &GatedDeltaNetConfig) -> GatedDeltaNetDims {
    GatedDeltaNetDims {
        d_model: config.d_model,
        heads: sizes.heads,
        head_k_dim: sizes.head_k_dim,
        head_v_dim: sizes.head_v_dim(),
        conv_size: config.d_conv,
        chunk_size: config.chunk_size,
        norm_eps: config.norm_eps,
    }
}

/// The mixer's rows under `prefix` (`model.layers.3.attn.`), in initialisation order.
pub fn table(config: &ModelConfig, sizes: &GatedDeltaNetConfig, prefix: &str) -> Vec<ParamSpec> {
    let d = config.d_model;
    let (heads, key, value) = (sizes.heads, sizes.key_dim(), sizes.value_dim());
    let input = default_bound(d);
    let conv = |suffix: &str, channels: usize| {
        ParamSpec::new(
            prefix,
            suffix,
            vec![channels, 1, config.d_conv],
            Layout::ConvWeight,
            true,
            default_bound(config.d_conv),
        )
    };
    let scalar =
        |suffix: &str, init| ParamSpec::new(prefix, suffix, vec![heads], Layout::Same, false, init);
    let out_bound = 1.0 / (value as f64).sqrt() / residuals(config, sizes).sqrt();
    vec![
        ParamSpec::linear(prefix, "q_proj.weight", key, d, input),
        ParamSpec::linear(prefix, "k_proj.weight", key, d, input),
        ParamSpec::linear(prefix, "v_proj.weight", value, d, input),
        ParamSpec::linear(prefix, "a_proj.weight", heads, d, input),
        ParamSpec::linear(prefix, "b_proj.weight", heads, d, input),
        ParamSpec::linear(prefix, "g_proj.weight", value, d, input),
        scalar("A_log", Init::ALog),
        scalar("dt_bias", Init::DtBias),
        conv("q_conv1d.weight", key),
        conv("k_conv1d.weight", key),
        conv("v_conv1d.weight", value),
        ParamSpec::norm(prefix, "o_norm.weight", sizes.head_v_dim()),
        ParamSpec::linear(prefix, "o_proj.weight", d, value, Init::Uniform(out_bound)),
    ]
}

/// The SwiGLU MLP's rows under `prefix` (`model.layers.3.mlp.`), `width` hidden channels.
pub fn mlp_table(config: &ModelConfig, width: usize, prefix: &str) -> Vec<ParamSpec> {
    let d = config.d_model;
    let residuals = (2 * config.n_layer) as f64;
    let down = Init::Uniform(1.0 / (width as f64).sqrt() / residuals.sqrt());
    vec![
        ParamSpec::linear(prefix, "gate_proj.weight", width, d, default_bound(d)),
        ParamSpec::linear(prefix, "up_proj.weight", width, d, default_bound(d)),
        ParamSpec::linear(prefix, "down_proj.weight", d, width, down),
    ]
}

impl GatedDeltaNet {
    /// The layer from its named tensors (which [`crate::Weights::validate`] has checked).
    pub(crate) fn from_source(dims: GatedDeltaNetDims, source: &mut Source<'_>) -> Self {
        GatedDeltaNet {
            q_proj: source.linear("q_proj", false),
            k_proj: source.linear("k_proj", false),
            v_proj: source.linear("v_proj", false),
            a_proj: source.linear("a_proj", false),
            b_proj: source.linear("b_proj", false),
            g_proj: source.linear("g_proj", false),
            o_proj: source.linear("o_proj", false),
            q_conv: source.conv("q_conv1d.weight"),
            k_conv: source.conv("k_conv1d.weight"),
            v_conv: source.conv("v_conv1d.weight"),
            a_log: source.vector("A_log"),
            dt_bias: source.vector("dt_bias"),
            o_norm: source.vector("o_norm.weight"),
            dims,
        }
    }
}

impl Parameters for GatedDeltaNet {
    fn visit_parameters<'a>(&'a self, visit: &mut dyn FnMut(&str, ParamRef<'a>)) {
        let linears = [
            ("q_proj.weight", &self.q_proj),
            ("k_proj.weight", &self.k_proj),
            ("v_proj.weight", &self.v_proj),
            ("a_proj.weight", &self.a_proj),
            ("b_proj.weight", &self.b_proj),
            ("g_proj.weight", &self.g_proj),
        ];
        for (name, linear) in linears {
            visit(name, ParamRef::R2(&linear.weight));
        }
        visit("A_log", ParamRef::R1(&self.a_log));
        visit("dt_bias", ParamRef::R1(&self.dt_bias));
        visit("q_conv1d.weight", ParamRef::R2(&self.q_conv));
        visit("k_conv1d.weight", ParamRef::R2(&self.k_conv));
        visit("v_conv1d.weight", ParamRef::R2(&self.v_conv));
        visit("o_norm.weight", ParamRef::R1(&self.o_norm));
        visit("o_proj.weight", ParamRef::R2(&self.o_proj.weight));
    }
}

impl Mlp {
    /// The MLP from its named tensors.
    pub(crate) fn from_source(source: &mut Source<'_>) -> Self {
        Mlp {
            gate_proj: source.linear("gate_proj", false),
            up_proj: source.linear("up_proj", false),
            down_proj: source.linear("down_proj", false),
        }
    }
}

impl Parameters for Mlp {
    fn visit_parameters<'a>(&'a self, visit: &mut dyn FnMut(&str, ParamRef<'a>)) {
        visit("gate_proj.weight", ParamRef::R2(&self.gate_proj.weight));
        visit("up_proj.weight", ParamRef::R2(&self.up_proj.weight));
        visit("down_proj.weight", ParamRef::R2(&self.down_proj.weight));
    }
}
