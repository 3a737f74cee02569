//! Events: found by involvedObject field selectors in any term order (kubectl describe),
//! and gone after their TTL, updates included.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, Options, TestServer};

const EVENTS: &str = "/api/v1/namespaces/default/events";

fn event(name: &str, pod: &str, uid: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": pod, "uid": uid},
        "reason": "Scheduled", "message": format!("assigned {pod}"), "type": "Normal", "count": 1})
}

async fn events_expire(backend: Backend) {
    let s = TestServer::with_options(
        backend,
        Options {
            event_ttl: Duration::from_secs(2),
            ..Options::default()
        },
    )
    .await;
    let (st, body) = s.post(EVENTS, event("e1", "web", "u1")).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    s.post(EVENTS, event("e2", "db", "u2")).await;
    // kubectl 1.32 and 1.37 order the terms differently.
    for sel in [
        "involvedObject.name%3Dweb%2CinvolvedObject.namespace%3Ddefault%2CinvolvedObject.uid%3Du1",
        "involvedObject.namespace%3Ddefault%2CinvolvedObject.uid%3Du1%2CinvolvedObject.name%3Dweb",
    ] {
        let (_, l) = s.get(&format!("{EVENTS}?fieldSelector={sel}")).await;
        let names: Vec<&str> = l["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["e1"], "{sel}");
    }
    // An update (count++) keeps the TTL.
    let (st, _) = s
        .patch(
            &format!("{EVENTS}/e1"),
            "application/merge-patch+json",
            json!({"count": 2}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, l) = s.get(EVENTS).await;
        if l["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events still there after 20 s: {l}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // New events after the expiry get a fresh lease.
    let (st, body) = s.post(EVENTS, event("e3", "web", "u1")).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_expire_embedded() {
    events_expire(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_expire_etcd() {
    events_expire(Backend::Etcd).await;
}
