//! Exact decimal strings to integers and back: the only place money and quantities cross
//! between text and numbers.
//!
//! The wire carries amounts as plain decimal strings (`"101.25"`, `"0.5"`); inside, every
//! amount is an integer count of some unit (`10^-scale`). Parsing accepts only
//! `digits[.digits]`: no sign, no exponent, no spaces, at most [`MAX_DECIMAL_LEN`] bytes,
//! so no input can be ambiguous or expensive. A string with more fractional digits than the
//! scale is refused unless the extra digits are zeros (the value must be exact). Formatting
//! prints the shortest exact form (`"100"`, `"0.5"`, `"-1.25"`): trailing zeros are trimmed.
//! No floating point is involved anywhere.

/// The longest decimal string accepted, in bytes.
pub const MAX_DECIMAL_LEN: usize = 40;

/// The largest scale (fractional digits) an amount may use: `10^18` still leaves room in
/// `i128` for any `u64` count of it.
pub const MAX_SCALE: u32 = 18;

/// Why a decimal string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not of the form `digits[.digits]`, or longer than [`MAX_DECIMAL_LEN`].
    #[error("not a plain decimal number (digits with an optional fraction)")]
    Syntax,
    /// More significant fractional digits than the unit allows.
    #[error("more than {0} decimal places")]
    TooPrecise(u32),
    /// The value does not fit.
    #[error("number too large")]
    Overflow,
}

/// `10^exp` as `i128`, if it fits.
pub fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

fn split(s: &str) -> Result<(&str, &str), DecimalError> {
    if s.is_empty() || s.len() > MAX_DECIMAL_LEN {
        return Err(DecimalError::Syntax);
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) if !f.is_empty() => (i, f),
        Some(_) => return Err(DecimalError::Syntax),
        None => (s, ""),
    };
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) {
        return Err(DecimalError::Syntax);
    }
    Ok((int, frac))
}

/// The number of significant fractional digits of `s` (trailing zeros ignored):
/// `"0.010"` has 2, `"5"` has 0.
///
/// # Errors
/// [`DecimalError::Syntax`] if `s` is not a plain decimal.
pub fn scale_of(s: &str) -> Result<u32, DecimalError> {
    let (_, frac) = split(s)?;
    Ok(frac.trim_end_matches('0').len() as u32)
}

/// Parses `s` as a count of `10^-scale` units: `parse_units("1.5", 2) == Ok(150)`.
///
/// # Errors
/// [`DecimalError`] for bad syntax, a value finer than the unit, or one above `i128`.
pub fn parse_units(s: &str, scale: u32) -> Result<i128, DecimalError> {
    let (int, frac) = split(s)?;
    let frac = frac.trim_end_matches('0');
    if frac.len() as u32 > scale {
        return Err(DecimalError::TooPrecise(scale));
    }
    let mut value: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
            .ok_or(DecimalError::Overflow)?;
    }
    let pad = scale - frac.len() as u32;
    pow10(pad)
        .and_then(|p| value.checked_mul(p))
        .ok_or(DecimalError::Overflow)
}

/// Formats a count of `10^-scale` units as the shortest exact decimal string.
pub fn format_units(units: i128, scale: u32) -> String {
    let digits = units.unsigned_abs().to_string();
    let scale = scale as usize;
    let (int, frac) = if digits.len() > scale {
        let (i, f) = digits.split_at(digits.len() - scale);
        (i.to_owned(), f.to_owned())
    } else {
        ("0".to_owned(), "0".repeat(scale - digits.len()) + &digits)
    };
    let frac = frac.trim_end_matches('0');
    let mut out = String::with_capacity(int.len() + frac.len() + 2);
    if units < 0 {
        out.push('-');
    }
    out.push_str(&int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_values_at_a_scale() {
        assert_eq!(parse_units("101.25", 2), Ok(10125));
        assert_eq!(parse_units("0.5", 4), Ok(5000));
        assert_eq!(parse_units("7", 0), Ok(7));
        assert_eq!(parse_units("1.500", 1), Ok(15));
        assert_eq!(parse_units("0.0001", 4), Ok(1));
        assert_eq!(parse_units("000.10", 2), Ok(10));
    }

    #[test]
    fn refuses_everything_but_plain_decimals() {
        for bad in [
            "", ".5", "5.", "-1", "+1", "1e3", "1E3", " 1", "1 ", "1,5", "0x10", "1.2.3", "NaN",
            "inf", "١",
        ] {
            assert_eq!(parse_units(bad, 4), Err(DecimalError::Syntax), "{bad:?}");
        }
        assert_eq!(parse_units(&"1".repeat(41), 0), Err(DecimalError::Syntax));
        assert_eq!(parse_units("0.001", 2), Err(DecimalError::TooPrecise(2)));
        assert_eq!(
            parse_units("99999999999999999999999999999999999999", 18),
            Err(DecimalError::Overflow)
        );
    }

    #[test]
    fn formats_the_shortest_exact_form() {
        assert_eq!(format_units(10125, 2), "101.25");
        assert_eq!(format_units(10000, 2), "100");
        assert_eq!(format_units(5000, 4), "0.5");
        assert_eq!(format_units(1, 4), "0.0001");
        assert_eq!(format_units(0, 6), "0");
        assert_eq!(format_units(-125, 2), "-1.25");
        assert_eq!(format_units(-5, 3), "-0.005");
        assert_eq!(format_units(120, 0), "120");
    }

    #[test]
    fn round_trips() {
        for (units, scale) in [
            (1i128, 8u32),
            (123_456_789, 3),
            (10, 1),
            (i128::from(u64::MAX), 6),
        ] {
            let s = format_units(units, scale);
            assert_eq!(parse_units(&s, scale), Ok(units), "{s}");
        }
        assert_eq!(scale_of("0.010"), Ok(2));
        assert_eq!(scale_of("5"), Ok(0));
    }
}
