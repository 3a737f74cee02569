//! The `pod-template-hash`: a short, stable name for a pod template.
//!
//! The deployment controller names each ReplicaSet `{deployment}-{hash}` and labels its
//! pods `pod-template-hash={hash}`; a template that hashes the same maps to the same
//! ReplicaSet. So the hash must not change when a template comes back from a client in a
//! different but equivalent shape — `kubectl rollout undo` sends `"resources":{}` and
//! `"creationTimestamp":null`, a stored template is already defaulted, `1000m` is `1`.
//! Before hashing, the template is therefore normalised:
//!
//! 1. the `pod-template-hash` label itself is removed;
//! 2. defaults are applied ([`crate::defaulting::default_pod_template`]);
//! 3. quantities are put in canonical form;
//! 4. it is written as canonical JSON: keys sorted, and nulls, empty strings, empty objects
//!    and empty arrays dropped (Kubernetes' `omitempty`: absent and empty mean the same),
//!    as is `metadata.creationTimestamp`.
//!
//! The hash is FNV-1a (32 bit) of that JSON, plus the collision count as Kubernetes adds it,
//! printed in decimal and mapped onto Kubernetes' "safe" alphabet
//! ([`crate::names::SAFE_ALPHABET`]): at most 10 characters, no vowels.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use serde_json::Value;

use crate::defaulting::default_pod_template;
use crate::names::SAFE_ALPHABET;
use crate::quantity::Quantity;

/// The label (and ReplicaSet name suffix) carrying the hash.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// The hash of a pod template.
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    pod_template_hash_with_collisions(template, None)
}

/// The hash of a pod template with a Deployment's `status.collisionCount` mixed in, as
/// Kubernetes does to step past a name taken by a ReplicaSet with another template.
pub fn pod_template_hash_with_collisions(
    template: &PodTemplateSpec,
    collision_count: Option<i32>,
) -> String {
    let mut hash = Fnv1a32::new();
    hash.write(normalized_template(template).as_bytes());
    if let Some(count) = collision_count {
        // Kubernetes writes the count as 8 bytes: 4 little-endian, 4 zero.
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&count.to_le_bytes());
        hash.write(&bytes);
    }
    safe_encode(&hash.finish().to_string())
}

/// Whether two templates are the same once normalised (Kubernetes' `EqualIgnoreHash`).
pub fn templates_equal(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized_template(a) == normalized_template(b)
}

/// The canonical JSON the hash is computed over.
pub fn normalized_template(template: &PodTemplateSpec) -> String {
    let mut t = template.clone();
    if let Some(meta) = &mut t.metadata {
        if let Some(labels) = &mut meta.labels {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
        }
        meta.creation_timestamp = None;
    }
    default_pod_template(&mut t);
    if let Some(spec) = &mut t.spec {
        canonical_quantities(spec);
    }
    let mut value = serde_json::to_value(&t).unwrap_or(Value::Null);
    prune(&mut value);
    let mut out = String::new();
    write_canonical(&value, &mut out);
    out
}

fn canonical_map(map: &mut Option<BTreeMap<String, K8sQuantity>>) {
    for q in map.iter_mut().flat_map(|m| m.values_mut()) {
        if let Ok(parsed) = Quantity::from_k8s(q) {
            *q = parsed.to_k8s();
        }
    }
}

fn canonical_quantities(spec: &mut PodSpec) {
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        if let Some(r) = &mut c.resources {
            canonical_map(&mut r.limits);
            canonical_map(&mut r.requests);
        }
    }
    canonical_map(&mut spec.overhead);
    for v in spec.volumes.iter_mut().flatten() {
        if let Some(q) = v.empty_dir.as_mut().and_then(|e| e.size_limit.as_mut())
            && let Ok(parsed) = Quantity::from_k8s(q)
        {
            *q = parsed.to_k8s();
        }
    }
}

