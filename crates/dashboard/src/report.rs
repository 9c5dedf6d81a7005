//! Static experiment reports: one HTML page and one Markdown file with the same content, the
//! figures as SVG files beside them, and a copy of `law.json`, so the folder can be opened,
//! pasted into a paper draft or committed as it is.
//!
//! ```text
//! <out>/                       default: <experiment>/report/
//!   index.html  report.md  law.json
//!   figures/law.svg  figures/recall.svg
//!   figures/per_position_ns-<N_S>.svg  figures/training_loss_ns-<N_S>.svg
//!   figures/runs/<run>/{loss,lr,grad_norm,throughput,per_position,passkey*,diagnostics_*}.svg
//! ```
//!
//! The figures come from the same functions as the dashboard's charts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use forgetlab_plot::TrainingChart;
use forgetlab_plot::TrainingOptions;
use forgetlab_plot::format::{fmt_fixed, fmt_length, fmt_sig};
use forgetlab_runs::ExperimentDir;
use forgetlab_runs::config::MixerKind;
use forgetlab_runs::results::{
    Censoring, Estimate, ExponentialFit, ForgetPoint, LawReport, LinearFit, RecallShape, Retrieval,
};

use crate::charts::{self, PositionQuery};
use crate::error::DashboardError;
use crate::model::{CellStatus, ExperimentView, RunRow, eval_files, experiment_view};
use crate::pages::state_size_text;
use crate::root::{RunEntry, RunsRoot};

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    pub dir: PathBuf,
    pub html: PathBuf,
    pub markdown: PathBuf,
    /// SVG files written.
    pub figures: usize,
    pub runs: usize,
    /// Things that could not be read (also listed in the report).
    pub problems: Vec<String>,
}

/// Writes the report of the experiment in `experiment_dir` into `out` (default
/// `experiment_dir/report`). Unreadable runs and results are reported inside, not raised; the
/// error cases are a missing experiment directory and failed writes.
pub fn write_report(
    experiment_dir: &Path,
    out: Option<&Path>,
) -> Result<ReportOutcome, DashboardError> {
    let root =
        RunsRoot::open_trusting_links(experiment_dir).map_err(|e| DashboardError::Experiment {
            path: experiment_dir.to_path_buf(),
            reason: e.to_string(),
        })?;
    let experiment = ExperimentDir::new(root.path());
    let out_dir = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| experiment.report());
    let entries = root.runs(&experiment);
    let view = experiment_view(&root, &experiment);
    let mut writer = Writer {
        dir: out_dir.clone(),
        figures: 0,
    };
    let mut doc = Doc::default();
    let mut problems = Vec::new();

    doc.title(&format!("Experiment {}", view.name));
    if let Some(d) = &view.description {
        doc.para(d);
    }
    doc.note(&format!(
        "Generated {} by forgetlab {} from {}.",
        utc_string(forgetlab_runs::unix_now()),
        env!("CARGO_PKG_VERSION"),
        experiment.root().display()
    ));
    summary_section(&mut doc, &view);
    law_section(&mut doc, &mut writer, &view, &mut problems)?;
    grid_section(&mut doc, &view);
    state_size_sections(&mut doc, &mut writer, &root, &view, &entries)?;
    run_table(&mut doc, &view);
    for row in &view.runs {
        for p in &row.summary.problems {
            problems.push(format!("{}: {p}", row.summary.name));
        }
    }
    if !problems.is_empty() {
        doc.h2("Problems");
        doc.para(
            "These files exist but could not be read; the figures and tables above leave them out.",
        );
        doc.list(&problems);
    }
    run_sections(&mut doc, &mut writer, &root, &view, &entries)?;

    if let Some(law) = &view.law {
        writer.json("law.json", law)?;
    }
    let html = writer.text("index.html", &doc.html_page(&view.name))?;
    let markdown = writer.text("report.md", &doc.md)?;
    Ok(ReportOutcome {
        dir: out_dir,
        html,
        markdown,
        figures: writer.figures,
        runs: view.runs.len(),
        problems,
    })
}

