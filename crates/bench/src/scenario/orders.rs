//! `orders`: order entry on the trading arena, end to end. N collectives (registered
//! through the admin API, or from `--collectives-file`) each hold their `/ws/{id}/orders`
//! stream open (Ed25519 challenge); C keep-alive HTTP connections send signed
//! `POST /api/v1/orders` at a total rate (or back to back with `--rate max`), one request
//! in flight each; M WebSocket clients subscribe to `market:{symbol}` and count what they
//! receive.
//!
//! The order flow is built so every order trades and the book stays one level deep: even
//! collectives sell, odd ones buy, all at `--price` for `--quantity`, and order `k` of the
//! run goes to collective `k mod N`, so sells and buys alternate. An order that finds the
//! other side resting fills on arrival (its response says `filled`); it then owes exactly
//! one `order_filled` event with `"liquidity":"taker"` on its collective's orders stream.
//! Its `client_order_id` is `b<send ns>x<k>`, so the event carries its own send time and
//! the order→event latency needs no lookup (as the echo scenario's ping ids do).
//!
//! Counting is by send time for orders and fills (warmup excluded on both sides alike) and
//! by receipt time for market deliveries. After the load stops, the streams are read until
//! every owed taker fill arrived or `--drain` ran out; the ones missing are `lost`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use memchr::memmem;
use tokio_util::sync::CancellationToken;

use crate::args::OrdersArgs;
use crate::clock::{self, Schedule, Window};
use crate::conn::{run_tag, Target};
use crate::http::HttpConn;
use crate::progress::{si, Progress, RateMeter};
use crate::report::{bump, Latency, OrdersResults, Report, Results};
use crate::stats::{LatencySink, Recorder};
use crate::trader::{self, Trader};
use crate::ws::{BufferSize, Kind, WsConn};

/// Setup handshakes in progress at once.
const SETUP_CONCURRENCY: usize = 64;

/// Shared counters for the progress line and the drain.
#[derive(Debug, Default)]
struct Live {
    ready: Arc<AtomicU64>,
    accepted: AtomicU64,
    /// Taker fills received (measured ones).
    fills: AtomicU64,
}

