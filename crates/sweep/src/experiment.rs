//! The experiment file: a base run config, axes over any config key, explicit extra points,
//! and the fit and Slurm settings. Expanding it gives the planned runs, each a fully resolved
//! and validated [`RunConfig`] named by its grid point.
//!
//! ```toml
//! [experiment]
//! name = "quickstart"                 # runs/quickstart/
//! [base]                               # a complete run config (same keys as a run file)
//! [base.model] ...
//! [sweep]                              # grid = cartesian product, first axis slowest
//! "model.d_state" = [8, 16]
//! "train.seq_len" = [64, 128]
//! model = [{ d_model = 512, n_layer = 8 }, { d_model = 768, n_layer = 12 }]  # linked keys
//! [[sweep.points]]                     # explicit extra runs
//! "model.d_state" = 32
//! ```
//!
//! One experiment can hold both mixers: a linked axis whose values are whole model variants,
//! `model = [{ d_state = 4, headdim = 16 }, { mixer = "gated-deltanet", gated_deltanet = {
//! heads = 2, head_k_dim = 16 } }]`, over a base that leaves Mamba-2's own keys at their
//! defaults (a Gated DeltaNet config refuses them changed). Run names then lead with the mixer
//! (`mixer-mamba2_d_state-4_...`, `mixer-gated-deltanet_heads-2_...`) and leave Mamba-2's keys
//! out of Gated DeltaNet runs, where they would only repeat defaults the run does not use.
//!
//! Expansion works on the TOML tree of `[base]`: each assignment is set at its dotted key, then
//! the tree is deserialised and validated as a run config. So an axis can reach any key a run
//! file has, and a mistake is reported against the axis value or point that caused it, with
//! the experiment file's name and line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use forgetlab_runs::config::{MAMBA2_ONLY_KEYS, MixerKind, invalid_in, parse};
use forgetlab_runs::{ConfigError, ExperimentDir, FitConfig, Invalid, RunConfig};
use serde::Deserialize;
use toml::{Table, Value};

use crate::error::SweepError;
use crate::locate::{Seg, line_at, offset_of};
use crate::slurm::SlurmConfig;

/// `[experiment]`: what the experiment is called and what it is for.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentMeta {
    /// Directory name under the runs root: `runs/<name>/`.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExperimentFile {
    experiment: ExperimentMeta,
    base: Table,
    #[serde(default)]
    sweep: Table,
    #[serde(default)]
    fit: FitConfig,
    #[serde(default)]
    slurm: SlurmConfig,
}

/// Where a planned run comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOrigin {
    /// The `index`-th point of the cartesian grid.
    Grid { index: usize },
    /// The `index`-th `[[sweep.points]]` entry.
    Point { index: usize },
}

/// One run of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// Directory name, made of the varied keys' values: `d_state-16_len-1024_seed-0`.
    pub name: String,
    /// The fully resolved, validated run config written to the run's `config.toml`.
    pub config: RunConfig,
    /// The value of every varied key in this run, in name order (absent keys omitted).
    pub point: Vec<(String, Value)>,
    pub origin: RunOrigin,
}

/// An axis as written: its dotted key and values, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisSummary {
    pub key: String,
    pub values: Vec<Value>,
}

/// A parsed and expanded experiment file.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// The experiment file.
    pub path: PathBuf,
    /// Its text, as read.
    pub source: String,
    pub meta: ExperimentMeta,
    pub fit: FitConfig,
    pub slurm: SlurmConfig,
    pub axes: Vec<AxisSummary>,
    /// Dotted keys that differ between runs, in the order they appear in run names.
    pub varied_keys: Vec<String>,
    /// Every run: the grid in order (first axis slowest), then the explicit points.
    pub runs: Vec<PlannedRun>,
}

/// One value set by an axis value or an explicit point.
#[derive(Debug, Clone)]
struct Assignment {
    /// Dotted key of a leaf value in the run config.
    key: String,
    value: Value,
    /// Where it is written in the experiment file.
    at: Vec<Seg>,
}

#[derive(Debug, Clone)]
struct Axis {
    key: String,
    at: Vec<Seg>,
    /// Per axis value, the leaves it sets.
    values: Vec<Vec<Assignment>>,
    raw: Vec<Value>,
}

