//! `fanout`: S subscribers spread over R rooms, P publishers (publisher j in room j mod R)
//! publishing at a total rate or as fast as the slowest subscriber allows.
//!
//! Each message's `content` is `{"p":<publisher>,"n":<counter>,"t":<send ns>,"pad":"…"}`.
//! Counting is by send time: a message counts when its `t` falls in the measured window,
//! on the publisher's side (`published`, and `expected` = published × the room's
//! subscribers at start) and on every subscriber's side (`received`), so warmup traffic
//! is excluded on both sides alike. Each subscriber tracks, per publisher, the next
//! counter it expects and the gaps it has seen: a counter inside a gap is `reordered`, a
//! counter below the next one and in no gap is `duplicated`; `lost` is what is owed and
//! never arrived by the end of the drain. Subscribers keep their counters in locals and
//! touch shared atomics once per read, never per message.
//!
//! Several `--url`s name the nodes of one cluster: subscriber i connects to node
//! (i / R) mod N, so each room's members are spread round-robin over the nodes, and every
//! publisher to node `--publisher-node`. Loss, duplication and order are checked exactly
//! as for one server, since the counters travel in the payload.
//!
//! With `--rate max`, each publisher keeps at most `--max-in-flight` messages published
//! to its room and not yet received by the room's slowest subscriber, so neither the
//! server's queues nor the generator balloon; throughput is then what the pipeline
//! sustains at that depth.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::bail;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::args::FanoutArgs;
use crate::client::{self, end_round, HoldEnd};
use crate::clock::{self, Schedule, Window};
use crate::conn::{run_tag, Connector};
use crate::parse::{classify, Msg, PONG};
use crate::progress::{si, Progress, RateMeter};
use crate::report::{bump, FanoutResults, Latency, Report, Results};
use crate::stats::{LatencySink, Recorder};
use crate::ws::{BufferSize, Kind, WsConn};

/// Most messages one write of a publisher carries.
const BURST: u64 = 64;

/// Most gaps a subscriber remembers per publisher; beyond it, a late message in a
/// forgotten gap is counted as duplicated rather than reordered.
const MAX_GAPS: usize = 4096;

/// A member's receive counter, alone on its cache line.
#[repr(align(64))]
#[derive(Debug, Default)]
struct Slot(AtomicU64);

/// Marks a member that left: excluded from the slowest-subscriber minimum.
const GONE: u64 = u64::MAX;

#[derive(Debug)]
struct RoomState {
    name: String,
    /// Messages published to the room so far (all its publishers, whole run).
    sent: AtomicU64,
    /// Bench messages each member has received so far.
    members: Box<[Slot]>,
    /// Members subscribed and connected.
    alive: AtomicU64,
}

/// The node (index into the connectors) subscriber `i` of a run with `rooms` rooms uses:
/// round-robin over the nodes within each room.
fn node_of(i: usize, rooms: usize, nodes: usize) -> usize {
    (i / rooms.max(1)) % nodes.max(1)
}

impl RoomState {
    /// Published and not yet received by the slowest live member.
    fn in_flight(&self) -> u64 {
        let min = self
            .members
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .min()
            .unwrap_or(GONE);
        if min == GONE {
            0
        } else {
            self.sent.load(Ordering::Relaxed).saturating_sub(min)
        }
    }
}

#[derive(Debug)]
struct Shared {
    rooms: Vec<RoomState>,
    publishers: usize,
    window: OnceLock<Window>,
    /// Deliveries of measured messages, duplicates included (drain progress).
    measured_received: AtomicU64,
    /// All bench deliveries (progress line).
    total_received: AtomicU64,
    ready: AtomicU64,
    failed: AtomicU64,
    stop: CancellationToken,
}

#[derive(Debug, Default)]
struct SubResult {
    received: u64,
    duplicated: u64,
    reordered: u64,
    foreign: u64,
    errors: BTreeMap<String, u64>,
    /// `Some(code)` when the server dropped the connection.
    dropped: Option<Option<u16>>,
    setup_failed: Option<String>,
}

#[derive(Debug, Default)]
struct PubResult {
    room: usize,
    sent_total: u64,
    sent_measured: u64,
    errors: BTreeMap<String, u64>,
    failure: Option<String>,
}

