//! Parameters as named f32 arrays in their checkpoint naming (official `state-spaces/mamba`
//! for Mamba-2, fla's for Gated DeltaNet) and PyTorch layouts (`Linear` weights are
//! `[out, in]`, conv weights `[channels, 1, width]`), as the parameter table says.
//!
//! Every way a model comes into existence goes through [`Weights`]: seeded initialisation,
//! official and Hugging Face checkpoints, forgetlab's own checkpoints. So there is one place
//! that knows which tensor plays which role, and one check that every tensor is present with
//! the right shape.

use std::collections::{BTreeMap, HashMap};

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use burn::tensor::Gradients;

use crate::ModelConfig;
use crate::block::{Block, Mixer, MlpBlock};
use crate::error::ModelError;
use crate::gated_deltanet::layer::GatedDeltaNet;
use crate::gated_deltanet::mlp::Mlp;
use crate::gated_deltanet::params as gated_deltanet_params;
use crate::mamba2::Mamba2Mixer;
use crate::model::Model;
use crate::params::{Layout, Naming, ParamRef, model_table};
use crate::precision::Precision;

/// One named array.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl WeightTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }
}

/// A full set of model parameters by official name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    pub tensors: BTreeMap<String, WeightTensor>,
}

/// A parameter of any rank, as stored in the module.
enum AnyTensor {
    R1(Tensor<1>),
    R2(Tensor<2>),
}

impl AnyTensor {
    fn of(param: ParamRef<'_>) -> Self {
        match param {
            ParamRef::R1(p) => AnyTensor::R1(p.val()),
            ParamRef::R2(p) => AnyTensor::R2(p.val()),
        }
    }

    fn grad(&self, grads: &Gradients) -> Option<AnyTensor> {
        match self {
            AnyTensor::R1(t) => t.grad(grads).map(AnyTensor::R1),
            AnyTensor::R2(t) => t.grad(grads).map(AnyTensor::R2),
        }
    }

    fn into_weight(self, layout: Layout) -> WeightTensor {
        let data = match self {
            AnyTensor::R1(t) => t.into_data(),
            AnyTensor::R2(t) if layout == Layout::Transposed => t.transpose().into_data(),
            AnyTensor::R2(t) => t.into_data(),
        };
        let mut shape = data.shape().to_vec();
        if layout == Layout::ConvWeight {
            shape.insert(1, 1);
        }
        let values = data
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("a converted f32 tensor reads back as f32");
        WeightTensor::new(shape, values)
    }
}

/// Every tensor a model of this config needs, with its PyTorch shape (the parameter table's
/// names and shapes).
pub fn expected_shapes(config: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    model_table(config)
        .into_iter()
        .map(|spec| (spec.name, spec.shape))
        .collect()
}

/// Named tensors taken one module at a time: a module's builder asks for its parameters by
/// their table names relative to its prefix, in burn's layouts.
pub(crate) struct Source<'a> {
    weights: &'a mut Weights,
    prefix: String,
    device: &'a Device,
}

impl Source<'_> {
    fn take(&mut self, suffix: &str) -> WeightTensor {
        let name = format!("{}{suffix}", self.prefix);
        self.weights
            .tensors
            .remove(&name)
            .unwrap_or_else(|| panic!("{name} is present: validate() checked it"))
    }

    fn tensor<const D: usize>(&self, t: WeightTensor) -> Tensor<D> {
        Tensor::from_data(TensorData::new(t.data, t.shape), self.device)
    }

    /// A rank-1 parameter (norm weight, bias, per-head scalar).
    pub(crate) fn vector(&mut self, suffix: &str) -> Param<Tensor<1>> {
        let t = self.take(suffix);
        Param::from_tensor(self.tensor(t))
    }

    /// A rank-2 parameter stored in the same layout.
    pub(crate) fn matrix(&mut self, suffix: &str) -> Param<Tensor<2>> {
        let t = self.take(suffix);
        Param::from_tensor(self.tensor(t))
    }

    /// A depthwise conv weight: PyTorch's [channels, 1, width] as [channels, width].
    pub(crate) fn conv(&mut self, suffix: &str) -> Param<Tensor<2>> {
        let t = self.take(suffix);
        let (channels, width) = (t.shape[0], t.shape[2]);
        let t = WeightTensor::new(vec![channels, width], t.data);
        Param::from_tensor(self.tensor(t))
    }

    /// A `Linear` named `{name}.weight` (PyTorch [out, in], transposed to burn's [in, out])
    /// and `{name}.bias` when `bias`.
    pub(crate) fn linear(&mut self, name: &str, bias: bool) -> Linear {
        let weight = self.take(&format!("{name}.weight"));
        let weight: Tensor<2> = self.tensor(weight);
        Linear {
            weight: Param::from_tensor(weight.transpose()),
            bias: bias.then(|| self.vector(&format!("{name}.bias"))),
        }
    }

    /// The same tensors under another prefix.
    fn at(&mut self, prefix: String) -> Source<'_> {
        Source {
            weights: self.weights,
            prefix,
            device: self.device,
        }
    }
}

