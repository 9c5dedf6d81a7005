//! Fault injection: impossible configs, damaged inputs and hostile files under the runs root.
//! Real processes, real files.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{corpus, error_line, forgetlab, run_ok, tiny_run_config, write};
use forgetlab_runs::results::PerPositionReport;
use forgetlab_runs::{RunConfig, RunDir, RunState, RunStatus};

/// `O_NONBLOCK` and `ENXIO` on Linux.
const O_NONBLOCK: i32 = 0o4000;
const ENXIO: i32 = 6;

/// The `error:` lines of a failed command's stderr (there must be exactly one).
fn one_error_line(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1), "a refusal, not a crash");
    error_line(&String::from_utf8_lossy(&out.stderr)).to_string()
}

fn train(config: &Path, run_dir: &Path) -> Output {
    forgetlab()
        .args([
            "train",
            config.to_str().unwrap(),
            "--run-dir",
            run_dir.to_str().unwrap(),
        ])
        .output()
        .expect("forgetlab runs")
}

/// The 1-based line of the first line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix:?}"))
        + 1
}

#[test]
fn eval_settings_are_rejected_at_train_start_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = tiny_run_config(32, 4096, "");
    let verdict = |line: &str| {
        base.replace(
            "[eval.passkey]",
            &format!("[eval.verdict]\n{line}\n\n[eval.passkey]"),
        )
    };
    let cases = [
        // Zero tokens, and 16 tokens: too short for the prompt with this tokenizer.
        (
            base.replace("lengths = [128, 256]", "lengths = [0, 256]"),
            "eval.passkey.lengths[0]",
            "lengths =",
        ),
        (
            base.replace("lengths = [128, 256]", "lengths = [16, 256]"),
            "eval.passkey.lengths[0]",
            "lengths =",
        ),
        (
            base.replace("lengths = [128, 256]", "lengths = [256, 128]"),
            "eval.passkey.lengths",
            "lengths =",
        ),
        (
            verdict("epsilon = inf"),
            "eval.verdict.epsilon",
            "epsilon =",
        ),
        (
            verdict("confidence = 1.5"),
            "eval.verdict.confidence",
            "confidence =",
        ),
    ];
    for (text, key, written) in cases {
        let config = write(dir.path(), "run.toml", &text);
        let run_dir = dir.path().join("run");
        let error = one_error_line(&train(&config, &run_dir));
        let expected = format!("{}:{}: {key}:", config.display(), line_of(&text, written));
        assert!(error.contains(&expected), "{key}: {error}");
        assert!(
            !run_dir.exists(),
            "{key}: nothing may be written for a refused config"
        );
    }
}

