//! Filters: may this pod go on this node? Each is a pure function of the pod, the node
//! and the node's usage, in Kubernetes' plugin order (NodeUnschedulable, TaintToleration,
//! readiness, NodeAffinity, NodePorts, NodeResourcesFit). A node is reported with the
//! reasons of its first failing filter, as Kubernetes does; [`Unschedulable`] counts them
//! into Kubernetes' message.

use std::collections::BTreeMap;
use std::fmt;

use super::node::{NodeInfo, Readiness};
use super::pod::{PodInfo, Taint, TaintEffect, tolerated};
use super::snapshot::Usage;

/// Why a node was filtered out. The `Display` text is Kubernetes' wording.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// `spec.unschedulable` (cordoned), not tolerated.
    Unschedulable,
    /// A NoSchedule or NoExecute taint the pod does not tolerate (the first one).
    UntoleratedTaint {
        key: String,
        value: String,
    },
    /// The `Ready` condition is not True.
    NotReady,
    /// `nodeSelector` or required node affinity.
    NodeAffinity,
    /// A requested host port is taken.
    HostPorts,
    TooManyPods,
    InsufficientCpu,
    InsufficientMemory,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::UntoleratedTaint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::NotReady => f.write_str("node(s) were not ready"),
            Reason::NodeAffinity => {
                f.write_str("node(s) didn't match Pod's node affinity/selector")
            }
            Reason::HostPorts => {
                f.write_str("node(s) didn't have free ports for the requested pod ports")
            }
            Reason::TooManyPods => f.write_str("Too many pods"),
            Reason::InsufficientCpu => f.write_str("Insufficient cpu"),
            Reason::InsufficientMemory => f.write_str("Insufficient memory"),
        }
    }
}

/// Why a node does not fit, without allocating (the common case of a decision that has
/// feasible nodes never needs the reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure<'a> {
    Unschedulable,
    Taint(&'a Taint),
    NotReady,
    NodeAffinity,
    HostPorts,
    Resources { pods: bool, cpu: bool, memory: bool },
}

impl Failure<'_> {
    /// The reasons to count for this node.
    pub fn reasons(&self) -> Vec<Reason> {
        match *self {
            Failure::Unschedulable => vec![Reason::Unschedulable],
            Failure::Taint(t) => vec![Reason::UntoleratedTaint {
                key: t.key.clone(),
                value: t.value.clone(),
            }],
            Failure::NotReady => vec![Reason::NotReady],
            Failure::NodeAffinity => vec![Reason::NodeAffinity],
            Failure::HostPorts => vec![Reason::HostPorts],
            Failure::Resources { pods, cpu, memory } => [
                (pods, Reason::TooManyPods),
                (cpu, Reason::InsufficientCpu),
                (memory, Reason::InsufficientMemory),
            ]
            .into_iter()
            .filter_map(|(failed, r)| failed.then_some(r))
            .collect(),
        }
    }
}

/// The taint Kubernetes puts on cordoned nodes; a pod tolerating it ignores the cordon.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The taint for `Ready=False` (or no Ready condition).
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint for `Ready=Unknown`.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Runs every filter; `Ok` when the pod fits the node.
pub fn check<'n>(pod: &PodInfo, node: &'n NodeInfo, usage: &Usage) -> Result<(), Failure<'n>> {
    if !unschedulable_ok(pod, node) {
        return Err(Failure::Unschedulable);
    }
    if let Some(t) = untolerated_taint(pod, node) {
        return Err(Failure::Taint(t));
    }
    if !ready_ok(pod, node) {
        return Err(Failure::NotReady);
    }
    if !node_affinity_ok(pod, node) {
        return Err(Failure::NodeAffinity);
    }
    if !host_ports_ok(pod, usage) {
        return Err(Failure::HostPorts);
    }
    resources_fit(pod, node, usage)
}

