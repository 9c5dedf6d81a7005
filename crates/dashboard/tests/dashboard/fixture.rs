//! A runs directory generated with the runs crate's own types and writers: three state sizes x
//! three training lengths with every result file, plus runs that are running, failed, torn,
//! malformed, half written, and linked out of the root.

use std::path::{Path, PathBuf};

use forgetlab_runs::config::{Mitigation, RecallRule, VerdictCurve};
use forgetlab_runs::results::{
    Censoring, Diagnostics, Estimate, ForgetPoint, ForgetVerdict, HeadDiagnostics, LawReport,
    LayerDiagnostics, LinearFit, LossBucket, LossCurve, MemoryLengths, Outcome, PAPER_FORGET_LINE,
    PAPER_RECALL_LAW, PasskeySummary, PerPositionReport, RangeRise, RecallPoint, Retrieval,
    RiseTest, VERDICT_VERSION,
};
use forgetlab_runs::{
    MetricKind, MetricRecord, RunConfig, RunDir, RunState, RunStatus, append_json_line,
    write_atomic, write_json_atomic,
};

pub const EXPERIMENT: &str = "cpu-law";
/// What the file outside the runs root says; no response may contain it.
pub const SECRET: &str = "TOP-SECRET-outside-the-runs-root";

pub struct Fixture {
    /// Holds everything; the runs root is `tmp/runs`, the secret is `tmp/secret.txt`.
    pub tmp: tempfile::TempDir,
}

impl Fixture {
    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("runs")
    }
    pub fn experiment(&self) -> PathBuf {
        self.root().join(EXPERIMENT)
    }
    pub fn run(&self, name: &str) -> RunDir {
        RunDir::new(self.experiment().join(name))
    }
}

pub fn run_name(d_state: usize, seq_len: usize, seed: u64) -> String {
    format!("d_state-{d_state}_len-{seq_len}_seed-{seed}")
}

pub fn config(d_state: usize, seq_len: usize, seed: u64) -> RunConfig {
    let source = format!(
        r#"
name = "{name}"
seed = {seed}

[model]
d_model = 32
n_layer = 2
d_state = {d_state}
headdim = 16
chunk_size = 32
vocab_size = 256

[data]
train = ["data/corpus/*.jsonl"]
tokenizer = "data/tokenizer.json"

[train]
seq_len = {seq_len}
tokens_per_step = 4096
total_tokens = 262144
log_every = 4

[optim]
lr = 2e-3
warmup_steps = 8
"#,
        name = run_name(d_state, seq_len, seed)
    );
    match RunConfig::from_toml_str(&source) {
        Ok(c) => c,
        Err(e) => panic!("fixture config does not parse: {e}"),
    }
}

fn write_config(run: &RunDir, config: &RunConfig) {
    write_atomic(&run.config(), config.to_toml().as_bytes()).unwrap();
}

pub fn status(state: RunState, step: u64, total: u64) -> RunStatus {
    let mut s = RunStatus::now(state, step, total, step * 4096);
    s.host = Some("node-7".into());
    if state == RunState::Failed {
        s.reason = Some("loss became NaN at step 12 (lr too high?)".into());
    }
    s
}

/// One training record per `log_every` steps, a validation record every 16 steps.
pub fn metric(step: u64, seed: u64) -> Vec<MetricRecord> {
    let jitter = (((step * 7919 + seed * 104729) % 17) as f64 / 17.0 - 0.5) * 0.15;
    let loss = 5.6 * (step as f64).powf(-0.22) + jitter;
    let lr = 2e-3
        * ((step as f64) / 8.0).min(1.0)
        * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / 64.0).cos()));
    let mut out = vec![MetricRecord {
        kind: MetricKind::Train,
        step,
        tokens: step * 4096,
        loss,
        lr: Some(lr),
        grad_norm: Some(0.8 + 2.0 / (step as f64).sqrt() + jitter.abs()),
        tokens_per_s: Some(21_000.0 + 900.0 * ((step % 5) as f64)),
        elapsed_s: step as f64 * 0.19,
    }];
    if step.is_multiple_of(16) {
        out.push(MetricRecord {
            kind: MetricKind::Val,
            step,
            tokens: step * 4096,
            loss: loss + 0.08,
            lr: None,
            grad_norm: None,
            tokens_per_s: None,
            elapsed_s: step as f64 * 0.19,
        });
    }
    out
}

