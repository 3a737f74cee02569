//! What may not change on update.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

use super::{FieldError, FieldPath, Raw};
use crate::object::Object;
use crate::quantity::Quantity;

const IMMUTABLE: &str = "field is immutable";

/// The fields a Pod update may change (everything else in `spec` is fixed at creation).
pub const POD_UPDATABLE_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,\
     `spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),\
     `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn render<T: Serialize>(v: &T) -> Raw {
    Raw(serde_json::to_string(v).unwrap_or_default())
}

/// `name`, `namespace` and `uid` never change (an empty new uid means "not sent").
pub(super) fn validate_meta_update(old: &ObjectMeta, new: &ObjectMeta, errs: &mut Vec<FieldError>) {
    let p = FieldPath::new("metadata");
    let pairs = [
        ("name", &old.name, &new.name, false),
        ("namespace", &old.namespace, &new.namespace, false),
        ("uid", &old.uid, &new.uid, true),
    ];
    for (field, old, new, empty_ok) in pairs {
        let (o, n) = (old.as_deref().unwrap_or(""), new.as_deref().unwrap_or(""));
        if o != n && !(empty_ok && n.is_empty()) {
            errs.push(FieldError::invalid(&p.child(field), n, IMMUTABLE));
        }
    }
}

/// Leaf paths where two JSON values differ (for messages), at most `limit`.
fn diff_paths(old: &Value, new: &Value, path: &str, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let child = format!("{path}.{k}");
                diff_paths(
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    &child,
                    out,
                    limit,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_paths(x, y, &format!("{path}[{i}]"), out, limit);
            }
        }
        _ => out.push(path.to_string()),
    }
}

fn immutable<T: Serialize + PartialEq>(
    old: &T,
    new: &T,
    p: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if old != new {
        errs.push(FieldError::invalid(p, render(new), IMMUTABLE));
    }
}

