//! API key checks for `Authorization: Bearer <key>`, compared in constant time.

use axum::http::HeaderMap;

use super::ApiError;

/// The configured keys for one API surface.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<String>,
}

impl ApiKeys {
    /// Keys as configured (empty strings are ignored).
    pub fn new(keys: impl IntoIterator<Item = String>) -> ApiKeys {
        ApiKeys {
            keys: keys.into_iter().filter(|k| !k.is_empty()).collect(),
        }
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Accepts the request if its bearer token is one of the keys.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let presented = bearer(headers).ok_or(ApiError::Unauthorized)?;
        if self
            .keys
            .iter()
            .any(|k| constant_time_eq(k.as_bytes(), presented.as_bytes()))
        {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `subtle`'s comparison: the time taken does not depend on where the inputs differ (it
/// does on their lengths, which an attacker learns nothing useful from).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}
