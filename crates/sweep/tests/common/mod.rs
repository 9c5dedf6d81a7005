//! Shared test fixtures: a temporary workspace with a fake `forgetlab` executable (a shell
//! script obeying the sweep's process contract, steered by control files) and experiment files.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use forgetlab_sweep::LocalOptions;

/// The fake forgetlab script; `__CONTROL__` and `__DRIVER__` are filled in by [`Fixture`].
pub const FAKE: &str = include_str!("fake-forgetlab.sh");

/// A base run config for tiny runs of 5 steps (fake trainer: one step per 64 tokens).
pub const BASE: &str = r#"[base]
seed = 0

[base.model]
d_model = 16
n_layer = 1
d_state = 4
headdim = 8
vocab_size = 64

[base.data]
train = ["data/none/*.jsonl"]
tokenizer = "data/none/tok.json"

[base.train]
seq_len = 16
tokens_per_step = 64
total_tokens = 320
"#;

/// An experiment `tiny` with 4 runs: d_state 4, 8 x seq_len 16, 32.
pub fn tiny_experiment() -> String {
    format!(
        "[experiment]\nname = \"tiny\"\n\n{BASE}\n[sweep]\n\"model.d_state\" = [4, 8]\n\"train.seq_len\" = [16, 32]\n"
    )
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub fake: PathBuf,
    pub control: PathBuf,
    pub runs: PathBuf,
    pub experiment: PathBuf,
}

impl Fixture {
    /// A workspace with `experiment` written to `exp.toml` and the fake executable installed.
    /// `driver` is what the fake runs for `forgetlab sweep ...` (Slurm tests).
    pub fn new(experiment: &str, driver: Option<&Path>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fl-sweep-")
            .tempdir_in(std::env::temp_dir())
            .unwrap();
        let control = dir.path().join("control");
        std::fs::create_dir_all(&control).unwrap();
        let fake = dir.path().join("bin").join("forgetlab");
        std::fs::create_dir_all(fake.parent().unwrap()).unwrap();
        let script = FAKE.replace("__CONTROL__", &shell_quote(&control)).replace(
            "__DRIVER__",
            &shell_quote(driver.unwrap_or(Path::new("/nonexistent"))),
        );
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("exp.toml");
        std::fs::write(&path, experiment).unwrap();
        Fixture {
            runs: dir.path().join("runs"),
            experiment: path,
            fake,
            control,
            dir,
        }
    }

    pub fn options(&self) -> LocalOptions {
        let mut o = LocalOptions::new(&self.fake);
        o.runs_root = self.runs.clone();
        o.threads = Some(2);
        o.progress = false;
        o
    }

    pub fn set(&self, name: &str, content: &str) {
        std::fs::write(self.control.join(name), content).unwrap();
    }

    pub fn unset(&self, name: &str) {
        std::fs::remove_file(self.control.join(name)).unwrap();
    }

    /// Lines of the fake's call log.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.control.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Calls whose first two words are `what name`.
    pub fn calls_of(&self, what: &str, run: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(what) && w.next() == Some(run)
            })
            .collect()
    }

    pub fn run_dir(&self, experiment: &str, run: &str) -> PathBuf {
        self.runs.join(experiment).join(run)
    }
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
