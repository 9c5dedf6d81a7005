//! Experiment files: grid expansion, linked and nested axes, explicit points, naming, the plan
//! formats, errors that name file, key and line, and the shipped experiments.

mod common;

use std::path::{Path, PathBuf};

use common::BASE;
use forgetlab_runs::config::MixerKind;
use forgetlab_runs::{ConfigError, RunConfig};
use forgetlab_sweep::plan::{plan_json, plan_text};
use forgetlab_sweep::{Experiment, RunOrigin, SweepError};

fn parse(text: &str) -> Result<Experiment, SweepError> {
    Experiment::from_source(Path::new("exp.toml"), text.to_string())
}

fn experiment(sweep: &str) -> String {
    format!("[experiment]\nname = \"t\"\n\n{BASE}\n{sweep}")
}

fn names(e: &Experiment) -> Vec<&str> {
    e.runs.iter().map(|r| r.name.as_str()).collect()
}

/// The located error, as (line, key, message).
fn located(err: SweepError) -> (Option<usize>, Option<String>, String) {
    let text = err.to_string();
    match err {
        SweepError::Config(c @ (ConfigError::Parse { .. } | ConfigError::Invalid { .. })) => {
            assert!(
                text.starts_with("exp.toml:"),
                "error must name the file: {text}"
            );
            assert!(!text.contains('\n'), "one line: {text}");
            (c.line(), c.key().map(str::to_string), text)
        }
        other => panic!("not a config error: {other}"),
    }
}

/// 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn grid_is_the_cartesian_product_first_axis_slowest() {
    let e = parse(&experiment(
        "[sweep]\n\"model.d_state\" = [8, 16]\n\"train.seq_len\" = [16, 32, 64]\nseed = [0, 1]\n",
    ))
    .unwrap();
    assert_eq!(e.runs.len(), 12);
    assert_eq!(e.varied_keys, ["model.d_state", "train.seq_len", "seed"]);
    assert_eq!(
        &names(&e)[..4],
        [
            "d_state-8_len-16_seed-0",
            "d_state-8_len-16_seed-1",
            "d_state-8_len-32_seed-0",
            "d_state-8_len-32_seed-1"
        ]
    );
    assert_eq!(names(&e)[11], "d_state-16_len-64_seed-1");
    let r = &e.runs[11];
    assert_eq!(
        (
            r.config.model.d_state,
            r.config.train.seq_len,
            r.config.seed
        ),
        (16, 64, 1)
    );
    assert_eq!(r.config.name.as_deref(), Some("t/d_state-16_len-64_seed-1"));
    assert_eq!(r.origin, RunOrigin::Grid { index: 11 });
    // Everything else comes from the base.
    assert!(
        e.runs
            .iter()
            .all(|r| r.config.model.d_model == 16 && r.config.train.total_tokens == 320)
    );
}

#[test]
fn axes_follow_file_order_and_accept_unquoted_dotted_keys() {
    let e = parse(&experiment(
        "[sweep]\ntrain.seq_len = [16, 32]\n\"model.d_state\" = [4]\n",
    ))
    .unwrap();
    assert_eq!(names(&e), ["len-16_d_state-4", "len-32_d_state-4"]);
    let e = parse(&experiment("[sweep.model]\nd_state = [4, 8]\n")).unwrap();
    assert_eq!(names(&e), ["d_state-4", "d_state-8"]);
}

#[test]
fn linked_axes_set_several_keys_per_value() {
    let e = parse(&experiment(
        "[sweep]\nmodel = [{ d_model = 16, n_layer = 1 }, { d_model = 32, n_layer = 2 }]\ntrain = [{ seq_len = 16 }, { seq_len = 64, segment_len = 32 }]\n",
    ))
    .unwrap();
    assert_eq!(
        names(&e),
        [
            "d_model-16_n_layer-1_len-16",
            "d_model-16_n_layer-1_len-64_seg-32",
            "d_model-32_n_layer-2_len-16",
            "d_model-32_n_layer-2_len-64_seg-32"
        ]
    );
    let last = &e.runs[3].config;
    assert_eq!((last.model.d_model, last.model.n_layer), (32, 2));
    assert_eq!((last.train.seq_len, last.train.segment_len), (64, Some(32)));
    // Merged into the base table: untouched base keys survive.
    assert_eq!(last.model.d_state, 4);
}

