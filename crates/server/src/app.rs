//! The axum router and the state every handler shares.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use roomcast_engine::Hub;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{admin, ApiKeys};
use crate::config::ServerConfig;
use crate::security::{Security, SecurityError};

/// Largest HTTP API body (a full batch of large events).
const MAX_API_BODY: usize = 16 * 1024 * 1024;

/// Shared state: one pointer, so every handler and every connection task holds 8 bytes
/// of it (it lives in each connection's task for the connection's lifetime).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] points to.
#[derive(Debug)]
pub struct Shared {
    /// The engine.
    pub hub: Hub,
    /// Validated settings.
    pub config: Arc<ServerConfig>,
    /// Fires when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Tracks every connection task so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Keys of the publish/history APIs.
    pub api_keys: ApiKeys,
    /// Authentication, authorisation and limits.
    pub security: Arc<Security>,
    /// When the server started.
    pub started: std::time::Instant,
    /// The trading arena, when it runs.
    pub arena: Option<roomcast_arena::Arena>,
    /// Verifies signed REST requests and remembers used signatures.
    pub signed: roomcast_engine::auth::SignedRequestVerifier,
    /// The dashboard's arena panel, computed once per period for every viewer.
    pub arena_panel: crate::dashboard::arena::ArenaPanel,
    /// The cluster this node belongs to (`--broker`); `None` on a single node, where
    /// nothing below takes a cluster path.
    pub cluster: Option<roomcast_redis::Cluster>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// State for a hub and configuration, without the arena (an embedder's server, or a
    /// test that needs none). Fails when keys or files are unusable.
    pub fn new(hub: Hub, config: ServerConfig) -> Result<AppState, SecurityError> {
        AppState::build(
            hub,
            config,
            None,
            None,
            CancellationToken::new(),
            TaskTracker::new(),
        )
    }

    /// State with the arena `config` asks for: the arena starts on the hub (its tasks on
    /// the state's tracker, stopped by its shutdown token), registers its room rules and
    /// collective profile, and opens an account for every registered collective.
    pub async fn start(hub: Hub, config: ServerConfig) -> Result<AppState, StartError> {
        AppState::start_node(hub, config, None).await
    }

    /// [`AppState::start`] for a node of a cluster: `cluster` is the node's cluster handle
    /// (`hub` was built with [`Hub::clustered`] for it); `None` is a single node.
    pub async fn start_node(
        hub: Hub,
        config: ServerConfig,
        cluster: Option<roomcast_redis::Cluster>,
    ) -> Result<AppState, StartError> {
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let arena = match &config.arena {
            None => None,
            Some(arena_config) => {
                let dir = match config.history.store {
                    crate::config::HistoryStore::Durable => Some(config.history.data_dir.as_path()),
                    crate::config::HistoryStore::Memory => None,
                };
                Some(
                    roomcast_arena::Arena::start(
                        arena_config.clone(),
                        hub.clone(),
                        dir,
                        &tasks,
                        shutdown.child_token(),
                    )
                    .await?,
                )
            }
        };
        let state = AppState::build(hub, config, arena, cluster, shutdown, tasks)?;
        if let Some(arena) = &state.arena {
            crate::arena::open_accounts(arena, &state.security.collectives).await?;
        }
        Ok(state)
    }

