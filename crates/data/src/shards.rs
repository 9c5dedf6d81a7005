//! Reading documents out of dataset shards, one record at a time, never a whole shard in
//! memory.
//!
//! | format | files | text | source label |
//! |---|---|---|---|
//! | SlimPajama / RedPajama-1T | `*.jsonl`, `*.jsonl.zst` (multi-frame) | `text` | `meta.redpajama_set_name` (or top level) |
//! | RedPajama-V2 documents | `*.json.gz` | `raw_content` | – |
//! | SlimPajama-6B | `*.parquet` (Utf8/LargeUtf8, snappy/zstd) | column `text` | `meta.redpajama_set_name` |
//! | plain text | `*.txt` | the whole file | – |
//!
//! A malformed record stops reading with an error naming the file and line (or row); with
//! `skip_bad` it is counted by reason instead, and nothing is dropped silently.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use arrow_array::{Array, LargeStringArray, StringArray, StructArray};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use serde_json::Value;

use crate::error::DataError;

/// One document.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub text: String,
    /// `redpajama_set_name` when the shard has one.
    pub source: Option<String>,
}

/// Shard formats, by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Jsonl,
    JsonlZst,
    JsonGz,
    Parquet,
    Txt,
}

/// The format of a shard file from its name, or `None` for other files.
pub fn format_of(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name.ends_with(".jsonl.zst") || name.ends_with(".json.zst") {
        Some(Format::JsonlZst)
    } else if name.ends_with(".jsonl") {
        Some(Format::Jsonl)
    } else if name.ends_with(".json.gz") || name.ends_with(".jsonl.gz") {
        Some(Format::JsonGz)
    } else if name.ends_with(".parquet") {
        Some(Format::Parquet)
    } else if name.ends_with(".txt") {
        Some(Format::Txt)
    } else {
        None
    }
}

