//! Shared helpers for the integration tests: start the real `roomcast` binary on an
//! ephemeral loopback port and talk to it with the real Rust client over TCP.

#![allow(dead_code, unreachable_pub)]

mod announce;
pub mod arena;
pub mod cluster;
pub mod hostile;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

pub use announce::announced;
use roomcast_client::{Connection, Incoming};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// Default wait for anything that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running server process.
pub struct TestServer {
    pub child: Child,
    pub addr: SocketAddr,
    /// The durable store's directory (deleted with the last handle).
    pub data: std::sync::Arc<tempfile::TempDir>,
}

impl TestServer {
    /// Starts `roomcast serve --bind 127.0.0.1:0 --dev --data-dir <fresh dir> <args>` and
    /// waits for its `listening on` line.
    pub async fn start(args: &[&str]) -> TestServer {
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start_in(dir, args).await
    }

    /// Starts a server whose durable store lives in `data` (for restart tests).
    pub async fn start_in(data: std::sync::Arc<tempfile::TempDir>, args: &[&str]) -> TestServer {
        let mut all = vec!["--dev"];
        all.extend_from_slice(args);
        Self::launch(data, &all).await
    }

    /// Starts a server WITHOUT `--dev` (authentication required): `args` must configure
    /// a JWT secret or key.
    pub async fn start_secure(args: &[&str]) -> TestServer {
        let data = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::launch(data, args).await
    }

    /// [`TestServer::start_secure`] on an existing data directory (for restart tests).
    pub async fn start_secure_in(
        data: std::sync::Arc<tempfile::TempDir>,
        args: &[&str],
    ) -> TestServer {
        Self::launch(data, args).await
    }

    async fn launch(data: std::sync::Arc<tempfile::TempDir>, args: &[&str]) -> TestServer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roomcast"));
        cmd.arg("serve").arg("--bind").arg("127.0.0.1:0");
        cmd.arg("--data-dir").arg(data.path()).args(args);
        cmd.env_remove("ROOMCAST_DEV");
        cmd.stdout(Stdio::piped()).kill_on_drop(true);
        if std::env::var_os("ROOMCAST_TEST_LOG").is_none() {
            cmd.stderr(Stdio::null());
        }
        let mut child = cmd.spawn().expect("spawn roomcast");
        let addr = announced(&mut child).await;
        TestServer { child, addr, data }
    }

    /// Kills the process with SIGKILL and waits for it.
    pub async fn kill9(mut self) -> std::sync::Arc<tempfile::TempDir> {
        self.child.kill().await.expect("kill -9");
        self.data.clone()
    }

    /// The server's resident memory in KiB (Linux /proc).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// One HTTP/1.1 request; returns (status, body).
    pub async fn http_request(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        http_request(self.addr, method, path, bearer, body).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Connects as `client_id` and consumes the welcome.
    pub async fn connect(&self, client_id: &str) -> Connection {
        let mut c = self.connect_raw(client_id).await;
        let welcome = recv_json(&mut c).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        c
    }

    /// Connects without consuming anything.
    pub async fn connect_raw(&self, client_id: &str) -> Connection {
        Connection::connect(&self.url(&format!("/ws/{client_id}")))
            .await
            .expect("connect")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }
}

