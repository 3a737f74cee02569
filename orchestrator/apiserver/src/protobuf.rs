//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! kubectl's `create configmap|secret|namespace|serviceaccount|…` generators send the
//! object in Kubernetes' protobuf encoding rather than JSON. This module reads that
//! encoding for the few kinds those commands produce and turns it into the JSON object
//! the JSON path would have received, so admission and storage see no difference.
//!
//! The body is the 4 magic bytes `k8s\0` followed by a `runtime.Unknown` message:
//!
//! ```text
//! Unknown  { 1 typeMeta: TypeMeta, 2 raw: bytes, 3 contentEncoding: string, 4 contentType: string }
//! TypeMeta { 1 apiVersion: string, 2 kind: string }
//! ```
//!
//! `raw` is the object's own message, as in k8s.io/api's `generated.proto`. The wire
//! reader is hand-written and bounds-checked: garbage gives an error, never a panic,
//! and fields this module does not know (of any wire type) are skipped.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The media type of a Kubernetes protobuf body, without parameters.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8; 4] = b"k8s\0";

/// How deeply groups (wire types 3/4) of unknown fields may nest before the body is
/// rejected.
const MAX_GROUP_DEPTH: usize = 32;

/// The largest field number protobuf allows (2^29 - 1).
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// Decodes a Kubernetes protobuf body into the JSON object the JSON path would get.
///
/// Malformed bodies are a 400; well-formed bodies of a kind this module does not decode
/// are a 415 that names the kind and says how to send it instead.
pub fn decode(bytes: &[u8]) -> Result<Value, ApiError> {
    let body = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| {
        malformed(WireError::new(
            "it does not start with the Kubernetes protobuf magic bytes \"k8s\\0\"",
        ))
    })?;
    let envelope = Envelope::decode(body).map_err(malformed)?;
    if envelope.kind.is_empty() {
        return Err(malformed(WireError::new(
            "the runtime.Unknown envelope names no kind",
        )));
    }
    let decoded = match (envelope.api_version.as_str(), envelope.kind.as_str()) {
        ("v1", "ConfigMap") => config_map(envelope.raw),
        ("v1", "Secret") => secret(envelope.raw),
        ("v1", "Namespace") => namespace(envelope.raw),
        ("v1", "ServiceAccount") => service_account(envelope.raw),
        (api_version, kind) => return Err(unsupported_kind(api_version, kind)),
    };
    let mut object = decoded.map_err(|e| {
        malformed(e.context(&format!("{} {}", envelope.api_version, envelope.kind)))
    })?;
    object.insert("apiVersion".into(), envelope.api_version.into());
    object.insert("kind".into(), envelope.kind.into());
    Ok(Value::Object(object))
}

fn malformed(e: WireError) -> ApiError {
    ApiError::bad_request(format!(
        "the request body is not valid Kubernetes protobuf ({MEDIA_TYPE}): {}",
        e.0
    ))
}

fn unsupported_kind(api_version: &str, kind: &str) -> ApiError {
    let what = if api_version.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({api_version})")
    };
    ApiError::unsupported_media_type(format!(
        "Skiff cannot decode a {what} from a Kubernetes protobuf body ({MEDIA_TYPE}); \
         it decodes protobuf only for v1 ConfigMap, Secret, Namespace and ServiceAccount. \
         Send the {kind} as JSON or YAML instead, e.g. \
         `kubectl create ... --dry-run=client -o yaml | kubectl apply -f -`"
    ))
}

/// A decoding failure, with the path of fields that led to it.
#[derive(Debug)]
struct WireError(String);

impl WireError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// Prefixes the field (or object) the error happened in.
    fn context(self, what: &str) -> Self {
        Self(format!("{what}: {}", self.0))
    }
}

type Res<T> = Result<T, WireError>;

// ---------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------

/// One field's value as it appears on the wire.
#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    /// A group (wire types 3..4), already skipped.
    Group,
    Fixed32,
}

