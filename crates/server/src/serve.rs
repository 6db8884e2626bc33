//! Running the server: bind, announce, serve, and shut down gracefully.
//!
//! Shutdown order: stop accepting (the listener closes) and cancel the background tasks
//! (maintenance, sweeper, the arena's exchange and bots), ask every session to close with
//! the configured code after flushing its queue, wait up to `shutdown_grace` for every
//! tracked task (connections and background ones) to finish, return.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use roomcast_engine::history::{
    DurableConfig, DurableHistory, History, MemoryHistory, RoutedHistory,
};
use roomcast_engine::Hub;
use tokio::net::{TcpListener, TcpSocket};

use crate::accept::AcceptConfig;
use crate::app::{router, AppState};
use crate::config::{HistoryStore, LogFormat, ServerConfig};

/// Installs the global tracing subscriber. `RUST_LOG` filters (default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Builds the hub for a configuration, opening the durable history store if configured.
pub fn build_hub(config: &ServerConfig) -> anyhow::Result<Hub> {
    let history: Arc<dyn History> = match config.history.store {
        HistoryStore::Memory => Arc::new(MemoryHistory::new(config.history.retention.clone())),
        HistoryStore::Durable => {
            let durable = DurableConfig {
                retention: config.history.retention.clone(),
                fsync: config.history.fsync,
                // Natural group commit: appends that arrive during one fsync share the
                // next; waiting longer only adds latency (docs/BENCHMARKS.md).
                batch_window: std::time::Duration::ZERO,
                ..DurableConfig::default()
            };
            let dir = &config.history.data_dir;
            Arc::new(
                DurableHistory::open(dir, durable)
                    .with_context(|| format!("opening the history store in {}", dir.display()))?,
            )
        }
    };
    // The arena's own log is the durable record of its state, and after any restart its
    // streams resume from a fresh snapshot; writing each of its events to disk a second time
    // costs most of an order's server time (docs/BENCHMARKS.md), so its rooms' history is
    // kept in memory unless `[arena] durable_history = true`.
    let arena_in_memory = config.arena.is_some()
        && !config.history.arena_durable
        && config.history.store == HistoryStore::Durable;
    let history: Arc<dyn History> = match arena_in_memory {
        true => {
            let memory: Arc<dyn History> =
                Arc::new(MemoryHistory::new(config.history.retention.clone()));
            Arc::new(RoutedHistory::new(
                history,
                memory,
                roomcast_arena::rooms::ALL_PREFIXES
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect(),
            ))
        }
        false => history,
    };
    Ok(Hub::new(config.hub.clone(), history))
}

/// Accept queue length: connection bursts (thousands of clients reconnecting after a
/// restart) must not overflow it, or clients wait for SYN retransmits (1 s, 3 s, ...).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener with a deep accept queue.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Builds the hub of a cluster node: Redis sequences and stores every event, this node
/// mirrors the rooms it has members in (in memory, with the configured retention).
pub async fn build_cluster_hub(
    config: &ServerConfig,
    url: &str,
) -> anyhow::Result<(Hub, roomcast_redis::Cluster)> {
    let retention = config.history.retention.clone();
    let (cluster, broker) =
        roomcast_redis::Cluster::connect(roomcast_redis::RedisConfig::new(url, retention.clone()))
            .await
            .with_context(|| format!("connecting to the broker {url}"))?;
    let mirror = Arc::new(MemoryHistory::new(retention));
    Ok((Hub::clustered(config.hub.clone(), mirror, broker), cluster))
}

/// Serves until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    let listener = bind(config.bind).with_context(|| format!("binding {}", config.bind))?;
    crate::metrics::install();
    let (hub, cluster) = match config.broker.clone() {
        None => (build_hub(&config)?, None),
        Some(url) => {
            let (hub, cluster) = build_cluster_hub(&config, &url).await?;
            tracing::info!(node = cluster.node_id(), "cluster node: Redis keeps the history; --history-store applies to a single node only");
            (hub, Some(cluster))
        }
    };
    let state = AppState::start_node(hub, config, cluster).await?;
    if let Some(v) = &state.security.verifier {
        tracing::info!(algorithms = ?v.algorithms(), "JWT authentication enabled");
    }
    serve_on(listener, state, shutdown_signal()).await
}

/// Serves on an already bound listener until `stop` completes. Prints
/// `listening on ws://ADDR:PORT` on stdout once ready.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("reading the bound address")?;
    if state.config.dev {
        tracing::warn!(
            "DEVELOPMENT MODE: anonymous clients are allowed; never run --dev in production"
        );
    }
    if state.config.conformance_echo {
        tracing::warn!(
            "CONFORMANCE ECHO: /conformance/echo returns every message unauthenticated; \
             for Autobahn|Testsuite runs only"
        );
    }
    if !state.security.required {
        tracing::warn!("authentication is NOT required: anonymous clients may connect");
    }
    // Background tasks live in the same tracker as connections, so shutdown waits for them
    // to stop on the cancelled token instead of aborting them mid-tick.
    {
        let state = state.clone();
        let cancel = state.shutdown.child_token();
        state.tasks.clone().spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => {
                        state.security.handshakes.sweep(std::time::Instant::now());
                        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
                        state.signed.sweep(now_ms as i64);
                    }
                }
            }
        });
    }
    state.tasks.spawn(roomcast_engine::maintenance::run(
        state.hub.clone(),
        state.shutdown.child_token(),
    ));
    if let Some(cluster) = &state.cluster {
        cluster.start(
            state.hub.clone(),
            &state.tasks,
            state.shutdown.child_token(),
        );
    }
    let app = router(state.clone());
    let accept = AcceptConfig {
        header_read_timeout: state.config.limits.header_read_timeout,
        max_connections_per_ip: state.config.limits.max_connections_per_ip,
    };
    let stopped = state.shutdown.clone();
    let (server, scheme) = match &state.config.tls {
        Some((cert, key)) => {
            let acceptor = crate::tls::acceptor(cert, key)?;
            let listener =
                crate::tls::TlsListener::new(listener, acceptor, state.shutdown.child_token())
                    .context("starting the TLS listener")?;
            let serve = crate::accept::serve(listener, app, accept, stopped);
            (tokio::spawn(serve), "wss")
        }
        None => {
            // Real-time traffic is many small frames: without TCP_NODELAY, Nagle's
            // algorithm holds a reply (e.g. an ack right after the welcome) until the
            // peer's delayed ACK, ~40 ms.
            let listener = crate::wire::WireListener(listener);
            let serve = crate::accept::serve(listener, app, accept, stopped);
            (tokio::spawn(serve), "ws")
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {scheme}://{addr}");
        let _ = out.flush();
    }
    tracing::info!(%addr, "roomcast listening");

    stop.await;
    tracing::info!("shutting down: closing connections");
    state.shutdown.cancel();
    let code = state.config.shutdown_close;
    state.hub.close_all(code, code.default_reason());
    state.tasks.close();
    if tokio::time::timeout(state.config.shutdown_grace, state.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = state.tasks.len(),
            "shutdown grace elapsed with connections still draining"
        );
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), server).await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
