//! Builders for the scheduler's unit tests: nodes and pods from a little JSON.

use serde_json::{Value, json};

use super::node::NodeInfo;
use super::pod::PodInfo;

/// Merges `patch` into `target` (objects recursively, anything else replaced).
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if v.is_object() && existing.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// A Ready node with 4 CPUs, 8Gi and room for 110 pods, with `patch` merged in.
pub fn node(name: &str, patch: Value) -> NodeInfo {
    let mut n = node_json(name);
    merge(&mut n, &patch);
    NodeInfo::parse(&n).expect("a node with a name")
}

pub fn node_json(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    })
}

/// A pending pod `ns/p` (uid `u-p`) with `spec` (one container unless `spec` has some).
pub fn pod(spec: Value) -> PodInfo {
    named_pod("p", spec)
}

pub fn named_pod(name: &str, spec: Value) -> PodInfo {
    PodInfo::parse(&pod_json(name, spec)).expect("a valid pod")
}

pub fn pod_json(name: &str, spec: Value) -> Value {
    let mut s = json!({"containers": [{"name": "main", "image": "file:///app.wasm"}]});
    merge(&mut s, &spec);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"),
                     "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": s,
    })
}
