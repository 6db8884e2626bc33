//! Signed HTTP requests: a registered collective proves each request with its Ed25519 key,
//! so a trading program needs no session and no bearer secret on the wire.
//!
//! The client sends three headers, `X-Collective-Id`, `X-Timestamp` (unix milliseconds) and
//! `X-Signature`: the base64 Ed25519 signature of the UTF-8 bytes of
//! `timestamp + method + path_with_query + body` (e.g.
//! `1733400000000POST/api/v1/orders{"symbol":"BTC-USD",...}`). [`SignedRequestVerifier`]
//! accepts a request when
//! - the timestamp is within [`SIGNATURE_WINDOW`] of the server's clock (either side),
//! - the collective is registered and the signature verifies strictly under its key
//!   (`verify_strict`: no malleable or small-order forms), and
//! - the signature has not been seen before inside the window: a captured request cannot
//!   be sent again. Once its timestamp leaves the window the signature is forgotten, since
//!   the timestamp check alone refuses it from then on.
//!
//! The memory of used signatures is the process's, so a restart would forget it while the
//! signatures are still inside their window (a request captured a few seconds before a
//! `kill -9` could be sent again to the restarted server). A verifier therefore refuses
//! every timestamp older than its own start as stale: those are exactly the requests a
//! previous process may have accepted. A client whose clock runs behind the server's is
//! refused for at most that lag right after a restart, and retries with a new timestamp.
//!
//! Why the replay memory is bounded without ever forgetting too early: an entry is kept
//! exactly until its timestamp + window, so live entries are at most
//! `request rate × 2 × window`; the map holds at most `capacity` of them, and a request
//! that would need more is refused as [`SignedError::Busy`] (HTTP 503) rather than
//! evicting a live signature, which would reopen the replay. Only a registered key can
//! produce entries, so nobody else can fill it.

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::Signature;

use super::challenge::decode_base64;
use super::collectives::{Collective, Collectives};
use crate::shard::Sharded;

/// How far a request's timestamp may be from the server's clock, either way.
pub const SIGNATURE_WINDOW: Duration = Duration::from_secs(30);

/// The most signatures remembered at once unless configured otherwise (at 20k signed
/// requests per second, a full window of 60 s is 1.2M).
pub const DEFAULT_REPLAY_CAPACITY: usize = 2_000_000;

const SHARDS: usize = 16;

/// The three headers of a signed request, as received.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
    /// `X-Collective-Id`.
    pub collective_id: &'a str,
    /// `X-Timestamp`: unix milliseconds.
    pub timestamp: &'a str,
    /// `X-Signature`: base64 of the 64-byte signature.
    pub signature: &'a str,
}

/// What was signed: the request line and body.
#[derive(Debug, Clone, Copy)]
pub struct SignedMessage<'a> {
    /// The HTTP method, upper case (`POST`).
    pub method: &'a str,
    /// The path with its query string, as sent (`/api/v1/orders?status=open`).
    pub path_with_query: &'a str,
    /// The raw body (empty for GET and DELETE).
    pub body: &'a [u8],
}

/// Why a signed request was refused. Every variant is an authentication failure (401)
/// except [`SignedError::Busy`] (503).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    /// One of the three headers is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// `X-Timestamp` is not unix milliseconds.
    #[error("X-Timestamp must be unix milliseconds")]
    BadTimestamp,
    /// The timestamp is outside the window.
    #[error("X-Timestamp is more than 30 s away from the server's clock")]
    StaleTimestamp,
    /// No collective has this id.
    #[error("unknown collective")]
    UnknownCollective,
    /// `X-Signature` is not base64 of 64 bytes.
    #[error("X-Signature must be base64 of a 64-byte Ed25519 signature")]
    BadEncoding,
    /// The signature does not verify.
    #[error("invalid signature")]
    BadSignature,
    /// The same signature was already used inside the window.
    #[error("this signature was already used")]
    Replayed,
    /// The replay memory is full of live signatures: try again shortly.
    #[error("too many signed requests in flight; retry shortly")]
    Busy,
}

