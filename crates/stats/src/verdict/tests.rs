use super::*;
use crate::ranges::verdict_ranges;
use crate::simulate::{Noise, REAL_NOISE, block_windows, range_samples};
use forgetlab_runs::results::BaselineSample;

const T: usize = 256;
const HORIZON: usize = 8 * T;
const WINDOWS: usize = 64;
/// The default `[eval] range_tokens`.
const RANGE_TOKENS: usize = 1 << 19;

/// A little noise, far below any margin.
const QUIET: Noise = Noise {
    token_sd: 0.05,
    segment_sd: 0.0,
    window_sd: 0.05,
};

fn long_memory(seq_len: usize) -> MemoryLengths {
    memory_lengths(&[vec![10.0, 5000.0]], &[vec![50.0, 9000.0]], seq_len).unwrap()
}

fn samples(seq_len: usize, f: &dyn Fn(usize) -> f64, noise: Noise, seed: u64) -> RangeSamples {
    range_samples(seq_len, 8 * seq_len, WINDOWS, RANGE_TOKENS, f, noise, seed)
}

fn verdict_of(seq_len: usize, ranges: &RangeSamples, config: &VerdictConfig) -> ForgetVerdict {
    decide(VerdictInput {
        run: "r",
        seq_len,
        horizon: ranges.ranges.last().map_or(0, |r| r.end),
        state_size: 1000,
        prompt: "text",
        ranges,
        memory: long_memory(seq_len),
        config,
    })
    .unwrap()
}

#[test]
fn a_flat_curve_forgets_and_an_exploding_one_does_not() {
    let cfg = VerdictConfig::default();
    let flat = samples(T, &|_| 3.0, QUIET, 1);
    let v = verdict_of(T, &flat, &cfg);
    assert_eq!(v.forgets, Some(true), "{}", v.note);
    assert!(v.note.starts_with("Forgets"), "{}", v.note);
    assert_eq!(v.version, VERDICT_VERSION);
    let d = v.decision.as_ref().unwrap();
    assert_eq!(d.ranges.len(), 3);
    assert!(d.ranges.iter().all(|r| r.low <= r.rise && r.rise <= r.high));
    assert_eq!(
        d.ranges.iter().map(|r| r.windows).collect::<Vec<_>>(),
        vec![1024, 512, 256],
        "narrow ranges get more windows"
    );
    assert_eq!(d.windows, 2048);
    assert!(v.effect().unwrap().2 < cfg.epsilon);

    // Exploding past 2T, as the paper's failing runs do.
    let exploding = samples(
        T,
        &|p| {
            3.0 + if p > 2 * T {
                ((p - 2 * T) as f64 / 1500.0).exp() - 1.0
            } else {
                0.0
            }
        },
        QUIET,
        1,
    );
    let v = verdict_of(T, &exploding, &cfg);
    assert_eq!(v.forgets, Some(false), "{}", v.note);
    assert!(v.note.starts_with("Does not forget"), "{}", v.note);
    assert_eq!(v.decision.unwrap().decisive_range().start, 4 * T);
    assert!(v.undetermined.is_none());
}

#[test]
fn a_loss_that_falls_past_t_forgets() {
    // A model that keeps gaining from context: its loss falls past T.
    let cfg = VerdictConfig::default();
    let falling = samples(T, &|p| 3.0 - (p as f64 + 1.0).ln() * 0.05, QUIET, 2);
    let v = verdict_of(T, &falling, &cfg);
    assert_eq!(v.forgets, Some(true), "{}", v.note);
    assert!(v.decision.unwrap().ranges.iter().all(|r| r.rise < 0.0));
}

