//! The data path on shards written at test time in every supported format: readers, filters,
//! packing, seeded order, exact resume, the token cache, held-out text, bad input, synthetic
//! tasks and the passkey prompt. Plus the fetched corpus's statistics when it is present.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, LargeStringArray, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use forgetlab_data::shards::{SkipCounts, read_shard, resolve_shards};
use forgetlab_data::{
    DataError, Tokenizer, TrainStream, bindings_stream, heldout_stream, passkey, synthetic_prompt,
    train_bpe,
};
use forgetlab_runs::config::{
    DataConfig, Packing, SyntheticConfig, SyntheticPrompt, SyntheticTask,
};

const WORDS: [&str; 24] = [
    "the", "river", "stone", "market", "quiet", "green", "lamp", "over", "under", "morning", "cat",
    "sleeps", "runs", "bright", "north", "south", "window", "garden", "paper", "letter", "seven",
    "eleven", "blue", "orange",
];

/// A deterministic document of `words` words.
fn document(seed: usize, words: usize) -> String {
    let mut s = String::new();
    let mut x = seed as u64 * 2654435761 + 1;
    for i in 0..words {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s.push_str(WORDS[(x >> 33) as usize % WORDS.len()]);
        s.push(if i % 11 == 10 { '.' } else { ' ' });
    }
    s
}

fn line(text: &str, set: &str) -> String {
    serde_json::json!({"text": text, "meta": {"redpajama_set_name": set}}).to_string() + "\n"
}

struct Corpus {
    _dir: tempfile::TempDir,
    root: PathBuf,
    tokenizer: PathBuf,
}

/// Shards of every format under one directory, and a small tokenizer trained on them.
fn corpus() -> Corpus {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let shards = root.join("shards");
    std::fs::create_dir_all(shards.join("zst")).unwrap();
    // Plain jsonl: source A, short documents.
    let jsonl: String = (0..40).map(|i| line(&document(i, 30), "SetA")).collect();
    std::fs::write(shards.join("a.jsonl"), jsonl).unwrap();
    // Multi-frame zstd: two frames concatenated, source B, long documents.
    let part1: String = (100..110)
        .map(|i| line(&document(i, 400), "SetB"))
        .collect();
    let part2: String = (110..120)
        .map(|i| line(&document(i, 400), "SetB"))
        .collect();
    let mut zst = zstd::stream::encode_all(part1.as_bytes(), 3).unwrap();
    zst.extend(zstd::stream::encode_all(part2.as_bytes(), 3).unwrap());
    std::fs::write(shards.join("zst/b.jsonl.zst"), zst).unwrap();
    // RedPajama-V2 style gzip with raw_content.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 200..215 {
        gz.write_all(
            (serde_json::json!({"raw_content": document(i, 60), "url": "x"}).to_string() + "\n")
                .as_bytes(),
        )
        .unwrap();
    }
    std::fs::write(shards.join("c.json.gz"), gz.finish().unwrap()).unwrap();
    // Parquet with LargeUtf8 text and a meta struct, zstd-compressed.
    write_parquet(
        &shards.join("d.parquet"),
        (300..320).map(|i| document(i, 50)).collect(),
        true,
    );
    // Plain text.
    std::fs::write(shards.join("e.txt"), document(400, 80)).unwrap();
    let text: String = (0..200).map(|i| document(i, 50) + "\n").collect();
    std::fs::write(root.join("tok-train.txt"), text).unwrap();
    let tokenizer = root.join("tokenizer.json");
    train_bpe(&[root.join("tok-train.txt")], 400, &tokenizer).unwrap();
    Corpus {
        _dir: dir,
        root,
        tokenizer,
    }
}

