//! What the dashboard and the report show, read tolerantly from run directories.
//!
//! Runs are read while trainers write them, and some are broken. Nothing here fails: every
//! file that exists but cannot be read becomes a problem string naming the file and the reason,
//! and the run is shown with whatever else could be read. These types are also the JSON API.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use forgetlab_runs::results::{
    Diagnostics, ForgetVerdict, LawReport, PasskeySummary, PerPositionReport,
};
use forgetlab_runs::summary::read_json;
use forgetlab_runs::{
    ExperimentDir, RunConfig, RunDir, RunState, RunStatus, RunSummary, read_metrics,
};
use serde::Serialize;

use crate::cache::Metrics;
use crate::root::{RunEntry, RunsRoot};

/// How a grid cell (one run) is coloured: the verdict when there is one, else the run state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CellStatus {
    Forgets,
    DoesNotForget,
    Undetermined,
    /// Trained, not evaluated yet.
    Trained,
    Running,
    Pending,
    Interrupted,
    Failed,
    /// Unreadable config or a link out of the root.
    Broken,
}

impl CellStatus {
    /// The CSS class and the JSON name.
    pub fn slug(self) -> &'static str {
        match self {
            CellStatus::Forgets => "forgets",
            CellStatus::DoesNotForget => "does-not-forget",
            CellStatus::Undetermined => "undetermined",
            CellStatus::Trained => "trained",
            CellStatus::Running => "running",
            CellStatus::Pending => "pending",
            CellStatus::Interrupted => "interrupted",
            CellStatus::Failed => "failed",
            CellStatus::Broken => "broken",
        }
    }

    /// Short human label.
    pub fn label(self) -> &'static str {
        match self {
            CellStatus::Forgets => "forgets",
            CellStatus::DoesNotForget => "does not forget",
            CellStatus::Undetermined => "undetermined",
            CellStatus::Trained => "trained, not evaluated",
            CellStatus::Running => "running",
            CellStatus::Pending => "pending",
            CellStatus::Interrupted => "interrupted",
            CellStatus::Failed => "failed",
            CellStatus::Broken => "broken",
        }
    }

    pub const ALL: [CellStatus; 9] = [
        CellStatus::Forgets,
        CellStatus::DoesNotForget,
        CellStatus::Undetermined,
        CellStatus::Trained,
        CellStatus::Running,
        CellStatus::Pending,
        CellStatus::Interrupted,
        CellStatus::Failed,
        CellStatus::Broken,
    ];
}

/// One run as listed in an experiment.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub cell: CellStatus,
    /// Fraction of the step budget done.
    pub progress: Option<f64>,
    pub tokens: Option<u64>,
    /// T_recall of the unmitigated passkey evaluation.
    pub t_recall: Option<usize>,
    /// Last status write (seconds since the Unix epoch).
    pub updated_unix: Option<f64>,
}

impl RunRow {
    pub fn name(&self) -> &str {
        &self.summary.name
    }
}

/// Reads what a table row needs, refusing files that link out of the root; reuses the last
/// read while the run's files are unchanged.
pub fn read_row(root: &RunsRoot, entry: &RunEntry) -> RunRow {
    if entry.escapes {
        return read_row_uncached(root, entry);
    }
    let stamp = run_stamp(&entry.dir);
    root.cache()
        .row(entry.dir.root(), &stamp, || read_row_uncached(root, entry))
}