/// Runs the scenario: subscribers connect and join, publishers connect, the clock starts,
/// publishers publish until the window ends, then everything owed is drained and counted.
pub(crate) async fn run(args: FanoutArgs) -> anyhow::Result<Report> {
    let c = &args.common;
    check_args(&args)?;
    let total = (args.subscribers + args.publishers) as u64;
    let urls: Vec<&str> = c.url.iter().map(String::as_str).collect();
    let (connectors, base) = super::prepare_nodes("fanout", c, &urls, total, &args).await?;
    let tag = run_tag();
    let shared = new_shared(&args, &tag);
    // Whatever happens below, subscribers stop when this function returns.
    let _stop_guard = shared.stop.clone().drop_guard();
    let progress = show_progress(&shared, &args);

    let sink = LatencySink::new(16)?;
    let subscribers = start_subscribers(&args, &tag, &connectors, &shared, &sink).await;
    if subscribers.members_at_start.iter().all(|&m| m == 0) {
        progress.finish().await;
        bail!(
            "no subscriber could connect to {} ({})",
            c.urls_text(),
            failures_text(&subscribers.connect_failures)
        );
    }
    let pubs =
        match connect_publishers(&args, &tag, &connectors[args.publisher_node], &shared).await {
            Ok(pubs) => pubs,
            Err(e) => {
                progress.finish().await;
                return Err(e);
            }
        };

    let window = Window::starting_now(c.warmup.get(), c.duration.get());
    let _ = shared.window.set(window);
    progress.phase(if c.warmup.get().is_zero() {
        "measure"
    } else {
        "warmup"
    });
    let pub_handles = start_publishers(&args, &shared, window, pubs);
    let (cpu_from, cpu_to) = super::measure_window(&window, &progress, c).await;
    progress.phase("drain");

    let drain = c.drain.get();
    let pub_results = super::join_all(pub_handles, drain + Duration::from_secs(1)).await;
    let (totals, holders) = tally_publishers(
        pub_results,
        args.publishers,
        &subscribers.members_at_start,
        &shared,
    );
    let (drain_complete, drain_seconds) = wait_drained(&shared, totals.expected, drain).await;
    shared.stop.cancel();
    let subs = super::join_all(subscribers.handles, Duration::from_secs(5)).await;
    let _ = super::join_all(holders, Duration::from_secs(2)).await;
    progress.finish().await;

    let mut res = FanoutResults {
        publishers: args.publishers as u64,
        rooms: args.rooms as u64,
        subscribers: subscribers.members_at_start.iter().sum(),
        subscribers_per_node: subscribers.per_node,
        publisher_node: args.publisher_node as u64,
        connect_failures: subscribers.connect_failures,
        published: totals.published,
        published_total: totals.published_total,
        expected: totals.expected,
        server_errors: totals.server_errors,
        drain_seconds,
        drain_complete,
        ..FanoutResults::default()
    };
    add_subscribers(&mut res, subs);
    let unique = res.received - res.duplicated;
    res.lost = totals.expected.saturating_sub(unique);
    let secs = window.measured_secs();
    res.publishes_per_sec = totals.published as f64 / secs;
    res.deliveries_per_sec = unique as f64 / secs;
    res.latency_us = Latency::from_ns(&sink.merged()?);
    let mut report = base.finish(secs, (cpu_from, cpu_to), Results::Fanout(res));
    let gen_cpu = report.generator_cpu_seconds;
    if let Results::Fanout(r) = &mut report.results {
        if unique > 0 {
            r.generator_cpu_us_per_delivery = (gen_cpu * 1e9 / unique as f64).round() / 1000.0;
        }
    }
    Ok(report)
}

/// The rooms (members assigned round-robin) and the counters every task shares.
fn new_shared(args: &FanoutArgs, tag: &str) -> Arc<Shared> {
    let rooms = (0..args.rooms)
        .map(|r| RoomState {
            name: format!("bench-{tag}-{r}"),
            sent: AtomicU64::new(0),
            members: (0..args.subscribers)
                .filter(|i| i % args.rooms == r)
                .map(|_| Slot::default())
                .collect(),
            alive: AtomicU64::new(0),
        })
        .collect();
    Arc::new(Shared {
        rooms,
        publishers: args.publishers,
        window: OnceLock::new(),
        measured_received: AtomicU64::new(0),
        total_received: AtomicU64::new(0),
        ready: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        stop: CancellationToken::new(),
    })
}