pub fn append_metrics(run: &RunDir, steps: impl Iterator<Item = u64>, seed: u64) {
    for step in steps {
        for record in metric(step, seed) {
            append_json_line(&run.metrics(), &record).unwrap();
        }
    }
}

fn per_position(name: &str, cfg: &RunConfig, forgets: bool) -> PerPositionReport {
    let seq_len = cfg.train.seq_len;
    let bucket = (seq_len / 8).max(1);
    let horizon = seq_len * 8;
    let curve = |prompt: &str, base: f64| {
        let buckets = (0..horizon / bucket)
            .map(|i| {
                let (start, end) = (i * bucket, (i + 1) * bucket);
                let centre = (start + end) as f64 / 2.0;
                let settled = base + 1.6 / (1.0 + centre / 40.0);
                let blow_up = if !forgets && centre > 1.5 * seq_len as f64 {
                    0.55 * (centre / seq_len as f64 - 1.5).powf(1.3)
                } else {
                    0.0
                };
                LossBucket {
                    start,
                    end,
                    loss: settled + blow_up,
                    stderr: 0.04,
                    ngram: Some(base + 1.1 + 0.6 / (1.0 + centre / 60.0)),
                    excess_stderr: Some(0.03),
                    reference: None,
                }
            })
            .collect();
        LossCurve {
            prompt: prompt.into(),
            sequences: 8,
            buckets,
            ranges: None,
            blocks: None,
        }
    };
    PerPositionReport {
        run: name.into(),
        seq_len,
        horizon,
        bucket,
        state_size: cfg.model.state_size().total,
        mitigation: Mitigation::default(),
        curves: vec![curve("text", 3.1), curve("newlines", 1.2)],
    }
}

/// The rise test of a curve, read off its buckets (no windows in the fixture: the spread is
/// the buckets' standard error).
fn rise(curve: &str, report: &PerPositionReport, forgets: bool) -> RiseTest {
    let buckets = &report.curves[0].buckets;
    let t = report.seq_len;
    let value = |b: &LossBucket| {
        if curve == "excess" {
            b.excess().unwrap_or(f64::NAN)
        } else {
            b.loss
        }
    };
    let mean_over = |lo: usize, hi: usize| {
        let inside: Vec<f64> = buckets
            .iter()
            .filter(|b| b.start >= lo && b.end <= hi)
            .map(value)
            .collect();
        inside.iter().sum::<f64>() / inside.len().max(1) as f64
    };
    let in_length_mean = mean_over(t / 2, t);
    let ranges: Vec<RangeRise> = [(t, 2 * t), (2 * t, 4 * t), (4 * t, 8 * t)]
        .into_iter()
        .map(|(start, end)| {
            let rise = mean_over(start, end) - in_length_mean;
            RangeRise {
                start,
                end,
                windows: 8,
                rise,
                stderr: 0.03,
                low: rise - 0.08,
                high: rise + 0.06,
            }
        })
        .collect();
    RiseTest {
        curve: curve.into(),
        windows: 8,
        in_length: (t / 2, t),
        in_length_mean,
        decisive: 2,
        ranges,
        outcome: if forgets {
            Outcome::Forgets
        } else {
            Outcome::DoesNotForget
        },
        windows_needed: None,
    }
}

fn verdict(name: &str, report: &PerPositionReport, forgets: bool) -> ForgetVerdict {
    let raw = rise("raw", report, forgets);
    ForgetVerdict {
        version: VERDICT_VERSION,
        run: name.into(),
        seq_len: report.seq_len,
        state_size: report.state_size,
        forgets: Some(forgets),
        decided_on: VerdictCurve::Raw,
        prompt: "text".into(),
        margin: 0.1,
        confidence: 0.95,
        decision: Some(raw.clone()),
        tests: vec![raw, rise("excess", report, forgets)],
        undetermined: None,
        memory: Some(MemoryLengths {
            per_head: vec![vec![40.0, 90.0, 300.0, 2000.0]; 2],
            per_head_max: vec![vec![80.0, 200.0, 900.0, 9000.0]; 2],
            max: 2000.0,
            median: 195.0,
            any_beyond_train_len: true,
        }),
        note: if forgets {
            "Forgets: the raw loss stays within the margin past T_train".into()
        } else {
            "Does not forget: the raw loss rises past 1.5 T_train".into()
        },
    }
}

