//! Watch: initial state, resume from any revision, selectors, bookmarks, 410 after
//! compaction, shutdown.

use http::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, Options, TestServer, configmap};
use crate::on_both_stores;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn rv(v: &Value) -> i64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

on_both_stores!(
    watch_streams_changes_in_order,
    watch_resumes_from_any_revision,
    watch_with_selectors_sees_transitions,
    watch_initial_events_and_bookmarks,
    watch_after_compaction_is_gone,
    shutdown_ends_watches,
);

async fn watch_streams_changes_in_order(s: TestServer) {
    let (_, list) = s.get(CMS).await;
    let mut w = s
        .watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&list)))
        .await;
    assert_eq!(w.status, StatusCode::OK);
    let (_, c) = s.post(CMS, configmap("a", json!({"x": "1"}))).await;
    s.patch(
        &format!("{CMS}/a"),
        "application/merge-patch+json",
        json!({"data": {"x": "2"}}),
    )
    .await;
    s.delete(&format!("{CMS}/a"), None).await;
    let ev = w.next_change().await.unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(rv(&ev["object"]), rv(&c));
    let ev = w.next_change().await.unwrap();
    assert_eq!(ev["type"], "MODIFIED");
    assert_eq!(ev["object"]["data"]["x"], "2");
    let ev = w.next_change().await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["metadata"]["name"], "a");
    // Other namespaces' objects are not in this namespace's watch.
    s.post(
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}),
    )
    .await;
    s.post(
        "/api/v1/namespaces/other/configmaps",
        configmap("o", json!({})),
    )
    .await;
    s.post(CMS, configmap("b", json!({}))).await;
    assert_eq!(w.next_pair().await, ("ADDED".into(), "b".into()));
}

async fn watch_resumes_from_any_revision(s: TestServer) {
    let mut revs = Vec::new();
    for i in 0..5 {
        let (_, c) = s.post(CMS, configmap(&format!("c{i}"), json!({}))).await;
        revs.push(rv(&c));
    }
    // From each revision: exactly the later creations, in order.
    for (i, r) in revs.iter().enumerate() {
        let mut w = s
            .watch(&format!("{CMS}?watch=true&resourceVersion={r}"))
            .await;
        for j in i + 1..5 {
            assert_eq!(w.next_pair().await, ("ADDED".into(), format!("c{j}")));
        }
    }
    // The item watch kubectl uses: one name, by field selector.
    let mut w = s
        .watch(&format!(
            "{CMS}?watch=true&fieldSelector=metadata.name%3Dc2&resourceVersion={}",
            revs[4]
        ))
        .await;
    s.delete(&format!("{CMS}/c1"), None).await;
    s.delete(&format!("{CMS}/c2"), None).await;
    assert_eq!(w.next_pair().await, ("DELETED".into(), "c2".into()));
}

async fn watch_with_selectors_sees_transitions(s: TestServer) {
    let (_, list) = s.get(CMS).await;
    let mut w = s
        .watch(&format!(
            "{CMS}?watch=true&labelSelector=app%3Dweb&resourceVersion={}",
            rv(&list)
        ))
        .await;
    s.post(CMS, configmap("x", json!({}))).await; // not matching
    s.patch(
        &format!("{CMS}/x"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"app": "web"}}}),
    )
    .await;
    s.patch(
        &format!("{CMS}/x"),
        "application/merge-patch+json",
        json!({"data": {"k": "v"}}),
    )
    .await;
    s.patch(
        &format!("{CMS}/x"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"app": "db"}}}),
    )
    .await;
    assert_eq!(
        w.next_pair().await,
        ("ADDED".into(), "x".into()),
        "starts matching: ADDED"
    );
    assert_eq!(w.next_pair().await, ("MODIFIED".into(), "x".into()));
    assert_eq!(
        w.next_pair().await,
        ("DELETED".into(), "x".into()),
        "stops matching: DELETED"
    );
}