/// Keys that get a short label in run names.
const LABELS: &[(&str, &str)] = &[
    ("train.seq_len", "len"),
    ("train.segment_len", "seg"),
    ("model.gated_deltanet.intermediate_size", "mlp"),
];

/// The key that chooses a model's mixer.
const MIXER_KEY: &str = "model.mixer";

/// Longest run name accepted (file systems allow 255 bytes per component).
const MAX_NAME_LEN: usize = 200;

impl Experiment {
    /// Reads, parses and expands an experiment file.
    pub fn load(path: &Path) -> Result<Self, SweepError> {
        let source = std::fs::read_to_string(path).map_err(|e| SweepError::io(path, e))?;
        Self::from_source(path, source)
    }

    /// Parses and expands `source`; `path` is used in error messages and kept for reference.
    pub fn from_source(path: &Path, source: String) -> Result<Self, SweepError> {
        let file: ExperimentFile = parse(&source).map_err(|e| in_file(e, path))?;
        let located = |invalid: Invalid| in_file(invalid_in(&source, invalid), path);
        validate_name(&file.experiment.name).map_err(located)?;
        file.fit.validate().map_err(located)?;
        file.slurm.validate().map_err(located)?;
        if file.base.contains_key("name") {
            return Err(located(Invalid::new(
                "base.name",
                "is set by the sweep to <experiment>/<run>; remove it",
            ))
            .into());
        }

        let mut axes = Vec::new();
        let mut points = Vec::new();
        for (key, value) in &file.sweep {
            if key == "points" {
                points = read_points(value, &source, path)?;
            } else {
                collect_axes(
                    std::slice::from_ref(key),
                    value,
                    vec![Seg::key("sweep"), Seg::key(key.as_str())],
                    &source,
                    path,
                    &mut axes,
                )?;
            }
        }
        axes.sort_by_key(|a: &Axis| offset_of(&source, &a.at).unwrap_or(usize::MAX));
        check_axes_disjoint(&axes, &source, path)?;

        let varied_keys = varied_keys(&axes, &points);
        let mut experiment = Experiment {
            path: path.to_path_buf(),
            meta: file.experiment,
            fit: file.fit,
            slurm: file.slurm,
            axes: axes
                .iter()
                .map(|a| AxisSummary {
                    key: a.key.clone(),
                    values: a.raw.clone(),
                })
                .collect(),
            varied_keys,
            runs: Vec::new(),
            source,
        };
        let mut combos: Vec<(RunOrigin, Vec<Assignment>)> = Vec::new();
        if !axes.is_empty() || points.is_empty() {
            for (index, combo) in cartesian(&axes).into_iter().enumerate() {
                combos.push((RunOrigin::Grid { index }, combo));
            }
        }
        for (index, point) in points.into_iter().enumerate() {
            combos.push((RunOrigin::Point { index }, point));
        }
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for (origin, assignments) in combos {
            let run = experiment.resolve(&file.base, origin, &assignments)?;
            if !seen.insert(run.name.clone()) {
                let at = assignments.first().map(|a| a.at.as_slice()).unwrap_or(&[]);
                return Err(experiment.error_at(
                    at,
                    "sweep",
                    format!(
                        "{} produces run {} a second time; every grid point and explicit point must differ",
                        origin_label(origin),
                        run.name
                    ),
                ));
            }
            experiment.runs.push(run);
        }
        Ok(experiment)
    }

    /// The experiment's directory under `runs_root`.
    pub fn dir(&self, runs_root: &Path) -> ExperimentDir {
        ExperimentDir::new(runs_root.join(&self.meta.name))
    }

    /// The run called `name`, if planned.
    pub fn run(&self, name: &str) -> Option<&PlannedRun> {
        self.runs.iter().find(|r| r.name == name)
    }

