//! The scheduler: assigns pending pods to nodes.
//!
//! A pure core and a thin loop around it:
//!
//! - [`PodInfo`] / [`NodeInfo`]: pods and nodes parsed once from their JSON into what the
//!   decision needs (requests, selectors, affinity, tolerations, host ports; allocatable,
//!   taints, readiness).
//! - [`Snapshot`]: nodes and what the pods on them use, updated incrementally from the
//!   informers, with *assumed* pods — decisions whose bind is not yet seen — so that
//!   consecutive decisions never overcommit.
//! - [`schedule`]: filter → score → select over the snapshot. Filters ([`filter`]) in
//!   Kubernetes' order; scores ([`score`]) with Kubernetes' weights; the highest total
//!   wins, ties broken by a hash of the pod uid and node name (deterministic, yet
//!   spreading equal pods). A pod no node fits gets [`Unschedulable`], whose `Display` is
//!   Kubernetes' message.
//! - [`SchedulingQueue`]: pending pods by priority and age; backoff after failures;
//!   unschedulable pods parked until the cluster changes.
//! - [`run`]: the loop. Decisions are made one at a time on the snapshot; binds
//!   (`POST pods/{name}/binding`) are written concurrently (up to
//!   [`SchedulerConfig::binds_in_flight`]) so that the store can group-commit them.
//!
//! Where a newcomer starts: [`schedule`], then `run.rs`.

mod filter;
#[cfg(test)]
mod fixtures;
mod node;
mod pod;
mod queue;
mod run;
mod score;
mod snapshot;

use std::sync::Arc;

pub use filter::{Failure, Reason, Unschedulable};
pub use node::{Allocatable, NodeInfo, Readiness};
pub use pod::{
    DEFAULT_SCHEDULER, HostPort, NodeSelectorTerm, PodInfo, PodSpecInfo, PreferredTerm, Resources,
    Taint, TaintEffect, Toleration, TolerationOperator,
};
pub use queue::SchedulingQueue;
pub use run::{SchedulerConfig, run, run_with};
pub use score::{MAX_NODE_SCORE, Weights};
pub use snapshot::{NodeSlot, Snapshot, Usage};

/// A node's name, shared with the snapshot.
pub type NodeName = Arc<str>;

/// How a decision is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScheduleOptions {
    pub weights: Weights,
    /// Kubernetes' `percentageOfNodesToScore`: filtering stops once this share of the
    /// nodes has been found feasible, and only those are scored. 0 is Kubernetes'
    /// adaptive default (50 % minus 1 % per 125 nodes, at least 5 %); 100 scores every
    /// node. Never fewer than 100 nodes (all of a smaller cluster).
    pub percentage_of_nodes_to_score: u32,
}

/// Where a pod goes, and how many node slots the decision looked at (the next decision
/// starts after them, so that every node is considered in turn).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub node: NodeName,
    pub examined: usize,
}

/// Kubernetes' `numFeasibleNodesToFind`.
pub fn feasible_nodes_to_find(nodes: usize, percentage: u32) -> usize {
    const MIN_FEASIBLE_NODES: usize = 100;
    const MIN_PERCENTAGE: usize = 5;
    if nodes < MIN_FEASIBLE_NODES || percentage >= 100 {
        return nodes;
    }
    let percentage = match percentage {
        0 => 50usize.saturating_sub(nodes / 125).max(MIN_PERCENTAGE),
        p => p as usize,
    };
    (nodes * percentage / 100).max(MIN_FEASIBLE_NODES)
}

/// Picks the node for `pod` among every node, with Kubernetes' default weights: the
/// reference decision, independent of any scheduler state.
pub fn schedule(pod: &PodInfo, snapshot: &Snapshot) -> Result<NodeName, Unschedulable> {
    let every_node = ScheduleOptions {
        percentage_of_nodes_to_score: 100,
        ..ScheduleOptions::default()
    };
    schedule_with(pod, snapshot, &every_node, 0).map(|d| d.node)
}

/// A feasible node's raw scores.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    /// Its slot in the snapshot.
    index: usize,
    /// Weighted scores that need no normalisation.
    base: i64,
    affinity: i64,
    taints: i64,
}

/// Buffers a decision works in, kept between decisions by a scheduler so that each
/// does not allocate (and fault in) a fresh candidate list and owner-count vector.
#[derive(Debug, Default)]
pub struct Scratch {
    feasible: Vec<Candidate>,
    owned: Vec<u32>,
}

/// Picks the node for `pod`: filter nodes from slot `start` on (wrapping) until enough
/// are feasible ([`feasible_nodes_to_find`]), score those, take the best. A pod that fits
/// nowhere has had every node filtered, and gets every node's reasons.
pub fn schedule_with(
    pod: &PodInfo,
    snapshot: &Snapshot,
    options: &ScheduleOptions,
    start: usize,
) -> Result<Decision, Unschedulable> {
    schedule_in(pod, snapshot, options, start, &mut Scratch::default())
}

