//! `skiff scale KIND/NAME --replicas N`: a merge patch on the `scale` subresource, as
//! kubectl sends it.

use anyhow::bail;
use clap::Args;
use serde_json::Value;

use crate::cli_common::{self, ClientArgs, object_ref};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  skiff scale deployment/web --replicas 3\n  skiff scale rs web-5d8f --replicas 0"
)]
pub struct ScaleArgs {
    /// What to scale: TYPE/NAME (deployment/web), or a kind followed by names
    #[arg(value_name = "TYPE/NAME", required = true)]
    pub args: Vec<String>,

    /// The number of replicas wanted
    #[arg(long, value_name = "N")]
    pub replicas: i64,

    /// Only scale if the object currently wants this many replicas
    #[arg(long, value_name = "N")]
    pub current_replicas: Option<i64>,

    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: ScaleArgs) -> anyhow::Result<()> {
    if args.replicas < 0 {
        bail!(
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"
        );
    }
    let mut targets = Vec::new();
    if args.args[0].contains('/') {
        for a in &args.args {
            match cli_common::split_type_name(a)? {
                Some(t) => targets.push(t),
                None => bail!("mix of TYPE/NAME and NAME arguments: use one form"),
            }
        }
    } else {
        let r = cli_common::resolve_kind(&args.args[0])?;
        if args.args.len() < 2 {
            bail!(
                "name is required: skiff scale {}/NAME --replicas N",
                args.args[0]
            );
        }
        targets.extend(args.args[1..].iter().map(|n| (r, n.clone())));
    }
    let conn = args.client.connect()?;
    for (r, name) in targets {
        if r.subresource("scale").is_none() {
            bail!(
                "{} cannot be scaled: it has no scale subresource",
                r.group_resource()
            );
        }
        if let Some(want) = args.current_replicas {
            let scale = conn.client.get_scale(r, None, &name).await?;
            let now = scale
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if now != want {
                bail!(
                    "Expected replicas to be {want}, was {now}: {} not scaled",
                    object_ref(r, &name)
                );
            }
        }
        conn.client
            .patch_scale(r, None, &name, args.replicas)
            .await?;
        println!("{} scaled", object_ref(r, &name));
    }
    Ok(())
}
