//! The node lifecycle controller: notices nodes that stopped heartbeating, marks them
//! `Ready=Unknown`, taints them `node.kubernetes.io/unreachable`, and evicts their pods
//! once the pods' tolerations run out (Kubernetes' node lifecycle controller and its
//! NoExecute taint manager in one).
//!
//! ```text
//!            heartbeat older than --node-monitor-grace-period
//!  healthy ──────────────────────────────────────────────────▶ unreachable
//!     ▲     Ready=Unknown (NodeStatusUnknown), taints               │
//!     │     unreachable:NoSchedule + unreachable:NoExecute          │
//!     └──────────────── the Lease is renewed again ◀────────────────┘
//!                       (taints removed; the agent posts Ready=True itself)
//! ```
//!
//! **Heartbeats** are the node's Lease in `kube-node-lease` (`spec.renewTime`) and its
//! `Ready` condition's `lastHeartbeatTime`. As in Kubernetes, the controller times them
//! with its own clock — when it *saw* either change — never by comparing the timestamps
//! with its clock, so clock skew between a site and the control plane does not matter.
//! A new leader starts every node's grace period afresh.
//!
//! A node that reports `Ready=False` itself gets the `not-ready` taints instead.
//!
//! **Evictions**: a pod on a node with a `NoExecute` taint it does not tolerate is deleted
//! at once; one that tolerates it for `tolerationSeconds` is deleted that long after the
//! taint's `timeAdded`. A pod without its own toleration for `not-ready`/`unreachable`
//! gets `--default-unreachable-toleration-seconds` (Kubernetes' DefaultTolerationSeconds
//! admission plugin, emulated here). Evictions are deletes with `gracePeriodSeconds: 0`:
//! the node cannot confirm a graceful stop, and the owners must replace the pods now.
//! When every node is unreachable, evictions pause (Kubernetes' full-disruption rule: the
//! control plane, not the nodes, has probably lost the network).
//!
//! The controller requeues a node exactly when its grace period or the next eviction
//! runs out, never on a fixed poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Node, NodeCondition, NodeSelectorRequirement, NodeSelectorTerm, NodeStatus, Pod, PodSpec,
    Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;
use skiff_api::registry;
use skiff_client::{DeleteParams, ObjectKey};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::driver::{Controller, Reconciler, Requeue};
use crate::error::{Error, Result};
use crate::job::{PodRef, decode};

/// The taint of a node that stopped heartbeating.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a node that reports Ready=False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Where node heartbeat Leases live.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

const NO_SCHEDULE: &str = "NoSchedule";
const NO_EXECUTE: &str = "NoExecute";

/// Runs the node lifecycle controller until `cancel`.
pub async fn run(ctx: Context, cancel: CancellationToken) {
    let nodes = ctx.informers.nodes.clone();
    let leases = ctx.informers.leases.clone();
    let pods = ctx.informers.pods.clone();
    let nodes_for_pods = nodes.clone();
    let reconciler = Arc::new(NodeLifecycleReconciler {
        ctx,
        state: Mutex::new(HashMap::new()),
    });
    Controller::new(reconciler, nodes)
        .watches(leases, |lease| {
            let key = ObjectKey::of(lease);
            key.filter(|k| k.namespace.as_deref() == Some(NODE_LEASE_NAMESPACE))
                .map(|k| ObjectKey::new(None, &k.name))
                .into_iter()
                .collect()
        })
        // A pod landing on a NoExecute-tainted node needs its eviction scheduled.
        .watches(pods, move |pod| {
            let Some(node) = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            else {
                return Vec::new();
            };
            let key = ObjectKey::new(None, node);
            let tainted = nodes_for_pods.get(&key).is_some_and(|n| {
                n.pointer("/spec/taints")
                    .and_then(Value::as_array)
                    .is_some_and(|ts| {
                        ts.iter()
                            .any(|t| t.get("effect").and_then(Value::as_str) == Some(NO_EXECUTE))
                    })
            });
            if tainted { vec![key] } else { Vec::new() }
        })
        .concurrency(4)
        .run(cancel)
        .await
}

// ------------------------------------------------------------------ taints, affinity

