//! `skiff describe KIND NAME`: an object's key fields, labels, annotations, conditions
//! and the Events about it (found with a field selector on involvedObject name,
//! namespace and uid, as kubectl does).

use std::fmt::Write as _;

use anyhow::bail;
use clap::Args;
use jiff::Timestamp;
use serde_json::Value;
use skiff_api::registry::{self, Resource};
use skiff_client::ListParams;

use crate::cli_common::{self, AlreadyReported, ClientArgs, Conn, meta_str};
use crate::output::{self, human_duration, timestamp};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  skiff describe pod web-1\n  skiff describe deployment/web\n  skiff describe pods -l app=web"
)]
pub struct DescribeArgs {
    /// A kind (pods, deploy, …), or TYPE/NAME
    #[arg(value_name = "KIND|TYPE/NAME")]
    pub kind: String,

    /// Names of the objects (every object of KIND, or those matching -l, when none)
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// Describe the objects of KIND whose labels match this selector
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,

    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: DescribeArgs) -> anyhow::Result<()> {
    let conn = args.client.connect()?;
    let mut targets: Vec<(&'static Resource, String)> = Vec::new();
    if let Some((r, name)) = cli_common::split_type_name(&args.kind)? {
        targets.push((r, name));
        for n in &args.names {
            match cli_common::split_type_name(n)? {
                Some(t) => targets.push(t),
                None => bail!("mix of TYPE/NAME and NAME arguments: use one form"),
            }
        }
    } else {
        let r = cli_common::resolve_kind(&args.kind)?;
        if args.names.is_empty() {
            let params = ListParams {
                label_selector: args.selector.clone(),
                ..Default::default()
            };
            let list = conn.client.list(r, Some(&conn.namespace), &params).await?;
            for item in list
                .get("items")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                if let Some(n) = meta_str(item, "name") {
                    targets.push((r, n.to_string()));
                }
            }
            if targets.is_empty() {
                eprintln!("No resources found in {} namespace.", conn.namespace);
                return Ok(());
            }
        } else {
            targets.extend(args.names.iter().map(|n| (r, n.clone())));
        }
    }
    let mut failed = false;
    let mut first = true;
    for (r, name) in targets {
        match describe_one(&conn, r, &name).await {
            Ok(text) => {
                if !first {
                    println!();
                    println!();
                }
                first = false;
                print!("{text}");
            }
            Err(e) => {
                failed = true;
                cli_common::print_error(&e);
            }
        }
    }
    if failed {
        return Err(AlreadyReported.into());
    }
    Ok(())
}

async fn describe_one(conn: &Conn, r: &'static Resource, name: &str) -> anyhow::Result<String> {
    let obj = conn.client.get(r, None, name).await?;
    let events = events_for(conn, r, &obj).await.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "no events");
        Vec::new()
    });
    Ok(render(r, &obj, &events, Timestamp::now()))
}

/// The Events about `obj`.
async fn events_for(conn: &Conn, r: &Resource, obj: &Value) -> anyhow::Result<Vec<Value>> {
    let name = meta_str(obj, "name").unwrap_or("");
    let mut selector = format!("involvedObject.name={name}");
    let ns = meta_str(obj, "namespace");
    if let Some(ns) = ns {
        let _ = write!(selector, ",involvedObject.namespace={ns}");
    }
    if let Some(uid) = meta_str(obj, "uid") {
        let _ = write!(selector, ",involvedObject.uid={uid}");
    }
    let list = conn
        .client
        .list(
            &registry::EVENT,
            if r.namespaced { ns } else { None },
            &ListParams::default().fields(&selector),
        )
        .await?;
    let mut events: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    events.sort_by_key(|e| event_time(e).map(|t| t.as_second()).unwrap_or(0));
    Ok(events)
}

fn event_time(e: &Value) -> Option<Timestamp> {
    [
        "/lastTimestamp",
        "/eventTime",
        "/firstTimestamp",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .find_map(|p| timestamp(e.pointer(p)))
}

fn s<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn i(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.into()
    }
}

/// Lines of `Key:  value`, values aligned within each block of the same indent.
#[derive(Default)]
struct Doc {
    lines: Vec<Line>,
}