pub(super) fn validate_spec_update(old: &Object, new: &Object, errs: &mut Vec<FieldError>) {
    let spec = FieldPath::new("spec");
    match (old, new) {
        (Object::Pod(o), Object::Pod(n)) => validate_pod_update(o, n, errs),
        (Object::Deployment(o), Object::Deployment(n)) => {
            if let (Some(os), Some(ns)) = (&o.spec, &n.spec) {
                immutable(&os.selector, &ns.selector, &spec.child("selector"), errs);
            }
        }
        (Object::ReplicaSet(o), Object::ReplicaSet(n)) => {
            if let (Some(os), Some(ns)) = (&o.spec, &n.spec) {
                immutable(&os.selector, &ns.selector, &spec.child("selector"), errs);
            }
        }
        (Object::DaemonSet(o), Object::DaemonSet(n)) => {
            if let (Some(os), Some(ns)) = (&o.spec, &n.spec) {
                immutable(&os.selector, &ns.selector, &spec.child("selector"), errs);
            }
        }
        (Object::Job(o), Object::Job(n)) => {
            if let (Some(os), Some(ns)) = (&o.spec, &n.spec) {
                immutable(&os.selector, &ns.selector, &spec.child("selector"), errs);
                if os.template != ns.template {
                    errs.push(FieldError::invalid_omit(&spec.child("template"), IMMUTABLE));
                }
                immutable(
                    &os.completions,
                    &ns.completions,
                    &spec.child("completions"),
                    errs,
                );
                immutable(
                    &os.completion_mode,
                    &ns.completion_mode,
                    &spec.child("completionMode"),
                    errs,
                );
            }
        }
        (Object::Service(o), Object::Service(n)) => {
            let old_ip = o
                .spec
                .as_ref()
                .and_then(|s| s.cluster_ip.as_deref())
                .unwrap_or("");
            let new_ip = n
                .spec
                .as_ref()
                .and_then(|s| s.cluster_ip.as_deref())
                .unwrap_or("");
            if !old_ip.is_empty() && old_ip != new_ip {
                errs.push(FieldError::invalid(
                    &spec.child("clusterIP"),
                    new_ip,
                    IMMUTABLE,
                ));
            }
        }
        (Object::PersistentVolumeClaim(o), Object::PersistentVolumeClaim(n)) => {
            validate_pvc_update(o, n, errs);
        }
        (Object::ConfigMap(o), Object::ConfigMap(n)) if o.immutable == Some(true) => {
            if n.immutable != Some(true) {
                errs.push(FieldError::forbidden(
                    &FieldPath::new("immutable"),
                    "field is immutable when `immutable` is set",
                ));
            }
            if o.data != n.data {
                errs.push(FieldError::forbidden(
                    &FieldPath::new("data"),
                    "field is immutable when `immutable` is set",
                ));
            }
            if o.binary_data != n.binary_data {
                errs.push(FieldError::forbidden(
                    &FieldPath::new("binaryData"),
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        (Object::Secret(o), Object::Secret(n)) => {
            let (ot, nt) = (
                o.type_.as_deref().unwrap_or("Opaque"),
                n.type_.as_deref().unwrap_or("Opaque"),
            );
            if ot != nt {
                errs.push(FieldError::invalid(&FieldPath::new("type"), nt, IMMUTABLE));
            }
            if o.immutable == Some(true) {
                if n.immutable != Some(true) {
                    errs.push(FieldError::forbidden(
                        &FieldPath::new("immutable"),
                        "field is immutable when `immutable` is set",
                    ));
                }
                if o.data != n.data || n.string_data.as_ref().is_some_and(|d| !d.is_empty()) {
                    errs.push(FieldError::forbidden(
                        &FieldPath::new("data"),
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        (Object::Node(o), Object::Node(n)) => {
            let old_cidr = o
                .spec
                .as_ref()
                .and_then(|s| s.pod_cidr.as_deref())
                .unwrap_or("");
            let new_cidr = n
                .spec
                .as_ref()
                .and_then(|s| s.pod_cidr.as_deref())
                .unwrap_or("");
            if !old_cidr.is_empty() && old_cidr != new_cidr {
                errs.push(FieldError::forbidden(
                    &spec.child("podCIDR"),
                    "node updates may not change podCIDR except from \"\" to valid",
                ));
            }
        }
        _ => {}
    }
}

fn validate_pod_update(
    old: &k8s_openapi::api::core::v1::Pod,
    new: &k8s_openapi::api::core::v1::Pod,
    errs: &mut Vec<FieldError>,
) {
    let path = FieldPath::new("spec");
    let (Some(os), Some(ns)) = (&old.spec, &new.spec) else {
        if old.spec != new.spec {
            errs.push(FieldError::forbidden(
                &path,
                format!("pod updates may not change fields other than {POD_UPDATABLE_FIELDS}"),
            ));
        }
        return;
    };
    // activeDeadlineSeconds may be set, or lowered, never raised or unset.
    match (os.active_deadline_seconds, ns.active_deadline_seconds) {
        (Some(o), Some(n)) if n > o => errs.push(FieldError::invalid(
            &path.child("activeDeadlineSeconds"),
            n,
            "must be less than or equal to previous value",
        )),
        (Some(_), None) => errs.push(FieldError::invalid_omit(
            &path.child("activeDeadlineSeconds"),
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    // Tolerations may only be added to.
    let old_tolerations = os.tolerations.as_deref().unwrap_or(&[]);
    let new_tolerations = ns.tolerations.as_deref().unwrap_or(&[]);
    if old_tolerations.iter().any(|t| !new_tolerations.contains(t)) {
        errs.push(FieldError::forbidden(
            &path.child("tolerations"),
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    // Compare everything else: new with the mutable fields put back to old's values.
    let mut masked = ns.clone();
    for (m, o) in masked.containers.iter_mut().zip(&os.containers) {
        m.image.clone_from(&o.image);
    }
    if let (Some(m), Some(o)) = (masked.init_containers.as_mut(), os.init_containers.as_ref()) {
        for (m, o) in m.iter_mut().zip(o) {
            m.image.clone_from(&o.image);
        }
    }
    masked.active_deadline_seconds = os.active_deadline_seconds;
    masked.tolerations.clone_from(&os.tolerations);
    if os.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && ns.termination_grace_period_seconds == Some(1)
    {
        masked.termination_grace_period_seconds = os.termination_grace_period_seconds;
    }
    if &masked != os {
        let mut changed = Vec::new();
        diff_paths(&json(os), &json(&masked), "spec", &mut changed, 5);
        errs.push(FieldError::forbidden(
            &path,
            format!(
                "pod updates may not change fields other than {POD_UPDATABLE_FIELDS}; changed: {}",
                changed.join(", ")
            ),
        ));
    }
}

fn validate_pvc_update(
    old: &k8s_openapi::api::core::v1::PersistentVolumeClaim,
    new: &k8s_openapi::api::core::v1::PersistentVolumeClaim,
    errs: &mut Vec<FieldError>,
) {
    let path = FieldPath::new("spec");
    let default = Default::default();
    let os = old.spec.as_ref().unwrap_or(&default);
    let ns = new.spec.as_ref().unwrap_or(&default);
    let storage = |s: &k8s_openapi::api::core::v1::PersistentVolumeClaimSpec| {
        s.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| Quantity::from_k8s(q).ok())
    };
    if let (Some(o), Some(n)) = (storage(os), storage(ns))
        && n < o
    {
        errs.push(FieldError::forbidden(
            &path.child("resources").child("requests").child("storage"),
            "field can not be less than previous value",
        ));
    }
    let mut masked = ns.clone();
    masked.resources.clone_from(&os.resources);
    // Binding sets volumeName once.
    if os.volume_name.as_deref().unwrap_or("").is_empty() {
        masked.volume_name.clone_from(&os.volume_name);
    }
    if &masked != os {
        errs.push(FieldError::forbidden(
            &path,
            "spec is immutable after creation except resources.requests.storage (which may only grow) and volumeName (set once, when bound)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::FieldErrorKind::*;
    use super::super::testutil::*;
    use super::super::validate_update;
    use serde_json::{Value, json};

    fn pod(spec: Value) -> Value {
        json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "d", "uid": "u1"}, "spec": spec})
    }

    fn base_spec() -> Value {
        json!({"containers": [{"name": "a", "image": "oci://r/a:1", "ports": [{"containerPort": 80}]}],
               "tolerations": [{"key": "k", "operator": "Exists"}], "activeDeadlineSeconds": 100})
    }

    fn with(mut v: Value, pointer: &str, new: Value) -> Value {
        if let Some(slot) = v.pointer_mut(pointer) {
            *slot = new;
        }
        v
    }

    fn check(cases: Vec<(&str, Value, Value, Expected)>) {
        for (name, old, new, want) in cases {
            assert_errors(&validate_update(&obj(old), &obj(new)), &want, name);
        }
    }

    #[test]
    fn metadata_is_fixed() {
        let cm = |name: &str, ns: &str, uid: &str| json!({"kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "uid": uid}});
        check(vec![
            ("same", cm("a", "d", "u"), cm("a", "d", "u"), vec![]),
            (
                "uid omitted",
                cm("a", "d", "u"),
                json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d"}}),
                vec![],
            ),
            (
                "rename",
                cm("a", "d", "u"),
                cm("b", "d", "u"),
                vec![("metadata.name", Invalid)],
            ),
            (
                "move",
                cm("a", "d", "u"),
                cm("a", "e", "u"),
                vec![("metadata.namespace", Invalid)],
            ),
            (
                "uid",
                cm("a", "d", "u"),
                cm("a", "d", "v"),
                vec![("metadata.uid", Invalid)],
            ),
        ]);
    }

    #[test]
    fn pod_updates() {
        let old = pod(base_spec());
        check(vec![
            ("no change", old.clone(), old.clone(), vec![]),
            (
                "image",
                old.clone(),
                pod(with(
                    base_spec(),
                    "/containers/0/image",
                    json!("oci://r/a:2"),
                )),
                vec![],
            ),
            (
                "lower deadline",
                old.clone(),
                pod(with(base_spec(), "/activeDeadlineSeconds", json!(50))),
                vec![],
            ),
            (
                "raise deadline",
                old.clone(),
                pod(with(base_spec(), "/activeDeadlineSeconds", json!(500))),
                vec![("spec.activeDeadlineSeconds", Invalid)],
            ),
            (
                "unset deadline",
                old.clone(),
                pod(with(base_spec(), "/activeDeadlineSeconds", json!(null))),
                vec![("spec.activeDeadlineSeconds", Invalid)],
            ),
            (
                "add toleration",
                old.clone(),
                pod(with(
                    base_spec(),
                    "/tolerations",
                    json!([{"key": "k", "operator": "Exists"}, {"key": "x", "operator": "Exists"}]),
                )),
                vec![],
            ),
            (
                "remove toleration",
                old.clone(),
                pod(with(base_spec(), "/tolerations", json!([]))),
                vec![("spec.tolerations", Forbidden)],
            ),
            (
                "change port",
                old.clone(),
                pod(with(
                    base_spec(),
                    "/containers/0/ports/0/containerPort",
                    json!(81),
                )),
                vec![("spec", Forbidden)],
            ),
            (
                "change image and env",
                old.clone(),
                pod(with(
                    with(base_spec(), "/containers/0/image", json!("oci://r/a:2")),
                    "/containers/0/ports",
                    json!([]),
                )),
                vec![("spec", Forbidden)],
            ),
        ]);
        // Setting nodeName is binding, which goes through pods/binding, not an update.
        let mut moved = base_spec();
        moved["nodeName"] = json!("n1");
        let errs = validate_update(&obj(old.clone()), &obj(pod(moved)));
        assert_errors(&errs, &[("spec", Forbidden)], "nodeName");
        assert!(
            errs[0].message.starts_with(
                "pod updates may not change fields other than `spec.containers[*].image`"
            ),
            "{}",
            errs[0]
        );
        assert!(
            errs[0].message.ends_with("changed: spec.nodeName"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn workload_updates() {
        let deploy = |app: &str, image: &str| {
            json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "d", "namespace": "d"},
            "spec": {"selector": {"matchLabels": {"app": app}}, "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "a", "image": image}]}}}})
        };
        let job = |image: &str, completions: i32| {
            json!({"kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": "j", "namespace": "d"},
            "spec": {"completions": completions, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": image}]}}}})
        };
        check(vec![
            (
                "new template",
                deploy("web", "oci://r/a:1"),
                deploy("web", "oci://r/a:2"),
                vec![],
            ),
            (
                "new selector",
                deploy("web", "oci://r/a:1"),
                deploy("api", "oci://r/a:1"),
                vec![("spec.selector", Invalid)],
            ),
            (
                "job same",
                job("oci://r/a:1", 1),
                job("oci://r/a:1", 1),
                vec![],
            ),
            (
                "job template",
                job("oci://r/a:1", 1),
                job("oci://r/a:2", 1),
                vec![("spec.template", Invalid)],
            ),
            (
                "job completions",
                job("oci://r/a:1", 1),
                job("oci://r/a:1", 2),
                vec![("spec.completions", Invalid)],
            ),
        ]);
        let rs = |app: &str| {
            json!({"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": {"name": "r", "namespace": "d"},
            "spec": {"selector": {"matchLabels": {"app": app}}, "template": {"metadata": {"labels": {"app": app, "x": "y"}}, "spec": {"containers": [{"name": "a", "image": "oci://r/a"}]}}}})
        };
        check(vec![(
            "rs selector",
            rs("a"),
            rs("b"),
            vec![("spec.selector", Invalid)],
        )]);
        let ds = |app: &str| {
            json!({"kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": {"name": "r", "namespace": "d"},
            "spec": {"selector": {"matchLabels": {"app": app}}, "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "a", "image": "oci://r/a"}]}}}})
        };
        check(vec![(
            "ds selector",
            ds("a"),
            ds("b"),
            vec![("spec.selector", Invalid)],
        )]);
    }

    #[test]
    fn service_pvc_config_updates() {
        let svc = |ip: Value| json!({"kind": "Service", "metadata": {"name": "s", "namespace": "d"}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}});
        let pvc = |storage: &str, class: &str, volume: Value| {
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "d"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class, "volumeName": volume, "resources": {"requests": {"storage": storage}}}})
        };
        let cm = |immutable: bool, v: &str| json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}, "immutable": immutable, "data": {"k": v}});
        let secret = |t: &str| json!({"kind": "Secret", "metadata": {"name": "s", "namespace": "d"}, "type": t});
        let node = |cidr: &str| json!({"kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDR": cidr}});
        check(vec![
            (
                "ip kept",
                svc(json!("10.0.0.1")),
                svc(json!("10.0.0.1")),
                vec![],
            ),
            ("ip set", svc(json!(null)), svc(json!("10.0.0.1")), vec![]),
            (
                "ip changed",
                svc(json!("10.0.0.1")),
                svc(json!("10.0.0.2")),
                vec![("spec.clusterIP", Invalid)],
            ),
            (
                "ip dropped",
                svc(json!("10.0.0.1")),
                svc(json!(null)),
                vec![("spec.clusterIP", Invalid)],
            ),
            (
                "pvc grow",
                pvc("1Gi", "a", json!(null)),
                pvc("2Gi", "a", json!(null)),
                vec![],
            ),
            (
                "pvc same size other unit",
                pvc("1Gi", "a", json!(null)),
                pvc("1024Mi", "a", json!(null)),
                vec![],
            ),
            (
                "pvc shrink",
                pvc("2Gi", "a", json!(null)),
                pvc("1Gi", "a", json!(null)),
                vec![("spec.resources.requests.storage", Forbidden)],
            ),
            (
                "pvc class",
                pvc("1Gi", "a", json!(null)),
                pvc("1Gi", "b", json!(null)),
                vec![("spec", Forbidden)],
            ),
            (
                "pvc bind",
                pvc("1Gi", "a", json!(null)),
                pvc("1Gi", "a", json!("pv1")),
                vec![],
            ),
            (
                "pvc rebind",
                pvc("1Gi", "a", json!("pv1")),
                pvc("1Gi", "a", json!("pv2")),
                vec![("spec", Forbidden)],
            ),
            ("cm mutable", cm(false, "a"), cm(false, "b"), vec![]),
            (
                "cm immutable",
                cm(true, "a"),
                cm(true, "b"),
                vec![("data", Forbidden)],
            ),
            (
                "cm unfreeze",
                cm(true, "a"),
                cm(false, "a"),
                vec![("immutable", Forbidden)],
            ),
            (
                "secret type",
                secret("Opaque"),
                secret("kubernetes.io/basic-auth-x/y"),
                vec![("type", Invalid), ("type", NotSupported)],
            ),
            ("node cidr set", node(""), node("10.42.0.0/24"), vec![]),
            (
                "node cidr changed",
                node("10.42.0.0/24"),
                node("10.42.1.0/24"),
                vec![("spec.podCIDR", Forbidden)],
            ),
        ]);
    }
}
