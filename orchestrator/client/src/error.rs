//! What a client call fails with: [`Error`], and [`ApiError`] for a `kind: Status` answer
//! from the server, which prints exactly as kubectl prints it.

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

/// One cause of a failure (`details.causes[]`): for Invalid errors, the field and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusCause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`, …
    pub reason: String,
    pub message: String,
    /// The field path, e.g. `spec.containers[0].image`; empty when the cause is not about
    /// one field.
    pub field: String,
}

/// A request the server refused: the `kind: Status` body it answered with (or, when the
/// body was not a Status, what the HTTP code means).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status code (`404`).
    pub code: u16,
    /// Kubernetes' `StatusReason` (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, …);
    /// empty when the server gave none.
    pub reason: String,
    /// The human message (`pods "x" not found`).
    pub message: String,
    /// `details.name`
    pub name: Option<String>,
    /// `details.group`
    pub group: Option<String>,
    /// `details.kind`
    pub kind: Option<String>,
    /// `details.causes`
    pub causes: Vec<StatusCause>,
}

impl ApiError {
    /// Reads a `kind: Status` body; `None` when `body` is not one.
    pub fn from_status(body: &Value) -> Option<ApiError> {
        if body.get("kind").and_then(Value::as_str) != Some("Status") {
            return None;
        }
        let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let details = body.get("details");
        let opt = |key: &str| {
            details
                .and_then(|d| d.get(key))
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let causes = details
            .and_then(|d| d.get("causes"))
            .and_then(Value::as_array)
            .map(|causes| {
                causes
                    .iter()
                    .map(|c| StatusCause {
                        reason: s(c.get("reason")),
                        message: s(c.get("message")),
                        field: s(c.get("field")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let code = body
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(0);
        Some(ApiError {
            code,
            reason: s(body.get("reason")),
            message: s(body.get("message")),
            name: opt("name"),
            group: opt("group"),
            kind: opt("kind"),
            causes,
        })
    }

    /// The error for an HTTP answer `code` with `body`: its Status when it is one,
    /// otherwise what Kubernetes' client makes of a bare code.
    pub fn from_response(code: u16, body: &[u8]) -> ApiError {
        if let Ok(v) = serde_json::from_slice::<Value>(body)
            && let Some(mut e) = ApiError::from_status(&v)
        {
            if e.code == 0 {
                e.code = code;
            }
            return e;
        }
        let reason = reason_for_code(code);
        let text = String::from_utf8_lossy(body).trim().to_string();
        let message = if text.is_empty() {
            default_message(code).to_string()
        } else {
            // What client-go says of a body it cannot read as a Status.
            format!(
                "{} ({})",
                default_message(code),
                text.chars().take(256).collect::<String>()
            )
        };
        ApiError {
            code,
            reason: reason.to_string(),
            message,
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code == 404 && (self.reason == "NotFound" || self.reason.is_empty())
    }

    pub fn is_already_exists(&self) -> bool {
        self.reason == "AlreadyExists"
    }

    /// A stale resourceVersion (or another optimistic-concurrency failure).
    pub fn is_conflict(&self) -> bool {
        self.code == 409 && self.reason == "Conflict"
    }

    pub fn is_invalid(&self) -> bool {
        self.reason == "Invalid"
    }

    /// 410: a watch or list from a revision the server no longer keeps.
    pub fn is_gone(&self) -> bool {
        self.code == 410
    }
}

impl fmt::Display for ApiError {
    /// `Error from server (NotFound): pods "x" not found`, as kubectl prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "Error from server: {}", self.message)
        } else {
            write!(f, "Error from server ({}): {}", self.reason, self.message)
        }
    }
}

impl std::error::Error for ApiError {}

/// Kubernetes' StatusReason for a code the server gave no reason for.
fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

fn default_message(code: u16) -> &'static str {
    match code {
        400 => "the server rejected our request for an unknown reason",
        401 => "the server has asked for the client to provide credentials",
        403 => "the server does not allow access to the requested resource",
        404 => "the server could not find the requested resource",
        405 => "the server does not allow this method on the requested resource",
        409 => "the server reported a conflict",
        410 => "the requested resource is no longer available",
        415 => "the server responded with the status code 415 but did not return more information",
        422 => "the server rejected our request due to an error in our request",
        429 => "the server has received too many requests and has asked us to try again later",
        500 => "an error on the server has prevented the request from succeeding",
        503 => "the server is currently unable to handle the request",
        504 => "the server was unable to return a response in the time allotted",
        _ => "an error on the server has prevented the request from succeeding",
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error Status.
    #[error(transparent)]
    Api(Box<ApiError>),

    /// No kubeconfig at any place looked at.
    #[error(
        "no kubeconfig found (looked at {}); pass --kubeconfig, set KUBECONFIG, or start `skiff server` and use DIR/kubeconfig.yaml",
        .tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoKubeconfig { tried: Vec<PathBuf> },

    /// The kubeconfig is unreadable, malformed or lacks something.
    #[error("kubeconfig {}: {message}", .path.display())]
    Kubeconfig { path: PathBuf, message: String },

    /// A file the kubeconfig refers to (CA file, token file) cannot be read.
    #[error("reading {}: {cause}", .path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },

    /// TLS could not be set up (bad CA certificate, …).
    #[error("TLS: {0}")]
    Tls(String),

    /// A URL that could not be built or parsed.
    #[error("invalid URL {url:?}: {message}")]
    Url { url: String, message: String },

    /// The request could not be sent, or no answer came.
    #[error("cannot reach the server at {server}: {}", root_cause(.cause))]
    Connect {
        server: String,
        cause: hyper_util::client::legacy::Error,
    },

    /// The answer's body broke off.
    #[error("reading the answer to {method} {path}: {}", root_cause(.cause))]
    Body {
        method: String,
        path: String,
        cause: hyper::Error,
    },

    /// The answer was not the JSON expected.
    #[error("decoding the answer to {method} {path}: {cause}")]
    Decode {
        method: String,
        path: String,
        cause: serde_json::Error,
    },

    /// A request body could not be encoded.
    #[error("encoding the request body: {0}")]
    Encode(serde_json::Error),

    /// A watch event line that is not `{"type", "object"}`.
    #[error("malformed watch event: {0}")]
    WatchEvent(String),
}

/// The innermost cause of `err` (what a connection failure really was: "Connection
/// refused", "invalid peer certificate: UnknownIssuer"), which messages embed instead of
/// the chain of wrappers above it.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut e = err;
    while let Some(next) = e.source() {
        e = next;
    }
    e.to_string()
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(Box::new(e))
    }
}

impl Error {
    /// The server's Status, when the server refused the request.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.api().is_some_and(ApiError::is_not_found)
    }

    pub fn is_conflict(&self) -> bool {
        self.api().is_some_and(ApiError::is_conflict)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn not_found_prints_like_kubectl() {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods \"x\" not found", "reason": "NotFound",
            "details": {"name": "x", "kind": "pods"}, "code": 404,
        });
        let e = ApiError::from_response(404, body.to_string().as_bytes());
        assert_eq!(
            e.to_string(),
            "Error from server (NotFound): pods \"x\" not found"
        );
        assert!(e.is_not_found());
        assert_eq!(e.name.as_deref(), Some("x"));
        assert_eq!(e.kind.as_deref(), Some("pods"));
        assert_eq!(e.group, None);
    }

    #[test]
    fn invalid_keeps_its_causes() {
        let body = json!({
            "kind": "Status", "status": "Failure", "code": 422, "reason": "Invalid",
            "message": "Pod \"bad\" is invalid: spec.hostNetwork: Forbidden: not supported",
            "details": {"name": "bad", "kind": "Pod", "causes": [
                {"reason": "FieldValueForbidden", "message": "Forbidden: not supported", "field": "spec.hostNetwork"}
            ]},
        });
        let e = ApiError::from_response(422, body.to_string().as_bytes());
        assert!(e.is_invalid());
        assert_eq!(e.causes.len(), 1);
        assert_eq!(e.causes[0].field, "spec.hostNetwork");
        assert_eq!(
            e.to_string(),
            "Error from server (Invalid): Pod \"bad\" is invalid: spec.hostNetwork: Forbidden: not supported"
        );
    }

    #[test]
    fn a_body_that_is_not_a_status_gets_the_codes_meaning() {
        let e = ApiError::from_response(404, b"");
        assert_eq!(
            e.to_string(),
            "Error from server (NotFound): the server could not find the requested resource"
        );
        let e = ApiError::from_response(502, b"bad gateway");
        assert_eq!(e.reason, "");
        assert!(e.to_string().starts_with("Error from server: "), "{e}");
        assert!(e.to_string().contains("bad gateway"), "{e}");
    }

    #[test]
    fn status_without_code_takes_the_http_code() {
        let body = json!({"kind": "Status", "reason": "Conflict", "message": "m"});
        let e = ApiError::from_response(409, body.to_string().as_bytes());
        assert_eq!(e.code, 409);
        assert!(e.is_conflict());
    }

    #[test]
    fn client_errors_wrap_api_errors_transparently() {
        let e: Error = ApiError::from_response(404, b"").into();
        assert!(e.is_not_found());
        assert!(e.to_string().starts_with("Error from server (NotFound)"));
    }
}
