//! The plain-text account of a law report that `forgetlab fit` prints: one row per state
//! size, the fits with the primary T_forget line first, then the notes.
//!
//! It is read from `law.json` alone, so a published report prints the same way wherever it is
//! re-read. An experiment of several mixers prints one table and one set of fits per mixer,
//! then the notes once.

use forgetlab_runs::results::{
    Censoring, Estimate, ExponentialFit, LawReport, LinearFit, RecallShape, Retrieval,
};

use super::{SCALARS_PER_M, fmt_x, format_len};

/// A point's estimate as text: `2K` exact, `≤1K` / `>4K` T_forget bounds, `≥8K` / `<1K`
/// T_recall bounds.
fn estimate_text(estimate: Option<Estimate>, recall: bool) -> String {
    let Some(e) = estimate else {
        return "-".into();
    };
    let mark = match (e.kind, recall) {
        (Censoring::Exact, _) => "",
        (Censoring::UpperBound, false) => "≤",
        (Censoring::LowerBound, false) => ">",
        (Censoring::UpperBound, true) => "<",
        (Censoring::LowerBound, true) => "≥",
    };
    format!("{mark}{}", format_len(e.tokens))
}

/// One line about a T_forget fit: the formula, intervals, R² and n.
fn line_text(fit: &LinearFit) -> String {
    format!(
        "T_forget[K] = {:.3} N_S[M] {} {:.3} (a in [{:.3}, {:.3}], {:.0}% bootstrap), R² = {:.4}, \
         n = {}{}",
        fit.a,
        if fit.b < 0.0 { "-" } else { "+" },
        fit.b.abs(),
        fit.a_ci.0,
        fit.a_ci.1,
        fit.confidence * 100.0,
        fit.r2,
        fit.n,
        if fit.is_rough() {
            format!("; rough interval: only {} state sizes", fit.state_sizes())
        } else {
            String::new()
        }
    )
}

fn origin_text(fit: &LinearFit) -> &'static str {
    if fit.with_origin {
        "through (0,0)"
    } else {
        "without (0,0)"
    }
}

/// The fits against one measure, primary line first.
fn fits_text(
    out: &mut String,
    label: &str,
    primary: Option<&LinearFit>,
    secondary: Option<&LinearFit>,
    exponential: Option<&ExponentialFit>,
    shape: Option<&RecallShape>,
) {
    match primary {
        Some(p) => {
            out.push_str(&format!(
                "{label}primary, {}: {}\n",
                origin_text(p),
                line_text(p)
            ));
            if let Some(s) = secondary {
                out.push_str(&format!(
                    "{label}beside it, {}: {}\n",
                    origin_text(s),
                    line_text(s)
                ));
            }
        }
        None => out.push_str(&format!(
            "{label}T_forget line not fitted (see the notes)\n"
        )),
    }
    match (exponential, shape) {
        (Some(e), _) => out.push_str(&format!(
            "{label}T_recall[K] = {:.3} ({:.4}^N_S[M] - 1) {} {:.3} (zero-shot), R² = {:.4}, n = {}\n",
            e.c,
            e.k,
            if e.d < 0.0 { "-" } else { "+" },
            e.d.abs(),
            e.r2,
            e.n
        )),
        (None, Some(s)) if !s.identifiable => {
            out.push_str(&format!(
                "{label}T_recall: k not identifiable ({}){}\n",
                s.reason.as_deref().unwrap_or("no curvature"),
                s.line.as_ref().map_or(String::new(), |l| format!(
                    "; straight line: {:.3} N_S {} {:.3}",
                    l.a,
                    if l.b < 0.0 { "-" } else { "+" },
                    l.b.abs()
                ))
            ));
        }
        _ => out.push_str(&format!(
            "{label}T_recall law not fitted (see the notes)\n"
        )),
    }
}

/// A plain-text account of a law report: one row per state size, the fits (the primary
/// T_forget line first), then the notes (which say what was fitted, the numbers, and why a fit
/// is missing).
pub fn summary_text(report: &LawReport) -> String {
    let mut out = format!("experiment {}", report.experiment);
    let laws = report.per_mixer();
    if report.has_several_mixers() {
        out.push_str(&format!(
            " ({} mixers, one law each)\n",
            report.mixers.len()
        ));
        for (law, mixer) in laws.iter().zip(&report.mixers) {
            out.push_str(&format!("{}:\n", mixer.mixer.label()));
            law_text(&mut out, law);
        }
    } else {
        if let Some(mixer) = report.mixer() {
            out.push_str(&format!(" ({})", mixer.label()));
        }
        out.push('\n');
        law_text(&mut out, report);
    }
    for note in &report.notes {
        out.push_str(&format!("- {note}\n"));
    }
    out
}

/// The table and fits of one mixer's law.
fn law_text(out: &mut String, report: &LawReport) {
    out.push_str("  N_S [M]    SSM [M]    T_forget  T_recall  runs\n");
    let mut in_distribution = false;
    for p in &report.forget_points {
        let recall = report
            .recall_points
            .iter()
            .find(|r| r.state_size == p.state_size);
        let recall_text = recall.map_or("-".to_string(), |r| {
            let mut t = estimate_text(r.estimate, true);
            if r.passkey_ran == Some(false) {
                t = "not run".into();
            }
            if r.retrieval == Retrieval::InDistribution && r.passkey_ran == Some(true) {
                in_distribution = true;
                t.push('*');
            }
            t
        });
        out.push_str(&format!(
            "  {:<9}  {:<9}  {:<8}  {:<8}  {}\n",
            fmt_x(p.state_size as f64 / SCALARS_PER_M),
            p.ssm_state_size
                .map_or("-".to_string(), |s| fmt_x(s as f64 / SCALARS_PER_M)),
            estimate_text(p.estimate, false),
            recall_text,
            p.note
        ));
    }
    out.push_str(
        "  (T_forget ≤ upper bound, > lower bound; T_recall ≥ lower bound, < upper bound; only \
         exact values are fitted)\n",
    );
    if in_distribution {
        out.push_str(
            "  (* in-distribution: trained on synthetic passkey, not in the zero-shot law)\n",
        );
    }
    fits_text(
        out,
        "",
        report.primary_linear(),
        report.secondary_linear(),
        report.exponential.as_ref(),
        report.recall_shape.as_ref(),
    );
    if let Some(ssm) = &report.ssm_only {
        let (primary, secondary) = if report.primary_with_origin {
            (&ssm.linear_with_origin, &ssm.linear)
        } else {
            (&ssm.linear, &ssm.linear_with_origin)
        };
        fits_text(
            out,
            "SSM-only: ",
            primary.as_ref().or(secondary.as_ref()),
            primary.as_ref().and(secondary.as_ref()),
            ssm.exponential.as_ref(),
            ssm.recall_shape.as_ref(),
        );
    }
}
