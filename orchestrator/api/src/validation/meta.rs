//! Object metadata: names, namespaces, labels, annotations, owner references, finalizers —
//! the rules Kubernetes applies to every kind.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{FieldError, FieldPath, invalid_each};
use crate::names::{self, NameRule};
use crate::registry::Resource;

/// Largest total size of an object's annotations (keys and values), in bytes.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// The name syntax of a kind, as Kubernetes has it.
pub fn name_rule(resource: &Resource) -> NameRule {
    match resource.kind {
        "Namespace" => NameRule::Dns1123Label,
        "Service" => NameRule::Dns1035Label,
        "PersistentVolume" => NameRule::PathSegment,
        _ => NameRule::Dns1123Subdomain,
    }
}

/// The metadata rules for an object of `resource`: name (or generateName, which the API
/// server completes before storing), namespace present exactly for namespaced kinds,
/// labels, annotations, owner references and finalizers.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    resource: &Resource,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rule = name_rule(resource);
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        let p = path.child("generateName");
        invalid_each(
            &p,
            generate_name,
            names::check_name(rule, generate_name, true),
            &mut errs,
        );
    }
    match meta.name.as_deref().unwrap_or("") {
        "" if generate_name.is_empty() => {
            errs.push(FieldError::required(
                &path.child("name"),
                "name or generateName is required",
            ));
        }
        "" => {}
        name => invalid_each(
            &path.child("name"),
            name,
            names::check_name(rule, name, false),
            &mut errs,
        ),
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if resource.namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(&path.child("namespace"), ""));
        } else {
            invalid_each(
                &path.child("namespace"),
                namespace,
                names::is_dns1123_label(namespace),
                &mut errs,
            );
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    errs.extend(validate_template_meta(meta, path));
    for (i, owner) in meta.owner_references.iter().flatten().enumerate() {
        let p = path.child("ownerReferences").index(i);
        let version = owner.api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid(
                &p.child("apiVersion"),
                &owner.api_version,
                "version must not be empty",
            ));
        }
        for (field, value) in [
            ("kind", &owner.kind),
            ("name", &owner.name),
            ("uid", &owner.uid),
        ] {
            if value.is_empty() {
                errs.push(FieldError::invalid(
                    &p.child(field),
                    value,
                    format!("{field} must not be empty"),
                ));
            }
        }
    }
    let controllers: Vec<String> = meta
        .owner_references
        .iter()
        .flatten()
        .filter(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name))
        .collect();
    if controllers.len() > 1 {
        errs.push(FieldError::invalid_omit(
            &path.child("ownerReferences"),
            format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        ));
    }
    for (i, finalizer) in meta.finalizers.iter().flatten().enumerate() {
        let p = path.child("finalizers").index(i);
        invalid_each(
            &p,
            finalizer,
            names::is_qualified_name(finalizer),
            &mut errs,
        );
    }
    errs
}

/// The metadata rules of a pod template (labels and annotations only).
pub(super) fn validate_template_meta(meta: &ObjectMeta, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(labels) = &meta.labels {
        errs.extend(validate_labels(labels, &path.child("labels")));
    }
    if let Some(annotations) = &meta.annotations {
        errs.extend(validate_annotations(
            annotations,
            &path.child("annotations"),
        ));
    }
    errs
}

/// Label keys are qualified names, values label values (errors on the map's path, as
/// Kubernetes reports them).
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        invalid_each(path, k, names::is_qualified_name(k), &mut errs);
        invalid_each(path, v, names::is_label_value(v), &mut errs);
    }
    errs
}

