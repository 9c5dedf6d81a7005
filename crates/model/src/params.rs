//! The parameter table: every tensor of a model with its checkpoint name, PyTorch shape and
//! layout, weight decay and initialisation, written once per mixer.
//!
//! Loading, saving, import, seeded initialisation and the optimizer's no-decay group are all
//! derived from it, so adding a parameter (or a mixer) is a table row plus the module field it
//! fills. The module side is [`Parameters`]: it names each field with its table name, and a
//! test per mixer checks that the two lists agree.

use burn::module::{Param, ParamId};
use burn::prelude::*;
use forgetlab_runs::config::{MixerKind, ModelConfig};

use crate::block::Mixer;
use crate::model::Model;

/// How a parameter's burn layout maps to the PyTorch layout of its checkpoint tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Same,
    /// burn `Linear` stores [in, out]; PyTorch stores [out, in].
    Transposed,
    /// [channels, width] here, [channels, 1, width] in PyTorch's depthwise `Conv1d`.
    ConvWeight,
}

/// How a parameter is initialised from the seeded stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// N(0, std²).
    Normal(f64),
    /// U(-bound, bound).
    Uniform(f64),
    /// Every entry the same value.
    Constant(f32),
    /// softplus⁻¹ of a log-uniform step size in [dt_min, dt_max], floored at dt_init_floor.
    DtBias,
    /// log U[A_init_range] (a decay rate A = -exp(A_log)).
    ALog,
}

/// One row of a parameter table.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Full checkpoint name (official `state-spaces/mamba`, or fla's for Gated DeltaNet).
    pub name: String,
    /// PyTorch shape.
    pub shape: Vec<usize>,
    pub layout: Layout,
    /// Whether AdamW's weight decay applies (weight matrices and convolutions only).
    pub decay: bool,
    pub init: Init,
}

impl ParamSpec {
    /// A row named `prefix` + `suffix`.
    pub fn new(
        prefix: &str,
        suffix: &str,
        shape: Vec<usize>,
        layout: Layout,
        decay: bool,
        init: Init,
    ) -> Self {
        Self {
            name: format!("{prefix}{suffix}"),
            shape,
            layout,
            decay,
            init,
        }
    }

    /// A normalisation weight: ones, no decay.
    pub fn norm(prefix: &str, suffix: &str, width: usize) -> Self {
        Self::new(
            prefix,
            suffix,
            vec![width],
            Layout::Same,
            false,
            Init::Constant(1.0),
        )
    }

    /// A `Linear` weight `[out, in]` drawn from `init`, decayed.
    pub fn linear(prefix: &str, suffix: &str, out: usize, input: usize, init: Init) -> Self {
        Self::new(
            prefix,
            suffix,
            vec![out, input],
            Layout::Transposed,
            true,
            init,
        )
    }

    /// A bias: zeros, no decay.
    pub fn bias(prefix: &str, suffix: &str, width: usize) -> Self {
        Self::new(
            prefix,
            suffix,
            vec![width],
            Layout::Same,
            false,
            Init::Constant(0.0),
        )
    }
}

/// A module parameter of any rank used here.
#[derive(Clone, Copy)]
pub enum ParamRef<'a> {
    R1(&'a Param<Tensor<1>>),
    R2(&'a Param<Tensor<2>>),
}

impl ParamRef<'_> {
    /// The parameter's id (for optimizer groups).
    pub fn id(&self) -> ParamId {
        match self {
            ParamRef::R1(p) => p.id,
            ParamRef::R2(p) => p.id,
        }
    }
}

/// A module that names its parameters with their table names.
pub trait Parameters {
    /// Calls `visit(name, parameter)` for every parameter, `name` relative to the module's
    /// prefix in the table (`in_proj.weight`); optional parameters only when present.
    fn visit_parameters<'a>(&'a self, visit: &mut dyn FnMut(&str, ParamRef<'a>));
}

/// Where a mixer family's checkpoints put the tensors around the mixers: the embedding, each
/// block's norms and the final norm (the mixer's and MLP's own names come from their tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Naming {
    pub embedding: &'static str,
    /// Block `i`'s names start with this and `{i}.`.
    pub layers: &'static str,
    /// The norm before the mixer, within a block.
    pub block_norm: &'static str,
    /// The mixer's prefix within a block.
    pub mixer: &'static str,
    /// The norm before the MLP, within a block.
    pub mlp_norm: &'static str,
    /// The MLP's prefix within a block.
    pub mlp: &'static str,
    pub final_norm: &'static str,
    pub lm_head: &'static str,
}

impl Naming {
    /// `state-spaces/mamba`'s names (forgetlab's own checkpoints use them too).
    pub const MAMBA2: Naming = Naming {
        embedding: "backbone.embedding.weight",
        layers: "backbone.layers.",
        block_norm: "norm.weight",
        mixer: "mixer.",
        mlp_norm: "norm2.weight",
        mlp: "mlp.",
        final_norm: "backbone.norm_f.weight",
        lm_head: "lm_head.weight",
    };

    /// fla's `GatedDeltaNetForCausalLM` names.
    pub const FLA: Naming = Naming {
        embedding: "model.embeddings.weight",
        layers: "model.layers.",
        block_norm: "attn_norm.weight",
        mixer: "attn.",
        mlp_norm: "mlp_norm.weight",
        mlp: "mlp.",
        final_norm: "model.norm.weight",
        lm_head: "lm_head.weight",
    };

