//! `skiff logs POD`: a pod's container output, streamed from `pods/{name}/log`.

use std::io::Write as _;

use clap::Args;
use futures::StreamExt;
use skiff_client::LogParams;

use crate::cli_common::ClientArgs;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  skiff logs web-1\n  skiff logs web-1 -c sidecar -f\n  skiff logs web-1 --tail 20"
)]
pub struct LogsArgs {
    /// The pod (NAME or pod/NAME)
    #[arg(value_name = "POD")]
    pub pod: String,

    /// The container (needed when the pod has several)
    #[arg(short = 'c', long, value_name = "NAME")]
    pub container: Option<String>,

    /// Keep streaming new output (until Ctrl-C)
    #[arg(short = 'f', long)]
    pub follow: bool,

    /// Only the last N lines
    #[arg(long, value_name = "N")]
    pub tail: Option<i64>,

    /// Prefix each line with its timestamp
    #[arg(long)]
    pub timestamps: bool,

    /// The output of the previous (restarted) instance of the container
    #[arg(short = 'p', long)]
    pub previous: bool,

    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let name = match args.pod.split_once('/') {
        Some(("pod" | "pods" | "po", n)) => n.to_string(),
        Some((kind, _)) => anyhow::bail!("logs are read from pods; {kind:?} is not a pod"),
        None => args.pod.clone(),
    };
    let conn = args.client.connect()?;
    // Like kubectl: the pod must exist, which gives a clear NotFound first.
    conn.client
        .get(&skiff_api::registry::POD, None, &name)
        .await?;
    let params = LogParams {
        container: args.container.clone(),
        follow: args.follow,
        tail_lines: args.tail.filter(|t| *t >= 0),
        timestamps: args.timestamps,
        previous: args.previous,
        since_seconds: None,
    };
    let mut stream = conn.client.logs(None, &name, &params).await?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let chunk = tokio::select! {
            _ = &mut ctrl_c => break,
            c = stream.next() => c,
        };
        match chunk {
            None => break,
            Some(Ok(bytes)) => {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)?;
                out.flush()?;
            }
            Some(Err(e)) => return Err(e.into()),
        }
    }
    Ok(())
}