fn passkey(name: &str, seq_len: usize) -> PasskeySummary {
    let lengths = vec![256, 512, 1024, 2048];
    let bins = 10;
    let heatmap = (0..bins)
        .map(|b| {
            lengths
                .iter()
                .map(|&l| {
                    let reach = (seq_len * 3) as f64 / l as f64;
                    Some((reach * (0.6 + 0.04 * b as f64)).clamp(0.0, 1.0))
                })
                .collect()
        })
        .collect::<Vec<Vec<Option<f64>>>>();
    let accuracy: Vec<f64> = (0..lengths.len())
        .map(|c| heatmap.iter().filter_map(|r| r[c]).sum::<f64>() / bins as f64)
        .collect();
    let t_recall = lengths
        .iter()
        .zip(&accuracy)
        .filter(|(_, a)| **a >= 0.9)
        .map(|(l, _)| *l)
        .max();
    PasskeySummary {
        run: name.into(),
        lengths,
        samples_per_length: 20,
        accuracy,
        heatmap,
        depth_bins: bins,
        threshold: 0.9,
        t_recall,
        mitigation: Mitigation::default(),
        samples: vec![20; 4],
        recall_rule: RecallRule::default(),
    }
}

fn diagnostics(name: &str, seq_len: usize) -> Diagnostics {
    let positions: Vec<usize> = (1..=32).map(|i| i * seq_len / 4).collect();
    let layers = (0..2)
        .map(|layer| LayerDiagnostics {
            layer,
            heads: (0..4)
                .map(|head| {
                    let alpha: f64 = 0.93 + 0.015 * head as f64 + 0.01 * layer as f64;
                    HeadDiagnostics {
                        head,
                        alpha_mean: vec![alpha; positions.len()],
                        log_retention_first: positions
                            .iter()
                            .map(|&p| p as f64 * alpha.ln())
                            .collect(),
                        state_mean: positions
                            .iter()
                            .map(|&p| 0.002 * (p as f64 / seq_len as f64) * (head as f64 - 1.5))
                            .collect(),
                        state_var: positions
                            .iter()
                            .map(|&p| 0.4 + 0.05 * (p as f64 / seq_len as f64) * (layer + 1) as f64)
                            .collect(),
                        state_rms: positions
                            .iter()
                            .map(|&p| 0.6 + 0.02 * (p as f64 / seq_len as f64))
                            .collect(),
                        state_norm: positions
                            .iter()
                            .map(|&p| 3.0 + 0.1 * (p as f64 / seq_len as f64))
                            .collect(),
                        alpha_time_mean: alpha,
                        memory_length: -1.0 / alpha.ln(),
                        memory_max: Some(-3.0 / alpha.ln()),
                    }
                })
                .collect(),
        })
        .collect();
    Diagnostics {
        run: name.into(),
        prompt: "text".into(),
        seq_len,
        length: seq_len * 8,
        sample_every: seq_len / 4,
        positions,
        layers,
        mitigation: Mitigation::default(),
    }
}

/// A completed, fully evaluated run.
fn evaluated_run(exp: &Path, d_state: usize, seq_len: usize, seed: u64, forgets: bool) -> String {
    let name = run_name(d_state, seq_len, seed);
    let run = RunDir::new(exp.join(&name));
    let cfg = config(d_state, seq_len, seed);
    write_config(&run, &cfg);
    let total = cfg.train.total_steps();
    append_metrics(&run, (4..=total).step_by(4), seed);
    let mut st = status(RunState::Completed, total, total);
    st.last_checkpoint = Some(total);
    write_json_atomic(&run.status(), &st).unwrap();
    std::fs::write(run.log(), format!("step {total}/{total} done\n")).unwrap();
    let report = per_position(&name, &cfg, forgets);
    write_json_atomic(&run.per_position("none"), &report).unwrap();
    write_json_atomic(&run.verdict(), &verdict(&name, &report, forgets)).unwrap();
    write_json_atomic(
        &run.passkey_dir("none").join("summary.json"),
        &passkey(&name, seq_len),
    )
    .unwrap();
    write_json_atomic(&run.diagnostics(), &diagnostics(&name, seq_len)).unwrap();
    name
}