#[test]
fn explicit_points_follow_the_grid_and_their_keys_name_every_run() {
    let e = parse(&experiment(
        "[sweep]\n\"model.d_state\" = [4, 8]\n\n[[sweep.points]]\n\"model.d_state\" = 16\n\"model.n_layer\" = 2\n\n[[sweep.points]]\nmodel.d_state = 32\n",
    ))
    .unwrap();
    assert_eq!(
        names(&e),
        [
            "d_state-4_n_layer-1",
            "d_state-8_n_layer-1",
            "d_state-16_n_layer-2",
            "d_state-32_n_layer-1"
        ]
    );
    assert_eq!(e.runs[2].origin, RunOrigin::Point { index: 0 });
    assert_eq!(e.runs[2].config.model.n_layer, 2);
    // Only points, no axes: just the points.
    let e = parse(&experiment("[[sweep.points]]\nseed = 3\n")).unwrap();
    assert_eq!(names(&e), ["seed-3"]);
    // No sweep at all: the base is the one run.
    let e = parse(&experiment("")).unwrap();
    assert_eq!(names(&e), ["base"]);
}

#[test]
fn names_are_safe_and_labels_disambiguate() {
    let e = parse(&experiment(
        "[sweep]\n\"optim.lr\" = [5e-4, 0.001]\n\"data.packing\" = [\"concat\", \"long-document\"]\n\"eval.horizon\" = [128]\n\"model.dt_limit\" = [[0.001, 0.1]]\n",
    ))
    .unwrap();
    assert_eq!(
        names(&e)[0],
        "lr-0.0005_packing-concat_horizon-128_dt_limit-0.001x0.1"
    );
    assert_eq!(
        names(&e)[3],
        "lr-0.001_packing-long-document_horizon-128_dt_limit-0.001x0.1"
    );
    // Two keys ending in `seed` are spelled out in full.
    let e = parse(&experiment(
        "[sweep]\nseed = [1]\n\"eval.passkey.seed\" = [2]\n",
    ))
    .unwrap();
    assert_eq!(names(&e), ["seed-1_eval.passkey.seed-2"]);
}

#[test]
fn duplicate_runs_are_an_error_at_the_point() {
    let text = experiment(
        "[sweep]\n\"model.d_state\" = [4, 8]\n\n[[sweep.points]]\n\"model.d_state\" = 8\n",
    );
    let (line, _, msg) = located(parse(&text).unwrap_err());
    assert_eq!(line, Some(text.lines().count()), "{msg}");
    assert!(
        msg.contains("d_state-8") && msg.contains("second time"),
        "{msg}"
    );
}

#[test]
fn an_axis_key_missing_from_the_run_config_names_file_key_and_line() {
    let text = experiment("[sweep]\n\"train.seq_len\" = [16]\n\"model.d_stat\" = [4, 8]\n");
    let (line, key, msg) = located(parse(&text).unwrap_err());
    assert_eq!(line, Some(line_of(&text, "d_stat\"")), "{msg}");
    assert_eq!(key.as_deref(), Some("model.d_stat"), "{msg}");
    assert!(msg.contains("unknown field"), "{msg}");
    let text = experiment("[sweep]\nlearning_rate = [1]\n");
    let (line, key, msg) = located(parse(&text).unwrap_err());
    assert_eq!(
        (line, key.as_deref()),
        (Some(line_of(&text, "learning_rate")), Some("learning_rate")),
        "{msg}"
    );
}

#[test]
fn a_bad_axis_value_points_at_that_value() {
    let text = experiment("[sweep]\n\"model.d_state\" = [\n  4,\n  \"eight\",\n]\n");
    let (line, key, msg) = located(parse(&text).unwrap_err());
    assert_eq!(line, Some(line_of(&text, "\"eight\"")), "{msg}");
    assert_eq!(key.as_deref(), Some("model.d_state"));
    assert!(msg.contains("invalid type"), "{msg}");
    // A value the run config rejects after resolution.
    let text = experiment("[sweep]\n\"model.headdim\" = [8, 12]\n");
    let (line, key, msg) = located(parse(&text).unwrap_err());
    assert_eq!(
        (line, key.as_deref()),
        (Some(line_of(&text, "headdim\" =")), Some("model.headdim")),
        "{msg}"
    );
    assert!(
        msg.contains("model.headdim = 12"),
        "the grid point is named: {msg}"
    );
}

