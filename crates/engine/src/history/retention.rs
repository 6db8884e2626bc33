//! Retention rules: which rooms keep history, how many events and for how long.
//!
//! Rules are matched by room-name prefix and the longest matching prefix wins, so a config
//! can say "all rooms keep 1000 events for 5 minutes, `ticker:` rooms keep none, `chat:`
//! rooms keep 10 000 for an hour" in three lines. A room no rule matches keeps no history.
//! Both stores (memory and durable) take their limits from here, so they trim alike.
//!
//! In a config file a rule reads `{ prefix = "chat:", max_events = 500, ttl = "10m" }`; `ttl`
//! is a number of seconds or a string with a unit (`ms`, `s`, `m`, `h`).

use std::time::Duration;

use roomcast_protocol::RoomName;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How much history the rooms whose names start with `prefix` keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// Room-name prefix this rule applies to; `""` matches every room.
    pub prefix: String,
    /// Most events kept per room; 0 means the rooms keep no history at all.
    pub max_events: usize,
    /// How long an event is kept after it was published.
    #[serde(serialize_with = "ser_ttl", deserialize_with = "de_ttl")]
    pub ttl: Duration,
}

impl RetentionRule {
    /// Whether rooms under this rule keep any history.
    pub fn keeps(&self) -> bool {
        self.max_events > 0
    }

    /// The TTL in whole milliseconds (saturating), for comparing with event timestamps.
    pub fn ttl_millis(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }
}

/// The set of retention rules. See the module docs for how a room's rule is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// The rules; when two have the same prefix, the first listed wins.
    pub rules: Vec<RetentionRule>,
}

impl Default for Retention {
    /// Every room keeps its last 1000 events for 5 minutes.
    fn default() -> Retention {
        Retention::all(1000, Duration::from_secs(300))
    }
}

impl Retention {
    /// One rule for every room.
    pub fn all(max_events: usize, ttl: Duration) -> Retention {
        Retention {
            rules: vec![RetentionRule {
                prefix: String::new(),
                max_events,
                ttl,
            }],
        }
    }

    /// No room keeps history.
    pub fn none() -> Retention {
        Retention { rules: Vec::new() }
    }

    /// The rule with the longest prefix of `room`'s name, if any rule matches.
    pub fn rule_for(&self, room: &RoomName) -> Option<&RetentionRule> {
        let name = room.as_str();
        let mut best: Option<&RetentionRule> = None;
        for rule in self
            .rules
            .iter()
            .filter(|r| name.starts_with(r.prefix.as_str()))
        {
            if best.is_none_or(|b| rule.prefix.len() > b.prefix.len()) {
                best = Some(rule);
            }
        }
        best
    }

    /// Whether `room` keeps any history.
    pub fn keeps(&self, room: &RoomName) -> bool {
        self.rule_for(room).is_some_and(RetentionRule::keeps)
    }
}

fn ser_ttl<S: Serializer>(ttl: &Duration, s: S) -> Result<S::Ok, S::Error> {
    if ttl.subsec_nanos() == 0 {
        s.serialize_u64(ttl.as_secs())
    } else {
        s.serialize_str(&format!("{}ms", ttl.as_millis()))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTtl {
    Secs(u64),
    Float(f64),
    Text(String),
}

fn de_ttl<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    use serde::de::Error;
    match RawTtl::deserialize(d)? {
        RawTtl::Secs(s) => Ok(Duration::from_secs(s)),
        RawTtl::Float(f) => Duration::try_from_secs_f64(f).map_err(D::Error::custom),
        RawTtl::Text(t) => {
            crate::duration::parse(&t).map_err(|e| D::Error::custom(format!("invalid ttl: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).expect("valid room name")
    }

    fn rule(prefix: &str, max_events: usize) -> RetentionRule {
        RetentionRule {
            prefix: prefix.into(),
            max_events,
            ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn default_keeps_every_room() {
        let r = Retention::default();
        let got = r.rule_for(&room("anything")).expect("default matches all");
        assert_eq!(got.max_events, 1000);
        assert_eq!(got.ttl, Duration::from_secs(300));
        assert!(r.keeps(&room("x")));
    }

    #[test]
    fn longest_prefix_wins_and_zero_means_none() {
        let r = Retention {
            rules: vec![
                rule("", 10),
                rule("chat:", 20),
                rule("chat:vip", 30),
                rule("ticker:", 0),
            ],
        };
        assert_eq!(r.rule_for(&room("general")).map(|r| r.max_events), Some(10));
        assert_eq!(
            r.rule_for(&room("chat:lobby")).map(|r| r.max_events),
            Some(20)
        );
        assert_eq!(
            r.rule_for(&room("chat:vip-1")).map(|r| r.max_events),
            Some(30)
        );
        assert!(!r.keeps(&room("ticker:BTC")));
        assert!(r.keeps(&room("chat:lobby")));
    }

    #[test]
    fn first_of_equal_prefixes_wins_and_no_match_is_none() {
        let r = Retention {
            rules: vec![rule("a", 1), rule("a", 2)],
        };
        assert_eq!(r.rule_for(&room("ab")).map(|r| r.max_events), Some(1));
        assert!(r.rule_for(&room("b")).is_none());
        assert!(!Retention::none().keeps(&room("a")));
    }

    #[test]
    fn deserializes_ttl_forms() -> Result<(), serde_json::Error> {
        let r: Retention = serde_json::from_str(
            r#"{"rules":[{"prefix":"","max_events":5,"ttl":300},
                         {"prefix":"a","max_events":5,"ttl":"250ms"},
                         {"prefix":"b","max_events":5,"ttl":"5m"},
                         {"prefix":"c","max_events":5,"ttl":1.5}]}"#,
        )?;
        let ttls: Vec<Duration> = r.rules.iter().map(|r| r.ttl).collect();
        assert_eq!(
            ttls,
            [
                Duration::from_secs(300),
                Duration::from_millis(250),
                Duration::from_secs(300),
                Duration::from_millis(1500)
            ]
        );
        // One duration syntax everywhere (crate::duration): humantime's words work too.
        let days: RetentionRule =
            serde_json::from_str(r#"{"prefix":"","max_events":1,"ttl":"5 days"}"#)?;
        assert_eq!(days.ttl, Duration::from_secs(5 * 86_400));
        assert!(serde_json::from_str::<RetentionRule>(
            r#"{"prefix":"","max_events":1,"ttl":"5 fortnights"}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<RetentionRule>(r#"{"prefix":"","max_events":1,"ttl":-1}"#)
                .is_err()
        );
        let back: Retention = serde_json::from_str(&serde_json::to_string(&r)?)?;
        assert_eq!(back, r);
        Ok(())
    }
}
