//! Waiting for an object to reach a state, by watching it: what `apply --wait`,
//! `delete --wait` and `rollout status` share. Readiness rules are pure functions of the
//! object, unit-tested below.

use anyhow::{anyhow, bail};
use futures::StreamExt;
use serde_json::Value;
use skiff_api::registry::Resource;
use skiff_client::{Client, ListParams, WatchEvent};
use tokio::time::Instant;

use crate::cli_common::meta_str;

/// Where an object stands with respect to what is waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Reached; the message says so.
    Done(String),
    /// Not yet; the message says what is missing.
    Pending(String),
    /// Will not get there (a rollout past its progress deadline).
    Failed(String),
}

fn i(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// `rollout status` of a Deployment, as kubectl judges it: the controller has seen the
/// latest spec (observedGeneration ≥ generation), every replica is updated, no old replica
/// is left, every updated replica is available; a Progressing condition with reason
/// ProgressDeadlineExceeded fails.
pub fn deployment_rollout(d: &Value) -> Check {
    let name = meta_str(d, "name").unwrap_or("");
    let generation = i(d, "/metadata/generation");
    let observed = i(d, "/status/observedGeneration");
    if generation > observed {
        return Check::Pending("Waiting for deployment spec update to be observed...".into());
    }
    if let Some(c) = condition(d, "Progressing")
        && c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
    {
        return Check::Failed(format!(
            "deployment \"{name}\" exceeded its progress deadline"
        ));
    }
    let desired = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let updated = i(d, "/status/updatedReplicas");
    let replicas = i(d, "/status/replicas");
    let available = i(d, "/status/availableReplicas");
    if updated < desired {
        return Check::Pending(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {updated} out of {desired} new replicas have been updated..."
        ));
    }
    if replicas > updated {
        return Check::Pending(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        ));
    }
    if available < updated {
        return Check::Pending(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    Check::Done(format!("deployment \"{name}\" successfully rolled out"))
}

/// A Pod is ready when its Ready condition is True; a finished pod never will be.
pub fn pod_ready(p: &Value) -> Check {
    let name = meta_str(p, "name").unwrap_or("");
    let ready = condition(p, "Ready")
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str);
    if ready == Some("True") {
        return Check::Done(format!("pod/{name} condition met"));
    }
    match p.pointer("/status/phase").and_then(Value::as_str) {
        Some(phase @ ("Succeeded" | "Failed")) => {
            Check::Failed(format!("pod/{name} is {phase} and will never be Ready"))
        }
        phase => Check::Pending(format!(
            "Waiting for pod \"{name}\" to be ready (phase {})...",
            phase.unwrap_or("Pending")
        )),
    }
}

/// The readiness rule `apply --wait` uses for a kind; `None` when the kind is ready as
/// soon as it is stored.
pub fn readiness(r: &Resource) -> Option<fn(&Value) -> Check> {
    match (r.group, r.kind) {
        ("apps", "Deployment") => Some(deployment_rollout),
        ("", "Pod") => Some(pod_ready),
        _ => None,
    }
}

/// Watches one object until `check` says Done (Ok) or Failed (Err), or `deadline`
/// passes (Err). Each new Pending message is handed to `progress`.
pub async fn until(
    client: &Client,
    r: &Resource,
    ns: Option<&str>,
    name: &str,
    deadline: Instant,
    check: fn(&Value) -> Check,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<String> {
    let params = ListParams::default().fields(&format!("metadata.name={name}"));
    let ns = if r.namespaced {
        Some(ns.unwrap_or(client.default_namespace()))
    } else {
        None
    };
    let mut last = String::new();
    let mut rv: Option<String> = None;
    loop {
        if rv.is_none() {
            let list = client.list(r, ns, &params).await?;
            let obj = list
                .get("items")
                .and_then(Value::as_array)
                .and_then(|items| items.first())
                .ok_or_else(|| anyhow!("{} \"{name}\" not found", r.group_resource()))?;
            match check(obj) {
                Check::Done(m) => return Ok(m),
                Check::Failed(m) => bail!("{m}"),
                Check::Pending(m) if m != last => {
                    progress(&m);
                    last = m;
                }
                Check::Pending(_) => {}
            }
            rv = list
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            bail!("timed out waiting for the condition on {}/{name}", r.plural);
        }
        let watch_params = ListParams {
            resource_version: rv.clone(),
            timeout_seconds: Some(remaining.as_secs().max(1)),
            ..params.clone()
        };
        let mut events = client.watch(r, ns, &watch_params).await?;
        loop {
            let next = tokio::time::timeout_at(deadline, events.next()).await;
            let ev = match next {
                Err(_) => bail!("timed out waiting for the condition on {}/{name}", r.plural),
                Ok(None) => break,
                Ok(Some(ev)) => ev?,
            };
            match ev {
                WatchEvent::Error(e) if e.is_gone() => {
                    rv = None;
                    break;
                }
                WatchEvent::Error(e) => return Err(e.into()),
                WatchEvent::Deleted(_) => bail!("{} \"{name}\" was deleted", r.group_resource()),
                WatchEvent::Bookmark(o) => {
                    if let Some(v) = meta_str(&o, "resourceVersion") {
                        rv = Some(v.to_string());
                    }
                }
                WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                    if let Some(v) = meta_str(&obj, "resourceVersion") {
                        rv = Some(v.to_string());
                    }
                    match check(&obj) {
                        Check::Done(m) => return Ok(m),
                        Check::Failed(m) => bail!("{m}"),
                        Check::Pending(m) if m != last => {
                            progress(&m);
                            last = m;
                        }
                        Check::Pending(_) => {}
                    }
                }
            }
        }
    }
}

