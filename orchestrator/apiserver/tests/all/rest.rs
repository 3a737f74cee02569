//! CRUD, conflicts, generation, subresources, patches, deletion, errors, auth.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestServer, configmap, deployment, pod};
use crate::on_both_stores;

const PODS: &str = "/api/v1/namespaces/default/pods";
const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn rv(v: &Value) -> i64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

on_both_stores!(
    crud_round_trip,
    stale_update_conflicts,
    generation_counts_spec_changes,
    status_subresource_is_separate,
    scale_subresource,
    patches,
    finalizers_delay_deletion,
    propagation_policies_set_finalizers,
    graceful_pod_deletion_waits_for_node,
    bad_requests_write_nothing,
    selectors_and_pagination,
    dry_run_writes_nothing,
    binding,
    system_namespaces_and_discovery,
);

async fn crud_round_trip(s: TestServer) {
    let (st, created) = s.post(CMS, configmap("c1", json!({"k": "v"}))).await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    assert!(created["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert!(created["metadata"]["creationTimestamp"].is_string());
    let r1 = rv(&created);

    let (st, got) = s.get(&format!("{CMS}/c1")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(got["data"]["k"], "v");
    assert_eq!(rv(&got), r1);

    let (st, again) = s.post(CMS, configmap("c1", json!({}))).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(again["reason"], "AlreadyExists");
    assert_eq!(again["message"], "configmaps \"c1\" already exists");

    let mut upd = got.clone();
    upd["data"]["k"] = json!("v2");
    let (st, updated) = s.put(&format!("{CMS}/c1"), upd).await;
    assert_eq!(st, StatusCode::OK, "{updated}");
    assert!(rv(&updated) > r1);
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);

    let (st, list) = s.get(CMS).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(rv(&list) >= rv(&updated));

    let (st, _) = s.delete(&format!("{CMS}/c1"), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, gone) = s.get(&format!("{CMS}/c1")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(gone["kind"], "Status");
    assert_eq!(gone["reason"], "NotFound");
    assert_eq!(gone["code"], 404);
    let (st, _) = s.delete(&format!("{CMS}/c1"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

async fn stale_update_conflicts(s: TestServer) {
    let (_, created) = s.post(CMS, configmap("c", json!({"a": "1"}))).await;
    let mut first = created.clone();
    first["data"]["a"] = json!("2");
    let (st, _) = s.put(&format!("{CMS}/c"), first).await;
    assert_eq!(st, StatusCode::OK);
    let mut stale = created.clone();
    stale["data"]["a"] = json!("3");
    let (st, body) = s.put(&format!("{CMS}/c"), stale).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["reason"], "Conflict");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );
    let (_, now) = s.get(&format!("{CMS}/c")).await;
    assert_eq!(now["data"]["a"], "2");
    // Without a resourceVersion the update is unconditional.
    let mut blind = now.clone();
    blind["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    blind["data"]["a"] = json!("4");
    let (st, _) = s.put(&format!("{CMS}/c"), blind).await;
    assert_eq!(st, StatusCode::OK);
    // Name in the body must match the URL.
    let mut other = now.clone();
    other["metadata"]["name"] = json!("d");
    let (st, body) = s.put(&format!("{CMS}/c"), other).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
}

async fn generation_counts_spec_changes(s: TestServer) {
    let (st, d) = s.post(DEPLOYS, deployment("web", 1)).await;
    assert_eq!(st, StatusCode::CREATED, "{d}");
    assert_eq!(d["metadata"]["generation"], 1);
    // Defaults were applied.
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);

    let mut labels_only = d.clone();
    labels_only["metadata"]["labels"] = json!({"team": "a"});
    let (_, d2) = s.put(&format!("{DEPLOYS}/web"), labels_only).await;
    assert_eq!(
        d2["metadata"]["generation"], 1,
        "metadata changes keep generation"
    );

    let mut spec = d2.clone();
    spec["spec"]["replicas"] = json!(3);
    let (_, d3) = s.put(&format!("{DEPLOYS}/web"), spec).await;
    assert_eq!(d3["metadata"]["generation"], 2);
}

async fn status_subresource_is_separate(s: TestServer) {
    let (_, d) = s.post(DEPLOYS, deployment("web", 1)).await;
    // A status sent to the main resource is ignored.
    let mut with_status = d.clone();
    with_status["status"] = json!({"replicas": 5});
    with_status["spec"]["replicas"] = json!(2);
    let (st, d2) = s.put(&format!("{DEPLOYS}/web"), with_status).await;
    assert_eq!(st, StatusCode::OK, "{d2}");
    assert!(d2["status"].get("replicas").is_none(), "{d2}");
    assert_eq!(d2["spec"]["replicas"], 2);
    // The status subresource changes status only.
    let mut st_body = d2.clone();
    st_body["status"] = json!({"replicas": 2, "observedGeneration": 2});
    st_body["spec"]["replicas"] = json!(9);
    let (st, d3) = s.put(&format!("{DEPLOYS}/web/status"), st_body).await;
    assert_eq!(st, StatusCode::OK, "{d3}");
    assert_eq!(d3["status"]["replicas"], 2);
    assert_eq!(d3["spec"]["replicas"], 2);
    assert_eq!(d3["metadata"]["generation"], d2["metadata"]["generation"]);
    // Merge patch on status.
    let (st, d4) = s
        .patch(
            &format!("{DEPLOYS}/web/status"),
            "application/merge-patch+json",
            json!({"status": {"readyReplicas": 1}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{d4}");
    assert_eq!(d4["status"]["readyReplicas"], 1);
    // ConfigMaps have no status subresource.
    s.post(CMS, configmap("c", json!({}))).await;
    let (st, _) = s.get(&format!("{CMS}/c/status")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

async fn scale_subresource(s: TestServer) {
    s.post(DEPLOYS, deployment("web", 1)).await;
    let (st, scale) = s.get(&format!("{DEPLOYS}/web/scale")).await;
    assert_eq!(st, StatusCode::OK, "{scale}");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 1);
    assert_eq!(scale["status"]["selector"], "app=web");
    // kubectl scale: merge patch on /scale.
    let (st, scaled) = s
        .patch(
            &format!("{DEPLOYS}/web/scale"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": 4}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{scaled}");
    assert_eq!(scaled["spec"]["replicas"], 4);
    let (_, d) = s.get(&format!("{DEPLOYS}/web")).await;
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["metadata"]["generation"], 2);
    let (st, bad) = s
        .patch(
            &format!("{DEPLOYS}/web/scale"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": -1}}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    // Pods have no scale.
    let (st, _) = s.get(&format!("{PODS}/x/scale")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

async fn patches(s: TestServer) {
    s.post(CMS, configmap("c", json!({"a": "1", "b": "2"})))
        .await;
    let (st, m) = s
        .patch(
            &format!("{CMS}/c"),
            "application/merge-patch+json",
            json!({"data": {"a": null, "c": "3"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert_eq!(m["data"], json!({"b": "2", "c": "3"}));
    let (st, j) = s
        .patch(
            &format!("{CMS}/c"),
            "application/json-patch+json",
            json!([{"op": "replace", "path": "/data/b", "value": "x"}, {"op": "add", "path": "/metadata/labels", "value": {"l": "1"}}]),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{j}");
    assert_eq!(j["data"]["b"], "x");
    assert_eq!(j["metadata"]["labels"]["l"], "1");
    // A failing test op changes nothing.
    let (st, _) = s
        .patch(&format!("{CMS}/c"), "application/json-patch+json", json!([{"op": "test", "path": "/data/b", "value": "nope"}, {"op": "remove", "path": "/data"}]))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, now) = s.get(&format!("{CMS}/c")).await;
    assert_eq!(now["data"]["b"], "x");
    // Precondition through a patched resourceVersion.
    let (st, _) = s
        .patch(
            &format!("{CMS}/c"),
            "application/merge-patch+json",
            json!({"metadata": {"resourceVersion": "1"}, "data": {"z": "1"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // Strategic merge patch on a map.
    let (st, body) = s
        .patch(
            &format!("{CMS}/c"),
            "application/strategic-merge-patch+json",
            json!({"data": {"q": "1"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["q"], "1");
    assert_eq!(body["data"]["b"], "x");
    // Server-side apply is not served: 415 pointing to client-side apply.
    let (st, body) = s
        .patch(
            &format!("{CMS}/c"),
            "application/apply-patch+yaml",
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["reason"], "UnsupportedMediaType");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("client-side apply")
    );
    // A patch that makes the object invalid is refused with the field named.
    let (st, body) = s
        .patch(
            &format!("{CMS}/c"),
            "application/merge-patch+json",
            json!({"data": {"bad key!": "1"}}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["details"]["causes"][0]["field"]
            .as_str()
            .unwrap()
            .starts_with("data"),
        "{body}"
    );
    let (st, _) = s
        .patch(
            &format!("{CMS}/missing"),
            "application/merge-patch+json",
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

async fn finalizers_delay_deletion(s: TestServer) {
    let mut cm = configmap("f", json!({}));
    cm["metadata"]["finalizers"] = json!(["example.com/hold"]);
    s.post(CMS, cm).await;
    let (st, marked) = s.delete(&format!("{CMS}/f"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    let (st, still) = s.get(&format!("{CMS}/f")).await;
    assert_eq!(st, StatusCode::OK);
    // New finalizers cannot be added while deleting.
    let (st, _) = s
        .patch(
            &format!("{CMS}/f"),
            "application/merge-patch+json",
            json!({"metadata": {"finalizers": ["example.com/hold", "x/y"]}}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    // Removing the last finalizer deletes the object.
    let mut clear = still.clone();
    clear["metadata"]["finalizers"] = json!([]);
    let (st, _) = s.put(&format!("{CMS}/f"), clear).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.get(&format!("{CMS}/f")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

async fn propagation_policies_set_finalizers(s: TestServer) {
    s.post(DEPLOYS, deployment("fg", 1)).await;
    let (st, fg) = s
        .delete(
            &format!("{DEPLOYS}/fg"),
            Some(json!({"propagationPolicy": "Foreground"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(fg["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    assert!(fg["metadata"]["deletionTimestamp"].is_string());

    s.post(DEPLOYS, deployment("or", 1)).await;
    let (_, or) = s
        .delete(&format!("{DEPLOYS}/or?propagationPolicy=Orphan"), None)
        .await;
    assert_eq!(or["metadata"]["finalizers"], json!(["orphan"]));

    s.post(DEPLOYS, deployment("bg", 1)).await;
    let (st, _) = s
        .delete(
            &format!("{DEPLOYS}/bg"),
            Some(json!({"propagationPolicy": "Background"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.get(&format!("{DEPLOYS}/bg")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (st, body) = s
        .delete(
            &format!("{DEPLOYS}/fg"),
            Some(json!({"propagationPolicy": "Sometimes"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    // Preconditions.
    s.post(CMS, configmap("p", json!({}))).await;
    let (st, _) = s
        .delete(
            &format!("{CMS}/p"),
            Some(json!({"preconditions": {"uid": "not-it"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
}

async fn graceful_pod_deletion_waits_for_node(s: TestServer) {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
    let (st, body) = s.post("/api/v1/nodes", node).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    s.post(PODS, pod("p")).await;
    let (st, _) = s
        .call(Method::POST, &format!("{PODS}/p/binding"), None, Some(json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}})))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, marked) = s.delete(&format!("{PODS}/p"), None).await;
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    let (st, _) = s.get(&format!("{PODS}/p")).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "a bound pod stays until its node confirms"
    );
    // The node confirms with grace 0.
    let (st, _) = s
        .delete(&format!("{PODS}/p"), Some(json!({"gracePeriodSeconds": 0})))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.get(&format!("{PODS}/p")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // An unscheduled pod goes at once.
    s.post(PODS, pod("q")).await;
    s.delete(&format!("{PODS}/q"), None).await;
    let (st, _) = s.get(&format!("{PODS}/q")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

async fn bad_requests_write_nothing(s: TestServer) {
    let before = s.store.status().await.unwrap().revision;
    let path = PODS;
    let cases: Vec<(Vec<u8>, Option<&str>, StatusCode, &str)> = vec![
        (
            b"{not json".to_vec(),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            b"[1,2]".to_vec(),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
            "object",
        ),
        (
            b"".to_vec(),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
            "empty",
        ),
        (
            b"kind: Pod\n".to_vec(),
            Some("text/html"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unknown format",
        ),
        (
            serde_json::to_vec(
                &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
            )
            .unwrap(),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
            "kind",
        ),
        (
            serde_json::to_vec(
                &json!({"apiVersion": "apps/v1", "kind": "Pod", "metadata": {"name": "x"}}),
            )
            .unwrap(),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
            "API version",
        ),
    ];
    for (body, ct, want, needle) in cases {
        let (st, _, bytes) = s
            .raw(Method::POST, path, ct, body.clone(), Some(&s.token))
            .await;
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(st, want, "{}: {v}", String::from_utf8_lossy(&body));
        assert_eq!(v["kind"], "Status");
        assert!(v["message"].as_str().unwrap().contains(needle), "{v}");
    }
    // Namespace mismatch, missing namespace.
    let mut p = pod("x");
    p["metadata"]["namespace"] = json!("other");
    let (st, _) = s.post(PODS, p).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, body) = s.post("/api/v1/namespaces/nope/pods", pod("x")).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["message"], "namespaces \"nope\" not found");
    // Invalid: every problem, with field paths.
    let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
        "spec": {"hostNetwork": true, "containers": [{"name": "main", "image": ""}]}});
    let (st, body) = s.post(PODS, bad).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["reason"], "Invalid");
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    for f in [
        "metadata.name",
        "spec.hostNetwork",
        "spec.containers[0].image",
    ] {
        assert!(fields.contains(&f), "{f} not in {fields:?}");
    }
    // Unknown fields: strict by default, named.
    let mut typo = pod("typo");
    typo["spec"]["containers"][0]["imagee"] = json!("x");
    let (st, body) = s.post(PODS, typo.clone()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("spec.containers[0].imagee"),
        "{body}"
    );
    // Warn: accepted, with a warning header, field dropped.
    let (st, headers, bytes) = s
        .raw(
            Method::POST,
            &format!("{PODS}?fieldValidation=Warn"),
            Some("application/json"),
            serde_json::to_vec(&typo).unwrap(),
            Some(&s.token),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let warning = headers.get("warning").unwrap().to_str().unwrap();
    assert!(warning.contains("imagee"), "{warning}");
    let after_warn = s.store.status().await.unwrap().revision;
    assert_eq!(after_warn, before + 1, "only the Warn create wrote");

    // 401 without or with a wrong token.
    let (st, _, bytes) = s.raw(Method::GET, PODS, None, vec![], None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["reason"], "Unauthorized");
    let (st, _, _) = s.raw(Method::GET, PODS, None, vec![], Some("wrong")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // 413 over 3 MiB.
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": "x".repeat(3 * 1024 * 1024 + 10)}});
    let (st, _, bytes) = s
        .raw(
            Method::POST,
            CMS,
            Some("application/json"),
            serde_json::to_vec(&big).unwrap(),
            Some(&s.token),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
    );
    // 405 and 404 paths.
    let (st, _) = s.call(Method::PUT, PODS, None, Some(json!({}))).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    let (st, _) = s.get("/api/v1/widgets").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // YAML is accepted.
    let yaml =
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n".to_vec();
    let (st, _, _) = s
        .raw(
            Method::POST,
            CMS,
            Some("application/yaml"),
            yaml,
            Some(&s.token),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
}

async fn selectors_and_pagination(s: TestServer) {
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db"), ("d", "cache")] {
        let mut cm = configmap(name, json!({}));
        cm["metadata"]["labels"] = json!({"app": app});
        s.post(CMS, cm).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, l) = s.get(&format!("{CMS}?labelSelector=app%3Dweb")).await;
    assert_eq!(names(&l), ["a", "b"]);
    let (_, l) = s
        .get(&format!("{CMS}?labelSelector=app+in+(db,cache)"))
        .await;
    assert_eq!(names(&l), ["c", "d"]);
    let (_, l) = s.get(&format!("{CMS}?labelSelector=app!%3Dweb")).await;
    assert_eq!(names(&l), ["c", "d"]);
    let (_, l) = s
        .get(&format!("{CMS}?fieldSelector=metadata.name%3Dc"))
        .await;
    assert_eq!(names(&l), ["c"]);
    let (st, body) = s.get(&format!("{CMS}?labelSelector=app+in+(")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let (st, body) = s
        .get(&format!("{CMS}?fieldSelector=spec.nodeName%3Dx"))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("spec.nodeName"),
        "{body}"
    );
    // All namespaces.
    let (_, all) = s.get("/api/v1/configmaps").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 4);
    // Pages of 3 then 1, consistent at the first page's revision.
    let (_, p1) = s.get(&format!("{CMS}?limit=3")).await;
    assert_eq!(names(&p1), ["a", "b", "c"]);
    let token = p1["metadata"]["continue"].as_str().unwrap().to_string();
    s.post(CMS, configmap("e", json!({}))).await;
    let (st, p2) = s.get(&format!("{CMS}?limit=3&continue={token}")).await;
    assert_eq!(st, StatusCode::OK, "{p2}");
    assert_eq!(
        names(&p2),
        ["d"],
        "the page is read at the first page's revision"
    );
    assert!(p2["metadata"].get("continue").is_none());
    let (st, _) = s.get(&format!("{CMS}?continue=garbage")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

async fn dry_run_writes_nothing(s: TestServer) {
    let before = s.store.status().await.unwrap().revision;
    let (st, obj) = s
        .post(
            &format!("{CMS}?dryRun=All"),
            configmap("dry", json!({"a": "b"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(obj["data"]["a"], "b");
    let (st, _) = s.get(&format!("{CMS}/dry")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(s.store.status().await.unwrap().revision, before);
}

async fn binding(s: TestServer) {
    s.post(PODS, pod("p")).await;
    let b = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    let (st, _) = s
        .call(
            Method::POST,
            &format!("{PODS}/p/binding"),
            None,
            Some(b.clone()),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, p) = s.get(&format!("{PODS}/p")).await;
    assert_eq!(p["spec"]["nodeName"], "n1");
    let mut b2 = b.clone();
    b2["target"]["name"] = json!("n2");
    let (st, body) = s
        .call(Method::POST, &format!("{PODS}/p/binding"), None, Some(b2))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already assigned")
    );
}

async fn system_namespaces_and_discovery(s: TestServer) {
    let (st, ns) = s.get("/api/v1/namespaces").await;
    assert_eq!(st, StatusCode::OK);
    let names: Vec<&str> = ns["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    for n in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(names.contains(&n), "{names:?}");
    }
    let (st, v) = s.get("/version").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["major"], "1");
    let (_, core) = s.get("/api/v1").await;
    assert_eq!(core["kind"], "APIResourceList");
    let (_, apps) = s.get("/apis/apps/v1").await;
    assert_eq!(apps["groupVersion"], "apps/v1");
    let (st, _, _) = s.raw(Method::GET, "/healthz", None, vec![], None).await;
    assert_eq!(st, StatusCode::OK);
    // Cluster-scoped kinds refuse a namespace.
    let (st, _) = s.post("/api/v1/nodes", json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "namespace": "default"}})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

on_both_stores!(strategic_merge_patch_as_kubectl_apply_sends_it);

/// The second `kubectl apply` of a Deployment that changes the image and drops an env var.
async fn strategic_merge_patch_as_kubectl_apply_sends_it(s: TestServer) {
    let mut d = deployment("web", 2);
    d["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "OLD", "value": "1"}, {"name": "KEEP", "value": "2"}]);
    let (st, _) = s.post(DEPLOYS, d).await;
    assert_eq!(st, StatusCode::CREATED);
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "main"}],
        "containers": [{"name": "main", "image": "file:///v2.wasm", "env": [{"$patch": "delete", "name": "OLD"}]}]
    }}}});
    let (st, p) = s
        .patch(
            &format!("{DEPLOYS}/web"),
            "application/strategic-merge-patch+json",
            patch,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    let c = &p["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "file:///v2.wasm");
    assert_eq!(c["env"], json!([{"name": "KEEP", "value": "2"}]));
    assert_eq!(p["spec"]["replicas"], 2);
    assert_eq!(p["metadata"]["generation"], 2);
    // A list element without its merge key is a 400 naming where.
    let (st, body) = s
        .patch(
            &format!("{DEPLOYS}/web"),
            "application/strategic-merge-patch+json",
            json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("containers"),
        "{body}"
    );
}
