//! The server on a generated runs directory: JSON endpoints, charts, pages, broken runs and
//! traversal attempts.

use crate::fixture::{
    self, BROKEN_CONFIG, ESCAPES, EXPERIMENT, FAILED, HALF_WRITTEN, RUNNING, SECRET, TORN, run_name,
};
use crate::http::{get, raw_get, start};

fn run_named<'a>(view: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    view["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("run {name} not listed"))
}

fn problems(run: &serde_json::Value) -> Vec<String> {
    run["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn experiments_and_grid_are_listed_with_broken_runs_explained() {
    let fx = fixture::build();
    let server = start(&fx.root(), 1000);
    let base = server.url();

    let list = get(&base, "/api/experiments");
    assert_eq!(list.status, 200);
    assert!(list.content_type.starts_with("application/json"));
    let list = list.json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["broken-law", EXPERIMENT, "empty"]);
    let cpu = &list[1];
    assert_eq!(cpu["runs"], 14);
    assert_eq!(cpu["cells"]["forgets"], 3);
    assert_eq!(cpu["cells"]["does-not-forget"], 5);
    assert_eq!(cpu["cells"]["running"], 1);
    assert_eq!(cpu["cells"]["failed"], 1);
    assert_eq!(cpu["cells"]["trained"], 1);
    assert_eq!(cpu["cells"]["broken"], 3);
    assert_eq!(cpu["has_law"], true);
    assert!(cpu["law_line"][0].as_f64().unwrap() > 0.0);
    assert_eq!(
        cpu["description"],
        "Three state sizes x three training lengths on CPU."
    );
    assert_eq!(list[2]["runs"], 0);

    let view = get(&base, &format!("/api/experiments/{EXPERIMENT}"));
    assert_eq!(view.status, 200);
    let view = view.json();
    assert_eq!(view["grid"]["seq_lens"], serde_json::json!([128, 256, 512]));
    let rows = view["grid"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let sizes: Vec<u64> = rows
        .iter()
        .map(|r| r["state_size"].as_u64().unwrap())
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    assert_eq!(rows[0]["d_state"], 8);
    // Two seeds share the (d_state 8, 256) cell.
    assert_eq!(
        rows[0]["cells"][1],
        serde_json::json!([run_name(8, 256, 0), TORN])
    );
    assert_eq!(rows[2]["cells"][2], serde_json::json!([RUNNING]));
    let unplaced = view["grid"]["unplaced"].as_array().unwrap();
    assert_eq!(unplaced.len(), 3, "{unplaced:?}");

    assert_eq!(
        run_named(&view, &run_name(8, 128, 0))["cell"],
        "does-not-forget"
    );
    assert_eq!(run_named(&view, &run_name(8, 256, 0))["cell"], "forgets");
    let running = run_named(&view, RUNNING);
    assert_eq!(running["cell"], "running");
    assert!((running["progress"].as_f64().unwrap() - 24.0 / 64.0).abs() < 1e-9);
    let failed = run_named(&view, FAILED);
    assert_eq!(failed["cell"], "failed");
    assert!(failed["reason"].as_str().unwrap().contains("NaN"));

    let torn = problems(run_named(&view, TORN));
    assert!(
        torn.iter()
            .any(|p| p == "metrics.jsonl: 2 unreadable line(s)"),
        "{torn:?}"
    );
    assert!(
        torn.iter().any(|p| p.starts_with("eval/verdict.json: EOF")),
        "{torn:?}"
    );
    let broken = run_named(&view, BROKEN_CONFIG);
    assert_eq!(broken["cell"], "broken");
    let p = problems(broken);
    assert!(
        p.iter()
            .any(|p| p.starts_with("config.toml: ") && p.contains("broken-config")),
        "{p:?}"
    );
    let half = problems(run_named(&view, HALF_WRITTEN));
    assert!(half.iter().any(|p| p == "config.toml: missing"), "{half:?}");
    assert!(
        half.iter().any(|p| p.starts_with("status.json:")),
        "{half:?}"
    );
    let linked = problems(run_named(&view, ESCAPES));
    assert_eq!(
        linked,
        ["run directory links outside the runs root; not read"]
    );

    let law = get(&base, &format!("/api/experiments/{EXPERIMENT}/law"));
    assert_eq!(law.status, 200);
    assert_eq!(law.json()["forget_points"].as_array().unwrap().len(), 3);
    let bad_law = get(&base, "/api/experiments/broken-law/law");
    assert_eq!(bad_law.status, 422);
    assert!(
        bad_law.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("law.json:")
    );
    let bad_view = get(&base, "/api/experiments/broken-law").json();
    assert!(
        bad_view["law_problem"]
            .as_str()
            .unwrap()
            .starts_with("law.json:")
    );
    assert_eq!(get(&base, "/api/experiments/empty/law").status, 404);
    assert_eq!(get(&base, "/api/experiments/nope").status, 404);
}

#[test]
fn run_endpoints_serve_results_and_explain_failures() {
    let fx = fixture::build();
    let server = start(&fx.root(), 1000);
    let base = server.url();
    let good = run_name(8, 128, 0);
    let run = get(&base, &format!("/api/runs/{EXPERIMENT}/{good}"));
    assert_eq!(run.status, 200);
    let run = run.json();
    assert_eq!(run["verdict"]["forgets"], false);
    assert_eq!(run["config"]["train"]["seq_len"], 128);
    assert_eq!(run["eval"]["per_position"], serde_json::json!(["none"]));
    assert_eq!(run["eval"]["passkey"], serde_json::json!(["none"]));
    assert_eq!(run["eval"]["diagnostics"], true);
    assert_eq!(run["metrics"]["records"], 20);
    assert_eq!(run["status"]["state"], "completed");

    let page = get(
        &base,
        &format!("/api/runs/{EXPERIMENT}/{good}/metrics?since=18"),
    )
    .json();
    assert_eq!(page["total"], 20);
    assert_eq!(page["records"].as_array().unwrap().len(), 2);
    assert_eq!(page["records"][1]["kind"], "val");
    let torn = get(&base, &format!("/api/runs/{EXPERIMENT}/{TORN}/metrics")).json();
    assert_eq!(torn["bad_lines"], 2);
    assert_eq!(torn["total"], 10 + 2);

    for (path, status) in [
        (format!("/api/runs/{EXPERIMENT}/{good}/per_position"), 200),
        (format!("/api/runs/{EXPERIMENT}/{good}/verdict"), 200),
        (format!("/api/runs/{EXPERIMENT}/{good}/passkey"), 200),
        (format!("/api/runs/{EXPERIMENT}/{good}/diagnostics"), 200),
        (
            format!("/api/runs/{EXPERIMENT}/{good}/per_position?mitigation=rri"),
            404,
        ),
        (format!("/api/runs/{EXPERIMENT}/{RUNNING}/verdict"), 404),
        (format!("/api/runs/{EXPERIMENT}/{TORN}/verdict"), 422),
        (format!("/api/runs/{EXPERIMENT}/{TORN}/diagnostics"), 422),
        (
            format!("/api/runs/{EXPERIMENT}/{good}/metrics?since=abc"),
            400,
        ),
        (
            format!("/api/runs/{EXPERIMENT}/{good}/per_position?mitigation=..%2Fx"),
            400,
        ),
        (
            format!("/svg/runs/{EXPERIMENT}/{good}/training/loss?smooth=2"),
            400,
        ),
        (
            format!("/svg/runs/{EXPERIMENT}/{good}/training/loss?logx=maybe"),
            400,
        ),
        (format!("/svg/runs/{EXPERIMENT}/{good}/training/bogus"), 404),
        (
            format!("/svg/runs/{EXPERIMENT}/{good}/per_position?quantity=bogus"),
            400,
        ),
        (
            format!("/svg/runs/{EXPERIMENT}/{good}/per_position?compare=nope"),
            404,
        ),
        (format!("/svg/experiments/{EXPERIMENT}/per_position"), 400),
        (format!("/api/runs/{EXPERIMENT}/nope"), 404),
        ("/api/nothing-here".to_string(), 404),
    ] {
        let reply = get(&base, &path);
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        if path.starts_with("/api/") && status != 200 {
            assert!(reply.json()["error"].is_string(), "{path}");
        }
    }
    let verdict = get(&base, &format!("/api/runs/{EXPERIMENT}/{TORN}/verdict")).json();
    assert!(
        verdict["error"]
            .as_str()
            .unwrap()
            .starts_with("eval/verdict.json: EOF"),
        "{verdict}"
    );
}

#[test]
fn charts_and_pages_render_for_every_run() {
    let fx = fixture::build();
    let server = start(&fx.root(), 1000);
    let base = server.url();
    let good = run_name(16, 512, 0);
    for (path, kind) in [
        (
            format!("/svg/runs/{EXPERIMENT}/{good}/training/loss"),
            "training-loss",
        ),
        (
            format!("/svg/runs/{EXPERIMENT}/{good}/training/lr?logx=0"),
            "training-lr",
        ),
        (
            format!("/svg/runs/{EXPERIMENT}/{good}/training/grad_norm"),
            "training-grad-norm",
        ),
        (
            format!("/svg/runs/{EXPERIMENT}/{good}/training/throughput"),
            "training-throughput",
        ),
        (
            format!("/svg/runs/{EXPERIMENT}/{good}/per_position?logx=1&quantity=excess"),
            "loss-vs-position",
        ),
        (
            format!(
                "/svg/runs/{EXPERIMENT}/{good}/per_position?compare={},{}",
                run_name(16, 128, 0),
                run_name(16, 256, 0)
            ),
            "loss-vs-position",
        ),
        (
            format!("/svg/runs/{EXPERIMENT}/{good}/passkey"),
            "passkey-heatmap",
        ),
        (
            format!("/svg/runs/{EXPERIMENT}/{good}/diagnostics/alpha_per_head"),
            "diagnostics-alpha",
        ),
        (
            format!("/svg/runs/{EXPERIMENT}/{good}/diagnostics/state_var"),
            "diagnostics-state-var",
        ),
        (format!("/svg/experiments/{EXPERIMENT}/law"), "law-forget"),
        (
            format!("/svg/experiments/{EXPERIMENT}/recall"),
            "law-recall",
        ),
        (
            format!(
                "/svg/experiments/{EXPERIMENT}/training?state_size={}",
                fixture::config(16, 128, 0).model.state_size().total
            ),
            "training-loss",
        ),
    ] {
        let reply = get(&base, &path);
        assert_eq!(reply.status, 200, "{path}");
        assert!(reply.content_type.starts_with("image/svg+xml"), "{path}");
        assert!(
            reply.body.contains(&format!("data-chart=\"{kind}\"")),
            "{path}"
        );
        assert!(!reply.body.contains("no data"), "{path} drew no data");
    }
    let compared = get(
        &base,
        &format!(
            "/svg/runs/{EXPERIMENT}/{good}/per_position?compare={}",
            run_name(16, 128, 0)
        ),
    )
    .body;
    assert!(compared.contains("T_train = 128") && compared.contains("T_train = 512"));
    // A run without results gets a chart that says why.
    let pending = get(
        &base,
        &format!("/svg/runs/{EXPERIMENT}/{RUNNING}/per_position"),
    )
    .body;
    assert!(pending.contains("no data") && pending.contains("forgetlab eval"));
    let torn = get(
        &base,
        &format!("/svg/runs/{EXPERIMENT}/{TORN}/diagnostics/state_var"),
    )
    .body;
    assert!(torn.contains("diagnostics.json"), "the reason is shown");

    let index = get(&base, "/");
    assert_eq!(index.status, 200);
    assert!(index.content_type.starts_with("text/html"));
    assert!(
        index
            .body
            .contains(&format!("href=\"/experiments/{EXPERIMENT}\""))
    );
    let page = get(&base, &format!("/experiments/{EXPERIMENT}")).body;
    assert!(page.contains("id=\"grid\""));
    assert!(page.contains("data-chart=\"law-forget\""));
    assert!(page.contains(&format!("href=\"/runs/{EXPERIMENT}/{FAILED}\"")));
    let run_page = get(&base, &format!("/runs/{EXPERIMENT}/{good}")).body;
    for kind in [
        "training-loss",
        "loss-vs-position",
        "passkey-heatmap",
        "diagnostics-alpha",
    ] {
        assert!(
            run_page.contains(&format!("data-chart=\"{kind}\"")),
            "run page lacks {kind}"
        );
    }

    // Every page, fragment and chart of every run answers without a server error, broken
    // runs included.
    let runs: Vec<String> = get(&base, &format!("/api/experiments/{EXPERIMENT}")).json()["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    for run in &runs {
        let mut paths = vec![
            format!("/runs/{EXPERIMENT}/{run}"),
            format!("/api/runs/{EXPERIMENT}/{run}"),
            format!("/api/runs/{EXPERIMENT}/{run}/stamp"),
            format!("/api/runs/{EXPERIMENT}/{run}/metrics"),
            format!("/fragments/runs/{EXPERIMENT}/{run}/header"),
            format!("/fragments/runs/{EXPERIMENT}/{run}/verdict"),
            format!("/svg/runs/{EXPERIMENT}/{run}/per_position"),
            format!("/svg/runs/{EXPERIMENT}/{run}/passkey"),
        ];
        for chart in ["loss", "lr", "grad_norm", "throughput"] {
            paths.push(format!("/svg/runs/{EXPERIMENT}/{run}/training/{chart}"));
        }
        for chart in forgetlab_plot::DIAGNOSTICS_CHARTS {
            paths.push(format!("/svg/runs/{EXPERIMENT}/{run}/diagnostics/{chart}"));
        }
        for path in paths {
            let reply = get(&base, &path);
            assert!(
                reply.status < 500,
                "{path}: {} {}",
                reply.status,
                reply.body
            );
            if run == ESCAPES && !path.starts_with("/runs/") {
                assert_eq!(reply.status, 403, "{path}");
            }
            assert!(!reply.body.contains(SECRET), "{path} leaked the secret");
        }
    }
    let broken_page = get(&base, &format!("/runs/{EXPERIMENT}/{BROKEN_CONFIG}"));
    assert_eq!(broken_page.status, 200);
    assert!(broken_page.body.contains("broken") && broken_page.body.contains("config.toml"));
    let linked_page = get(&base, &format!("/runs/{EXPERIMENT}/{ESCAPES}")).body;
    assert!(linked_page.contains("links outside the runs root"));
    for exp in ["broken-law", "empty"] {
        let reply = get(&base, &format!("/experiments/{exp}"));
        assert_eq!(reply.status, 200, "{exp}");
    }
    assert!(
        get(&base, "/experiments/broken-law")
            .body
            .contains("law.json could not be read")
    );
}

#[test]
fn traversal_and_links_out_of_the_root_are_refused() {
    let fx = fixture::build();
    let server = start(&fx.root(), 1000);
    let addr = server.addr();
    let good = run_name(8, 128, 0);

    let (status, response) = raw_get(addr, &format!("/files/{EXPERIMENT}/{good}/config.toml"));
    assert_eq!(status, 200);
    assert!(response.contains("d_state = 8"));
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: text/plain")
    );
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-security-policy: sandbox")
    );

    let attempts = [
        format!("/files/{EXPERIMENT}/../../secret.txt"),
        format!("/files/{EXPERIMENT}/../secret.txt"),
        format!("/files/{EXPERIMENT}/{good}/../../../secret.txt"),
        format!("/files/{EXPERIMENT}/%2e%2e/%2e%2e/secret.txt"),
        format!("/files/{EXPERIMENT}/%2E%2E%2F%2E%2E%2Fsecret.txt"),
        format!("/files/{EXPERIMENT}/..%2f..%2fsecret.txt"),
        format!("/files/{EXPERIMENT}/..%5c..%5csecret.txt"),
        format!("/files/{EXPERIMENT}/.%2e/.%2e/secret.txt"),
        format!("/files/{EXPERIMENT}//etc/passwd"),
        format!("/files/{EXPERIMENT}/%2Fetc%2Fpasswd"),
        format!("/files/{EXPERIMENT}/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        "/files/%2e%2e/secret.txt".to_string(),
        "/files/../secret.txt".to_string(),
        "/files/..%2f/secret.txt".to_string(),
        format!("/files/{EXPERIMENT}/%252e%252e/%252e%252e/secret.txt"),
        "/../secret.txt".to_string(),
        "/%2e%2e/secret.txt".to_string(),
        "/api/experiments/..".to_string(),
        "/api/experiments/%2e%2e".to_string(),
        "/api/experiments/..%2fsecret.txt".to_string(),
        format!("/api/runs/{EXPERIMENT}/..%2f..%2fsecret.txt"),
        format!("/api/runs/{EXPERIMENT}/%2e%2e"),
        "/experiments/%2e%2e%2f%2e%2e".to_string(),
        format!("/runs/{EXPERIMENT}/..%2F..%2Fsecret.txt"),
        format!("/svg/runs/{EXPERIMENT}/%2e%2e/training/loss"),
        format!("/files/{EXPERIMENT}/.hidden"),
        "http://127.0.0.1/files/../secret.txt".to_string(),
        format!("/files/{}/secret.txt", fx.tmp.path().display()),
    ];
    for target in &attempts {
        let (status, response) = raw_get(addr, target);
        assert!(
            [400, 403, 404].contains(&status),
            "{target}: status {status}\n{response}"
        );
        assert!(!response.contains(SECRET), "{target} leaked the secret");
    }
    // Symlinks out of the root: a result file and a whole run directory.
    for target in [
        format!("/files/{EXPERIMENT}/{good}/eval/leak.json"),
        format!("/files/{EXPERIMENT}/{ESCAPES}/config.toml"),
        format!("/api/runs/{EXPERIMENT}/{ESCAPES}"),
        format!("/api/runs/{EXPERIMENT}/{ESCAPES}/metrics"),
    ] {
        let (status, response) = raw_get(addr, &target);
        assert_eq!(status, 403, "{target}: {response}");
        assert!(!response.contains(SECRET));
    }
    // Read-only: other methods are not routed.
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "POST /api/experiments HTTP/1.0\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.0 405") || reply.starts_with("HTTP/1.1 405"),
        "{reply}"
    );
}

#[test]
fn the_server_binds_loopback_by_default_and_refuses_a_missing_root() {
    let defaults = forgetlab_dashboard::ServeOptions::default();
    assert!(defaults.addr.ip().is_loopback());
    let missing = std::path::Path::new("/nonexistent/forgetlab-runs");
    let Err(err) = forgetlab_dashboard::router(missing) else {
        panic!("a missing root is an error");
    };
    assert!(
        err.to_string().contains("/nonexistent/forgetlab-runs"),
        "{err}"
    );
}
