//! Server-side printing: `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` gets a
//! `meta.k8s.io/v1` Table with Kubernetes' columns for each kind (wide columns at
//! priority 1), each row carrying a PartialObjectMetadata (or the object, with
//! `includeObject=Object`). kubectl prints these cells as they are.

use serde_json::{Map, Value, json};

use crate::object;
use crate::resources::Resource;

/// What a client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// meta.k8s.io Table (v1 or v1beta1).
    Table(&'static str),
}

/// Reads `Accept`: the first media type we can produce, in the client's order.
pub fn negotiate(accept: Option<&str>) -> Format {
    match crate::accept::negotiate(accept, "Table", "meta.k8s.io", &["v1", "v1beta1"]) {
        Some(v) => Format::Table(v),
        None => Format::Json,
    }
}

struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
}

const fn col(name: &'static str, priority: u8) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        priority,
        description: "",
    }
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: "Name must be unique within a namespace.",
};

fn columns(r: Resource) -> Vec<Column> {
    let mut c = vec![NAME];
    let rest: Vec<Column> = match (r.group, r.plural) {
        ("", "pods") => vec![
            col("Ready", 0),
            col("Status", 0),
            Column {
                kind: "integer",
                ..col("Restarts", 0)
            },
            col("Age", 0),
            col("IP", 1),
            col("Node", 1),
            col("Nominated Node", 1),
            col("Readiness Gates", 1),
        ],
        ("apps", "deployments") => vec![
            col("Ready", 0),
            Column {
                kind: "integer",
                ..col("Up-to-date", 0)
            },
            Column {
                kind: "integer",
                ..col("Available", 0)
            },
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ],
        ("apps", "replicasets") => vec![
            Column {
                kind: "integer",
                ..col("Desired", 0)
            },
            Column {
                kind: "integer",
                ..col("Current", 0)
            },
            Column {
                kind: "integer",
                ..col("Ready", 0)
            },
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ],
        ("apps", "daemonsets") => vec![
            Column {
                kind: "integer",
                ..col("Desired", 0)
            },
            Column {
                kind: "integer",
                ..col("Current", 0)
            },
            Column {
                kind: "integer",
                ..col("Ready", 0)
            },
            Column {
                kind: "integer",
                ..col("Up-to-date", 0)
            },
            Column {
                kind: "integer",
                ..col("Available", 0)
            },
            col("Node Selector", 0),
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ],
        ("batch", "jobs") => vec![
            col("Status", 0),
            col("Completions", 0),
            col("Duration", 0),
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ],
        ("", "services") => vec![
            col("Type", 0),
            col("Cluster-IP", 0),
            col("External-IP", 0),
            col("Port(s)", 0),
            col("Age", 0),
            col("Selector", 1),
        ],
        ("", "endpoints") => vec![col("Endpoints", 0), col("Age", 0)],
        ("", "configmaps") => vec![
            Column {
                kind: "integer",
                ..col("Data", 0)
            },
            col("Age", 0),
        ],
        ("", "secrets") => vec![
            col("Type", 0),
            Column {
                kind: "integer",
                ..col("Data", 0)
            },
            col("Age", 0),
        ],
        ("", "namespaces") => vec![col("Status", 0), col("Age", 0)],
        ("", "nodes") => vec![
            col("Status", 0),
            col("Roles", 0),
            col("Age", 0),
            col("Version", 0),
            col("Internal-IP", 1),
            col("External-IP", 1),
            col("OS-Image", 1),
            col("Kernel-Version", 1),
            col("Container-Runtime", 1),
        ],
        ("", "events") => {
            return vec![
                col("Last Seen", 0),
                col("Type", 0),
                col("Reason", 0),
                col("Object", 0),
                col("Message", 0),
                col("Subobject", 1),
                col("Source", 1),
                col("First Seen", 1),
                Column {
                    kind: "integer",
                    ..col("Count", 1)
                },
                Column {
                    priority: 1,
                    ..NAME
                },
            ];
        }
        ("", "persistentvolumeclaims") => vec![
            col("Status", 0),
            col("Volume", 0),
            col("Capacity", 0),
            col("Access Modes", 0),
            col("StorageClass", 0),
            col("Age", 0),
        ],
        ("", "persistentvolumes") => vec![
            col("Capacity", 0),
            col("Access Modes", 0),
            col("Reclaim Policy", 0),
            col("Status", 0),
            col("Claim", 0),
            col("StorageClass", 0),
            col("Reason", 0),
            col("Age", 0),
        ],
        ("", "serviceaccounts") => vec![
            Column {
                kind: "integer",
                ..col("Secrets", 0)
            },
            col("Age", 0),
        ],
        ("autoscaling", "horizontalpodautoscalers") => vec![
            col("Reference", 0),
            col("Targets", 0),
            col("MinPods", 0),
            Column {
                kind: "integer",
                ..col("MaxPods", 0)
            },
            Column {
                kind: "integer",
                ..col("Replicas", 0)
            },
            col("Age", 0),
        ],
        ("coordination.k8s.io", "leases") => vec![col("Holder", 0), col("Age", 0)],
        _ => vec![col("Age", 0)],
    };
    c.extend(rest);
    c
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn none_if_empty(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

/// Kubernetes' HumanDuration of the time since an RFC 3339 timestamp.
pub fn age(ts: &str, now: jiff::Timestamp) -> String {
    let Ok(t) = ts.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    human_duration(now.as_second() - t.as_second())
}

pub fn human_duration(secs: i64) -> String {
    if secs < 0 {
        return "<invalid>".into();
    }
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else {
        let y = d / 365;
        match d % 365 {
            0 if y < 8 => format!("{y}y"),
            dd if y < 8 => format!("{y}y{dd}d"),
            _ => format!("{y}y"),
        }
    }
}

fn containers_images(tpl_spec: &Value) -> (String, String) {
    let cs = tpl_spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn selector_string(v: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(ml) = v
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
    {
        for (k, val) in ml {
            parts.push(format!("{k}={}", val.as_str().unwrap_or("")));
        }
    }
    none_if_empty(parts.join(","))
}

fn pod_status(p: &Value) -> String {
    let mut reason = s(p, "/status/reason").to_string();
    if reason.is_empty() {
        reason = s(p, "/status/phase").to_string();
    }
    for cs in arr(p, "/status/containerStatuses") {
        if let Some(w) = cs
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            reason = w.to_string();
        } else if let Some(t) = cs.pointer("/state/terminated") {
            let r = s(t, "/reason");
            reason = if r.is_empty() {
                format!("ExitCode:{}", i(t, "/exitCode"))
            } else {
                r.to_string()
            };
        }
    }
    if object::deletion_timestamp(p).is_some() {
        reason = "Terminating".into();
    }
    if reason.is_empty() {
        "Pending".into()
    } else {
        reason
    }
}

fn cells(r: Resource, v: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let name = json!(object::name(v).unwrap_or(""));
    let created = age(s(v, "/metadata/creationTimestamp"), now);
    match (r.group, r.plural) {
        ("", "pods") => {
            let total = arr(v, "/spec/containers").len();
            let statuses = arr(v, "/status/containerStatuses");
            let ready = statuses
                .iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = statuses.iter().map(|c| i(c, "/restartCount")).sum();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(v)),
                json!(restarts),
                json!(created),
                json!(none_if_empty(s(v, "/status/podIP").into())),
                json!(none_if_empty(s(v, "/spec/nodeName").into())),
                json!(none_if_empty(s(v, "/status/nominatedNodeName").into())),
                json!("<none>"),
            ]
        }
        ("apps", "deployments") => {
            let (c, im) =
                containers_images(v.pointer("/spec/template/spec").unwrap_or(&Value::Null));
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    i(v, "/status/readyReplicas"),
                    v.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )),
                json!(i(v, "/status/updatedReplicas")),
                json!(i(v, "/status/availableReplicas")),
                json!(created),
                json!(c),
                json!(im),
                json!(selector_string(v)),
            ]
        }
        ("apps", "replicasets") => {
            let (c, im) =
                containers_images(v.pointer("/spec/template/spec").unwrap_or(&Value::Null));
            vec![
                name,
                json!(
                    v.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ),
                json!(i(v, "/status/replicas")),
                json!(i(v, "/status/readyReplicas")),
                json!(created),
                json!(c),
                json!(im),
                json!(selector_string(v)),
            ]
        }
        ("apps", "daemonsets") => {
            let (c, im) =
                containers_images(v.pointer("/spec/template/spec").unwrap_or(&Value::Null));
            let node_sel = v
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(i(v, "/status/desiredNumberScheduled")),
                json!(i(v, "/status/currentNumberScheduled")),
                json!(i(v, "/status/numberReady")),
                json!(i(v, "/status/updatedNumberScheduled")),
                json!(i(v, "/status/numberAvailable")),
                json!(none_if_empty(node_sel)),
                json!(created),
                json!(c),
                json!(im),
                json!(selector_string(v)),
            ]
        }
        ("batch", "jobs") => {
            let (c, im) =
                containers_images(v.pointer("/spec/template/spec").unwrap_or(&Value::Null));
            let conds = arr(v, "/status/conditions");
            let has = |t: &str| {
                conds
                    .iter()
                    .any(|c| s(c, "/type") == t && s(c, "/status") == "True")
            };
            let status = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else {
                "Running"
            };
            let completions = v
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let duration = match (
                v.pointer("/status/startTime").and_then(Value::as_str),
                v.pointer("/status/completionTime").and_then(Value::as_str),
            ) {
                (Some(st), Some(ct)) => {
                    match (st.parse::<jiff::Timestamp>(), ct.parse::<jiff::Timestamp>()) {
                        (Ok(a), Ok(b)) => human_duration(b.as_second() - a.as_second()),
                        _ => String::new(),
                    }
                }
                (Some(st), None) => age(st, now),
                _ => String::new(),
            };
            vec![
                name,
                json!(status),
                json!(format!("{}/{completions}", i(v, "/status/succeeded"))),
                json!(duration),
                json!(created),
                json!(c),
                json!(im),
                json!(selector_string(v)),
            ]
        }
        ("", "services") => {
            let ports: Vec<String> = arr(v, "/spec/ports")
                .iter()
                .map(|p| {
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(np) => format!("{}:{np}/{proto}", i(p, "/port")),
                        None => format!("{}/{proto}", i(p, "/port")),
                    }
                })
                .collect();
            let sel = v
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(match s(v, "/spec/type") {
                    "" => "ClusterIP",
                    t => t,
                }),
                json!(none_if_empty(s(v, "/spec/clusterIP").into())),
                json!(external_ip(v)),
                json!(none_if_empty(ports.join(","))),
                json!(created),
                json!(none_if_empty(sel)),
            ]
        }
        ("", "endpoints") => {
            let mut eps = Vec::new();
            for subset in arr(v, "/subsets") {
                for a in arr(subset, "/addresses") {
                    for p in arr(subset, "/ports") {
                        eps.push(format!("{}:{}", s(a, "/ip"), i(p, "/port")));
                    }
                }
            }
            vec![name, json!(none_if_empty(eps.join(","))), json!(created)]
        }
        ("", "configmaps") => {
            let n = v.get("data").and_then(Value::as_object).map_or(0, Map::len)
                + v.get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, Map::len);
            vec![name, json!(n), json!(created)]
        }
        ("", "secrets") => {
            let n = v.get("data").and_then(Value::as_object).map_or(0, Map::len);
            vec![name, json!(s(v, "/type")), json!(n), json!(created)]
        }
        ("", "namespaces") => vec![name, json!(s(v, "/status/phase")), json!(created)],
        ("", "nodes") => {
            let ready = arr(v, "/status/conditions")
                .iter()
                .find(|c| s(c, "/type") == "Ready")
                .map(|c| s(c, "/status"));
            let mut status = match ready {
                Some("True") => "Ready".to_string(),
                Some(_) => "NotReady".to_string(),
                None => "Unknown".to_string(),
            };
            if v.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
            let labels = object::labels(v);
            let roles: Vec<&str> = labels
                .keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .map(|r| if r.is_empty() { "<none>" } else { r })
                .collect();
            let addr = |t: &str| {
                arr(v, "/status/addresses")
                    .iter()
                    .find(|a| s(a, "/type") == t)
                    .map(|a| s(a, "/address").to_string())
                    .unwrap_or_else(|| "<none>".into())
            };
            vec![
                name,
                json!(status),
                json!(none_if_empty(roles.join(","))),
                json!(created),
                json!(s(v, "/status/nodeInfo/kubeletVersion")),
                json!(addr("InternalIP")),
                json!(addr("ExternalIP")),
                json!(s(v, "/status/nodeInfo/osImage")),
                json!(s(v, "/status/nodeInfo/kernelVersion")),
                json!(s(v, "/status/nodeInfo/containerRuntimeVersion")),
            ]
        }
        ("", "events") => {
            let last = [
                s(v, "/lastTimestamp"),
                s(v, "/eventTime"),
                s(v, "/metadata/creationTimestamp"),
            ]
            .into_iter()
            .find(|t| !t.is_empty())
            .unwrap_or("");
            let first = [s(v, "/firstTimestamp"), s(v, "/eventTime")]
                .into_iter()
                .find(|t| !t.is_empty())
                .unwrap_or("");
            let obj = format!(
                "{}/{}",
                s(v, "/involvedObject/kind").to_lowercase(),
                s(v, "/involvedObject/name")
            );
            vec![
                json!(age(last, now)),
                json!(s(v, "/type")),
                json!(s(v, "/reason")),
                json!(obj),
                json!(s(v, "/message")),
                json!(s(v, "/involvedObject/fieldPath")),
                json!(s(v, "/source/component")),
                json!(age(first, now)),
                json!(v.get("count").and_then(Value::as_i64).unwrap_or(1)),
                name,
            ]
        }
        ("", "persistentvolumeclaims") => vec![
            name,
            json!(s(v, "/status/phase")),
            json!(s(v, "/spec/volumeName")),
            json!(s(v, "/status/capacity/storage")),
            json!(access_modes(arr(v, "/status/accessModes"))),
            json!(s(v, "/spec/storageClassName")),
            json!(created),
        ],
        ("", "persistentvolumes") => {
            let claim = match (
                s(v, "/spec/claimRef/namespace"),
                s(v, "/spec/claimRef/name"),
            ) {
                (_, "") => String::new(),
                (ns, n) => format!("{ns}/{n}"),
            };
            vec![
                name,
                json!(s(v, "/spec/capacity/storage")),
                json!(access_modes(arr(v, "/spec/accessModes"))),
                json!(s(v, "/spec/persistentVolumeReclaimPolicy")),
                json!(s(v, "/status/phase")),
                json!(claim),
                json!(s(v, "/spec/storageClassName")),
                json!(s(v, "/status/reason")),
                json!(created),
            ]
        }
        ("", "serviceaccounts") => vec![name, json!(arr(v, "/secrets").len()), json!(created)],
        ("autoscaling", "horizontalpodautoscalers") => {
            let reference = format!(
                "{}/{}",
                s(v, "/spec/scaleTargetRef/kind"),
                s(v, "/spec/scaleTargetRef/name")
            );
            let min = v
                .pointer("/spec/minReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            vec![
                name,
                json!(reference),
                json!("<unknown>"),
                json!(min.to_string()),
                json!(i(v, "/spec/maxReplicas")),
                json!(i(v, "/status/currentReplicas")),
                json!(created),
            ]
        }
        ("coordination.k8s.io", "leases") => {
            vec![name, json!(s(v, "/spec/holderIdentity")), json!(created)]
        }
        _ => vec![name, json!(created)],
    }
}

