//! The scenarios, one file each, and the few helpers they share. A scenario validates its
//! arguments, checks the open-files limit, sets up its connections, runs the load inside
//! one [`Window`](crate::clock::Window), waits a bounded drain, and returns a
//! [`Report`](crate::report::Report); it never outlives its deadline.

pub(crate) mod churn;
pub(crate) mod connect;
pub(crate) mod echo;
pub(crate) mod fanout;
pub(crate) mod orders;
pub(crate) mod replay;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::args::CommonArgs;
use crate::conn::Connector;
use crate::report::{bump, ReportBase};
use crate::ws::{BufferSize, WsConn};

/// The start every scenario shares: checks the open-files limit for `sockets`, builds the
/// connector (source addresses included) and starts the report with the run's parameters.
pub(crate) async fn prepare<A: serde::Serialize>(
    scenario: &'static str,
    common: &CommonArgs,
    sockets: u64,
    args: &A,
) -> anyhow::Result<(Arc<Connector>, ReportBase)> {
    let url = common.single_url()?;
    let (mut connectors, base) = prepare_nodes(scenario, common, &[url], sockets, args).await?;
    let connector = connectors
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no server URL"))?;
    Ok((connector, base))
}

/// [`prepare`] for a scenario that spreads its `sockets` over several nodes of a cluster:
/// one connector per URL, in the order given. Each chooses its source addresses for the
/// whole run's count, as one node would (so a one-node run behaves exactly as [`prepare`]).
pub(crate) async fn prepare_nodes<A: serde::Serialize>(
    scenario: &'static str,
    common: &CommonArgs,
    urls: &[&str],
    sockets: u64,
    args: &A,
) -> anyhow::Result<(Vec<Arc<Connector>>, ReportBase)> {
    crate::sys::ensure_fd_limit(sockets)?;
    let mut connectors = Vec::with_capacity(urls.len());
    for url in urls {
        connectors.push(Arc::new(Connector::new(common, url, sockets).await?));
    }
    let parameters = serde_json::to_value(args).unwrap_or_default();
    let mut base = ReportBase::start(scenario, common, parameters);
    base.sources = connectors
        .first()
        .map(|c| c.sources().iter().map(|ip| ip.to_string()).collect())
        .unwrap_or_default();
    Ok((connectors, base))
}

/// Opens `n` connections named `bench-{tag}-{kind}{i}`, at most `concurrency` handshakes at
/// a time, counting each success in `ready`. Returns the connections and the failures by
/// reason (the caller decides what an empty result means).
pub(crate) async fn connect_all(
    connector: &Arc<Connector>,
    n: usize,
    concurrency: usize,
    id_prefix: &str,
    buffer: BufferSize,
    ready: Arc<AtomicU64>,
) -> (Vec<WsConn>, BTreeMap<String, u64>) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut setups = Vec::with_capacity(n);
    for i in 0..n {
        let connector = connector.clone();
        let permits = permits.clone();
        let ready = ready.clone();
        let id = format!("{id_prefix}{i}");
        setups.push(tokio::spawn(async move {
            let _permit = permits.acquire().await;
            let r = connector.connect(&id, buffer).await;
            if r.is_ok() {
                ready.fetch_add(1, Ordering::Relaxed);
            }
            r.map(|(conn, _)| conn)
        }));
    }
    let mut conns = Vec::new();
    let mut failures = BTreeMap::new();
    for r in join_all(setups, connector.timeout * 2 + Duration::from_secs(60)).await {
        match r {
            Ok(conn) => conns.push(conn),
            Err(e) => bump(&mut failures, e.reason()),
        }
    }
    (conns, failures)
}

/// Room names are spliced into JSON by hand; the protocol's rule (`RoomName`) admits only
/// characters that need no escaping, so the bench validates with it and nothing else.
pub(crate) fn check_room(name: &str) -> anyhow::Result<()> {
    roomcast_protocol::RoomName::parse(name)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("room {name:?}: {e}"))
}

/// Awaits every task until `limit`; tasks still running then are aborted. Returns the
/// outputs of those that finished.
pub(crate) async fn join_all<T>(handles: Vec<JoinHandle<T>>, limit: Duration) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut out = Vec::with_capacity(handles.len());
    for mut h in handles {
        match tokio::time::timeout_at(deadline, &mut h).await {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(_)) => {}
            Err(_) => h.abort(),
        }
    }
    out
}

/// Waits out the warmup, then the measured window, reading the servers' (and Redis's) CPU
/// time at both
/// edges (the figures every scenario reports per measured second).
pub(crate) async fn measure_window(
    window: &crate::clock::Window,
    progress: &crate::progress::Progress,
    common: &CommonArgs,
) -> (crate::report::CpuMark, crate::report::CpuMark) {
    sleep_until_ns(window.measure_from).await;
    let from = crate::report::CpuMark::now(common);
    progress.phase("measure");
    sleep_until_ns(window.end).await;
    (from, crate::report::CpuMark::now(common))
}

/// Sleeps until a clock reading.
pub(crate) async fn sleep_until_ns(t: u64) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(crate::clock::instant_of(t))).await;
}
