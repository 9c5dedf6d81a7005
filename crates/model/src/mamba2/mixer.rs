//! One Mamba-2 mixer: in_proj → causal depthwise conv (with a carried cache) → SiLU →
//! selective scan → D skip → gated RMSNorm → out_proj (paper.md section 8).
//!
//! The conv cache holds the last `d_conv - 1` *pre-convolution* xBC columns, and the chunked
//! path prepends it as left context, so a sequence cut into segments anywhere computes exactly
//! what one pass computes (the official analysis code zero-pads at every segment instead).

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::softplus;

use crate::mamba2::ssd::{ScanInputs, WindowState, scan_step, window_correction};
use crate::ops::{self, shift_cache};
use crate::precision::{self, Precision};
use crate::{ModelConfig, ScanHooks};

/// A mixer's recurrent state: everything it needs to continue a sequence.
#[derive(Debug, Clone)]
pub struct Mamba2State {
    /// Last `d_conv - 1` pre-convolution xBC columns: [batch, d_conv - 1, conv_dim].
    pub conv_bkc: Tensor<3>,
    /// SSM state: [batch, heads, headdim, d_state].
    pub ssm_bhpn: Tensor<4>,
    /// Sliding-window read-out state, present only while that intervention is active.
    pub window: Option<WindowState>,
}

impl Mamba2State {
    /// The zero state that starts every sequence.
    pub fn zeros(config: &ModelConfig, batch: usize, device: &Device) -> Self {
        Self {
            conv_bkc: Tensor::zeros([batch, config.d_conv - 1, config.conv_dim()], device),
            ssm_bhpn: Tensor::zeros(
                [batch, config.nheads(), config.headdim, config.d_state],
                device,
            ),
            window: None,
        }
    }

    /// Shrinks each head's SSM state to at most `limits[head]` (Frobenius norm).
    pub fn clip_norm(mut self, limits: &[f32]) -> Self {
        self.ssm_bhpn = ops::clip_head_norms(self.ssm_bhpn, limits);
        self
    }

    /// Cuts the autodiff graph at this state (truncated BPTT).
    pub fn detach(self) -> Self {
        Self {
            conv_bkc: self.conv_bkc.detach(),
            ssm_bhpn: self.ssm_bhpn.detach(),
            window: self.window.map(|w| WindowState {
                x_brhp: w.x_brhp.detach(),
                dt_brh: w.dt_brh.detach(),
                log_alpha_brh: w.log_alpha_brh.detach(),
                b_brgn: w.b_brgn.detach(),
                lagged_bhpn: w.lagged_bhpn.detach(),
            }),
        }
    }
}

/// A layer's intermediate activations for a segment, recorded on request for diagnostics and
/// conformance tests (recording only keeps handles to tensors computed anyway).
#[derive(Debug, Clone)]
pub struct Mamba2Trace {
    /// in_proj output z | xBC | dt: [batch, length, d_in_proj].
    pub in_proj_bld: Tensor<3>,
    /// log α_t = Δ_t A (+ interventions): [batch, length, heads].
    pub log_alpha_blh: Tensor<3>,
    /// Scan output including the D skip, before the gate: [batch, length, d_inner].
    pub scan_y_bli: Tensor<3>,
    /// The gate z: [batch, length, d_inner].
    pub gate_z_bli: Tensor<3>,
    /// Gated RMSNorm output: [batch, length, d_inner].
    pub gated_norm_bli: Tensor<3>,
    /// Mixer output: [batch, length, d_model].
    pub out_bld: Tensor<3>,
}

impl Mamba2Trace {
    /// One trace for consecutive pieces of a segment (each field concatenated over time).
    pub fn concat(pieces: Vec<Mamba2Trace>) -> Mamba2Trace {
        let field = |get: fn(&Mamba2Trace) -> &Tensor<3>| {
            Tensor::cat(pieces.iter().map(|p| get(p).clone()).collect(), 1)
        };
        Mamba2Trace {
            in_proj_bld: field(|p| &p.in_proj_bld),
            log_alpha_blh: field(|p| &p.log_alpha_blh),
            scan_y_bli: field(|p| &p.scan_y_bli),
            gate_z_bli: field(|p| &p.gate_z_bli),
            gated_norm_bli: field(|p| &p.gated_norm_bli),
            out_bld: field(|p| &p.out_bld),
        }
    }
}

