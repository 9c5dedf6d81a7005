//! Mamba-2's parameter table (`state-spaces/mamba` names and layouts) and the mixer's side of
//! it: building the module from named tensors and naming its fields.
//!
//! Initialisation follows `mamba_ssm` for training from scratch (paper.md section 8): linear
//! layers PyTorch's default U(±1/√fan_in) with zero biases, out_proj further divided by
//! √n_layer (one residual per layer, no MLP); the depthwise conv U(±1/√d_conv); dt_bias the
//! inverse softplus of a log-uniform dt; A_log = log U[A_init_range]; D = 1.

use super::mixer::Mamba2Mixer;
use crate::params::{Init, Layout, ParamRef, ParamSpec, Parameters};
use crate::precision::Precision;
use crate::weights::Source;
use forgetlab_runs::config::ModelConfig;

/// The mixer's rows under `prefix` (`backbone.layers.3.mixer.`), in initialisation order.
pub fn table(config: &ModelConfig, prefix: &str) -> Vec<ParamSpec> {
    let (d, d_inner, heads) = (config.d_model, config.d_inner(), config.nheads());
    let conv = Init::Uniform(1.0 / (config.d_conv as f64).sqrt());
    let out_bound = 1.0 / (d_inner as f64).sqrt() / (config.n_layer as f64).sqrt();
    let scalar =
        |suffix: &str, init| ParamSpec::new(prefix, suffix, vec![heads], Layout::Same, false, init);
    let mut rows = vec![ParamSpec::linear(
        prefix,
        "in_proj.weight",
        config.d_in_proj(),
        d,
        Init::Uniform(1.0 / (d as f64).sqrt()),
    )];
    if config.bias {
        rows.push(ParamSpec::bias(prefix, "in_proj.bias", config.d_in_proj()));
    }
    rows.push(ParamSpec::new(
        prefix,
        "conv1d.weight",
        vec![config.conv_dim(), 1, config.d_conv],
        Layout::ConvWeight,
        true,
        conv,
    ));
    if config.conv_bias {
        rows.push(ParamSpec::new(
            prefix,
            "conv1d.bias",
            vec![config.conv_dim()],
            Layout::Same,
            false,
            conv,
        ));
    }
    rows.extend([
        scalar("dt_bias", Init::DtBias),
        scalar("A_log", Init::ALog),
        scalar("D", Init::Constant(1.0)),
        ParamSpec::norm(prefix, "norm.weight", d_inner),
        ParamSpec::linear(
            prefix,
            "out_proj.weight",
            d,
            d_inner,
            Init::Uniform(out_bound),
        ),
    ]);
    if config.bias {
        rows.push(ParamSpec::bias(prefix, "out_proj.bias", d));
    }
    rows
}

impl Mamba2Mixer {
    /// The mixer from its named tensors (which [`crate::Weights::validate`] has checked).
    pub(crate) fn from_source(config: &ModelConfig, source: &mut Source<'_>) -> Self {
        Mamba2Mixer {
            in_proj: source.linear("in_proj", config.bias),
            conv_weight: source.conv("conv1d.weight"),
            conv_bias: config.conv_bias.then(|| source.vector("conv1d.bias")),
            dt_bias: source.vector("dt_bias"),
            a_log: source.vector("A_log"),
            d: source.vector("D"),
            norm_weight: source.vector("norm.weight"),
            out_proj: source.linear("out_proj", config.bias),
            config: config.clone(),
            precision: Precision::F32,
        }
    }
}

impl Parameters for Mamba2Mixer {
    fn visit_parameters<'a>(&'a self, visit: &mut dyn FnMut(&str, ParamRef<'a>)) {
        visit("in_proj.weight", ParamRef::R2(&self.in_proj.weight));
        if let Some(b) = &self.in_proj.bias {
            visit("in_proj.bias", ParamRef::R1(b));
        }
        visit("conv1d.weight", ParamRef::R2(&self.conv_weight));
        if let Some(b) = &self.conv_bias {
            visit("conv1d.bias", ParamRef::R1(b));
        }
        visit("dt_bias", ParamRef::R1(&self.dt_bias));
        visit("A_log", ParamRef::R1(&self.a_log));
        visit("D", ParamRef::R1(&self.d));
        visit("norm.weight", ParamRef::R1(&self.norm_weight));
        visit("out_proj.weight", ParamRef::R2(&self.out_proj.weight));
        if let Some(b) = &self.out_proj.bias {
            visit("out_proj.bias", ParamRef::R1(b));
        }
    }
}
