//! Timestamps on the wire: RFC 3339 in UTC with an explicit offset (`Z`), e.g.
//! `2026-11-26T09:18:32.123456Z`. One helper so every message formats time the same way.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The current time as an RFC 3339 timestamp with microsecond precision.
pub fn now_rfc3339() -> String {
    format_rfc3339(OffsetDateTime::now_utc())
}

/// Formats an instant as RFC 3339 (UTC, microseconds).
pub fn format_rfc3339(at: OffsetDateTime) -> String {
    let at = at.replace_nanosecond(at.microsecond() * 1000).unwrap_or(at);
    // Formatting a UTC OffsetDateTime as RFC 3339 fails only for years outside 0..=9999.
    at.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Parses an RFC 3339 timestamp.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_offset_and_round_trips() {
        let s = now_rfc3339();
        assert!(s.ends_with('Z'), "{s}");
        assert!(parse_rfc3339(&s).is_some(), "{s}");
        let at = OffsetDateTime::from_unix_timestamp(951_782_400).expect("valid instant");
        assert_eq!(format_rfc3339(at), "2000-02-29T00:00:00Z");
    }
}