    /// The naming of a mixer family.
    pub fn of(mixer: MixerKind) -> Naming {
        match mixer {
            MixerKind::Mamba2 => Naming::MAMBA2,
            MixerKind::GatedDeltaNet => Naming::FLA,
        }
    }

    /// Block `i`'s prefix (`backbone.layers.3.`).
    pub fn layer(&self, i: usize) -> String {
        format!("{}{i}.", self.layers)
    }
}

/// The whole model's table, in initialisation order: embedding, each block (its norm, the
/// mixer, then the MLP's norm and MLP when it has one), the final norm, an untied LM head.
pub fn model_table(config: &ModelConfig) -> Vec<ParamSpec> {
    let naming = Naming::of(config.mixer);
    let (d, vocab) = (config.d_model, config.padded_vocab_size());
    let mut table = vec![ParamSpec::new(
        "",
        naming.embedding,
        vec![vocab, d],
        Layout::Same,
        true,
        Init::Normal(0.02),
    )];
    for i in 0..config.n_layer {
        let layer = naming.layer(i);
        table.push(ParamSpec::norm(&layer, naming.block_norm, d));
        let mixer = format!("{layer}{}", naming.mixer);
        match config.gated_deltanet_sizes() {
            None => table.extend(crate::mamba2::params::table(config, &mixer)),
            Some(sizes) => {
                table.extend(crate::gated_deltanet::params::table(config, &sizes, &mixer));
                let width = sizes.mlp_width(d);
                if width > 0 {
                    table.push(ParamSpec::norm(&layer, naming.mlp_norm, d));
                    let mlp = format!("{layer}{}", naming.mlp);
                    table.extend(crate::gated_deltanet::params::mlp_table(
                        config, width, &mlp,
                    ));
                }
            }
        }
    }
    table.push(ParamSpec::norm("", naming.final_norm, d));
    if !config.tie_embeddings {
        table.push(ParamSpec::new(
            "",
            naming.lm_head,
            vec![vocab, d],
            Layout::Transposed,
            true,
            Init::Normal(0.02),
        ));
    }
    table
}

impl Model {
    /// Calls `visit(name, parameter)` for every parameter of the model, with its full table
    /// name, in table order.
    pub fn visit_parameters<'a>(&'a self, visit: &mut dyn FnMut(&str, ParamRef<'a>)) {
        let naming = Naming::of(self.config.mixer);
        visit(naming.embedding, ParamRef::R2(&self.embedding.weight));
        for (i, block) in self.layers.iter().enumerate() {
            let layer = naming.layer(i);
            let norm = format!("{layer}{}", naming.block_norm);
            visit(&norm, ParamRef::R1(&block.norm_weight));
            let mixer: &dyn Parameters = match &block.mixer {
                Mixer::Mamba2(m) => m,
                Mixer::GatedDeltaNet(m) => m,
            };
            let prefix = format!("{layer}{}", naming.mixer);
            mixer.visit_parameters(&mut |name, p| visit(&format!("{prefix}{name}"), p));
            if let Some(ff) = &block.mlp {
                let norm = format!("{layer}{}", naming.mlp_norm);
                visit(&norm, ParamRef::R1(&ff.norm_weight));
                let prefix = format!("{layer}{}", naming.mlp);
                ff.mlp
                    .visit_parameters(&mut |name, p| visit(&format!("{prefix}{name}"), p));
            }
        }
        visit(naming.final_norm, ParamRef::R1(&self.norm_f_weight));
        if let Some(head) = &self.lm_head {
            visit(naming.lm_head, ParamRef::R2(&head.weight));
        }
    }

    /// Parameters the table exempts from weight decay (norms, biases, decay and step-size
    /// parameters, Mamba-2's D).
    pub fn no_decay_ids(&self) -> Vec<ParamId> {
        let no_decay: std::collections::HashSet<String> = model_table(&self.config)
            .into_iter()
            .filter(|spec| !spec.decay)
            .map(|spec| spec.name)
            .collect();
        let mut ids = Vec::new();
        self.visit_parameters(&mut |name, p| {
            if no_decay.contains(name) {
                ids.push(p.id());
            }
        });
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tiny_config;
    use forgetlab_runs::config::GatedDeltaNetConfig;

    /// The modules name exactly the table's rows, in its order, for every mixer and option.
    #[test]
    fn modules_visit_exactly_the_table() {
        let device = Device::flex();
        let mut with_biases = tiny_config();
        with_biases.bias = true;
        with_biases.tie_embeddings = false;
        let mut no_conv_bias = tiny_config();
        no_conv_bias.conv_bias = false;
        let sizes = GatedDeltaNetConfig {
            heads: 2,
            head_k_dim: 8,
            expand_v: 2.0,
            intermediate_size: Some(24),
        };
        let deltanet = ModelConfig::gated_deltanet(16, 2, 40, sizes.clone());
        let deltanet_no_mlp = ModelConfig::gated_deltanet(
            16,
            1,
            40,
            GatedDeltaNetConfig {
                intermediate_size: Some(0),
                ..sizes
            },
        );
        for config in [
            tiny_config(),
            with_biases,
            no_conv_bias,
            deltanet,
            deltanet_no_mlp,
        ] {
            let model = Model::init(&config, 1, &device).expect("valid config");
            let mut visited = Vec::new();
            model.visit_parameters(&mut |name, _| visited.push(name.to_string()));
            let table: Vec<String> = model_table(&config).into_iter().map(|s| s.name).collect();
            assert_eq!(visited, table, "{:?}", config.mixer);
        }
    }
}
