//! Number formatting for tick labels, legends and tables. Lengths are written the paper's way
//! (`16K` = 16384 tokens); counts of tokens consumed use SI prefixes (`262k`, `1.5M`).

/// A context or training length: `16K` when a multiple of 1024 (`1.5K` for 1536), else the
/// plain count.
pub fn fmt_length(tokens: f64) -> String {
    if !tokens.is_finite() {
        return "–".to_string();
    }
    let abs = tokens.abs();
    for (unit, suffix) in [(1024.0 * 1024.0, "M"), (1024.0, "K")] {
        if abs >= unit {
            let scaled = tokens / unit;
            for decimals in 0..=2 {
                let factor = 10f64.powi(decimals);
                if ((scaled * factor).round() - scaled * factor).abs() < 1e-9 {
                    return format!(
                        "{}{suffix}",
                        trim(format!("{scaled:.*}", decimals as usize))
                    );
                }
            }
        }
    }
    if (tokens.round() - tokens).abs() < 1e-9 {
        format!("{}", tokens.round() as i64)
    } else {
        fmt_sig(tokens, 3)
    }
}

/// A count with an SI prefix and up to three significant digits: `950`, `262k`, `1.5M`.
pub fn fmt_si(value: f64) -> String {
    if !value.is_finite() {
        return "–".to_string();
    }
    let abs = value.abs();
    for (unit, suffix) in [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")] {
        if abs >= unit {
            return format!("{}{suffix}", fmt_sig(value / unit, 3));
        }
    }
    fmt_sig(value, 3)
}

/// `value` with `digits` significant digits, trailing zeros removed; scientific notation for
/// very small or very large magnitudes (`3e-4`).
pub fn fmt_sig(value: f64, digits: usize) -> String {
    if !value.is_finite() {
        return "–".to_string();
    }
    if value == 0.0 {
        return "0".to_string();
    }
    let magnitude = value.abs().log10().floor() as i32;
    if !(-3..6).contains(&magnitude) {
        let sci = format!("{:.*e}", digits.saturating_sub(1).min(16), value);
        return match sci.split_once('e') {
            Some((mantissa, exponent)) => format!("{}e{exponent}", trim(mantissa.to_string())),
            None => sci,
        };
    }
    let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
    trim(format!("{value:.decimals$}"))
}

/// A fixed number of decimals (for tables of losses): `3.142`.
pub fn fmt_fixed(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "–".to_string()
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_written_in_paper_units() {
        assert_eq!(fmt_length(16384.0), "16K");
        assert_eq!(fmt_length(1536.0), "1.5K");
        assert_eq!(fmt_length(1024.0 * 1024.0), "1M");
        assert_eq!(fmt_length(128.0), "128");
        assert_eq!(fmt_length(1000.0), "1000");
        assert_eq!(fmt_length(f64::NAN), "–");
    }

    #[test]
    fn si_and_significant_digits() {
        assert_eq!(fmt_si(262144.0), "262k");
        assert_eq!(fmt_si(1.5e6), "1.5M");
        assert_eq!(fmt_si(12.0), "12");
        assert_eq!(fmt_sig(3e-4, 3), "3e-4");
        assert_eq!(fmt_sig(0.0025, 2), "0.0025");
        assert_eq!(fmt_sig(3.14659, 3), "3.15");
        assert_eq!(fmt_sig(-4.469, 3), "-4.47");
        assert_eq!(fmt_sig(2.0e7, 2), "2e7");
        assert_eq!(fmt_sig(1e-320, 3), "1e-320");
        assert_eq!(fmt_sig(-2.5e-9, 3), "-2.5e-9");
    }
}