impl SignedError {
    /// The machine-readable code for the error body.
    pub const fn code(&self) -> &'static str {
        match self {
            SignedError::MissingHeader(_) => "missing_signature",
            SignedError::BadTimestamp => "invalid_timestamp",
            SignedError::StaleTimestamp => "stale_timestamp",
            SignedError::UnknownCollective => "unknown_collective",
            SignedError::BadEncoding | SignedError::BadSignature => "invalid_signature",
            SignedError::Replayed => "replayed_signature",
            SignedError::Busy => "busy",
        }
    }

    /// Whether the failure is an authentication failure (401) rather than load (503).
    pub const fn is_unauthorized(&self) -> bool {
        !matches!(self, SignedError::Busy)
    }
}

/// Verifies signed requests and remembers used signatures. Share it behind an `Arc`.
#[derive(Debug)]
pub struct SignedRequestVerifier {
    window_ms: i64,
    /// Unix ms when this verifier started: older timestamps may have been used before.
    started_ms: i64,
    per_shard: usize,
    /// Signature prefix → unix ms after which it may be forgotten.
    seen: Sharded<[u8; 16], i64>,
}

impl Default for SignedRequestVerifier {
    fn default() -> Self {
        SignedRequestVerifier::new(DEFAULT_REPLAY_CAPACITY)
    }
}

impl SignedRequestVerifier {
    /// A verifier remembering at most `capacity` signatures, started now.
    pub fn new(capacity: usize) -> SignedRequestVerifier {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        SignedRequestVerifier::started_at(capacity, now_ms)
    }

    /// A verifier remembering at most `capacity` signatures that refuses timestamps older
    /// than `started_ms` (unix ms).
    pub fn started_at(capacity: usize, started_ms: i64) -> SignedRequestVerifier {
        SignedRequestVerifier {
            window_ms: SIGNATURE_WINDOW.as_millis() as i64,
            started_ms,
            per_shard: capacity.div_ceil(SHARDS).max(1),
            seen: Sharded::new(SHARDS),
        }
    }

    /// Checks one request as of `now_ms` (unix milliseconds). Returns the collective.
    pub fn verify(
        &self,
        registry: &Collectives,
        headers: SignedHeaders<'_>,
        message: SignedMessage<'_>,
        now_ms: i64,
    ) -> Result<Arc<Collective>, SignedError> {
        let ts_text = headers.timestamp.trim();
        let timestamp: i64 = if !ts_text.is_empty()
            && ts_text.len() <= 16
            && ts_text.bytes().all(|b| b.is_ascii_digit())
        {
            ts_text.parse().map_err(|_| SignedError::BadTimestamp)?
        } else {
            return Err(SignedError::BadTimestamp);
        };
        if (timestamp - now_ms).abs() > self.window_ms || timestamp < self.started_ms {
            return Err(SignedError::StaleTimestamp);
        }
        let collective = registry
            .get(headers.collective_id.trim())
            .ok_or(SignedError::UnknownCollective)?;
        let bytes = decode_base64(headers.signature).ok_or(SignedError::BadEncoding)?;
        let signature = Signature::from_slice(&bytes).map_err(|_| SignedError::BadEncoding)?;
        let mut signed = Vec::with_capacity(
            ts_text.len()
                + message.method.len()
                + message.path_with_query.len()
                + message.body.len(),
        );
        signed.extend_from_slice(ts_text.as_bytes());
        signed.extend_from_slice(message.method.as_bytes());
        signed.extend_from_slice(message.path_with_query.as_bytes());
        signed.extend_from_slice(message.body);
        collective
            .public_key
            .verify_strict(&signed, &signature)
            .map_err(|_| SignedError::BadSignature)?;
        self.remember(&signature, timestamp + self.window_ms, now_ms)?;
        Ok(collective)
    }

