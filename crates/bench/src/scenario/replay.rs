//! `replay`: catch-up after a reconnect. The room is seeded with `--events` events
//! (`POST /api/publish/batch` with `--api-key`, else `message` requests over one
//! WebSocket), then `--clients` connections are opened without joining the room and, at
//! one instant (the barrier), each sends `subscribe` with `since` = head − `--missed` and
//! reads until `replay_complete`. Every replayed event's sequence is checked (consecutive,
//! no gap, no repeat) by a byte scan; `replay_seconds` runs from the barrier to the last
//! client's `replay_complete`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::args::ReplayArgs;
use crate::client::{self, HoldEnd};
use crate::clock;
use crate::conn::{run_tag, Connector, Target};
use crate::http::dechunk;
use crate::parse::{classify, classify_replay, Msg, Replay, PONG};
use crate::progress::{Progress, RateMeter};
use crate::report::{CpuMark, DoneMs, ReplayResults, Report, Results};
use crate::ws::{BufferSize, Kind, WsConn};

/// Most events in one `POST /api/publish/batch` (the server's limit).
const HTTP_BATCH: u64 = 1000;
/// Most `message` requests unacknowledged at once when seeding over WebSocket.
const WS_WINDOW: u64 = 256;
/// Longest one seeding request (HTTP batch, WebSocket read) may take.
const SEED_STEP_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Live {
    ready: Arc<AtomicU64>,
    replayed: AtomicU64,
}

#[derive(Debug, Default)]
struct ClientResult {
    /// Distinct replayed events received.
    received: u64,
    /// Replayed events at or below one already received.
    duplicated: u64,
    /// Clock reading at `replay_complete`.
    done_ns: Option<u64>,
    /// Clock reading when the task stopped.
    end_ns: u64,
    replayed_count: Option<u64>,
    recovery_failed: bool,
}

/// Runs the scenario.
pub(crate) async fn run(args: ReplayArgs) -> anyhow::Result<Report> {
    let c = &args.common;
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if args.events == 0 {
        bail!("--events must be at least 1");
    }
    if args.missed == Some(0) {
        bail!("--missed must be at least 1");
    }
    let tag = run_tag();
    let room = args.room.clone().unwrap_or_else(|| format!("replay-{tag}"));
    super::check_room(&room)?;
    let (connector, mut base) = super::prepare("replay", c, args.clients as u64 + 2, &args).await?;
    let target = Target::resolve(c.single_url()?).await?;
    base.warmup_ignored();
    let live = Arc::new(Live::default());
    let progress = {
        let live = live.clone();
        let n = args.clients;
        let meter = RateMeter::default();
        Progress::start("replay", args.replay_timeout.get(), move || {
            let r = live.replayed.load(Ordering::Relaxed);
            format!(
                "clients {}/{n} replayed {}",
                live.ready.load(Ordering::Relaxed),
                meter.total_and_rate(r)
            )
        })
    };

    // 1. Seed the room.
    progress.phase("seed");
    let seed_from = Instant::now();
    let head = match seed(
        &args,
        &target,
        &connector,
        &format!("bench-{tag}-seed"),
        &room,
    )
    .await
    {
        Ok(h) => h,
        Err(e) => {
            progress.finish().await;
            return Err(e.context(format!("seeding {} events into {room}", args.events)));
        }
    };
    let seed_seconds = seed_from.elapsed().as_secs_f64();
    let missed = args.missed.unwrap_or(args.events).min(head);
    let since = head - missed;

    // 2. Connect every client (no room joined), a bounded number at a time.
    progress.phase("connect");
    let (conns, failures) = super::connect_all(
        &connector,
        args.clients,
        args.connect_concurrency,
        &format!("bench-{tag}-r"),
        BufferSize::STREAM,
        live.ready.clone(),
    )
    .await;
    if conns.is_empty() {
        progress.finish().await;
        bail!("no connection to {} succeeded", c.urls_text());
    }
    let connected = conns.len() as u64;

    // 3. Everyone waits at the barrier, then catches up.
    let run = catch_up(
        conns,
        &room,
        since,
        args.replay_timeout.get(),
        &live,
        || {
            progress.phase("replay");
            CpuMark::now(c)
        },
    )
    .await;
    let cpu_to = CpuMark::now(c);
    progress.finish().await;

    let mut res = ReplayResults {
        clients: args.clients as u64,
        connected,
        connect_failures: failures,
        room,
        seeded_via: if args.api_key.is_some() {
            "http"
        } else {
            "websocket"
        }
        .into(),
        seeded: args.events,
        seed_seconds: round3(seed_seconds),
        head_sequence: head,
        since_sequence: since,
        expected: connected * missed,
        ..ReplayResults::default()
    };
    let secs = tally(&mut res, &run, missed);
    let replayed = res.events_replayed;
    let mut report = base.finish(round6(secs), (run.cpu_from, cpu_to), Results::Replay(res));
    let gen = report.generator_cpu_seconds;
    if let Results::Replay(r) = &mut report.results {
        if replayed > 0 {
            r.generator_cpu_us_per_event = round3(gen * 1e6 / replayed as f64);
        }
    }
    Ok(report)
}