fn write_parquet(path: &Path, docs: Vec<String>, large: bool) {
    let meta_fields = Fields::from(vec![Field::new("redpajama_set_name", DataType::Utf8, true)]);
    let text_type = if large {
        DataType::LargeUtf8
    } else {
        DataType::Utf8
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("text", text_type, true),
        Field::new("meta", DataType::Struct(meta_fields.clone()), true),
    ]));
    let text: ArrayRef = if large {
        Arc::new(LargeStringArray::from_iter_values(docs.iter()))
    } else {
        Arc::new(StringArray::from_iter_values(docs.iter()))
    };
    let labels: ArrayRef = Arc::new(StringArray::from_iter_values(docs.iter().map(|_| "SetD")));
    let meta: ArrayRef = Arc::new(StructArray::new(meta_fields, vec![labels], None));
    let batch = RecordBatch::try_new(schema.clone(), vec![text, meta]).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn config(c: &Corpus) -> DataConfig {
    DataConfig {
        train: vec![c.root.join("shards").display().to_string()],
        validation: Vec::new(),
        validation_fraction: 0.1,
        tokenizer: c.tokenizer.clone(),
        packing: Packing::Concat,
        min_doc_tokens: 0,
        sources: Vec::new(),
        skip_bad: false,
        cache_dir: Some(c.root.join("cache")),
        synthetic: SyntheticConfig::default(),
    }
}

#[test]
fn every_format_is_read_with_text_and_source() {
    let c = corpus();
    let files = resolve_shards(&[c.root.join("shards").display().to_string()]).unwrap();
    assert_eq!(files.len(), 5);
    let mut by_file = Vec::new();
    for f in &files {
        let mut records = Vec::new();
        read_shard(f, false, &mut SkipCounts::new(), |r| {
            records.push(r);
            Ok(())
        })
        .unwrap();
        by_file.push((
            f.file_name().unwrap().to_string_lossy().into_owned(),
            records,
        ));
    }
    let find = |name: &str| &by_file.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(find("a.jsonl").len(), 40);
    assert_eq!(find("a.jsonl")[3].text, document(3, 30));
    assert_eq!(find("a.jsonl")[0].source.as_deref(), Some("SetA"));
    assert_eq!(find("b.jsonl.zst").len(), 20, "both zstd frames are read");
    assert_eq!(find("b.jsonl.zst")[19].text, document(119, 400));
    assert_eq!(find("c.json.gz").len(), 15);
    assert_eq!(find("c.json.gz")[0].text, document(200, 60));
    assert_eq!(find("c.json.gz")[0].source, None);
    assert_eq!(find("d.parquet").len(), 20);
    assert_eq!(find("d.parquet")[5].text, document(305, 50));
    assert_eq!(find("d.parquet")[5].source.as_deref(), Some("SetD"));
    assert_eq!(find("e.txt").len(), 1);
    // Globs work too.
    let glob = format!("{}/shards/**/*.jsonl*", c.root.display());
    assert_eq!(resolve_shards(&[glob]).unwrap().len(), 2);
    assert!(matches!(
        resolve_shards(&["/nonexistent/*.jsonl".into()]),
        Err(DataError::NoShards { .. })
    ));
}

#[test]
fn the_stream_is_seeded_and_resumes_exactly_mid_document_and_across_epochs() {
    let c = corpus();
    let data = config(&c);
    let mut a = TrainStream::open(&data, 31, 7).unwrap();
    let mut b = TrainStream::open(&data, 31, 7).unwrap();
    let first = a.next_sequences(5).unwrap();
    assert_eq!(first.len(), 5 * 32);
    assert_eq!(first, b.next_sequences(5).unwrap(), "same seed, same order");
    let mut other = TrainStream::open(&data, 31, 8).unwrap();
    assert_ne!(
        first,
        other.next_sequences(5).unwrap(),
        "another seed, another order"
    );
    // Save a cursor mid-document, then compare the continuation with a resumed stream, far
    // enough to wrap into later epochs.
    let cursor = a.cursor();
    assert!(cursor.offset > 0, "the cursor is inside a document");
    let mut resumed = TrainStream::resume(&data, 31, 7, &cursor).unwrap();
    let total_tokens = a.report().eligible_tokens as usize;
    let steps = total_tokens * 3 / (8 * 32) + 2;
    for _ in 0..steps {
        assert_eq!(
            a.next_sequences(8).unwrap(),
            resumed.next_sequences(8).unwrap()
        );
    }
    assert!(a.cursor().epoch >= 2, "epochs wrapped: {:?}", a.cursor());
    assert_eq!(a.cursor(), resumed.cursor());
}

