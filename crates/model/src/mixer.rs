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

use crate::host_ops::{self, on_host, silu};
use crate::precision::{self, Precision};
use crate::ssd::{ScanInputs, WindowState, scan_chunked, scan_step, window_correction};
use crate::{Mamba2Config, ScanHooks};

/// A mixer's recurrent state: everything it needs to continue a sequence.
#[derive(Debug, Clone)]
pub struct LayerState {
    /// Last `d_conv - 1` pre-convolution xBC columns: [batch, d_conv - 1, conv_dim].
    pub conv_bkc: Tensor<3>,
    /// SSM state: [batch, heads, headdim, d_state].
    pub ssm_bhpn: Tensor<4>,
    /// Sliding-window read-out state, present only while that intervention is active.
    pub window: Option<WindowState>,
}

impl LayerState {
    /// The zero state that starts every sequence.
    pub fn zeros(config: &Mamba2Config, batch: usize, device: &Device) -> Self {
        Self {
            conv_bkc: Tensor::zeros([batch, config.d_conv - 1, config.conv_dim()], device),
            ssm_bhpn: Tensor::zeros(
                [batch, config.nheads(), config.headdim, config.d_state],
                device,
            ),
            window: None,
        }
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
pub struct LayerTrace {
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

/// The Mamba-2 mixer module. Parameter names mirror `mamba_ssm`.
#[derive(Module, Debug)]
pub struct Mixer {
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
    pub config: Mamba2Config,
    /// Precision of the in_proj and out_proj products (see [`crate::precision`]).
    #[module(skip)]
    pub precision: Precision,
}

/// The pieces of in_proj's output for a segment.
struct Projected {
    all_blx: Tensor<3>,
    z_bli: Tensor<3>,
    xbc_blc: Tensor<3>,
    dt_blh: Tensor<3>,
}

impl Mixer {
    fn project(&self, u_bld: Tensor<3>) -> Projected {
        let c = &self.config;
        let d_inner = c.d_inner();
        let all_blx = precision::linear(&self.in_proj, u_bld, self.precision);
        let mut parts = all_blx
            .clone()
            .split_with_sizes(vec![d_inner, c.conv_dim(), c.nheads()], 2)
            .into_iter();
        let (Some(z_bli), Some(xbc_blc), Some(dt_blh)) = (parts.next(), parts.next(), parts.next())
        else {
            unreachable!("split_with_sizes returns one tensor per size")
        };
        Projected {
            all_blx,
            z_bli,
            xbc_blc,
            dt_blh,
        }
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

    /// Splits the activated xBC ([b, l, conv_dim]) into x [b, l, heads, headdim] and
    /// B, C [b, l, groups, d_state].
    fn split_xbc(
        &self,
        xbc_blc: Tensor<3>,
        hooks: &ScanHooks,
    ) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let c = &self.config;
        let [batch, len, _] = xbc_blc.dims();
        let bc_width = c.ngroups * c.d_state;
        let mut parts = xbc_blc
            .split_with_sizes(vec![c.d_inner(), bc_width, bc_width], 2)
            .into_iter();
        let (Some(x), Some(b), Some(cc)) = (parts.next(), parts.next(), parts.next()) else {
            unreachable!("split_with_sizes returns one tensor per size")
        };
        let x_blhp = x.reshape([batch, len, c.nheads(), c.headdim]);
        let mut b_blgn = b.reshape([batch, len, c.ngroups, c.d_state]);
        if let Some(lambda) = hooks.rri_b {
            b_blgn = b_blgn * lambda;
        }
        let c_blgn = cc.reshape([batch, len, c.ngroups, c.d_state]);
        (x_blhp, b_blgn, c_blgn)
    }

    /// y·silu(z), normalised by RMS within each group of d_inner / ngroups channels, times
    /// the norm weight (mamba_ssm's RMSNormGated with norm_before_gate = False).
    fn gated_norm(&self, y_bli: Tensor<3>, z_bli: Tensor<3>) -> Tensor<3> {
        let c = &self.config;
        let weight = self.norm_weight.val();
        if on_host(&y_bli) && on_host(&z_bli) && on_host(&weight) {
            return host_ops::gated_norm(y_bli, z_bli, weight, c.ngroups, c.norm_eps);
        }
        self.gated_norm_ops(y_bli, z_bli)
    }

    /// [`Mixer::gated_norm`] in tensor ops, for every backend.
    fn gated_norm_ops(&self, y_bli: Tensor<3>, z_bli: Tensor<3>) -> Tensor<3> {
        let c = &self.config;
        let [batch, len, d_inner] = y_bli.dims();
        let gated_blgi: Tensor<4> =
            (y_bli * silu(z_bli)).reshape([batch, len, c.ngroups, d_inner / c.ngroups]);
        rms_normalize(gated_blgi, c.norm_eps).reshape([batch, len, d_inner])
            * self.norm_weight.val().reshape([1, 1, d_inner])
    }

    /// Causal depthwise convolution over `cache ++ xbc`, returning the activated outputs and
    /// the new cache.
    fn conv(&self, xbc_blc: Tensor<3>, cache_bkc: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let weight_ck = self.conv_weight.val();
        let bias_c = self.conv_bias.as_ref().map(|b| b.val());
        let on_cpu = on_host(&xbc_blc)
            && on_host(&cache_bkc)
            && on_host(&weight_ck)
            && bias_c.as_ref().is_none_or(on_host);
        if !on_cpu {
            return self.conv_ops(xbc_blc, cache_bkc);
        }
        let [_, len, _] = xbc_blc.dims();
        let context = self.config.d_conv - 1;
        // The last `context` rows of `cache ++ xbc`.
        let new_cache = if len >= context {
            xbc_blc.clone().narrow(1, len - context, context)
        } else {
            Tensor::cat(
                vec![
                    cache_bkc.clone().narrow(1, len, context - len),
                    xbc_blc.clone(),
                ],
                1,
            )
        };
        let out = host_ops::conv_silu(xbc_blc, cache_bkc, weight_ck, bias_c);
        (out, new_cache)
    }

    /// [`Mixer::conv`] in tensor ops, for every backend.
    fn conv_ops(&self, xbc_blc: Tensor<3>, cache_bkc: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let c = &self.config;
        let [_, len, channels] = xbc_blc.dims();
        let context = c.d_conv - 1;
        let padded_btc = Tensor::cat(vec![cache_bkc, xbc_blc], 1);
        let new_cache = padded_btc.clone().narrow(1, len, context);
        let weight_ck = self.conv_weight.val();
        let mut out = padded_btc
            .clone()
            .narrow(1, 0, len)
            .mul(weight_ck.clone().narrow(1, 0, 1).reshape([1, 1, channels]));
        for k in 1..c.d_conv {
            out = out
                + padded_btc
                    .clone()
                    .narrow(1, k, len)
                    .mul(weight_ck.clone().narrow(1, k, 1).reshape([1, 1, channels]));
        }
        if let Some(bias) = &self.conv_bias {
            out = out + bias.val().reshape([1, 1, channels]);
        }
        (silu(out), new_cache)
    }

    /// Processes a segment `u_bld` ([batch, length, d_model]) from `state` (chunked SSD).
    pub fn forward(
        &self,
        u_bld: Tensor<3>,
        state: LayerState,
        hooks: &ScanHooks,
        trace: Option<&mut Vec<LayerTrace>>,
    ) -> (Tensor<3>, LayerState) {
        let c = &self.config;
        let [batch, len, _] = u_bld.dims();
        let projected = self.project(u_bld);
        let (xbc_blc, conv_bkc) = self.conv(projected.xbc_blc, state.conv_bkc);
        let (x_blhp, b_blgn, c_blgn) = self.split_xbc(xbc_blc, hooks);
        let (dt_blh, log_alpha_blh) = self.discretize(projected.dt_blh, hooks);
        let inputs = ScanInputs {
            x_blhp: x_blhp.clone(),
            dt_blh,
            log_alpha_blh: log_alpha_blh.clone(),
            b_blgn,
            c_blgn,
        };
        let (y_blhp, window) = self.windowed(&inputs, state.window, hooks, batch);
        let (y_full_blhp, ssm_bhpn) = scan_chunked(inputs, state.ssm_bhpn, c.chunk_size);
        let y_blhp = match y_blhp {
            Some(correction) => y_full_blhp - correction,
            None => y_full_blhp,
        };
        let y_blhp = y_blhp + x_blhp * self.d.val().reshape([1, 1, c.nheads(), 1]);
        let y_bli = y_blhp.reshape([batch, len, c.d_inner()]);
        let normed_bli = self.gated_norm(y_bli.clone(), projected.z_bli.clone());
        let out_bld = precision::linear(&self.out_proj, normed_bli.clone(), self.precision);
        if let Some(trace) = trace {
            trace.push(LayerTrace {
                in_proj_bld: projected.all_blx,
                log_alpha_blh,
                scan_y_bli: y_bli,
                gate_z_bli: projected.z_bli,
                gated_norm_bli: normed_bli,
                out_bld: out_bld.clone(),
            });
        }
        (
            out_bld,
            LayerState {
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
        state: LayerState,
        hooks: &ScanHooks,
    ) -> (Tensor<2>, LayerState) {
        let c = &self.config;
        let [batch, _] = u_bd.dims();
        let projected = self.project(u_bd.unsqueeze_dim::<3>(1));
        let (xbc_b1c, conv_bkc) = self.conv(projected.xbc_blc, state.conv_bkc);
        let (x_b1hp, b_b1gn, c_b1gn) = self.split_xbc(xbc_b1c, hooks);
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
            LayerState {
                conv_bkc,
                ssm_bhpn,
                window,
            },
        )
    }
}

/// x / sqrt(mean(x², last dim) + eps).
pub fn rms_normalize<const D: usize>(x: Tensor<D>, eps: f64) -> Tensor<D> {
    let rstd = (x.clone().square().mean_dim(D - 1) + eps).sqrt().recip();
    x * rstd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mamba2;
    use crate::testing::{assert_close, random, tiny_config};

    /// The first mixer of a tiny model with two groups and a conv bias, on an autodiff CPU.
    fn mixer(device: &Device) -> Mixer {
        let mut config = tiny_config();
        config.ngroups = 2;
        let mut model = Mamba2::init(&config, 3, device).expect("valid config");
        model.layers.swap_remove(0).mixer
    }

    fn grad<const D: usize>(tensor: &Tensor<D>, grads: &burn::tensor::Gradients) -> Tensor<D> {
        tensor.grad(grads).expect("tracked")
    }

    /// The host convolution (with its cache, for segments shorter and longer than the cache)
    /// and its gradients of input, cache, weight and bias match the tensor ops.
    #[test]
    fn host_conv_matches_the_tensor_ops() {
        let device = Device::flex().autodiff();
        let mixer = mixer(&device);
        let (channels, context) = (mixer.config.conv_dim(), mixer.config.d_conv - 1);
        assert!(mixer.conv_bias.is_some());
        for len in [1, 2, 9, 70] {
            let x = random([2, len, channels], 1, &device).require_grad();
            let cache = random([2, context, channels], 2, &device).require_grad();
            let out_weight = random([2, len, channels], 3, &device);
            let cache_weight = random([2, context, channels], 4, &device);
            let run = |host: bool| {
                let (out, new_cache) = if host {
                    mixer.conv(x.clone(), cache.clone())
                } else {
                    mixer.conv_ops(x.clone(), cache.clone())
                };
                let loss = (out.clone() * out_weight.clone()).sum()
                    + (new_cache.clone() * cache_weight.clone()).sum();
                let grads = loss.backward();
                let bias = mixer.conv_bias.as_ref().expect("bias").val();
                (
                    [
                        out.inner(),
                        new_cache.inner(),
                        grad(&x, &grads),
                        grad(&cache, &grads),
                    ],
                    grad(&mixer.conv_weight.val(), &grads),
                    grad(&bias, &grads),
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
            assert_close(&host_bias, &ops_bias, 1e-4, "d bias");
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
                mixer.gated_norm_ops(y.clone(), z.clone())
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