/// NodeUnschedulable: a cordoned node takes only pods tolerating
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub fn unschedulable_ok(pod: &PodInfo, node: &NodeInfo) -> bool {
    !node.unschedulable || tolerated(&pod.spec.tolerations, &synthetic_taint(TAINT_UNSCHEDULABLE))
}

/// TaintToleration: the first NoSchedule or NoExecute taint not tolerated.
/// PreferNoSchedule only lowers the score.
pub fn untolerated_taint<'n>(pod: &PodInfo, node: &'n NodeInfo) -> Option<&'n Taint> {
    node.taints.iter().find(|t| {
        matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute)
            && !tolerated(&pod.spec.tolerations, t)
    })
}

/// Readiness: only Ready nodes, unless the pod tolerates the taint Kubernetes' node
/// lifecycle would put on the node for its condition (DaemonSet pods do).
pub fn ready_ok(pod: &PodInfo, node: &NodeInfo) -> bool {
    let key = match node.readiness {
        Readiness::Ready => return true,
        Readiness::NotReady => TAINT_NOT_READY,
        Readiness::Unknown => TAINT_UNREACHABLE,
    };
    tolerated(&pod.spec.tolerations, &synthetic_taint(key))
}

fn synthetic_taint(key: &str) -> Taint {
    Taint {
        key: key.to_string(),
        value: String::new(),
        effect: TaintEffect::NoSchedule,
    }
}

/// NodeAffinity: every `nodeSelector` pair is a node label, and one of the required
/// terms (if any) matches.
pub fn node_affinity_ok(pod: &PodInfo, node: &NodeInfo) -> bool {
    let spec = &pod.spec;
    spec.node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
        && spec.required.as_ref().is_none_or(|terms| {
            terms
                .iter()
                .any(|term| term.matches(&node.name, &node.labels))
        })
}

/// NodePorts: none of the pod's host ports conflicts with one in use.
pub fn host_ports_ok(pod: &PodInfo, usage: &Usage) -> bool {
    pod.spec
        .host_ports
        .iter()
        .all(|want| !usage.host_ports.iter().any(|used| used.conflicts(want)))
}

/// NodeResourcesFit: room for one more pod, and for its CPU and memory requests (a
/// resource the pod does not request always fits, as in Kubernetes).
pub fn resources_fit<'n>(pod: &PodInfo, node: &NodeInfo, usage: &Usage) -> Result<(), Failure<'n>> {
    let want = pod.spec.requests;
    let alloc = node.allocatable;
    let pods = usage.pods + 1 > alloc.pods;
    let cpu = want.milli_cpu > 0
        && want.milli_cpu > alloc.milli_cpu.saturating_sub(usage.requested.milli_cpu);
    let memory =
        want.memory > 0 && want.memory > alloc.memory.saturating_sub(usage.requested.memory);
    if pods || cpu || memory {
        Err(Failure::Resources { pods, cpu, memory })
    } else {
        Ok(())
    }
}

/// Why a pod fits no node: Kubernetes' `FitError`. `Display` is Kubernetes' message,
/// `0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient
/// memory.` — each reason with the number of nodes it ruled out, sorted as strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unschedulable {
    /// How many nodes there are.
    pub nodes: usize,
    /// Reason → how many nodes it ruled out.
    pub reasons: BTreeMap<Reason, usize>,
}

impl Unschedulable {
    /// Counts `failure` for one node.
    pub fn count(&mut self, failure: &Failure<'_>) {
        for r in failure.reasons() {
            *self.reasons.entry(r).or_default() += 1;
        }
    }
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        parts.sort();
        write!(
            f,
            "0/{} nodes are available: {}.",
            self.nodes,
            parts.join(", ")
        )
    }
}

impl std::error::Error for Unschedulable {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{node, pod};
    use crate::scheduler::pod::{HostPort, Resources};
    use crate::scheduler::pod::{Toleration, TolerationOperator};
    use serde_json::json;

