//! The axum router and the state every handler shares.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use roomcast_engine::Hub;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;

/// Shared state: cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The engine.
    pub hub: Hub,
    /// Validated settings.
    pub config: Arc<ServerConfig>,
    /// Fires when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Tracks every connection task so shutdown can wait for them.
    pub tasks: TaskTracker,
}

impl AppState {
    /// State for a hub and configuration.
    pub fn new(hub: Hub, config: ServerConfig) -> AppState {
        AppState {
            hub,
            config: Arc::new(config),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/ws/{client_id}", get(crate::ws::upgrade))
        .with_state(state)
}
