//! Query parameters of API requests, parsed once and checked: a bad value is a 400
//! naming the parameter, never ignored.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::ApiError;

/// Decodes `application/x-www-form-urlencoded` pairs (`+` is a space, `%XX` a byte).
pub fn parse_pairs(query: &str) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k)?, percent_decode(v)?);
    }
    Ok(out)
}

pub fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("invalid percent-encoding in query: {s:?}"))
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request(format!("query parameter is not UTF-8: {s:?}")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Unknown or duplicate fields fail the request (400). Skiff's default.
    #[default]
    Strict,
    /// Unknown fields are dropped and reported in `Warning` headers.
    Warn,
    /// Unknown fields are dropped silently.
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagationPolicy {
    Background,
    Foreground,
    Orphan,
}

impl PropagationPolicy {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "Background" => Ok(Self::Background),
            "Foreground" => Ok(Self::Foreground),
            "Orphan" => Ok(Self::Orphan),
            other => Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Background\", \"Foreground\", \"Orphan\""
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceVersionMatch {
    NotOlderThan,
    Exact,
}

/// Every query parameter the API understands.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub watch: bool,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<ResourceVersionMatch>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub timeout: Option<Duration>,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    pub field_manager: Option<String>,
    pub propagation_policy: Option<PropagationPolicy>,
    pub grace_period_seconds: Option<i64>,
    /// `pods/log` options.
    pub container: Option<String>,
    pub follow: bool,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    pub timestamps: bool,
    pub previous: bool,
    /// Table rows' object: `None`, `Metadata` (default) or `Object`.
    pub include_object: crate::table::IncludeObject,
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "{name}: invalid value {v:?}: must be true or false"
        ))),
    }
}

fn parse_int<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ApiError> {
    v.parse::<T>().map_err(|_| {
        ApiError::bad_request(format!("{name}: invalid value {v:?}: must be an integer"))
    })
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let pairs = parse_pairs(raw.unwrap_or(""))?;
        let mut q = Query::default();
        for (k, v) in &pairs {
            match k.as_str() {
                "watch" => q.watch = parse_bool(k, v)?,
                "labelSelector" => q.label_selector = Some(v.clone()).filter(|s| !s.is_empty()),
                "fieldSelector" => q.field_selector = Some(v.clone()).filter(|s| !s.is_empty()),
                "resourceVersion" => q.resource_version = Some(v.clone()).filter(|s| !s.is_empty()),
                "resourceVersionMatch" => {
                    q.resource_version_match = match v.as_str() {
                        "" => None,
                        "NotOlderThan" => Some(ResourceVersionMatch::NotOlderThan),
                        "Exact" => Some(ResourceVersionMatch::Exact),
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                            )));
                        }
                    }
                }
                "limit" => {
                    let n: i64 = parse_int(k, v)?;
                    q.limit = (n > 0).then_some(n as usize);
                }
                "continue" => q.continue_token = Some(v.clone()).filter(|s| !s.is_empty()),
                "timeoutSeconds" => {
                    let n: u64 = parse_int(k, v)?;
                    q.timeout = Some(Duration::from_secs(n));
                }
                "timeout" => {
                    // Client-side request timeout such as "32s": accepted, not enforced.
                }
                "allowWatchBookmarks" => q.allow_watch_bookmarks = parse_bool(k, v)?,
                "sendInitialEvents" => q.send_initial_events = Some(parse_bool(k, v)?),
                "dryRun" => {
                    if v != "All" {
                        return Err(ApiError::bad_request(format!(
                            "dryRun: Unsupported value: {v:?}: supported values: \"All\""
                        )));
                    }
                    q.dry_run = true;
                }
                "fieldValidation" => {
                    q.field_validation = match v.as_str() {
                        "Strict" | "" => FieldValidation::Strict,
                        "Warn" => FieldValidation::Warn,
                        "Ignore" => FieldValidation::Ignore,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
                            )));
                        }
                    }
                }
                "fieldManager" => q.field_manager = Some(v.clone()),
                "propagationPolicy" => q.propagation_policy = Some(PropagationPolicy::parse(v)?),
                "gracePeriodSeconds" => q.grace_period_seconds = Some(parse_int(k, v)?),
                "container" => q.container = Some(v.clone()).filter(|s| !s.is_empty()),
                "follow" => q.follow = parse_bool(k, v)?,
                "tailLines" => q.tail_lines = Some(parse_int(k, v)?),
                "sinceSeconds" => q.since_seconds = Some(parse_int(k, v)?),
                "timestamps" => q.timestamps = parse_bool(k, v)?,
                "previous" => q.previous = parse_bool(k, v)?,
                "includeObject" => {
                    q.include_object = match v.as_str() {
                        "None" => crate::table::IncludeObject::None,
                        "Metadata" | "" => crate::table::IncludeObject::Metadata,
                        "Object" => crate::table::IncludeObject::Object,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "includeObject: Unsupported value: {other:?}: supported values: \"None\", \"Metadata\", \"Object\""
                            )));
                        }
                    }
                }
                // Accepted and without effect here: pretty printing, server-side apply's
                // force flag, orphanDependents (deprecated; propagationPolicy wins).
                "pretty" | "force" | "orphanDependents" | "hash" => {}
                _ => {}
            }
        }
        if q.send_initial_events == Some(true) && !q.watch {
            return Err(ApiError::bad_request(
                "sendInitialEvents: Forbidden: sendInitialEvents is allowed only with watch=true",
            ));
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_kubectl_queries() {
        let q = Query::parse(Some(
            "allowWatchBookmarks=true&fieldSelector=metadata.name%3Dp1&resourceVersion=165&timeoutSeconds=594&watch=true",
        ))
        .unwrap();
        assert!(q.watch && q.allow_watch_bookmarks);
        assert_eq!(q.field_selector.as_deref(), Some("metadata.name=p1"));
        assert_eq!(q.resource_version.as_deref(), Some("165"));
        assert_eq!(q.timeout, Some(Duration::from_secs(594)));
    }

    #[test]
    fn rejects_bad_values_naming_the_parameter() {
        for (raw, needle) in [
            ("limit=abc", "limit"),
            ("watch=maybe", "watch"),
            ("fieldValidation=Loose", "fieldValidation"),
            ("propagationPolicy=Now", "propagationPolicy"),
            ("dryRun=Some", "dryRun"),
            ("labelSelector=%zz", "percent"),
            ("sendInitialEvents=true", "sendInitialEvents"),
        ] {
            let err = Query::parse(Some(raw)).unwrap_err();
            assert_eq!(err.code, http::StatusCode::BAD_REQUEST, "{raw}");
            assert!(err.message.contains(needle), "{raw}: {}", err.message);
        }
    }

    #[test]
    fn plus_is_space() {
        assert_eq!(percent_decode("a+in+(x%2Cy)").unwrap(), "a in (x,y)");
    }
}