/// Whether a toleration tolerates a taint (Kubernetes' `ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = t.key.as_deref().filter(|k| !k.is_empty())
        && key != taint.key
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            // An empty key with Equal is invalid; it tolerates nothing.
            t.key.as_deref().is_some_and(|k| !k.is_empty())
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// Whether a node satisfies a pod's `nodeSelector` and required node affinity
/// (`matchExpressions` on labels, `matchFields` on `metadata.name`).
pub fn node_matches_pod_affinity(spec: &PodSpec, node: &Node) -> bool {
    let empty = Default::default();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if let Some(selector) = &spec.node_selector
        && !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(selector) => selector
            .node_selector_terms
            .iter()
            .any(|term| term_matches(term, node)),
    }
}

fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    // An empty term matches nothing.
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let empty = Default::default();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = match r.key.as_str() {
                "metadata.name" => node.metadata.name.as_deref(),
                _ => None,
            };
            requirement_matches(r, value)
        })
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                value.and_then(number),
                values.first().and_then(|s| number(s)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

// ------------------------------------------------------------------------ health plan

/// What to write to a node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeHealthPlan {
    /// A new status (conditions marked Unknown).
    pub status: Option<NodeStatus>,
    /// A new taint list.
    pub taints: Option<Vec<Taint>>,
    /// The node just became unreachable (for an Event).
    pub became_unreachable: bool,
    /// When the grace period runs out (a healthy node).
    pub requeue: Option<Duration>,
}

/// The conditions Kubernetes marks Unknown on an unreachable node.
const MONITORED_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Decides a node's condition and taints from how long ago its last heartbeat was
/// seen: pure.
pub fn plan_node(
    node: &Node,
    since_heartbeat: Duration,
    grace: Duration,
    now: Timestamp,
) -> NodeHealthPlan {
    let stale = since_heartbeat >= grace;
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let ready = conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str());
    let mut plan = NodeHealthPlan {
        status: None,
        taints: None,
        became_unreachable: false,
        requeue: (!stale).then(|| grace - since_heartbeat),
    };

    if stale {
        let mut new = conditions.clone();
        let (reason, message) = if ready.is_some() {
            ("NodeStatusUnknown", "Kubelet stopped posting node status.")
        } else {
            (
                "NodeStatusNeverUpdated",
                "Kubelet never posted node status.",
            )
        };
        if ready.is_none() {
            new.push(NodeCondition {
                type_: "Ready".into(),
                ..Default::default()
            });
        }
        for c in new
            .iter_mut()
            .filter(|c| MONITORED_CONDITIONS.contains(&c.type_.as_str()))
        {
            if c.status != "Unknown" {
                c.status = "Unknown".into();
                c.reason = Some(reason.into());
                c.message = Some(message.into());
                c.last_transition_time = Some(Time(now));
            }
        }
        if new != conditions {
            plan.became_unreachable = ready != Some("Unknown");
            let mut status = node.status.clone().unwrap_or_default();
            status.conditions = Some(new);
            plan.status = Some(status);
        }
    }

    // The taints this controller owns, as they should be.
    let wanted_key = if stale {
        Some(TAINT_UNREACHABLE)
    } else if ready == Some("False") {
        Some(TAINT_NOT_READY)
    } else {
        None
    };
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let owned = |t: &Taint| {
        (t.key == TAINT_UNREACHABLE || t.key == TAINT_NOT_READY)
            && (t.effect == NO_SCHEDULE || t.effect == NO_EXECUTE)
    };
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !owned(t) || Some(t.key.as_str()) == wanted_key)
        .cloned()
        .collect();
    if let Some(key) = wanted_key {
        for effect in [NO_SCHEDULE, NO_EXECUTE] {
            if !taints.iter().any(|t| t.key == key && t.effect == effect) {
                taints.push(Taint {
                    key: key.into(),
                    effect: effect.into(),
                    time_added: (effect == NO_EXECUTE).then_some(Time(now)),
                    value: None,
                });
            }
        }
    }
    if taints != current {
        plan.taints = Some(taints);
    }
    plan
}

// -------------------------------------------------------------------------- evictions

/// A pod on a tainted node.
#[derive(Clone, Debug, PartialEq)]
pub struct EvictionCandidate {
    pub name: String,
    pub uid: String,
    pub tolerations: Vec<Toleration>,
}