/// Seeds the room with `--events` events (over HTTP with `--api-key`, else over one
/// WebSocket); returns the room's head.
async fn seed(
    args: &ReplayArgs,
    target: &Target,
    connector: &Connector,
    client_id: &str,
    room: &str,
) -> anyhow::Result<u64> {
    match &args.api_key {
        Some(key) => seed_http(target, key, room, args.events, args.payload_bytes).await,
        None => seed_ws(connector, client_id, room, args.events, args.payload_bytes).await,
    }
}

/// What the catch-up phase leaves to tally.
struct CatchUpRun {
    results: Vec<ClientResult>,
    /// How many clients took part.
    clients: u64,
    /// Clock reading when the barrier fell.
    t0: u64,
    /// Clock reading once every task returned or was given up on.
    aborted_end: u64,
    /// Server CPU when the barrier fell.
    cpu_from: CpuMark,
}

/// Spawns one catch-up task per connection, lets them all reach the barrier, drops it
/// (`at_barrier` runs just before and reads the server's CPU) and waits for them.
async fn catch_up(
    conns: Vec<WsConn>,
    room: &str,
    since: u64,
    limit: Duration,
    live: &Arc<Live>,
    at_barrier: impl FnOnce() -> CpuMark,
) -> CatchUpRun {
    let request: Arc<[u8]> = format!(
        r#"{{"type":"subscribe","room":"{room}","since":{{"sequence":{since}}},"id":"replay"}}"#
    )
    .into_bytes()
    .into();
    let barrier = CancellationToken::new();
    let clients = conns.len() as u64;
    let handles: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            let task = CatchUp {
                request: request.clone(),
                barrier: barrier.clone(),
                since,
                limit,
                live: live.clone(),
            };
            tokio::spawn(task.run(conn))
        })
        .collect();
    // Let every task reach its wait before the barrier falls.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cpu_from = at_barrier();
    let t0 = clock::now_ns();
    barrier.cancel();
    let results = super::join_all(handles, limit + Duration::from_secs(5)).await;
    CatchUpRun {
        results,
        clients,
        t0,
        aborted_end: clock::now_ns(),
        cpu_from,
    }
}

