//! `skiff version`: this binary's version and, when a kubeconfig leads to a server, the
//! server's.

use clap::Args;

use crate::cli_common::ClientArgs;

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print only the version number
    #[arg(long)]
    pub short: bool,

    /// Print only this binary's version; do not ask the server
    #[arg(long)]
    pub client: bool,

    #[command(flatten)]
    pub connection: ClientArgs,
}

pub async fn run(args: VersionArgs) -> anyhow::Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    if args.short {
        println!("{version}");
    } else {
        println!("skiff {version}");
    }
    if args.client {
        return Ok(());
    }
    // Without a kubeconfig only this binary's version is known; that is no error unless
    // one was named.
    let conn = match args.connection.connect() {
        Ok(conn) => conn,
        Err(e) if args.connection.kubeconfig.is_some() => return Err(e),
        Err(_) => return Ok(()),
    };
    let server = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        conn.client.server_version(),
    )
    .await;
    match server {
        Ok(Ok(v)) => {
            let git = v
                .get("gitVersion")
                .and_then(|g| g.as_str())
                .unwrap_or("unknown");
            if args.short {
                println!("{git}");
            } else {
                println!("Server Version: {git} ({})", conn.client.server());
            }
            Ok(())
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => anyhow::bail!(
            "the server at {} did not answer within 5s",
            conn.client.server()
        ),
    }
}
