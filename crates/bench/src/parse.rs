//! Reading server messages on the hot path without building a JSON tree.
//!
//! A fan-out subscriber must classify every frame and, for bench messages, pull out the
//! publisher id, counter and send time that the publisher wrote into `content`
//! (`{"p":3,"n":12,"t":<ns>,"pad":"…"}`). [`classify`] first tries byte scans that match
//! the shapes roomcast emits (`{"type":"message",…,"content":{"p":…`, `{"type":"ping"…`,
//! `{"type":"pong","id":…`); anything else — other field orders, whitespace, other
//! servers — goes through a borrowed serde struct that reads only `type`, `id`, `code`
//! and `content`, so results never depend on which path was taken.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::Deserialize;
use serde_json::value::RawValue;

/// A server message, as far as the generator cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Msg<'a> {
    /// A room message carrying a bench payload.
    Bench {
        /// Publisher index.
        p: u64,
        /// The publisher's counter.
        n: u64,
        /// Send time, clock nanoseconds.
        t: u64,
    },
    /// A room message whose content is not a bench payload.
    Foreign,
    /// A server heartbeat: answer `{"type":"pong"}`.
    Heartbeat,
    /// An answer to our `ping`, with its numeric id.
    Pong(Option<u64>),
    /// A success reply; `id` is the id's JSON text.
    Ack {
        /// The request id as JSON text.
        id: Option<&'a str>,
    },
    /// A failure reply.
    Error {
        /// The error code.
        code: Cow<'a, str>,
        /// The request id as JSON text.
        id: Option<&'a str>,
    },
    /// Any other well-formed message (welcome, user_left, …).
    Other,
    /// Not a JSON object with a string `type`.
    Invalid,
}

/// The JSON a client sends to answer a server heartbeat.
pub(crate) const PONG: &[u8] = br#"{"type":"pong"}"#;

static CONTENT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""content":{"p":"#));

/// Classifies one text frame.
#[inline]
pub(crate) fn classify(text: &[u8]) -> Msg<'_> {
    if let Some(rest) = text.strip_prefix(br#"{"type":"message""#) {
        if let Some(m) = scan_bench(rest) {
            return m;
        }
    } else if text.starts_with(br#"{"type":"ping""#) {
        return Msg::Heartbeat;
    } else if let Some(rest) = text.strip_prefix(br#"{"type":"pong""#) {
        if rest.first() == Some(&b'}') {
            return Msg::Pong(None);
        }
        if let Some(rest) = rest.strip_prefix(br#","id":"#) {
            let mut i = 0;
            if let Some(id) = digits(rest, &mut i) {
                if rest.get(i) == Some(&b'}') {
                    return Msg::Pong(Some(id));
                }
            }
        }
    }
    slow(text)
}

fn scan_bench(rest: &[u8]) -> Option<Msg<'static>> {
    let at = CONTENT.find(rest)? + CONTENT.needle().len();
    let s = &rest[at..];
    let mut i = 0;
    let p = digits(s, &mut i)?;
    expect(s, &mut i, br#","n":"#)?;
    let n = digits(s, &mut i)?;
    expect(s, &mut i, br#","t":"#)?;
    let t = digits(s, &mut i)?;
    matches!(s.get(i), Some(b',' | b'}')).then_some(Msg::Bench { p, n, t })
}

#[inline]
fn expect(s: &[u8], i: &mut usize, lit: &[u8]) -> Option<()> {
    if s.get(*i..*i + lit.len())? == lit {
        *i += lit.len();
        Some(())
    } else {
        None
    }
}

#[inline]
fn digits(s: &[u8], i: &mut usize) -> Option<u64> {
    let start = *i;
    let mut v: u64 = 0;
    while let Some(&b) = s.get(*i) {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        *i += 1;
    }
    (*i > start).then_some(v)
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Content {
    p: u64,
    n: u64,
    t: u64,
}

fn slow(text: &[u8]) -> Msg<'_> {
    let Ok(env) = serde_json::from_slice::<Envelope<'_>>(text) else {
        return Msg::Invalid;
    };
    let Some(ty) = env.ty else {
        return Msg::Invalid;
    };
    let id = env.id.map(RawValue::get);
    match &*ty {
        "message" => match env
            .content
            .and_then(|c| serde_json::from_str::<Content>(c.get()).ok())
        {
            Some(c) => Msg::Bench {
                p: c.p,
                n: c.n,
                t: c.t,
            },
            None => Msg::Foreign,
        },
        "ping" => Msg::Heartbeat,
        "pong" => Msg::Pong(id.and_then(|i| i.parse().ok())),
        "ack" => Msg::Ack { id },
        "error" => Msg::Error {
            code: env.code.unwrap_or(Cow::Borrowed("unknown")),
            id,
        },
        _ => Msg::Other,
    }
}

/// A server message during a catch-up, as far as the `replay` scenario cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Replay<'a> {
    /// A replayed event (`"replayed":true`) with its sequence.
    Event(u64),
    /// `replay_complete` with its `replayed_count`.
    Complete(u64),
    /// `recovery_failed`.
    Failed,
    /// Anything else, classified as by [`classify`].
    Other(Msg<'a>),
}

