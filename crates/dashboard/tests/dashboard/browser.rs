//! The dashboard in a real browser: headless Chromium renders the pages (DOM and screenshots),
//! and, driven through ChromeDriver, sees a training run's metrics and verdict arrive without a
//! reload.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`apt-get install chromium chromium-driver`);
//! `FORGETLAB_CHROMIUM` / `FORGETLAB_CHROMEDRIVER` override the binaries. Screenshots go to
//! `FORGETLAB_SCREENSHOTS` or `<target>/tmp/dashboard-screenshots/`.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use forgetlab_runs::{RunState, write_json_atomic};
use serde_json::{Value, json};

use crate::fixture::{self, EXPERIMENT, RUNNING, run_name};
use crate::http::{agent, get, start};

const INSTALL_HINT: &str = "headless Chromium is required for the dashboard browser tests: \
     install it with `apt-get install -y chromium chromium-driver` (Debian), or point \
     FORGETLAB_CHROMIUM and FORGETLAB_CHROMEDRIVER at the binaries";

fn find_binary(env: &str, names: &[&str]) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{env}={} does not exist. {INSTALL_HINT}",
            path.display()
        );
        return path;
    }
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for name in names {
        for dir in dirs.iter().chain([PathBuf::from("/usr/bin")].iter()) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("{} not found. {INSTALL_HINT}", names.join(" / "));
}

fn chromium() -> PathBuf {
    find_binary("FORGETLAB_CHROMIUM", &["chromium", "chromium-browser"])
}

fn chromedriver() -> PathBuf {
    find_binary("FORGETLAB_CHROMEDRIVER", &["chromedriver"])
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("FORGETLAB_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The flags every headless Chromium here starts with, with a fresh profile directory.
fn headless_flags(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// Runs Chromium with `args` and returns stdout; fails the test after `timeout`.
fn run_chromium(args: &[String], timeout: Duration) -> String {
    let mut child = Command::new(chromium())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting chromium: {e}. {INSTALL_HINT}"));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = reader.join().unwrap();
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("chromium {args:?} failed with {status}: {err}");
            }
            return out;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} took longer than {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A decoded screenshot: width, height and one RGB triple per pixel.
struct Image {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

fn decode(png_path: &Path) -> Image {
    let file = std::fs::File::open(png_path).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "unexpected PNG depth");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Grayscale | png::ColorType::Indexed => 1,
    };
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|px| {
            if channels >= 3 {
                [px[0], px[1], px[2]]
            } else {
                [px[0], px[0], px[0]]
            }
        })
        .collect();
    Image {
        width: info.width as usize,
        height: info.height as usize,
        rgb,
    }
}

/// Distinct colours and the share of the most common one among `pixels`.
fn colour_stats(pixels: &[[u8; 3]]) -> (usize, f64) {
    let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
    for px in pixels {
        *counts.entry(*px).or_insert(0) += 1;
    }
    let top = counts.values().copied().max().unwrap_or(0);
    (counts.len(), top as f64 / pixels.len().max(1) as f64)
}

/// Many colours, no colour covering most of the picture; with `to_bottom`, the last fifth of
/// the picture too (a page longer than the window must be painted all the way down).
fn assert_not_blank(png_path: &Path, to_bottom: bool) {
    let image = decode(png_path);
    let (colours, top_share) = colour_stats(&image.rgb);
    assert!(
        colours >= 200 && top_share < 0.9,
        "{} looks blank: {colours} colours, the most common covers {:.1}% of {}x{}",
        png_path.display(),
        top_share * 100.0,
        image.width,
        image.height
    );
    if to_bottom {
        let start = image.width * (image.height * 4 / 5);
        let (colours, _) = colour_stats(&image.rgb[start..]);
        assert!(
            colours >= 20,
            "{}: the bottom fifth is empty ({colours} colours)",
            png_path.display()
        );
    }
}

#[test]
fn pages_render_in_headless_chromium() {
    let fx = fixture::build();
    let server = start(&fx.root(), 2000);
    let base = server.url();
    let profile = tempfile::tempdir().unwrap();
    let shots = screenshot_dir();

    let dump = |url: &str| {
        let mut args = headless_flags(profile.path());
        args.extend([
            "--virtual-time-budget=3000".to_string(),
            "--dump-dom".to_string(),
            url.to_string(),
        ]);
        run_chromium(&args, Duration::from_secs(120))
    };
    let dom = dump(&format!("{base}/experiments/{EXPERIMENT}"));
    assert!(dom.contains("id=\"grid\""), "grid missing from the DOM");
    assert_eq!(
        dom.matches("data-cell=\"forgets\"").count(),
        3,
        "forgetting runs in the grid"
    );
    assert!(
        dom.contains("data-chart=\"law-forget\""),
        "law chart missing"
    );
    assert!(
        dom.contains("data-chart=\"loss-vs-position\""),
        "per-position chart missing"
    );
    assert!(
        dom.contains("data-chart=\"training-loss\""),
        "training chart missing"
    );
    let run_dom = dump(&format!(
        "{base}/runs/{EXPERIMENT}/{}",
        run_name(16, 512, 0)
    ));
    for kind in [
        "training-loss",
        "training-lr",
        "loss-vs-position",
        "passkey-heatmap",
        "diagnostics-alpha",
    ] {
        assert!(
            run_dom.contains(&format!("data-chart=\"{kind}\"")),
            "{kind} missing from the run page DOM"
        );
    }

    // (file, page, window size, whether the page is longer than the window)
    for (name, path, size, long) in [
        ("index", "/".to_string(), "1400,700", false),
        (
            "experiment",
            format!("/experiments/{EXPERIMENT}"),
            "1400,2600",
            true,
        ),
        (
            "run",
            format!("/runs/{EXPERIMENT}/{}", run_name(16, 512, 0)),
            "1400,3600",
            true,
        ),
        (
            "run-broken",
            format!("/runs/{EXPERIMENT}/{}", fixture::TORN),
            "1400,1400",
            true,
        ),
    ] {
        let png = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&png);
        let mut args = headless_flags(profile.path());
        args.extend([
            format!("--window-size={size}"),
            // Paint everything before the capture (otherwise the bottom can be unpainted).
            "--run-all-compositor-stages-before-draw".to_string(),
            "--virtual-time-budget=3000".to_string(),
            format!("--screenshot={}", png.display()),
            format!("{base}{path}"),
        ]);
        run_chromium(&args, Duration::from_secs(120));
        assert!(png.is_file(), "no screenshot at {}", png.display());
        assert_not_blank(&png, long);
        println!("screenshot: {}", png.display());
    }
}

