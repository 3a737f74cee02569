//! Small accessors over objects held as JSON, which is how the server stores and serves
//! them: the typed view (skiff-api) is used for admission, the JSON for everything else.

use serde_json::{Map, Value};

pub fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata`, created if missing (or replaced if it is not an object).
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = match obj {
        Value::Object(map) => map,
        _ => unreachable_object(),
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable_object(),
    }
}

// Both call sites have just made the value an object.
fn unreachable_object() -> ! {
    unreachable!("value was made an object above")
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    metadata(obj)?.get(field)?.as_str()
}

pub fn name(obj: &Value) -> Option<&str> {
    meta_str(obj, "name")
}

pub fn generate_name(obj: &Value) -> Option<&str> {
    meta_str(obj, "generateName")
}

pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace")
}

pub fn uid(obj: &Value) -> Option<&str> {
    meta_str(obj, "uid")
}

pub fn resource_version(obj: &Value) -> Option<&str> {
    meta_str(obj, "resourceVersion")
}

pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    meta_str(obj, "deletionTimestamp")
}

pub fn generation(obj: &Value) -> i64 {
    metadata(obj)
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

pub fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    metadata(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    metadata(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn set_finalizers(obj: &mut Value, finalizers: Vec<String>) {
    let meta = metadata_mut(obj);
    if finalizers.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert(
            "finalizers".into(),
            Value::Array(finalizers.into_iter().map(Value::String).collect()),
        );
    }
}

pub fn set_resource_version(obj: &mut Value, revision: i64) {
    metadata_mut(obj).insert(
        "resourceVersion".into(),
        Value::String(revision.to_string()),
    );
}

/// Parses a resourceVersion string: a store revision. Empty means "none".
pub fn parse_resource_version(rv: &str) -> Option<i64> {
    rv.parse::<i64>().ok().filter(|r| *r >= 0)
}

/// Now, as Kubernetes writes timestamps: RFC 3339 in UTC with whole seconds.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A random RFC 4122 version-4 UUID, as Kubernetes uses for `metadata.uid`.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

/// A name for `generateName`: the prefix plus 5 random characters from Kubernetes'
/// alphabet (no vowels, no look-alikes).
pub fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    // Kubernetes trims the prefix so that the result fits 63 characters.
    let max_prefix = 63 - suffix.len();
    let prefix = if prefix.len() > max_prefix {
        &prefix[..max_prefix]
    } else {
        prefix
    };
    format!("{prefix}{suffix}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn uid_is_v4() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn metadata_mut_creates_and_repairs() {
        let mut v = json!({"kind": "Pod"});
        set_resource_version(&mut v, 7);
        assert_eq!(resource_version(&v), Some("7"));
        let mut bad = json!({"metadata": 3});
        set_finalizers(&mut bad, vec!["a".into()]);
        assert_eq!(finalizers(&bad), vec!["a".to_string()]);
        set_finalizers(&mut bad, vec![]);
        assert!(metadata(&bad).unwrap().get("finalizers").is_none());
    }

    #[test]
    fn generated_names_fit() {
        let n = generated_name(&"x".repeat(80));
        assert_eq!(n.len(), 63);
        assert!(generated_name("web-").starts_with("web-"));
    }

    #[test]
    fn timestamps_have_whole_seconds() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
    }
}