/// [`schedule_with`], working in `scratch`.
pub fn schedule_in(
    pod: &PodInfo,
    snapshot: &Snapshot,
    options: &ScheduleOptions,
    start: usize,
    scratch: &mut Scratch,
) -> Result<Decision, Unschedulable> {
    let weights = &options.weights;
    let slots = snapshot.slots();
    let to_find =
        feasible_nodes_to_find(snapshot.node_count(), options.percentage_of_nodes_to_score);
    let feasible = &mut scratch.feasible;
    feasible.clear();
    let mut examined = 0;
    for i in 0..slots.len() {
        if feasible.len() >= to_find {
            break;
        }
        examined = i + 1;
        let index = (start + i) % slots.len();
        let Some(slot) = &slots[index] else { continue };
        let Some(info) = &slot.info else { continue };
        if filter::check(pod, info, &slot.usage).is_err() {
            continue;
        }
        let base = weights.least_allocated * score::least_allocated(pod, info, &slot.usage)
            + weights.balanced * score::balanced_allocation(pod, info, &slot.usage);
        feasible.push(Candidate {
            index,
            base,
            affinity: score::node_affinity_raw(pod, info),
            taints: score::intolerable_taints_raw(pod, info),
        });
    }
    let slot_of = |c: &Candidate| slots.get(c.index).and_then(Option::as_ref);
    let decision = |slot: &NodeSlot| Decision {
        node: slot.name.clone(),
        examined,
    };
    match feasible.as_slice() {
        [] => return Err(explain(pod, snapshot)),
        [only] => {
            return slot_of(only)
                .map(decision)
                .ok_or_else(|| explain(pod, snapshot));
        }
        _ => {}
    }

    // How many of the owner's pods each slot has, as a dense vector.
    let owned = &mut scratch.owned;
    owned.clear();
    if let Some(counts) = pod.owner.as_deref().and_then(|o| snapshot.owner_counts(o)) {
        owned.resize(slots.len(), 0);
        for (&slot, &n) in counts {
            if let Some(c) = owned.get_mut(slot) {
                *c = n;
            }
        }
    }
    let count = |c: &Candidate| owned.get(c.index).copied().unwrap_or(0);
    let max_count = feasible.iter().map(count).max().unwrap_or(0);
    let max_affinity = feasible.iter().map(|c| c.affinity).max().unwrap_or(0);
    let max_taints = feasible.iter().map(|c| c.taints).max().unwrap_or(0);

    let pod_hash = snapshot::fnv1a(pod.uid.as_bytes());
    let mut best: Option<(&NodeSlot, i64, u64)> = None;
    for c in feasible.iter() {
        let Some(slot) = slot_of(c) else { continue };
        let total = c.base
            + weights.spread * score::spread(count(c), max_count)
            + weights.node_affinity * score::normalize(c.affinity, max_affinity, false)
            + weights.taint_toleration * score::normalize(c.taints, max_taints, true);
        let tie = mix(pod_hash ^ slot.name_hash);
        let better = match best {
            None => true,
            Some((b, b_total, b_tie)) => {
                (
                    total,
                    std::cmp::Reverse(tie),
                    std::cmp::Reverse(&*slot.name),
                ) > (
                    b_total,
                    std::cmp::Reverse(b_tie),
                    std::cmp::Reverse(&*b.name),
                )
            }
        };
        if better {
            best = Some((slot, total, tie));
        }
    }
    match best {
        Some((slot, ..)) => Ok(decision(slot)),
        None => Err(explain(pod, snapshot)),
    }
}

/// Every node's reasons, counted (only when no node fits).
fn explain(pod: &PodInfo, snapshot: &Snapshot) -> Unschedulable {
    let mut out = Unschedulable {
        nodes: snapshot.node_count(),
        reasons: Default::default(),
    };
    for slot in snapshot.slots().iter().flatten() {
        let Some(info) = &slot.info else { continue };
        if let Err(failure) = filter::check(pod, info, &slot.usage) {
            out.count(&failure);
        }
    }
    out
}

