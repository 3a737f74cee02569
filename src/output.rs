//! Printing objects: kubectl-like tables (columns per kind), ages, and the `-o yaml|json|name`
//! formats. The server has no Table support yet, so the columns are computed here from
//! the objects.

use std::fmt::Write as _;

use clap::ValueEnum;
use jiff::Timestamp;
use serde::Serialize as _;
use serde_json::Value;
use skiff_api::registry::Resource;

use crate::cli_common::{meta_str, object_ref};

/// `-o`: how `get` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The table with extra columns
    Wide,
    /// The objects as YAML
    Yaml,
    /// The objects as JSON
    Json,
    /// TYPE/NAME only
    Name,
}

/// An aligned table, as kubectl prints it: cells padded to the widest in their column plus
/// 3 spaces (at least 6 wide), the last column unpadded.
#[derive(Debug, Default, Clone)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    widths: Vec<usize>,
}

impl Table {
    pub fn new(headers: Vec<String>) -> Table {
        Table {
            headers,
            rows: Vec::new(),
            widths: Vec::new(),
        }
    }

    /// Grows the remembered column widths to fit `row`.
    fn fit(&mut self, row: &[String]) {
        if self.widths.len() < row.len() {
            self.widths.resize(row.len(), 0);
        }
        for (w, cell) in self.widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count() + 3).max(6);
        }
    }

    /// Renders the headers (unless `no_headers`) and the rows; remembers the widths so
    /// that later rows (`get -w`) line up.
    pub fn render(&mut self, no_headers: bool) -> String {
        let headers = self.headers.clone();
        if !no_headers {
            self.fit(&headers);
        }
        for row in self.rows.clone() {
            self.fit(&row);
        }
        let mut out = String::new();
        if !no_headers {
            out.push_str(&self.line(&headers));
        }
        for row in &self.rows {
            out.push_str(&self.line(row));
        }
        out
    }

    /// One more row, aligned with what was rendered before (widths grow if needed).
    pub fn render_row(&mut self, row: &[String]) -> String {
        self.fit(row);
        self.line(row)
    }

    fn line(&self, cells: &[String]) -> String {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let w = self.widths.get(i).copied().unwrap_or(0);
                let _ = write!(s, "{cell:<w$}");
            }
        }
        s.push('\n');
        s
    }
}

/// kubectl's human duration: `45s`, `3m2s`, `15m`, `4h`, `5h3m`, `2d`, `3d4h`, `2y`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 10 {
        return match s % 60 {
            0 => format!("{minutes}m"),
            rest => format!("{minutes}m{rest}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = s / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            rest => format!("{hours}h{rest}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            rest => format!("{days}d{rest}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            rest => format!("{years}y{rest}d"),
        };
    }
    format!("{years}y")
}

/// Parses an RFC 3339 timestamp field.
pub fn timestamp(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_str)?.parse::<Timestamp>().ok()
}

/// The age of a timestamp field, or `<unknown>`.
pub fn age_of(v: Option<&Value>, now: Timestamp) -> String {
    match timestamp(v) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".to_string(),
    }
}

fn age(obj: &Value, now: Timestamp) -> String {
    age_of(obj.pointer("/metadata/creationTimestamp"), now)
}

fn s<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn i(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".to_string()
    } else {
        v.to_string()
    }
}

fn arr<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// `a=b,c=d` of a label map (or a matchLabels selector).
pub fn labels_string(v: Option<&Value>) -> String {
    let Some(map) = v.and_then(Value::as_object) else {
        return String::new();
    };
    map.iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(",")
}

