//! The hostile client of the soak (10,000 nested arrays are valid JSON but not an object:
//! `INVALID_MESSAGE`; the flood passes the soak server's burst of 200 and 50 violations): over and over, a fresh connection sends one kind of bad
//! input or a flood, and the server's answer is compared with the documented one
//! (docs/PROTOCOL.md). A kill of the server mid-attack counts as `interrupted`, not as a
//! wrong answer; anything else unexpected fails the run.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use anyhow::Context;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::wire::{self, Frame, Ws};
use crate::Target;

/// One attack and the answer the protocol documents for it.
#[derive(Debug, Clone, Copy)]
struct Attack {
    name: &'static str,
    expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Error(&'static str),
    Close(u16),
}

const ATTACKS: [Attack; 9] = [
    Attack {
        name: "truncated_json",
        expect: Expect::Error("INVALID_JSON"),
    },
    Attack {
        name: "nested_10000",
        expect: Expect::Error("INVALID_MESSAGE"),
    },
    Attack {
        name: "unknown_type",
        expect: Expect::Error("UNKNOWN_TYPE"),
    },
    Attack {
        name: "wrong_field_type",
        expect: Expect::Error("INVALID_MESSAGE"),
    },
    Attack {
        name: "oversized_room",
        expect: Expect::Error("INVALID_ROOM"),
    },
    Attack {
        name: "not_subscribed",
        expect: Expect::Error("NOT_SUBSCRIBED"),
    },
    Attack {
        name: "binary_frame",
        expect: Expect::Close(1003),
    },
    Attack {
        name: "oversize_message",
        expect: Expect::Close(1009),
    },
    Attack {
        name: "publish_flood",
        expect: Expect::Close(4021),
    },
];

/// What the hostile client saw, per attack: expected, wrong (with the answers), interrupted.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Tally {
    pub(crate) expected: BTreeMap<String, u64>,
    pub(crate) wrong: BTreeMap<String, Vec<String>>,
    pub(crate) interrupted: u64,
}

impl Tally {
    /// Writes `hostile.json`.
    pub(crate) fn write(&self, dir: &std::path::Path) -> anyhow::Result<()> {
        std::fs::write(dir.join("hostile.json"), serde_json::to_vec_pretty(self)?)
            .context("writing hostile.json")
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u64 = self.expected.values().sum();
        write!(
            f,
            "hostile: {total} attacks answered as documented {:?}",
            self.expected
        )?;
        write!(f, ", {} interrupted by restarts", self.interrupted)?;
        for (name, got) in &self.wrong {
            write!(f, "\n  WRONG {name}: {got:?}")?;
        }
        Ok(())
    }
}

/// Attacks until `stop`, one attack every 250 ms.
pub(crate) async fn run(target: Target, stop: CancellationToken) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut n = 0usize;
    while !stop.is_cancelled() {
        let attack = ATTACKS[n % ATTACKS.len()];
        n += 1;
        let id = format!("hostile-{n}");
        let token = wire::token(&target.jwt_secret, &id, Duration::from_secs(3600))?;
        let outcome = match wire::connect(target.first_addr(), &id, &token, None).await {
            Ok(mut ws) => attack_once(&mut ws, attack).await,
            Err(_) => None,
        };
        match outcome {
            None => tally.interrupted += 1,
            Some(got) if got == attack.expect => {
                *tally.expected.entry(attack.name.to_owned()).or_default() += 1;
            }
            Some(got) => tally
                .wrong
                .entry(attack.name.to_owned())
                .or_default()
                .push(format!("{got:?}")),
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
    Ok(tally)
}

/// Sends one attack; the first error or close the server answers with (`None` when the
/// connection died without a close code: the server was killed).
async fn attack_once(ws: &mut Ws, attack: Attack) -> Option<Expect> {
    let text = |s: String| Message::text(s);
    let sent = match attack.name {
        "truncated_json" => ws.send(text(r#"{"type":"subscribe","room":"#.into())).await,
        "nested_10000" => {
            ws.send(text("[".repeat(10_000) + &"]".repeat(10_000)))
                .await
        }
        "unknown_type" => ws.send(text(r#"{"type":"teleport","id":1}"#.into())).await,
        "wrong_field_type" => {
            ws.send(text(r#"{"type":"subscribe","room":5,"id":1}"#.into()))
                .await
        }
        "oversized_room" => {
            let req = json!({"type":"subscribe","room":"r".repeat(201),"id":1});
            ws.send(text(req.to_string())).await
        }
        "not_subscribed" => {
            let req = json!({"type":"message","room":"elsewhere","content":{},"id":1});
            ws.send(text(req.to_string())).await
        }
        "binary_frame" => ws.send(Message::binary(vec![0u8, 159, 146, 150])).await,
        "oversize_message" => {
            let req = json!({"type":"message","room":"general","content":"x".repeat(70_000)});
            ws.send(text(req.to_string())).await
        }
        _ => {
            let mut r = Ok(());
            for _ in 0..1000 {
                r = ws.feed(text(r#"{"type":"ping"}"#.into())).await;
                if r.is_err() {
                    break;
                }
            }
            match r {
                Ok(()) => ws.flush().await,
                e => e,
            }
        }
    };
    if sent.is_err() {
        return None;
    }
    let answer = loop {
        match wire::next(ws, Duration::from_secs(10)).await? {
            Frame::Closed(Some(code)) => break Some(Expect::Close(code)),
            Frame::Closed(None) => break None,
            Frame::Json(v) => {
                if let Some(code) = error_code(&v) {
                    if attack.name == "publish_flood" && code == "RATE_LIMITED" {
                        continue;
                    }
                    break Some(Expect::Error(leak(code)));
                }
            }
        }
    };
    let _ = ws.close(None).await;
    answer
}

fn error_code(v: &Value) -> Option<&str> {
    (v["type"] == "error").then(|| v["code"].as_str()).flatten()
}

/// Error codes are a small closed set; keeping them `'static` keeps [`Expect`] `Copy`.
fn leak(code: &str) -> &'static str {
    const KNOWN: [&str; 10] = [
        "INVALID_JSON",
        "INVALID_MESSAGE",
        "UNKNOWN_TYPE",
        "NOT_SUBSCRIBED",
        "INVALID_ROOM",
        "TOO_MANY_SUBSCRIPTIONS",
        "UNAVAILABLE",
        "INVALID_TOKEN",
        "RATE_LIMITED",
        "FORBIDDEN",
    ];
    KNOWN
        .iter()
        .find(|k| **k == code)
        .copied()
        .unwrap_or("OTHER")
}
