//! `skiff`: the one binary of Skiff — control plane, node runtime and CLI.
//!
//! Each subcommand lives in its own module; `main` parses arguments, sets up logging,
//! builds the one tokio runtime and hands over.

mod apply;
mod cli_common;
mod delete;
mod describe;
mod get;
mod logging;
mod logs;
mod node;
mod output;
mod rollout;
mod run;
mod scale;
mod server;
mod signal;
mod up;
mod version;
mod wait;

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
    /// Run a node: the agent that runs the pods bound to it, and its service proxy
    Node(node::NodeArgs),
    /// Run a whole cluster on this machine: control plane and one node, in one process
    Up(up::UpArgs),
    /// Print the version of this binary (and of the server, when one is reachable)
    Version(version::VersionArgs),
    /// Create or update objects from manifests (files, directories or stdin)
    Apply(apply::ApplyArgs),
    /// List objects, or show some, as a table, YAML, JSON or names
    Get(get::GetArgs),
    /// Show an object in detail, with its conditions and events
    Describe(describe::DescribeArgs),
    /// Delete objects by name, by label selector or from manifests
    Delete(delete::DeleteArgs),
    /// Set the number of replicas of a Deployment or ReplicaSet
    Scale(scale::ScaleArgs),
    /// Follow, list or undo a Deployment's rollouts
    Rollout(rollout::RolloutArgs),
    /// Print a pod's container output
    Logs(logs::LogsArgs),
    /// Run one component locally, in exactly the sandbox a pod gets
    Run(run::RunArgs),
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
            Command::Up(args) => up::run(args).await,
            Command::Node(args) => node::run(args).await,
            Command::Version(args) => cli_common::exit_on_error(version::run(args).await),
            Command::Apply(args) => cli_common::exit_on_error(apply::run(args).await),
            Command::Get(args) => cli_common::exit_on_error(get::run(args).await),
            Command::Describe(args) => cli_common::exit_on_error(describe::run(args).await),
            Command::Delete(args) => cli_common::exit_on_error(delete::run(args).await),
            Command::Scale(args) => cli_common::exit_on_error(scale::run(args).await),
            Command::Rollout(args) => cli_common::exit_on_error(rollout::run(args).await),
            Command::Logs(args) => cli_common::exit_on_error(logs::run(args).await),
            Command::Run(args) => run::run(args).await,
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