    /// Applies `assignments` to the base, validates, names the run.
    fn resolve(
        &self,
        base: &Table,
        origin: RunOrigin,
        assignments: &[Assignment],
    ) -> Result<PlannedRun, SweepError> {
        let mut tree = base.clone();
        for a in assignments {
            set_dotted(&mut tree, &a.key, a.value.clone()).map_err(|message| {
                self.error_at(
                    &a.at,
                    &a.key,
                    format!("{message} ({})", origin_label(origin)),
                )
            })?;
        }
        let text = toml::to_string(&tree).map_err(|e| {
            self.error_at(
                &[Seg::key("base")],
                "base",
                format!("cannot be written back as TOML: {e}"),
            )
        })?;
        let label = origin_with_values(origin, assignments);
        let mut config: RunConfig =
            parse(&text).map_err(|e| self.relocate(e, assignments, &label))?;
        config
            .validate()
            .map_err(|invalid| self.relocate(invalid_in(&text, invalid), assignments, &label))?;

        let resolved = Value::try_from(&config).map_err(|e| {
            self.error_at(
                &[Seg::key("base")],
                "base",
                format!("cannot be serialised: {e}"),
            )
        })?;
        let mut point = Vec::new();
        let mut parts = Vec::new();
        let mixer = config.model.mixer;
        for key in &self.varied_keys {
            if !names_this_mixer(key, mixer) {
                continue;
            }
            // The default mixer is left out of written configs; a plan that varies the mixer
            // still names it in every run.
            let value = get_dotted(&resolved, key)
                .cloned()
                .or_else(|| (key == MIXER_KEY).then(|| Value::from(mixer.name())));
            if let Some(value) = value {
                parts.push(format!(
                    "{}-{}",
                    label_of(key, &self.varied_keys),
                    name_value(&value)
                ));
                point.push((key.clone(), value));
            }
        }
        let name = if parts.is_empty() {
            "base".to_string()
        } else {
            parts.join("_")
        };
        if name.len() > MAX_NAME_LEN {
            let at = assignments.first().map(|a| a.at.as_slice()).unwrap_or(&[]);
            return Err(self.error_at(
                at,
                "sweep",
                format!(
                    "run name {name:?} is longer than {MAX_NAME_LEN} bytes; vary fewer keys or use shorter values"
                ),
            ));
        }
        config.name = Some(format!("{}/{}", self.meta.name, name));
        Ok(PlannedRun {
            name,
            config,
            point,
            origin,
        })
    }

    /// Moves an error found in a generated run config onto the experiment file: onto the axis
    /// value or point that set the key when there is one, else onto `[base]`.
    fn relocate(&self, err: ConfigError, assignments: &[Assignment], label: &str) -> SweepError {
        let (key, message, invalid) = match err {
            ConfigError::Io { .. } => return err.into(),
            ConfigError::Parse { key, message, .. } => (key, message, false),
            ConfigError::Invalid { key, message, .. } => (Some(key), message, true),
        };
        let key = key.unwrap_or_default();
        let bare = strip_indices(&key);
        let from_assignment = assignments.iter().find(|a| {
            a.key == bare
                || bare.starts_with(&format!("{}.", a.key))
                || a.key.starts_with(&format!("{bare}."))
        });
        let (line, shown_key) = match from_assignment {
            Some(a) => (line_at(&self.source, &a.at), key.clone()),
            None => (line_of_base_key(&self.source, &bare), key.clone()),
        };
        let message = format!("{message} ({label})");
        let file = Some(self.path.clone());
        if invalid {
            ConfigError::Invalid {
                file,
                line,
                key: shown_key,
                message,
            }
        } else {
            ConfigError::Parse {
                file,
                line,
                key: (!shown_key.is_empty()).then_some(shown_key),
                message,
            }
        }
        .into()
    }

    fn error_at(&self, at: &[Seg], key: &str, message: String) -> SweepError {
        ConfigError::Invalid {
            file: Some(self.path.clone()),
            line: line_at(&self.source, at),
            key: key.to_string(),
            message,
        }
        .into()
    }
}

fn origin_label(origin: RunOrigin) -> String {
    match origin {
        RunOrigin::Grid { index } => format!("grid point {index}"),
        RunOrigin::Point { index } => format!("[[sweep.points]] entry {}", index + 1),
    }
}

/// `grid point 3: model.d_state = 4, train.seq_len = 48`.
fn origin_with_values(origin: RunOrigin, assignments: &[Assignment]) -> String {
    let values: Vec<String> = assignments
        .iter()
        .map(|a| format!("{} = {}", a.key, a.value))
        .collect();
    if values.is_empty() {
        origin_label(origin)
    } else {
        format!("{}: {}", origin_label(origin), values.join(", "))
    }
}