/// The string form of a LabelSelector object.
pub fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return String::new();
    };
    let mut parts = Vec::new();
    let ml = labels_string(sel.get("matchLabels"));
    if !ml.is_empty() {
        parts.push(ml);
    }
    for e in arr(sel, "/matchExpressions") {
        let key = s(e, "/key");
        let values: Vec<&str> = arr(e, "/values").iter().filter_map(Value::as_str).collect();
        match s(e, "/operator") {
            "In" => parts.push(format!("{key} in ({})", values.join(","))),
            "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
            "Exists" => parts.push(key.to_string()),
            "DoesNotExist" => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}

/// The column headers for `r`.
pub fn headers(r: &Resource, wide: bool) -> Vec<&'static str> {
    let mut h: Vec<&'static str> = match (r.group, r.kind) {
        ("", "Pod") => vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ("apps", "Deployment") => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ("apps", "ReplicaSet") => vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ("apps", "DaemonSet") => vec![
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE",
        ],
        ("batch", "Job") => vec!["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        ("", "Service") => vec![
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        ("", "ConfigMap") => vec!["NAME", "DATA", "AGE"],
        ("", "Secret") => vec!["NAME", "TYPE", "DATA", "AGE"],
        ("", "Namespace") => vec!["NAME", "STATUS", "AGE"],
        ("", "Node") => vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        ("", "Event") => vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        ("", "Endpoints") => vec!["NAME", "ENDPOINTS", "AGE"],
        ("", "ServiceAccount") => vec!["NAME", "SECRETS", "AGE"],
        ("", "PersistentVolumeClaim") => vec![
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "AGE",
        ],
        ("", "PersistentVolume") => vec![
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "AGE",
        ],
        ("autoscaling", "HorizontalPodAutoscaler") => vec![
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE",
        ],
        ("coordination.k8s.io", "Lease") => vec!["NAME", "HOLDER", "AGE"],
        _ => vec!["NAME", "AGE"],
    };
    if wide {
        match (r.group, r.kind) {
            ("", "Pod") => h.extend(["IP", "NODE"]),
            ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") | ("batch", "Job") => {
                h.extend(["CONTAINERS", "IMAGES", "SELECTOR"])
            }
            ("", "Service") => h.push("SELECTOR"),
            ("", "Node") => h.extend(["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION"]),
            _ => {}
        }
    }
    h
}