/// Files named by `patterns`: files, directories (searched recursively for shard files) or glob
/// patterns; sorted and de-duplicated. A pattern that matches nothing is an error.
pub fn resolve_shards(patterns: &[String]) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for pattern in patterns {
        let path = Path::new(pattern);
        let before = out.len();
        if path.is_file() {
            out.push(path.to_path_buf());
        } else if path.is_dir() {
            collect_dir(path, &mut out)?;
        } else {
            let entries = glob::glob(pattern)
                .map_err(|e| DataError::Invalid(format!("bad glob {pattern:?}: {e}")))?;
            for entry in entries {
                let p = entry.map_err(|e| DataError::Io {
                    path: e.path().to_path_buf(),
                    error: std::io::Error::other(e.to_string()),
                })?;
                if p.is_file() && format_of(&p).is_some() {
                    out.push(p);
                }
            }
        }
        if out.len() == before {
            return Err(DataError::NoShards {
                pattern: pattern.clone(),
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(DataError::io(dir))?
        .collect::<Result<_, _>>()
        .map_err(DataError::io(dir))?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let p = entry.path();
        if p.is_dir() {
            collect_dir(&p, out)?;
        } else if format_of(&p).is_some() {
            out.push(p);
        }
    }
    Ok(())
}

/// Skipped records by reason.
pub type SkipCounts = BTreeMap<String, u64>;

/// Reads every record of `path`, calling `on_record` for each.
pub fn read_shard(
    path: &Path,
    skip_bad: bool,
    skipped: &mut SkipCounts,
    mut on_record: impl FnMut(Record) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let format = format_of(path).ok_or_else(|| DataError::BadShard {
        path: path.to_path_buf(),
        reason: "not a shard file (expected .jsonl, .jsonl.zst, .json.gz, .parquet or .txt)".into(),
    })?;
    let mut count = 0u64;
    let mut counted = |r: Record| {
        count += 1;
        on_record(r)
    };
    // Whether a broken stream was already reported (then it is not also "empty").
    let broken = match format {
        Format::Jsonl => {
            let file = File::open(path).map_err(DataError::io(path))?;
            read_json_lines(path, BufReader::new(file), skip_bad, skipped, &mut counted)?
        }
        Format::JsonlZst => {
            let file = File::open(path).map_err(DataError::io(path))?;
            let decoder = zstd::stream::read::Decoder::new(file).map_err(DataError::io(path))?;
            read_json_lines(
                path,
                BufReader::new(decoder),
                skip_bad,
                skipped,
                &mut counted,
            )?
        }
        Format::JsonGz => {
            let file = File::open(path).map_err(DataError::io(path))?;
            let decoder = flate2::read::MultiGzDecoder::new(file);
            read_json_lines(
                path,
                BufReader::new(decoder),
                skip_bad,
                skipped,
                &mut counted,
            )?
        }
        Format::Parquet => match read_parquet(path, skip_bad, skipped, &mut counted) {
            Ok(broken) => broken,
            // A file that cannot be read as parquet at all is one bad shard, skipped like a
            // corrupt compressed stream; errors of the callback are not the file's fault.
            Err(ParquetFailure::Unreadable(reason)) => {
                skip_or_fail(
                    path,
                    "file",
                    "unreadable parquet",
                    &reason,
                    skip_bad,
                    skipped,
                )?;
                true
            }
            Err(ParquetFailure::Corrupt { row, reason }) => {
                skip_or_fail(
                    path,
                    &format!("after row {row}"),
                    "corrupt parquet",
                    &reason,
                    skip_bad,
                    skipped,
                )?;
                true
            }
            Err(ParquetFailure::Data(e)) => return Err(e),
        },
        Format::Txt => {
            let bytes = std::fs::read(path).map_err(DataError::io(path))?;
            match String::from_utf8(bytes) {
                Ok(text) if !text.trim().is_empty() => counted(Record { text, source: None })?,
                Ok(_) => {}
                Err(e) => skip_or_fail(
                    path,
                    "file",
                    "invalid UTF-8",
                    &e.to_string(),
                    skip_bad,
                    skipped,
                )?,
            }
            false
        }
    };
    if count == 0 && format != Format::Txt && !broken {
        skip_or_fail(path, "file", "empty shard", "no records", skip_bad, skipped)?;
    }
    Ok(())
}

fn skip_or_fail(
    path: &Path,
    at: &str,
    reason: &str,
    detail: &str,
    skip_bad: bool,
    skipped: &mut SkipCounts,
) -> Result<(), DataError> {
    if skip_bad {
        *skipped.entry(reason.to_string()).or_default() += 1;
        tracing::debug!("{}: {at}: skipped ({reason}: {detail})", path.display());
        Ok(())
    } else {
        Err(DataError::BadRecord {
            path: path.to_path_buf(),
            at: at.to_string(),
            reason: format!(
                "{reason}: {detail} (use --skip-bad / data.skip_bad to skip such records)"
            ),
        })
    }
}

fn read_json_lines(
    path: &Path,
    mut reader: impl BufRead,
    skip_bad: bool,
    skipped: &mut SkipCounts,
    on_record: &mut impl FnMut(Record) -> Result<(), DataError>,
) -> Result<bool, DataError> {
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let read = reader.read_until(b'\n', &mut buf);
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                // A truncated or corrupt compressed stream ends here; earlier records were read.
                let at = format!("after line {line_no}");
                skip_or_fail(
                    path,
                    &at,
                    "corrupt stream",
                    &e.to_string(),
                    skip_bad,
                    skipped,
                )?;
                return Ok(true);
            }
        };
        if n == 0 {
            return Ok(false);
        }
        line_no += 1;
        let at = format!("line {line_no}");
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim_end_matches(['\n', '\r']),
            Err(e) => {
                skip_or_fail(
                    path,
                    &at,
                    "invalid UTF-8",
                    &e.to_string(),
                    skip_bad,
                    skipped,
                )?;
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        match parse_json_record(text) {
            Ok(record) => on_record(record)?,
            Err((reason, detail)) => {
                // A final line cut short by a truncated compressed stream is the stream's fault.
                if !buf.ends_with(b"\n") {
                    let mut probe = Vec::new();
                    if let Err(e) = reader.read_until(b'\n', &mut probe) {
                        let at = format!("after line {}", line_no - 1);
                        skip_or_fail(
                            path,
                            &at,
                            "corrupt stream",
                            &e.to_string(),
                            skip_bad,
                            skipped,
                        )?;
                        return Ok(true);
                    }
                }
                skip_or_fail(path, &at, reason, &detail, skip_bad, skipped)?
            }
        }
    }
}