#[test]
fn welch_intervals_come_from_the_spread_of_windows() {
    let stat = |start, end, n, mean, sd| RangeStat {
        start,
        end,
        n,
        mean,
        sd,
    };
    // Reference: 2 windows at 0 +- 1; range: 2 windows at 2 +- 1. se = 1, df = 2.
    let stats = [stat(8, 16, 2, 0.0, 1.0), stat(16, 32, 2, 2.0, 1.0)];
    let cfg = VerdictConfig::default();
    let t = rise_test("raw", &stats, &cfg).unwrap();
    let r = &t.ranges[0];
    assert!((r.rise - 2.0).abs() < 1e-12);
    assert!((r.stderr - 1.0).abs() < 1e-12);
    // t(0.95, 2) = 2.919986.
    assert!((r.high - (2.0 + 2.919_986)).abs() < 1e-5, "{}", r.high);
    assert!((r.low - (2.0 - 2.919_986)).abs() < 1e-5, "{}", r.low);
    assert_eq!(t.outcome, Outcome::Undetermined);
    // The bound's half-width 2.92 must shrink to the gap 1.9: (2.92 / 1.9)^2 x 2 = 4.7 windows.
    assert_eq!(t.windows_needed, Some(5));
    assert!(matches!(
        rise_test("raw", &[stats[0], stat(16, 32, 1, 2.0, 0.0)], &cfg),
        Err(VerdictError::TooFewWindows { found: 1, .. })
    ));
    assert!(matches!(
        rise_test("raw", &stats[..1], &cfg),
        Err(VerdictError::Malformed { .. })
    ));
    assert!(matches!(
        rise_test("raw", &[stats[0], stat(16, 32, 5, f64::NAN, 1.0)], &cfg),
        Err(VerdictError::Malformed { .. })
    ));
    // Two ranges: the lower bound is Bonferroni-corrected (t(0.975, df)), the upper is not.
    let two = [stats[0], stats[1], stat(32, 64, 2, 2.0, 1.0)];
    let t = rise_test("raw", &two, &cfg).unwrap();
    assert!((t.ranges[0].low - (2.0 - 4.302_653)).abs() < 1e-5);
    assert!((t.ranges[0].high - (2.0 + 2.919_986)).abs() < 1e-5);
}

#[test]
fn paired_tests_use_each_windows_own_reference() {
    let ranges = vec![(8, 16), (16, 32)];
    // Window levels differ by 10 nats; the rise is 1.0 and 3.0.
    let values = vec![vec![0.0, 1.0], vec![10.0, 13.0]];
    let t = rise_test_paired("reference", &ranges, &values, &VerdictConfig::default()).unwrap();
    let r = &t.ranges[0];
    assert!((r.rise - 2.0).abs() < 1e-12 && (r.stderr - 1.0).abs() < 1e-12);
    // t(0.95, 1) = 6.313752.
    assert!((r.high - 8.313_752).abs() < 1e-5, "{}", r.high);
    assert!((t.in_length_mean - 5.0).abs() < 1e-12);
}

#[test]
fn noisy_samples_give_undetermined_with_the_windows_that_would_decide() {
    let cfg = VerdictConfig::default();
    // A true rise of half the margin, measured on 4 windows per range only.
    let few = range_samples(
        T,
        HORIZON,
        4,
        0,
        &|p| 3.0 + if p >= T { 0.05 } else { 0.0 },
        REAL_NOISE,
        3,
    );
    let v = verdict_of(T, &few, &cfg);
    assert_eq!(v.forgets, None, "{}", v.note);
    match v.undetermined {
        Some(Undetermined::TooNoisy { windows_needed }) => {
            assert!(windows_needed.is_some_and(|w| w > 4), "{windows_needed:?}")
        }
        other => panic!("{other:?}: {}", v.note),
    }
    assert!(v.note.contains("windows would decide"), "{}", v.note);
}

#[test]
fn short_memory_or_a_short_horizon_leave_the_verdict_undetermined() {
    let cfg = VerdictConfig::default();
    let flat = samples(T, &|_| 3.0, QUIET, 4);
    let short = memory_lengths(
        &[vec![10.0, 100.0], vec![200.0]],
        &[vec![20.0, 900.0], vec![300.0]],
        T,
    )
    .unwrap();
    assert!(!short.any_beyond_train_len);
    let input = |ranges, horizon, memory| VerdictInput {
        run: "r",
        seq_len: T,
        horizon,
        state_size: 1,
        prompt: "text",
        ranges,
        memory,
        config: &cfg,
    };
    let v = decide(input(&flat, HORIZON, short)).unwrap();
    assert_eq!(v.forgets, None);
    assert_eq!(
        v.undetermined,
        Some(Undetermined::MemoryTooShort {
            longest_median: 200.0
        })
    );
    assert!(v.note.contains("cannot show"), "{}", v.note);

    let within = range_samples(T, T, WINDOWS, RANGE_TOKENS, &|_| 3.0, QUIET, 4);
    let v = decide(input(&within, T, long_memory(T))).unwrap();
    assert_eq!(v.forgets, None);
    assert_eq!(
        v.undetermined,
        Some(Undetermined::HorizonTooShort { horizon: T })
    );
}

