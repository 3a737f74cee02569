//! What the replication controllers need to know about a Pod, read straight from the
//! cached JSON (no full typed decode of every pod in a namespace), and Kubernetes'
//! predicates over it: active, ready, available, and the order in which surplus pods are
//! deleted.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::Deserialize;
use serde_json::Value;

/// `controller.kubernetes.io/pod-deletion-cost`: pods with a lower cost go first.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The fields of a Pod the ReplicaSet and Deployment controllers look at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodView {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub resource_version: String,
    pub labels: BTreeMap<String, String>,
    pub owner_references: Vec<OwnerReference>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// `status.phase`; empty when the pod has none yet (counts as Pending).
    pub phase: String,
    /// `spec.nodeName`; empty while unscheduled.
    pub node_name: String,
    /// The Ready condition is True.
    pub ready: bool,
    /// When the Ready condition last changed (its `lastTransitionTime`).
    pub ready_since: Option<Timestamp>,
    /// The highest restart count of its containers.
    pub restarts: i32,
    pub created: Option<Timestamp>,
    pub deletion_cost: i32,
}

impl PodView {
    /// Reads a cached Pod; `None` when it has no name (not a real object).
    pub fn from_value(pod: &Value) -> Option<PodView> {
        let meta = pod.get("metadata")?;
        let text = |v: &Value, key: &str| {
            v.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let name = text(meta, "name");
        if name.is_empty() {
            return None;
        }
        let labels = meta
            .get("labels")
            .and_then(|l| BTreeMap::<String, String>::deserialize(l).ok())
            .unwrap_or_default();
        let owner_references = meta
            .get("ownerReferences")
            .and_then(|r| Vec::<OwnerReference>::deserialize(r).ok())
            .unwrap_or_default();
        let deletion_cost = meta
            .pointer("/annotations")
            .and_then(|a| a.get(DELETION_COST))
            .and_then(Value::as_str)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let status = pod.get("status");
        let ready_condition = status
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
            });
        let ready = ready_condition
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str)
            == Some("True");
        let ready_since = ready_condition
            .and_then(|c| c.get("lastTransitionTime"))
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok());
        let restarts = status
            .and_then(|s| s.get("containerStatuses"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
            .max()
            .map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX));
        Some(PodView {
            name,
            namespace: text(meta, "namespace"),
            uid: text(meta, "uid"),
            resource_version: text(meta, "resourceVersion"),
            labels,
            owner_references,
            deleting: meta.get("deletionTimestamp").is_some_and(|t| !t.is_null()),
            phase: status.map(|s| text(s, "phase")).unwrap_or_default(),
            node_name: pod
                .get("spec")
                .map(|s| text(s, "nodeName"))
                .unwrap_or_default(),
            ready,
            ready_since,
            restarts,
            created: meta
                .get("creationTimestamp")
                .and_then(Value::as_str)
                .and_then(|t| t.parse().ok()),
            deletion_cost,
        })
    }

    /// The controlling owner reference, if any.
    pub fn controller(&self) -> Option<&OwnerReference> {
        crate::replicaset::claim::controller_of(&self.owner_references)
    }

    /// Kubernetes' `IsPodActive`: not finished and not being deleted.
    pub fn is_active(&self) -> bool {
        self.phase != "Succeeded" && self.phase != "Failed" && !self.deleting
    }

    /// Ready for at least `min_ready_seconds` (Kubernetes' `IsPodAvailable`).
    pub fn is_available(&self, min_ready_seconds: i32, now: Timestamp) -> bool {
        self.available_in(min_ready_seconds, now) == Some(Duration::ZERO)
    }

    /// How long until this pod counts as available: zero when it is, `None` when it is not
    /// ready (or its readiness has no time to count from).
    pub fn available_in(&self, min_ready_seconds: i32, now: Timestamp) -> Option<Duration> {
        if !self.ready {
            return None;
        }
        if min_ready_seconds <= 0 {
            return Some(Duration::ZERO);
        }
        let since = self.ready_since?;
        let ready_for = now.duration_since(since);
        let needed = jiff::SignedDuration::from_secs(i64::from(min_ready_seconds));
        // Kubernetes: available when since + minReady is strictly before now.
        if ready_for > needed {
            Some(Duration::ZERO)
        } else {
            let rest = needed - ready_for;
            Some(Duration::try_from(rest).unwrap_or(Duration::ZERO) + Duration::from_millis(1))
        }
    }

    fn phase_ordinal(&self) -> u8 {
        match self.phase.as_str() {
            "Unknown" => 1,
            "Running" => 2,
            _ => 0,
        }
    }

    fn ready_time(&self) -> Option<Timestamp> {
        if self.ready { self.ready_since } else { None }
    }
}

