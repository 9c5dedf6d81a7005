//! Grids of coloured cells with labelled rows and columns: the passkey depth x length heatmap
//! and per-layer, per-head diagnostics. Drawn in pixel space because both axes are
//! categorical.

use forgetlab_runs::results::PasskeySummary;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::canvas::{decorate, no_data};
use crate::format::{fmt_length, fmt_sig};
use crate::style::{ColorMap, INK, MISSING, MUTED, font, text, text_on, text_width};

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// A heatmap description.
pub(crate) struct Heatmap {
    pub kind: &'static str,
    pub title: String,
    pub subtitle: Option<String>,
    /// Row labels, drawn top to bottom.
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    /// `[row][col]`; `None` (or a non-finite value) is drawn as an empty cell.
    pub values: Vec<Vec<Option<f64>>>,
    /// An extra row drawn below a gap (e.g. accuracy over all depths).
    pub summary: Option<(String, Vec<Option<f64>>)>,
    pub x_label: String,
    pub y_label: String,
    pub cmap: ColorMap,
    /// Colour scale limits (values outside are clamped).
    pub vmin: f64,
    pub vmax: f64,
    /// Colour bar ticks (values) and their format.
    pub bar_ticks: Vec<f64>,
    pub format: fn(f64) -> String,
    pub width: u32,
    pub empty_reason: String,
}

const CELL_TEXT_PX: f64 = 11.0;

fn cell_value(values: &[Vec<Option<f64>>], r: usize, c: usize) -> Option<f64> {
    values
        .get(r)
        .and_then(|row| row.get(c))
        .copied()
        .flatten()
        .filter(|v| v.is_finite())
}

pub(crate) fn render_heatmap(map: &Heatmap) -> String {
    let any_value = (0..map.rows.len())
        .any(|r| (0..map.cols.len()).any(|c| cell_value(&map.values, r, c).is_some()));
    let height_guess = 420;
    if !any_value {
        return no_data(
            map.kind,
            &map.title,
            &map.empty_reason,
            (map.width, height_guess),
        );
    }
    let n_rows = map.rows.len() + usize::from(map.summary.is_some());
    let cell_h = (520.0 / n_rows as f64).clamp(12.0, 34.0).floor() as i32;
    let title_h = if map.subtitle.is_some() { 56 } else { 40 };
    let gap = if map.summary.is_some() { 8 } else { 0 };
    let bottom = 52;
    let height = title_h + cell_h * n_rows as i32 + gap + bottom;
    let size = (map.width, height.max(160) as u32);
    let mut svg = String::new();
    let drawn: DrawResult = (|| {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw_heatmap(&root, map, title_h, cell_h, gap)?;
        root.present()?;
        Ok(())
    })();
    match drawn {
        Ok(()) => decorate(svg, map.kind, &map.title),
        Err(err) => no_data(
            map.kind,
            &map.title,
            &format!("could not draw this chart: {err}"),
            size,
        ),
    }
}