/// Runs the scenario.
pub(crate) async fn run(args: OrdersArgs) -> anyhow::Result<Report> {
    let c = &args.common;
    check_args(&args)?;
    let traders = match &args.collectives_file {
        Some(path) => Trader::load_file(path)?,
        None => Trader::generate(args.collectives, &run_tag()),
    };
    if traders.len() < 2 || !traders.len().is_multiple_of(2) {
        bail!("an even number of collectives (at least 2) is needed: half sell, half buy");
    }
    let sockets = (traders.len() + args.market_subscribers + args.connections) as u64;
    let (connector, base) = super::prepare("orders", c, sockets, &args).await?;
    let target = Target::resolve(c.single_url()?).await?;
    if args.collectives_file.is_none() {
        trader::register(
            &target,
            args.admin_key.as_deref(),
            &traders,
            args.starting_cash,
            &args.symbol,
            &args.starting_quantity,
        )
        .await?;
    }
    let tag = run_tag();
    let live = Arc::new(Live::default());
    let progress = {
        let live = live.clone();
        let meter = RateMeter::default();
        Progress::start("orders", c.warmup.get() + c.duration.get(), move || {
            let n = live.accepted.load(Ordering::Relaxed);
            format!(
                "ready {} accepted {} fills {}",
                live.ready.load(Ordering::Relaxed),
                meter.total_and_rate(n),
                si(live.fills.load(Ordering::Relaxed) as f64)
            )
        })
    };

    // Every collective's orders stream, then the market subscribers.
    let mut failures = BTreeMap::new();
    let streams = open_streams(&connector, &traders, &live, &mut failures).await;
    if streams.len() != traders.len() {
        progress.finish().await;
        bail!(
            "{} of {} orders streams opened ({failures:?})",
            streams.len(),
            traders.len()
        );
    }
    let (subscribers, sub_failures) =
        open_subscribers(&connector, &args, &tag, live.ready.clone()).await;
    for (k, v) in sub_failures {
        *failures.entry(k).or_insert(0) += v;
    }

    let window = Window::starting_now(c.warmup.get(), c.duration.get());
    progress.phase(if c.warmup.get().is_zero() {
        "measure"
    } else {
        "warmup"
    });
    let stop_readers = CancellationToken::new();
    let fill_sink = LatencySink::new(8)?;
    let request_sink = LatencySink::new(8)?;
    let order_streams = streams.len() as u64;
    // Orders-stream readers time taker fills; market readers only count deliveries.
    let spawn_readers = |conns: Vec<WsConn>, kind: Stream| -> Vec<_> {
        conns
            .into_iter()
            .enumerate()
            .map(|(i, conn)| {
                let reader = Reader {
                    window,
                    stop: stop_readers.clone(),
                    rec: fill_sink.recorder(i),
                    live: live.clone(),
                };
                tokio::spawn(reader.run(conn, kind))
            })
            .collect()
    };
    let stream_tasks = spawn_readers(streams, Stream::Orders);
    let market_connected = subscribers.len() as u64;
    let market_tasks = spawn_readers(subscribers, Stream::Market);
    let traders = Arc::new(traders);
    let order = Arc::new(OrderText::new(&args));
    let workers: Vec<_> = (0..args.connections)
        .map(|i| {
            let worker = Worker {
                index: i,
                workers: args.connections,
                window,
                batch: u64::from(args.batch),
                schedule: args.rate.per_sec().map(|r| {
                    Schedule::new(
                        window.start,
                        r / args.connections as f64 / f64::from(args.batch),
                        i,
                        args.connections,
                    )
                }),
                traders: traders.clone(),
                order: order.clone(),
                target: target.clone(),
                rec: request_sink.recorder(i),
                live: live.clone(),
            };
            tokio::spawn(worker.run())
        })
        .collect();

    let (cpu_from, cpu_to) = super::measure_window(&window, &progress, c).await;
    progress.phase("drain");
    let drain = c.drain.get();
    let sent = super::join_all(workers, drain + Duration::from_secs(5)).await;
    let expected: u64 = sent.iter().map(|w| w.taker_expected).sum();
    // Read until every owed fill arrived, or the drain runs out.
    let deadline = tokio::time::Instant::now() + drain;
    while live.fills.load(Ordering::Relaxed) < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_readers.cancel();
    let streams = super::join_all(stream_tasks, Duration::from_secs(5)).await;
    let markets = super::join_all(market_tasks, Duration::from_secs(5)).await;
    progress.finish().await;

    let secs = window.measured_secs();
    let mut res = OrdersResults {
        collectives: traders.len() as u64,
        order_streams,
        http_connections: args.connections as u64,
        orders_per_request: u64::from(args.batch),
        market_subscribers: args.market_subscribers as u64,
        market_connected,
        connect_failures: failures,
        taker_fills_expected: expected,
        ..OrdersResults::default()
    };
    for w in sent {
        res.sent += w.sent;
        res.accepted += w.accepted;
        for (k, v) in w.rejected {
            *res.rejected.entry(k).or_insert(0) += v;
        }
        for (k, v) in w.failed {
            *res.failed.entry(k).or_insert(0) += v;
        }
        res.dropped += u64::from(w.dropped);
    }
    for s in streams {
        res.taker_fills_received += s.fills;
        res.order_events += s.events;
        res.dropped += u64::from(s.dropped);
    }
    for m in markets {
        res.market_deliveries += m.events;
        res.dropped += u64::from(m.dropped);
    }
    res.lost = expected.saturating_sub(res.taker_fills_received);
    res.accepted_per_sec = res.accepted as f64 / secs;
    res.market_deliveries_per_sec = res.market_deliveries as f64 / secs;
    res.request_latency_us = Latency::from_ns(&request_sink.merged()?);
    res.order_to_fill_latency_us = Latency::from_ns(&fill_sink.merged()?);
    Ok(base.finish(secs, (cpu_from, cpu_to), Results::Orders(res)))
}

