//! The node's service proxy (kube-proxy's job, for HTTP components): a real listener on
//! every NodePort of every Service, load-balancing requests round-robin over the
//! Service's ready endpoints — handed in memory to the pod's HTTP component when the
//! endpoint runs on this node, relayed to the owning node otherwise. Pods need no host
//! ports at all; this is how traffic enters the cluster.
//!
//! ```text
//!  client ──TCP──▶ node A :30080 ──Endpoints(svc)──▶ pod on A? ──▶ HttpService::handle (in memory)
//!                                                 └─ pod on B  ──▶ node B :30080 (x-skiff-forwarded: serve locally)
//! ```
//!
//! Listeners follow the Services (level-triggered: every change recomputes the wanted
//! set of ports and opens/closes the difference). A port that cannot be bound is retried.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::Value;
use skiff_api::registry;
use skiff_client::{Client, Informer, ListParams, ObjectKey};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::HttpEndpoint;
use crate::http::HttpResponse;

/// The header a relayed request carries: the receiving node serves it locally only.
pub const FORWARDED: &str = "x-skiff-forwarded";
/// How often ports that could not be bound are tried again.
const RETRY_BIND: Duration = Duration::from_secs(5);

/// Where the proxy finds the HTTP components running on this node.
pub trait LocalEndpoints: Send + Sync + 'static {
    /// The HTTP component of pod `namespace/pod` serving `port`, if it runs here. The
    /// request is counted in flight while the endpoint is held, so a terminating pod
    /// lets it finish.
    fn http_endpoint(&self, namespace: &str, pod: &str, port: u16) -> Option<HttpEndpoint>;
}

/// The service proxy's settings.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub node_name: String,
    /// The address NodePorts are bound on (`--node-ip`, or 0.0.0.0).
    pub bind_ip: IpAddr,
}

/// One NodePort: which Service port it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PortTarget {
    service: ObjectKey,
    /// The Service port's name ("" for a single unnamed port).
    port_name: String,
}

/// Runs the proxy until `cancel`.
pub async fn run(
    config: ProxyConfig,
    client: Client,
    local: Arc<dyn LocalEndpoints>,
    cancel: CancellationToken,
) {
    let services = Informer::new(client.clone(), &registry::SERVICE, ListParams::default());
    let endpoints = Informer::new(client.clone(), &registry::ENDPOINTS, ListParams::default());
    let nodes = Informer::new(client, &registry::NODE, ListParams::default());
    let tasks = TaskTracker::new();
    for informer in [&services, &endpoints, &nodes] {
        let informer = informer.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move { informer.run(cancel).await });
    }
    let state = Arc::new(State {
        config: config.clone(),
        endpoints,
        nodes,
        local,
        next: AtomicUsize::new(0),
        relay: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http(),
    });
    let mut changes = services.subscribe();
    let mut listeners: HashMap<u16, (PortTarget, CancellationToken)> = HashMap::new();
    loop {
        if services.has_synced() {
            let wanted = node_ports(&services.list());
            listeners.retain(|port, (target, stop)| {
                let keep = wanted.get(port) == Some(target) && !stop.is_cancelled();
                if !keep {
                    stop.cancel();
                }
                keep
            });
            for (port, target) in wanted {
                if listeners.contains_key(&port) {
                    continue;
                }
                let addr = SocketAddr::new(config.bind_ip, port);
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(listener) => {
                        tracing::info!(%addr, service = %target.service, "node port open");
                        let stop = cancel.child_token();
                        listeners.insert(port, (target.clone(), stop.clone()));
                        tasks.spawn(serve(listener, port, target, state.clone(), stop));
                    }
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "cannot open node port; retrying")
                    }
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = changes.recv() => {}
            _ = services.synced(), if !services.has_synced() => {}
            _ = tokio::time::sleep(RETRY_BIND) => {}
        }
    }
    tasks.close();
    tasks.wait().await;
}

/// NodePort → the Service port it serves, for every NodePort/LoadBalancer Service.
fn node_ports(services: &[Arc<Value>]) -> BTreeMap<u16, PortTarget> {
    let mut wanted = BTreeMap::new();
    for svc in services {
        let kind = svc.pointer("/spec/type").and_then(Value::as_str);
        if !matches!(kind, Some("NodePort" | "LoadBalancer")) {
            continue;
        }
        let Some(service) = ObjectKey::of(svc) else {
            continue;
        };
        for port in svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(node_port) = port.get("nodePort").and_then(Value::as_u64) else {
                continue;
            };
            let Ok(node_port) = u16::try_from(node_port) else {
                continue;
            };
            wanted.insert(
                node_port,
                PortTarget {
                    service: service.clone(),
                    port_name: port
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                },
            );
        }
    }
    wanted
}

/// A ready endpoint of a Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Endpoint {
    namespace: String,
    pod: String,
    node: String,
    port: u16,
}

