//! `/openapi/v3`: the root index and one document per group-version.
//!
//! What kubectl reads in them:
//! - the PATCH operations, tagged with `x-kubernetes-group-version-kind` and accepting
//!   `fieldValidation`: kubectl's query-parameter verifier finds them, sends
//!   `fieldValidation=Strict` and leaves schema validation to the server;
//! - the component schemas, Kubernetes' own (k8s-openapi's, with their descriptions),
//!   each served kind tagged with `x-kubernetes-group-version-kind`: `kubectl explain`
//!   renders them, and `kubectl apply` computes its strategic merge patches from their
//!   `x-kubernetes-patch-strategy`/`x-kubernetes-patch-merge-key`, which come from the
//!   same table the server merges with ([`skiff_api::strategic_merge::patch_annotations`]).
//!
//! A document holds the schemas its kinds reach through `$ref`, as Kubernetes' do. The
//! documents are built once, on first use, and kept with their hashes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use bytes::Bytes;

use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};
use skiff_api::registry::{self, Resource};
use skiff_api::strategic_merge;

use crate::discovery::KUBERNETES_MINOR;

/// `api/v1`, `apis/apps/v1`
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A stable hash of a serialized document, so clients can cache it (`?hash=`).
fn hash(doc: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(doc);
    digest.iter().take(16).map(|b| format!("{b:02X}")).collect()
}

/// Each group-version's document, serialized, and its hash, by (group, version). Kept
/// as bytes: about 1 MB in all, where the parsed documents held ~20 MB.
type Documents = BTreeMap<(&'static str, &'static str), (Bytes, String)>;

static DOCUMENTS: LazyLock<Documents> = LazyLock::new(|| {
    let components = component_schemas();
    registry::group_versions()
        .into_iter()
        .filter_map(|(g, v)| {
            let doc = build_group_version(g, v, &components)?;
            let bytes = Bytes::from(serde_json::to_vec(&doc).ok()?);
            let h = hash(&bytes);
            Some(((g, v), (bytes, h)))
        })
        .collect()
});

pub fn root() -> Value {
    let mut paths = Map::new();
    for ((g, v), (_, h)) in DOCUMENTS.iter() {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={h}")}),
        );
    }
    json!({"paths": paths})
}

fn operation_id(r: &Resource, namespaced: bool) -> String {
    let group: String = if r.group.is_empty() {
        "Core".into()
    } else {
        let first = r.group.split('.').next().unwrap_or(r.group);
        let mut c = first.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect())
            .unwrap_or_default()
    };
    let version = {
        let mut c = r.version.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>())
            .unwrap_or_default()
    };
    let scope = if namespaced { "Namespaced" } else { "" };
    format!("patch{group}{version}{scope}{}", r.kind)
}

fn patch_operation(r: &Resource) -> Value {
    json!({
        "operationId": operation_id(r, r.namespaced),
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
        ],
        "requestBody": {"content": {
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/strategic-merge-patch+json": {"schema": {"type": "object"}},
        }, "required": true},
        "responses": {"200": {"description": "OK"}, "201": {"description": "Created"}},
    })
}

/// The document of one group-version, serialized; `None` if it is not served.
fn group_version_bytes(group: &str, version: &str) -> Option<Bytes> {
    DOCUMENTS
        .iter()
        .find(|((g, v), _)| *g == group && *v == version)
        .map(|(_, (doc, _))| doc.clone())
}

/// The document of one group-version; `None` if it is not served.
pub fn group_version(group: &str, version: &str) -> Option<Value> {
    serde_json::from_slice(&group_version_bytes(group, version)?).ok()
}

fn build_group_version(group: &str, version: &str, components: &Components) -> Option<Value> {
    let resources = registry::resources_in(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for r in &resources {
        let item = if r.namespaced {
            format!("{}/{{name}}", r.collection_path(Some("{namespace}")))
        } else {
            format!("{}/{{name}}", r.collection_path(None))
        };
        paths.insert(item.clone(), json!({"patch": patch_operation(r)}));
        for sub in r.subresources.iter().filter(|s| s.verbs.contains(&"patch")) {
            let mut op = patch_operation(r);
            op["operationId"] =
                format!("{}{}", operation_id(r, r.namespaced), capitalize(sub.name)).into();
            op["x-kubernetes-group-version-kind"] =
                json!({"group": sub.group, "version": sub.version, "kind": sub.kind});
            paths.insert(format!("{item}/{}", sub.name), json!({"patch": op}));
        }
    }
    let roots = resources
        .iter()
        .filter_map(|r| components.kinds.get(r.kind).cloned());
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{KUBERNETES_MINOR}.0")},
        "paths": paths,
        "components": {"schemas": reachable(&components.schemas, roots)},
    }))
}

