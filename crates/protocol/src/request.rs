//! Client → server requests and their classification into error codes.
//!
//! Parsing borrows from the frame: `content` stays a [`RawValue`] slice so a chat message
//! is re-emitted byte for byte without being decoded into a tree and encoded again. The
//! order of checks is part of the protocol: invalid JSON, then shape (`type` present and a
//! string, `id` a string or number), then an unknown `type`, then per-type fields.

use std::borrow::Cow;
use std::fmt;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::{ErrorCode, RoomName};

/// A request's `id`: any JSON string or number, echoed back with its JSON type preserved.
#[derive(Clone)]
pub struct RequestId(Box<RawValue>);

impl RequestId {
    fn from_raw(raw: &RawValue) -> Option<RequestId> {
        match raw.get().as_bytes().first() {
            Some(b'"' | b'-' | b'0'..=b'9') => Some(RequestId(raw.to_owned())),
            _ => None,
        }
    }

    /// The id exactly as the client wrote it (JSON text).
    pub fn as_json(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for RequestId {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for RequestId {}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get())
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Where a recovering subscriber left off in a room's history.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Since {
    /// The last sequence the client saw; replay starts after it.
    pub sequence: u64,
    /// The epoch that sequence belongs to. Without it the current epoch is assumed.
    #[serde(default)]
    pub epoch: Option<String>,
}

/// A well-formed client request.
#[derive(Debug)]
pub enum Request<'a> {
    /// Join a room, optionally recovering missed events.
    Subscribe {
        /// The room.
        room: RoomName,
        /// Resume point for history replay.
        since: Option<Since>,
    },
    /// Leave a room.
    Unsubscribe {
        /// The room.
        room: RoomName,
    },
    /// Publish to a room the connection has joined.
    Message {
        /// The room.
        room: RoomName,
        /// Any JSON value, forwarded verbatim.
        content: &'a RawValue,
    },
    /// Application-level ping; the server answers `pong`.
    Ping,
    /// Answer to a server ping; only records liveness.
    Pong,
    /// Ask for a room's member list.
    Presence {
        /// The room.
        room: RoomName,
    },
    /// Follow one of the connection's own orders on the orders stream (room
    /// `order:{collective}/{order_id}`).
    SubscribeOrder {
        /// The order's id (a JSON number or a string of digits).
        order_id: u64,
    },
    /// Answer to an Ed25519 `auth_challenge`.
    AuthResponse {
        /// Base64 signature of the challenge.
        signature: Cow<'a, str>,
    },
    /// Replace the session's JWT before it expires (after a `token_expiring`, or at any
    /// time). Same subject required; see docs/PROTOCOL.md, *Token refresh*.
    Refresh {
        /// The new bearer token.
        token: Cow<'a, str>,
    },
}

impl Request<'_> {
    /// The wire `type` of this request.
    pub fn type_name(&self) -> &'static str {
        match self {
            Request::Subscribe { .. } => "subscribe",
            Request::Unsubscribe { .. } => "unsubscribe",
            Request::Message { .. } => "message",
            Request::Ping => "ping",
            Request::Pong => "pong",
            Request::Presence { .. } => "presence",
            Request::SubscribeOrder { .. } => "subscribe_order",
            Request::AuthResponse { .. } => "auth_response",
            Request::Refresh { .. } => "refresh",
        }
    }
}

/// A request with its optional `id`.
#[derive(Debug)]
pub struct ParsedRequest<'a> {
    /// The id to echo in the reply, if the client sent one.
    pub id: Option<RequestId>,
    /// The request.
    pub request: Request<'a>,
}

/// Why a frame could not be turned into a request. Carries the id when one was readable so
/// the error reply can echo it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RequestError {
    /// The error code for the reply.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: Cow<'static, str>,
    /// The request's id, if it had a valid one.
    pub id: Option<RequestId>,
}

impl RequestError {
    fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>, id: Option<RequestId>) -> Self {
        RequestError {
            code,
            message: message.into(),
            id,
        }
    }
}

/// Deserialises a present field, `null` included, as `Some(raw)`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "present")]
    ty: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    room: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    content: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    since: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    signature: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    order_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    token: Option<&'a RawValue>,
}

