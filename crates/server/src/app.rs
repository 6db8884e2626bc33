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
    /// The arena runs on another node of the cluster: this node serves its streams and
    /// forwards its REST calls there (`crate::arena::cluster`).
    pub arena_elsewhere: bool,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Whether this node serves the arena: it runs the exchange, or another node of its
    /// cluster does.
    pub fn arena_present(&self) -> bool {
        self.arena.is_some() || self.arena_elsewhere
    }

    /// State for a hub and configuration, without the arena (an embedder's server, or a
    /// test that needs none). Fails when keys or files are unusable.
    pub fn new(hub: Hub, config: ServerConfig) -> Result<AppState, SecurityError> {
        AppState::build(
            hub,
            config,
            None,
            None,
            false,
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
        let role = arena_role(&config, cluster.as_ref(), &tasks, &shutdown).await?;
        if let (Some(cluster), ArenaRole::Here(Some(_)) | ArenaRole::Elsewhere) = (&cluster, &role)
        {
            cluster.start_requests(&tasks, shutdown.child_token());
        }
        if let (Some(cluster), ArenaRole::Here(Some(_))) = (&cluster, &role) {
            // The exchange publishes through Redis from its first command (the accounts
            // opened below), so the node's links must be up before it starts.
            cluster.start(hub.clone(), &tasks, shutdown.child_token());
            wait_ready(cluster).await?;
        }
        let arena = match (&config.arena, &role) {
            (Some(arena_config), ArenaRole::Here(sequencer)) => {
                let dir = match config.history.store {
                    crate::config::HistoryStore::Durable => Some(config.history.data_dir.as_path()),
                    crate::config::HistoryStore::Memory => None,
                };
                let arena = match sequencer {
                    None => {
                        roomcast_arena::Arena::start(
                            arena_config.clone(),
                            hub.clone(),
                            dir,
                            &tasks,
                            shutdown.child_token(),
                        )
                        .await?
                    }
                    Some(sequencer) => {
                        roomcast_arena::Arena::start_clustered(
                            arena_config.clone(),
                            hub.clone(),
                            dir,
                            sequencer.clone(),
                            &tasks,
                            shutdown.child_token(),
                        )
                        .await?
                    }
                };
                Some(arena)
            }
            _ => None,
        };
        let elsewhere = matches!(role, ArenaRole::Elsewhere);
        let state = AppState::build(hub, config, arena, cluster, elsewhere, shutdown, tasks)?;
        if let Some(arena) = &state.arena {
            crate::arena::open_accounts(arena, &state.security.collectives).await?;
            if let Some(cluster) = &state.cluster {
                cluster.serve_arena_requests(crate::arena::cluster::handler(state.clone()));
            }
        }
        Ok(state)
    }

    fn build(
        hub: Hub,
        config: ServerConfig,
        arena: Option<roomcast_arena::Arena>,
        cluster: Option<roomcast_redis::Cluster>,
        arena_elsewhere: bool,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<AppState, SecurityError> {
        // A cluster node whose arena runs elsewhere keeps the arena's rooms private and
        // its market rooms server-only all the same.
        let instruments = match &arena {
            Some(arena) => Some(arena.instruments().clone()),
            None if cluster.is_some() => config.arena.as_ref().and_then(|a| a.validate().ok()),
            None => None,
        };
        let (rules, schema) = match instruments {
            Some(instruments) => (
                crate::arena::room_rules(),
                Some(Arc::new(crate::arena::FundingSchema::of(instruments))
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
            arena_elsewhere,
        })))
    }
}

/// Where the arena's exchange runs, as seen from this node.
enum ArenaRole {
    /// Nowhere (`--no-arena`).
    Off,
    /// Here: on a single node (`None`), or on the cluster node holding the lease.
    Here(Option<Arc<dyn roomcast_arena::Sequencer>>),
    /// On another node of the cluster.
    Elsewhere,
}

/// Waits (bounded) until the node's Redis links are up.
async fn wait_ready(cluster: &roomcast_redis::Cluster) -> Result<(), StartError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match cluster.ready() {
            Ok(()) => return Ok(()),
            Err(why) if tokio::time::Instant::now() >= deadline => {
                return Err(StartError::Lease(why))
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}

/// Decides [`ArenaRole`]; on a cluster node configured to run the arena, claims the lease
/// (waiting out a lease a crashed previous run left behind) and keeps it while running.
async fn arena_role(
    config: &ServerConfig,
    cluster: Option<&roomcast_redis::Cluster>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<ArenaRole, StartError> {
    if config.arena.is_none() {
        return Ok(ArenaRole::Off);
    }
    let Some(cluster) = cluster else {
        return Ok(ArenaRole::Here(None));
    };
    if !config.arena_node {
        tracing::info!("the arena runs on the cluster's arena node; this node serves its streams and forwards its REST calls");
        return Ok(ArenaRole::Elsewhere);
    }
    let wait = roomcast_redis::LEASE_TTL + std::time::Duration::from_secs(1);
    match cluster.claim_arena(wait).await {
        Ok(roomcast_redis::Claim::Held) => {
            cluster.keep_arena_lease(tasks, shutdown.child_token());
            tracing::info!(
                node = cluster.node_id(),
                "this node holds the arena lease and runs the exchange"
            );
            let sequencer = crate::arena::cluster::RedisSequencer(cluster.clone());
            Ok(ArenaRole::Here(Some(Arc::new(sequencer))))
        }
        Ok(roomcast_redis::Claim::Taken(holder)) => {
            tracing::error!(
                holder,
                "--arena-node: another live node holds the arena lease; this node does NOT run an exchange, it serves the arena's streams and forwards its REST calls"
            );
            Ok(ArenaRole::Elsewhere)
        }
        Err(e) => Err(StartError::Lease(e.to_string())),
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
    /// The arena lease could not be asked for (Redis did not answer).
    #[error("claiming the arena lease: {0}")]
    Lease(String),
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
        .route("/api/openapi.json", get(crate::openapi::document))
        .merge(arena_rest(state.clone()))
        .route("/dashboard", get(crate::dashboard::page))
        .route("/dashboard/app.js", get(crate::dashboard::script))
        .route("/dashboard/app.css", get(crate::dashboard::style))
        .layer(DefaultBodyLimit::max(MAX_API_BODY))
        .with_state(state)
}

/// The arena's REST API; on a node whose arena runs elsewhere in the cluster, forwarded
/// to the arena node (`crate::arena::cluster::forward`).
fn arena_rest(state: AppState) -> Router<AppState> {
    Router::new()
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
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            crate::arena::cluster::forward,
        ))
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
