//! The `roomcast` binary: parses the command line and hands off to the library. Decides
//! exit codes; everything else lives in `roomcast_server`.

use clap::Parser;

/// mimalloc instead of glibc malloc: the order and fan-out paths allocate many small,
/// short-lived buffers across threads, where glibc's arenas spent ~17 % of the server's
/// CPU in `perf` profiles (see docs/BENCHMARKS.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = roomcast_server::cli::Cli::parse();
    match roomcast_server::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roomcast: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
