//! JSON Web Tokens: verification of bearer tokens on the handshake path, and minting of
//! development tokens for `roomcast token`.
//!
//! [`JwtVerifier`] is built once from a [`JwtConfig`]: the HS256 secret and the public key
//! (EdDSA or RS256, detected from the PEM) are parsed at construction, so verifying a token
//! costs one signature check and one small JSON parse, with no key parsing.
//!
//! Rules, in the order they are applied:
//! - a token longer than [`MAX_TOKEN_LEN`] or not shaped `header.payload.signature` is
//!   [`JwtError::Malformed`];
//! - the header's `alg` must be one the configuration has a key for (HS256 with a secret,
//!   EdDSA or RS256 with a public key of that kind). The key is chosen by `alg` and checked
//!   against that one algorithm only, so an RSA public key can never be used as an HMAC
//!   secret (the classic algorithm-confusion attack);
//! - the signature must verify ([`JwtError::BadSignature`]);
//! - `sub` and `exp` are required ([`JwtError::MissingClaim`]): roomcast issues no
//!   everlasting tokens;
//! - `exp` (now ≥ exp + leeway → [`JwtError::Expired`]) and `nbf` (now < nbf − leeway →
//!   [`JwtError::NotYetValid`]) are checked against the `now` the caller passes, so tests
//!   need no clock;
//! - when an issuer or audience is configured, `iss` must equal it and `aud` (a string or a
//!   list) must contain it; when none is configured the claim is ignored.
//!
//! Close codes ([`JwtError::close_code`]): expired **and not-yet-valid** tokens close with
//! 4003 `TOKEN_EXPIRED` (both mean "the token is fine but its validity window does not
//! include now; get a fresh one / fix your clock"); everything else closes with 4002
//! `INVALID_TOKEN`.
//!
//! Claims roomcast reads besides the registered ones: `rooms` and `publish` (room patterns,
//! see [`crate::auth::policy`]), `role` (a string) and/or `roles` (a string or a list; the
//! union is kept; `admin` lifts the reserved-room restriction), and `collective_id`.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use roomcast_protocol::CloseCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The default clock leeway for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The longest token accepted, in bytes. Tokens arrive in query strings and headers; anything
/// longer is refused before any decoding work.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Where the verifier's keys and expectations come from.
#[derive(Clone)]
pub struct JwtConfig {
    /// The shared secret for HS256 tokens.
    pub hs256_secret: Option<String>,
    /// A public key in PEM form (`-----BEGIN PUBLIC KEY-----` SPKI, Ed25519 or RSA, or
    /// `-----BEGIN RSA PUBLIC KEY-----`): enables EdDSA or RS256 tokens, whichever it is.
    pub public_key_pem: Option<String>,
    /// When set, tokens must carry exactly this `iss`.
    pub issuer: Option<String>,
    /// When set, tokens' `aud` must contain this value.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf` (whole seconds are used).
    pub leeway: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            hs256_secret: None,
            public_key_pem: None,
            issuer: None,
            audience: None,
            leeway: DEFAULT_LEEWAY,
        }
    }
}

impl fmt::Debug for JwtConfig {
    // Never print the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("public_key_pem", &self.public_key_pem.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// Why a [`JwtConfig`] cannot make a verifier. Messages name the flags to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtConfigError {
    /// Neither a secret nor a public key.
    #[error("no JWT key configured: set --jwt-secret or --jwt-public-key (or use --dev for development)")]
    NoKey,
    /// The secret is the empty string.
    #[error("the JWT secret (--jwt-secret) is empty")]
    EmptySecret,
    /// The PEM holds a private key.
    #[error("the JWT public key (--jwt-public-key) is a private key; configure its public half")]
    PrivateKey,
    /// The PEM is neither an Ed25519 nor an RSA public key.
    #[error(
        "the JWT public key (--jwt-public-key) is not an Ed25519 or RSA public key in PEM form"
    )]
    BadPublicKey,
}

