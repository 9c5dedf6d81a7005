//! The experiment-level laws: T_forget against state size N_S with the fitted lines, the
//! primary one's bootstrap band and the paper's line; T_recall against N_S with the
//! exponential fit, or the experiment's own straight line when k^x is not identifiable.
//!
//! Exact points are filled; bounds are open triangles pointing the way the truth lies, so a
//! reader never takes a bound for a measurement. The paper's curves are drawn only where they
//! are positive over the data's range: at tiny N_S they predict negative lengths, and a line
//! far below the axis compares nothing.
//!
//! An experiment of several mixers is one figure with one law per mixer: each mixer its own
//! colour, point shape and legend entries ("Mamba-2", "Gated DeltaNet"), its own line and band,
//! so the two laws can be compared where they are drawn and never read as one.
//!
//! Units are the paper's (and `law.json`'s): x in millions of state scalars, y in K = 1024
//! tokens.

use forgetlab_runs::config::MixerKind;
use forgetlab_runs::results::{
    Censoring, ForgetPoint, LawReport, LinearFit, RecallPoint, RecallShape, Retrieval,
};
use plotters::style::RGBColor;

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

/// "through (0,0)" or "without (0,0)".
fn origin_text(fit: &LinearFit) -> &'static str {
    if fit.with_origin {
        "through (0,0)"
    } else {
        "without (0,0)"
    }
}

/// A confidence level as a percentage: 0.95 → "95%", 0.975 → "97.5%".
fn percent(level: f64) -> String {
    let pct = level * 100.0;
    if (pct - pct.round()).abs() < 1e-9 {
        format!("{pct:.0}%")
    } else {
        format!("{pct:.1}%")
    }
}

/// x positions from 0 to `x_max`.
fn grid(x_max: f64) -> impl Iterator<Item = f64> {
    (0..=CURVE_SAMPLES).map(move |i| x_max * i as f64 / CURVE_SAMPLES as f64)
}

/// N_S in millions with enough digits for tiny models.
fn fmt_m(x: f64) -> String {
    fmt_sig(x, 2)
}

/// A paper curve over the data: drawn (its positive part) when it is positive over the whole
/// x range of the points, otherwise a legend entry saying where it turns positive.
fn paper_curve(
    plot: &mut Plot,
    label: String,
    f: impl Fn(f64) -> f64,
    x_zero: f64,
    x_range: Option<(f64, f64)>,
) {
    let Some((x_min, x_end)) = x_range else {
        return;
    };
    if f(x_min) > 0.0 {
        let mut curve: Vec<(f64, f64)> = grid(x_end)
            .filter(|&x| x > x_zero)
            .map(|x| (x, f(x)))
            .collect();
        if x_zero > 0.0 && x_zero < x_end {
            curve.insert(0, (x_zero, 0.0));
        }
        plot.layers.push(
            Layer::line(curve, REFERENCE)
                .dotted()
                .reference()
                .labeled(label),
        );
    } else {
        plot.layers.push(
            Layer::line(Vec::new(), REFERENCE)
                .dotted()
                .reference()
                .labeled(format!(
                    "{label}: not drawn, negative below N_S = {}M (data from {}M)",
                    fmt_m(x_zero),
                    fmt_m(x_min)
                )),
        );
    }
}

/// The x range of `xs` extended a little to the right, for curves.
fn x_range(xs: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let xs: Vec<f64> = xs.collect();
    let lo = xs.iter().copied().reduce(f64::min)?;
    let hi = xs.iter().copied().reduce(f64::max)?;
    Some((lo, if hi > 0.0 { hi * 1.08 } else { 1.0 }))
}

/// "interval rough: only 3 state sizes" when the bootstrap had few points.
fn rough_text(fit_points: usize, rough: bool) -> Option<String> {
    rough.then(|| format!("interval rough: only {fit_points} state sizes"))
}

/// The bracket's lower end: the longest non-forgetting length below T_forget.
fn bracket_low(p: &ForgetPoint, t: usize) -> Option<usize> {
    p.lengths
        .iter()
        .zip(&p.verdicts)
        .filter(|(l, v)| **l < t && **v == Some(false))
        .map(|(l, _)| *l)
        .max()
}