/// The Mamba-2 mixer module. Parameter names mirror `mamba_ssm`.
#[derive(Module, Debug)]
pub struct Mamba2Mixer {
    /// d_model → z | x | B | C | dt.
    pub in_proj: Linear,
    /// Depthwise causal convolution weight: [conv_dim, d_conv].
    pub conv_weight: Param<Tensor<2>>,
    pub conv_bias: Option<Param<Tensor<1>>>,
    /// Added to dt before the softplus: [heads].
    pub dt_bias: Param<Tensor<1>>,
    /// A = -exp(A_log): [heads].
    pub a_log: Param<Tensor<1>>,
    /// Skip connection D: [heads].
    pub d: Param<Tensor<1>>,
    /// Gated RMSNorm weight: [d_inner].
    pub norm_weight: Param<Tensor<1>>,
    /// d_inner → d_model.
    pub out_proj: Linear,
    #[module(skip)]
    pub config: ModelConfig,
    /// Precision of the in_proj and out_proj products (see [`crate::precision`]).
    #[module(skip)]
    pub precision: Precision,
}

/// The pieces of in_proj's output for a segment.
struct Projected {
    z_bli: Tensor<3>,
    /// x, B and C before the convolution.
    xbc: [Tensor<3>; 3],
    dt_blh: Tensor<3>,
}

impl Projected {
    /// The whole in_proj output z | x | B | C | dt, for traces.
    fn all(&self) -> Tensor<3> {
        let [x, b, c] = self.xbc.clone();
        Tensor::cat(vec![self.z_bli.clone(), x, b, c, self.dt_blh.clone()], 2)
    }
}

impl Mamba2Mixer {
    /// in_proj as one product per piece (z, x, B, C, dt): slicing one product's output
    /// instead costs the backward a zero-filled buffer of the whole output per piece.
    fn project(&self, u_bld: Tensor<3>) -> Projected {
        let c = &self.config;
        let mut start = 0;
        let mut columns = |size| {
            let piece = precision::linear_columns(
                &self.in_proj,
                u_bld.clone(),
                start,
                size,
                self.precision,
            );
            start += size;
            piece
        };
        let z_bli = columns(c.d_inner());
        let [x_width, b_width, c_width] = self.xbc_widths();
        let xbc = [columns(x_width), columns(b_width), columns(c_width)];
        Projected {
            z_bli,
            xbc,
            dt_blh: columns(c.nheads()),
        }
    }

    /// Channels of x, B and C in the convolution's input.
    fn xbc_widths(&self) -> [usize; 3] {
        let c = &self.config;
        [c.d_inner(), c.ngroups * c.d_state, c.ngroups * c.d_state]
    }

    /// Δ = softplus(dt + dt_bias), clamped to dt_limit, scaled by any intervention; and
    /// log α = Δ·A (+ log λ_α).
    fn discretize(&self, dt_raw: Tensor<3>, hooks: &ScanHooks) -> (Tensor<3>, Tensor<3>) {
        let c = &self.config;
        let heads = c.nheads();
        let mut dt = softplus(dt_raw + self.dt_bias.val().reshape([1, 1, heads]), 1.0);
        if c.has_dt_limit() {
            dt = dt.clamp(c.dt_limit.0, c.dt_limit.1.min(f32::MAX as f64));
        }
        if let Some(scale) = hooks.dt_scale {
            dt = dt * scale;
        }
        let a = self.a_log.val().exp().neg().reshape([1, 1, heads]);
        let mut log_alpha = dt.clone() * a;
        if let Some(lambda) = hooks.rri_alpha {
            log_alpha = log_alpha + lambda.ln();
        }
        (dt, log_alpha)
    }

