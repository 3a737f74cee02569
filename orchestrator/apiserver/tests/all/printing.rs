//! What kubectl asks for beyond plain JSON: Tables for get/list/watch, OpenAPI v3.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestServer, deployment, pod};
use crate::on_both_stores;

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

async fn get_as_table(s: &TestServer, path: &str) -> (StatusCode, Value) {
    let req = http::Request::builder()
        .uri(format!("{}{path}", s.url))
        .header("Authorization", format!("Bearer {}", s.token))
        .header("Accept", TABLE)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

on_both_stores!(
    tables_for_get_and_list,
    openapi_v3_advertises_field_validation
);

async fn tables_for_get_and_list(s: TestServer) {
    s.post("/api/v1/namespaces/default/pods", pod("web")).await;
    s.post(
        "/apis/apps/v1/namespaces/default/deployments",
        deployment("d", 3),
    )
    .await;
    let (st, t) = get_as_table(&s, "/api/v1/namespaces/default/pods?limit=500").await;
    assert_eq!(st, StatusCode::OK, "{t}");
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(&cols[..5], ["Name", "Ready", "Status", "Restarts", "Age"]);
    assert_eq!(t["rows"][0]["cells"][0], "web");
    assert_eq!(t["rows"][0]["cells"][1], "0/1");
    assert_eq!(t["rows"][0]["cells"][2], "Pending");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["metadata"]["labels"]["app"], "web");
    assert!(t["metadata"]["resourceVersion"].is_string());

    let (_, d) = get_as_table(&s, "/apis/apps/v1/namespaces/default/deployments/d").await;
    assert_eq!(d["rows"][0]["cells"][1], "0/3");
    assert_eq!(d["rows"].as_array().unwrap().len(), 1);

    // Cluster-wide lists and includeObject=Object.
    let (_, ns) = get_as_table(&s, "/api/v1/namespaces?includeObject=Object").await;
    assert_eq!(ns["rows"][0]["object"]["kind"], "Namespace");
    assert_eq!(ns["rows"][0]["cells"][1], "Active");

    // Watch events are one-row Tables, the column definitions only in the first.
    let (_, list) = s.get("/api/v1/namespaces/default/pods").await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let req = http::Request::builder()
        .uri(format!(
            "{}/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}",
            s.url
        ))
        .header("Authorization", format!("Bearer {}", s.token))
        .header("Accept", TABLE)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let mut resp = client.request(req).await.unwrap().into_body();
    s.post("/api/v1/namespaces/default/pods", pod("a")).await;
    s.post("/api/v1/namespaces/default/pods", pod("b")).await;
    let mut buf = Vec::new();
    let mut events = Vec::new();
    while events.len() < 2 {
        let frame = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            http_body_util::BodyExt::frame(&mut resp),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        if let Ok(d) = frame.into_data() {
            buf.extend_from_slice(&d);
        }
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            events.push(serde_json::from_slice::<Value>(&line).unwrap());
        }
    }
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["kind"], "Table");
    assert_eq!(events[0]["object"]["rows"][0]["cells"][0], "a");
    assert!(
        !events[0]["object"]["columnDefinitions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        events[1]["object"]["columnDefinitions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(events[1]["object"]["rows"][0]["cells"][0], "b");

    let (st, body) = s
        .get("/api/v1/namespaces/default/pods?includeObject=All")
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
}

async fn openapi_v3_advertises_field_validation(s: TestServer) {
    let (st, root) = s.get("/openapi/v3").await;
    assert_eq!(st, StatusCode::OK);
    let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, doc) = s.call(Method::GET, &url, None, None).await;
    assert_eq!(st, StatusCode::OK, "{doc}");
    let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        op["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    let (st, _) = s.get("/openapi/v2").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
