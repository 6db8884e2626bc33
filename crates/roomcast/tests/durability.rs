//! Delivery integrity against the real binary (issue 11, points 1 and 2): a crash never makes
//! one `(epoch, sequence)` name two events, and a failing disk is visible, refuses publishes
//! before fan-out and recovers by itself.

mod util;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand::Rng;
use roomcast_client::{Connection, Incoming};
use serde_json::{json, Value};
use util::*;

/// Every `(epoch, sequence)` any client was ever given, with the event it named.
#[derive(Default)]
struct Ledger {
    events: HashMap<(String, u64), String>,
    /// Per epoch, the acknowledged sequences and their content, in order.
    acked: HashMap<String, BTreeMap<u64, String>>,
}

impl Ledger {
    /// Records that a client was told `(epoch, sequence)` is `content`; panics if that pair
    /// was already given for another event.
    fn given(&mut self, epoch: &str, sequence: u64, content: &str, what: &str) {
        let key = (epoch.to_owned(), sequence);
        if let Some(before) = self.events.get(&key) {
            assert_eq!(
                before, content,
                "({epoch}, {sequence}) named two events ({what})"
            );
        }
        self.events.insert(key, content.to_owned());
    }

    fn acked(&mut self, epoch: &str, sequence: u64, content: &str) {
        self.given(epoch, sequence, content, "ack");
        self.acked
            .entry(epoch.to_owned())
            .or_default()
            .insert(sequence, content.to_owned());
    }
}

/// Sends `message`s to `room` in bursts and records each ack until the connection dies.
/// Returns the epoch of the acks, if any arrived.
async fn publish_until_killed(
    c: &mut Connection,
    room: &str,
    cycle: u32,
    ledger: &mut Ledger,
) -> Option<String> {
    const BURST: u64 = 16;
    let mut sent = 0u64;
    let mut acked = 0u64;
    let mut acked_epoch = None;
    let mut contents = HashMap::new();
    'outer: loop {
        for _ in 0..BURST {
            let content = json!({"cycle":cycle,"n":sent});
            let msg = json!({"type":"message","room":room,"content":content,"id":sent});
            if c.send_json(&msg).await.is_err() {
                break 'outer;
            }
            contents.insert(sent, content.to_string());
            sent += 1;
        }
        while acked < sent {
            let v = match c.recv_timeout(WAIT).await {
                Ok(Incoming::Json(v)) => v,
                _ => break 'outer,
            };
            assert_ne!(v["type"], "error", "cycle {cycle}: {v}");
            if v["type"] != "ack" {
                continue;
            }
            let (Some(id), Some(seq), Some(epoch)) = (
                v["id"].as_u64(),
                v["sequence"].as_u64(),
                v["epoch"].as_str(),
            ) else {
                panic!("an ack with id, sequence and epoch: {v}");
            };
            ledger.acked(epoch, seq, &contents[&id]);
            acked_epoch = Some(epoch.to_owned());
            acked += 1;
        }
    }
    acked_epoch
}

/// Subscribes with `since` and returns the replayed events and the end marker.
async fn resume(c: &mut Connection, room: &str, epoch: &str, after: u64) -> (Vec<Value>, Value) {
    let since = json!({"sequence":after,"epoch":epoch});
    c.send_json(&json!({"type":"subscribe","room":room,"since":since,"id":"resume"}))
        .await
        .expect("send");
    let mut events = Vec::new();
    loop {
        let v = recv_event(c).await;
        match v["type"].as_str() {
            Some("replay_complete" | "recovery_failed") => return (events, v),
            Some("ack" | "welcome" | "user_left") => continue,
            _ => events.push(v),
        }
    }
}

/// Checks a resume from a random acknowledged position of the last epoch that acked
/// anything: either exactly the acknowledged events after it, or `epoch_changed`.
/// Returns whether it replayed.
async fn check_resume(server: &TestServer, cycle: u32, epoch: &str, ledger: &mut Ledger) -> bool {
    let acked = ledger.acked[epoch].clone();
    let (first, last) = (
        *acked.keys().next().expect("some acks"),
        *acked.keys().next_back().expect("some acks"),
    );
    let after = rand::rng().random_range(first - 1..=last);
    let mut c = server.connect(&format!("resume-{cycle}")).await;
    let (events, end) = resume(&mut c, "r", epoch, after).await;
    if end["type"] == "recovery_failed" {
        assert_eq!(end["reason"], "epoch_changed", "cycle {cycle}: {end}");
        assert_ne!(end["epoch"], epoch, "cycle {cycle}: {end}");
        assert!(events.is_empty(), "cycle {cycle}");
        return false;
    }
    assert_eq!(end["type"], "replay_complete", "cycle {cycle}: {end}");
    let mut replayed = BTreeMap::new();
    for e in &events {
        let (Some(seq), Some(e_epoch)) = (e["sequence"].as_u64(), e["epoch"].as_str()) else {
            panic!("an event with sequence and epoch: {e}");
        };
        let content = e["content"].to_string();
        ledger.given(e_epoch, seq, &content, "replay");
        replayed.insert(seq, (e_epoch.to_owned(), content));
    }
    let expected: Vec<_> = (after + 1..).take(events.len()).collect();
    let got: Vec<_> = replayed.keys().copied().collect();
    assert_eq!(got, expected, "cycle {cycle}: replay in order, no gap");
    for (seq, content) in acked.range(after + 1..) {
        let Some((_, replayed)) = replayed.get(seq) else {
            panic!("cycle {cycle}: acked ({epoch}, {seq}) missing from a replay_complete replay");
        };
        assert_eq!(replayed, content, "cycle {cycle}: ({epoch}, {seq})");
    }
    true
}

