//! `/metrics` follows Prometheus conventions and the shipped Grafana dashboard reads only
//! series the server exports: a real server is driven through connections, messages, a
//! server-side close and the arena, then its exposition is checked by `promtool check
//! metrics` (Debian's `prometheus` package; `scripts/test` installs it when missing) and
//! every `roomcast_*` name in `deploy/grafana/roomcast.json` is looked up in it.

mod util;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;
use util::*;

/// The exposition after traffic that records every series: two members exchanging a
/// message (deliveries, fan-out and history histograms), a server-side close (closes by
/// code) and a few demo orders (arena counters).
async fn exposition() -> String {
    let server = TestServer::start(&["--admin-key", "admin-key-123", "--demo"]).await;
    let _members = two_members_exchange(&server, "m").await;
    binary_closes_1003(&server, "bin").await;
    // The demo bots trade: follow the market until a trade, then until it is counted.
    let mut market = server.connect("ticker").await;
    let _ = util::arena::attach_busy(&mut market, "market:BTC-USD").await;
    loop {
        let event = recv_event(&mut market).await;
        if event["type"] != "trade" {
            continue;
        }
        let (status, text) = server.http_request("GET", "/metrics", None, None).await;
        assert_eq!(status, 200);
        let traded = text
            .lines()
            .find_map(|l| l.strip_prefix("roomcast_arena_trades_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|v| v > 0);
        if traded {
            return text;
        }
    }
}

/// Names of the series in an exposition (`name{labels} value` or `name value`).
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn metrics_pass_promtool_and_the_dashboard_reads_only_exported_series() {
    let text = exposition().await;

    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = promtool.unwrap_or_else(|e| {
        panic!("promtool not found ({e}): apt-get install -y prometheus (scripts/test does)")
    });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );

    let exported = series(&text);
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/roomcast.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read dashboard"))
            .expect("dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut used = BTreeSet::new();
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel without a query: {panel}");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("roomcast_"))
                .collect();
            assert!(!names.is_empty(), "{expr}: names no roomcast series");
            for name in names {
                assert!(
                    exported.contains(name),
                    "{expr}: {name} is not exported; exported: {exported:?}"
                );
                used.insert(name.trim_end_matches("_bucket").trim_end_matches("_count"));
            }
        }
    }
    // And the other way: every family the server exports has a panel.
    let families: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .filter(|n| n.starts_with("roomcast_"))
        .collect();
    let missing: Vec<&&str> = families.iter().filter(|f| !used.contains(**f)).collect();
    assert!(missing.is_empty(), "families without a panel: {missing:?}");
}
