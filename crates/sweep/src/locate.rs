//! Lines of things written in the experiment file, found by walking toml's spanned document.
//! Needed because the sweep reports errors about values that only exist after expansion (a
//! grid point's resolved config) and must point back at the axis value or point that made it.

use forgetlab_runs::config::line_of;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a path into a TOML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A table key, exactly as parsed (a quoted `"model.d_state"` is one key).
    Key(String),
    /// An array element.
    Index(usize),
}

impl Seg {
    pub fn key(k: impl Into<String>) -> Self {
        Seg::Key(k.into())
    }
}

/// Byte offset where the element at `path` is written: a key's own span for keys, the item's
/// span for array elements. `None` when the path is not in the source.
pub fn offset_of(source: &str, path: &[Seg]) -> Option<usize> {
    let doc = DeTable::parse(source).ok()?;
    let mut current: Option<&Spanned<DeValue<'_>>> = None;
    let mut table = doc.get_ref();
    let mut offset = None;
    for seg in path {
        match seg {
            Seg::Key(name) => {
                if let Some(value) = current {
                    match value.get_ref() {
                        DeValue::Table(t) => table = t,
                        _ => return None,
                    }
                }
                let (key, value) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name)?;
                let span = if key.span().start < key.span().end {
                    key.span()
                } else {
                    value.span()
                };
                offset = Some(span.start);
                current = Some(value);
            }
            Seg::Index(index) => {
                let DeValue::Array(items) = current?.get_ref() else {
                    return None;
                };
                let item = items.get(*index)?;
                // An array-of-tables item may have an empty span; use its first key instead.
                let span = item.span();
                offset = if span.start < span.end {
                    Some(span.start)
                } else {
                    match item.get_ref() {
                        DeValue::Table(t) => t.iter().map(|(k, _)| k.span().start).min(),
                        _ => None,
                    }
                };
                current = Some(item);
            }
        }
    }
    offset
}

/// 1-based line of the element at `path`.
pub fn line_at(source: &str, path: &[Seg]) -> Option<usize> {
    offset_of(source, path).map(|o| line_of(source, o))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"[experiment]
name = "x"

[sweep]
"model.d_state" = [8, 16]
"train.seq_len" = [
  64,
  128,
]
model.n_layer = [1]

[[sweep.points]]
seed = 1

[[sweep.points]]
seed = 2
"#;

    #[test]
    fn finds_quoted_and_nested_keys_and_items() {
        let k = |s: &str| Seg::key(s);
        assert_eq!(line_at(SRC, &[k("sweep"), k("model.d_state")]), Some(5));
        assert_eq!(
            line_at(SRC, &[k("sweep"), k("train.seq_len"), Seg::Index(1)]),
            Some(8)
        );
        assert_eq!(
            line_at(SRC, &[k("sweep"), k("model"), k("n_layer")]),
            Some(10)
        );
        assert_eq!(
            line_at(SRC, &[k("sweep"), k("points"), Seg::Index(1), k("seed")]),
            Some(16)
        );
        assert_eq!(line_at(SRC, &[k("sweep"), k("nope")]), None);
    }
}
