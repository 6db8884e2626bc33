//! JWT verification (`JwtVerifier::verify`) of bearer tokens from query strings, headers,
//! subprotocols and `refresh` requests.
//!
//! The verifier holds an HS256 secret and an Ed25519 public key, like a server that takes
//! both. Three modes, chosen by the first byte:
//! - any text as a token: never accepted (nothing here can forge a signature, so an `Ok`
//!   is an algorithm-confusion or signature-skipping bug);
//! - any bytes as the payload of a correctly signed HS256 token: an accepted token's
//!   claims are the payload's (`sub`, `exp` floored, roles from `role`/`roles`, not
//!   expired); a canonical `{"sub":..,"exp":..}` payload that is not expired is accepted;
//! - a minted token with one byte changed: refused, or accepted with the same claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePublicKey;
use jsonwebtoken::{Algorithm, EncodingKey};
use roomcast_engine::auth::jwt::{mint_hs256, MintRequest};
use roomcast_engine::auth::{JwtConfig, JwtVerifier};
use serde_json::Value;
use time::OffsetDateTime;

use crate::input::Input;

const SECRET: &str = "fuzzing-secret-0123456789";
const NOW: i64 = 1_800_000_000;
const LEEWAY: i64 = 30;

fn verifier() -> JwtVerifier {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let pem = key
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .ok();
    let config = JwtConfig {
        hs256_secret: Some(SECRET.to_owned()),
        public_key_pem: pem,
        leeway: std::time::Duration::from_secs(LEEWAY as u64),
        ..JwtConfig::default()
    };
    match JwtVerifier::new(&config) {
        Ok(v) => v,
        Err(e) => panic!("the fuzzing verifier must build: {e}"),
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The target body.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let verifier = verifier();
    match input.byte() % 3 {
        0 => {
            let token = String::from_utf8_lossy(input.rest());
            let result = verifier.verify(&token, now());
            assert!(
                result.is_err(),
                "forged token {token:?} accepted: {result:?}"
            );
        }
        1 => signed_payload(&verifier, input.rest()),
        _ => tampered(&verifier, &mut input),
    }
}

/// An HS256 token over `payload`, signed with the verifier's secret.
fn sign(payload: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    match jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256) {
        Ok(signature) => format!("{message}.{signature}"),
        Err(e) => panic!("HS256 signing failed: {e}"),
    }
}

fn signed_payload(verifier: &JwtVerifier, payload: &[u8]) {
    let token = sign(payload);
    let result = verifier.verify(&token, now());
    // serde_json does not check the UTF-8 of string values it skips, so a payload with
    // invalid UTF-8 inside a claim roomcast ignores still verifies (its issuer signed it;
    // found by fuzzing, fuzz/regressions/jwt/invalid-utf8-in-ignored-claim). The
    // reference reads the payload the same way: lossily.
    let value: Option<Value> = serde_json::from_str(&String::from_utf8_lossy(payload)).ok();
    match result {
        Ok(claims) => {
            let Some(obj) = value.as_ref().and_then(Value::as_object) else {
                panic!("payload {payload:?} is no JSON object, yet verified: {claims:?}");
            };
            assert_eq!(
                obj.get("sub").and_then(Value::as_str),
                Some(claims.sub.as_str())
            );
            let exp = obj.get("exp").map(numeric_date);
            assert_eq!(exp, Some(claims.exp), "exp of {obj:?}");
            assert!(NOW < claims.exp.saturating_add(LEEWAY), "expired: {obj:?}");
            if let Some(nbf) = claims.nbf {
                assert!(NOW >= nbf.saturating_sub(LEEWAY), "not yet valid: {obj:?}");
            }
            let named = |field: &str| -> Vec<String> {
                match obj.get(field) {
                    Some(Value::String(s)) => vec![s.clone()],
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                }
            };
            let mut roles = named("role");
            roles.extend(named("roles"));
            for role in &claims.roles {
                assert!(roles.contains(role), "role {role} not in {obj:?}");
            }
        }
        Err(e) => {
            // A canonical minimal payload (serde_json's own output, so no duplicate keys)
            // that is not expired must verify.
            let Some(obj) = value.as_ref().and_then(Value::as_object) else {
                return;
            };
            let canonical = value.as_ref().and_then(|v| serde_json::to_vec(v).ok());
            let minimal = obj.keys().all(|k| k == "sub" || k == "exp")
                && obj.get("sub").is_some_and(Value::is_string)
                && obj
                    .get("exp")
                    .and_then(Value::as_i64)
                    .is_some_and(|exp| NOW < exp.saturating_add(LEEWAY));
            assert!(
                !(minimal && canonical.as_deref() == Some(payload)),
                "valid payload {obj:?} refused: {e}"
            );
        }
    }
}

/// RFC 7519 NumericDate as the verifier reads it: an integer, or a number floored.
fn numeric_date(v: &Value) -> i64 {
    match v.as_i64() {
        Some(n) => n,
        None => v.as_f64().map(|f| f.floor() as i64).unwrap_or(i64::MIN),
    }
}

fn tampered(verifier: &JwtVerifier, input: &mut Input<'_>) {
    let sub = input.text();
    let position = usize::from(input.byte()) * 256 + usize::from(input.byte());
    let replacement = input.byte();
    let issued = OffsetDateTime::from_unix_timestamp(NOW - 10).unwrap_or(now());
    let request = MintRequest::new(sub, std::time::Duration::from_secs(3600));
    let Ok(token) = mint_hs256(SECRET, &request, issued) else {
        return;
    };
    let original = match verifier.verify(&token, now()) {
        Ok(claims) => claims,
        Err(e) => panic!("a freshly minted token {token:?} was refused: {e}"),
    };
    assert_eq!(original.sub, request.sub);
    let mut bytes = token.into_bytes();
    let len = bytes.len();
    bytes[position % len] = replacement;
    let changed = String::from_utf8_lossy(&bytes);
    if let Ok(claims) = verifier.verify(&changed, now()) {
        assert_eq!(
            claims, original,
            "tampered token {changed:?} changed the claims"
        );
    }
}
