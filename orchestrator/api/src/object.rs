//! Typed objects: JSON bodies in, [`Object`] out, and back.
//!
//! [`decode`] is what the API server runs on every body it accepts: it checks that
//! `apiVersion`/`kind` are those of the resource the URL names (a missing one is taken from
//! the URL, as the kube-apiserver does), decodes into the `k8s-openapi` type with the path
//! of any type error, and reports unknown fields.
//!
//! `k8s-openapi` drops unknown fields silently, so they are found by comparing the raw
//! JSON with a re-serialisation of the typed value: a key present (and not null) in the
//! raw body but absent from the re-serialisation is a field the type does not have. The
//! walk descends into objects and, index by index, into arrays (containers, volumes, ports,
//! env…). Free-form maps (labels, annotations, ConfigMap data, quantity maps, raw JSON
//! such as `fieldsV1`) keep all their keys in the typed value, so they never report
//! anything.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    PodSpec, PodTemplateSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::registry::{self, Resource};

macro_rules! object_kinds {
    ($($variant:ident($ty:ty) => $resource:path),* $(,)?) => {
        /// An object of one of the kinds Skiff serves.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Object {
            $(
                #[doc = concat!("A ", stringify!($variant), ".")]
                $variant(Box<$ty>),
            )*
        }

        impl Object {
            /// The registry entry of the object's kind.
            pub fn resource(&self) -> &'static Resource {
                match self {
                    $(Object::$variant(_) => &$resource,)*
                }
            }

            /// The object's metadata.
            pub fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(Object::$variant(o) => &o.metadata,)*
                }
            }

            /// The object's metadata, to change.
            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Object::$variant(o) => &mut o.metadata,)*
                }
            }

            /// Serialises the object to JSON (with `apiVersion` and `kind`).
            pub fn to_value(&self) -> Result<Value> {
                let kind = self.kind();
                match self {
                    $(Object::$variant(o) => serde_json::to_value(o.as_ref()),)*
                }
                .map_err(|source| Error::Serialize { kind, source })
            }

            fn decode_typed(
                resource: &Resource,
                value: &Value,
            ) -> Option<std::result::Result<Object, serde_path_to_error::Error<serde_json::Error>>> {
                $(
                    if resource.kind == $resource.kind {
                        return Some(
                            serde_path_to_error::deserialize::<_, $ty>(value)
                                .map(|o| Object::$variant(Box::new(o))),
                        );
                    }
                )*
                None
            }
        }

        $(
            impl From<$ty> for Object {
                fn from(o: $ty) -> Object {
                    Object::$variant(Box::new(o))
                }
            }
        )*

        impl serde::Serialize for Object {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                match self {
                    $(Object::$variant(o) => o.serialize(serializer),)*
                }
            }
        }
    };
}

object_kinds! {
    Namespace(Namespace) => registry::NAMESPACE,
    Node(Node) => registry::NODE,
    Pod(Pod) => registry::POD,
    Service(Service) => registry::SERVICE,
    Endpoints(Endpoints) => registry::ENDPOINTS,
    ConfigMap(ConfigMap) => registry::CONFIG_MAP,
    Secret(Secret) => registry::SECRET,
    Event(Event) => registry::EVENT,
    PersistentVolumeClaim(PersistentVolumeClaim) => registry::PERSISTENT_VOLUME_CLAIM,
    PersistentVolume(PersistentVolume) => registry::PERSISTENT_VOLUME,
    ServiceAccount(ServiceAccount) => registry::SERVICE_ACCOUNT,
    Deployment(Deployment) => registry::DEPLOYMENT,
    ReplicaSet(ReplicaSet) => registry::REPLICA_SET,
    DaemonSet(DaemonSet) => registry::DAEMON_SET,
    Job(Job) => registry::JOB,
    HorizontalPodAutoscaler(HorizontalPodAutoscaler) => registry::HORIZONTAL_POD_AUTOSCALER,
    Lease(Lease) => registry::LEASE,
}

