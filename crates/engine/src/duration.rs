//! The one way durations are written by people, in config files and on the command line:
//! a bare integer is seconds (`300`), anything else is humantime's syntax (`500ms`, `30s`,
//! `5m`, `1h 30m`, `2days`). One parser, so a TTL means the same in `roomcast token --ttl`
//! as in a retention rule, and overflow is an error rather than a wrapped number.

use std::time::Duration;

/// A duration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration: write seconds (300) or e.g. 500ms, 30s, 5m, 1h ({reason})")]
pub struct DurationError {
    text: String,
    reason: String,
}

/// Parses a duration as described in the module docs.
///
/// # Errors
/// [`DurationError`] naming the text, for anything else (including overflow).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let error = |reason: String| DurationError {
        text: text.to_owned(),
        reason,
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| error(e.to_string()));
    }
    humantime::parse_duration(text).map_err(|e| error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_units_and_combinations() {
        assert_eq!(parse("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse(" 90s "), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn nonsense_and_overflow_are_errors_not_panics() {
        for bad in [
            "",
            "abc",
            "1y2",
            "-5s",
            "99999999999999999999999",
            "99999999999999999999d",
            "18446744073709551615d",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.to_string().contains("is not a duration"), "{e}");
        }
    }
}
