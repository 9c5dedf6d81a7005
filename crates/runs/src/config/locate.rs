//! Byte spans to lines and dotted keys, and dotted keys back to lines.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// 1-based line number of a byte offset.
pub fn line_of(source: &str, offset: usize) -> usize {
    let offset = offset.min(source.len());
    source.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key whose key or value span contains `span`, deepest first. An empty span at
/// the start is the whole document's (serde blames the root table for a missing top-level
/// table there): no key is at fault, least of all the first one written.
pub fn key_at(source: &str, span: Range<usize>) -> Option<String> {
    if span.is_empty() && span.start == 0 {
        return None;
    }
    let doc = DeTable::parse(source).ok()?;
    let mut path = Vec::new();
    descend_table(doc.get_ref(), &span, &mut path);
    (!path.is_empty()).then(|| path.join("."))
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

fn descend_table(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<String>) {
    for (key, value) in table.iter() {
        let key_span = key.span();
        let hit_key = contains(&key_span, span);
        let hit_value = contains(&value.span(), span);
        if hit_key || hit_value {
            path.push(key.get_ref().to_string());
            if hit_value && !hit_key {
                descend_value(value, span, path);
            }
            return;
        }
    }
    // Tables declared with a `[header]` have a span covering only the header; their keys live
    // further down. Search children whose own spans do not cover the error.
    for (key, value) in table.iter() {
        let before = path.len();
        path.push(key.get_ref().to_string());
        descend_value(value, span, path);
        if path.len() > before + 1 {
            return;
        }
        path.truncate(before);
    }
}

fn descend_value(value: &Spanned<DeValue<'_>>, span: &Range<usize>, path: &mut Vec<String>) {
    match value.get_ref() {
        DeValue::Table(table) => descend_table(table, span, path),
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                if contains(&item.span(), span) {
                    if let Some(last) = path.last_mut() {
                        last.push_str(&format!("[{index}]"));
                    }
                    descend_value(item, span, path);
                    return;
                }
            }
        }
        _ => {}
    }
}

/// 1-based line where a dotted key is written; falls back to the nearest written parent
/// table (an impossible default is reported at its section).
pub fn line_of_key(source: &str, dotted: &str) -> Option<usize> {
    let doc = DeTable::parse(source).ok()?;
    let mut table = doc.get_ref();
    let mut best = None;
    for segment in dotted.split('.') {
        let name = segment.split('[').next().unwrap_or(segment);
        let (key, value) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name)?;
        let span = if key.span().start < key.span().end {
            key.span()
        } else {
            value.span()
        };
        if span.start < span.end {
            best = Some(line_of(source, span.start));
        }
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => return best,
        }
    }
    best
}
