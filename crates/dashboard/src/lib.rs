//! forgetlab's dashboard and reports: look at runs instead of reading JSON.
//!
//! [`serve`] starts a read-only web server over a runs directory (`runs/<experiment>/<run>/`,
//! see [`forgetlab_runs::layout`]); [`report::write_report`] writes the same figures and tables
//! as a static HTML + Markdown folder. Both read run directories through the tolerant readers
//! of `forgetlab-runs`, while trainers are still writing them: a half-written or malformed run
//! is shown as broken with the reason, never an error page.
//!
//! Charts are SVG drawn on the server by `forgetlab-plot` and inlined into the pages, so pages
//! work without JavaScript and a headless browser can screenshot them. A small script polls a
//! fingerprint of the files behind each page and swaps in fresh fragments and charts when it
//! changes (live updates while runs train, no reload).
//!
//! # Safety
//! Binds loopback by default. Only `GET`/`HEAD`. Names in URLs must be single plain path
//! components (`..`, `%2e%2e`, separators, hidden names are rejected with 400), and paths are
//! resolved through symlinks and must stay inside the runs root (403 otherwise; a run directory
//! linking out is listed as broken and never read).
//!
//! # Endpoints
//! Pages (HTML): `/`, `/experiments/{exp}`, `/runs/{exp}/{run}`.
//!
//! JSON (`{"error": "..."}` with 400/403/404/422 on failure):
//! - `GET /api/experiments` — every experiment: name, description, run counts per status,
//!   fitted line.
//! - `GET /api/experiments/{exp}` — runs (summary, grid cell status, progress, T_recall), the
//!   state size x training length grid, `law.json`, a change stamp.
//! - `GET /api/experiments/{exp}/law` — `law.json` as written by `forgetlab fit`.
//! - `GET /api/runs/{exp}/{run}` — summary, status, verdict, config, eval files, metrics stats.
//! - `GET /api/runs/{exp}/{run}/metrics?since=N` — metric records from index N on, with the
//!   total (poll with `since=total` for new records only).
//! - `GET /api/runs/{exp}/{run}/per_position?mitigation=none`, `.../verdict`,
//!   `.../passkey?mitigation=none`, `.../diagnostics` — the result files.
//! - `GET /api/stamp`, `/api/experiments/{exp}/stamp`, `/api/runs/{exp}/{run}/stamp` —
//!   `{"stamp": "..."}`, a fingerprint that changes when the files behind a page change.
//!
//! SVG charts (`image/svg+xml`):
//! - `/svg/experiments/{exp}/law`, `/svg/experiments/{exp}/recall`
//! - `/svg/experiments/{exp}/per_position?state_size=N&quantity=loss|excess&logx=0|1&prompt=text`
//! - `/svg/experiments/{exp}/training?state_size=N&chart=loss&smooth=0.6&logx=1&logy=1`
//! - `/svg/runs/{exp}/{run}/training/{loss|lr|grad_norm|throughput}?smooth=&logx=&logy=`
//! - `/svg/runs/{exp}/{run}/per_position?compare=run2,run3&quantity=&logx=&mitigation=`
//! - `/svg/runs/{exp}/{run}/passkey?mitigation=none`
//! - `/svg/runs/{exp}/{run}/diagnostics/{alpha_per_head|log_retention_first|state_mean|...}`
//!
//! HTML fragments (what live updates swap in): `/fragments/index`,
//! `/fragments/experiments/{exp}/{grid|runs|law}`, `/fragments/runs/{exp}/{run}/{header|verdict}`.
//!
//! Raw files: `/files/{exp}/{path}` — any regular file under the experiment directory
//! (e.g. `/files/quickstart/<run>/train.log`), served as data (sandboxed, never as a script).

mod cache;
mod charts;
mod error;
pub mod model;
mod pages;
pub mod report;
pub mod root;
mod server;

pub use error::DashboardError;
pub use report::{ReportOutcome, write_report};
pub use server::{RunningDashboard, ServeOptions, router, serve, serve_with, spawn};
