//! Validation: every problem of an object at once, as Kubernetes reports them.
//!
//! [`validate_create`] and [`validate_update`] return a [`FieldError`] per problem, each
//! naming the field (`spec.containers[0].image`), the kind of problem and the bad value.
//! They render exactly as Kubernetes prints them (`spec.containers[0].image: Required
//! value`), [`invalid_status`] builds the `422 Invalid` `Status` body with one cause per
//! error, and [`check_create`]/[`check_update`] wrap the same as an [`Error::Invalid`].
//!
//! Call order, as in the kube-apiserver: decode → [`crate::defaulting::apply_defaults`] →
//! validate. Validation accepts a field left unset wherever defaulting would fill it, so it
//! also works on undefaulted objects. As in Kubernetes (Go zero values), a numeric field
//! set to `0` that defaulting replaces (probe periods and thresholds) counts as unset.
//!
//! The Wasm rules live with the Pod spec ([`pod`]): a field with no meaning for a Wasm
//! component is rejected as `Forbidden` with the reason, never ignored.

mod core;
mod meta;
mod pod;
mod update;
mod workloads;

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ListMeta, Status, StatusCause, StatusDetails,
};

use crate::error::Error;
use crate::object::Object;
use crate::registry::Resource;

pub use self::core::{MAX_CONFIG_SIZE, NODE_PORT_RANGE};
pub use meta::{
    TOTAL_ANNOTATION_SIZE_LIMIT, name_rule, validate_annotations, validate_labels,
    validate_object_meta,
};
pub use pod::{ALLOWED_IMAGE_FORMS, validate_image, validate_pod_spec};
pub use update::POD_UPDATABLE_FIELDS;

/// The kind of a field problem, as Kubernetes' `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// A reference to something that does not exist (a volume mount naming no volume).
    NotFound,
    /// A required field is missing.
    Required,
    /// A value that must be unique is repeated.
    Duplicate,
    /// A malformed value.
    Invalid,
    /// A value outside a fixed set.
    NotSupported,
    /// A field that may not be set (here, or in a Wasm sandbox).
    Forbidden,
    /// A value too long.
    TooLong,
    /// A list with too many items.
    TooMany,
}

impl FieldErrorKind {
    /// The `StatusCause.reason` Kubernetes uses: `FieldValueRequired`, …
    pub fn cause_type(self) -> &'static str {
        match self {
            FieldErrorKind::NotFound => "FieldValueNotFound",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
        }
    }

    /// How Kubernetes words the kind in messages: `Required value`, `Invalid value`, …
    pub fn description(self) -> &'static str {
        match self {
            FieldErrorKind::NotFound => "Not found",
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
        }
    }

    /// Whether Kubernetes prints the bad value for this kind.
    fn shows_value(self) -> bool {
        !matches!(
            self,
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong
        )
    }
}

