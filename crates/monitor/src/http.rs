//! A minimal HTTP/1.1 client for the admin API: one `GET` per connection, a deadline on the
//! whole exchange, and a cap on the response body.
//!
//! One connection per request keeps it simple and stateless: at one poll per second per node
//! the handshake costs nothing, and a node that restarts needs no reconnect logic.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{AUTHORIZATION, CONNECTION, HOST, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::args::NodeUrl;

/// Largest response body accepted (the rooms list of a very busy node fits easily).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a request failed. The messages are shown to operators as they are.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// TCP connect failed (node down, wrong port).
    #[error("connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The exchange took longer than the request timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// HTTP-level failure (connection reset, malformed response).
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// A request could not be built (a key with characters not allowed in a header).
    #[error("invalid request: {0}")]
    Request(#[from] hyper::http::Error),
    /// The node answered with a non-success status.
    #[error("HTTP {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// The status.
        status: StatusCode,
        /// The API's error message, when the body carried one.
        message: Option<String>,
    },
    /// The body passed [`MAX_BODY`].
    #[error("response larger than {MAX_BODY} bytes")]
    TooLarge,
    /// The body is not the expected JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl FetchError {
    /// The HTTP status, if the node answered with an error status.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            FetchError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Sends admin API requests with the admin key.
#[derive(Clone)]
pub struct Client {
    admin_key: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Client")
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Client {
    /// A client presenting `admin_key` (if any) and giving up after `timeout` per request.
    pub fn new(admin_key: Option<String>, timeout: Duration) -> Client {
        Client { admin_key, timeout }
    }

    /// `GET {node}{api_path}` and parse the JSON body.
    pub async fn get_json(&self, node: &NodeUrl, api_path: &str) -> Result<Value, FetchError> {
        tokio::time::timeout(self.timeout, self.exchange(node, api_path))
            .await
            .map_err(|_| FetchError::Timeout(self.timeout))?
    }

    async fn exchange(&self, node: &NodeUrl, api_path: &str) -> Result<Value, FetchError> {
        let addr = node.authority();
        let stream = tokio::net::TcpStream::connect((node.host(), node.port()))
            .await
            .map_err(|source| FetchError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection future ends with the exchange (`Connection: close`) or when the
        // sender is dropped; it is never left running past this call's timeout.
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let result = async {
            let mut req = Request::get(node.path(api_path))
                .header(HOST, &addr)
                .header(CONNECTION, "close")
                .header(
                    USER_AGENT,
                    concat!("roomcast-monitor/", env!("CARGO_PKG_VERSION")),
                );
            if let Some(key) = &self.admin_key {
                req = req.header(AUTHORIZATION, format!("Bearer {key}"));
            }
            let resp = sender
                .send_request(req.body(Empty::<Bytes>::new())?)
                .await?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| match e.downcast::<hyper::Error>() {
                    Ok(e) => FetchError::Http(*e),
                    Err(_) => FetchError::TooLarge,
                })?
                .to_bytes();
            if !status.is_success() {
                return Err(FetchError::Status {
                    status,
                    message: api_message(&body),
                });
            }
            Ok(serde_json::from_slice(&body)?)
        }
        .await;
        driver.abort();
        result
    }
}

/// The message of a roomcast API error body (`{"error":{"message":..}}`), or a short plain
/// text body.
fn api_message(body: &[u8]) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return v["error"]["message"].as_str().map(str::to_owned);
    }
    let text = std::str::from_utf8(body).ok()?.trim();
    (!text.is_empty()).then(|| text.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_read_well() {
        let e = FetchError::Status {
            status: StatusCode::UNAUTHORIZED,
            message: api_message(
                br#"{"error":{"code":"UNAUTHORIZED","message":"missing or invalid API key"}}"#,
            ),
        };
        assert_eq!(
            e.to_string(),
            "HTTP 401 Unauthorized: missing or invalid API key"
        );
        assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED));
        let e = FetchError::Status {
            status: StatusCode::NOT_FOUND,
            message: api_message(b""),
        };
        assert_eq!(e.to_string(), "HTTP 404 Not Found");
    }
}
