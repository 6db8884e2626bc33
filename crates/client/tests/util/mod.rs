//! Test helpers: start the real `roomcast` binary on an ephemeral loopback port.
//!
//! The binary is `target/debug/roomcast` next to this test executable (so any
//! `CARGO_TARGET_DIR` works), or `$ROOMCAST_BIN`. Build it first:
//! `cargo build -p roomcast`.

#![allow(dead_code, unreachable_pub)]

#[path = "../../../roomcast/tests/util/announce.rs"]
mod announce;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use roomcast_client::{ClientEvent, ClientOptions, RoomcastClient, State};
use tokio::process::{Child, Command};

/// Default wait for anything that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(10);

/// Fast reconnects for tests.
pub fn fast() -> ClientOptions {
    ClientOptions {
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_millis(400),
        ..ClientOptions::default()
    }
}

/// The server binary.
pub fn roomcast_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("ROOMCAST_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> → target/debug/roomcast
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|debug| debug.join("roomcast"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p roomcast` first",
        bin.display()
    );
    bin
}

/// A running server process.
pub struct TestServer {
    pub child: Child,
    pub addr: SocketAddr,
    pub data: Arc<tempfile::TempDir>,
    args: Vec<String>,
}

impl TestServer {
    /// `roomcast serve --bind 127.0.0.1:0 --dev --data-dir <fresh> --shutdown-grace 1 <args>`.
    pub async fn start(args: &[&str]) -> TestServer {
        let data = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut all = vec!["--dev".to_owned()];
        all.extend(args.iter().map(|s| s.to_string()));
        Self::launch(data, "127.0.0.1:0".parse().expect("addr"), all).await
    }

    /// A server WITHOUT `--dev`: `args` must configure authentication.
    pub async fn start_secure(args: &[&str]) -> TestServer {
        let data = Arc::new(tempfile::tempdir().expect("temp dir"));
        let args = args.iter().map(|s| s.to_string()).collect();
        Self::launch(data, "127.0.0.1:0".parse().expect("addr"), args).await
    }

    async fn launch(data: Arc<tempfile::TempDir>, bind: SocketAddr, args: Vec<String>) -> Self {
        let mut cmd = Command::new(roomcast_bin());
        cmd.arg("serve").arg("--bind").arg(bind.to_string());
        cmd.arg("--data-dir").arg(data.path());
        cmd.args(["--shutdown-grace", "1"]).args(&args);
        cmd.env_remove("ROOMCAST_DEV");
        cmd.stdout(Stdio::piped()).kill_on_drop(true);
        if std::env::var_os("ROOMCAST_TEST_LOG").is_none() {
            cmd.stderr(Stdio::null());
        }
        let mut child = cmd.spawn().expect("spawn roomcast");
        let addr = announce::announced(&mut child).await;
        TestServer {
            child,
            addr,
            data,
            args,
        }
    }

    /// `ws://ADDR`.
    pub fn ws(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// `http://ADDR`.
    pub fn http(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM, and waits for the process to exit.
    pub async fn terminate(mut self) -> (Arc<tempfile::TempDir>, SocketAddr, Vec<String>) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("exit after SIGTERM")
            .expect("wait");
        (self.data.clone(), self.addr, self.args.clone())
    }

    /// SIGKILL, and waits for the process to exit.
    pub async fn kill9(mut self) -> (Arc<tempfile::TempDir>, SocketAddr, Vec<String>) {
        self.child.kill().await.expect("kill -9");
        (self.data.clone(), self.addr, self.args.clone())
    }

    /// Starts the server again on the same address and data directory.
    pub async fn restart(parts: (Arc<tempfile::TempDir>, SocketAddr, Vec<String>)) -> Self {
        let (data, addr, args) = parts;
        Self::launch(data, addr, args).await
    }
}

/// A client of `server` with fast reconnects.
pub async fn client(server: &TestServer, id: &str) -> RoomcastClient {
    RoomcastClient::builder(server.ws())
        .client_id(id)
        .options(fast())
        .connect()
        .await
        .expect("connect")
}

/// Waits until `client` reaches `state`.
pub async fn until_state(client: &RoomcastClient, state: State) {
    let mut watch = client.state_watch();
    tokio::time::timeout(WAIT, async {
        while *watch.borrow_and_update() != state {
            watch.changed().await.expect("client alive");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("state {state:?} in time, now {:?}", client.state()));
}

/// Waits for the next `welcome` (a reconnect) on a client's event receiver.
pub async fn until_welcome(events: &mut tokio::sync::broadcast::Receiver<ClientEvent>) {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(ClientEvent::Welcome(_)) => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("client events ended: {e}"),
            }
        }
    })
    .await
    .expect("a welcome in time");
}
