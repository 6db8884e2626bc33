//! The roomcast server: the only crate that knows axum. A library: `examples/embed.rs`
//! shows a program serving roomcast with `router`/`serve_on` and nothing else.
//!
//! - [`cli`]: the server's commands of the `roomcast` binary (serve, default-config,
//!   check-config); the binary itself is the thin `crates/roomcast`.
//! - [`config`]: raw settings from file, environment and flags, validated into [`config::ServerConfig`].
//! - [`conformance`]: when `--conformance-echo` (the Autobahn|Testsuite endpoint) may run.
//! - [`api`]: HTTP publish and history APIs.
//! - [`arena`]: the trading arena on the server: its room rules, REST API and streams.
//! - [`app`]: the axum router and its shared state; tests can embed it without a binary.
//! - [`ws`]: the WebSocket endpoint: upgrade, the per-connection task, request dispatch.
//! - [`dashboard`]: the admin web dashboard and its live stats stream.
//! - [`metrics`]: Prometheus metrics.
//! - [`openapi`]: the OpenAPI document of the HTTP APIs, generated from the handlers.
//! - [`security`]: JWT verifier, room policy, collectives, limits, Origin rule.
//! - [`tls`]: HTTPS / `wss://` without a proxy (rustls), handshakes off the accept loop.
//! - [`tools`]: `roomcast token` and `roomcast keygen`.
//! - [`accept`]: the HTTP connection loop: per-IP connection budget, header read timeout.
//! - [`serve`]: binding, the maintenance task and graceful shutdown.

pub mod accept;
pub mod api;
pub mod app;
pub mod arena;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod dashboard;
pub mod metrics;
pub mod openapi;
pub mod security;
pub mod serve;
pub mod tls;
pub mod tools;
pub mod wire;
pub mod ws;

pub use app::{router, AppState};
pub use config::ServerConfig;