struct Writer {
    dir: PathBuf,
    figures: usize,
}

impl Writer {
    fn write(&self, relative: &str, bytes: &[u8]) -> Result<PathBuf, DashboardError> {
        let path = self.dir.join(relative);
        forgetlab_runs::write_atomic(&path, bytes).map_err(|error| DashboardError::Write {
            path: path.clone(),
            error,
        })?;
        Ok(path)
    }

    fn text(&self, relative: &str, text: &str) -> Result<PathBuf, DashboardError> {
        self.write(relative, text.as_bytes())
    }

    fn json<T: serde::Serialize>(
        &self,
        relative: &str,
        value: &T,
    ) -> Result<PathBuf, DashboardError> {
        let path = self.dir.join(relative);
        forgetlab_runs::write_json_atomic(&path, value).map_err(|source| {
            DashboardError::Write {
                path: path.clone(),
                error: source,
            }
        })?;
        Ok(path)
    }

    /// Writes `figures/<relative>` and returns the path to link from the report.
    fn figure(&mut self, relative: &str, svg: &str) -> Result<String, DashboardError> {
        let link = format!("figures/{relative}");
        self.write(&link, svg.as_bytes())?;
        self.figures += 1;
        Ok(link)
    }
}

/// The report body, built once as Markdown and HTML side by side.
#[derive(Default)]
struct Doc {
    md: String,
    html: String,
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A table cell: text, or status badges (one per run) for the HTML version.
struct Cell {
    text: String,
    badges: Vec<(String, &'static str)>,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell {
            text,
            badges: Vec::new(),
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell {
            text: text.to_string(),
            badges: Vec::new(),
        }
    }
}

impl Doc {
    fn title(&mut self, t: &str) {
        let _ = writeln!(self.md, "# {t}\n");
        let _ = writeln!(self.html, "<h1>{}</h1>", esc(t));
    }
    fn h2(&mut self, t: &str) {
        let _ = writeln!(self.md, "## {t}\n");
        let _ = writeln!(self.html, "</div><div class=\"card\"><h2>{}</h2>", esc(t));
    }
    fn h3(&mut self, t: &str) {
        let _ = writeln!(self.md, "### {t}\n");
        let _ = writeln!(self.html, "<h3>{}</h3>", esc(t));
    }
    fn para(&mut self, t: &str) {
        let _ = writeln!(self.md, "{t}\n");
        let _ = writeln!(self.html, "<p>{}</p>", esc(t));
    }
    fn note(&mut self, t: &str) {
        let _ = writeln!(self.md, "_{t}_\n");
        let _ = writeln!(self.html, "<p class=\"note\">{}</p>", esc(t));
    }
    fn code(&mut self, t: &str) {
        let _ = writeln!(self.md, "`{t}`\n");
        let _ = writeln!(self.html, "<p><code>{}</code></p>", esc(t));
    }
    fn list(&mut self, items: &[String]) {
        let _ = writeln!(self.html, "<ul>");
        for i in items {
            let _ = writeln!(self.md, "- {i}");
            let _ = writeln!(self.html, "<li>{}</li>", esc(i));
        }
        self.md.push('\n');
        let _ = writeln!(self.html, "</ul>");
    }
    fn figures(&mut self, figs: &[(String, String)]) {
        let _ = writeln!(self.html, "<div class=\"cols\">");
        for (link, alt) in figs {
            let _ = writeln!(self.md, "![{alt}]({link})\n");
            let _ = writeln!(
                self.html,
                "<figure class=\"chart\"><img src=\"{}\" alt=\"{}\" loading=\"lazy\"></figure>",
                esc(link),
                esc(alt)
            );
        }
        let _ = writeln!(self.html, "</div>");
    }
    fn links(&mut self, label: &str, links: &[(String, String)]) {
        if links.is_empty() {
            return;
        }
        let md: Vec<String> = links.iter().map(|(l, n)| format!("[{n}]({l})")).collect();
        let _ = writeln!(self.md, "{label}: {}\n", md.join(" · "));
        let html: Vec<String> = links
            .iter()
            .map(|(l, n)| format!("<a href=\"{}\">{}</a>", esc(l), esc(n)))
            .collect();
        let _ = writeln!(
            self.html,
            "<p class=\"note\">{}: {}</p>",
            esc(label),
            html.join(" · ")
        );
    }
    fn table(&mut self, headers: &[&str], rows: Vec<Vec<Cell>>) {
        let _ = writeln!(self.md, "| {} |", headers.join(" | "));
        let _ = writeln!(
            self.md,
            "|{}|",
            headers.iter().map(|_| "---").collect::<Vec<_>>().join("|")
        );
        let _ = writeln!(
            self.html,
            "<div class=\"scroll\"><table class=\"data\"><thead><tr>{}</tr></thead><tbody>",
            headers
                .iter()
                .map(|h| format!("<th>{}</th>", esc(h)))
                .collect::<String>()
        );
        for row in rows {
            let _ = writeln!(
                self.md,
                "| {} |",
                row.iter()
                    .map(|c| md_cell(&c.text))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(
                self.html,
                "<tr>{}</tr>",
                row.iter()
                    .map(|c| if c.badges.is_empty() {
                        format!("<td>{}</td>", esc(&c.text))
                    } else {
                        let badges: Vec<String> = c
                            .badges
                            .iter()
                            .map(|(text, class)| {
                                format!("<span class=\"badge {class}\">{}</span>", esc(text))
                            })
                            .collect();
                        format!("<td>{}</td>", badges.join(" "))
                    })
                    .collect::<String>()
            );
        }
        self.md.push('\n');
        let _ = writeln!(self.html, "</tbody></table></div>");
    }

    fn html_page(&self, name: &str) -> String {
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{} · forgetlab report</title><style>{}\nfigure.chart {{ margin: 0; }}\
             figure.chart img {{ width: 100%; height: auto; display: block; }}</style></head>\
             <body><header class=\"top\"><span class=\"brand\">forget<span>lab</span></span>\
             <nav>report</nav></header><main><div class=\"card\">\n{}</div></main></body></html>\n",
            esc(name),
            include_str!("assets/app.css"),
            self.html
        )
    }
}

/// `2026-05-01 12:34 UTC` from seconds since the Unix epoch.
fn utc_string(unix: f64) -> String {
    forgetlab_runs::utc::UtcTime::from_unix(unix.max(0.0) as i64).to_minutes()
}

fn summary_section(doc: &mut Doc, view: &ExperimentView) {
    doc.h2("Summary");
    let mut items = vec![format!("{} runs", view.runs.len())];
    for status in CellStatus::ALL {
        let n = view.runs.iter().filter(|r| r.cell == status).count();
        if n > 0 {
            items.push(format!("{n} {}", status.label()));
        }
    }
    doc.list(&items);
}

fn fit_line(fit: &LinearFit, label: &str, tag: &str) -> String {
    format!(
        "{label}: T_forget[K] = {} N_S[M] {} {}{tag} — a in [{}, {}], b in [{}, {}] ({} bootstrap{}), R² = {}, n = {}",
        fmt_sig(fit.a, 4),
        if fit.b < 0.0 { "−" } else { "+" },
        fmt_sig(fit.b.abs(), 4),
        fmt_sig(fit.a_ci.0, 4),
        fmt_sig(fit.a_ci.1, 4),
        fmt_sig(fit.b_ci.0, 4),
        fmt_sig(fit.b_ci.1, 4),
        fmt_percent(fit.confidence),
        if fit.is_rough() {
            format!("; rough: only {} state sizes", fit.state_sizes())
        } else {
            String::new()
        },
        fmt_sig(fit.r2, 4),
        fit.n
    )
}

fn fmt_percent(level: f64) -> String {
    format!("{}%", fmt_sig(level * 100.0, 3))
}

fn origin_text(fit: &LinearFit) -> &'static str {
    if fit.with_origin {
        "through (0, 0)"
    } else {
        "without (0, 0)"
    }
}

