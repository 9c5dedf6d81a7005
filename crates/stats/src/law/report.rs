//! `law.json` of an experiment: its runs grouped into points, every fit made against N_S and
//! again against the SSM states alone, and notes that say in words what was fitted, what was
//! left out and why.
//!
//! The report is read by people deciding whether the law holds, so a missing fit is never
//! silent: each refusal and each bound becomes a note beside the numbers.
//!
//! Runs of different mixers are never pooled: the question is whether each architecture's
//! T_forget grows with its own N_S, and a line through both would answer neither. Each mixer
//! gets the whole single-mixer treatment (points by N_S, both fits, the SSM-only repeat).

use std::collections::{BTreeMap, BTreeSet};

use forgetlab_runs::config::MixerKind;
use forgetlab_runs::results::{
    Censoring, ForgetPoint, LawReport, LinearFit, MixerLaw, PAPER_FORGET_LINE, PAPER_RECALL_LAW,
    ROUGH_FIT_POINTS, RecallPoint, Retrieval, StateFits,
};

use super::fits::{fit_exponential, fit_linear, recall_shape};
use super::points::{RunOutcome, forget_point, recall_point};
use super::{LawError, LawOptions, ROUGH_BOOTSTRAP, SCALARS_PER_M, TOKENS_PER_K};

/// Which measure of the state size a fit's x is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    /// N_S: SSM states plus convolution caches (the paper's).
    Total,
    /// The SSM states alone.
    Ssm,
}

impl Measure {
    /// x in millions of scalars.
    fn x(self, total: u64, ssm: Option<u64>) -> Option<f64> {
        match self {
            Measure::Total => Some(total as f64 / SCALARS_PER_M),
            Measure::Ssm => ssm.map(|s| s as f64 / SCALARS_PER_M),
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Measure::Total => "",
            Measure::Ssm => "SSM-only ",
        }
    }
}

/// Whether a forget point enters the T_forget fits.
fn forget_fitted(p: &ForgetPoint, options: &LawOptions) -> bool {
    match p.estimate.map(|e| e.kind) {
        Some(Censoring::Exact) => true,
        Some(Censoring::UpperBound) => options.include_unbracketed,
        _ => false,
    }
}

/// Whether a recall point enters the zero-shot T_recall law.
fn recall_fitted(p: &RecallPoint) -> bool {
    p.retrieval == Retrieval::ZeroShot && p.estimate.is_some_and(|e| e.is_exact())
}

