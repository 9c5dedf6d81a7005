//! HTTP helpers: a ureq agent that returns every status, and a raw client that sends a request
//! target byte for byte (to test traversal attempts no normal client would send).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use forgetlab_dashboard::{RunningDashboard, ServeOptions};

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {}", &self.body[..self.body.len().min(300)])
        })
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    )
}

pub fn get(base: &str, path: &str) -> Reply {
    let mut response = agent()
        .get(&format!("{base}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_else(|e| panic!("GET {path}: reading the body: {e}"));
    Reply {
        status,
        content_type,
        body,
    }
}

/// Sends `GET <target> HTTP/1.0` exactly as given and returns (status, whole response).
pub fn raw_get(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line for {target}: {text:?}"));
    (status, text)
}

/// Starts the dashboard on 127.0.0.1 with an OS-chosen port.
pub fn start(root: &std::path::Path, poll_ms: u64) -> RunningDashboard {
    forgetlab_dashboard::spawn(&ServeOptions {
        runs_root: root.to_path_buf(),
        addr: "127.0.0.1:0".parse().unwrap(),
        poll_ms,
        ..ServeOptions::default()
    })
    .unwrap()
}
