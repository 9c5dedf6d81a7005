//! Server-rendered HTML: pages and the fragments that live updates swap in.
//!
//! Pages are complete without JavaScript (charts are inline SVG, tables are HTML), so a
//! screenshot or `curl` shows everything; the script only refreshes the parts marked
//! `data-live` when the files behind them change.

use forgetlab_plot::format::{fmt_fixed, fmt_length, fmt_si, fmt_sig};
use forgetlab_plot::{DIAGNOSTICS_CHARTS, TrainingChart};
use forgetlab_runs::results::{LawReport, Outcome, RiseTest};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::model::{CellStatus, ExperimentSummary, ExperimentView, RunDetail, RunRow};

/// Characters escaped in a URL path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A name as a URL path segment.
pub fn seg(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

pub fn experiment_url(exp: &str) -> String {
    format!("/experiments/{}", seg(exp))
}

pub fn run_url(exp: &str, run: &str) -> String {
    format!("/runs/{}/{}", seg(exp), seg(run))
}

/// "12 s ago", "3 min ago", "2 h ago", "4 d ago".
pub fn ago(unix: f64) -> String {
    let secs = (forgetlab_runs::unix_now() - unix).max(0.0);
    if secs < 90.0 {
        format!("{secs:.0} s ago")
    } else if secs < 5400.0 {
        format!("{:.0} min ago", secs / 60.0)
    } else if secs < 172_800.0 {
        format!("{:.0} h ago", secs / 3600.0)
    } else {
        format!("{:.0} d ago", secs / 86400.0)
    }
}

/// N_S as "20.5k" / "12.9M" scalars.
pub fn state_size_text(n: u64) -> String {
    fmt_si(n as f64)
}

/// The page frame: header with breadcrumbs and live indicator, main content, footer.
pub fn layout(
    title: &str,
    crumbs: &[(String, Option<String>)],
    stamp_url: &str,
    stamp: &str,
    poll_ms: u64,
    root_display: &str,
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · forgetlab" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body data-stamp-url=(stamp_url) data-stamp=(stamp) data-poll-ms=(poll_ms) {
                header.top {
                    a.brand href="/" { "forget" span { "lab" } }
                    nav {
                        a href="/" { "experiments" }
                        @for (label, href) in crumbs {
                            span.sep { "/" }
                            @if let Some(href) = href { a href=(href) { (label) } } @else { span { (label) } }
                        }
                    }
                    span #live .live { "live" }
                }
                main { (content) }
                footer { "read-only view of " code { (root_display) } " · forgetlab " (env!("CARGO_PKG_VERSION")) }
            }
        }
    }
}

fn badge(status: CellStatus) -> Markup {
    html! { span.badge.(status.slug()) { (status.label()) } }
}

fn problems_box(title: &str, problems: &[String]) -> Markup {
    html! {
        @if !problems.is_empty() {
            div.problems {
                strong { (title) }
                ul { @for p in problems { li { (p) } } }
            }
        }
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "–".to_string())
}

fn loss(v: Option<f64>) -> String {
    v.map(|v| fmt_fixed(v, 3))
        .unwrap_or_else(|| "–".to_string())
}

// ---------------------------------------------------------------- experiments list

