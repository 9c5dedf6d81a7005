//! The one drawing path of every x-y chart: a chart is described as axes plus layers (lines,
//! markers, bands, vertical markers), and [`render`] turns the description into SVG.
//!
//! Everything that makes charts robust lives here, once: values that cannot be drawn (NaN,
//! infinite, non-positive on a log axis) break a line instead of poisoning it, lines that leave
//! the plot area are clipped, a chart with nothing to draw says so, and a plotters failure
//! becomes a chart that shows the error instead of a panic.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

use crate::axis::{AxisSpec, ResolvedAxis};
use crate::style::{AXIS, GRID_BOLD, GRID_LIGHT, INK, MISSING, MUTED, font, text, text_width};

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Ticked, Ticked>>;
type DrawResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// A linear plot-space coordinate whose grid lines are exactly the ticks the axis chose.
struct Ticked {
    lo: f64,
    hi: f64,
    major: Vec<f64>,
    minor: Vec<f64>,
}

impl Ticked {
    fn of(axis: &ResolvedAxis) -> Self {
        Self {
            lo: axis.lo,
            hi: axis.hi,
            major: axis.ticks.clone(),
            minor: axis.minor.clone(),
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        // Halves first, so that extreme ranges do not overflow.
        let fraction = (value * 0.5 - self.lo * 0.5) / (self.hi * 0.5 - self.lo * 0.5);
        let pixels = (limit.1 - limit.0) as f64;
        if fraction.is_finite() {
            limit.0 + (pixels * fraction).round() as i32
        } else {
            limit.0
        }
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.major.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// Default chart size in pixels.
pub const DEFAULT_SIZE: (u32, u32) = (760, 420);

/// Line pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dash {
    Solid,
    Dashed,
    Dotted,
}

/// Point marker shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Dot,
    Ring,
    /// A filled square: a second family of points beside dots (a second mixer).
    Square,
    /// Hollow triangle pointing down: an upper bound.
    Below,
    /// Hollow triangle pointing up: a lower bound.
    Above,
}

#[derive(Debug, Clone)]
pub(crate) enum Shape {
    Line {
        points: Vec<(f64, f64)>,
        width: u32,
        dash: Dash,
        opacity: f64,
    },
    Markers {
        points: Vec<(f64, f64)>,
        marker: Marker,
        size: u32,
    },
    /// A filled band: (x, low, high).
    Band {
        points: Vec<(f64, f64, f64)>,
        opacity: f64,
    },
    /// A vertical reference line across the plot with an optional note at its top.
    VLine { x: f64, note: Option<String> },
}

/// One thing drawn on a chart.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub shape: Shape,
    pub color: RGBColor,
    /// Legend entry.
    pub label: Option<String>,
    /// Whether the layer's values decide the axis ranges (reference lines do not).
    pub sets_range: bool,
}

impl Layer {
    pub fn line(points: Vec<(f64, f64)>, color: RGBColor) -> Self {
        Self {
            shape: Shape::Line {
                points,
                width: 2,
                dash: Dash::Solid,
                opacity: 1.0,
            },
            color,
            label: None,
            sets_range: true,
        }
    }

    pub fn markers(points: Vec<(f64, f64)>, marker: Marker, color: RGBColor) -> Self {
        Self {
            shape: Shape::Markers {
                points,
                marker,
                size: 4,
            },
            color,
            label: None,
            sets_range: true,
        }
    }

    pub fn band(points: Vec<(f64, f64, f64)>, color: RGBColor, opacity: f64) -> Self {
        Self {
            shape: Shape::Band { points, opacity },
            color,
            label: None,
            sets_range: true,
        }
    }

    pub fn vline(x: f64, note: Option<String>, color: RGBColor) -> Self {
        Self {
            shape: Shape::VLine { x, note },
            color,
            label: None,
            sets_range: true,
        }
    }

