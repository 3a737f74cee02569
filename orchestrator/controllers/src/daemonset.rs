//! The DaemonSet controller: one pod of the DaemonSet on every node that should run it
//! (edge: an agent on every site).
//!
//! A node should run the pod when it matches the template's `nodeSelector` and required
//! node affinity and the pod tolerates its `NoSchedule`/`NoExecute` taints; a pod whose
//! node only gained a `NoSchedule` taint keeps running ("should continue running"), one
//! that does not tolerate a `NoExecute` taint is removed. Daemon pods get Kubernetes'
//! default daemon tolerations (`not-ready`/`unreachable` NoExecute forever, the pressure
//! and `unschedulable` NoSchedule taints), so a node going unreachable keeps its daemon.
//!
//! Pods are created **bound** (`spec.nodeName` set) with a required node affinity
//! `matchFields metadata.name In [node]`, as Kubernetes writes it: the DaemonSet decides
//! the node itself and needs no scheduler (which may not know `matchFields`). A pod whose
//! node is gone is deleted.
//!
//! Updates: the template's hash (`controller-revision-hash` label). `RollingUpdate`
//! replaces old pods node by node within `maxUnavailable` (default 1) — or, with
//! `maxSurge`, starts the new pod beside the old one and deletes the old one once the new
//! one is available; `OnDelete` replaces a pod only when someone deletes it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};
use skiff_api::registry;
use skiff_client::ObjectKey;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::driver::{Controller, Reconciler, Requeue};
use crate::error::{Error, Result};
use crate::job::{
    Expectations, PodRef, TemplateOwner, decode, delete_pods, pod_from_raw_template, pod_ready,
};
use crate::nodelifecycle::{
    TAINT_NOT_READY, TAINT_UNREACHABLE, node_matches_pod_affinity, tolerates,
};

/// The label carrying the template hash on a DaemonSet's pods.
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// Runs the DaemonSet controller until `cancel`.
pub async fn run(ctx: Context, cancel: CancellationToken) {
    let daemonsets = ctx.informers.daemonsets.clone();
    let pods = ctx.informers.pods.clone();
    let nodes = ctx.informers.nodes.clone();
    let all = daemonsets.clone();
    let reconciler = Arc::new(DaemonSetReconciler {
        ctx,
        expectations: Expectations::default(),
    });
    Controller::new(reconciler, daemonsets)
        .owns(pods, "DaemonSet")
        // A node added, removed, relabelled or tainted may change every DaemonSet.
        .watches(nodes, move |_| {
            all.list().iter().filter_map(|d| ObjectKey::of(d)).collect()
        })
        .concurrency(4)
        .run(cancel)
        .await
}

// ------------------------------------------------------------------------------ plan

/// What the plan needs to know about one pod of the DaemonSet.
#[derive(Clone, Debug, PartialEq)]
pub struct DaemonPod {
    pub name: String,
    pub uid: String,
    /// `spec.nodeName` ("" when unbound).
    pub node: String,
    /// Its `controller-revision-hash` label.
    pub hash: Option<String>,
    /// Phase Succeeded or Failed.
    pub finished: bool,
    pub deleting: bool,
    /// Since when it has been Ready (None: not ready).
    pub ready_since: Option<Timestamp>,
    pub created: Option<Timestamp>,
}

impl DaemonPod {
    pub fn from_pod(pod: &Pod) -> DaemonPod {
        let ready_since = pod_ready(pod).then(|| {
            pod.status
                .as_ref()?
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Ready")?
                .last_transition_time
                .as_ref()
                .map(|t| t.0)
        });
        DaemonPod {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
            hash: pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL).cloned()),
            finished: matches!(
                pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            ),
            deleting: pod.metadata.deletion_timestamp.is_some(),
            // Ready without a transition time: ready since forever.
            ready_since: ready_since.map(|t| t.unwrap_or(Timestamp::UNIX_EPOCH)),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
        }
    }

    fn to_ref(&self) -> PodRef {
        PodRef {
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }
}

/// The inputs of [`plan`].
#[derive(Clone, Debug)]
pub struct DaemonSetObserved<'a> {
    pub daemonset: &'a DaemonSet,
    /// The template's hash.
    pub hash: &'a str,
    pub nodes: &'a [Node],
    /// The DaemonSet's pods (controller ownerReference).
    pub pods: &'a [DaemonPod],
    pub now: Timestamp,
    /// False while earlier creates/deletes are not yet in the cache.
    pub may_manage_pods: bool,
}

