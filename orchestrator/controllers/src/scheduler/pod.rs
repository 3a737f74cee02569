//! What the scheduler needs to know about a Pod, parsed once from its JSON into a compact
//! typed form ([`PodInfo`]) so that a decision never walks JSON.
//!
//! The scheduling-relevant part of the spec ([`PodSpecInfo`]: requests, node selector,
//! node affinity, tolerations, host ports) is immutable in practice; an update that leaves
//! the spec alone (a bind sets only `spec.nodeName`, status writes touch nothing) reuses the
//! previous parse through [`PodInfo::parse_update`].

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{self as core, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use serde::Deserialize;
use serde_json::Value;
use skiff_api::quantity::{self, Quantity};
use skiff_api::selector::{Operator, Requirement};
use skiff_client::ObjectKey;

/// The scheduler Skiff implements; pods naming another one are left alone.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// CPU counted for scoring when a pod requests none (Kubernetes' non-zero default).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory counted for scoring when a pod requests none (Kubernetes' non-zero default).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of the two resources the scheduler fits: millicores and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
}

impl Resources {
    pub fn add(&mut self, other: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
    }

    pub fn sub(&mut self, other: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
    }
}

/// A taint's (or toleration's) effect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
    /// An effect this scheduler does not know; never filters, never tolerated by effect.
    Other(String),
}

impl TaintEffect {
    pub fn parse(s: &str) -> TaintEffect {
        match s {
            "NoSchedule" => TaintEffect::NoSchedule,
            "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            other => TaintEffect::Other(other.to_string()),
        }
    }
}

/// A node taint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
}

/// How a toleration compares values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TolerationOperator {
    /// `Equal` (the default): key and value must match.
    Equal,
    /// `Exists`: any value; with an empty key, any taint.
    Exists,
    /// An operator this scheduler does not know: tolerates nothing.
    Unknown,
}

/// A pod toleration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toleration {
    /// Empty: every key (only meaningful with `Exists`).
    pub key: String,
    pub operator: TolerationOperator,
    pub value: String,
    /// `None`: every effect.
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Kubernetes' `ToleratesTaint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.as_ref().is_some_and(|e| *e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator {
            TolerationOperator::Equal => self.value == taint.value,
            TolerationOperator::Exists => true,
            TolerationOperator::Unknown => false,
        }
    }

    fn from_k8s(t: &core::Toleration) -> Toleration {
        Toleration {
            key: t.key.clone().unwrap_or_default(),
            operator: match t.operator.as_deref() {
                None | Some("") | Some("Equal") => TolerationOperator::Equal,
                Some("Exists") => TolerationOperator::Exists,
                Some(_) => TolerationOperator::Unknown,
            },
            value: t.value.clone().unwrap_or_default(),
            effect: t
                .effect
                .as_deref()
                .filter(|e| !e.is_empty())
                .map(TaintEffect::parse),
        }
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

/// A host port a container asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// `0.0.0.0` when unset (every address).
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    /// Kubernetes' rule: same protocol and port, and the same address or either one the
    /// wildcard.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == WILDCARD_IP || other.ip == WILDCARD_IP)
    }
}

const WILDCARD_IP: &str = "0.0.0.0";

/// A `matchFields` requirement: only `metadata.name` exists for nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

impl FieldRequirement {
    fn matches(&self, node_name: &str) -> bool {
        if self.key != "metadata.name" {
            return false;
        }
        let listed = self.values.iter().any(|v| v == node_name);
        match self.operator {
            Operator::In => listed,
            Operator::NotIn => !listed,
            _ => false,
        }
    }
}

/// One node selector term: every requirement must hold. Terms of a node selector are
/// ORed. An empty term, or one with a requirement that does not parse, matches no node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSelectorTerm {
    pub expressions: Vec<Requirement>,
    pub fields: Vec<FieldRequirement>,
    pub valid: bool,
}

