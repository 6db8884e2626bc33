//! The load that makes a reader that stops reading a slow consumer within seconds: 1 MB/s
//! (50 messages of 20 kB per second) into a room that keeps no history and that only the
//! `slow` subscriber joins. The bench's own rooms carry ~100 kB/s each, which the kernel's
//! socket buffers (up to 4 MB per socket on loopback) absorb for half a minute.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::wire;
use crate::Target;

/// Publishes until `stop`, reconnecting after a server restart.
pub(crate) async fn run(target: Target, stop: CancellationToken) -> anyhow::Result<()> {
    let pad = "n".repeat(20_000);
    while !stop.is_cancelled() {
        let token = wire::token(&target.jwt_secret, "noise", Duration::from_secs(24 * 3600))?;
        let Ok(mut ws) = wire::connect(target.first_addr(), "noise", &token, None).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let join = json!({"type": "subscribe", "room": target.noise_room});
        if wire::send(&mut ws, &join).await.is_err() {
            continue;
        }
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tick.tick() => {
                    let msg = json!({"type": "message", "room": target.noise_room, "content": pad});
                    if wire::send(&mut ws, &msg).await.is_err() {
                        break;
                    }
                }
                incoming = ws.next() => match incoming {
                    Some(Ok(m)) if m.is_text() && m.to_text().is_ok_and(|t| t.contains("\"ping\"")) => {
                        let _ = wire::send(&mut ws, &json!({"type": "pong"})).await;
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                },
            }
        }
    }
    Ok(())
}