impl Wire<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Fixed64 => "64-bit",
            Wire::Bytes(_) => "length-delimited",
            Wire::Group => "group",
            Wire::Fixed32 => "32-bit",
        }
    }
}

/// Reads the fields of one message, in order.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| {
                WireError::new(format!(
                    "truncated: {n} bytes needed at offset {}, {} left",
                    self.pos,
                    self.remaining()
                ))
            })?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| WireError::new(format!("truncated at offset {}", self.pos)))?;
        self.pos = end;
        Ok(out)
    }

    fn varint(&mut self) -> Res<u64> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10u32 {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| WireError::new(format!("truncated varint at offset {start}")))?;
            self.pos += 1;
            // The tenth byte holds only the 64th bit.
            if i == 9 && byte > 1 {
                return Err(WireError::new(format!(
                    "varint at offset {start} overflows 64 bits"
                )));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::new(format!(
            "varint at offset {start} is longer than 10 bytes"
        )))
    }

    /// A tag: (field number, wire type).
    fn tag(&mut self) -> Res<(u32, u8)> {
        let at = self.pos;
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(WireError::new(format!(
                "invalid field number {number} at offset {at}"
            )));
        }
        let number = u32::try_from(number)
            .map_err(|_| WireError::new(format!("invalid field number at offset {at}")))?;
        // The mask keeps the value below 8.
        let wire_type = u8::try_from(tag & 7).unwrap_or(u8::MAX);
        Ok((number, wire_type))
    }

    fn length_delimited(&mut self) -> Res<&'a [u8]> {
        let at = self.pos;
        let len = self.varint()?;
        let len = usize::try_from(len)
            .map_err(|_| WireError::new(format!("length {len} at offset {at} is too large")))?;
        self.take(len)
    }

    /// The next field, or `None` at the end of the message.
    fn next_field(&mut self) -> Res<Option<(u32, Wire<'a>)>> {
        if self.remaining() == 0 {
            return Ok(None);
        }
        let at = self.pos;
        let (number, wire_type) = self.tag()?;
        let value = match wire_type {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed64
            }
            2 => Wire::Bytes(self.length_delimited()?),
            3 => {
                self.skip_group(number)?;
                Wire::Group
            }
            4 => {
                return Err(WireError::new(format!(
                    "end of group {number} at offset {at} without a start"
                )));
            }
            5 => {
                self.take(4)?;
                Wire::Fixed32
            }
            other => {
                return Err(WireError::new(format!(
                    "invalid wire type {other} for field {number} at offset {at}"
                )));
            }
        };
        Ok(Some((number, value)))
    }

    /// Skips the rest of a group whose start tag (field `number`) was just read.
    fn skip_group(&mut self, number: u32) -> Res<()> {
        let mut open = vec![number];
        while let Some(&innermost) = open.last() {
            let at = self.pos;
            let (n, wire_type) = self.tag().map_err(|e| e.context("in a group"))?;
            match wire_type {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.take(8)?;
                }
                2 => {
                    self.length_delimited()?;
                }
                3 => {
                    if open.len() >= MAX_GROUP_DEPTH {
                        return Err(WireError::new(format!(
                            "groups nested deeper than {MAX_GROUP_DEPTH} at offset {at}"
                        )));
                    }
                    open.push(n);
                }
                4 => {
                    if n != innermost {
                        return Err(WireError::new(format!(
                            "end of group {n} at offset {at} inside group {innermost}"
                        )));
                    }
                    open.pop();
                }
                5 => {
                    self.take(4)?;
                }
                other => {
                    return Err(WireError::new(format!(
                        "invalid wire type {other} for field {n} at offset {at}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Visits each field of the message in `buf`; `f` is given the field number and its
/// value, and errors are labelled with the field number.
fn each_field<'a>(buf: &'a [u8], mut f: impl FnMut(u32, Wire<'a>) -> Res<()>) -> Res<()> {
    let mut reader = Reader::new(buf);
    while let Some((number, value)) = reader.next_field()? {
        f(number, value)?;
    }
    Ok(())
}

fn wrong_type(name: &str, want: &str, got: Wire<'_>) -> WireError {
    WireError::new(format!(
        "{name}: expected a {want} field, got a {} one",
        got.type_name()
    ))
}

fn bytes<'a>(name: &str, value: Wire<'a>) -> Res<&'a [u8]> {
    match value {
        Wire::Bytes(b) => Ok(b),
        other => Err(wrong_type(name, "length-delimited", other)),
    }
}

fn string(name: &str, value: Wire<'_>) -> Res<String> {
    let b = bytes(name, value)?;
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| WireError::new(format!("{name}: not valid UTF-8")))
}

fn boolean(name: &str, value: Wire<'_>) -> Res<bool> {
    match value {
        Wire::Varint(v) => Ok(v != 0),
        other => Err(wrong_type(name, "varint", other)),
    }
}

fn message<'a>(name: &str, value: Wire<'a>) -> Res<&'a [u8]> {
    bytes(name, value)
}

fn base64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// One entry of a protobuf map: a message `{1 key, 2 value}`; either may be absent.
fn map_entry<'a>(name: &str, value: Wire<'a>) -> Res<(String, &'a [u8])> {
    let entry = message(name, value)?;
    let mut key = String::new();
    let mut val: &[u8] = &[];
    each_field(entry, |n, v| {
        match n {
            1 => key = string("key", v)?,
            2 => val = bytes("value", v)?,
            _ => {}
        }
        Ok(())
    })
    .map_err(|e| e.context(name))?;
    Ok((key, val))
}

