//! The collectives file (`--collectives`, TOML or JSON) through `parse_collectives`.
//!
//! Asserts: every accepted entry has a valid id and a non-weak key, ids are unique, and
//! writing the accepted list back out as JSON (id, raw base64 key) parses to the same ids
//! and keys in the same order (parse ∘ serialize round-trips).

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use roomcast_engine::auth::collectives::{parse_collectives, CollectivesFormat};
use roomcast_engine::auth::CollectiveId;

/// The target body.
pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = match selector % 2 {
        0 => CollectivesFormat::Toml,
        _ => CollectivesFormat::Json,
    };
    let Ok(list) = parse_collectives(text, format, "<fuzz>", None) else {
        return;
    };
    let mut ids = HashSet::new();
    for c in &list {
        assert!(CollectiveId::parse(c.id.as_str()).is_ok());
        assert!(!c.public_key.is_weak(), "weak key accepted in {text:?}");
        assert!(
            ids.insert(c.id.as_str()),
            "duplicate id {} in {text:?}",
            c.id
        );
    }
    let written: Vec<serde_json::Value> = list
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id.as_str(),
                "public_key": STANDARD.encode(c.public_key.as_bytes()),
            })
        })
        .collect();
    let json = serde_json::Value::from(written).to_string();
    match parse_collectives(&json, CollectivesFormat::Json, "<again>", None) {
        Ok(again) => {
            let key = |l: &[roomcast_engine::auth::Collective]| -> Vec<(String, [u8; 32])> {
                l.iter()
                    .map(|c| (c.id.to_string(), c.public_key.to_bytes()))
                    .collect()
            };
            assert_eq!(key(&list), key(&again), "{text:?}");
        }
        Err(e) => panic!("{text:?} parsed, its JSON {json} did not: {e}"),
    }
}
