//! Ed25519 challenge-response: one authentication step that any endpoint can run after
//! accepting a connection (the trading streams do), plus parsing of Ed25519 public keys.
//!
//! The flow (the wire messages belong to `roomcast-protocol`):
//! 1. the connection task calls [`Challenge::issue`] and sends [`Challenge::text`]
//!    (`"<collective_id>|<64 hex nonce>|<RFC 3339 time>"`) with
//!    [`Challenge::expires_in_secs`];
//! 2. the client signs the text's UTF-8 bytes with its Ed25519 private key and answers with
//!    the base64 signature;
//! 3. the task calls [`Challenge::verify`] (or [`Challenge::verify_registered`]).
//!
//! Why there is no table of pending challenges: the [`Challenge`] value is owned by the one
//! connection task that issued it. That makes the issue's guarantees hold by construction:
//! - *bound to one connection*: no other task can reach it, so another connection's
//!   signature is checked against a different text (each nonce is 32 fresh bytes from the
//!   OS CSPRNG) and fails;
//! - *single use*: `verify` takes `self`, so a challenge cannot be verified twice, and a
//!   signature replayed from an earlier connection was made over that connection's nonce;
//! - *forgotten on success, failure or expiry*, and *bounded by live connections*: it is
//!   dropped with the task's state; nothing global grows.
//!
//! Every failure ([`ChallengeError`]) closes with 4001 and the reason "Invalid signature":
//! the client learns nothing about which check failed.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use rand::rngs::OsRng;
use rand::TryRngCore;
use roomcast_protocol::CloseCode;
use time::OffsetDateTime;

use super::collectives::{Collective, CollectiveId, Collectives};

/// How long a challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(60);

/// Bytes of randomness in a nonce (64 hex characters).
pub const NONCE_BYTES: usize = 32;

/// The close reason for every challenge failure.
pub const INVALID_SIGNATURE_REASON: &str = "Invalid signature";

/// The close reason when the client answers a challenge with the wrong message type.
pub const INVALID_AUTH_FLOW_REASON: &str = "Invalid auth flow";

/// Longest base64 text accepted for a signature or a raw key; anything longer is refused
/// before decoding.
const MAX_BASE64_LEN: usize = 256;

/// A challenge issued to one connection. Owned by that connection's task; consumed by
/// [`Challenge::verify`].
#[derive(Debug)]
pub struct Challenge {
    collective_id: CollectiveId,
    text: String,
    expires_at: OffsetDateTime,
}

/// The operating system's random number generator failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the OS random number generator failed: {0}")]
pub struct EntropyError(String);

/// Why a challenge answer was refused. All variants close with 4001 "Invalid signature".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// Answered after [`CHALLENGE_TTL`].
    #[error("the challenge has expired")]
    Expired,
    /// The signature is not base64.
    #[error("the signature is not valid base64")]
    BadEncoding,
    /// The signature is not 64 bytes.
    #[error("the signature is not 64 bytes long")]
    BadLength,
    /// The signature does not verify over the challenge text with the collective's key.
    #[error("the signature does not verify")]
    BadSignature,
    /// The collective is not (or no longer) registered.
    #[error("the collective is not registered")]
    UnknownCollective,
}

impl ChallengeError {
    /// 4001 for every failure.
    pub const fn close_code(&self) -> CloseCode {
        CloseCode::Unauthorized
    }

    /// "Invalid signature" for every failure.
    pub const fn close_reason(&self) -> &'static str {
        INVALID_SIGNATURE_REASON
    }
}

impl Challenge {
    /// A fresh challenge for `collective_id`, timestamped `now`.
    pub fn issue(
        collective_id: &CollectiveId,
        now: OffsetDateTime,
    ) -> Result<Challenge, EntropyError> {
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| EntropyError(e.to_string()))?;
        let text = format!(
            "{}|{}|{}",
            collective_id,
            hex::encode(nonce),
            roomcast_protocol::time::format_rfc3339(now)
        );
        Ok(Challenge {
            collective_id: collective_id.clone(),
            text,
            expires_at: now + CHALLENGE_TTL,
        })
    }

    /// The text the client must sign.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The `expires_in` to announce: 60.
    pub fn expires_in_secs(&self) -> u64 {
        CHALLENGE_TTL.as_secs()
    }

    /// The collective this challenge was issued for.
    pub fn collective_id(&self) -> &CollectiveId {
        &self.collective_id
    }

    /// The last instant at which an answer is accepted.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }

    /// Checks `signature_b64` (standard or URL-safe base64, padding optional) over the
    /// challenge text with `key`, as of `now`. Consumes the challenge: it cannot be answered
    /// twice.
    pub fn verify(
        self,
        signature_b64: &str,
        key: &VerifyingKey,
        now: OffsetDateTime,
    ) -> Result<(), ChallengeError> {
        if now > self.expires_at {
            return Err(ChallengeError::Expired);
        }
        let bytes = decode_base64(signature_b64).ok_or(ChallengeError::BadEncoding)?;
        let signature = Signature::from_slice(&bytes).map_err(|_| ChallengeError::BadLength)?;
        key.verify_strict(self.text.as_bytes(), &signature)
            .map_err(|_| ChallengeError::BadSignature)
    }

    /// Like [`Challenge::verify`], with the key looked up in `registry` at answer time (a
    /// collective removed meanwhile fails). Returns the collective on success.
    pub fn verify_registered(
        self,
        signature_b64: &str,
        registry: &Collectives,
        now: OffsetDateTime,
    ) -> Result<Arc<Collective>, ChallengeError> {
        let collective = registry
            .get(self.collective_id.as_str())
            .ok_or(ChallengeError::UnknownCollective)?;
        self.verify(signature_b64, &collective.public_key, now)?;
        Ok(collective)
    }
}

