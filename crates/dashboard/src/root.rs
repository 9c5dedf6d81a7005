//! The runs root and the only ways to get from a request to a path on disk.
//!
//! The dashboard serves a directory tree that other people's jobs write into, possibly on a
//! shared machine, so every name that arrives in a URL is checked here before it touches the
//! file system: it must be one plain path component (no `..`, no separators, no hidden names,
//! whatever encoding it arrived in), and the path it names, after following symlinks, must still
//! lie inside the runs root. A run directory or result file that is a link out of the root is
//! shown as broken and never read.

use std::path::{Component, Path, PathBuf};

use std::sync::Arc;

use forgetlab_runs::{ExperimentDir, RunDir};

use crate::cache::Cache;

/// Why a request does not name something the dashboard will read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not a plain file name (empty, `.`, `..`, separators, hidden, control characters).
    #[error("invalid name {0:?}")]
    BadName(String),
    /// Nothing of that name.
    #[error("{0} not found")]
    NotFound(String),
    /// A link leading outside the runs root.
    #[error("{0} links outside the runs root; not served")]
    Escapes(String),
    /// Something other than a regular file (a FIFO, a device): never opened.
    #[error("{0} is not a regular file; not read")]
    NotRegular(String),
}

/// Subdirectories of an experiment that are not runs.
const NOT_RUNS: [&str; 3] = ["report", "slurm", "tb"];

/// The canonical runs root.
#[derive(Debug, Clone)]
pub struct RunsRoot {
    root: PathBuf,
    /// Follow links out of the root (the local report reads a researcher's own files, which
    /// may link to scratch storage; the server never does).
    trust_links: bool,
    cache: Arc<Cache>,
}

/// Whether `name` is a single, plain, visible path component.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c == ':' || c.is_control())
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

impl RunsRoot {
    /// Opens `path` as the runs root; it must be an existing directory.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let root = path.canonicalize()?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", path.display()),
            ));
        }
        Ok(Self {
            root,
            trust_links: false,
            cache: Arc::default(),
        })
    }

    /// Like [`RunsRoot::open`], but links out of the root are followed (for local reports).
    pub fn open_trusting_links(path: &Path) -> std::io::Result<Self> {
        let mut root = Self::open(path)?;
        root.trust_links = true;
        Ok(root)
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Parsed files shared by every reader of this root.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Whether `path` (following links) lies inside the root. A path that does not exist is
    /// inside when its parent is (nothing would be read anyway).
    pub fn contains(&self, path: &Path) -> bool {
        if self.trust_links {
            return true;
        }
        match path.canonicalize() {
            Ok(real) => real.starts_with(&self.root),
            Err(_) => {
                // Nothing there (yet): inside when its closest existing ancestor is. Anything
                // that exists but cannot be resolved (a dangling link) is not followed.
                if std::fs::symlink_metadata(path).is_ok() {
                    return false;
                }
                let mut ancestor = path.parent();
                while let Some(dir) = ancestor {
                    if let Ok(real) = dir.canonicalize() {
                        return real.starts_with(&self.root);
                    }
                    if std::fs::symlink_metadata(dir).is_ok() {
                        return false;
                    }
                    ancestor = dir.parent();
                }
                false
            }
        }
    }

    /// Checks that `path` does not lead outside the root; `what` names it in the error.
    pub fn guard(&self, path: &Path, what: &str) -> Result<(), Rejection> {
        if self.contains(path) {
            Ok(())
        } else {
            Err(Rejection::Escapes(what.to_string()))
        }
    }

    /// The root itself, when it is an experiment directory rather than a directory of them.
    fn root_experiment(&self) -> Option<ExperimentDir> {
        looks_like_experiment(&self.root).then(|| ExperimentDir::new(&self.root))
    }

    /// Every experiment, sorted by name: subdirectories holding an `experiment.toml`, a
    /// `law.json` or runs; or the root itself when it holds runs directly.
    pub fn experiments(&self) -> Vec<ExperimentDir> {
        let mut found: Vec<ExperimentDir> = child_dirs(&self.root)
            .into_iter()
            .filter(|(_, path)| self.contains(path) && looks_like_experiment(path))
            .map(|(_, path)| ExperimentDir::new(path))
            .collect();
        if found.is_empty()
            && let Some(root) = self.root_experiment()
        {
            found.push(root);
        }
        found.sort_by_key(ExperimentDir::name);
        found
    }

    /// The experiment called `name`.
    pub fn experiment(&self, name: &str) -> Result<ExperimentDir, Rejection> {
        if !is_plain_name(name) {
            return Err(Rejection::BadName(name.to_string()));
        }
        let candidate = self.root.join(name);
        if candidate.is_dir() {
            self.guard(&candidate, name)?;
            if looks_like_experiment(&candidate) {
                return Ok(ExperimentDir::new(candidate));
            }
        } else if let Some(root) = self.root_experiment()
            && root.name() == name
            && self
                .experiments()
                .first()
                .is_some_and(|e| e.root() == self.root)
        {
            return Ok(root);
        }
        Err(Rejection::NotFound(format!("experiment {name:?}")))
    }

    /// Every run directory of `experiment`, sorted by name, including half-written ones (a
    /// directory with any run file) and links out of the root (listed so they can be shown
    /// as broken, never read).
    pub fn runs(&self, experiment: &ExperimentDir) -> Vec<RunEntry> {
        let mut runs: Vec<RunEntry> = child_dirs(experiment.root())
            .into_iter()
            .filter(|(name, _)| !NOT_RUNS.contains(&name.as_str()))
            .filter_map(|(name, path)| {
                if !self.contains(&path) {
                    return Some(RunEntry {
                        dir: RunDir::new(path),
                        escapes: true,
                        name,
                    });
                }
                looks_like_run(&path).then(|| RunEntry {
                    dir: RunDir::new(path),
                    escapes: false,
                    name,
                })
            })
            .collect();
        runs.sort_by(|a, b| a.name.cmp(&b.name));
        runs
    }

    /// The run `name` of `experiment`.
    pub fn run(&self, experiment: &ExperimentDir, name: &str) -> Result<RunEntry, Rejection> {
        if !is_plain_name(name) {
            return Err(Rejection::BadName(name.to_string()));
        }
        let path = experiment.root().join(name);
        if !path.is_dir() || NOT_RUNS.contains(&name) {
            return Err(Rejection::NotFound(format!("run {name:?}")));
        }
        if !self.contains(&path) {
            return Err(Rejection::Escapes(format!("run {name:?}")));
        }
        if !looks_like_run(&path) {
            return Err(Rejection::NotFound(format!("run {name:?}")));
        }
        Ok(RunEntry {
            dir: RunDir::new(path),
            escapes: false,
            name: name.to_string(),
        })
    }

    /// A regular file at `relative` (slash-separated) under `experiment`, checked component by
    /// component and after following links.
    pub fn file(&self, experiment: &ExperimentDir, relative: &str) -> Result<PathBuf, Rejection> {
        let mut path = experiment.root().to_path_buf();
        let mut parts = 0;
        for part in relative.split('/') {
            if !is_plain_name(part) {
                return Err(Rejection::BadName(relative.to_string()));
            }
            path.push(part);
            parts += 1;
        }
        if parts == 0 {
            return Err(Rejection::BadName(relative.to_string()));
        }
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(Rejection::NotFound(relative.to_string()));
        }
        self.guard(&path, relative)?;
        if path.is_dir() {
            return Err(Rejection::NotFound(relative.to_string()));
        }
        if !path.is_file() {
            return Err(Rejection::NotRegular(relative.to_string()));
        }
        Ok(path)
    }
}

