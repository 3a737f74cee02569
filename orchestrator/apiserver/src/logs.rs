//! `pods/{name}/log`: proxied to the agent of the node that runs the pod, like the
//! kube-apiserver proxies to the kubelet.
//!
//! The agent's contract (the node runtime implements it): `GET
//! {scheme}://{node address}:{port}/containerLogs/{namespace}/{pod}/{container}` with the
//! query parameters `follow`, `tailLines`, `sinceSeconds`, `timestamps`, `previous`,
//! authenticated with `Authorization: Bearer <node token>`, answering `text/plain`
//! (streamed while `follow`) or a `kind: Status` error. The address is the Node's first
//! `InternalIP` (else `Hostname`) in `status.addresses`, the port
//! `status.daemonEndpoints.kubeletEndpoint.Port`.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;

use crate::body::Body;
use crate::error::ApiError;
use crate::query::Query;
use crate::resources::{self, Resource};

/// The client the server uses to reach node agents.
pub type AgentClient = Client<HttpConnector, Empty<Bytes>>;

pub fn agent_client() -> AgentClient {
    Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// Where to reach a node's agent, from its Node object.
pub fn agent_endpoint(node: &Value) -> Option<(String, i64)> {
    let addresses = node.pointer("/status/addresses")?.as_array()?;
    let pick = |kind: &str| {
        addresses
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(kind))
            .and_then(|a| a.get("address").and_then(Value::as_str))
    };
    let address = pick("InternalIP").or_else(|| pick("Hostname"))?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_i64)
        .filter(|p| (1..=65535).contains(p))?;
    Some((address.to_string(), port))
}

/// The container whose logs are asked for: the named one, or the only one.
pub fn pick_container(pod: &Value, name: &str, wanted: Option<&str>) -> Result<String, ApiError> {
    let names: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    match wanted {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

fn agent_query(q: &Query) -> String {
    let mut parts = Vec::new();
    if q.follow {
        parts.push("follow=true".to_string());
    }
    if let Some(n) = q.tail_lines {
        parts.push(format!("tailLines={n}"));
    }
    if let Some(s) = q.since_seconds {
        parts.push(format!("sinceSeconds={s}"));
    }
    if q.timestamps {
        parts.push("timestamps=true".to_string());
    }
    if q.previous {
        parts.push("previous=true".to_string());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Looks up the pod and its node, then streams the agent's answer back.
pub async fn proxy(
    api: &crate::handler::Api,
    r: Resource,
    ns: Option<&str>,
    name: &str,
    q: &Query,
) -> Result<Response<Body>, ApiError> {
    if q.tail_lines.is_some_and(|n| n < 0) {
        return Err(ApiError::bad_request(
            "tailLines: Invalid value: must be greater than or equal to 0",
        ));
    }
    if q.since_seconds.is_some_and(|n| n < 1) {
        return Err(ApiError::bad_request(
            "sinceSeconds: Invalid value: must be greater than 0",
        ));
    }
    let pod = api
        .get_object(r, ns, name)
        .await?
        .ok_or_else(|| ApiError::not_found(r.group, r.plural, name))?;
    let container = pick_container(&pod, name, q.container.as_deref())?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: the pod is not scheduled to a node yet"
            ))
        })?;
    let nodes = resources::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("the nodes kind is not registered"))?;
    let node = api
        .get_object(nodes, None, node_name)
        .await?
        .ok_or_else(|| {
            ApiError::service_unavailable(format!(
                "pod {name} is bound to node {node_name}, which does not exist"
            ))
        })?;
    let (address, port) = agent_endpoint(&node).ok_or_else(|| {
        ApiError::service_unavailable(format!(
            "node {node_name} reports no agent address (status.addresses and status.daemonEndpoints)"
        ))
    })?;
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address.clone()
    };
    let url = format!(
        "http://{host}:{port}/containerLogs/{}/{name}/{container}{}",
        ns.unwrap_or_default(),
        agent_query(q)
    );
    let req = Request::builder()
        .uri(&url)
        .header(header::AUTHORIZATION, format!("Bearer {}", api.node_token))
        .body(Empty::new())
        .map_err(|e| ApiError::internal(format!("agent request for {url}: {e}")))?;
    let resp = api.agent_client.request(req).await.map_err(|e| {
        ApiError::service_unavailable(format!(
            "cannot reach the agent of node {node_name} at {address}:{port}: {e}"
        ))
    })?;
    let status = resp.status();
    if status.is_success() {
        // Stream the agent's body through; an agent that breaks off mid-stream just ends
        // the log (there is no way to report an error inside a plain-text body).
        let frames = futures::stream::unfold(resp.into_body(), |mut body| async move {
            match body.frame().await {
                Some(Ok(frame)) => Some((Ok::<_, std::convert::Infallible>(frame), body)),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "agent log stream broke off");
                    None
                }
                None => None,
            }
        });
        let mut out = Response::new(http_body_util::StreamBody::new(frames).boxed_unsync());
        out.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Ok(out);
    }
    // The agent's own Status when it sent one; otherwise say what happened.
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.get("kind").and_then(Value::as_str) == Some("Status") => {
            Ok(crate::body::json(status, &v, &[]))
        }
        _ => Err(ApiError::service_unavailable(format!(
            "the agent of node {node_name} answered {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
        ))),
    }
}