/// The ready endpoints of `port_name` in an Endpoints object.
fn ready_endpoints(endpoints: &Value, port_name: &str) -> Vec<Endpoint> {
    let namespace = endpoints
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let mut out = Vec::new();
    for subset in endpoints
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ports = subset.get("ports").and_then(Value::as_array);
        let Some(port) = ports
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
        else {
            continue;
        };
        let Some(port) = port
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for address in subset
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = |p: &str| address.pointer(p).and_then(Value::as_str).unwrap_or("");
            if text("/targetRef/name").is_empty() {
                continue;
            }
            out.push(Endpoint {
                namespace: namespace.to_string(),
                pod: text("/targetRef/name").to_string(),
                node: text("/nodeName").to_string(),
                port,
            });
        }
    }
    out
}

struct State {
    config: ProxyConfig,
    endpoints: Informer,
    nodes: Informer,
    local: Arc<dyn LocalEndpoints>,
    next: AtomicUsize,
    relay: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Incoming,
    >,
}

fn text_response(status: u16, text: String) -> HttpResponse {
    let body = Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    response
}

impl State {
    async fn handle(
        &self,
        target: &PortTarget,
        node_port: u16,
        mut request: hyper::Request<Incoming>,
    ) -> HttpResponse {
        let forwarded = request.headers().contains_key(FORWARDED);
        let mut candidates = self
            .endpoints
            .get(&target.service)
            .map(|ep| ready_endpoints(&ep, &target.port_name))
            .unwrap_or_default();
        let me = &self.config.node_name;
        if forwarded {
            candidates.retain(|e| &e.node == me);
        }
        if candidates.is_empty() {
            return text_response(
                503,
                format!("no ready endpoints for service {}\n", target.service),
            );
        }
        let pick = self.next.fetch_add(1, Ordering::Relaxed) % candidates.len();
        let endpoint = &candidates[pick];
        if &endpoint.node == me {
            return match self
                .local
                .http_endpoint(&endpoint.namespace, &endpoint.pod, endpoint.port)
            {
                Some(service) => service.handle(request).await,
                None => text_response(
                    503,
                    format!(
                        "pod {}/{} is not serving port {} on this node\n",
                        endpoint.namespace, endpoint.pod, endpoint.port
                    ),
                ),
            };
        }
        let Some(ip) = self.node_ip(&endpoint.node) else {
            return text_response(502, format!("node {} has no address\n", endpoint.node));
        };
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let uri = format!("http://{}{path}", SocketAddr::new(ip, node_port));
        match uri.parse() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(e) => return text_response(400, format!("bad request path: {e}\n")),
        }
        request
            .headers_mut()
            .insert(FORWARDED, hyper::header::HeaderValue::from_static("1"));
        match self.relay.request(request).await {
            Ok(response) => {
                response.map(|body| body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync())
            }
            Err(e) => text_response(
                502,
                format!("relaying to node {} failed: {e}\n", endpoint.node),
            ),
        }
    }

    fn node_ip(&self, node: &str) -> Option<IpAddr> {
        let node = self.nodes.get(&ObjectKey::new(None, node))?;
        node.pointer("/status/addresses")?
            .as_array()?
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))?
            .get("address")?
            .as_str()?
            .parse()
            .ok()
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    node_port: u16,
    target: PortTarget,
    state: Arc<State>,
    stop: CancellationToken,
) {
    let connections = TaskTracker::new();
    let target = Arc::new(target);
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let target = target.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let target = target.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(state.handle(&target, node_port, req).await)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn.as_mut()).await;
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
    use serde_json::json;

    #[test]
    fn node_ports_of_services() {
        let svcs = vec![
            Arc::new(json!({"metadata": {"namespace": "d", "name": "web"},
                "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}})),
            Arc::new(json!({"metadata": {"namespace": "d", "name": "internal"},
                "spec": {"ports": [{"port": 80}]}})),
        ];
        let wanted = node_ports(&svcs);
        assert_eq!(wanted.len(), 1);
        assert_eq!(wanted[&30080].service.to_string(), "d/web");
        assert_eq!(wanted[&30080].port_name, "http");
    }

    #[test]
    fn ready_endpoints_of_a_port() {
        let ep = json!({"metadata": {"namespace": "d", "name": "web"}, "subsets": [
            {"ports": [{"name": "http", "port": 8080}],
             "addresses": [{"ip": "10.42.0.2", "nodeName": "n1", "targetRef": {"name": "web-a"}}],
             "notReadyAddresses": [{"ip": "10.42.0.3", "nodeName": "n1", "targetRef": {"name": "web-b"}}]},
            {"ports": [{"name": "metrics", "port": 9090}],
             "addresses": [{"ip": "10.42.0.4", "nodeName": "n2", "targetRef": {"name": "web-c"}}]},
        ]});
        let got = ready_endpoints(&ep, "http");
        assert_eq!(
            got,
            vec![Endpoint {
                namespace: "d".into(),
                pod: "web-a".into(),
                node: "n1".into(),
                port: 8080
            }]
        );
        assert!(ready_endpoints(&ep, "nope").is_empty());
    }
}
