//! Device strings from configs and the command line (`cpu`, `wgpu`, `wgpu:1`, `cuda:0`, or a
//! comma-separated list of them) to burn devices. burn 0.22 picks the backend from the device
//! value at run time; GPU backends exist only in builds with the `wgpu` / `cuda` features.

use burn::prelude::*;

use crate::error::ModelError;

/// Parses one device string.
pub fn parse_device(spec: &str) -> Result<Device, ModelError> {
    let spec = spec.trim();
    let (kind, index) = match spec.split_once(':') {
        Some((kind, index)) => {
            let index: usize = index.parse().map_err(|_| ModelError::Device {
                device: spec.to_string(),
                message: "the part after `:` must be a device index".to_string(),
            })?;
            (kind, Some(index))
        }
        None => (spec, None),
    };
    match kind {
        "cpu" | "flex" => match index {
            None | Some(0) => Ok(Device::flex()),
            Some(_) => Err(ModelError::Device {
                device: spec.to_string(),
                message: "there is one CPU device; use `cpu`".to_string(),
            }),
        },
        "wgpu" => wgpu(spec, index),
        "cuda" => cuda(spec, index),
        _ => Err(ModelError::Device {
            device: spec.to_string(),
            message: "unknown device; expected cpu, wgpu[:N] or cuda[:N]".to_string(),
        }),
    }
}

/// Parses a comma-separated device list (data-parallel training uses several).
pub fn parse_devices(spec: &str) -> Result<Vec<Device>, ModelError> {
    spec.split(',').map(parse_device).collect()
}

#[cfg(feature = "wgpu")]
fn wgpu(_spec: &str, index: Option<usize>) -> Result<Device, ModelError> {
    use burn::tensor::DeviceKind;
    Ok(Device::wgpu(match index {
        None => DeviceKind::DefaultDevice,
        Some(i) => DeviceKind::DiscreteGpu(i),
    }))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(spec: &str, _index: Option<usize>) -> Result<Device, ModelError> {
    Err(ModelError::Device {
        device: spec.to_string(),
        message: "this build has no wgpu backend; rebuild with `--features wgpu`".to_string(),
    })
}

#[cfg(feature = "cuda")]
fn cuda(_spec: &str, index: Option<usize>) -> Result<Device, ModelError> {
    Ok(Device::cuda(index.unwrap_or(0)))
}

#[cfg(not(feature = "cuda"))]
fn cuda(spec: &str, _index: Option<usize>) -> Result<Device, ModelError> {
    Err(ModelError::Device {
        device: spec.to_string(),
        message: "this build has no CUDA backend; rebuild with `--features cuda`".to_string(),
    })
}

/// Whether the device runs on the host CPU.
pub fn is_cpu(device: &Device) -> bool {
    *device == Device::flex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_rejects_unknown() {
        assert!(parse_device("cpu").is_ok());
        assert!(parse_devices("cpu").unwrap().len() == 1);
        assert!(parse_device("tpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        #[cfg(not(feature = "cuda"))]
        assert!(
            parse_device("cuda:0")
                .unwrap_err()
                .to_string()
                .contains("--features cuda")
        );
    }
}
