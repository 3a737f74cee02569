//! `skiff apply -f FILE|DIR|-`: create what does not exist, update what does.
//!
//! Client-side apply as kubectl does it for kinds without strategic merge: the manifest
//! last applied is kept in the `kubectl.kubernetes.io/last-applied-configuration`
//! annotation; an update computes a three-way JSON merge patch (what the user removed
//! since the last apply is removed, what the manifest sets is set, what others added —
//! status, controller annotations, defaults — stays), applies it to the live object and
//! PUTs the result with the live resourceVersion, so a concurrent writer is never
//! overwritten: on 409 it reads again and retries once, then reports the conflict. A
//! `metadata.resourceVersion` in the manifest is kept as a precondition (no retry).

use std::io::Write as _;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use serde_json::{Map, Value};
use skiff_api::registry::Resource;
use skiff_client::{ApiError, Client};
use tokio::time::Instant;

use crate::cli_common::{self, AlreadyReported, ClientArgs, Conn, Manifest, meta_str, object_ref};
use crate::wait;

/// The annotation kubectl keeps the last applied manifest in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  skiff apply -f deployment.yaml\n  skiff apply -f manifests/ --wait\n  cat pod.yaml | skiff apply -f -"
)]
pub struct ApplyArgs {
    /// Manifest to apply: a file (several YAML documents allowed), a directory of
    /// .yaml/.yml/.json files, or `-` for stdin; may be repeated
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required = true
    )]
    pub files: Vec<String>,

    /// Also read the directories inside directories given with -f
    #[arg(short = 'R', long)]
    pub recursive: bool,

    /// After applying, wait until what was applied is ready (Deployments rolled out,
    /// Pods Ready; other kinds at once), printing progress
    #[arg(long)]
    pub wait: bool,

    /// How long --wait waits (e.g. 30s, 5m, 1h)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = cli_common::parse_duration)]
    pub timeout: Duration,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

pub async fn run(args: ApplyArgs) -> anyhow::Result<()> {
    let mut manifests = cli_common::read_manifests(&args.files, args.recursive)?;
    // Namespaces first, so that a directory holding a namespace and what goes in it
    // applies in one go whatever the file names.
    manifests.sort_by_key(|m| m.resource.kind != "Namespace");
    let conn = args.client.connect()?;
    let mut failed = false;
    let mut applied = Vec::new();
    for m in &manifests {
        match apply_one(&conn, m).await {
            Ok((outcome, ns, name)) => {
                println!("{} {}", object_ref(m.resource, &name), outcome.as_str());
                applied.push((m.resource, ns, name));
            }
            Err(e) => {
                failed = true;
                cli_common::print_error(&e);
            }
        }
    }
    let _ = std::io::stdout().flush();
    if args.wait {
        let deadline = Instant::now() + args.timeout;
        for (r, ns, name) in &applied {
            let Some(check) = wait::readiness(r) else {
                continue;
            };
            let what = object_ref(r, name);
            let result = wait::until(&conn.client, r, ns.as_deref(), name, deadline, check, |m| {
                println!("{m}");
                let _ = std::io::stdout().flush();
            })
            .await;
            match result {
                Ok(m) => println!("{m}"),
                Err(e) => {
                    failed = true;
                    eprintln!("error: {what}: {e:#}");
                }
            }
        }
    }
    if failed {
        return Err(AlreadyReported.into());
    }
    Ok(())
}

/// Prefixes the server's message with what was being done, keeping its reason, as
/// kubectl does (`error when creating "pod.yaml": …`).
fn api_context(err: skiff_client::Error, context: String) -> anyhow::Error {
    match err {
        skiff_client::Error::Api(mut api) => {
            api.message = format!("{context}: {}", api.message);
            anyhow::Error::new::<ApiError>(*api)
        }
        other => anyhow::Error::new(other).context(context),
    }
}

async fn apply_one(conn: &Conn, m: &Manifest) -> anyhow::Result<(Outcome, Option<String>, String)> {
    let r = m.resource;
    let name = m.name()?.to_string();
    let ns = m.namespace(conn)?;
    let client = &conn.client;
    let pinned_rv = meta_str(&m.object, "resourceVersion").map(str::to_string);

    let mut modified = m.object.clone();
    strip_server_fields(&mut modified);
    let last_applied = serde_json::to_string(&modified)?;
    set_annotation(&mut modified, LAST_APPLIED, &last_applied);

    for attempt in 0..2 {
        let live = client.get_opt(r, ns.as_deref(), &name).await.map_err(|e| {
            api_context(
                e,
                format!(
                    "error when retrieving current configuration of {} from \"{}\"",
                    object_ref(r, &name),
                    m.source
                ),
            )
        })?;
        let Some(live) = live else {
            let mut new = modified.clone();
            if let Some(ns) = &ns {
                set_meta(&mut new, "namespace", Value::String(ns.clone()));
            }
            match client.create(r, ns.as_deref(), &new).await {
                Ok(_) => return Ok((Outcome::Created, ns, name)),
                // Created by someone else between our GET and POST: update it instead.
                Err(e) if attempt == 0 && e.api().is_some_and(ApiError::is_already_exists) => {
                    continue;
                }
                Err(e) => {
                    return Err(api_context(
                        e,
                        format!("error when creating \"{}\"", m.source),
                    ));
                }
            }
        };
        let original = live
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LAST_APPLIED))
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Value>(s).ok());
        let patch = three_way_patch(original.as_ref(), &modified, &live);
        let live_rv = meta_str(&live, "resourceVersion").map(str::to_string);
        let stale_pin = pinned_rv.is_some() && pinned_rv != live_rv;
        if is_empty_patch(&patch) && !stale_pin {
            return Ok((Outcome::Unchanged, ns, name));
        }
        let mut desired = live.clone();
        merge(&mut desired, &patch);
        let rv = pinned_rv.clone().or(live_rv.clone());
        if let Some(rv) = rv {
            set_meta(&mut desired, "resourceVersion", Value::String(rv));
        }
        match replace(client, r, ns.as_deref(), &name, &desired).await {
            Ok(after) => {
                let outcome = if meta_str(&after, "resourceVersion").map(str::to_string) == live_rv
                {
                    Outcome::Unchanged
                } else {
                    Outcome::Configured
                };
                return Ok((outcome, ns, name));
            }
            Err(e) if attempt == 0 && pinned_rv.is_none() && e.is_conflict() => continue,
            Err(e) => {
                return Err(api_context(
                    e,
                    format!(
                        "error when applying {} from \"{}\"",
                        object_ref(r, &name),
                        m.source
                    ),
                ));
            }
        }
    }
    Err(anyhow!(
        "{} from \"{}\": gave up after a retry",
        object_ref(r, &name),
        m.source
    ))
}