/// Why a token was refused. Messages are for logs; clients only see the close code and
/// [`JwtError::close_reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a JWT: wrong shape, bad base64 or JSON, a claim of the wrong type, or too long.
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm this server has no key for.
    #[error("token algorithm {0} is not accepted")]
    UnsupportedAlgorithm(&'static str),
    /// The signature does not verify with the configured key.
    #[error("token signature does not verify")]
    BadSignature,
    /// A claim roomcast requires (`sub`, `exp`) is absent.
    #[error("token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// `exp` is past, beyond the leeway.
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` differs from the configured issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("token audience is not accepted")]
    WrongAudience,
}

impl JwtError {
    /// The close code for a connection whose token failed this way: 4003 for a validity
    /// window that excludes now (expired or not yet valid), 4002 for everything else.
    pub const fn close_code(&self) -> CloseCode {
        match self {
            JwtError::Expired | JwtError::NotYetValid => CloseCode::TokenExpired,
            JwtError::Malformed
            | JwtError::UnsupportedAlgorithm(_)
            | JwtError::BadSignature
            | JwtError::MissingClaim(_)
            | JwtError::WrongIssuer
            | JwtError::WrongAudience => CloseCode::InvalidToken,
        }
    }

    /// The close reason sent to the client. Deliberately coarse: it says which code family
    /// applies without helping an attacker tell the checks apart.
    pub const fn close_reason(&self) -> &'static str {
        match self {
            JwtError::NotYetValid => "Token not yet valid",
            _ => self.close_code().default_reason(),
        }
    }
}

/// The claims of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The subject: the client id the token was issued for.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Not-before, seconds since the Unix epoch.
    pub nbf: Option<i64>,
    /// Room patterns the holder may subscribe to; `None` means the server's default policy.
    pub rooms: Option<Vec<String>>,
    /// Room patterns the holder may publish to; `None` falls back to `rooms`, then the
    /// default policy.
    pub publish: Option<Vec<String>>,
    /// Roles, from `role` and `roles` together.
    pub roles: Vec<String>,
    /// The collective (account) the holder acts for.
    pub collective_id: Option<String>,
}

/// The role that lifts the reserved-room restriction.
pub const ADMIN_ROLE: &str = "admin";

impl Claims {
    /// Whether the token carries `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the token carries the `admin` role.
    pub fn is_admin(&self) -> bool {
        self.has_role(ADMIN_ROLE)
    }

    /// When the token expires (without leeway), e.g. to end the session then.
    pub fn expires_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.exp).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// One verification key with the validation rules for its single algorithm.
struct VerifyKey {
    alg: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

impl VerifyKey {
    fn new(alg: Algorithm, key: DecodingKey) -> VerifyKey {
        // jsonwebtoken checks the signature and the algorithm; every claim check is ours
        // so that it runs against the caller's `now`.
        let mut validation = Validation::new(alg);
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        VerifyKey {
            alg,
            key,
            validation,
        }
    }
}

/// Verifies tokens against the configured keys. Cheap to share (`Arc`) across connections.
pub struct JwtVerifier {
    hmac: Option<VerifyKey>,
    public: Option<VerifyKey>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: i64,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.algorithms())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

impl JwtVerifier {
    /// Parses the configured keys. Fails if there is no key or a key cannot be used.
    pub fn new(config: &JwtConfig) -> Result<JwtVerifier, JwtConfigError> {
        let hmac = match &config.hs256_secret {
            Some(secret) if secret.is_empty() => return Err(JwtConfigError::EmptySecret),
            Some(secret) => Some(VerifyKey::new(
                Algorithm::HS256,
                DecodingKey::from_secret(secret.as_bytes()),
            )),
            None => None,
        };
        let public = match &config.public_key_pem {
            Some(pem) => Some(parse_public_pem(pem)?),
            None => None,
        };
        if hmac.is_none() && public.is_none() {
            return Err(JwtConfigError::NoKey);
        }
        Ok(JwtVerifier {
            hmac,
            public,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway_secs: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
        })
    }

