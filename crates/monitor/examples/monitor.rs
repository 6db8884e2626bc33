//! The monitor on its own, before (or without) the `roomcast` binary:
//! `cargo run -p roomcast-monitor --example monitor -- --url http://127.0.0.1:8080 --admin-key KEY`.

use clap::Parser;

/// `roomcast monitor`'s options as a standalone command.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: roomcast_monitor::MonitorArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    roomcast_monitor::run(Cli::parse().args).await
}