/// One table row for `obj` (matching [`headers`]).
pub fn row(r: &Resource, obj: &Value, wide: bool, now: Timestamp) -> Vec<String> {
    let name = meta_str(obj, "name").unwrap_or("").to_string();
    let age = age(obj, now);
    let mut row: Vec<String> = match (r.group, r.kind) {
        ("", "Pod") => {
            let containers = arr(obj, "/spec/containers").len();
            let statuses = arr(obj, "/status/containerStatuses");
            let ready = statuses
                .iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = statuses.iter().map(|c| i(c, "/restartCount")).sum();
            vec![
                name,
                format!("{ready}/{containers}"),
                pod_status(obj),
                restarts.to_string(),
                age,
            ]
        }
        ("apps", "Deployment") => vec![
            name,
            format!("{}/{}", i(obj, "/status/readyReplicas"), replicas(obj)),
            i(obj, "/status/updatedReplicas").to_string(),
            i(obj, "/status/availableReplicas").to_string(),
            age,
        ],
        ("apps", "ReplicaSet") => vec![
            name,
            replicas(obj).to_string(),
            i(obj, "/status/replicas").to_string(),
            i(obj, "/status/readyReplicas").to_string(),
            age,
        ],
        ("apps", "DaemonSet") => vec![
            name,
            i(obj, "/status/desiredNumberScheduled").to_string(),
            i(obj, "/status/currentNumberScheduled").to_string(),
            i(obj, "/status/numberReady").to_string(),
            i(obj, "/status/updatedNumberScheduled").to_string(),
            i(obj, "/status/numberAvailable").to_string(),
            or_none(&labels_string(
                obj.pointer("/spec/template/spec/nodeSelector"),
            )),
            age,
        ],
        ("batch", "Job") => {
            let completions = obj
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .map(|c| c.to_string())
                .unwrap_or_else(|| "1".to_string());
            let start = timestamp(obj.pointer("/status/startTime"));
            let end = timestamp(obj.pointer("/status/completionTime")).unwrap_or(now);
            let duration = start
                .map(|st| human_duration(end.as_second() - st.as_second()))
                .unwrap_or_default();
            vec![
                name,
                job_status(obj),
                format!("{}/{completions}", i(obj, "/status/succeeded")),
                duration,
                age,
            ]
        }
        ("", "Service") => vec![
            name,
            match s(obj, "/spec/type") {
                "" => "ClusterIP".to_string(),
                t => t.to_string(),
            },
            or_none(s(obj, "/spec/clusterIP")),
            external_ip(obj),
            or_none(&service_ports(obj)),
            age,
        ],
        ("", "ConfigMap") => {
            let n = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + obj
                    .get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            vec![name, n.to_string(), age]
        }
        ("", "Secret") => {
            let n = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + obj
                    .get("stringData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            let t = s(obj, "/type");
            vec![
                name,
                if t.is_empty() {
                    "Opaque".into()
                } else {
                    t.into()
                },
                n.to_string(),
                age,
            ]
        }
        ("", "Namespace") => {
            let phase = s(obj, "/status/phase");
            vec![
                name,
                if phase.is_empty() {
                    "Active".into()
                } else {
                    phase.into()
                },
                age,
            ]
        }
        ("", "Node") => vec![
            name,
            node_status(obj),
            or_none(&node_roles(obj)),
            age,
            s(obj, "/status/nodeInfo/kubeletVersion").to_string(),
        ],
        ("", "Event") => {
            let last = [
                "/lastTimestamp",
                "/eventTime",
                "/firstTimestamp",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .find_map(|p| timestamp(obj.pointer(p)))
            .map(|t| human_duration(now.as_second() - t.as_second()))
            .unwrap_or_else(|| "<unknown>".into());
            let kind = s(obj, "/involvedObject/kind").to_lowercase();
            let object = format!("{kind}/{}", s(obj, "/involvedObject/name"));
            vec![
                last,
                s(obj, "/type").to_string(),
                s(obj, "/reason").to_string(),
                object,
                s(obj, "/message").trim().to_string(),
            ]
        }
        ("", "Endpoints") => vec![name, or_none(&endpoints(obj)), age],
        ("", "ServiceAccount") => vec![name, arr(obj, "/secrets").len().to_string(), age],
        ("", "PersistentVolumeClaim") => vec![
            name,
            s(obj, "/status/phase").to_string(),
            s(obj, "/spec/volumeName").to_string(),
            s(obj, "/status/capacity/storage").to_string(),
            access_modes(arr(obj, "/status/accessModes")),
            or_unset(s(obj, "/spec/storageClassName")),
            age,
        ],
        ("", "PersistentVolume") => {
            let claim = match (
                s(obj, "/spec/claimRef/namespace"),
                s(obj, "/spec/claimRef/name"),
            ) {
                (_, "") => String::new(),
                (ns, n) => format!("{ns}/{n}"),
            };
            vec![
                name,
                s(obj, "/spec/capacity/storage").to_string(),
                access_modes(arr(obj, "/spec/accessModes")),
                s(obj, "/spec/persistentVolumeReclaimPolicy").to_string(),
                s(obj, "/status/phase").to_string(),
                claim,
                or_unset(s(obj, "/spec/storageClassName")),
                age,
            ]
        }
        ("autoscaling", "HorizontalPodAutoscaler") => vec![
            name,
            format!(
                "{}/{}",
                s(obj, "/spec/scaleTargetRef/kind"),
                s(obj, "/spec/scaleTargetRef/name")
            ),
            hpa_targets(obj),
            obj.pointer("/spec/minReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                .to_string(),
            i(obj, "/spec/maxReplicas").to_string(),
            i(obj, "/status/currentReplicas").to_string(),
            age,
        ],
        ("coordination.k8s.io", "Lease") => {
            vec![name, s(obj, "/spec/holderIdentity").to_string(), age]
        }
        _ => vec![name, age],
    };
    if wide {
        match (r.group, r.kind) {
            ("", "Pod") => {
                row.push(or_none(s(obj, "/status/podIP")));
                row.push(or_none(s(obj, "/spec/nodeName")));
            }
            ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") | ("batch", "Job") => {
                let cs = arr(obj, "/spec/template/spec/containers");
                let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
                let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
                row.push(names.join(","));
                row.push(images.join(","));
                row.push(or_none(&selector_string(obj.pointer("/spec/selector"))));
            }
            ("", "Service") => row.push(or_none(&labels_string(obj.pointer("/spec/selector")))),
            ("", "Node") => {
                let addr = |t: &str| {
                    arr(obj, "/status/addresses")
                        .iter()
                        .find(|a| s(a, "/type") == t)
                        .map(|a| s(a, "/address").to_string())
                        .unwrap_or_default()
                };
                row.push(or_none(&addr("InternalIP")));
                row.push(or_none(&addr("ExternalIP")));
                row.push(or_unknown(s(obj, "/status/nodeInfo/osImage")));
                row.push(or_unknown(s(obj, "/status/nodeInfo/kernelVersion")));
            }
            _ => {}
        }
    }
    row
}

fn or_unset(v: &str) -> String {
    if v.is_empty() {
        "<unset>".to_string()
    } else {
        v.to_string()
    }
}

fn or_unknown(v: &str) -> String {
    if v.is_empty() {
        "<unknown>".to_string()
    } else {
        v.to_string()
    }
}

fn replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// kubectl's STATUS column of a pod: the phase, or a more telling reason from the
/// containers, or `Terminating`.
pub fn pod_status(pod: &Value) -> String {
    let mut reason = s(pod, "/status/reason").to_string();
    if reason.is_empty() {
        reason = s(pod, "/status/phase").to_string();
    }
    if reason.is_empty() {
        reason = "Pending".to_string();
    }
    let mut running = false;
    for c in arr(pod, "/status/containerStatuses").iter().rev() {
        let waiting = s(c, "/state/waiting/reason");
        let terminated = c.pointer("/state/terminated");
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if let Some(t) = terminated {
            let r = s(t, "/reason");
            reason = if !r.is_empty() {
                r.to_string()
            } else if let Some(sig) = t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                format!("Signal:{sig}")
            } else {
                format!("ExitCode:{}", i(t, "/exitCode"))
            };
        } else if c.get("ready").and_then(Value::as_bool) == Some(true)
            && c.pointer("/state/running").is_some()
        {
            running = true;
        }
    }
    if running && reason == "Completed" {
        reason = "Running".to_string();
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".to_string();
    }
    reason
}

fn job_status(job: &Value) -> String {
    let cond = |t: &str| {
        arr(job, "/status/conditions")
            .iter()
            .any(|c| s(c, "/type") == t && s(c, "/status") == "True")
    };
    if cond("Complete") {
        "Complete".into()
    } else if cond("Failed") {
        "Failed".into()
    } else if job.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating".into()
    } else if cond("Suspended")
        || job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
    {
        "Suspended".into()
    } else {
        "Running".into()
    }
}