/// Adds the clients' results into `res` (each client owed `missed` events); returns the
/// seconds from the barrier to the last client's end.
fn tally(res: &mut ReplayResults, run: &CatchUpRun, missed: u64) -> f64 {
    let mut done = Vec::with_capacity(run.results.len());
    let mut last_end = run.t0;
    for r in &run.results {
        res.events_replayed += r.received;
        res.duplicated += r.duplicated;
        res.lost += missed.saturating_sub(r.received);
        last_end = last_end.max(r.end_ns);
        if r.recovery_failed {
            res.recovery_failed += 1;
        }
        match (r.done_ns, r.replayed_count) {
            (Some(d), Some(k)) => {
                res.completed += 1;
                done.push(d.saturating_sub(run.t0));
                if k != r.received + r.duplicated {
                    res.count_mismatches += 1;
                }
            }
            _ if r.recovery_failed => {}
            _ => res.incomplete += 1,
        }
    }
    // Tasks that never returned owe everything.
    let missing = run.clients - run.results.len() as u64;
    if missing > 0 {
        res.incomplete += missing;
        res.lost += missing * missed;
        last_end = run.aborted_end;
    }
    let secs = (last_end.saturating_sub(run.t0) as f64 / 1e9).max(1e-9);
    res.replay_seconds = round6(secs);
    res.events_per_sec = (res.events_replayed as f64 / secs).round();
    res.client_done_ms = DoneMs::from_ns(done);
    secs
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// One client's catch-up.
struct CatchUp {
    request: Arc<[u8]>,
    barrier: CancellationToken,
    since: u64,
    limit: Duration,
    live: Arc<Live>,
}

impl CatchUp {
    async fn run(self, mut conn: WsConn) -> ClientResult {
        let mut r = ClientResult::default();
        if let HoldEnd::Dropped(_) = client::hold(&mut conn, &self.barrier).await {
            r.end_ns = clock::now_ns();
            return r;
        }
        let deadline = tokio::time::Instant::now() + self.limit;
        conn.queue_text(&self.request);
        if conn.flush().await.is_err() {
            r.end_ns = clock::now_ns();
            return r;
        }
        let mut next = self.since + 1;
        'read: loop {
            let mut heartbeat = false;
            let mut got = 0u64;
            loop {
                let f = match conn.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(_) => break 'read,
                };
                match f.kind {
                    Kind::Text => match classify_replay(conn.payload(&f)) {
                        Replay::Event(seq) => {
                            got += 1;
                            if seq == next {
                                r.received += 1;
                                next += 1;
                            } else if seq < next {
                                r.duplicated += 1;
                            } else {
                                // A gap: the skipped events count as lost at the end.
                                r.received += 1;
                                next = seq + 1;
                            }
                        }
                        Replay::Complete(k) => {
                            r.done_ns = Some(clock::now_ns());
                            r.replayed_count = Some(k);
                            self.live.replayed.fetch_add(got, Ordering::Relaxed);
                            break 'read;
                        }
                        Replay::Failed => {
                            r.recovery_failed = true;
                            break 'read;
                        }
                        Replay::Other(Msg::Heartbeat) => heartbeat = true,
                        Replay::Other(_) => {}
                    },
                    Kind::Ping => conn.answer_ping(&f),
                    Kind::Close => break 'read,
                    Kind::Binary | Kind::Pong => {}
                }
            }
            self.live.replayed.fetch_add(got, Ordering::Relaxed);
            if heartbeat {
                conn.queue_text(PONG);
            }
            if conn.queued() > 0 && conn.flush().await.is_err() {
                break;
            }
            match tokio::time::timeout_at(deadline, conn.fill()).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => break,
            }
        }
        r.end_ns = clock::now_ns();
        r
    }
}

/// The figures of a batch reply that matter here.
#[derive(Deserialize)]
struct BatchReply {
    published: u64,
    results: Vec<BatchItem>,
}

#[derive(Deserialize)]
struct BatchItem {
    sequence: u64,
}

/// The padding that brings an event's data to about `payload_bytes`.
fn padding(payload_bytes: usize) -> String {
    "x".repeat(payload_bytes.saturating_sub(24))
}

/// Publishes `events` events to `room` in batches; returns the room's last sequence.
async fn seed_http(
    target: &Target,
    key: &str,
    room: &str,
    events: u64,
    payload_bytes: usize,
) -> anyhow::Result<u64> {
    use std::fmt::Write as _;
    let pad = padding(payload_bytes);
    let path = format!("{}/api/publish/batch", target.prefix);
    let mut head = 0;
    let mut sent = 0;
    let mut body = String::new();
    while sent < events {
        let n = HTTP_BATCH.min(events - sent);
        body.clear();
        body.push('[');
        for i in 0..n {
            if i > 0 {
                body.push(',');
            }
            let _ = write!(
                body,
                r#"{{"room":"{room}","type":"tick","data":{{"n":{},"pad":"{pad}"}}}}"#,
                sent + i
            );
        }
        body.push(']');
        let reply = tokio::time::timeout(
            SEED_STEP_LIMIT,
            http_post(target, &path, key, body.as_bytes()),
        )
        .await
        .map_err(|_| anyhow::anyhow!("POST {path} timed out"))??;
        let reply: BatchReply = serde_json::from_slice(&reply)
            .with_context(|| format!("POST {path}: unexpected reply"))?;
        if reply.published != n {
            bail!("POST {path}: {} of {n} published", reply.published);
        }
        if let Some(last) = reply.results.last() {
            head = head.max(last.sequence);
        }
        sent += n;
    }
    Ok(head)
}

