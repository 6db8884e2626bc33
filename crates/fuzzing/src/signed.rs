//! Signed REST requests: the `X-Collective-Id`, `X-Timestamp` and `X-Signature` headers
//! and the signed request line and body (`SignedRequestVerifier::verify`).
//!
//! Asserts, by the first byte:
//! - any headers and message: never accepted (no key here), and a refusal never touches
//!   the replay memory;
//! - a correct signature over a fuzzed method, path, body and timestamp text: accepted
//!   exactly when the timestamp is what the reference rule allows (1-16 ASCII digits
//!   after trimming, within 30 s of now, not before the verifier started), and then only
//!   once (the second use is `Replayed`); the same signature over a different body is
//!   refused.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use roomcast_engine::auth::{
    Collective, Collectives, SignedError, SignedHeaders, SignedMessage, SignedRequestVerifier,
};

use crate::input::Input;

const NOW_MS: i64 = 1_800_000_000_000;
const STARTED_MS: i64 = NOW_MS - 10_000;
const WINDOW_MS: i64 = 30_000;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn registry() -> Option<Collectives> {
    let registry = Collectives::new();
    let public = STANDARD.encode(key().verifying_key().as_bytes());
    let acme = Collective::parse("acme", &public, Default::default(), None).ok()?;
    registry.register(acme).ok()?;
    Some(registry)
}

/// The target body.
pub fn run(data: &[u8]) {
    let Some(registry) = registry() else {
        panic!("the fuzzing registry must build");
    };
    let verifier = SignedRequestVerifier::started_at(1024, STARTED_MS);
    let mut input = Input::new(data);
    let mode = input.byte();
    let collective_id = input.text();
    let timestamp = input.text();
    let method = input.text();
    let path = input.text();
    let body = input.piece().to_vec();
    let message = SignedMessage {
        method: &method,
        path_with_query: &path,
        body: &body,
    };
    if mode.is_multiple_of(2) {
        let signature = String::from_utf8_lossy(input.rest()).into_owned();
        let headers = SignedHeaders {
            collective_id: &collective_id,
            timestamp: &timestamp,
            signature: &signature,
        };
        let result = verifier.verify(&registry, headers, message, NOW_MS);
        assert!(result.is_err(), "forged request accepted: {headers:?}");
        assert_eq!(verifier.remembered(), 0);
        return;
    }
    // Signed with the collective's key over exactly what the server hashes.
    let ts = timestamp.trim();
    let mut signed = Vec::new();
    for part in [ts.as_bytes(), method.as_bytes(), path.as_bytes(), &body] {
        signed.extend_from_slice(part);
    }
    let signature = STANDARD.encode(key().sign(&signed).to_bytes());
    let headers = SignedHeaders {
        collective_id: "acme",
        timestamp: &timestamp,
        signature: &signature,
    };
    let first = verifier.verify(&registry, headers, message, NOW_MS);
    match timestamp_allowed(&timestamp) {
        Err(expected) => assert_eq!(first.err(), Some(expected), "timestamp {timestamp:?}"),
        Ok(()) => {
            assert!(first.is_ok(), "timestamp {timestamp:?}: {first:?}");
            let again = verifier.verify(&registry, headers, message, NOW_MS);
            assert_eq!(again.err(), Some(SignedError::Replayed));
            let mut other_body = body.clone();
            other_body.push(b'!');
            let other = SignedMessage {
                body: &other_body,
                ..message
            };
            let forged = verifier.verify(&registry, headers, other, NOW_MS);
            assert_eq!(forged.err(), Some(SignedError::BadSignature));
        }
    }
}

/// The documented timestamp rule, written the obvious way.
fn timestamp_allowed(text: &str) -> Result<(), SignedError> {
    let t = text.trim();
    if t.is_empty() || t.len() > 16 || !t.chars().all(|c| c.is_ascii_digit()) {
        return Err(SignedError::BadTimestamp);
    }
    let ms: i64 = t.parse().map_err(|_| SignedError::BadTimestamp)?;
    if (ms - NOW_MS).abs() > WINDOW_MS || ms < STARTED_MS {
        return Err(SignedError::StaleTimestamp);
    }
    Ok(())
}
