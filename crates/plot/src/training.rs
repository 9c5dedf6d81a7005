//! Training curves from `metrics.jsonl`: loss (train and validation), learning rate, gradient
//! norm and throughput against tokens consumed, for one run or several overlaid.

use forgetlab_runs::{MetricKind, MetricRecord};

use crate::axis::{AxisSpec, Scale, TickFormat};
use crate::canvas::{DEFAULT_SIZE, Layer, Marker, Plot, render};
use crate::style::{REFERENCE, series_color};

/// Which training chart to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingChart {
    /// Train loss (raw and smoothed) and validation loss.
    Loss,
    LearningRate,
    /// Global gradient norm before clipping.
    GradNorm,
    /// Training tokens per second.
    Throughput,
}

impl TrainingChart {
    pub const ALL: [TrainingChart; 4] = [
        TrainingChart::Loss,
        TrainingChart::LearningRate,
        TrainingChart::GradNorm,
        TrainingChart::Throughput,
    ];

    /// Short name used in URLs and file names (`loss`, `lr`, `grad_norm`, `throughput`).
    pub fn slug(self) -> &'static str {
        match self {
            TrainingChart::Loss => "loss",
            TrainingChart::LearningRate => "lr",
            TrainingChart::GradNorm => "grad_norm",
            TrainingChart::Throughput => "throughput",
        }
    }

    pub fn from_slug(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.slug() == s)
    }

    fn title(self) -> &'static str {
        match self {
            TrainingChart::Loss => "Training loss",
            TrainingChart::LearningRate => "Learning rate",
            TrainingChart::GradNorm => "Gradient norm",
            TrainingChart::Throughput => "Throughput",
        }
    }

    /// Whether a log y axis is the sensible default.
    pub fn default_log_y(self) -> bool {
        matches!(self, TrainingChart::Loss | TrainingChart::GradNorm)
    }
}

/// One run's metrics, labelled for the legend.
#[derive(Debug, Clone, Copy)]
pub struct RunMetrics<'a> {
    pub label: &'a str,
    pub records: &'a [MetricRecord],
}

/// Options of [`training_curves`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingOptions {
    /// Title override (default: the chart's name).
    pub title: Option<String>,
    pub subtitle: Option<String>,
    /// Exponential moving average weight on the past, in [0, 1): 0 = raw values only; the
    /// smoothed curve is bias-corrected like TensorBoard's.
    pub smoothing: f64,
    pub log_x: bool,
    pub log_y: bool,
    pub size: (u32, u32),
}

impl Default for TrainingOptions {
    fn default() -> Self {
        Self {
            title: None,
            subtitle: None,
            smoothing: 0.6,
            log_x: true,
            log_y: true,
            size: DEFAULT_SIZE,
        }
    }
}

impl TrainingOptions {
    /// The defaults for `chart` (log y only where it helps).
    pub fn for_chart(chart: TrainingChart) -> Self {
        Self {
            log_y: chart.default_log_y(),
            ..Self::default()
        }
    }
}

/// Bias-corrected exponential moving average that skips non-finite values (they stay NaN).
pub fn ema(values: &[f64], weight: f64) -> Vec<f64> {
    let w = if weight.is_finite() {
        weight.clamp(0.0, 0.999)
    } else {
        0.0
    };
    let mut acc = 0.0;
    let mut norm = 0.0;
    values
        .iter()
        .map(|&v| {
            if !v.is_finite() {
                return f64::NAN;
            }
            acc = w * acc + (1.0 - w) * v;
            norm = w * norm + (1.0 - w);
            acc / norm
        })
        .collect()
}

