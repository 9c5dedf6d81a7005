//! Which keys of a run config changed, by experiment.
//!
//! A run resumed under an edited config would otherwise fail deep inside weight loading with a
//! list of tensor shapes, or worse, continue as a different experiment. Naming the dotted keys
//! that changed (`model.d_state 8 -> 16`) tells the researcher what to restore. Execution
//! settings (device, threads, workers) are not part of the experiment and never count.

use std::fmt;

use super::run::RunConfig;

/// One key whose value differs between two run configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    /// Dotted key, e.g. `model.d_state`.
    pub key: String,
    /// The value before, as TOML (`None` when unset).
    pub before: Option<String>,
    /// The value after, as TOML (`None` when unset).
    pub after: Option<String>,
}

impl fmt::Display for ConfigChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".to_string());
        write!(
            f,
            "{} {} -> {}",
            self.key,
            show(&self.before),
            show(&self.after)
        )
    }
}

impl RunConfig {
    /// Every key of the experiment whose value differs from `self` to `after`, sorted by key;
    /// empty exactly when [`RunConfig::same_experiment`] holds.
    pub fn experiment_changes(&self, after: &RunConfig) -> Vec<ConfigChange> {
        let flat = |c: &RunConfig| {
            let value = toml::Value::try_from(c.experiment_only())
                .expect("a RunConfig always converts to a TOML value");
            let mut out = std::collections::BTreeMap::new();
            flatten("", &value, &mut out);
            out
        };
        let (before, after) = (flat(self), flat(after));
        let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        keys.into_iter()
            .filter(|k| before.get(*k) != after.get(*k))
            .map(|k| ConfigChange {
                key: k.clone(),
                before: before.get(k).cloned(),
                after: after.get(k).cloned(),
            })
            .collect()
    }
}

/// Leaves of a TOML value by dotted key; arrays are leaves.
fn flatten(
    prefix: &str,
    value: &toml::Value,
    out: &mut std::collections::BTreeMap<String, String>,
) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::RunConfig;

    const RUN: &str = r#"
seed = 3

[model]
d_model = 32
n_layer = 2
d_state = 8
headdim = 16
vocab_size = 4096

[data]
train = ["a/*.jsonl"]
tokenizer = "tok.json"

[train]
seq_len = 64
tokens_per_step = 1024
total_tokens = 102400
"#;

    #[test]
    fn edited_keys_are_named_with_both_values() {
        let base = RunConfig::from_toml_str(RUN).unwrap();
        let edited = RunConfig::from_toml_str(
            &RUN.replace("d_state = 8", "d_state = 16")
                .replace("seq_len = 64", "seq_len = 128"),
        )
        .unwrap();
        let changes = base.experiment_changes(&edited);
        let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec!["model.d_state 8 -> 16", "train.seq_len 64 -> 128"]
        );
        assert!(!base.same_experiment(&edited));
    }

    #[test]
    fn execution_settings_are_not_changes() {
        let base = RunConfig::from_toml_str(RUN).unwrap();
        let mut moved = base.clone();
        moved.train.device = "cpu,cpu".to_string();
        moved.train.threads = Some(3);
        moved.train.workers = Some(2);
        assert!(base.experiment_changes(&moved).is_empty());
        assert!(base.same_experiment(&moved));
    }

    #[test]
    fn a_key_set_on_one_side_only_shows_as_unset() {
        let base = RunConfig::from_toml_str(RUN).unwrap();
        let mut other = base.clone();
        other.data.cache_dir = Some("cache".into());
        let changes = base.experiment_changes(&other);
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0].to_string(),
            "data.cache_dir (unset) -> \"cache\""
        );
    }
}