fn recall_text(e: Option<&ExponentialFit>, shape: Option<&RecallShape>, label: &str) -> String {
    match (e, shape) {
        (Some(e), _) => format!(
            "{label}T_recall[K] = {} ({}^N_S − 1) {} {} (zero-shot) — k in [{}, {}]{}, R² = {}, n = {}",
            fmt_sig(e.c, 4),
            fmt_sig(e.k, 4),
            if e.d < 0.0 { "−" } else { "+" },
            fmt_sig(e.d.abs(), 4),
            fmt_sig(e.k_ci.0, 4),
            fmt_sig(e.k_ci.1, 4),
            if e.is_rough() {
                format!(" (rough: only {} state sizes)", e.state_sizes())
            } else {
                String::new()
            },
            fmt_sig(e.r2, 4),
            e.n,
        ),
        (None, Some(s)) if !s.identifiable => format!(
            "{label}T_recall(N_S): k not identifiable, no exponential reported ({}){}",
            s.reason.as_deref().unwrap_or("no curvature"),
            s.line.as_ref().map_or(String::new(), |l| format!(
                "; the points' own straight line: T_recall[K] = {} N_S[M] {} {}",
                fmt_sig(l.a, 4),
                if l.b < 0.0 { "−" } else { "+" },
                fmt_sig(l.b.abs(), 4)
            ))
        ),
        _ => format!(
            "{label}T_recall(N_S) not fitted: too few state sizes with an exact zero-shot T_recall."
        ),
    }
}

