//! Metrics, readiness and the admin API (issue 5), over HTTP against the real binary.

mod util;

use serde_json::{json, Value};
use util::*;

const ADMIN: &str = "admin-key-123";

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_and_readiness() {
    let server = TestServer::start(&["--admin-key", ADMIN]).await;
    let (status, body) = server.http_request("GET", "/readyz", None, None).await;
    assert_eq!((status, body.as_str()), (200, "ready"));
    let _members = two_members_exchange(&server, "m").await;
    let (status, text) = server.http_request("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(&text, "roomcast_open_connections"),
        Some(2.0),
        "{text}"
    );
    assert!(metric(&text, "roomcast_connections_total").is_some_and(|v| v >= 2.0));
    assert!(metric(&text, "roomcast_received_messages_total").is_some_and(|v| v >= 3.0));
    assert!(metric(&text, "roomcast_deliveries_total").is_some_and(|v| v >= 1.0));
    assert!(metric(&text, "roomcast_rooms").is_some_and(|v| v >= 2.0));
    assert!(
        text.contains("roomcast_publish_fanout_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("roomcast_history_append_seconds_count"),
        "{text}"
    );
    assert!(metric(&text, "roomcast_sent_messages_total").is_some_and(|v| v >= 1.0));
    // The arena runs by default and reports its counters.
    assert_eq!(
        metric(&text, "roomcast_arena_orders_accepted_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "roomcast_arena_accounts"),
        Some(0.0),
        "{text}"
    );
    // A close shows up by code.
    binary_closes_1003(&server, "bin").await;
    let (_, text) = server.http_request("GET", "/metrics", None, None).await;
    assert!(
        text.contains("roomcast_connections_closed_total{code=\"1003\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn admin_api_requires_the_key() {
    let server = TestServer::start(&["--admin-key", ADMIN]).await;
    for path in [
        "/api/admin/stats",
        "/api/admin/connections",
        "/api/admin/rooms",
        "/api/admin/collectives",
    ] {
        let (status, _) = server.http_request("GET", path, None, None).await;
        assert_eq!(status, 401, "{path} without key");
        let (status, _) = server
            .http_request("GET", path, Some("wrong-key-000"), None)
            .await;
        assert_eq!(status, 401, "{path} with a wrong key");
        let (status, _) = server.http_request("GET", path, Some(ADMIN), None).await;
        assert_eq!(status, 200, "{path} with the key");
    }
    let (status, _) = server
        .http_request("POST", "/api/admin/broadcast", None, Some("{}"))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn admin_stats_connections_rooms_disconnect_broadcast() {
    let server = TestServer::start(&["--admin-key", ADMIN]).await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    subscribe(&mut alice, "lobby").await;
    let get = |path: &'static str| {
        let server = &server;
        async move {
            let (status, text) = server.http_request("GET", path, Some(ADMIN), None).await;
            assert_eq!(status, 200, "{path}: {text}");
            serde_json::from_str::<Value>(&text).expect("json")
        }
    };
    let stats = get("/api/admin/stats").await;
    assert_eq!(stats["connections"], 2);
    assert!(stats["rooms"].as_u64().is_some_and(|n| n >= 2));
    let conns = get("/api/admin/connections?room=lobby&limit=10").await;
    assert_eq!(conns["total"], 1);
    let c = &conns["connections"][0];
    assert_eq!(c["client_id"], "alice");
    assert!(c["remote_addr"]
        .as_str()
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
    assert!(c["connected_at"].is_string());
    assert_eq!(c["rooms"], json!(["general", "lobby"]));
    assert!(c["queue_depth"].is_u64() && c["messages_in"].as_u64().is_some_and(|n| n >= 1));
    assert!(c["messages_out"].as_u64().is_some_and(|n| n >= 2));
    let rooms = get("/api/admin/rooms").await;
    let general = rooms["rooms"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["room"] == "general"))
        .cloned();
    assert_eq!(general.map(|g| g["members"].clone()), Some(json!(2)));

    // Broadcast to everyone, then to a room.
    let (status, body) = post_json(
        &server,
        "/api/admin/broadcast",
        Some(ADMIN),
        &json!({"type":"notice","data":{"m":"hello"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["delivered"], 2);
    for c in [&mut alice, &mut bob] {
        let m = recv_event(c).await;
        assert_eq!(m["type"], "notice");
        assert_eq!(m["data"], json!({"m":"hello"}));
    }
    let (status, body) = post_json(
        &server,
        "/api/admin/broadcast",
        Some(ADMIN),
        &json!({"room":"lobby","type":"notice","data":1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["delivered"], 1);
    let m = recv_event(&mut alice).await;
    assert_eq!(
        (m["room"].as_str(), m["sequence"].as_u64()),
        (Some("lobby"), Some(1))
    );

    // Disconnect with a chosen code.
    let (status, body) = post_json(
        &server,
        "/api/admin/connections/bob/disconnect",
        Some(ADMIN),
        &json!({"code":4012,"reason":"bye"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(recv_close(&mut bob).await, (Some(4012), "bye".to_string()));
    let (status, _) = post_json(
        &server,
        "/api/admin/connections/nobody/disconnect",
        Some(ADMIN),
        &json!({}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = post_json(
        &server,
        "/api/admin/connections/alice/disconnect",
        Some(ADMIN),
        &json!({"code":1234}),
    )
    .await;
    assert_eq!(status, 400);
}

/// Secrets can come from files, so none has to appear on a command line (`ps`).
#[tokio::test]
async fn secrets_are_read_from_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write secret");
        path.display().to_string()
    };
    let secret = "file-secret-0123456789abcdef";
    let jwt = write("jwt", &format!("{secret}\n"));
    let admin = write("admin", "admin-from-file\n");
    let api = write("api", "# publishers\npublisher-one\n\npublisher-two\n");
    let server = TestServer::start_secure(&[
        "--jwt-secret-file",
        &jwt,
        "--admin-key-file",
        &admin,
        "--api-key-file",
        &api,
    ])
    .await;
    let (status, _) = server
        .http_request("GET", "/api/admin/stats", Some("admin-from-file"), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .http_request("GET", "/api/admin/stats", Some("admin-key-123"), None)
        .await;
    assert_eq!(status, 401);
    for key in ["publisher-one", "publisher-two"] {
        let (status, body) = post_json(
            &server,
            "/api/publish",
            Some(key),
            &json!({"room":"news","type":"note","data":1}),
        )
        .await;
        assert_eq!(status, 200, "{key}: {body}");
    }
    let (status, _) = post_json(
        &server,
        "/api/publish",
        Some("# publishers"),
        &json!({"room":"news","type":"note","data":1}),
    )
    .await;
    assert_eq!(status, 401, "a comment line is not a key");
    // A token signed with the file's secret opens a connection.
    let request =
        roomcast_engine::auth::MintRequest::new("alice", std::time::Duration::from_secs(60));
    let token =
        roomcast_engine::auth::mint_hs256(secret, &request, time::OffsetDateTime::now_utc())
            .expect("mint");
    let mut alice =
        roomcast_client::Connection::connect(&server.url(&format!("/ws/alice?token={token}")))
            .await
            .expect("connect");
    assert_eq!(recv_json(&mut alice).await["type"], "welcome");

    // Both the value and its file is a configuration error naming the setting.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args([
            "check-config",
            "--dev",
            "--admin-key",
            "admin-key-123",
            "--admin-key-file",
            &admin,
        ])
        .output()
        .expect("run check-config");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("auth.admin_key"), "{stderr}");
}

/// `--static DIR` serves DIR's files at `/`, never a file outside it, and never shadows the
/// server's own routes.
#[tokio::test]
async fn static_files_are_served_beside_the_routes() {
    let site = tempfile::tempdir().expect("temp dir");
    std::fs::write(site.path().join("index.html"), "<h1>hello</h1>").expect("write");
    std::fs::create_dir(site.path().join("healthz")).expect("mkdir");
    let dir = site.path().display().to_string();
    let server = TestServer::start(&["--static", &dir]).await;
    let (status, body) = server.http_request("GET", "/", None, None).await;
    assert_eq!((status, body.as_str()), (200, "<h1>hello</h1>"));
    let (status, body) = server.http_request("GET", "/index.html", None, None).await;
    assert_eq!((status, body.as_str()), (200, "<h1>hello</h1>"));
    // The server's routes come first.
    let (status, body) = server.http_request("GET", "/healthz", None, None).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    // Nothing outside the directory, however the path is spelled.
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
        "/missing.js",
    ] {
        let (status, _) = server.http_request("GET", path, None, None).await;
        assert_eq!(status, 404, "{path}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["check-config", "--dev", "--static", "/no/such/dir"])
        .output()
        .expect("run check-config");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.static_dir"));
}