/// Issue 11, point 1: SIGKILL at random moments while a client publishes with acks, 52
/// times, rotating the fsync policy; every 7th stop is a clean SIGTERM (so each policy gets
/// some), after which resuming must replay rather than fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_epoch_sequence_names_two_events_across_kill_9() {
    const CYCLES: u32 = 60;
    let data = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut ledger = Ledger::default();
    let mut last_epoch: Option<String> = None;
    let (mut kills, mut failed_resumes, mut replays) = (0, 0, 0);
    for cycle in 0..CYCLES {
        let fsync = ["always", "batch", "never"][cycle as usize % 3];
        let server = TestServer::start_in(
            data.clone(),
            &[
                "--fsync",
                fsync,
                "--history-max-events",
                "100000",
                "--rate-limit",
                "0",
            ],
        )
        .await;
        let clean_before = cycle > 0 && (cycle - 1) % 7 == 6;
        if let Some(epoch) = &last_epoch {
            let replayed = check_resume(&server, cycle, epoch, &mut ledger).await;
            if clean_before {
                assert!(replayed, "cycle {cycle}: a clean restart keeps the epoch");
            }
            if replayed {
                replays += 1;
            } else {
                failed_resumes += 1;
            }
        }
        let mut c = server.connect(&format!("pub-{cycle}")).await;
        subscribe(&mut c, "r").await;
        let clean = cycle % 7 == 6;
        let TestServer { mut child, .. } = server;
        let stop_after = Duration::from_millis(rand::rng().random_range(5..40));
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(stop_after).await;
            if clean {
                let pid = child.id().expect("running").to_string();
                let status = std::process::Command::new("kill")
                    .args(["-TERM", &pid])
                    .status()
                    .expect("run kill");
                assert!(status.success());
            } else {
                child.start_kill().expect("SIGKILL");
            }
            child.wait().await.expect("wait")
        });
        let acked = publish_until_killed(&mut c, "r", cycle, &mut ledger).await;
        if acked.is_some() {
            last_epoch = acked;
        }
        let status = stopper.await.expect("stopper");
        if clean {
            assert!(status.success(), "cycle {cycle}: clean exit {status}");
        } else {
            kills += 1;
        }
    }
    println!(
        "{kills} kills, {} acks, {replays} replays, {failed_resumes} epoch_changed",
        ledger.events.len()
    );
    assert!(kills >= 50);
    assert!(replays > 0, "the clean restarts must have replayed");
}

/// Size of the tmpfs the full-disk test puts the data dir on, and of the filler file that
/// takes part of it until the test frees it.
const TMPFS: &str = "size=4m";
const FILLER_KIB: u32 = 1024;

/// Starts the server with its data dir on a private, size-limited tmpfs holding a filler
/// file (`unshare -m`: the mount is visible only to the server). `None` (with the reason
/// printed) where this machine does not allow it.
async fn start_on_small_tmpfs(dir: &std::path::Path) -> Option<TestServer> {
    let probe = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o {TMPFS} tmpfs '{}'",
            dir.display()
        ))
        .stderr(std::process::Stdio::piped())
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            println!(
                "SKIPPED: cannot mount a tmpfs in a private mount namespace (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Err(e) => {
            println!("SKIPPED: `unshare` is not available: {e}");
            return None;
        }
    }
    let script = format!(
        "mount -t tmpfs -o {TMPFS} tmpfs \"$1\" && head -c {} /dev/zero > \"$1/filler\" && shift && exec \"$@\"",
        FILLER_KIB * 1024
    );
    let mut cmd = tokio::process::Command::new("unshare");
    cmd.args(["-m", "sh", "-c", &script, "sh"])
        .arg(dir)
        .arg(env!("CARGO_BIN_EXE_roomcast"))
        .args(["serve", "--bind", "127.0.0.1:0", "--dev", "--data-dir"])
        .arg(dir)
        .env_remove("ROOMCAST_DEV")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    if std::env::var_os("ROOMCAST_TEST_LOG").is_none() {
        cmd.stderr(std::process::Stdio::null());
    }
    let mut child = cmd.spawn().expect("spawn unshare");
    let addr = announced(&mut child).await;
    let data = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    Some(TestServer { child, addr, data })
}

