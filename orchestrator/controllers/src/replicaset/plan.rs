//! The pure half of the ReplicaSet controller: from a ReplicaSet and the pods of its
//! namespace, what to write (Kubernetes' `syncReplicaSet`, `manageReplicas` and
//! `calculateStatus`).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use serde_json::{Value, json};
use skiff_api::LabelSelector;

use super::claim::{self, Claim, Owner};
use super::pods::{PodView, sort_for_deletion};

/// At most this many pods are created or deleted per reconcile (Kubernetes'
/// `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// The `ReplicaFailure` condition type.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// A child whose ownerReferences change (adopted or released).
#[derive(Clone, Debug, PartialEq)]
pub struct OwnershipChange {
    pub name: String,
    /// The write is conditional on this version.
    pub resource_version: String,
    pub owner_references: Vec<OwnerReference>,
}

/// One pod to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub name: String,
    pub uid: String,
}

/// What one reconcile of a ReplicaSet writes.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaSetPlan {
    pub adopt: Vec<OwnershipChange>,
    pub release: Vec<OwnershipChange>,
    /// Pods to create from the template.
    pub create: usize,
    /// Pods to delete, in this order.
    pub delete: Vec<PodRef>,
    /// The status counts (conditions are settled after the writes, see
    /// [`status_conditions`]), computed from the pods as they were — as Kubernetes does.
    pub status: ReplicaSetStatus,
    /// When a ready pod becomes available (minReadySeconds).
    pub requeue_after: Option<Duration>,
}

/// Reads a cached ReplicaSet.
pub fn decode(rs: &Value) -> Result<ReplicaSet, String> {
    serde::Deserialize::deserialize(rs).map_err(|e| format!("cannot decode the ReplicaSet: {e}"))
}

/// The selector of a ReplicaSet.
pub fn selector(rs: &ReplicaSet) -> Result<LabelSelector, String> {
    let selector = rs
        .spec
        .as_ref()
        .map(|s| &s.selector)
        .ok_or("the ReplicaSet has no spec")?;
    LabelSelector::from_k8s(selector).map_err(|e| format!("invalid selector: {e}"))
}

fn owner<'a>(rs: &'a ReplicaSet, selector: &'a LabelSelector) -> Owner<'a> {
    Owner {
        api_version: "apps/v1",
        kind: "ReplicaSet",
        name: rs.metadata.name.as_deref().unwrap_or_default(),
        uid: rs.metadata.uid.as_deref().unwrap_or_default(),
        deleting: rs.metadata.deletion_timestamp.is_some(),
        selector,
    }
}

