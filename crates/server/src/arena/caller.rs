//! Who is calling a private arena route: a request signed with a collective's Ed25519
//! key (`X-Collective-Id`, `X-Timestamp`, `X-Signature`), or a JWT bearer token whose
//! `collective_id` claim (or, without one, `sub`) names a registered collective.
//!
//! Every failure is a 401 with a machine-readable code; the caller learns which check
//! failed (unlike the WebSocket challenge) because a trading program needs to tell a
//! clock skew from a bad key, and neither reveals anything about other collectives.

use axum::http::{HeaderMap, Method, Uri};
use roomcast_engine::auth::{CollectiveId, SignedError, SignedHeaders, SignedMessage};
use time::OffsetDateTime;

use crate::api::{bearer, ApiError};
use crate::app::AppState;

/// The header naming the signing collective.
pub(crate) const COLLECTIVE_HEADER: &str = "x-collective-id";
/// The header carrying unix milliseconds.
pub(crate) const TIMESTAMP_HEADER: &str = "x-timestamp";
/// The header carrying the base64 signature.
pub(crate) const SIGNATURE_HEADER: &str = "x-signature";

fn unauthenticated(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Unauthenticated {
        code,
        message: message.into(),
    }
}

impl From<SignedError> for ApiError {
    fn from(e: SignedError) -> ApiError {
        if e.is_unauthorized() {
            unauthenticated(e.code(), e.to_string())
        } else {
            ApiError::Coded {
                status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                code: e.code(),
                message: e.to_string(),
            }
        }
    }
}

/// Authenticates a private call from its request line, headers and raw body.
pub(crate) fn caller(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<CollectiveId, ApiError> {
    if let Some(token) = bearer(headers) {
        return from_token(state, token);
    }
    let header = |name: &'static str, label: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(SignedError::MissingHeader(label))
    };
    let signed = SignedHeaders {
        collective_id: header(COLLECTIVE_HEADER, "X-Collective-Id")?,
        timestamp: header(TIMESTAMP_HEADER, "X-Timestamp")?,
        signature: header(SIGNATURE_HEADER, "X-Signature")?,
    };
    let path_with_query = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| uri.path());
    let message = SignedMessage {
        method: method.as_str(),
        path_with_query,
        body,
    };
    let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let collective = state
        .signed
        .verify(&state.security.collectives, signed, message, now_ms)?;
    Ok(collective.id.clone())
}

fn from_token(state: &AppState, token: &str) -> Result<CollectiveId, ApiError> {
    let verifier = state.security.verifier.as_ref().ok_or_else(|| {
        unauthenticated(
            "invalid_token",
            "bearer tokens need a configured JWT key; sign the request instead",
        )
    })?;
    let claims = verifier
        .verify(token, OffsetDateTime::now_utc())
        .map_err(|e| unauthenticated("invalid_token", e.to_string()))?;
    let id = claims.collective_id.as_deref().unwrap_or(&claims.sub);
    let id = CollectiveId::parse(id)
        .map_err(|_| unauthenticated("unknown_collective", "the token names no collective"))?;
    if state.security.collectives.get(id.as_str()).is_none() {
        return Err(unauthenticated("unknown_collective", "unknown collective"));
    }
    Ok(id)
}
