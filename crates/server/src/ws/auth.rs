//! Authenticating a connection right after the upgrade, before anything is delivered to
//! it: a bearer token verified against the configured keys, or the Ed25519
//! challenge-response step (reusable by any endpoint that asks for it), or anonymous
//! access when authentication is not required.
//!
//! Failures are accept-then-close with the documented code, so browser clients can read it.
//!
//! A token-authenticated connection also gets a [`TokenSession`]: how long its token keeps
//! it open, and what a `refresh` token must match ([`verify_refresh`]).

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use roomcast_engine::auth::challenge::INVALID_AUTH_FLOW_REASON;
use roomcast_engine::auth::{Challenge, CollectiveId, Principal, PrincipalError};
use roomcast_protocol::server::Reply;
use roomcast_protocol::{parse_request, ClientId, CloseCode, Request};
use std::time::Duration;
use time::OffsetDateTime;

use crate::security::Security;

/// What the client presented at the handshake.
#[derive(Debug)]
pub(crate) enum Credentials {
    /// A bearer token (query, Authorization header or subprotocol).
    Token(String),
    /// Asked for the Ed25519 challenge (`?auth=ed25519`).
    Ed25519,
    /// Nothing.
    None,
}

/// Why a connection is refused: the close frame to send.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) code: CloseCode,
    pub(crate) reason: String,
}

impl Refusal {
    fn new(code: CloseCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }
}

/// Who an authenticated connection is, and until when its token lets it stay.
#[derive(Debug)]
pub(crate) struct Authenticated {
    pub(crate) principal: Principal,
    /// Set for connections opened with a verified JWT.
    pub(crate) token: Option<TokenSession>,
}

impl Authenticated {
    fn without_token(principal: Principal) -> Authenticated {
        Authenticated {
            principal,
            token: None,
        }
    }
}

/// A session opened with a JWT: it ends when the token does, unless refreshed.
#[derive(Debug, Clone)]
pub(crate) struct TokenSession {
    /// Time left until the token stops verifying (`exp` + leeway).
    pub(crate) remaining: Duration,
    /// What a refresh token must name.
    pub(crate) binding: TokenBinding,
}

/// Whom a refresh token must be for: the same subject as the session's token, and the
/// same collective.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenBinding {
    /// `/ws/{client_id}`: `sub` is the client id and `collective_id` must not change.
    Client,
    /// `/ws/{collective_id}/{stream}`: the token must name this collective.
    Stream(CollectiveId),
}

/// Why a `refresh` was refused; the session keeps its current expiry.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RefreshError {
    #[error("this session was not opened with a token, so it has nothing to refresh")]
    NotTokenSession,
    #[error("refresh token refused: {0}")]
    Invalid(String),
    #[error("refresh token is for another subject or collective")]
    OtherSubject,
}

/// Verifies a `refresh` token like a new handshake's, and checks it names the same
/// subject (and collective) as the session. Returns the session's new principal and the
/// time its new token leaves.
pub(crate) fn verify_refresh(
    security: &Security,
    binding: &TokenBinding,
    current: &Principal,
    token: &str,
) -> Result<(Principal, Duration), RefreshError> {
    let verifier = security
        .verifier
        .as_ref()
        .ok_or(RefreshError::NotTokenSession)?;
    let now = OffsetDateTime::now_utc();
    let claims = verifier
        .verify(token, now)
        .map_err(|e| RefreshError::Invalid(e.close_reason().to_owned()))?;
    let principal = match binding {
        TokenBinding::Client => {
            let p = Principal::from_claims(current.client_id.clone(), &claims).map_err(
                |e| match e {
                    PrincipalError::SubjectMismatch { .. } => RefreshError::OtherSubject,
                    other => RefreshError::Invalid(other.to_string()),
                },
            )?;
            if p.collective_id != current.collective_id {
                return Err(RefreshError::OtherSubject);
            }
            p
        }
        TokenBinding::Stream(collective) => {
            let named = claims.collective_id.as_deref().unwrap_or(&claims.sub);
            if named != collective.as_str() {
                return Err(RefreshError::OtherSubject);
            }
            current.clone()
        }
    };
    Ok((principal, verifier.session_remaining(&claims, now)))
}

