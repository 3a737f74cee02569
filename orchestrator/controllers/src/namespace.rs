//! The namespace controller: empties a namespace that is being deleted, then lets the
//! API server remove it.
//!
//! Kubernetes' flow: `DELETE namespaces/x` marks the namespace (deletionTimestamp,
//! `status.phase: Terminating`) and keeps it while `spec.finalizers` holds `kubernetes`;
//! the API server refuses new objects in it. This controller then deletes every object of
//! every namespaced resource in it (Background propagation, pods gracefully), waits until
//! nothing is left (pods still stopping, objects with finalizers), and removes
//! `kubernetes` from `spec.finalizers` through the `namespaces/{name}/finalize`
//! subresource. With no finalizer left the API server deletes the namespace.
//!
//! While content remains the namespace carries the condition `NamespaceContentRemaining`
//! (`NamespaceDeletionContentFailure` when a delete failed), as in Kubernetes.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use skiff_api::registry::{self, Resource};
use skiff_client::{Client, DeleteParams, Informer, ListParams, ObjectKey, PropagationPolicy};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::driver::{Controller, Reconciler, Requeue};
use crate::error::{Error, Result};

/// The finalizer in `spec.finalizers` this controller owns.
pub const KUBERNETES_FINALIZER: &str = "kubernetes";

/// How long to wait for remaining objects nobody will tell us about (kinds without an
/// informer, finalizers of other controllers).
const RECHECK: Duration = Duration::from_secs(10);

/// Runs the namespace controller until `cancel`.
pub async fn run(ctx: Context, cancel: CancellationToken) {
    let namespaces = ctx.informers.namespaces.clone();
    let i = &ctx.informers;
    let watched = [
        i.pods.clone(),
        i.replicasets.clone(),
        i.deployments.clone(),
        i.daemonsets.clone(),
        i.jobs.clone(),
        i.services.clone(),
        i.endpoints.clone(),
    ];
    let reconciler = Arc::new(NamespaceReconciler { ctx: ctx.clone() });
    let mut controller = Controller::new(reconciler, namespaces.clone());
    // An object leaving a terminating namespace may be the last one.
    for informer in watched {
        let namespaces = namespaces.clone();
        controller = controller.watches(informer, move |object| {
            terminating_namespace(object, &namespaces)
        });
    }
    controller.concurrency(2).run(cancel).await
}

fn terminating_namespace(object: &Value, namespaces: &Informer) -> Vec<ObjectKey> {
    let Some(ns) = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    else {
        return Vec::new();
    };
    let key = ObjectKey::new(None, ns);
    match namespaces.get(&key) {
        Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => vec![key],
        _ => Vec::new(),
    }
}

// ------------------------------------------------------------------------------ plan

/// Whether the namespace is this controller's business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespaceState {
    /// Not being deleted, or `kubernetes` is no longer among its finalizers.
    Untouched,
    /// Being deleted and waiting for this controller.
    Terminating,
}

pub fn namespace_state(namespace: &Value) -> NamespaceState {
    let deleting = namespace.pointer("/metadata/deletionTimestamp").is_some();
    if deleting
        && spec_finalizers(namespace)
            .iter()
            .any(|f| f == KUBERNETES_FINALIZER)
    {
        NamespaceState::Terminating
    } else {
        NamespaceState::Untouched
    }
}

fn spec_finalizers(namespace: &Value) -> Vec<String> {
    namespace
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// An object to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doomed {
    pub resource: &'static Resource,
    pub name: String,
    pub uid: Option<String>,
}

/// What to do with what a namespace still holds.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentPlan {
    /// Objects not yet being deleted.
    pub delete: Vec<Doomed>,
    /// Objects already being deleted (they will go on their own).
    pub remaining: usize,
    /// When the earliest of those should be gone (a pod's grace period).
    pub estimate: Option<Duration>,
}

