use forgetlab_runs::results::{
    Censoring, Estimate, ForgetPoint, PAPER_FORGET_LINE, PAPER_RECALL_LAW, Retrieval,
};

use forgetlab_runs::config::MixerKind;

use super::fits::{BAND_REACH, BAND_STEPS};
use super::*;

/// The paper's six T_forget points (paper.md section 3), N_S from the conv-inclusive formula.
const PAPER_X: [f64; 5] = [1.079, 1.619, 2.424, 4.848, 12.915];
const PAPER_FORGET_K: [f64; 5] = [1.0, 2.0, 8.0, 16.0, 64.0];
const PAPER_RECALL_K: [f64; 5] = [1.0, 2.0, 4.0, 16.0, 256.0];

fn opts(bootstrap: usize, seed: u64) -> LawOptions {
    LawOptions {
        bootstrap,
        seed,
        ..LawOptions::default()
    }
}

fn pts(ys: &[f64]) -> Vec<(f64, f64)> {
    PAPER_X.iter().copied().zip(ys.iter().copied()).collect()
}

/// The band is pointwise: it holds the fitted line, reaches past the largest state size,
/// and near the middle of the data it is narrower than the envelope of all lines with a and
/// b inside their separate intervals (a and b co-vary, so that envelope overstates it).
#[test]
fn the_band_is_pointwise_and_tighter_than_the_coefficient_envelope() {
    let (fit, _) = fit_linear(&pts(&PAPER_FORGET_K), true, &opts(1000, 1)).unwrap();
    assert_eq!(fit.band.len(), BAND_STEPS + 1);
    let last = fit.band.last().unwrap().0;
    assert!(
        (last - 12.915 * BAND_REACH).abs() < 1e-9,
        "band ends at {last}"
    );
    for &(x, low, high) in &fit.band {
        let y = fit.a * x + fit.b;
        assert!(
            low <= y + 1e-9 && y <= high + 1e-9,
            "x = {x}: {low} <= {y} <= {high}"
        );
    }
    let (x, low, high) = fit.band[BAND_STEPS / 4]; // x about 4 M, inside the data
    let corners = [
        fit.a_ci.0 * x + fit.b_ci.0,
        fit.a_ci.0 * x + fit.b_ci.1,
        fit.a_ci.1 * x + fit.b_ci.0,
        fit.a_ci.1 * x + fit.b_ci.1,
    ];
    let envelope = corners.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        - corners.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        high - low < envelope,
        "pointwise width {} vs envelope {envelope} at x = {x}",
        high - low
    );
}

#[test]
fn paper_points_with_origin_reproduce_the_published_line() {
    let (fit, used) = fit_linear(&pts(&PAPER_FORGET_K), true, &opts(1000, 1)).unwrap();
    assert!((5.15..=5.17).contains(&fit.a), "a = {}", fit.a);
    // Least squares gives b = -4.492; the paper prints -4.469 (pixel-read inputs).
    assert!((-4.50..=-4.46).contains(&fit.b), "b = {}", fit.b);
    assert!((fit.r2 - 0.9844).abs() < 1e-3, "R² = {}", fit.r2);
    assert_eq!(fit.n, 6);
    assert!(fit.with_origin);
    assert!(fit.a_ci.0 < fit.a && fit.a < fit.a_ci.1, "{:?}", fit.a_ci);
    assert!(used > 990);
    // Without the origin the line is different: the paper's numbers need the origin.
    let (no, _) = fit_linear(&pts(&PAPER_FORGET_K), false, &opts(1000, 1)).unwrap();
    assert!(
        (no.a - 5.370).abs() < 0.01 && (no.b + 6.379).abs() < 0.01,
        "{no:?}"
    );
    assert_eq!(no.n, 5);
}

