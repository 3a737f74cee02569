//! `pods/{name}/log` is proxied to the node's agent. The agent here is a small HTTP
//! server on loopback that speaks the agent's side of the contract (see
//! `skiff_apiserver::logs`); the node runtime provides the real one.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

use crate::harness::{TestServer, pod};
use crate::on_both_stores;

const PODS: &str = "/api/v1/namespaces/default/pods";

/// Serves `/containerLogs/...`, recording each request's path, query and token.
async fn agent(seen: Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        seen.lock().unwrap().push(format!("{} {}", req.uri(), auth));
                        let resp = if req.uri().path().ends_with("/missing") {
                            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "container missing has no logs"});
                            Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::from(status.to_string())))
                                .unwrap()
                        } else {
                            Response::new(Full::new(Bytes::from("line 1\nline 2\n")))
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

on_both_stores!(logs_are_proxied_to_the_agent);

async fn logs_are_proxied_to_the_agent(s: TestServer) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let port = agent(seen.clone()).await;
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}});
    let (st, body) = s.post("/api/v1/nodes", node).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    // Not scheduled yet: a clear 400.
    s.post(PODS, pod("web")).await;
    let (st, body) = s.get(&format!("{PODS}/web/log")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("not scheduled"),
        "{body}"
    );
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web"}, "target": {"kind": "Node", "name": "n1"}});
    s.call(
        http::Method::POST,
        &format!("{PODS}/web/binding"),
        None,
        Some(binding),
    )
    .await;

    let (st, _, bytes) = s
        .raw(
            http::Method::GET,
            &format!("{PODS}/web/log?tailLines=2&timestamps=true&follow=true"),
            None,
            vec![],
            Some(&s.token),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(&bytes[..], b"line 1\nline 2\n");
    let request = seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        request.starts_with(
            "/containerLogs/default/web/main?follow=true&tailLines=2&timestamps=true "
        ),
        "{request}"
    );
    assert!(
        request.ends_with(&format!("Bearer {}", s.node_token)),
        "the agent sees the node token: {request}"
    );

    // A wrong container name is refused by the server, naming it.
    let (st, body) = s.get(&format!("{PODS}/web/log?container=nope")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "container nope is not valid for pod web");
    // The agent's own Status passes through.
    let mut two = pod("two");
    two["spec"]["containers"] = json!([{"name": "main", "image": "file:///a.wasm"}, {"name": "missing", "image": "file:///b.wasm"}]);
    two["spec"]["nodeName"] = json!("n1");
    s.post(PODS, two).await;
    let (st, body) = s.get(&format!("{PODS}/two/log")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("choose one of: [main missing]"),
        "{body}"
    );
    let (st, body) = s.get(&format!("{PODS}/two/log?container=missing")).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["message"], "container missing has no logs");
    // A node whose agent is gone: 503 naming the node.
    let gone = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": 1}}}});
    s.post("/api/v1/nodes", gone).await;
    let mut p3 = pod("p3");
    p3["spec"]["nodeName"] = json!("n2");
    s.post(PODS, p3).await;
    let (st, body) = s.get(&format!("{PODS}/p3/log")).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("node n2"),
        "{body}"
    );
}