// ---------------------------------------------------------------- component schemas

/// `#/components/schemas/` + a schema's name is how documents refer to it.
const REF_PREFIX: &str = "#/components/schemas/";

/// Registers the schema of a served kind in `generator`; its name, or `None` for a kind
/// without one.
fn register_kind(
    generator: &mut SchemaGenerator,
    group: &str,
    version: &str,
    kind: &str,
) -> Option<String> {
    use k8s_openapi::api::core::v1 as core;
    use k8s_openapi::api::{apps::v1 as apps, autoscaling::v2 as autoscaling};
    use k8s_openapi::api::{batch::v1 as batch, coordination::v1 as coordination};
    let reference = match (group, version, kind) {
        ("", "v1", "Namespace") => generator.subschema_for::<core::Namespace>(),
        ("", "v1", "Node") => generator.subschema_for::<core::Node>(),
        ("", "v1", "Pod") => generator.subschema_for::<core::Pod>(),
        ("", "v1", "Service") => generator.subschema_for::<core::Service>(),
        ("", "v1", "Endpoints") => generator.subschema_for::<core::Endpoints>(),
        ("", "v1", "ConfigMap") => generator.subschema_for::<core::ConfigMap>(),
        ("", "v1", "Secret") => generator.subschema_for::<core::Secret>(),
        ("", "v1", "Event") => generator.subschema_for::<core::Event>(),
        ("", "v1", "PersistentVolumeClaim") => {
            generator.subschema_for::<core::PersistentVolumeClaim>()
        }
        ("", "v1", "PersistentVolume") => generator.subschema_for::<core::PersistentVolume>(),
        ("", "v1", "ServiceAccount") => generator.subschema_for::<core::ServiceAccount>(),
        ("apps", "v1", "Deployment") => generator.subschema_for::<apps::Deployment>(),
        ("apps", "v1", "ReplicaSet") => generator.subschema_for::<apps::ReplicaSet>(),
        ("apps", "v1", "DaemonSet") => generator.subschema_for::<apps::DaemonSet>(),
        ("batch", "v1", "Job") => generator.subschema_for::<batch::Job>(),
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => {
            generator.subschema_for::<autoscaling::HorizontalPodAutoscaler>()
        }
        ("coordination.k8s.io", "v1", "Lease") => generator.subschema_for::<coordination::Lease>(),
        _ => return None,
    };
    reference
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(REF_PREFIX))
        .map(str::to_string)
}

/// Every served kind's schema and every schema they reach.
struct Components {
    /// By name, each kind's tagged with its group-version-kind and every merged field
    /// with its patch strategy.
    schemas: Map<String, Value>,
    /// The schema name of each served kind (`Deployment` → `io.k8s.api.apps.v1.Deployment`).
    kinds: BTreeMap<&'static str, String>,
}

fn component_schemas() -> Components {
    let mut generator = SchemaSettings::openapi3()
        .with(|s| s.meta_schema = None)
        .into_generator();
    let mut kinds = BTreeMap::new();
    for r in registry::all() {
        if let Some(name) = register_kind(&mut generator, r.group, r.version, r.kind) {
            kinds.insert(r.kind, name);
        }
    }
    let mut schemas = generator.take_definitions(true);
    for (kind, name) in &kinds {
        let Some(r) = registry::by_kind(kind) else {
            continue;
        };
        if let Some(Value::Object(schema)) = schemas.get_mut(name) {
            // k8s-openapi marks `metadata` required; Kubernetes' documents do not (a
            // `generateName` object has no name, and `kubectl explain` would say
            // `-required-`).
            if let Some(Value::Array(required)) = schema.get_mut("required") {
                required.retain(|f| f != "metadata");
                if required.is_empty() {
                    schema.remove("required");
                }
            }
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.group, "kind": r.kind, "version": r.version}]),
            );
        }
    }
    for missed in annotate_patch_strategies(&mut schemas, &kinds) {
        tracing::warn!(field = missed, "no OpenAPI schema for a merged field");
    }
    Components { schemas, kinds }
}