/// Which pods to evict now, and when the next one is due.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvictionPlan {
    pub evict: Vec<PodRef>,
    pub requeue: Option<Duration>,
}

/// The pod's tolerations with the defaults Kubernetes' DefaultTolerationSeconds
/// admission adds (`not-ready` and `unreachable`, NoExecute, for `default`) when the pod
/// has none of its own for that key.
pub fn with_default_tolerations(tolerations: &[Toleration], default: Duration) -> Vec<Toleration> {
    let mut all = tolerations.to_vec();
    for key in [TAINT_NOT_READY, TAINT_UNREACHABLE] {
        let has_own = tolerations.iter().any(|t| {
            t.key.as_deref().is_none_or(|k| k.is_empty() || k == key)
                && t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == NO_EXECUTE)
        });
        if !has_own {
            all.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(NO_EXECUTE.into()),
                toleration_seconds: Some(default.as_secs() as i64),
                value: None,
            });
        }
    }
    all
}

/// Decides evictions from a node's NoExecute taints (each with how long ago it was
/// added) and the pods on it: pure.
pub fn plan_evictions(
    taints: &[(Taint, Duration)],
    pods: &[EvictionCandidate],
    default_toleration: Duration,
) -> EvictionPlan {
    let mut plan = EvictionPlan::default();
    let no_execute: Vec<&(Taint, Duration)> = taints
        .iter()
        .filter(|(t, _)| t.effect == NO_EXECUTE)
        .collect();
    if no_execute.is_empty() {
        return plan;
    }
    for pod in pods {
        let tolerations = with_default_tolerations(&pod.tolerations, default_toleration);
        let mut evict = false;
        let mut left: Option<Duration> = None;
        for (taint, elapsed) in &no_execute {
            let matching: Vec<&Toleration> =
                tolerations.iter().filter(|t| tolerates(t, taint)).collect();
            if matching.is_empty() {
                evict = true;
                break;
            }
            // No tolerationSeconds: tolerated forever.
            let Some(seconds) = matching.iter().filter_map(|t| t.toleration_seconds).min() else {
                continue;
            };
            let limit = Duration::from_secs(seconds.max(0) as u64);
            match limit.checked_sub(*elapsed).filter(|d| !d.is_zero()) {
                None => {
                    evict = true;
                    break;
                }
                Some(d) => left = Some(left.map_or(d, |l| l.min(d))),
            }
        }
        if evict {
            plan.evict.push(PodRef {
                name: pod.name.clone(),
                uid: pod.uid.clone(),
            });
        } else if let Some(d) = left {
            plan.requeue = Some(plan.requeue.map_or(d, |r| r.min(d)));
        }
    }
    plan
}

// ------------------------------------------------------------------------------ apply

/// What the controller remembers of a node: the last heartbeat it saw and when.
#[derive(Debug)]
struct NodeState {
    heartbeat: (Option<Timestamp>, Option<Timestamp>),
    seen_at: Instant,
    /// When NoExecute taints without `timeAdded` were first seen.
    untimed_taints: HashMap<String, Instant>,
}

struct NodeLifecycleReconciler {
    ctx: Context,
    state: Mutex<HashMap<String, NodeState>>,
}

impl NodeLifecycleReconciler {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, NodeState>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long ago the node's heartbeat last changed, as seen by this controller.
    fn since_heartbeat(
        &self,
        node: &str,
        heartbeat: (Option<Timestamp>, Option<Timestamp>),
    ) -> Duration {
        let now = Instant::now();
        let mut state = self.lock();
        let entry = state.entry(node.to_string()).or_insert_with(|| NodeState {
            heartbeat,
            seen_at: now,
            untimed_taints: HashMap::new(),
        });
        if entry.heartbeat != heartbeat {
            entry.heartbeat = heartbeat;
            entry.seen_at = now;
        }
        now.duration_since(entry.seen_at)
    }

