//! Every chart of forgetlab, as a standalone SVG string.
//!
//! One function per concept, used by everything that draws: the evaluator writes
//! `eval/per_position.svg` with [`loss_vs_position`], the dashboard serves the same SVG inline,
//! and the static report saves it next to the Markdown. So a figure in a paper draft, on the
//! dashboard and in a run directory is the same picture.
//!
//! | chart | function |
//! |---|---|
//! | loss by token position, T_train marked, runs overlaid | [`loss_vs_position`] |
//! | train/val loss, lr, grad norm, throughput vs tokens | [`training_curves`] |
//! | passkey depth x length accuracy | [`passkey_heatmap`] |
//! | T_forget vs N_S with fit, band and paper line | [`law_chart`] |
//! | T_recall vs N_S with the exponential fit | [`recall_law_chart`] |
//! | decay per head, first-token retention, state statistics | [`diagnostics_charts`] |
//! | a placeholder saying why there is nothing to draw | [`no_data_chart`] |
//!
//! Charts never fail: values that cannot be drawn (NaN, infinite, non-positive on a log axis)
//! are skipped, and a chart without a single drawable value says "no data" and why. SVG text is
//! emitted as `<text>` elements (no font files are read; plotters is built without font-kit),
//! and every root `<svg>` carries `class="forgetlab-chart"` and `data-chart="<kind>"` so a page
//! or a test can find it.

mod axis;
mod canvas;
mod diagnostics;
pub mod format;
mod heatmap;
mod law;
mod position;
pub mod style;
mod training;

pub use axis::{Scale, TickFormat};
pub use canvas::DEFAULT_SIZE;
pub use diagnostics::{DIAGNOSTICS_CHARTS, diagnostics_charts};
pub use heatmap::passkey_heatmap;
pub use law::{law_chart, recall_law_chart};
pub use position::{CurveOptions, LabeledCurve, PositionQuantity, loss_vs_position};
pub use training::{RunMetrics, TrainingChart, TrainingOptions, ema, training_curves};

/// A chart-sized SVG that shows `title`, "no data" and `reason` (e.g. why a result file could
/// not be read).
pub fn no_data_chart(title: &str, reason: &str) -> String {
    canvas::no_data("no-data", title, reason, (DEFAULT_SIZE.0, 240))
}

/// Whether `svg` has a `<text>` element whose content is exactly `s` (XML-escaped).
#[cfg(test)]
pub(crate) fn has_text(svg: &str, s: &str) -> bool {
    svg.contains(&format!(">\n{}\n</text>", canvas::escape_xml(s)))
}