/// The linear and exponential fits against one measure of N_S, each described in `notes`.
fn fit_state(
    measure: Measure,
    forget_points: &[ForgetPoint],
    recall_points: &[RecallPoint],
    options: &LawOptions,
    seed_offset: u64,
    notes: &mut Vec<String>,
) -> StateFits {
    let prefix = measure.prefix();
    let percent = options.confidence * 100.0;
    let seeded = |offset: u64| LawOptions {
        seed: options.seed.wrapping_add(seed_offset + offset),
        ..options.clone()
    };
    let rough = |used: usize, state_sizes: usize| {
        let mut out = String::new();
        if used < ROUGH_BOOTSTRAP {
            out.push_str("; few usable resamples, so the intervals are rough");
        }
        if state_sizes <= ROUGH_FIT_POINTS {
            out.push_str(&format!(
                "; only {state_sizes} state sizes, so the bootstrap interval is rough (few points)"
            ));
        }
        out
    };
    let forget_xy: Vec<(f64, f64)> = forget_points
        .iter()
        .filter(|p| forget_fitted(p, options))
        .filter_map(|p| {
            let x = measure.x(p.state_size, p.ssm_state_size)?;
            p.t_forget.map(|t| (x, t as f64 / TOKENS_PER_K))
        })
        .collect();
    let mut fit_line = |with_origin: bool| -> Option<LinearFit> {
        let primary = with_origin == options.include_origin;
        let name = format!(
            "{prefix}T_forget line{}{}",
            if with_origin { " with (0,0)" } else { "" },
            if primary { " (primary)" } else { "" }
        );
        match fit_linear(&forget_xy, with_origin, &seeded(u64::from(with_origin))) {
            Ok((fit, used)) => {
                notes.push(format!(
                    "{name}: a = {:.3} [{:.3}, {:.3}], b = {:.3} [{:.3}, {:.3}] K \
                     ({percent}% bootstrap intervals), R² = {:.4}, n = {} ({used}/{} bootstrap \
                     resamples usable{}){}{}",
                    fit.a,
                    fit.a_ci.0,
                    fit.a_ci.1,
                    fit.b,
                    fit.b_ci.0,
                    fit.b_ci.1,
                    fit.r2,
                    fit.n,
                    options.bootstrap,
                    rough(used, fit.state_sizes()),
                    if fit.n == 2 {
                        "; exact through 2 points, R² is meaningless"
                    } else {
                        ""
                    },
                    if measure == Measure::Total {
                        format!(
                            "; paper: a = {}, b = {}",
                            PAPER_FORGET_LINE.0, PAPER_FORGET_LINE.1
                        )
                    } else {
                        String::new()
                    }
                ));
                Some(fit)
            }
            Err(e) => {
                // The SSM-only fits fail exactly when the total's do: said once.
                if measure == Measure::Total {
                    notes.push(format!("no {name}: {e}"));
                }
                None
            }
        }
    };
    // The primary line first, so its note leads.
    let (linear, linear_with_origin) = if options.include_origin {
        let origin = fit_line(true);
        (fit_line(false), origin)
    } else {
        let plain = fit_line(false);
        (plain, fit_line(true))
    };

    let recall_xy: Vec<(f64, f64)> = recall_points
        .iter()
        .filter(|p| recall_fitted(p))
        .filter_map(|p| {
            let x = measure.x(p.state_size, p.ssm_state_size)?;
            p.t_recall.map(|t| (x, t as f64 / TOKENS_PER_K))
        })
        .collect();
    let (exponential, recall_shape) = match fit_exponential(&recall_xy, true, &seeded(2)) {
        Err(e) => {
            if measure == Measure::Total {
                notes.push(format!("no T_recall law: {e}"));
            }
            (None, None)
        }
        Ok(result) => {
            let shape = Some(recall_shape(&result, &seeded(3)));
            let fit = result.fit;
            match shape.as_ref().and_then(|s| s.reason.as_deref()) {
                Some(reason) => {
                    let line =
                        shape
                            .as_ref()
                            .and_then(|s| s.line.as_ref())
                            .map_or(String::new(), |l| {
                                format!(
                                    "; the points' own shape is a straight line, T_recall[K] = \
                                 {:.3} N_S {} {:.3} (R² = {:.4})",
                                    l.a,
                                    if l.b < 0.0 { "-" } else { "+" },
                                    l.b.abs(),
                                    l.r2
                                )
                            });
                    notes.push(format!(
                        "{prefix}T_recall law with (0,0): k is not identifiable and not \
                         reported: {reason}{line}"
                    ));
                    (None, shape)
                }
                None => {
                    notes.push(format!(
                        "{prefix}T_recall law with (0,0): c = {:.3}, k = {:.4} [{:.4}, {:.4}] \
                         ({percent}% bootstrap interval), d = {:.3} K, R² = {:.4}, n = {} \
                         ({}/{} bootstrap resamples usable{}){}{}",
                        fit.c,
                        fit.k,
                        fit.k_ci.0,
                        fit.k_ci.1,
                        fit.d,
                        fit.r2,
                        fit.n,
                        result.used,
                        options.bootstrap,
                        rough(result.used, fit.state_sizes()),
                        shape
                            .as_ref()
                            .and_then(|s| s.curvature_p)
                            .map_or(String::new(), |p| format!(
                                "; curvature against a straight line: F test p = {p:.3}"
                            )),
                        if measure == Measure::Total {
                            format!(
                                "; paper: c = {}, k = {}, d = {}",
                                PAPER_RECALL_LAW.0, PAPER_RECALL_LAW.1, PAPER_RECALL_LAW.2
                            )
                        } else {
                            String::new()
                        }
                    ));
                    (Some(fit), shape)
                }
            }
        }
    };
    StateFits {
        linear,
        linear_with_origin,
        exponential,
        recall_shape,
    }
}

