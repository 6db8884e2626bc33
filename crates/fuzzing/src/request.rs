//! `protocol::parse_request`, the parser of every client text frame.
//!
//! Asserts: an input is refused as `INVALID_JSON` exactly when it is not JSON (serde_json
//! as the reference); an accepted request's room passes `RoomName::parse`, its `id` is a
//! JSON string or number and its `content` is JSON; and writing the parsed request back
//! out as JSON parses to the same request (parse ∘ serialize round-trips).

use roomcast_protocol::{parse_request, ErrorCode, ParsedRequest, Request, RoomName};
use serde::de::IgnoredAny;

/// The target body.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        // Text frames are UTF-8 by the time they are parsed (the codec checks).
        return;
    };
    match parse_request(text) {
        Err(e) => {
            let is_json = serde_json::from_str::<IgnoredAny>(text).is_ok();
            assert_eq!(
                e.code == ErrorCode::InvalidJson,
                !is_json,
                "{text:?} refused with {} although it is{} JSON",
                e.code,
                if is_json { "" } else { " not" }
            );
        }
        Ok(parsed) => {
            check(&parsed);
            let again = serialize(&parsed);
            match parse_request(&again) {
                Ok(reparsed) => assert_eq!(
                    format!("{parsed:?}"),
                    format!("{reparsed:?}"),
                    "{text:?} -> {again:?}"
                ),
                Err(e) => panic!("{text:?} parsed, its serialisation {again:?} did not: {e}"),
            }
        }
    }
}

fn check(parsed: &ParsedRequest<'_>) {
    if let Some(id) = &parsed.id {
        let json: serde_json::Value = serde_json::from_str(id.as_json()).unwrap_or_default();
        assert!(json.is_string() || json.is_number(), "id {}", id.as_json());
    }
    let room = match &parsed.request {
        Request::Subscribe { room, .. }
        | Request::Unsubscribe { room }
        | Request::Presence { room }
        | Request::Message { room, .. } => Some(room),
        _ => None,
    };
    if let Some(room) = room {
        assert!(RoomName::parse(room.as_str()).is_ok(), "room {room}");
    }
    if let Request::Message { content, .. } = &parsed.request {
        assert!(serde_json::from_str::<IgnoredAny>(content.get()).is_ok());
    }
    if let Request::SubscribeOrder { order_id } = &parsed.request {
        assert!(*order_id > 0);
    }
}

/// The request as a client would write it.
fn serialize(parsed: &ParsedRequest<'_>) -> String {
    let string = |s: &str| serde_json::Value::from(s).to_string();
    let mut fields = vec![format!("\"type\":{}", string(parsed.request.type_name()))];
    if let Some(id) = &parsed.id {
        fields.push(format!("\"id\":{}", id.as_json()));
    }
    match &parsed.request {
        Request::Subscribe { room, since } => {
            fields.push(format!("\"room\":{}", string(room.as_str())));
            if let Some(since) = since {
                let epoch = match &since.epoch {
                    Some(e) => format!(",\"epoch\":{}", string(e)),
                    None => String::new(),
                };
                fields.push(format!(
                    "\"since\":{{\"sequence\":{}{epoch}}}",
                    since.sequence
                ));
            }
        }
        Request::Unsubscribe { room } | Request::Presence { room } => {
            fields.push(format!("\"room\":{}", string(room.as_str())));
        }
        Request::Message { room, content } => {
            fields.push(format!("\"room\":{}", string(room.as_str())));
            fields.push(format!("\"content\":{}", content.get()));
        }
        Request::SubscribeOrder { order_id } => fields.push(format!("\"order_id\":{order_id}")),
        Request::AuthResponse { signature } => {
            fields.push(format!("\"signature\":{}", string(signature)));
        }
        Request::Refresh { token } => fields.push(format!("\"token\":{}", string(token))),
        Request::Ping | Request::Pong => {}
    }
    format!("{{{}}}", fields.join(","))
}