/// The experiments table (also the live fragment of the index page).
pub fn experiments_table(experiments: &[ExperimentSummary]) -> Markup {
    html! {
        @if experiments.is_empty() {
            div.empty-state {
                "No experiments here yet. Start one with "
                code { "forgetlab sweep run experiments/quickstart.toml" }
                " and it appears here while it trains."
            }
        } @else {
            div.scroll {
                table.data {
                    thead { tr {
                        th { "experiment" } th.num { "runs" } th { "status" }
                        th { "T_forget fit" } th { "last update" }
                    } }
                    tbody {
                        @for e in experiments {
                            tr {
                                td.wrap {
                                    a href=(experiment_url(&e.name)) { strong { (e.name) } }
                                    @if let Some(d) = &e.description { div.note { (d) } }
                                }
                                td.num { (e.runs) }
                                td.wrap {
                                    @for status in CellStatus::ALL {
                                        @if let Some(n) = e.cells.get(status.slug()) {
                                            span.badge.(status.slug()) title=(status.label()) { (n) " " (status.label()) }
                                            " "
                                        }
                                    }
                                }
                                td { @match e.law_line {
                                    Some((a, b)) => code { (fmt_sig(a, 4)) " N_S " (if b < 0.0 { "−" } else { "+" }) " " (fmt_sig(b.abs(), 4)) },
                                    None => span.note { "not fitted" },
                                } }
                                td { @match e.updated_unix { Some(t) => (ago(t)), None => "–" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn index_page(
    experiments: &[ExperimentSummary],
    stamp: &str,
    poll_ms: u64,
    root_display: &str,
) -> Markup {
    let content = html! {
        h1 { "Experiments" }
        p.lead { "Every experiment under " code { (root_display) } ". Pages update by themselves while runs train." }
        div.card {
            div data-live="/fragments/index" { (experiments_table(experiments)) }
        }
    };
    layout(
        "Experiments",
        &[],
        "/api/stamp",
        stamp,
        poll_ms,
        root_display,
        content,
    )
}

// ---------------------------------------------------------------- experiment page

fn chip(exp: &str, row: &RunRow, seeds: bool) -> Markup {
    let s = &row.summary;
    let mut tip = format!("{} — {}", s.name, row.cell.label());
    if let Some((rise, low, high)) = s.effect {
        tip.push_str(&format!(
            " — rise past T_train {rise:+.3} nats [{low:+.3}, {high:+.3}]"
        ));
    }
    if let Some(reason) = &s.reason {
        tip.push_str(&format!(" — {reason}"));
    }
    for p in &s.problems {
        tip.push_str(&format!("\n⚠ {p}"));
    }
    let mark = match row.cell {
        CellStatus::Forgets => "✓ ",
        CellStatus::DoesNotForget => "✗ ",
        CellStatus::Undetermined => "? ",
        CellStatus::Broken => "⚠ ",
        _ => "",
    };
    html! {
        a.chip.(row.cell.slug()) href=(run_url(exp, &s.name)) title=(tip) data-run=(s.name) data-cell=(row.cell.slug()) {
            (mark) (row.cell.label())
            @if seeds { @if let Some(seed) = s.seed { " · seed " (seed) } }
            @if !s.problems.is_empty() && row.cell != CellStatus::Broken { " ⚠" }
            @match row.cell {
                CellStatus::Running | CellStatus::Interrupted | CellStatus::Pending => {
                    @if let Some(p) = row.progress {
                        span.sub { (format!("{:.0}%", p * 100.0)) " · step " (opt(s.step)) "/" (opt(s.total_steps)) }
                        div.progress { div style=(format!("width:{:.1}%", p * 100.0)) {} }
                    }
                }
                _ => {
                    @if let Some(l) = s.last_val_loss.or(s.last_loss) {
                        span.sub { "loss " (fmt_fixed(l, 3)) @if let Some(t) = row.t_recall { " · T_recall " (fmt_length(t as f64)) } }
                    }
                    @if let Some((rise, low, high)) = s.effect {
                        span.sub.effect { "rise " (format!("{rise:+.2} [{low:+.2}, {high:+.2}]")) }
                    }
                }
            }
        }
    }
}

/// The state size x training length grid (live fragment).
pub fn grid_fragment(view: &ExperimentView) -> Markup {
    let grid = &view.grid;
    html! {
        @if grid.rows.is_empty() {
            div.empty-state { "No run has a readable config yet." }
        } @else {
            div.scroll {
                table.grid #grid data-experiment=(view.name) {
                    thead { tr {
                        th.corner { "N_S ↓  T_train →" }
                        @for len in &grid.seq_lens { th { (fmt_length(*len as f64)) } }
                    } }
                    tbody {
                        @for row in &grid.rows {
                            tr {
                                th.size {
                                    div.ns { "N_S " (state_size_text(row.state_size)) }
                                    div.shape {
                                        @if let Some(label) = mixer_label(row.mixer.as_deref()) { (label) " · " }
                                        @if let Some(d) = row.d_state { "d_state " (d) }
                                        @if let (Some(l), Some(m)) = (row.n_layer, row.d_model) { " · " (l) "L × " (m) }
                                    }
                                }
                                @for names in &row.cells {
                                    @if names.is_empty() {
                                        td.empty {}
                                    } @else {
                                        td {
                                            @for name in names {
                                                @if let Some(r) = view.row(name) { (chip(&view.name, r, names.len() > 1)) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        div.legend {
            @for status in CellStatus::ALL { (badge(status)) }
        }
        @if !grid.unplaced.is_empty() {
            h3 { "Runs not on the grid" }
            ul {
                @for name in &grid.unplaced {
                    @if let Some(r) = view.row(name) {
                        li {
                            a href=(run_url(&view.name, name)) { (name) } " " (badge(r.cell))
                            @for p in &r.summary.problems { div.note { code { (p) } } }
                        }
                    }
                }
            }
        }
    }
}

/// The run table (live fragment).
pub fn runs_table(view: &ExperimentView) -> Markup {
    html! {
        div.scroll {
            table.data #runs {
                thead { tr {
                    th { "run" } th { "status" } th.num { "N_S" } th.num { "d_state" } th.num { "T_train" }
                    th.num { "seed" } th.num { "step" } th.num { "train loss" } th.num { "val loss" }
                    th.num { "T_recall" } th { "updated" } th { "notes" }
                } }
                tbody {
                    @for r in &view.runs {
                        @let s = &r.summary;
                        tr data-run=(s.name) {
                            td { a href=(run_url(&view.name, &s.name)) { (s.name) } }
                            td { (badge(r.cell)) }
                            td.num { (s.state_size.map(state_size_text).unwrap_or_else(|| "–".into())) }
                            td.num { (opt(s.d_state)) }
                            td.num { (s.seq_len.map(|l| fmt_length(l as f64)).unwrap_or_else(|| "–".into())) }
                            td.num { (opt(s.seed)) }
                            td.num { (opt(s.step)) " / " (opt(s.total_steps)) }
                            td.num { (loss(s.last_loss)) }
                            td.num { (loss(s.last_val_loss)) }
                            td.num { (r.t_recall.map(|t| fmt_length(t as f64)).unwrap_or_else(|| "–".into())) }
                            td { @match r.updated_unix { Some(t) => (ago(t)), None => "–" } }
                            td.wrap {
                                @if let Some(reason) = &s.reason { div { (reason) } }
                                @for p in &s.problems { div.note { "⚠ " (p) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn verdict_mark(v: Option<bool>) -> Markup {
    html! { @match v {
        Some(true) => span.yes { "✓" },
        Some(false) => span.no { "✗" },
        None => span.note { "?" },
    } }
}

/// The fitted laws in numbers (live fragment).
pub fn law_fragment(view: &ExperimentView) -> Markup {
    html! {
        @if let Some(problem) = &view.law_problem {
            (problems_box("law.json could not be read", std::slice::from_ref(problem)))
        }
        @if let Some(law) = &view.law { (law_details(law)) }
        @else if view.law_problem.is_none() {
            p.note { "No " code { "law.json" } " yet: run " code { "forgetlab fit " (view.name) } " once the runs are evaluated." }
        }
    }
}

fn law_details(law: &LawReport) -> Markup {
    let several = law.has_several_mixers();
    html! {
        ul #law-fits { @for line in crate::report::law_text(law) { li { (line) } } }
        div.scroll {
            table.data #law-points {
                thead { tr { @if several { th { "mixer" } } th.num { "N_S" } th.num { "SSM part" } th { "lengths tried" } th.num { "T_forget" } th.num { "T_recall" } th { "note" } } }
                tbody {
                    @for p in &law.forget_points {
                        tr {
                            @if several { td { (crate::report::mixer_text(p.mixer)) } }
                            td.num { (state_size_text(p.state_size)) }
                            td.num { (p.ssm_state_size.map_or("–".into(), state_size_text)) }
                            td { @for (l, v) in p.lengths.iter().zip(&p.verdicts) { (fmt_length(*l as f64)) (verdict_mark(*v)) " " } }
                            td.num { (crate::report::forget_cell(p)) }
                            td.num { (crate::report::recall_cell(law, p)) }
                            td.wrap.note { (p.note) }
                        }
                    }
                }
            }
        }
        @if !law.notes.is_empty() {
            h3 { "Fit notes" }
            ul.note { @for n in &law.notes { li { (n) } } }
        }
    }
}

fn smoothing_select(group: &str, current: f64) -> Markup {
    html! {
        label { "smoothing"
            select data-control="smooth" data-group=(group) {
                @for (v, name) in [(0.0, "off"), (0.6, "0.6"), (0.9, "0.9"), (0.97, "0.97")] {
                    option value=(v) selected[(v - current).abs() < 1e-9] { (name) }
                }
            }
        }
    }
}

fn position_controls(group: &str, log_x: bool) -> Markup {
    html! {
        label { "curve"
            select data-control="quantity" data-group=(group) {
                option value="loss" { "loss" }
                option value="excess" { "excess over n-gram baseline" }
            }
        }
        label { input type="checkbox" data-control="logx" data-group=(group) checked[log_x]; "log position" }
    }
}

/// Charts of one experiment page, already rendered (so the page module does not read files).
pub struct ExperimentCharts {
    pub law: String,
    pub recall: String,
    /// (state size, per-position svg, training-loss svg)
    pub by_state_size: Vec<(u64, String, String)>,
}

pub fn experiment_page(
    view: &ExperimentView,
    charts: &ExperimentCharts,
    poll_ms: u64,
    root_display: &str,
) -> Markup {
    let exp = seg(&view.name);
    let summary = view.summary();
    let content = html! {
        h1 { (view.name) small { (summary.runs) " runs" } }
        @if let Some(d) = &view.description { p.lead { (d) } }
        div.card {
            h2 { "Forget grid" span.hint { "state size × training length; colour = verdict, else run state; click a cell for the run" } }
            div data-live=(format!("/fragments/experiments/{exp}/grid")) { (grid_fragment(view)) }
        }
        div.card {
            h2 { "Scaling laws" span.hint { "x: N_S in millions of state scalars · y: K = 1024 tokens" } }
            div.cols {
                div.chart #law-chart data-live=(format!("/svg/experiments/{exp}/law")) { (PreEscaped(&charts.law)) }
                div.chart #recall-chart data-live=(format!("/svg/experiments/{exp}/recall")) { (PreEscaped(&charts.recall)) }
            }
            div data-live=(format!("/fragments/experiments/{exp}/law")) { (law_fragment(view)) }
        }
        @if !charts.by_state_size.is_empty() {
            div.card {
                h2 { "Loss by token position" span.hint { "runs of one state size overlaid; dashed lines mark each training length" } }
                div.controls { (position_controls("position", false)) }
                div.cols {
                    @for (size, svg, _) in &charts.by_state_size {
                        div.chart data-group="position" data-live=(format!("/svg/experiments/{exp}/per_position?state_size={size}")) { (PreEscaped(svg)) }
                    }
                }
            }
            div.card {
                h2 { "Training loss" span.hint { "runs of one state size overlaid" } }
                div.controls {
                    (smoothing_select("training", 0.6))
                    label { input type="checkbox" data-control="logx" data-group="training" checked; "log tokens" }
                }
                div.cols {
                    @for (size, _, svg) in &charts.by_state_size {
                        div.chart data-group="training" data-live=(format!("/svg/experiments/{exp}/training?state_size={size}")) { (PreEscaped(svg)) }
                    }
                }
            }
        }
        div.card {
            h2 { "Runs" span.hint { a href=(format!("/api/experiments/{exp}")) { "JSON" } } }
            div data-live=(format!("/fragments/experiments/{exp}/runs")) { (runs_table(view)) }
        }
    };
    layout(
        &view.name,
        &[(view.name.clone(), None)],
        &format!("/api/experiments/{exp}/stamp"),
        &view.stamp,
        poll_ms,
        root_display,
        content,
    )
}

// ---------------------------------------------------------------- run page

/// Status, progress and key numbers of a run (live fragment).
pub fn run_header(d: &RunDetail) -> Markup {
    let s = &d.row.summary;
    html! {
        div.stats #run-stats {
            div.stat { div.k { "status" } div.v { (badge(d.row.cell)) } }
            div.stat { div.k { "step" } div.v #run-step { (opt(s.step)) " / " (opt(s.total_steps)) }
                @if let Some(p) = d.row.progress { div.progress { div style=(format!("width:{:.1}%", p * 100.0)) {} } } }
            div.stat { div.k { "tokens" } div.v { (d.row.tokens.map(|t| fmt_si(t as f64)).unwrap_or_else(|| "–".into())) } }
            div.stat { div.k { "train loss" } div.v #run-loss { (loss(s.last_loss)) } }
            div.stat { div.k { "val loss" } div.v { (loss(s.last_val_loss)) } }
            div.stat { div.k { "N_S" } div.v { (s.state_size.map(state_size_text).unwrap_or_else(|| "–".into())) } }
            div.stat { div.k { "T_train" } div.v { (s.seq_len.map(|l| fmt_length(l as f64)).unwrap_or_else(|| "–".into())) } }
            div.stat { div.k { "model" } div.v {
                @if let Some(label) = mixer_label(s.mixer.as_deref()) { (label) ", " }
                (opt(s.n_layer)) "L × " (opt(s.d_model))
                @if let Some(d) = s.d_state { ", d_state " (d) }
            } }
            div.stat { div.k { "T_recall" } div.v { (d.row.t_recall.map(|t| fmt_length(t as f64)).unwrap_or_else(|| "–".into())) } }
            div.stat { div.k { "metrics" } div.v #run-records data-records=(d.metrics.records) { (d.metrics.records) " records" } }
            @if let Some(st) = &d.status {
                div.stat { div.k { "updated" } div.v { (ago(st.updated_unix)) } }
                @if let Some(host) = &st.host { div.stat { div.k { "host" } div.v { (host) @if let Some(pid) = st.pid { " · pid " (pid) } } } }
                @if let Some(job) = &st.slurm_job { div.stat { div.k { "slurm job" } div.v { (job) } } }
            }
        }
        @if let Some(reason) = &s.reason {
            div.failure { strong { (d.row.cell.label()) ": " } (reason)
                @if let Some(st) = &d.status { @if st.resumable { " — resumable with " code { "forgetlab train --resume" } } } }
        }
        (problems_box("Some files of this run could not be read", &s.problems))
    }
}

fn rise_rows(t: &RiseTest) -> Markup {
    html! {
        @for (i, r) in t.ranges.iter().enumerate() {
            tr {
                @if i == 0 { td rowspan=(t.ranges.len()) { (t.curve) } td.num rowspan=(t.ranges.len()) { (fmt_fixed(t.in_length_mean, 3)) } }
                td.num { "[" (fmt_length(r.start as f64)) ", " (fmt_length(r.end as f64)) ")" }
                td.num { (format!("{:+.3}", r.rise)) }
                td.num { (format!("{:+.3} … {:+.3}", r.low, r.high)) }
                @if i == 0 { td rowspan=(t.ranges.len()) { (outcome_label(t.outcome)) } }
            }
        }
    }
}

fn outcome_label(o: Outcome) -> Markup {
    html! {
        @match o {
            Outcome::Forgets => span.badge.forgets { "forgets" },
            Outcome::DoesNotForget => span.badge.does-not-forget { "does not forget" },
            Outcome::Undetermined => span.badge.undetermined { "undetermined" },
        }
    }
}

/// The forget verdict in numbers (live fragment).
pub fn verdict_fragment(d: &RunDetail) -> Markup {
    html! {
        @match &d.verdict {
            None => p.note { "No verdict yet: " code { "forgetlab eval" } " writes " code { "eval/verdict.json" } "." },
            Some(v) if !v.is_current() => p.note { "This verdict was written by the version-1 criterion and is not shown: "
                code { "forgetlab eval all" } " (or " code { "forgetlab sweep finish" } ") regenerates it." },
            Some(v) => {
                p {
                    "Verdict: "
                    @match v.forgets {
                        Some(true) => span.badge.forgets { "forgets" },
                        Some(false) => span.badge.does-not-forget { "does not forget" },
                        None => span.badge.undetermined { "undetermined" },
                    }
                    " decided on " code { (format!("{:?}", v.decided_on).to_lowercase()) } " (" (v.prompt) "): the rise of the loss past T_train over its mean in [T/2, T), margin "
                    (fmt_sig(v.margin, 3)) " nats, " (fmt_sig(v.confidence * 100.0, 3)) "% bounds"
                    @if let Some((rise, low, high)) = v.effect() { ", deciding range " (format!("{rise:+.3} [{low:+.3}, {high:+.3}]")) }
                }
                div.scroll { table.data #verdict {
                    thead { tr { th { "curve" } th.num { "mean in [T/2, T)" } th.num { "range" } th.num { "rise" } th.num { "bounds" } th { "outcome" } } }
                    tbody {
                        @for t in &v.tests { (rise_rows(t)) }
                    }
                } }
                @if let Some(m) = &v.memory {
                    p.note { "Memory per head (median over tokens): median " (fmt_sig(m.median, 3)) ", longest " (fmt_sig(m.max, 3)) " tokens"
                        @if !m.any_beyond_train_len { " — no head remembers past T_train at a typical token, so this run cannot show the effect" } }
                }
                p.note { (v.note) }
            }
        }
    }
}

/// Rendered charts of a run page.
pub struct RunCharts {
    pub training: Vec<(TrainingChart, String)>,
    pub position: String,
    pub passkey: Vec<(String, String)>,
    pub diagnostics: Vec<(String, String)>,
}

/// Extra text shown at the bottom of the run page.
pub struct RunFiles {
    pub config_text: Option<String>,
    pub log_tail: Option<String>,
    /// Files that exist, relative to the experiment directory.
    pub links: Vec<String>,
}

pub fn run_page(
    d: &RunDetail,
    charts: &RunCharts,
    files: &RunFiles,
    siblings: &[String],
    poll_ms: u64,
    root_display: &str,
) -> Markup {
    let exp = seg(&d.experiment);
    let name = &d.row.summary.name;
    let run = seg(name);
    let base = format!("/svg/runs/{exp}/{run}");
    let content = html! {
        h1 { (name) small { "in " a href=(experiment_url(&d.experiment)) { (d.experiment) } } }
        div data-live=(format!("/fragments/runs/{exp}/{run}/header")) { (run_header(d)) }
        div.card {
            h2 { "Training" span.hint { "against tokens consumed; faint line = raw values" } }
            div.controls {
                (smoothing_select("run-training", 0.6))
                label { input type="checkbox" data-control="logx" data-group="run-training" checked; "log tokens" }
            }
            div.cols {
                @for (chart, svg) in &charts.training {
                    div.chart data-group="run-training" data-live=(format!("{base}/training/{}", chart.slug())) { (PreEscaped(svg)) }
                }
            }
        }
        div.card {
            h2 { "Loss by token position" span.hint { "dashed line = training length; tick runs to overlay them" } }
            div.controls {
                (position_controls("run-position", false))
                @if d.eval.per_position.len() > 1 {
                    label { "mitigation"
                        select data-control="mitigation" data-group="run-position" {
                            @for m in &d.eval.per_position { option value=(m) { (m) } }
                        }
                    }
                }
                @if !siblings.is_empty() {
                    div.compare { "compare with:"
                        @for s in siblings {
                            label { input type="checkbox" data-control="compare" data-multi data-group="run-position" value=(s); (s) }
                        }
                    }
                }
            }
            div.chart.wide #position-chart data-group="run-position" data-live=(format!("{base}/per_position")) { (PreEscaped(&charts.position)) }
            div data-live=(format!("/fragments/runs/{exp}/{run}/verdict")) { (verdict_fragment(d)) }
        }
        div.card {
            h2 { "Passkey retrieval" }
            @if charts.passkey.is_empty() {
                p.note { "No passkey results yet: " code { "forgetlab eval" } " writes " code { "eval/passkey/summary.json" } "." }
            } @else {
                div.cols {
                    @for (label, svg) in &charts.passkey {
                        div.chart data-live=(format!("{base}/passkey?mitigation={}", seg(label))) { (PreEscaped(svg)) }
                    }
                }
            }
        }
        div.card {
            h2 { "State diagnostics" span.hint { "decay per head, retention of the first token, state statistics over positions" } }
            @if charts.diagnostics.is_empty() {
                p.note { "No diagnostics yet: " code { "forgetlab eval" } " writes " code { "eval/diagnostics.json" } "." }
            } @else {
                div.cols {
                    @for (chart_name, svg) in &charts.diagnostics {
                        @if DIAGNOSTICS_CHARTS.contains(&chart_name.as_str()) {
                            div.chart data-live=(format!("{base}/diagnostics/{chart_name}")) { (PreEscaped(svg)) }
                        } @else {
                            div.chart { (PreEscaped(svg)) }
                        }
                    }
                }
            }
        }
        div.card {
            h2 { "Files" span.hint { a href=(format!("/api/runs/{exp}/{run}")) { "JSON" } } }
            div.files {
                @for f in &files.links { a href=(format!("/files/{exp}/{}", f.split('/').map(seg).collect::<Vec<_>>().join("/"))) { (f.rsplit('/').next().unwrap_or(f)) } }
            }
            @if let Some(cfg) = &files.config_text {
                details { summary { "config.toml" } pre.block { (cfg) } }
            }
            @if let Some(log) = &files.log_tail {
                details open[d.row.cell == CellStatus::Failed] { summary { "train.log (last lines)" } pre.block { (log) } }
            }
        }
    };
    layout(
        name,
        &[
            (d.experiment.clone(), Some(experiment_url(&d.experiment))),
            (name.clone(), None),
        ],
        &format!("/api/runs/{exp}/{run}/stamp"),
        &d.stamp,
        poll_ms,
        root_display,
        content,
    )
}

/// A page for errors (unknown experiment, bad name).
pub fn error_page(status: u16, message: &str, root_display: &str) -> Markup {
    let content = html! {
        h1 { (status) }
        div.card { p { (message) } p { a href="/" { "back to the experiments" } } }
    };
    layout("Error", &[], "", "", 2000, root_display, content)
}

/// How a mixer is named on pages: nothing for Mamba-2 (every older run), its name otherwise.
fn mixer_label(mixer: Option<&str>) -> Option<String> {
    match mixer {
        Some("mamba2") | None => None,
        Some("gated-deltanet") => Some("Gated DeltaNet".to_string()),
        Some(other) => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(seg("d_state-8_len-128"), "d_state-8_len-128");
        assert_eq!(seg("a b#c?d%"), "a%20b%23c%3Fd%25");
        assert_eq!(run_url("e x", "r"), "/runs/e%20x/r");
    }
}