fn draw_heatmap(
    root: &DrawingArea<SVGBackend, Shift>,
    map: &Heatmap,
    title_h: i32,
    cell_h: i32,
    gap: i32,
) -> DrawResult {
    let (w, _) = root.dim_in_pixel();
    let w = w as i32;
    root.draw(&Text::new(
        map.title.clone(),
        (16, 12),
        font(15.0).style(FontStyle::Bold).color(&INK),
    ))?;
    if let Some(sub) = &map.subtitle {
        root.draw(&Text::new(sub.clone(), (16, 33), text(12.0, MUTED)))?;
    }
    let mut row_labels: Vec<&String> = map.rows.iter().collect();
    if let Some((label, _)) = &map.summary {
        row_labels.push(label);
    }
    let label_w = row_labels
        .iter()
        .map(|l| text_width(l, 12.0))
        .fold(0.0, f64::max)
        .ceil() as i32;
    let left = 16 + 18 + label_w + 8;
    let bar_w = 14;
    let bar_labels_w = map
        .bar_ticks
        .iter()
        .map(|t| text_width(&(map.format)(*t), 11.0))
        .fold(0.0, f64::max)
        .ceil() as i32;
    let right = 16 + bar_labels_w + 6 + bar_w + 18;
    let n_cols = map.cols.len().max(1) as i32;
    let cell_w = ((w - left - right) / n_cols).clamp(8, 110);
    let grid_w = cell_w * n_cols;
    let top = title_h;
    let grid_h = cell_h * map.rows.len() as i32;
    let centre = Pos::new(HPos::Center, VPos::Center);
    let color_of = |v: f64| {
        let span = map.vmax - map.vmin;
        let t = if span > 0.0 {
            (v - map.vmin) / span
        } else {
            0.5
        };
        map.cmap.at(t)
    };
    let draw_row = |values: &[Vec<Option<f64>>], r: usize, y0: i32| -> DrawResult {
        for c in 0..map.cols.len() {
            let x0 = left + c as i32 * cell_w;
            let rect = [(x0 + 1, y0 + 1), (x0 + cell_w - 1, y0 + cell_h - 1)];
            match cell_value(values, r, c) {
                Some(v) => {
                    let fill = color_of(v);
                    root.draw(&Rectangle::new(rect, fill.filled()))?;
                    let label = (map.format)(v);
                    if text_width(&label, CELL_TEXT_PX) + 6.0 <= cell_w as f64 && cell_h >= 14 {
                        root.draw(&Text::new(
                            label,
                            (x0 + cell_w / 2, y0 + cell_h / 2),
                            text(CELL_TEXT_PX, text_on(fill)).pos(centre),
                        ))?;
                    }
                }
                None => {
                    root.draw(&Rectangle::new(rect, MISSING.mix(0.5).filled()))?;
                    if cell_h >= 14 && cell_w >= 14 {
                        root.draw(&Text::new(
                            "–".to_string(),
                            (x0 + cell_w / 2, y0 + cell_h / 2),
                            text(CELL_TEXT_PX, MUTED).pos(centre),
                        ))?;
                    }
                }
            }
        }
        Ok(())
    };
    let right_anchor = Pos::new(HPos::Right, VPos::Center);
    for (r, label) in map.rows.iter().enumerate() {
        let y0 = top + r as i32 * cell_h;
        draw_row(&map.values, r, y0)?;
        root.draw(&Text::new(
            label.clone(),
            (left - 8, y0 + cell_h / 2),
            text(12.0, MUTED).pos(right_anchor),
        ))?;
    }
    let mut bottom_of_cells = top + grid_h;
    if let Some((label, values)) = &map.summary {
        let y0 = top + grid_h + gap;
        draw_row(std::slice::from_ref(values), 0, y0)?;
        root.draw(&Text::new(
            label.clone(),
            (left - 8, y0 + cell_h / 2),
            font(12.0)
                .style(FontStyle::Bold)
                .color(&INK)
                .pos(right_anchor),
        ))?;
        bottom_of_cells = y0 + cell_h;
    }
    // Column labels, thinned so they never overlap.
    let widest = map
        .cols
        .iter()
        .map(|c| text_width(c, 12.0))
        .fold(0.0, f64::max);
    let stride = ((widest + 8.0) / cell_w as f64).ceil().max(1.0) as usize;
    let top_centre = Pos::new(HPos::Center, VPos::Top);
    for (c, label) in map.cols.iter().enumerate() {
        if c % stride != 0 {
            continue;
        }
        root.draw(&Text::new(
            label.clone(),
            (left + c as i32 * cell_w + cell_w / 2, bottom_of_cells + 6),
            text(12.0, MUTED).pos(top_centre),
        ))?;
    }
    root.draw(&Text::new(
        map.x_label.clone(),
        (left + grid_w / 2, bottom_of_cells + 26),
        text(13.0, INK).pos(top_centre),
    ))?;
    root.draw(&Text::new(
        map.y_label.clone(),
        (18, top + grid_h / 2),
        font(13.0)
            .color(&INK)
            .transform(FontTransform::Rotate270)
            .pos(centre),
    ))?;
    // Colour bar.
    let bx = left + grid_w + 18;
    let bar_top = top;
    let bar_h = grid_h.max(60);
    let steps = 48;
    for i in 0..steps {
        let t0 = i as f64 / steps as f64;
        let v = map.vmax - (map.vmax - map.vmin) * (t0 + 0.5 / steps as f64);
        let y0 = bar_top + (t0 * bar_h as f64) as i32;
        let y1 = bar_top + (((i + 1) as f64 / steps as f64) * bar_h as f64).ceil() as i32;
        root.draw(&Rectangle::new(
            [(bx, y0), (bx + bar_w, y1)],
            color_of(v).filled(),
        ))?;
    }
    let left_mid = Pos::new(HPos::Left, VPos::Center);
    for &tick in &map.bar_ticks {
        if map.vmax <= map.vmin || tick < map.vmin || tick > map.vmax {
            continue;
        }
        let y = bar_top + ((map.vmax - tick) / (map.vmax - map.vmin) * bar_h as f64) as i32;
        root.draw(&PathElement::new(
            vec![(bx + bar_w, y), (bx + bar_w + 4, y)],
            MUTED,
        ))?;
        root.draw(&Text::new(
            (map.format)(tick),
            (bx + bar_w + 7, y),
            text(11.0, MUTED).pos(left_mid),
        ))?;
    }
    Ok(())
}