/// What one reconcile of a DaemonSet does.
#[derive(Clone, Debug, PartialEq)]
pub struct DaemonSetPlan {
    /// Nodes to create a pod on.
    pub create: Vec<String>,
    pub delete: Vec<PodRef>,
    /// The status to write (when it differs).
    pub status: DaemonSetStatus,
    /// Look again after this long (a pod becoming available after minReadySeconds).
    pub requeue: Option<Duration>,
}

/// Whether a node should run the daemon pod, and whether a pod already there may stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub should_run: bool,
    pub should_continue_running: bool,
}

/// Kubernetes' default tolerations of daemon pods, added to the template's.
pub fn daemon_tolerations(template: &[Toleration]) -> Vec<Toleration> {
    let mut all = template.to_vec();
    let defaults = [
        (TAINT_NOT_READY, "NoExecute"),
        (TAINT_UNREACHABLE, "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    for (key, effect) in defaults {
        let present = all.iter().any(|t| {
            t.key.as_deref() == Some(key)
                && t.effect.as_deref() == Some(effect)
                && t.operator.as_deref() == Some("Exists")
                && t.toleration_seconds.is_none()
        });
        if !present {
            all.push(Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".to_string()),
                effect: Some(effect.to_string()),
                ..Default::default()
            });
        }
    }
    all
}

/// Where the daemon pod belongs: pure.
pub fn placement(spec: &PodSpec, tolerations: &[Toleration], node: &Node) -> Placement {
    if !node_matches_pod_affinity(spec, node) {
        return Placement {
            should_run: false,
            should_continue_running: false,
        };
    }
    let mut placement = Placement {
        should_run: true,
        should_continue_running: true,
    };
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_ref());
    for taint in taints.into_iter().flatten() {
        if tolerations.iter().any(|t| tolerates(t, taint)) {
            continue;
        }
        match taint.effect.as_str() {
            "NoSchedule" => placement.should_run = false,
            "NoExecute" => {
                placement.should_run = false;
                placement.should_continue_running = false;
            }
            _ => {}
        }
    }
    placement
}

/// `maxUnavailable`/`maxSurge` of `total`, percentages rounded up.
fn scaled(value: Option<&IntOrString>, total: usize, default: usize) -> usize {
    match value {
        None => default,
        Some(IntOrString::Int(n)) => (*n).max(0) as usize,
        Some(IntOrString::String(s)) => {
            let pct = s.trim_end_matches('%').trim().parse::<usize>().unwrap_or(0);
            (pct * total).div_ceil(100)
        }
    }
}

