//! `skiff`: the one binary of Skiff — control plane, node runtime and CLI.
//!
//! Each subcommand lives in its own module; `main` parses arguments, sets up logging,
//! builds the one tokio runtime and hands over.

mod logging;
mod server;
mod signal;
mod version;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "skiff",
    version,
    about = "Kubernetes for WebAssembly components: control plane, node runtime and CLI in one binary",
    long_about = None,
)]
struct Cli {
    #[command(flatten)]
    logging: logging::LoggingArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane: the API server on the embedded store or on etcd
    Server(server::ServerArgs),
    /// Print the version of this binary
    Version(version::VersionArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(err) = logging::init(&cli.logging) {
        eprintln!("error: {err:#}");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Version(args) => version::run(args),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
