//! Parameters as named f32 arrays in the official `state-spaces/mamba` naming and PyTorch
//! layouts (`Linear` weights are `[out, in]`, the conv weight is `[conv_dim, 1, d_conv]`).
//!
//! Every way a model comes into existence goes through [`Weights`]: seeded initialisation,
//! official and Hugging Face checkpoints, forgetlab's own checkpoints. So there is one place
//! that knows which tensor plays which role, and one check that every tensor is present with
//! the right shape.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use burn::tensor::Gradients;

use crate::Mamba2Config;
use crate::error::ModelError;
use crate::mixer::Mixer;
use crate::model::{Block, Mamba2};
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

/// How a burn parameter's layout maps to the PyTorch layout of its checkpoint tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Same,
    /// burn `Linear` stores [in, out]; PyTorch stores [out, in].
    Transposed,
    /// [conv_dim, d_conv] here, [conv_dim, 1, d_conv] in PyTorch.
    ConvWeight,
}

/// A parameter of any rank, as stored in the module.
enum AnyTensor {
    R1(Tensor<1>),
    R2(Tensor<2>),
}

impl AnyTensor {
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

/// Official names of layer `i`'s tensors start with this.
fn layer_prefix(i: usize) -> String {
    format!("backbone.layers.{i}.")
}

/// Every tensor a model of this config needs, with its PyTorch shape.
pub fn expected_shapes(config: &Mamba2Config) -> Vec<(String, Vec<usize>)> {
    let d = config.d_model;
    let v = config.padded_vocab_size();
    let h = config.nheads();
    let mut out = vec![("backbone.embedding.weight".to_string(), vec![v, d])];
    for i in 0..config.n_layer {
        let p = layer_prefix(i);
        out.push((format!("{p}norm.weight"), vec![d]));
        out.push((
            format!("{p}mixer.in_proj.weight"),
            vec![config.d_in_proj(), d],
        ));
        if config.bias {
            out.push((format!("{p}mixer.in_proj.bias"), vec![config.d_in_proj()]));
        }
        out.push((
            format!("{p}mixer.conv1d.weight"),
            vec![config.conv_dim(), 1, config.d_conv],
        ));
        if config.conv_bias {
            out.push((format!("{p}mixer.conv1d.bias"), vec![config.conv_dim()]));
        }
        out.push((format!("{p}mixer.dt_bias"), vec![h]));
        out.push((format!("{p}mixer.A_log"), vec![h]));
        out.push((format!("{p}mixer.D"), vec![h]));
        out.push((format!("{p}mixer.norm.weight"), vec![config.d_inner()]));
        out.push((
            format!("{p}mixer.out_proj.weight"),
            vec![d, config.d_inner()],
        ));
        if config.bias {
            out.push((format!("{p}mixer.out_proj.bias"), vec![d]));
        }
    }
    out.push(("backbone.norm_f.weight".to_string(), vec![d]));
    if !config.tie_embeddings {
        out.push(("lm_head.weight".to_string(), vec![v, d]));
    }
    out
}

impl Weights {
    /// Checks that exactly the expected tensors are present with the expected shapes. A tied
    /// `lm_head.weight` equal to the embedding is accepted and dropped. `source` names the file
    /// in errors.
    pub fn validate(&mut self, config: &Mamba2Config, source: &str) -> Result<(), ModelError> {
        if config.tie_embeddings
            && let Some(head) = self.tensors.remove("lm_head.weight")
            && self.tensors.get("backbone.embedding.weight") != Some(&head)
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

    fn take(&mut self, name: &str) -> WeightTensor {
        self.tensors
            .remove(name)
            .unwrap_or_else(|| panic!("{name} is present: validate() checked it"))
    }

    /// Builds a model on `device` (the weights must have passed [`Weights::validate`]).
    pub fn into_model(
        mut self,
        config: &Mamba2Config,
        device: &Device,
        source: &str,
    ) -> Result<Mamba2, ModelError> {
        self.validate(config, source)?;
        let param1 = |t: WeightTensor| -> Param<Tensor<1>> {
            Param::from_tensor(Tensor::from_data(TensorData::new(t.data, t.shape), device))
        };
        let param2 = |t: WeightTensor| -> Param<Tensor<2>> {
            Param::from_tensor(Tensor::from_data(TensorData::new(t.data, t.shape), device))
        };
        let linear = |w: WeightTensor, b: Option<WeightTensor>| -> Linear {
            let weight: Tensor<2> = Tensor::from_data(TensorData::new(w.data, w.shape), device);
            Linear {
                weight: Param::from_tensor(weight.transpose()),
                bias: b.map(param1),
            }
        };
        let embedding = Embedding {
            weight: param2(self.take("backbone.embedding.weight")),
        };
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let p = layer_prefix(i);
            let mut get = |suffix: &str| self.take(&format!("{p}{suffix}"));
            let norm_weight = param1(get("norm.weight"));
            let in_proj_w = get("mixer.in_proj.weight");
            let in_proj_b = config.bias.then(|| get("mixer.in_proj.bias"));
            let conv = get("mixer.conv1d.weight");
            let conv_weight = param2(WeightTensor::new(
                vec![config.conv_dim(), config.d_conv],
                conv.data,
            ));
            let conv_bias = config.conv_bias.then(|| param1(get("mixer.conv1d.bias")));
            let dt_bias = param1(get("mixer.dt_bias"));
            let a_log = param1(get("mixer.A_log"));
            let d = param1(get("mixer.D"));
            let mixer_norm = param1(get("mixer.norm.weight"));
            let out_proj_w = get("mixer.out_proj.weight");
            let out_proj_b = config.bias.then(|| get("mixer.out_proj.bias"));
            layers.push(Block {
                norm_weight,
                mixer: Mixer {
                    in_proj: linear(in_proj_w, in_proj_b),
                    conv_weight,
                    conv_bias,
                    dt_bias,
                    a_log,
                    d,
                    norm_weight: mixer_norm,
                    out_proj: linear(out_proj_w, out_proj_b),
                    config: config.clone(),
                    precision: Precision::F32,
                },
            });
        }
        let norm_f_weight = param1(self.take("backbone.norm_f.weight"));
        let lm_head = (!config.tie_embeddings).then(|| linear(self.take("lm_head.weight"), None));
        Ok(Mamba2 {
            embedding,
            layers,
            norm_f_weight,
            lm_head,
            config: config.clone(),
            precision: Precision::F32,
        })
    }