/// Decides what to do with a DaemonSet: pure.
pub fn plan(o: &DaemonSetObserved<'_>) -> DaemonSetPlan {
    let ds = o.daemonset;
    let spec = ds.spec.clone().unwrap_or_default();
    let pod_spec = spec.template.spec.clone().unwrap_or_default();
    let tolerations = daemon_tolerations(pod_spec.tolerations.as_deref().unwrap_or(&[]));
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0).max(0));
    let now = o.now;
    let mut requeue: Option<Duration> = None;
    let mut wake_in = |d: Duration| requeue = Some(requeue.map_or(d, |r: Duration| r.min(d)));
    let mut available = |p: &DaemonPod| -> bool {
        let Some(since) = p.ready_since else {
            return false;
        };
        let at = since
            .saturating_add(SignedDuration::from_secs(min_ready))
            .unwrap_or(Timestamp::MAX);
        let left = at.duration_since(now);
        if left.is_positive() {
            wake_in(left.unsigned_abs());
            false
        } else {
            true
        }
    };
    let updated = |p: &DaemonPod| p.hash.as_deref() == Some(o.hash);

    let mut by_node: BTreeMap<&str, Vec<&DaemonPod>> = BTreeMap::new();
    for p in o.pods {
        by_node.entry(p.node.as_str()).or_default().push(p);
    }
    for pods in by_node.values_mut() {
        pods.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    }
    let node_names: HashSet<&str> = o
        .nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();

    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate";
    let rolling_update = strategy.rolling_update.clone().unwrap_or_default();

    let mut create = Vec::new();
    let mut delete: Vec<PodRef> = Vec::new();
    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        ..Default::default()
    };
    let (mut ready, mut avail, mut upd) = (0, 0, 0);

    // Pods on nodes that are gone (or never bound).
    for (node, pods) in &by_node {
        if !node_names.contains(node) {
            delete.extend(pods.iter().filter(|p| !p.deleting).map(|p| p.to_ref()));
        }
    }

    // Per node: the pods that run there and should.
    struct Running<'p> {
        node: &'p str,
        old: Vec<&'p DaemonPod>,
        new: Vec<&'p DaemonPod>,
    }
    let mut running_nodes: Vec<Running<'_>> = Vec::new();
    let mut nodes: Vec<&Node> = o.nodes.iter().collect();
    nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    // Any positive maxSurge (1% of 100 is 1) switches to surging.
    let surge_enabled = rolling && scaled(rolling_update.max_surge.as_ref(), 100, 0) > 0;
    for node in nodes {
        let Some(name) = node.metadata.name.as_deref() else {
            continue;
        };
        let here = by_node.get(name).cloned().unwrap_or_default();
        let place = placement(&pod_spec, &tolerations, node);
        let live: Vec<&DaemonPod> = here.iter().copied().filter(|p| !p.deleting).collect();
        if place.should_run {
            status.desired_number_scheduled += 1;
            if !live.is_empty() {
                status.current_number_scheduled += 1;
            }
        } else if !live.is_empty() {
            status.number_misscheduled += 1;
        }
        if !place.should_continue_running {
            delete.extend(live.iter().map(|p| p.to_ref()));
            continue;
        }
        if place.should_run && here.is_empty() {
            create.push(name.to_string());
            continue;
        }
        // Failed pods are replaced (the next pass creates, once this one is gone).
        let (finished, running): (Vec<&DaemonPod>, Vec<&DaemonPod>) =
            live.iter().copied().partition(|p| p.finished);
        delete.extend(finished.iter().map(|p| p.to_ref()));
        let (mut new, mut old): (Vec<&DaemonPod>, Vec<&DaemonPod>) =
            running.iter().copied().partition(|p| updated(p));
        // One pod per node (with surge: one new and one old at most); the oldest stays.
        if surge_enabled {
            delete.extend(new.drain(1.min(new.len())..).map(|p| p.to_ref()));
            delete.extend(old.drain(1.min(old.len())..).map(|p| p.to_ref()));
        } else if running.len() > 1 {
            let keep = running[0];
            delete.extend(running[1..].iter().map(|p| p.to_ref()));
            new.retain(|p| p.uid == keep.uid);
            old.retain(|p| p.uid == keep.uid);
        }
        if place.should_run {
            // The pod that counts for the node: the new one when there is one.
            if let Some(p) = new.first().or(old.first()) {
                if p.ready_since.is_some() {
                    ready += 1;
                }
                if available(p) {
                    avail += 1;
                }
                if updated(p) {
                    upd += 1;
                }
            }
            running_nodes.push(Running {
                node: name,
                old,
                new,
            });
        }
    }

    // Rolling update.
    if rolling {
        let desired = status.desired_number_scheduled.max(0) as usize;
        let max_surge = if surge_enabled {
            scaled(rolling_update.max_surge.as_ref(), desired, 0)
        } else {
            0
        };
        let mut max_unavailable = scaled(rolling_update.max_unavailable.as_ref(), desired, 1);
        if max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        if max_surge == 0 {
            let mut unavailable = running_nodes
                .iter()
                .filter(|r| !r.new.iter().chain(&r.old).any(|p| available(p)))
                .count()
                + create.len();
            let mut candidates = Vec::new();
            for r in &running_nodes {
                if let (Some(old), true) = (r.old.first(), r.new.is_empty()) {
                    if available(old) {
                        candidates.push(*old);
                    } else {
                        // Already unavailable: replacing it costs nothing.
                        delete.push(old.to_ref());
                    }
                }
            }
            for old in candidates {
                if unavailable >= max_unavailable {
                    break;
                }
                delete.push(old.to_ref());
                unavailable += 1;
            }
        } else {
            let mut surging = running_nodes
                .iter()
                .filter(|r| !r.old.is_empty() && !r.new.is_empty())
                .count();
            let mut candidates = Vec::new();
            for r in &running_nodes {
                let Some(old) = r.old.first() else { continue };
                match r.new.first() {
                    Some(new) => {
                        if available(new) {
                            delete.push(old.to_ref());
                        }
                    }
                    // An unavailable old pod is replaced at once.
                    None if !available(old) => {
                        create.push(r.node.to_string());
                        surging += 1;
                    }
                    None => candidates.push(r.node),
                }
            }
            for node in candidates {
                if surging >= max_surge {
                    break;
                }
                create.push(node.to_string());
                surging += 1;
            }
        }
    }

    status.number_ready = ready;
    status.number_available = (avail > 0).then_some(avail);
    status.updated_number_scheduled = (upd > 0).then_some(upd);
    let unavailable = status.desired_number_scheduled - avail;
    status.number_unavailable = (unavailable > 0).then_some(unavailable);

    let mut seen = HashSet::new();
    delete.retain(|d| seen.insert(d.uid.clone()));
    if !o.may_manage_pods {
        create.clear();
        delete.clear();
    }
    DaemonSetPlan {
        create,
        delete,
        status,
        requeue,
    }
}