impl Object {
    /// `Deployment`
    pub fn kind(&self) -> &'static str {
        self.resource().kind
    }

    /// `metadata.name`, or `""`.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace`, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// Decodes a stored object, ignoring unknown fields (what the store holds was already
    /// validated; a field a newer Skiff wrote is kept out of the way, not an error).
    pub fn from_value(resource: &Resource, value: &Value) -> Result<Object> {
        decode_inner(resource, value, false).map(|d| d.object)
    }

    /// The pod template of a workload (Deployment, ReplicaSet, DaemonSet, Job).
    pub fn pod_template(&self) -> Option<&PodTemplateSpec> {
        match self {
            Object::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
            Object::ReplicaSet(r) => r.spec.as_ref().and_then(|s| s.template.as_ref()),
            Object::DaemonSet(d) => d.spec.as_ref().map(|s| &s.template),
            Object::Job(j) => j.spec.as_ref().map(|s| &s.template),
            _ => None,
        }
    }

    /// The pod spec of a Pod, or of a workload's template.
    pub fn pod_spec(&self) -> Option<&PodSpec> {
        match self {
            Object::Pod(p) => p.spec.as_ref(),
            _ => self.pod_template().and_then(|t| t.spec.as_ref()),
        }
    }
}

/// A decoded body: the object and the fields its type does not have.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// The typed object.
    pub object: Object,
    /// Every unknown field path (`spec.containers[0].imagee`), in document order. With
    /// `fieldValidation=Strict` they are an error ([`Decoded::into_strict`]); with `Warn`
    /// each becomes a warning (`unknown field "…"`); with `Ignore` they are dropped.
    pub unknown_fields: Vec<String>,
}

