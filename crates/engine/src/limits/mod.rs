//! Abuse limits: cheap checks that reject floods before they cost anything.
//!
//! - [`rate`]: the per-connection inbound message token bucket and its close-after-N
//!   violations rule (state lives in the connection task).
//! - [`connections`]: total and per-principal connection counts, held as permits that give
//!   their slot back on drop.
//! - [`handshake`]: the per-IP handshake rate limit checked before upgrading (HTTP 429).
//! - [`pending`]: the per-IP and total budget of connections still authenticating
//!   (HTTP 429 / 503 before upgrading).
//!
//! Every check takes `now` from the caller, so behaviour is deterministic under test, and
//! every shared map is bounded and returns to empty when its connections or addresses go
//! away (each exposes its size for tests that assert so).

pub mod connections;
pub mod handshake;
pub mod pending;
pub mod rate;

pub use connections::{ConnectionLimits, ConnectionPermit, LimitExceeded};
pub use handshake::{HandshakeConfig, HandshakeDecision, HandshakeLimiter};
pub use pending::{PendingAuth, PendingLimit, PendingPermit};
pub use rate::{RateDecision, RateLimitConfig, RateLimiter, TokenBucket};