/// A new daemon pod for `node`, from the template: bound, with the daemon tolerations
/// and the node affinity Kubernetes writes.
fn daemon_pod(raw: &Value, ds: &DaemonSet, hash: &str, node: &str) -> Result<Value> {
    let owner = TemplateOwner {
        api_version: "apps/v1",
        kind: "DaemonSet",
        name: ds.metadata.name.as_deref().unwrap_or_default(),
        uid: ds.metadata.uid.as_deref().unwrap_or_default(),
    };
    let mut pod = pod_from_raw_template(raw, &owner, &[(CONTROLLER_REVISION_HASH_LABEL, hash)]);
    let template: PodTemplateSpec = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tolerations = daemon_tolerations(
        template
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or(&[]),
    );
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
        ..Default::default()
    };
    if let Some(s) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        s.insert("nodeName".into(), node.into());
        s.insert(
            "tolerations".into(),
            serde_json::to_value(&tolerations)
                .map_err(|e| Error::json("daemon pod tolerations", e))?,
        );
        let affinity = s.entry("affinity").or_insert_with(|| json!({}));
        if let Some(a) = affinity.as_object_mut() {
            let node_affinity = a.entry("nodeAffinity").or_insert_with(|| json!({}));
            if let Some(na) = node_affinity.as_object_mut() {
                na.insert(
                    "requiredDuringSchedulingIgnoredDuringExecution".into(),
                    json!({"nodeSelectorTerms": [serde_json::to_value(&term)
                        .map_err(|e| Error::json("daemon pod affinity", e))?]}),
                );
            }
        }
    }
    Ok(pod)
}

// ------------------------------------------------------------------------------ apply

struct DaemonSetReconciler {
    ctx: Context,
    expectations: Expectations,
}

#[async_trait::async_trait]
impl Reconciler for DaemonSetReconciler {
    fn name(&self) -> &'static str {
        "daemonset"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue> {
        let Some(raw) = self.ctx.informers.daemonsets.get(key) else {
            self.expectations.forget(key);
            return Ok(Requeue::Done);
        };
        let ds: DaemonSet = decode(&raw, key)?;
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::Done);
        }
        let Some(spec) = &ds.spec else {
            return Err(Error::invalid(key, "a DaemonSet without spec"));
        };
        let hash = skiff_api::template_hash::pod_template_hash(&spec.template);
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let namespace = key.namespace_str();
        let nodes: Vec<Node> = self
            .ctx
            .informers
            .nodes
            .list()
            .iter()
            .filter_map(|n| serde_json::from_value((**n).clone()).ok())
            .collect();
        let pods: Vec<DaemonPod> = self
            .ctx
            .informers
            .pods
            .list_namespace(namespace)
            .iter()
            .filter(|p| controlled_by(p, &uid))
            .filter_map(|p| serde_json::from_value::<Pod>((**p).clone()).ok())
            .map(|p| DaemonPod::from_pod(&p))
            .collect();
        let pending = self.expectations.pending(key, &self.ctx.informers.pods);
        let plan = plan(&DaemonSetObserved {
            daemonset: &ds,
            hash: &hash,
            nodes: &nodes,
            pods: &pods,
            now: Timestamp::now(),
            may_manage_pods: pending.is_none(),
        });

        let creates = plan.create.iter().map(|node| async {
            let pod = daemon_pod(&raw, &ds, &hash, node)?;
            let created = self
                .ctx
                .client
                .create(&registry::POD, Some(namespace), &pod)
                .await?;
            Ok::<String, Error>(
                created
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        });
        let created = futures::future::join_all(creates).await;
        let deleted = delete_pods(&self.ctx, namespace, &plan.delete).await;
        self.expectations.expect(
            key,
            created
                .iter()
                .filter_map(|r| r.as_ref().ok().cloned())
                .collect(),
            deleted.clone(),
        );
        for (node, result) in plan.create.iter().zip(&created) {
            match result {
                Ok(name) => {
                    self.ctx
                        .events
                        .record(
                            &raw,
                            "Normal",
                            "SuccessfulCreate",
                            &format!("Created pod: {name}"),
                        )
                        .await
                }
                Err(e) => {
                    self.ctx
                        .events
                        .record(
                            &raw,
                            "Warning",
                            "FailedCreate",
                            &format!("Error creating: {e} (node {node})"),
                        )
                        .await
                }
            }
        }
        for d in &deleted {
            self.ctx
                .events
                .record(
                    &raw,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted pod: {}", d.name),
                )
                .await;
        }

        if Some(&plan.status) != ds.status.as_ref() {
            let mut updated = (*raw).clone();
            updated["status"] = serde_json::to_value(&plan.status)
                .map_err(|e| Error::json(format!("daemonset {key} status"), e))?;
            self.ctx
                .client
                .replace_status(&registry::DAEMON_SET, Some(namespace), &key.name, &updated)
                .await?;
        }
        if let Some(Err(e)) = created.into_iter().find(|r| r.is_err()) {
            return Err(e);
        }
        let requeue = match (plan.requeue, pending) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(requeue.map_or(Requeue::Done, Requeue::After))
    }
}