fn show_progress(shared: &Arc<Shared>, args: &FanoutArgs) -> Progress {
    let s = shared.clone();
    let subs = args.subscribers;
    let meter = RateMeter::default();
    let c = &args.common;
    Progress::start("fanout", c.warmup.get() + c.duration.get(), move || {
        let sent: u64 = s.rooms.iter().map(|r| r.sent.load(Ordering::Relaxed)).sum();
        let got = s.total_received.load(Ordering::Relaxed);
        format!(
            "subscribers {}/{subs} (failed {}) published {} delivered {} ({}/s)",
            s.ready.load(Ordering::Relaxed),
            s.failed.load(Ordering::Relaxed),
            si(sent as f64),
            si(got as f64),
            si(meter.rate(got))
        )
    })
}

/// The subscribers once every one has joined its room or failed.
struct Subscribers {
    handles: Vec<tokio::task::JoinHandle<SubResult>>,
    connect_failures: BTreeMap<String, u64>,
    per_node: Vec<u64>,
    /// Members per room when the clock starts: what each publish owes.
    members_at_start: Vec<u64>,
}

/// Subscribers: connect (spread over the nodes), subscribe, report ready, then read until
/// stopped. Returns once each has reported.
async fn start_subscribers(
    args: &FanoutArgs,
    tag: &str,
    connectors: &[Arc<Connector>],
    shared: &Arc<Shared>,
    sink: &Arc<LatencySink>,
) -> Subscribers {
    let nodes = connectors.len();
    let permits = Arc::new(Semaphore::new(args.connect_concurrency));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<usize, String>>();
    let mut handles = Vec::with_capacity(args.subscribers);
    for i in 0..args.subscribers {
        let node = node_of(i, args.rooms, nodes);
        let sub = Subscriber {
            id: format!("bench-{tag}-s{i}"),
            room: i % args.rooms,
            slot: i / args.rooms,
            shared: shared.clone(),
            rec: sink.recorder(i),
            node,
        };
        let connector = connectors[node].clone();
        let permits = permits.clone();
        let ready = ready_tx.clone();
        handles.push(tokio::spawn(async move {
            sub.run(connector, permits, ready).await
        }));
    }
    drop(ready_tx);
    let mut connect_failures = BTreeMap::new();
    let mut per_node = vec![0u64; nodes];
    for _ in 0..args.subscribers {
        match ready_rx.recv().await {
            Some(Ok(node)) => per_node[node] += 1,
            Some(Err(reason)) => bump(&mut connect_failures, reason),
            None => break,
        }
    }
    let members_at_start = shared
        .rooms
        .iter()
        .map(|r| r.alive.load(Ordering::Relaxed))
        .collect();
    Subscribers {
        handles,
        connect_failures,
        per_node,
        members_at_start,
    }
}

/// Publishers: connected and subscribed before the clock starts.
async fn connect_publishers(
    args: &FanoutArgs,
    tag: &str,
    connector: &Connector,
    shared: &Shared,
) -> anyhow::Result<Vec<(usize, usize, WsConn)>> {
    let mut pubs = Vec::with_capacity(args.publishers);
    for j in 0..args.publishers {
        let room = j % args.rooms;
        let id = format!("bench-{tag}-p{j}");
        let setup = async {
            let (mut conn, _) = connector.connect(&id, BufferSize::STREAM).await?;
            client::subscribe(&mut conn, &shared.rooms[room].name, connector.timeout).await?;
            Ok::<_, crate::conn::ConnectError>(conn)
        };
        match setup.await {
            Ok(conn) => pubs.push((j, room, conn)),
            Err(e) => bail!("publisher {j} could not connect and subscribe: {e}"),
        }
    }
    Ok(pubs)
}