/// Values spliced into JSON by hand must need no escaping.
fn check_args(args: &OrdersArgs) -> anyhow::Result<()> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    super::check_room(&format!("market:{}", args.symbol))?;
    for (flag, v) in [
        ("--price", &args.price),
        ("--quantity", &args.quantity),
        ("--starting-quantity", &args.starting_quantity),
    ] {
        if v.is_empty() || v.len() > 40 || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            bail!("{flag} {v:?}: a decimal number such as 100.25");
        }
    }
    Ok(())
}

async fn open_streams(
    connector: &Arc<crate::conn::Connector>,
    traders: &[Trader],
    live: &Arc<Live>,
    failures: &mut BTreeMap<String, u64>,
) -> Vec<WsConn> {
    let permits = Arc::new(tokio::sync::Semaphore::new(SETUP_CONCURRENCY));
    let tasks: Vec<_> = traders
        .iter()
        .map(|t| {
            let (connector, t, permits, ready) = (
                connector.clone(),
                t.clone(),
                permits.clone(),
                live.ready.clone(),
            );
            tokio::spawn(async move {
                let _permit = permits.acquire().await;
                let r = trader::open_orders_stream(&connector, &t, connector.timeout).await;
                if r.is_ok() {
                    ready.fetch_add(1, Ordering::Relaxed);
                }
                r
            })
        })
        .collect();
    let mut out = Vec::new();
    for r in super::join_all(tasks, connector.timeout * 2 + Duration::from_secs(30)).await {
        match r {
            Ok(conn) => out.push(conn),
            Err(e) => bump(failures, format!("orders stream: {}", e.reason())),
        }
    }
    out
}

async fn open_subscribers(
    connector: &Arc<crate::conn::Connector>,
    args: &OrdersArgs,
    tag: &str,
    ready: Arc<AtomicU64>,
) -> (Vec<WsConn>, BTreeMap<String, u64>) {
    let (conns, mut failures) = super::connect_all(
        connector,
        args.market_subscribers,
        SETUP_CONCURRENCY,
        &format!("bench-{tag}-m"),
        BufferSize::STREAM,
        ready,
    )
    .await;
    let room = format!("market:{}", args.symbol);
    let limit = connector.timeout;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let room = room.clone();
            tokio::spawn(async move {
                crate::client::subscribe(&mut conn, &room, limit)
                    .await
                    .map(|()| conn)
            })
        })
        .collect();
    let mut out = Vec::new();
    for r in super::join_all(tasks, limit + Duration::from_secs(5)).await {
        match r {
            Ok(conn) => out.push(conn),
            Err(e) => bump(&mut failures, format!("market: {}", e.reason())),
        }
    }
    (out, failures)
}

/// The parts of every order body.
struct OrderText {
    symbol: String,
    quantity: String,
    price: String,
}

impl OrderText {
    fn new(args: &OrdersArgs) -> OrderText {
        OrderText {
            symbol: args.symbol.clone(),
            quantity: args.quantity.clone(),
            price: args.price.clone(),
        }
    }

    /// Order `k` (sent at clock `t`) of collective index `ci`, into `out`.
    fn write(&self, out: &mut Vec<u8>, ci: usize, k: u64, t: u64) {
        use std::io::Write as _;
        out.clear();
        let side = if ci.is_multiple_of(2) { "sell" } else { "buy" };
        let _ = write!(
            out,
            r#"{{"symbol":"{}","side":"{side}","type":"limit","quantity":"{}","price":"{}","client_order_id":"b{t}x{k}"}}"#,
            self.symbol, self.quantity, self.price
        );
    }
}

#[derive(Debug, Default)]
struct WorkerResult {
    sent: u64,
    accepted: u64,
    taker_expected: u64,
    rejected: BTreeMap<String, u64>,
    failed: BTreeMap<String, u64>,
    dropped: bool,
}

/// One keep-alive HTTP connection sending orders.
struct Worker {
    index: usize,
    workers: usize,
    /// Orders per request (1: the single-order route).
    batch: u64,
    window: Window,
    schedule: Option<Schedule>,
    traders: Arc<Vec<Trader>>,
    order: Arc<OrderText>,
    target: Target,
    rec: Recorder,
    live: Arc<Live>,
}