/// Decides who the connection is. May exchange messages with the client (challenge).
pub(crate) async fn authenticate(
    ws: &mut WebSocket,
    security: &Security,
    client_id: &ClientId,
    credentials: Credentials,
) -> Result<Authenticated, Refusal> {
    match credentials {
        Credentials::Token(token) => match &security.verifier {
            Some(verifier) => {
                let now = OffsetDateTime::now_utc();
                let claims = verifier
                    .verify(&token, now)
                    .map_err(|e| Refusal::new(e.close_code(), e.close_reason()))?;
                let principal = Principal::from_claims(client_id.clone(), &claims)
                    .map_err(|e| Refusal::new(e.close_code(), e.close_code().default_reason()))?;
                Ok(Authenticated {
                    principal,
                    token: Some(TokenSession {
                        remaining: verifier.session_remaining(&claims, now),
                        binding: TokenBinding::Client,
                    }),
                })
            }
            // No key configured (development): a token cannot be checked, so it grants
            // nothing beyond anonymous access.
            None => Ok(Authenticated::without_token(Principal::anonymous(
                client_id.clone(),
            ))),
        },
        Credentials::Ed25519 => {
            let collective = CollectiveId::parse(client_id.as_str())
                .map_err(|_| Refusal::new(CloseCode::Unauthorized, "Invalid signature"))?;
            let timeout = security.auth_timeout;
            match tokio::time::timeout(timeout, challenge_step(ws, security, &collective)).await {
                Ok(result) => result.map(|c| {
                    Authenticated::without_token(Principal::collective(client_id.clone(), c))
                }),
                Err(_) => Err(Refusal::new(
                    CloseCode::AuthTimeout,
                    CloseCode::AuthTimeout.default_reason(),
                )),
            }
        }
        Credentials::None if security.required => Err(Refusal::new(
            CloseCode::Unauthorized,
            CloseCode::Unauthorized.default_reason(),
        )),
        Credentials::None => Ok(Authenticated::without_token(Principal::anonymous(
            client_id.clone(),
        ))),
    }
}

/// Decides who a stream connection (`/ws/{collective_id}/{stream}`) is: the collective
/// itself, proven by a bearer token whose `collective_id` claim (or, without one, `sub`)
/// is the collective, or by the Ed25519 challenge, which is the default (no flag needed).
/// Anonymous access never opens a collective's stream, whatever `--dev` says.
pub(crate) async fn authenticate_stream(
    ws: &mut WebSocket,
    security: &Security,
    client_id: &ClientId,
    collective: &CollectiveId,
    credentials: Credentials,
) -> Result<Authenticated, Refusal> {
    match credentials {
        Credentials::Token(token) => {
            let verifier = security.verifier.as_ref().ok_or_else(|| {
                Refusal::new(
                    CloseCode::InvalidToken,
                    "no JWT key is configured; use the Ed25519 challenge",
                )
            })?;
            let now = OffsetDateTime::now_utc();
            let claims = verifier
                .verify(&token, now)
                .map_err(|e| Refusal::new(e.close_code(), e.close_reason()))?;
            let named = claims.collective_id.as_deref().unwrap_or(&claims.sub);
            if named != collective.as_str() {
                return Err(Refusal::new(
                    CloseCode::Unauthorized,
                    "the token is not for this collective",
                ));
            }
            Ok(Authenticated {
                principal: Principal::collective(client_id.clone(), collective.clone()),
                token: Some(TokenSession {
                    remaining: verifier.session_remaining(&claims, now),
                    binding: TokenBinding::Stream(collective.clone()),
                }),
            })
        }
        Credentials::Ed25519 | Credentials::None => {
            let timeout = security.auth_timeout;
            match tokio::time::timeout(timeout, challenge_step(ws, security, collective)).await {
                Ok(result) => result.map(|c| {
                    Authenticated::without_token(Principal::collective(client_id.clone(), c))
                }),
                Err(_) => Err(Refusal::new(
                    CloseCode::AuthTimeout,
                    CloseCode::AuthTimeout.default_reason(),
                )),
            }
        }
    }
}

/// The Ed25519 challenge-response step (see docs/PROTOCOL.md). The challenge lives only in
/// this future: single use, bound to this connection, forgotten on any outcome.
pub(crate) async fn challenge_step(
    ws: &mut WebSocket,
    security: &Security,
    collective: &CollectiveId,
) -> Result<CollectiveId, Refusal> {
    let challenge = Challenge::issue(collective, OffsetDateTime::now_utc())
        .map_err(|_| Refusal::new(CloseCode::ServerError, "entropy source unavailable"))?;
    let msg = Reply::AuthChallenge {
        challenge: challenge.text(),
        expires_in: challenge.expires_in_secs(),
    };
    send(ws, msg.to_json()).await?;
    let flow = || Refusal::new(CloseCode::Unauthorized, INVALID_AUTH_FLOW_REASON);
    let text = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => break t,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => return Err(flow()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                return Err(Refusal::new(
                    CloseCode::Normal,
                    "closed during authentication",
                ))
            }
        }
    };
    let signature = match parse_request(text.as_str()) {
        Ok(parsed) => match parsed.request {
            Request::AuthResponse { signature } => signature.into_owned(),
            _ => return Err(flow()),
        },
        Err(_) => return Err(flow()),
    };
    let collective = challenge
        .verify_registered(&signature, &security.collectives, OffsetDateTime::now_utc())
        .map_err(|e| Refusal::new(e.close_code(), e.close_reason()))?;
    send(
        ws,
        Reply::AuthOk {
            collective_id: collective.id.as_str(),
        }
        .to_json(),
    )
    .await?;
    Ok(collective.id.clone())
}

async fn send(ws: &mut WebSocket, text: String) -> Result<(), Refusal> {
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|_| Refusal::new(CloseCode::Normal, "connection lost"))
}
