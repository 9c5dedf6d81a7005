//! Starting and stopping: serving in the foreground until Ctrl-C (the CLI), or in a background
//! thread that stops when dropped (tests, embedding). Both bind before they report ready, so a
//! port in use is an error at start, not a silent failure later.

use std::net::SocketAddr;

use super::{ServeOptions, router_with};
use crate::error::DashboardError;

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, DashboardError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("dashboard")
        .enable_all()
        .build()
        .map_err(DashboardError::Runtime)
}

fn warn_if_exposed(addr: &SocketAddr) {
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "the dashboard listens on {addr}, which is reachable from other machines; it is \
             read-only but shows every run under the runs directory"
        );
    }
}

/// Serves the dashboard until Ctrl-C (blocking).
pub fn serve(opts: &ServeOptions) -> Result<(), DashboardError> {
    serve_with(opts, |addr| {
        tracing::info!(
            "dashboard at http://{addr}/ over {} (Ctrl-C to stop)",
            opts.runs_root.display()
        );
    })
}

/// Serves the dashboard until Ctrl-C (blocking), calling `ready` with the bound address once
/// it accepts connections.
pub fn serve_with(
    opts: &ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), DashboardError> {
    let app = router_with(opts)?;
    warn_if_exposed(&opts.addr);
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(opts.addr)
            .await
            .map_err(|error| DashboardError::Bind {
                addr: opts.addr,
                error,
            })?;
        ready(listener.local_addr().map_err(DashboardError::Runtime)?);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(DashboardError::Runtime)
    })
}

/// A dashboard serving in a background thread (tests, embedding). Stops when dropped.
pub struct RunningDashboard {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), DashboardError>>>,
}

impl RunningDashboard {
    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) -> Result<(), DashboardError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), DashboardError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(DashboardError::Runtime(std::io::Error::other(
                "the dashboard thread panicked",
            ))),
            None => Ok(()),
        }
    }
}

impl Drop for RunningDashboard {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Binds `opts.addr` now (so the port is known and errors surface here) and serves in a
/// background thread.
pub fn spawn(opts: &ServeOptions) -> Result<RunningDashboard, DashboardError> {
    let app = router_with(opts)?;
    warn_if_exposed(&opts.addr);
    let listener =
        std::net::TcpListener::bind(opts.addr).map_err(|error| DashboardError::Bind {
            addr: opts.addr,
            error,
        })?;
    listener
        .set_nonblocking(true)
        .map_err(DashboardError::Runtime)?;
    let addr = listener.local_addr().map_err(DashboardError::Runtime)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rt = runtime()?;
    let thread = std::thread::Builder::new()
        .name("dashboard-server".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).map_err(DashboardError::Runtime)?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .map_err(DashboardError::Runtime)
            })
        })
        .map_err(DashboardError::Runtime)?;
    Ok(RunningDashboard {
        addr,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}