fn start_publishers(
    args: &FanoutArgs,
    shared: &Arc<Shared>,
    window: Window,
    pubs: Vec<(usize, usize, WsConn)>,
) -> Vec<tokio::task::JoinHandle<(PubResult, Option<WsConn>)>> {
    let rate_each = args.rate.per_sec().map(|r| r / args.publishers as f64);
    let pad = "x".repeat(
        args.payload_bytes
            .saturating_sub(r#"{"p":0,"n":1000000,"t":10000000000,"pad":""}"#.len()),
    );
    let pad: Arc<str> = Arc::from(pad);
    pubs.into_iter()
        .map(|(j, room, conn)| {
            let p = Publisher {
                index: j,
                room,
                shared: shared.clone(),
                window,
                schedule: rate_each.map(|r| Schedule::new(window.start, r, j, args.publishers)),
                max_in_flight: args.max_in_flight,
                pad: pad.clone(),
            };
            tokio::spawn(p.run(conn))
        })
        .collect()
}

/// What the publishers sent, and what that owes.
struct PubTotals {
    published: u64,
    published_total: u64,
    expected: u64,
    server_errors: BTreeMap<String, u64>,
}

/// Sums the publishers' results; their connections are held open (and answered) until
/// the subscribers stop, so closing them cannot disturb the drain.
fn tally_publishers(
    pub_results: Vec<(PubResult, Option<WsConn>)>,
    publishers: usize,
    members_at_start: &[u64],
    shared: &Shared,
) -> (PubTotals, Vec<tokio::task::JoinHandle<()>>) {
    let mut totals = PubTotals {
        published: 0,
        published_total: 0,
        expected: 0,
        server_errors: BTreeMap::new(),
    };
    if pub_results.len() < publishers {
        bump(
            &mut totals.server_errors,
            "publisher: did not finish in time",
        );
    }
    let mut holders = Vec::new();
    for (r, conn) in pub_results {
        totals.published += r.sent_measured;
        totals.published_total += r.sent_total;
        totals.expected += r.sent_measured * members_at_start[r.room];
        for (k, v) in &r.errors {
            *totals.server_errors.entry(k.clone()).or_insert(0) += v;
        }
        if let Some(f) = &r.failure {
            bump(&mut totals.server_errors, format!("publisher: {f}"));
        }
        if let Some(mut conn) = conn {
            let stop = shared.stop.clone();
            holders.push(tokio::spawn(async move {
                client::hold(&mut conn, &stop).await;
            }));
        }
    }
    (totals, holders)
}

/// Refuses argument combinations the scenario cannot run.
fn check_args(args: &FanoutArgs) -> anyhow::Result<()> {
    if args.subscribers == 0 || args.rooms == 0 || args.publishers == 0 {
        bail!("--subscribers, --rooms and --publishers must be at least 1");
    }
    if args.rooms > args.subscribers {
        bail!(
            "--rooms ({}) exceeds --subscribers ({})",
            args.rooms,
            args.subscribers
        );
    }
    if args.payload_bytes > 1 << 20 {
        bail!("--payload-bytes must be at most 1048576");
    }
    if args.max_in_flight == 0 || args.connect_concurrency == 0 {
        bail!("--max-in-flight and --connect-concurrency must be at least 1");
    }
    let urls = &args.common.url;
    if urls.is_empty() {
        bail!("--url is required");
    }
    if args.publisher_node >= urls.len() {
        bail!(
            "--publisher-node {} names no node: {} --url given",
            args.publisher_node,
            urls.len()
        );
    }
    Ok(())
}

/// The drain: waits until everything owed arrived, every subscriber is gone, or `drain`
/// has passed. Returns whether everything arrived, and the seconds waited.
async fn wait_drained(shared: &Shared, expected: u64, drain: Duration) -> (bool, f64) {
    let drain_started = tokio::time::Instant::now();
    let drain_complete = loop {
        if shared.measured_received.load(Ordering::Relaxed) >= expected {
            break true;
        }
        let alive: u64 = shared
            .rooms
            .iter()
            .map(|r| r.alive.load(Ordering::Relaxed))
            .sum();
        if alive == 0 || drain_started.elapsed() >= drain {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    (drain_complete, drain_started.elapsed().as_secs_f64())
}

/// Adds the subscribers' counts into `res`.
fn add_subscribers(res: &mut FanoutResults, subs: Vec<SubResult>) {
    for s in subs {
        if s.setup_failed.is_some() {
            res.subscribers_failed += 1;
            continue;
        }
        res.received += s.received;
        res.duplicated += s.duplicated;
        res.reordered += s.reordered;
        res.foreign_messages += s.foreign;
        for (k, v) in s.errors {
            *res.server_errors.entry(k).or_insert(0) += v;
        }
        if let Some(code) = s.dropped {
            res.subscribers_disconnected += 1;
            bump(
                &mut res.disconnect_codes,
                code.map_or_else(|| "none".to_string(), |c| c.to_string()),
            );
        }
    }
}

fn failures_text(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a message stands in its publisher's sequence, for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Next,
    Reordered,
    Duplicate,
}

/// One subscriber's view of one publisher's counter.
#[derive(Debug, Clone, Default)]
struct Track {
    next: u64,
    gaps: Vec<Range<u64>>,
}

impl Track {
    #[inline]
    fn observe(&mut self, n: u64) -> Order {
        if n >= self.next {
            if n > self.next && self.gaps.len() < MAX_GAPS {
                self.gaps.push(self.next..n);
            }
            self.next = n + 1;
            return Order::Next;
        }
        let Some(i) = self.gaps.iter().rposition(|g| g.contains(&n)) else {
            return Order::Duplicate;
        };
        let g = self.gaps[i].clone();
        match (g.start == n, g.end == n + 1) {
            (true, true) => {
                self.gaps.remove(i);
            }
            (true, false) => self.gaps[i].start = n + 1,
            (false, true) => self.gaps[i].end = n,
            (false, false) => {
                self.gaps[i].end = n;
                self.gaps.insert(i + 1, n + 1..g.end);
            }
        }
        Order::Reordered
    }
}

struct Subscriber {
    id: String,
    room: usize,
    slot: usize,
    shared: Arc<Shared>,
    rec: Recorder,
    /// Index of the node it connects to.
    node: usize,
}

impl Subscriber {
    async fn run(
        self,
        connector: Arc<Connector>,
        permits: Arc<Semaphore>,
        ready: mpsc::UnboundedSender<Result<usize, String>>,
    ) -> SubResult {
        let shared = self.shared.clone();
        let room = &shared.rooms[self.room];
        let slot = &room.members[self.slot].0;
        let setup = async {
            let _permit = permits.acquire().await;
            let (mut conn, _) = connector.connect(&self.id, BufferSize::STREAM).await?;
            client::subscribe(&mut conn, &room.name, connector.timeout).await?;
            Ok::<_, crate::conn::ConnectError>(conn)
        };
        let conn = match setup.await {
            Ok(conn) => conn,
            Err(e) => {
                slot.store(GONE, Ordering::Relaxed);
                shared.failed.fetch_add(1, Ordering::Relaxed);
                let _ = ready.send(Err(e.reason()));
                return SubResult {
                    setup_failed: Some(e.reason()),
                    ..SubResult::default()
                };
            }
        };
        room.alive.fetch_add(1, Ordering::Relaxed);
        shared.ready.fetch_add(1, Ordering::Relaxed);
        let _ = ready.send(Ok(self.node));
        drop(ready);
        let mut res = SubResult::default();
        let ended = self.receive(conn, slot, &mut res).await;
        if let HoldEnd::Dropped(code) = ended {
            slot.store(GONE, Ordering::Relaxed);
            room.alive.fetch_sub(1, Ordering::Relaxed);
            res.dropped = Some(code);
        }
        res
    }

    /// The hot loop: one read, then every complete frame in the buffer.
    async fn receive(mut self, mut conn: WsConn, slot: &AtomicU64, res: &mut SubResult) -> HoldEnd {
        let shared = self.shared.clone();
        let rooms = shared.rooms.len();
        let mine = (shared.publishers + rooms - 1 - self.room) / rooms;
        let mut tracks = vec![Track::default(); mine];
        let mut received_all = 0u64;
        let stopped = shared.stop.cancelled();
        tokio::pin!(stopped);
        loop {
            let now = clock::now_ns();
            let window = shared.window.get().copied();
            let mut batch = 0u64;
            let mut batch_measured = 0u64;
            let mut heartbeat = false;
            loop {
                let f = match conn.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(_) => return HoldEnd::Dropped(None),
                };
                match f.kind {
                    Kind::Text => match classify(conn.payload(&f)) {
                        Msg::Bench { p, n, t } => {
                            // Publisher p publishes to room p mod R; its track here is p / R.
                            let p = p as usize;
                            let track = if p % rooms == self.room {
                                tracks.get_mut(p / rooms)
                            } else {
                                None
                            };
                            let Some(track) = track else {
                                res.foreign += 1;
                                continue;
                            };
                            batch += 1;
                            let order = track.observe(n);
                            if window.is_some_and(|w| w.measured(t)) {
                                batch_measured += 1;
                                match order {
                                    Order::Duplicate => res.duplicated += 1,
                                    Order::Reordered => {
                                        res.reordered += 1;
                                        self.rec.record(now.saturating_sub(t));
                                    }
                                    Order::Next => self.rec.record(now.saturating_sub(t)),
                                }
                            }
                        }
                        Msg::Heartbeat => heartbeat = true,
                        Msg::Foreign => res.foreign += 1,
                        Msg::Error { code, .. } => bump(&mut res.errors, code),
                        _ => {}
                    },
                    Kind::Ping => {
                        let p = conn.payload(&f).to_vec();
                        conn.queue_pong(&p);
                    }
                    Kind::Close => return HoldEnd::Dropped(conn.close_code(&f)),
                    Kind::Binary | Kind::Pong => {}
                }
            }
            if batch > 0 {
                received_all += batch;
                slot.store(received_all, Ordering::Relaxed);
                shared.total_received.fetch_add(batch, Ordering::Relaxed);
            }
            if batch_measured > 0 {
                res.received += batch_measured;
                shared
                    .measured_received
                    .fetch_add(batch_measured, Ordering::Relaxed);
            }
            self.rec.flush();
            if let Some(end) = end_round(&mut conn, heartbeat, stopped.as_mut()).await {
                return end;
            }
        }
    }
}

struct Publisher {
    index: usize,
    room: usize,
    shared: Arc<Shared>,
    window: Window,
    /// `None`: as fast as `max_in_flight` allows.
    schedule: Option<Schedule>,
    max_in_flight: u64,
    pad: Arc<str>,
}

impl Publisher {
    /// Publishes until the window ends; returns the counts and the connection (to be
    /// held open until the run stops, so the room keeps its membership).
    async fn run(self, mut conn: WsConn) -> (PubResult, Option<WsConn>) {
        let mut res = PubResult {
            room: self.room,
            ..PubResult::default()
        };
        let room = &self.shared.rooms[self.room];
        let head = format!(
            r#"{{"type":"message","room":"{}","content":{{"p":{},"n":"#,
            room.name, self.index
        );
        let mut text: Vec<u8> = Vec::with_capacity(head.len() + self.pad.len() + 64);
        let w = self.window;
        let mut n: u64 = 0;
        loop {
            let now = clock::now_ns();
            if now >= w.end {
                break;
            }
            let due = match self.schedule {
                Some(s) => s.owed(now).saturating_sub(n).min(BURST),
                None => self
                    .max_in_flight
                    .saturating_sub(room.in_flight())
                    .min(BURST),
            };
            if due > 0 {
                for _ in 0..due {
                    text.clear();
                    text.extend_from_slice(head.as_bytes());
                    push_u64(&mut text, n);
                    text.extend_from_slice(br#","t":"#);
                    push_u64(&mut text, now);
                    text.extend_from_slice(br#","pad":""#);
                    text.extend_from_slice(self.pad.as_bytes());
                    text.extend_from_slice(br#""}}"#);
                    conn.queue_text(&text);
                    n += 1;
                }
                room.sent.fetch_add(due, Ordering::Relaxed);
                if let Err(e) = conn.flush().await {
                    res.failure = Some(format!("write failed: {e}"));
                    return (res, None);
                }
                res.sent_total += due;
                if w.measured(now) {
                    res.sent_measured += due;
                }
                if let Err(e) = self.read_ready(&mut conn, &mut res) {
                    res.failure = Some(e);
                    return (res, None);
                }
                if self.schedule.is_none() {
                    tokio::task::yield_now().await;
                    continue;
                }
            }
            let wake = match self.schedule {
                Some(s) => s.due(n),
                None => now + 500_000,
            }
            .min(w.end);
            tokio::select! {
                _ = super::sleep_until_ns(wake) => {}
                r = conn.fill() => match r {
                    Ok(0) => {
                        res.failure = Some("closed by server".into());
                        return (res, None);
                    }
                    Err(e) => {
                        res.failure = Some(e.to_string());
                        return (res, None);
                    }
                    Ok(_) => {
                        if let Err(e) = self.handle_frames(&mut conn, &mut res) {
                            res.failure = Some(e);
                            return (res, None);
                        }
                    }
                },
            }
            if conn.queued() > 0 && conn.flush().await.is_err() {
                res.failure = Some("write failed".into());
                return (res, None);
            }
        }
        (res, Some(conn))
    }

    /// Reads whatever is already waiting, without blocking.
    fn read_ready(&self, conn: &mut WsConn, res: &mut PubResult) -> Result<(), String> {
        loop {
            match conn.try_fill() {
                Ok(Some(0)) => return Err("closed by server".into()),
                Ok(Some(_)) => self.handle_frames(conn, res)?,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Frames a publisher receives: other publishers' messages, heartbeats, errors.
    fn handle_frames(&self, conn: &mut WsConn, res: &mut PubResult) -> Result<(), String> {
        loop {
            let f = match conn.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            match f.kind {
                Kind::Text => match classify(conn.payload(&f)) {
                    Msg::Heartbeat => conn.queue_text(PONG),
                    Msg::Error { code, .. } => bump(&mut res.errors, code),
                    _ => {}
                },
                Kind::Ping => {
                    let p = conn.payload(&f).to_vec();
                    conn.queue_pong(&p);
                }
                Kind::Close => {
                    return Err(match conn.close_code(&f) {
                        Some(c) => format!("closed by server ({c})"),
                        None => "closed by server".into(),
                    })
                }
                Kind::Binary | Kind::Pong => {}
            }
        }
    }
}

/// Appends the decimal digits of `v`.
#[inline]
fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_gaps_reorders_and_duplicates() {
        let mut t = Track::default();
        assert_eq!(t.observe(0), Order::Next);
        assert_eq!(t.observe(1), Order::Next);
        assert_eq!(t.observe(5), Order::Next); // gap 2..5
        assert_eq!(t.observe(3), Order::Reordered);
        assert_eq!(t.observe(3), Order::Duplicate);
        assert_eq!(t.observe(2), Order::Reordered);
        assert_eq!(t.observe(4), Order::Reordered);
        assert!(t.gaps.is_empty());
        assert_eq!(t.observe(1), Order::Duplicate);
        assert_eq!(t.observe(6), Order::Next);
    }

    #[test]
    fn subscribers_are_spread_over_nodes_within_each_room() {
        // One room, three nodes: 0,1,2,0,1,2,...
        let one: Vec<usize> = (0..6).map(|i| node_of(i, 1, 3)).collect();
        assert_eq!(one, [0, 1, 2, 0, 1, 2]);
        // Two rooms (members i%2), two nodes: each room gets members on both nodes.
        let rooms: Vec<(usize, usize)> = (0..8).map(|i| (i % 2, node_of(i, 2, 2))).collect();
        for room in 0..2 {
            let on: Vec<usize> = rooms
                .iter()
                .filter(|(r, _)| *r == room)
                .map(|(_, n)| *n)
                .collect();
            assert_eq!(on, [0, 1, 0, 1], "room {room}");
        }
        assert!((0..100).all(|i| node_of(i, 3, 1) == 0));
    }

    #[test]
    fn digits_are_written() {
        let mut v = Vec::new();
        push_u64(&mut v, 0);
        v.push(b' ');
        push_u64(&mut v, 18_446_744_073_709_551_615);
        assert_eq!(v, b"0 18446744073709551615");
    }
}