fn percent(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// The passkey retrieval heatmap: depth bins (top = needle near the start) x context lengths,
/// coloured red (0) to green (1) on the paper's scale (-0.2 to 1.2), with the accuracy over
/// all depths as a bottom row. Lengths with fewer samples than planned are starred.
pub fn passkey_heatmap(summary: &PasskeySummary) -> String {
    let bins = summary.depth_bins.max(summary.heatmap.len());
    let rows: Vec<String> = (0..bins)
        .map(|b| {
            format!(
                "{:.0}–{:.0}%",
                100.0 * b as f64 / bins as f64,
                100.0 * (b + 1) as f64 / bins as f64
            )
        })
        .collect();
    let incomplete = |i: usize| {
        summary
            .samples
            .get(i)
            .is_some_and(|&n| n < summary.samples_per_length)
    };
    let cols: Vec<String> = summary
        .lengths
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut s = fmt_length(len as f64);
            if incomplete(i) {
                s.push('*');
            }
            s
        })
        .collect();
    let mut subtitle = match summary.t_recall {
        Some(t) => format!(
            "T_recall = {} (accuracy ≥ {:.0}%)",
            fmt_length(t as f64),
            summary.threshold * 100.0
        ),
        None => format!(
            "no length reaches {:.0}% accuracy",
            summary.threshold * 100.0
        ),
    };
    subtitle.push_str(&format!(
        " · {} samples per length",
        summary.samples_per_length
    ));
    if !summary.mitigation.is_none() {
        subtitle.push_str(&format!(" · mitigation {}", summary.mitigation.label()));
    }
    if (0..summary.lengths.len()).any(incomplete) {
        subtitle.push_str(" · * incomplete");
    }
    let accuracy: Vec<Option<f64>> = (0..summary.lengths.len())
        .map(|i| summary.accuracy.get(i).copied())
        .collect();
    render_heatmap(&Heatmap {
        kind: "passkey-heatmap",
        title: format!("Passkey retrieval · {}", summary.run),
        subtitle: Some(subtitle),
        rows,
        cols,
        values: summary.heatmap.clone(),
        summary: Some(("all depths".to_string(), accuracy)),
        x_label: "context length (tokens)".to_string(),
        y_label: "needle depth".to_string(),
        cmap: ColorMap::RdYlGn,
        vmin: -0.2,
        vmax: 1.2,
        bar_ticks: vec![0.0, 0.25, 0.5, 0.75, 1.0],
        format: percent,
        width: 760,
        empty_reason: "no passkey results (run `forgetlab eval passkey`)".to_string(),
    })
}

/// Values with four significant digits (decay rates close to 1 need them).
pub(crate) fn four_digits(v: f64) -> String {
    fmt_sig(v, 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use forgetlab_runs::config::{Mitigation, RecallRule};

    fn summary() -> PasskeySummary {
        PasskeySummary {
            run: "d_state-8_len-128".into(),
            lengths: vec![256, 512, 1024, 2048],
            samples_per_length: 4,
            accuracy: vec![1.0, 0.75, 0.25, 0.0],
            heatmap: vec![
                vec![Some(1.0), Some(1.0), Some(0.0), Some(0.0)],
                vec![Some(1.0), Some(0.5), None, Some(0.0)],
            ],
            depth_bins: 2,
            threshold: 0.9,
            t_recall: Some(256),
            mitigation: Mitigation::default(),
            samples: vec![4, 4, 4, 3],
            recall_rule: RecallRule::default(),
        }
    }

    #[test]
    fn passkey_heatmap_labels_cells_and_marks_incomplete_lengths() {
        let svg = passkey_heatmap(&summary());
        assert!(svg.contains("data-chart=\"passkey-heatmap\""));
        assert!(
            crate::has_text(&svg, "100%") && crate::has_text(&svg, "50%"),
            "cell labels missing"
        );
        assert!(
            crate::has_text(&svg, "2K*"),
            "incomplete length not starred"
        );
        assert!(svg.contains("T_recall = 256"));
        assert!(crate::has_text(&svg, "all depths"));
        // The worst cell is drawn in RdYlGn red on the paper's -0.2..1.2 scale, not grey.
        let zero = ColorMap::RdYlGn.at(0.2 / 1.4);
        let hex = format!("#{:02X}{:02X}{:02X}", zero.0, zero.1, zero.2);
        assert!(svg.contains(&hex), "expected the colour of 0% ({hex})");
    }

    #[test]
    fn malformed_or_empty_heatmaps_do_not_panic() {
        let mut s = summary();
        s.heatmap = vec![vec![Some(f64::NAN)], vec![]];
        s.accuracy = vec![];
        let svg = passkey_heatmap(&s);
        assert!(svg.contains("no data"));
        s.lengths.clear();
        s.depth_bins = 0;
        s.heatmap.clear();
        assert!(passkey_heatmap(&s).contains("no data"));
    }
}