fn state_size(d_state: usize) -> u64 {
    config(d_state, 128, 0).model.state_size().total
}

fn point(d_state: usize, verdicts: [Option<bool>; 3]) -> ForgetPoint {
    let lengths = vec![128, 256, 512];
    let first = verdicts.iter().position(|v| *v == Some(true));
    let t_forget = first.map(|i| lengths[i]);
    let bracketed = first.is_some_and(|i| verdicts[..i].contains(&Some(false)));
    ForgetPoint {
        mixer: None,
        state_size: state_size(d_state),
        ssm_state_size: Some(config(d_state, 128, 0).model.state_size().ssm),
        t_forget,
        bracketed,
        estimate: ForgetPoint::implied_estimate(&lengths, &verdicts, t_forget, bracketed),
        lengths,
        verdicts: verdicts.to_vec(),
        note: String::new(),
    }
}

/// law.json of the fixture: the exact line through the two bracketed points.
fn law() -> LawReport {
    let points = vec![
        point(8, [Some(false), Some(true), Some(true)]),
        point(16, [Some(false), Some(false), Some(true)]),
        point(32, [Some(false), Some(false), None]),
    ];
    let xy: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.bracketed)
        .filter_map(|p| {
            p.t_forget
                .map(|t| (p.state_size as f64 / 1e6, t as f64 / 1024.0))
        })
        .collect();
    let a = (xy[1].1 - xy[0].1) / (xy[1].0 - xy[0].0);
    let b = xy[0].1 - a * xy[0].0;
    LawReport {
        experiment: EXPERIMENT.into(),
        forget_points: points,
        linear: Some(LinearFit {
            a,
            b,
            r2: 1.0,
            n: 2,
            a_ci: (a * 0.8, a * 1.2),
            b_ci: (b - 0.05, b + 0.05),
            with_origin: false,
            band: (0..=20)
                .map(|i| {
                    let x = xy[1].0 * 1.25 * i as f64 / 20.0;
                    (x, 0.8 * a * x + b - 0.05, 1.2 * a * x + b + 0.05)
                })
                .collect(),
            confidence: 0.95,
        }),
        linear_with_origin: None,
        primary_with_origin: false,
        recall_points: vec![
            RecallPoint {
                mixer: None,
                state_size: state_size(8),
                ssm_state_size: Some(config(8, 128, 0).model.state_size().ssm),
                run: run_name(8, 512, 0),
                t_recall: Some(1024),
                passkey_ran: Some(true),
                lengths: vec![256, 1024, 4096],
                estimate: Some(Estimate {
                    tokens: 1024,
                    kind: Censoring::Exact,
                }),
                retrieval: Retrieval::ZeroShot,
            },
            RecallPoint {
                mixer: None,
                state_size: state_size(16),
                ssm_state_size: Some(config(16, 128, 0).model.state_size().ssm),
                run: run_name(16, 512, 0),
                t_recall: Some(1024),
                passkey_ran: Some(true),
                lengths: vec![256, 1024, 4096],
                estimate: Some(Estimate {
                    tokens: 1024,
                    kind: Censoring::Exact,
                }),
                retrieval: Retrieval::ZeroShot,
            },
        ],
        exponential: None,
        recall_shape: None,
        ssm_only: None,
        paper_linear: PAPER_FORGET_LINE,
        paper_exponential: PAPER_RECALL_LAW,
        notes: vec!["fixture: fitted through 2 points".into()],
        mixers: vec![],
    }
}

/// Names of the special runs.
pub const RUNNING: &str = "d_state-32_len-512_seed-0";
pub const FAILED: &str = "d_state-16_len-256_seed-1";
pub const TORN: &str = "d_state-8_len-256_seed-1";
pub const BROKEN_CONFIG: &str = "broken-config";
pub const HALF_WRITTEN: &str = "half-written";
pub const ESCAPES: &str = "linked-out";

