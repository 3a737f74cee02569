//! The crate's one error type.
//!
//! Each variant knows the Kubernetes `Status` reason and HTTP code it stands for
//! ([`Error::reason`], [`Error::code`]), so the API server can turn any of them into a
//! `kind: Status` body without matching on variants.

use crate::validation::{FieldError, aggregate_message};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in skiff-api.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is not a JSON object.
    #[error("{expected} cannot be handled: the body must be a JSON object, found {found}")]
    NotAnObject {
        /// `apps/v1, Kind=Deployment`
        expected: String,
        /// The JSON type found (`array`, `string`, …).
        found: &'static str,
    },

    /// The body's `apiVersion`/`kind` is not the one the resource serves.
    #[error("the object in the body is {found}, but this endpoint serves {expected}")]
    WrongKind {
        /// `apps/v1, Kind=Deployment`
        expected: String,
        /// `v1, Kind=Pod` (as found in the body)
        found: String,
    },

    /// The body does not decode into the kind's type (a wrong JSON type somewhere).
    #[error("{kind} in version \"{version}\" cannot be handled as a {kind}: {path}: {message}")]
    Decode {
        /// `Deployment`
        kind: &'static str,
        /// `v1`
        version: &'static str,
        /// `spec.template.spec.containers[0].ports[0].containerPort`
        path: String,
        /// serde's message (`invalid type: string "80", expected i32`).
        message: String,
    },

    /// Fields the kind does not have (reported by strict decoding).
    #[error(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        fields.iter().map(|f| format!("unknown field \"{f}\"")).collect::<Vec<_>>().join(", ")
    )]
    UnknownFields {
        /// `Pod`
        kind: &'static str,
        /// `v1`
        version: &'static str,
        /// Every unknown field path, `spec.containers[0].imagee`.
        fields: Vec<String>,
    },

    /// No resource by that name ([`crate::registry::resolve`] and friends).
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownResource(String),

    /// A label selector string that does not parse, or a `LabelSelector` that is invalid.
    #[error("unable to parse label selector {input:?}: {message}")]
    LabelSelector {
        /// The selector as given.
        input: String,
        /// What is wrong, with the position (`at position 4: expected …`).
        message: String,
    },

    /// A field selector string that does not parse.
    #[error("unable to parse field selector {input:?}: {message}")]
    FieldSelector {
        /// The selector as given.
        input: String,
        /// What is wrong.
        message: String,
    },

    /// A field selector names a field the resource cannot be selected by.
    #[error(
        "field label not supported: {field} (resource {resource}; supported: {})",
        supported.join(", ")
    )]
    UnsupportedFieldLabel {
        /// `pods`, `deployments.apps`
        resource: String,
        /// The field asked for.
        field: String,
        /// What the resource supports.
        supported: Vec<&'static str>,
    },

    /// A quantity (`100m`, `128Mi`) that does not parse.
    #[error("invalid quantity {input:?}: {reason}")]
    Quantity {
        /// The string given.
        input: String,
        /// What is wrong.
        reason: String,
    },

    /// A name or namespace that cannot be a segment of a storage key.
    #[error("invalid {what} {value:?} for a storage key: {reason}")]
    StorageKey {
        /// `name` or `namespace`.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },

    /// Validation failed: every field error at once.
    #[error("{qualified_kind} {name:?} is invalid: {}", aggregate_message(errors))]
    Invalid {
        /// `Deployment.apps`, `Pod`
        qualified_kind: String,
        /// The object's name.
        name: String,
        /// Every problem.
        errors: Vec<FieldError>,
    },

    /// A strategic merge patch that cannot be applied ([`crate::strategic_merge::apply`]).
    #[error("invalid strategic merge patch at {path}: {message}")]
    Patch {
        /// Where in the patch: `spec.template.spec.containers[1]`, `spec.$patch`.
        path: String,
        /// What is wrong.
        message: String,
    },

    /// A typed object failed to serialise (it cannot for the kinds Skiff serves; kept so
    /// that nothing panics).
    #[error("cannot serialize {kind}: {source}")]
    Serialize {
        /// The kind.
        kind: &'static str,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// The Kubernetes `Status.reason` for this error (`BadRequest`, `Invalid`, `NotFound`,
    /// `InternalError`).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "Invalid",
            Error::UnknownResource(_) => "NotFound",
            Error::Serialize { .. } => "InternalError",
            _ => "BadRequest",
        }
    }

    /// The HTTP status code Kubernetes answers with for this error.
    pub fn code(&self) -> u16 {
        match self {
            Error::Invalid { .. } => 422,
            Error::UnknownResource(_) => 404,
            Error::Serialize { .. } => 500,
            _ => 400,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::{FieldError, FieldPath};

    #[test]
    fn messages_reasons_and_codes() {
        let cases: Vec<(Error, &str, &str, u16)> = vec![
            (
                Error::UnknownFields {
                    kind: "Pod",
                    version: "v1",
                    fields: vec!["spec.foo".into(), "spec.containers[0].imagee".into()],
                },
                "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: \
                 unknown field \"spec.foo\", unknown field \"spec.containers[0].imagee\"",
                "BadRequest",
                400,
            ),
            (
                Error::Invalid {
                    qualified_kind: "Pod".into(),
                    name: "p".into(),
                    errors: vec![FieldError::required(
                        &FieldPath::new("spec").child("containers"),
                        "",
                    )],
                },
                "Pod \"p\" is invalid: spec.containers: Required value",
                "Invalid",
                422,
            ),
            (
                Error::UnknownResource("foos".into()),
                "the server doesn't have a resource type \"foos\"",
                "NotFound",
                404,
            ),
        ];
        for (err, message, reason, code) in cases {
            assert_eq!(err.to_string(), message);
            assert_eq!(err.reason(), reason);
            assert_eq!(err.code(), code);
        }
    }
}