#[test]
fn concat_packing_separates_documents_with_eos() {
    let c = corpus();
    let data = config(&c);
    let tok = Tokenizer::from_file(&c.tokenizer).unwrap();
    let mut s = TrainStream::open(&data, 63, 1).unwrap();
    let tokens = s.next_sequences(200).unwrap();
    let eos = tokens.iter().filter(|&&t| t == tok.eos_id()).count();
    assert!(eos > 5, "documents are EOS-separated ({eos} separators)");
}

#[test]
fn long_document_packing_and_filters() {
    let c = corpus();
    let tok = Tokenizer::from_file(&c.tokenizer).unwrap();
    let mut data = config(&c);
    data.packing = Packing::LongDocument;
    let seq_len = 255;
    let mut s = TrainStream::open(&data, seq_len, 3).unwrap();
    // Only the long SetB documents (400 words) have 256 tokens; every window is one
    // document's consecutive tokens, so no separator appears inside a sequence.
    let rows = s.next_sequences(20).unwrap();
    assert!(rows.chunks(seq_len + 1).all(|r| !r.contains(&tok.eos_id())));
    let long_docs: Vec<Vec<u32>> = (100..120)
        .map(|i| tok.encode(&document(i, 400)).unwrap())
        .collect();
    for row in rows.chunks(seq_len + 1) {
        assert!(
            long_docs
                .iter()
                .any(|d| d.windows(seq_len + 1).any(|w| w == row)),
            "a window is not a slice of one long document"
        );
    }
    // Source filter: only SetA documents (short ones).
    let mut data = config(&c);
    data.sources = vec!["SetA".into()];
    let mut s = TrainStream::open(&data, 15, 3).unwrap();
    assert_eq!(
        s.report().eligible_documents as usize,
        40 - count_heldout(&c, "SetA")
    );
    s.next_sequences(4).unwrap();
    // Minimum document length: only the long documents pass 200 tokens.
    let mut data = config(&c);
    data.min_doc_tokens = 200;
    let s = TrainStream::open(&data, 15, 3).unwrap();
    assert!(s.report().eligible_documents <= 20 && s.report().eligible_documents >= 15);
    // A filter nothing passes is a clear error.
    let mut data = config(&c);
    data.sources = vec!["NoSuchSet".into()];
    let err = TrainStream::open(&data, 15, 3).err().unwrap().to_string();
    assert!(err.contains("NoSuchSet") && err.contains("SetA"), "{err}");
}

/// Documents of a source that the hash split holds out.
fn count_heldout(c: &Corpus, _set: &str) -> usize {
    let cache = forgetlab_data::TokenCache::open(&c.root.join("cache")).unwrap();
    let index = cache.source_index("SetA").unwrap();
    (0..cache.heldout.documents())
        .filter(|&d| cache.heldout.doc_source(d) == index)
        .count()
}