/// T_forget vs N_S: exact (bracketed) points filled, each bracket as a thin vertical bar;
/// upper bounds where the shortest length tried already forgets (▽) and lower bounds where
/// no length forgets (△); the primary fitted line (`[fit] include_origin`) solid with its
/// bootstrap band, the other dashed beside it; the paper's line `T[K] = 5.172 N_S[M] − 4.469`
/// where it is positive.
pub fn law_chart(law: &LawReport) -> String {
    if law.has_several_mixers() {
        return mixers_law_chart(law);
    }
    let mut plot = Plot::new(
        "law-forget",
        format!(
            "T_forget vs state size · {}{}",
            law.experiment,
            law.mixer()
                .map_or(String::new(), |m| format!(" · {}", m.label()))
        ),
        AxisSpec::new(
            "state size N_S (millions of scalars)",
            Scale::Linear,
            TickFormat::Number,
        )
        .with_zero(),
        AxisSpec::new("T_forget (K tokens)", Scale::Linear, TickFormat::Number).with_zero(),
    );
    plot.empty_reason =
        "no state size has a T_forget yet (no determined verdict, or none evaluated)".to_string();
    let point_color = series_color(0);
    let fit_color = series_color(2);
    let mut exact = Vec::new();
    let mut upper = Vec::new();
    let mut lower = Vec::new();
    for p in &law.forget_points {
        let Some(e) = p.estimate else { continue };
        let x = p.state_size as f64 / SCALARS_PER_M;
        let y = e.tokens as f64 / TOKENS_PER_K;
        match e.kind {
            Censoring::Exact => {
                exact.push((x, y));
                if let Some(low) = bracket_low(p, e.tokens) {
                    plot.layers.push(
                        Layer::line(vec![(x, low as f64 / TOKENS_PER_K), (x, y)], point_color)
                            .width(1)
                            .opacity(0.6),
                    );
                }
            }
            Censoring::UpperBound => upper.push((x, y)),
            Censoring::LowerBound => lower.push((x, y)),
        }
    }
    let range = x_range(exact.iter().chain(&upper).chain(&lower).map(|p| p.0));
    let x_end = range.map_or(1.0, |r| r.1);
    let primary = law.primary_linear();
    let mut subtitle = Vec::new();
    if let Some(fit) = primary
        && range.is_some()
    {
        let band: Vec<(f64, f64, f64)> =
            fit.band.iter().copied().filter(|p| p.0 <= x_end).collect();
        if band.len() >= 2 {
            let label = format!(
                "{} bootstrap band{}",
                percent(fit.confidence),
                if fit.is_rough() {
                    " (rough: few points)"
                } else {
                    ""
                }
            );
            plot.layers
                .push(Layer::band(band, fit_color, 0.14).labeled(label));
        }
        plot.layers.push(
            Layer::line(
                grid(x_end).map(|x| (x, fit.a * x + fit.b)).collect(),
                fit_color,
            )
            .labeled(format!(
                "fit {}: {}, R² = {}, n = {}",
                origin_text(fit),
                linear_text(fit),
                fmt_sig(fit.r2, 3),
                fit.n
            )),
        );
        subtitle.push(format!("primary: fit {}", origin_text(fit)));
        subtitle.extend(rough_text(fit.state_sizes(), fit.is_rough()));
    }
    if let Some(fit) = law.secondary_linear()
        && range.is_some()
    {
        plot.layers.push(
            Layer::line(
                grid(x_end).map(|x| (x, fit.a * x + fit.b)).collect(),
                fit_color,
            )
            .dashed()
            .opacity(0.7)
            .labeled(format!(
                "beside it, {}: {}",
                origin_text(fit),
                linear_text(fit)
            )),
        );
    }
    if primary.is_none() {
        subtitle.push("not fitted: too few state sizes with an exact T_forget".to_string());
    }
    let bounds = upper.len() + lower.len();
    if bounds > 0 {
        subtitle.push(format!("{bounds} bound(s) not fitted"));
    }
    if let Some(ssm) = law.ssm_only.as_ref().and_then(|s| {
        if law.primary_with_origin {
            s.linear_with_origin.as_ref().or(s.linear.as_ref())
        } else {
            s.linear.as_ref().or(s.linear_with_origin.as_ref())
        }
    }) {
        let share = law
            .forget_points
            .iter()
            .filter_map(ForgetPoint::conv_share)
            .reduce(f64::max);
        if let Some(share) = share.filter(|s| *s >= 0.1) {
            subtitle.push(format!(
                "SSM-only slope {} (conv up to {:.0}% of N_S)",
                fmt_sig(ssm.a, 3),
                share * 100.0
            ));
        }
    }
    let (pa, pb) = law.paper_linear;
    paper_curve(
        &mut plot,
        format!("paper: {pa} N_S − {}", -pb),
        |x| pa * x + pb,
        if pa != 0.0 { (-pb / pa).max(0.0) } else { 0.0 },
        range,
    );
    if !exact.is_empty() {
        plot.layers.push(
            Layer::markers(exact, Marker::Dot, point_color).labeled("T_forget (exact: bracketed)"),
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

/// How one mixer's points and lines look when several share a chart: its own colour and
/// point shape, so the two laws stay apart in print without colour too.
fn mixer_style(mixer: MixerKind) -> (RGBColor, Marker) {
    match mixer {
        MixerKind::Mamba2 => (series_color(0), Marker::Dot),
        MixerKind::GatedDeltaNet => (series_color(1), Marker::Square),
    }
}

/// T_forget vs N_S of an experiment with several mixers: each mixer's points (its own colour
/// and shape; bounds as open triangles in its colour), its primary line with its band, and
/// the paper's line once. Lines are never drawn across mixers.
fn mixers_law_chart(law: &LawReport) -> String {
    let mut plot = Plot::new(
        "law-forget",
        format!(
            "T_forget vs state size · {} · {}",
            law.experiment,
            law.mixers
                .iter()
                .map(|m| m.mixer.label())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        AxisSpec::new(
            "state size N_S (millions of scalars)",
            Scale::Linear,
            TickFormat::Number,
        )
        .with_zero(),
        AxisSpec::new("T_forget (K tokens)", Scale::Linear, TickFormat::Number).with_zero(),
    );
    plot.empty_reason =
        "no state size has a T_forget yet (no determined verdict, or none evaluated)".to_string();
    let all_x = law
        .forget_points
        .iter()
        .filter(|p| p.estimate.is_some())
        .map(|p| p.state_size as f64 / SCALARS_PER_M);
    let range = x_range(all_x);
    let x_end = range.map_or(1.0, |r| r.1);
    let mut subtitle = Vec::new();
    let mut markers = Vec::new();
    for (view, mixer) in law
        .per_mixer()
        .iter()
        .zip(law.mixers.iter().map(|m| m.mixer))
    {
        let name = mixer.label();
        let (color, marker) = mixer_style(mixer);
        let (mut exact, mut upper, mut lower) = (Vec::new(), Vec::new(), Vec::new());
        for p in &view.forget_points {
            let Some(e) = p.estimate else { continue };
            let x = p.state_size as f64 / SCALARS_PER_M;
            let y = e.tokens as f64 / TOKENS_PER_K;
            match e.kind {
                Censoring::Exact => {
                    exact.push((x, y));
                    if let Some(low) = bracket_low(p, e.tokens) {
                        plot.layers.push(
                            Layer::line(vec![(x, low as f64 / TOKENS_PER_K), (x, y)], color)
                                .width(1)
                                .opacity(0.6),
                        );
                    }
                }
                Censoring::UpperBound => upper.push((x, y)),
                Censoring::LowerBound => lower.push((x, y)),
            }
        }
        match view.primary_linear().filter(|_| range.is_some()) {
            Some(fit) => {
                let band: Vec<(f64, f64, f64)> =
                    fit.band.iter().copied().filter(|p| p.0 <= x_end).collect();
                if band.len() >= 2 {
                    plot.layers
                        .push(Layer::band(band, color, 0.12).labeled(format!(
                            "{name}: {} bootstrap band{}",
                            percent(fit.confidence),
                            if fit.is_rough() {
                                " (rough: few points)"
                            } else {
                                ""
                            }
                        )));
                }
                plot.layers.push(
                    Layer::line(grid(x_end).map(|x| (x, fit.a * x + fit.b)).collect(), color)
                        .labeled(format!(
                            "{name} fit {}: {}, R² = {}, n = {}",
                            origin_text(fit),
                            linear_text(fit),
                            fmt_sig(fit.r2, 3),
                            fit.n
                        )),
                );
                let mut said = format!("{name}: fit {}", origin_text(fit));
                if fit.is_rough() {
                    // Short: two mixers share one subtitle line.
                    said.push_str(&format!(", rough ({} sizes)", fit.state_sizes()));
                }
                subtitle.push(said);
            }
            None => subtitle.push(format!("{name}: not fitted")),
        }
        let bounds = upper.len() + lower.len();
        if bounds > 0 {
            subtitle.push(format!("{name}: {bounds} bound(s) not fitted"));
        }
        if !exact.is_empty() {
            markers.push(
                Layer::markers(exact, marker, color)
                    .labeled(format!("{name}: T_forget (exact: bracketed)")),
            );
        }
        if !upper.is_empty() {
            markers.push(Layer::markers(upper, Marker::Below, color).labeled(format!(
                "{name}: upper bound (shortest length already forgets)"
            )));
        }
        if !lower.is_empty() {
            markers.push(
                Layer::markers(lower, Marker::Above, color)
                    .labeled(format!("{name}: lower bound (no length forgets)")),
            );
        }
    }
    let (pa, pb) = law.paper_linear;
    paper_curve(
        &mut plot,
        format!("paper (Mamba-2): {pa} N_S − {}", -pb),
        |x| pa * x + pb,
        if pa != 0.0 { (-pb / pa).max(0.0) } else { 0.0 },
        range,
    );
    plot.layers.extend(markers);
    plot.subtitle = Some(subtitle.join(" · "));
    render(&plot)
}

/// The markers of one kind of T_recall point.
struct RecallMarks {
    points: Vec<(f64, f64)>,
    marker: Marker,
    color: usize,
    label: &'static str,
}

fn recall_marks(points: &[RecallPoint]) -> Vec<RecallMarks> {
    let kinds: [(Retrieval, Censoring, Marker, usize, &'static str); 6] = [
        (
            Retrieval::ZeroShot,
            Censoring::Exact,
            Marker::Dot,
            0,
            "T_recall (zero-shot)",
        ),
        (
            Retrieval::ZeroShot,
            Censoring::LowerBound,
            Marker::Above,
            0,
            "lower bound (longest length tried passes)",
        ),
        (
            Retrieval::ZeroShot,
            Censoring::UpperBound,
            Marker::Below,
            0,
            "upper bound (no length passes)",
        ),
        (
            Retrieval::InDistribution,
            Censoring::Exact,
            Marker::Ring,
            4,
            "in-distribution (trained on passkey), not fitted",
        ),
        (
            Retrieval::InDistribution,
            Censoring::LowerBound,
            Marker::Above,
            4,
            "in-distribution, lower bound",
        ),
        (
            Retrieval::InDistribution,
            Censoring::UpperBound,
            Marker::Below,
            4,
            "in-distribution, upper bound",
        ),
    ];
    kinds
        .into_iter()
        .map(|(retrieval, censoring, marker, color, label)| RecallMarks {
            points: points
                .iter()
                .filter(|p| p.retrieval == retrieval)
                .filter_map(|p| {
                    p.estimate.filter(|e| e.kind == censoring).map(|e| {
                        (
                            p.state_size as f64 / SCALARS_PER_M,
                            e.tokens as f64 / TOKENS_PER_K,
                        )
                    })
                })
                .collect(),
            marker,
            color,
            label,
        })
        .filter(|m| !m.points.is_empty())
        .collect()
}

/// Why there is no T_recall to draw: passkey not run, or run without any length passing.
fn recall_empty_reason(points: &[RecallPoint]) -> String {
    let ran = points
        .iter()
        .filter(|p| p.passkey_ran == Some(true))
        .count();
    let unknown = points.iter().filter(|p| p.passkey_ran.is_none()).count();
    if ran > 0 {
        "passkey ran, but no length reached the accuracy threshold".to_string()
    } else if unknown > 0 {
        "no T_recall in law.json (passkey not run, or no length passed; rerun `forgetlab fit` \
         to tell)"
            .to_string()
    } else {
        "passkey not run (run `forgetlab eval passkey`, then `forgetlab fit`)".to_string()
    }
}

/// What the subtitle says when the curvature of k^x is not identifiable.
fn shape_text(shape: &RecallShape) -> String {
    format!(
        "k not identifiable: k^x is straight to {}% over N_S ≤ {}M (paper's k: {}%)",
        fmt_sig(shape.departure * 100.0, 2),
        fmt_m(shape.x_range.1),
        fmt_sig(shape.paper_departure * 100.0, 2)
    )
}

/// T_recall vs N_S: the longest passkey length retrieved at the accuracy threshold by each
/// state size's longest-trained run (bounds as open triangles, in-distribution retrieval
/// apart), the exponential fit `c (k^N_S − 1) + d` through the exact zero-shot points, or the
/// experiment's own straight line when k is not identifiable, and the paper's law where it is
/// positive.
pub fn recall_law_chart(law: &LawReport) -> String {
    if law.has_several_mixers() {
        return mixers_recall_chart(law);
    }
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
    plot.empty_reason = recall_empty_reason(&law.recall_points);
    let marks = recall_marks(&law.recall_points);
    let range = x_range(marks.iter().flat_map(|m| m.points.iter().map(|p| p.0)));
    let x_end = range.map_or(1.0, |r| r.1);
    let fit_color = series_color(2);
    let mut subtitle = Vec::new();
    match (&law.exponential, &law.recall_shape) {
        (Some(fit), _) => {
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
            subtitle.push(format!(
                "zero-shot fit: R² = {}, n = {}",
                fmt_sig(fit.r2, 3),
                fit.n
            ));
            subtitle.extend(rough_text(fit.state_sizes(), fit.is_rough()));
        }
        (None, Some(shape)) if !shape.identifiable => {
            if let Some(line) = &shape.line {
                plot.layers.push(
                    Layer::line(
                        grid(x_end).map(|x| (x, line.a * x + line.b)).collect(),
                        fit_color,
                    )
                    .labeled(format!("own fit, a straight line: {}", linear_text(line))),
                );
            }
            subtitle.push(shape_text(shape));
        }
        _ => subtitle.push(
            if law
                .recall_points
                .iter()
                .any(|p| p.passkey_ran == Some(true))
            {
                "not fitted: too few state sizes with an exact zero-shot T_recall".to_string()
            } else {
                "not fitted: passkey not run".to_string()
            },
        ),
    }
    let none_passed = law
        .recall_points
        .iter()
        .filter(|p| p.passkey_ran == Some(true) && p.t_recall.is_none())
        .count();
    if none_passed > 0 {
        subtitle.push(format!(
            "no length reached the threshold at {none_passed} state size(s)"
        ));
    }
    let (c, k, d) = law.paper_exponential;
    let x_zero = if k > 1.0 && c > 0.0 {
        ((1.0 - d / c).ln() / k.ln()).max(0.0)
    } else {
        0.0
    };
    paper_curve(
        &mut plot,
        format!("paper: {c} ({k}^N_S − 1) − {}", -d),
        |x| c * (k.powf(x) - 1.0) + d,
        x_zero,
        range,
    );
    for m in marks {
        plot.layers
            .push(Layer::markers(m.points, m.marker, series_color(m.color)).labeled(m.label));
    }
    plot.subtitle = Some(subtitle.join(" · "));
    render(&plot)
}

/// T_recall vs N_S with several mixers: each mixer's points in its colour (exact ones in its
/// shape, bounds and in-distribution points as in the one-mixer chart) and its own fitted
/// curve or straight line; the paper's law once.
fn mixers_recall_chart(law: &LawReport) -> String {
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
    plot.empty_reason = recall_empty_reason(&law.recall_points);
    let range = x_range(
        recall_marks(&law.recall_points)
            .iter()
            .flat_map(|m| m.points.iter().map(|p| p.0))
            .collect::<Vec<_>>()
            .into_iter(),
    );
    let x_end = range.map_or(1.0, |r| r.1);
    let mut subtitle = Vec::new();
    let mut markers = Vec::new();
    for (view, mixer) in law
        .per_mixer()
        .iter()
        .zip(law.mixers.iter().map(|m| m.mixer))
    {
        let name = mixer.label();
        let (color, own_marker) = mixer_style(mixer);
        match (&view.exponential, &view.recall_shape) {
            (Some(fit), _) => {
                let curve = grid(x_end)
                    .map(|x| (x, fit.c * (fit.k.powf(x) - 1.0) + fit.d))
                    .collect();
                plot.layers.push(Layer::line(curve, color).labeled(format!(
                    "{name} fit: {} ({}^N_S − 1) {} {}",
                    fmt_sig(fit.c, 4),
                    fmt_sig(fit.k, 4),
                    if fit.d < 0.0 { "−" } else { "+" },
                    fmt_sig(fit.d.abs(), 4)
                )));
            }
            (None, Some(shape)) if !shape.identifiable => {
                if let Some(line) = &shape.line {
                    plot.layers.push(
                        Layer::line(
                            grid(x_end).map(|x| (x, line.a * x + line.b)).collect(),
                            color,
                        )
                        .labeled(format!(
                            "{name} own fit, a straight line: {}",
                            linear_text(line)
                        )),
                    );
                }
                subtitle.push(format!("{name}: k not identifiable"));
            }
            _ => subtitle.push(format!("{name}: not fitted")),
        }
        for m in recall_marks(&view.recall_points) {
            let marker = if m.marker == Marker::Dot {
                own_marker
            } else {
                m.marker
            };
            markers.push(
                Layer::markers(m.points, marker, color).labeled(format!("{name}: {}", m.label)),
            );
        }
    }
    let (c, k, d) = law.paper_exponential;
    let x_zero = if k > 1.0 && c > 0.0 {
        ((1.0 - d / c).ln() / k.ln()).max(0.0)
    } else {
        0.0
    };
    paper_curve(
        &mut plot,
        format!("paper (Mamba-2): {c} ({k}^N_S − 1) − {}", -d),
        |x| c * (k.powf(x) - 1.0) + d,
        x_zero,
        range,
    );
    plot.layers.extend(markers);
    plot.subtitle = Some(subtitle.join(" · "));
    render(&plot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use forgetlab_runs::results::{
        Estimate, ExponentialFit, ForgetPoint, PAPER_FORGET_LINE, PAPER_RECALL_LAW, RecallPoint,
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
            mixer: None,
            state_size: size,
            ssm_state_size: Some(size / 2),
            lengths: lengths.to_vec(),
            verdicts: verdicts.to_vec(),
            t_forget,
            bracketed,
            estimate: ForgetPoint::implied_estimate(lengths, verdicts, t_forget, bracketed),
            note: String::new(),
        }
    }

    fn recall(size: u64, t_recall: Option<usize>, kind: Option<Censoring>) -> RecallPoint {
        RecallPoint {
            mixer: None,
            state_size: size,
            ssm_state_size: Some(size / 2),
            run: "r".into(),
            t_recall,
            passkey_ran: Some(true),
            lengths: vec![1024, 65536],
            estimate: kind.map(|kind| Estimate {
                tokens: t_recall.unwrap_or(1024),
                kind,
            }),
            retrieval: Retrieval::ZeroShot,
        }
    }

    fn line(a: f64, b: f64, n: usize, with_origin: bool) -> LinearFit {
        LinearFit {
            a,
            b,
            r2: 0.99,
            n,
            a_ci: (a - 0.5, a + 0.5),
            b_ci: (b - 1.0, b + 1.0),
            with_origin,
            band: (0..=10)
                .map(|i| {
                    let x = i as f64;
                    (x, (a - 0.4) * x + b - 0.5, (a + 0.4) * x + b + 0.5)
                })
                .collect(),
            confidence: 0.95,
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
            linear: Some(line(4.0, 0.0, 2, false)),
            linear_with_origin: None,
            primary_with_origin: true,
            recall_points: vec![recall(4_000_000, Some(4096), Some(Censoring::Exact))],
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
            recall_shape: None,
            ssm_only: None,
            paper_linear: PAPER_FORGET_LINE,
            paper_exponential: PAPER_RECALL_LAW,
            notes: vec![],
            mixers: vec![],
        }
    }

    #[test]
    fn law_chart_shows_points_bounds_fit_and_paper_line() {
        let svg = law_chart(&law());
        for needle in [
            "T_forget (exact: bracketed)",
            "upper bound (shortest length already forgets)",
            "lower bound (no length forgets)",
            "fit without (0,0): 4 N_S + 0",
            "paper: 5.172 N_S − 4.469",
            "95% bootstrap band",
            "R² = 0.99",
            "2 bound(s) not fitted",
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

    /// The chart leads with the line `law.json` marks primary and draws the other beside it.
    #[test]
    fn the_chart_leads_with_the_primary_line() {
        let mut both = law();
        both.linear_with_origin = Some(line(3.5, 0.0, 3, true));
        let svg = law_chart(&both);
        assert!(
            svg.contains("primary: fit through (0,0)")
                && svg.contains("fit through (0,0): 3.5 N_S + 0, R² = 0.99, n = 3")
                && svg.contains("beside it, without (0,0): 4 N_S + 0"),
            "origin line not primary"
        );
        both.primary_with_origin = false;
        let svg = law_chart(&both);
        assert!(
            svg.contains("primary: fit without (0,0)")
                && svg.contains("fit without (0,0): 4 N_S + 0")
                && svg.contains("beside it, through (0,0): 3.5 N_S + 0"),
            "plain line not primary"
        );
    }

    /// With 2-4 state sizes the subtitle and the band's label say the interval is rough.
    #[test]
    fn few_points_make_the_band_rough() {
        let svg = law_chart(&law());
        assert!(svg.contains("interval rough: only 2 state sizes"));
        assert!(svg.contains("95% bootstrap band (rough: few points)"));
        let mut many = law();
        many.linear = Some(line(4.0, 0.0, 6, false));
        let svg = law_chart(&many);
        assert!(!svg.contains("rough"));
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
            svg.contains("paper: 5.172 N_S − 4.469: not drawn, negative below N_S = 0.86M"),
            "paper line note missing"
        );
        assert!(svg.contains("not fitted"));
    }

    /// A T_recall whose k is not identifiable: the points with their own straight line, no
    /// exponential, and the paper's law only as a note (it is negative at these sizes).
    #[test]
    fn tiny_recall_shows_its_own_line_not_a_spurious_exponential() {
        let mut tiny = law();
        tiny.recall_points = [2_000u64, 5_000, 9_000]
            .iter()
            .map(|&s| recall(s, Some(s as usize / 50), Some(Censoring::Exact)))
            .collect();
        tiny.exponential = None;
        tiny.recall_shape = Some(RecallShape {
            identifiable: false,
            curvature_p: Some(0.7),
            departure: 0.0117,
            paper_departure: 0.0004,
            x_range: (0.0, 0.009),
            reason: Some("not distinguishable".into()),
            line: Some(line(19.5, 0.0, 4, true)),
        });
        let svg = recall_law_chart(&tiny);
        for needle in [
            "own fit, a straight line: 19.5 N_S + 0",
            "k not identifiable: k^x is straight to 1.2% over N_S ≤ 0.009M",
            "not drawn, negative below N_S = 0.47M",
            "T_recall (zero-shot)",
        ] {
            assert!(svg.contains(needle), "missing {needle:?}");
        }
        assert!(!svg.contains(">\nfit: "), "an exponential was drawn");
    }

    /// Bounds and in-distribution points are drawn apart from the zero-shot law's points.
    #[test]
    fn recall_bounds_and_in_distribution_points_are_labelled() {
        let mut law = law();
        let mut trained = recall(6_000_000, Some(8192), Some(Censoring::Exact));
        trained.retrieval = Retrieval::InDistribution;
        law.recall_points = vec![
            recall(4_000_000, Some(4096), Some(Censoring::Exact)),
            recall(5_000_000, Some(65536), Some(Censoring::LowerBound)),
            recall(7_000_000, None, Some(Censoring::UpperBound)),
            trained,
        ];
        let svg = recall_law_chart(&law);
        for needle in [
            "T_recall (zero-shot)",
            "lower bound (longest length tried passes)",
            "upper bound (no length passes)",
            "in-distribution (trained on passkey), not fitted",
            "no length reached the threshold at 1 state size(s)",
        ] {
            assert!(svg.contains(needle), "missing {needle:?}");
        }
    }

    /// "Not run" and "ran, nothing passed" are different messages.
    #[test]
    fn passkey_not_run_is_not_passkey_scored_zero() {
        let mut law = law();
        law.exponential = None;
        let mut not_run = recall(4_000_000, None, None);
        not_run.passkey_ran = Some(false);
        law.recall_points = vec![not_run.clone()];
        let svg = recall_law_chart(&law);
        assert!(svg.contains("passkey not run (run `forgetlab eval passkey`"));
        // Ran with no complete length to bound it: nothing to draw, and it says why.
        law.recall_points = vec![recall(4_000_000, None, None)];
        let svg = recall_law_chart(&law);
        assert!(
            svg.contains("passkey ran, but no length reached the accuracy threshold"),
            "ran-but-zero message missing"
        );
        assert!(!svg.contains("forgetlab eval passkey"));
        // Ran with lengths: an upper bound at the shortest one is drawn.
        law.recall_points = vec![recall(4_000_000, None, Some(Censoring::UpperBound))];
        let svg = recall_law_chart(&law);
        assert!(svg.contains("upper bound (no length passes)"));
        assert!(svg.contains("no length reached the threshold at 1 state size(s)"));
        assert!(!svg.contains("forgetlab eval passkey"));
        // Old law files cannot tell.
        not_run.passkey_ran = None;
        law.recall_points = vec![not_run];
        assert!(recall_law_chart(&law).contains("rerun `forgetlab fit` to tell"));
    }

    #[test]
    fn the_ssm_only_slope_shows_when_the_conv_share_is_large() {
        let mut law = law();
        law.ssm_only = Some(forgetlab_runs::results::StateFits {
            linear: Some(line(8.0, 0.0, 2, false)),
            linear_with_origin: None,
            exponential: None,
            recall_shape: None,
        });
        let svg = law_chart(&law);
        assert!(
            svg.contains("SSM-only slope 8 (conv up to 50% of N_S)"),
            "SSM-only slope missing"
        );
    }

    /// Two mixers: one law each on one figure, each with its own colour, shape, legend entries
    /// and line; no line through both.
    #[test]
    fn two_mixers_share_one_figure_with_a_law_each() {
        use forgetlab_runs::results::MixerLaw;
        let tagged = |mixer: MixerKind, mut p: ForgetPoint| {
            p.mixer = Some(mixer);
            p
        };
        let mamba_points = vec![
            tagged(
                MixerKind::Mamba2,
                point(2_000_000, &[4096, 8192], &[Some(false), Some(true)]),
            ),
            tagged(
                MixerKind::Mamba2,
                point(4_000_000, &[8192, 16384], &[Some(false), Some(true)]),
            ),
        ];
        let gdn_points = vec![
            tagged(
                MixerKind::GatedDeltaNet,
                point(2_100_000, &[1024, 2048], &[Some(false), Some(true)]),
            ),
            tagged(
                MixerKind::GatedDeltaNet,
                point(4_100_000, &[2048, 4096], &[Some(false), Some(true)]),
            ),
            tagged(
                MixerKind::GatedDeltaNet,
                point(8_000_000, &[4096], &[Some(false)]),
            ),
        ];
        let mixer_law = |mixer, points: Vec<ForgetPoint>, a| MixerLaw {
            mixer,
            forget_points: points,
            linear: None,
            linear_with_origin: Some(line(a, 0.0, 3, true)),
            recall_points: vec![],
            exponential: None,
            recall_shape: None,
            ssm_only: None,
        };
        let mut two = law();
        two.forget_points = mamba_points.iter().chain(&gdn_points).cloned().collect();
        two.linear = None;
        two.recall_points.clear();
        two.exponential = None;
        two.mixers = vec![
            mixer_law(MixerKind::Mamba2, mamba_points, 4.0),
            mixer_law(MixerKind::GatedDeltaNet, gdn_points, 0.5),
        ];
        let svg = law_chart(&two);
        for needle in [
            "T_forget vs state size · paper · Mamba-2 and Gated DeltaNet",
            "Mamba-2: T_forget (exact: bracketed)",
            "Gated DeltaNet: T_forget (exact: bracketed)",
            "Gated DeltaNet: lower bound (no length forgets)",
            "Mamba-2 fit through (0,0): 4 N_S + 0, R² = 0.99, n = 3",
            "Gated DeltaNet fit through (0,0): 0.5 N_S + 0",
            "Mamba-2: 95% bootstrap band",
            "Gated DeltaNet: 95% bootstrap band",
            "Gated DeltaNet: 1 bound(s) not fitted",
            "Mamba-2: fit through (0,0), rough (",
            "paper (Mamba-2): 5.172 N_S − 4.469",
        ] {
            assert!(svg.contains(needle), "missing {needle:?}");
        }
        // Two colours: the Gated DeltaNet line and squares in the second palette colour.
        let second = series_color(1);
        let hex = format!("#{:02X}{:02X}{:02X}", second.0, second.1, second.2);
        assert!(svg.to_uppercase().contains(&hex), "no {hex} in the figure");
        assert!(svg.contains("<rect"), "no square markers");
        assert!(svg.matches("<polygon").count() >= 2, "two bands");
        // The recall figure draws each mixer's points in its own style.
        let mut gdn_recall = recall(4_100_000, Some(2048), Some(Censoring::Exact));
        gdn_recall.mixer = Some(MixerKind::GatedDeltaNet);
        two.mixers[1].recall_points = vec![gdn_recall.clone()];
        two.recall_points = vec![gdn_recall];
        let svg = recall_law_chart(&two);
        assert!(
            svg.contains("Gated DeltaNet: T_recall (zero-shot)")
                && svg.contains("Mamba-2: not fitted")
                && svg.contains("Gated DeltaNet: not fitted"),
            "recall chart of two mixers"
        );
    }

    /// A single-mixer chart is the same figure it always was; Gated DeltaNet alone is named.
    #[test]
    fn one_mixer_charts_are_unchanged_and_name_a_non_default_mixer() {
        let before = law_chart(&law());
        assert!(!before.contains("Mamba-2") && !before.contains("Gated DeltaNet"));
        let mut gdn = law();
        for p in &mut gdn.forget_points {
            p.mixer = Some(MixerKind::GatedDeltaNet);
        }
        let svg = law_chart(&gdn);
        assert!(svg.contains("T_forget vs state size · paper · Gated DeltaNet"));
        assert_eq!(
            svg.replace(" · Gated DeltaNet", ""),
            before,
            "only the title differs"
        );
    }
}