async fn replace(
    client: &Client,
    r: &Resource,
    ns: Option<&str>,
    name: &str,
    obj: &Value,
) -> skiff_client::Result<Value> {
    client.replace(r, ns, name, obj).await
}

/// Fields of a manifest that are the server's, never the user's intent.
fn strip_server_fields(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(k);
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.remove(LAST_APPLIED);
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
}

fn set_meta(obj: &mut Value, key: &str, value: Value) {
    if let Some(o) = obj.as_object_mut() {
        let meta = o
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(key.to_string(), value);
        }
    }
}

fn set_annotation(obj: &mut Value, key: &str, value: &str) {
    if let Some(o) = obj.as_object_mut() {
        let meta = o
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            let ann = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(ann) = ann.as_object_mut() {
                ann.insert(key.to_string(), Value::String(value.to_string()));
            }
        }
    }
}

fn is_empty_patch(p: &Value) -> bool {
    p.as_object().is_none_or(Map::is_empty)
}

/// The JSON merge patch that takes `current` to what `modified` asks for: every field of
/// `modified` that differs from `current`, and a `null` for every field `original` (the
/// last applied manifest) had and `modified` dropped. Fields neither manifest mentions
/// are left alone. Lists are replaced whole (merge-patch semantics).
pub fn three_way_patch(original: Option<&Value>, modified: &Value, current: &Value) -> Value {
    Value::Object(three_way(
        original.and_then(Value::as_object),
        modified.as_object().unwrap_or(&Map::new()),
        current.as_object(),
    ))
}

fn three_way(
    original: Option<&Map<String, Value>>,
    modified: &Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut patch = Map::new();
    for (k, m) in modified {
        let c = current.and_then(|c| c.get(k));
        match (m, c) {
            (Value::Object(mo), Some(Value::Object(co))) => {
                let oo = original.and_then(|o| o.get(k)).and_then(Value::as_object);
                let sub = three_way(oo, mo, Some(co));
                if !sub.is_empty() {
                    patch.insert(k.clone(), Value::Object(sub));
                }
            }
            (Value::Null, None) => {}
            _ if c == Some(m) => {}
            _ => {
                patch.insert(k.clone(), m.clone());
            }
        }
    }
    if let Some(o) = original {
        for k in o.keys() {
            if !modified.contains_key(k) && current.is_some_and(|c| c.contains_key(k)) {
                patch.insert(k.clone(), Value::Null);
            }
        }
    }
    patch
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn three_way_keeps_what_others_added_and_drops_what_the_user_removed() {
        let original = json!({"metadata": {"labels": {"a": "1", "gone": "x"}}, "data": {"k": "v"}});
        let modified = json!({"metadata": {"labels": {"a": "2"}}, "data": {"k": "v"}});
        let current = json!({
            "metadata": {"labels": {"a": "1", "gone": "x", "added-by-controller": "y"}, "uid": "u"},
            "data": {"k": "v"},
            "status": {"x": 1},
        });
        let patch = three_way_patch(Some(&original), &modified, &current);
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {"a": "2", "gone": null}}})
        );
        let mut merged = current.clone();
        merge(&mut merged, &patch);
        assert_eq!(
            merged["metadata"]["labels"],
            json!({"a": "2", "added-by-controller": "y"})
        );
        assert_eq!(merged["status"], json!({"x": 1}));
    }

    #[test]
    fn same_manifest_is_an_empty_patch() {
        let m =
            json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a"}]}}}});
        let current = json!({"spec": {"replicas": 2, "paused": false, "template": {"spec": {"containers": [{"name": "a"}]}}}});
        assert!(is_empty_patch(&three_way_patch(Some(&m), &m, &current)));
        // Lists are replaced whole.
        let m2 = json!({"spec": {"template": {"spec": {"containers": [{"name": "b"}]}}}});
        assert_eq!(
            three_way_patch(Some(&m), &m2, &current),
            json!({"spec": {"replicas": null, "template": {"spec": {"containers": [{"name": "b"}]}}}})
        );
    }

    #[test]
    fn server_fields_are_not_the_users_intent() {
        let mut m = json!({"metadata": {"name": "x", "resourceVersion": "5", "uid": "u",
            "annotations": {LAST_APPLIED: "{}"}}, "status": {"phase": "Running"}});
        strip_server_fields(&mut m);
        assert_eq!(m, json!({"metadata": {"name": "x"}}));
    }
}