#[test]
fn error_messages_name_the_cause_once_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // An I/O error is printed once, not once per level of the error chain.
    let missing = dir.path().join("missing.toml");
    let out = forgetlab()
        .args(["train", missing.to_str().unwrap()])
        .output()
        .unwrap();
    let error = one_error_line(&out);
    assert_eq!(error.matches("(os error 2)").count(), 1, "{error}");
    let out = forgetlab()
        .args(["eval", "all", dir.path().join("no-run").to_str().unwrap()])
        .output()
        .unwrap();
    let error = one_error_line(&out);
    assert_eq!(error.matches("(os error 2)").count(), 1, "{error}");

    let base = tiny_run_config(32, 4096, "");
    let tokenizer_line = line_of(&base, "tokenizer =");
    let with_tokenizer = |path: &Path| {
        let mut text = String::new();
        for line in base.lines() {
            if line.starts_with("tokenizer =") {
                text.push_str(&format!("tokenizer = \"{}\"\n", path.display()));
            } else {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    };
    // A tokenizer path that does not exist is blamed on data.tokenizer, at its line.
    let config = write(
        dir.path(),
        "run.toml",
        &with_tokenizer(&dir.path().join("nope/tokenizer.json")),
    );
    let error = one_error_line(&train(&config, &dir.path().join("r1")));
    assert!(
        error.contains(&format!(
            "{}:{tokenizer_line}: data.tokenizer:",
            config.display()
        )),
        "{error}"
    );
    assert_eq!(error.matches("(os error 2)").count(), 1, "{error}");
    // A JSON file that is not a tokenizer is called that, not a JSON syntax error.
    let not_tokenizer = write(dir.path(), "other.json", r#"{"a": 1, "b": [2, 3]}"#);
    let config = write(dir.path(), "run.toml", &with_tokenizer(&not_tokenizer));
    let error = one_error_line(&train(&config, &dir.path().join("r2")));
    assert!(
        error.contains("data.tokenizer") && error.contains("not a tokenizer.json"),
        "{error}"
    );
    assert!(
        !error.contains("expected") && !error.contains("column"),
        "{error}"
    );
    // A missing [model] table is named; no key that is present is blamed for it.
    let start = base.find("[model]").unwrap();
    let end = base.find("[data]").unwrap();
    let config = write(
        dir.path(),
        "run.toml",
        &format!("{}{}", &base[..start], &base[end..]),
    );
    let error = one_error_line(&train(&config, &dir.path().join("r3")));
    assert!(error.contains("missing field `model`"), "{error}");
    assert!(!error.contains("seed"), "{error}");
}

#[test]
fn eval_refuses_a_tokenizer_larger_than_the_model_and_reads_n_s_from_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "run.toml", &tiny_run_config(32, 2048, ""));
    let run_dir = dir.path().join("run");
    run_ok(&[
        "train",
        config.to_str().unwrap(),
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    let run = RunDir::new(&run_dir);
    let original = std::fs::read_to_string(run.config()).unwrap();
    let trained = RunConfig::load(&run.config()).unwrap();

    // The GPT-NeoX tokenizer (50K tokens) against a model of 4096: refused, not a panic.
    let small = trained.data.tokenizer.display().to_string();
    let big = corpus().join("gpt-neox-20b-tokenizer.json");
    assert!(original.contains(&small));
    std::fs::write(
        run.config(),
        original.replace(&small, big.to_str().unwrap()),
    )
    .unwrap();
    let out = forgetlab()
        .args(["eval", "per-position", run_dir.to_str().unwrap()])
        .output()
        .unwrap();
    let error = one_error_line(&out);
    assert!(
        error.contains("gpt-neox-20b-tokenizer.json")
            && error.contains("vocabulary of 4096")
            && error.contains("50277"),
        "{error}"
    );

    // d_state edited after training: the report's N_S is the loaded model's.
    let mut edited = trained.clone();
    edited.model.d_state = 16;
    std::fs::write(run.config(), edited.to_toml()).unwrap();
    run_ok(&["eval", "per-position", run_dir.to_str().unwrap()]);
    let report: PerPositionReport =
        serde_json::from_slice(&std::fs::read(run.per_position("none")).unwrap()).unwrap();
    assert_eq!(report.state_size, trained.model.state_size().total);
    assert_ne!(report.state_size, edited.model.state_size().total);
}

#[test]
fn a_model_too_large_for_memory_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_run_config(32, 4096, "").replace("d_model = 32", "d_model = 65536");
    let config = write(dir.path(), "run.toml", &text);
    let run_dir = dir.path().join("run");
    let started = Instant::now();
    let error = one_error_line(&train(&config, &run_dir));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "refused before allocating"
    );
    assert!(
        error.contains("rough estimate")
            && error.contains("GiB")
            && error.contains("available to this process")
            && error.contains("model.d_model (now 65536)"),
        "{error}"
    );
    let status: RunStatus =
        serde_json::from_slice(&std::fs::read(RunDir::new(&run_dir).status()).unwrap()).unwrap();
    assert_eq!(status.state, RunState::Failed);
    assert!(
        status
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("rough estimate")),
        "{status:?}"
    );
}