/// Watches until the object is gone (or `deadline` passes).
pub async fn until_deleted(
    client: &Client,
    r: &Resource,
    ns: Option<&str>,
    name: &str,
    deadline: Instant,
) -> anyhow::Result<()> {
    let params = ListParams::default().fields(&format!("metadata.name={name}"));
    let ns = if r.namespaced {
        Some(ns.unwrap_or(client.default_namespace()))
    } else {
        None
    };
    loop {
        let list = client.list(r, ns, &params).await?;
        let present = list
            .get("items")
            .and_then(Value::as_array)
            .is_some_and(|items| !items.is_empty());
        if !present {
            return Ok(());
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            bail!("timed out waiting for the deletion of {}/{name}", r.plural);
        }
        let watch_params = ListParams {
            resource_version: list
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
            timeout_seconds: Some(remaining.as_secs().max(1)),
            ..params.clone()
        };
        let mut events = client.watch(r, ns, &watch_params).await?;
        loop {
            match tokio::time::timeout_at(deadline, events.next()).await {
                Err(_) => bail!("timed out waiting for the deletion of {}/{name}", r.plural),
                Ok(None) => break,
                Ok(Some(Ok(WatchEvent::Deleted(_)))) => return Ok(()),
                Ok(Some(Ok(WatchEvent::Error(e)))) if e.is_gone() => break,
                Ok(Some(Ok(WatchEvent::Error(e)))) => return Err(e.into()),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(generation: i64, status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": 3},
            "status": status,
        })
    }

    #[test]
    fn rollout_states() {
        let cases = [
            (
                deploy(2, json!({"observedGeneration": 1})),
                Check::Pending("Waiting for deployment spec update to be observed...".into()),
            ),
            (
                deploy(2, json!({"observedGeneration": 2, "updatedReplicas": 1, "replicas": 3})),
                Check::Pending("Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...".into()),
            ),
            (
                deploy(2, json!({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 4})),
                Check::Pending("Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...".into()),
            ),
            (
                deploy(2, json!({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2})),
                Check::Pending("Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...".into()),
            ),
            (
                deploy(2, json!({"observedGeneration": 3, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3})),
                Check::Done("deployment \"web\" successfully rolled out".into()),
            ),
            (
                deploy(2, json!({"observedGeneration": 2, "conditions": [
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]})),
                Check::Failed("deployment \"web\" exceeded its progress deadline".into()),
            ),
        ];
        for (d, want) in cases {
            assert_eq!(deployment_rollout(&d), want, "{d}");
        }
    }

    #[test]
    fn pod_readiness() {
        let ready = json!({"metadata": {"name": "p"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(pod_ready(&ready), Check::Done("pod/p condition met".into()));
        let done = json!({"metadata": {"name": "p"}, "status": {"phase": "Succeeded"}});
        assert!(matches!(pod_ready(&done), Check::Failed(_)));
        let pending = json!({"metadata": {"name": "p"}, "status": {"phase": "Pending"}});
        assert!(matches!(pod_ready(&pending), Check::Pending(_)));
    }
}