#[test]
fn linear_fit_recovers_known_parameters() {
    let xs = [0.5, 1.0, 2.0, 3.5, 5.0, 8.0, 13.0];
    let exact: Vec<(f64, f64)> = xs.iter().map(|&x| (x, 3.0 * x - 2.0)).collect();
    let (fit, _) = fit_linear(&exact, false, &opts(200, 0)).unwrap();
    assert!((fit.a - 3.0).abs() < 1e-12 && (fit.b + 2.0).abs() < 1e-12);
    assert!((fit.r2 - 1.0).abs() < 1e-12);
    assert!((fit.a_ci.0 - 3.0).abs() < 1e-9 && (fit.a_ci.1 - 3.0).abs() < 1e-9);
    // With noise, the truth lies in the bootstrap interval and the estimate is close.
    let noisy: Vec<(f64, f64)> = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| (x, 3.0 * x - 2.0 + if i % 2 == 0 { 0.3 } else { -0.3 }))
        .collect();
    let (fit, _) = fit_linear(&noisy, false, &opts(2000, 3)).unwrap();
    assert!((fit.a - 3.0).abs() < 0.1, "{fit:?}");
    assert!(fit.a_ci.0 <= 3.0 && 3.0 <= fit.a_ci.1, "{fit:?}");
    assert!(fit.b_ci.0 <= -2.0 && -2.0 <= fit.b_ci.1, "{fit:?}");
    // A lower confidence level gives a narrower interval from the same resamples.
    let (narrow, _) = fit_linear(
        &noisy,
        false,
        &LawOptions {
            confidence: 0.5,
            ..opts(2000, 3)
        },
    )
    .unwrap();
    assert!(
        narrow.a_ci.0 > fit.a_ci.0 && narrow.a_ci.1 < fit.a_ci.1,
        "{narrow:?}"
    );
    // Seeded: the same seed gives the same intervals.
    let (again, _) = fit_linear(&noisy, false, &opts(2000, 3)).unwrap();
    assert_eq!(fit, again);
}