/// Where the strategic merge table names a type rather than a kind.
const TYPE_SCHEMAS: &[(&str, &str)] = &[
    (
        "ObjectMeta",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    ),
    ("PodTemplateSpec", "io.k8s.api.core.v1.PodTemplateSpec"),
    ("PodSpec", "io.k8s.api.core.v1.PodSpec"),
    ("Container", "io.k8s.api.core.v1.Container"),
];

/// Sets `x-kubernetes-patch-strategy` (and `-merge-key`) on every field the strategic
/// merge table names; returns the paths it found no schema for.
fn annotate_patch_strategies(
    schemas: &mut Map<String, Value>,
    kinds: &BTreeMap<&'static str, String>,
) -> Vec<&'static str> {
    let mut missed = Vec::new();
    for a in strategic_merge::patch_annotations() {
        let done = field_schema(schemas, kinds, a.path).is_some_and(|field| {
            field.insert("x-kubernetes-patch-strategy".into(), a.strategy.into());
            if let Some(key) = a.merge_key {
                field.insert("x-kubernetes-patch-merge-key".into(), key.into());
            }
            true
        });
        if !done {
            missed.push(a.path);
        }
    }
    missed
}

/// The property schema a dotted path (`Deployment.spec.strategy`, `Container.env`) ends
/// at, following `$ref`s from the type or kind it starts with.
fn field_schema<'a>(
    schemas: &'a mut Map<String, Value>,
    kinds: &BTreeMap<&'static str, String>,
    path: &str,
) -> Option<&'a mut Map<String, Value>> {
    let mut segments = path.split('.');
    let start = segments.next()?;
    let mut fields: Vec<&str> = segments.collect();
    let last = fields.pop()?;
    let mut name = match TYPE_SCHEMAS.iter().find(|(t, _)| *t == start) {
        Some((_, n)) => (*n).to_string(),
        None => kinds.get(start)?.clone(),
    };
    for field in fields {
        let property = schemas.get(&name)?.get("properties")?.get(field)?;
        name = referenced(property)?.to_string();
    }
    match schemas
        .get_mut(&name)?
        .get_mut("properties")?
        .get_mut(last)?
    {
        Value::Object(field) => Some(field),
        _ => None,
    }
}

/// The schema name a property refers to: `{"$ref": …}` or `{"allOf": [{"$ref": …}], …}`.
fn referenced(property: &Value) -> Option<&str> {
    let reference = property
        .get("$ref")
        .or_else(|| property.get("allOf")?.get(0)?.get("$ref"))?;
    reference.as_str()?.strip_prefix(REF_PREFIX)
}

