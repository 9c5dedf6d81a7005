//! The static report on the generated runs directory.

use forgetlab_dashboard::write_report;

use crate::fixture::{self, TORN, run_name};

/// Every `figures/...svg` link in `text` (Markdown `(...)` or HTML `"..."`).
fn figure_links(text: &str) -> Vec<String> {
    text.match_indices("figures/")
        .filter_map(|(i, _)| {
            let rest = &text[i..];
            let end = rest.find(".svg")? + 4;
            Some(rest[..end].to_string())
        })
        .collect()
}

#[test]
fn report_has_the_law_the_grid_the_run_table_and_every_figure() {
    let fx = fixture::build();
    let outcome = write_report(&fx.experiment(), None).unwrap();
    assert_eq!(outcome.dir, fx.experiment().join("report"));
    assert_eq!(outcome.runs, 14);
    assert!(outcome.figures > 40, "{} figures", outcome.figures);
    let md = std::fs::read_to_string(&outcome.markdown).unwrap();
    let html = std::fs::read_to_string(&outcome.html).unwrap();
    for needle in [
        "# Experiment cpu-law",
        "## Scaling laws",
        "Fit: T_forget[K] = ",
        "Paper: T_forget[K] = 5.172 N_S[M] − 4.469",
        "## Forget grid",
        "## Runs",
        "| run | status | N_S |",
        "✓ forgets",
        "loss became NaN at step 12",
        "## Problems",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    assert!(md.contains(&format!("| {} |", run_name(16, 512, 0))));
    assert!(
        outcome
            .problems
            .iter()
            .any(|p| p.starts_with(&format!("{TORN}: eval/verdict.json:"))),
        "{:?}",
        outcome.problems
    );
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<img src=\"figures/law.svg\""));
    let links = figure_links(&md);
    assert!(links.contains(&"figures/law.svg".to_string()));
    assert!(links.contains(&format!("figures/runs/{}/passkey.svg", run_name(8, 128, 0))));
    for link in links.iter().chain(figure_links(&html).iter()) {
        let path = outcome.dir.join(link);
        let svg = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{link} is linked but not written: {e}"));
        assert!(svg.contains("<svg"), "{link}");
    }
    let law: forgetlab_runs::results::LawReport =
        serde_json::from_str(&std::fs::read_to_string(outcome.dir.join("law.json")).unwrap())
            .unwrap();
    assert_eq!(law.experiment, "cpu-law");
    let no_temp_files = walk(&outcome.dir)
        .iter()
        .all(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'));
    assert!(no_temp_files, "atomic writes left temporary files behind");
}

#[test]
fn report_goes_where_asked_and_reports_missing_experiments() {
    let fx = fixture::build();
    let out = fx.tmp.path().join("paper-figures");
    let outcome = write_report(&fx.root().join("broken-law"), Some(&out)).unwrap();
    assert_eq!(outcome.dir, out);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("law.json could not be read"), "{md}");
    assert!(
        !out.join("law.json").exists(),
        "an unreadable law must not be copied"
    );
    let empty = write_report(&fx.root().join("empty"), None).unwrap();
    assert_eq!(empty.runs, 0);
    let md = std::fs::read_to_string(&empty.markdown).unwrap();
    assert!(md.contains("forgetlab fit empty"));
    let err = write_report(&fx.root().join("missing"), None).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