    fn build(
        hub: Hub,
        config: ServerConfig,
        arena: Option<roomcast_arena::Arena>,
        cluster: Option<roomcast_redis::Cluster>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<AppState, SecurityError> {
        let (rules, schema) = match &arena {
            Some(arena) => (
                crate::arena::room_rules(),
                Some(Arc::new(crate::arena::FundingSchema::new(arena))
                    as Arc<dyn roomcast_engine::auth::ProfileSchema>),
            ),
            None => (roomcast_engine::auth::RoomRules::default(), None),
        };
        Ok(AppState(Arc::new(Shared {
            security: Arc::new(Security::new(&config, &rules, schema)?),
            hub,
            api_keys: ApiKeys::new(config.api_keys.clone()),
            config: Arc::new(config),
            shutdown,
            tasks,
            started: std::time::Instant::now(),
            arena,
            signed: roomcast_engine::auth::SignedRequestVerifier::default(),
            arena_panel: crate::dashboard::arena::ArenaPanel::default(),
            cluster,
        })))
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Keys, files or the room policy are unusable.
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// The arena could not start (store, conservation check) or open an account.
    #[error(transparent)]
    Arena(#[from] roomcast_arena::ArenaError),
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let router = api_router(state.clone());
    match &state.config.static_dir {
        // Files of the directory at `/` for every path the routes above do not take;
        // `ServeDir` refuses paths that leave the directory and answers 404 for the rest.
        Some(dir) => router.fallback_service(tower_http::services::ServeDir::new(dir)),
        None => router,
    }
}

fn api_router(state: AppState) -> Router {
    let router = match state.config.conformance_echo {
        true => Router::new().route("/conformance/echo", get(crate::ws::upgrade_echo)),
        false => Router::new(),
    };
    router
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::render))
        .route("/ws/{client_id}", get(crate::ws::upgrade))
        .route("/api/publish", post(crate::api::publish))
        .route("/api/publish/batch", post(crate::api::publish_batch))
        .route("/api/history/{room}", get(crate::api::history))
        .route("/api/admin/stats", get(admin::stats))
        .route("/api/admin/connections", get(admin::connections))
        .route(
            "/api/admin/connections/{client_id}/disconnect",
            post(admin::disconnect),
        )
        .route("/api/admin/rooms", get(admin::rooms))
        .route("/api/admin/broadcast", post(admin::broadcast))
        .route(
            "/api/admin/collectives",
            get(admin::list_collectives).post(admin::add_collective),
        )
        .route(
            "/api/admin/collectives/{id}",
            axum::routing::delete(admin::remove_collective),
        )
        .route("/api/admin/stream", get(crate::dashboard::stream))
        .route(
            "/ws/{collective_id}/{stream}",
            get(crate::ws::upgrade_stream),
        )
        .route(
            "/api/v1/orders",
            get(crate::arena::rest::list_orders).post(crate::arena::rest::place_order),
        )
        .route(
            "/api/v1/orders/batch",
            axum::routing::post(crate::arena::rest::place_orders),
        )
        .route(
            "/api/v1/orders/{order_id}",
            get(crate::arena::rest::get_order).delete(crate::arena::rest::cancel_order),
        )
        .route("/api/openapi.json", get(crate::openapi::document))
        .route("/api/v1/portfolio", get(crate::arena::rest::portfolio))
        .route("/api/v1/markets", get(crate::arena::rest::markets))
        .route(
            "/api/v1/markets/{symbol}/book",
            get(crate::arena::rest::book),
        )
        .route(
            "/api/v1/markets/{symbol}/trades",
            get(crate::arena::rest::trades),
        )
        .route("/dashboard", get(crate::dashboard::page))
        .route("/dashboard/app.js", get(crate::dashboard::script))
        .route("/dashboard/app.css", get(crate::dashboard::style))
        .layer(DefaultBodyLimit::max(MAX_API_BODY))
        .with_state(state)
}

/// `GET /readyz`: 200 `ready` once the history store answers and can write, the broker is
/// connected and the server is not shutting down; 503 with the reason otherwise (a failed
/// history disk reads `history store unavailable: <what failed, path, error>`, a cluster
/// node that lost Redis `redis unavailable: <error>`).
async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, std::borrow::Cow<'static, str>) {
    let unavailable = axum::http::StatusCode::SERVICE_UNAVAILABLE;
    if state.shutdown.is_cancelled() {
        return (unavailable, "shutting down".into());
    }
    if let Some(reason) = state.hub.broker().unavailable_reason() {
        return (unavailable, reason.into());
    }
    let history = state.hub.history();
    if let Err(e) = history.writable() {
        return (unavailable, e.to_string().into());
    }
    match roomcast_protocol::RoomName::parse("readyz.probe") {
        Ok(room) if history.head(&room).is_ok() => (axum::http::StatusCode::OK, "ready".into()),
        _ => (unavailable, "history store unavailable".into()),
    }
}