    fn usage(cpu: i64, memory: i64, pods: i64) -> Usage {
        Usage {
            requested: Resources {
                milli_cpu: cpu,
                memory,
            },
            pods,
            ..Default::default()
        }
    }

    #[test]
    fn unschedulable_nodes() {
        // (node.unschedulable, pod tolerations, fits)
        let cases = [
            (false, json!([]), true),
            (true, json!([]), false),
            (
                true,
                json!([{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]),
                true,
            ),
            (true, json!([{"operator": "Exists"}]), true),
            (
                true,
                json!([{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoExecute"}]),
                false,
            ),
        ];
        for (cordoned, tolerations, want) in cases {
            let mut n = node("n1", json!({}));
            n.unschedulable = cordoned;
            let p = pod(json!({"tolerations": tolerations}));
            assert_eq!(unschedulable_ok(&p, &n), want, "{cordoned} {tolerations}");
            let expect = if want {
                Ok(())
            } else {
                Err(Failure::Unschedulable)
            };
            assert_eq!(check(&p, &n, &Usage::default()), expect);
        }
    }

    #[test]
    fn taints_and_tolerations() {
        // (node taints, pod tolerations, the key of the untolerated taint)
        let cases = [
            (json!([]), json!([]), None),
            (
                json!([{"key": "a", "value": "1", "effect": "NoSchedule"}]),
                json!([]),
                Some("a"),
            ),
            (
                json!([{"key": "a", "effect": "NoExecute"}]),
                json!([]),
                Some("a"),
            ),
            (
                json!([{"key": "a", "effect": "PreferNoSchedule"}]),
                json!([]),
                None,
            ),
            (
                json!([{"key": "a", "value": "1", "effect": "NoSchedule"}]),
                json!([{"key": "a", "value": "1", "effect": "NoSchedule"}]),
                None,
            ),
            (
                json!([{"key": "a", "value": "1", "effect": "NoSchedule"}]),
                json!([{"key": "a", "value": "2"}]),
                Some("a"),
            ),
            (
                json!([{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}]),
                json!([{"key": "a", "operator": "Exists"}]),
                Some("b"),
            ),
            (
                json!([{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}]),
                json!([{"operator": "Exists"}]),
                None,
            ),
        ];
        for (taints, tolerations, want) in cases {
            let n = node("n1", json!({"spec": {"taints": taints}}));
            let p = pod(json!({"tolerations": tolerations}));
            assert_eq!(
                untolerated_taint(&p, &n).map(|t| t.key.as_str()),
                want,
                "{taints} {tolerations}"
            );
        }
    }

    #[test]
    fn readiness() {
        let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        let unknown = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let ready = json!({});
        let tol = |key: &str| json!([{"key": key, "operator": "Exists", "effect": "NoSchedule"}]);
        // (node, pod tolerations, fits)
        let cases = [
            (ready.clone(), json!([]), true),
            (not_ready.clone(), json!([]), false),
            (unknown.clone(), json!([]), false),
            (not_ready.clone(), tol(TAINT_NOT_READY), true),
            (not_ready, tol(TAINT_UNREACHABLE), false),
            (unknown.clone(), tol(TAINT_UNREACHABLE), true),
            (unknown, json!([{"operator": "Exists"}]), true),
        ];
        for (n, tolerations, want) in cases {
            let p = pod(json!({"tolerations": tolerations}));
            assert_eq!(
                ready_ok(&p, &node("n1", n.clone())),
                want,
                "{n} {tolerations}"
            );
        }
    }

    #[test]
    fn node_selector_and_required_affinity() {
        let labels = json!({"metadata": {"labels": {"disk": "ssd", "zone": "a", "cores": "8"}}});
        let required = |terms: serde_json::Value| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}});
        // (pod spec, fits the node labelled disk=ssd, zone=a, cores=8, named n1)
        let cases = [
            (json!({}), true),
            (json!({"nodeSelector": {"disk": "ssd"}}), true),
            (json!({"nodeSelector": {"disk": "ssd", "zone": "a"}}), true),
            (json!({"nodeSelector": {"disk": "hdd"}}), false),
            (json!({"nodeSelector": {"gpu": "yes"}}), false),
            (
                required(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]),
                ),
                true,
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]),
                ),
                false,
            ),
            (
                required(json!([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}])),
                false,
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]),
                ),
                true,
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}]),
                ),
                true,
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}]),
                ),
                false,
            ),
            // Terms are ORed; expressions within a term ANDed.
            (
                required(json!([
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                    {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}
                ])),
                true,
            ),
            (
                required(json!([
                    {"matchExpressions": [
                        {"key": "zone", "operator": "In", "values": ["a"]},
                        {"key": "disk", "operator": "In", "values": ["hdd"]}
                    ]}
                ])),
                false,
            ),
            (
                required(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                ),
                true,
            ),
            (
                required(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]),
                ),
                false,
            ),
            (required(json!([])), false),
            // nodeSelector and affinity must both hold.
            (
                json!({"nodeSelector": {"disk": "hdd"}, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]}}}}),
                false,
            ),
        ];
        let n = node("n1", labels);
        for (spec, want) in cases {
            let p = pod(spec.clone());
            assert_eq!(node_affinity_ok(&p, &n), want, "{spec}");
        }
    }

    #[test]
    fn host_ports() {
        let used = |ports: &[(&str, &str, i32)]| Usage {
            host_ports: ports
                .iter()
                .map(|(proto, ip, port)| HostPort {
                    protocol: proto.to_string(),
                    ip: ip.to_string(),
                    port: *port,
                })
                .collect(),
            ..Default::default()
        };
        let wants = |port: i32, proto: &str, ip: Option<&str>| {
            let mut p = json!({"containerPort": 8080, "hostPort": port, "protocol": proto});
            if let Some(ip) = ip {
                p["hostIP"] = json!(ip);
            }
            json!({"containers": [{"name": "a", "image": "x", "ports": [p]}]})
        };
        // (ports in use, pod spec, fits)
        let cases = [
            (used(&[]), wants(80, "TCP", None), true),
            (
                used(&[("TCP", "0.0.0.0", 80)]),
                wants(80, "TCP", None),
                false,
            ),
            (
                used(&[("TCP", "0.0.0.0", 80)]),
                wants(80, "UDP", None),
                true,
            ),
            (
                used(&[("TCP", "0.0.0.0", 80)]),
                wants(81, "TCP", None),
                true,
            ),
            (
                used(&[("TCP", "10.0.0.1", 80)]),
                wants(80, "TCP", Some("10.0.0.2")),
                true,
            ),
            (
                used(&[("TCP", "10.0.0.1", 80)]),
                wants(80, "TCP", None),
                false,
            ),
            (
                used(&[("TCP", "0.0.0.0", 80)]),
                json!({"containers": [{"name": "a", "image": "x"}]}),
                true,
            ),
        ];
        for (u, spec, want) in cases {
            let p = pod(spec.clone());
            assert_eq!(host_ports_ok(&p, &u), want, "{spec} on {:?}", u.host_ports);
        }
    }

    #[test]
    fn resources() {
        let requests = |cpu: &str, memory: &str| json!({"containers": [{"name": "a", "image": "x", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]});
        let none = json!({"containers": [{"name": "a", "image": "x"}]});
        // node: 4 cpu, 8Gi, 110 pods. (usage, pod spec, (pods, cpu, memory) failures)
        let cases = [
            (usage(0, 0, 0), requests("1", "1Gi"), None),
            (usage(3000, 0, 0), requests("1", "1Gi"), None),
            (
                usage(3001, 0, 0),
                requests("1", "1Gi"),
                Some((false, true, false)),
            ),
            (usage(0, 7 << 30, 0), requests("1", "1Gi"), None),
            (
                usage(0, (7 << 30) + 1, 0),
                requests("1", "1Gi"),
                Some((false, false, true)),
            ),
            (
                usage(4000, 8 << 30, 0),
                requests("1", "1Gi"),
                Some((false, true, true)),
            ),
            (usage(0, 0, 109), requests("1", "1Gi"), None),
            (
                usage(0, 0, 110),
                requests("1", "1Gi"),
                Some((true, false, false)),
            ),
            (
                usage(5000, 9 << 30, 110),
                requests("1", "1Gi"),
                Some((true, true, true)),
            ),
            // Nothing requested: fits an overcommitted node, but not a full one.
            (usage(5000, 9 << 30, 0), none.clone(), None),
            (usage(0, 0, 110), none, Some((true, false, false))),
        ];
        let n = node("n1", json!({}));
        for (u, spec, want) in cases {
            let p = pod(spec.clone());
            let got = resources_fit(&p, &n, &u);
            let want = match want {
                None => Ok(()),
                Some((pods, cpu, memory)) => Err(Failure::Resources { pods, cpu, memory }),
            };
            assert_eq!(got, want, "{spec} on {u:?}");
        }
    }

    #[test]
    fn first_failing_filter_wins() {
        let mut n = node(
            "n1",
            json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}, "metadata": {"labels": {"a": "b"}}}),
        );
        let p = pod(json!({"nodeSelector": {"a": "c"}}));
        assert!(matches!(
            check(&p, &n, &Usage::default()),
            Err(Failure::Taint(_))
        ));
        n.unschedulable = true;
        assert_eq!(
            check(&p, &n, &Usage::default()),
            Err(Failure::Unschedulable)
        );
        n.unschedulable = false;
        n.taints.clear();
        assert_eq!(check(&p, &n, &Usage::default()), Err(Failure::NodeAffinity));
        let tolerating = Toleration {
            key: "k".into(),
            operator: TolerationOperator::Exists,
            value: String::new(),
            effect: None,
        };
        assert!(tolerating.tolerates(&Taint {
            key: "k".into(),
            value: String::new(),
            effect: TaintEffect::NoSchedule
        }));
    }

    #[test]
    fn messages() {
        let taint = |k: &str, v: &str| Reason::UntoleratedTaint {
            key: k.into(),
            value: v.into(),
        };
        // (nodes, reasons, message)
        let cases = [
            (0, vec![], "no nodes available to schedule pods"),
            (
                3,
                vec![
                    (Reason::InsufficientMemory, 2),
                    (taint(TAINT_UNREACHABLE, ""), 1),
                ],
                "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient memory.",
            ),
            (
                5,
                vec![
                    (Reason::TooManyPods, 1),
                    (Reason::InsufficientCpu, 2),
                    (Reason::InsufficientMemory, 2),
                    (Reason::Unschedulable, 1),
                    (Reason::NodeAffinity, 1),
                ],
                "0/5 nodes are available: 1 Too many pods, 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were unschedulable, 2 Insufficient cpu, 2 Insufficient memory.",
            ),
            (
                2,
                vec![(Reason::HostPorts, 1), (Reason::NotReady, 1)],
                "0/2 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 1 node(s) were not ready.",
            ),
            (
                1,
                vec![(taint("dedicated", "gpu"), 1)],
                "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}.",
            ),
        ];
        for (nodes, reasons, want) in cases {
            let u = Unschedulable {
                nodes,
                reasons: reasons.into_iter().collect(),
            };
            assert_eq!(u.to_string(), want);
        }
    }

    #[test]
    fn counting_failures() {
        let mut u = Unschedulable {
            nodes: 2,
            reasons: BTreeMap::new(),
        };
        u.count(&Failure::Resources {
            pods: false,
            cpu: true,
            memory: true,
        });
        u.count(&Failure::Resources {
            pods: false,
            cpu: true,
            memory: false,
        });
        assert_eq!(
            u.to_string(),
            "0/2 nodes are available: 1 Insufficient memory, 2 Insufficient cpu."
        );
    }
}