#[test]
fn the_cache_is_reused_and_detects_changed_inputs_and_tokenizers() {
    let c = corpus();
    let data = config(&c);
    let tok = Tokenizer::from_file(&c.tokenizer).unwrap();
    let first = forgetlab_data::prepare_cache(&data, &tok, &c.root.join("cache"), false).unwrap();
    assert!(first.train.documents > 80 && first.heldout.documents > 0);
    assert_eq!(first.dtype, "u16");
    let modified = std::fs::metadata(c.root.join("cache/train.tokens"))
        .unwrap()
        .modified()
        .unwrap();
    let again = forgetlab_data::prepare_cache(&data, &tok, &c.root.join("cache"), false).unwrap();
    assert_eq!(first, again);
    assert_eq!(
        modified,
        std::fs::metadata(c.root.join("cache/train.tokens"))
            .unwrap()
            .modified()
            .unwrap(),
        "a second prepare is a no-op"
    );
    // A changed input: the stream refuses the stale cache and says what to do.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(c.root.join("shards/e.txt"), document(999, 90)).unwrap();
    let err = TrainStream::open(&data, 15, 1).err().unwrap().to_string();
    assert!(
        err.contains("e.txt") && err.contains("forgetlab data prepare"),
        "{err}"
    );
    forgetlab_data::prepare_cache(&data, &tok, &c.root.join("cache"), false).unwrap();
    TrainStream::open(&data, 15, 1).unwrap();
    // A different tokenizer.
    let other = c.root.join("other.json");
    // Fewer merges than the test corpus supports, so the vocabulary really differs.
    let other_tok = train_bpe(&[c.root.join("tok-train.txt")], 280, &other).unwrap();
    assert_ne!(other_tok.sha256(), tok.sha256());
    let mut data2 = data.clone();
    data2.tokenizer = other;
    let err = TrainStream::open(&data2, 15, 1).err().unwrap().to_string();
    assert!(err.contains("different tokenizer"), "{err}");
}

#[test]
fn held_out_documents_are_disjoint_from_training() {
    let c = corpus();
    let data = config(&c);
    let mut held = heldout_stream(&data).unwrap();
    let docs = held.long_documents(1, 1000).unwrap();
    assert!(!docs.is_empty());
    let cache = forgetlab_data::TokenCache::open(&c.root.join("cache")).unwrap();
    let train: std::collections::HashSet<Vec<u32>> = (0..cache.train.documents())
        .map(|d| cache.train.doc(d))
        .collect();
    assert!(docs.iter().all(|d| !train.contains(d)));
    let tokens = held.tokens(500).unwrap();
    assert_eq!(tokens.len(), 500.min(tokens.len()));
    // Explicit validation shards instead of a fraction.
    let mut data = config(&c);
    data.cache_dir = Some(c.root.join("cache2"));
    data.train = vec![c.root.join("shards/a.jsonl").display().to_string()];
    data.validation = vec![c.root.join("shards/c.json.gz").display().to_string()];
    let mut held = heldout_stream(&data).unwrap();
    let tok = Tokenizer::from_file(&c.tokenizer).unwrap();
    assert_eq!(held.long_documents(1, 100).unwrap().len(), 15);
    assert_eq!(
        held.long_documents(1, 100).unwrap()[0],
        tok.encode(&document(200, 60)).unwrap()
    );
}

/// Checks the `bindings` semantics in decoded text: every query "kK?V;" answers V, the latest
/// value bound to K, and asks for a key among the last `lag` bindings. Returns the number of
/// queries checked.
fn check_bindings(text: &str, lag: usize) -> usize {
    let mut latest = std::collections::HashMap::new();
    let mut recent: Vec<String> = Vec::new();
    let mut queries = 0;
    // Skip the first (possibly cut) item and the last one.
    let items: Vec<&str> = text.split(';').map(str::trim).collect();
    for item in &items[1..items.len() - 1] {
        if let Some((key, value)) = item.split_once('=') {
            latest.insert(key.to_string(), value.to_string());
            recent.push(key.to_string());
        } else if let Some((key, value)) = item.split_once('?') {
            if let Some(bound) = latest.get(key) {
                assert_eq!(bound, value, "query {item} in {text}");
                if lag > 0 {
                    let window = &recent[recent.len().saturating_sub(lag)..];
                    assert!(window.iter().any(|k| k == key), "{item} is not recent");
                }
                queries += 1;
            }
        } else {
            panic!("malformed item {item:?}");
        }
    }
    queries
}