/// Drops nulls, empty strings, empty objects and empty arrays, bottom-up. Returns whether
/// the value itself is now empty.
fn prune(v: &mut Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(map) => {
            map.retain(|_, child| !prune(child));
            map.is_empty()
        }
        Value::Array(items) => {
            // Elements keep their positions (order matters in lists); an element that
            // prunes to nothing stays as `{}`/`null` so that indices do not shift.
            for item in items.iter_mut() {
                prune(item);
            }
            items.is_empty()
        }
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// JSON with object keys sorted, whatever order the map kept them in.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(child) = map.get(*k) {
                    write_canonical(child, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Kubernetes' `SafeEncodeString`: each byte mapped onto the safe alphabet.
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

struct Fnv1a32(u32);

impl Fnv1a32 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;

    fn new() -> Self {
        Fnv1a32(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn finish(&self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).unwrap()
    }

    fn original() -> Value {
        json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "oci://ghcr.io/org/web:1.0",
                "ports": [{"containerPort": 8080}],
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]}
        })
    }

    #[test]
    fn fnv_and_alphabet() {
        let mut h = Fnv1a32::new();
        h.write(b"");
        assert_eq!(h.finish(), 0x811c_9dc5);
        let mut h = Fnv1a32::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xe40c_292c);
        // '0'..'9' are bytes 48..57, so digits map onto alphabet positions 21..26, 0..3.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn hash_shape() {
        let h = pod_template_hash(&template(original()));
        assert!(!h.is_empty() && h.len() <= 10, "{h}");
        assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{h}");
        assert_eq!(h, pod_template_hash(&template(original())), "stable");
    }

    #[test]
    fn equivalent_templates_hash_the_same() {
        let base = pod_template_hash(&template(original()));
        // What kubectl (rollout undo, apply) and the server send back for the same template.
        let equivalents = vec![
            (
                "kubectl rollout undo: creationTimestamp null, resources {}",
                json!({
                    "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                    "spec": {"containers": [{"name": "app", "image": "oci://ghcr.io/org/web:1.0",
                        "ports": [{"containerPort": 8080}],
                        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {}}}]}
                }),
            ),
            (
                "already defaulted by the server",
                json!({
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{"name": "app", "image": "oci://ghcr.io/org/web:1.0",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                            "imagePullPolicy": "IfNotPresent",
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File"}],
                        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                        "terminationGracePeriodSeconds": 30, "securityContext": {}, "enableServiceLinks": true
                    }
                }),
            ),
            (
                "copied from a ReplicaSet: pod-template-hash label",
                json!({
                    "metadata": {"labels": {"app": "web", "pod-template-hash": "abc12"}},
                    "spec": {"containers": [{"name": "app", "image": "oci://ghcr.io/org/web:1.0",
                        "ports": [{"containerPort": 8080}],
                        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]}
                }),
            ),
            (
                "empty lists, maps and strings vs absent",
                json!({
                    "metadata": {"labels": {"app": "web"}, "annotations": {}},
                    "spec": {"containers": [{"name": "app", "image": "oci://ghcr.io/org/web:1.0",
                        "ports": [{"containerPort": 8080}], "env": [], "args": [], "workingDir": "",
                        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}],
                        "volumes": [], "nodeSelector": {}}
                }),
            ),
            (
                "same quantities, other spelling",
                json!({
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "oci://ghcr.io/org/web:1.0",
                        "ports": [{"containerPort": 8080}],
                        "resources": {"limits": {"cpu": "0.5", "memory": "65536Ki"}}}]}
                }),
            ),
            (
                "keys in another order",
                json!({
                    "spec": {"containers": [{"resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
                        "ports": [{"containerPort": 8080}], "image": "oci://ghcr.io/org/web:1.0", "name": "app"}]},
                    "metadata": {"labels": {"app": "web"}}
                }),
            ),
        ];
        for (case, t) in equivalents {
            assert_eq!(pod_template_hash(&template(t.clone())), base, "{case}");
            assert!(
                templates_equal(&template(t), &template(original())),
                "{case}"
            );
        }
    }

    #[test]
    fn different_templates_hash_differently() {
        let base = pod_template_hash(&template(original()));
        let mut changes = Vec::new();
        for (pointer, value) in [
            (
                "/spec/containers/0/image",
                json!("oci://ghcr.io/org/web:1.1"),
            ),
            ("/spec/containers/0/ports/0/containerPort", json!(8081)),
            ("/metadata/labels/app", json!("api")),
            ("/spec/containers/0/resources/limits/cpu", json!("1")),
        ] {
            let mut t = original();
            if let Some(slot) = t.pointer_mut(pointer) {
                *slot = value;
            }
            changes.push((pointer, t));
        }
        let mut with_env = original();
        with_env["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
        changes.push(("env", with_env));
        let mut restart = original();
        restart["spec"]["restartPolicy"] = json!("Never");
        changes.push(("restartPolicy", restart));
        for (case, t) in changes {
            assert_ne!(pod_template_hash(&template(t)), base, "{case}");
        }
    }

    #[test]
    fn collision_count_changes_the_hash() {
        let t = template(original());
        let none = pod_template_hash_with_collisions(&t, None);
        let zero = pod_template_hash_with_collisions(&t, Some(0));
        let one = pod_template_hash_with_collisions(&t, Some(1));
        assert_eq!(none, pod_template_hash(&t));
        assert_ne!(none, zero);
        assert_ne!(zero, one);
        assert_eq!(one, pod_template_hash_with_collisions(&t, Some(1)));
    }

    #[test]
    fn canonical_json() {
        let mut v =
            json!({"b": 1, "a": {"z": null, "y": [], "x": {}, "w": "", "v": [{}, 2]}, "c": false});
        prune(&mut v);
        let mut out = String::new();
        write_canonical(&v, &mut out);
        assert_eq!(out, r#"{"a":{"v":[{},2]},"b":1,"c":false}"#);
    }
}