enum Line {
    /// (indent, key, value)
    Field(usize, String, String),
    /// Verbatim.
    Text(String),
}

impl Doc {
    fn field(&mut self, indent: usize, key: &str, value: impl Into<String>) {
        self.lines
            .push(Line::Field(indent, format!("{key}:"), value.into()));
    }

    fn text(&mut self, line: impl Into<String>) {
        self.lines.push(Line::Text(line.into()));
    }

    /// A map as `k=v` lines (labels) or `k: v` lines (annotations), the first on the
    /// key's own line.
    fn map(&mut self, indent: usize, key: &str, map: Option<&Value>, sep: &str) {
        let entries: Vec<String> = map
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        format!("{k}{sep}{v}")
                    })
                    .collect()
            })
            .unwrap_or_default();
        match entries.split_first() {
            None => self.field(indent, key, "<none>"),
            Some((first, rest)) => {
                self.field(indent, key, first.clone());
                for e in rest {
                    self.lines
                        .push(Line::Field(indent, String::new(), e.clone()));
                }
            }
        }
    }

    fn render(&self) -> String {
        // Key width per indent level, over the whole document (as kubectl's tabwriter
        // aligns one level).
        let mut widths = std::collections::BTreeMap::<usize, usize>::new();
        for l in &self.lines {
            if let Line::Field(indent, key, _) = l {
                let w = widths.entry(*indent).or_default();
                *w = (*w).max(key.len());
            }
        }
        let mut out = String::new();
        for l in &self.lines {
            match l {
                Line::Field(indent, key, value) => {
                    let w = widths.get(indent).copied().unwrap_or(0) + 2;
                    let pad = " ".repeat(*indent);
                    if value.is_empty() {
                        let _ = writeln!(out, "{pad}{key}");
                    } else {
                        let _ = writeln!(out, "{pad}{key:<w$}{value}");
                    }
                }
                Line::Text(t) => {
                    let _ = writeln!(out, "{t}");
                }
            }
        }
        out
    }
}

/// An aligned sub-table (conditions, events), indented by 2.
fn sub_table(doc: &mut Doc, headers: &[&str], rows: Vec<Vec<String>>) {
    let mut all = vec![
        headers.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        headers
            .iter()
            .map(|h| "-".repeat(h.len()))
            .collect::<Vec<_>>(),
    ];
    all.extend(rows);
    let cols = headers.len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            all.iter()
                .map(|r| r.get(c).map_or(0, |x| x.chars().count()))
                .max()
                .unwrap_or(0)
                + 2
        })
        .collect();
    for r in all {
        let mut line = String::from("  ");
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let w = widths.get(c).copied().unwrap_or(0);
                let _ = write!(line, "{cell:<w$}");
            }
        }
        doc.text(line.trim_end().to_string());
    }
}

fn conditions(doc: &mut Doc, obj: &Value, with_reason: bool) {
    let conds = arr(obj, "/status/conditions");
    if conds.is_empty() {
        return;
    }
    doc.field(0, "Conditions", "");
    let rows = conds
        .iter()
        .map(|c| {
            let mut row = vec![s(c, "/type").to_string(), s(c, "/status").to_string()];
            if with_reason {
                row.push(or_none(s(c, "/reason")));
            }
            row
        })
        .collect();
    let headers: &[&str] = if with_reason {
        &["Type", "Status", "Reason"]
    } else {
        &["Type", "Status"]
    };
    sub_table(doc, headers, rows);
}