/// Adds an entry of a `map<string, string>` field to `map`.
fn string_entry(map: &mut Map<String, Value>, name: &str, value: Wire<'_>) -> Res<()> {
    let (key, val) = map_entry(name, value)?;
    let val = std::str::from_utf8(val)
        .map_err(|_| WireError::new(format!("{name}[{key:?}]: not valid UTF-8")))?;
    map.insert(key, Value::String(val.to_owned()));
    Ok(())
}

/// Adds an entry of a `map<string, bytes>` field to `map`, base64-encoded as in JSON.
fn bytes_entry(map: &mut Map<String, Value>, name: &str, value: Wire<'_>) -> Res<()> {
    let (key, val) = map_entry(name, value)?;
    map.insert(key, Value::String(base64(val)));
    Ok(())
}

/// Inserts `value` under `key` unless it is empty (`omitempty` in the Go types).
fn insert_nonempty(obj: &mut Map<String, Value>, key: &str, value: String) {
    if !value.is_empty() {
        obj.insert(key.into(), Value::String(value));
    }
}

fn insert_map(obj: &mut Map<String, Value>, key: &str, map: Map<String, Value>) {
    if !map.is_empty() {
        obj.insert(key.into(), Value::Object(map));
    }
}

fn insert_list(obj: &mut Map<String, Value>, key: &str, list: Vec<Value>) {
    if !list.is_empty() {
        obj.insert(key.into(), Value::Array(list));
    }
}

// ---------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------

/// The `runtime.Unknown` envelope.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
}

impl<'a> Envelope<'a> {
    fn decode(buf: &'a [u8]) -> Res<Self> {
        let mut out = Envelope {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
        };
        let mut content_encoding = String::new();
        let mut content_type = String::new();
        each_field(buf, |n, v| {
            match n {
                1 => {
                    let type_meta = message("typeMeta", v)?;
                    each_field(type_meta, |n, v| {
                        match n {
                            1 => out.api_version = string("apiVersion", v)?,
                            2 => out.kind = string("kind", v)?,
                            _ => {}
                        }
                        Ok(())
                    })
                    .map_err(|e| e.context("typeMeta"))?;
                }
                2 => out.raw = bytes("raw", v)?,
                3 => content_encoding = string("contentEncoding", v)?,
                4 => content_type = string("contentType", v)?,
                _ => {}
            }
            Ok(())
        })?;
        if !content_encoding.is_empty() {
            return Err(WireError::new(format!(
                "content encoding {content_encoding:?} is not supported"
            )));
        }
        if !content_type.is_empty() && content_type != MEDIA_TYPE {
            return Err(WireError::new(format!(
                "the envelope's raw object is {content_type:?}, not {MEDIA_TYPE}"
            )));
        }
        Ok(out)
    }
}