/// A run directory as listed.
#[derive(Debug, Clone)]
pub struct RunEntry {
    pub name: String,
    pub dir: RunDir,
    /// The directory is a link out of the runs root: listed, never read.
    pub escapes: bool,
}

/// Visible subdirectories (or links to directories) of `dir`, as (name, path).
fn child_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let path = entry.path();
            (is_plain_name(&name) && path.is_dir()).then_some((name, path))
        })
        .collect()
}

/// A directory with any of the files a run writes.
fn looks_like_run(dir: &Path) -> bool {
    ["config.toml", "status.json", "metrics.jsonl", "eval"]
        .iter()
        .any(|f| std::fs::symlink_metadata(dir.join(f)).is_ok())
}

fn looks_like_experiment(dir: &Path) -> bool {
    dir.join("experiment.toml").is_file()
        || dir.join("law.json").is_file()
        || child_dirs(dir)
            .iter()
            .any(|(name, p)| !NOT_RUNS.contains(&name.as_str()) && looks_like_run(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_only() {
        for good in ["quickstart", "d_state-8_len-128_seed-0", "a.b", "x..y"] {
            assert!(is_plain_name(good), "{good}");
        }
        for bad in [
            "", ".", "..", "../x", "a/b", "a\\b", ".hidden", "/etc", "a\0b", "c:", "a\nb",
        ] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn resolution_stays_inside_and_rejects_links_out() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.json"), "{}").unwrap();
        std::fs::create_dir_all(outside.path().join("run")).unwrap();
        std::fs::write(outside.path().join("run/config.toml"), "").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let exp = dir.path().join("exp");
        std::fs::create_dir_all(exp.join("r1")).unwrap();
        std::fs::write(exp.join("r1/status.json"), "{}").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.json"), exp.join("r1/leak.json"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path().join("run"), exp.join("r2")).unwrap();
        let root = RunsRoot::open(dir.path()).unwrap();
        let e = root.experiment("exp").unwrap();
        assert_eq!(
            root.experiment("..").unwrap_err(),
            Rejection::BadName("..".into())
        );
        let runs = root.runs(&e);
        let names: Vec<(&str, bool)> = runs.iter().map(|r| (r.name.as_str(), r.escapes)).collect();
        assert_eq!(names, [("r1", false), ("r2", true)]);
        assert!(matches!(root.run(&e, "r2"), Err(Rejection::Escapes(_))));
        assert!(root.file(&e, "r1/status.json").is_ok());
        assert!(matches!(
            root.file(&e, "r1/leak.json"),
            Err(Rejection::Escapes(_))
        ));
        assert!(matches!(
            root.file(&e, "r1/../r1/status.json"),
            Err(Rejection::BadName(_))
        ));
        assert!(matches!(
            root.file(&e, "r1/missing"),
            Err(Rejection::NotFound(_))
        ));
        // Files not written yet are inside (nothing to follow), also in missing directories.
        assert!(root.contains(&exp.join("r1/eval/verdict.json")));
        std::os::unix::fs::symlink(outside.path().join("gone"), exp.join("r1/dangling")).unwrap();
        assert!(!root.contains(&exp.join("r1/dangling")));
        assert!(!root.contains(&exp.join("r1/dangling/x.json")));
    }

    #[test]
    fn a_root_holding_runs_is_its_own_experiment() {
        let dir = tempfile::tempdir().unwrap();
        let exp = dir.path().join("quickstart");
        std::fs::create_dir_all(exp.join("run-a")).unwrap();
        std::fs::write(exp.join("run-a/config.toml"), "").unwrap();
        let root = RunsRoot::open(&exp).unwrap();
        let all = root.experiments();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name(), "quickstart");
        assert_eq!(root.experiment("quickstart").unwrap().root(), root.path());
        assert!(root.run(&all[0], "run-a").is_ok());
    }
}