impl Weights {
    /// Checks that exactly the expected tensors are present with the expected shapes. A tied
    /// `lm_head.weight` equal to the embedding is accepted and dropped. `source` names the file
    /// in errors.
    pub fn validate(&mut self, config: &ModelConfig, source: &str) -> Result<(), ModelError> {
        if config.tie_embeddings
            && let Some(head) = self.tensors.remove("lm_head.weight")
            && self.tensors.get(Naming::of(config.mixer).embedding) != Some(&head)
        {
            return Err(ModelError::Checkpoint {
                origin: source.to_string(),
                message: "config says tie_embeddings but lm_head.weight differs from the embedding"
                    .to_string(),
            });
        }
        let expected = expected_shapes(config);
        let mut missing = Vec::new();
        let mut misshaped = Vec::new();
        for (name, shape) in &expected {
            match self.tensors.get(name) {
                None => missing.push(name.clone()),
                Some(t) if &t.shape != shape => {
                    misshaped.push(format!("{name}: expected {shape:?}, found {:?}", t.shape))
                }
                Some(_) => {}
            }
        }
        let unexpected: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| !expected.iter().any(|(name, _)| name == *k))
            .cloned()
            .collect();
        if missing.is_empty() && misshaped.is_empty() && unexpected.is_empty() {
            return Ok(());
        }
        Err(ModelError::TensorMismatch {
            origin: source.to_string(),
            missing,
            misshaped,
            unexpected,
        })
    }

    /// Builds a model on `device` (the weights must have passed [`Weights::validate`]).
    pub fn into_model(
        mut self,
        config: &ModelConfig,
        device: &Device,
        source: &str,
    ) -> Result<Model, ModelError> {
        self.validate(config, source)?;
        let naming = Naming::of(config.mixer);
        let mut all = Source {
            weights: &mut self,
            prefix: String::new(),
            device,
        };
        let embedding = Embedding {
            weight: all.matrix(naming.embedding),
        };
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let layer = naming.layer(i);
            let mut block = all.at(layer.clone());
            let norm_weight = block.vector(naming.block_norm);
            let mixer_prefix = format!("{layer}{}", naming.mixer);
            let (mixer, mlp) = match config.gated_deltanet_sizes() {
                None => {
                    let mixer = Mamba2Mixer::from_source(config, &mut block.at(mixer_prefix));
                    (Mixer::Mamba2(mixer), None)
                }
                Some(sizes) => {
                    let dims = gated_deltanet_params::dims(config, &sizes);
                    let mixer = GatedDeltaNet::from_source(dims, &mut block.at(mixer_prefix));
                    let mlp = (sizes.mlp_width(config.d_model) > 0).then(|| MlpBlock {
                        norm_weight: block.vector(naming.mlp_norm),
                        mlp: Mlp::from_source(&mut block.at(format!("{layer}{}", naming.mlp))),
                    });
                    (Mixer::GatedDeltaNet(mixer), mlp)
                }
            };
            layers.push(Block {
                norm_weight,
                mixer,
                mlp,
            });
        }
        let norm_f_weight = all.vector(naming.final_norm);
        let lm_head = (!config.tie_embeddings).then(|| all.linear("lm_head", false));
        Ok(Model {
            embedding,
            layers,
            norm_f_weight,
            lm_head,
            config: config.clone(),
            precision: Precision::F32,
        })
    }

    /// The model's parameters in official naming and layouts.
    pub fn from_model(model: &Model) -> Self {
        collect(model, Some)
    }

    /// The gradients of a model's parameters in official naming and layouts (parameters with
    /// no gradient are left out).
    pub fn from_grads(model: &Model, grads: &Gradients) -> Self {
        collect(model, |t| t.grad(grads))
    }
}

/// Every parameter of `model` by its table name, read through `read` (its value, or its
/// gradient), in PyTorch layouts.
fn collect(model: &Model, mut read: impl FnMut(AnyTensor) -> Option<AnyTensor>) -> Weights {
    let layouts: HashMap<String, Layout> = model_table(model.config())
        .into_iter()
        .map(|spec| (spec.name, spec.layout))
        .collect();
    let mut tensors = BTreeMap::new();
    model.visit_parameters(&mut |name, param| {
        let layout = *layouts
            .get(name)
            .unwrap_or_else(|| panic!("{name} is a row of the parameter table"));
        if let Some(t) = read(AnyTensor::of(param)) {
            tensors.insert(name.to_string(), t.into_weight(layout));
        }
    });
    Weights { tensors }
}