/// Sets the file on a located error (the runs crate's helper for this is private).
pub(crate) fn in_file(err: ConfigError, path: &Path) -> ConfigError {
    match err {
        ConfigError::Parse {
            line, key, message, ..
        } => ConfigError::Parse {
            file: Some(path.to_path_buf()),
            line,
            key,
            message,
        },
        ConfigError::Invalid {
            line, key, message, ..
        } => ConfigError::Invalid {
            file: Some(path.to_path_buf()),
            line,
            key,
            message,
        },
        io => io,
    }
}

fn validate_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "experiment.name",
            format!(
                "{name:?} is not a usable directory name: use letters, digits, '.', '_' and '-', not starting with '.'"
            ),
        ))
    }
}

/// Reads `[sweep]` entries into axes; nested tables (`model.d_state = [...]` unquoted, or
/// `[sweep.model]`) become dotted axis keys.
fn collect_axes(
    prefix: &[String],
    value: &Value,
    at: Vec<Seg>,
    source: &str,
    path: &Path,
    axes: &mut Vec<Axis>,
) -> Result<(), SweepError> {
    let key = prefix.join(".");
    let fail = |message: String| -> SweepError {
        ConfigError::Invalid {
            file: Some(path.to_path_buf()),
            line: line_at(source, &at),
            key: format!("sweep.{key}"),
            message,
        }
        .into()
    };
    match value {
        Value::Table(table) => {
            for (k, v) in table {
                let mut p = prefix.to_vec();
                p.push(k.clone());
                let mut a = at.clone();
                a.push(Seg::key(k.as_str()));
                collect_axes(&p, v, a, source, path, axes)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            if items.is_empty() {
                return Err(fail("lists no values; an axis needs at least one".into()));
            }
            if key.split('.').any(str::is_empty) {
                return Err(fail("is not a dotted config key like model.d_state".into()));
            }
            let mut values = Vec::new();
            for (index, item) in items.iter().enumerate() {
                let mut item_at = at.clone();
                item_at.push(Seg::Index(index));
                let mut leaves = Vec::new();
                match item {
                    Value::Table(t) if t.is_empty() => {
                        return Err(fail(format!("value {} is an empty table", index + 1)));
                    }
                    Value::Table(t) => flatten(&key, t, &item_at, false, &mut leaves),
                    other => leaves.push(Assignment {
                        key: key.clone(),
                        value: other.clone(),
                        at: item_at,
                    }),
                }
                values.push(leaves);
            }
            axes.push(Axis {
                key,
                at,
                values,
                raw: items.clone(),
            });
            Ok(())
        }
        _ => Err(fail(
            "an axis lists its values in an array, e.g. [8, 16] (use [[sweep.points]] for a single extra run)"
                .into(),
        )),
    }
}

/// Leaves of a table value, as dotted keys under `prefix`. With `own_location`, each leaf is
/// located at its own key (points); without, every leaf points at `at` (an axis value).
fn flatten(prefix: &str, table: &Table, at: &[Seg], own_location: bool, out: &mut Vec<Assignment>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let mut here = at.to_vec();
        if own_location {
            here.push(Seg::key(k.as_str()));
        }
        match v {
            Value::Table(inner) if !inner.is_empty() => {
                flatten(&key, inner, &here, own_location, out)
            }
            _ => out.push(Assignment {
                key,
                value: v.clone(),
                at: here,
            }),
        }
    }
}

fn read_points(
    value: &Value,
    source: &str,
    path: &Path,
) -> Result<Vec<Vec<Assignment>>, SweepError> {
    let base_at = vec![Seg::key("sweep"), Seg::key("points")];
    let fail = |at: &[Seg], message: &str| -> SweepError {
        ConfigError::Invalid {
            file: Some(path.to_path_buf()),
            line: line_at(source, at),
            key: "sweep.points".into(),
            message: message.into(),
        }
        .into()
    };
    let Value::Array(items) = value else {
        return Err(fail(
            &base_at,
            "must be an array of tables: write each point as [[sweep.points]]",
        ));
    };
    let mut points = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let mut at = base_at.clone();
        at.push(Seg::Index(index));
        let Value::Table(table) = item else {
            return Err(fail(
                &at,
                "must be an array of tables: write each point as [[sweep.points]]",
            ));
        };
        if table.is_empty() {
            return Err(fail(&at, "an explicit point sets no key"));
        }
        let mut leaves = Vec::new();
        flatten("", table, &at, true, &mut leaves);
        points.push(leaves);
    }
    Ok(points)
}