/// A Service's EXTERNAL-IP cell, as kubectl shows it.
fn external_ip(v: &Value) -> String {
    let mut ips: Vec<String> = arr(v, "/spec/externalIPs")
        .iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect();
    for ing in arr(v, "/status/loadBalancer/ingress") {
        let ip = s(ing, "/ip");
        let host = s(ing, "/hostname");
        ips.push(if ip.is_empty() {
            host.to_string()
        } else {
            ip.to_string()
        });
    }
    match (s(v, "/spec/type"), ips.is_empty()) {
        ("LoadBalancer", true) => "<pending>".into(),
        ("ExternalName", _) => s(v, "/spec/externalName").to_string(),
        (_, true) => "<none>".into(),
        _ => ips.join(","),
    }
}

fn access_modes(modes: &[Value]) -> String {
    modes
        .iter()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// How much of each object a row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

fn row(
    r: Resource,
    v: &Value,
    include: IncludeObject,
    version: &str,
    now: jiff::Timestamp,
) -> Value {
    let object = match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => v.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": format!("meta.k8s.io/{version}"),
            "metadata": v.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    };
    let mut row = json!({"cells": cells(r, v, now)});
    if !object.is_null() {
        row["object"] = object;
    }
    row
}

/// A Table of objects. `with_columns` is false for watch events after the first.
pub fn table(
    r: Resource,
    objects: &[&Value],
    resource_version: Option<&str>,
    continue_token: Option<&str>,
    include: IncludeObject,
    version: &str,
    with_columns: bool,
) -> Value {
    let now = jiff::Timestamp::now();
    let column_defs: Vec<Value> = if with_columns {
        columns(r)
            .iter()
            .map(|c| json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority}))
            .collect()
    } else {
        Vec::new()
    };
    let mut meta = Map::new();
    if let Some(rv) = resource_version {
        meta.insert("resourceVersion".into(), rv.into());
    }
    if let Some(c) = continue_token {
        meta.insert("continue".into(), c.into());
    }
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": meta,
        "columnDefinitions": column_defs,
        "rows": objects.iter().map(|o| row(r, o, include, version, now)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn negotiation_follows_the_clients_order() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl)), Format::Table("v1"));
        assert_eq!(
            negotiate(Some("application/json;as=Table;v=v1beta1;g=meta.k8s.io")),
            Format::Table("v1beta1")
        );
        assert_eq!(negotiate(Some("application/json")), Format::Json);
        assert_eq!(
            negotiate(Some("application/json;as=Other;v=v1;g=x, application/json")),
            Format::Json
        );
        assert_eq!(negotiate(None), Format::Json);
    }

    #[test]
    fn human_durations_like_kubernetes() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn pod_rows() {
        let r = skiff_api::registry::lookup("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2},
                {"name": "b", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let t = table(
            r,
            &[&pod],
            Some("7"),
            None,
            IncludeObject::Metadata,
            "v1",
            true,
        );
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "web");
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[3], 3);
        assert_eq!(cells[5], "10.0.0.5");
        assert_eq!(cells[6], "n1");
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
    }
}