/// A path to a field: `spec.containers[0].image`, `metadata.labels[app]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    /// A path starting at `root` (`spec`); `""` for the object itself.
    pub fn new(root: &str) -> FieldPath {
        FieldPath(root.to_string())
    }

    /// `self.name`
    pub fn child(&self, name: &str) -> FieldPath {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// `self[i]`
    pub fn index(&self, i: usize) -> FieldPath {
        FieldPath(format!("{}[{i}]", self.0))
    }

    /// `self[key]` — a map entry.
    pub fn key(&self, key: &str) -> FieldPath {
        FieldPath(format!("{}[{key}]", self.0))
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value as Kubernetes prints it in a field error: strings quoted (Go's `%q`), numbers and
/// booleans bare.
pub trait FieldValue {
    /// The printed form.
    fn render(&self) -> String;
}

impl FieldValue for &str {
    fn render(&self) -> String {
        go_quote(self)
    }
}
impl FieldValue for String {
    fn render(&self) -> String {
        go_quote(self)
    }
}
impl FieldValue for &String {
    fn render(&self) -> String {
        go_quote(self)
    }
}
macro_rules! bare_field_value {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn render(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
bare_field_value!(i32, i64, u16, u32, u64, usize, bool);

/// A value printed verbatim (for maps and structures rendered by the caller).
#[derive(Clone, Debug)]
pub struct Raw(pub String);
impl FieldValue for Raw {
    fn render(&self) -> String {
        self.0.clone()
    }
}

/// Go's `%q`: double quotes, with `"`, `\` and non-printable characters escaped.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldError {
    /// `spec.containers[0].image`
    pub path: String,
    /// What kind of problem.
    pub reason: FieldErrorKind,
    /// The bad value as Kubernetes prints it (strings quoted), when there is one to show.
    pub value: Option<String>,
    /// The explanation (`must be between 1 and 65535, inclusive`); may be empty.
    pub message: String,
}

impl FieldError {
    fn new(
        path: &FieldPath,
        reason: FieldErrorKind,
        value: Option<String>,
        message: impl Into<String>,
    ) -> FieldError {
        FieldError {
            path: path.to_string(),
            reason,
            value,
            message: message.into(),
        }
    }

    /// `path: Required value[: message]`
    pub fn required(path: &FieldPath, message: impl Into<String>) -> FieldError {
        FieldError::new(path, FieldErrorKind::Required, None, message)
    }

    /// `path: Invalid value: <value>: message`
    pub fn invalid(
        path: &FieldPath,
        value: impl FieldValue,
        message: impl Into<String>,
    ) -> FieldError {
        FieldError::new(path, FieldErrorKind::Invalid, Some(value.render()), message)
    }

    /// `path: Invalid value: message` — for values too big to print (a template, a spec).
    pub fn invalid_omit(path: &FieldPath, message: impl Into<String>) -> FieldError {
        FieldError::new(path, FieldErrorKind::Invalid, None, message)
    }

    /// `path: Unsupported value: <value>: supported values: "a", "b"`
    pub fn not_supported(
        path: &FieldPath,
        value: impl FieldValue,
        supported: &[&str],
    ) -> FieldError {
        let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        FieldError::new(
            path,
            FieldErrorKind::NotSupported,
            Some(value.render()),
            format!("supported values: {}", list.join(", ")),
        )
    }

    /// `path: Unsupported value: <value>: message` — with a message of one's own.
    pub fn not_supported_msg(
        path: &FieldPath,
        value: impl FieldValue,
        message: impl Into<String>,
    ) -> FieldError {
        FieldError::new(
            path,
            FieldErrorKind::NotSupported,
            Some(value.render()),
            message,
        )
    }

    /// `path: Forbidden: message`
    pub fn forbidden(path: &FieldPath, message: impl Into<String>) -> FieldError {
        FieldError::new(path, FieldErrorKind::Forbidden, None, message)
    }

    /// `path: Duplicate value: <value>`
    pub fn duplicate(path: &FieldPath, value: impl FieldValue) -> FieldError {
        FieldError::new(path, FieldErrorKind::Duplicate, Some(value.render()), "")
    }

    /// `path: Not found: <value>`
    pub fn not_found(path: &FieldPath, value: impl FieldValue) -> FieldError {
        FieldError::new(path, FieldErrorKind::NotFound, Some(value.render()), "")
    }

    /// `path: Too long: may not be more than N bytes`
    pub fn too_long(path: &FieldPath, max_bytes: usize) -> FieldError {
        FieldError::new(
            path,
            FieldErrorKind::TooLong,
            None,
            format!("may not be more than {max_bytes} bytes"),
        )
    }

    /// `path: Too many: <actual>: must have at most N items`
    pub fn too_many(path: &FieldPath, actual: usize, max: usize) -> FieldError {
        FieldError::new(
            path,
            FieldErrorKind::TooMany,
            Some(actual.to_string()),
            format!("must have at most {max} items"),
        )
    }

    /// The message without the path, as Kubernetes puts it in `StatusCause.message`:
    /// `Invalid value: "Foo_Bar": a lowercase RFC 1123 subdomain must …`
    pub fn body(&self) -> String {
        let mut s = self.reason.description().to_string();
        if self.reason.shows_value()
            && let Some(v) = &self.value
        {
            s.push_str(": ");
            s.push_str(v);
        }
        if !self.message.is_empty() {
            s.push_str(": ");
            s.push_str(&self.message);
        }
        s
    }

    /// The `StatusCause` for this error.
    pub fn to_cause(&self) -> StatusCause {
        StatusCause {
            field: Some(self.path.clone()),
            message: Some(self.body()),
            reason: Some(self.reason.cause_type().to_string()),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.body())
    }
}

/// Kubernetes' aggregate of field errors: the one message, or `[a, b, …]` (duplicates
/// dropped).
pub fn aggregate_message(errors: &[FieldError]) -> String {
    let mut seen = std::collections::HashSet::new();
    let msgs: Vec<String> = errors
        .iter()
        .map(ToString::to_string)
        .filter(|m| seen.insert(m.clone()))
        .collect();
    match msgs.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", msgs.join(", ")),
    }
}

/// The `Status` body of a `422 Invalid` answer: message `Deployment.apps "web" is invalid:
/// …`, reason `Invalid`, one cause per error.
pub fn invalid_status(resource: &Resource, name: &str, errors: &[FieldError]) -> Status {
    Status {
        code: Some(422),
        details: Some(StatusDetails {
            causes: Some(errors.iter().map(FieldError::to_cause).collect()),
            group: Some(resource.group.to_string()),
            kind: Some(resource.kind.to_string()),
            name: Some(name.to_string()),
            retry_after_seconds: None,
            uid: None,
        }),
        message: Some(format!(
            "{} {} is invalid: {}",
            resource.qualified_kind(),
            go_quote(name),
            aggregate_message(errors)
        )),
        metadata: ListMeta::default(),
        reason: Some("Invalid".to_string()),
        status: Some("Failure".to_string()),
    }
}

/// Every problem with an object about to be created.
pub fn validate_create(object: &Object) -> Vec<FieldError> {
    let mut errs = validate_object_meta(
        object.metadata(),
        object.resource(),
        &FieldPath::new("metadata"),
    );
    match object {
        Object::Pod(o) => pod::validate_pod(o, &mut errs),
        Object::Deployment(o) => workloads::validate_deployment(o, &mut errs),
        Object::ReplicaSet(o) => workloads::validate_replica_set(o, &mut errs),
        Object::DaemonSet(o) => workloads::validate_daemon_set(o, &mut errs),
        Object::Job(o) => workloads::validate_job(o, &mut errs),
        Object::HorizontalPodAutoscaler(o) => workloads::validate_hpa(o, &mut errs),
        Object::Service(o) => core::validate_service(o, &mut errs),
        Object::ConfigMap(o) => core::validate_config_map(o, &mut errs),
        Object::Secret(o) => core::validate_secret(o, &mut errs),
        Object::Namespace(o) => core::validate_namespace(o, &mut errs),
        Object::Node(o) => core::validate_node(o, &mut errs),
        Object::Endpoints(o) => core::validate_endpoints(o, &mut errs),
        Object::Event(o) => core::validate_event(o, &mut errs),
        Object::PersistentVolumeClaim(o) => core::validate_pvc(o, &mut errs),
        Object::PersistentVolume(o) => core::validate_pv(o, &mut errs),
        Object::ServiceAccount(o) => core::validate_service_account(o, &mut errs),
        Object::Lease(o) => core::validate_lease(o, &mut errs),
    }
    errs
}

/// Every problem with replacing `old` by `new`: the new object's own problems plus the
/// fields that may not change (name, namespace, uid, and each kind's immutable fields).
pub fn validate_update(old: &Object, new: &Object) -> Vec<FieldError> {
    if old.kind() != new.kind() {
        return vec![FieldError::invalid(
            &FieldPath::new("kind"),
            new.kind(),
            format!("may not change the kind of an object (was {})", old.kind()),
        )];
    }
    let mut errs = validate_create(new);
    update::validate_meta_update(old.metadata(), new.metadata(), &mut errs);
    update::validate_spec_update(old, new, &mut errs);
    errs
}

/// Every problem with a write to the `status` subresource: the metadata rules only (the
/// API server keeps the old spec on a status write, as Kubernetes does).
pub fn validate_status_update(old: &Object, new: &Object) -> Vec<FieldError> {
    if old.kind() != new.kind() {
        return validate_update(old, new);
    }
    let mut errs =
        validate_object_meta(new.metadata(), new.resource(), &FieldPath::new("metadata"));
    update::validate_meta_update(old.metadata(), new.metadata(), &mut errs);
    errs
}

fn invalid_error(object: &Object, errors: Vec<FieldError>) -> Result<(), Error> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid {
            qualified_kind: object.resource().qualified_kind(),
            name: object.name().to_string(),
            errors,
        })
    }
}