    /// Records a verified signature until `forget_at`; refuses one already recorded.
    fn remember(
        &self,
        signature: &Signature,
        forget_at: i64,
        now_ms: i64,
    ) -> Result<(), SignedError> {
        // `R` is derived from the key and the message, so its first 16 bytes identify the
        // signature (a collision needs ~2^64 signatures); strict verification already
        // refused the malleable re-encodings of `S`.
        let r = signature.r_bytes();
        let mut key = [0u8; 16];
        key.copy_from_slice(&r[..16]);
        let mut seen = self.seen.write(&key);
        if seen.get(&key).is_some_and(|&until| until >= now_ms) {
            return Err(SignedError::Replayed);
        }
        if seen.len() >= self.per_shard {
            seen.retain(|_, until| *until >= now_ms);
            if seen.len() >= self.per_shard {
                return Err(SignedError::Busy);
            }
        }
        seen.insert(key, forget_at);
        Ok(())
    }

    /// Forgets signatures whose window has passed (the maintenance timer calls it, so an
    /// idle verifier does not keep its peak size).
    pub fn sweep(&self, now_ms: i64) {
        self.seen
            .for_each_shard_mut(|shard| shard.retain(|_, until| *until >= now_ms));
    }

    /// How many signatures are remembered.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::collectives::{Collective, Profile};
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use ed25519_dalek::{Signer, SigningKey};

    const NOW: i64 = 1_733_400_000_000;

    fn setup() -> (Collectives, SigningKey) {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = STANDARD.encode(key.verifying_key().as_bytes());
        let registry = Collectives::new();
        registry
            .register(Collective::parse("acme", &public, Profile::new(), None).expect("c"))
            .expect("register");
        (registry, key)
    }

    fn sign(key: &SigningKey, ts: i64, method: &str, path: &str, body: &str) -> String {
        let text = format!("{ts}{method}{path}{body}");
        STANDARD.encode(key.sign(text.as_bytes()).to_bytes())
    }

    fn check(
        v: &SignedRequestVerifier,
        reg: &Collectives,
        id: &str,
        ts: &str,
        sig: &str,
        body: &str,
        now: i64,
    ) -> Result<(), SignedError> {
        v.verify(
            reg,
            SignedHeaders {
                collective_id: id,
                timestamp: ts,
                signature: sig,
            },
            SignedMessage {
                method: "POST",
                path_with_query: "/api/v1/orders",
                body: body.as_bytes(),
            },
            now,
        )
        .map(|_| ())
    }

    #[test]
    fn a_signed_request_is_accepted_once() {
        let (reg, key) = setup();
        let v = SignedRequestVerifier::started_at(DEFAULT_REPLAY_CAPACITY, NOW - 60_000);
        let body = r#"{"symbol":"BTC-USD"}"#;
        let sig = sign(&key, NOW, "POST", "/api/v1/orders", body);
        let ts = NOW.to_string();
        assert_eq!(check(&v, &reg, "acme", &ts, &sig, body, NOW + 5), Ok(()));
        assert_eq!(
            check(&v, &reg, "acme", &ts, &sig, body, NOW + 6),
            Err(SignedError::Replayed)
        );
        assert_eq!(v.remembered(), 1);
        // After the window the timestamp alone refuses it, and sweeping forgets it.
        let later = NOW + 30_001;
        assert_eq!(
            check(&v, &reg, "acme", &ts, &sig, body, later),
            Err(SignedError::StaleTimestamp)
        );
        v.sweep(later);
        assert_eq!(v.remembered(), 0);
    }