async fn watch_initial_events_and_bookmarks(s: TestServer) {
    s.post(CMS, configmap("a", json!({}))).await;
    s.post(CMS, configmap("b", json!({}))).await;
    // No resourceVersion: the current state first, as ADDED.
    let mut w = s.watch(&format!("{CMS}?watch=true")).await;
    let mut seen = vec![w.next_pair().await, w.next_pair().await];
    seen.sort();
    assert_eq!(
        seen,
        [("ADDED".into(), "a".into()), ("ADDED".into(), "b".into())]
    );
    // kubectl 1.37: sendInitialEvents ends the initial state with a marked BOOKMARK.
    let mut w = s
        .watch(&format!("{CMS}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"))
        .await;
    let mut added = 0;
    loop {
        let ev = w.next().await.unwrap();
        match ev["type"].as_str().unwrap() {
            "ADDED" => added += 1,
            "BOOKMARK" => {
                assert_eq!(
                    ev["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
                    "true"
                );
                assert_eq!(ev["object"]["kind"], "ConfigMap");
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(added, 2);
    // Periodic bookmarks carry a resourceVersion to resume from.
    let write = s.post(CMS, configmap("c", json!({}))).await.1;
    let mut bookmark = None;
    for _ in 0..10 {
        let ev = w.next().await.unwrap();
        if ev["type"] == "BOOKMARK" {
            bookmark = Some(ev);
            break;
        }
    }
    let bookmark = bookmark.expect("a bookmark within 10 events");
    assert!(rv(&bookmark["object"]) >= rv(&write));
    // timeoutSeconds ends the stream.
    let mut short = s
        .watch(&format!(
            "{CMS}?watch=true&resourceVersion={}&timeoutSeconds=1",
            rv(&write)
        ))
        .await;
    assert!(short.next().await.is_none());
}

async fn watch_after_compaction_is_gone(s: TestServer) {
    let (_, first) = s.post(CMS, configmap("a", json!({}))).await;
    for i in 0..5 {
        s.patch(
            &format!("{CMS}/a"),
            "application/merge-patch+json",
            json!({"data": {"i": i.to_string()}}),
        )
        .await;
    }
    let current = s.store.status().await.unwrap().revision;
    s.store.compact(current).await.unwrap();
    // Inside the watch cache's window: still served.
    let mut w = s
        .watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&first)))
        .await;
    assert_eq!(w.status, StatusCode::OK);
    assert_eq!(w.next_pair().await.0, "MODIFIED");
    // Below the window and the store's history: 410.
    let small = TestServer::with_options(
        Backend::Embedded,
        Options {
            watch_cache_events: 2,
            ..Options::default()
        },
    )
    .await;
    let (_, f) = small.post(CMS, configmap("a", json!({}))).await;
    for i in 0..5 {
        small
            .patch(
                &format!("{CMS}/a"),
                "application/merge-patch+json",
                json!({"data": {"i": i.to_string()}}),
            )
            .await;
    }
    let w = small
        .watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&f)))
        .await;
    assert_eq!(
        w.status,
        StatusCode::OK,
        "below the cache window the store serves it"
    );
    let current = small.store.status().await.unwrap().revision;
    small.store.compact(current).await.unwrap();
    let w = small
        .watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&f)))
        .await;
    assert_eq!(w.status, StatusCode::GONE);
    let (st, body) = small
        .get(&format!(
            "{CMS}?resourceVersion={}&resourceVersionMatch=Exact",
            rv(&f)
        ))
        .await;
    assert_eq!(st, StatusCode::GONE, "{body}");
    assert_eq!(body["reason"], "Expired");
}

async fn shutdown_ends_watches(s: TestServer) {
    let mut w = s.watch(&format!("{CMS}?watch=true")).await;
    s.shutdown().await;
    assert!(w.next().await.is_none(), "the watch ends cleanly");
}
