//! The checked publisher: `POST /api/publish` to every soak room at a steady rate, each
//! event carrying a unique payload id. Only a `200` counts as acknowledged (under the
//! default `--fsync batch` that means on disk, so it must survive `kill -9`); an attempt
//! the server did not answer (killed meanwhile) may or may not have happened and is not
//! recorded: if a subscriber receives it, that is neither a loss nor a duplicate.

use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::record::{Ack, Writer};
use crate::Target;

/// Publishes until `stop`; returns after writing `acks.jsonl`.
pub(crate) async fn run(target: &Target, rate: u32, stop: CancellationToken) -> anyhow::Result<()> {
    let mut acks = Writer::<Ack>::create(&target.dir.join("acks.jsonl"))?;
    let period = Duration::from_secs(1) / rate.max(1);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut n, mut acked, mut failed) = (0u64, 0u64, 0u64);
    while !stop.is_cancelled() {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        for r in 0..target.rooms {
            n += 1;
            let room = format!("soak-{r}");
            let pid = format!("p{n}");
            let body = json!({"room": room, "type": "soak", "data": {"pid": pid}});
            // Rotating over the nodes (a cluster): each publish goes to the next one.
            let addr = &target.addr[(n as usize) % target.addr.len().max(1)];
            match post(addr, &target.api_key, "/api/publish", &body).await {
                Ok((200, reply)) => {
                    let (Some(epoch), Some(seq)) =
                        (reply["epoch"].as_str(), reply["sequence"].as_u64())
                    else {
                        anyhow::bail!("a 200 publish reply without a position: {reply}");
                    };
                    acks.push(&Ack {
                        room,
                        epoch: epoch.to_owned(),
                        seq,
                        pid,
                    })?;
                    acked += 1;
                }
                // 503 while the disk is failing, or no answer while the server restarts.
                Ok(_) | Err(_) => failed += 1,
            }
        }
        if n % 64 == 0 {
            acks.flush()?;
        }
    }
    acks.flush()?;
    println!("publisher: {acked} acknowledged, {failed} unanswered or refused");
    Ok(())
}

/// Reads every event of `room` from `GET /api/history` into `history-<room>.jsonl`, as
/// (epoch, sequence, payload id) records, from the first node that answers.
pub(crate) async fn dump_history(target: &Target, room: &str) -> anyhow::Result<usize> {
    let mut out = Writer::<Ack>::create(&target.dir.join(format!("history-{room}.jsonl")))?;
    let (mut since, mut total) = (0u64, 0usize);
    loop {
        let path = format!("/api/history/{room}?since={since}&limit=1000");
        let mut answer = None;
        for addr in &target.addr {
            match request(addr, &target.api_key, "GET", &path, None).await {
                Ok((200, page)) => {
                    answer = Some(page);
                    break;
                }
                Ok((status, page)) => eprintln!("GET {path} on {addr}: {status} {page}"),
                Err(e) => eprintln!("GET {path} on {addr}: {e:#}"),
            }
        }
        let page = answer.with_context(|| format!("GET {path}: no node answered 200"))?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            break;
        }
        for e in &events {
            let seq = e["sequence"]
                .as_u64()
                .context("a history event without a sequence")?;
            out.push(&Ack {
                room: room.to_owned(),
                epoch: e["epoch"].as_str().unwrap_or_default().to_owned(),
                seq,
                pid: e["data"]["pid"].as_str().unwrap_or_default().to_owned(),
            })?;
            since = since.max(seq);
            total += 1;
        }
    }
    out.flush()?;
    Ok(total)
}

/// One `POST` on its own connection (`Connection: close`); (status, JSON body).
pub(crate) async fn post(
    addr: &str,
    key: &str,
    path: &str,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    request(addr, key, "POST", path, Some(body)).await
}

/// One request on its own connection (`Connection: close`); (status, JSON body).
async fn request(
    addr: &str,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {key}\r\n\
Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .context("publish timed out")??;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").context("no header end")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok((status, serde_json::from_str(rest).unwrap_or(Value::Null)))
}
