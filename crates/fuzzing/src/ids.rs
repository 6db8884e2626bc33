//! Client id, room name and collective id validation.
//!
//! Asserts: each parser accepts exactly what a naive reference predicate accepts (length
//! 1..=max, every byte in the documented set), the accepted value reads back unchanged,
//! and deserialising the same text from a JSON string agrees with `parse`.

use roomcast_engine::auth::CollectiveId;
use roomcast_protocol::{ClientId, RoomName};

/// The target body.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let json = serde_json::Value::from(text).to_string();

    let client = ClientId::parse(text);
    assert_eq!(
        client.is_ok(),
        reference(text, 128, "_.:-"),
        "client id {text:?}"
    );
    if let Ok(id) = &client {
        assert_eq!(id.as_str(), text);
        assert_eq!(id.to_string(), text);
    }
    let from_json = serde_json::from_str::<ClientId>(&json);
    assert_eq!(from_json.ok(), client.ok(), "client id from JSON {json}");

    let room = RoomName::parse(text);
    assert_eq!(
        room.is_ok(),
        reference(text, 200, "_.:@/-"),
        "room {text:?}"
    );
    if let Ok(r) = &room {
        assert_eq!(r.as_str(), text);
    }
    let from_json = serde_json::from_str::<RoomName>(&json);
    assert_eq!(from_json.ok(), room.ok(), "room from JSON {json}");

    // A collective id is a client id (its streams' client ids add `:{stream}`).
    let collective = CollectiveId::parse(text);
    assert_eq!(
        collective.is_ok(),
        reference(text, 128, "_.:-"),
        "collective {text:?}"
    );
    if let Ok(c) = &collective {
        assert_eq!(c.as_client_id().as_str(), text);
    }
}

/// The documented rule, written the obvious way: 1..=max ASCII letters, digits and `extra`.
fn reference(text: &str, max: usize, extra: &str) -> bool {
    let count = text.chars().count();
    (1..=max).contains(&count)
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}