    /// Whether every node this controller knows has missed its grace period.
    fn all_unreachable(&self) -> bool {
        let grace = self.ctx.config.node_monitor_grace_period;
        let state = self.lock();
        let names: Vec<String> = self
            .ctx
            .informers
            .nodes
            .list()
            .iter()
            .filter_map(|n| n.pointer("/metadata/name")?.as_str().map(str::to_string))
            .collect();
        !names.is_empty()
            && names
                .iter()
                .all(|n| state.get(n).is_some_and(|s| s.seen_at.elapsed() >= grace))
    }

    /// Each NoExecute taint with how long ago it was added.
    fn taint_ages(&self, node: &str, taints: &[Taint], now: Timestamp) -> Vec<(Taint, Duration)> {
        let mut state = self.lock();
        let Some(entry) = state.get_mut(node) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut keep = Vec::new();
        for t in taints.iter().filter(|t| t.effect == NO_EXECUTE) {
            let age = match &t.time_added {
                Some(added) => {
                    let d = now.duration_since(added.0);
                    if d.is_positive() {
                        d.unsigned_abs()
                    } else {
                        Duration::ZERO
                    }
                }
                None => {
                    let id = format!(
                        "{}={}:{}",
                        t.key,
                        t.value.as_deref().unwrap_or(""),
                        t.effect
                    );
                    let first = *entry
                        .untimed_taints
                        .entry(id.clone())
                        .or_insert_with(Instant::now);
                    keep.push(id);
                    first.elapsed()
                }
            };
            out.push((t.clone(), age));
        }
        entry.untimed_taints.retain(|k, _| keep.contains(k));
        out
    }
}