/// [`validate_create`] as a `Result` ([`Error::Invalid`] carries every error).
pub fn check_create(object: &Object) -> Result<(), Error> {
    invalid_error(object, validate_create(object))
}

/// [`validate_update`] as a `Result`.
pub fn check_update(old: &Object, new: &Object) -> Result<(), Error> {
    invalid_error(new, validate_update(old, new))
}

// Small helpers shared by the submodules.

/// `Invalid: must be greater than or equal to 0` when negative.
fn non_negative<T: Into<i64> + Copy>(
    value: Option<T>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if let Some(v) = value {
        let v: i64 = v.into();
        if v < 0 {
            errs.push(FieldError::invalid(
                path,
                v,
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// `Invalid: must be greater than or equal to `min`` when below.
fn at_least<T: Into<i64> + Copy>(
    value: Option<T>,
    min: i64,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if let Some(v) = value {
        let v: i64 = v.into();
        if v < min {
            errs.push(FieldError::invalid(
                path,
                v,
                format!("must be greater than or equal to {min}"),
            ));
        }
    }
}

/// Each message as an `Invalid` error on `path` with `value`.
fn invalid_each(path: &FieldPath, value: &str, msgs: Vec<String>, errs: &mut Vec<FieldError>) {
    errs.extend(
        msgs.into_iter()
            .map(|m| FieldError::invalid(path, value, m)),
    );
}

/// Whether an optional string is set to something.
fn is_set(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::registry;

    /// Expected errors: (path, kind) pairs.
    pub type Expected<'a> = Vec<(&'a str, FieldErrorKind)>;
    /// A named case: (name, body, expected errors).
    pub type Case<'a> = (&'a str, serde_json::Value, Expected<'a>);

    /// Decodes `body` (strictly) for the kind it names.
    pub fn obj(body: serde_json::Value) -> Object {
        let kind = body["kind"].as_str().unwrap_or_default();
        let resource = registry::by_kind(kind).unwrap_or_else(|| panic!("no kind {kind}"));
        crate::object::decode_strict(resource, &body).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Asserts that `errs` holds exactly the expected (path, kind) pairs, in any order.
    pub fn assert_errors(errs: &[FieldError], expected: &[(&str, FieldErrorKind)], case: &str) {
        let mut got: Vec<(String, FieldErrorKind)> =
            errs.iter().map(|e| (e.path.clone(), e.reason)).collect();
        let mut want: Vec<(String, FieldErrorKind)> =
            expected.iter().map(|(p, k)| (p.to_string(), *k)).collect();
        got.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cause_type().cmp(b.1.cause_type())));
        want.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cause_type().cmp(b.1.cause_type())));
        let rendered: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(got, want, "case {case}: got {rendered:#?}");
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::registry;
    use FieldErrorKind::*;
    use serde_json::json;

    #[test]
    fn rendering_as_kubernetes() {
        let p = FieldPath::new("spec").child("containers").index(0);
        let cases: Vec<(FieldError, &str)> = vec![
            (
                FieldError::required(&p.child("image"), ""),
                "spec.containers[0].image: Required value",
            ),
            (
                FieldError::required(
                    &FieldPath::new("metadata").child("name"),
                    "name or generateName is required",
                ),
                "metadata.name: Required value: name or generateName is required",
            ),
            (
                FieldError::invalid(&FieldPath::new("metadata").child("name"), "Foo_Bar", "bad"),
                "metadata.name: Invalid value: \"Foo_Bar\": bad",
            ),
            (
                FieldError::invalid(
                    &p.child("ports").index(0).child("containerPort"),
                    0i32,
                    "must be between 1 and 65535, inclusive",
                ),
                "spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive",
            ),
            (
                FieldError::not_supported(
                    &FieldPath::new("spec").child("restartPolicy"),
                    "Sometimes",
                    &["Always", "OnFailure", "Never"],
                ),
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ),
            (
                FieldError::forbidden(&FieldPath::new("spec").child("hostNetwork"), "no"),
                "spec.hostNetwork: Forbidden: no",
            ),
            (
                FieldError::duplicate(&p.child("name"), "web"),
                "spec.containers[0].name: Duplicate value: \"web\"",
            ),
            (
                FieldError::not_found(&p.child("volumeMounts").index(0).child("name"), "data"),
                "spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
            ),
            (
                FieldError::too_long(&FieldPath::new("metadata").child("annotations"), 262144),
                "metadata.annotations: Too long: may not be more than 262144 bytes",
            ),
            (
                FieldError::too_many(&FieldPath::new("x"), 5, 3),
                "x: Too many: 5: must have at most 3 items",
            ),
            (
                FieldError::invalid(&FieldPath::new("x"), "a\"b\n", ""),
                "x: Invalid value: \"a\\\"b\\n\"",
            ),
            (
                FieldError::invalid_omit(
                    &FieldPath::new("spec").child("selector"),
                    "empty selector is invalid for deployment",
                ),
                "spec.selector: Invalid value: empty selector is invalid for deployment",
            ),
            (
                FieldError::invalid(
                    &FieldPath::new("metadata").child("labels").key("a b"),
                    true,
                    "x",
                ),
                "metadata.labels[a b]: Invalid value: true: x",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn cause_types() {
        let cases = [
            (Required, "FieldValueRequired"),
            (Invalid, "FieldValueInvalid"),
            (NotSupported, "FieldValueNotSupported"),
            (Forbidden, "FieldValueForbidden"),
            (Duplicate, "FieldValueDuplicate"),
            (TooLong, "FieldValueTooLong"),
            (TooMany, "FieldValueTooMany"),
            (NotFound, "FieldValueNotFound"),
        ];
        for (kind, want) in cases {
            assert_eq!(kind.cause_type(), want);
        }
    }

    #[test]
    fn status_body() {
        let errs = vec![
            FieldError::required(
                &FieldPath::new("spec")
                    .child("containers")
                    .index(0)
                    .child("image"),
                "",
            ),
            FieldError::invalid(&FieldPath::new("metadata").child("name"), "Foo", "bad"),
        ];
        let status = invalid_status(&registry::DEPLOYMENT, "Foo", &errs);
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["code"], 422);
        assert_eq!(v["reason"], "Invalid");
        assert_eq!(v["status"], "Failure");
        assert_eq!(
            v["message"],
            "Deployment.apps \"Foo\" is invalid: [spec.containers[0].image: Required value, metadata.name: Invalid value: \"Foo\": bad]"
        );
        assert_eq!(v["details"]["group"], "apps");
        assert_eq!(v["details"]["kind"], "Deployment");
        assert_eq!(
            v["details"]["causes"][0],
            json!({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].image"})
        );
        assert_eq!(
            aggregate_message(&[errs[0].clone(), errs[0].clone()]),
            "spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn update_of_another_kind_is_rejected() {
        let a = obj(json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d"}}));
        let b = obj(json!({"kind": "Secret", "metadata": {"name": "a", "namespace": "d"}}));
        assert_errors(
            &validate_update(&a, &b),
            &[("kind", Invalid)],
            "kind change",
        );
        assert_errors(
            &validate_status_update(&a, &b),
            &[("kind", Invalid)],
            "kind change (status)",
        );
    }

    #[test]
    fn check_wrappers() {
        let bad = obj(json!({"kind": "ConfigMap", "metadata": {"name": "A", "namespace": "d"}}));
        let err = check_create(&bad).unwrap_err();
        assert_eq!(err.code(), 422);
        assert!(
            err.to_string()
                .starts_with("ConfigMap \"A\" is invalid: metadata.name: Invalid value: \"A\""),
            "{err}"
        );
        let good = obj(json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d"}}));
        assert!(check_create(&good).is_ok());
        assert!(check_update(&good, &good).is_ok());
    }
}