impl Decoded {
    /// The object, or [`Error::UnknownFields`] if the body had any.
    pub fn into_strict(self) -> Result<Object> {
        if self.unknown_fields.is_empty() {
            Ok(self.object)
        } else {
            let resource = self.object.resource();
            Err(Error::UnknownFields {
                kind: resource.kind,
                version: resource.version,
                fields: self.unknown_fields,
            })
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Decodes a body for `resource` (the resource the request's URL names).
///
/// Errors: not an object; `apiVersion`/`kind` of another resource ([`Error::WrongKind`],
/// naming both); a value of the wrong type ([`Error::Decode`], with its path). Unknown
/// fields are returned, not an error: see [`Decoded`].
pub fn decode(resource: &Resource, body: &Value) -> Result<Decoded> {
    decode_inner(resource, body, true)
}

fn decode_inner(resource: &Resource, body: &Value, find_unknown: bool) -> Result<Decoded> {
    let map = body.as_object().ok_or_else(|| Error::NotAnObject {
        expected: resource.gvk_string(),
        found: json_type(body),
    })?;
    let api_version = map.get("apiVersion").filter(|v| !v.is_null());
    let kind = map.get("kind").filter(|v| !v.is_null());
    let matches = api_version.is_none_or(|v| v.as_str() == Some(resource.api_version))
        && kind.is_none_or(|v| v.as_str() == Some(resource.kind));
    if !matches {
        let show = |v: Option<&Value>, default: &str| match v {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => default.to_string(),
        };
        return Err(Error::WrongKind {
            expected: resource.gvk_string(),
            found: format!(
                "{}, Kind={}",
                show(api_version, resource.api_version),
                show(kind, resource.kind)
            ),
        });
    }
    // A body without apiVersion/kind takes the URL's (k8s-openapi would accept it anyway;
    // the re-serialisation below adds them).
    // `"apiVersion": null` is "not sent" (Go decodes it to ""); k8s-openapi insists on a
    // string there, so drop such keys first.
    let stripped;
    let body = if map.get("apiVersion").is_some_and(Value::is_null)
        || map.get("kind").is_some_and(Value::is_null)
    {
        let mut m = map.clone();
        m.retain(|k, v| !((k == "apiVersion" || k == "kind") && v.is_null()));
        stripped = Value::Object(m);
        &stripped
    } else {
        body
    };
    let object = match Object::decode_typed(resource, body) {
        Some(Ok(object)) => object,
        Some(Err(e)) => {
            return Err(Error::Decode {
                kind: resource.kind,
                version: resource.version,
                path: e.path().to_string(),
                message: e.into_inner().to_string(),
            });
        }
        None => return Err(Error::UnknownResource(resource.group_resource())),
    };
    let unknown_fields = if find_unknown {
        unknown_fields(body, &object.to_value()?)
    } else {
        Vec::new()
    };
    Ok(Decoded {
        object,
        unknown_fields,
    })
}

/// [`decode`], with unknown fields an error (`fieldValidation=Strict`, kubectl's default).
pub fn decode_strict(resource: &Resource, body: &Value) -> Result<Object> {
    decode(resource, body)?.into_strict()
}

/// Every path present in `raw` (with a non-null value) but absent from `typed`, the
/// re-serialisation of `raw`'s decoded value.
pub fn unknown_fields(raw: &Value, typed: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(raw, typed, &mut String::new(), &mut out);
    out
}

fn walk(raw: &Value, typed: &Value, path: &mut String, out: &mut Vec<String>) {
    match (raw, typed) {
        (Value::Object(raw), Value::Object(typed)) => {
            for (key, raw_value) in raw {
                if raw_value.is_null() {
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match typed.get(key) {
                    Some(typed_value) => walk(raw_value, typed_value, path, out),
                    None => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Value::Array(raw), Value::Array(typed)) => {
            for (i, (r, t)) in raw.iter().zip(typed).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(r, t, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_body(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn every_registry_kind_decodes_and_round_trips() {
        for r in registry::all() {
            let body =
                json!({"apiVersion": r.api_version, "kind": r.kind, "metadata": {"name": "x"}});
            let d = decode(r, &body).unwrap_or_else(|e| panic!("{}: {e}", r.kind));
            assert_eq!(d.object.kind(), r.kind);
            assert!(std::ptr::eq(d.object.resource(), *r));
            assert!(
                d.unknown_fields.is_empty(),
                "{}: {:?}",
                r.kind,
                d.unknown_fields
            );
            let v = d.object.to_value().unwrap();
            assert_eq!(v["apiVersion"], r.api_version);
            assert_eq!(v["kind"], r.kind);
            assert_eq!(serde_json::to_value(&d.object).unwrap(), v);
        }
    }

    #[test]
    fn kind_and_api_version_checks() {
        let cases: Vec<(&Resource, Value, Option<&str>)> = vec![
            (&registry::POD, json!({"metadata": {"name": "p"}}), None),
            (
                &registry::POD,
                json!({"apiVersion": "v1", "kind": "Pod"}),
                None,
            ),
            (
                &registry::POD,
                json!({"apiVersion": null, "kind": null}),
                None,
            ),
            (
                &registry::DEPLOYMENT,
                json!({"apiVersion": "v1", "kind": "Pod"}),
                Some(
                    "the object in the body is v1, Kind=Pod, but this endpoint serves apps/v1, Kind=Deployment",
                ),
            ),
            (
                &registry::DEPLOYMENT,
                json!({"apiVersion": "apps/v1beta1", "kind": "Deployment"}),
                Some(
                    "the object in the body is apps/v1beta1, Kind=Deployment, but this endpoint serves apps/v1, Kind=Deployment",
                ),
            ),
            (
                &registry::DEPLOYMENT,
                json!({"kind": "ReplicaSet"}),
                Some(
                    "the object in the body is apps/v1, Kind=ReplicaSet, but this endpoint serves apps/v1, Kind=Deployment",
                ),
            ),
            (
                &registry::POD,
                json!({"kind": 5}),
                Some("the object in the body is v1, Kind=5, but this endpoint serves v1, Kind=Pod"),
            ),
            (
                &registry::POD,
                json!([1]),
                Some("v1, Kind=Pod cannot be handled: the body must be a JSON object, found array"),
            ),
        ];
        for (r, body, want) in cases {
            let got = decode(r, &body);
            match want {
                None => assert!(got.is_ok(), "{body}: {got:?}"),
                Some(msg) => assert_eq!(got.unwrap_err().to_string(), msg, "{body}"),
            }
        }
    }

    #[test]
    fn decode_errors_carry_the_path() {
        let cases = vec![
            (
                pod_body(
                    json!({"containers": [{"name": "a", "ports": [{"containerPort": "80"}]}]}),
                ),
                "spec.containers[0].ports[0].containerPort",
            ),
            (
                pod_body(json!({"containers": {"name": "a"}})),
                "spec.containers",
            ),
            (
                json!({"kind": "Pod", "metadata": {"labels": {"a": 1}}}),
                "metadata.labels.a",
            ),
            (json!({"kind": "Pod", "metadata": "x"}), "metadata"),
        ];
        for (body, path) in cases {
            match decode(&registry::POD, &body) {
                Err(Error::Decode { path: got, .. }) => assert_eq!(got, path, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        let err = decode(
            &registry::POD,
            &pod_body(json!({"containers": [{"name": 1}]})),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("Pod in version \"v1\" cannot be handled as a Pod: spec.containers[0].name: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn unknown_field_detection() {
        let cases: Vec<(&Resource, Value, Vec<&str>)> = vec![
            // Clean bodies, including free-form maps and nulls.
            (
                &registry::POD,
                pod_body(json!({
                    "containers": [{
                        "name": "a", "image": "oci://r/x:1",
                        "resources": {"limits": {"cpu": "1", "example.com/foo": "2"}, "requests": {}},
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "ports": [{"containerPort": 80}],
                    }],
                    "nodeSelector": {"anything/goes": "x"},
                    "volumes": [{"name": "v", "emptyDir": {}}],
                })),
                vec![],
            ),
            (
                &registry::POD,
                json!({"kind": "Pod", "metadata": {"name": "p", "labels": {"x": "y"}, "annotations": {"a/b": "{}"}, "creationTimestamp": null, "bogus": null}}),
                vec![],
            ),
            // Unknown fields at every depth, in lists too.
            (
                &registry::POD,
                pod_body(json!({
                    "containers": [
                        {"name": "a", "image": "oci://r/x:1"},
                        {"name": "b", "imagee": "oci://r/x:1", "ports": [{"containerPort": 80}, {"containerPort": 81, "hostPorts": 1}]},
                    ],
                    "volumes": [{"name": "v", "emptyDir": {"sizeLimt": "1Gi"}}],
                    "restartpolicy": "Always",
                })),
                vec![
                    "spec.containers[1].imagee",
                    "spec.containers[1].ports[1].hostPorts",
                    "spec.restartpolicy",
                    "spec.volumes[0].emptyDir.sizeLimt",
                ],
            ),
            (
                &registry::POD,
                json!({"kind": "Pod", "metadata": {"name": "p", "lables": {"a": "b"}}, "extra": 1}),
                vec!["extra", "metadata.lables"],
            ),
            (
                &registry::DEPLOYMENT,
                json!({
                    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                    "spec": {
                        "selector": {"matchLabels": {"app": "x"}, "matchLabel": {}},
                        "template": {
                            "metadata": {"labels": {"app": "x"}, "creationTimestamp": null},
                            "spec": {"containers": [{"name": "c", "image": "oci://r/x:1", "resources": {}, "livenessProbe": {"httpGet": {"port": 80, "pth": "/"}}}]}
                        },
                        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                    }
                }),
                vec![
                    "spec.selector.matchLabel",
                    "spec.template.spec.containers[0].livenessProbe.httpGet.pth",
                ],
            ),
            (
                &registry::CONFIG_MAP,
                json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"any key": "v"}, "binaryData": {"b": "aGk="}, "dta": {}}),
                vec!["dta"],
            ),
            (
                &registry::SECRET,
                json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "aGk="}, "stringData": {"x": "y"}, "type": "Opaque"}),
                vec![],
            ),
            (
                &registry::POD,
                json!({"kind": "Pod", "metadata": {"name": "p", "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:containers": {}}}}]}}),
                vec![],
            ),
            (
                &registry::HORIZONTAL_POD_AUTOSCALER,
                json!({"kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"}, "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "d"},
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50, "avg": 1}}}]}}),
                vec!["spec.metrics[0].resource.target.avg"],
            ),
        ];
        for (r, body, want) in cases {
            let d = decode(r, &body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(d.unknown_fields, want, "{body}");
        }
    }

    #[test]
    fn strict_decoding() {
        let body = pod_body(json!({"containers": [{"name": "a", "imagee": "x"}], "foo": 1}));
        let err = decode_strict(&registry::POD, &body).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.containers[0].imagee\", unknown field \"spec.foo\""
        );
        assert_eq!(err.code(), 400);
        let ok = decode_strict(
            &registry::POD,
            &pod_body(json!({"containers": [{"name": "a"}]})),
        )
        .unwrap();
        assert_eq!(ok.name(), "p");
        assert_eq!(ok.namespace(), Some("default"));
        assert!(ok.pod_spec().is_some());
        assert!(Object::from_value(&registry::POD, &body).is_ok());
    }

    #[test]
    fn accessors() {
        let d = decode_strict(
            &registry::DEPLOYMENT,
            &json!({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c"}]}}}}),
        )
        .unwrap();
        assert_eq!(d.pod_spec().map(|s| s.containers.len()), Some(1));
        let mut cm: Object = ConfigMap::default().into();
        cm.metadata_mut().name = Some("c".into());
        assert_eq!(cm.name(), "c");
        assert!(cm.pod_template().is_none());
    }
}
