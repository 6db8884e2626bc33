//! The server's security state, built once from the validated configuration: the JWT
//! verifier (keys parsed at start), the room policy, the collectives registry, connection
//! and handshake limits, the admin key and the Origin rule.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::http::HeaderMap;
use std::sync::Arc;

use roomcast_engine::auth::{
    Collectives, ForbiddenLimit, JwtVerifier, ProfileSchema, RoomPolicy, RoomPolicyConfig,
    RoomRules,
};
use roomcast_engine::limits::{
    ConnectionLimits, HandshakeConfig, HandshakeLimiter, PendingAuth, RateLimitConfig,
};

use crate::api::ApiKeys;
use crate::config::ServerConfig;

/// Why the server cannot start with this security configuration.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The JWT key material is unusable.
    #[error("JWT configuration: {0}")]
    Jwt(#[from] roomcast_engine::auth::JwtConfigError),
    /// The collectives file is unusable.
    #[error("collectives: {0}")]
    Collectives(#[from] roomcast_engine::auth::LoadError),
    /// The room policy is invalid.
    #[error("room policy: {0}")]
    Policy(#[from] roomcast_engine::auth::PolicyError),
}

/// Everything the endpoints consult to let a client in and to authorise it.
#[derive(Debug)]
pub struct Security {
    /// Verifies bearer tokens; `None` when no key is configured (`--dev` only).
    pub verifier: Option<JwtVerifier>,
    /// Whether anonymous connections are refused.
    pub required: bool,
    /// Room authorisation.
    pub policy: RoomPolicy,
    /// Registered collectives (Ed25519 keys).
    pub collectives: Collectives,
    /// The profile fields collectives may carry (the domain's, e.g. the arena's balances).
    pub profile_schema: Option<Arc<dyn ProfileSchema>>,
    /// Total and per-principal connection counts.
    pub connections: ConnectionLimits,
    /// Per-IP handshake rate.
    pub handshakes: HandshakeLimiter,
    /// Connections still authenticating (challenge), per IP and in total.
    pub pending_auth: PendingAuth,
    /// Admin API key(s).
    pub admin: ApiKeys,
    /// Allowed Origins: `None` = any; `Some(empty)` = same-origin only.
    pub origins: Option<Vec<String>>,
    /// Time allowed to authenticate.
    pub auth_timeout: Duration,
    /// Per-connection inbound rate.
    pub rate: RateLimitConfig,
    /// Refusals that close a connection.
    pub forbidden: ForbiddenLimit,
    /// Inbound messages dropped by rate limits (for stats; metrics have them by label).
    pub rate_limited: AtomicU64,
    /// Refused authentications.
    pub auth_failures: AtomicU64,
}

impl Security {
    /// Builds the security state with the room rules and collective profile schema of the
    /// domain running on the server (none: the engine's plain rules); fails on unusable
    /// keys or files.
    pub fn new(
        config: &ServerConfig,
        rules: &RoomRules,
        profile_schema: Option<Arc<dyn ProfileSchema>>,
    ) -> Result<Security, SecurityError> {
        let verifier = config.auth.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        let collectives = match &config.auth.collectives {
            Some(path) => Collectives::load_file(path, profile_schema.as_deref())?,
            None => Collectives::new(),
        };
        let mut policy = RoomPolicyConfig::default();
        policy.register(rules);
        let limits = &config.limits;
        Ok(Security {
            verifier,
            required: config.auth.required,
            policy: RoomPolicy::new(policy)?,
            collectives,
            profile_schema,
            connections: ConnectionLimits::new(
                limits.max_connections,
                limits.max_connections_per_client,
            ),
            handshakes: HandshakeLimiter::new(HandshakeConfig {
                rate_per_sec: limits.handshake_rate,
                ..HandshakeConfig::default()
            }),
            pending_auth: PendingAuth::new(limits.max_pending_auth, limits.max_pending_auth_per_ip),
            admin: ApiKeys::new(config.auth.admin_key.clone()),
            origins: config.auth.allowed_origins.clone(),
            auth_timeout: config.auth.auth_timeout,
            rate: limits.rate,
            forbidden: limits.forbidden,
            rate_limited: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
        })
    }

    /// Whether a handshake's `Origin` may open a WebSocket. Requests without an `Origin`
    /// (non-browser clients) are not cross-site and pass.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers
            .get(axum::http::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
        else {
            return true;
        };
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        match &self.origins {
            None => true,
            Some(list) if !list.is_empty() => list.contains(&origin),
            Some(_) => {
                // Same-origin: the Origin's host[:port] must be the Host header.
                let host = headers
                    .get(axum::http::header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .map(|h| h.to_ascii_lowercase());
                let origin_host = origin.split_once("://").map(|(_, h)| h.to_owned());
                host.is_some() && host == origin_host
            }
        }
    }
}