/// Annotation keys are qualified names (case-insensitive); all of them together at most
/// 256 KiB.
pub fn validate_annotations(
    annotations: &BTreeMap<String, String>,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations {
        invalid_each(
            path,
            k,
            names::is_qualified_name(&k.to_ascii_lowercase()),
            &mut errs,
        );
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::super::FieldErrorKind::*;
    use super::super::testutil::*;
    use super::super::validate_create;
    use serde_json::json;

    fn check(cases: Vec<Case>) {
        for (name, body, want) in cases {
            assert_errors(&validate_create(&obj(body)), &want, name);
        }
    }

    #[test]
    fn names_and_namespaces() {
        let long = "a".repeat(254);
        check(vec![
            (
                "valid",
                json!({"kind": "ConfigMap", "metadata": {"name": "a.b-c", "namespace": "default"}}),
                vec![],
            ),
            (
                "no name",
                json!({"kind": "ConfigMap", "metadata": {"namespace": "default"}}),
                vec![("metadata.name", Required)],
            ),
            (
                "generateName only",
                json!({"kind": "ConfigMap", "metadata": {"generateName": "web-", "namespace": "default"}}),
                vec![],
            ),
            (
                "bad generateName",
                json!({"kind": "ConfigMap", "metadata": {"generateName": "Web-", "namespace": "default"}}),
                vec![("metadata.generateName", Invalid)],
            ),
            (
                "bad name",
                json!({"kind": "ConfigMap", "metadata": {"name": "Foo_Bar", "namespace": "default"}}),
                vec![("metadata.name", Invalid)],
            ),
            (
                "long name",
                json!({"kind": "ConfigMap", "metadata": {"name": long, "namespace": "default"}}),
                vec![("metadata.name", Invalid)],
            ),
            (
                "no namespace",
                json!({"kind": "ConfigMap", "metadata": {"name": "a"}}),
                vec![("metadata.namespace", Required)],
            ),
            (
                "bad namespace",
                json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "a.b"}}),
                vec![("metadata.namespace", Invalid)],
            ),
            (
                "cluster-scoped with namespace",
                json!({"kind": "Node", "metadata": {"name": "n", "namespace": "default"}}),
                vec![("metadata.namespace", Forbidden)],
            ),
            (
                "namespace name is a label",
                json!({"kind": "Namespace", "metadata": {"name": "a.b"}}),
                vec![("metadata.name", Invalid)],
            ),
            (
                "service name is DNS-1035",
                json!({"kind": "Service", "metadata": {"name": "1web", "namespace": "d"}, "spec": {"clusterIP": "None"}}),
                vec![("metadata.name", Invalid)],
            ),
            (
                "pv name is a path segment",
                json!({"kind": "PersistentVolume", "metadata": {"name": "Disk_1"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/d"}}}),
                vec![],
            ),
            (
                "pv name with slash",
                json!({"kind": "PersistentVolume", "metadata": {"name": "a/b"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/d"}}}),
                vec![("metadata.name", Invalid)],
            ),
        ]);
        let errs = validate_create(&obj(
            json!({"kind": "ConfigMap", "metadata": {"name": "Foo_Bar", "namespace": "default"}}),
        ));
        assert_eq!(
            errs[0].to_string(),
            "metadata.name: Invalid value: \"Foo_Bar\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
    }

    #[test]
    fn labels_annotations_owners_finalizers() {
        let big = "x".repeat(256 * 1024);
        let long_value = "v".repeat(64);
        check(vec![
            (
                "good labels",
                json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d", "labels": {"app.kubernetes.io/name": "web", "empty": ""}}}),
                vec![],
            ),
            (
                "bad label key",
                json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d", "labels": {"a b": "x"}}}),
                vec![("metadata.labels", Invalid)],
            ),
            (
                "bad label prefix",
                json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d", "labels": {"Ex.com/a": "x"}}}),
                vec![("metadata.labels", Invalid)],
            ),
            (
                "bad label value",
                json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d", "labels": {"a": "-x"}}}),
                vec![("metadata.labels", Invalid)],
            ),
            (
                "long label value",
                json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d", "labels": {"a": long_value}}}),
                vec![("metadata.labels", Invalid)],
            ),
            (
                "annotation key case-insensitive",
                json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d", "annotations": {"Example.com/Key": "any value at all"}}}),
                vec![],
            ),
            (
                "bad annotation key",
                json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d", "annotations": {"a/b/c": ""}}}),
                vec![("metadata.annotations", Invalid)],
            ),
            (
                "annotations too big",
                json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d", "annotations": {"k": big}}}),
                vec![("metadata.annotations", TooLong)],
            ),
            (
                "owner ref missing fields",
                json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d", "ownerReferences": [{"apiVersion": "apps/", "kind": "", "name": "", "uid": ""}]}}),
                vec![
                    ("metadata.ownerReferences[0].apiVersion", Invalid),
                    ("metadata.ownerReferences[0].kind", Invalid),
                    ("metadata.ownerReferences[0].name", Invalid),
                    ("metadata.ownerReferences[0].uid", Invalid),
                ],
            ),
            (
                "two controllers",
                json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2", "controller": true}]}}),
                vec![("metadata.ownerReferences", Invalid)],
            ),
            (
                "bad finalizer",
                json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d", "finalizers": ["kubernetes", "a b"]}}),
                vec![("metadata.finalizers[1]", Invalid)],
            ),
        ]);
    }
}
