//! Server → client messages.
//!
//! Control replies (welcome, ack, error, pong, ...) are small and built per connection with
//! serde. Room events are different: they are encoded once per publish and the same bytes go
//! to every subscriber and into the history log, so [`encode_event`] writes them by hand from
//! pre-validated parts (ids and event types never need escaping), and [`mark_replayed`]
//! derives the replay form of a stored event without decoding it.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::{ClientId, Epoch, ErrorCode, RequestId, RoomName, Sequence};

/// Control messages addressed to one connection.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply<'a> {
    /// First message on every accepted connection.
    Welcome {
        /// The connection's client id.
        client_id: &'a ClientId,
        /// Seconds between server heartbeats.
        heartbeat_interval: u64,
        /// RFC 3339 server time.
        server_time: &'a str,
        /// Optional protocol features this server supports ([`FEATURES`]), so clients
        /// can feature-detect (e.g. `refresh`). Additive: clients ignore unknown entries.
        features: &'a [&'a str],
    },
    /// Success reply to a request that carried an `id`.
    Ack {
        /// The request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        /// The room the request was about, where relevant.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a RoomName>,
        /// Members of the room (presence).
        #[serde(skip_serializing_if = "Option::is_none")]
        members: Option<&'a [ClientId]>,
        /// The room's current sequence (subscribe).
        #[serde(skip_serializing_if = "Option::is_none")]
        sequence: Option<Sequence>,
        /// The room's current epoch (subscribe).
        #[serde(skip_serializing_if = "Option::is_none")]
        epoch: Option<&'a Epoch>,
    },
    /// A request failed; the connection stays open.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// Human-readable detail.
        message: &'a str,
        /// The request's id, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
    },
    /// Server heartbeat; clients answer `pong`.
    Ping {
        /// RFC 3339 server time.
        timestamp: &'a str,
    },
    /// Answer to a client `ping`.
    Pong {
        /// The ping's id, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
    },
    /// A client left (sent to the remaining members of `general`).
    UserLeft {
        /// Who left.
        client_id: &'a ClientId,
    },
    /// End of a history replay; live events follow.
    ReplayComplete {
        /// The replayed room.
        room: &'a RoomName,
        /// How many events were replayed.
        replayed_count: u64,
    },
    /// Ed25519 challenge: sign `challenge` (UTF-8 bytes) with the collective's key.
    AuthChallenge {
        /// `<collective_id>|<64 hex nonce>|<RFC3339 timestamp>`.
        challenge: &'a str,
        /// Seconds the challenge stays valid.
        expires_in: u64,
    },
    /// The challenge was answered correctly.
    AuthOk {
        /// The authenticated collective.
        collective_id: &'a str,
    },
    /// The session's token expires in `expires_in` seconds: send a `refresh` before then,
    /// or the connection is closed with 4003.
    TokenExpiring {
        /// Seconds until the session's credentials run out.
        expires_in: u64,
    },
    /// Success reply to a `refresh` with an `id`: `{"type":"ack","id":..,"expires_in":S}`,
    /// the seconds the new token keeps the session open.
    #[serde(rename = "ack")]
    RefreshAck {
        /// The request's id.
        id: &'a RequestId,
        /// Seconds until the new token runs out.
        expires_in: u64,
    },
    /// The server removed the session from a room it had joined (e.g. a refreshed token
    /// no longer allows it). Not a reply to a request; no id.
    Unsubscribed {
        /// The room left.
        room: &'a RoomName,
        /// Why, e.g. [`UNSUBSCRIBED_FORBIDDEN`].
        reason: &'a str,
    },
    /// History could not cover the gap; the client must re-fetch a snapshot.
    RecoveryFailed {
        /// The room.
        room: &'a RoomName,
        /// `gap` or `epoch_changed`.
        reason: &'a str,
        /// The room's current sequence.
        sequence: Sequence,
        /// The room's current epoch.
        epoch: &'a Epoch,
    },
}

