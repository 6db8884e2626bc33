//! A real `redis-server` for the cluster tests, and a cluster of real `roomcast serve`
//! nodes sharing it.
//!
//! The server runs on a free loopback port (found by binding `127.0.0.1:0` and releasing
//! it; `--port 0` would disable TCP), with persistence off and its working directory in a
//! fresh temporary directory. It is killed when the handle drops.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::{TestServer, WAIT};

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn redis_server_binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("redis-server"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "redis-server is not installed: the cluster tests need a real Redis 7 \
             (Debian: apt-get install -y redis-server; scripts/test installs it)"
        )
    })
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// Starts a fresh server and waits until it answers `PING`.
    pub async fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let child = Command::new(redis_server_binary())
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(mut conn) = self.connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A connection of the test's own.
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    /// Kills the server with SIGKILL (everything it held is lost: persistence is off).
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill -9 redis-server");
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.kill9().await;
        self.spawn().await;
    }

    /// Channels with subscribers under the roomcast prefix, except the control channel.
    pub async fn room_channels(&self) -> Vec<String> {
        let mut conn = self.connection().await.expect("redis connection");
        let channels: Vec<String> = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .arg("roomcast:*")
            .query_async(&mut conn)
            .await
            .expect("PUBSUB CHANNELS");
        channels
            .into_iter()
            .filter(|c| c != "roomcast:control")
            .collect()
    }

    /// `PUBSUB NUMSUB channel`: its subscriber count.
    pub async fn numsub(&self, channel: &str) -> i64 {
        let mut conn = self.connection().await.expect("redis connection");
        let reply: (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut conn)
            .await
            .expect("PUBSUB NUMSUB");
        reply.1
    }
}

/// `n` roomcast nodes sharing `redis` (`--broker`, no arena, `--dev`).
pub async fn start_nodes(redis: &RedisServer, n: usize, extra: &[&str]) -> Vec<TestServer> {
    let mut all = vec!["--dev"];
    all.extend_from_slice(extra);
    start_secure_nodes(redis, n, &all).await
}

/// `n` roomcast nodes sharing `redis` WITHOUT `--dev`: `extra` configures authentication.
pub async fn start_secure_nodes(redis: &RedisServer, n: usize, extra: &[&str]) -> Vec<TestServer> {
    let url = redis.url();
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        let mut args = vec!["--broker", url.as_str(), "--no-arena"];
        args.extend_from_slice(extra);
        nodes.push(TestServer::start_secure(&args).await);
    }
    for node in &nodes {
        wait_ready(node, 200).await;
    }
    nodes
}

/// Polls `/readyz` until it answers `status` (or panics after [`WAIT`]); returns its body.
pub async fn wait_ready(node: &TestServer, status: u16) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (got, body) = node.http_request("GET", "/readyz", None, None).await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {got} {body:?}, wanted {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