const PATH: &str = "/api/v1/orders";
const BATCH_PATH: &str = "/api/v1/orders/batch";

impl Worker {
    async fn run(mut self) -> WorkerResult {
        let mut res = WorkerResult::default();
        let w = self.window;
        let batched = self.batch > 1;
        let path = format!(
            "{}{}",
            self.target.prefix,
            if batched { BATCH_PATH } else { PATH }
        );
        let mut conn = match HttpConn::connect(self.target.addr, &self.target.host).await {
            Ok(c) => c,
            Err(e) => {
                bump(&mut res.failed, e.reason());
                res.dropped = true;
                return res;
            }
        };
        let (mut body, mut scratch) = (Vec::with_capacity(256), Vec::with_capacity(512));
        let mut one = Vec::with_capacity(256);
        let mut n = 0u64;
        loop {
            let now = clock::now_ns();
            if now >= w.end {
                break;
            }
            if let Some(s) = self.schedule {
                let due = s.due(n);
                if due > now {
                    super::sleep_until_ns(due.min(w.end)).await;
                    continue;
                }
            }
            let k = n * self.workers as u64 + self.index as u64;
            n += 1;
            let ci = (k % self.traders.len() as u64) as usize;
            let trader = &self.traders[ci];
            let t = clock::now_ns();
            if batched {
                body.clear();
                body.push(b'[');
                for j in 0..self.batch {
                    if j > 0 {
                        body.push(b',');
                    }
                    self.order.write(&mut one, ci, k * self.batch + j, t);
                    body.extend_from_slice(&one);
                }
                body.push(b']');
            } else {
                self.order.write(&mut body, ci, k, t);
            }
            let (ts, sig) = trader.sign_request("POST", &path, &body, &mut scratch);
            let headers = [
                ("X-Collective-Id", trader.id.as_str()),
                ("X-Timestamp", ts.as_str()),
                ("X-Signature", sig.as_str()),
            ];
            let reply = conn.request("POST", &path, &headers, &body).await;
            let done = clock::now_ns();
            let measured = w.measured(t);
            if measured {
                res.sent += self.batch;
            }
            match reply {
                Ok(r) if r.status == 201 || (batched && r.status == 200) => {
                    let (accepted, filled) = if batched {
                        (
                            memmem::find_iter(&r.body, br#""status":201"#).count() as u64,
                            memmem::find_iter(&r.body, br#""status":"filled""#).count() as u64,
                        )
                    } else {
                        (
                            1,
                            u64::from(memmem::find(&r.body, br#""status":"filled""#).is_some()),
                        )
                    };
                    self.live.accepted.fetch_add(accepted, Ordering::Relaxed);
                    if measured {
                        res.accepted += accepted;
                        res.taker_expected += filled;
                        self.rec.record(done.saturating_sub(t));
                        if accepted < self.batch {
                            *res.rejected.entry("batch item refused".into()).or_insert(0) +=
                                self.batch - accepted;
                        }
                    }
                }
                Ok(r) => {
                    if measured {
                        let v: serde_json::Value =
                            serde_json::from_slice(&r.body).unwrap_or_default();
                        let why = v["error"]["reason"]
                            .as_str()
                            .or_else(|| v["error"]["code"].as_str())
                            .unwrap_or("")
                            .to_owned();
                        if r.status == 422 {
                            *res.rejected.entry(why).or_insert(0) += self.batch;
                        } else {
                            *res.failed
                                .entry(format!("http {} {why}", r.status))
                                .or_insert(0) += self.batch;
                        }
                    }
                }
                Err(e) => {
                    bump(&mut res.failed, e.reason());
                    // The connection is unusable after a failed exchange: open a new one.
                    match HttpConn::connect(self.target.addr, &self.target.host).await {
                        Ok(c) => conn = c,
                        Err(_) => {
                            res.dropped = true;
                            break;
                        }
                    }
                }
            }
        }
        self.rec.flush();
        res
    }
}

/// Which stream a [`Reader`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    /// A collective's `/ws/{id}/orders`: taker fills are matched and timed.
    Orders,
    /// A `market:{symbol}` subscriber: every event counts.
    Market,
}

#[derive(Debug, Default)]
struct ReaderResult {
    fills: u64,
    events: u64,
    dropped: bool,
}

/// Reads one stream until told to stop.
struct Reader {
    window: Window,
    stop: CancellationToken,
    rec: Recorder,
    live: Arc<Live>,
}

const HEARTBEAT: &[u8] = br#"{"type":"ping""#;
const FILLED: &[u8] = br#""type":"order_filled""#;
const TAKER: &[u8] = br#""liquidity":"taker""#;
const CLIENT_ID: &[u8] = br#""client_order_id":"b"#;

impl Reader {
    async fn run(mut self, mut conn: WsConn, kind: Stream) -> ReaderResult {
        let mut res = ReaderResult::default();
        loop {
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => break,
                r = conn.fill() => match r {
                    Ok(0) | Err(_) => {
                        res.dropped = true;
                        break;
                    }
                    Ok(_) => {}
                },
            }
            let now = clock::now_ns();
            let mut heartbeat = false;
            loop {
                let f = match conn.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(_) => {
                        res.dropped = true;
                        self.rec.flush();
                        return res;
                    }
                };
                match f.kind {
                    Kind::Text => {
                        let text = conn.payload(&f);
                        if text.starts_with(HEARTBEAT) {
                            heartbeat = true;
                            continue;
                        }
                        if self.window.measured(now) {
                            res.events += 1;
                        }
                        if kind == Stream::Orders {
                            if let Some(t) = taker_fill_time(text) {
                                if self.window.measured(t) {
                                    res.fills += 1;
                                    self.live.fills.fetch_add(1, Ordering::Relaxed);
                                    self.rec.record(now.saturating_sub(t));
                                }
                            }
                        }
                    }
                    Kind::Ping => conn.answer_ping(&f),
                    Kind::Close => {
                        res.dropped = true;
                        self.rec.flush();
                        return res;
                    }
                    Kind::Binary | Kind::Pong => {}
                }
            }
            if heartbeat {
                conn.queue_text(crate::parse::PONG);
            }
            if conn.queued() > 0 && conn.flush().await.is_err() {
                res.dropped = true;
                break;
            }
            self.rec.flush();
        }
        self.rec.flush();
        res
    }
}

/// The send time in a taker `order_filled` event's `client_order_id` (`b<ns>x<k>`).
fn taker_fill_time(text: &[u8]) -> Option<u64> {
    memmem::find(text, FILLED)?;
    memmem::find(text, TAKER)?;
    let at = memmem::find(text, CLIENT_ID)? + CLIENT_ID.len();
    let digits = text[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&text[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taker_fills_carry_their_send_time() {
        let ev = br#"{"type":"order_filled","room":"orders:a","sequence":3,"data":{"order_id":9,"client_order_id":"b12345x7","status":"filled","fill":{"trade_id":1,"price":"100","quantity":"0.0001","liquidity":"taker"}}}"#;
        assert_eq!(taker_fill_time(ev), Some(12345));
        let maker = br#"{"type":"order_filled","data":{"client_order_id":"b12345x7","fill":{"liquidity":"maker"}}}"#;
        assert_eq!(taker_fill_time(maker), None);
        let created = br#"{"type":"order_created","data":{"client_order_id":"b1x1"}}"#;
        assert_eq!(taker_fill_time(created), None);
    }

    #[test]
    fn sides_alternate_with_the_collective() {
        let order = OrderText {
            symbol: "BTC-USD".into(),
            quantity: "0.0001".into(),
            price: "100.00".into(),
        };
        let mut out = Vec::new();
        order.write(&mut out, 0, 4, 99);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["side"], "sell");
        assert_eq!(v["client_order_id"], "b99x4");
        order.write(&mut out, 1, 5, 99);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["side"], "buy");
    }
}