/// A training chart of one or several runs against tokens consumed. Missing optional fields
/// (no `lr` logged, ...) and non-finite values are skipped; no drawable value gives a "no data"
/// chart.
pub fn training_curves(
    runs: &[RunMetrics],
    which: TrainingChart,
    opts: &TrainingOptions,
) -> String {
    let scale = |log: bool| if log { Scale::Log } else { Scale::Linear };
    let (y_label, y_format) = match which {
        TrainingChart::Loss => ("loss (nats)", TickFormat::Number),
        TrainingChart::LearningRate => ("learning rate", TickFormat::Number),
        TrainingChart::GradNorm => ("gradient norm", TickFormat::Number),
        TrainingChart::Throughput => ("tokens / s", TickFormat::Si),
    };
    let mut y = AxisSpec::new(y_label, scale(opts.log_y), y_format);
    if matches!(
        which,
        TrainingChart::LearningRate | TrainingChart::Throughput
    ) {
        y = y.with_zero();
    }
    let mut plot = Plot::new(
        match which {
            TrainingChart::Loss => "training-loss",
            TrainingChart::LearningRate => "training-lr",
            TrainingChart::GradNorm => "training-grad-norm",
            TrainingChart::Throughput => "training-throughput",
        },
        opts.title
            .clone()
            .unwrap_or_else(|| which.title().to_string()),
        AxisSpec::new("tokens", scale(opts.log_x), TickFormat::Si),
        y,
    );
    plot.subtitle = opts.subtitle.clone();
    plot.size = opts.size;
    plot.empty_reason = if runs.iter().all(|r| r.records.is_empty()) {
        "no metrics logged yet".to_string()
    } else {
        format!("no {} values logged", which.title().to_lowercase())
    };
    let several = runs.len() > 1;
    let mut any_validation = false;
    let smooth = opts.smoothing > 0.0;
    for (i, run) in runs.iter().enumerate() {
        let color = series_color(if several { i } else { 0 });
        let train: Vec<&MetricRecord> = run
            .records
            .iter()
            .filter(|r| r.kind == MetricKind::Train)
            .collect();
        let field = |r: &MetricRecord| match which {
            TrainingChart::Loss => Some(r.loss),
            TrainingChart::LearningRate => r.lr,
            TrainingChart::GradNorm => r.grad_norm,
            TrainingChart::Throughput => r.tokens_per_s,
        };
        let xs: Vec<f64> = train.iter().map(|r| r.tokens as f64).collect();
        let ys: Vec<f64> = train.iter().map(|r| field(r).unwrap_or(f64::NAN)).collect();
        let raw: Vec<(f64, f64)> = xs.iter().copied().zip(ys.iter().copied()).collect();
        let name = |what: &str| {
            if several {
                run.label.to_string()
            } else {
                what.to_string()
            }
        };
        // The learning rate is a schedule, not a noisy measurement: never smoothed.
        let smoothable = smooth && which != TrainingChart::LearningRate;
        let what = if which == TrainingChart::Loss {
            "train"
        } else {
            ""
        };
        if smoothable {
            let mut faint = Layer::line(raw.clone(), color).width(1).opacity(0.25);
            if !several {
                faint = faint.labeled(format!("{what} raw").trim().to_string());
            }
            plot.layers.push(faint);
            let smoothed: Vec<(f64, f64)> =
                xs.iter().copied().zip(ema(&ys, opts.smoothing)).collect();
            plot.layers.push(
                Layer::line(smoothed, color)
                    .labeled(name(format!("{what} EMA {}", opts.smoothing).trim())),
            );
        } else {
            let line = Layer::line(raw, color);
            // A single unsmoothed series needs no legend.
            plot.layers
                .push(if several || which == TrainingChart::Loss {
                    line.labeled(name(if what.is_empty() { "value" } else { what }))
                } else {
                    line
                });
        }
        if which == TrainingChart::Loss {
            let val: Vec<(f64, f64)> = run
                .records
                .iter()
                .filter(|r| r.kind == MetricKind::Val)
                .map(|r| (r.tokens as f64, r.loss))
                .collect();
            if !val.is_empty() {
                any_validation = true;
                let val_color = if several { color } else { series_color(1) };
                plot.layers
                    .push(Layer::line(val.clone(), val_color).dashed().width(1));
                let markers = Layer::markers(val, Marker::Ring, val_color);
                // Overlaid runs share one legend entry for validation (below).
                plot.layers.push(if several {
                    markers
                } else {
                    markers.labeled("validation")
                });
            }
        }
    }
    if several && any_validation {
        plot.layers.push(
            Layer::markers(Vec::new(), Marker::Ring, REFERENCE)
                .labeled("validation (rings, dashed)"),
        );
    }
    render(&plot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: MetricKind, step: u64, loss: f64) -> MetricRecord {
        MetricRecord {
            kind,
            step,
            tokens: step * 1000,
            loss,
            lr: (kind == MetricKind::Train).then_some(1e-3),
            grad_norm: Some(0.5 + step as f64 * 0.01),
            tokens_per_s: None,
            elapsed_s: step as f64,
        }
    }

    #[test]
    fn ema_is_bias_corrected_and_skips_nan() {
        let s = ema(&[2.0, 2.0, f64::NAN, 2.0], 0.9);
        assert!((s[0] - 2.0).abs() < 1e-12 && (s[1] - 2.0).abs() < 1e-12);
        assert!(s[2].is_nan());
        assert!((s[3] - 2.0).abs() < 1e-12);
        assert_eq!(ema(&[1.0, 3.0], 0.0), vec![1.0, 3.0]);
    }

    #[test]
    fn loss_chart_has_train_and_validation() {
        let mut records: Vec<MetricRecord> = (1..50)
            .map(|s| record(MetricKind::Train, s, 5.0 / s as f64))
            .collect();
        records.push(record(MetricKind::Val, 25, 0.3));
        records.push(record(MetricKind::Val, 49, 0.2));
        records[10].loss = f64::NAN;
        let run = [RunMetrics {
            label: "run",
            records: &records,
        }];
        let svg = training_curves(&run, TrainingChart::Loss, &TrainingOptions::default());
        assert!(
            crate::has_text(&svg, "train EMA 0.6")
                && crate::has_text(&svg, "train raw")
                && crate::has_text(&svg, "validation"),
            "{svg}"
        );
        assert!(svg.contains("data-chart=\"training-loss\""));
        // Throughput was never logged: the chart says so instead of drawing nothing.
        let tp = training_curves(&run, TrainingChart::Throughput, &TrainingOptions::default());
        assert!(tp.contains("no data") && tp.contains("no throughput values logged"));
        let lr = training_curves(
            &run,
            TrainingChart::LearningRate,
            &TrainingOptions::for_chart(TrainingChart::LearningRate),
        );
        assert!(!lr.contains("no data"));
        let empty = training_curves(&[], TrainingChart::Loss, &TrainingOptions::default());
        assert!(empty.contains("no metrics logged yet"));
    }

    #[test]
    fn several_runs_get_labelled_lines() {
        let a: Vec<MetricRecord> = (1..10).map(|s| record(MetricKind::Train, s, 3.0)).collect();
        let b: Vec<MetricRecord> = (1..10).map(|s| record(MetricKind::Train, s, 2.0)).collect();
        let runs = [
            RunMetrics {
                label: "len 1K",
                records: &a,
            },
            RunMetrics {
                label: "len 2K",
                records: &b,
            },
        ];
        let svg = training_curves(&runs, TrainingChart::GradNorm, &TrainingOptions::default());
        assert!(crate::has_text(&svg, "len 1K") && crate::has_text(&svg, "len 2K"));
        assert_eq!(
            TrainingChart::from_slug("grad_norm"),
            Some(TrainingChart::GradNorm)
        );
    }
}