/// splitmix64's finaliser: spreads the bits of a combined hash.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::fixtures::{named_pod, node, pod};
    use super::*;
    use serde_json::{Value, json};
    use skiff_client::ObjectKey;

    /// Node names with a patch of the default node.
    type Nodes<'a> = Vec<(&'a str, Value)>;

    fn snapshot(nodes: &[(&str, Value)]) -> Snapshot {
        let mut s = Snapshot::new();
        for (name, patch) in nodes {
            s.upsert_node(node(name, patch.clone()));
        }
        s
    }

    fn requests(cpu: &str, memory: &str) -> Value {
        json!({"containers": [{"name": "a", "image": "x", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]})
    }

    fn bound(name: &str, node: &str, spec: Value) -> Arc<PodInfo> {
        let mut p = named_pod(name, spec);
        p.node_name = Some(node.to_string());
        Arc::new(p)
    }

    #[test]
    fn picks_the_only_node_that_fits() {
        let big = json!({"status": {"allocatable": {"cpu": "16", "memory": "64Gi"}}});
        let cases: Vec<(&str, Nodes<'_>, Value, &str)> = vec![
            (
                "resources",
                vec![("small", json!({})), ("big", big.clone())],
                requests("8", "1Gi"),
                "big",
            ),
            (
                "node selector",
                vec![
                    ("a", json!({})),
                    ("b", json!({"metadata": {"labels": {"disk": "ssd"}}})),
                ],
                json!({"nodeSelector": {"disk": "ssd"}}),
                "b",
            ),
            (
                "taint",
                vec![
                    (
                        "a",
                        json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
                    ),
                    ("b", json!({})),
                ],
                json!({}),
                "b",
            ),
            (
                "cordon",
                vec![
                    ("a", json!({})),
                    ("b", json!({"spec": {"unschedulable": true}})),
                ],
                json!({}),
                "a",
            ),
            (
                "not ready",
                vec![
                    (
                        "a",
                        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                    ),
                    ("b", json!({})),
                ],
                json!({}),
                "b",
            ),
        ];
        for (what, nodes, spec, want) in cases {
            let s = snapshot(&nodes);
            assert_eq!(schedule(&pod(spec), &s).as_deref(), Ok(want), "{what}");
        }
    }

    #[test]
    fn least_allocated_wins() {
        let mut s = snapshot(&[("busy", json!({})), ("idle", json!({}))]);
        s.add_pod(bound("x", "busy", requests("2", "4Gi")));
        assert_eq!(
            schedule(&pod(requests("1", "1Gi")), &s).as_deref(),
            Ok("idle")
        );
    }

    #[test]
    fn replicas_of_one_owner_spread() {
        let owned = |name: &str| {
            let mut v = super::fixtures::pod_json(name, json!({}));
            v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-1", "controller": true}]);
            PodInfo::parse(&v).unwrap()
        };
        let mut s = snapshot(&[("n1", json!({})), ("n2", json!({})), ("n3", json!({}))]);
        // Unowned load on n3 makes it the least allocated; the replicas still spread.
        s.add_pod(bound("other", "n3", requests("100m", "10Mi")));
        let mut placed = Vec::new();
        for i in 0..6 {
            let p = Arc::new(owned(&format!("r{i}")));
            let node = schedule(&p, &s).unwrap();
            s.assume(p, &node);
            placed.push(node.to_string());
        }
        for n in ["n1", "n2", "n3"] {
            assert_eq!(placed.iter().filter(|p| *p == n).count(), 2, "{placed:?}");
        }
    }

    #[test]
    fn preferred_affinity_and_prefer_no_schedule_steer() {
        let s = snapshot(&[
            ("plain", json!({})),
            ("gpu", json!({"metadata": {"labels": {"gpu": "yes"}}})),
            (
                "tainted",
                json!({"metadata": {"labels": {"gpu": "yes"}}, "spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}),
            ),
        ]);
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "preference": {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}}
            ]}}}),
        );
        assert_eq!(schedule(&p, &s).as_deref(), Ok("gpu"));
        let tolerant = pod(json!({
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "preference": {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}}
            ]}}
        }));
        let got = schedule(&tolerant, &s).unwrap();
        assert!(&*got == "gpu" || &*got == "tainted", "{got}");
    }

    #[test]
    fn ties_break_deterministically_and_spread() {
        let names: Vec<String> = (0..20).map(|i| format!("n{i:02}")).collect();
        let nodes: Vec<(&str, Value)> = names.iter().map(|n| (n.as_str(), json!({}))).collect();
        let s = snapshot(&nodes);
        let mut chosen = std::collections::BTreeSet::new();
        for i in 0..20 {
            let p = named_pod(&format!("p{i}"), json!({}));
            let first = schedule(&p, &s).unwrap();
            assert_eq!(schedule(&p, &s).unwrap(), first, "deterministic");
            // The same decision whatever the order nodes were added in.
            let reversed = snapshot(&nodes.iter().rev().cloned().collect::<Vec<_>>());
            assert_eq!(schedule(&p, &reversed).unwrap(), first, "order-independent");
            chosen.insert(first.to_string());
        }
        assert!(
            chosen.len() > 5,
            "equal pods spread over equal nodes: {chosen:?}"
        );
    }

    #[test]
    fn assumptions_prevent_overcommit() {
        let mut s = snapshot(&[("n1", json!({})), ("n2", json!({}))]);
        // 4 cpu per node: eight 1-cpu pods fill both, the ninth fits nowhere.
        for i in 0..8 {
            let p = Arc::new(named_pod(&format!("p{i}"), requests("1", "1Mi")));
            let node = schedule(&p, &s).unwrap();
            s.assume(p, &node);
        }
        assert_eq!(s.node("n1").unwrap().usage.requested.milli_cpu, 4000);
        assert_eq!(s.node("n2").unwrap().usage.requested.milli_cpu, 4000);
        let err = schedule(&named_pod("p9", requests("1", "1Mi")), &s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/2 nodes are available: 2 Insufficient cpu."
        );
        // A failed bind gives the room back.
        s.forget(&ObjectKey::new(Some("ns"), "p0"));
        assert!(schedule(&named_pod("p9", requests("1", "1Mi")), &s).is_ok());
    }

    #[test]
    fn unschedulable_messages() {
        let unreachable = json!({
            "spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}
        });
        let small = json!({"status": {"allocatable": {"memory": "1Gi"}}});
        let cases: Vec<(Nodes<'_>, Value, &str)> = vec![
            (vec![], json!({}), "no nodes available to schedule pods"),
            (
                vec![
                    ("a", small.clone()),
                    ("b", small.clone()),
                    ("c", unreachable),
                ],
                requests("100m", "2Gi"),
                "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient memory.",
            ),
            (
                vec![
                    ("a", json!({"spec": {"unschedulable": true}})),
                    ("b", json!({})),
                ],
                json!({"nodeSelector": {"x": "y"}}),
                "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were unschedulable.",
            ),
            (
                vec![("a", json!({"status": {"allocatable": {"pods": "0"}}}))],
                requests("8", "16Gi"),
                "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 Too many pods.",
            ),
        ];
        for (nodes, spec, want) in cases {
            let s = snapshot(&nodes);
            let err = schedule(&pod(spec), &s).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn feasible_nodes_to_find_table() {
        // (nodes, percentage, to find)
        let cases = [
            (0, 0, 0),
            (50, 0, 50),
            (99, 10, 99),
            (100, 0, 100),
            (1_000, 0, 420),
            (5_000, 0, 500),
            (20_000, 0, 1_000),
            (1_000, 30, 300),
            (1_000, 5, 100),
            (1_000, 100, 1_000),
            (1_000, 250, 1_000),
        ];
        for (nodes, percentage, want) in cases {
            assert_eq!(
                feasible_nodes_to_find(nodes, percentage),
                want,
                "{nodes} {percentage}"
            );
        }
    }

    #[test]
    fn large_clusters_are_sampled_from_a_rotating_start() {
        let names: Vec<String> = (0..300).map(|i| format!("n{i:03}")).collect();
        let mut s = Snapshot::new();
        for n in &names {
            s.upsert_node(node(n, json!({})));
        }
        let options = ScheduleOptions::default();
        let p = pod(json!({}));
        // 300 nodes: 48 % of them, 144, are enough.
        let d = schedule_with(&p, &s, &options, 0).unwrap();
        assert_eq!(d.examined, 144);
        let again = schedule_with(&p, &s, &options, 0).unwrap();
        assert_eq!(d, again, "deterministic for one start");
        let later = schedule_with(&p, &s, &options, 250).unwrap();
        assert_eq!(later.examined, 144);
        // Slots 250..300 and 0..94: the pick is among them.
        let slot_of = |name: &str| names.iter().position(|n| n == name).unwrap();
        let i = slot_of(&later.node);
        assert!(!(94..250).contains(&i), "{} at {i}", later.node);
        // Nodes that do not fit are passed over and do not count.
        let picky = pod(json!({"nodeSelector": {"pool": "b"}}));
        let mut s2 = Snapshot::new();
        for (i, n) in names.iter().enumerate() {
            let pool = if i % 2 == 0 { "a" } else { "b" };
            s2.upsert_node(node(n, json!({"metadata": {"labels": {"pool": pool}}})));
        }
        let d = schedule_with(&picky, &s2, &options, 0).unwrap();
        assert_eq!(d.examined, 288, "144 feasible among the first 288");
        // Nothing fits: every node is examined and explained.
        let none = pod(json!({"nodeSelector": {"pool": "c"}}));
        let err = schedule_with(&none, &s2, &options, 17).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/300 nodes are available: 300 node(s) didn't match Pod's node affinity/selector."
        );
    }

    #[test]
    fn host_ports_conflict_with_assumed_pods() {
        let mut s = snapshot(&[("n1", json!({}))]);
        let with_port = |name: &str| {
            named_pod(
                name,
                json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
            )
        };
        let first = Arc::new(with_port("a"));
        s.assume(first.clone(), &schedule(&first, &s).unwrap());
        let err = schedule(&with_port("b"), &s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
        );
    }
}
