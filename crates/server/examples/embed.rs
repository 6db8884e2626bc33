//! Embedding roomcast in your own program: the library gives you the router and the
//! serve loop; you choose the listener, the configuration and when to stop. This uses
//! only `roomcast-server` (no load generator, no terminal UI), an in-memory history and no
//! trading arena.
//!
//! `cargo run -p roomcast-server --example embed` serves anonymous clients on
//! 127.0.0.1:8080 until Ctrl-C; `crates/server/tests/embed.rs` runs the same code on a free
//! port and talks to it.

use roomcast_server::config::HistoryStore;
use roomcast_server::{AppState, ServerConfig};

/// Serves `ws://ADDR/ws/{client_id}` (and the HTTP APIs) on `listener` until `stop`.
pub(crate) async fn embed(
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let defaults = ServerConfig::default();
    let config = ServerConfig {
        dev: true, // anonymous clients, for the example
        auth: roomcast_server::config::AuthConfig {
            required: false,
            ..defaults.auth.clone()
        },
        history: roomcast_server::config::HistoryConfig {
            store: HistoryStore::Memory,
            ..defaults.history.clone()
        },
        arena: None,
        ..defaults
    };
    let hub = roomcast_server::serve::build_hub(&config)?;
    let state = AppState::new(hub, config)?;
    roomcast_server::serve::serve_on(listener, state, stop).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    embed(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