impl NodeSelectorTerm {
    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.valid
            && (!self.expressions.is_empty() || !self.fields.is_empty())
            && self.expressions.iter().all(|r| r.matches(labels))
            && self.fields.iter().all(|f| f.matches(node_name))
    }

    pub fn from_k8s(term: &core::NodeSelectorTerm) -> NodeSelectorTerm {
        let mut valid = true;
        let mut expressions = Vec::new();
        for e in term.match_expressions.iter().flatten() {
            match node_operator(&e.operator).and_then(|op| {
                Requirement::new(&e.key, op, e.values.clone().unwrap_or_default()).ok()
            }) {
                Some(r) => expressions.push(r),
                None => valid = false,
            }
        }
        let mut fields = Vec::new();
        for f in term.match_fields.iter().flatten() {
            match node_operator(&f.operator) {
                Some(op @ (Operator::In | Operator::NotIn)) => fields.push(FieldRequirement {
                    key: f.key.clone(),
                    operator: op,
                    values: f.values.clone().unwrap_or_default(),
                }),
                _ => valid = false,
            }
        }
        NodeSelectorTerm {
            expressions,
            fields,
            valid,
        }
    }
}

fn node_operator(op: &str) -> Option<Operator> {
    Some(match op {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::GreaterThan,
        "Lt" => Operator::LessThan,
        _ => return None,
    })
}

/// A `preferredDuringSchedulingIgnoredDuringExecution` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferredTerm {
    pub weight: i64,
    pub term: NodeSelectorTerm,
}

/// The scheduling-relevant part of a pod's spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodSpecInfo {
    /// What the pod needs to fit (requests, limits where requests are missing).
    pub requests: Resources,
    /// What scoring counts: `requests` with Kubernetes' non-zero defaults.
    pub non_zero: Resources,
    /// `spec.nodeSelector`, every pair must be a node label.
    pub node_selector: Vec<(String, String)>,
    /// Required node affinity: ORed terms (`None`: no requirement).
    pub required: Option<Vec<NodeSelectorTerm>>,
    /// Preferred node affinity.
    pub preferred: Vec<PreferredTerm>,
    pub tolerations: Vec<Toleration>,
    pub host_ports: Vec<HostPort>,
}