    pub fn labeled(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn dashed(self) -> Self {
        self.with_dash(Dash::Dashed)
    }

    pub fn dotted(self) -> Self {
        self.with_dash(Dash::Dotted)
    }

    fn with_dash(mut self, pattern: Dash) -> Self {
        if let Shape::Line { dash, .. } = &mut self.shape {
            *dash = pattern;
        }
        self
    }

    pub fn width(mut self, w: u32) -> Self {
        match &mut self.shape {
            Shape::Line { width, .. } => *width = w,
            Shape::Markers { size, .. } => *size = w,
            _ => {}
        }
        self
    }

    pub fn opacity(mut self, o: f64) -> Self {
        match &mut self.shape {
            Shape::Line { opacity, .. } | Shape::Band { opacity, .. } => *opacity = o,
            _ => {}
        }
        self
    }

    /// Drawn where it falls, but never widens the axes.
    pub fn reference(mut self) -> Self {
        self.sets_range = false;
        self
    }
}

/// A complete x-y chart description.
#[derive(Debug, Clone)]
pub(crate) struct Plot {
    /// Machine-readable chart kind, written as `data-chart` on the `<svg>` element.
    pub kind: &'static str,
    pub title: String,
    pub subtitle: Option<String>,
    pub x: AxisSpec,
    pub y: AxisSpec,
    pub layers: Vec<Layer>,
    pub size: (u32, u32),
    /// Shown instead of a chart when no layer has a drawable value.
    pub empty_reason: String,
}

impl Plot {
    pub fn new(kind: &'static str, title: impl Into<String>, x: AxisSpec, y: AxisSpec) -> Self {
        Self {
            kind,
            title: title.into(),
            subtitle: None,
            x,
            y,
            layers: Vec::new(),
            size: DEFAULT_SIZE,
            empty_reason: "nothing to plot yet".to_string(),
        }
    }
}

/// Layers converted to plot space, split where values are missing.
enum Prepared {
    Lines(Vec<Vec<(f64, f64)>>),
    Markers(Vec<(f64, f64)>),
    Bands(Vec<Vec<(f64, f64, f64)>>),
    VLine(Option<f64>),
}

fn prepare(layer: &Layer, x: &AxisSpec, y: &AxisSpec) -> Prepared {
    let point = |(px, py): (f64, f64)| Some((x.to_plot(px)?, y.to_plot(py)?));
    match &layer.shape {
        Shape::Line { points, .. } => {
            let mut segments = vec![Vec::new()];
            for p in points {
                match point(*p) {
                    Some(q) => segments.last_mut().map(|s| s.push(q)).unwrap_or(()),
                    None => segments.push(Vec::new()),
                }
            }
            segments.retain(|s| !s.is_empty());
            Prepared::Lines(segments)
        }
        Shape::Markers { points, .. } => {
            Prepared::Markers(points.iter().filter_map(|p| point(*p)).collect())
        }
        Shape::Band { points, .. } => {
            let mut segments = vec![Vec::new()];
            for &(px, lo, hi) in points {
                match (x.to_plot(px), y.to_plot(lo), y.to_plot(hi)) {
                    (Some(a), Some(b), Some(c)) => {
                        segments.last_mut().map(|s| s.push((a, b, c))).unwrap_or(())
                    }
                    _ => segments.push(Vec::new()),
                }
            }
            segments.retain(|s| s.len() >= 2);
            Prepared::Bands(segments)
        }
        Shape::VLine { x: vx, .. } => Prepared::VLine(x.to_plot(*vx)),
    }
}

/// Renders `plot` to a standalone SVG document.
pub(crate) fn render(plot: &Plot) -> String {
    let prepared: Vec<Prepared> = plot
        .layers
        .iter()
        .map(|l| prepare(l, &plot.x, &plot.y))
        .collect();
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut has_data = false;
    for (layer, prep) in plot.layers.iter().zip(&prepared) {
        let counts = layer.sets_range;
        match prep {
            Prepared::Lines(segments) => {
                for &(a, b) in segments.iter().flatten() {
                    has_data = true;
                    if counts {
                        xs.push(a);
                        ys.push(b);
                    }
                }
            }
            Prepared::Markers(points) => {
                for &(a, b) in points {
                    has_data = true;
                    if counts {
                        xs.push(a);
                        ys.push(b);
                    }
                }
            }
            Prepared::Bands(segments) => {
                for &(a, lo, hi) in segments.iter().flatten() {
                    if counts {
                        xs.push(a);
                        ys.extend([lo, hi]);
                    }
                }
            }
            Prepared::VLine(Some(v)) if counts => xs.push(*v),
            Prepared::VLine(_) => {}
        }
    }
    if !has_data || ys.is_empty() {
        return no_data(plot.kind, &plot.title, &plot.empty_reason, plot.size);
    }
    let (Some(xa), Some(ya)) = (
        ResolvedAxis::resolve(&plot.x, &xs),
        ResolvedAxis::resolve(&plot.y, &ys),
    ) else {
        return no_data(plot.kind, &plot.title, &plot.empty_reason, plot.size);
    };
    let mut svg = String::new();
    match draw(plot, &prepared, &xa, &ya, &mut svg) {
        Ok(()) => decorate(svg, plot.kind, &plot.title),
        Err(err) => no_data(
            plot.kind,
            &plot.title,
            &format!("could not draw this chart: {err}"),
            plot.size,
        ),
    }
}

struct LegendItem {
    label: String,
    color: RGBColor,
    swatch: Swatch,
}

enum Swatch {
    Line(Dash, f64),
    Marker(Marker),
    Fill(f64),
}

fn legend_items(plot: &Plot) -> Vec<LegendItem> {
    let mut items: Vec<LegendItem> = Vec::new();
    for layer in &plot.layers {
        let Some(label) = &layer.label else { continue };
        if items
            .iter()
            .any(|i| &i.label == label && i.color == layer.color)
        {
            continue;
        }
        let swatch = match &layer.shape {
            Shape::Line { dash, opacity, .. } => Swatch::Line(*dash, *opacity),
            Shape::Markers { marker, .. } => Swatch::Marker(*marker),
            Shape::Band { opacity, .. } => Swatch::Fill(*opacity),
            Shape::VLine { .. } => Swatch::Line(Dash::Dashed, 1.0),
        };
        items.push(LegendItem {
            label: label.clone(),
            color: layer.color,
            swatch,
        });
    }
    items
}

const LEGEND_FONT: f64 = 12.0;
const LEGEND_ROW: i32 = 20;
const SWATCH_W: i32 = 22;

/// Places legend items in rows across `width`; returns (x, row) per item and the row count.
fn legend_layout(items: &[LegendItem], width: i32) -> (Vec<(i32, i32)>, i32) {
    let mut positions = Vec::new();
    let (mut x, mut row) = (0, 0);
    for item in items {
        let w = SWATCH_W + 6 + text_width(&item.label, LEGEND_FONT).ceil() as i32 + 18;
        if x > 0 && x + w > width {
            x = 0;
            row += 1;
        }
        positions.push((x, row));
        x += w;
    }
    (positions, if items.is_empty() { 0 } else { row + 1 })
}

fn draw(
    plot: &Plot,
    prepared: &[Prepared],
    xa: &ResolvedAxis,
    ya: &ResolvedAxis,
    out: &mut String,
) -> DrawResult {
    let (w, h) = plot.size;
    let items = legend_items(plot);
    let side = 16;
    let (positions, rows) = legend_layout(&items, w as i32 - 2 * side);
    let legend_h = if rows > 0 { rows * LEGEND_ROW + 10 } else { 0 };
    {
        let root = SVGBackend::with_string(out, plot.size).into_drawing_area();
        root.fill(&WHITE)?;
        let title_h = draw_title(&root, &plot.title, plot.subtitle.as_deref())?;
        let (upper, lower) = root.split_vertically(h as i32 - legend_h);
        let y_label_w = ya
            .ticks
            .iter()
            .map(|t| text_width(&ya.label_of(*t), 12.0))
            .fold(0.0, f64::max)
            .ceil() as i32
            + 38;
        let mut chart = ChartBuilder::on(&upper)
            .margin_top(title_h + 6)
            .margin_right(22)
            .margin_left(6)
            .margin_bottom(4)
            .x_label_area_size(46)
            .y_label_area_size(y_label_w)
            .build_cartesian_2d(Ticked::of(xa), Ticked::of(ya))?;
        let x_fmt = |v: &f64| xa.label_of(*v);
        let y_fmt = |v: &f64| ya.label_of(*v);
        chart
            .configure_mesh()
            .x_desc(xa.label.as_str())
            .y_desc(ya.label.as_str())
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .bold_line_style(GRID_BOLD)
            .light_line_style(GRID_LIGHT)
            .axis_style(AXIS)
            .label_style(text(12.0, MUTED))
            .axis_desc_style(text(13.0, INK))
            .set_all_tick_mark_size(4)
            .draw()?;
        for (index, (layer, prep)) in plot.layers.iter().zip(prepared).enumerate() {
            draw_layer(&mut chart, layer, prep, xa, ya, index)?;
        }
        for (item, (x, row)) in items.iter().zip(positions) {
            draw_legend_item(&lower, item, side + x, 4 + row * LEGEND_ROW)?;
        }
        root.present()?;
    }
    Ok(())
}

/// Draws the title (and subtitle) at the top left; returns the height used.
fn draw_title<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: Option<&str>,
) -> DrawResult<i32>
where
    DB::ErrorType: 'static,
{
    area.draw(&Text::new(
        title.to_string(),
        (16, 12),
        font(15.0).style(FontStyle::Bold).color(&INK),
    ))
    .map_err(|e| e.to_string())?;
    if let Some(sub) = subtitle {
        area.draw(&Text::new(sub.to_string(), (16, 33), text(12.0, MUTED)))
            .map_err(|e| e.to_string())?;
        Ok(50)
    } else {
        Ok(32)
    }
}

