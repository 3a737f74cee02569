//! What the scheduler needs to know about a Node, parsed once from its JSON ([`NodeInfo`]).

use std::collections::BTreeMap;

use serde_json::Value;
use skiff_api::Quantity;

use super::pod::{Taint, TaintEffect};

/// The `Ready` condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// `False`, or no `Ready` condition yet.
    NotReady,
    /// `Unknown`: the node stopped reporting.
    Unknown,
}

/// What a node offers to pods (`status.allocatable`, each resource falling back to
/// `status.capacity`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allocatable {
    pub milli_cpu: i64,
    pub memory: i64,
    pub pods: i64,
}

/// A node as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    pub readiness: Readiness,
    pub taints: Vec<Taint>,
    pub allocatable: Allocatable,
}

impl NodeInfo {
    /// Parses a node object; `None` without a name. Quantities that do not parse count
    /// as zero (validation rejects them first).
    pub fn parse(node: &Value) -> Option<NodeInfo> {
        let meta = node.get("metadata")?;
        let name = meta.get("name")?.as_str()?.to_string();
        let labels = meta
            .get("labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        let status = node.get("status").unwrap_or(&Value::Null);
        let readiness = match status
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str)
        {
            Some("True") => Readiness::Ready,
            Some("Unknown") => Readiness::Unknown,
            _ => Readiness::NotReady,
        };
        let taints = node
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|t| {
                let s = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                Taint {
                    key: s("key"),
                    value: s("value"),
                    effect: TaintEffect::parse(&s("effect")),
                }
            })
            .collect();
        let quantity = |name: &str| -> Option<Quantity> {
            ["allocatable", "capacity"].iter().find_map(|field| {
                let q = status.get(*field)?.get(name)?.as_str()?;
                Quantity::parse(q).ok()
            })
        };
        let allocatable = Allocatable {
            milli_cpu: quantity("cpu").map_or(0, |q| q.milli_value()),
            memory: quantity("memory").map_or(0, |q| q.value()),
            pods: quantity("pods").map_or(0, |q| q.value()),
        };
        Some(NodeInfo {
            name,
            labels,
            unschedulable: node
                .pointer("/spec/unschedulable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            readiness,
            taints,
            allocatable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_node() {
        let node = json!({
            "metadata": {"name": "n1", "labels": {"zone": "a"}},
            "spec": {"unschedulable": true, "taints": [
                {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
                {"key": "k", "value": "v", "effect": "PreferNoSchedule"}
            ]},
            "status": {
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "allocatable": {"cpu": "3500m", "memory": "7Gi"},
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "Unknown"}]
            }
        });
        let info = NodeInfo::parse(&node).unwrap();
        assert_eq!(info.name, "n1");
        assert_eq!(info.labels["zone"], "a");
        assert!(info.unschedulable);
        assert_eq!(info.readiness, Readiness::Unknown);
        assert_eq!(
            info.allocatable,
            Allocatable {
                milli_cpu: 3500,
                memory: 7 << 30,
                pods: 110
            },
            "allocatable, capacity where allocatable lacks a resource"
        );
        assert_eq!(info.taints.len(), 2);
        assert_eq!(info.taints[0].value, "");
        assert_eq!(info.taints[0].effect, TaintEffect::NoExecute);
        assert_eq!(info.taints[1].effect, TaintEffect::PreferNoSchedule);
    }

    #[test]
    fn readiness() {
        let cases = [
            (
                json!([{"type": "Ready", "status": "True"}]),
                Readiness::Ready,
            ),
            (
                json!([{"type": "Ready", "status": "False"}]),
                Readiness::NotReady,
            ),
            (
                json!([{"type": "Ready", "status": "Unknown"}]),
                Readiness::Unknown,
            ),
            (json!([]), Readiness::NotReady),
        ];
        for (conditions, want) in cases {
            let node = json!({"metadata": {"name": "n"}, "status": {"conditions": conditions}});
            assert_eq!(
                NodeInfo::parse(&node).unwrap().readiness,
                want,
                "{conditions}"
            );
        }
        assert!(NodeInfo::parse(&json!({"metadata": {}})).is_none());
    }
}