fn overlaps(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}.")) || b.starts_with(&format!("{a}."))
}

fn check_axes_disjoint(axes: &[Axis], source: &str, path: &Path) -> Result<(), SweepError> {
    for (i, later) in axes.iter().enumerate() {
        for earlier in &axes[..i] {
            for a in later.values.iter().flatten() {
                if let Some(b) = earlier
                    .values
                    .iter()
                    .flatten()
                    .find(|b| overlaps(&a.key, &b.key))
                {
                    return Err(ConfigError::Invalid {
                        file: Some(path.to_path_buf()),
                        line: line_at(source, &later.at),
                        key: format!("sweep.{}", later.key),
                        message: format!(
                            "sets {} which axis {} also sets; combine them into one axis of tables",
                            a.key, b.key
                        ),
                    }
                    .into());
                }
            }
        }
    }
    Ok(())
}

/// The varied keys in run-name order: axes in file order, then the points' keys; within one
/// axis (or point) the mixer leads, so a two-mixer plan's names start with what the model is.
fn varied_keys(axes: &[Axis], points: &[Vec<Assignment>]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let groups = axes
        .iter()
        .map(|a| a.values.iter().flatten().collect::<Vec<_>>())
        .chain(points.iter().map(|p| p.iter().collect()));
    for group in groups {
        let mut group_keys: Vec<&str> = Vec::new();
        for a in group {
            if !group_keys.contains(&a.key.as_str()) {
                group_keys.push(&a.key);
            }
        }
        if let Some(i) = group_keys.iter().position(|k| *k == MIXER_KEY) {
            let mixer = group_keys.remove(i);
            group_keys.insert(0, mixer);
        }
        for key in group_keys {
            if !keys.iter().any(|k| k == key) {
                keys.push(key.to_string());
            }
        }
    }
    keys
}

/// Whether `key` says something about a run of `mixer`: Mamba-2's own sizes are only defaults
/// in a Gated DeltaNet run (validation keeps them there), so naming it by them would mislabel it.
fn names_this_mixer(key: &str, mixer: MixerKind) -> bool {
    match (mixer, key.strip_prefix("model.")) {
        (MixerKind::Mamba2, _) | (_, None) => true,
        (_, Some(model_key)) => !MAMBA2_ONLY_KEYS
            .iter()
            .any(|k| model_key == *k || model_key.starts_with(&format!("{k}."))),
    }
}

/// Every combination of axis values, first axis slowest.
fn cartesian(axes: &[Axis]) -> Vec<Vec<Assignment>> {
    let mut combos: Vec<Vec<Assignment>> = vec![Vec::new()];
    for axis in axes {
        let mut next = Vec::with_capacity(combos.len() * axis.values.len());
        for combo in &combos {
            for value in &axis.values {
                let mut c = combo.clone();
                c.extend(value.iter().cloned());
                next.push(c);
            }
        }
        combos = next;
    }
    combos
}

/// Sets `value` at a dotted key, creating tables on the way; a table value is merged into an
/// existing table.
fn set_dotted(tree: &mut Table, key: &str, value: Value) -> Result<(), String> {
    let segments: Vec<&str> = key.split('.').collect();
    let (last, parents) = segments.split_last().ok_or("empty key")?;
    let mut table = tree;
    let mut walked = Vec::new();
    for segment in parents {
        walked.push(*segment);
        let entry = table
            .entry(segment.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(t) => t,
            other => {
                return Err(format!(
                    "cannot set {key}: {} is a {} in [base], not a table",
                    walked.join("."),
                    other.type_str()
                ));
            }
        };
    }
    match (table.get_mut(*last), value) {
        (Some(Value::Table(existing)), Value::Table(new)) => {
            for (k, v) in new {
                set_dotted(existing, &k, v)?;
            }
        }
        (_, value) => {
            table.insert(last.to_string(), value);
        }
    }
    Ok(())
}

fn get_dotted<'a>(tree: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.')
        .try_fold(tree, |v, segment| v.as_table()?.get(segment))
}