#[test]
fn a_grid_point_that_breaks_a_base_value_points_at_the_base_and_names_the_point() {
    // tokens_per_step = 64 is not a multiple of seq_len 48.
    let text = experiment("[sweep]\n\"train.seq_len\" = [16, 48]\n");
    let (line, key, msg) = located(parse(&text).unwrap_err());
    assert_eq!(key.as_deref(), Some("train.tokens_per_step"), "{msg}");
    assert_eq!(line, Some(line_of(&text, "tokens_per_step")), "{msg}");
    assert!(msg.contains("grid point 1: train.seq_len = 48"), "{msg}");
}

#[test]
fn base_errors_point_into_base() {
    let text = experiment("").replace("[base.train]", "[base.train]\nwarmup = 3");
    let (line, key, msg) = located(parse(&text).unwrap_err());
    assert_eq!(line, Some(line_of(&text, "warmup")), "{msg}");
    assert_eq!(key.as_deref(), Some("train.warmup"), "{msg}");
    let text = experiment("").replace("[base]\nseed = 0", "[base]\nseed = 0\nname = \"x\"");
    let (line, key, _) = located(parse(&text).unwrap_err());
    assert_eq!(
        (line, key.as_deref()),
        (Some(line_of(&text, "name = \"x\"")), Some("base.name"))
    );
}

#[test]
fn malformed_sweeps_are_errors_with_lines() {
    let cases = [
        (
            "[sweep]\n\"model.d_state\" = 4\n",
            "model.d_state",
            "in an array",
        ),
        (
            "[sweep]\n\"model.d_state\" = []\n",
            "model.d_state",
            "no values",
        ),
        (
            "[sweep]\nmodel = [{ d_state = 4 }]\n\"model.d_state\" = [8]\n",
            "model.d_state",
            "also sets",
        ),
        ("[sweep]\npoints = [1]\n", "points", "[[sweep.points]]"),
        ("[[sweep.points]]\n", "points", "sets no key"),
    ];
    for (sweep, key_part, message_part) in cases {
        let text = experiment(sweep);
        let (line, key, msg) = located(parse(&text).unwrap_err());
        assert!(line.is_some(), "{msg}");
        assert!(key.unwrap_or_default().contains(key_part), "{msg}");
        assert!(msg.contains(message_part), "{msg}");
    }
}

#[test]
fn experiment_sections_are_checked() {
    let text = experiment("").replace("name = \"t\"", "name = \"a b\"");
    let (line, key, _) = located(parse(&text).unwrap_err());
    assert_eq!((line, key.as_deref()), (Some(2), Some("experiment.name")));
    let text = experiment("[slurm]\npartitions = \"gpu\"\n");
    let (line, _, msg) = located(parse(&text).unwrap_err());
    assert_eq!(line, Some(line_of(&text, "partitions")), "{msg}");
    let text = experiment("[slurm]\nextra = [\"constraint=a100\"]\n");
    let (_, key, _) = located(parse(&text).unwrap_err());
    assert_eq!(key.as_deref(), Some("slurm.extra[0]"));
    let text = experiment("[fit]\nconfidence = 2.0\n");
    let (line, key, _) = located(parse(&text).unwrap_err());
    assert_eq!(
        (line, key.as_deref()),
        (Some(line_of(&text, "confidence")), Some("fit.confidence"))
    );
    let text = experiment("").replace("[experiment]", "[experiment]\nowner = \"me\"");
    let (line, _, msg) = located(parse(&text).unwrap_err());
    assert_eq!(line, Some(2), "{msg}");
}

#[test]
fn load_names_the_file_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, experiment("[sweep]\n\"model.d_stat\" = [4]\n")).unwrap();
    let err = Experiment::load(&path).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:", path.display())), "{err}");
    let missing = Experiment::load(&dir.path().join("nope.toml"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.toml"), "{missing}");
}

#[test]
fn plan_text_lists_every_run_with_its_numbers() {
    let e = parse(&experiment(
        "[sweep]\n\"model.d_state\" = [4, 8]\n\"train.seq_len\" = [16, 32]\n",
    ))
    .unwrap();
    let text = plan_text(&e, Path::new("runs"));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("experiment t (exp.toml): 4 run(s) in runs/t"),
        "{text}"
    );
    assert!(text.contains("axis model.d_state = [4, 8]"), "{text}");
    let header = lines.iter().find(|l| l.starts_with("run ")).unwrap();
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "run",
            "N_S",
            "params",
            "T_train",
            "segment",
            "tokens/step",
            "tokens",
            "steps",
            "device"
        ]
    );
    let row: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("d_state-8_len-32"))
        .unwrap()
        .split_whitespace()
        .collect();
    let cfg = &e.runs[3].config;
    assert_eq!(row[1], cfg.model.state_size().total.to_string());
    assert_eq!(row[2], cfg.model.param_count().to_string());
    assert_eq!(&row[3..], ["32", "32", "64", "320", "5", "cpu"]);
    assert!(
        text.trim_end()
            .ends_with("total: 4 run(s), 1280 training tokens"),
        "{text}"
    );
}

