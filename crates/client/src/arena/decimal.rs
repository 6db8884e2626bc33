//! [`DecimalKey`]: an exact, ordered key for the arena's decimal strings (prices), so a book
//! sorts by value without ever going through floating point.

/// Digits after the point a key keeps (the arena uses at most 8).
const SCALE: u32 = 12;

/// A decimal string as an integer count of 10⁻¹² units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DecimalKey(i128);

impl DecimalKey {
    /// Parses `"-12.345"`; `None` for anything else or more than 12 decimals.
    pub fn parse(s: &str) -> Option<DecimalKey> {
        let (neg, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        let frac_len = u32::try_from(frac.len()).ok()?;
        if int.is_empty() || !all_digits(int) || !all_digits(frac) || frac_len > SCALE {
            return None;
        }
        let int: i128 = int.parse().ok()?;
        let frac: i128 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        let units = int
            .checked_mul(10i128.pow(SCALE))?
            .checked_add(frac.checked_mul(10i128.pow(SCALE - frac_len))?)?;
        Some(DecimalKey(if neg { -units } else { units }))
    }

    /// True for zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_exactly() {
        let k = |s| DecimalKey::parse(s).expect(s);
        assert!(k("0.1") < k("0.10000001"));
        assert_eq!(k("50000"), k("50000.000"));
        assert!(k("-1") < k("0"));
        assert!(k("0").is_zero());
        assert_eq!(DecimalKey::parse("1e5"), None);
        assert_eq!(DecimalKey::parse(""), None);
        assert_eq!(DecimalKey::parse("."), None);
    }
}
