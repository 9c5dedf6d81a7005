//! The experiment-level laws: T_forget against state size N_S with the fitted line, its
//! bootstrap band and the paper's line; T_recall against N_S with the exponential fit.
//!
//! Units are the paper's (and `law.json`'s): x in millions of state scalars, y in K = 1024
//! tokens.

use forgetlab_runs::results::{LawReport, LinearFit};

use crate::axis::{AxisSpec, Scale, TickFormat};
use crate::canvas::{Layer, Marker, Plot, render};
use crate::format::fmt_sig;
use crate::style::{REFERENCE, series_color};

const TOKENS_PER_K: f64 = 1024.0;
const SCALARS_PER_M: f64 = 1e6;
const CURVE_SAMPLES: usize = 64;

fn linear_text(fit: &LinearFit) -> String {
    let sign = if fit.b < 0.0 { "−" } else { "+" };
    format!(
        "{} N_S {sign} {}",
        fmt_sig(fit.a, 4),
        fmt_sig(fit.b.abs(), 4)
    )
}

/// x positions from 0 to `x_max`.
/// A confidence level as a percentage: 0.95 → "95%", 0.975 → "97.5%".
fn percent(level: f64) -> String {
    let pct = level * 100.0;
    if (pct - pct.round()).abs() < 1e-9 {
        format!("{pct:.0}%")
    } else {
        format!("{pct:.1}%")
    }
}

fn grid(x_max: f64) -> impl Iterator<Item = f64> {
    (0..=CURVE_SAMPLES).map(move |i| x_max * i as f64 / CURVE_SAMPLES as f64)
}

/// T_forget vs N_S: bracketed points (filled), upper bounds where the shortest length tried
/// already forgets (▽), lower bounds where no length forgets (△), each bracket as a thin
/// vertical bar; the fitted line(s) with the bootstrap band; the paper's line
/// `T[K] = 5.172 N_S[M] − 4.469` for comparison.
pub fn law_chart(law: &LawReport) -> String {
    let mut plot = Plot::new(
        "law-forget",
        format!("T_forget vs state size · {}", law.experiment),
        AxisSpec::new(
            "state size N_S (millions of scalars)",
            Scale::Linear,
            TickFormat::Number,
        )
        .with_zero(),
        AxisSpec::new("T_forget (K tokens)", Scale::Linear, TickFormat::Number).with_zero(),
    );
    plot.empty_reason =
        "no state size has a T_forget yet (no run forgets, or none evaluated)".to_string();
    let point_color = series_color(0);
    let fit_color = series_color(2);
    let mut bracketed = Vec::new();
    let mut upper = Vec::new();
    let mut lower = Vec::new();
    let mut x_max: f64 = 0.0;
    for p in &law.forget_points {
        let x = p.state_size as f64 / SCALARS_PER_M;
        match p.t_forget {
            Some(t) => {
                let y = t as f64 / TOKENS_PER_K;
                x_max = x_max.max(x);
                if p.bracketed {
                    bracketed.push((x, y));
                    // The longest non-forgetting length below T_forget closes the bracket.
                    let below = p
                        .lengths
                        .iter()
                        .zip(&p.verdicts)
                        .filter(|(l, v)| **l < t && **v == Some(false))
                        .map(|(l, _)| *l)
                        .max();
                    if let Some(low) = below {
                        plot.layers.push(
                            Layer::line(vec![(x, low as f64 / TOKENS_PER_K), (x, y)], point_color)
                                .width(1)
                                .opacity(0.6),
                        );
                    }
                } else {
                    upper.push((x, y));
                }
            }
            None => {
                let longest_fail = p
                    .lengths
                    .iter()
                    .zip(&p.verdicts)
                    .filter(|(_, v)| **v == Some(false))
                    .map(|(l, _)| *l)
                    .max();
                if let Some(l) = longest_fail {
                    x_max = x_max.max(x);
                    lower.push((x, l as f64 / TOKENS_PER_K));
                }
            }
        }
    }
    let primary = law.linear.as_ref().or(law.linear_with_origin.as_ref());
    let x_end = if x_max > 0.0 { x_max * 1.08 } else { 1.0 };
    if let Some(fit) = primary
        && bracketed.len() + upper.len() > 0
    {
        let band: Vec<(f64, f64, f64)> =
            fit.band.iter().copied().filter(|p| p.0 <= x_end).collect();
        if band.len() >= 2 {
            let label = format!("{} bootstrap band", percent(fit.confidence));
            plot.layers
                .push(Layer::band(band, fit_color, 0.14).labeled(label));
        }
    }
    let mut subtitle = Vec::new();
    if let Some(fit) = &law.linear {
        plot.layers.push(
            Layer::line(
                grid(x_end).map(|x| (x, fit.a * x + fit.b)).collect(),
                fit_color,
            )
            .labeled(format!("fit: {}", linear_text(fit))),
        );
        subtitle.push(format!(
            "fit T_forget[K] = {} (R² = {}, n = {})",
            linear_text(fit),
            fmt_sig(fit.r2, 3),
            fit.n
        ));
    }
    if let Some(fit) = &law.linear_with_origin {
        plot.layers.push(
            Layer::line(
                grid(x_end).map(|x| (x, fit.a * x + fit.b)).collect(),
                fit_color,
            )
            .dashed()
            .labeled(format!("fit through (0,0): {}", linear_text(fit))),
        );
        if law.linear.is_none() {
            subtitle.push(format!(
                "fit through (0,0): T_forget[K] = {} (R² = {}, n = {})",
                linear_text(fit),
                fmt_sig(fit.r2, 3),
                fit.n
            ));
        }
    }
    if law.linear.is_none() && law.linear_with_origin.is_none() {
        subtitle.push("not fitted: too few state sizes with a bracketed T_forget".to_string());
    }
    let (pa, pb) = law.paper_linear;
    let paper_visible = pa * x_end + pb > 0.0 || pb > 0.0;
    plot.layers.push(
        Layer::line(grid(x_end).map(|x| (x, pa * x + pb)).collect(), REFERENCE)
            .dotted()
            .reference()
            .labeled(if paper_visible {
                format!("paper: {pa} N_S − {}", -pb)
            } else {
                format!("paper: {pa} N_S − {} (below 0 at these sizes)", -pb)
            }),
    );
    if !bracketed.is_empty() {
        plot.layers.push(
            Layer::markers(bracketed, Marker::Dot, point_color).labeled("T_forget (bracketed)"),
        );
    }
    if !upper.is_empty() {
        plot.layers.push(
            Layer::markers(upper, Marker::Below, point_color)
                .labeled("upper bound (shortest length already forgets)"),
        );
    }
    if !lower.is_empty() {
        plot.layers.push(
            Layer::markers(lower, Marker::Above, series_color(1))
                .labeled("lower bound (no length forgets)"),
        );
    }
    plot.subtitle = Some(subtitle.join(" · "));
    render(&plot)
}