impl Reply<'_> {
    /// Encodes the reply as JSON text.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail: every key is a string and every
        // value is a string, number, list of strings or raw JSON already validated.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"error\"}"))
    }
}

/// Optional features advertised in `welcome`: `refresh` = the server sends
/// `token_expiring` and accepts `refresh` for token-authenticated sessions.
pub const FEATURES: &[&str] = &["refresh"];

/// `unsubscribed` reason: the session's (refreshed) credentials no longer allow the room.
pub const UNSUBSCRIBED_FORBIDDEN: &str = "forbidden";

/// An acknowledgement with no extra fields.
pub fn ack(id: Option<&RequestId>) -> Reply<'_> {
    Reply::Ack {
        id,
        room: None,
        members: None,
        sequence: None,
        epoch: None,
    }
}

/// A room event type: 1-64 characters of `[A-Za-z0-9_.:-]`, so it is safe to splice into
/// JSON without escaping.
pub fn valid_event_type(ty: &str) -> bool {
    !ty.is_empty()
        && ty.len() <= 64
        && ty
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Event types that only the server emits: its control messages (`welcome`, `ack`, ...)
/// and the stream snapshots it builds itself. A room event of one of these types would be
/// mistaken for the server's own message, so no publisher may use them: the hub refuses
/// them for every publish path (client messages, the HTTP API, the arena).
pub const RESERVED_EVENT_TYPES: &[&str] = &[
    "welcome",
    "ack",
    "error",
    "ping",
    "pong",
    "user_left",
    "replay_complete",
    "recovery_failed",
    "auth_challenge",
    "auth_ok",
    "token_expiring",
    "unsubscribed",
    "portfolio_snapshot",
    "orders_snapshot",
    "order_snapshot",
    "book_snapshot",
];

/// Whether `ty` is one of [`RESERVED_EVENT_TYPES`].
pub fn is_reserved_event_type(ty: &str) -> bool {
    RESERVED_EVENT_TYPES.contains(&ty)
}

/// Why an event type cannot be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    /// Not 1-64 characters of `[A-Za-z0-9_.:-]`.
    #[error("an event type must be 1-64 characters of [A-Za-z0-9_.:-]")]
    Invalid,
    /// One of the server's own types.
    #[error("this event type is reserved for the server")]
    Reserved,
}

/// Checks that a publisher may use `ty` as a room event type.
pub fn check_event_type(ty: &str) -> Result<(), EventTypeError> {
    if !valid_event_type(ty) {
        return Err(EventTypeError::Invalid);
    }
    if is_reserved_event_type(ty) {
        return Err(EventTypeError::Reserved);
    }
    Ok(())
}

/// The body of a room event: the JSON members after the fixed header fields, without the
/// surrounding braces, e.g. `"from":"alice","content":{"x":1}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBody(String);

impl EventBody {
    /// The body of a chat message.
    pub fn chat(from: &ClientId, content: &RawValue) -> EventBody {
        let content = content.get();
        let mut s = String::with_capacity(24 + from.as_str().len() + content.len());
        s.push_str("\"from\":\"");
        s.push_str(from.as_str());
        s.push_str("\",\"content\":");
        s.push_str(content);
        EventBody(s)
    }

    /// The body of an event published through the server API: `"data":<data>`.
    pub fn data(data: &RawValue) -> EventBody {
        let data = data.get();
        let mut s = String::with_capacity(8 + data.len());
        s.push_str("\"data\":");
        s.push_str(data);
        EventBody(s)
    }

