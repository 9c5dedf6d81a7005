//! Colours, fonts and colour maps shared by every chart, so that the dashboard, the report and
//! the files written next to results look like one family.

use plotters::style::{FontDesc, IntoFont, RGBColor, TextStyle};

/// Categorical palette (Tableau 10): one colour per run or prompt, cycled.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0xba, 0xb0, 0xac),
];

/// The `i`-th categorical colour.
pub fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub(crate) const INK: RGBColor = RGBColor(0x22, 0x2b, 0x36);
pub(crate) const MUTED: RGBColor = RGBColor(0x6b, 0x72, 0x80);
pub(crate) const AXIS: RGBColor = RGBColor(0x9c, 0xa3, 0xaf);
pub(crate) const GRID_BOLD: RGBColor = RGBColor(0xe5, 0xe7, 0xeb);
pub(crate) const GRID_LIGHT: RGBColor = RGBColor(0xf3, 0xf4, 0xf6);
pub(crate) const REFERENCE: RGBColor = RGBColor(0x55, 0x5d, 0x6b);
pub(crate) const MISSING: RGBColor = RGBColor(0xe5, 0xe7, 0xeb);

pub(crate) const FONT_FAMILY: &str = "sans-serif";

/// A font whose rendered size is `px` CSS pixels. plotters' SVG backend divides the requested
/// size by 1.24, so the request is scaled up by the same factor.
pub(crate) fn font(px: f64) -> FontDesc<'static> {
    (FONT_FAMILY, px * 1.24).into_font()
}

pub(crate) fn text(px: f64, color: RGBColor) -> TextStyle<'static> {
    font(px).color(&color)
}

/// Estimated rendered width of `s` at `px` pixels (sans-serif averages ~0.58 em per glyph).
pub(crate) fn text_width(s: &str, px: f64) -> f64 {
    s.chars().count() as f64 * px * 0.58
}

/// ColorBrewer RdYlGn (11 classes), red = 0, green = 1.
const RD_YL_GN: [(u8, u8, u8); 11] = [
    (0xa5, 0x00, 0x26),
    (0xd7, 0x30, 0x27),
    (0xf4, 0x6d, 0x43),
    (0xfd, 0xae, 0x61),
    (0xfe, 0xe0, 0x8b),
    (0xff, 0xff, 0xbf),
    (0xd9, 0xef, 0x8b),
    (0xa6, 0xd9, 0x6a),
    (0x66, 0xbd, 0x63),
    (0x1a, 0x98, 0x50),
    (0x00, 0x68, 0x37),
];

/// Viridis, sampled at 9 points.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (0x44, 0x01, 0x54),
    (0x47, 0x2d, 0x7b),
    (0x3b, 0x52, 0x8b),
    (0x2c, 0x72, 0x8e),
    (0x21, 0x91, 0x8c),
    (0x28, 0xae, 0x80),
    (0x5e, 0xc9, 0x62),
    (0xad, 0xdc, 0x30),
    (0xfd, 0xe7, 0x25),
];

/// A continuous colour map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMap {
    /// Red (bad) through yellow to green (good); the passkey heatmaps of the paper.
    RdYlGn,
    /// Perceptually uniform dark purple to yellow; for quantities with no good/bad direction.
    Viridis,
}

impl ColorMap {
    /// The colour of `t` in [0, 1] (clamped).
    pub fn at(self, t: f64) -> RGBColor {
        let stops: &[(u8, u8, u8)] = match self {
            ColorMap::RdYlGn => &RD_YL_GN,
            ColorMap::Viridis => &VIRIDIS,
        };
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let pos = t * (stops.len() - 1) as f64;
        let i = (pos.floor() as usize).min(stops.len() - 2);
        let f = pos - i as f64;
        let lerp = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
        let (a, b) = (stops[i], stops[i + 1]);
        RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
    }
}

/// Dark or light text, whichever reads better on `background`.
pub(crate) fn text_on(background: RGBColor) -> RGBColor {
    let RGBColor(r, g, b) = background;
    let luminance = 0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64;
    if luminance > 140.0 {
        INK
    } else {
        RGBColor(0xff, 0xff, 0xff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_maps_hit_their_end_stops_and_clamp() {
        assert_eq!(ColorMap::RdYlGn.at(0.0), RGBColor(0xa5, 0x00, 0x26));
        assert_eq!(ColorMap::RdYlGn.at(1.0), RGBColor(0x00, 0x68, 0x37));
        assert_eq!(ColorMap::RdYlGn.at(7.0), ColorMap::RdYlGn.at(1.0));
        assert_eq!(ColorMap::Viridis.at(f64::NAN), ColorMap::Viridis.at(0.0));
        assert_eq!(ColorMap::RdYlGn.at(0.5), RGBColor(0xff, 0xff, 0xbf));
    }
}