#[test]
fn plan_json_is_one_object_per_run_with_the_resolved_config() {
    let e = parse(&experiment("[sweep]\n\"model.d_state\" = [4, 8]\n")).unwrap();
    let text = plan_json(&e, Path::new("runs"));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    for (line, run) in lines.iter().zip(&e.runs) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["experiment"], "t");
        assert_eq!(v["name"], run.name.as_str());
        assert_eq!(v["run_dir"], format!("runs/t/{}", run.name));
        assert_eq!(v["n_s"], run.config.model.state_size().total);
        assert_eq!(v["state_size"]["ssm"], run.config.model.state_size().ssm);
        assert_eq!(v["params"], run.config.model.param_count());
        assert_eq!(v["point"]["model.d_state"], run.config.model.d_state);
        // The config is the whole run config: it reads back as the same RunConfig.
        let back: RunConfig = serde_json::from_value(v["config"].clone()).unwrap();
        assert_eq!(&back, &run.config);
    }
}

fn shipped(name: &str) -> Experiment {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../experiments")
        .join(name);
    Experiment::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn shipped_experiments_parse_validate_and_plan() {
    // experiments/ also holds single-run configs; experiment files are those with [experiment].
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let table: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if !table.contains_key("experiment") {
            continue;
        }
        let e = Experiment::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!e.runs.is_empty());
        assert!(plan_text(&e, Path::new("runs")).contains(&e.runs[0].name));
        assert_eq!(
            plan_json(&e, Path::new("runs")).lines().count(),
            e.runs.len()
        );
        for run in &e.runs {
            RunConfig::from_toml_str(&run.config.to_toml()).unwrap();
        }
        seen.push(e.meta.name);
    }
    for name in ["quickstart", "cpu-forget-law", "paper-mamba2"] {
        assert!(
            seen.iter().any(|s| s == name),
            "{name} not found in {seen:?}"
        );
    }
}

#[test]
fn quickstart_is_small() {
    let e = shipped("quickstart.toml");
    assert_eq!(e.meta.name, "quickstart");
    assert_eq!(e.runs.len(), 6);
    let state_sizes: std::collections::BTreeSet<u64> = e
        .runs
        .iter()
        .map(|r| r.config.model.state_size().total)
        .collect();
    assert_eq!(state_sizes.len(), 2);
    for r in &e.runs {
        assert!(
            (200_000..=500_000).contains(&r.config.train.total_tokens),
            "{}",
            r.name
        );
        assert!(r.config.model.param_count() < 1_000_000, "{}", r.name);
        assert_eq!(r.config.train.device, "cpu");
        assert_eq!(r.config.model.vocab_size, 4096);
        assert_eq!(
            r.config.data.tokenizer,
            PathBuf::from("data/corpus/tokenizer-4k.json")
        );
    }
}

#[test]
fn cpu_forget_law_matches_tokens_across_runs() {
    let e = shipped("cpu-forget-law.toml");
    assert_eq!(e.runs.len(), 20);
    let tokens: std::collections::BTreeSet<u64> =
        e.runs.iter().map(|r| r.config.train.total_tokens).collect();
    assert_eq!(tokens.len(), 1);
    let tokens = *tokens.first().unwrap();
    assert!((20_000_000..=50_000_000).contains(&tokens));
    for r in &e.runs {
        let (m, t) = (&r.config.model, &r.config.train);
        assert_eq!(m.n_layer, 2);
        assert!((64..=128).contains(&m.d_model) && (4..=32).contains(&m.d_state));
        assert!((16..=256).contains(&t.seq_len));
        assert!(r.config.data.synthetic.ratio > 0.0);
        assert_eq!(t.seq_len % m.chunk_size, 0, "{}", r.name);
    }
}