fn strip_indices(key: &str) -> String {
    key.split('.')
        .map(|s| s.split('[').next().unwrap_or(s))
        .collect::<Vec<_>>()
        .join(".")
}

/// Line of `base.<key>`, or of its nearest written parent, or of `[base]`.
fn line_of_base_key(source: &str, key: &str) -> Option<usize> {
    let mut path = vec![Seg::key("base")];
    path.extend(key.split('.').filter(|s| !s.is_empty()).map(Seg::key));
    (1..=path.len())
        .rev()
        .find_map(|n| line_at(source, &path[..n]))
}

/// The short label of a varied key in run names: an alias for the usual ones, else the last
/// segment, else (when two varied keys share a last segment) the whole dotted key.
fn label_of(key: &str, varied: &[String]) -> String {
    if let Some((_, label)) = LABELS.iter().find(|(k, _)| *k == key) {
        return label.to_string();
    }
    let last = |k: &str| k.rsplit('.').next().unwrap_or(k).to_string();
    let mine = last(key);
    let clash = varied.iter().any(|other| {
        other != key
            && (last(other) == mine || LABELS.iter().any(|(k, label)| k == other && *label == mine))
    });
    if clash { key.to_string() } else { mine }
}

/// A value as it appears in a run name: numbers as written, arrays joined by `x`, strings
/// reduced to characters safe in a directory name.
fn name_value(value: &Value) -> String {
    match value {
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::String(s) => sanitize(s),
        Value::Datetime(d) => sanitize(&d.to_string()),
        Value::Array(items) => items.iter().map(name_value).collect::<Vec<_>>().join("x"),
        Value::Table(t) => t
            .iter()
            .map(|(k, v)| format!("{}-{}", sanitize(k), name_value(v)))
            .collect::<Vec<_>>()
            .join("_"),
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What a user named on the command line: an experiment file, or an experiment directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExperimentRef {
    File(PathBuf),
    Dir(PathBuf),
}

/// Resolves `given`: an experiment file, an experiment directory (holding `experiment.toml`),
/// or a bare name looked up as `experiments/<name>.toml`, then `<runs_root>/<name>/`.
pub fn resolve_experiment(given: &Path, runs_root: &Path) -> Result<ExperimentRef, SweepError> {
    if given.is_file() {
        return Ok(ExperimentRef::File(given.to_path_buf()));
    }
    if given.is_dir() {
        return Ok(ExperimentRef::Dir(given.to_path_buf()));
    }
    let mut tried = vec![given.display().to_string()];
    let bare = given.components().count() == 1 && given.extension().is_none();
    if bare {
        let file = Path::new("experiments").join(given).with_extension("toml");
        if file.is_file() {
            return Ok(ExperimentRef::File(file));
        }
        tried.push(file.display().to_string());
        let dir = runs_root.join(given);
        if dir.is_dir() {
            return Ok(ExperimentRef::Dir(dir));
        }
        tried.push(dir.display().to_string());
    }
    Err(SweepError::NotFound {
        given: given.display().to_string(),
        tried: tried.join(", "),
    })
}

impl ExperimentRef {
    /// Loads the experiment: the file itself, or the copy in the directory.
    pub fn load(&self) -> Result<Experiment, SweepError> {
        match self {
            ExperimentRef::File(path) => Experiment::load(path),
            ExperimentRef::Dir(dir) => Experiment::load(&ExperimentDir::new(dir).experiment_file()),
        }
    }

    /// Where this experiment's directory lives: `runs_root` for a file, the parent of the
    /// directory else (so `sweep run /elsewhere/exp` keeps working in `/elsewhere`).
    pub fn runs_root(&self, runs_root: &Path) -> PathBuf {
        match self {
            ExperimentRef::File(_) => runs_root.to_path_buf(),
            ExperimentRef::Dir(dir) => dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        }
    }

    /// The experiment directory: `<runs_root>/<name>` for a file, the directory itself else.
    pub fn dir(&self, runs_root: &Path) -> Result<ExperimentDir, SweepError> {
        match self {
            ExperimentRef::File(_) => Ok(self.load()?.dir(runs_root)),
            ExperimentRef::Dir(dir) => Ok(ExperimentDir::new(dir)),
        }
    }
}