/// Whether `object`'s controller ownerReference has `uid`.
pub(crate) fn controlled_by(object: &Value, uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter().any(|r| {
                r.get("controller").and_then(Value::as_bool) == Some(true)
                    && r.get("uid").and_then(Value::as_str) == Some(uid)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2025-01-01T00:00:00Z";
    const HASH: &str = "h2";

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ds(spec: Value) -> DaemonSet {
        let mut s = json!({
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "file:///a.wasm"}]}},
        });
        for (k, v) in spec.as_object().unwrap() {
            s[k] = v.clone();
        }
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "ns", "uid": "ds1", "generation": 3},
            "spec": s,
        }))
        .unwrap()
    }

    fn node(name: &str, labels: Value, taints: Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
        }))
        .unwrap()
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool) -> DaemonPod {
        DaemonPod {
            name: name.into(),
            uid: format!("uid-{name}"),
            node: node.into(),
            hash: Some(hash.into()),
            finished: false,
            deleting: false,
            ready_since: ready.then(|| ts(T0)),
            created: Some(ts(T0)),
        }
    }

    fn run(ds: &DaemonSet, nodes: &[Node], pods: &[DaemonPod]) -> DaemonSetPlan {
        plan(&DaemonSetObserved {
            daemonset: ds,
            hash: HASH,
            nodes,
            pods,
            now: ts("2025-01-01T01:00:00Z"),
            may_manage_pods: true,
        })
    }

    fn names(refs: &[PodRef]) -> Vec<&str> {
        let mut v: Vec<&str> = refs.iter().map(|r| r.name.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn placement_table() {
        let plain = ds(json!({}));
        let spec_of = |d: &DaemonSet| d.spec.clone().unwrap().template.spec.unwrap();
        let selecting = ds(
            json!({"template": {"metadata": {"labels": {"app": "agent"}},
            "spec": {"nodeSelector": {"site": "edge"}, "containers": [{"name": "c", "image": "file:///a.wasm"}]}}}),
        );
        let affinity = ds(
            json!({"template": {"metadata": {"labels": {"app": "agent"}},
            "spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}},
                "containers": [{"name": "c", "image": "file:///a.wasm"}]}}}),
        );
        let yes = Placement {
            should_run: true,
            should_continue_running: true,
        };
        let no = Placement {
            should_run: false,
            should_continue_running: false,
        };
        let keep = Placement {
            should_run: false,
            should_continue_running: true,
        };
        let cases: Vec<(&str, &DaemonSet, Node, Placement)> = vec![
            ("plain node", &plain, node("n", json!({}), json!([])), yes),
            (
                "nodeSelector matches",
                &selecting,
                node("n", json!({"site": "edge"}), json!([])),
                yes,
            ),
            (
                "nodeSelector does not match",
                &selecting,
                node("n", json!({"site": "dc"}), json!([])),
                no,
            ),
            (
                "affinity matches",
                &affinity,
                node("n", json!({"zone": "b"}), json!([])),
                yes,
            ),
            (
                "affinity does not match",
                &affinity,
                node("n", json!({"zone": "c"}), json!([])),
                no,
            ),
            (
                "untolerated NoSchedule: keep but do not start",
                &plain,
                node(
                    "n",
                    json!({}),
                    json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
                ),
                keep,
            ),
            (
                "untolerated NoExecute: remove",
                &plain,
                node(
                    "n",
                    json!({}),
                    json!([{"key": "dedicated", "effect": "NoExecute"}]),
                ),
                no,
            ),
            (
                "PreferNoSchedule is ignored",
                &plain,
                node(
                    "n",
                    json!({}),
                    json!([{"key": "x", "effect": "PreferNoSchedule"}]),
                ),
                yes,
            ),
            (
                "unreachable/not-ready NoExecute and unschedulable are tolerated by default",
                &plain,
                node(
                    "n",
                    json!({}),
                    json!([
                    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
                    {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
                    {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                    {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]),
                ),
                yes,
            ),
            (
                "an unreachable node keeps its daemon but gets no new one",
                &plain,
                node(
                    "n",
                    json!({}),
                    json!([
                    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
                    {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]),
                ),
                keep,
            ),
        ];
        for (name, d, n, want) in cases {
            let spec = spec_of(d);
            let tol = daemon_tolerations(spec.tolerations.as_deref().unwrap_or(&[]));
            assert_eq!(placement(&spec, &tol, &n), want, "{name}");
        }
    }

    #[test]
    fn follows_nodes() {
        let d = ds(json!({}));
        let nodes = vec![
            node("a", json!({}), json!([])),
            node("b", json!({}), json!([])),
        ];
        // New nodes get a pod; a pod on a node that is gone is deleted.
        let pods = vec![pod("pa", "a", HASH, true), pod("pgone", "gone", HASH, true)];
        let p = run(&d, &nodes, &pods);
        assert_eq!(p.create, vec!["b".to_string()]);
        assert_eq!(names(&p.delete), vec!["pgone"]);
        assert_eq!(p.status.desired_number_scheduled, 2);
        assert_eq!(p.status.current_number_scheduled, 1);
        assert_eq!(p.status.number_ready, 1);
        assert_eq!(p.status.number_available, Some(1));
        assert_eq!(p.status.number_unavailable, Some(1));
        assert_eq!(p.status.updated_number_scheduled, Some(1));
        assert_eq!(p.status.observed_generation, Some(3));
    }

    #[test]
    fn duplicates_failed_and_terminating_pods() {
        let d = ds(json!({}));
        let nodes = vec![
            node("a", json!({}), json!([])),
            node("b", json!({}), json!([])),
            node("c", json!({}), json!([])),
        ];
        let mut second = pod("a2", "a", HASH, true);
        second.created = Some(ts("2025-01-01T00:10:00Z"));
        let failed = DaemonPod {
            finished: true,
            ..pod("bf", "b", HASH, false)
        };
        let terminating = DaemonPod {
            deleting: true,
            ..pod("ct", "c", HASH, false)
        };
        let p = run(
            &d,
            &nodes,
            &[pod("a1", "a", HASH, true), second, failed, terminating],
        );
        // The newer duplicate and the failed pod go; nothing is created beside a pod that
        // is still terminating or being deleted now.
        assert_eq!(names(&p.delete), vec!["a2", "bf"]);
        assert!(p.create.is_empty());
    }

    #[test]
    fn misscheduled_pods_are_counted_and_removed_only_for_noexecute() {
        let d = ds(
            json!({"template": {"metadata": {"labels": {"app": "agent"}},
            "spec": {"nodeSelector": {"site": "edge"}, "containers": [{"name": "c", "image": "file:///a.wasm"}]}}}),
        );
        let nodes = vec![
            node(
                "keep",
                json!({"site": "edge"}),
                json!([{"key": "k", "effect": "NoSchedule"}]),
            ),
            node("relabelled", json!({"site": "dc"}), json!([])),
        ];
        let p = run(
            &d,
            &nodes,
            &[
                pod("p1", "keep", HASH, true),
                pod("p2", "relabelled", HASH, true),
            ],
        );
        assert_eq!(names(&p.delete), vec!["p2"]);
        assert_eq!(p.status.desired_number_scheduled, 0);
        assert_eq!(p.status.number_misscheduled, 2);
    }

    #[test]
    fn rolling_update_table() {
        let nodes: Vec<Node> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| node(n, json!({}), json!([])))
            .collect();
        let all_old = || -> Vec<DaemonPod> {
            ["a", "b", "c", "d"]
                .iter()
                .map(|n| pod(&format!("p{n}"), n, "h1", true))
                .collect()
        };
        // (name, update strategy, pods, deletes, creates)
        type Case<'a> = (&'a str, Value, Vec<DaemonPod>, usize, Vec<&'a str>);
        let cases: Vec<Case<'_>> = vec![
            (
                "default maxUnavailable 1: one at a time",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}),
                all_old(),
                1,
                vec![],
            ),
            (
                "maxUnavailable 50%: two at a time",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}),
                all_old(),
                2,
                vec![],
            ),
            (
                "a missing pod uses the budget",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}),
                all_old().into_iter().skip(1).collect(),
                0,
                vec!["a"],
            ),
            (
                "unavailable old pods are replaced regardless",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}),
                {
                    let mut p = all_old();
                    p[0].ready_since = None;
                    p[1].ready_since = None;
                    p
                },
                2,
                vec![],
            ),
            (
                "OnDelete never deletes",
                json!({"type": "OnDelete"}),
                all_old(),
                0,
                vec![],
            ),
            (
                "maxSurge 1: one new pod beside the old",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}),
                all_old(),
                0,
                vec!["a"],
            ),
            (
                "maxSurge: the old pod goes once the new one is available",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}),
                {
                    let mut p = all_old();
                    p.push(pod("pa-new", "a", HASH, true));
                    p
                },
                1,
                vec![],
            ),
            (
                "maxSurge: wait for a new pod that is not ready",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}),
                {
                    let mut p = all_old();
                    p.push(pod("pa-new", "a", HASH, false));
                    p
                },
                0,
                vec![],
            ),
        ];
        for (name, strategy, pods, deletes, creates) in cases {
            let d = ds(json!({"updateStrategy": strategy}));
            let p = run(&d, &nodes, &pods);
            assert_eq!(p.delete.len(), deletes, "{name}: {:?}", p.delete);
            assert_eq!(p.create, creates, "{name}");
        }
    }

    #[test]
    fn min_ready_seconds_requeues_exactly() {
        let d = ds(json!({"minReadySeconds": 30}));
        let nodes = vec![node("a", json!({}), json!([]))];
        let mut p = pod("pa", "a", HASH, true);
        p.ready_since = Some(ts("2025-01-01T00:59:50Z"));
        let plan = run(&d, &nodes, &[p]);
        assert_eq!(plan.status.number_ready, 1);
        assert_eq!(plan.status.number_available, None);
        assert_eq!(plan.requeue, Some(Duration::from_secs(20)));
    }

    #[test]
    fn unobserved_writes_hold_pod_changes() {
        let d = ds(json!({}));
        let nodes = vec![node("a", json!({}), json!([]))];
        let p = plan(&DaemonSetObserved {
            daemonset: &d,
            hash: HASH,
            nodes: &nodes,
            pods: &[],
            now: ts(T0),
            may_manage_pods: false,
        });
        assert!(p.create.is_empty());
        assert_eq!(p.status.desired_number_scheduled, 1);
    }

    #[test]
    fn daemon_pods_are_bound_tolerant_and_owned() {
        let raw = json!({"metadata": {"name": "agent", "namespace": "ns", "uid": "ds1"}, "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
                "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]}}},
                "containers": [{"name": "c", "image": "file:///a.wasm"}]}}}});
        let d: DaemonSet = serde_json::from_value(raw.clone()).unwrap();
        let pod = daemon_pod(&raw, &d, "h9", "n1").unwrap();
        assert_eq!(pod["spec"]["nodeName"], "n1");
        assert_eq!(
            pod["metadata"]["labels"][CONTROLLER_REVISION_HASH_LABEL],
            "h9"
        );
        assert_eq!(pod["metadata"]["labels"]["app"], "agent");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
        let terms = &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"];
        assert_eq!(
            terms,
            &json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}])
        );
        let tolerations = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(
            tolerations.len(),
            7,
            "the template's one and the six defaults"
        );
        // Decodes as a valid typed pod.
        let _: Pod = serde_json::from_value(pod).unwrap();
    }
}