static SEQUENCE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""sequence":"#));
static REPLAYED_COUNT: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(br#""replayed_count":"#));

/// Classifies one text frame of a catch-up: a byte scan for the shapes roomcast emits
/// (`{"replayed":true,"type":…,"room":…,"sequence":N,…}` and
/// `{"type":"replay_complete",…,"replayed_count":K}`), serde for anything else.
#[inline]
pub(crate) fn classify_replay(text: &[u8]) -> Replay<'_> {
    if text.starts_with(br#"{"replayed":true,"#) {
        if let Some(at) = SEQUENCE.find(text) {
            let s = &text[at + SEQUENCE.needle().len()..];
            let mut i = 0;
            if let Some(seq) = digits(s, &mut i) {
                if matches!(s.get(i), Some(b',' | b'}')) {
                    return Replay::Event(seq);
                }
            }
        }
    } else if text.starts_with(br#"{"type":"replay_complete""#) {
        if let Some(at) = REPLAYED_COUNT.find(text) {
            let s = &text[at + REPLAYED_COUNT.needle().len()..];
            let mut i = 0;
            if let Some(k) = digits(s, &mut i) {
                if matches!(s.get(i), Some(b',' | b'}')) {
                    return Replay::Complete(k);
                }
            }
        }
    }
    slow_replay(text)
}

#[derive(Deserialize)]
struct ReplayEnvelope<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Cow<'a, str>>,
    replayed: Option<bool>,
    sequence: Option<u64>,
    replayed_count: Option<u64>,
}

fn slow_replay(text: &[u8]) -> Replay<'_> {
    let Ok(env) = serde_json::from_slice::<ReplayEnvelope<'_>>(text) else {
        return Replay::Other(Msg::Invalid);
    };
    match (env.replayed, env.sequence, env.ty.as_deref()) {
        (Some(true), Some(seq), _) => Replay::Event(seq),
        (_, _, Some("replay_complete")) => Replay::Complete(env.replayed_count.unwrap_or(0)),
        (_, _, Some("recovery_failed")) => Replay::Failed,
        _ => Replay::Other(classify(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_shapes_take_the_fast_path_and_agree_with_serde() {
        let ev = br#"{"replayed":true,"type":"tick","room":"r","sequence":42,"epoch":"ab","timestamp":"t","data":{"sequence":7}}"#;
        assert_eq!(classify_replay(ev), Replay::Event(42));
        assert_eq!(slow_replay(ev), Replay::Event(42));
        let done = br#"{"type":"replay_complete","room":"r","replayed_count":1000}"#;
        assert_eq!(classify_replay(done), Replay::Complete(1000));
        assert_eq!(slow_replay(done), Replay::Complete(1000));
        assert_eq!(
            classify_replay(br#"{ "sequence": 3, "replayed": true }"#),
            Replay::Event(3)
        );
        assert_eq!(
            classify_replay(br#"{"type":"recovery_failed","room":"r","reason":"gap"}"#),
            Replay::Failed
        );
        assert_eq!(
            classify_replay(br#"{"type":"tick","room":"r","sequence":5}"#),
            Replay::Other(Msg::Other)
        );
        assert_eq!(
            classify_replay(br#"{"type":"ping","timestamp":"x"}"#),
            Replay::Other(Msg::Heartbeat)
        );
    }

    #[test]
    fn roomcast_shapes_take_the_fast_path_and_agree_with_serde() {
        let m = br#"{"type":"message","room":"bench-0","sequence":7,"epoch":"ab","timestamp":"2026-01-01T00:00:00Z","from":"bench-x-p0","content":{"p":3,"n":12,"t":987654321,"pad":"xx"}}"#;
        let fast = classify(m);
        assert_eq!(
            fast,
            Msg::Bench {
                p: 3,
                n: 12,
                t: 987654321
            }
        );
        assert_eq!(slow(m), fast);
        assert_eq!(
            classify(br#"{"type":"ping","timestamp":"x"}"#),
            Msg::Heartbeat
        );
        assert_eq!(classify(br#"{"type":"pong","id":42}"#), Msg::Pong(Some(42)));
        assert_eq!(classify(br#"{"type":"pong"}"#), Msg::Pong(None));
    }

    #[test]
    fn other_shapes_fall_back_to_serde() {
        let spaced = br#"{ "content": {"t": 5, "n": 2, "p": 1}, "type": "message" }"#;
        assert_eq!(classify(spaced), Msg::Bench { p: 1, n: 2, t: 5 });
        assert_eq!(
            classify(br#"{"type":"message","room":"r","content":"hello"}"#),
            Msg::Foreign
        );
        assert_eq!(
            classify(br#"{"type":"ack","id":1,"room":"r"}"#),
            Msg::Ack { id: Some("1") }
        );
        assert_eq!(
            classify(br#"{"type":"error","code":"NOT_SUBSCRIBED","message":"m","id":"a"}"#),
            Msg::Error {
                code: Cow::Borrowed("NOT_SUBSCRIBED"),
                id: Some("\"a\"")
            }
        );
        assert_eq!(classify(br#"{"type":"pong","id":"x"}"#), Msg::Pong(None));
        assert_eq!(
            classify(br#"{"type":"welcome","client_id":"a"}"#),
            Msg::Other
        );
        assert_eq!(classify(b"[1]"), Msg::Invalid);
        assert_eq!(
            classify(b"{\"type\":\"message\",\"content\":{\"p\":1"),
            Msg::Invalid
        );
    }
}