/// One HTTP/1.1 POST on a fresh connection; returns the body of a 200 reply.
async fn http_post(target: &Target, path: &str, key: &str, body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(target.addr)
        .await
        .with_context(|| format!("connecting to {}", target.addr))?;
    stream.set_nodelay(true)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\
         User-Agent: roomcast-bench\r\n\r\n",
        target.host,
        body.len()
    );
    let mut req = Vec::with_capacity(head.len() + body.len());
    req.extend_from_slice(head.as_bytes());
    req.extend_from_slice(body);
    stream.write_all(&req).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let end = memchr::memmem::find(&buf, b"\r\n\r\n").context("no HTTP response headers")?;
    let headers = String::from_utf8_lossy(&buf[..end]);
    let mut lines = headers.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .context("no HTTP status line")?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    });
    let raw = &buf[end + 4..];
    let body = if chunked {
        dechunk(raw).context("bad chunked HTTP body")?
    } else {
        raw.to_vec()
    };
    if status != 200 {
        bail!(
            "POST {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    Ok(body)
}

#[derive(Deserialize)]
struct AckSequence {
    sequence: Option<u64>,
}

/// Publishes `events` `message` requests to `room` over one connection, a window at a
/// time; returns the room's last sequence (from the acks).
async fn seed_ws(
    connector: &Connector,
    client_id: &str,
    room: &str,
    events: u64,
    payload_bytes: usize,
) -> anyhow::Result<u64> {
    let (mut conn, _) = connector.connect(client_id, BufferSize::STREAM).await?;
    client::subscribe(&mut conn, room, connector.timeout).await?;
    let pad = padding(payload_bytes);
    let (mut sent, mut acked, mut head) = (0u64, 0u64, 0u64);
    while acked < events {
        while sent < events && sent - acked < WS_WINDOW {
            let msg = format!(
                r#"{{"type":"message","room":"{room}","content":{{"n":{sent},"pad":"{pad}"}},"id":{}}}"#,
                sent + 2
            );
            conn.queue_text(msg.as_bytes());
            sent += 1;
        }
        if conn.queued() > 0 {
            conn.flush().await?;
        }
        match tokio::time::timeout(SEED_STEP_LIMIT, conn.fill()).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Ok(_)) => bail!("the server closed the publishing connection"),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => bail!("no ack from the server for {SEED_STEP_LIMIT:?}"),
        }
        let mut heartbeat = false;
        while let Some(f) = conn.next_frame()? {
            match f.kind {
                Kind::Text => {
                    let text = conn.payload(&f);
                    match classify(text) {
                        Msg::Ack { .. } => {
                            acked += 1;
                            if let Ok(a) = serde_json::from_slice::<AckSequence>(text) {
                                head = head.max(a.sequence.unwrap_or(0));
                            }
                        }
                        Msg::Error { code, .. } => {
                            bail!("the server refused a message: {code}")
                        }
                        Msg::Heartbeat => heartbeat = true,
                        _ => {}
                    }
                }
                Kind::Ping => conn.answer_ping(&f),
                Kind::Close => bail!("the server closed the publishing connection"),
                Kind::Binary | Kind::Pong => {}
            }
        }
        if heartbeat {
            conn.queue_text(PONG);
        }
    }
    let _ = conn.close(Duration::from_secs(1)).await;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n").as_deref(),
            Some(&b"hello world"[..])
        );
        assert!(dechunk(b"5\r\nhel").is_none());
    }
}
