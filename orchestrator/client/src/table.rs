//! Server-side printing: a `meta.k8s.io/v1` [`Table`] is what the server answers to a get,
//! list or watch asked with [`TABLE_ACCEPT`]: column definitions (priority 0 for the
//! normal columns, 1 for `-o wide`) and one row of cells per object, each row carrying the
//! object's metadata (a PartialObjectMetadata) or, with [`IncludeObject::Object`], the
//! whole object. kubectl prints these cells as they are; so does `skiff get`.
//!
//! Watch events asked for as Tables carry one-row Tables, with the column definitions only
//! in the first event; BOOKMARK and ERROR events stay plain objects.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `Accept` of a Table request, falling back to plain JSON as kubectl's does.
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// How much of each object a Table row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A PartialObjectMetadata: the object's `metadata` (the server's default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// The `includeObject` query value.
    pub fn as_str(self) -> &'static str {
        match self {
            IncludeObject::None => "None",
            IncludeObject::Metadata => "Metadata",
            IncludeObject::Object => "Object",
        }
    }
}

/// A `meta.k8s.io/v1` Table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    /// ListMeta: `resourceVersion`, `continue`.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Empty in watch events after the first.
    #[serde(default)]
    pub column_definitions: Vec<TableColumn>,
    #[serde(default)]
    pub rows: Vec<TableRow>,
}

/// A TableColumnDefinition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableColumn {
    pub name: String,
    /// `string`, `integer`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `name` for the column naming the object.
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub description: String,
    /// 0: always printed; more: only with `-o wide`.
    #[serde(default)]
    pub priority: i32,
}

/// A TableRow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableRow {
    #[serde(default)]
    pub cells: Vec<Value>,
    /// A PartialObjectMetadata or the object, per `includeObject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
}

impl Table {
    /// A Table from an answer; anything but `kind: Table` (a server that ignored the
    /// `Accept`) is an error rather than an empty table.
    pub fn from_value(v: Value) -> std::result::Result<Table, serde_json::Error> {
        match v.get("kind").and_then(Value::as_str) {
            Some("Table") => serde_json::from_value(v),
            other => Err(<serde_json::Error as serde::de::Error>::custom(format!(
                "expected a meta.k8s.io Table, got kind {}",
                other.unwrap_or("(none)")
            ))),
        }
    }

    /// `metadata.resourceVersion`, if set.
    pub fn resource_version(&self) -> Option<&str> {
        self.metadata
            .get("resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
}

impl TableRow {
    fn meta(&self, field: &str) -> Option<&Value> {
        self.object.as_ref()?.get("metadata")?.get(field)
    }

    fn meta_str(&self, field: &str) -> Option<&str> {
        self.meta(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The object's name (from the row's object).
    pub fn name(&self) -> Option<&str> {
        self.meta_str("name")
    }

    /// The object's namespace (from the row's object).
    pub fn namespace(&self) -> Option<&str> {
        self.meta_str("namespace")
    }

    /// The object's `resourceVersion` (from the row's object).
    pub fn resource_version(&self) -> Option<&str> {
        self.meta_str("resourceVersion")
    }

    /// The object's labels as kubectl's `--show-labels` prints them: `k=v,…` sorted by
    /// key, or `<none>`.
    pub fn labels_text(&self) -> String {
        let Some(labels) = self.meta("labels").and_then(Value::as_object) else {
            return "<none>".into();
        };
        let mut pairs: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        if pairs.is_empty() {
            return "<none>".into();
        }
        pairs.sort_unstable();
        pairs.join(",")
    }
}

/// A cell as kubectl prints it: strings up to their first line break (then `...`), other
/// values in their plain form (`null` as `<nil>`).
pub fn cell_text(cell: &Value) -> String {
    match cell {
        Value::String(s) => match s.find(['\n', '\r', '\x0c']) {
            Some(i) => format!("{}...", &s[..i]),
            None => s.clone(),
        },
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_decode_and_rows_know_their_object() {
        let v = json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": "7"},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0},
                {"name": "IP", "type": "string", "format": "", "description": "", "priority": 1}],
            "rows": [{"cells": ["web", "10.0.0.1"], "object": {
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "6",
                             "labels": {"tier": "a", "app": "web"}}}},
                     {"cells": ["bare", "<none>"]}],
        });
        let t = Table::from_value(v).unwrap();
        assert_eq!(t.resource_version(), Some("7"));
        assert_eq!(t.column_definitions[0].format, "name");
        assert_eq!(t.column_definitions[1].priority, 1);
        let row = &t.rows[0];
        assert_eq!(row.name(), Some("web"));
        assert_eq!(row.namespace(), Some("ns"));
        assert_eq!(row.resource_version(), Some("6"));
        assert_eq!(row.labels_text(), "app=web,tier=a");
        assert_eq!(t.rows[1].name(), None);
        assert_eq!(t.rows[1].labels_text(), "<none>");
        // A watch event after the first: no columns.
        let later = Table::from_value(json!({"kind": "Table", "rows": []})).unwrap();
        assert!(later.column_definitions.is_empty());
    }

    #[test]
    fn answers_that_are_not_tables_are_refused() {
        let e = Table::from_value(json!({"kind": "ConfigMap", "metadata": {}})).unwrap_err();
        assert!(e.to_string().contains("got kind ConfigMap"), "{e}");
        assert!(Table::from_value(json!([1])).is_err());
    }

    #[test]
    fn cells_print_like_kubectl() {
        assert_eq!(cell_text(&json!("Running")), "Running");
        assert_eq!(cell_text(&json!(3)), "3");
        assert_eq!(cell_text(&json!(true)), "true");
        assert_eq!(cell_text(&json!(null)), "<nil>");
        assert_eq!(cell_text(&json!("two\nlines")), "two...");
        assert_eq!(IncludeObject::default().as_str(), "Metadata");
    }
}