#[test]
fn paper_grid_is_the_paper_recipe() {
    let e = shipped("paper-mamba2.toml");
    assert_eq!(e.runs.len(), 35);
    let mut state_sizes: Vec<f64> = e
        .runs
        .iter()
        .map(|r| r.config.model.state_size().millions())
        .collect();
    state_sizes.dedup();
    let expected = [1.079, 1.619, 2.424, 4.848, 12.915];
    for want in expected {
        assert!(
            state_sizes.iter().any(|s| (s - want).abs() < 0.001),
            "{want} in {state_sizes:?}"
        );
    }
    for r in &e.runs {
        let (m, t, o) = (&r.config.model, &r.config.train, &r.config.optim);
        assert_eq!(
            (
                m.vocab_size,
                m.pad_vocab_size_multiple,
                m.d_state,
                m.headdim
            ),
            (50277, 16, 128, 64)
        );
        assert_eq!(t.tokens_per_step, 65536);
        assert_eq!(t.device, "cuda");
        assert_eq!(o.lr, 5e-4);
        assert_eq!(o.schedule, forgetlab_runs::config::Schedule::Wsd);
        assert!((1024..=65536).contains(&t.seq_len));
        assert_eq!(t.segment_len(), t.seq_len.min(8192), "{}", r.name);
    }
    assert_eq!(e.runs[0].name, "d_model-512_n_layer-8_len-1024_seed-0");
    assert_eq!(e.slurm.gpus_per_task, Some(1));
    assert_eq!(e.slurm.signal_seconds(), 90);
}

/// A base that leaves Mamba-2's own keys at their defaults, so a Gated DeltaNet variant of it
/// validates.
const TWO_MIXER_BASE: &str = r#"[base]
seed = 0

[base.model]
d_model = 16
n_layer = 1
vocab_size = 64

[base.data]
train = ["data/none/*.jsonl"]
tokenizer = "data/none/tok.json"

[base.train]
seq_len = 16
tokens_per_step = 64
total_tokens = 320
"#;

fn two_mixers(sweep: &str) -> String {
    format!("[experiment]\nname = \"two\"\n\n{TWO_MIXER_BASE}\n{sweep}")
}

#[test]
fn one_experiment_holds_both_mixers_with_names_that_say_which() {
    let text = two_mixers(
        "[sweep]\nmodel = [\n  { d_state = 4, headdim = 8 },\n  { gated_deltanet = { heads = 2, head_k_dim = 8, expand_v = 1.0, intermediate_size = 0 }, mixer = \"gated-deltanet\" },\n]\n\"train.seq_len\" = [16, 32]\n",
    );
    let e = parse(&text).unwrap();
    assert_eq!(
        names(&e),
        [
            "mixer-mamba2_d_state-4_headdim-8_len-16",
            "mixer-mamba2_d_state-4_headdim-8_len-32",
            "mixer-gated-deltanet_expand_v-1_head_k_dim-8_heads-2_mlp-0_len-16",
            "mixer-gated-deltanet_expand_v-1_head_k_dim-8_heads-2_mlp-0_len-32",
        ]
    );
    // The mixer leads the varied keys although the file writes it last; a nested table's
    // keys follow in name order.
    assert_eq!(e.varied_keys[0], "model.mixer");
    let (mamba, gdn) = (&e.runs[0].config.model, &e.runs[2].config.model);
    assert_eq!(mamba.mixer, MixerKind::Mamba2);
    assert_eq!((mamba.d_state, mamba.headdim), (4, 8));
    assert!(mamba.gated_deltanet.is_none());
    assert_eq!(gdn.mixer, MixerKind::GatedDeltaNet);
    let sizes = gdn.gated_deltanet_sizes().unwrap();
    assert_eq!(
        (
            sizes.heads,
            sizes.head_k_dim,
            sizes.head_v_dim(),
            sizes.intermediate_size
        ),
        (2, 8, 8, Some(0))
    );
    // Nested tables merge into the base: the shared keys come from it.
    assert_eq!((gdn.d_model, gdn.n_layer, gdn.vocab_size), (16, 1, 64));
    // N_S = n_layer (H d_k d_v + (2 H d_k + H d_v)(d_conv - 1)).
    assert_eq!(gdn.state_size().total, 2 * 8 * 8 + (2 * 16 + 16) * 3);
    // The point records the mixer of every run, and no Mamba-2 size for Gated DeltaNet.
    let point =
        |i: usize| -> Vec<&str> { e.runs[i].point.iter().map(|(k, _)| k.as_str()).collect() };
    assert_eq!(
        point(0),
        [
            "model.mixer",
            "model.d_state",
            "model.headdim",
            "train.seq_len"
        ]
    );
    assert_eq!(e.runs[0].point[0].1.as_str(), Some("mamba2"));
    assert!(!point(2).contains(&"model.d_state") && !point(2).contains(&"model.headdim"));
    // The plan lists both, each with its own N_S; the JSON plan reads back as the same configs.
    let plan = plan_text(&e, Path::new("runs"));
    assert!(plan.contains(&gdn.state_size().total.to_string()), "{plan}");
    for (line, run) in plan_json(&e, Path::new("runs")).lines().zip(&e.runs) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let back: RunConfig = serde_json::from_value(v["config"].clone()).unwrap();
        assert_eq!(&back, &run.config);
        RunConfig::from_toml_str(&run.config.to_toml()).unwrap();
    }
}