    /// Shapes the activated x ([b, l, d_inner]) into [b, l, heads, headdim] and B, C into
    /// [b, l, groups, d_state], applying any scaling of B.
    fn shape_xbc(
        &self,
        [x, b, cc]: [Tensor<3>; 3],
        hooks: &ScanHooks,
    ) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let c = &self.config;
        let [batch, len, _] = x.dims();
        let x_blhp = x.reshape([batch, len, c.nheads(), c.headdim]);
        let mut b_blgn = b.reshape([batch, len, c.ngroups, c.d_state]);
        if let Some(lambda) = hooks.rri_b {
            b_blgn = b_blgn * lambda;
        }
        let c_blgn = cc.reshape([batch, len, c.ngroups, c.d_state]);
        (x_blhp, b_blgn, c_blgn)
    }

    /// rmsnorm(y ∘ silu(z)) ∘ weight, the RMS within each group of d_inner / ngroups channels.
    fn gated_norm(&self, y_bli: Tensor<3>, z_bli: Tensor<3>) -> Tensor<3> {
        let c = &self.config;
        ops::gated_norm(y_bli, z_bli, self.norm_weight.val(), c.ngroups, c.norm_eps)
    }

    /// silu(conv(cache ++ xbc) + bias), the causal depthwise convolution, piece by piece (it
    /// is depthwise), and the new cache: the last d_conv - 1 rows of cache ++ xbc.
    fn conv(&self, xbc: [Tensor<3>; 3], cache_bkc: Tensor<3>) -> ([Tensor<3>; 3], Tensor<3>) {
        let weight_ck = self.conv_weight.val();
        let bias_c = self.conv_bias.as_ref().map(|b| b.val());
        let mut start = 0;
        let mut conv = |x_blc: Tensor<3>, width| {
            let cache_bkc = cache_bkc.clone().narrow(2, start, width);
            let weight_ck = weight_ck.clone().narrow(0, start, width);
            let bias_c = bias_c.clone().map(|b| b.narrow(0, start, width));
            start += width;
            let next_cache_bkc = shift_cache(cache_bkc.clone(), x_blc.clone());
            (
                ops::conv_silu(x_blc, cache_bkc, weight_ck, bias_c),
                next_cache_bkc,
            )
        };
        let ([x, b, c], [x_width, b_width, c_width]) = (xbc, self.xbc_widths());
        let ((x, x_cache), (b, b_cache), (c, c_cache)) =
            (conv(x, x_width), conv(b, b_width), conv(c, c_width));
        ([x, b, c], Tensor::cat(vec![x_cache, b_cache, c_cache], 2))
    }

    /// Processes a segment `u_bld` ([batch, length, d_model]) from `state` (chunked SSD).
    pub fn forward(
        &self,
        u_bld: Tensor<3>,
        state: Mamba2State,
        hooks: &ScanHooks,
        trace: Option<&mut Vec<Mamba2Trace>>,
    ) -> (Tensor<3>, Mamba2State) {
        let c = &self.config;
        let [batch, len, _] = u_bld.dims();
        let projected = self.project(u_bld);
        let in_proj_bld = trace.is_some().then(|| projected.all());
        let (xbc, conv_bkc) = self.conv(projected.xbc, state.conv_bkc);
        let (x_blhp, b_blgn, c_blgn) = self.shape_xbc(xbc, hooks);
        let (dt_blh, log_alpha_blh) = self.discretize(projected.dt_blh, hooks);
        let inputs = ScanInputs {
            x_blhp: x_blhp.clone(),
            dt_blh,
            log_alpha_blh: log_alpha_blh.clone(),
            b_blgn,
            c_blgn,
        };
        let (y_blhp, window) = self.windowed(&inputs, state.window, hooks, batch);
        let (y_full_blhp, ssm_bhpn) = ops::scan_chunked(inputs, state.ssm_bhpn, c.chunk_size);
        let y_blhp = match y_blhp {
            Some(correction) => y_full_blhp - correction,
            None => y_full_blhp,
        };
        let y_blhp = y_blhp + x_blhp * self.d.val().reshape([1, 1, c.nheads(), 1]);
        let y_bli = y_blhp.reshape([batch, len, c.d_inner()]);
        let normed_bli = self.gated_norm(y_bli.clone(), projected.z_bli.clone());
        let out_bld = precision::linear(&self.out_proj, normed_bli.clone(), self.precision);
        if let (Some(trace), Some(in_proj_bld)) = (trace, in_proj_bld) {
            trace.push(Mamba2Trace {
                in_proj_bld,
                log_alpha_blh,
                scan_y_bli: y_bli,
                gate_z_bli: projected.z_bli,
                gated_norm_bli: normed_bli,
                out_bld: out_bld.clone(),
            });
        }
        (
            out_bld,
            Mamba2State {
                conv_bkc,
                ssm_bhpn,
                window,
            },
        )
    }

    /// The sliding-window correction for a segment, when that intervention is on.
    fn windowed(
        &self,
        inputs: &ScanInputs,
        window: Option<WindowState>,
        hooks: &ScanHooks,
        batch: usize,
    ) -> (Option<Tensor<4>>, Option<WindowState>) {
        let Some(r) = hooks.sliding_window else {
            return (None, None);
        };
        let c = &self.config;
        let window = window.filter(|w| w.len() == r).unwrap_or_else(|| {
            WindowState::zeros(
                r,
                [batch, c.nheads(), c.headdim, c.ngroups, c.d_state],
                &inputs.x_blhp.device(),
            )
        });
        let (correction, window) = window_correction(inputs, window, c.chunk_size);
        (Some(correction), Some(window))
    }

    /// Processes one token `u_bd` ([batch, d_model]) from `state` (the recurrent form).
    pub fn step(
        &self,
        u_bd: Tensor<2>,
        state: Mamba2State,
        hooks: &ScanHooks,
    ) -> (Tensor<2>, Mamba2State) {
        let c = &self.config;
        let [batch, _] = u_bd.dims();
        let projected = self.project(u_bd.unsqueeze_dim::<3>(1));
        let (xbc, conv_bkc) = self.conv(projected.xbc, state.conv_bkc);
        let (x_b1hp, b_b1gn, c_b1gn) = self.shape_xbc(xbc, hooks);
        let (dt_b1h, log_alpha_b1h) = self.discretize(projected.dt_blh, hooks);
        let (y_bhp, ssm_bhpn) = scan_step(
            x_b1hp.clone().squeeze_dim(1),
            dt_b1h.clone().squeeze_dim(1),
            log_alpha_b1h.clone().squeeze_dim(1),
            b_b1gn.clone().squeeze_dim(1),
            c_b1gn.clone().squeeze_dim(1),
            state.ssm_bhpn,
        );
        let inputs = ScanInputs {
            x_blhp: x_b1hp.clone(),
            dt_blh: dt_b1h,
            log_alpha_blh: log_alpha_b1h,
            b_blgn: b_b1gn,
            c_blgn: c_b1gn,
        };
        let (correction, window) = self.windowed(&inputs, state.window, hooks, batch);
        let mut y_b1hp = y_bhp.unsqueeze_dim::<4>(1);
        if let Some(correction) = correction {
            y_b1hp = y_b1hp - correction;
        }
        let y_b1hp = y_b1hp + x_b1hp * self.d.val().reshape([1, 1, c.nheads(), 1]);
        let y_b1i = y_b1hp.reshape([batch, 1, c.d_inner()]);
        let out_b1d = precision::linear(
            &self.out_proj,
            self.gated_norm(y_b1i, projected.z_bli),
            self.precision,
        );
        (
            out_b1d.squeeze_dim(1),
            Mamba2State {
                conv_bkc,
                ssm_bhpn,
                window,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Model;
    use crate::testing::{assert_close, random, tiny_config};

    /// The first mixer of a tiny model with two groups and a conv bias, on an autodiff CPU.
    fn mixer(device: &Device) -> Mamba2Mixer {
        let mut config = tiny_config();
        config.ngroups = 2;
        let mut model = Model::init(&config, 3, device).expect("valid config");
        match model.layers.swap_remove(0).mixer {
            crate::block::Mixer::Mamba2(mixer) => mixer,
            crate::block::Mixer::GatedDeltaNet(_) => unreachable!("a Mamba-2 config"),
        }
    }

    fn grad<const D: usize>(tensor: &Tensor<D>, grads: &burn::tensor::Gradients) -> Tensor<D> {
        tensor.grad(grads).expect("tracked")
    }

    /// The host convolution (with its cache, for segments shorter and longer than the cache,
    /// with and without a bias) and its gradients of input, cache, weight and bias match the
    /// tensor ops.
    #[test]
    fn host_conv_matches_the_tensor_ops() {
        let device = Device::flex().autodiff();
        let (channels, width) = (24, 4);
        let weight = random([channels, width], 8, &device).require_grad();
        let bias = random([channels], 9, &device).require_grad();
        for (len, with_bias) in [(1, true), (2, true), (9, false), (70, true)] {
            let x = random([2, len, channels], 1, &device).require_grad();
            let cache = random([2, width - 1, channels], 2, &device).require_grad();
            let out_weight = random([2, len, channels], 3, &device);
            let cache_weight = random([2, width - 1, channels], 4, &device);
            let run = |host: bool| {
                let args = (
                    x.clone(),
                    cache.clone(),
                    weight.clone(),
                    with_bias.then(|| bias.clone()),
                );
                let new_cache = shift_cache(args.1.clone(), args.0.clone());
                let out = if host {
                    ops::conv_silu(args.0, args.1, args.2, args.3)
                } else {
                    ops::conv_silu_tensor_ops(args.0, args.1, args.2, args.3)
                };
                let loss = (out.clone() * out_weight.clone()).sum()
                    + (new_cache.clone() * cache_weight.clone()).sum();
                let grads = loss.backward();
                (
                    [
                        out.inner(),
                        new_cache.inner(),
                        grad(&x, &grads),
                        grad(&cache, &grads),
                    ],
                    grad(&weight, &grads),
                    bias.grad(&grads),
                )
            };
            let (host, host_weight, host_bias) = run(true);
            let (ops, ops_weight, ops_bias) = run(false);
            for (name, (h, o)) in ["output", "new cache", "d input", "d cache"]
                .iter()
                .zip(host.iter().zip(&ops))
            {
                assert_close(h, o, 1e-5, &format!("{name}, length {len}"));
            }
            assert_close(&host_weight, &ops_weight, 1e-4, "d weight");
            assert_eq!(host_bias.is_some(), with_bias);
            if let (Some(h), Some(o)) = (host_bias, ops_bias) {
                assert_close(&h, &o, 1e-4, "d bias");
            }
        }
    }

    /// The host gated RMSNorm (two groups) and its gradients match the tensor ops.
    #[test]
    fn host_gated_norm_matches_the_tensor_ops() {
        let device = Device::flex().autodiff();
        let mixer = mixer(&device);
        let width = mixer.config.d_inner();
        let y = random([3, 67, width], 5, &device).require_grad();
        let z = (random([3, 67, width], 6, &device) * 3.0)
            .detach()
            .require_grad();
        let out_weight = random([3, 67, width], 7, &device);
        let run = |host: bool| {
            let out = if host {
                mixer.gated_norm(y.clone(), z.clone())
            } else {
                let c = &mixer.config;
                let weight = mixer.norm_weight.val();
                ops::gated_norm_tensor_ops(y.clone(), z.clone(), weight, c.ngroups, c.norm_eps)
            };
            let grads = (out.clone() * out_weight.clone()).sum().backward();
            (
                [out.inner(), grad(&y, &grads), grad(&z, &grads)],
                grad(&mixer.norm_weight.val(), &grads),
            )
        };
        let (host, host_weight) = run(true);
        let (ops, ops_weight) = run(false);
        for (name, (h, o)) in ["output", "d y", "d z"].iter().zip(host.iter().zip(&ops)) {
            assert_close(h, o, 1e-5, name);
        }
        assert_close(&host_weight, &ops_weight, 1e-4, "d weight");
    }
}