/// The fitted laws in sentences: the primary T_forget line first, the other beside it, the
/// SSM-only fits, the T_recall law (or why k is not identifiable), the paper's.
pub(crate) fn law_text(law: &LawReport) -> Vec<String> {
    if law.has_several_mixers() {
        // Each mixer's sentences under its name; the paper's (a Mamba-2 law) once, at the end.
        let mut lines = Vec::new();
        let mut paper = Vec::new();
        for (view, m) in law.per_mixer().iter().zip(&law.mixers) {
            for line in law_text(view) {
                if line.starts_with("Paper: ") {
                    if !paper.contains(&line) {
                        paper.push(line);
                    }
                } else {
                    lines.push(format!("{}: {line}", m.mixer.label()));
                }
            }
        }
        lines.extend(paper.into_iter().map(|l| format!("{l} (Mamba-2)")));
        return lines;
    }
    let mut lines = Vec::new();
    match law.primary_linear() {
        Some(f) => {
            lines.push(fit_line(
                f,
                "Fit",
                &format!(" (primary, {})", origin_text(f)),
            ));
            if let Some(s) = law.secondary_linear() {
                lines.push(fit_line(s, &format!("Beside it, {}", origin_text(s)), ""));
            }
        }
        None => lines.push(
            "T_forget(N_S) not fitted: too few state sizes with an exact (bracketed) T_forget."
                .into(),
        ),
    }
    lines.push(format!(
        "Paper: T_forget[K] = {} N_S[M] − {}",
        law.paper_linear.0, -law.paper_linear.1
    ));
    lines.push(recall_text(
        law.exponential.as_ref(),
        law.recall_shape.as_ref(),
        "",
    ));
    lines.push(format!(
        "Paper: T_recall[K] = {} ({}^N_S − 1) − {} (zero-shot)",
        law.paper_exponential.0, law.paper_exponential.1, -law.paper_exponential.2
    ));
    if let Some(ssm) = &law.ssm_only {
        let (chosen, other) = if law.primary_with_origin {
            (&ssm.linear_with_origin, &ssm.linear)
        } else {
            (&ssm.linear, &ssm.linear_with_origin)
        };
        if let Some(f) = chosen.as_ref().or(other.as_ref()) {
            lines.push(fit_line(
                f,
                "SSM-only states",
                &format!(" ({})", origin_text(f)),
            ));
        }
        lines.push(recall_text(
            ssm.exponential.as_ref(),
            ssm.recall_shape.as_ref(),
            "SSM-only states: ",
        ));
    }
    lines
}

