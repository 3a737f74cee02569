//! `/openapi/v3`: the root index and one document per group-version.
//!
//! What kubectl needs from it today: to learn that the server validates fields itself.
//! Its query-parameter verifier looks for a PATCH operation tagged with the object's
//! `x-kubernetes-group-version-kind` that accepts `fieldValidation`; when it finds one,
//! kubectl sends `fieldValidation=Strict` and skips client-side schema validation.
//! Component schemas are deliberately absent: without them kubectl computes strategic
//! merge patches from its compiled-in types (a schema without Kubernetes' patch
//! annotations would make it compute wrong ones). `kubectl explain` needs the schemas
//! and comes later.

use serde_json::{Map, Value, json};
use skiff_api::registry::{self, Resource};

use crate::discovery::KUBERNETES_MINOR;

/// `api/v1`, `apis/apps/v1`
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A stable hash of a document, so clients can cache it (`?hash=`).
fn hash(doc: &Value) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(doc.to_string().as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02X}")).collect()
}

pub fn root() -> Value {
    let mut paths = Map::new();
    for (g, v) in registry::group_versions() {
        let doc = group_version(g, v).unwrap_or(Value::Null);
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
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

/// The document of one group-version; `None` if it is not served.
pub fn group_version(group: &str, version: &str) -> Option<Value> {
    let resources = registry::resources_in(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for r in resources {
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
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{KUBERNETES_MINOR}.0")},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Serves `/openapi/v3[/{gv path}]`; `None` for anything else (404).
pub fn serve(rest: &str) -> Option<Value> {
    match rest.strip_prefix("v3") {
        Some("") | Some("/") => Some(root()),
        Some(gv) => {
            let gv = gv.trim_start_matches('/');
            let parts: Vec<&str> = gv.split('/').collect();
            match parts.as_slice() {
                ["api", v] => group_version("", v),
                ["apis", g, v] => group_version(g, v),
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
        let doc = serve("v3/apis/apps/v1").unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(params.contains(&"fieldValidation"));
        let nodes = serve("v3/api/v1").unwrap();
        assert!(nodes["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
        assert!(serve("v2").is_none());
        assert!(serve("v3/apis/nope/v1").is_none());
    }
}
