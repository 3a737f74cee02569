//! The agent's HTTP API (the kubelet's port): what the API server calls on a node.
//!
//! - `GET /healthz`: `ok`.
//! - `GET /containerLogs/{namespace}/{pod}/{container}` with `follow`, `tailLines`,
//!   `sinceSeconds`, `timestamps`, `previous` (the contract of
//!   `orchestrator/apiserver/src/logs.rs`), authenticated with `Authorization: Bearer
//!   <node token>`: the container's log as `text/plain`, streamed while `follow` until
//!   the container's attempt ends. Errors are `kind: Status` bodies, as the kubelet's.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Shared;
use super::pod_state::Phase;
use crate::logs::LogQuery;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// How long open connections (log followers) get to end after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn text(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(token: &str, header: Option<&str>) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    !token.is_empty() && constant_time_eq(given.trim().as_bytes(), token.as_bytes())
}

/// Go's `strconv.ParseBool`, with a bare `?follow` meaning true.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The query of a containerLogs request.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LogRequest {
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub since_seconds: Option<i64>,
    pub timestamps: bool,
    pub previous: bool,
}

pub(crate) fn parse_query(query: Option<&str>) -> Result<LogRequest, String> {
    let mut params = BTreeMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.insert(k, v);
    }
    let flag = |name: &str| -> Result<bool, String> {
        match params.get(name) {
            None => Ok(false),
            Some(v) => parse_bool(v).ok_or_else(|| format!("{name}: invalid boolean {v:?}")),
        }
    };
    let tail_lines = match params.get("tailLines") {
        None => None,
        Some(v) => {
            let n: i64 = v
                .parse()
                .map_err(|_| format!("tailLines: invalid value {v:?}"))?;
            if n < 0 {
                return Err("tailLines: Invalid value: must be greater than or equal to 0".into());
            }
            Some(usize::try_from(n).unwrap_or(usize::MAX))
        }
    };
    let since_seconds = match params.get("sinceSeconds") {
        None => None,
        Some(v) => {
            let n: i64 = v
                .parse()
                .map_err(|_| format!("sinceSeconds: invalid value {v:?}"))?;
            if n < 1 {
                return Err("sinceSeconds: Invalid value: must be greater than 0".into());
            }
            Some(n)
        }
    };
    Ok(LogRequest {
        follow: flag("follow")?,
        tail_lines,
        since_seconds,
        timestamps: flag("timestamps")?,
        previous: flag("previous")?,
    })
}

async fn handle(
    shared: &Shared,
    req: Request<Incoming>,
    cancel: &CancellationToken,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return text(full("ok"));
    }
    let Some(rest) = path.strip_prefix("/containerLogs/") else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("no such path {path}"),
        );
    };
    if req.method() != Method::GET {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "only GET is allowed",
        );
    }
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !authorized(&shared.config.node_token, auth) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let [namespace, pod, container] = parts.as_slice() else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "expected /containerLogs/{namespace}/{pod}/{container}",
        );
    };
    let query = match parse_query(req.uri().query()) {
        Ok(q) => q,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    let Some(h) = shared.find_pod(namespace, pod) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "pod \"{pod}\" in namespace \"{namespace}\" is not running on node \"{}\"",
                shared.config.node_name
            ),
        );
    };
    let Some(log) = h.logs.get(*container).cloned() else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("container \"{container}\" in pod \"{pod}\" not found"),
        );
    };
    let state = h.snapshot();
    let Some(c) = state
        .init_containers
        .iter()
        .chain(&state.containers)
        .find(|c| c.name == *container)
    else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("container \"{container}\" in pod \"{pod}\" not found"),
        );
    };
    let never_ran = c.restart_count == 0 && c.last.is_none();
    if query.previous && never_ran {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
        );
    }
    if let Phase::Waiting { reason, .. } = &c.phase
        && never_ran
        && !query.previous
        && log.read(&LogQuery::default()).is_empty()
    {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}"),
        );
    }
    let since = query.since_seconds.and_then(|s| {
        jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(s))
            .ok()
    });
    let log_query = LogQuery {
        tail_lines: query.tail_lines,
        since,
        timestamps: query.timestamps,
        previous: query.previous,
    };
    if query.follow && !query.previous {
        let stream = log
            .follow(log_query)
            .take_until(cancel.clone().cancelled_owned())
            .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
        return text(StreamBody::new(stream).boxed_unsync());
    }
    text(full(log.read(&log_query)))
}

/// Serves the agent API on `listener` until `cancel`.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let (stream, _peer) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "agent API: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        let cancel = cancel.clone();
        connections.spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let service_cancel = cancel.clone();
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                let cancel = service_cancel.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req, &cancel).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "agent API connection ended");
                    }
                }
                () = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let cases = [
            (None, Ok(LogRequest::default())),
            (
                Some("follow=true&tailLines=5&sinceSeconds=10&timestamps=1&previous=false"),
                Ok(LogRequest {
                    follow: true,
                    tail_lines: Some(5),
                    since_seconds: Some(10),
                    timestamps: true,
                    previous: false,
                }),
            ),
            (
                Some("follow"),
                Ok(LogRequest {
                    follow: true,
                    ..LogRequest::default()
                }),
            ),
            (Some("tailLines=-1"), Err(())),
            (Some("sinceSeconds=0"), Err(())),
            (Some("follow=maybe"), Err(())),
            (Some("tailLines=x"), Err(())),
        ];
        for (q, want) in cases {
            assert_eq!(parse_query(q).map_err(|_| ()), want, "{q:?}");
        }
    }

    #[test]
    fn bearer_tokens() {
        assert!(authorized("abc", Some("Bearer abc")));
        assert!(!authorized("abc", Some("Bearer abd")));
        assert!(!authorized("abc", Some("Basic abc")));
        assert!(!authorized("abc", None));
        assert!(!authorized("", Some("Bearer ")));
    }
}