    /// The algorithms this verifier accepts, e.g. `["HS256", "EdDSA"]`, for start-up logs.
    pub fn algorithms(&self) -> Vec<&'static str> {
        [&self.hmac, &self.public]
            .into_iter()
            .flatten()
            .map(|k| alg_name(k.alg))
            .collect()
    }

    /// How long a session opened with `claims` lives from `now`: until the instant the
    /// token itself would stop verifying (`exp` plus the configured leeway), so a session
    /// never outlasts what a fresh handshake with its token would be granted.
    pub fn session_remaining(&self, claims: &Claims, now: OffsetDateTime) -> std::time::Duration {
        let end = claims.exp.saturating_add(self.leeway_secs);
        let left_ms = i128::from(end) * 1000 - (now.unix_timestamp_nanos() / 1_000_000);
        u64::try_from(left_ms)
            .map(std::time::Duration::from_millis)
            .unwrap_or(std::time::Duration::ZERO)
    }

    /// Verifies `token` and its claims as of `now`.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Claims, JwtError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        let key = [&self.hmac, &self.public]
            .into_iter()
            .flatten()
            .find(|k| k.alg == header.alg)
            .ok_or(JwtError::UnsupportedAlgorithm(alg_name(header.alg)))?;
        let data = jsonwebtoken::decode::<RawClaims>(token, &key.key, &key.validation)
            .map_err(|e| map_decode_error(&e))?;
        self.check_claims(data.claims, now)
    }

    fn check_claims(&self, raw: RawClaims, now: OffsetDateTime) -> Result<Claims, JwtError> {
        let sub = raw.sub.ok_or(JwtError::MissingClaim("sub"))?;
        let exp = raw.exp.ok_or(JwtError::MissingClaim("exp"))?.seconds();
        let nbf = raw.nbf.map(NumericDate::seconds);
        let now = now.unix_timestamp();
        if now >= exp.saturating_add(self.leeway_secs) {
            return Err(JwtError::Expired);
        }
        if let Some(nbf) = nbf {
            if now < nbf.saturating_sub(self.leeway_secs) {
                return Err(JwtError::NotYetValid);
            }
        }
        if let Some(issuer) = &self.issuer {
            if raw.iss.as_deref() != Some(issuer.as_str()) {
                return Err(JwtError::WrongIssuer);
            }
        }
        if let Some(audience) = &self.audience {
            let ok = raw
                .aud
                .as_ref()
                .is_some_and(|aud| aud.iter().any(|a| a == audience));
            if !ok {
                return Err(JwtError::WrongAudience);
            }
        }
        let mut roles: Vec<String> = Vec::new();
        for role in raw
            .role
            .iter()
            .chain(raw.roles.iter())
            .flat_map(OneOrMany::iter)
        {
            if !roles.iter().any(|r| r == role) {
                roles.push(role.to_owned());
            }
        }
        Ok(Claims {
            sub,
            exp,
            nbf,
            rooms: raw.rooms,
            publish: raw.publish,
            roles,
            collective_id: raw.collective_id,
        })
    }
}

/// Detects the PEM's key type and parses it once.
fn parse_public_pem(pem: &str) -> Result<VerifyKey, JwtConfigError> {
    use ed25519_dalek::pkcs8::DecodePublicKey;

    let pem = pem.trim();
    let label = pem.lines().next().ok_or(JwtConfigError::BadPublicKey)?;
    if label.contains("PRIVATE") {
        return Err(JwtConfigError::PrivateKey);
    }
    if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
        return Ok(VerifyKey::new(
            Algorithm::EdDSA,
            DecodingKey::from_ed_der(key.as_bytes()),
        ));
    }
    match DecodingKey::from_rsa_pem(pem.as_bytes()) {
        Ok(key) => Ok(VerifyKey::new(Algorithm::RS256, key)),
        Err(_) => Err(JwtConfigError::BadPublicKey),
    }
}