#[test]
fn the_bindings_task_answers_every_query_with_the_latest_value() {
    let c = corpus();
    let tok = Tokenizer::from_file(&c.tokenizer).unwrap();
    let stream = bindings_stream(&tok, 8, 3, 11, 3000).unwrap();
    assert_eq!(stream.len(), 3000);
    assert_eq!(
        stream,
        bindings_stream(&tok, 8, 3, 11, 3000).unwrap(),
        "seeded"
    );
    assert_ne!(stream, bindings_stream(&tok, 8, 3, 12, 3000).unwrap());
    // A longer stream starts with the same tokens.
    assert_eq!(
        stream[..],
        bindings_stream(&tok, 8, 3, 11, 5000).unwrap()[..3000]
    );
    let queries = check_bindings(&tok.decode(&stream).unwrap(), 3);
    assert!(queries > 50, "{queries} queries checked");
    assert!(bindings_stream(&tok, 1, 3, 11, 10).is_err());
    // Lag 0: queries for any key bound so far, still answered with its latest value.
    let any = bindings_stream(&tok, 8, 0, 11, 3000).unwrap();
    assert!(check_bindings(&tok.decode(&any).unwrap(), 0) > 50);

    // As a training task: whole sequences of the window's length, same semantics.
    let config = SyntheticConfig {
        ratio: 1.0,
        tasks: vec![SyntheticTask::Bindings],
        binding_keys: 8,
        binding_lag: 3,
        ..SyntheticConfig::default()
    };
    let tasks = forgetlab_data::SyntheticTasks::new(&config, &tok, 200).unwrap();
    let mut rng = forgetlab_data::rng::SplitMix64::new(5);
    for _ in 0..4 {
        let seq = tasks.sample(&mut rng);
        assert_eq!(seq.len(), 201);
        check_bindings(&tok.decode(&seq).unwrap(), 3);
    }
}

#[test]
fn the_evaluation_stream_holds_every_held_out_document_once_in_a_seeded_order() {
    let c = corpus();
    let data = config(&c);
    let mut held = heldout_stream(&data).unwrap();
    let docs = held.long_documents(1, usize::MAX).unwrap();
    let eos = held.tokenizer().eos_id();
    let stream = held.evaluation_stream(7).unwrap();
    assert_eq!(stream, held.evaluation_stream(7).unwrap(), "seeded");
    let other = held.evaluation_stream(8).unwrap();
    assert_ne!(stream, other, "another seed, another order or rotation");
    let total: usize = docs.iter().map(|d| d.len() + 1).sum();
    assert_eq!(stream.len(), total);
    assert_eq!(stream.iter().filter(|&&t| t == eos).count(), docs.len());
    // Undo the rotation at the last separator, then every document appears exactly once.
    let cut = stream.iter().rposition(|&t| t == eos).unwrap() + 1;
    let unrotated: Vec<u32> = stream[cut..]
        .iter()
        .chain(&stream[..cut])
        .copied()
        .collect();
    let mut found: Vec<Vec<u32>> = unrotated
        .split(|&t| t == eos)
        .filter(|d| !d.is_empty())
        .map(<[u32]>::to_vec)
        .collect();
    let mut expected = docs.clone();
    found.sort();
    expected.sort();
    assert_eq!(found, expected);
    // The order is not the file order.
    assert_ne!(unrotated[..docs[0].len()], docs[0][..]);
}