/// `metav1.ObjectMeta`: the fields a client sets, plus `resourceVersion` (the
/// precondition of an update). Server-set fields (uid, creationTimestamp, generation,
/// managedFields, …) are skipped; the server fills them itself.
fn object_meta(buf: &[u8]) -> Res<Map<String, Value>> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut owners = Vec::new();
    let mut finalizers = Vec::new();
    each_field(buf, |n, v| {
        match n {
            1 => insert_nonempty(&mut meta, "name", string("name", v)?),
            2 => insert_nonempty(&mut meta, "generateName", string("generateName", v)?),
            3 => insert_nonempty(&mut meta, "namespace", string("namespace", v)?),
            6 => insert_nonempty(&mut meta, "resourceVersion", string("resourceVersion", v)?),
            11 => string_entry(&mut labels, "labels", v)?,
            12 => string_entry(&mut annotations, "annotations", v)?,
            13 => owners.push(
                owner_reference(message("ownerReferences", v)?)
                    .map_err(|e| e.context(&format!("ownerReferences[{}]", owners.len())))?,
            ),
            14 => finalizers.push(Value::String(string("finalizers", v)?)),
            _ => {}
        }
        Ok(())
    })?;
    insert_map(&mut meta, "labels", labels);
    insert_map(&mut meta, "annotations", annotations);
    insert_list(&mut meta, "ownerReferences", owners);
    insert_list(&mut meta, "finalizers", finalizers);
    Ok(meta)
}

/// `metav1.OwnerReference {5 apiVersion, 1 kind, 3 name, 4 uid, 6 controller,
/// 7 blockOwnerDeletion}`.
fn owner_reference(buf: &[u8]) -> Res<Value> {
    let mut out = Map::new();
    each_field(buf, |n, v| {
        let (key, value) = match n {
            1 => ("kind", Value::String(string("kind", v)?)),
            3 => ("name", Value::String(string("name", v)?)),
            4 => ("uid", Value::String(string("uid", v)?)),
            5 => ("apiVersion", Value::String(string("apiVersion", v)?)),
            6 => ("controller", Value::Bool(boolean("controller", v)?)),
            7 => (
                "blockOwnerDeletion",
                Value::Bool(boolean("blockOwnerDeletion", v)?),
            ),
            _ => return Ok(()),
        };
        out.insert(key.into(), value);
        Ok(())
    })?;
    Ok(Value::Object(out))
}

/// The `metadata` field (1) shared by every object; always present in the output.
fn metadata(obj: &mut Map<String, Value>, value: Wire<'_>) -> Res<()> {
    let meta = object_meta(message("metadata", value)?).map_err(|e| e.context("metadata"))?;
    obj.insert("metadata".into(), Value::Object(meta));
    Ok(())
}

fn new_object() -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("metadata".into(), Value::Object(Map::new()));
    obj
}

/// `core/v1 ConfigMap {1 metadata, 2 data map<string,string>, 3 binaryData
/// map<string,bytes>, 4 immutable}`.
fn config_map(buf: &[u8]) -> Res<Map<String, Value>> {
    let mut obj = new_object();
    let mut data = Map::new();
    let mut binary = Map::new();
    each_field(buf, |n, v| {
        match n {
            1 => metadata(&mut obj, v)?,
            2 => string_entry(&mut data, "data", v)?,
            3 => bytes_entry(&mut binary, "binaryData", v)?,
            4 => {
                obj.insert("immutable".into(), boolean("immutable", v)?.into());
            }
            _ => {}
        }
        Ok(())
    })?;
    insert_map(&mut obj, "data", data);
    insert_map(&mut obj, "binaryData", binary);
    Ok(obj)
}