fn map_decode_error(e: &jsonwebtoken::errors::Error) -> JwtError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidSignature => JwtError::BadSignature,
        // A key that cannot check the signature is, for the client, a signature that does
        // not verify.
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidEddsaKey | ErrorKind::InvalidKeyFormat => {
            JwtError::BadSignature
        }
        ErrorKind::InvalidAlgorithm => JwtError::UnsupportedAlgorithm("mismatched"),
        _ => JwtError::Malformed,
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
    }
}

/// The payload as sent; checked and turned into [`Claims`].
#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    iss: Option<String>,
    aud: Option<OneOrMany>,
    rooms: Option<Vec<String>>,
    publish: Option<Vec<String>>,
    role: Option<OneOrMany>,
    roles: Option<OneOrMany>,
    collective_id: Option<String>,
}

/// JWT dates may be fractional (RFC 7519 NumericDate).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumericDate {
    Int(i64),
    Float(f64),
}

impl NumericDate {
    fn seconds(self) -> i64 {
        match self {
            NumericDate::Int(s) => s,
            // `as` saturates; JSON has no NaN.
            NumericDate::Float(s) => s.floor() as i64,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            OneOrMany::One(s) => (Some(s.as_str()), &[][..]),
            OneOrMany::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }
}

/// What `roomcast token` puts into a development token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// The client id the token is for.
    pub sub: String,
    /// Subscribe patterns (`rooms` claim), if any.
    pub rooms: Option<Vec<String>>,
    /// Publish patterns (`publish` claim), if any.
    pub publish: Option<Vec<String>>,
    /// Roles (`roles` claim); omitted when empty.
    pub roles: Vec<String>,
    /// The collective the holder acts for (`collective_id` claim).
    pub collective_id: Option<String>,
    /// `iss`, for servers that require one.
    pub issuer: Option<String>,
    /// `aud`, for servers that require one.
    pub audience: Option<String>,
    /// Lifetime: `exp` = now + ttl.
    pub ttl: Duration,
}

impl MintRequest {
    /// A request for `sub`, valid for `ttl`, with no optional claims (set the public
    /// fields for more).
    pub fn new(sub: impl Into<String>, ttl: Duration) -> MintRequest {
        MintRequest {
            sub: sub.into(),
            rooms: None,
            publish: None,
            roles: Vec::new(),
            collective_id: None,
            issuer: None,
            audience: None,
            ttl,
        }
    }
}

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// The secret is the empty string.
    #[error("the JWT secret is empty")]
    EmptySecret,
    /// The subject is empty.
    #[error("the token subject is empty")]
    EmptySubject,
    /// The signing library failed.
    #[error("could not sign the token: {0}")]
    Sign(String),
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rooms: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    publish: Option<&'a [String]>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    roles: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    collective_id: Option<&'a str>,
}

