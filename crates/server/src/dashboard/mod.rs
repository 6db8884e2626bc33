//! The web dashboard: one static page (HTML, JS and CSS embedded in the binary, no build
//! step, nothing fetched from elsewhere) fed by a WebSocket stream of the server's own
//! statistics ([`stream`]), with the trading arena's panel ([`arena`]) when it runs.
//!
//! Access follows the admin API's rule ([`crate::api::admin::authorize`]), with one addition
//! for browsers, which cannot set an `Authorization` header on a page load: the admin key may
//! come as `?key=<admin key>` on the page and stream URLs. Without an admin key configured
//! the dashboard is open in `--dev` and disabled (404) otherwise. The page never echoes the
//! key; it sends `Referrer-Policy: no-referrer` so the key in its URL does not leak.
//!
//! The two assets (`/dashboard/app.js`, `/dashboard/app.css`) are served without the key:
//! they hold code, never data, and a `<script src>` cannot carry a header either.

pub mod arena;
pub(crate) mod stream;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::{admin, ApiError};
use crate::app::AppState;

pub(crate) use stream::stream;

const PAGE: &str = include_str!("dashboard.html");
const SCRIPT: &str = include_str!("dashboard.js");
const STYLE: &str = include_str!("dashboard.css");

/// Everything the page may load or connect to: itself only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// Longest `?key=` looked at; longer is refused without comparing.
const MAX_KEY_LEN: usize = 1024;

/// `?key=` of the page and stream URLs.
#[derive(Debug, Deserialize)]
pub(crate) struct KeyQuery {
    key: Option<String>,
}

/// Whether this request may see the dashboard: the admin rule, with the key taken from
/// `?key=` when present, else from the `Authorization` header.
pub(crate) fn admit(
    state: &AppState,
    headers: &HeaderMap,
    query: Result<Query<KeyQuery>, QueryRejection>,
) -> Result<(), ApiError> {
    if state.security.admin.is_empty() && !state.config.dev {
        return Err(ApiError::NotFound(
            "dashboard disabled: no admin key is configured".into(),
        ));
    }
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    match query.key.filter(|k| !k.is_empty()) {
        Some(key) => {
            if key.len() > MAX_KEY_LEN {
                return Err(ApiError::Unauthorized);
            }
            let value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ApiError::Unauthorized)?;
            let mut with_key = HeaderMap::new();
            with_key.insert(AUTHORIZATION, value);
            admin::authorize(state, &with_key)
        }
        None => admin::authorize(state, headers),
    }
}

/// `GET /dashboard[?key=]`: the page.
pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<KeyQuery>, QueryRejection>,
) -> Response {
    if let Err(e) = admit(&state, &headers, query) {
        return e.into_response();
    }
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
            (CONTENT_SECURITY_POLICY, CSP),
            (REFERRER_POLICY, "no-referrer"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /dashboard/app.js`.
pub(crate) async fn script(State(state): State<AppState>) -> Response {
    asset(&state, "text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /dashboard/app.css`.
pub(crate) async fn style(State(state): State<AppState>) -> Response {
    asset(&state, "text/css; charset=utf-8", STYLE)
}

fn asset(state: &AppState, content_type: &'static str, body: &'static str) -> Response {
    if state.security.admin.is_empty() && !state.config.dev {
        return ApiError::NotFound("dashboard disabled: no admin key is configured".into())
            .into_response();
    }
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "no-cache"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