/// A JSON line as a record: `text` (or RedPajama-V2's `raw_content`) and the set name from
/// `meta` or, for RedPajama-1T Common Crawl rows, the top level.
fn parse_json_record(line: &str) -> Result<Record, (&'static str, String)> {
    let value: Value = serde_json::from_str(line).map_err(|e| ("invalid JSON", e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or(("invalid JSON", "not an object".to_string()))?;
    let text = match obj.get("text").or_else(|| obj.get("raw_content")) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err((
                "missing text",
                format!("`text` is not a string: {}", short(other)),
            ));
        }
        None => {
            return Err((
                "missing text",
                "no `text` or `raw_content` field".to_string(),
            ));
        }
    };
    let source = obj
        .get("meta")
        .and_then(|m| m.get("redpajama_set_name"))
        .or_else(|| obj.get("redpajama_set_name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Record { text, source })
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        format!("{}...", &s[..40])
    } else {
        s
    }
}

/// Why reading a parquet shard stopped.
enum ParquetFailure {
    /// Not readable as parquet (footer, schema, no string `text` column).
    Unreadable(String),
    /// A row group failed to decode after `row` rows were read.
    Corrupt { row: u64, reason: String },
    /// A bad row without `skip_bad`, or the record callback failed.
    Data(DataError),
}

/// Reads the records of a parquet shard; a row without text is skipped or fails as
/// `skip_bad` says, a file that cannot be read is left to the caller.
fn read_parquet(
    path: &Path,
    skip_bad: bool,
    skipped: &mut SkipCounts,
    on_record: &mut impl FnMut(Record) -> Result<(), DataError>,
) -> Result<bool, ParquetFailure> {
    let unreadable = |e: &dyn std::fmt::Display| ParquetFailure::Unreadable(e.to_string());
    let file = forgetlab_runs::open_regular(path)
        .map_err(|e| ParquetFailure::Data(DataError::io(path)(e)))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| unreadable(&e))?;
    let schema = builder.parquet_schema();
    let root_fields: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let wanted: Vec<usize> = root_fields
        .iter()
        .enumerate()
        .filter(|(_, n)| *n == "text" || *n == "meta" || *n == "raw_content")
        .map(|(i, _)| i)
        .collect();
    if !root_fields
        .iter()
        .any(|n| n == "text" || n == "raw_content")
    {
        return Err(ParquetFailure::Unreadable(format!(
            "no `text` column (columns: {})",
            root_fields.join(", ")
        )));
    }
    let mask = ProjectionMask::roots(schema, wanted);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| unreadable(&e))?;
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| ParquetFailure::Corrupt {
            row,
            reason: e.to_string(),
        })?;
        let text_col = batch
            .column_by_name("text")
            .or_else(|| batch.column_by_name("raw_content"))
            .ok_or_else(|| ParquetFailure::Unreadable("no text column".into()))?;
        let meta = batch
            .column_by_name("meta")
            .and_then(|m| m.as_any().downcast_ref::<StructArray>())
            .and_then(|s| s.column_by_name("redpajama_set_name").cloned());
        let source_at = |i: usize| -> Option<String> {
            let col = meta.as_ref()?;
            if col.is_null(i) {
                return None;
            }
            col.as_any()
                .downcast_ref::<StringArray>()
                .map(|a| a.value(i).to_string())
                .or_else(|| {
                    col.as_any()
                        .downcast_ref::<LargeStringArray>()
                        .map(|a| a.value(i).to_string())
                })
        };
        let strings = text_col.as_any().downcast_ref::<StringArray>();
        let large = text_col.as_any().downcast_ref::<LargeStringArray>();
        if strings.is_none() && large.is_none() {
            return Err(ParquetFailure::Unreadable(format!(
                "column `text` has type {}, expected a string",
                text_col.data_type()
            )));
        }
        for i in 0..batch.num_rows() {
            row += 1;
            if text_col.is_null(i) {
                skip_or_fail(
                    path,
                    &format!("row {row}"),
                    "missing text",
                    "null text",
                    skip_bad,
                    skipped,
                )
                .map_err(ParquetFailure::Data)?;
                continue;
            }
            let text = match (strings, large) {
                (Some(a), _) => a.value(i),
                (_, Some(a)) => a.value(i),
                _ => unreachable!("checked above"),
            };
            on_record(Record {
                text: text.to_string(),
                source: source_at(i),
            })
            .map_err(ParquetFailure::Data)?;
        }
    }
    Ok(false)
}

/// Reads a whole small file into memory (used for tokenizer training inputs).
pub fn read_to_string(path: &Path) -> Result<String, DataError> {
    let mut s = String::new();
    File::open(path)
        .map_err(DataError::io(path))?
        .read_to_string(&mut s)
        .map_err(DataError::io(path))?;
    Ok(s)
}