fn read_row_uncached(root: &RunsRoot, entry: &RunEntry) -> RunRow {
    let run = &entry.dir;
    if entry.escapes {
        return broken_row(
            &entry.name,
            "run directory links outside the runs root; not read",
        );
    }
    let guarded = [
        (run.config(), "config.toml"),
        (run.status(), "status.json"),
        (run.metrics(), "metrics.jsonl"),
        (run.verdict(), "eval/verdict.json"),
    ];
    let escaping: Vec<String> = guarded
        .iter()
        .filter(|(p, _)| !root.contains(p))
        .map(|(_, what)| format!("{what}: links outside the runs root; not read"))
        .collect();
    if !escaping.is_empty() {
        let mut row = broken_row(&entry.name, &escaping[0]);
        row.summary.problems = escaping;
        return row;
    }
    let summary = RunSummary::read(run);
    let mut problems = Vec::new();
    let status: Option<RunStatus> = read_json(&run.status(), &mut problems);
    let passkey: Option<PasskeySummary> = {
        let path = run.passkey_dir("none").join("summary.json");
        if root.contains(&path) {
            read_json(&path, &mut problems)
        } else {
            None
        }
    };
    let cell = cell_status(&summary);
    let progress = match (summary.step, summary.total_steps) {
        (Some(s), Some(t)) if t > 0 => Some((s as f64 / t as f64).min(1.0)),
        _ => None,
    };
    let mut summary = summary;
    // RunSummary names files by their last component; name the verdict from the run directory.
    for p in &mut summary.problems {
        if let Some(rest) = p.strip_prefix("verdict.json:") {
            *p = format!("eval/verdict.json:{rest}");
        }
    }
    for p in problems {
        if !summary.problems.contains(&p) {
            summary.problems.push(p);
        }
    }
    RunRow {
        cell,
        progress,
        tokens: status.as_ref().map(|s| s.tokens),
        t_recall: passkey.and_then(|p| p.t_recall),
        updated_unix: status.map(|s| s.updated_unix),
        summary,
    }
}

fn broken_row(name: &str, problem: &str) -> RunRow {
    RunRow {
        summary: RunSummary {
            name: name.to_string(),
            state: None,
            step: None,
            total_steps: None,
            seq_len: None,
            state_size: None,
            mixer: None,
            d_state: None,
            n_layer: None,
            d_model: None,
            seed: None,
            last_loss: None,
            last_val_loss: None,
            forgets: None,
            has_verdict: false,
            effect: None,
            reason: None,
            problems: vec![problem.to_string()],
        },
        cell: CellStatus::Broken,
        progress: None,
        tokens: None,
        t_recall: None,
        updated_unix: None,
    }
}

/// The colour of a run: broken config first, then the verdict, then the run state.
pub fn cell_status(s: &RunSummary) -> CellStatus {
    if s.seq_len.is_none() || s.problems.iter().any(|p| p.starts_with("config.toml")) {
        return CellStatus::Broken;
    }
    if s.has_verdict {
        return match s.forgets {
            Some(true) => CellStatus::Forgets,
            Some(false) => CellStatus::DoesNotForget,
            None => CellStatus::Undetermined,
        };
    }
    match s.state {
        Some(RunState::Completed) => CellStatus::Trained,
        Some(RunState::Running) => CellStatus::Running,
        Some(RunState::Failed) => CellStatus::Failed,
        Some(RunState::Interrupted) => CellStatus::Interrupted,
        Some(RunState::Pending) | None => CellStatus::Pending,
    }
}

/// One row of the state size x training length grid.
#[derive(Debug, Clone, Serialize)]
pub struct GridRow {
    pub state_size: u64,
    /// The runs' mixer (rows of two mixers at the same N_S stay apart).
    pub mixer: Option<String>,
    pub d_state: Option<usize>,
    pub n_layer: Option<usize>,
    pub d_model: Option<usize>,
    /// Run names per column (several seeds share a cell).
    pub cells: Vec<Vec<String>>,
}

/// State size (rows, ascending) x training length (columns, ascending).
#[derive(Debug, Clone, Serialize)]
pub struct Grid {
    pub seq_lens: Vec<usize>,
    pub rows: Vec<GridRow>,
    /// Runs without a readable state size or training length.
    pub unplaced: Vec<String>,
}

pub fn grid(rows: &[RunRow]) -> Grid {
    let mut seq_lens: Vec<usize> = rows.iter().filter_map(|r| r.summary.seq_len).collect();
    seq_lens.sort_unstable();
    seq_lens.dedup();
    let mut by_size: BTreeMap<(u64, Option<String>), GridRow> = BTreeMap::new();
    let mut unplaced = Vec::new();
    for r in rows {
        let (Some(size), Some(len)) = (r.summary.state_size, r.summary.seq_len) else {
            unplaced.push(r.summary.name.clone());
            continue;
        };
        let mixer = r.summary.mixer.clone();
        let row = by_size
            .entry((size, mixer.clone()))
            .or_insert_with(|| GridRow {
                state_size: size,
                mixer,
                d_state: r.summary.d_state,
                n_layer: r.summary.n_layer,
                d_model: r.summary.d_model,
                cells: vec![Vec::new(); seq_lens.len()],
            });
        if let Ok(col) = seq_lens.binary_search(&len) {
            row.cells[col].push(r.summary.name.clone());
        }
    }
    Grid {
        seq_lens,
        rows: by_size.into_values().collect(),
        unplaced,
    }
}