fn containers(doc: &mut Doc, indent: usize, spec: &Value, statuses: &[Value]) {
    let list = arr(spec, "/containers");
    doc.field(indent, "Containers", "");
    for c in list {
        let name = s(c, "/name");
        doc.field(indent + 2, name, "");
        let ind = indent + 4;
        doc.field(ind, "Image", s(c, "/image"));
        let ports: Vec<String> = arr(c, "/ports")
            .iter()
            .map(|p| {
                let proto = match s(p, "/protocol") {
                    "" => "TCP",
                    x => x,
                };
                format!("{}/{proto}", i(p, "/containerPort"))
            })
            .collect();
        doc.field(ind, "Port", or_none(&ports.join(", ")));
        let cmd: Vec<&str> = arr(c, "/command")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if !cmd.is_empty() {
            doc.field(ind, "Command", cmd.join(" "));
        }
        let args: Vec<&str> = arr(c, "/args").iter().filter_map(Value::as_str).collect();
        if !args.is_empty() {
            doc.field(ind, "Args", args.join(" "));
        }
        if let Some(st) = statuses.iter().find(|st| s(st, "/name") == name) {
            let state = st.get("state");
            let (label, detail) = match state {
                Some(v) if v.get("running").is_some() => ("Running", String::new()),
                Some(v) if v.get("waiting").is_some() => {
                    ("Waiting", s(v, "/waiting/reason").to_string())
                }
                Some(v) if v.get("terminated").is_some() => (
                    "Terminated",
                    format!(
                        "{} (exit code {})",
                        s(v, "/terminated/reason"),
                        i(v, "/terminated/exitCode")
                    ),
                ),
                _ => ("Waiting", String::new()),
            };
            doc.field(ind, "State", label);
            if !detail.is_empty() {
                doc.field(ind + 2, "Reason", detail);
            }
            doc.field(
                ind,
                "Ready",
                if st.get("ready").and_then(Value::as_bool) == Some(true) {
                    "True"
                } else {
                    "False"
                },
            );
            doc.field(ind, "Restart Count", i(st, "/restartCount").to_string());
        }
        for (key, ptr) in [
            ("Limits", "/resources/limits"),
            ("Requests", "/resources/requests"),
        ] {
            if let Some(m) = c
                .pointer(ptr)
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
            {
                doc.field(ind, key, "");
                for (k, v) in m {
                    doc.field(ind + 2, k, v.as_str().unwrap_or(&v.to_string()).to_string());
                }
            }
        }
        let env = arr(c, "/env");
        if env.is_empty() {
            doc.field(ind, "Environment", "<none>");
        } else {
            doc.field(ind, "Environment", "");
            for e in env {
                let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
                    v.to_string()
                } else if let Some(r) = e.pointer("/valueFrom/configMapKeyRef") {
                    format!(
                        "<set to the key '{}' of config map '{}'>",
                        s(r, "/key"),
                        s(r, "/name")
                    )
                } else if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
                    format!(
                        "<set to the key '{}' in secret '{}'>",
                        s(r, "/key"),
                        s(r, "/name")
                    )
                } else {
                    String::new()
                };
                doc.field(ind + 2, s(e, "/name"), value);
            }
        }
    }
}

fn pod_template(doc: &mut Doc, template: &Value) {
    doc.field(0, "Pod Template", "");
    doc.map(2, "Labels", template.pointer("/metadata/labels"), "=");
    if let Some(spec) = template.get("spec") {
        containers(doc, 2, spec, &[]);
    }
}

fn yaml_section(doc: &mut Doc, key: &str, value: Option<&Value>) {
    let Some(v) = value.filter(|v| !v.is_null()) else {
        return;
    };
    doc.field(0, key, "");
    for line in output::to_yaml(v).lines() {
        doc.text(format!("  {line}"));
    }
}