#[test]
fn linear_fit_needs_two_state_sizes() {
    let err = fit_linear(&[(1.0, 2.0)], true, &opts(100, 0)).unwrap_err();
    assert!(
        matches!(
            err,
            LawError::TooFewPoints {
                found: 1,
                need: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = fit_linear(&[(1.0, 2.0), (1.0, 3.0)], false, &opts(100, 0)).unwrap_err();
    assert!(err.to_string().contains("too few points"), "{err}");
    assert!(matches!(
        fit_linear(&[(1.0, 1.0), (2.0, 2.0)], false, &opts(0, 0)),
        Err(LawError::NoResamples)
    ));
    let wide = LawOptions {
        confidence: 1.0,
        ..opts(10, 0)
    };
    assert!(matches!(
        fit_linear(&[(1.0, 1.0), (2.0, 2.0)], false, &wide),
        Err(LawError::BadConfidence(_))
    ));
    assert!(matches!(
        fit_linear(&[(1.0, f64::NAN), (2.0, 2.0)], false, &opts(100, 0)),
        Err(LawError::NonFinite { .. })
    ));
}

#[test]
fn exponential_fit_recovers_known_parameters() {
    let (c, k, d): (f64, f64, f64) = (2.5, 1.6, 0.4);
    let xs = [0.5, 1.0, 2.0, 3.0, 4.5, 6.0, 8.0];
    let points: Vec<(f64, f64)> = xs.iter().map(|&x| (x, c * (k.powf(x) - 1.0) + d)).collect();
    let ExponentialResult {
        fit,
        used,
        boundary,
        ..
    } = fit_exponential(&points, false, &opts(200, 0)).unwrap();
    assert!((fit.k - k).abs() < 1e-6, "{fit:?}");
    assert!((fit.c - c).abs() < 1e-4, "{fit:?}");
    assert!((fit.d - d).abs() < 1e-4, "{fit:?}");
    assert!(fit.r2 > 0.999_999);
    assert!(!boundary);
    assert!(used > 150);
}

#[test]
fn exponential_fit_of_the_paper_recall_points() {
    // paper.md section 4: refitting these gives about (k 1.367, c 4.62, d -0.70).
    let result = fit_exponential(&pts(&PAPER_RECALL_K), true, &opts(300, 0)).unwrap();
    let (fit, boundary) = (result.fit.clone(), result.boundary);
    assert!((fit.k - 1.367).abs() < 0.01, "{fit:?}");
    assert!((fit.c - 4.62).abs() < 0.15, "{fit:?}");
    assert!((fit.d + 0.70).abs() < 0.15, "{fit:?}");
    assert!(!boundary);
    assert!(fit.k_ci.0 <= fit.k && fit.k <= fit.k_ci.1);
    // Over the paper's 0-13M the curvature is unmistakable.
    let shape = recall_shape(&result, &opts(300, 0));
    assert!(shape.identifiable, "{shape:?}");
    assert!(shape.curvature_p.unwrap() < 0.01, "{shape:?}");
    assert!(shape.departure > 0.3, "{shape:?}");
    let err = fit_exponential(&pts(&PAPER_RECALL_K)[..2], true, &opts(100, 0)).unwrap_err();
    assert!(
        matches!(err, LawError::TooFewPoints { need: 3, .. }),
        "{err}"
    );
}

fn outcome(size: u64, len: usize, forgets: Option<bool>) -> RunOutcome {
    RunOutcome {
        run: format!("s{size}-l{len}"),
        mixer: MixerKind::Mamba2,
        state_size: size,
        ssm_state_size: size / 2,
        seq_len: len,
        has_verdict: forgets.is_some(),
        forgets,
        has_passkey: false,
        t_recall: None,
        passkey_lengths: Vec::new(),
        passkey_trained: false,
    }
}

fn point(pattern: &[(usize, Option<bool>)]) -> ForgetPoint {
    let runs: Vec<RunOutcome> = pattern.iter().map(|&(l, f)| outcome(7, l, f)).collect();
    let refs: Vec<&RunOutcome> = runs.iter().collect();
    forget_point(7, &refs)
}

#[test]
fn forget_points_say_whether_they_are_bracketed() {
    let p = point(&[(2048, Some(true)), (1024, Some(false)), (4096, Some(true))]);
    assert_eq!(p.lengths, vec![1024, 2048, 4096]);
    assert_eq!((p.t_forget, p.bracketed), (Some(2048), true));
    assert!(p.note.contains("T_forget in (1K, 2K]"), "{}", p.note);
    assert!(p.note.starts_with("1K✗ 2K✓ 4K✓"), "{}", p.note);

    let p = point(&[(1024, Some(true)), (2048, Some(true))]);
    assert_eq!((p.t_forget, p.bracketed), (Some(1024), false));
    assert!(p.note.contains("upper bound"), "{}", p.note);

    let p = point(&[(1024, Some(false)), (2048, Some(false))]);
    assert_eq!((p.t_forget, p.bracketed), (None, false));
    assert!(p.note.contains("T_forget > 2K"), "{}", p.note);

    // Undetermined longer runs do not raise the lower bound.
    let p = point(&[(1024, Some(false)), (2048, None), (4096, None)]);
    assert_eq!((p.t_forget, p.bracketed), (None, false));
    assert!(
        p.note.contains("T_forget > 1K (lower bound only);"),
        "{}",
        p.note
    );

    let p = point(&[
        (1024, Some(false)),
        (2048, Some(true)),
        (4096, Some(false)),
        (8192, Some(true)),
    ]);
    assert_eq!((p.t_forget, p.bracketed), (Some(2048), true));
    assert!(
        p.note.contains("inconsistent pattern") && p.note.contains("4K"),
        "{}",
        p.note
    );

    let p = point(&[(1024, Some(false)), (2048, None), (4096, Some(true))]);
    assert_eq!((p.t_forget, p.bracketed), (Some(4096), true));
    assert!(
        p.note.contains("(1K, 4K]") && p.note.contains("2K not evaluated"),
        "{}",
        p.note
    );

    let p = point(&[(1024, None)]);
    assert_eq!(p.t_forget, None);
    assert!(p.note.contains("no determined verdict"), "{}", p.note);
}

#[test]
fn seeds_are_combined_by_majority() {
    let runs = [
        outcome(7, 1024, Some(false)),
        outcome(7, 2048, Some(true)),
        outcome(7, 2048, Some(false)),
        outcome(7, 4096, Some(true)),
        outcome(7, 4096, Some(true)),
        outcome(7, 4096, Some(false)),
    ];
    let refs: Vec<&RunOutcome> = runs.iter().collect();
    let p = forget_point(7, &refs);
    assert_eq!(p.verdicts, vec![Some(false), None, Some(true)]);
    assert_eq!(p.t_forget, Some(4096));
    assert!(
        p.note.contains("2K disagree") && p.note.contains("majority used"),
        "{}",
        p.note
    );
}

#[test]
fn law_report_recovers_a_synthetic_law_from_run_verdicts() {
    // True threshold T_forget[K] = 4 N_S[M]; lengths on a power-of-two grid.
    let sizes = [1_000_000u64, 2_000_000, 4_000_000, 8_000_000];
    let grid = [1024usize, 2048, 4096, 8192, 16384, 32768, 65536];
    let mut runs = Vec::new();
    for &s in &sizes {
        let threshold = 4.0 * s as f64 / 1e6 * 1024.0;
        for &len in &grid {
            let mut r = outcome(s, len, Some(len as f64 >= threshold));
            if len == 65536 {
                r.has_passkey = true;
                r.t_recall = Some((1024.0 * 2.0 * (1.5f64.powf(s as f64 / 1e6) - 1.0)) as usize);
                r.passkey_lengths = vec![512, 1 << 20];
            }
            runs.push(r);
        }
    }
    let report = law_report("exp", &runs, &LawOptions::default()).unwrap();
    let ts: Vec<Option<usize>> = report.forget_points.iter().map(|p| p.t_forget).collect();
    assert_eq!(ts, vec![Some(4096), Some(8192), Some(16384), Some(32768)]);
    let line = report.linear.as_ref().unwrap();
    assert!(
        (line.a - 4.0).abs() < 1e-9 && line.b.abs() < 1e-9,
        "{line:?}"
    );
    assert!(report.linear_with_origin.is_some());
    let exp = report.exponential.as_ref().unwrap();
    assert!((exp.k - 1.5).abs() < 0.01, "{exp:?}");
    assert_eq!(report.recall_points.len(), 4);
    assert_eq!(report.paper_linear, PAPER_FORGET_LINE);
    assert_eq!(report.paper_exponential, PAPER_RECALL_LAW);
}

#[test]
fn law_report_says_when_there_are_too_few_points() {
    let runs = vec![
        outcome(1_000_000, 1024, Some(false)),
        outcome(1_000_000, 2048, Some(true)),
        outcome(2_000_000, 1024, Some(true)),
    ];
    let report = law_report("exp", &runs, &LawOptions::default()).unwrap();
    assert!(report.linear.is_none() && report.linear_with_origin.is_none());
    assert!(report.exponential.is_none());
    let notes = report.notes.join("\n");
    assert!(
        notes.contains("no T_forget line: too few points"),
        "{notes}"
    );
    assert!(
        notes.contains("1 of 2 state size(s) have only a bound on T_forget: 1 upper bound"),
        "{notes}"
    );
    assert!(notes.contains("no passkey summary"), "{notes}");
    // Including unbracketed points gives two sizes, enough for a line.
    let opts = LawOptions {
        include_unbracketed: true,
        ..LawOptions::default()
    };
    let report = law_report("exp", &runs, &opts).unwrap();
    let line = report.linear.unwrap();
    assert_eq!(line.n, 2);
    assert!(report.notes.iter().any(|n| n.contains("R² is meaningless")));
}

/// Runs of a true threshold T_forget[K] = 4 N_S[M] on a power-of-two grid, one state size
/// per entry of `sizes` (in millions).
fn forget_law_runs(sizes: &[f64]) -> Vec<RunOutcome> {
    let grid = [1024usize, 2048, 4096, 8192, 16384, 32768, 65536];
    let mut runs = Vec::new();
    for &m in sizes {
        let s = (m * 1e6) as u64;
        for &len in &grid {
            runs.push(outcome(s, len, Some(len as f64 >= 4.0 * m * 1024.0)));
        }
    }
    runs
}

/// `[fit] include_origin` picks the primary line: law.json records it, its note comes
/// first, and the text summary leads with it and reports the other beside it.
#[test]
fn include_origin_picks_the_primary_line() {
    let runs = forget_law_runs(&[1.0, 2.0, 4.0, 8.0, 16.0]);
    for include_origin in [true, false] {
        let options = LawOptions {
            include_origin,
            bootstrap: 200,
            ..LawOptions::default()
        };
        let report = law_report("exp", &runs, &options).unwrap();
        assert_eq!(report.primary_with_origin, include_origin);
        let primary = report.primary_linear().unwrap();
        assert_eq!(primary.with_origin, include_origin);
        assert_eq!(
            report.secondary_linear().map(|f| f.with_origin),
            Some(!include_origin)
        );
        let first_line = report
            .notes
            .iter()
            .find(|n| n.starts_with("T_forget line"))
            .unwrap();
        assert!(
            first_line.contains("(primary)") && first_line.contains("with (0,0)") == include_origin,
            "{first_line}"
        );
        let text = summary_text(&report);
        let (lead, beside) = if include_origin {
            ("primary, through (0,0)", "beside it, without (0,0)")
        } else {
            ("primary, without (0,0)", "beside it, through (0,0)")
        };
        let (at_lead, at_beside) = (text.find(lead), text.find(beside));
        assert!(
            at_lead.is_some() && at_beside.is_some() && at_lead < at_beside,
            "{text}"
        );
    }
}

/// Bounds are marked, left out of the line, and counted in the notes.
#[test]
fn bounds_are_marked_and_left_out_of_the_line() {
    let mut runs = forget_law_runs(&[1.0, 2.0, 4.0]);
    // 0.1M already forgets at 1K (upper bound); 32M never forgets up to 64K (lower bound).
    runs.extend(forget_law_runs(&[0.1, 32.0]));
    let report = law_report("exp", &runs, &opts(200, 0)).unwrap();
    let kinds: Vec<(u64, Option<Censoring>, Option<usize>)> = report
        .forget_points
        .iter()
        .map(|p| {
            (
                p.state_size,
                p.estimate.map(|e| e.kind),
                p.estimate.map(|e| e.tokens),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (100_000, Some(Censoring::UpperBound), Some(1024)),
            (1_000_000, Some(Censoring::Exact), Some(4096)),
            (2_000_000, Some(Censoring::Exact), Some(8192)),
            (4_000_000, Some(Censoring::Exact), Some(16384)),
            (32_000_000, Some(Censoring::LowerBound), Some(65536)),
        ]
    );
    // The exact points lie on T = 4 N_S: a bound in the fit would pull the line off it.
    let line = report.linear.as_ref().unwrap();
    assert_eq!(line.n, 3);
    assert!(
        (line.a - 4.0).abs() < 1e-9 && line.b.abs() < 1e-9,
        "{line:?}"
    );
    let notes = report.notes.join("\n");
    assert!(
        notes.contains(
            "2 of 5 state size(s) have only a bound on T_forget: 1 upper bound(s) (the \
             shortest length tried already forgets), 1 lower bound(s)"
        ),
        "{notes}"
    );
    let text = summary_text(&report);
    assert!(text.contains("≤1K") && text.contains(">64K"), "{text}");
}

/// With 2-4 state sizes the notes say plainly that the interval is rough; with more they
/// do not.
#[test]
fn few_state_sizes_make_a_rough_interval() {
    let few = law_report("exp", &forget_law_runs(&[1.0, 2.0, 4.0]), &opts(200, 0)).unwrap();
    let notes = few.notes.join("\n");
    assert!(
        notes.contains("only 3 state sizes, so the bootstrap interval is rough (few points)"),
        "{notes}"
    );
    assert!(few.primary_linear().unwrap().is_rough());
    assert!(summary_text(&few).contains("rough interval: only 3 state sizes"));
    let many = law_report(
        "exp",
        &forget_law_runs(&[1.0, 2.0, 3.0, 4.0, 6.0, 8.0]),
        &opts(200, 0),
    )
    .unwrap();
    let notes = many.notes.join("\n");
    assert!(!notes.contains("rough"), "{notes}");
    assert!(!many.primary_linear().unwrap().is_rough());
}

/// Tiny state sizes with a straight T_recall: k is not identifiable, no k is reported, a
/// straight line is; real curvature in the same tiny range is found in its own scale.
#[test]
fn a_straight_recall_at_tiny_sizes_is_not_an_exponential() {
    let xs = [0.002, 0.0035, 0.005, 0.007, 0.009];
    let linear: Vec<(f64, f64)> = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            (
                x,
                (20_000.0 * x + if i % 2 == 0 { 4.0 } else { -4.0 }) / 1024.0,
            )
        })
        .collect();
    let options = opts(200, 0);
    let result = fit_exponential(&linear, true, &options).unwrap();
    let shape = recall_shape(&result, &options);
    assert!(!shape.identifiable, "{shape:?}");
    let reason = shape.reason.as_deref().unwrap();
    assert!(
        reason.contains("not distinguishable from a straight line")
            || reason.contains("is a straight line"),
        "{reason}"
    );
    assert!(shape.paper_departure < 1e-3, "{shape:?}");
    let line = shape.line.as_ref().unwrap();
    assert!((line.a - 20_000.0 / 1024.0).abs() < 1.5, "{line:?}");

    // Through law_report: no exponential, the shape and its line instead.
    let runs: Vec<RunOutcome> = xs
        .iter()
        .zip(&linear)
        .map(|(&x, &(_, y))| RunOutcome {
            has_passkey: true,
            t_recall: Some((y * 1024.0).round() as usize),
            passkey_lengths: vec![16, 4096],
            ..outcome((x * 1e6) as u64, 64, Some(true))
        })
        .collect();
    let report = law_report("tiny", &runs, &options).unwrap();
    assert!(report.exponential.is_none());
    let shape = report.recall_shape.as_ref().unwrap();
    assert!(!shape.identifiable && shape.line.is_some(), "{shape:?}");
    let notes = report.notes.join("\n");
    assert!(
        notes.contains("k is not identifiable and not reported"),
        "{notes}"
    );
    assert!(
        summary_text(&report).contains("T_recall: k not identifiable"),
        "{}",
        summary_text(&report)
    );

    // Exactly straight points: the best fit is the flattest curve searched.
    let straight: Vec<(f64, f64)> = xs.iter().map(|&x| (x, 20.0 * x)).collect();
    let result = fit_exponential(&straight, true, &options).unwrap();
    let shape = recall_shape(&result, &options);
    assert!(!shape.identifiable, "{shape:?}");
    assert!(
        shape
            .reason
            .as_deref()
            .unwrap()
            .contains("is a straight line"),
        "{shape:?}"
    );

    // A real doubling every 0.002M in the same range is curvature the fit can see.
    let curved: Vec<(f64, f64)> = [0.002, 0.004, 0.006, 0.008, 0.010]
        .iter()
        .map(|&x| (x, 0.5 * (2f64.powf(x / 0.002) - 1.0)))
        .collect();
    let result = fit_exponential(&curved, true, &options).unwrap();
    let shape = recall_shape(&result, &options);
    assert!(shape.identifiable, "{shape:?}");
    assert!(
        (result.fit.k.ln() - 2f64.ln() / 0.002).abs() < 1.0,
        "{:?}",
        result.fit
    );
}

/// T_recall: in-distribution retrieval and bounds are labelled and kept out of the
/// zero-shot law; "not run" and "ran, nothing passed" are told apart.
#[test]
fn recall_points_say_what_they_are() {
    let recall = |m: f64| (1024.0 * 2.0 * (1.5f64.powf(m) - 1.0)) as usize;
    let mut runs = Vec::new();
    for (m, trained, kind) in [
        (1.0, false, "exact"),
        (2.0, false, "exact"),
        (3.0, false, "exact"),
        (4.0, false, "exact"),
        (5.0, true, "exact"),
        (6.0, false, "at-longest"),
        (7.0, false, "none-passes"),
        (8.0, false, "not-run"),
    ] {
        let mut r = outcome((m * 1e6) as u64, 4096, Some(true));
        r.passkey_trained = trained;
        match kind {
            "exact" => {
                r.has_passkey = true;
                r.t_recall = Some(recall(m));
                r.passkey_lengths = vec![512, 1 << 20];
            }
            "at-longest" => {
                r.has_passkey = true;
                r.t_recall = Some(8192);
                r.passkey_lengths = vec![1024, 8192];
            }
            "none-passes" => {
                r.has_passkey = true;
                r.passkey_lengths = vec![2048, 8192];
            }
            _ => {}
        }
        runs.push(r);
    }
    let report = law_report("exp", &runs, &opts(200, 0)).unwrap();
    let p = &report.recall_points;
    assert_eq!(p.len(), 8);
    assert_eq!(p[4].retrieval, Retrieval::InDistribution);
    assert!(
        p.iter()
            .enumerate()
            .all(|(i, r)| (i == 4) == (r.retrieval == Retrieval::InDistribution))
    );
    assert_eq!(
        p[5].estimate,
        Some(Estimate {
            tokens: 8192,
            kind: Censoring::LowerBound
        })
    );
    assert_eq!(
        p[6].estimate,
        Some(Estimate {
            tokens: 2048,
            kind: Censoring::UpperBound
        })
    );
    assert!(p[6].passkey_ran == Some(true) && p[6].t_recall.is_none());
    assert!(p[7].passkey_ran == Some(false) && p[7].estimate.is_none());
    // Only the four zero-shot exact points (and the origin) are fitted, and they follow
    // 2 (1.5^x - 1) exactly; the in-distribution and bound points would pull k away.
    let exp = report.exponential.as_ref().expect("identifiable law");
    assert_eq!(exp.n, 5);
    assert!((exp.k - 1.5).abs() < 0.01, "{exp:?}");
    let notes = report.notes.join("\n");
    for needle in [
        "1 state size(s) have an in-distribution T_recall",
        "2 T_recall point(s) are bounds, not fitted: 1 lower bound(s)",
        "passkey ran on s7000000-l4096 but no length reached the accuracy threshold, so \
         T_recall < 2K",
        "passkey not run on s8000000-l4096",
    ] {
        assert!(notes.contains(needle), "missing {needle:?} in {notes}");
    }
    let text = summary_text(&report);
    for needle in ["≥8K", "<2K", "not run", "* in-distribution"] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
}

/// The fits are repeated on the SSM states alone, and the conv share is stated.
#[test]
fn ssm_only_fits_sit_beside_the_total() {
    // outcome() gives every run an SSM part of half its N_S.
    let report = law_report(
        "exp",
        &forget_law_runs(&[1.0, 2.0, 4.0, 8.0]),
        &opts(200, 0),
    )
    .unwrap();
    assert!(
        report
            .forget_points
            .iter()
            .all(|p| p.ssm_state_size == Some(p.state_size / 2))
    );
    let total = report.linear.as_ref().unwrap();
    let ssm = report.ssm_only.as_ref().unwrap().linear.as_ref().unwrap();
    assert!((total.a - 4.0).abs() < 1e-9, "{total:?}");
    assert!((ssm.a - 8.0).abs() < 1e-9, "{ssm:?}");
    let notes = report.notes.join("\n");
    assert!(
        notes.contains("the convolution caches are 50% of N_S here"),
        "{notes}"
    );
    assert!(notes.contains("SSM-only T_forget line with (0,0) (primary)"));
    assert!(summary_text(&report).contains("SSM-only: primary, through (0,0)"));
}

#[test]
fn format_len_uses_k() {
    assert_eq!(format_len(16384), "16K");
    assert_eq!(format_len(1000), "1000");
    assert_eq!(format_len(1536), "1536");
}

/// Runs of one mixer whose true T_forget[K] = `slope` N_S[M]: at every N_S in `sizes` (M
/// scalars) each power-of-two length from 256 to 16K forgets exactly when it reaches that.
fn mixer_runs(mixer: MixerKind, slope: f64, sizes: &[f64]) -> Vec<RunOutcome> {
    let mut runs = Vec::new();
    for &m in sizes {
        let truth = slope * m * 1024.0;
        for len in (8..=14).map(|p| 1usize << p) {
            runs.push(RunOutcome {
                run: format!("{}-{m}-{len}", mixer.name()),
                mixer,
                ssm_state_size: (m * 0.6e6) as u64,
                ..outcome((m * 1e6) as u64, len, Some(len as f64 >= truth))
            });
        }
    }
    runs
}

/// Two mixers with different slopes, at partly the same N_S: two laws that recover each slope,
/// never one through both, and law.json says which is which.
#[test]
fn two_mixers_get_one_law_each_that_recovers_its_slope() {
    let mut runs = mixer_runs(MixerKind::Mamba2, 4.0, &[0.25, 0.5, 1.0, 2.0]);
    runs.extend(mixer_runs(
        MixerKind::GatedDeltaNet,
        1.0,
        &[0.5, 1.0, 2.0, 4.0],
    ));
    let report = law_report("two", &runs, &opts(200, 0)).unwrap();
    assert_eq!(report.mixers.len(), 2);
    assert_eq!(
        report.mixers.iter().map(|m| m.mixer).collect::<Vec<_>>(),
        MixerKind::ALL
    );
    for (law, slope) in report.mixers.iter().zip([4.0, 1.0]) {
        assert_eq!(law.forget_points.len(), 4, "{:?}", law.mixer);
        assert!(
            law.forget_points
                .iter()
                .all(|p| p.mixer == Some(law.mixer) && p.bracketed),
            "{:?}",
            law.forget_points
        );
        for fit in [&law.linear, &law.linear_with_origin] {
            let fit = fit.as_ref().unwrap();
            assert!((fit.a - slope).abs() < 1e-9, "{:?}: {fit:?}", law.mixer);
            assert!(fit.b.abs() < 1e-9, "{:?}: {fit:?}", law.mixer);
        }
        let ssm = law.ssm_only.as_ref().unwrap().linear.as_ref().unwrap();
        assert!((ssm.a - slope / 0.6).abs() < 1e-6, "{ssm:?}");
    }
    // The same N_S in both mixers stays two points with their own T_forget.
    let at_1m: Vec<_> = report
        .forget_points
        .iter()
        .filter(|p| p.state_size == 1_000_000)
        .map(|p| (p.mixer, p.t_forget))
        .collect();
    assert_eq!(
        at_1m,
        [
            (Some(MixerKind::Mamba2), Some(4096)),
            (Some(MixerKind::GatedDeltaNet), Some(1024))
        ]
    );
    // No top-level line through two architectures.
    assert_eq!(report.forget_points.len(), 8);
    assert!(report.linear.is_none() && report.linear_with_origin.is_none());
    assert!(report.ssm_only.is_none() && report.exponential.is_none());
    let notes = report.notes.join("\n");
    assert!(
        notes.starts_with("2 mixers (Mamba-2: 28 run(s) over 4 state size(s); Gated DeltaNet:"),
        "{notes}"
    );
    // Each mixer's own notes follow, labelled.
    assert!(
        notes.contains("\nMamba-2: 28 run(s) over 4 state size(s)")
            && notes.contains("\nGated DeltaNet: 28 run(s) over 4 state size(s)"),
        "{notes}"
    );
    // Each per-mixer view reads like a single-mixer report.
    let views = report.per_mixer();
    assert_eq!(views.len(), 2);
    assert!((views[1].primary_linear().unwrap().a - 1.0).abs() < 1e-9);
    assert!(views.iter().all(|v| v.mixers.is_empty()));
    let text = summary_text(&report);
    assert!(
        text.starts_with("experiment two (2 mixers, one law each)\nMamba-2:\n"),
        "{text}"
    );
    assert!(text.contains("\nGated DeltaNet:\n"), "{text}");
    assert_eq!(
        text.matches("primary, through (0,0): T_forget[K] = ")
            .count(),
        4,
        "{text}"
    );
    // law.json round-trips, with the per-mixer section.
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"mixers\":[{\"mixer\":\"mamba2\""), "{json}");
    assert!(json.contains("\"mixer\":\"gated-deltanet\""), "{json}");
    let back: forgetlab_runs::results::LawReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
}