fn stroke(color: RGBColor, opacity: f64, width: u32) -> ShapeStyle {
    ShapeStyle {
        color: color.mix(opacity),
        filled: false,
        stroke_width: width,
    }
}

fn draw_layer(
    chart: &mut Chart,
    layer: &Layer,
    prep: &Prepared,
    xa: &ResolvedAxis,
    ya: &ResolvedAxis,
    index: usize,
) -> DrawResult {
    let color = layer.color;
    match (&layer.shape, prep) {
        (
            Shape::Line {
                width,
                dash,
                opacity,
                ..
            },
            Prepared::Lines(segments),
        ) => {
            let style = stroke(color, *opacity, *width);
            for segment in segments {
                for piece in clip_polyline(segment, xa, ya) {
                    match dash {
                        Dash::Solid => {
                            chart.draw_series(LineSeries::new(piece, style))?;
                        }
                        Dash::Dashed => {
                            chart.draw_series(DashedLineSeries::new(piece, 7, 5, style))?;
                        }
                        Dash::Dotted => {
                            chart.draw_series(DashedLineSeries::new(piece, 2, 4, style))?;
                        }
                    }
                }
            }
        }
        (Shape::Markers { marker, size, .. }, Prepared::Markers(points)) => {
            let inside: Vec<(f64, f64)> = points
                .iter()
                .copied()
                .filter(|(x, y)| xa.contains(*x) && ya.contains(*y))
                .collect();
            draw_markers(chart, &inside, *marker, *size as i32, color)?;
        }
        (Shape::Band { opacity, .. }, Prepared::Bands(segments)) => {
            for segment in segments {
                let clamp = |v: f64| v.clamp(ya.lo, ya.hi);
                let inside: Vec<(f64, f64, f64)> = segment
                    .iter()
                    .copied()
                    .filter(|(x, _, _)| xa.contains(*x))
                    .collect();
                if inside.len() < 2 {
                    continue;
                }
                let mut outline: Vec<(f64, f64)> =
                    inside.iter().map(|&(x, _, hi)| (x, clamp(hi))).collect();
                outline.extend(inside.iter().rev().map(|&(x, lo, _)| (x, clamp(lo))));
                chart.draw_series(std::iter::once(Polygon::new(
                    outline,
                    color.mix(*opacity).filled(),
                )))?;
            }
        }
        (Shape::VLine { note, .. }, Prepared::VLine(Some(x))) if xa.contains(*x) => {
            let style = stroke(color, 0.9, 1);
            chart.draw_series(DashedLineSeries::new(
                vec![(*x, ya.lo), (*x, ya.hi)],
                6,
                4,
                style,
            ))?;
            if let Some(note) = note {
                let stagger = 4 + 15 * (index as i32 % 3);
                let right_half = (*x - xa.lo) > (xa.hi - xa.lo) * 0.75;
                let anchor = if right_half {
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Right,
                        plotters::style::text_anchor::VPos::Top,
                    )
                } else {
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Left,
                        plotters::style::text_anchor::VPos::Top,
                    )
                };
                let dx = if right_half { -4 } else { 4 };
                chart.draw_series(std::iter::once(
                    EmptyElement::at((*x, ya.hi))
                        + Text::new(note.clone(), (dx, stagger), text(11.0, color).pos(anchor)),
                ))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn draw_markers(
    chart: &mut Chart,
    points: &[(f64, f64)],
    marker: Marker,
    s: i32,
    color: RGBColor,
) -> DrawResult {
    match marker {
        Marker::Dot => {
            chart.draw_series(points.iter().map(|&p| {
                EmptyElement::at(p)
                    + Circle::new((0, 0), s, color.filled())
                    + Circle::new((0, 0), s, stroke(WHITE, 1.0, 1))
            }))?;
        }
        Marker::Ring => {
            chart.draw_series(points.iter().map(|&p| {
                EmptyElement::at(p)
                    + Circle::new((0, 0), s, WHITE.filled())
                    + Circle::new((0, 0), s, stroke(color, 1.0, 2))
            }))?;
        }
        Marker::Square => {
            chart.draw_series(points.iter().map(|&p| {
                EmptyElement::at(p)
                    + Rectangle::new([(-s, -s), (s, s)], color.filled())
                    + Rectangle::new([(-s, -s), (s, s)], stroke(WHITE, 1.0, 1))
            }))?;
        }
        Marker::Below | Marker::Above => {
            let t = s + 2;
            let tri = if marker == Marker::Below {
                vec![(-t, -t + 1), (t, -t + 1), (0, t), (-t, -t + 1)]
            } else {
                vec![(-t, t - 1), (t, t - 1), (0, -t), (-t, t - 1)]
            };
            chart.draw_series(points.iter().map(|&p| {
                EmptyElement::at(p)
                    + Polygon::new(tri.clone(), WHITE.filled())
                    + PathElement::new(tri.clone(), stroke(color, 1.0, 2))
            }))?;
        }
    }
    Ok(())
}

fn draw_legend_item(
    area: &DrawingArea<SVGBackend, Shift>,
    item: &LegendItem,
    x: i32,
    y: i32,
) -> DrawResult {
    let mid = y + LEGEND_ROW / 2;
    match item.swatch {
        Swatch::Line(dash, opacity) => {
            let style = stroke(item.color, opacity.max(0.6), 2);
            match dash {
                Dash::Solid => area.draw(&PathElement::new(
                    vec![(x, mid), (x + SWATCH_W, mid)],
                    style,
                ))?,
                Dash::Dashed | Dash::Dotted => {
                    let (on, off) = if dash == Dash::Dashed { (6, 4) } else { (2, 3) };
                    let mut sx = x;
                    while sx < x + SWATCH_W {
                        let ex = (sx + on).min(x + SWATCH_W);
                        area.draw(&PathElement::new(vec![(sx, mid), (ex, mid)], style))?;
                        sx += on + off;
                    }
                }
            }
        }
        Swatch::Marker(marker) => {
            let c = (x + SWATCH_W / 2, mid);
            match marker {
                Marker::Dot => area.draw(&Circle::new(c, 4, item.color.filled()))?,
                Marker::Ring => area.draw(&Circle::new(c, 4, stroke(item.color, 1.0, 2)))?,
                Marker::Square => area.draw(&Rectangle::new(
                    [(c.0 - 4, c.1 - 4), (c.0 + 4, c.1 + 4)],
                    item.color.filled(),
                ))?,
                Marker::Below | Marker::Above => {
                    let t = 6;
                    let pts = if marker == Marker::Below {
                        vec![
                            (c.0 - t, c.1 - t + 1),
                            (c.0 + t, c.1 - t + 1),
                            (c.0, c.1 + t),
                        ]
                    } else {
                        vec![
                            (c.0 - t, c.1 + t - 1),
                            (c.0 + t, c.1 + t - 1),
                            (c.0, c.1 - t),
                        ]
                    };
                    let mut closed = pts.clone();
                    closed.push(pts[0]);
                    area.draw(&PathElement::new(closed, stroke(item.color, 1.0, 2)))?;
                }
            }
        }
        Swatch::Fill(opacity) => area.draw(&Rectangle::new(
            [(x, mid - 6), (x + SWATCH_W, mid + 6)],
            item.color.mix(opacity.max(0.25)).filled(),
        ))?,
    }
    area.draw(&Text::new(
        item.label.clone(),
        (x + SWATCH_W + 6, mid),
        text(LEGEND_FONT, INK).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Left,
            plotters::style::text_anchor::VPos::Center,
        )),
    ))?;
    Ok(())
}