#[async_trait::async_trait]
impl Reconciler for NodeLifecycleReconciler {
    fn name(&self) -> &'static str {
        "nodelifecycle"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue> {
        let Some(raw) = self.ctx.informers.nodes.get(key) else {
            self.lock().remove(&key.name);
            return Ok(Requeue::Done);
        };
        let node: Node = decode(&raw, key)?;
        let lease_key = ObjectKey::new(Some(NODE_LEASE_NAMESPACE), &key.name);
        let renewed = self
            .ctx
            .informers
            .leases
            .get(&lease_key)
            .and_then(|l| serde_json::from_value::<Lease>((*l).clone()).ok())
            .and_then(|l| l.spec?.renew_time.map(|t| t.0));
        let posted = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
        let since = self.since_heartbeat(&key.name, (renewed, posted));
        let grace = self.ctx.config.node_monitor_grace_period;
        let now = Timestamp::now();
        let plan = plan_node(&node, since, grace, now);

        let mut current = (*raw).clone();
        if let Some(status) = &plan.status {
            current["status"] = serde_json::to_value(status)
                .map_err(|e| Error::json(format!("node {key} status"), e))?;
            current = self
                .ctx
                .client
                .replace_status(&registry::NODE, None, &key.name, &current)
                .await?;
            if plan.became_unreachable {
                self.ctx
                    .events
                    .record(
                        &current,
                        "Normal",
                        "NodeNotReady",
                        &format!("Node {} status is now: NodeNotReady", key.name),
                    )
                    .await;
            }
        }
        if let Some(taints) = &plan.taints {
            let spec = current.as_object_mut().map(|o| {
                o.entry("spec")
                    .or_insert_with(|| Value::Object(Default::default()))
            });
            if let Some(Value::Object(spec)) = spec {
                if taints.is_empty() {
                    spec.remove("taints");
                } else {
                    spec.insert(
                        "taints".into(),
                        serde_json::to_value(taints)
                            .map_err(|e| Error::json(format!("node {key} taints"), e))?,
                    );
                }
            }
            current = self
                .ctx
                .client
                .replace(&registry::NODE, None, &key.name, &current)
                .await?;
        }

        let taints: Vec<Taint> = current
            .pointer("/spec/taints")
            .cloned()
            .and_then(|t| serde_json::from_value(t).ok())
            .unwrap_or_default();
        let ages = self.taint_ages(&key.name, &taints, now);
        let mut requeue = plan.requeue;
        if !ages.is_empty() {
            let pods: Vec<(Value, Pod)> = self
                .ctx
                .informers
                .pods
                .list()
                .iter()
                .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(&key.name))
                .filter_map(|p| {
                    Some((
                        (**p).clone(),
                        serde_json::from_value::<Pod>((**p).clone()).ok()?,
                    ))
                })
                .filter(|(_, p)| {
                    !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    )
                })
                .collect();
            let candidates: Vec<EvictionCandidate> = pods
                .iter()
                .map(|(_, p)| EvictionCandidate {
                    name: p.metadata.name.clone().unwrap_or_default(),
                    uid: p.metadata.uid.clone().unwrap_or_default(),
                    tolerations: p
                        .spec
                        .as_ref()
                        .and_then(|s| s.tolerations.clone())
                        .unwrap_or_default(),
                })
                .collect();
            let evictions = plan_evictions(
                &ages,
                &candidates,
                self.ctx.config.default_unreachable_toleration,
            );
            if self.all_unreachable() && !evictions.evict.is_empty() {
                // Full disruption: look again after a grace period.
                tracing::info!(node = %key, "every node is unreachable: evictions paused");
                let wait = Some(grace);
                requeue = requeue.map_or(wait, |r| Some(r.min(grace)));
            } else {
                for victim in &evictions.evict {
                    let Some((raw_pod, pod)) = pods
                        .iter()
                        .find(|(_, p)| p.metadata.uid.as_deref() == Some(&victim.uid))
                    else {
                        continue;
                    };
                    let namespace = pod.metadata.namespace.as_deref();
                    let params = DeleteParams {
                        grace_period_seconds: Some(0),
                        precondition_uid: Some(victim.uid.clone()),
                        ..Default::default()
                    };
                    match self
                        .ctx
                        .client
                        .delete(&registry::POD, namespace, &victim.name, &params)
                        .await
                    {
                        Ok(_) => {
                            self.ctx
                                .events
                                .record(
                                    raw_pod,
                                    "Normal",
                                    "TaintManagerEviction",
                                    &format!(
                                        "Marking for deletion Pod {}/{}",
                                        namespace.unwrap_or(""),
                                        victim.name
                                    ),
                                )
                                .await;
                        }
                        Err(e) if e.is_not_found() || e.is_conflict() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                if let Some(d) = evictions.requeue {
                    requeue = Some(requeue.map_or(d, |r| r.min(d)));
                }
            }
        }
        Ok(requeue.map_or(Requeue::Done, Requeue::After))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: &str = "2025-01-01T00:10:00Z";
    const GRACE: Duration = Duration::from_secs(40);

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    fn node(ready: Option<&str>, taints: Value) -> Node {
        let conditions = match ready {
            Some(s) => json!([
                {"type": "Ready", "status": s, "lastHeartbeatTime": "2025-01-01T00:00:00Z"},
                {"type": "MemoryPressure", "status": "False"},
            ]),
            None => json!([]),
        };
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"zone": "a", "rank": "5"}},
            "spec": {"taints": taints},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn taint_keys(p: &NodeHealthPlan) -> Option<Vec<String>> {
        p.taints.as_ref().map(|ts| {
            ts.iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect()
        })
    }

    fn unreachable_taints() -> Value {
        json!([
            {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"},
            {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2025-01-01T00:05:00Z"},
        ])
    }

    #[test]
    fn health_table() {
        let secs = Duration::from_secs;
        let unreachable = Some(vec![
            format!("{TAINT_UNREACHABLE}:NoSchedule"),
            format!("{TAINT_UNREACHABLE}:NoExecute"),
        ]);
        // (name, node, since heartbeat, taints written, status written, requeue)
        type Case<'a> = (
            &'a str,
            Node,
            Duration,
            Option<Vec<String>>,
            bool,
            Option<Duration>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "fresh and ready",
                node(Some("True"), json!([])),
                secs(10),
                None,
                false,
                Some(secs(30)),
            ),
            (
                "just stale",
                node(Some("True"), json!([])),
                GRACE,
                unreachable.clone(),
                true,
                None,
            ),
            (
                "stale, already marked",
                node(Some("Unknown"), unreachable_taints()),
                secs(100),
                None,
                true, // MemoryPressure still False → Unknown
                None,
            ),
            (
                "renewed again: untainted",
                node(Some("Unknown"), unreachable_taints()),
                secs(0),
                Some(vec![]),
                false,
                Some(GRACE),
            ),
            (
                "reports NotReady: not-ready taints",
                node(Some("False"), json!([])),
                secs(1),
                Some(vec![
                    format!("{TAINT_NOT_READY}:NoSchedule"),
                    format!("{TAINT_NOT_READY}:NoExecute"),
                ]),
                false,
                Some(secs(39)),
            ),
            (
                "others' taints are kept",
                node(
                    Some("True"),
                    json!([{"key": "dedicated", "effect": "NoSchedule"}]),
                ),
                GRACE,
                Some(vec![
                    "dedicated:NoSchedule".to_string(),
                    format!("{TAINT_UNREACHABLE}:NoSchedule"),
                    format!("{TAINT_UNREACHABLE}:NoExecute"),
                ]),
                true,
                None,
            ),
            (
                "never posted status",
                node(None, json!([])),
                GRACE,
                unreachable,
                true,
                None,
            ),
        ];
        for (name, n, since, taints, status, requeue) in cases {
            let p = plan_node(&n, since, GRACE, now());
            assert_eq!(taint_keys(&p), taints, "{name}: taints");
            assert_eq!(p.status.is_some(), status, "{name}: status");
            assert_eq!(p.requeue, requeue, "{name}: requeue");
        }
    }

