//! Loss against token position, the paper's central picture: a run that learned to forget
//! keeps a flat curve past its training length (dashed line), one that did not blows up.

use forgetlab_runs::results::{PerPositionReport, RangeSamples};

use crate::axis::{AxisSpec, Scale, TickFormat};
use crate::canvas::{DEFAULT_SIZE, Layer, Plot, render};
use crate::format::fmt_length;
use crate::style::{REFERENCE, series_color};

/// Which per-position quantity a curve holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PositionQuantity {
    /// Model loss in nats.
    #[default]
    Loss,
    /// Model loss minus the position-matched n-gram baseline.
    Excess,
}

impl PositionQuantity {
    /// The y-axis label.
    pub fn axis_label(self) -> &'static str {
        match self {
            PositionQuantity::Loss => "loss (nats)",
            PositionQuantity::Excess => "loss − n-gram baseline (nats)",
        }
    }

    /// Parses `loss` / `excess` (query strings, CLI flags).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "loss" | "raw" => Some(Self::Loss),
            "excess" => Some(Self::Excess),
            _ => None,
        }
    }
}

/// One curve on a per-position chart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabeledCurve {
    pub label: String,
    /// (token position, value); non-finite values are skipped.
    pub points: Vec<(f64, f64)>,
    /// Standard error per point (parallel to `points`), drawn as a band when shown.
    pub stderr: Vec<f64>,
    /// The n-gram baseline at the same positions, drawn dashed when shown.
    pub baseline: Vec<(f64, f64)>,
    /// The run's training length; its marker line takes the curve's colour.
    pub train_len: Option<usize>,
    /// The verdict's ranges: `(start, end, low, high)`, each range's mean ± 2 standard errors
    /// across its windows, drawn as shaded boxes.
    pub range_bands: Vec<(f64, f64, f64, f64)>,
}

/// Each verdict range's mean ± 2 standard errors across its windows, for `quantity`.
fn range_bands(samples: &RangeSamples, quantity: PositionQuantity) -> Vec<(f64, f64, f64, f64)> {
    samples
        .ranges
        .iter()
        .filter(|r| r.windows >= 2)
        .filter_map(|r| {
            let (mean, sd) = match quantity {
                PositionQuantity::Loss => (r.mean, r.sd),
                PositionQuantity::Excess => {
                    let b = r.ngram.as_ref()?;
                    (r.mean - b.mean, b.excess_sd)
                }
            };
            let half = 2.0 * sd / (r.windows as f64).sqrt();
            Some((r.start as f64, r.end as f64, mean - half, mean + half))
        })
        .filter(|b| b.2.is_finite() && b.3.is_finite())
        .collect()
}

impl LabeledCurve {
    /// The curve of one prompt of a per-position report (`None` if the prompt is absent).
    /// x is the bucket centre.
    pub fn from_report(
        report: &PerPositionReport,
        prompt: &str,
        quantity: PositionQuantity,
        label: impl Into<String>,
    ) -> Option<Self> {
        let curve = report.curves.iter().find(|c| c.prompt == prompt)?;
        let centre = |start: usize, end: usize| (start + end) as f64 / 2.0;
        let mut points = Vec::new();
        let mut stderr = Vec::new();
        let mut baseline = Vec::new();
        for b in &curve.buckets {
            let x = centre(b.start, b.end);
            let value = match quantity {
                PositionQuantity::Loss => b.loss,
                PositionQuantity::Excess => b.excess().unwrap_or(f64::NAN),
            };
            points.push((x, value));
            stderr.push(match quantity {
                PositionQuantity::Loss => b.stderr,
                PositionQuantity::Excess => b.excess_stderr.unwrap_or(b.stderr),
            });
            if quantity == PositionQuantity::Loss
                && let Some(n) = b.ngram
            {
                baseline.push((x, n));
            }
        }
        let range_bands = curve
            .ranges
            .as_ref()
            .map(|r| range_bands(r, quantity))
            .unwrap_or_default();
        Some(Self {
            label: label.into(),
            points,
            stderr,
            baseline,
            train_len: Some(report.seq_len),
            range_bands,
        })
    }

    /// Every prompt of a report, labelled by prompt name.
    pub fn all_from_report(report: &PerPositionReport, quantity: PositionQuantity) -> Vec<Self> {
        report
            .curves
            .iter()
            .filter_map(|c| Self::from_report(report, &c.prompt, quantity, c.prompt.clone()))
            .collect()
    }
}

/// Options of [`loss_vs_position`].
#[derive(Debug, Clone, PartialEq)]
pub struct CurveOptions {
    pub title: String,
    pub subtitle: Option<String>,
    /// What the curves hold (sets the y label).
    pub quantity: PositionQuantity,
    /// Log-scaled position axis (ticks at powers of two).
    pub log_x: bool,
    /// Draw ±1 standard error bands.
    pub show_stderr: bool,
    /// Draw the curves' n-gram baselines (dashed).
    pub show_baseline: bool,
    pub size: (u32, u32),
}

impl Default for CurveOptions {
    fn default() -> Self {
        Self {
            title: "Loss by token position".to_string(),
            subtitle: None,
            quantity: PositionQuantity::Loss,
            log_x: false,
            show_stderr: true,
            show_baseline: true,
            size: DEFAULT_SIZE,
        }
    }
}