/// Parses one text frame into a request, or the error to answer it with.
pub fn parse_request(text: &str) -> Result<ParsedRequest<'_>, RequestError> {
    if text.trim_start().as_bytes().first() != Some(&b'{') {
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => RequestError::new(
                ErrorCode::InvalidMessage,
                "a request must be a JSON object",
                None,
            ),
            Err(e) => RequestError::new(ErrorCode::InvalidJson, format!("invalid JSON: {e}"), None),
        });
    }
    let env: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
        // INVALID_JSON exactly when the text is not JSON. The envelope's own error does
        // not say: it stops at the first shape error (a duplicate field) even when a
        // syntax error follows, and calls a key it cannot decode (a lone surrogate
        // escape, valid JSON syntax) a syntax error. Both found by fuzzing.
        let code = match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => ErrorCode::InvalidMessage,
            Err(_) => ErrorCode::InvalidJson,
        };
        RequestError::new(code, format!("invalid request: {e}"), None)
    })?;
    let id = match env.id {
        None => None,
        Some(raw) => match RequestId::from_raw(raw) {
            Some(id) => Some(id),
            None => {
                return Err(RequestError::new(
                    ErrorCode::InvalidMessage,
                    "\"id\" must be a string or a number",
                    None,
                ))
            }
        },
    };
    let fail = |code, msg: &'static str| RequestError::new(code, msg, id.clone());
    let ty: Cow<'_, str> = match env.ty {
        None => return Err(fail(ErrorCode::InvalidMessage, "missing \"type\"")),
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|_| fail(ErrorCode::InvalidMessage, "\"type\" must be a string"))?,
    };
    let room = || -> Result<RoomName, RequestError> {
        let raw = env
            .room
            .ok_or_else(|| fail(ErrorCode::InvalidMessage, "missing \"room\""))?;
        let name: Cow<'_, str> = serde_json::from_str(raw.get())
            .map_err(|_| fail(ErrorCode::InvalidMessage, "\"room\" must be a string"))?;
        RoomName::parse(&name)
            .map_err(|e| RequestError::new(ErrorCode::InvalidRoom, e.to_string(), id.clone()))
    };
    let request = match &*ty {
        "subscribe" => {
            let room = room()?;
            let since = match env.since {
                None => None,
                Some(raw) if raw.get() == "null" => None,
                Some(raw) => Some(serde_json::from_str::<Since>(raw.get()).map_err(|_| {
                    fail(
                        ErrorCode::InvalidMessage,
                        "\"since\" must be {\"sequence\":<non-negative integer>,\"epoch\":<string>}",
                    )
                })?),
            };
            Request::Subscribe { room, since }
        }
        "unsubscribe" => Request::Unsubscribe { room: room()? },
        "message" => {
            let room = room()?;
            let content = env
                .content
                .ok_or_else(|| fail(ErrorCode::InvalidMessage, "missing \"content\""))?;
            Request::Message { room, content }
        }
        "ping" => Request::Ping,
        "pong" => Request::Pong,
        "presence" => Request::Presence { room: room()? },
        "subscribe_order" => {
            let raw = env
                .order_id
                .ok_or_else(|| fail(ErrorCode::InvalidMessage, "missing \"order_id\""))?;
            let bad = || {
                fail(
                    ErrorCode::InvalidMessage,
                    "\"order_id\" must be a positive integer or a string of digits",
                )
            };
            let order_id = match serde_json::from_str::<u64>(raw.get()) {
                Ok(n) => n,
                Err(_) => {
                    let text: Cow<'_, str> = serde_json::from_str(raw.get()).map_err(|_| bad())?;
                    if text.is_empty()
                        || text.len() > 20
                        || !text.bytes().all(|b| b.is_ascii_digit())
                    {
                        return Err(bad());
                    }
                    text.parse().map_err(|_| bad())?
                }
            };
            if order_id == 0 {
                return Err(bad());
            }
            Request::SubscribeOrder { order_id }
        }
        "auth_response" => {
            let raw = env
                .signature
                .ok_or_else(|| fail(ErrorCode::InvalidMessage, "missing \"signature\""))?;
            let signature: Cow<'_, str> = serde_json::from_str(raw.get())
                .map_err(|_| fail(ErrorCode::InvalidMessage, "\"signature\" must be a string"))?;
            Request::AuthResponse { signature }
        }
        "refresh" => {
            let raw = env
                .token
                .ok_or_else(|| fail(ErrorCode::InvalidMessage, "missing \"token\""))?;
            let token: Cow<'_, str> = serde_json::from_str(raw.get())
                .map_err(|_| fail(ErrorCode::InvalidMessage, "\"token\" must be a string"))?;
            Request::Refresh { token }
        }
        _ => return Err(fail(ErrorCode::UnknownType, "unknown message type")),
    };
    Ok(ParsedRequest { id, request })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        match parse_request(text) {
            Ok(r) => panic!("{text} parsed as {r:?}"),
            Err(e) => e.code,
        }
    }

    #[test]
    fn classifies_errors() {
        assert_eq!(code("{not json"), ErrorCode::InvalidJson);
        assert_eq!(code(""), ErrorCode::InvalidJson);
        assert_eq!(code("{\"type\":\"ping\"} x"), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidMessage);
        assert_eq!(code("42"), ErrorCode::InvalidMessage);
        assert_eq!(code("{}"), ErrorCode::InvalidMessage);
        assert_eq!(code("{\"type\":7}"), ErrorCode::InvalidMessage);
        assert_eq!(code("{\"type\":null}"), ErrorCode::InvalidMessage);
        assert_eq!(code("{\"type\":\"dance\"}"), ErrorCode::UnknownType);
        assert_eq!(code("{\"type\":\"subscribe\"}"), ErrorCode::InvalidMessage);
        assert_eq!(
            code("{\"type\":\"subscribe\",\"room\":5}"),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code("{\"type\":\"subscribe\",\"room\":\"a b\"}"),
            ErrorCode::InvalidRoom
        );
        assert_eq!(
            code("{\"type\":\"subscribe\",\"room\":\"\"}"),
            ErrorCode::InvalidRoom
        );
        assert_eq!(
            code("{\"type\":\"message\",\"room\":\"r\"}"),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code("{\"type\":\"ping\",\"id\":{}}"),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code("{\"type\":\"ping\",\"type\":\"pong\"}"),
            ErrorCode::InvalidMessage
        );
        // Found by fuzzing (fuzz/regressions/request/): a duplicate field before a
        // syntax error is still invalid JSON; a key with a lone surrogate escape is JSON.
        assert_eq!(
            code(r#"{"type":"unsubscribe","room":"a","room":"b":[1,2.5,na/b:c@d"}"#),
            ErrorCode::InvalidJson
        );
        assert_eq!(
            code(r#"{"t\uDeC8subscribe":"e 42scri"}"#),
            ErrorCode::InvalidMessage
        );
    }

    #[test]
    fn keeps_id_type_and_content_bytes() {
        let r = parse_request(r#"{"type":"message","id":7,"room":"chat","content":{"a": [1, 2]}}"#)
            .expect("valid");
        assert_eq!(r.id.as_ref().map(RequestId::as_json), Some("7"));
        match r.request {
            Request::Message { room, content } => {
                assert_eq!(room.as_str(), "chat");
                assert_eq!(content.get(), r#"{"a": [1, 2]}"#);
            }
            other => panic!("{other:?}"),
        }
        let e = parse_request(r#"{"type":"nope","id":"x1"}"#).expect_err("unknown");
        assert_eq!(e.id.as_ref().map(RequestId::as_json), Some("\"x1\""));
        let r =
            parse_request(r#"{"type":"message","room":"r","content":null}"#).expect("null content");
        assert!(matches!(r.request, Request::Message { .. }));
    }

    #[test]
    fn subscribe_order_takes_a_number_or_digits() {
        for text in [
            r#"{"type":"subscribe_order","order_id":17}"#,
            r#"{"type":"subscribe_order","order_id":"17"}"#,
        ] {
            match parse_request(text).expect("valid").request {
                Request::SubscribeOrder { order_id } => assert_eq!(order_id, 17),
                other => panic!("{other:?}"),
            }
        }
        for bad in [
            r#"{"type":"subscribe_order"}"#,
            r#"{"type":"subscribe_order","order_id":0}"#,
            r#"{"type":"subscribe_order","order_id":-1}"#,
            r#"{"type":"subscribe_order","order_id":1.5}"#,
            r#"{"type":"subscribe_order","order_id":"1e3"}"#,
            r#"{"type":"subscribe_order","order_id":"99999999999999999999999"}"#,
            r#"{"type":"subscribe_order","order_id":null}"#,
        ] {
            assert_eq!(code(bad), ErrorCode::InvalidMessage, "{bad}");
        }
    }

    #[test]
    fn refresh_carries_its_token() {
        let r = parse_request(r#"{"type":"refresh","id":"r1","token":"a.b.c"}"#).expect("valid");
        assert_eq!(r.id.as_ref().map(RequestId::as_json), Some("\"r1\""));
        match r.request {
            Request::Refresh { token } => assert_eq!(token, "a.b.c"),
            other => panic!("{other:?}"),
        }
        assert_eq!(code(r#"{"type":"refresh"}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            code(r#"{"type":"refresh","token":7}"#),
            ErrorCode::InvalidMessage
        );
    }

    #[test]
    fn since_is_parsed() {
        let r =
            parse_request(r#"{"type":"subscribe","room":"r","since":{"sequence":5,"epoch":"e1"}}"#)
                .expect("valid");
        match r.request {
            Request::Subscribe { since: Some(s), .. } => {
                assert_eq!(s.sequence, 5);
                assert_eq!(s.epoch.as_deref(), Some("e1"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            code(r#"{"type":"subscribe","room":"r","since":{"sequence":-1}}"#),
            ErrorCode::InvalidMessage
        );
    }
}
