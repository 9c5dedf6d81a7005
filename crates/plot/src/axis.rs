//! Axes: scale, range and tick choice.
//!
//! Every chart draws in "plot space": the value itself on a linear axis, `log10(value)` on a
//! log axis. Doing the log transform here (instead of using a different plotters coordinate
//! type per scale) keeps one drawing path for every chart and lets us choose ticks the way a
//! reader expects: decades for losses, powers of two for context lengths.

use crate::format::{fmt_length, fmt_si, fmt_sig};

/// Linear or logarithmic axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    Log,
}

/// How tick values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickFormat {
    /// Plain numbers (losses, learning rates, norms).
    Number,
    /// Context lengths and positions: `16K`, ticks at powers of two on a log axis.
    Length,
    /// Counts with SI prefixes (tokens consumed, tokens/s).
    Si,
}

/// What a chart asks of an axis.
#[derive(Debug, Clone)]
pub(crate) struct AxisSpec {
    pub label: String,
    pub scale: Scale,
    pub format: TickFormat,
    /// Extend a linear range to include zero.
    pub include_zero: bool,
}

impl AxisSpec {
    pub fn new(label: impl Into<String>, scale: Scale, format: TickFormat) -> Self {
        Self {
            label: label.into(),
            scale,
            format,
            include_zero: false,
        }
    }

    pub fn with_zero(mut self) -> Self {
        self.include_zero = true;
        self
    }

    /// `value` in plot space, or `None` when it cannot be drawn on this axis (NaN, infinite,
    /// or not positive on a log axis).
    pub fn to_plot(&self, value: f64) -> Option<f64> {
        to_plot(self.scale, value)
    }
}

pub(crate) fn to_plot(scale: Scale, value: f64) -> Option<f64> {
    if !value.is_finite() {
        return None;
    }
    match scale {
        Scale::Linear => Some(value),
        Scale::Log if value > 0.0 => Some(value.log10()),
        Scale::Log => None,
    }
}

/// An axis with its range and ticks decided, all in plot space.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedAxis {
    pub label: String,
    pub scale: Scale,
    pub format: TickFormat,
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<f64>,
    pub minor: Vec<f64>,
    /// Decimals for linear `Number` labels, chosen so every tick reads differently.
    decimals: Option<usize>,
}

impl ResolvedAxis {
    /// Fits the axis to `values` (already in plot space and finite). `None` when there are
    /// no values.
    pub fn resolve(spec: &AxisSpec, values: &[f64]) -> Option<Self> {
        let (mut lo, mut hi) =
            values
                .iter()
                .filter(|v| v.is_finite())
                .fold(None, |acc: Option<(f64, f64)>, &v| match acc {
                    None => Some((v, v)),
                    Some((a, b)) => Some((a.min(v), b.max(v))),
                })?;
        let zero_pinned = spec.scale == Scale::Linear && spec.include_zero;
        if zero_pinned {
            lo = lo.min(0.0);
            hi = hi.max(0.0);
        }
        if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
            let pad = match spec.scale {
                Scale::Log => 0.15,
                Scale::Linear => (hi.abs() * 0.1)
                    .max(1e-9)
                    .max(if hi == 0.0 { 1.0 } else { 0.0 }),
            };
            lo -= pad;
            hi += pad;
        } else {
            // Halves first, so that the span of extreme values does not overflow.
            let pad = (hi * 0.5 - lo * 0.5) * 0.08;
            if !(zero_pinned && lo == 0.0) && (lo - pad).is_finite() {
                lo -= pad;
            }
            if !(zero_pinned && hi == 0.0) && (hi + pad).is_finite() {
                hi += pad;
            }
        }
        let (ticks, minor) = ticks(spec.scale, spec.format, lo, hi);
        let decimals = (spec.scale == Scale::Linear && spec.format == TickFormat::Number)
            .then(|| decimals_for(&ticks));
        Some(Self {
            label: spec.label.clone(),
            scale: spec.scale,
            format: spec.format,
            lo,
            hi,
            ticks,
            minor,
            decimals,
        })
    }

    /// The tick label of a plot-space value.
    pub fn label_of(&self, plot_value: f64) -> String {
        let value = match self.scale {
            Scale::Linear => plot_value,
            Scale::Log => 10f64.powf(plot_value),
        };
        match (self.format, self.decimals) {
            (TickFormat::Length, _) => fmt_length(round_near_integer(value)),
            (TickFormat::Si, _) => fmt_si(value),
            (TickFormat::Number, Some(d)) if value.abs() < 1e6 && value.abs() >= 1e-3 => {
                format!("{value:.d$}")
            }
            (TickFormat::Number, Some(_)) if value == 0.0 => "0".to_string(),
            (TickFormat::Number, _) => fmt_sig(value, 3),
        }
    }

    pub fn contains(&self, plot_value: f64) -> bool {
        plot_value >= self.lo - 1e-12 && plot_value <= self.hi + 1e-12
    }
}

fn round_near_integer(v: f64) -> f64 {
    if (v - v.round()).abs() < 1e-6 * v.abs().max(1.0) {
        v.round()
    } else {
        v
    }
}

fn decimals_for(ticks: &[f64]) -> usize {
    (0..=8)
        .find(|&d| {
            let f = 10f64.powi(d);
            ticks
                .iter()
                .all(|t| ((t * f).round() - t * f).abs() < 1e-6 * f.max(1.0))
        })
        .unwrap_or(8) as usize
}