    /// The model's parameters in official naming and layouts.
    pub fn from_model(model: &Mamba2) -> Self {
        collect(model, Some)
    }

    /// The gradients of a model's parameters in official naming and layouts (parameters with
    /// no gradient are left out).
    pub fn from_grads(model: &Mamba2, grads: &Gradients) -> Self {
        collect(model, |t| t.grad(grads))
    }
}

fn collect(model: &Mamba2, mut read: impl FnMut(AnyTensor) -> Option<AnyTensor>) -> Weights {
    let mut tensors = BTreeMap::new();
    let mut put = |name: String, value: AnyTensor, layout: Layout| {
        if let Some(t) = read(value) {
            tensors.insert(name, t.into_weight(layout));
        }
    };
    put(
        "backbone.embedding.weight".into(),
        AnyTensor::R2(model.embedding.weight.val()),
        Layout::Same,
    );
    for (i, block) in model.layers.iter().enumerate() {
        let p = layer_prefix(i);
        let m = &block.mixer;
        put(
            format!("{p}norm.weight"),
            AnyTensor::R1(block.norm_weight.val()),
            Layout::Same,
        );
        put(
            format!("{p}mixer.in_proj.weight"),
            AnyTensor::R2(m.in_proj.weight.val()),
            Layout::Transposed,
        );
        if let Some(b) = &m.in_proj.bias {
            put(
                format!("{p}mixer.in_proj.bias"),
                AnyTensor::R1(b.val()),
                Layout::Same,
            );
        }
        put(
            format!("{p}mixer.conv1d.weight"),
            AnyTensor::R2(m.conv_weight.val()),
            Layout::ConvWeight,
        );
        if let Some(b) = &m.conv_bias {
            put(
                format!("{p}mixer.conv1d.bias"),
                AnyTensor::R1(b.val()),
                Layout::Same,
            );
        }
        put(
            format!("{p}mixer.dt_bias"),
            AnyTensor::R1(m.dt_bias.val()),
            Layout::Same,
        );
        put(
            format!("{p}mixer.A_log"),
            AnyTensor::R1(m.a_log.val()),
            Layout::Same,
        );
        put(
            format!("{p}mixer.D"),
            AnyTensor::R1(m.d.val()),
            Layout::Same,
        );
        put(
            format!("{p}mixer.norm.weight"),
            AnyTensor::R1(m.norm_weight.val()),
            Layout::Same,
        );
        put(
            format!("{p}mixer.out_proj.weight"),
            AnyTensor::R2(m.out_proj.weight.val()),
            Layout::Transposed,
        );
        if let Some(b) = &m.out_proj.bias {
            put(
                format!("{p}mixer.out_proj.bias"),
                AnyTensor::R1(b.val()),
                Layout::Same,
            );
        }
    }
    put(
        "backbone.norm_f.weight".into(),
        AnyTensor::R1(model.norm_f_weight.val()),
        Layout::Same,
    );
    if let Some(head) = &model.lm_head {
        put(
            "lm_head.weight".into(),
            AnyTensor::R2(head.weight.val()),
            Layout::Transposed,
        );
    }
    Weights { tensors }
}
