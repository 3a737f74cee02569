//! `skiff rollout status|history|undo deployment/NAME`, as kubectl does them:
//!
//! - status watches the Deployment until observedGeneration ≥ generation and every replica
//!   is updated and available (or its Progressing condition says
//!   ProgressDeadlineExceeded);
//! - history lists the ReplicaSets the Deployment owns (by selector, then by controller
//!   ownerReference) with their `deployment.kubernetes.io/revision`;
//! - undo JSON-patches the Deployment's `/spec/template` back to the template of the
//!   ReplicaSet of the target revision (without its `pod-template-hash` label).

use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::{ArgAction, Args, Subcommand};
use serde_json::{Map, Value, json};
use skiff_api::registry::{self, Resource};
use skiff_client::{ListParams, Patch};
use tokio::time::Instant;

use crate::cli_common::{self, ClientArgs, Conn, meta_str, object_ref};
use crate::output::{self, Table};
use crate::wait::{self, Check};

const REVISION: &str = "deployment.kubernetes.io/revision";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
const TEMPLATE_HASH: &str = "pod-template-hash";
/// Annotations of a ReplicaSet that are the controller's, not the user's: never copied
/// back onto the Deployment by undo.
const NOT_COPIED: &[&str] = &[
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    crate::apply::LAST_APPLIED,
];

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Watch a Deployment's rollout until it is complete (or failed)
    #[command(after_help = "Example:\n  skiff rollout status deployment/web --timeout 2m")]
    Status(StatusArgs),
    /// List a Deployment's revisions (its ReplicaSets)
    #[command(
        after_help = "Examples:\n  skiff rollout history deployment/web\n  skiff rollout history deployment/web --revision 2"
    )]
    History(HistoryArgs),
    /// Roll a Deployment back to an earlier revision (the previous one by default)
    #[command(
        after_help = "Examples:\n  skiff rollout undo deployment/web\n  skiff rollout undo deployment/web --to-revision 1"
    )]
    Undo(UndoArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// deployment/NAME (or `deployment NAME`)
    #[arg(value_name = "TYPE/NAME", required = true, num_args = 1..=2)]
    pub target: Vec<String>,

    /// Keep watching until the rollout ends; with false, print the status once
    #[arg(short = 'w', long, action = ArgAction::Set, default_value_t = true, value_name = "BOOL")]
    pub watch: bool,

    /// How long to wait (e.g. 30s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = cli_common::parse_duration)]
    pub timeout: Duration,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// deployment/NAME (or `deployment NAME`)
    #[arg(value_name = "TYPE/NAME", required = true, num_args = 1..=2)]
    pub target: Vec<String>,

    /// Show the pod template of this revision
    #[arg(long, value_name = "N")]
    pub revision: Option<i64>,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// deployment/NAME (or `deployment NAME`)
    #[arg(value_name = "TYPE/NAME", required = true, num_args = 1..=2)]
    pub target: Vec<String>,

    /// The revision to roll back to; 0 means the one before the current
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub to_revision: i64,

    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: RolloutArgs) -> anyhow::Result<()> {
    match args.command {
        RolloutCommand::Status(a) => status(a).await,
        RolloutCommand::History(a) => history(a).await,
        RolloutCommand::Undo(a) => undo(a).await,
    }
}

/// The Deployment a rollout subcommand is about.
fn target(args: &[String]) -> anyhow::Result<(&'static Resource, String)> {
    let (r, name) = match args {
        [one] => cli_common::split_type_name(one)?
            .ok_or_else(|| anyhow!("give the deployment as TYPE/NAME, e.g. deployment/web"))?,
        [kind, name] => (cli_common::resolve_kind(kind)?, name.clone()),
        _ => bail!("give one deployment, as deployment/NAME"),
    };
    if !std::ptr::eq(r, &registry::DEPLOYMENT) {
        bail!(
            "no rollout support for {}: only deployments are supported",
            r.group_resource()
        );
    }
    Ok((r, name))
}

async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let (r, name) = target(&args.target)?;
    let conn = args.client.connect()?;
    if !args.watch {
        let d = conn.client.get(r, None, &name).await?;
        match wait::deployment_rollout(&d) {
            Check::Done(m) | Check::Pending(m) => println!("{m}"),
            Check::Failed(m) => bail!("{m}"),
        }
        return Ok(());
    }
    let deadline = Instant::now() + args.timeout;
    let done = wait::until(
        &conn.client,
        r,
        None,
        &name,
        deadline,
        wait::deployment_rollout,
        |m| println!("{m}"),
    )
    .await?;
    println!("{done}");
    Ok(())
}

fn revision_of(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/annotations")?
        .get(REVISION)?
        .as_str()?
        .parse()
        .ok()
}