/// Clips a polyline to the axes' rectangle (Liang–Barsky per segment), returning the visible
/// pieces.
fn clip_polyline(
    points: &[(f64, f64)],
    xa: &ResolvedAxis,
    ya: &ResolvedAxis,
) -> Vec<Vec<(f64, f64)>> {
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    if points.len() == 1 {
        let (x, y) = points[0];
        if xa.contains(x) && ya.contains(y) {
            pieces.push(vec![(x, y)]);
        }
        return pieces;
    }
    let mut current: Vec<(f64, f64)> = Vec::new();
    for pair in points.windows(2) {
        match clip_segment(pair[0], pair[1], (xa.lo, xa.hi), (ya.lo, ya.hi)) {
            Some((a, b)) => {
                let continues = current
                    .last()
                    .is_some_and(|l| (l.0 - a.0).abs() < 1e-12 && (l.1 - a.1).abs() < 1e-12);
                if !continues {
                    if current.len() > 1 {
                        pieces.push(std::mem::take(&mut current));
                    }
                    current = vec![a];
                }
                current.push(b);
            }
            None => {
                if current.len() > 1 {
                    pieces.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    if current.len() > 1 {
        pieces.push(current);
    }
    pieces
}

type Segment = ((f64, f64), (f64, f64));

fn clip_segment(a: (f64, f64), b: (f64, f64), xr: (f64, f64), yr: (f64, f64)) -> Option<Segment> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    if !(dx.is_finite() && dy.is_finite()) {
        // A segment spanning more than f64 can hold: not drawable.
        return None;
    }
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - xr.0),
        (dx, xr.1 - a.0),
        (-dy, a.1 - yr.0),
        (dy, yr.1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    (t0 <= t1).then_some((
        (a.0 + t0 * dx, a.1 + t0 * dy),
        (a.0 + t1 * dx, a.1 + t1 * dy),
    ))
}

/// A chart-sized placeholder that says there is nothing to plot, and why.
pub(crate) fn no_data(kind: &'static str, title: &str, reason: &str, size: (u32, u32)) -> String {
    let mut svg = String::new();
    let drawn: DrawResult = (|| {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let title_h = draw_title(&root, title, None)?;
        let (w, h) = (size.0 as i32, size.1 as i32);
        root.draw(&Rectangle::new(
            [(16, title_h + 8), (w - 16, h - 16)],
            ShapeStyle {
                color: MISSING.to_rgba(),
                filled: false,
                stroke_width: 1,
            },
        ))?;
        let centre = plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        );
        let mid_y = (title_h + h) / 2;
        root.draw(&Text::new(
            "no data".to_string(),
            (w / 2, mid_y - 12),
            font(18.0).color(&MUTED).pos(centre),
        ))?;
        for (i, line) in wrap(reason, ((w - 60) as f64 / (12.0 * 0.58)) as usize)
            .iter()
            .take(4)
            .enumerate()
        {
            root.draw(&Text::new(
                line.clone(),
                (w / 2, mid_y + 14 + 16 * i as i32),
                text(12.0, MUTED).pos(centre),
            ))?;
        }
        root.present()?;
        Ok(())
    })();
    match drawn {
        Ok(()) => decorate(svg, kind, title),
        // Drawing into a String cannot fail in practice; keep a valid, empty document anyway.
        Err(_) => decorate(
            format!(
                "<svg width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" xmlns=\"http://www.w3.org/2000/svg\"></svg>",
                size.0, size.1, size.0, size.1
            ),
            kind,
            title,
        ),
    }
}

/// Greedy word wrap to at most `width` characters per line.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let width = width.max(10);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in s.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Adds a class, the chart kind, an accessible name and a `<title>` to the root element.
pub(crate) fn decorate(svg: String, kind: &str, title: &str) -> String {
    let escaped = escape_xml(title);
    let Some(start) = svg.find("<svg") else {
        return svg;
    };
    let Some(end) = svg[start..].find('>').map(|i| start + i) else {
        return svg;
    };
    let mut out = String::with_capacity(svg.len() + 200);
    out.push_str(&svg[..start]);
    out.push_str(&format!(
        "<svg class=\"forgetlab-chart\" data-chart=\"{}\" role=\"img\" aria-label=\"{escaped}\"",
        escape_xml(kind)
    ));
    out.push_str(&svg[start + 4..=end]);
    out.push_str(&format!("\n<title>{escaped}</title>"));
    out.push_str(&svg[end + 1..]);
    out
}

pub(crate) fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::axis::{Scale, TickFormat};

    fn plot_with(layers: Vec<Layer>) -> Plot {
        let mut plot = Plot::new(
            "test",
            "A <test> & chart",
            AxisSpec::new("x", Scale::Linear, TickFormat::Number),
            AxisSpec::new("y", Scale::Log, TickFormat::Number),
        );
        plot.layers = layers;
        plot
    }

    #[test]
    fn empty_and_undrawable_data_give_a_no_data_chart() {
        let svg = render(&plot_with(vec![]));
        assert!(svg.contains("no data"), "{svg}");
        let svg = render(&plot_with(vec![Layer::line(
            vec![(0.0, f64::NAN), (1.0, -2.0), (f64::INFINITY, 1.0)],
            INK,
        )]));
        assert!(svg.contains("no data"));
        assert!(svg.contains("data-chart=\"test\""));
        assert!(svg.contains("A &lt;test&gt; &amp; chart"));
    }

    #[test]
    fn nan_breaks_a_line_and_the_rest_is_drawn() {
        let svg = render(&plot_with(vec![
            Layer::line(
                vec![
                    (0.0, 1.0),
                    (1.0, 2.0),
                    (2.0, f64::NAN),
                    (3.0, 3.0),
                    (4.0, 4.0),
                ],
                INK,
            )
            .labeled("loss"),
        ]));
        assert!(!svg.contains("no data"));
        assert!(!svg.contains("NaN"), "NaN leaked into the SVG");
        // Two line pieces plus the legend swatch, all in the line's colour.
        let ink = "<polyline fill=\"none\" opacity=\"1\" stroke=\"#222B36\"";
        assert_eq!(svg.matches(ink).count(), 3, "{svg}");
        assert!(crate::has_text(&svg, "loss"), "legend entry missing");
    }

    #[test]
    fn clipping_keeps_segments_inside_the_rectangle() {
        let axis = |lo: f64, hi: f64| {
            let spec = AxisSpec::new("a", Scale::Linear, TickFormat::Number);
            let mut a = ResolvedAxis::resolve(&spec, &[lo, hi]).unwrap();
            a.lo = lo;
            a.hi = hi;
            a
        };
        let (xa, ya) = (axis(0.0, 10.0), axis(0.0, 10.0));
        let pieces = clip_polyline(&[(-5.0, 5.0), (5.0, 5.0), (5.0, 20.0)], &xa, &ya);
        assert_eq!(pieces, vec![vec![(0.0, 5.0), (5.0, 5.0), (5.0, 10.0)]]);
        assert!(clip_polyline(&[(20.0, 20.0), (30.0, 30.0)], &xa, &ya).is_empty());
    }

    #[test]
    fn extreme_values_still_give_a_chart() {
        for values in [
            vec![(0.0, 1e308), (1.0, -1e308)],
            vec![(1e-300, 1e-300), (2e-300, 3e-300)],
            vec![(5.0, 7.0), (5.0, 7.0)],
            vec![(f64::MAX, f64::MIN_POSITIVE), (f64::MIN, 1.0)],
        ] {
            for y_scale in [Scale::Linear, Scale::Log] {
                let mut plot = Plot::new(
                    "test",
                    "extreme",
                    AxisSpec::new("x", Scale::Linear, TickFormat::Length),
                    AxisSpec::new("y", y_scale, TickFormat::Number),
                );
                plot.layers = vec![
                    Layer::line(values.clone(), INK),
                    Layer::vline(3.0, None, INK),
                ];
                let svg = render(&plot);
                assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
                assert!(
                    !svg.contains("NaN") && !svg.contains("inf"),
                    "{values:?}\n{}",
                    svg.lines()
                        .filter(|l| l.contains("NaN") || l.contains("inf"))
                        .take(3)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
    }

    #[test]
    fn wrap_respects_width() {
        let lines = wrap("one two three four five six seven", 10);
        assert!(lines.iter().all(|l| l.len() <= 10), "{lines:?}");
        assert_eq!(lines.join(" "), "one two three four five six seven");
    }
}
