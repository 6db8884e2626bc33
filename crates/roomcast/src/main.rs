//! The `roomcast` binary: one command line over the libraries. It parses, dispatches and
//! decides exit codes; serving lives in `roomcast-server`, load generation in
//! `roomcast-bench`, the terminal monitor in `roomcast-monitor`. Keeping it thin is what
//! lets an embedder depend on `roomcast-server` without the load generator or the TUI.

use anyhow::Context;
use clap::{Parser, Subcommand};
use roomcast_server::cli::ServeArgs;
use roomcast_server::tools::{KeygenArgs, TokenArgs};

/// roomcast: a real-time WebSocket server with rooms, history and recovery.
#[derive(Debug, Parser)]
#[command(name = "roomcast", version, about, long_about = None)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Print the default configuration file (TOML) to stdout.
    DefaultConfig,
    /// Validate a configuration file (and flags) without starting.
    CheckConfig(ServeArgs),
    /// Mint an HS256 development token with the configured secret.
    Token(TokenArgs),
    /// Write an Ed25519 key pair (PEM) for a collective and print its public key.
    Keygen(KeygenArgs),
    /// Live terminal view of one or more nodes (admin API).
    Monitor(roomcast_monitor::MonitorArgs),
    /// Load generator: fanout, connect, echo, churn, replay and orders scenarios against
    /// any server speaking the roomcast protocol.
    Bench(roomcast_bench::BenchArgs),
}

fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => roomcast_server::cli::serve(&args),
        Command::DefaultConfig => {
            print!("{}", roomcast_server::cli::default_config()?);
            Ok(())
        }
        Command::CheckConfig(args) => {
            println!("{}", roomcast_server::cli::check_config(&args)?);
            Ok(())
        }
        Command::Token(args) => roomcast_server::tools::token(args),
        Command::Keygen(args) => roomcast_server::tools::keygen(args),
        Command::Monitor(args) => runtime(Some(1))?.block_on(roomcast_monitor::run(args)),
        Command::Bench(args) => runtime(None)?
            .block_on(roomcast_bench::run(args))
            .map(|_| ()),
    }
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roomcast: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