/// Builds `law.json` from the runs of an experiment: one law per mixer, never one across
/// mixers (see [`LawReport`] for where each goes).
pub fn law_report(
    experiment: &str,
    runs: &[RunOutcome],
    options: &LawOptions,
) -> Result<LawReport, LawError> {
    options.validate()?;
    let mut by_mixer: BTreeMap<MixerKind, Vec<&RunOutcome>> = BTreeMap::new();
    for r in runs {
        by_mixer.entry(r.mixer).or_default().push(r);
    }
    // Points name their mixer unless the experiment is Mamba-2 alone (law files then read as
    // they always did).
    let named = by_mixer.keys().any(|m| *m != MixerKind::Mamba2);
    let mut report = LawReport {
        experiment: experiment.to_string(),
        forget_points: Vec::new(),
        linear: None,
        linear_with_origin: None,
        primary_with_origin: options.include_origin,
        recall_points: Vec::new(),
        exponential: None,
        recall_shape: None,
        ssm_only: None,
        paper_linear: PAPER_FORGET_LINE,
        paper_exponential: PAPER_RECALL_LAW,
        notes: Vec::new(),
        mixers: Vec::new(),
    };
    if by_mixer.len() <= 1 {
        let (mixer, group) = by_mixer
            .into_iter()
            .next()
            .unwrap_or((MixerKind::Mamba2, Vec::new()));
        let (law, notes) = mixer_law(mixer, &group, named, options);
        report.forget_points = law.forget_points;
        report.linear = law.linear;
        report.linear_with_origin = law.linear_with_origin;
        report.recall_points = law.recall_points;
        report.exponential = law.exponential;
        report.recall_shape = law.recall_shape;
        report.ssm_only = law.ssm_only;
        report.notes = notes;
        return Ok(report);
    }
    let counts: Vec<String> = by_mixer
        .iter()
        .map(|(mixer, group)| {
            let sizes: BTreeSet<u64> = group.iter().map(|r| r.state_size).collect();
            format!(
                "{}: {} run(s) over {} state size(s)",
                mixer.label(),
                group.len(),
                sizes.len()
            )
        })
        .collect();
    report.notes.push(format!(
        "{} mixers ({}): one law per mixer (`mixers` in law.json), never one across them; the \
         top-level points list every mixer's, each naming it, and the top-level fits are empty",
        by_mixer.len(),
        counts.join("; ")
    ));
    for (&mixer, group) in &by_mixer {
        let (law, notes) = mixer_law(mixer, group, true, options);
        report
            .notes
            .extend(notes.into_iter().map(|n| format!("{}: {n}", mixer.label())));
        report
            .forget_points
            .extend(law.forget_points.iter().cloned());
        report
            .recall_points
            .extend(law.recall_points.iter().cloned());
        report.mixers.push(law);
    }
    Ok(report)
}