    #[test]
    fn a_restarted_verifier_refuses_what_the_previous_process_may_have_seen() {
        let (reg, key) = setup();
        let body = "{}";
        let sig = sign(&key, NOW, "POST", "/api/v1/orders", body);
        let ts = NOW.to_string();
        let before = SignedRequestVerifier::started_at(DEFAULT_REPLAY_CAPACITY, NOW - 60_000);
        assert_eq!(
            check(&before, &reg, "acme", &ts, &sig, body, NOW + 1),
            Ok(())
        );
        // The process dies; its successor starts 5 s later, inside the signature's window.
        let after = SignedRequestVerifier::started_at(DEFAULT_REPLAY_CAPACITY, NOW + 5_000);
        assert_eq!(
            check(&after, &reg, "acme", &ts, &sig, body, NOW + 5_001),
            Err(SignedError::StaleTimestamp)
        );
        // A request signed after the restart is accepted.
        let fresh = sign(&key, NOW + 5_002, "POST", "/api/v1/orders", body);
        let fresh_ts = (NOW + 5_002).to_string();
        assert_eq!(
            check(&after, &reg, "acme", &fresh_ts, &fresh, body, NOW + 5_003),
            Ok(())
        );
    }

    #[test]
    fn every_failure_has_its_code() {
        let (reg, key) = setup();
        let v = SignedRequestVerifier::started_at(DEFAULT_REPLAY_CAPACITY, NOW - 60_000);
        let body = "{}";
        let ts = NOW.to_string();
        let sig = sign(&key, NOW, "POST", "/api/v1/orders", body);
        let cases = [
            ("acme", "abc", sig.as_str(), body, SignedError::BadTimestamp),
            ("acme", "-5", sig.as_str(), body, SignedError::BadTimestamp),
            (
                "acme",
                "99999999999999999999",
                sig.as_str(),
                body,
                SignedError::BadTimestamp,
            ),
            (
                "globex",
                ts.as_str(),
                sig.as_str(),
                body,
                SignedError::UnknownCollective,
            ),
            ("acme", ts.as_str(), "!!", body, SignedError::BadEncoding),
            ("acme", ts.as_str(), "AAAA", body, SignedError::BadEncoding),
            (
                "acme",
                ts.as_str(),
                sig.as_str(),
                "{ }",
                SignedError::BadSignature,
            ),
        ];
        for (id, ts, sig, body, want) in cases {
            assert_eq!(
                check(&v, &reg, id, ts, sig, body, NOW),
                Err(want),
                "{id} {ts} {body}"
            );
        }
        let old = (NOW - 31_000).to_string();
        let sig_old = sign(&key, NOW - 31_000, "POST", "/api/v1/orders", body);
        assert_eq!(
            check(&v, &reg, "acme", &old, &sig_old, body, NOW),
            Err(SignedError::StaleTimestamp)
        );
        assert_eq!(SignedError::Replayed.code(), "replayed_signature");
        assert!(!SignedError::Busy.is_unauthorized());
        // A signature from another key fails even for a registered id.
        let other = SigningKey::from_bytes(&[9; 32]);
        let forged = sign(&other, NOW, "POST", "/api/v1/orders", body);
        assert_eq!(
            check(&v, &reg, "acme", &ts, &forged, body, NOW),
            Err(SignedError::BadSignature)
        );
    }

    #[test]
    fn a_full_memory_refuses_instead_of_forgetting() {
        let (reg, key) = setup();
        let v = SignedRequestVerifier::started_at(SHARDS, NOW - 60_000);
        let ts = NOW.to_string();
        let mut accepted = 0;
        let mut busy = 0;
        for i in 0..200 {
            let body = format!("{{\"n\":{i}}}");
            let sig = sign(&key, NOW, "POST", "/api/v1/orders", &body);
            match check(&v, &reg, "acme", &ts, &sig, &body, NOW) {
                Ok(()) => accepted += 1,
                Err(SignedError::Busy) => busy += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(accepted <= SHARDS, "{accepted}");
        assert!(busy >= 200 - SHARDS, "{busy}");
        // Once the window passes, entries expire and requests are accepted again.
        let later = NOW + 60_001;
        let ts = later.to_string();
        let sig = sign(&key, later, "POST", "/api/v1/orders", "{}");
        assert_eq!(check(&v, &reg, "acme", &ts, &sig, "{}", later), Ok(()));
    }
}