/// `a` before `b` when `a` is later, treating a missing time as the earliest of all
/// (Kubernetes' `afterOrZero`, as an ordering).
fn later_or_missing_first(a: Option<Timestamp>, b: Option<Timestamp>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

/// The order in which a ReplicaSet deletes surplus pods (Kubernetes' `ActivePodsWithRanks`):
/// the pod that sorts first goes first. `rank_*` is how many of the owner's pods share the
/// pod's node (doubled-up pods go first).
pub fn deletion_order(a: &PodView, rank_a: usize, b: &PodView, rank_b: usize) -> Ordering {
    // 1. Unscheduled before scheduled.
    if a.node_name != b.node_name && (a.node_name.is_empty() || b.node_name.is_empty()) {
        return if a.node_name.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 2. Pending < Unknown < Running, 3. not ready < ready, 4. lower deletion cost,
    // 5. more pods on the same node.
    a.phase_ordinal()
        .cmp(&b.phase_ordinal())
        .then(a.ready.cmp(&b.ready))
        .then(a.deletion_cost.cmp(&b.deletion_cost))
        .then(rank_b.cmp(&rank_a))
        // 6. Ready for less time first.
        .then_with(|| {
            if a.ready && b.ready {
                later_or_missing_first(a.ready_time(), b.ready_time())
            } else {
                Ordering::Equal
            }
        })
        // 7. More restarts first, 8. newer first, then a stable tie-break.
        .then(b.restarts.cmp(&a.restarts))
        .then_with(|| later_or_missing_first(a.created, b.created))
        .then_with(|| a.name.cmp(&b.name))
}

/// `pods` sorted into deletion order (see [`deletion_order`]), ranks counted over `pods`.
pub fn sort_for_deletion<'a>(pods: &[&'a PodView]) -> Vec<&'a PodView> {
    let mut on_node: BTreeMap<&str, usize> = BTreeMap::new();
    for p in pods {
        *on_node.entry(p.node_name.as_str()).or_default() += 1;
    }
    let rank = |p: &PodView| on_node.get(p.node_name.as_str()).copied().unwrap_or(0);
    let mut sorted = pods.to_vec();
    sorted.sort_by(|a, b| deletion_order(a, rank(a), b, rank(b)));
    sorted
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A pod view for tables: `spec` is a comma-separated list of traits.
    pub(crate) fn pod(name: &str, traits: &str) -> PodView {
        let mut p = PodView {
            name: name.to_string(),
            namespace: "ns".into(),
            uid: format!("uid-{name}"),
            resource_version: "1".into(),
            phase: "Running".into(),
            node_name: "n1".into(),
            created: Some(ts("2024-01-01T00:00:00Z")),
            ..PodView::default()
        };
        for t in traits.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match t.split_once('=') {
                Some(("phase", v)) => p.phase = v.to_string(),
                Some(("node", v)) => p.node_name = v.to_string(),
                Some(("readySince", v)) => {
                    p.ready = true;
                    p.ready_since = Some(ts(v));
                }
                Some(("restarts", v)) => p.restarts = v.parse().unwrap(),
                Some(("created", v)) => p.created = Some(ts(v)),
                Some(("cost", v)) => p.deletion_cost = v.parse().unwrap(),
                Some(("label", kv)) => {
                    let (k, v) = kv.split_once(':').unwrap();
                    p.labels.insert(k.into(), v.into());
                }
                _ if t == "ready" => {
                    p.ready = true;
                    p.ready_since = Some(ts("2024-01-01T00:00:00Z"));
                }
                _ if t == "deleting" => p.deleting = true,
                _ if t == "unscheduled" => p.node_name.clear(),
                _ => panic!("unknown trait {t}"),
            }
        }
        p
    }

    #[test]
    fn reads_a_pod() {
        let v = json!({
            "metadata": {"name": "web-1", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                "labels": {"app": "web"}, "creationTimestamp": "2024-01-01T00:00:00Z",
                "annotations": {DELETION_COST: "-5"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                    "uid": "rs1", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:01:00Z"}],
                "containerStatuses": [{"restartCount": 2}, {"restartCount": 5}]}
        });
        let p = PodView::from_value(&v).unwrap();
        assert_eq!(p.name, "web-1");
        assert_eq!(p.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(p.controller().map(|c| c.uid.as_str()), Some("rs1"));
        assert!(p.ready && p.is_active() && !p.deleting);
        assert_eq!(p.ready_since, Some(ts("2024-01-01T00:01:00Z")));
        assert_eq!(p.restarts, 5);
        assert_eq!(p.deletion_cost, -5);
        assert_eq!(p.node_name, "n1");
        assert!(PodView::from_value(&json!({"metadata": {}})).is_none());
        let bare = PodView::from_value(
            &json!({"metadata": {"name": "x", "deletionTimestamp": "2024-01-01T00:00:00Z"}}),
        )
        .unwrap();
        assert!(!bare.ready && bare.deleting && !bare.is_active() && bare.phase.is_empty());
    }

    #[test]
    fn activity_and_availability() {
        let now = ts("2024-01-01T00:00:10Z");
        // (traits, active, available with minReadySeconds=5, available_in)
        let cases = [
            ("", true, false, None),
            ("phase=Succeeded", false, false, None),
            ("phase=Failed", false, false, None),
            ("deleting", false, false, None),
            (
                "readySince=2024-01-01T00:00:00Z",
                true,
                true,
                Some(Duration::ZERO),
            ),
            (
                "readySince=2024-01-01T00:00:08Z",
                true,
                false,
                Some(Duration::from_millis(3001)),
            ),
            (
                "readySince=2024-01-01T00:00:05Z",
                true,
                false,
                Some(Duration::from_millis(1)),
            ),
        ];
        for (traits, active, available, in_) in cases {
            let p = pod("p", traits);
            assert_eq!(p.is_active(), active, "{traits}");
            assert_eq!(p.is_available(5, now), available, "{traits}");
            assert_eq!(p.available_in(5, now), in_, "{traits}");
        }
        let p = pod("p", "ready");
        assert!(p.is_available(0, now));
        let mut no_time = pod("p", "ready");
        no_time.ready_since = None;
        assert!(no_time.is_available(0, now));
        assert!(!no_time.is_available(5, now));
    }

    #[test]
    fn deletion_preferences() {
        // Each row: the pod that must be deleted first, then the other.
        let cases = [
            ("unscheduled first", "unscheduled,ready", "ready"),
            ("pending before running", "phase=Pending", "phase=Running"),
            ("pending before unknown", "phase=Pending", "phase=Unknown"),
            ("unknown before running", "phase=Unknown", "phase=Running"),
            ("not ready before ready", "", "ready"),
            ("lower deletion cost first", "ready,cost=-1", "ready"),
            (
                "ready for less time first",
                "readySince=2024-01-01T00:05:00Z",
                "readySince=2024-01-01T00:01:00Z",
            ),
            ("more restarts first", "restarts=3", "restarts=1"),
            (
                "newer first",
                "created=2024-01-02T00:00:00Z",
                "created=2024-01-01T00:00:00Z",
            ),
        ];
        for (case, first, second) in cases {
            let a = pod("a", first);
            let b = pod("b", second);
            assert_eq!(deletion_order(&a, 1, &b, 1), Ordering::Less, "{case}");
            assert_eq!(deletion_order(&b, 1, &a, 1), Ordering::Greater, "{case}");
        }
        // Doubled-up pods go first.
        let (a, b) = (pod("a", "ready"), pod("b", "ready"));
        assert_eq!(deletion_order(&a, 2, &b, 1), Ordering::Less);
        // Full tie: by name, deterministic.
        assert_eq!(deletion_order(&a, 1, &b, 1), Ordering::Less);
    }

    #[test]
    fn sorts_with_ranks() {
        let pods = [
            pod("old-ready", "ready,node=n1,created=2024-01-01T00:00:00Z"),
            pod("pending", "phase=Pending,node=n2"),
            pod("doubled", "ready,node=n3"),
            pod("doubled2", "ready,node=n3"),
            pod("unscheduled", "unscheduled"),
        ];
        let refs: Vec<&PodView> = pods.iter().collect();
        let order: Vec<&str> = sort_for_deletion(&refs)
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            order,
            ["unscheduled", "pending", "doubled", "doubled2", "old-ready"]
        );
    }
}
