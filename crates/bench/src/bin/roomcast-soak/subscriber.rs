//! Checked subscribers: each holds one connection at a time to the soak rooms, records
//! every event, `recovery_failed` and close in order, and after any disconnect (server
//! killed, closed as a slow consumer, token expired, its own churn) reconnects and resumes
//! every room with `since` from the last position it holds.
//!
//! Behaviours: `steady` (never leaves by itself), `churn` (disconnects every few seconds),
//! `slow` (small receive buffer, joins the loaded noise room, stops reading for 14 s
//! out of every 26 while still answering heartbeats), `expiring` (6 s tokens, never refreshes: closed with 4003, reconnects with a
//! new token), `refresher` (6 s tokens, refreshes on `token_expiring`: never closed 4003).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::record::{Seen, Writer};
use crate::wire::{self, Frame, Ws};
use crate::Target;

/// How a subscriber behaves besides reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    Steady,
    Churn,
    Slow,
    Expiring,
    Refresher,
}

impl Behaviour {
    /// The kinds `roomcast-soak run` starts in-process.
    pub(crate) const ALL: [Behaviour; 5] = [
        Behaviour::Steady,
        Behaviour::Churn,
        Behaviour::Slow,
        Behaviour::Expiring,
        Behaviour::Refresher,
    ];

    /// Its name (client id and record file).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Behaviour::Steady => "steady",
            Behaviour::Churn => "churn",
            Behaviour::Slow => "slow",
            Behaviour::Expiring => "expiring",
            Behaviour::Refresher => "refresher",
        }
    }

    fn token_ttl(self) -> Duration {
        match self {
            Behaviour::Expiring | Behaviour::Refresher => Duration::from_secs(6),
            _ => Duration::from_secs(24 * 3600),
        }
    }
}

/// One subscriber's settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The nodes; the subscriber connects to `addrs[start]` first and to the next one on
    /// every reconnect (on one node: always the same).
    addrs: Vec<String>,
    start: usize,
    secret: String,
    name: String,
    rooms: Vec<String>,
    noise_room: String,
    behaviour: Behaviour,
    file: std::path::PathBuf,
}

impl Config {
    /// A subscriber of every soak room of `target`, starting on node `start` (modulo the
    /// number of nodes).
    pub(crate) fn new(target: &Target, name: String, behaviour: Behaviour, start: usize) -> Config {
        Config {
            addrs: target.addr.clone(),
            start,
            secret: target.jwt_secret.clone(),
            rooms: (0..target.rooms).map(|r| format!("soak-{r}")).collect(),
            noise_room: target.noise_room.clone(),
            behaviour,
            file: target.dir.join(format!("sub-{name}.jsonl")),
            name,
        }
    }
}

/// Quiet time after the publisher stopped that proves a subscriber has everything.
const SETTLED: Duration = Duration::from_secs(3);
/// Longest catch-up after the publisher stopped.
const CATCH_UP: Duration = Duration::from_secs(60);

/// Per-room position the subscriber holds.
#[derive(Debug, Default)]
struct Position {
    at: Option<(String, u64)>,
}