/// Mints an HS256 token issued at `now` that [`JwtVerifier`] accepts with the same secret.
pub fn mint_hs256(
    secret: &str,
    request: &MintRequest,
    now: OffsetDateTime,
) -> Result<String, MintError> {
    if secret.is_empty() {
        return Err(MintError::EmptySecret);
    }
    if request.sub.is_empty() {
        return Err(MintError::EmptySubject);
    }
    let iat = now.unix_timestamp();
    let ttl = i64::try_from(request.ttl.as_secs()).unwrap_or(i64::MAX);
    let claims = MintedClaims {
        sub: &request.sub,
        iat,
        exp: iat.saturating_add(ttl),
        iss: request.issuer.as_deref(),
        aud: request.audience.as_deref(),
        rooms: request.rooms.as_deref(),
        publish: request.publish.as_deref(),
        roles: &request.roles,
        collective_id: request.collective_id.as_deref(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| MintError::Sign(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    use serde_json::{json, Value};

    const SECRET: &str = "test-secret-of-reasonable-length";
    const RSA_PRIVATE: &str = include_str!("../../tests/data/rs256_test_private.pem");
    const RSA_PUBLIC: &str = include_str!("../../tests/data/rs256_test_public.pem");

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid")
    }

    fn hs_verifier() -> JwtVerifier {
        JwtVerifier::new(&JwtConfig {
            hs256_secret: Some(SECRET.to_owned()),
            ..JwtConfig::default()
        })
        .expect("verifier")
    }

    fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, key).expect("encode")
    }

    fn hs(claims: &Value) -> String {
        sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET.as_bytes()),
            claims,
        )
    }

    fn basic(offset_exp: i64) -> Value {
        json!({"sub": "alice", "exp": now().unix_timestamp() + offset_exp})
    }

    #[test]
    fn valid_hs256_token_yields_claims() {
        let token = hs(&json!({
            "sub": "alice",
            "exp": now().unix_timestamp() + 60,
            "nbf": now().unix_timestamp() - 1,
            "rooms": ["chat:*", "general"],
            "publish": ["chat:lobby"],
            "role": "admin",
            "roles": ["trader", "admin"],
            "collective_id": "acme",
        }));
        let claims = hs_verifier().verify(&token, now()).expect("valid");
        assert_eq!(claims.sub, "alice");
        assert_eq!(
            claims.rooms.as_deref(),
            Some(&["chat:*".to_owned(), "general".to_owned()][..])
        );
        assert_eq!(
            claims.publish.as_deref(),
            Some(&["chat:lobby".to_owned()][..])
        );
        assert_eq!(claims.roles, vec!["admin".to_owned(), "trader".to_owned()]);
        assert!(claims.is_admin());
        assert_eq!(claims.collective_id.as_deref(), Some("acme"));
        assert_eq!(
            claims.expires_at().unix_timestamp(),
            now().unix_timestamp() + 60
        );
    }

    #[test]
    fn roles_as_a_single_string_and_fractional_dates() {
        let token = hs(&json!({"sub": "a", "exp": 1_800_000_100.5, "roles": "admin"}));
        let claims = hs_verifier().verify(&token, now()).expect("valid");
        assert!(claims.is_admin());
        assert_eq!(claims.exp, 1_800_000_100);
    }

    #[test]
    fn bad_signature_is_4002() {
        let token = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(b"another-secret"),
            &basic(60),
        );
        let err = hs_verifier()
            .verify(&token, now())
            .expect_err("bad signature");
        assert_eq!(err, JwtError::BadSignature);
        assert_eq!(err.close_code(), CloseCode::InvalidToken);
    }

    #[test]
    fn tampered_payload_is_a_bad_signature() {
        let token = hs(&basic(60));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged = hs(&json!({"sub": "mallory", "exp": now().unix_timestamp() + 60}));
        parts[1] = forged.split('.').nth(1).expect("payload").to_owned();
        let err = hs_verifier()
            .verify(&parts.join("."), now())
            .expect_err("forged");
        assert_eq!(err, JwtError::BadSignature);
    }

    #[test]
    fn malformed_tokens_are_4002() {
        let v = hs_verifier();
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c",
            "!!.??.**",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            let err = v.verify(token, now()).expect_err(token);
            assert_eq!(err, JwtError::Malformed, "{token}");
            assert_eq!(err.close_code(), CloseCode::InvalidToken);
        }
        // A well-signed token whose claims have the wrong types.
        let token = hs(&json!({"sub": 42, "exp": "tomorrow"}));
        assert_eq!(v.verify(&token, now()), Err(JwtError::Malformed));
    }

    #[test]
    fn required_claims() {
        let v = hs_verifier();
        let token = hs(&json!({"exp": now().unix_timestamp() + 60}));
        assert_eq!(v.verify(&token, now()), Err(JwtError::MissingClaim("sub")));
        let token = hs(&json!({"sub": "alice"}));
        let err = v.verify(&token, now()).expect_err("no exp");
        assert_eq!(err, JwtError::MissingClaim("exp"));
        assert_eq!(err.close_code(), CloseCode::InvalidToken);
    }

    #[test]
    fn expiry_honours_the_leeway() {
        let v = hs_verifier();
        // Expired 10 s ago: inside the 30 s leeway.
        assert!(v.verify(&hs(&basic(-10)), now()).is_ok());
        // Expired 31 s ago: beyond it.
        let err = v.verify(&hs(&basic(-31)), now()).expect_err("expired");
        assert_eq!(err, JwtError::Expired);
        assert_eq!(err.close_code(), CloseCode::TokenExpired);
        assert_eq!(err.close_code().as_u16(), 4003);
        // With no leeway, an exp of exactly now is already expired.
        let strict = JwtVerifier::new(&JwtConfig {
            hs256_secret: Some(SECRET.to_owned()),
            leeway: Duration::ZERO,
            ..JwtConfig::default()
        })
        .expect("verifier");
        assert_eq!(strict.verify(&hs(&basic(0)), now()), Err(JwtError::Expired));
        assert!(strict.verify(&hs(&basic(1)), now()).is_ok());
    }

    #[test]
    fn not_before_in_the_future_is_4003() {
        let v = hs_verifier();
        let at = now().unix_timestamp();
        let within = hs(&json!({"sub": "a", "exp": at + 600, "nbf": at + 20}));
        assert!(v.verify(&within, now()).is_ok());
        let future = hs(&json!({"sub": "a", "exp": at + 600, "nbf": at + 31}));
        let err = v.verify(&future, now()).expect_err("not yet valid");
        assert_eq!(err, JwtError::NotYetValid);
        assert_eq!(err.close_code(), CloseCode::TokenExpired);
        assert_eq!(err.close_reason(), "Token not yet valid");
    }

    #[test]
    fn issuer_and_audience() {
        let v = JwtVerifier::new(&JwtConfig {
            hs256_secret: Some(SECRET.to_owned()),
            issuer: Some("roomcast".to_owned()),
            audience: Some("ws".to_owned()),
            ..JwtConfig::default()
        })
        .expect("verifier");
        let exp = now().unix_timestamp() + 60;
        let ok = hs(&json!({"sub": "a", "exp": exp, "iss": "roomcast", "aud": ["api", "ws"]}));
        assert!(v.verify(&ok, now()).is_ok());
        let ok = hs(&json!({"sub": "a", "exp": exp, "iss": "roomcast", "aud": "ws"}));
        assert!(v.verify(&ok, now()).is_ok());
        for (claims, want) in [
            (
                json!({"sub": "a", "exp": exp, "iss": "evil", "aud": "ws"}),
                JwtError::WrongIssuer,
            ),
            (
                json!({"sub": "a", "exp": exp, "aud": "ws"}),
                JwtError::WrongIssuer,
            ),
            (
                json!({"sub": "a", "exp": exp, "iss": "roomcast", "aud": "api"}),
                JwtError::WrongAudience,
            ),
            (
                json!({"sub": "a", "exp": exp, "iss": "roomcast"}),
                JwtError::WrongAudience,
            ),
        ] {
            let err = v.verify(&hs(&claims), now()).expect_err("mismatch");
            assert_eq!(err, want);
            assert_eq!(err.close_code(), CloseCode::InvalidToken);
        }
        // Without configured expectations the claims are ignored.
        let any = hs(&json!({"sub": "a", "exp": exp, "iss": "evil", "aud": "api"}));
        assert!(hs_verifier().verify(&any, now()).is_ok());
    }

    fn ed_keypair(seed: u8) -> (EncodingKey, String) {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let der = signing.to_pkcs8_der().expect("pkcs8");
        let public = signing
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .expect("pem");
        (EncodingKey::from_ed_der(der.as_bytes()), public)
    }

    #[test]
    fn eddsa_tokens_verify_with_the_public_pem() {
        let (signing, public_pem) = ed_keypair(7);
        let v = JwtVerifier::new(&JwtConfig {
            public_key_pem: Some(public_pem),
            ..JwtConfig::default()
        })
        .expect("verifier");
        assert_eq!(v.algorithms(), vec!["EdDSA"]);
        let token = sign(Algorithm::EdDSA, &signing, &basic(60));
        assert_eq!(v.verify(&token, now()).expect("valid").sub, "alice");

        let (other, _) = ed_keypair(8);
        let forged = sign(Algorithm::EdDSA, &other, &basic(60));
        assert_eq!(v.verify(&forged, now()), Err(JwtError::BadSignature));

        // No secret configured: HS256 tokens are refused outright.
        let err = v.verify(&hs(&basic(60)), now()).expect_err("hs256");
        assert_eq!(err, JwtError::UnsupportedAlgorithm("HS256"));
        assert_eq!(err.close_code(), CloseCode::InvalidToken);
    }

    #[test]
    fn rs256_tokens_verify_with_the_public_pem() {
        let v = JwtVerifier::new(&JwtConfig {
            public_key_pem: Some(RSA_PUBLIC.to_owned()),
            hs256_secret: Some(SECRET.to_owned()),
            ..JwtConfig::default()
        })
        .expect("verifier");
        assert_eq!(v.algorithms(), vec!["HS256", "RS256"]);
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa key");
        let token = sign(Algorithm::RS256, &key, &basic(60));
        assert_eq!(v.verify(&token, now()).expect("valid").sub, "alice");
        // Both key kinds work side by side.
        assert!(v.verify(&hs(&basic(60)), now()).is_ok());
        // Algorithm confusion: an HS256 token signed with the RSA public key as the secret.
        let confused = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
            &basic(60),
        );
        assert_eq!(v.verify(&confused, now()), Err(JwtError::BadSignature));
        // Expiry applies to every algorithm.
        let old = sign(Algorithm::RS256, &key, &basic(-100));
        assert_eq!(v.verify(&old, now()), Err(JwtError::Expired));
    }

    #[test]
    fn config_errors() {
        assert_eq!(
            JwtVerifier::new(&JwtConfig::default()).err(),
            Some(JwtConfigError::NoKey)
        );
        assert!(JwtConfigError::NoKey.to_string().contains("--jwt-secret"));
        let empty = JwtConfig {
            hs256_secret: Some(String::new()),
            ..JwtConfig::default()
        };
        assert_eq!(
            JwtVerifier::new(&empty).err(),
            Some(JwtConfigError::EmptySecret)
        );
        let private = JwtConfig {
            public_key_pem: Some(RSA_PRIVATE.to_owned()),
            ..JwtConfig::default()
        };
        assert_eq!(
            JwtVerifier::new(&private).err(),
            Some(JwtConfigError::PrivateKey)
        );
        let junk = JwtConfig {
            public_key_pem: Some(
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_owned(),
            ),
            ..JwtConfig::default()
        };
        assert_eq!(
            JwtVerifier::new(&junk).err(),
            Some(JwtConfigError::BadPublicKey)
        );
        // The secret never shows in Debug output.
        let cfg = JwtConfig {
            hs256_secret: Some(SECRET.to_owned()),
            ..JwtConfig::default()
        };
        assert!(!format!("{cfg:?}").contains(SECRET));
    }

    #[test]
    fn minted_tokens_round_trip() {
        let request = MintRequest {
            sub: "alice".to_owned(),
            rooms: Some(vec!["chat:*".to_owned()]),
            publish: None,
            roles: vec!["admin".to_owned()],
            collective_id: Some("acme".to_owned()),
            issuer: None,
            audience: None,
            ttl: Duration::from_secs(3600),
        };
        let token = mint_hs256(SECRET, &request, now()).expect("mint");
        let claims = hs_verifier().verify(&token, now()).expect("valid");
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.exp, now().unix_timestamp() + 3600);
        assert_eq!(claims.rooms, Some(vec!["chat:*".to_owned()]));
        assert_eq!(claims.publish, None);
        assert!(claims.is_admin());
        assert_eq!(claims.collective_id.as_deref(), Some("acme"));
        // An hour and a minute later it is expired.
        let later = now() + Duration::from_secs(3661);
        assert_eq!(hs_verifier().verify(&token, later), Err(JwtError::Expired));

        assert_eq!(mint_hs256("", &request, now()), Err(MintError::EmptySecret));
        let nobody = MintRequest {
            sub: String::new(),
            ..request
        };
        assert_eq!(
            mint_hs256(SECRET, &nobody, now()),
            Err(MintError::EmptySubject)
        );
    }
}