/// Why a public key text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A PEM private key was given where the public key belongs.
    #[error("this is a private key; register the public key")]
    PrivateKey,
    /// A PEM that is not an Ed25519 SubjectPublicKeyInfo.
    #[error("not an Ed25519 public key in PEM (SPKI) form")]
    BadPem,
    /// Not base64.
    #[error("not valid base64")]
    BadBase64,
    /// Base64 of the wrong length.
    #[error("expected 32 bytes (raw) or 44 bytes (DER), got {0} bytes")]
    BadLength(usize),
    /// 32 bytes that are not a point on the curve.
    #[error("not a valid Ed25519 public key")]
    InvalidKey,
    /// A small-order key, which would accept forged signatures.
    #[error("weak (small-order) Ed25519 public key")]
    WeakKey,
}

/// Parses an Ed25519 public key from PEM (`-----BEGIN PUBLIC KEY-----`, SPKI) or from base64
/// of the raw 32 bytes (DER SPKI base64, i.e. a PEM body, is accepted too).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    use ed25519_dalek::pkcs8::DecodePublicKey;

    let text = text.trim();
    let key = if text.starts_with("-----BEGIN") {
        if text.lines().next().is_some_and(|l| l.contains("PRIVATE")) {
            return Err(KeyError::PrivateKey);
        }
        VerifyingKey::from_public_key_pem(text).map_err(|_| KeyError::BadPem)?
    } else {
        let bytes = decode_base64(text).ok_or(KeyError::BadBase64)?;
        match bytes.len() {
            32 => {
                let mut raw = [0u8; 32];
                raw.copy_from_slice(&bytes);
                VerifyingKey::from_bytes(&raw).map_err(|_| KeyError::InvalidKey)?
            }
            44 => VerifyingKey::from_public_key_der(&bytes).map_err(|_| KeyError::BadPem)?,
            n => return Err(KeyError::BadLength(n)),
        }
    };
    if key.is_weak() {
        return Err(KeyError::WeakKey);
    }
    Ok(key)
}