/// An experiment in the list of experiments.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentSummary {
    pub name: String,
    pub description: Option<String>,
    pub runs: usize,
    /// Runs per cell status (only the statuses present).
    pub cells: BTreeMap<String, usize>,
    pub broken: usize,
    pub has_law: bool,
    /// (slope, intercept) of the fitted T_forget line, when fitted.
    pub law_line: Option<(f64, f64)>,
    pub updated_unix: Option<f64>,
}

/// Everything the experiment page shows.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentView {
    pub name: String,
    pub description: Option<String>,
    pub runs: Vec<RunRow>,
    pub grid: Grid,
    pub law: Option<LawReport>,
    /// Why `law.json` could not be read, when it exists.
    pub law_problem: Option<String>,
    pub stamp: String,
}

impl ExperimentView {
    pub fn row(&self, name: &str) -> Option<&RunRow> {
        self.runs.iter().find(|r| r.summary.name == name)
    }

    pub fn summary(&self) -> ExperimentSummary {
        let mut cells = BTreeMap::new();
        for r in &self.runs {
            *cells.entry(r.cell.slug().to_string()).or_insert(0) += 1;
        }
        ExperimentSummary {
            name: self.name.clone(),
            description: self.description.clone(),
            runs: self.runs.len(),
            cells,
            broken: self.runs.iter().filter(|r| r.summary.is_broken()).count(),
            has_law: self.law.is_some(),
            law_line: self
                .law
                .as_ref()
                .and_then(|l| l.primary_linear())
                .map(|f| (f.a, f.b)),
            updated_unix: self
                .runs
                .iter()
                .filter_map(|r| r.updated_unix)
                .fold(None, |acc: Option<f64>, t| {
                    Some(acc.map_or(t, |a| a.max(t)))
                }),
        }
    }
}

/// The `[experiment] description` of experiment.toml, if readable.
fn description(experiment: &ExperimentDir, root: &RunsRoot) -> Option<String> {
    let path = experiment.experiment_file();
    if !root.contains(&path) {
        return None;
    }
    let text = forgetlab_runs::regular::read_regular_to_string(&path).ok()?;
    let table: toml::Table = text.parse().ok()?;
    table
        .get("experiment")?
        .get("description")?
        .as_str()
        .map(str::to_string)
}

pub fn experiment_view(root: &RunsRoot, experiment: &ExperimentDir) -> ExperimentView {
    let entries = root.runs(experiment);
    let mut runs: Vec<RunRow> = entries.iter().map(|e| read_row(root, e)).collect();
    // Grid order: state size, training length, seed; runs without a config last.
    runs.sort_by_key(|r| grid_order(&r.summary));
    let mut problems = Vec::new();
    let law_path = experiment.law();
    let law: Option<LawReport> = if root.contains(&law_path) {
        read_json(&law_path, &mut problems)
    } else {
        problems.push("law.json: links outside the runs root; not read".to_string());
        None
    };
    ExperimentView {
        name: experiment.name(),
        description: description(experiment, root),
        grid: grid(&runs),
        runs,
        law,
        law_problem: problems.into_iter().next(),
        stamp: experiment_stamp(root, experiment),
    }
}

fn grid_order(s: &RunSummary) -> (u64, usize, u64, String) {
    (
        s.state_size.unwrap_or(u64::MAX),
        s.seq_len.unwrap_or(usize::MAX),
        s.seed.unwrap_or(u64::MAX),
        s.name.clone(),
    )
}

/// Evaluation outputs found in a run's `eval/` directory, by mitigation label.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EvalFiles {
    /// Mitigation labels with a per-position report (`none` first).
    pub per_position: Vec<String>,
    /// Mitigation labels with a passkey summary.
    pub passkey: Vec<String>,
    pub diagnostics: bool,
    pub verdict: bool,
}

