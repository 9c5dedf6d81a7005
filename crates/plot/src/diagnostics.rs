//! State diagnostics (paper section 5): how strongly each head decays its state, how long the
//! first token survives, and how the state's statistics drift past the training length.

use forgetlab_runs::results::{Diagnostics, HeadDiagnostics};

use crate::axis::{AxisSpec, Scale, TickFormat};
use crate::canvas::{Layer, Plot, render};
use crate::format::fmt_length;
use crate::heatmap::{Heatmap, four_digits, render_heatmap};
use crate::style::{ColorMap, REFERENCE, series_color};

/// Reads one time series of a head.
type Field = fn(&HeadDiagnostics) -> &Vec<f64>;

/// The name, title and field of each per-head time series.
const SERIES: [(&str, &str, Field); 5] = [
    (
        "log_retention_first",
        "log retention of the first token",
        |h| &h.log_retention_first,
    ),
    ("state_mean", "state mean", |h| &h.state_mean),
    ("state_var", "state variance", |h| &h.state_var),
    ("state_rms", "state RMS", |h| &h.state_rms),
    ("state_norm", "state norm (Frobenius)", |h| &h.state_norm),
];

/// Names of the charts [`diagnostics_charts`] returns, in order.
pub const DIAGNOSTICS_CHARTS: [&str; 6] = [
    "alpha_per_head",
    "log_retention_first",
    "state_mean",
    "state_var",
    "state_rms",
    "state_norm",
];

/// Every diagnostics chart as `(name, svg)`, names as in [`DIAGNOSTICS_CHARTS`]:
/// - `alpha_per_head`: time-mean decay alpha per layer x head (heatmap);
/// - `log_retention_first`: log alpha_{1:t} over positions, one line per head, coloured by layer;
/// - `state_mean`, `state_var`, `state_rms`, `state_norm`: the state statistic over positions,
///   averaged over the heads of each layer (one line per layer).
///
/// The training length is marked on every time-series chart.
pub fn diagnostics_charts(d: &Diagnostics) -> Vec<(String, String)> {
    let mut charts = vec![("alpha_per_head".to_string(), alpha_heatmap(d))];
    for (name, title, field) in SERIES {
        let svg = if name == "log_retention_first" {
            per_head_chart(d, name, title, field)
        } else {
            per_layer_chart(d, name, title, field)
        };
        charts.push((name.to_string(), svg));
    }
    charts
}

fn subtitle(d: &Diagnostics) -> String {
    let mut s = format!(
        "{} · prompt {} · sampled every {} tokens",
        d.run, d.prompt, d.sample_every
    );
    if !d.mitigation.is_none() {
        s.push_str(&format!(" · mitigation {}", d.mitigation.label()));
    }
    s
}

fn alpha_heatmap(d: &Diagnostics) -> String {
    let heads = d.layers.iter().map(|l| l.heads.len()).max().unwrap_or(0);
    let values: Vec<Vec<Option<f64>>> = d
        .layers
        .iter()
        .map(|l| {
            (0..heads)
                .map(|h| l.heads.get(h).map(|x| x.alpha_time_mean))
                .collect()
        })
        .collect();
    let finite: Vec<f64> = values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (vmin, vmax) = if finite.is_empty() {
        (0.0, 1.0)
    } else if hi - lo < 1e-9 {
        (lo - 1e-3, hi + 1e-3)
    } else {
        (lo, hi)
    };
    let bar_ticks = (0..=4)
        .map(|i| vmin + (vmax - vmin) * i as f64 / 4.0)
        .collect();
    render_heatmap(&Heatmap {
        kind: "diagnostics-alpha",
        title: "Mean decay α per head".to_string(),
        subtitle: Some(subtitle(d)),
        rows: d
            .layers
            .iter()
            .map(|l| format!("layer {}", l.layer))
            .collect(),
        cols: (0..heads).map(|h| format!("h{h}")).collect(),
        values,
        summary: None,
        x_label: "head".to_string(),
        y_label: "layer".to_string(),
        cmap: ColorMap::Viridis,
        vmin,
        vmax,
        bar_ticks,
        format: four_digits,
        width: 760,
        empty_reason: "no decay statistics recorded".to_string(),
    })
}

fn time_plot(d: &Diagnostics, kind: &'static str, title: &str) -> Plot {
    let mut plot = Plot::new(
        kind,
        title.to_string(),
        AxisSpec::new("token position", Scale::Linear, TickFormat::Length),
        AxisSpec::new(title.to_string(), Scale::Linear, TickFormat::Number),
    );
    plot.subtitle = Some(subtitle(d));
    plot.empty_reason = format!("no {title} samples recorded");
    plot
}