/// A Mamba-2 experiment's law.json is what it always was (no mixer anywhere); a Gated
/// DeltaNet experiment keeps the top-level fits and names its mixer on every point.
#[test]
fn one_mixer_keeps_the_top_level_law() {
    let mamba = law_report(
        "m",
        &mixer_runs(MixerKind::Mamba2, 4.0, &[0.5, 1.0]),
        &opts(50, 0),
    )
    .unwrap();
    let json = serde_json::to_string(&mamba).unwrap();
    assert!(!json.contains("mixer"), "{json}");
    assert!((mamba.primary_linear().unwrap().a - 4.0).abs() < 1e-9);
    assert!(
        mamba.notes[0].starts_with("14 run(s) over 2 state size(s)"),
        "{:?}",
        mamba.notes
    );
    assert_eq!(mamba.mixer(), None);
    assert!(summary_text(&mamba).starts_with("experiment m\n"));

    let gdn = law_report(
        "g",
        &mixer_runs(MixerKind::GatedDeltaNet, 2.0, &[1.0, 2.0]),
        &opts(50, 0),
    )
    .unwrap();
    assert!(gdn.mixers.is_empty());
    assert!((gdn.primary_linear().unwrap().a - 2.0).abs() < 1e-9);
    assert!(
        gdn.forget_points
            .iter()
            .all(|p| p.mixer == Some(MixerKind::GatedDeltaNet))
    );
    assert_eq!(gdn.mixer(), Some(MixerKind::GatedDeltaNet));
    assert!(summary_text(&gdn).starts_with("experiment g (Gated DeltaNet)\n"));
}