/// A 1-2-2.5-5 step giving about `target` intervals over `span`.
fn nice_step(span: f64, target: f64) -> f64 {
    let raw = span / target;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn multiples(step: f64, lo: f64, hi: f64) -> Vec<f64> {
    if step.is_nan() || step <= 0.0 || !step.is_finite() {
        return Vec::new();
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    if last < first || last - first > 200 {
        return Vec::new();
    }
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            if v.abs() < step * 1e-9 { 0.0 } else { v }
        })
        .collect()
}

fn linear_ticks(format: TickFormat, lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    let step = if format == TickFormat::Length && span >= 64.0 {
        // Powers of two, so that training lengths land on ticks.
        let raw = span / 6.0;
        2f64.powf(raw.log2().ceil())
    } else {
        nice_step(span, 5.0)
    };
    multiples(step, lo, hi)
}

fn ticks(scale: Scale, format: TickFormat, lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    match scale {
        Scale::Linear => (linear_ticks(format, lo, hi), Vec::new()),
        Scale::Log => log_ticks(format, lo, hi),
    }
}

/// Ticks on a log axis whose plot-space range is `[lo, hi]` (log10 units).
fn log_ticks(format: TickFormat, lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let in_range = |v: f64| v >= lo - 1e-12 && v <= hi + 1e-12;
    if format == TickFormat::Length {
        let l2 = 2f64.log10();
        let first = (lo / l2).ceil() as i64;
        let last = (hi / l2).floor() as i64;
        if last - first >= 1 {
            let count = last - first + 1;
            let stride = ((count as f64) / 8.0).ceil().max(1.0) as i64;
            let mut major = Vec::new();
            let mut minor = Vec::new();
            for k in first..=last {
                if (k - first) % stride == 0 {
                    major.push(k as f64 * l2);
                } else {
                    minor.push(k as f64 * l2);
                }
            }
            return (major, minor);
        }
    } else if hi - lo >= 1.0 {
        let first = lo.ceil() as i64;
        let last = hi.floor() as i64;
        let decades = last - first + 1;
        let stride = ((decades as f64) / 8.0).ceil().max(1.0) as i64;
        let mut major = Vec::new();
        let mut minor = Vec::new();
        for k in (first - 1)..=last {
            let base = k as f64;
            if in_range(base) {
                if (k - first) % stride == 0 {
                    major.push(base);
                } else {
                    minor.push(base);
                }
            }
            for m in 2..=9 {
                let v = base + (m as f64).log10();
                if !in_range(v) {
                    continue;
                }
                if decades <= 2 && (m == 2 || m == 5) {
                    major.push(v);
                } else {
                    minor.push(v);
                }
            }
        }
        major.sort_by(f64::total_cmp);
        return (major, minor);
    }
    // Less than a decade (or less than two powers of two): evenly spaced values read best.
    let (vlo, vhi) = (10f64.powf(lo), 10f64.powf(hi));
    let values = multiples(nice_step(vhi - vlo, 4.0), vlo, vhi);
    let major = values
        .into_iter()
        .filter(|v| *v > 0.0)
        .map(f64::log10)
        .collect();
    (major, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(scale: Scale, format: TickFormat, values: &[f64]) -> ResolvedAxis {
        let spec = AxisSpec::new("x", scale, format);
        let plot: Vec<f64> = values.iter().filter_map(|v| spec.to_plot(*v)).collect();
        ResolvedAxis::resolve(&spec, &plot).unwrap()
    }

    #[test]
    fn log_length_axis_ticks_at_powers_of_two() {
        let axis = resolve(Scale::Log, TickFormat::Length, &[64.0, 8192.0]);
        let labels: Vec<String> = axis.ticks.iter().map(|t| axis.label_of(*t)).collect();
        assert_eq!(labels, ["64", "128", "256", "512", "1K", "2K", "4K", "8K"]);
    }

    #[test]
    fn log_number_axis_uses_decades_or_even_values() {
        let wide = resolve(Scale::Log, TickFormat::Number, &[0.01, 50.0]);
        let labels: Vec<String> = wide.ticks.iter().map(|t| wide.label_of(*t)).collect();
        assert_eq!(labels, ["0.01", "0.1", "1", "10"]);
        let narrow = resolve(Scale::Log, TickFormat::Number, &[3.1, 3.9]);
        assert!(narrow.ticks.len() >= 2, "{:?}", narrow.ticks);
        let labels: Vec<String> = narrow.ticks.iter().map(|t| narrow.label_of(*t)).collect();
        assert!(labels.contains(&"3.5".to_string()), "{labels:?}");
    }

    #[test]
    fn linear_axis_includes_zero_and_formats_consistently() {
        let spec = AxisSpec::new("y", Scale::Linear, TickFormat::Number).with_zero();
        let axis = ResolvedAxis::resolve(&spec, &[0.5, 2.25]).unwrap();
        assert_eq!(axis.lo, 0.0);
        let labels: Vec<String> = axis.ticks.iter().map(|t| axis.label_of(*t)).collect();
        assert_eq!(labels[0], "0");
        assert!(
            labels[1..]
                .iter()
                .all(|l| l.split('.').nth(1).map(str::len) == Some(1)),
            "{labels:?}"
        );
    }

    #[test]
    fn single_value_and_non_finite_inputs_are_handled() {
        let spec = AxisSpec::new("y", Scale::Log, TickFormat::Number);
        assert!(spec.to_plot(-1.0).is_none());
        assert!(spec.to_plot(f64::INFINITY).is_none());
        assert!(ResolvedAxis::resolve(&spec, &[]).is_none());
        let one = ResolvedAxis::resolve(&spec, &[0.5]).unwrap();
        assert!(one.lo < one.hi);
    }
}