/// The fields of a pod spec the scheduler reads; everything else is skipped unparsed
/// (a full `PodSpec` costs several times more, and 10,000 pods are parsed at startup).
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SpecFields {
    containers: Vec<ContainerFields>,
    init_containers: Vec<ContainerFields>,
    overhead: Option<BTreeMap<String, K8sQuantity>>,
    node_selector: Option<BTreeMap<String, String>>,
    affinity: Option<core::Affinity>,
    tolerations: Option<Vec<core::Toleration>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ContainerFields {
    resources: Option<core::ResourceRequirements>,
    restart_policy: Option<String>,
    ports: Option<Vec<core::ContainerPort>>,
}

impl PodSpecInfo {
    /// Parses the scheduling-relevant fields of a `spec`.
    pub fn parse(spec: &Value) -> Result<PodSpecInfo, String> {
        let fields = SpecFields::deserialize(spec).map_err(|e| format!("spec: {e}"))?;
        let sidecar = |c: &ContainerFields| c.restart_policy.as_deref() == Some("Always");
        let host_ports = fields
            .containers
            .iter()
            .chain(fields.init_containers.iter().filter(|c| sidecar(c)))
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let port = p.host_port.filter(|p| *p > 0)?;
                Some(HostPort {
                    protocol: p
                        .protocol
                        .clone()
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| "TCP".into()),
                    ip: p
                        .host_ip
                        .clone()
                        .filter(|ip| !ip.is_empty())
                        .unwrap_or_else(|| WILDCARD_IP.into()),
                    port,
                })
            })
            .collect();

        // Requests the way skiff-api computes them for the scheduler, from a spec that
        // carries only what that computation reads.
        let container = |c: ContainerFields| core::Container {
            resources: c.resources,
            restart_policy: c.restart_policy,
            ..Default::default()
        };
        let minimal = PodSpec {
            containers: fields.containers.into_iter().map(container).collect(),
            init_containers: Some(fields.init_containers.into_iter().map(container).collect()),
            overhead: fields.overhead,
            ..Default::default()
        };
        let requests = quantity::pod_requests(&minimal).map_err(|e| format!("resources: {e}"))?;
        let amount = |name: &str, f: fn(&Quantity) -> i64| requests.get(name).map_or(0, f);
        let requests = Resources {
            milli_cpu: amount("cpu", Quantity::milli_value),
            memory: amount("memory", Quantity::value),
        };
        let non_zero = Resources {
            milli_cpu: if requests.milli_cpu == 0 {
                DEFAULT_MILLI_CPU_REQUEST
            } else {
                requests.milli_cpu
            },
            memory: if requests.memory == 0 {
                DEFAULT_MEMORY_REQUEST
            } else {
                requests.memory
            },
        };

        let node_affinity = fields
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref());
        let required = node_affinity
            .and_then(|na| {
                na.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|ns| {
                ns.node_selector_terms
                    .iter()
                    .map(NodeSelectorTerm::from_k8s)
                    .collect()
            });
        let preferred = node_affinity
            .and_then(|na| {
                na.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|terms| {
                terms
                    .iter()
                    .filter(|t| t.weight != 0)
                    .map(|t| PreferredTerm {
                        weight: i64::from(t.weight),
                        term: NodeSelectorTerm::from_k8s(&t.preference),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(PodSpecInfo {
            requests,
            non_zero,
            node_selector: fields
                .node_selector
                .unwrap_or_default()
                .into_iter()
                .collect(),
            required,
            preferred,
            tolerations: fields
                .tolerations
                .iter()
                .flatten()
                .map(Toleration::from_k8s)
                .collect(),
            host_ports,
        })
    }
}

/// A pod as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub key: ObjectKey,
    pub uid: String,
    /// `spec.nodeName` (`None` when unset or empty).
    pub node_name: Option<String>,
    /// `spec.schedulerName`, `default-scheduler` when unset.
    pub scheduler_name: String,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// `status.phase` is Succeeded or Failed: the pod holds no resources.
    pub terminal: bool,
    /// `spec.schedulingGates` is not empty: not to be scheduled yet.
    pub gated: bool,
    /// `spec.priority` (0 when unset); higher is scheduled first.
    pub priority: i32,
    /// `metadata.creationTimestamp` as written (RFC 3339: orders as a string).
    pub creation: String,
    /// The uid of the controller ownerReference: replicas of one owner are spread.
    pub owner: Option<Arc<str>>,
    /// The message of a `PodScheduled=False` `Unschedulable` condition already on the pod.
    pub unschedulable_message: Option<String>,
    pub spec: Arc<PodSpecInfo>,
}

impl PodInfo {
    /// Parses a pod object.
    pub fn parse(pod: &Value) -> Result<PodInfo, String> {
        let spec = PodSpecInfo::parse(pod.get("spec").unwrap_or(&Value::Null))?;
        PodInfo::with_spec(pod, Arc::new(spec))
    }

    /// Parses an updated pod, reusing `previous`'s spec parse when `old` (the object
    /// `previous` was parsed from) has the same uid and a spec that differs at most in
    /// `nodeName`.
    pub fn parse_update(pod: &Value, old: &Value, previous: &PodInfo) -> Result<PodInfo, String> {
        let same_uid = str_at(pod, "/metadata/uid") == previous.uid.as_str()
            && str_at(old, "/metadata/uid") == previous.uid.as_str();
        if same_uid && spec_equal_but_node_name(old.get("spec"), pod.get("spec")) {
            PodInfo::with_spec(pod, previous.spec.clone())
        } else {
            PodInfo::parse(pod)
        }
    }

    fn with_spec(pod: &Value, spec: Arc<PodSpecInfo>) -> Result<PodInfo, String> {
        let key = ObjectKey::of(pod).ok_or("the pod has no metadata.name")?;
        let meta = pod.get("metadata").unwrap_or(&Value::Null);
        let owner = meta
            .get("ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            .and_then(|r| r.get("uid").and_then(Value::as_str))
            .filter(|uid| !uid.is_empty())
            .map(Arc::from);
        let phase = str_at(pod, "/status/phase");
        let unschedulable_message = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"))
            .filter(|c| {
                c.get("status").and_then(Value::as_str) == Some("False")
                    && c.get("reason").and_then(Value::as_str) == Some("Unschedulable")
            })
            .map(|c| str_at(c, "/message").to_string());
        Ok(PodInfo {
            key,
            uid: str_at(meta, "/uid").to_string(),
            node_name: Some(str_at(pod, "/spec/nodeName"))
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            scheduler_name: Some(str_at(pod, "/spec/schedulerName"))
                .filter(|n| !n.is_empty())
                .unwrap_or(DEFAULT_SCHEDULER)
                .to_string(),
            deleting: meta.get("deletionTimestamp").is_some_and(|t| !t.is_null()),
            terminal: phase == "Succeeded" || phase == "Failed",
            gated: pod
                .pointer("/spec/schedulingGates")
                .and_then(Value::as_array)
                .is_some_and(|g| !g.is_empty()),
            priority: pod
                .pointer("/spec/priority")
                .and_then(Value::as_i64)
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(0),
            creation: str_at(meta, "/creationTimestamp").to_string(),
            owner,
            unschedulable_message,
            spec,
        })
    }

    /// Whether this scheduler should place the pod now: unbound, ours, not being
    /// deleted, not finished, not gated.
    pub fn is_pending(&self) -> bool {
        self.node_name.is_none()
            && self.scheduler_name == DEFAULT_SCHEDULER
            && !self.deleting
            && !self.terminal
            && !self.gated
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Whether two specs are equal except for `nodeName`.
fn spec_equal_but_node_name(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let len = |m: &serde_json::Map<String, Value>| {
                m.len() - usize::from(m.contains_key("nodeName"))
            };
            len(a) == len(b)
                && a.iter()
                    .filter(|(k, _)| *k != "nodeName")
                    .all(|(k, v)| b.get(k) == Some(v))
        }
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                         "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": spec,
        })
    }

    #[test]
    fn requests_fall_back_to_limits_and_get_non_zero_defaults() {
        // (containers, requests, non_zero)
        let cases: Vec<(Value, Resources, Resources)> = vec![
            (
                json!([{"name": "a", "image": "x", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]),
                Resources {
                    milli_cpu: 250,
                    memory: 64 << 20,
                },
                Resources {
                    milli_cpu: 250,
                    memory: 64 << 20,
                },
            ),
            (
                json!([{"name": "a", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]),
                Resources {
                    milli_cpu: 1000,
                    memory: 1 << 30,
                },
                Resources {
                    milli_cpu: 1000,
                    memory: 1 << 30,
                },
            ),
            (
                json!([{"name": "a", "image": "x"}, {"name": "b", "image": "x", "resources": {"requests": {"cpu": "100m"}}}]),
                Resources {
                    milli_cpu: 100,
                    memory: 0,
                },
                Resources {
                    milli_cpu: 100,
                    memory: DEFAULT_MEMORY_REQUEST,
                },
            ),
            (
                json!([{"name": "a", "image": "x"}]),
                Resources::default(),
                Resources {
                    milli_cpu: DEFAULT_MILLI_CPU_REQUEST,
                    memory: DEFAULT_MEMORY_REQUEST,
                },
            ),
        ];
        for (containers, requests, non_zero) in cases {
            let info = PodInfo::parse(&pod(json!({"containers": containers}))).unwrap();
            assert_eq!(info.spec.requests, requests, "{containers}");
            assert_eq!(info.spec.non_zero, non_zero, "{containers}");
        }
    }

    #[test]
    fn init_containers_and_sidecars_count_as_kubernetes_counts_them() {
        let info = PodInfo::parse(&pod(json!({
            "containers": [{"name": "a", "image": "x", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}],
            "initContainers": [
                {"name": "setup", "image": "x", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}},
                {"name": "proxy", "image": "x", "restartPolicy": "Always",
                 "resources": {"limits": {"memory": "16Mi"}},
                 "ports": [{"containerPort": 9000, "hostPort": 9000}]}
            ],
            "overhead": {"cpu": "10m"}
        })))
        .unwrap();
        // cpu: max(100m + sidecar 0, init 2) + overhead 10m; memory: 64Mi + 16Mi.
        assert_eq!(
            info.spec.requests,
            Resources {
                milli_cpu: 2010,
                memory: 80 << 20
            }
        );
        assert_eq!(
            info.spec.host_ports.len(),
            1,
            "a sidecar's host port counts"
        );
        assert!(
            PodInfo::parse(&pod(json!({"containers": [{"name": "a", "image": "x",
            "resources": {"requests": {"cpu": "lots"}}}]})))
            .is_err()
        );
    }

    #[test]
    fn parses_scheduling_fields() {
        let mut p = pod(json!({
            "containers": [{"name": "a", "image": "x", "ports": [
                {"containerPort": 80, "hostPort": 8080},
                {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"},
                {"containerPort": 90}
            ]}],
            "nodeSelector": {"disk": "ssd"},
            "schedulerName": "other",
            "priority": 7,
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}, {"operator": "Exists"}],
            "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
                    {"matchExpressions": [{"key": "zone", "operator": "Bogus"}]}
                ]},
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 5, "preference": {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}},
                    {"weight": 0, "preference": {"matchExpressions": [{"key": "x", "operator": "Exists"}]}}
                ]
            }}
        }));
        p["metadata"]["ownerReferences"] = json!([
            {"apiVersion": "v1", "kind": "X", "name": "x", "uid": "not-controller"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid", "controller": true}
        ]);
        p["status"] = json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Too many pods."}
        ]});
        let info = PodInfo::parse(&p).unwrap();
        assert_eq!(info.key.to_string(), "ns/p");
        assert_eq!(info.scheduler_name, "other");
        assert!(!info.is_pending(), "another scheduler's pod");
        assert_eq!(info.priority, 7);
        assert_eq!(info.owner.as_deref(), Some("rs-uid"));
        assert_eq!(
            info.unschedulable_message.as_deref(),
            Some("0/1 nodes are available: 1 Too many pods.")
        );
        let spec = &info.spec;
        assert_eq!(spec.node_selector, vec![("disk".into(), "ssd".into())]);
        assert_eq!(
            spec.host_ports,
            vec![
                HostPort {
                    protocol: "TCP".into(),
                    ip: "0.0.0.0".into(),
                    port: 8080
                },
                HostPort {
                    protocol: "UDP".into(),
                    ip: "10.0.0.1".into(),
                    port: 53
                },
            ]
        );
        assert_eq!(spec.tolerations.len(), 2);
        assert_eq!(spec.tolerations[1].key, "");
        assert_eq!(spec.tolerations[1].effect, None);
        let required = spec.required.as_ref().unwrap();
        assert_eq!(required.len(), 2);
        assert!(required[0].valid);
        assert!(
            !required[1].valid,
            "an unknown operator makes the term match nothing"
        );
        assert_eq!(spec.preferred.len(), 1, "zero weights are dropped");
        assert_eq!(spec.preferred[0].weight, 5);
    }

    #[test]
    fn pending_states() {
        // (patch of the pod, is_pending)
        let cases = [
            (json!({}), true),
            (json!({"spec": {"nodeName": "n1"}}), false),
            (json!({"spec": {"nodeName": ""}}), true),
            (
                json!({"spec": {"schedulerName": "default-scheduler"}}),
                true,
            ),
            (json!({"spec": {"schedulerName": "mine"}}), false),
            (
                json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}}),
                false,
            ),
            (json!({"status": {"phase": "Failed"}}), false),
            (json!({"spec": {"schedulingGates": [{"name": "g"}]}}), false),
        ];
        for (patch, pending) in cases {
            let mut p = pod(json!({"containers": [{"name": "a", "image": "x"}]}));
            json_patch_merge(&mut p, &patch);
            assert_eq!(PodInfo::parse(&p).unwrap().is_pending(), pending, "{patch}");
        }
    }

    fn json_patch_merge(target: &mut Value, patch: &Value) {
        if let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if v.is_object() => json_patch_merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }

    #[test]
    fn update_reuses_the_spec_parse_when_only_the_node_changes() {
        let old = pod(json!({"containers": [{"name": "a", "image": "x"}]}));
        let first = PodInfo::parse(&old).unwrap();
        let mut bound = old.clone();
        bound["spec"]["nodeName"] = json!("n1");
        let second = PodInfo::parse_update(&bound, &old, &first).unwrap();
        assert!(Arc::ptr_eq(&first.spec, &second.spec));
        assert_eq!(second.node_name.as_deref(), Some("n1"));

        let mut changed = bound.clone();
        changed["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        let third = PodInfo::parse_update(&changed, &bound, &second).unwrap();
        assert!(!Arc::ptr_eq(&second.spec, &third.spec));
        assert_eq!(third.spec.tolerations.len(), 1);

        let mut recreated = bound.clone();
        recreated["metadata"]["uid"] = json!("u2");
        let fourth = PodInfo::parse_update(&recreated, &bound, &second).unwrap();
        assert!(!Arc::ptr_eq(&second.spec, &fourth.spec));
    }

    #[test]
    fn tolerations_match_taints() {
        let taint = |k: &str, v: &str, e: TaintEffect| Taint {
            key: k.into(),
            value: v.into(),
            effect: e,
        };
        let tol = |k: &str, op: TolerationOperator, v: &str, e: Option<TaintEffect>| Toleration {
            key: k.into(),
            operator: op,
            value: v.into(),
            effect: e,
        };
        use TaintEffect::*;
        use TolerationOperator::*;
        // (toleration, taint, tolerated)
        let cases = [
            (
                tol("k", Equal, "v", Some(NoSchedule)),
                taint("k", "v", NoSchedule),
                true,
            ),
            (
                tol("k", Equal, "v", Some(NoSchedule)),
                taint("k", "w", NoSchedule),
                false,
            ),
            (
                tol("k", Equal, "v", Some(NoSchedule)),
                taint("k", "v", NoExecute),
                false,
            ),
            (tol("k", Equal, "v", None), taint("k", "v", NoExecute), true),
            (
                tol("k", Exists, "", None),
                taint("k", "anything", NoSchedule),
                true,
            ),
            (
                tol("k", Exists, "", None),
                taint("j", "v", NoSchedule),
                false,
            ),
            (tol("", Exists, "", None), taint("j", "v", NoExecute), true),
            (
                tol("", Exists, "", Some(NoSchedule)),
                taint("j", "v", NoExecute),
                false,
            ),
            (tol("k", Equal, "", None), taint("k", "", NoSchedule), true),
            (
                tol("k", Unknown, "v", None),
                taint("k", "v", NoSchedule),
                false,
            ),
        ];
        for (t, taint, want) in cases {
            assert_eq!(t.tolerates(&taint), want, "{t:?} vs {taint:?}");
        }
    }

    #[test]
    fn host_port_conflicts() {
        let hp = |proto: &str, ip: &str, port| HostPort {
            protocol: proto.into(),
            ip: ip.into(),
            port,
        };
        let cases = [
            (hp("TCP", "0.0.0.0", 80), hp("TCP", "0.0.0.0", 80), true),
            (hp("TCP", "0.0.0.0", 80), hp("TCP", "10.0.0.1", 80), true),
            (hp("TCP", "10.0.0.2", 80), hp("TCP", "10.0.0.1", 80), false),
            (hp("TCP", "10.0.0.1", 80), hp("TCP", "10.0.0.1", 80), true),
            (hp("TCP", "0.0.0.0", 80), hp("UDP", "0.0.0.0", 80), false),
            (hp("TCP", "0.0.0.0", 80), hp("TCP", "0.0.0.0", 81), false),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.conflicts(&b), want, "{a:?} vs {b:?}");
            assert_eq!(b.conflicts(&a), want, "{b:?} vs {a:?}");
        }
    }

    #[test]
    fn node_selector_terms() {
        let labels: BTreeMap<String, String> = [("zone", "a"), ("cores", "8")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let term = |v: Value| {
            NodeSelectorTerm::from_k8s(
                &serde_json::from_value::<core::NodeSelectorTerm>(v).unwrap(),
            )
        };
        // (term, matches node "n1" with `labels`)
        let cases = [
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "gpu", "operator": "NotIn", "values": ["x"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "Gt", "values": ["4"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]},
                {"key": "cores", "operator": "In", "values": ["16"]}]}),
                false,
            ),
            (
                json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}),
                true,
            ),
            (
                json!({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}),
                false,
            ),
            (
                json!({"matchFields": [{"key": "metadata.name", "operator": "Exists"}]}),
                false,
            ),
            (json!({}), false),
        ];
        for (t, want) in cases {
            assert_eq!(term(t.clone()).matches("n1", &labels), want, "{t}");
        }
    }
}
