//! API errors and their HTTP mapping. Bodies are `{"error":{"code":..,"message":..}}`;
//! internal details are logged, never returned.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: bad JSON, missing or invalid fields, bad room names.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong API key.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The resource already exists.
    #[error("{0}")]
    Conflict(String),
    /// A store failed; the event may not be durable.
    #[error("storage unavailable")]
    Unavailable(String),
    /// A caller that could not be authenticated, with the machine-readable reason
    /// (`invalid_signature`, `stale_timestamp`, ...). 401.
    #[error("{message}")]
    Unauthenticated {
        /// The code for the body.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// Input that parsed but breaks a rule of the domain (an order refused by a risk
    /// check), with its machine-readable reason. 422.
    #[error("{message}")]
    Rejected {
        /// The reason, also the body's code.
        reason: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// A coded failure with its own status (409 `not_open`, 503 `busy`, ...).
    #[error("{message}")]
    Coded {
        /// The HTTP status.
        status: StatusCode,
        /// The code for the body.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            ApiError::Unauthenticated { code, .. } => (StatusCode::UNAUTHORIZED, code),
            ApiError::Rejected { reason, .. } => (StatusCode::UNPROCESSABLE_ENTITY, reason),
            ApiError::Coded { status, code, .. } => (*status, code),
        }
    }
}

impl ApiError {
    /// The HTTP status it answers with.
    pub(crate) fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The `error` object of its body: `{"code","message"[,"reason"]}`.
    pub(crate) fn body(&self) -> serde_json::Value {
        let (_, code) = self.parts();
        let mut error = json!({"code": code, "message": self.to_string()});
        if let ApiError::Rejected { reason, .. } = self {
            error["reason"] = json!(reason);
        }
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Unavailable(detail) = &self {
            tracing::error!(%detail, "API request failed in storage");
        }
        let error = self.body();
        let mut resp = (status, Json(json!({ "error": error }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