    /// The members as JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Encodes a room event once, for every subscriber and for the history log:
/// `{"type":T,"room":R,"sequence":n,"epoch":"E","timestamp":"..",<body>}`.
///
/// `ty` must satisfy [`valid_event_type`] and `epoch` must not need escaping (epochs are
/// generated by the server as hex).
pub fn encode_event(
    ty: &str,
    room: &RoomName,
    sequence: Sequence,
    epoch: &Epoch,
    timestamp: &str,
    body: &EventBody,
) -> String {
    let mut s = String::with_capacity(
        80 + ty.len() + room.as_str().len() + epoch.as_str().len() + timestamp.len() + body.0.len(),
    );
    push_event_start(&mut s, ty, room);
    s.push_str(&sequence.0.to_string());
    s.push_str(EVENT_EPOCH_INFIX);
    s.push_str(epoch.as_str());
    push_event_end(&mut s, timestamp, body);
    s
}

/// An event's text up to its sequence digits: `{"type":T,"room":R,"sequence":`.
#[inline]
fn push_event_start(s: &mut String, ty: &str, room: &RoomName) {
    s.push_str("{\"type\":\"");
    s.push_str(ty);
    s.push_str("\",\"room\":\"");
    s.push_str(room.as_str());
    s.push_str("\",\"sequence\":");
}

/// An event's text after its epoch's characters: `","timestamp":"..",<body>}`.
#[inline]
fn push_event_end(s: &mut String, timestamp: &str, body: &EventBody) {
    s.push_str("\",\"timestamp\":\"");
    s.push_str(timestamp);
    s.push('"');
    if !body.0.is_empty() {
        s.push(',');
        s.push_str(&body.0);
    }
    s.push('}');
}

/// What comes between an event's sequence digits and its epoch in [`encode_event`]'s
/// layout: a sequencer elsewhere (the Redis script of a cluster) writes
/// `prefix + sequence + EVENT_EPOCH_INFIX + epoch + suffix` and gets the exact bytes
/// `encode_event` would have produced, so no node encodes an event again.
pub const EVENT_EPOCH_INFIX: &str = ",\"epoch\":\"";

/// An event encoded around its position: [`encode_event`] is
/// `prefix + sequence + EVENT_EPOCH_INFIX + epoch + suffix` (see [`EVENT_EPOCH_INFIX`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventParts {
    /// Everything before the sequence digits.
    pub prefix: String,
    /// Everything after the epoch's characters: `","timestamp":...}`.
    pub suffix: String,
}

/// Encodes an event whose sequence and epoch are assigned elsewhere (see [`EventParts`]).
pub fn encode_event_parts(
    ty: &str,
    room: &RoomName,
    timestamp: &str,
    body: &EventBody,
) -> EventParts {
    let mut prefix = String::with_capacity(32 + ty.len() + room.as_str().len());
    push_event_start(&mut prefix, ty, room);
    let mut suffix = String::with_capacity(24 + timestamp.len() + body.0.len());
    push_event_end(&mut suffix, timestamp, body);
    EventParts { prefix, suffix }
}