fn external_ip(svc: &Value) -> String {
    let ingress: Vec<String> = arr(svc, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| {
            let ip = s(i, "/ip");
            if ip.is_empty() { s(i, "/hostname") } else { ip }.to_string()
        })
        .filter(|x| !x.is_empty())
        .collect();
    let external: Vec<String> = arr(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    match s(svc, "/spec/type") {
        "ExternalName" => or_none(s(svc, "/spec/externalName")),
        "LoadBalancer" => {
            let all: Vec<String> = ingress.into_iter().chain(external).collect();
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        _ => or_none(&external.join(",")),
    }
}

fn service_ports(svc: &Value) -> String {
    arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = match s(p, "/protocol") {
                "" => "TCP",
                other => other,
            };
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) if np != 0 => format!("{}:{np}/{proto}", i(p, "/port")),
                _ => format!("{}/{proto}", i(p, "/port")),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn node_status(node: &Value) -> String {
    let ready = arr(node, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == "Ready")
        .map(|c| s(c, "/status"));
    let mut status = match ready {
        Some("True") => "Ready".to_string(),
        Some("False") => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn node_roles(node: &Value) -> String {
    let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) else {
        return String::new();
    };
    let mut roles: Vec<&str> = labels
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .filter(|r| !r.is_empty())
        .collect();
    if let Some(role) = labels.get("kubernetes.io/role").and_then(Value::as_str) {
        roles.push(role);
    }
    roles.sort_unstable();
    roles.dedup();
    roles.join(",")
}

fn endpoints(ep: &Value) -> String {
    let mut out = Vec::new();
    for subset in arr(ep, "/subsets") {
        let ports: Vec<i64> = arr(subset, "/ports")
            .iter()
            .map(|p| i(p, "/port"))
            .collect();
        for a in arr(subset, "/addresses") {
            let ip = s(a, "/ip");
            if ports.is_empty() {
                out.push(ip.to_string());
            } else {
                out.extend(ports.iter().map(|p| format!("{ip}:{p}")));
            }
        }
    }
    if out.len() > 3 {
        let more = out.len() - 3;
        out.truncate(3);
        format!("{} + {more} more...", out.join(","))
    } else {
        out.join(",")
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

fn hpa_targets(hpa: &Value) -> String {
    let current = arr(hpa, "/status/currentMetrics");
    let parts: Vec<String> = arr(hpa, "/spec/metrics")
        .iter()
        .map(|m| {
            let name = s(m, "/resource/name");
            let target = m
                .pointer("/resource/target/averageUtilization")
                .and_then(Value::as_i64)
                .map(|u| format!("{u}%"))
                .unwrap_or_else(|| {
                    let v = s(m, "/resource/target/averageValue");
                    if v.is_empty() {
                        "<unknown>".into()
                    } else {
                        v.into()
                    }
                });
            let now = current
                .iter()
                .find(|c| s(c, "/resource/name") == name)
                .and_then(|c| c.pointer("/resource/current/averageUtilization"))
                .and_then(Value::as_i64)
                .map(|u| format!("{u}%"))
                .unwrap_or_else(|| "<unknown>".into());
            if name.is_empty() {
                format!("{now}/{target}")
            } else {
                format!("{name}: {now}/{target}")
            }
        })
        .collect();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(", ")
    }
}

/// A table of `items` of `r`; with `namespace_column`, NAMESPACE first.
pub fn table(
    r: &Resource,
    items: &[Value],
    wide: bool,
    namespace_column: bool,
    now: Timestamp,
) -> Table {
    let mut headers: Vec<String> = headers(r, wide).into_iter().map(String::from).collect();
    if namespace_column {
        headers.insert(0, "NAMESPACE".into());
    }
    let mut t = Table::new(headers);
    for item in items {
        t.rows.push(table_row(r, item, wide, namespace_column, now));
    }
    t
}

/// One row, with the NAMESPACE cell first when asked.
pub fn table_row(
    r: &Resource,
    item: &Value,
    wide: bool,
    namespace_column: bool,
    now: Timestamp,
) -> Vec<String> {
    let mut cells = row(r, item, wide, now);
    if namespace_column {
        cells.insert(0, meta_str(item, "namespace").unwrap_or("").to_string());
    }
    cells
}

/// `kind`/`apiVersion` on an object that lacks them (list items).
pub fn with_type(r: &Resource, obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(map) = o.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| r.api_version.into());
        map.entry("kind").or_insert_with(|| r.kind.into());
    }
    o
}

/// JSON with 4-space indentation, as kubectl prints it.
pub fn to_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if v.serialize(&mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8_lossy(&buf).into_owned()
}

pub fn to_yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap_or_else(|e| format!("# cannot render as YAML: {e}\n"))
}

/// The `kind: List` kubectl prints for several objects.
pub fn list_of(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

/// `deployment.apps/web`
pub fn name_line(r: &Resource, obj: &Value) -> String {
    object_ref(r, meta_str(obj, "name").unwrap_or(""))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use skiff_api::registry;

    #[test]
    fn ages_like_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (4 * 3600, "4h"),
            (5 * 3600 + 180, "5h3m"),
            (47 * 3600, "47h"),
            (2 * 86400, "2d"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (30 * 86400, "30d"),
            (2 * 365 * 86400, "2y"),
            (3 * 365 * 86400 + 10 * 86400, "3y10d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn tables_align_like_kubectl() {
        let mut t = Table::new(vec!["NAME".into(), "STATUS".into(), "AGE".into()]);
        t.rows
            .push(vec!["default".into(), "Active".into(), "5d".into()]);
        t.rows
            .push(vec!["kube-node-lease".into(), "Active".into(), "5d".into()]);
        assert_eq!(
            t.render(false),
            "NAME              STATUS   AGE\ndefault           Active   5d\nkube-node-lease   Active   5d\n"
        );
        assert_eq!(
            t.render_row(&["x".into(), "Terminating".into(), "1s".into()]),
            "x                 Terminating   1s\n"
        );
    }

    #[test]
    fn pod_rows() {
        let now: Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        let pod = json!({
            "metadata": {"name": "p", "namespace": "ns", "creationTimestamp": "2024-01-01T00:05:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ]},
        });
        let t = table(&registry::POD, std::slice::from_ref(&pod), true, true, now);
        assert_eq!(
            t.headers,
            [
                "NAMESPACE",
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IP",
                "NODE"
            ]
        );
        assert_eq!(
            t.rows[0],
            [
                "ns",
                "p",
                "1/2",
                "CrashLoopBackOff",
                "3",
                "5m",
                "10.0.0.1",
                "n1"
            ]
        );
        let pending = json!({"metadata": {"name": "q"}, "spec": {"containers": [{}]}, "status": {"phase": "Pending"}});
        assert_eq!(
            row(&registry::POD, &pending, false, now),
            ["q", "0/1", "Pending", "0", "<unknown>"]
        );
    }

    #[test]
    fn workload_and_service_rows() {
        let now: Timestamp = "2024-01-01T00:00:30Z".parse().unwrap();
        let created = "2024-01-01T00:00:00Z";
        let d = json!({
            "metadata": {"name": "web", "creationTimestamp": created},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "main", "image": "file:///w.wasm"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        });
        assert_eq!(
            row(&registry::DEPLOYMENT, &d, true, now),
            [
                "web",
                "2/3",
                "3",
                "2",
                "30s",
                "main",
                "file:///w.wasm",
                "app=web"
            ]
        );
        let svc = json!({
            "metadata": {"name": "s", "creationTimestamp": created},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.5", "ports": [
                {"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]},
        });
        assert_eq!(
            row(&registry::SERVICE, &svc, false, now),
            [
                "s",
                "NodePort",
                "10.96.0.5",
                "<none>",
                "80:30080/TCP,53/UDP",
                "30s"
            ]
        );
        let cm = json!({"metadata": {"name": "c", "creationTimestamp": created}, "data": {"a": "1", "b": "2"}});
        assert_eq!(
            row(&registry::CONFIG_MAP, &cm, false, now),
            ["c", "2", "30s"]
        );
        let node = json!({
            "metadata": {"name": "n", "creationTimestamp": created,
                         "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "skiff-0.1.0"}},
        });
        assert_eq!(
            row(&registry::NODE, &node, false, now),
            [
                "n",
                "Ready,SchedulingDisabled",
                "control-plane",
                "30s",
                "skiff-0.1.0"
            ]
        );
        let lease = json!({"metadata": {"name": "l", "creationTimestamp": created}, "spec": {"holderIdentity": "node-1"}});
        assert_eq!(
            row(&registry::LEASE, &lease, false, now),
            ["l", "node-1", "30s"]
        );
        let generic = json!({"metadata": {"name": "sa", "creationTimestamp": created}});
        assert_eq!(
            row(&registry::ENDPOINTS, &generic, false, now),
            ["sa", "<none>", "30s"]
        );
    }

    #[test]
    fn json_is_indented_by_four() {
        assert_eq!(
            to_json(&json!({"a": [1]})),
            "{\n    \"a\": [\n        1\n    ]\n}"
        );
    }
}