/// `core/v1 Secret {1 metadata, 2 data map<string,bytes>, 3 type, 4 stringData
/// map<string,string>, 5 immutable}`.
fn secret(buf: &[u8]) -> Res<Map<String, Value>> {
    let mut obj = new_object();
    let mut data = Map::new();
    let mut string_data = Map::new();
    each_field(buf, |n, v| {
        match n {
            1 => metadata(&mut obj, v)?,
            2 => bytes_entry(&mut data, "data", v)?,
            3 => insert_nonempty(&mut obj, "type", string("type", v)?),
            4 => string_entry(&mut string_data, "stringData", v)?,
            5 => {
                obj.insert("immutable".into(), boolean("immutable", v)?.into());
            }
            _ => {}
        }
        Ok(())
    })?;
    insert_map(&mut obj, "data", data);
    insert_map(&mut obj, "stringData", string_data);
    Ok(obj)
}

/// `core/v1 Namespace {1 metadata, 2 spec {1 finalizers}, 3 status {1 phase,
/// 2 conditions}}`. The server owns the status (conditions are not decoded).
fn namespace(buf: &[u8]) -> Res<Map<String, Value>> {
    let mut obj = new_object();
    each_field(buf, |n, v| {
        match n {
            1 => metadata(&mut obj, v)?,
            2 => {
                let mut finalizers = Vec::new();
                each_field(message("spec", v)?, |n, v| {
                    if n == 1 {
                        finalizers.push(Value::String(string("finalizers", v)?));
                    }
                    Ok(())
                })
                .map_err(|e| e.context("spec"))?;
                let mut spec = Map::new();
                insert_list(&mut spec, "finalizers", finalizers);
                obj.insert("spec".into(), Value::Object(spec));
            }
            3 => {
                let mut status = Map::new();
                each_field(message("status", v)?, |n, v| {
                    if n == 1 {
                        insert_nonempty(&mut status, "phase", string("phase", v)?);
                    }
                    Ok(())
                })
                .map_err(|e| e.context("status"))?;
                obj.insert("status".into(), Value::Object(status));
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(obj)
}

/// `core/v1 ServiceAccount {1 metadata, 2 secrets []ObjectReference, 3 imagePullSecrets
/// []LocalObjectReference, 4 automountServiceAccountToken}`.
fn service_account(buf: &[u8]) -> Res<Map<String, Value>> {
    let mut obj = new_object();
    let mut secrets = Vec::new();
    let mut pull_secrets = Vec::new();
    each_field(buf, |n, v| {
        match n {
            1 => metadata(&mut obj, v)?,
            2 => secrets.push(
                object_reference(message("secrets", v)?)
                    .map_err(|e| e.context(&format!("secrets[{}]", secrets.len())))?,
            ),
            3 => {
                let mut reference = Map::new();
                each_field(message("imagePullSecrets", v)?, |n, v| {
                    if n == 1 {
                        reference.insert("name".into(), Value::String(string("name", v)?));
                    }
                    Ok(())
                })
                .map_err(|e| e.context(&format!("imagePullSecrets[{}]", pull_secrets.len())))?;
                pull_secrets.push(Value::Object(reference));
            }
            4 => {
                obj.insert(
                    "automountServiceAccountToken".into(),
                    boolean("automountServiceAccountToken", v)?.into(),
                );
            }
            _ => {}
        }
        Ok(())
    })?;
    insert_list(&mut obj, "secrets", secrets);
    insert_list(&mut obj, "imagePullSecrets", pull_secrets);
    Ok(obj)
}

/// `core/v1 ObjectReference {1 kind, 2 namespace, 3 name, 4 uid, 5 apiVersion,
/// 6 resourceVersion, 7 fieldPath}`, all `omitempty`.
fn object_reference(buf: &[u8]) -> Res<Value> {
    let mut out = Map::new();
    each_field(buf, |n, v| {
        let key = match n {
            1 => "kind",
            2 => "namespace",
            3 => "name",
            4 => "uid",
            5 => "apiVersion",
            6 => "resourceVersion",
            7 => "fieldPath",
            _ => return Ok(()),
        };
        insert_nonempty(&mut out, key, string(key, v)?);
        Ok(())
    })?;
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http::StatusCode;
    use serde_json::json;

    use super::*;

    // A tiny protobuf encoder for the fixtures.

    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn tag(field: u32, wire_type: u8) -> Vec<u8> {
        varint((u64::from(field) << 3) | u64::from(wire_type))
    }

    fn len_field(field: u32, data: &[u8]) -> Vec<u8> {
        let mut out = tag(field, 2);
        out.extend(varint(data.len() as u64));
        out.extend_from_slice(data);
        out
    }

    fn str_field(field: u32, s: &str) -> Vec<u8> {
        len_field(field, s.as_bytes())
    }

    fn varint_field(field: u32, v: u64) -> Vec<u8> {
        let mut out = tag(field, 0);
        out.extend(varint(v));
        out
    }

    fn entry(field: u32, key: &str, value: &[u8]) -> Vec<u8> {
        let mut e = str_field(1, key);
        e.extend(len_field(2, value));
        len_field(field, &e)
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = cat(&[str_field(1, api_version), str_field(2, kind)]);
        let mut out = MAGIC.to_vec();
        out.extend(len_field(1, &type_meta));
        out.extend(len_field(2, raw));
        // Go writes the empty strings too.
        out.extend(str_field(3, ""));
        out.extend(str_field(4, ""));
        out
    }

    /// ObjectMeta as Go marshals it for `kubectl create`: empty strings and a zero
    /// creationTimestamp included.
    fn meta(name: &str, extra: &[Vec<u8>]) -> Vec<u8> {
        let mut parts = vec![
            str_field(1, name),
            str_field(2, ""),
            str_field(3, ""),
            str_field(4, ""),
            str_field(5, ""),
            str_field(6, ""),
            varint_field(7, 0),
            len_field(8, &[]),
        ];
        parts.extend_from_slice(extra);
        cat(&parts)
    }

    /// Unknown fields of every wire type, including nested groups.
    fn unknown_fields() -> Vec<u8> {
        let mut out = varint_field(90, 7);
        out.extend(tag(91, 1));
        out.extend([1, 2, 3, 4, 5, 6, 7, 8]);
        out.extend(tag(92, 5));
        out.extend([1, 2, 3, 4]);
        out.extend(str_field(93, "ignored"));
        out.extend(tag(94, 3));
        out.extend(varint_field(1, 1));
        out.extend(tag(2, 3));
        out.extend(str_field(3, "inner"));
        out.extend(tag(2, 4));
        out.extend(tag(94, 4));
        out
    }

    #[test]
    fn config_map_with_data_binary_data_and_labels() {
        let m = meta(
            "cfg",
            &[
                str_field(3, "team-a"),
                entry(11, "app", b"web"),
                entry(11, "tier", b"front"),
                entry(12, "note", b"hi"),
            ],
        );
        let raw = cat(&[
            len_field(1, &m),
            entry(2, "a", b"1"),
            entry(2, "b", b"2"),
            entry(3, "bin", &[0, 0xff, 0x10]),
            varint_field(4, 1),
        ]);
        let got = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            got,
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "cfg",
                    "namespace": "team-a",
                    "labels": {"app": "web", "tier": "front"},
                    "annotations": {"note": "hi"},
                },
                "data": {"a": "1", "b": "2"},
                "binaryData": {"bin": "AP8Q"},
                "immutable": true,
            })
        );
    }

    #[test]
    fn secret_data_bytes_become_base64() {
        let raw = cat(&[
            len_field(1, &meta("s", &[])),
            entry(2, "token", b"abc"),
            entry(2, "bin", &[0xfb, 0xff]),
            str_field(3, "Opaque"),
            entry(4, "plain", b"text"),
            varint_field(5, 0),
        ]);
        let got = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(
            got,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s"},
                "data": {"token": "YWJj", "bin": "+/8="},
                "type": "Opaque",
                "stringData": {"plain": "text"},
                "immutable": false,
            })
        );
        // An empty type is left out, as `omitempty` does in JSON.
        let raw = cat(&[len_field(1, &meta("s", &[])), str_field(3, "")]);
        let got = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(got.get("type"), None);
    }

    #[test]
    fn namespace_with_finalizers() {
        let raw = cat(&[
            len_field(1, &meta("team-a", &[])),
            len_field(2, &cat(&[str_field(1, "kubernetes"), str_field(1, "x/y")])),
            len_field(3, &str_field(1, "")),
        ]);
        let got = decode(&envelope("v1", "Namespace", &raw)).unwrap();
        assert_eq!(
            got,
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "team-a"},
                "spec": {"finalizers": ["kubernetes", "x/y"]},
                "status": {},
            })
        );
    }

    #[test]
    fn service_account_with_references() {
        let raw = cat(&[
            len_field(1, &meta("robot", &[])),
            len_field(2, &cat(&[str_field(3, "tok"), str_field(2, "")])),
            len_field(3, &str_field(1, "pull")),
            varint_field(4, 0),
        ]);
        let got = decode(&envelope("v1", "ServiceAccount", &raw)).unwrap();
        assert_eq!(
            got,
            json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "robot"},
                "secrets": [{"name": "tok"}],
                "imagePullSecrets": [{"name": "pull"}],
                "automountServiceAccountToken": false,
            })
        );
    }

    #[test]
    fn object_meta_client_fields() {
        let owner = cat(&[
            str_field(1, "Deployment"),
            str_field(3, "web"),
            str_field(4, "u-1"),
            str_field(5, "apps/v1"),
            varint_field(6, 1),
        ]);
        let m = cat(&[
            str_field(2, "gen-"),
            str_field(5, "server-uid"),
            str_field(6, "42"),
            len_field(13, &owner),
            str_field(14, "a/b"),
            str_field(14, "c/d"),
            len_field(17, b"\x0a\x03mgr"),
        ]);
        let raw = len_field(1, &m);
        let got = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            got["metadata"],
            json!({
                "generateName": "gen-",
                "resourceVersion": "42",
                "ownerReferences": [{
                    "kind": "Deployment",
                    "name": "web",
                    "uid": "u-1",
                    "apiVersion": "apps/v1",
                    "controller": true,
                }],
                "finalizers": ["a/b", "c/d"],
            })
        );
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let m = cat(&[unknown_fields(), str_field(1, "cfg"), unknown_fields()]);
        let raw = cat(&[
            unknown_fields(),
            len_field(1, &m),
            entry(2, "a", b"1"),
            unknown_fields(),
        ]);
        let mut body = envelope("v1", "ConfigMap", &raw);
        body.extend(unknown_fields());
        let got = decode(&body).unwrap();
        assert_eq!(
            got,
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cfg"},
                "data": {"a": "1"},
            })
        );
    }

    #[test]
    fn truncated_bodies_are_errors() {
        let raw = cat(&[
            len_field(1, &meta("cfg", &[entry(11, "app", b"web")])),
            entry(2, "a", b"1"),
        ]);
        let type_meta = cat(&[str_field(1, "v1"), str_field(2, "ConfigMap")]);
        let mut body = MAGIC.to_vec();
        body.extend(len_field(1, &type_meta));
        let type_meta_end = body.len();
        body.extend(len_field(2, &raw));
        decode(&body).unwrap();
        for cut in 0..body.len() {
            let got = decode(&body[..cut]);
            if cut != type_meta_end {
                let err = got.unwrap_err();
                assert_eq!(err.code, StatusCode::BAD_REQUEST, "cut at {cut}: {err:?}");
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // Deterministic pseudo-random bodies after the magic bytes.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..5000 {
            let len = round % 64;
            let mut body = MAGIC.to_vec();
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                body.push((state >> 24) as u8);
            }
            let _ = decode(&body);
            // The same bytes as the object inside a valid envelope.
            let _ = decode(&envelope("v1", "ConfigMap", &body[4..]));
            let _ = decode(&envelope("v1", "Secret", &body[4..]));
            let _ = decode(&envelope("v1", "Namespace", &body[4..]));
            let _ = decode(&envelope("v1", "ServiceAccount", &body[4..]));
        }
        let cases: Vec<Vec<u8>> = vec![
            // A varint longer than 10 bytes, and one overflowing 64 bits.
            vec![0xff; 11],
            cat(&[vec![0x08], vec![0xff; 9], vec![0x02]]),
            // A length far beyond the body.
            cat(&[vec![0x0a], varint(u64::MAX)]),
            cat(&[vec![0x12], varint(1 << 40), vec![0; 4]]),
            // Wire types 6 and 7, field number 0, a stray end of group.
            vec![0x0e],
            vec![0x0f],
            vec![0x00, 0x00],
            tag(5, 4),
            // A group that never ends, one closed by the wrong field, and nesting too deep.
            tag(5, 3),
            cat(&[tag(5, 3), tag(6, 4)]),
            (0..100).flat_map(|_| tag(5, 3)).collect(),
        ];
        for case in cases {
            let mut body = MAGIC.to_vec();
            body.extend(&case);
            let err = decode(&body).unwrap_err();
            assert_eq!(err.code, StatusCode::BAD_REQUEST, "{case:?}: {err:?}");
            let err = decode(&envelope("v1", "ConfigMap", &case)).unwrap_err();
            assert_eq!(err.code, StatusCode::BAD_REQUEST, "{case:?}: {err:?}");
        }
    }

    #[test]
    fn bad_field_contents_are_errors() {
        // Invalid UTF-8 in a string, and a known field with the wrong wire type.
        for raw in [
            len_field(1, &len_field(1, &[0xff, 0xfe])),
            entry(2, "a", &[0xc3]),
            varint_field(1, 3),
            len_field(4, b"x"),
        ] {
            let err = decode(&envelope("v1", "ConfigMap", &raw)).unwrap_err();
            assert_eq!(err.code, StatusCode::BAD_REQUEST, "{raw:?}: {err:?}");
            assert!(err.message.contains("ConfigMap"), "{}", err.message);
        }
    }

    #[test]
    fn wrong_magic_is_an_error() {
        let good = envelope("v1", "ConfigMap", &len_field(1, &meta("cfg", &[])));
        for body in [
            Vec::new(),
            b"k8s".to_vec(),
            b"{\"kind\":\"ConfigMap\"}".to_vec(),
            good[4..].to_vec(),
            cat(&[b"k9s\0".to_vec(), good[4..].to_vec()]),
        ] {
            let err = decode(&body).unwrap_err();
            assert_eq!(err.code, StatusCode::BAD_REQUEST);
            assert!(err.message.contains("magic"), "{}", err.message);
        }
    }

    #[test]
    fn envelope_problems_are_errors() {
        let raw = len_field(1, &meta("cfg", &[]));
        let type_meta = cat(&[str_field(1, "v1"), str_field(2, "ConfigMap")]);
        for extra in [str_field(3, "gzip"), str_field(4, "application/json")] {
            let mut body = MAGIC.to_vec();
            body.extend(len_field(1, &type_meta));
            body.extend(len_field(2, &raw));
            body.extend(extra);
            let err = decode(&body).unwrap_err();
            assert_eq!(err.code, StatusCode::BAD_REQUEST, "{err:?}");
        }
        let err = decode(&envelope("v1", "", &raw)).unwrap_err();
        assert_eq!(err.code, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("no kind"), "{}", err.message);
    }

    #[test]
    fn other_kinds_are_415_naming_the_kind() {
        let raw = len_field(1, &meta("web", &[]));
        for (api_version, kind) in [
            ("apps/v1", "Deployment"),
            ("v1", "Service"),
            ("batch/v1", "Job"),
            ("v2", "ConfigMap"),
        ] {
            let err = decode(&envelope(api_version, kind, &raw)).unwrap_err();
            assert_eq!(err.code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            assert!(
                err.message.contains(kind)
                    && err.message.contains(api_version)
                    && err.message.contains("kubectl apply -f")
                    && err.message.contains("JSON"),
                "{}",
                err.message
            );
        }
    }
}