/// Runs until `done` (the publisher stopped) and then until settled; writes the records.
pub(crate) async fn run(cfg: Config, done: CancellationToken) -> anyhow::Result<()> {
    let mut out = Writer::<Seen>::create(&cfg.file)?;
    let mut pos: HashMap<String, Position> = HashMap::new();
    let mut catch_up_deadline: Option<Instant> = None;
    let mut node = cfg.start;
    loop {
        if done.is_cancelled() {
            let deadline = *catch_up_deadline.get_or_insert_with(|| Instant::now() + CATCH_UP);
            if Instant::now() >= deadline {
                break;
            }
        }
        let token = wire::token(&cfg.secret, &cfg.name, cfg.behaviour.token_ttl())?;
        let rcvbuf = (cfg.behaviour == Behaviour::Slow).then_some(4096);
        let addr = &cfg.addrs[node % cfg.addrs.len().max(1)];
        // Every reconnect goes to the next node: after its node died, a cluster subscriber
        // resumes on another one.
        node += 1;
        let mut ws = match wire::connect(addr, &cfg.name, &token, rcvbuf).await {
            Ok(ws) => ws,
            Err(_) => {
                // The server is restarting: retry soon.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let settled = session(&cfg, &mut ws, &mut pos, &mut out, &done).await?;
        out.flush()?;
        if settled {
            break;
        }
    }
    out.flush()?;
    Ok(())
}

/// One connection: subscribe/resume every room, then read. Returns true when the
/// publisher is done and nothing arrived for [`SETTLED`].
async fn session(
    cfg: &Config,
    ws: &mut Ws,
    pos: &mut HashMap<String, Position>,
    out: &mut Writer<Seen>,
    done: &CancellationToken,
) -> anyhow::Result<bool> {
    for room in &cfg.rooms {
        let mut req = json!({"type": "subscribe", "room": room, "id": format!("s:{room}")});
        if let Some((epoch, seq)) = pos.get(room).and_then(|p| p.at.clone()) {
            req["since"] = json!({"sequence": seq, "epoch": epoch});
        }
        if wire::send(ws, &req).await.is_err() {
            return Ok(false);
        }
    }
    if matches!(cfg.behaviour, Behaviour::Slow) {
        let req = json!({"type": "subscribe", "room": cfg.noise_room});
        if wire::send(ws, &req).await.is_err() {
            return Ok(false);
        }
    }
    let started = Instant::now();
    let churn_after = Duration::from_millis(4000 + rand::random::<u64>() % 4000);
    let mut last_event = Instant::now();
    let mut next_pause = Instant::now() + Duration::from_secs(12);
    loop {
        if cfg.behaviour == Behaviour::Churn
            && started.elapsed() >= churn_after
            && !done.is_cancelled()
        {
            let _ = ws.close(None).await;
            out.push(&Seen::Closed { code: Some(1000) })?;
            // Stay away long enough to miss events: the resume must replay them.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            return Ok(false);
        }
        if cfg.behaviour == Behaviour::Slow && Instant::now() >= next_pause && !done.is_cancelled()
        {
            // Stop reading for 14 s while the server's queue for us fills with the noise
            // room's load. A pong every 2 s keeps the heartbeat satisfied, so what closes us
            // is the full queue (1008 slow consumer), not silence (1001).
            for _ in 0..7 {
                let _ = wire::send(ws, &json!({"type": "pong"})).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            next_pause = Instant::now() + Duration::from_secs(12);
        }
        let frame = tokio::select! {
            f = wire::next(ws, Duration::from_millis(500)) => f,
        };
        let v = match frame {
            None => {
                if done.is_cancelled() && last_event.elapsed() >= SETTLED {
                    let _ = ws.close(None).await;
                    return Ok(true);
                }
                continue;
            }
            Some(Frame::Closed(code)) => {
                out.push(&Seen::Closed { code })?;
                return Ok(false);
            }
            Some(Frame::Json(v)) => v,
        };
        if handle(cfg, ws, &v, pos, out).await? {
            last_event = Instant::now();
        }
        if done.is_cancelled() && last_event.elapsed() >= SETTLED {
            let _ = ws.close(None).await;
            return Ok(true);
        }
    }
}

/// Records one message; true when it was a soak-room event or recovery notice.
async fn handle(
    cfg: &Config,
    ws: &mut Ws,
    v: &Value,
    pos: &mut HashMap<String, Position>,
    out: &mut Writer<Seen>,
) -> anyhow::Result<bool> {
    let ty = v["type"].as_str().unwrap_or_default();
    let room = v["room"].as_str().unwrap_or_default().to_owned();
    let epoch = v["epoch"].as_str().unwrap_or_default().to_owned();
    let seq = v["sequence"].as_u64();
    match ty {
        "ping" => {
            let _ = wire::send(ws, &json!({"type": "pong"})).await;
            Ok(false)
        }
        "token_expiring" if cfg.behaviour == Behaviour::Refresher => {
            let token = wire::token(&cfg.secret, &cfg.name, cfg.behaviour.token_ttl())?;
            let _ = wire::send(
                ws,
                &json!({"type": "refresh", "token": token, "id": "refresh"}),
            )
            .await;
            Ok(false)
        }
        "ack" if cfg.rooms.contains(&room) => {
            let p = pos.entry(room.clone()).or_default();
            if p.at.is_none() {
                let seq = seq.context("a subscribe ack without a sequence")?;
                out.push(&Seen::Join {
                    room,
                    epoch: epoch.clone(),
                    seq,
                })?;
                p.at = Some((epoch, seq));
            }
            Ok(true)
        }
        "soak" if cfg.rooms.contains(&room) => {
            let seq = seq.context("an event without a sequence")?;
            let pid = v["data"]["pid"].as_str().unwrap_or_default().to_owned();
            let replayed = v["replayed"].as_bool().unwrap_or(false);
            out.push(&Seen::Event {
                room: room.clone(),
                epoch: epoch.clone(),
                seq,
                pid,
                replayed,
            })?;
            pos.entry(room).or_default().at = Some((epoch, seq));
            Ok(true)
        }
        "recovery_failed" if cfg.rooms.contains(&room) => {
            let seq = seq.context("recovery_failed without a sequence")?;
            let reason = v["reason"].as_str().unwrap_or_default().to_owned();
            out.push(&Seen::RecoveryFailed {
                room: room.clone(),
                epoch: epoch.clone(),
                seq,
                reason,
            })?;
            pos.entry(room).or_default().at = Some((epoch, seq));
            Ok(true)
        }
        "replay_complete" if cfg.rooms.contains(&room) => {
            let count = v["replayed_count"].as_u64().unwrap_or(0);
            out.push(&Seen::ReplayComplete { room, count })?;
            Ok(true)
        }
        _ => Ok(false),
    }
}
