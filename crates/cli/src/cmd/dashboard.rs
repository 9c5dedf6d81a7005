//! `forgetlab dashboard`: the live web dashboard over a runs directory.
//!
//! Thin layer over [`forgetlab_dashboard::serve`]: read-only, loopback by default, refreshes
//! open pages while runs train. Open the printed address in a browser; over SSH, forward the
//! port (`ssh -L 8080:127.0.0.1:8080 host`) rather than listening on a public address.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use forgetlab_dashboard::ServeOptions;

#[derive(clap::Args)]
pub struct Args {
    /// Runs directory: one subdirectory per experiment (or a single experiment directory).
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Address to listen on. Loopback by default, so runs are not exposed to the network.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// How often open pages check for new results, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub poll_ms: u64,
    /// Longest a request may take, in seconds, before it is answered 503.
    #[arg(long, default_value_t = 30.0)]
    pub request_timeout_s: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // runs/ is an output directory and not in the repository: before the first run the
    // default one is created, so the dashboard opens empty instead of failing.
    if args.runs == std::path::Path::new("runs") && !args.runs.exists() {
        std::fs::create_dir_all(&args.runs)
            .with_context(|| format!("creating {}", args.runs.display()))?;
    }
    let options = ServeOptions {
        runs_root: args.runs.clone(),
        addr: args.addr,
        poll_ms: args.poll_ms,
        request_timeout: std::time::Duration::try_from_secs_f64(args.request_timeout_s)
            .ok()
            .filter(|d| !d.is_zero())
            .context("--request-timeout-s must be a positive number of seconds")?,
    };
    forgetlab_dashboard::serve_with(&options, |addr| {
        println!(
            "forgetlab dashboard: http://{addr}/ (runs from {}; Ctrl-C to stop)",
            args.runs.display()
        );
    })
    .with_context(|| format!("serving the dashboard over {}", args.runs.display()))
}