/// Decides about the objects found in a terminating namespace: pure.
pub fn plan_content(items: &[(&'static Resource, Value)], now: Timestamp) -> ContentPlan {
    let mut plan = ContentPlan {
        delete: Vec::new(),
        remaining: 0,
        estimate: None,
    };
    for (resource, item) in items {
        let meta = item.get("metadata");
        let Some(name) = meta.and_then(|m| m.get("name")).and_then(Value::as_str) else {
            continue;
        };
        match deletion_left(item, now) {
            None => plan.delete.push(Doomed {
                resource,
                name: name.to_string(),
                uid: meta
                    .and_then(|m| m.get("uid"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }),
            Some(left) => {
                plan.remaining += 1;
                if let Some(left) = left {
                    plan.estimate = Some(plan.estimate.map_or(left, |e| e.min(left)));
                }
            }
        }
    }
    plan
}

/// `None`: not being deleted. `Some(Some(d))`: its grace period ends in `d`;
/// `Some(None)`: being deleted, no telling when (finalizers).
fn deletion_left(item: &Value, now: Timestamp) -> Option<Option<Duration>> {
    let stamp = item
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)?;
    let Ok(at) = stamp.parse::<Timestamp>() else {
        return Some(None);
    };
    let grace = item
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if grace <= 0 {
        return Some(None);
    }
    let end = at
        .saturating_add(SignedDuration::from_secs(grace))
        .unwrap_or(Timestamp::MAX);
    let left = end.duration_since(now);
    Some(Some(if left.is_positive() {
        left.unsigned_abs()
    } else {
        Duration::ZERO
    }))
}

/// The namespace with `kubernetes` removed from `spec.finalizers` (the body of the
/// `finalize` request).
pub fn finalized(namespace: &Value) -> Value {
    let mut out = namespace.clone();
    let rest: Vec<String> = spec_finalizers(namespace)
        .into_iter()
        .filter(|f| f != KUBERNETES_FINALIZER)
        .collect();
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("finalizers".into(), json!(rest));
    }
    out
}

/// The namespace with its condition about the deletion of its content set.
fn with_condition(
    namespace: &Value,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Value {
    let mut out = namespace.clone();
    let Some(obj) = out.as_object_mut() else {
        return out;
    };
    let st = obj.entry("status").or_insert_with(|| json!({}));
    let Some(st) = st.as_object_mut() else {
        return out;
    };
    st.insert("phase".into(), "Terminating".into());
    let conds = st.entry("conditions").or_insert_with(|| json!([]));
    let Some(conds) = conds.as_array_mut() else {
        return out;
    };
    let cond = json!({"type": type_, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()});
    match conds
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
    {
        Some(c) => {
            let same = c.get("status") == cond.get("status")
                && c.get("reason") == cond.get("reason")
                && c.get("message") == cond.get("message");
            if !same {
                *c = cond;
            }
        }
        None => conds.push(cond),
    }
    out
}

// ------------------------------------------------------------------------------ apply

struct NamespaceReconciler {
    ctx: Context,
}

#[async_trait::async_trait]
impl Reconciler for NamespaceReconciler {
    fn name(&self) -> &'static str {
        "namespace"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue> {
        let Some(cached) = self.ctx.informers.namespaces.get(key) else {
            return Ok(Requeue::Done);
        };
        if namespace_state(&cached) != NamespaceState::Terminating {
            return Ok(Requeue::Done);
        }
        let client = &self.ctx.client;
        let ns = key.name.as_str();
        let now = Timestamp::now();

        let mut items = Vec::new();
        for resource in registry::all() {
            if !resource.namespaced
                || !resource.supports_verb("list")
                || !resource.supports_verb("delete")
            {
                continue;
            }
            let list = client
                .list(resource, Some(ns), &ListParams::default())
                .await?;
            for item in list
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                items.push((*resource, item.clone()));
            }
        }
        let plan = plan_content(&items, now);
        let mut remaining = plan.remaining;
        let mut estimate = plan.estimate;
        let mut failures = Vec::new();
        for doomed in &plan.delete {
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                precondition_uid: doomed.uid.clone(),
                ..Default::default()
            };
            match client
                .delete(doomed.resource, Some(ns), &doomed.name, &params)
                .await
            {
                // Still there, being deleted (a pod stopping, finalizers).
                Ok(left) => {
                    if let Some(wait) = deletion_left(&left, now) {
                        remaining += 1;
                        if let Some(w) = wait {
                            estimate = Some(estimate.map_or(w, |e| e.min(w)));
                        }
                    }
                }
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => failures.push(format!("{} {}: {e}", doomed.resource.plural, doomed.name)),
            }
        }

        if !failures.is_empty() {
            let message = format!(
                "Failed to delete all resource types, {} remaining: {}",
                failures.len(),
                failures.join("; ")
            );
            self.write_condition(
                client,
                &cached,
                "NamespaceDeletionContentFailure",
                "True",
                "ContentDeletionFailed",
                &message,
                now,
            )
            .await;
            return Err(Error::invalid(key, message));
        }
        if remaining > 0 {
            let message =
                format!("Some resources are remaining: {remaining} object(s) being deleted");
            self.write_condition(
                client,
                &cached,
                "NamespaceContentRemaining",
                "True",
                "SomeResourcesRemain",
                &message,
                now,
            )
            .await;
            // Pods ending their grace period are announced by the informers; the estimate
            // (plus a moment for the node to confirm) covers the rest.
            let wait = estimate.map_or(RECHECK, |e| (e + Duration::from_secs(1)).min(RECHECK));
            return Ok(Requeue::After(wait));
        }

        // Empty: let the API server remove it.
        let current = match client.get_opt(&registry::NAMESPACE, None, ns).await? {
            Some(c) => c,
            None => return Ok(Requeue::Done),
        };
        if namespace_state(&current) != NamespaceState::Terminating {
            return Ok(Requeue::Done);
        }
        let body = serde_json::to_vec(&finalized(&current))
            .map_err(|e| Error::json(format!("namespace {ns}"), e))?;
        let path = Client::item_path(&registry::NAMESPACE, None, ns, Some("finalize"));
        match client
            .json(Method::PUT, &path, Some(("application/json", body)))
            .await
        {
            Ok(_) => Ok(Requeue::Done),
            Err(e) if e.is_not_found() => Ok(Requeue::Done),
            Err(e) => Err(e.into()),
        }
    }
}

impl NamespaceReconciler {
    /// Best effort: the condition is information, the deletion goes on without it.
    #[allow(clippy::too_many_arguments)]
    async fn write_condition(
        &self,
        client: &Client,
        namespace: &Value,
        type_: &str,
        status: &str,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) {
        let updated = with_condition(namespace, type_, status, reason, message, now);
        if &updated == namespace {
            return;
        }
        let name = namespace
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Err(e) = client
            .replace_status(&registry::NAMESPACE, None, name, &updated)
            .await
        {
            tracing::debug!(namespace = name, error = %e, "could not write a namespace condition");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2025-01-01T00:00:10Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    #[test]
    fn states() {
        let ns = |meta: Value, finalizers: Value| json!({"metadata": meta, "spec": {"finalizers": finalizers}});
        let cases = [
            (
                "active",
                ns(json!({"name": "a"}), json!(["kubernetes"])),
                NamespaceState::Untouched,
            ),
            (
                "terminating",
                ns(
                    json!({"name": "a", "deletionTimestamp": NOW}),
                    json!(["kubernetes"]),
                ),
                NamespaceState::Terminating,
            ),
            (
                "already finalized",
                ns(
                    json!({"name": "a", "deletionTimestamp": NOW}),
                    json!(["example.com/other"]),
                ),
                NamespaceState::Untouched,
            ),
        ];
        for (name, n, want) in cases {
            assert_eq!(namespace_state(&n), want, "{name}");
        }
    }

    #[test]
    fn content_table() {
        let items = vec![
            (
                &registry::CONFIG_MAP,
                json!({"metadata": {"name": "cm", "uid": "u1"}}),
            ),
            (
                &registry::POD,
                json!({"metadata": {"name": "stopping", "deletionTimestamp": "2025-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30}}),
            ),
            (
                &registry::DEPLOYMENT,
                json!({"metadata": {"name": "held", "deletionTimestamp": "2025-01-01T00:00:00Z", "finalizers": ["foregroundDeletion"]}}),
            ),
            (
                &registry::POD,
                json!({"metadata": {"name": "p", "uid": "u2"}}),
            ),
        ];
        let plan = plan_content(&items, now());
        let doomed: Vec<(&str, &str)> = plan
            .delete
            .iter()
            .map(|d| (d.resource.plural, d.name.as_str()))
            .collect();
        assert_eq!(doomed, vec![("configmaps", "cm"), ("pods", "p")]);
        assert_eq!(plan.delete[0].uid.as_deref(), Some("u1"));
        assert_eq!(plan.remaining, 2);
        assert_eq!(
            plan.estimate,
            Some(Duration::from_secs(20)),
            "the pod's grace period"
        );
        assert_eq!(plan_content(&[], now()).remaining, 0);
    }

    #[test]
    fn finalize_body_keeps_other_finalizers() {
        let n = json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes", "example.com/x"]}});
        assert_eq!(
            finalized(&n)["spec"]["finalizers"],
            json!(["example.com/x"])
        );
        let n = json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes"]}});
        assert_eq!(finalized(&n)["spec"]["finalizers"], json!([]));
    }

    #[test]
    fn conditions_change_only_when_they_differ() {
        let n = json!({"metadata": {"name": "a"}, "status": {"phase": "Terminating"}});
        let once = with_condition(
            &n,
            "NamespaceContentRemaining",
            "True",
            "SomeResourcesRemain",
            "m",
            now(),
        );
        assert_eq!(
            once["status"]["conditions"][0]["type"],
            "NamespaceContentRemaining"
        );
        let later: Timestamp = "2025-01-01T00:05:00Z".parse().unwrap();
        let twice = with_condition(
            &once,
            "NamespaceContentRemaining",
            "True",
            "SomeResourcesRemain",
            "m",
            later,
        );
        assert_eq!(once, twice);
    }
}
