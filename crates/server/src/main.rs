//! The `roomcast` binary: parses the command line and hands off to the library. Decides
//! exit codes; everything else lives in `roomcast_server`.

use clap::Parser;

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