/// T_recall vs N_S: the longest passkey length retrieved at the accuracy threshold by each
/// state size's longest-trained run, the exponential fit `c (k^N_S − 1) + d` and the paper's
/// law.
pub fn recall_law_chart(law: &LawReport) -> String {
    let mut plot = Plot::new(
        "law-recall",
        format!("T_recall vs state size · {}", law.experiment),
        AxisSpec::new(
            "state size N_S (millions of scalars)",
            Scale::Linear,
            TickFormat::Number,
        )
        .with_zero(),
        AxisSpec::new("T_recall (K tokens)", Scale::Linear, TickFormat::Number).with_zero(),
    );
    plot.empty_reason =
        "no state size has a T_recall yet (run `forgetlab eval passkey`)".to_string();
    let points: Vec<(f64, f64)> = law
        .recall_points
        .iter()
        .filter_map(|p| {
            p.t_recall
                .map(|t| (p.state_size as f64 / SCALARS_PER_M, t as f64 / TOKENS_PER_K))
        })
        .collect();
    let x_max = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let x_end = if x_max > 0.0 { x_max * 1.08 } else { 1.0 };
    let fit_color = series_color(2);
    if let Some(fit) = &law.exponential {
        let curve = grid(x_end)
            .map(|x| (x, fit.c * (fit.k.powf(x) - 1.0) + fit.d))
            .collect();
        plot.layers
            .push(Layer::line(curve, fit_color).labeled(format!(
                "fit: {} ({}^N_S − 1) {} {}",
                fmt_sig(fit.c, 4),
                fmt_sig(fit.k, 4),
                if fit.d < 0.0 { "−" } else { "+" },
                fmt_sig(fit.d.abs(), 4)
            )));
        plot.subtitle = Some(format!("R² = {}, n = {}", fmt_sig(fit.r2, 3), fit.n));
    } else {
        plot.subtitle = Some("not fitted: too few state sizes with a T_recall".to_string());
    }
    let (c, k, d) = law.paper_exponential;
    plot.layers.push(
        Layer::line(
            grid(x_end)
                .map(|x| (x, c * (k.powf(x) - 1.0) + d))
                .collect(),
            REFERENCE,
        )
        .dotted()
        .reference()
        .labeled(format!("paper: {c} ({k}^N_S − 1) − {}", -d)),
    );
    if !points.is_empty() {
        plot.layers
            .push(Layer::markers(points, Marker::Dot, series_color(0)).labeled("T_recall"));
    }
    render(&plot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use forgetlab_runs::results::{
        ExponentialFit, ForgetPoint, PAPER_FORGET_LINE, PAPER_RECALL_LAW, RecallPoint,
    };

    fn point(size: u64, lengths: &[usize], verdicts: &[Option<bool>]) -> ForgetPoint {
        let t_forget = lengths
            .iter()
            .zip(verdicts)
            .find(|(_, v)| **v == Some(true))
            .map(|(l, _)| *l);
        let bracketed = t_forget.is_some_and(|t| {
            lengths
                .iter()
                .zip(verdicts)
                .any(|(l, v)| *l < t && *v == Some(false))
        });
        ForgetPoint {
            state_size: size,
            lengths: lengths.to_vec(),
            verdicts: verdicts.to_vec(),
            t_forget,
            bracketed,
            note: String::new(),
        }
    }

    fn law() -> LawReport {
        LawReport {
            experiment: "paper".into(),
            forget_points: vec![
                point(2_000_000, &[4096, 8192], &[Some(false), Some(true)]),
                point(4_000_000, &[8192, 16384], &[Some(false), Some(true)]),
                point(8_000_000, &[32768], &[Some(true)]),
                point(12_000_000, &[32768], &[Some(false)]),
            ],
            linear: Some(LinearFit {
                a: 4.0,
                b: 0.0,
                r2: 0.99,
                n: 2,
                a_ci: (3.5, 4.5),
                b_ci: (-1.0, 1.0),
                with_origin: false,
                band: (0..=10)
                    .map(|i| {
                        let x = i as f64;
                        (x, 3.6 * x - 0.5, 4.4 * x + 0.5)
                    })
                    .collect(),
                confidence: 0.95,
            }),
            linear_with_origin: None,
            recall_points: vec![RecallPoint {
                state_size: 4_000_000,
                run: "r".into(),
                t_recall: Some(4096),
            }],
            exponential: Some(ExponentialFit {
                c: 4.0,
                k: 1.3,
                d: -0.5,
                r2: 0.9,
                n: 3,
                k_ci: (1.2, 1.4),
                c_ci: (3.0, 5.0),
                d_ci: (-1.0, 0.0),
                with_origin: true,
            }),
            paper_linear: PAPER_FORGET_LINE,
            paper_exponential: PAPER_RECALL_LAW,
            notes: vec![],
        }
    }

    #[test]
    fn law_chart_shows_points_bounds_fit_and_paper_line() {
        let svg = law_chart(&law());
        for needle in [
            "T_forget (bracketed)",
            "upper bound (shortest length already forgets)",
            "lower bound (no length forgets)",
            "fit: 4 N_S + 0",
            "paper: 5.172 N_S − 4.469",
            "95% bootstrap band",
            "R² = 0.99",
        ] {
            assert!(svg.contains(needle), "missing {needle:?}");
        }
        assert!(svg.contains("<polygon"), "band not drawn");
        let mut at_90 = law();
        if let Some(fit) = at_90.linear.as_mut() {
            fit.confidence = 0.9;
        }
        let svg_90 = law_chart(&at_90);
        assert!(svg_90.contains("90% bootstrap band") && !svg_90.contains("95% bootstrap"));
        assert_eq!(percent(0.975), "97.5%");
        let recall = recall_law_chart(&law());
        assert!(recall.contains("fit: 4 (1.3^N_S − 1) − 0.5"));
        assert!(recall.contains("paper: 4.756 (1.365^N_S − 1) − 0.742"));
    }

    #[test]
    fn empty_law_says_no_data_and_tiny_models_note_the_paper_line() {
        let mut empty = law();
        empty.forget_points.clear();
        empty.linear = None;
        empty.recall_points.clear();
        empty.exponential = None;
        assert!(law_chart(&empty).contains("no data"));
        assert!(recall_law_chart(&empty).contains("no data"));
        let mut tiny = law();
        tiny.forget_points = vec![point(20_000, &[64, 128], &[Some(false), Some(true)])];
        tiny.linear = None;
        let svg = law_chart(&tiny);
        assert!(
            svg.contains("below 0 at these sizes"),
            "paper line note missing"
        );
        assert!(svg.contains("not fitted"));
    }
}