#[test]
fn the_excess_and_text_difficulty_tests_are_reported_beside_raw() {
    let cfg = VerdictConfig::default();
    let mut s = samples(T, &|_| 3.0, QUIET, 5);
    // An n-gram whose loss falls 0.4 nats past T: the excess rises although the model is flat.
    for (i, r) in s.ranges.iter_mut().enumerate() {
        let mean = if i == 0 { 5.0 } else { 4.6 };
        r.ngram = Some(BaselineSample {
            mean,
            sd: 0.05,
            excess_sd: 0.05,
        });
    }
    let v = verdict_of(T, &s, &cfg);
    assert_eq!(v.decided_on, VerdictCurve::Raw);
    assert_eq!(v.forgets, Some(true), "{}", v.note);
    assert_eq!(v.test("excess").unwrap().outcome, Outcome::DoesNotForget);
    assert_eq!(v.test("text-difficulty").unwrap().outcome, Outcome::Forgets);
    assert!(
        v.note.contains("The excess test says it does not forget"),
        "{}",
        v.note
    );
    assert!(v.note.contains("changes with position"), "{}", v.note);
    let on_excess = VerdictConfig {
        on: VerdictCurve::Excess,
        ..VerdictConfig::default()
    };
    assert_eq!(verdict_of(T, &s, &on_excess).forgets, Some(false));
    // Without a baseline, an excess decision falls back to raw and says so.
    for r in s.ranges.iter_mut() {
        r.ngram = None;
    }
    let v = verdict_of(T, &s, &on_excess);
    assert_eq!(v.decided_on, VerdictCurve::Raw);
    assert!(v.note.contains("No excess curve"), "{}", v.note);
}

/// How often each outcome comes out over `draws` simulated runs.
fn rates(seq_len: usize, horizon: usize, f: &dyn Fn(usize) -> f64, draws: u64) -> (f64, f64, f64) {
    let cfg = VerdictConfig::default();
    let (mut yes, mut no, mut unknown) = (0, 0, 0);
    for seed in 0..draws {
        let s = range_samples(
            seq_len,
            horizon,
            WINDOWS,
            RANGE_TOKENS,
            f,
            REAL_NOISE,
            1000 + seed,
        );
        match own_tests(&s, &cfg).unwrap()[0].outcome {
            Outcome::Forgets => yes += 1,
            Outcome::DoesNotForget => no += 1,
            Outcome::Undetermined => unknown += 1,
        }
    }
    let d = draws as f64;
    (yes as f64 / d, no as f64 / d, unknown as f64 / d)
}

/// The minimal effect the default settings must detect: a sustained rise of twice the margin.
const MINIMAL_RISE: f64 = 0.2;

#[test]
fn calibration_a_flat_truth_is_rarely_called_a_failure() {
    // At the noise of real windows, default windows and range budget, for a short and a long
    // training length (the issue's T = 16 with a 4096-token horizon, and T = 256 at 8 T).
    for (seq_len, horizon) in [(16, 4096), (256, 2048)] {
        let (forgets, fails, undetermined) = rates(seq_len, horizon, &|_| 4.5, 1000);
        println!(
            "flat truth, T = {seq_len}, horizon {horizon}: forgets {forgets:.3}, does not \
             forget {fails:.3}, undetermined {undetermined:.3}"
        );
        assert!(
            fails <= 0.05,
            "T = {seq_len}: flat truth called a failure in {fails}"
        );
        // Not a guarantee of the test, but what the defaults are sized for.
        assert!(
            forgets >= 0.8,
            "T = {seq_len}: flat truth judged forgets only in {forgets}"
        );
    }
}