pub fn build() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("secret.txt"), SECRET).unwrap();
    let root = tmp.path().join("runs");
    let exp = root.join(EXPERIMENT);
    std::fs::create_dir_all(&exp).unwrap();
    std::fs::write(
        exp.join("experiment.toml"),
        "[experiment]\nname = \"cpu-law\"\ndescription = \"Three state sizes x three training lengths on CPU.\"\n",
    )
    .unwrap();
    evaluated_run(&exp, 8, 128, 0, false);
    evaluated_run(&exp, 8, 256, 0, true);
    evaluated_run(&exp, 8, 512, 0, true);
    evaluated_run(&exp, 16, 128, 0, false);
    evaluated_run(&exp, 16, 256, 0, false);
    evaluated_run(&exp, 16, 512, 0, true);
    evaluated_run(&exp, 32, 128, 0, false);
    evaluated_run(&exp, 32, 256, 0, false);
    write_json_atomic(&exp.join("law.json"), &law()).unwrap();

    // Training now: 40% of its steps.
    let running = RunDir::new(exp.join(RUNNING));
    let cfg = config(32, 512, 0);
    write_config(&running, &cfg);
    append_metrics(&running, (4..=24).step_by(4), 0);
    write_json_atomic(
        &running.status(),
        &status(RunState::Running, 24, cfg.train.total_steps()),
    )
    .unwrap();

    // Failed with a reason.
    let failed = RunDir::new(exp.join(FAILED));
    let cfg = config(16, 256, 1);
    write_config(&failed, &cfg);
    append_metrics(&failed, (4..=12).step_by(4), 1);
    write_json_atomic(
        &failed.status(),
        &status(RunState::Failed, 12, cfg.train.total_steps()),
    )
    .unwrap();
    std::fs::write(
        failed.log(),
        "step 12: loss = NaN\nerror: loss became NaN at step 12\n",
    )
    .unwrap();

    // A second seed whose metrics end in a torn line and whose verdict was cut off.
    let torn = RunDir::new(exp.join(TORN));
    let cfg = config(8, 256, 1);
    write_config(&torn, &cfg);
    append_metrics(&torn, (4..=40).step_by(4), 1);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(torn.metrics())
            .unwrap();
        f.write_all(b"this is not json\n{\"kind\":\"train\",\"step\":44,\"tok")
            .unwrap();
    }
    write_json_atomic(&torn.status(), &status(RunState::Completed, 64, 64)).unwrap();
    std::fs::create_dir_all(torn.eval()).unwrap();
    std::fs::write(
        torn.verdict(),
        "{\"run\": \"d_state-8_len-256_seed-1\", \"seq_len\": 25",
    )
    .unwrap();
    std::fs::write(torn.diagnostics(), "[1, 2").unwrap();

    // A config that does not parse.
    let broken = RunDir::new(exp.join(BROKEN_CONFIG));
    std::fs::create_dir_all(broken.root()).unwrap();
    std::fs::write(broken.config(), "seed = 0\n[model]\nd_model = [\n").unwrap();
    write_json_atomic(&broken.status(), &status(RunState::Pending, 0, 64)).unwrap();

    // A run directory whose creation stopped after status.json.
    let half = RunDir::new(exp.join(HALF_WRITTEN));
    std::fs::create_dir_all(half.root()).unwrap();
    std::fs::write(half.status(), "{\"state\": \"pend").unwrap();

    // A run directory that is a link to a run outside the root, and a result file linking out.
    let outside_run = RunDir::new(tmp.path().join("elsewhere").join("run"));
    write_config(&outside_run, &config(8, 128, 7));
    write_json_atomic(&outside_run.status(), &status(RunState::Completed, 64, 64)).unwrap();
    std::os::unix::fs::symlink(outside_run.root(), exp.join(ESCAPES)).unwrap();
    let good = RunDir::new(exp.join(run_name(8, 128, 0)));
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), good.eval().join("leak.json"))
        .unwrap();

    // Another experiment whose law.json is malformed, and an empty one.
    let other = root.join("broken-law");
    evaluated_run(&other, 8, 128, 0, true);
    std::fs::write(other.join("law.json"), "{\"experiment\": 3}").unwrap();
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(
        empty.join("experiment.toml"),
        "[experiment]\nname = \"empty\"\n",
    )
    .unwrap();

    Fixture { tmp }
}