fn mark_train_len(plot: &mut Plot, d: &Diagnostics) {
    if d.seq_len > 0 {
        plot.layers.push(Layer::vline(
            d.seq_len as f64,
            Some(format!("T_train = {}", fmt_length(d.seq_len as f64))),
            REFERENCE,
        ));
    }
}

fn series(positions: &[usize], values: &[f64]) -> Vec<(f64, f64)> {
    positions
        .iter()
        .zip(values)
        .map(|(&p, &v)| (p as f64, v))
        .collect()
}

fn per_head_chart(d: &Diagnostics, name: &str, title: &str, field: Field) -> String {
    let mut plot = time_plot(d, kind_of(name), title);
    let many = d.layers.iter().map(|l| l.heads.len()).sum::<usize>() > 12;
    for (li, layer) in d.layers.iter().enumerate() {
        for (hi, head) in layer.heads.iter().enumerate() {
            let mut line = Layer::line(series(&d.positions, field(head)), series_color(li))
                .width(if many { 1 } else { 2 })
                .opacity(if many { 0.55 } else { 0.9 });
            if hi == 0 {
                line = line.labeled(format!("layer {}", layer.layer));
            }
            plot.layers.push(line);
        }
    }
    mark_train_len(&mut plot, d);
    render(&plot)
}

fn per_layer_chart(d: &Diagnostics, name: &str, title: &str, field: Field) -> String {
    let mut plot = time_plot(d, kind_of(name), title);
    for (li, layer) in d.layers.iter().enumerate() {
        let mean: Vec<f64> = (0..d.positions.len())
            .map(|t| {
                let vals: Vec<f64> = layer
                    .heads
                    .iter()
                    .filter_map(|h| field(h).get(t).copied())
                    .filter(|v| v.is_finite())
                    .collect();
                if vals.is_empty() {
                    f64::NAN
                } else {
                    vals.iter().sum::<f64>() / vals.len() as f64
                }
            })
            .collect();
        plot.layers.push(
            Layer::line(series(&d.positions, &mean), series_color(li))
                .labeled(format!("layer {} (head mean)", layer.layer)),
        );
    }
    mark_train_len(&mut plot, d);
    render(&plot)
}

fn kind_of(name: &str) -> &'static str {
    match name {
        "log_retention_first" => "diagnostics-log-retention",
        "state_mean" => "diagnostics-state-mean",
        "state_var" => "diagnostics-state-var",
        "state_rms" => "diagnostics-state-rms",
        _ => "diagnostics-state-norm",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use forgetlab_runs::config::Mitigation;
    use forgetlab_runs::results::LayerDiagnostics;

    fn head(h: usize, n: usize) -> HeadDiagnostics {
        let alpha = 0.9 + 0.02 * h as f64;
        HeadDiagnostics {
            head: h,
            alpha_mean: vec![alpha; n],
            log_retention_first: (1..=n).map(|t| t as f64 * alpha.ln()).collect(),
            state_mean: (0..n).map(|t| 0.01 * t as f64).collect(),
            state_var: (0..n).map(|t| 1.0 + 0.1 * t as f64).collect(),
            state_rms: vec![1.0; n],
            state_norm: (0..n)
                .map(|t| if t == 3 { f64::NAN } else { 2.0 })
                .collect(),
            alpha_time_mean: alpha,
            memory_length: -1.0 / alpha.ln(),
            memory_max: None,
        }
    }

    #[test]
    fn every_named_chart_is_produced() {
        let n = 8;
        let d = Diagnostics {
            run: "r".into(),
            prompt: "text".into(),
            seq_len: 128,
            length: 512,
            sample_every: 64,
            positions: (1..=n).map(|i| i * 64).collect(),
            layers: (0..2)
                .map(|l| LayerDiagnostics {
                    layer: l,
                    heads: (0..4).map(|h| head(h, n)).collect(),
                })
                .collect(),
            mitigation: Mitigation::default(),
        };
        let charts = diagnostics_charts(&d);
        let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, DIAGNOSTICS_CHARTS);
        for (name, svg) in &charts {
            assert!(!svg.contains("no data"), "{name} has no data");
            assert!(svg.contains("<svg"), "{name}");
        }
        assert!(charts[1].1.contains("T_train = 128"));
        assert!(
            crate::has_text(&charts[0].1, "0.94"),
            "alpha value labels missing"
        );
    }

    #[test]
    fn empty_diagnostics_give_no_data_charts() {
        let d = Diagnostics {
            run: "r".into(),
            prompt: "text".into(),
            seq_len: 128,
            length: 0,
            sample_every: 64,
            positions: vec![],
            layers: vec![],
            mitigation: Mitigation::default(),
        };
        let charts = diagnostics_charts(&d);
        assert_eq!(charts.len(), DIAGNOSTICS_CHARTS.len());
        assert!(charts.iter().all(|(_, svg)| svg.contains("no data")));
    }
}