/// The named schemas and every schema they reach through `$ref`.
fn reachable(
    schemas: &Map<String, Value>,
    roots: impl Iterator<Item = String>,
) -> Map<String, Value> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> = roots.collect();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = schemas.get(&name) {
            collect_refs(schema, &mut todo);
        }
    }
    seen.into_iter()
        .filter_map(|name| schemas.get(&name).map(|s| (name.clone(), s.clone())))
        .collect()
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix(REF_PREFIX) {
                            out.push(name.to_string());
                        }
                    }
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Serves `/openapi/v3[/{gv path}]`; `None` for anything else (404).
pub fn serve(rest: &str) -> Option<Bytes> {
    match rest.strip_prefix("v3") {
        Some("") | Some("/") => serde_json::to_vec(&root()).ok().map(Bytes::from),
        Some(gv) => {
            let gv = gv.trim_start_matches('/');
            let parts: Vec<&str> = gv.split('/').collect();
            match parts.as_slice() {
                ["api", v] => group_version_bytes("", v),
                ["apis", g, v] => group_version_bytes(g, v),
                _ => None,
            }
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn root_points_at_each_group_version() {
        let r = root();
        let url = r["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        assert!(r["paths"]["api/v1"].is_object());
    }

    #[test]
    fn patch_operations_accept_field_validation() {
        let doc = group_version("apps", "v1").unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(params.contains(&"fieldValidation"));
        let nodes = group_version("", "v1").unwrap();
        assert!(nodes["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
        assert!(serve("v2").is_none());
        assert!(serve("v3/apis/nope/v1").is_none());
    }

    /// Every `$ref` in `value`, and whether any sits beside other keywords (OpenAPI 3.0
    /// ignores those siblings; Kubernetes wraps such refs in `allOf`).
    fn refs(value: &Value, out: &mut Vec<String>, siblings: &mut bool) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                    *siblings |= map.len() > 1;
                }
                map.values().for_each(|v| refs(v, out, siblings));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out, siblings)),
            _ => {}
        }
    }

    #[test]
    fn every_merged_field_of_the_patch_table_has_a_schema() {
        let mut generator = SchemaSettings::openapi3().into_generator();
        let mut kinds = BTreeMap::new();
        for r in registry::all() {
            if let Some(name) = register_kind(&mut generator, r.group, r.version, r.kind) {
                kinds.insert(r.kind, name);
            }
        }
        let mut schemas = generator.take_definitions(true);
        assert_eq!(
            kinds.len(),
            registry::all().len(),
            "a served kind has no schema"
        );
        assert_eq!(
            annotate_patch_strategies(&mut schemas, &kinds),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn schemas_carry_kinds_and_kubernetes_patch_strategies() {
        let apps = group_version("apps", "v1").unwrap();
        let schemas = &apps["components"]["schemas"];
        let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert!(
            deployment["description"]
                .as_str()
                .unwrap()
                .contains("Deployment")
        );
        let spec = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"];
        assert_eq!(spec["containers"]["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(spec["containers"]["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(
            spec["volumes"]["x-kubernetes-patch-strategy"],
            "merge,retainKeys"
        );
        assert!(
            spec["tolerations"]
                .get("x-kubernetes-patch-strategy")
                .is_none()
        );
        let container = &schemas["io.k8s.api.core.v1.Container"]["properties"];
        assert_eq!(
            container["ports"]["x-kubernetes-patch-merge-key"],
            "containerPort"
        );
        assert!(
            container["args"]
                .get("x-kubernetes-patch-strategy")
                .is_none()
        );
        let strategy = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
        assert!(strategy.get("x-kubernetes-patch-merge-key").is_none());
        let status = &schemas["io.k8s.api.apps.v1.DeploymentStatus"]["properties"];
        assert_eq!(status["conditions"]["x-kubernetes-patch-merge-key"], "type");
        // A document has the schemas of its group's kinds, not another group's.
        assert!(schemas.get("io.k8s.api.batch.v1.Job").is_none());
        let core = group_version("", "v1").unwrap();
        let service = &core["components"]["schemas"]["io.k8s.api.core.v1.ServiceSpec"];
        assert_eq!(
            service["properties"]["ports"]["x-kubernetes-patch-merge-key"],
            "port"
        );
    }

    #[test]
    fn every_reference_resolves_inside_its_document() {
        for (g, v) in registry::group_versions() {
            let doc = group_version(g, v).unwrap();
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            let mut found = Vec::new();
            let mut siblings = false;
            refs(&doc["components"], &mut found, &mut siblings);
            assert!(!found.is_empty(), "{g}/{v}");
            assert!(!siblings, "{g}/{v}: a $ref with siblings");
            for r in found {
                let name = r.strip_prefix(REF_PREFIX).unwrap();
                assert!(schemas.contains_key(name), "{g}/{v}: {r} does not resolve");
            }
            for r in registry::resources_in(g, v) {
                let tagged = schemas
                    .values()
                    .any(|s| s["x-kubernetes-group-version-kind"][0]["kind"] == r.kind);
                assert!(tagged, "{g}/{v}: no schema tagged {}", r.kind);
            }
        }
    }

    #[test]
    fn the_root_hash_is_the_documents() {
        let r = root();
        let url = r["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap();
        let doc = serve("v3/api/v1").unwrap();
        assert!(url.ends_with(&format!("?hash={}", hash(&doc))));
        let root: Value = serde_json::from_slice(&serve("v3").unwrap()).unwrap();
        assert_eq!(root, r);
    }
}