/// The describe text of `obj`.
fn render(r: &Resource, obj: &Value, events: &[Value], now: Timestamp) -> String {
    let mut doc = Doc::default();
    doc.field(0, "Name", meta_str(obj, "name").unwrap_or(""));
    if r.namespaced {
        doc.field(0, "Namespace", meta_str(obj, "namespace").unwrap_or(""));
    }
    doc.map(0, "Labels", obj.pointer("/metadata/labels"), "=");
    doc.map(0, "Annotations", obj.pointer("/metadata/annotations"), ": ");
    if let Some(t) = timestamp(obj.pointer("/metadata/creationTimestamp")) {
        doc.field(
            0,
            "CreationTimestamp",
            t.strftime("%a, %d %b %Y %H:%M:%S %z").to_string(),
        );
    }
    if let Some(owner) = arr(obj, "/metadata/ownerReferences")
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
    {
        doc.field(
            0,
            "Controlled By",
            format!("{}/{}", s(owner, "/kind"), s(owner, "/name")),
        );
    }
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        doc.field(0, "Status", "Terminating");
    }
    match (r.group, r.kind) {
        ("", "Pod") => {
            doc.field(0, "Node", or_none(s(obj, "/spec/nodeName")));
            doc.field(0, "Status", output::pod_status(obj));
            doc.field(0, "IP", or_none(s(obj, "/status/podIP")));
            if let Some(spec) = obj.get("spec") {
                containers(&mut doc, 0, spec, arr(obj, "/status/containerStatuses"));
            }
            conditions(&mut doc, obj, false);
        }
        ("apps", "Deployment") => {
            doc.field(
                0,
                "Selector",
                output::selector_string(obj.pointer("/spec/selector")),
            );
            let desired = obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            doc.field(
                0,
                "Replicas",
                format!(
                    "{desired} desired | {} updated | {} total | {} available | {} unavailable",
                    i(obj, "/status/updatedReplicas"),
                    i(obj, "/status/replicas"),
                    i(obj, "/status/availableReplicas"),
                    i(obj, "/status/unavailableReplicas"),
                ),
            );
            let strategy = match s(obj, "/spec/strategy/type") {
                "" => "RollingUpdate",
                x => x,
            };
            doc.field(0, "StrategyType", strategy);
            doc.field(
                0,
                "MinReadySeconds",
                i(obj, "/spec/minReadySeconds").to_string(),
            );
            if let Some(t) = obj.pointer("/spec/template") {
                pod_template(&mut doc, t);
            }
            conditions(&mut doc, obj, true);
        }
        ("apps", "ReplicaSet" | "DaemonSet") | ("batch", "Job") => {
            doc.field(
                0,
                "Selector",
                output::selector_string(obj.pointer("/spec/selector")),
            );
            if r.kind == "ReplicaSet" {
                doc.field(
                    0,
                    "Replicas",
                    format!(
                        "{} current / {} desired",
                        i(obj, "/status/replicas"),
                        obj.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    ),
                );
            }
            if let Some(t) = obj.pointer("/spec/template") {
                pod_template(&mut doc, t);
            }
            conditions(&mut doc, obj, true);
        }
        ("", "Service") => {
            doc.map(0, "Selector", obj.pointer("/spec/selector"), "=");
            doc.field(
                0,
                "Type",
                match s(obj, "/spec/type") {
                    "" => "ClusterIP",
                    x => x,
                },
            );
            doc.field(0, "IP", or_none(s(obj, "/spec/clusterIP")));
            for p in arr(obj, "/spec/ports") {
                let proto = match s(p, "/protocol") {
                    "" => "TCP",
                    x => x,
                };
                let pname = match s(p, "/name") {
                    "" => "<unset>",
                    x => x,
                };
                doc.field(0, "Port", format!("{pname}  {}/{proto}", i(p, "/port")));
                let target = match p.get("targetPort") {
                    Some(Value::String(t)) => t.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => i(p, "/port").to_string(),
                };
                doc.field(0, "TargetPort", format!("{target}/{proto}"));
                if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
                    doc.field(0, "NodePort", format!("{pname}  {np}/{proto}"));
                }
            }
        }
        ("", "ConfigMap") => {
            doc.text("");
            doc.text("Data");
            doc.text("====");
            if let Some(data) = obj.get("data").and_then(Value::as_object) {
                for (k, v) in data {
                    doc.text(format!("{k}:"));
                    doc.text("----");
                    doc.text(v.as_str().unwrap_or_default().to_string());
                    doc.text("");
                }
            }
            doc.text("BinaryData");
            doc.text("====");
            if let Some(data) = obj.get("binaryData").and_then(Value::as_object) {
                for (k, v) in data {
                    let n = v.as_str().map_or(0, |b| b.len() * 3 / 4);
                    doc.text(format!("{k}: {n} bytes"));
                }
            }
            doc.text("");
        }
        ("", "Secret") => {
            doc.text("");
            doc.field(
                0,
                "Type",
                match s(obj, "/type") {
                    "" => "Opaque",
                    x => x,
                },
            );
            doc.text("");
            doc.text("Data");
            doc.text("====");
            if let Some(data) = obj.get("data").and_then(Value::as_object) {
                for (k, v) in data {
                    let n = v.as_str().map_or(0, |b| {
                        let pad = b.chars().rev().take_while(|c| *c == '=').count();
                        (b.len() / 4) * 3 - pad.min(2)
                    });
                    doc.field(0, k, format!("{n} bytes"));
                }
            }
        }
        ("", "Namespace") => {
            doc.field(
                0,
                "Status",
                match s(obj, "/status/phase") {
                    "" => "Active",
                    x => x,
                },
            );
        }
        ("", "Node") => {
            conditions(&mut doc, obj, true);
            doc.field(0, "Addresses", "");
            for a in arr(obj, "/status/addresses") {
                doc.field(2, s(a, "/type"), s(a, "/address"));
            }
            if let Some(info) = obj.pointer("/status/nodeInfo").and_then(Value::as_object) {
                doc.field(0, "System Info", "");
                for (k, v) in info {
                    doc.field(2, k, v.as_str().unwrap_or_default().to_string());
                }
            }
        }
        _ => {
            yaml_section(&mut doc, "Spec", obj.get("spec"));
            yaml_section(&mut doc, "Status", obj.get("status"));
        }
    }
    if events.is_empty() {
        doc.field(0, "Events", "<none>");
    } else {
        doc.field(0, "Events", "");
        let rows = events
            .iter()
            .map(|e| {
                let last = event_time(e);
                let first = timestamp(e.pointer("/firstTimestamp")).or(last);
                let count = i(e, "/count");
                let age = match (last, first) {
                    (Some(l), Some(f)) if count > 1 => format!(
                        "{} (x{count} over {})",
                        human_duration(now.as_second() - l.as_second()),
                        human_duration(now.as_second() - f.as_second())
                    ),
                    (Some(l), _) => human_duration(now.as_second() - l.as_second()),
                    _ => "<unknown>".into(),
                };
                let from = [
                    "/source/component",
                    "/reportingComponent",
                    "/reportingController",
                ]
                .iter()
                .map(|p| s(e, p))
                .find(|x| !x.is_empty())
                .unwrap_or("");
                vec![
                    s(e, "/type").to_string(),
                    s(e, "/reason").to_string(),
                    age,
                    from.to_string(),
                    s(e, "/message").trim().to_string(),
                ]
            })
            .collect();
        sub_table(
            &mut doc,
            &["Type", "Reason", "Age", "From", "Message"],
            rows,
        );
    }
    doc.render()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_with_events() {
        let now: Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        let d = json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "x"},
                         "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "main", "image": "file:///w.wasm"}]}}},
            "status": {"conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]},
        });
        let ev = json!({"type": "Normal", "reason": "ScalingReplicaSet", "message": "Scaled up",
                        "source": {"component": "deployment-controller"},
                        "lastTimestamp": "2024-01-01T00:09:00Z", "firstTimestamp": "2024-01-01T00:05:00Z", "count": 2});
        let text = render(&registry::DEPLOYMENT, &d, &[ev], now);
        assert!(text.starts_with("Name:               web\nNamespace:          default\nLabels:             app=web\n                    tier=x\nAnnotations:        <none>\n"), "{text}");
        assert!(
            text.contains("CreationTimestamp:  Mon, 01 Jan 2024 00:00:00 +0000"),
            "{text}"
        );
        assert!(
            text.contains(
                "Replicas:           2 desired | 0 updated | 0 total | 0 available | 0 unavailable"
            ),
            "{text}"
        );
        assert!(
            text.contains("      Image:        file:///w.wasm"),
            "{text}"
        );
        assert!(
            text.contains("  Available  True    MinimumReplicasAvailable"),
            "{text}"
        );
        assert!(
            text.contains(
                "  Normal  ScalingReplicaSet  60s (x2 over 5m)  deployment-controller  Scaled up"
            ),
            "{text}"
        );
    }

    #[test]
    fn configmap_and_no_events() {
        let cm = json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"k": "v"}});
        let text = render(&registry::CONFIG_MAP, &cm, &[], Timestamp::now());
        assert!(text.contains("Data\n====\nk:\n----\nv\n"), "{text}");
        assert!(text.ends_with("Events:       <none>\n"), "{text}");
    }
}