/// A point's estimate as text: `2K`, `≤ 1K`, `> 4K` (T_forget) or `≥ 8K`, `< 1K` (T_recall).
fn estimate_text(estimate: Option<Estimate>, recall: bool) -> String {
    let Some(e) = estimate else {
        return "–".into();
    };
    let mark = match (e.kind, recall) {
        (Censoring::Exact, _) => "",
        (Censoring::UpperBound, false) => "≤ ",
        (Censoring::LowerBound, false) => "> ",
        (Censoring::UpperBound, true) => "< ",
        (Censoring::LowerBound, true) => "≥ ",
    };
    format!("{mark}{}", fmt_length(e.tokens as f64))
}

/// T_recall of a T_forget point's state size (and mixer) as text, with how it was measured.
pub(crate) fn recall_cell(law: &LawReport, point: &ForgetPoint) -> String {
    let Some(r) = law
        .recall_points
        .iter()
        .find(|r| r.state_size == point.state_size && r.mixer == point.mixer)
    else {
        return "–".into();
    };
    match r.passkey_ran {
        Some(false) => "passkey not run".into(),
        None if r.estimate.is_none() => "–".into(),
        _ => {
            let mut text = estimate_text(r.estimate, true);
            if let Some(e) = r.estimate
                && e.kind != Censoring::Exact
            {
                text.push_str(&format!(" ({})", e.kind.label()));
            }
            if r.retrieval == Retrieval::InDistribution {
                text.push_str(" (in-distribution)");
            }
            text
        }
    }
}

/// A point's mixer as readers know it (points without one are Mamba-2's).
pub(crate) fn mixer_text(mixer: Option<MixerKind>) -> &'static str {
    mixer.unwrap_or_default().label()
}

/// T_forget of a point as text, with how it was measured.
pub(crate) fn forget_cell(p: &ForgetPoint) -> String {
    match p.estimate {
        Some(e) if e.kind != Censoring::Exact => {
            format!("{} ({})", estimate_text(Some(e), false), e.kind.label())
        }
        e => estimate_text(e, false),
    }
}