/// The law of one mixer's runs, with the notes that describe it; `named`: its points carry
/// the mixer.
fn mixer_law(
    mixer: MixerKind,
    runs: &[&RunOutcome],
    named: bool,
    options: &LawOptions,
) -> (MixerLaw, Vec<String>) {
    let mut by_size: BTreeMap<u64, Vec<&RunOutcome>> = BTreeMap::new();
    for &r in runs {
        by_size.entry(r.state_size).or_default().push(r);
    }
    let mut notes = vec![format!(
        "{} run(s) over {} state size(s); x = N_S in millions of state scalars (SSM states plus \
         convolution caches, the paper's definition), y in K = 1024 tokens; primary T_forget \
         line: {}",
        runs.len(),
        by_size.len(),
        if options.include_origin {
            "with (0,0), as the paper's (`[fit] include_origin = true`)"
        } else {
            "without (0,0) (`[fit] include_origin = false`)"
        }
    )];

    let mut forget_points: Vec<ForgetPoint> = by_size
        .iter()
        .map(|(&size, group)| forget_point(size, group))
        .collect();
    let count = |kind: Censoring| {
        forget_points
            .iter()
            .filter(|p| p.estimate.is_some_and(|e| e.kind == kind))
            .count()
    };
    let (upper, lower) = (count(Censoring::UpperBound), count(Censoring::LowerBound));
    if upper + lower > 0 {
        notes.push(format!(
            "{} of {} state size(s) have only a bound on T_forget: {upper} upper bound(s) (the \
             shortest length tried already forgets), {lower} lower bound(s) (no length tried \
             forgets); {}",
            upper + lower,
            forget_points.len(),
            match (options.include_unbracketed, upper > 0) {
                (true, true) =>
                    "the upper bounds are fitted as if exact, as requested; lower bounds are not",
                _ if upper > 0 =>
                    "bounds are left out of the fits (--include-unbracketed fits the upper \
                     bounds as if exact)",
                _ => "bounds are left out of the fits",
            }
        ));
    }
    let shares: Vec<f64> = forget_points
        .iter()
        .filter_map(|p| p.conv_share())
        .collect();
    if let (Some(lo), Some(hi)) = (
        shares.iter().copied().reduce(f64::min),
        shares.iter().copied().reduce(f64::max),
    ) {
        let range = if hi - lo < 0.005 {
            format!("{:.0}%", hi * 100.0)
        } else {
            format!("{:.0}-{:.0}%", lo * 100.0, hi * 100.0)
        };
        notes.push(format!(
            "the convolution caches are {range} of N_S here (under 3% in the paper's models); \
             the fits are repeated with x = the SSM states alone (`ssm_only`)"
        ));
    }

    let mut recall_points: Vec<RecallPoint> = by_size
        .iter()
        .filter_map(|(&size, group)| recall_point(size, group, &mut notes))
        .collect();
    let in_distribution = recall_points
        .iter()
        .filter(|p| p.retrieval == Retrieval::InDistribution && p.passkey_ran == Some(true))
        .count();
    if in_distribution > 0 {
        notes.push(format!(
            "{in_distribution} state size(s) have an in-distribution T_recall (their runs \
             trained on synthetic passkey sequences, `[data.synthetic]`): retrieval was learned, \
             not zero-shot as in the paper, so they are shown but kept out of the T_recall law"
        ));
    }
    let recall_bounds = |kind: Censoring| {
        recall_points
            .iter()
            .filter(|p| p.estimate.is_some_and(|e| e.kind == kind))
            .count()
    };
    let (r_lower, r_upper) = (
        recall_bounds(Censoring::LowerBound),
        recall_bounds(Censoring::UpperBound),
    );
    if r_lower + r_upper > 0 {
        notes.push(format!(
            "{} T_recall point(s) are bounds, not fitted: {r_lower} lower bound(s) (the longest \
             passkey length tried passes), {r_upper} upper bound(s) (no length passes)",
            r_lower + r_upper
        ));
    }

    let total = fit_state(
        Measure::Total,
        &forget_points,
        &recall_points,
        options,
        0,
        &mut notes,
    );
    let ssm_known = !forget_points.is_empty()
        && forget_points.iter().all(|p| p.ssm_state_size.is_some())
        && recall_points.iter().all(|p| p.ssm_state_size.is_some());
    let ssm_only = ssm_known.then(|| {
        fit_state(
            Measure::Ssm,
            &forget_points,
            &recall_points,
            options,
            10,
            &mut notes,
        )
    });

    let tag = named.then_some(mixer);
    for p in &mut forget_points {
        p.mixer = tag;
    }
    for p in &mut recall_points {
        p.mixer = tag;
    }
    (
        MixerLaw {
            mixer,
            forget_points,
            linear: total.linear,
            linear_with_origin: total.linear_with_origin,
            recall_points,
            exponential: total.exponential,
            recall_shape: total.recall_shape,
            ssm_only,
        },
        notes,
    )
}
