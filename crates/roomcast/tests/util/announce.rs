//! How a test learns a spawned server's ephemeral port: the server's first stdout line,
//! `listening on ws://ADDR`. One reader for every harness that spawns the binary: this
//! crate's `util` and the client crate's test `util`, which includes this file by path (the
//! two crates share no test-support crate). The including module provides `WAIT`.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use super::WAIT;

/// Waits for a spawned server's `listening on ws://ADDR` line (its stdout must be piped)
/// and returns the address; stdout is drained from then on, so the server never blocks on
/// a full pipe.
pub async fn announced(child: &mut Child) -> SocketAddr {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("server announced itself in time")
        .expect("read stdout")
        .expect("a first line");
    let addr = line
        .strip_prefix("listening on ws://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("an address");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    addr
}