/// The ReplicaSets `deployment` controls, oldest revision first.
async fn owned_replica_sets(conn: &Conn, deployment: &Value) -> anyhow::Result<Vec<(i64, Value)>> {
    let uid = meta_str(deployment, "uid").unwrap_or("");
    let selector = output::selector_string(deployment.pointer("/spec/selector"));
    let params = ListParams::default().labels(&selector);
    let ns = meta_str(deployment, "namespace").unwrap_or(&conn.namespace);
    let list = conn
        .client
        .list(&registry::REPLICA_SET, Some(ns), &params)
        .await?;
    let mut out: Vec<(i64, Value)> = list
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|rs| {
            rs.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter().any(|o| {
                        o.get("uid").and_then(Value::as_str) == Some(uid)
                            && o.get("controller").and_then(Value::as_bool) == Some(true)
                    })
                })
        })
        .filter_map(|rs| revision_of(rs).map(|rev| (rev, rs.clone())))
        .collect();
    out.sort_by_key(|(rev, _)| *rev);
    Ok(out)
}

async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let (r, name) = target(&args.target)?;
    let conn = args.client.connect()?;
    let d = conn.client.get(r, None, &name).await?;
    let sets = owned_replica_sets(&conn, &d).await?;
    let what = object_ref(r, &name);
    if let Some(rev) = args.revision {
        let (_, rs) = sets
            .iter()
            .find(|(n, _)| *n == rev)
            .ok_or_else(|| anyhow!("unable to find the specified revision {rev}"))?;
        let mut template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
        drop_template_hash(&mut template);
        println!("{what} with revision #{rev}");
        println!("Pod Template:");
        for line in output::to_yaml(&template).lines() {
            println!("  {line}");
        }
        return Ok(());
    }
    if sets.is_empty() {
        println!("No rollout history found in {what}.");
        return Ok(());
    }
    println!("{what} ");
    let mut t = Table::new(vec!["REVISION".into(), "CHANGE-CAUSE".into()]);
    for (rev, rs) in &sets {
        let cause = rs
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(CHANGE_CAUSE))
            .and_then(Value::as_str)
            .unwrap_or("<none>");
        t.rows.push(vec![rev.to_string(), cause.to_string()]);
    }
    print!("{}", t.render(false));
    println!();
    Ok(())
}

fn drop_template_hash(template: &mut Value) {
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(TEMPLATE_HASH);
    }
}

/// What the server adds to a template that the user did not write: compared without it.
fn normalised(template: &Value) -> Value {
    let mut t = template.clone();
    drop_template_hash(&mut t);
    if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("creationTimestamp");
        if meta
            .get("labels")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            meta.remove("labels");
        }
    }
    t
}

async fn undo(args: UndoArgs) -> anyhow::Result<()> {
    let (r, name) = target(&args.target)?;
    let conn = args.client.connect()?;
    let d = conn.client.get(r, None, &name).await?;
    let what = object_ref(r, &name);
    if d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        bail!(
            "you cannot rollback a paused deployment; resume it first with 'skiff rollout resume {what}' and try again"
        );
    }
    let sets = owned_replica_sets(&conn, &d).await?;
    let target_rs = if args.to_revision == 0 {
        // The newest revision before the current (the highest) one.
        if sets.len() < 2 {
            bail!("no rollout history found for deployment \"{name}\"");
        }
        &sets[sets.len() - 2].1
    } else {
        &sets
            .iter()
            .find(|(n, _)| *n == args.to_revision)
            .ok_or_else(|| {
                anyhow!(
                    "unable to find specified revision {} in history",
                    args.to_revision
                )
            })?
            .1
    };
    let rev = revision_of(target_rs).unwrap_or(0);
    let mut template = target_rs
        .pointer("/spec/template")
        .cloned()
        .ok_or_else(|| anyhow!("the ReplicaSet of revision {rev} has no pod template"))?;
    drop_template_hash(&mut template);
    let current = d.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    if normalised(&current) == normalised(&template) {
        println!("{what} skipped rollback (current template already matches revision {rev})");
        return Ok(());
    }
    let mut annotations = d
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(rs_ann) = target_rs
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (k, v) in rs_ann {
            if !NOT_COPIED.contains(&k.as_str()) {
                annotations.insert(k.clone(), v.clone());
            }
        }
    }
    let mut ops = vec![json!({"op": "replace", "path": "/spec/template", "value": template})];
    if !annotations.is_empty() {
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": annotations}));
    }
    conn.client
        .patch(r, None, &name, &Patch::Json(Value::Array(ops)))
        .await?;
    println!("{what} rolled back");
    Ok(())
}