    #[test]
    fn stale_node_conditions() {
        let p = plan_node(&node(Some("True"), json!([])), GRACE, GRACE, now());
        assert!(p.became_unreachable);
        let conds = p.status.unwrap().conditions.unwrap();
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(ready.last_transition_time, Some(Time(now())));
        // The heartbeat time stays what the node last posted.
        assert!(ready.last_heartbeat_time.is_some());
        let mem = conds.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!(mem.status, "Unknown");
        // The NoExecute taint carries timeAdded, the NoSchedule one does not.
        let taints = p.taints.unwrap();
        assert_eq!(taints[0].time_added, None);
        assert_eq!(taints[1].time_added, Some(Time(now())));
        // Planning the written node again changes nothing.
        let mut written = node(Some("True"), json!([]));
        written.status.as_mut().unwrap().conditions = Some(conds);
        written.spec.as_mut().unwrap().taints = Some(taints);
        let again = plan_node(&written, GRACE * 2, GRACE, now());
        assert_eq!((again.status, again.taints), (None, None));
        assert!(!again.became_unreachable);
    }

    fn toleration(key: &str, effect: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            toleration_seconds: seconds,
            value: None,
        }
    }

    #[test]
    fn tolerations_table() {
        let taint = |key: &str, value: Option<&str>, effect: &str| Taint {
            key: key.into(),
            value: value.map(str::to_string),
            effect: effect.into(),
            time_added: None,
        };
        let t =
            |key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>| Toleration {
                key: key.map(str::to_string),
                operator: Some(op.into()),
                value: value.map(str::to_string),
                effect: effect.map(str::to_string),
                toleration_seconds: None,
            };
        let cases = [
            (
                "exists, same key",
                t(Some("k"), "Exists", None, None),
                taint("k", Some("v"), "NoSchedule"),
                true,
            ),
            (
                "equal value",
                t(Some("k"), "Equal", Some("v"), None),
                taint("k", Some("v"), "NoSchedule"),
                true,
            ),
            (
                "other value",
                t(Some("k"), "Equal", Some("w"), None),
                taint("k", Some("v"), "NoSchedule"),
                false,
            ),
            (
                "other key",
                t(Some("j"), "Exists", None, None),
                taint("k", None, "NoSchedule"),
                false,
            ),
            (
                "effect must match",
                t(Some("k"), "Exists", None, Some("NoExecute")),
                taint("k", None, "NoSchedule"),
                false,
            ),
            (
                "empty key exists: everything",
                t(None, "Exists", None, None),
                taint("k", None, "NoExecute"),
                true,
            ),
            (
                "empty value equals no value",
                t(Some("k"), "Equal", None, None),
                taint("k", None, "NoExecute"),
                true,
            ),
        ];
        for (name, tol, tnt, want) in cases {
            assert_eq!(tolerates(&tol, &tnt), want, "{name}");
        }
    }

    #[test]
    fn affinity_table() {
        let n = node(Some("True"), json!([]));
        let spec = |affinity: Value, selector: Value| -> PodSpec {
            serde_json::from_value(json!({"containers": [], "nodeSelector": selector,
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": affinity}}}}))
            .unwrap()
        };
        let cases = [
            (
                "selector",
                json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]),
                json!({"zone": "a"}),
                true,
            ),
            (
                "selector mismatch",
                json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]),
                json!({"zone": "b"}),
                false,
            ),
            (
                "in",
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]),
                json!({}),
                true,
            ),
            (
                "not in",
                json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]),
                json!({}),
                false,
            ),
            (
                "does not exist",
                json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]),
                json!({}),
                true,
            ),
            (
                "gt",
                json!([{"matchExpressions": [{"key": "rank", "operator": "Gt", "values": ["4"]}]}]),
                json!({}),
                true,
            ),
            (
                "lt",
                json!([{"matchExpressions": [{"key": "rank", "operator": "Lt", "values": ["4"]}]}]),
                json!({}),
                false,
            ),
            (
                "terms are ORed",
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                json!({}),
                true,
            ),
            (
                "match fields other node",
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]),
                json!({}),
                false,
            ),
            ("empty term matches nothing", json!([{}]), json!({}), false),
        ];
        for (name, affinity, selector, want) in cases {
            assert_eq!(
                node_matches_pod_affinity(&spec(affinity, selector), &n),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn evictions_table() {
        let secs = Duration::from_secs;
        let unreachable = |age| {
            (
                Taint {
                    key: TAINT_UNREACHABLE.into(),
                    effect: "NoExecute".into(),
                    value: None,
                    time_added: None,
                },
                age,
            )
        };
        let pod = |name: &str, tolerations: Vec<Toleration>| EvictionCandidate {
            name: name.into(),
            uid: name.into(),
            tolerations,
        };
        let default = secs(300);
        // (name, taints, pod, evicted now, requeue)
        type Case<'a> = (
            &'a str,
            Vec<(Taint, Duration)>,
            EvictionCandidate,
            bool,
            Option<Duration>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "default toleration: waits",
                vec![unreachable(secs(100))],
                pod("p", vec![]),
                false,
                Some(secs(200)),
            ),
            (
                "default toleration: runs out",
                vec![unreachable(secs(300))],
                pod("p", vec![]),
                true,
                None,
            ),
            (
                "own toleration seconds",
                vec![unreachable(secs(1))],
                pod(
                    "p",
                    vec![toleration(TAINT_UNREACHABLE, "NoExecute", Some(1))],
                ),
                true,
                None,
            ),
            (
                "own toleration forever (a daemon)",
                vec![unreachable(secs(10_000))],
                pod("p", vec![toleration(TAINT_UNREACHABLE, "NoExecute", None)]),
                false,
                None,
            ),
            (
                "untolerated NoExecute taint: at once",
                vec![(
                    Taint {
                        key: "dedicated".into(),
                        effect: "NoExecute".into(),
                        value: None,
                        time_added: None,
                    },
                    secs(0),
                )],
                pod("p", vec![]),
                true,
                None,
            ),
            (
                "NoSchedule taints evict nobody",
                vec![(
                    Taint {
                        key: "dedicated".into(),
                        effect: "NoSchedule".into(),
                        value: None,
                        time_added: None,
                    },
                    secs(0),
                )],
                pod("p", vec![]),
                false,
                None,
            ),
        ];
        for (name, taints, p, evicted, requeue) in cases {
            let plan = plan_evictions(&taints, &[p], default);
            assert_eq!(!plan.evict.is_empty(), evicted, "{name}");
            assert_eq!(plan.requeue, requeue, "{name}");
        }
    }

    #[test]
    fn default_tolerations_only_when_missing() {
        let d = Duration::from_secs(300);
        let added = with_default_tolerations(&[], d);
        assert_eq!(added.len(), 2);
        assert!(added.iter().all(|t| t.toleration_seconds == Some(300)));
        let own =
            with_default_tolerations(&[toleration(TAINT_UNREACHABLE, "NoExecute", Some(5))], d);
        assert_eq!(own.len(), 2, "only not-ready is added");
        let everything = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        assert_eq!(with_default_tolerations(&[everything], d).len(), 1);
    }
}