/// Standard or URL-safe base64, padding optional, bounded in length.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);

    let text = text.trim();
    if text.is_empty() || text.len() > MAX_BASE64_LEN {
        return None;
    }
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    use ed25519_dalek::{Signer, SigningKey};

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid")
    }

    fn acme() -> CollectiveId {
        CollectiveId::parse("acme").expect("id")
    }

    fn keypair(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn sign(key: &SigningKey, text: &str) -> String {
        STANDARD.encode(key.sign(text.as_bytes()).to_bytes())
    }

    #[test]
    fn challenge_text_has_the_documented_shape() {
        let c = Challenge::issue(&acme(), now()).expect("issue");
        let parts: Vec<&str> = c.text().split('|').collect();
        assert_eq!(parts.len(), 3, "{}", c.text());
        assert_eq!(parts[0], "acme");
        assert_eq!(parts[1].len(), 64);
        assert!(parts[1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(parts[2], "2027-01-15T08:00:00Z");
        assert_eq!(c.expires_in_secs(), 60);
        assert_eq!(c.collective_id().as_str(), "acme");
        assert_eq!(c.expires_at(), now() + Duration::from_secs(60));
    }

    #[test]
    fn valid_signature_is_accepted() {
        let key = keypair(1);
        let c = Challenge::issue(&acme(), now()).expect("issue");
        let sig = sign(&key, c.text());
        assert_eq!(c.verify(&sig, &key.verifying_key(), now()), Ok(()));
        // URL-safe, unpadded base64 is accepted too.
        let c = Challenge::issue(&acme(), now()).expect("issue");
        let sig = URL_SAFE_NO_PAD.encode(key.sign(c.text().as_bytes()).to_bytes());
        assert_eq!(c.verify(&sig, &key.verifying_key(), now()), Ok(()));
    }

    #[test]
    fn wrong_key_is_refused() {
        let c = Challenge::issue(&acme(), now()).expect("issue");
        let sig = sign(&keypair(2), c.text());
        let err = c
            .verify(&sig, &keypair(1).verifying_key(), now())
            .expect_err("wrong key");
        assert_eq!(err, ChallengeError::BadSignature);
        assert_eq!(err.close_code(), CloseCode::Unauthorized);
        assert_eq!(err.close_reason(), "Invalid signature");
    }

    #[test]
    fn tampered_text_is_refused() {
        let key = keypair(1);
        let c = Challenge::issue(&acme(), now()).expect("issue");
        let tampered = c.text().replacen("acme", "acmf", 1);
        let sig = sign(&key, &tampered);
        assert_eq!(
            c.verify(&sig, &key.verifying_key(), now()),
            Err(ChallengeError::BadSignature)
        );
    }

    #[test]
    fn another_connections_signature_is_refused() {
        let key = keypair(1);
        let first = Challenge::issue(&acme(), now()).expect("issue");
        let second = Challenge::issue(&acme(), now()).expect("issue");
        assert_ne!(first.text(), second.text());
        // The signature over the first connection's challenge (or replayed from an earlier
        // connection) does not answer the second.
        let sig_first = sign(&key, first.text());
        assert_eq!(
            second.verify(&sig_first, &key.verifying_key(), now()),
            Err(ChallengeError::BadSignature)
        );
        assert_eq!(
            first.verify(&sig_first, &key.verifying_key(), now()),
            Ok(())
        );
    }

    #[test]
    fn expired_answers_are_refused() {
        let key = keypair(1);
        let c = Challenge::issue(&acme(), now()).expect("issue");
        let sig = sign(&key, c.text());
        let late = now() + Duration::from_secs(61);
        assert_eq!(
            c.verify(&sig, &key.verifying_key(), late),
            Err(ChallengeError::Expired)
        );
        // Exactly at the deadline is still in time.
        let c = Challenge::issue(&acme(), now()).expect("issue");
        let sig = sign(&key, c.text());
        let edge = now() + Duration::from_secs(60);
        assert_eq!(c.verify(&sig, &key.verifying_key(), edge), Ok(()));
    }

    #[test]
    fn bad_encodings_are_refused() {
        let key = keypair(1).verifying_key();
        for (sig, want) in [
            ("", ChallengeError::BadEncoding),
            ("not base64 at all!", ChallengeError::BadEncoding),
            ("AAAA", ChallengeError::BadLength),
            (&"A".repeat(1000), ChallengeError::BadEncoding),
        ] {
            let c = Challenge::issue(&acme(), now()).expect("issue");
            let err = c.verify(sig, &key, now()).expect_err("bad encoding");
            assert_eq!(err, want, "{sig}");
            assert_eq!(err.close_code().as_u16(), 4001);
        }
    }

    #[test]
    fn verify_registered_looks_the_key_up() {
        let key = keypair(3);
        let registry = Collectives::new();
        let public = STANDARD.encode(key.verifying_key().as_bytes());
        registry
            .register(
                Collective::new(acme(), &public, Default::default(), None).expect("collective"),
            )
            .expect("register");
        let c = Challenge::issue(&acme(), now()).expect("issue");
        let sig = sign(&key, c.text());
        let found = c.verify_registered(&sig, &registry, now()).expect("ok");
        assert_eq!(found.id, acme());

        let stranger = CollectiveId::parse("stranger").expect("id");
        let c = Challenge::issue(&stranger, now()).expect("issue");
        let sig = sign(&key, c.text());
        assert_eq!(
            c.verify_registered(&sig, &registry, now()).err(),
            Some(ChallengeError::UnknownCollective)
        );
    }

    #[test]
    fn public_keys_parse_from_pem_and_base64() {
        let key = keypair(5);
        let vk = key.verifying_key();
        let pem = vk.to_public_key_pem(LineEnding::LF).expect("pem");
        assert_eq!(parse_public_key(&pem), Ok(vk));
        assert_eq!(parse_public_key(&format!("  {pem}\n")), Ok(vk));
        assert_eq!(parse_public_key(&STANDARD.encode(vk.as_bytes())), Ok(vk));
        assert_eq!(
            parse_public_key(&URL_SAFE_NO_PAD.encode(vk.as_bytes())),
            Ok(vk)
        );
        // The PEM body alone (base64 SPKI DER).
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(parse_public_key(&body), Ok(vk));

        let private = key.to_pkcs8_pem(LineEnding::LF).expect("pem");
        assert_eq!(parse_public_key(&private), Err(KeyError::PrivateKey));
        assert_eq!(parse_public_key("%%%"), Err(KeyError::BadBase64));
        assert_eq!(
            parse_public_key(&STANDARD.encode([1u8; 16])),
            Err(KeyError::BadLength(16))
        );
        assert_eq!(
            parse_public_key("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
            Err(KeyError::BadPem)
        );
        // The identity point is a small-order (weak) key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            parse_public_key(&STANDARD.encode(identity)),
            Err(KeyError::WeakKey)
        );
    }
}