fn write_bad(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn bad_input_is_named_or_counted() {
    let dir = tempfile::tempdir().unwrap();
    let good = line("fine text", "S");
    let full_zst =
        zstd::stream::encode_all(format!("{good}{good}{good}").repeat(200).as_bytes(), 3).unwrap();
    let cases: Vec<(PathBuf, &str, &str)> = vec![
        (
            write_bad(
                dir.path(),
                "json.jsonl",
                format!("{good}{{not json\n{good}").as_bytes(),
            ),
            "line 2",
            "invalid JSON",
        ),
        (
            write_bad(
                dir.path(),
                "notext.jsonl",
                format!("{good}{{\"meta\": {{}}}}\n").as_bytes(),
            ),
            "line 2",
            "missing text",
        ),
        (
            write_bad(
                dir.path(),
                "utf8.jsonl",
                &[good.as_bytes(), b"{\"text\": \"\xff\xfe\"}\n"].concat(),
            ),
            "line 2",
            "invalid UTF-8",
        ),
        (
            write_bad(dir.path(), "empty.jsonl", b""),
            "file",
            "empty shard",
        ),
        (
            write_bad(dir.path(), "cut.jsonl.zst", &full_zst[..full_zst.len() / 2]),
            "after line",
            "corrupt stream",
        ),
        (
            write_bad(dir.path(), "bad.parquet", b"PAR1 this is not parquet"),
            "",
            "unreadable parquet",
        ),
    ];
    for (path, at, reason) in &cases {
        let err = read_shard(path, false, &mut SkipCounts::new(), |_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(
            err.contains(at) && err.contains(reason),
            "expected `{at}` and `{reason}` in: {err}"
        );
    }
    // With skip_bad, records are counted by reason and the good ones kept.
    let mut skipped = SkipCounts::new();
    let mut kept = 0;
    for (path, _, _) in &cases {
        read_shard(path, true, &mut skipped, |_| {
            kept += 1;
            Ok(())
        })
        .unwrap();
    }
    assert_eq!(skipped.get("invalid JSON"), Some(&1));
    assert_eq!(skipped.get("missing text"), Some(&1));
    assert_eq!(skipped.get("invalid UTF-8"), Some(&1));
    assert_eq!(skipped.get("empty shard"), Some(&1));
    assert_eq!(skipped.get("corrupt stream"), Some(&1));
    assert_eq!(skipped.get("unreadable parquet"), Some(&1));
    assert_eq!(kept, 4, "the good records around the bad ones are kept");
}

#[test]
fn synthetic_tasks_and_prompts_have_exact_lengths() {
    let c = corpus();
    let mut data = config(&c);
    data.synthetic = SyntheticConfig {
        ratio: 1.0,
        tasks: vec![SyntheticTask::Passkey, SyntheticTask::AssociativeRecall],
        recall_pairs: 4,
        recall_queries: 2,
        ..SyntheticConfig::default()
    };
    let tok = Tokenizer::from_file(&c.tokenizer).unwrap();
    let mut s = TrainStream::open(&data, 160, 5).unwrap();
    let rows = s.next_sequences(30).unwrap();
    assert_eq!(rows.len(), 30 * 161);
    let texts: Vec<String> = rows.chunks(161).map(|r| tok.decode(r).unwrap()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("pass key ") && t.contains("pass key? "))
    );
    assert!(texts.iter().any(|t| t.contains("Recall:")));
    assert_eq!(s.report().synthetic_sequences, 30);
    // Mixed at a ratio, resumable like text.
    data.synthetic.ratio = 0.5;
    let mut a = TrainStream::open(&data, 160, 5).unwrap();
    a.next_sequences(7).unwrap();
    let mut b = TrainStream::resume(&data, 160, 5, &a.cursor()).unwrap();
    assert_eq!(a.next_sequences(20).unwrap(), b.next_sequences(20).unwrap());
    assert!(a.report().synthetic_sequences > 0 && a.report().text_sequences > 0);
    // Too short for a task: a clear error.
    assert!(
        TrainStream::open(&data, 8, 5)
            .err()
            .unwrap()
            .to_string()
            .contains("too short")
    );
    // Short windows get fewer recall pairs (or only the passkey task), never a wrong length.
    for seq_len in [24, 32] {
        let mut short = TrainStream::open(&data, seq_len, 5).unwrap();
        assert_eq!(short.next_sequences(10).unwrap().len(), 10 * (seq_len + 1));
    }
    for prompt in [SyntheticPrompt::Newlines, SyntheticPrompt::Capital] {
        assert_eq!(synthetic_prompt(prompt, &tok, 1234).unwrap().len(), 1234);
    }
    let capital = tok
        .decode(&synthetic_prompt(SyntheticPrompt::Capital, &tok, 40).unwrap())
        .unwrap();
    assert!(
        capital.starts_with("The capital of China is Beijing."),
        "{capital}"
    );
}

#[test]
fn the_passkey_prompt_is_the_papers() {
    let c = corpus();
    let tok = Tokenizer::from_file(&c.tokenizer).unwrap();
    let length = 1000;
    let prompt = passkey::build(&tok, length, 0.5, "12345", false).unwrap();
    let prefix = tok.encode(passkey::PREFIX).unwrap().len();
    let suffix = tok.encode(passkey::SUFFIX).unwrap().len();
    let block = tok.encode(passkey::FILLER).unwrap().len();
    let num_blocks = (length - prefix - suffix) / block;
    assert_eq!(prompt.num_blocks, num_blocks);
    assert_eq!(
        prompt.needle_block,
        (0.5 * (num_blocks - 1) as f64) as usize
    );
    assert!(prompt.text.starts_with(
        "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it.\n\n"
    ));
    assert!(
        prompt
            .text
            .ends_with("\nWhat is the pass key? The passkey is")
    );
    assert!(
        prompt
            .text
            .contains("The passkey is 12345. Remember it. 12345 is the passkey.\n")
    );
    assert_eq!(prompt.text.matches("The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n").count(), num_blocks - 1);
    assert_eq!(prompt.ids, tok.encode(&prompt.text).unwrap());
    // Depths and the needle's block follow the official scheme.
    assert_eq!(passkey::depth(0, 200), 0.0025);
    assert_eq!(passkey::depth(199, 200), 0.9975);
    let first = passkey::build(&tok, length, passkey::depth(0, 10), "00001", false).unwrap();
    assert_eq!(first.needle_block, 0);
    let last = passkey::build(&tok, length, 1.0, "00001", true).unwrap();
    assert_eq!(last.needle_block, num_blocks - 1);
    assert_eq!(last.ids[0], tok.eos_id(), "use_bos prepends <|endoftext|>");
    let key = passkey::draw_passkey(1, 1000, 3);
    assert_eq!(key.len(), 5);
    assert_eq!(key, passkey::draw_passkey(1, 1000, 3));
    assert!(passkey::build(&tok, 20, 0.5, "12345", false).is_err());
}

/// The corpus `forgetlab data fetch` writes (tests/run-all fetches it first).
#[test]
fn the_fetched_corpus_has_59_mb_and_15m_neox_tokens() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/corpus");
    assert!(
        root.join("gpt-neox-20b-tokenizer.json").is_file(),
        "the corpus is missing: run `forgetlab data fetch` (tests/run-all does)"
    );
    let tok = Tokenizer::from_file(&root.join("gpt-neox-20b-tokenizer.json")).unwrap();
    assert_eq!(
        tok.sha256(),
        "56ac4821e129d2c520fdaba60abd920fa852ada51b45c0dd52bbb6bd8c985ade"
    );
    assert_eq!(tok.vocab_size(), 50277);
    assert_eq!(tok.eos_id(), 0);
    assert_eq!(tok.encode("Hello world").unwrap(), vec![12092, 1533]);
    let pattern = format!("{}/slimpajama/**/*.jsonl.zst", root.display());
    let report = forgetlab_data::stats::stats(&[pattern], Some(&tok), false).unwrap();
    println!("{}", serde_json::to_string(&report).unwrap());
    assert_eq!(report.documents, 4285);
    assert!(
        (58_000_000..60_000_000).contains(&report.bytes),
        "{}",
        report.bytes
    );
    let tokens = report.tokens.unwrap();
    assert!((14_800_000..15_800_000).contains(&tokens), "{tokens}");
    // The parquet copy holds the same documents.
    let parquet = format!("{}/parquet/*.parquet", root.display());
    let copy = forgetlab_data::stats::stats(&[parquet], None, false).unwrap();
    assert_eq!(
        (copy.documents, copy.bytes),
        (report.documents, report.bytes)
    );
}