/// Plans one reconcile. `pods` are the pods of the ReplicaSet's namespace; `may_manage`
/// is false while earlier creates or deletes are unobserved (expectations).
pub fn plan(
    rs: &ReplicaSet,
    pods: &[PodView],
    may_manage: bool,
    now: Timestamp,
) -> Result<ReplicaSetPlan, String> {
    let selector = selector(rs)?;
    let owner = owner(rs, &selector);
    let spec = rs.spec.as_ref().ok_or("the ReplicaSet has no spec")?;
    let mut adopt = Vec::new();
    let mut release = Vec::new();
    let mut owned: Vec<&PodView> = Vec::new();
    // Only active pods are claimed and counted; finished and terminating ones are left
    // to the garbage collector.
    for pod in pods.iter().filter(|p| p.is_active()) {
        match claim::claim(&owner, &pod.owner_references, &pod.labels, pod.deleting) {
            Claim::Owned => owned.push(pod),
            Claim::Adopt => {
                adopt.push(OwnershipChange {
                    name: pod.name.clone(),
                    resource_version: pod.resource_version.clone(),
                    owner_references: claim::adopted(&pod.owner_references, &owner),
                });
                owned.push(pod);
            }
            Claim::Release => release.push(OwnershipChange {
                name: pod.name.clone(),
                resource_version: pod.resource_version.clone(),
                owner_references: claim::released(&pod.owner_references, owner.uid),
            }),
            Claim::Ignore => {}
        }
    }

    let desired = usize::try_from(spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
    let mut create = 0;
    let mut delete = Vec::new();
    if may_manage && !owner.deleting {
        if owned.len() < desired {
            create = (desired - owned.len()).min(BURST_REPLICAS);
        } else if owned.len() > desired {
            let surplus = (owned.len() - desired).min(BURST_REPLICAS);
            delete = sort_for_deletion(&owned)
                .into_iter()
                .take(surplus)
                .map(|p| PodRef {
                    name: p.name.clone(),
                    uid: p.uid.clone(),
                })
                .collect();
        }
    }

    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let (status, requeue_after) = status_counts(rs, &owned, min_ready, now);
    Ok(ReplicaSetPlan {
        adopt,
        release,
        create,
        delete,
        status,
        requeue_after,
    })
}

/// Kubernetes' `calculateStatus` without the conditions: the counts over the owned
/// active pods, and when the next ready pod becomes available.
fn status_counts(
    rs: &ReplicaSet,
    owned: &[&PodView],
    min_ready: i32,
    now: Timestamp,
) -> (ReplicaSetStatus, Option<Duration>) {
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let fully_labeled = owned
        .iter()
        .filter(|p| {
            template_labels
                .into_iter()
                .flatten()
                .all(|(k, v)| p.labels.get(k) == Some(v))
        })
        .count();
    let ready = owned.iter().filter(|p| p.ready).count();
    let mut available = 0;
    let mut next: Option<Duration> = None;
    for p in owned {
        match p.available_in(min_ready, now) {
            Some(d) if d.is_zero() => available += 1,
            Some(d) => next = Some(next.map_or(d, |n| n.min(d))),
            None => {}
        }
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let nonzero = |n: usize| (n > 0).then(|| count(n));
    let status = ReplicaSetStatus {
        replicas: count(owned.len()),
        fully_labeled_replicas: nonzero(fully_labeled),
        ready_replicas: nonzero(ready),
        available_replicas: nonzero(available),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };
    (status, next)
}

/// The conditions after the writes: a `ReplicaFailure` condition is added when a create
/// or delete failed (`failure`: reason and message) and there was none, removed when
/// everything succeeded, and otherwise left as it was.
pub fn status_conditions(
    current: Option<&Vec<ReplicaSetCondition>>,
    failure: Option<(&str, &str)>,
    now: Timestamp,
) -> Option<Vec<ReplicaSetCondition>> {
    let mut conditions = current.cloned().unwrap_or_default();
    let existing = conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match failure {
        Some((reason, message)) if !existing => conditions.push(ReplicaSetCondition {
            type_: REPLICA_FAILURE.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(Time(now)),
        }),
        None if existing => conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    (!conditions.is_empty()).then_some(conditions)
}

/// The Pod a ReplicaSet creates: its template's labels, annotations, finalizers and spec,
/// `generateName: <rs>-` and the ReplicaSet as controlling owner.
pub fn pod_from_template(rs: &ReplicaSet) -> Result<Value, String> {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .ok_or("the ReplicaSet has no pod template")?;
    let name = rs.metadata.name.as_deref().unwrap_or_default();
    let selector = LabelSelector::everything();
    let owner_ref = claim::controller_ref(&owner(rs, &selector));
    let meta = template.metadata.clone().unwrap_or_default();
    let mut metadata = json!({
        // The API server cuts a long prefix to fit the random suffix.
        "generateName": format!("{name}-"),
        "ownerReferences": [owner_ref],
    });
    if let Some(ns) = &rs.metadata.namespace {
        metadata["namespace"] = ns.clone().into();
    }
    if let Some(labels) = meta.labels.filter(|l| !l.is_empty()) {
        metadata["labels"] = json!(labels);
    }
    if let Some(annotations) = meta.annotations.filter(|a| !a.is_empty()) {
        metadata["annotations"] = json!(annotations);
    }
    if let Some(finalizers) = meta.finalizers.filter(|f| !f.is_empty()) {
        metadata["finalizers"] = json!(finalizers);
    }
    let spec = serde_json::to_value(template.spec.clone().unwrap_or_default())
        .map_err(|e| format!("cannot encode the pod template: {e}"))?;
    Ok(json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}))
}

#[cfg(test)]
mod tests {
    use super::super::pods::tests::{pod, ts};
    use super::*;

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        decode(&json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "me", "generation": 3},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "front"}},
                    "spec": {"containers": [{"name": "app", "image": "file:///a.wasm"}]}}},
            "status": {"replicas": 0}
        }))
        .unwrap()
    }

    fn owned(name: &str, traits: &str) -> PodView {
        let mut p = pod(name, traits);
        p.labels.insert("app".into(), "web".into());
        p.labels.insert("tier".into(), "front".into());
        p.owner_references = vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: "me".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }];
        p
    }

    fn names(refs: &[PodRef]) -> Vec<&str> {
        refs.iter().map(|p| p.name.as_str()).collect()
    }

    const NOW: &str = "2024-01-01T00:01:00Z";

    /// (case, replicas, pods, may_manage, creates, deletes)
    type ScalingCase = (
        &'static str,
        i32,
        Vec<PodView>,
        bool,
        usize,
        Vec<&'static str>,
    );

    #[test]
    fn scaling() {
        let cases: Vec<ScalingCase> = vec![
            ("nothing yet", 3, vec![], true, 3, vec![]),
            (
                "one missing",
                3,
                vec![owned("a", "ready"), owned("b", "ready")],
                true,
                1,
                vec![],
            ),
            (
                "steady",
                2,
                vec![owned("a", "ready"), owned("b", "ready")],
                true,
                0,
                vec![],
            ),
            (
                "one too many: the not-ready one goes",
                2,
                vec![owned("a", "ready"), owned("b", ""), owned("c", "ready")],
                true,
                0,
                vec!["b"],
            ),
            (
                "scale to zero",
                0,
                vec![owned("a", "ready"), owned("b", "unscheduled")],
                true,
                0,
                vec!["b", "a"],
            ),
            (
                "terminating pods do not count",
                2,
                vec![owned("a", "ready"), owned("b", "deleting")],
                true,
                1,
                vec![],
            ),
            (
                "finished pods do not count",
                2,
                vec![
                    owned("a", "ready"),
                    owned("b", "phase=Failed"),
                    owned("c", "phase=Succeeded"),
                ],
                true,
                1,
                vec![],
            ),
            (
                "expectations pending: no writes",
                3,
                vec![],
                false,
                0,
                vec![],
            ),
            (
                "someone else's pods",
                1,
                vec![pod("x", "ready,label=app:web")],
                true,
                1,
                vec![],
            ),
            ("burst cap", 1000, vec![], true, BURST_REPLICAS, vec![]),
        ];
        for (case, replicas, pods, may_manage, creates, deletes) in cases {
            let mut pods = pods;
            // "someone else's": a controller ref to another owner.
            for p in &mut pods {
                if p.name == "x" {
                    p.owner_references = vec![OwnerReference {
                        uid: "other".into(),
                        controller: Some(true),
                        ..Default::default()
                    }];
                }
            }
            let p = plan(&rs(replicas, 0), &pods, may_manage, ts(NOW)).unwrap();
            assert_eq!(p.create, creates, "{case}");
            assert_eq!(names(&p.delete), deletes, "{case}");
            assert!(p.adopt.is_empty() && p.release.is_empty(), "{case}");
        }
    }

    #[test]
    fn adoption_and_release() {
        let orphan = pod("orphan", "ready,label=app:web");
        let stray = pod("stray", "ready,label=app:other");
        let mut relabeled = owned("relabeled", "ready");
        relabeled.labels.insert("app".into(), "debug".into());
        let terminating_orphan = pod("dying", "ready,label=app:web,deleting");
        let pods = vec![
            orphan,
            stray,
            relabeled,
            terminating_orphan,
            owned("a", "ready"),
        ];
        let p = plan(&rs(2, 0), &pods, true, ts(NOW)).unwrap();
        assert_eq!(p.adopt.len(), 1);
        assert_eq!(p.adopt[0].name, "orphan");
        assert_eq!(p.adopt[0].resource_version, "1");
        assert_eq!(p.adopt[0].owner_references[0].uid, "me");
        assert_eq!(p.release.len(), 1);
        assert_eq!(p.release[0].name, "relabeled");
        assert!(p.release[0].owner_references.is_empty());
        // The adopted orphan counts: 2 owned, nothing to create.
        assert_eq!(p.create, 0);
        assert_eq!(p.status.replicas, 2);

        // A ReplicaSet being deleted neither adopts, releases, creates nor deletes.
        let mut dying = rs(5, 0);
        dying.metadata.deletion_timestamp = Some(Time(ts(NOW)));
        let p = plan(&dying, &pods, true, ts(NOW)).unwrap();
        assert!(p.adopt.is_empty() && p.release.is_empty());
        assert_eq!((p.create, p.delete.len()), (0, 0));
    }

    #[test]
    fn status_counts_and_min_ready() {
        let mut half_labeled = owned("half", "readySince=2024-01-01T00:00:58Z");
        half_labeled.labels.remove("tier");
        let pods = vec![
            owned("old", "readySince=2024-01-01T00:00:00Z"),
            half_labeled,
            owned("young", "readySince=2024-01-01T00:00:55Z"),
            owned("starting", ""),
        ];
        // Adopted though not fully labeled: the selector only needs app=web.
        let p = plan(&rs(4, 10), &pods, true, ts(NOW)).unwrap();
        assert_eq!(p.status.replicas, 4);
        assert_eq!(p.status.fully_labeled_replicas, Some(3));
        assert_eq!(p.status.ready_replicas, Some(3));
        assert_eq!(p.status.available_replicas, Some(1));
        assert_eq!(p.status.observed_generation, Some(3));
        // "young" became ready 5 s ago: available in 5 s (and a millisecond).
        assert_eq!(p.requeue_after, Some(Duration::from_millis(5001)));

        let p = plan(&rs(1, 0), &[owned("a", "")], true, ts(NOW)).unwrap();
        assert_eq!(p.status.ready_replicas, None, "zero counts are omitted");
        assert_eq!(p.status.available_replicas, None);
        assert_eq!(p.requeue_after, None);
    }

    #[test]
    fn failure_condition() {
        let now = ts(NOW);
        let failed = status_conditions(None, Some(("FailedCreate", "quota")), now).unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].type_, REPLICA_FAILURE);
        assert_eq!(failed[0].reason.as_deref(), Some("FailedCreate"));
        // An existing failure condition is kept as it was.
        let later = ts("2024-01-01T00:05:00Z");
        let again = status_conditions(Some(&failed), Some(("FailedDelete", "x")), later).unwrap();
        assert_eq!(again, failed);
        // Cleared on success.
        assert_eq!(status_conditions(Some(&failed), None, later), None);
        assert_eq!(status_conditions(None, None, later), None);
    }

    #[test]
    fn pods_from_the_template() {
        let mut r = rs(1, 0);
        if let Some(t) = r.spec.as_mut().and_then(|s| s.template.as_mut())
            && let Some(m) = t.metadata.as_mut()
        {
            m.annotations = Some([("a".to_string(), "b".to_string())].into());
            m.name = Some("ignored".into());
        }
        let pod = pod_from_template(&r).unwrap();
        assert_eq!(pod["metadata"]["generateName"], "web-");
        assert_eq!(pod["metadata"]["namespace"], "ns");
        assert_eq!(
            pod["metadata"]["labels"],
            json!({"app": "web", "tier": "front"})
        );
        assert_eq!(pod["metadata"]["annotations"], json!({"a": "b"}));
        assert!(pod["metadata"].get("name").is_none());
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(
            owner,
            &json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "me",
                "controller": true, "blockOwnerDeletion": true})
        );
        assert_eq!(pod["spec"]["containers"][0]["image"], "file:///a.wasm");
        let mut no_template = rs(1, 0);
        no_template.spec.as_mut().unwrap().template = None;
        assert!(pod_from_template(&no_template).is_err());
    }
}