async fn publish_padded(server: &TestServer, room: &str, n: u64, pad: &str) -> (u16, Value) {
    post_json(
        server,
        "/api/publish",
        None,
        &json!({"room":room,"type":"fill","data":{"n":n,"pad":pad}}),
    )
    .await
}

/// Sequences of the `fill` events `c` has received so far.
async fn received(c: &mut Connection) -> Vec<u64> {
    barrier(c)
        .await
        .iter()
        .filter(|v| v["type"] == "fill")
        .map(|v| v["sequence"].as_u64().expect("sequence"))
        .collect()
}

/// Issue 11, point 2: a full disk is visible at once (`/readyz` 503 with the reason, a
/// metric), publishes are refused before fan-out (single and batch), and the store
/// recovers by itself once space is freed.
#[tokio::test]
async fn full_disk_refuses_publishes_before_fan_out_and_recovers_by_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(server) = start_on_small_tmpfs(dir.path()).await else {
        return;
    };
    let pid = server.child.id().expect("running");
    let mut sub = server.connect("watcher").await;
    subscribe(&mut sub, "fill").await;
    let pad = "x".repeat(20 * 1024);

    // Fill the disk.
    let mut ok = Vec::new();
    let mut refused = None;
    for n in 0..400 {
        let (status, body) = publish_padded(&server, "fill", n, &pad).await;
        match status {
            200 => ok.push(body["sequence"].as_u64().expect("sequence")),
            503 => {
                refused = Some(body);
                break;
            }
            other => panic!("publish {n}: {other} {body}"),
        }
    }
    let refused = refused.expect("a 4 MiB tmpfs fills up within 400 publishes of 20 KiB");
    assert_eq!(refused["error"]["code"], "UNAVAILABLE", "{refused}");
    assert!(!ok.is_empty(), "some publishes fit");

    // Visible at once.
    let (status, body) = server.http_request("GET", "/readyz", None, None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("unavailable") && body.contains(&dir.path().display().to_string()),
        "{body}"
    );
    let (_, metrics) = server.http_request("GET", "/metrics", None, None).await;
    assert!(
        metrics.contains("roomcast_history_store_failed 1"),
        "{metrics}"
    );

    // Refused before fan-out: nothing more reaches the subscriber, single or batch.
    let before = received(&mut sub).await;
    for n in 1000..1005 {
        let (status, body) = publish_padded(&server, "fill", n, "small").await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "UNAVAILABLE", "{body}");
    }
    let batch = json!([
        {"room":"fill","type":"fill","data":{"n":2000}},
        {"room":"fill","type":"fill","data":{"n":2001}}
    ]);
    let (status, body) = post_json(&server, "/api/publish/batch", None, &batch).await;
    assert_eq!(status, 503, "{body}");
    let mut ws = server.connect("ws-publisher").await;
    subscribe(&mut ws, "fill").await;
    let reply = request(
        &mut ws,
        json!({"type":"message","room":"fill","content":{"n":4000}}),
        json!("refused"),
    )
    .await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "UNAVAILABLE", "{reply}");
    let after = received(&mut sub).await;
    assert!(
        after.is_empty(),
        "refused publishes were fanned out: {after:?}"
    );
    // Every acknowledged publish was delivered, in order.
    let delivered_last = *before.last().expect("deliveries");
    assert!(ok.iter().all(|s| before.contains(s)), "{ok:?} {before:?}");

    // While the disk stays full the writer keeps trying to reopen the store, and fails.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, metrics) = server.http_request("GET", "/metrics", None, None).await;
        let errors = metrics
            .lines()
            .find_map(|l| l.strip_prefix("roomcast_history_write_errors_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if errors >= 2.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no retry: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = server.http_request("GET", "/readyz", None, None).await;
    assert_eq!(status, 503, "still failed while the disk is full: {body}");
    println!("{} publishes fit, then: {body}", ok.len());

    // Free the space (the mount is private: reach it through the server's root) and the
    // store recovers without a restart.
    let filler = format!("/proc/{pid}/root{}/filler", dir.path().display());
    std::fs::remove_file(&filler).expect("remove the filler file");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = server.http_request("GET", "/readyz", None, None).await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still not ready after freeing space: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = publish_padded(&server, "fill", 3000, "small").await;
    assert_eq!(status, 200, "{body}");
    // Numbering goes on after the last event anyone saw: nothing refused took a sequence.
    assert_eq!(body["sequence"], delivered_last + 1, "{body}");
    assert_eq!(received(&mut sub).await, [delivered_last + 1]);
    let (_, metrics) = server.http_request("GET", "/metrics", None, None).await;
    assert!(
        metrics.contains("roomcast_history_store_failed 0"),
        "{metrics}"
    );
    // Everything delivered is in the history, the owed tail included.
    let (status, body) = server
        .http_request("GET", "/api/history/fill?since=0&limit=1000", None, None)
        .await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).expect("json");
    let stored: Vec<u64> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["sequence"].as_u64().expect("sequence"))
        .collect();
    assert_eq!(stored, (1..=delivered_last + 1).collect::<Vec<_>>());
}