pub fn eval_files(run: &RunDir) -> EvalFiles {
    let mut files = EvalFiles::default();
    for entry in std::fs::read_dir(run.eval())
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name == "per_position.json" {
            files.per_position.push("none".to_string());
        } else if let Some(label) = name
            .strip_prefix("per_position-")
            .and_then(|n| n.strip_suffix(".json"))
        {
            files.per_position.push(label.to_string());
        } else if name == "passkey" && entry.path().join("summary.json").is_file() {
            files.passkey.push("none".to_string());
        } else if let Some(label) = name.strip_prefix("passkey-")
            && entry.path().join("summary.json").is_file()
        {
            files.passkey.push(label.to_string());
        } else if name == "diagnostics.json" {
            files.diagnostics = true;
        } else if name == "verdict.json" {
            files.verdict = true;
        }
    }
    let none_first = |v: &mut Vec<String>| {
        v.sort();
        if let Some(i) = v.iter().position(|l| l == "none") {
            let none = v.remove(i);
            v.insert(0, none);
        }
    };
    none_first(&mut files.per_position);
    none_first(&mut files.passkey);
    files
}

/// Metrics file statistics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MetricsInfo {
    pub records: usize,
    pub bad_lines: usize,
    pub last_step: Option<u64>,
    pub last_tokens: Option<u64>,
}

/// Everything the run page shows except the charts (`/api/runs/{exp}/{run}`).
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    pub experiment: String,
    #[serde(flatten)]
    pub row: RunRow,
    pub status: Option<RunStatus>,
    pub verdict: Option<ForgetVerdict>,
    pub config: Option<RunConfig>,
    pub eval: EvalFiles,
    pub metrics: MetricsInfo,
    pub stamp: String,
}

/// Reads one run in full. Problems of eval files are added to the row's problems.
pub fn run_detail(root: &RunsRoot, experiment: &ExperimentDir, entry: &RunEntry) -> RunDetail {
    let mut row = read_row(root, entry);
    let run = &entry.dir;
    let readable = !entry.escapes;
    let mut problems = Vec::new();
    let status: Option<RunStatus> = if readable && root.contains(&run.status()) {
        read_json(&run.status(), &mut Vec::new()).map(RunStatus::seen_from_here)
    } else {
        None
    };
    let verdict: Option<ForgetVerdict> = if readable && root.contains(&run.verdict()) {
        read_json(&run.verdict(), &mut Vec::new())
    } else {
        None
    };
    let config = if !entry.escapes && root.contains(&run.config()) {
        RunConfig::load(&run.config()).ok()
    } else {
        None
    };
    let eval = if entry.escapes {
        EvalFiles::default()
    } else {
        eval_files(run)
    };
    let metrics = if entry.escapes {
        MetricsInfo::default()
    } else {
        let m = run_metrics(root, run);
        MetricsInfo {
            records: m.records.len(),
            bad_lines: m.bad_lines,
            last_step: m.records.last().map(|r| r.step),
            last_tokens: m.records.last().map(|r| r.tokens),
        }
    };
    if !entry.escapes {
        for label in &eval.per_position {
            let _: Option<PerPositionReport> =
                read_guarded(root, &run.per_position(label), &mut problems);
        }
        for label in &eval.passkey {
            let _: Option<PasskeySummary> = read_guarded(
                root,
                &run.passkey_dir(label).join("summary.json"),
                &mut problems,
            );
        }
        if eval.diagnostics {
            let _: Option<Diagnostics> = read_guarded(root, &run.diagnostics(), &mut problems);
        }
    }
    for p in problems {
        if !row.summary.problems.contains(&p) {
            row.summary.problems.push(p);
        }
    }
    RunDetail {
        experiment: experiment.name(),
        row,
        status,
        verdict,
        config,
        eval,
        metrics,
        stamp: run_stamp(run),
    }
}

/// Reads a JSON result file unless it links out of the root; problems name the file relative
/// to the run (`eval/passkey/summary.json: ...`).
pub fn read_guarded<T: serde::de::DeserializeOwned>(
    root: &RunsRoot,
    path: &Path,
    problems: &mut Vec<String>,
) -> Option<T> {
    let shown = relative_name(path);
    if !root.contains(path) {
        problems.push(format!("{shown}: links outside the runs root; not read"));
        return None;
    }
    let mut local = Vec::new();
    let value = read_json(path, &mut local);
    problems.extend(local.into_iter().map(|p| {
        // read_json names the file by its last component; name it from the run directory.
        match p.split_once(": ") {
            Some((_, reason)) => format!("{shown}: {reason}"),
            None => p,
        }
    }));
    value
}

