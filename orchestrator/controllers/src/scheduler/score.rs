//! Scores: which feasible node is best. Each score is 0..=[`MAX_NODE_SCORE`], integer,
//! computed as Kubernetes' plugins do; some are normalised over the feasible nodes
//! (the raw value divided by the largest one). The total is a weighted sum with
//! Kubernetes' default weights ([`Weights`]).

use super::node::NodeInfo;
use super::pod::{PodInfo, TaintEffect, tolerated};
use super::snapshot::Usage;

pub const MAX_NODE_SCORE: i64 = 100;

/// Weights of the scores in the total (Kubernetes' defaults for the same plugins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    /// NodeResourcesFit, LeastAllocated strategy.
    pub least_allocated: i64,
    /// NodeResourcesBalancedAllocation.
    pub balanced: i64,
    /// Spreading an owner's replicas (PodTopologySpread's default constraint).
    pub spread: i64,
    /// Preferred node affinity.
    pub node_affinity: i64,
    /// PreferNoSchedule taints.
    pub taint_toleration: i64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            least_allocated: 1,
            balanced: 1,
            spread: 2,
            node_affinity: 2,
            taint_toleration: 3,
        }
    }
}

/// `(allocatable - requested) * 100 / allocatable`; 0 when nothing is allocatable or the
/// node would be overcommitted.
pub fn least_requested(requested: i64, allocatable: i64) -> i64 {
    if allocatable <= 0 || requested > allocatable {
        return 0;
    }
    match (allocatable - requested).checked_mul(MAX_NODE_SCORE) {
        Some(v) => v / allocatable,
        None => {
            (i128::from(allocatable - requested) * i128::from(MAX_NODE_SCORE)
                / i128::from(allocatable)) as i64
        }
    }
}

/// LeastAllocated: the mean of CPU and memory [`least_requested`], counting the pod
/// (with non-zero defaults) on top of what the node already runs.
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo, usage: &Usage) -> i64 {
    let want = pod.spec.non_zero;
    let cpu = least_requested(
        usage.non_zero.milli_cpu.saturating_add(want.milli_cpu),
        node.allocatable.milli_cpu,
    );
    let memory = least_requested(
        usage.non_zero.memory.saturating_add(want.memory),
        node.allocatable.memory,
    );
    (cpu + memory) / 2
}