/// The next JSON message; panics on close or timeout.
pub async fn recv_json(c: &mut Connection) -> Value {
    match c.recv_timeout(WAIT).await.expect("a message in time") {
        Incoming::Json(v) => v,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// The next message that is not a server heartbeat.
pub async fn recv_event(c: &mut Connection) -> Value {
    loop {
        let v = recv_json(c).await;
        if v["type"] != "ping" {
            return v;
        }
    }
}

/// Waits for the connection to be closed and returns (code, reason).
pub async fn recv_close(c: &mut Connection) -> (Option<u16>, String) {
    loop {
        match c.recv_timeout(WAIT).await.expect("close in time") {
            Incoming::Closed { code, reason } => return (code, reason),
            Incoming::Json(_) => continue,
        }
    }
}

/// Sends a request with an id and returns the reply carrying that id.
pub async fn request(c: &mut Connection, mut req: Value, id: Value) -> Value {
    req["id"] = id.clone();
    c.send_json(&req).await.expect("send");
    loop {
        let v = recv_json(c).await;
        if v.get("id") == Some(&id) {
            return v;
        }
    }
}

/// Subscribes and waits for the ack.
pub async fn subscribe(c: &mut Connection, room: &str) -> Value {
    let ack = request(
        c,
        json!({"type":"subscribe","room":room}),
        json!(format!("sub-{room}")),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ack
}

/// Sends `content` to `room` as a client message with request id `id`; it must be acked.
pub async fn send_message(c: &mut Connection, room: &str, content: Value, id: &str) -> Value {
    let ack = request(
        c,
        json!({"type":"message","room":room,"content":content}),
        json!(id),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ack
}

/// Connects as `client_id` and sends a binary frame, which the server does not take: the
/// connection must be closed with 1003.
pub async fn binary_closes_1003(server: &TestServer, client_id: &str) {
    use futures_util::SinkExt;
    let mut c = server.connect(client_id).await;
    c.stream_mut()
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![0u8]))
        .await
        .expect("send");
    assert_eq!(recv_close(&mut c).await.0, Some(1003));
}

/// A round trip that proves every frame the server queued for `c` before this point has
/// been read: returns the messages that arrived before the pong.
pub async fn barrier(c: &mut Connection) -> Vec<Value> {
    let id = json!("barrier");
    c.send_json(&json!({"type":"ping","id":id}))
        .await
        .expect("send");
    let mut before = Vec::new();
    loop {
        let v = recv_json(c).await;
        if v["type"] == "pong" && v["id"] == id {
            return before;
        }
        if v["type"] != "ping" {
            before.push(v);
        }
    }
}

/// A minimal HTTP/1.1 client for the tests (one request per connection).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let auth = bearer.map(|key| format!("Bearer {key}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|v| ("Authorization", v.as_str())).collect();
    http_with_headers(addr, method, path, &headers, body).await
}

/// One HTTP/1.1 request with extra headers (one request per connection); returns
/// (status, body).
pub async fn http_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    try_http_with_headers(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// [`http_with_headers`] that reports a failed connection or a cut response instead of
/// panicking (for requests racing a killed server).
pub async fn try_http_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("tcp connect: {e}"))?;
    let body = body.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write request: {e}"))?;
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .map_err(|_| "no response in time".to_owned())?
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8(raw).map_err(|_| "a non-UTF-8 response".to_owned())?;
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        // A response cut short (a killed server) ends the body where it was cut.
        let (Some(chunk), Some(next)) = (rest.get(..n), rest.get(n + 2..)) else {
            out.push_str(rest);
            break;
        };
        out.push_str(chunk);
        s = next;
    }
    out
}

/// POSTs JSON and parses the JSON reply.
pub async fn post_json(
    server: &TestServer,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let (status, text) = server
        .http_request("POST", path, key, Some(&body.to_string()))
        .await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Publishes `tick` events `from..from + count` (with a `pad` string) to `room` in one
/// `/api/publish/batch` request and returns the reply; asserts it succeeded.
pub async fn publish_ticks(
    server: &TestServer,
    key: &str,
    room: &str,
    from: u64,
    count: u64,
    pad: &str,
) -> Value {
    let items: Vec<Value> = (from..from + count)
        .map(|n| json!({"room":room,"type":"tick","data":{"n":n,"pad":pad}}))
        .collect();
    let (status, body) = post_json(
        server,
        "/api/publish/batch",
        Some(key),
        &Value::Array(items),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Two members `a` and `b` of `room`, after `a` sent one message that `b` received: the
/// least traffic that records connections, deliveries and the publish path's metrics.
pub async fn two_members_exchange(server: &TestServer, room: &str) -> (Connection, Connection) {
    let mut a = server.connect("a").await;
    let mut b = server.connect("b").await;
    subscribe(&mut a, room).await;
    subscribe(&mut b, room).await;
    request(
        &mut a,
        serde_json::json!({"type":"message","room":room,"content":"x"}),
        serde_json::json!(1),
    )
    .await;
    assert_eq!(recv_event(&mut b).await["type"], "message");
    (a, b)
}
