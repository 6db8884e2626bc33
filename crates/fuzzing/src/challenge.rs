//! The Ed25519 challenge-response: the client's `auth_response` frame (through
//! `parse_request`), the signature it carries (`Challenge::verify`), and the public keys a
//! collective registers (`parse_public_key`).
//!
//! Asserts, by the first byte:
//! - any frame: its signature never verifies (nothing here holds the private key);
//! - the right signature in any encoding the docs allow (standard or URL-safe base64,
//!   padded or not, surrounded by whitespace), inside a frame with fuzzed extra fields
//!   and id: verifies exactly when the frame parses as `auth_response`; the same signature
//!   with one byte changed does not verify;
//! - any key text: an accepted key is never weak, and its raw base64 parses to the same key.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use roomcast_engine::auth::{parse_public_key, Challenge, CollectiveId};
use roomcast_protocol::{parse_request, Request};
use time::OffsetDateTime;

use crate::input::Input;

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn challenge() -> Option<Challenge> {
    let id = CollectiveId::parse("acme").ok()?;
    Challenge::issue(&id, OffsetDateTime::now_utc()).ok()
}

/// The target body.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => any_frame(input.rest()),
        1 => right_signature(&mut input),
        _ => key_text(input.rest()),
    }
}

fn any_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = parse_request(text) else {
        return;
    };
    if let Request::AuthResponse { signature } = parsed.request {
        let Some(c) = challenge() else { return };
        let key = signing_key().verifying_key();
        let result = c.verify(&signature, &key, OffsetDateTime::now_utc());
        assert!(result.is_err(), "forged signature {signature:?} verified");
    }
}

fn right_signature(input: &mut Input<'_>) {
    let Some(c) = challenge() else { return };
    let key = signing_key();
    let signature = key.sign(c.text().as_bytes()).to_bytes();
    let encoding = input.byte();
    let mut encoded = match encoding % 4 {
        0 => STANDARD.encode(signature),
        1 => STANDARD_NO_PAD.encode(signature),
        2 => URL_SAFE.encode(signature),
        _ => URL_SAFE_NO_PAD.encode(signature),
    };
    if encoding & 4 != 0 {
        encoded = format!(" {encoded}\n");
    }
    let extra = input.text();
    let position = usize::from(input.byte());
    let replacement = input.byte();
    // The frame: fuzzed extra members before the signature (an id, unknown fields).
    let frame = format!(
        "{{{extra}\"type\":\"auth_response\",\"signature\":{}}}",
        serde_json::Value::from(encoded.as_str())
    );
    let now = OffsetDateTime::now_utc();
    let verifying = key.verifying_key();
    match parse_request(&frame).map(|p| p.request) {
        Ok(Request::AuthResponse { signature }) => {
            // The extra text may itself carry a `signature` member that wins (duplicate keys
            // are refused, so only if the frame's own was swallowed into a string).
            if signature == encoded {
                let result = c.verify(&signature, &verifying, now);
                assert!(result.is_ok(), "{frame:?}: {result:?}");
            }
        }
        Ok(_) | Err(_) => return,
    }
    // One byte changed: refused (unless the change is whitespace or an equivalent padding).
    let Some(c) = challenge() else { return };
    let signature = key.sign(c.text().as_bytes()).to_bytes();
    let mut bytes = STANDARD.encode(signature).into_bytes();
    let len = bytes.len();
    let original = bytes[position % len];
    bytes[position % len] = replacement;
    let changed = String::from_utf8_lossy(&bytes).into_owned();
    if original != replacement
        && !changed.trim().is_empty()
        && lenient_decode(&changed).as_deref() != Some(&signature[..])
    {
        let result = c.verify(&changed, &verifying, now);
        assert!(result.is_err(), "altered signature {changed:?} verified");
    }
}

/// What the documented rule reads from base64 text: standard or URL-safe alphabet,
/// padding optional, surrounding whitespace ignored.
fn lenient_decode(text: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let text = text.trim();
    [base64::alphabet::STANDARD, base64::alphabet::URL_SAFE]
        .iter()
        .find_map(|alphabet| GeneralPurpose::new(alphabet, config).decode(text).ok())
}

fn key_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(key) = parse_public_key(&text) {
        assert!(!key.is_weak(), "weak key {text:?} accepted");
        let raw = STANDARD.encode(key.as_bytes());
        assert_eq!(parse_public_key(&raw).ok(), Some(key), "{text:?}");
    }
}