/// `eval/passkey/summary.json` for a path inside a run directory.
fn relative_name(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .rev()
        .take(3)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let mut parts: Vec<String> = parts.into_iter().rev().collect();
    if let Some(i) = parts.iter().position(|p| p == "eval") {
        parts.drain(..i);
    } else {
        parts.drain(..parts.len().saturating_sub(1));
    }
    parts.join("/")
}

/// Every record of a run's metrics (empty when unreadable or linked out of the root).
pub fn run_metrics(root: &RunsRoot, run: &RunDir) -> Arc<Metrics> {
    let path = run.metrics();
    if !root.contains(&path) {
        return Arc::default();
    }
    root.cache().metrics(&path, || {
        let (records, bad_lines) = read_metrics(&path).unwrap_or_default();
        Metrics { records, bad_lines }
    })
}

fn stamp_file(hasher: &mut DefaultHasher, path: &Path) {
    path.hash(hasher);
    if let Ok(meta) = std::fs::metadata(path) {
        meta.len().hash(hasher);
        if let Ok(modified) = meta.modified()
            && let Ok(since) = modified.duration_since(std::time::UNIX_EPOCH)
        {
            since.as_nanos().hash(hasher);
        }
    }
}

fn stamp_run_into(hasher: &mut DefaultHasher, run: &RunDir) {
    for path in [
        run.config(),
        run.status(),
        run.metrics(),
        run.verdict(),
        run.diagnostics(),
    ] {
        stamp_file(hasher, &path);
    }
    // A writer that dies changes no file, yet turns its run from running to interrupted.
    if let Some(status) = read_json::<RunStatus>(&run.status(), &mut Vec::new()) {
        status.seen_from_here().state.as_str().hash(hasher);
    }
    for entry in std::fs::read_dir(run.eval())
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        stamp_file(hasher, &path);
        if path.is_dir() {
            stamp_file(hasher, &path.join("summary.json"));
        }
    }
}

/// A fingerprint of everything a run page shows: sizes and modification times of the run's
/// files. Pages poll it and refresh their parts when it changes.
pub fn run_stamp(run: &RunDir) -> String {
    let mut hasher = DefaultHasher::new();
    stamp_run_into(&mut hasher, run);
    format!("{:016x}", hasher.finish())
}

/// A fingerprint of an experiment: its runs (added or removed), their files and `law.json`.
pub fn experiment_stamp(root: &RunsRoot, experiment: &ExperimentDir) -> String {
    let mut hasher = DefaultHasher::new();
    stamp_file(&mut hasher, &experiment.law());
    stamp_file(&mut hasher, &experiment.experiment_file());
    for entry in root.runs(experiment) {
        entry.name.hash(&mut hasher);
        if !entry.escapes {
            stamp_run_into(&mut hasher, &entry.dir);
        }
    }
    format!("{:016x}", hasher.finish())
}

/// A fingerprint of the experiment list.
pub fn root_stamp(root: &RunsRoot) -> String {
    let mut hasher = DefaultHasher::new();
    for experiment in root.experiments() {
        experiment_stamp(root, &experiment).hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs of two mixers that happen to share N_S get a row each, not one merged row.
    #[test]
    fn the_grid_keeps_mixers_apart_at_equal_state_size() {
        let run = |name: &str, mixer: &str, len: usize| {
            let mut row = broken_row(name, "");
            row.summary.problems.clear();
            row.summary.state_size = Some(2624);
            row.summary.seq_len = Some(len);
            row.summary.mixer = Some(mixer.to_string());
            row
        };
        let rows = [
            run("a", "mamba2", 128),
            run("b", "gated-deltanet", 128),
            run("c", "mamba2", 256),
        ];
        let g = grid(&rows);
        assert_eq!(g.rows.len(), 2);
        let cells: Vec<Vec<Vec<String>>> = g.rows.iter().map(|r| r.cells.clone()).collect();
        assert!(cells.contains(&vec![vec!["a".to_string()], vec!["c".to_string()]]));
        assert!(cells.contains(&vec![vec!["b".to_string()], vec![]]));
    }

    #[test]
    fn relative_names_start_at_eval() {
        assert_eq!(
            relative_name(Path::new("/r/exp/run/eval/passkey/summary.json")),
            "eval/passkey/summary.json"
        );
        assert_eq!(
            relative_name(Path::new("/r/exp/run/eval/diagnostics.json")),
            "eval/diagnostics.json"
        );
        assert_eq!(relative_name(Path::new("/r/exp/law.json")), "law.json");
    }
}