/// The `(sequence, epoch)` of a frame produced by [`encode_event`] (or spliced from
/// [`EventParts`]), read from its fixed layout without parsing the body: the type and room
/// that come first cannot contain a quote, so the first `"sequence":` is the event's.
pub fn event_position(frame: &[u8]) -> Option<(Sequence, &str)> {
    let text = std::str::from_utf8(frame).ok()?;
    let at = text.find("\"sequence\":")? + "\"sequence\":".len();
    let rest = &text[at..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let sequence = rest[..digits].parse::<u64>().ok()?;
    let rest = rest[digits..].strip_prefix(EVENT_EPOCH_INFIX)?;
    let end = rest.find('"')?;
    Some((Sequence(sequence), &rest[..end]))
}

/// An ephemeral broadcast to every connection (not part of any room's history):
/// `{"type":T,"timestamp":"..","data":<data>}`. `ty` must satisfy [`valid_event_type`].
pub fn encode_broadcast(ty: &str, timestamp: &str, data: &RawValue) -> String {
    format!(
        "{{\"type\":\"{ty}\",\"timestamp\":\"{timestamp}\",\"data\":{}}}",
        data.get()
    )
}

/// The replay form of a stored event: the same object with `"replayed":true` added.
pub fn mark_replayed(event: &str) -> String {
    let rest = event.strip_prefix('{').unwrap_or(event);
    let mut s = String::with_capacity(event.len() + 16);
    s.push_str("{\"replayed\":true,");
    s.push_str(rest);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_parts_splice_to_the_encoded_event() {
        let room = RoomName::parse("chat").expect("room");
        let from = ClientId::parse("alice").expect("id");
        let content = RawValue::from_string("{\"sequence\": 9}".into()).expect("raw");
        let body = EventBody::chat(&from, &content);
        let ts = "2026-01-01T00:00:00Z";
        let whole = encode_event(
            "message",
            &room,
            Sequence(42),
            &Epoch::new("ab12"),
            ts,
            &body,
        );
        let parts = encode_event_parts("message", &room, ts, &body);
        let spliced = format!(
            "{}42{}ab12{}",
            parts.prefix, EVENT_EPOCH_INFIX, parts.suffix
        );
        assert_eq!(spliced, whole);
        assert_eq!(
            event_position(whole.as_bytes()),
            Some((Sequence(42), "ab12"))
        );
        assert_eq!(event_position(b"{\"type\":\"x\"}"), None);
    }

    #[test]
    fn event_is_valid_json_with_all_fields() {
        let room = RoomName::parse("chat").expect("room");
        let from = ClientId::parse("alice").expect("id");
        let content = RawValue::from_string("{\"x\": [1,2]}".into()).expect("raw");
        let body = EventBody::chat(&from, &content);
        let text = encode_event(
            "message",
            &room,
            Sequence(7),
            &Epoch::new("ab12"),
            "2026-01-01T00:00:00Z",
            &body,
        );
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid json");
        assert_eq!(v["type"], "message");
        assert_eq!(v["room"], "chat");
        assert_eq!(v["sequence"], 7);
        assert_eq!(v["epoch"], "ab12");
        assert_eq!(v["from"], "alice");
        assert_eq!(v["content"]["x"][1], 2);
        let replayed: serde_json::Value =
            serde_json::from_str(&mark_replayed(&text)).expect("valid json");
        assert_eq!(replayed["replayed"], true);
        assert_eq!(replayed["sequence"], 7);
    }

    #[test]
    fn replies_have_the_documented_shape() {
        let id = crate::parse_request(r#"{"type":"ping","id":"a"}"#)
            .expect("ok")
            .id;
        assert_eq!(ack(id.as_ref()).to_json(), r#"{"type":"ack","id":"a"}"#);
        assert_eq!(Reply::Pong { id: None }.to_json(), r#"{"type":"pong"}"#);
        let e = Reply::Error {
            code: ErrorCode::NotSubscribed,
            message: "m",
            id: None,
        }
        .to_json();
        assert_eq!(
            e,
            r#"{"type":"error","code":"NOT_SUBSCRIBED","message":"m"}"#
        );
        assert_eq!(
            Reply::TokenExpiring { expires_in: 30 }.to_json(),
            r#"{"type":"token_expiring","expires_in":30}"#
        );
        let id = crate::parse_request(r#"{"type":"ping","id":"r"}"#)
            .expect("ok")
            .id
            .expect("an id");
        assert_eq!(
            Reply::RefreshAck {
                id: &id,
                expires_in: 3600
            }
            .to_json(),
            r#"{"type":"ack","id":"r","expires_in":3600}"#
        );
        let room = RoomName::parse("chat:b").expect("room");
        assert_eq!(
            Reply::Unsubscribed {
                room: &room,
                reason: UNSUBSCRIBED_FORBIDDEN
            }
            .to_json(),
            r#"{"type":"unsubscribed","room":"chat:b","reason":"forbidden"}"#
        );
    }
}

/// Why history could not cover what a client missed: the `reason` of a `recovery_failed`
/// event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryFailure {
    /// Some events after the client's position were trimmed or expired (`gap`).
    Gap,
    /// The room's history was reset since the client's position was taken
    /// (`epoch_changed`).
    EpochChanged,
}

impl RecoveryFailure {
    /// The wire spelling of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryFailure::Gap => "gap",
            RecoveryFailure::EpochChanged => "epoch_changed",
        }
    }
}