/// BalancedAllocation: 100 when CPU and memory would be used in the same proportion,
/// less the further apart they are (`(1 - |cpu - memory| / 2) * 100`).
pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo, usage: &Usage) -> i64 {
    let fraction = |requested: i64, allocatable: i64| {
        if allocatable <= 0 {
            1.0
        } else {
            (requested as f64 / allocatable as f64).min(1.0)
        }
    };
    let want = pod.spec.non_zero;
    let cpu = fraction(
        usage.non_zero.milli_cpu.saturating_add(want.milli_cpu),
        node.allocatable.milli_cpu,
    );
    let memory = fraction(
        usage.non_zero.memory.saturating_add(want.memory),
        node.allocatable.memory,
    );
    let std = (cpu - memory).abs() / 2.0;
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// Spread: `(max - count) * 100 / max` where `count` is how many of the pod's owner's
/// pods the node has and `max` the most any feasible node has; 100 everywhere when no
/// node has any (or the pod has no owner).
pub fn spread(count: u32, max: u32) -> i64 {
    if max == 0 {
        return MAX_NODE_SCORE;
    }
    i64::from(max - count.min(max)) * MAX_NODE_SCORE / i64::from(max)
}

/// Preferred node affinity, raw: the sum of the weights of the terms the node matches.
pub fn node_affinity_raw(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.spec
        .preferred
        .iter()
        .filter(|p| p.term.matches(&node.name, &node.labels))
        .map(|p| p.weight)
        .sum()
}

/// TaintToleration, raw: how many PreferNoSchedule taints the pod does not tolerate.
pub fn intolerable_taints_raw(pod: &PodInfo, node: &NodeInfo) -> i64 {
    node.taints
        .iter()
        .filter(|t| {
            t.effect == TaintEffect::PreferNoSchedule && !tolerated(&pod.spec.tolerations, t)
        })
        .count() as i64
}

/// Kubernetes' DefaultNormalizeScore: `raw * 100 / max`, or `100 - that` when `reverse`
/// (fewer is better). With `max == 0`: 0, or 100 when reversed.
pub fn normalize(raw: i64, max: i64, reverse: bool) -> i64 {
    if max <= 0 {
        return if reverse { MAX_NODE_SCORE } else { 0 };
    }
    let s = raw * MAX_NODE_SCORE / max;
    if reverse { MAX_NODE_SCORE - s } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{node, pod};
    use crate::scheduler::pod::Resources;
    use serde_json::json;

    fn used(cpu: i64, memory: i64) -> Usage {
        Usage {
            non_zero: Resources {
                milli_cpu: cpu,
                memory,
            },
            ..Default::default()
        }
    }

    #[test]
    fn least_requested_table() {
        let cases = [
            (0, 100, 100),
            (50, 100, 50),
            (100, 100, 0),
            (150, 100, 0),
            (1, 3, 66),
            (0, 0, 0),
            (i64::MAX / 2, i64::MAX, 50),
        ];
        for (requested, allocatable, want) in cases {
            assert_eq!(
                least_requested(requested, allocatable),
                want,
                "{requested}/{allocatable}"
            );
        }
    }

    #[test]
    fn least_allocated_prefers_emptier_nodes() {
        // Node: 4 cpu, 8Gi. Pod: 1 cpu, 2Gi.
        let n = node("n", json!({}));
        let p = pod(
            json!({"containers": [{"name": "a", "image": "x", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}),
        );
        let cases = [
            (used(0, 0), 75),          // (75 + 75) / 2
            (used(2000, 4 << 30), 25), // (25 + 25) / 2
            (used(3000, 0), 37),       // (0 + 75) / 2
            (used(4000, 8 << 30), 0),
        ];
        for (u, want) in cases {
            assert_eq!(least_allocated(&p, &n, &u), want, "{u:?}");
        }
        // A pod without requests counts the non-zero defaults (100m, 200Mi).
        let empty = pod(json!({}));
        assert_eq!(least_allocated(&empty, &n, &used(0, 0)), (97 + 97) / 2);
    }

    #[test]
    fn balanced_allocation_table() {
        let n = node("n", json!({}));
        let p = pod(
            json!({"containers": [{"name": "a", "image": "x", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}),
        );
        let cases = [
            (used(0, 0), 100),          // 25% and 25%
            (used(2000, 0), 75),        // 75% and 25%: std 0.25
            (used(3000, 6 << 30), 100), // 100% and 100%
            (used(0, 6 << 30), 62),     // 25% and 100%: std 0.375
        ];
        for (u, want) in cases {
            assert_eq!(balanced_allocation(&p, &n, &u), want, "{u:?}");
        }
    }

    #[test]
    fn spread_table() {
        let cases = [(0, 0, 100), (0, 4, 100), (1, 4, 75), (4, 4, 0), (2, 3, 33)];
        for (count, max, want) in cases {
            assert_eq!(spread(count, max), want, "{count}/{max}");
        }
    }

    #[test]
    fn preferred_affinity_and_taints() {
        let p = pod(json!({
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
                {"weight": 3, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}
            ]}},
            "tolerations": [{"key": "tolerated", "operator": "Exists"}]
        }));
        // (node patch, affinity raw, untolerated PreferNoSchedule taints)
        let cases = [
            (json!({}), 0, 0),
            (json!({"metadata": {"labels": {"zone": "a"}}}), 10, 0),
            (
                json!({"metadata": {"labels": {"zone": "a", "ssd": ""}}}),
                13,
                0,
            ),
            (
                json!({"metadata": {"labels": {"zone": "b", "ssd": ""}}}),
                3,
                0,
            ),
            (
                json!({"spec": {"taints": [{"key": "x", "effect": "PreferNoSchedule"}]}}),
                0,
                1,
            ),
            (
                json!({"spec": {"taints": [
                    {"key": "x", "effect": "PreferNoSchedule"},
                    {"key": "tolerated", "effect": "PreferNoSchedule"},
                    {"key": "y", "effect": "NoSchedule"}
                ]}}),
                0,
                1,
            ),
        ];
        for (patch, affinity, taints) in cases {
            let n = node("n", patch.clone());
            assert_eq!(node_affinity_raw(&p, &n), affinity, "{patch}");
            assert_eq!(intolerable_taints_raw(&p, &n), taints, "{patch}");
        }
    }

    #[test]
    fn normalize_table() {
        let cases = [
            (5, 10, false, 50),
            (10, 10, false, 100),
            (0, 0, false, 0),
            (0, 0, true, 100),
            (1, 2, true, 50),
            (2, 2, true, 0),
        ];
        for (raw, max, reverse, want) in cases {
            assert_eq!(normalize(raw, max, reverse), want, "{raw}/{max} {reverse}");
        }
    }
}