#[test]
fn parquet_honours_skip_bad() {
    let dir = tempfile::tempdir().unwrap();
    let good = corpus().join("parquet/test-00000-of-00001.parquet");
    std::fs::copy(&good, dir.path().join("a-good.parquet")).unwrap();
    // Cut in half: the footer that describes the file is gone.
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(dir.path().join("b-cut.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let shards = dir.path().to_str().unwrap();
    let out = forgetlab()
        .args(["data", "stats", shards])
        .output()
        .unwrap();
    let error = one_error_line(&out);
    assert!(
        error.contains("b-cut.parquet") && error.contains("--skip-bad"),
        "{error}"
    );
    let out = run_ok(&["data", "stats", shards, "--skip-bad"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = stats.to_string();
    assert!(text.contains("unreadable parquet"), "{text}");
    let alone = run_ok(&["data", "stats", good.to_str().unwrap()]);
    let alone: serde_json::Value = serde_json::from_slice(&alone.stdout).unwrap();
    assert_eq!(
        stats["documents"], alone["documents"],
        "every record of the good file is kept: {text}"
    );
}

/// `forgetlab dashboard` on a free port, killed when dropped.
struct Dashboard {
    child: Child,
    addr: SocketAddr,
}

impl Dashboard {
    fn start(runs: &Path) -> Self {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = forgetlab()
            .args([
                "dashboard",
                "--runs",
                runs.to_str().unwrap(),
                "--addr",
                &addr.to_string(),
                "--request-timeout-s",
                "10",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let dashboard = Dashboard { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the dashboard did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        dashboard
    }

    /// GET `path`; panics unless the whole answer arrives within 20 s.
    fn get(&self, path: &str) -> (u16, String) {
        let limit = Duration::from_secs(20);
        let mut stream = TcpStream::connect_timeout(&self.addr, limit).unwrap();
        stream.set_read_timeout(Some(limit)).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut bytes = Vec::new();
        stream
            .read_to_end(&mut bytes)
            .unwrap_or_else(|e| panic!("GET {path}: no answer within {limit:?} ({e})"));
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("GET {path}: no status line in {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, b)| b.to_string());
        (status, body)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A run directory with a valid config and the given metrics log, under `runs/exp/NAME`.
fn fake_run(runs: &Path, name: &str, metrics: &[u8]) -> RunDir {
    let run = RunDir::new(runs.join("exp").join(name));
    std::fs::create_dir_all(run.root()).unwrap();
    std::fs::write(run.config(), tiny_run_config(32, 4096, "")).unwrap();
    std::fs::write(run.metrics(), metrics).unwrap();
    run
}

fn metric_line(step: u64) -> String {
    format!(
        "{{\"kind\":\"train\",\"step\":{step},\"tokens\":{},\"loss\":7.5,\"elapsed_s\":1.0}}\n",
        step * 1024
    )
}

#[test]
fn the_dashboard_lists_a_fifo_as_a_problem_and_never_blocks_on_it() {
    let runs = tempfile::tempdir().unwrap();
    let run = fake_run(runs.path(), "fifo-run", metric_line(1).as_bytes());
    // FIFOs where the main pages read: the run's status and the experiment's law.
    let fifos = [run.status(), runs.path().join("exp/law.json")];
    for fifo in &fifos {
        let made = std::process::Command::new("mkfifo")
            .arg(fifo)
            .status()
            .unwrap();
        assert!(made.success());
    }
    let dashboard = Dashboard::start(runs.path());
    for path in [
        "/",
        "/experiments/exp",
        "/runs/exp/fifo-run",
        "/api/experiments",
        "/api/experiments/exp",
        "/api/runs/exp/fifo-run",
        "/api/experiments/exp/law",
    ] {
        let (status, body) = dashboard.get(path);
        assert!(status < 500, "{path}: {status} {body}");
    }
    let (_, body) = dashboard.get("/api/runs/exp/fifo-run");
    let detail: serde_json::Value = serde_json::from_str(&body).unwrap();
    let problems = detail["problems"].to_string();
    assert!(
        problems.contains("status.json") && problems.contains("FIFO"),
        "{problems}"
    );
    let (status, body) = dashboard.get("/api/experiments/exp/law");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("FIFO"), "{body}");
    // Nobody holds them open for reading: a non-blocking writer finds no reader (ENXIO).
    for fifo in &fifos {
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(O_NONBLOCK)
            .open(fifo);
        assert_eq!(
            opened.err().and_then(|e| e.raw_os_error()),
            Some(ENXIO),
            "{} was opened for reading",
            fifo.display()
        );
    }
}

#[test]
fn a_metrics_line_that_is_not_utf8_is_counted_and_the_good_records_served() {
    let runs = tempfile::tempdir().unwrap();
    let mut metrics = metric_line(1).into_bytes();
    metrics.extend_from_slice(b"{\"kind\":\"train\",\"step\":2,\"note\":\"\xff\xfe\"}\n");
    metrics.extend_from_slice(metric_line(3).as_bytes());
    metrics.extend_from_slice(metric_line(4).as_bytes());
    fake_run(runs.path(), "bytes-run", &metrics);
    let dashboard = Dashboard::start(runs.path());
    let (status, body) = dashboard.get("/api/runs/exp/bytes-run/metrics");
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let steps: Vec<u64> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 3, 4], "{body}");
    assert_eq!(page["bad_lines"], 1, "{body}");
}