#[test]
fn calibration_a_sustained_rise_of_the_minimal_effect_is_detected() {
    for (seq_len, horizon) in [(16, 4096), (256, 2048)] {
        let rising = move |p: usize| 4.5 + if p >= seq_len { MINIMAL_RISE } else { 0.0 };
        let (forgets, fails, undetermined) = rates(seq_len, horizon, &rising, 1000);
        println!(
            "rise of {MINIMAL_RISE} after T = {seq_len}, horizon {horizon}: forgets \
             {forgets:.3}, does not forget {fails:.3}, undetermined {undetermined:.3}"
        );
        assert!(fails >= 0.9, "T = {seq_len}: rise detected only in {fails}");
        assert!(
            forgets <= 0.05,
            "T = {seq_len}: rise called forgetting in {forgets}"
        );
    }
}

#[test]
fn memory_is_measured_token_by_token() {
    // Decay e^-1 per token: every token remembers exactly 1 token.
    assert_eq!(token_memory_lengths(&[-1.0; 5]), vec![1.0; 5]);
    // e^-0.25 per token: 4 tokens, except the first three, whose prefix is too short.
    let m = token_memory_lengths(&[-0.25; 8]);
    assert_eq!(&m[..3], &[MEMORY_LENGTH_CAP; 3]);
    assert_eq!(&m[3..], &[4.0; 5]);
    // A selective head: a hard reset (log alpha -20) on 1% of tokens, -0.001 elsewhere. The
    // time-mean of log alpha would say 1 / 0.201 = 5 tokens; the typical token remembers
    // back to the last reset, a median around ln 2 / 0.01 = 69 tokens.
    let mut la = vec![-0.001; 100_000];
    let mut rng = 12345u64;
    for v in la.iter_mut() {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if (rng >> 33).is_multiple_of(100) {
            *v = -20.0;
        }
    }
    let (median, max) = head_memory(&la);
    assert!((55.0..85.0).contains(&median), "median {median}");
    assert!(max > 500.0 && max <= 1001.0, "max {max}");
    let mean: f64 = la.iter().sum::<f64>() / la.len() as f64;
    assert!(1.0 / -mean < 6.0);
    // A head that never decays remembers longer than the prompt.
    assert_eq!(
        head_memory(&[0.0; 100]),
        (MEMORY_LENGTH_CAP, MEMORY_LENGTH_CAP)
    );

    let m = memory_lengths(
        &[vec![2.0, 4.0], vec![100.0, 7.0]],
        &[vec![3.0; 2], vec![200.0; 2]],
        50,
    )
    .unwrap();
    assert_eq!(m.max, 100.0);
    assert_eq!(m.median, 5.5);
    assert!(m.any_beyond_train_len);
    assert!(memory_lengths(&[vec![f64::NAN]], &[vec![1.0]], 5).is_err());
    assert!(memory_lengths(&[vec![]], &[vec![]], 5).is_err());
}

#[test]
fn the_reference_test_pairs_two_runs_window_by_window() {
    let noise = Noise {
        token_sd: 1.0,
        segment_sd: 0.1,
        window_sd: 0.5,
    };
    // The same seed gives both runs the same windows (the same text), so window levels cancel.
    let control = block_windows(8 * 1024, 32, &|_| 3.0, noise, 7);
    let mut run = control.clone();
    // The run is 0.5 nats worse from position 512 on; blocks past 512 start at 512.
    for row in run.model.iter_mut() {
        for (v, &(s, _)) in row.iter_mut().zip(&control.ranges) {
            if s >= 512 {
                *v += 0.5;
            }
        }
    }
    let ranges = verdict_ranges(256, 2048);
    let values = reference_values(&ranges, &run, &control).unwrap().unwrap();
    let t = rise_test_paired("reference", &ranges, &values, &VerdictConfig::default()).unwrap();
    assert_eq!(t.outcome, Outcome::DoesNotForget);
    assert!((t.ranges[1].rise - 0.5).abs() < 1e-9, "{:?}", t.ranges);
    assert!(t.ranges[0].rise.abs() < 1e-9);
    // A training length that is not a power of two has ranges that are not unions of blocks.
    assert_eq!(
        reference_values(&verdict_ranges(300, 2400), &run, &control).unwrap(),
        None
    );
    let other = block_windows(8 * 1024, 32, &|_| 3.0, noise, 8);
    assert!(matches!(
        reference_values(&ranges, &run, &other),
        Err(VerdictError::DifferentWindows { .. })
    ));
}