/// Per-position evaluation loss: one line per curve, training lengths marked by dashed
/// vertical lines (in the colour of the curve trained at that length when exactly one curve
/// is, grey otherwise), optional stderr bands and n-gram baselines.
pub fn loss_vs_position(
    curves: &[LabeledCurve],
    train_lens: &[usize],
    opts: &CurveOptions,
) -> String {
    let mut plot = Plot::new(
        "loss-vs-position",
        opts.title.clone(),
        AxisSpec::new(
            "token position",
            if opts.log_x {
                Scale::Log
            } else {
                Scale::Linear
            },
            TickFormat::Length,
        ),
        AxisSpec::new(
            opts.quantity.axis_label(),
            Scale::Linear,
            TickFormat::Number,
        ),
    );
    plot.subtitle = opts.subtitle.clone();
    plot.size = opts.size;
    plot.empty_reason = if curves.is_empty() {
        "no per-position evaluation yet (run `forgetlab eval`)".to_string()
    } else {
        "the per-position curves have no finite values".to_string()
    };
    for (i, curve) in curves.iter().enumerate() {
        let color = series_color(i);
        if opts.show_stderr && curve.stderr.len() == curve.points.len() {
            let band: Vec<(f64, f64, f64)> = curve
                .points
                .iter()
                .zip(&curve.stderr)
                .filter(|(_, s)| s.is_finite() && **s > 0.0)
                .map(|(&(x, y), &s)| (x, y - s, y + s))
                .collect();
            if band.len() >= 2 {
                plot.layers.push(Layer::band(band, color, 0.15));
            }
        }
        for &(x0, x1, low, high) in &curve.range_bands {
            plot.layers.push(Layer::band(
                vec![(x0, low, high), (x1, low, high)],
                color,
                0.3,
            ));
        }
        if opts.show_baseline && !curve.baseline.is_empty() {
            plot.layers.push(
                Layer::line(curve.baseline.clone(), color)
                    .dashed()
                    .width(1)
                    .opacity(0.8)
                    .labeled(format!("{} (n-gram baseline)", curve.label)),
            );
        }
        plot.layers
            .push(Layer::line(curve.points.clone(), color).labeled(curve.label.clone()));
    }
    let mut lens: Vec<usize> = train_lens.to_vec();
    lens.sort_unstable();
    lens.dedup();
    for len in lens {
        let owners: Vec<usize> = curves
            .iter()
            .enumerate()
            .filter(|(_, c)| c.train_len == Some(len))
            .map(|(i, _)| i)
            .collect();
        let color = match owners.as_slice() {
            [one] if curves.len() > 1 => series_color(*one),
            _ => REFERENCE,
        };
        plot.layers.push(Layer::vline(
            len as f64,
            Some(format!("T_train = {}", fmt_length(len as f64))),
            color,
        ));
    }
    render(&plot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use forgetlab_runs::config::Mitigation;
    use forgetlab_runs::results::{LossBucket, LossCurve};

    fn report() -> PerPositionReport {
        let buckets = (0..16)
            .map(|i| LossBucket {
                start: i * 64,
                end: (i + 1) * 64,
                loss: if i < 4 {
                    4.0 - 0.1 * i as f64
                } else {
                    3.6 + 0.2 * (i - 4) as f64
                },
                stderr: 0.05,
                ngram: Some(5.0),
                excess_stderr: Some(0.04),
                reference: None,
            })
            .collect();
        PerPositionReport {
            run: "r".into(),
            seq_len: 256,
            horizon: 1024,
            bucket: 64,
            state_size: 1000,
            mitigation: Mitigation::default(),
            curves: vec![LossCurve {
                prompt: "text".into(),
                sequences: 4,
                buckets,
                ranges: None,
                blocks: None,
            }],
        }
    }

    #[test]
    fn report_curves_mark_training_length_and_baseline() {
        let r = report();
        let curves = LabeledCurve::all_from_report(&r, PositionQuantity::Loss);
        assert_eq!(curves.len(), 1);
        assert_eq!(curves[0].points[0], (32.0, 4.0));
        let svg = loss_vs_position(&curves, &[r.seq_len], &CurveOptions::default());
        assert!(svg.contains("T_train = 256"), "training length not marked");
        assert!(svg.contains("text (n-gram baseline)"));
        assert!(svg.contains("data-chart=\"loss-vs-position\""));
        let log = loss_vs_position(
            &curves,
            &[256],
            &CurveOptions {
                log_x: true,
                quantity: PositionQuantity::Excess,
                ..CurveOptions::default()
            },
        );
        assert!(
            crate::has_text(&log, "1K") && crate::has_text(&log, "512"),
            "log axis should tick at powers of two"
        );
    }

    #[test]
    fn excess_without_baseline_is_no_data() {
        let mut r = report();
        for b in &mut r.curves[0].buckets {
            b.ngram = None;
        }
        let curves = LabeledCurve::all_from_report(&r, PositionQuantity::Excess);
        let svg = loss_vs_position(&curves, &[256], &CurveOptions::default());
        assert!(svg.contains("no data"));
        let none = loss_vs_position(&[], &[], &CurveOptions::default());
        assert!(none.contains("forgetlab eval"));
    }
}