fn law_section(
    doc: &mut Doc,
    writer: &mut Writer,
    view: &ExperimentView,
    problems: &mut Vec<String>,
) -> Result<(), DashboardError> {
    doc.h2("Scaling laws");
    doc.note("x: N_S in millions of state scalars; y: K = 1024 tokens.");
    let law_fig = writer.figure("law.svg", &charts::law(view))?;
    let recall_fig = writer.figure("recall.svg", &charts::recall(view))?;
    doc.figures(&[
        (law_fig, "T_forget vs state size".to_string()),
        (recall_fig, "T_recall vs state size".to_string()),
    ]);
    if let Some(p) = &view.law_problem {
        problems.push(p.clone());
        doc.para(&format!("law.json could not be read: {p}"));
    }
    match &view.law {
        None if view.law_problem.is_none() => {
            doc.para("No law.json yet: run the fit once the runs are evaluated:");
            doc.code(&format!("forgetlab fit {}", view.name));
        }
        None => {}
        Some(law) => {
            doc.list(&law_text(law));
            let several = law.has_several_mixers();
            let rows = law
                .forget_points
                .iter()
                .map(|p| {
                    let tried = p
                        .lengths
                        .iter()
                        .zip(&p.verdicts)
                        .map(|(l, v)| {
                            let mark = match v {
                                Some(true) => "✓",
                                Some(false) => "✗",
                                None => "?",
                            };
                            format!("{}{mark}", fmt_length(*l as f64))
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    let mut row = vec![
                        Cell::from(state_size_text(p.state_size)),
                        Cell::from(p.ssm_state_size.map_or("–".into(), state_size_text)),
                        Cell::from(tried),
                        Cell::from(forget_cell(p)),
                        Cell::from(recall_cell(law, p)),
                        Cell::from(p.note.clone()),
                    ];
                    if several {
                        row.insert(0, Cell::from(mixer_text(p.mixer)));
                    }
                    row
                })
                .collect();
            let mut header = vec![
                "N_S",
                "SSM part",
                "lengths tried",
                "T_forget",
                "T_recall",
                "note",
            ];
            if several {
                header.insert(0, "mixer");
            }
            doc.table(&header, rows);
            if !law.notes.is_empty() {
                doc.h3("Fit notes");
                doc.list(&law.notes);
            }
        }
    }
    Ok(())
}

fn status_text(row: &RunRow) -> String {
    let mark = match row.cell {
        CellStatus::Forgets => "✓ ",
        CellStatus::DoesNotForget => "✗ ",
        CellStatus::Undetermined => "? ",
        _ => "",
    };
    format!("{mark}{}", row.cell.label())
}

/// The status of one run, or of several runs sharing a grid cell (told apart by seed).
fn status_cell(runs: &[&RunRow]) -> Cell {
    let badges: Vec<(String, &'static str)> = runs
        .iter()
        .map(|r| {
            let mut text = status_text(r);
            if runs.len() > 1 {
                match r.summary.seed {
                    Some(seed) => text.push_str(&format!(" (seed {seed})")),
                    None => text.push_str(&format!(" ({})", r.summary.name)),
                }
            }
            (text, r.cell.slug())
        })
        .collect();
    Cell {
        text: badges
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        badges,
    }
}

fn grid_section(doc: &mut Doc, view: &ExperimentView) {
    doc.h2("Forget grid");
    if view.grid.rows.is_empty() {
        doc.para("No run has a readable config.");
        return;
    }
    let mut headers = vec!["N_S \\ T_train".to_string()];
    headers.extend(view.grid.seq_lens.iter().map(|l| fmt_length(*l as f64)));
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let rows = view
        .grid
        .rows
        .iter()
        .map(|row| {
            let mut cells = vec![Cell::from(format!(
                "{}{}",
                state_size_text(row.state_size),
                row.d_state
                    .map(|d| format!(" (d_state {d})"))
                    .unwrap_or_default()
            ))];
            for names in &row.cells {
                let runs: Vec<&RunRow> = names.iter().filter_map(|n| view.row(n)).collect();
                cells.push(status_cell(&runs));
            }
            cells
        })
        .collect();
    doc.table(&header_refs, rows);
}

fn state_size_sections(
    doc: &mut Doc,
    writer: &mut Writer,
    root: &RunsRoot,
    view: &ExperimentView,
    entries: &[RunEntry],
) -> Result<(), DashboardError> {
    if view.grid.rows.is_empty() {
        return Ok(());
    }
    doc.h2("Loss by position and training loss, per state size");
    for row in &view.grid.rows {
        let runs = charts::runs_at_state_size(view, entries, row.state_size);
        let size = state_size_text(row.state_size);
        let pos = charts::position(
            root,
            &runs,
            &format!("Loss by position · N_S {size}"),
            &PositionQuery::default(),
        );
        let train = charts::overlay_training(
            root,
            &runs,
            TrainingChart::Loss,
            &TrainingOptions {
                title: Some(format!("Training loss · N_S {size}")),
                ..TrainingOptions::default()
            },
        );
        let pos_link = writer.figure(&format!("per_position_ns-{}.svg", row.state_size), &pos)?;
        let train_link =
            writer.figure(&format!("training_loss_ns-{}.svg", row.state_size), &train)?;
        doc.h3(&format!("N_S {size}"));
        doc.figures(&[
            (pos_link, format!("Loss by position, N_S {size}")),
            (train_link, format!("Training loss, N_S {size}")),
        ]);
    }
    Ok(())
}

fn run_table(doc: &mut Doc, view: &ExperimentView) {
    doc.h2("Runs");
    let opt = |v: Option<String>| v.unwrap_or_else(|| "–".to_string());
    let rows = view
        .runs
        .iter()
        .map(|r| {
            let s = &r.summary;
            vec![
                Cell::from(s.name.clone()),
                status_cell(&[r]),
                Cell::from(opt(s.state_size.map(state_size_text))),
                Cell::from(opt(s.d_state.map(|d| d.to_string()))),
                Cell::from(opt(s.seq_len.map(|l| fmt_length(l as f64)))),
                Cell::from(opt(s.seed.map(|d| d.to_string()))),
                Cell::from(format!(
                    "{} / {}",
                    opt(s.step.map(|d| d.to_string())),
                    opt(s.total_steps.map(|d| d.to_string()))
                )),
                Cell::from(opt(s.last_loss.map(|l| fmt_fixed(l, 3)))),
                Cell::from(opt(s.last_val_loss.map(|l| fmt_fixed(l, 3)))),
                Cell::from(opt(r.t_recall.map(|t| fmt_length(t as f64)))),
                Cell::from(s.reason.clone().unwrap_or_default()),
            ]
        })
        .collect();
    doc.table(
        &[
            "run",
            "status",
            "N_S",
            "d_state",
            "T_train",
            "seed",
            "step",
            "train loss",
            "val loss",
            "T_recall",
            "reason",
        ],
        rows,
    );
}

fn run_sections(
    doc: &mut Doc,
    writer: &mut Writer,
    root: &RunsRoot,
    view: &ExperimentView,
    entries: &[RunEntry],
) -> Result<(), DashboardError> {
    doc.h2("Runs in detail");
    for row in &view.runs {
        let Some(entry) = entries.iter().find(|e| e.name == row.summary.name) else {
            continue;
        };
        doc.h3(&entry.name);
        let mut facts = vec![format!("status: {}", row.cell.label())];
        if let Some(reason) = &row.summary.reason {
            facts.push(format!("reason: {reason}"));
        }
        facts.extend(
            row.summary
                .problems
                .iter()
                .map(|p| format!("unreadable: {p}")),
        );
        doc.list(&facts);
        if entry.escapes || row.summary.seq_len.is_none() {
            continue;
        }
        let dir = format!("runs/{}", entry.name);
        let mut main = Vec::new();
        let mut more = Vec::new();
        for chart in TrainingChart::ALL {
            let svg = charts::run_training(root, entry, chart, &TrainingOptions::for_chart(chart));
            let link = writer.figure(&format!("{dir}/{}.svg", chart.slug()), &svg)?;
            if chart == TrainingChart::Loss {
                main.push((link, format!("{}: training loss", entry.name)));
            } else {
                more.push((link, chart.slug().to_string()));
            }
        }
        let eval = eval_files(&entry.dir);
        for label in &eval.per_position {
            let svg = charts::position(
                root,
                &[(entry, entry.name.clone())],
                &format!("Loss by position · {}", entry.name),
                &PositionQuery {
                    mitigation: label.clone(),
                    ..PositionQuery::default()
                },
            );
            let file = if label == "none" {
                "per_position.svg".to_string()
            } else {
                format!("per_position-{label}.svg")
            };
            let link = writer.figure(&format!("{dir}/{file}"), &svg)?;
            main.push((link, format!("{}: loss by position ({label})", entry.name)));
        }
        for (label, svg) in charts::passkey(root, entry, &eval.passkey) {
            let file = if label == "none" {
                "passkey.svg".to_string()
            } else {
                format!("passkey-{label}.svg")
            };
            let link = writer.figure(&format!("{dir}/{file}"), &svg)?;
            main.push((link, format!("{}: passkey retrieval ({label})", entry.name)));
        }
        for (name, svg) in charts::diagnostics(root, entry) {
            let link = writer.figure(&format!("{dir}/diagnostics_{name}.svg"), &svg)?;
            more.push((link, name));
        }
        doc.figures(&main);
        doc.links("More figures", &more);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two mixers: each fit sentence under its mixer's name, the paper's once; each T_recall
    /// cell from its own mixer's point even at the same N_S.
    #[test]
    fn two_mixer_laws_are_told_apart() {
        use forgetlab_runs::results::{MixerLaw, PAPER_FORGET_LINE, PAPER_RECALL_LAW, RecallPoint};
        let fit = |a: f64| LinearFit {
            a,
            b: 0.0,
            r2: 1.0,
            n: 3,
            a_ci: (a, a),
            b_ci: (0.0, 0.0),
            with_origin: true,
            band: vec![],
            confidence: 0.95,
        };
        let point = |mixer| ForgetPoint {
            mixer: Some(mixer),
            state_size: 2000,
            ssm_state_size: Some(1000),
            lengths: vec![128, 256],
            verdicts: vec![Some(false), Some(true)],
            t_forget: Some(256),
            bracketed: true,
            estimate: Some(Estimate {
                tokens: 256,
                kind: Censoring::Exact,
            }),
            note: String::new(),
        };
        let recall = |mixer, tokens| RecallPoint {
            mixer: Some(mixer),
            state_size: 2000,
            ssm_state_size: Some(1000),
            run: "r".into(),
            t_recall: Some(tokens),
            passkey_ran: Some(true),
            lengths: vec![tokens, 8192],
            estimate: Some(Estimate {
                tokens,
                kind: Censoring::Exact,
            }),
            retrieval: Retrieval::ZeroShot,
        };
        let mixer_law = |mixer, a, tokens| MixerLaw {
            mixer,
            forget_points: vec![point(mixer)],
            linear: None,
            linear_with_origin: Some(fit(a)),
            recall_points: vec![recall(mixer, tokens)],
            exponential: None,
            recall_shape: None,
            ssm_only: None,
        };
        let mixers = vec![
            mixer_law(MixerKind::Mamba2, 4.0, 512),
            mixer_law(MixerKind::GatedDeltaNet, 2.0, 1024),
        ];
        let law = LawReport {
            experiment: "two".into(),
            forget_points: mixers
                .iter()
                .flat_map(|m| m.forget_points.clone())
                .collect(),
            linear: None,
            linear_with_origin: None,
            primary_with_origin: true,
            recall_points: mixers
                .iter()
                .flat_map(|m| m.recall_points.clone())
                .collect(),
            exponential: None,
            recall_shape: None,
            ssm_only: None,
            paper_linear: PAPER_FORGET_LINE,
            paper_exponential: PAPER_RECALL_LAW,
            notes: vec![],
            mixers,
        };
        let lines = law_text(&law);
        assert!(lines[0].starts_with("Mamba-2: Fit"), "{lines:?}");
        assert!(
            lines.iter().any(|l| l.starts_with("Gated DeltaNet: Fit")),
            "{lines:?}"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("Paper: T_forget"))
                .count(),
            1,
            "{lines:?}"
        );
        assert_eq!(recall_cell(&law, &law.forget_points[0]), "512");
        assert_eq!(recall_cell(&law, &law.forget_points[1]), "1K");
        assert_eq!(mixer_text(None), "Mamba-2");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_string(0.0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_string(1_709_210_096.0), "2024-02-29 12:34 UTC");
    }
}