#[test]
fn a_mamba2_size_in_the_base_of_a_two_mixer_plan_names_the_key_and_the_point() {
    let text = two_mixers(
        "[sweep]\nmodel = [{ headdim = 8 }, { mixer = \"gated-deltanet\", gated_deltanet = { heads = 2, head_k_dim = 8 } }]\n",
    )
    .replace("d_model = 16", "d_model = 16\nd_state = 4");
    let (line, key, msg) = located(parse(&text).unwrap_err());
    assert_eq!(key.as_deref(), Some("model.d_state"), "{msg}");
    assert_eq!(line, Some(line_of(&text, "d_state = 4")), "{msg}");
    assert!(
        msg.contains("gated-deltanet") && msg.contains("grid point 1"),
        "{msg}"
    );
}

#[test]
fn single_mixer_names_are_unchanged_and_an_explicit_mamba2_is_named() {
    // A plan that never names the mixer keeps its names.
    let e = parse(&experiment("[sweep]\n\"model.d_state\" = [4, 8]\n")).unwrap();
    assert_eq!(names(&e), ["d_state-4", "d_state-8"]);
    // Varying only the mixer: both runs say which one they are.
    let e = parse(&two_mixers(
        "[sweep]\nmodel = [{ mixer = \"mamba2\", headdim = 8 }, { mixer = \"gated-deltanet\", gated_deltanet = { heads = 2, head_k_dim = 8 } }]\n",
    ))
    .unwrap();
    assert_eq!(
        names(&e),
        [
            "mixer-mamba2_headdim-8",
            "mixer-gated-deltanet_head_k_dim-8_heads-2"
        ]
    );
}

#[test]
fn law_two_mixers_matches_state_sizes_across_mixers() {
    let e = shipped("law-two-mixers.toml");
    assert_eq!(e.runs.len(), 24);
    let law_on_cpu = shipped("law-on-cpu.toml");
    let reference = &law_on_cpu.runs[0].config;
    let mut sizes: std::collections::BTreeMap<MixerKind, std::collections::BTreeSet<u64>> =
        Default::default();
    for r in &e.runs {
        let c = &r.config;
        let mixer = c.model.mixer;
        assert!(
            r.name.starts_with(&format!("mixer-{}_", mixer.name())),
            "{}",
            r.name
        );
        sizes
            .entry(mixer)
            .or_default()
            .insert(c.model.state_size().total);
        // law-on-cpu's task, budget, optimiser and evaluation; 2 layers of width 64.
        assert_eq!((c.model.d_model, c.model.n_layer), (64, 2));
        assert_eq!(c.model.a_init_range, reference.model.a_init_range);
        assert_eq!(c.data, reference.data, "{}", r.name);
        assert_eq!(c.optim, reference.optim);
        assert_eq!(c.eval, reference.eval);
        assert_eq!(
            (c.train.total_tokens, c.train.tokens_per_step),
            (
                reference.train.total_tokens,
                reference.train.tokens_per_step
            )
        );
        if let Some(g) = c.model.gated_deltanet_sizes() {
            assert_eq!(g.mlp_width(c.model.d_model), 0, "blocks without an MLP");
        }
    }
    let mamba: Vec<u64> = sizes[&MixerKind::Mamba2].iter().copied().collect();
    let gdn: Vec<u64> = sizes[&MixerKind::GatedDeltaNet].iter().copied().collect();
    assert_eq!(mamba, [1572, 3180, 6396]);
    assert_eq!(gdn, [1600, 3200, 6400]);
    for (m, g) in mamba.iter().zip(&gdn) {
        assert!((*g as f64 / *m as f64 - 1.0).abs() < 0.02, "{m} vs {g}");
    }
}
