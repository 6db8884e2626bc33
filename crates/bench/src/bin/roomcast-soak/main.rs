//! `roomcast-soak`: the typed, fast half of the fault-injection soak (`scripts/soak` is the
//! orchestration half: it starts, kills, freezes and restarts processes).
//!
//! Every role writes what it saw to JSONL files in one directory, and `verify` compares
//! them after the run: the publisher's acknowledged list against what every subscriber
//! received, so a loss or a duplicate is found however the faults interleaved.
//!
//! - [`record`]: the record lines and the files they live in.
//! - [`wire`]: connecting (HS256 token per connection, small receive buffers) and
//!   frame helpers.
//! - [`publisher`]: HTTP publishes with payload ids; only acknowledged ones are recorded.
//! - [`subscriber`]: subscribers that reconnect and resume with `since`, in several
//!   behaviours (steady, churning, slow reader, short-lived tokens).
//! - [`hostile`]: a client that keeps sending bad input and floods, and tallies the
//!   server's answers.
//! - [`noise`]: the heavy room that turns a reader that stops reading into a slow consumer.
//! - [`verify`]: zero silent loss, zero duplicates, no `(epoch, sequence)` naming two
//!   payloads.

mod hostile;
mod noise;
mod publisher;
mod record;
mod subscriber;
mod verify;
mod wire;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "roomcast-soak",
    about = "Soak checker: publish, subscribe, attack, verify"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by the roles that talk to the server.
#[derive(Debug, Clone, clap::Args)]
struct Target {
    /// Server address `HOST:PORT` (plain ws/http, loopback); several, comma-separated, for
    /// a cluster: publishes rotate over them, and a subscriber reconnects to the next one.
    #[arg(long, value_delimiter = ',', required = true)]
    addr: Vec<String>,
    /// HS256 secret for the per-connection JWTs.
    #[arg(long)]
    jwt_secret: String,
    /// Key of the publish API.
    #[arg(long)]
    api_key: String,
    /// Directory of the record files.
    #[arg(long)]
    dir: PathBuf,
    /// Rooms checked (`soak-0` … `soak-<N-1>`).
    #[arg(long, default_value_t = 2)]
    rooms: usize,
    /// Seconds to run before the final synchronisation.
    #[arg(long)]
    seconds: u64,
    /// The heavy room the slow subscriber also joins, so its queue fills (keep it without
    /// history).
    #[arg(long, default_value = "noise-0")]
    noise_room: String,
}

impl Target {
    /// The first address (the hostile client and the noise room use only that one).
    fn first_addr(&self) -> &str {
        self.addr.first().map_or("", String::as_str)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publisher, every in-process subscriber kind and the hostile client.
    Run {
        #[command(flatten)]
        target: Target,
        /// Publishes per second per room.
        #[arg(long, default_value_t = 20)]
        rate: u32,
    },
    /// The cluster phase: the publisher (rotating over the nodes) and `--subscribers`
    /// steady and churning subscribers, each starting on another node and moving to the
    /// next one on every reconnect; no hostile, slow or token-expiry clients.
    Cluster {
        #[command(flatten)]
        target: Target,
        /// Publishes per second per room.
        #[arg(long, default_value_t = 20)]
        rate: u32,
        /// Subscribers (alternately steady and churning).
        #[arg(long, default_value_t = 6)]
        subscribers: usize,
    },
    /// One steady subscriber in its own process (the one `scripts/soak` freezes).
    Subscriber {
        #[command(flatten)]
        target: Target,
        /// Its name (record file `sub-<name>.jsonl`).
        #[arg(long)]
        name: String,
    },
    /// Compares the records; exits 1 on any loss, duplicate or mismatch.
    Verify {
        /// Directory of the record files.
        #[arg(long)]
        dir: PathBuf,
        /// The broker may lose its data (a Redis restart without persistence): the
        /// durability check covers only the epochs the history still holds, and the
        /// acknowledged publishes of vanished epochs are counted, not failed.
        #[arg(long)]
        epochs_may_change: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { target, rate } => run(target, rate).await,
        Command::Cluster {
            target,
            rate,
            subscribers,
        } => run_cluster(target, rate, subscribers).await,
        Command::Subscriber { target, name } => {
            std::fs::create_dir_all(&target.dir).context("creating the record directory")?;
            let stop = stop_after(target.seconds);
            let cfg = subscriber::Config::new(&target, name, subscriber::Behaviour::Steady, 0);
            subscriber::run(cfg, stop).await
        }
        Command::Verify {
            dir,
            epochs_may_change,
        } => {
            let report = verify::verify(&dir, epochs_may_change)?;
            println!("{report}");
            if report.passed() {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}

/// A token cancelled after `seconds`, or on SIGINT/SIGTERM.
fn stop_after(seconds: u64) -> CancellationToken {
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut t) => {
                    t.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        s.cancel();
    });
    stop
}

/// The in-process roles: they all stop at the same time; the publisher then stops first and
/// the subscribers are given time to catch up with its last acknowledged publish.
async fn run(target: Target, rate: u32) -> anyhow::Result<()> {
    std::fs::create_dir_all(&target.dir).context("creating the record directory")?;
    let stop = stop_after(target.seconds);
    let done_publishing = CancellationToken::new();
    let mut subs = tokio::task::JoinSet::new();
    for behaviour in subscriber::Behaviour::ALL {
        let name = behaviour.name().to_owned();
        let cfg = subscriber::Config::new(&target, name, behaviour, 0);
        subs.spawn(subscriber::run(cfg, done_publishing.clone()));
    }
    let hostile = tokio::spawn(hostile::run(target.clone(), stop.clone()));
    let noise = tokio::spawn(noise::run(target.clone(), stop.clone()));
    publisher::run(&target, rate, stop.clone()).await?;
    // Subscribers stop once they hold the final head (or after a bounded wait).
    done_publishing.cancel();
    while let Some(joined) = subs.join_next().await {
        joined.context("subscriber task")??;
    }
    dump_histories(&target).await?;
    noise.await.context("noise task")??;
    let tally = hostile.await.context("hostile task")??;
    tally.write(&target.dir)?;
    println!("{tally}");
    Ok(())
}

/// The cluster phase's roles: like [`run`] without the single-node-only clients, with the
/// subscribers spread over the nodes.
async fn run_cluster(target: Target, rate: u32, subscribers: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(&target.dir).context("creating the record directory")?;
    let stop = stop_after(target.seconds);
    let done_publishing = CancellationToken::new();
    let mut subs = tokio::task::JoinSet::new();
    for i in 0..subscribers {
        let behaviour = match i % 2 {
            0 => subscriber::Behaviour::Steady,
            _ => subscriber::Behaviour::Churn,
        };
        let name = format!("{}-{i}", behaviour.name());
        let cfg = subscriber::Config::new(&target, name, behaviour, i);
        subs.spawn(subscriber::run(cfg, done_publishing.clone()));
    }
    publisher::run(&target, rate, stop).await?;
    done_publishing.cancel();
    while let Some(joined) = subs.join_next().await {
        joined.context("subscriber task")??;
    }
    dump_histories(&target).await
}

/// Reads every soak room's history back (for the durability check).
async fn dump_histories(target: &Target) -> anyhow::Result<()> {
    for r in 0..target.rooms {
        let room = format!("soak-{r}");
        let n = publisher::dump_history(target, &room).await?;
        println!("history of {room}: {n} events read back");
    }
    Ok(())
}
