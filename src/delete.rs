//! `skiff delete`: delete objects named on the command line, selected by labels, or
//! listed in manifests; optionally wait until they are gone.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, ValueEnum};
use serde_json::Value;
use skiff_api::registry::Resource;
use skiff_client::{DeleteParams, ListParams, PropagationPolicy};
use tokio::time::Instant;

use crate::cli_common::{self, AlreadyReported, ClientArgs, meta_str};
use crate::wait;

/// `--cascade`: what happens to the objects' dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cascade {
    /// Delete the object now; its dependents are deleted in the background
    Background,
    /// Delete the dependents first; the object goes last
    Foreground,
    /// Leave the dependents in place
    Orphan,
}

impl From<Cascade> for PropagationPolicy {
    fn from(c: Cascade) -> Self {
        match c {
            Cascade::Background => PropagationPolicy::Background,
            Cascade::Foreground => PropagationPolicy::Foreground,
            Cascade::Orphan => PropagationPolicy::Orphan,
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  skiff delete deployment web\n  skiff delete pod/a pod/b\n  skiff delete -f manifests/\n  skiff delete pods -l app=web --wait"
)]
pub struct DeleteArgs {
    /// A kind (pods, deploy, …) followed by names, or TYPE/NAME arguments
    #[arg(value_name = "KIND|TYPE/NAME")]
    pub args: Vec<String>,

    /// Delete the objects in these manifests (file, directory or `-`); may be repeated
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<String>,

    /// Also read the directories inside directories given with -f
    #[arg(short = 'R', long)]
    pub recursive: bool,

    /// Delete every object of KIND whose labels match this selector
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// What happens to dependents (e.g. a Deployment's ReplicaSets)
    #[arg(long, value_enum, value_name = "POLICY", default_value = "background")]
    pub cascade: Cascade,

    /// Wait until the objects are gone (finalizers done) before returning
    #[arg(long)]
    pub wait: bool,

    /// How long --wait waits (e.g. 30s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = cli_common::parse_duration)]
    pub timeout: Duration,

    /// Treat objects that do not exist as deleted
    #[arg(long)]
    pub ignore_not_found: bool,

    /// Seconds a pod gets to stop (0: at once)
    #[arg(long, value_name = "SECONDS")]
    pub grace_period: Option<i64>,

    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: DeleteArgs) -> anyhow::Result<()> {
    let conn = args.client.connect()?;
    // (resource, namespace, name)
    let mut targets: Vec<(&'static Resource, Option<String>, String)> = Vec::new();
    if !args.files.is_empty() {
        if !args.args.is_empty() {
            bail!("specify objects either with -f or on the command line, not both");
        }
        for m in cli_common::read_manifests(&args.files, args.recursive)? {
            let ns = m.namespace(&conn)?;
            targets.push((m.resource, ns, m.name()?.to_string()));
        }
    } else {
        let Some(first) = args.args.first() else {
            bail!("you must provide one or more resources by argument or filename (-f)");
        };
        let ns = |r: &Resource| r.namespaced.then(|| conn.namespace.clone());
        if first.contains('/') {
            for a in &args.args {
                match cli_common::split_type_name(a)? {
                    Some((r, name)) => targets.push((r, ns(r), name)),
                    None => bail!(
                        "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form"
                    ),
                }
            }
        } else {
            let r = cli_common::resolve_kind(first)?;
            let names = &args.args[1..];
            if let Some(sel) = &args.selector {
                if !names.is_empty() {
                    bail!("name cannot be provided when a selector is specified");
                }
                let list = conn
                    .client
                    .list(r, Some(&conn.namespace), &ListParams::default().labels(sel))
                    .await?;
                for item in list
                    .get("items")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    if let Some(name) = meta_str(item, "name") {
                        targets.push((r, ns(r), name.to_string()));
                    }
                }
                if targets.is_empty() {
                    eprintln!("No resources found");
                    return Ok(());
                }
            } else {
                if names.is_empty() {
                    bail!(
                        "resource(s) were provided, but no name was specified (use -l to select by labels)"
                    );
                }
                for n in names {
                    if n.contains('/') {
                        bail!(
                            "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form"
                        );
                    }
                    targets.push((r, ns(r), n.clone()));
                }
            }
        }
    }

    let params = DeleteParams {
        propagation_policy: Some(args.cascade.into()),
        grace_period_seconds: args.grace_period,
        ..Default::default()
    };
    let mut failed = false;
    let mut deleted = Vec::new();
    for (r, ns, name) in &targets {
        match conn.client.delete(r, ns.as_deref(), name, &params).await {
            Ok(_) => {
                println!("{} \"{name}\" deleted", kind_name(r));
                deleted.push((*r, ns.clone(), name.clone()));
            }
            Err(e) if args.ignore_not_found && e.is_not_found() => {}
            Err(e) => {
                failed = true;
                cli_common::print_error(&e.into());
            }
        }
    }
    if args.wait {
        let deadline = Instant::now() + args.timeout;
        for (r, ns, name) in &deleted {
            if let Err(e) =
                wait::until_deleted(&conn.client, r, ns.as_deref(), name, deadline).await
            {
                failed = true;
                cli_common::print_error(&e);
            }
        }
    }
    if failed {
        return Err(AlreadyReported.into());
    }
    Ok(())
}

/// `deployment.apps`, `pod`: how kubectl names a kind in `"x" deleted`.
fn kind_name(r: &Resource) -> String {
    if r.group.is_empty() {
        r.singular.to_string()
    } else {
        format!("{}.{}", r.singular, r.group)
    }
}