/// A minimal WebDriver client for one session.
struct Driver {
    process: Child,
    base: String,
    session: String,
}

impl Driver {
    fn start(profile: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting chromedriver: {e}. {INSTALL_HINT}"));
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut r) = agent().get(&format!("{base}/status")).call()
                && r.body_mut()
                    .read_json::<Value>()
                    .is_ok_and(|v| v["value"]["ready"] == true)
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut driver = Driver {
            process,
            base,
            session: String::new(),
        };
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium().display().to_string(),
                "args": headless_flags(profile).into_iter().chain(["--window-size=1400,1800".to_string()]).collect::<Vec<_>>(),
            }
        } } });
        let reply = driver.call("POST", "/session", caps);
        driver.session = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {reply}"))
            .to_string();
        driver
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let a = agent();
        let mut response = match method {
            "POST" => a.post(&url).send_json(&body),
            "DELETE" => a.delete(&url).call(),
            _ => a.get(&url).call(),
        }
        .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        let value: Value = response.body_mut().read_json().unwrap();
        assert!(
            response.status().is_success(),
            "webdriver {method} {path}: {value}"
        );
        value["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call(
            "POST",
            &format!("/session/{}/url", self.session),
            json!({ "url": url }),
        );
    }

    fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            json!({ "script": script, "args": [] }),
        )
    }

    /// Polls `script` until `done` accepts its value; fails after `timeout`.
    fn wait_for(&self, script: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(script);
            if done(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {script}: last value {v}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&self, path: &Path) {
        let data = self.call(
            "GET",
            &format!("/session/{}/screenshot", self.session),
            Value::Null,
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = agent()
                .delete(&format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[test]
fn an_open_page_follows_a_training_run_without_reloading() {
    let fx = fixture::build();
    let server = start(&fx.root(), 300);
    let base = server.url();
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start(profile.path());
    let run = fx.run(RUNNING);

    driver.goto(&format!("{base}/runs/{EXPERIMENT}/{RUNNING}"));
    // A marker that only survives if the page is never reloaded.
    driver.eval("window.__not_reloaded = true; return true;");
    let records = "return document.querySelector('#run-records').dataset.records;";
    assert_eq!(driver.eval(records), "7");
    let chart = "return document.querySelector('[data-live$=\"/training/loss\"]').innerHTML;";
    let chart_before = driver.eval(chart);
    assert!(
        chart_before
            .as_str()
            .unwrap()
            .contains("data-chart=\"training-loss\"")
    );

    // The trainer logs four more steps and a validation pass.
    fixture::append_metrics(&run, (28..=40).step_by(4), 0);
    write_json_atomic(&run.status(), &fixture::status(RunState::Running, 40, 64)).unwrap();
    driver.wait_for(records, Duration::from_secs(20), |v| v == "12");
    driver.wait_for(
        "return document.querySelector('#run-step').textContent;",
        Duration::from_secs(20),
        |v| v.as_str().is_some_and(|s| s.contains("40 / 64")),
    );
    let chart_after = driver.wait_for(chart, Duration::from_secs(20), |v| *v != chart_before);
    assert!(
        chart_after
            .as_str()
            .unwrap()
            .contains("data-chart=\"training-loss\"")
    );
    assert_eq!(driver.eval("return window.__not_reloaded === true;"), true);
    let metrics = get(
        &base,
        &format!("/api/runs/{EXPERIMENT}/{RUNNING}/metrics?since=7"),
    )
    .json();
    assert_eq!(metrics["total"], 12);
    assert_eq!(metrics["records"].as_array().unwrap().len(), 5);
    driver.screenshot(&screenshot_dir().join("live-run.png"));
    assert_not_blank(&screenshot_dir().join("live-run.png"), true);

    // On the experiment page, the cell turns from running to its verdict when evaluation lands.
    driver.goto(&format!("{base}/experiments/{EXPERIMENT}"));
    driver.eval("window.__not_reloaded = true; return true;");
    let cell =
        format!("return document.querySelector('#grid a[data-run=\"{RUNNING}\"]').dataset.cell;");
    assert_eq!(driver.eval(&cell), "running");
    let done = fx.run(&run_name(8, 512, 0));
    std::fs::create_dir_all(run.eval()).unwrap();
    std::fs::copy(done.verdict(), run.verdict()).unwrap();
    write_json_atomic(&run.status(), &fixture::status(RunState::Completed, 64, 64)).unwrap();
    driver.wait_for(&cell, Duration::from_secs(20), |v| v == "forgets");
    assert_eq!(driver.eval("return window.__not_reloaded === true;"), true);
    driver.screenshot(&screenshot_dir().join("live-experiment.png"));
    assert_not_blank(&screenshot_dir().join("live-experiment.png"), true);
}
