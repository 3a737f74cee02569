//! Printing: kubectl-aligned tables (the cells come from the server's Tables, see
//! `get.rs`, or from `rollout history`), the `-o yaml|json|name` formats, and the helpers
//! `describe` and `rollout` share (ages, selectors, a pod's status).

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
    fn json_is_indented_by_four() {
        assert_eq!(
            to_json(&json!({"a": [1]})),
            "{\n    \"a\": [\n        1\n    ]\n}"
        );
    }
}
