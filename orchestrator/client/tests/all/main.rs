//! skiff-client against a real in-process API server (embedded store, HTTPS with the
//! generated CA, the generated kubeconfig).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use skiff_api::registry;
use skiff_apiserver::RunningServer;
use skiff_client::{Client, DeleteParams, Kubeconfig, ListParams, Patch, WatchEvent};
use tokio_util::sync::CancellationToken;

struct Harness {
    client: Client,
    server: Option<RunningServer>,
    cancel: CancellationToken,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let server = skiff_apiserver::start_local(dir.path(), true, cancel.clone())
            .await
            .unwrap();
        let kc = Kubeconfig::read(server.kubeconfig_path()).unwrap();
        let client = Client::new(&kc.resolve(None).unwrap()).unwrap();
        Harness {
            client,
            server: Some(server),
            cancel,
            dir,
        }
    }

    async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(s) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), s.wait())
                .await
                .expect("server stops");
        }
    }
}

fn configmap(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"},
    })
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "file:///srv/hello.wasm"}]},
            },
        },
    })
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_over_tls_with_the_generated_kubeconfig() {
    let h = Harness::start().await;
    let c = &h.client;
    let cm = &registry::CONFIG_MAP;
    assert!(c.server().starts_with("https://127.0.0.1:"));
    assert_eq!(c.default_namespace(), "default");

    let created = c
        .create(cm, None, &configmap("a", json!({"app": "x"})))
        .await
        .unwrap();
    assert_eq!(created["metadata"]["namespace"], "default");
    let rv1 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    c.create(cm, None, &configmap("b", json!({"app": "y"})))
        .await
        .unwrap();

    let err = c
        .create(cm, None, &configmap("a", json!({})))
        .await
        .unwrap_err();
    assert!(err.api().unwrap().is_already_exists(), "{err}");
    assert_eq!(
        err.to_string(),
        "Error from server (AlreadyExists): configmaps \"a\" already exists"
    );

    let got = c.get(cm, Some("default"), "a").await.unwrap();
    assert_eq!(got["data"]["k"], "v");

    let all = c
        .list(cm, Some("default"), &ListParams::default())
        .await
        .unwrap();
    assert_eq!(names(&all), ["a", "b"]);
    assert!(all["metadata"]["resourceVersion"].is_string());
    let sel = c
        .list(cm, Some("default"), &ListParams::default().labels("app=y"))
        .await
        .unwrap();
    assert_eq!(names(&sel), ["b"]);
    let by_field = c
        .list(cm, None, &ListParams::default().fields("metadata.name=a"))
        .await
        .unwrap();
    assert_eq!(names(&by_field), ["a"]);

    // PUT with the current resourceVersion, then with the now stale one.
    let mut new = got.clone();
    new["data"]["k"] = "w".into();
    let replaced = c.replace(cm, None, "a", &new).await.unwrap();
    assert_ne!(replaced["metadata"]["resourceVersion"], rv1.as_str());
    let err = c.replace(cm, None, "a", &new).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(
        err.to_string().starts_with(
            "Error from server (Conflict): Operation cannot be fulfilled on configmaps \"a\""
        ),
        "{err}"
    );

    let merged = c
        .patch(cm, None, "a", &Patch::Merge(json!({"data": {"m": "1"}})))
        .await
        .unwrap();
    assert_eq!(merged["data"], json!({"k": "w", "m": "1"}));
    let jp = c
        .patch(
            cm,
            None,
            "a",
            &Patch::Json(json!([{"op": "remove", "path": "/data/k"}])),
        )
        .await
        .unwrap();
    assert_eq!(jp["data"], json!({"m": "1"}));

    c.delete(cm, None, "a", &DeleteParams::default())
        .await
        .unwrap();
    let err = c.get(cm, None, "a").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Error from server (NotFound): configmaps \"a\" not found"
    );
    assert!(c.get_opt(cm, None, "a").await.unwrap().is_none());

    // Cluster-scoped kinds ignore the namespace.
    let ns = c
        .get(&registry::NAMESPACE, Some("whatever"), "kube-system")
        .await
        .unwrap();
    assert_eq!(ns["status"]["phase"], "Active");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_objects_carry_field_causes() {
    let h = Harness::start().await;
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
        "spec": {"hostNetwork": true, "containers": [{"name": "main", "image": "file:///x.wasm"}]},
    });
    let err = h
        .client
        .create(&registry::POD, None, &pod)
        .await
        .unwrap_err();
    let api = err.api().expect("a Status");
    assert_eq!(api.code, 422);
    assert!(api.is_invalid());
    assert!(
        api.causes.iter().any(|c| c.field == "spec.hostNetwork"),
        "{api:?}"
    );
    assert!(
        err.to_string()
            .starts_with("Error from server (Invalid): Pod \"bad\" is invalid: spec.hostNetwork"),
        "{err}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_namespaces_scale_and_status() {
    let h = Harness::start().await;
    let c = &h.client;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}});
    c.create(&registry::NAMESPACE, None, &ns).await.unwrap();
    let d = &registry::DEPLOYMENT;
    c.create(d, None, &deployment("web", 1)).await.unwrap();
    c.create(d, Some("team"), &deployment("api", 2))
        .await
        .unwrap();
    let all = c.list(d, None, &ListParams::default()).await.unwrap();
    let mut got = names(&all);
    got.sort();
    assert_eq!(got, ["api", "web"]);

    let scale = c.get_scale(d, None, "web").await.unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 1);
    let scaled = c.patch_scale(d, None, "web", 4).await.unwrap();
    assert_eq!(scaled["spec"]["replicas"], 4);
    assert_eq!(c.get(d, None, "web").await.unwrap()["spec"]["replicas"], 4);

    let st = c
        .patch_status(
            d,
            None,
            "web",
            &Patch::Merge(json!({"status": {"observedGeneration": 2, "replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(st["status"]["replicas"], 4);

    let err = c
        .get(&registry::DEPLOYMENT, None, "nope")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Error from server (NotFound): deployments.apps \"nope\" not found"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_events_and_ends_cleanly() {
    let h = Harness::start().await;
    let c = &h.client;
    let cm = &registry::CONFIG_MAP;
    c.create(cm, None, &configmap("before", json!({})))
        .await
        .unwrap();
    let list = c.list(cm, None, &ListParams::default()).await.unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let params = ListParams {
        resource_version: Some(rv),
        timeout_seconds: Some(2),
        ..Default::default()
    };
    let mut events = c.watch(cm, Some("default"), &params).await.unwrap();
    c.create(cm, None, &configmap("w", json!({})))
        .await
        .unwrap();
    c.patch(cm, None, "w", &Patch::Merge(json!({"data": {"x": "y"}})))
        .await
        .unwrap();
    c.delete(cm, None, "w", &DeleteParams::default())
        .await
        .unwrap();

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.next()).await {
        let ev = ev.unwrap();
        let name = ev.object().unwrap()["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        seen.push(format!("{} {name}", ev.type_name()));
    }
    assert!(
        tokio::time::Instant::now() < deadline,
        "the stream ended with the server's timeout"
    );
    assert_eq!(seen, ["ADDED w", "MODIFIED w", "DELETED w"]);

    // Without a resourceVersion the watch starts with what exists.
    let mut initial = c
        .watch(
            cm,
            Some("default"),
            &ListParams {
                timeout_seconds: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    match initial.next().await {
        Some(Ok(WatchEvent::Added(o))) => assert_eq!(o["metadata"]["name"], "before"),
        other => panic!("{other:?}"),
    }

    // A bad selector fails before streaming, as a Status.
    let err = match c
        .watch(cm, None, &ListParams::default().labels("a in (("))
        .await
    {
        Ok(_) => panic!("a bad selector is refused"),
        Err(e) => e,
    };
    assert_eq!(err.api().unwrap().code, 400, "{err}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_version_and_refused_credentials() {
    let h = Harness::start().await;
    let c = &h.client;
    let v = c.server_version().await.unwrap();
    assert!(v["gitVersion"].as_str().unwrap().contains("skiff"), "{v}");

    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "main", "image": "file:///x.wasm"}]},
    });
    c.create(&registry::POD, None, &pod).await.unwrap();
    // The pod runs nowhere: the server refuses with a Status saying why.
    let err = match c.logs(None, "p", &Default::default()).await {
        Ok(_) => panic!("no node runs the pod, so it has no logs"),
        Err(e) => e,
    };
    let api = err.api().expect("a Status");
    assert!(api.code >= 400, "{err}");
    assert!(err.to_string().starts_with("Error from server ("), "{err}");
    let err = match c.logs(None, "nope", &Default::default()).await {
        Ok(_) => panic!("no such pod"),
        Err(e) => e,
    };
    assert!(err.is_not_found(), "{err}");

    // A wrong token: 401 as a Status.
    let kc_path = h.dir.path().join("server/kubeconfig.yaml");
    let mut cfg = Kubeconfig::read(&kc_path).unwrap().resolve(None).unwrap();
    cfg.token = Some("wrong".into());
    let bad = Client::new(&cfg).unwrap();
    let err = bad
        .list(&registry::POD, None, &ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(err.api().unwrap().code, 401, "{err}");

    // Another CA: the handshake fails, and the error says where it tried.
    let other = tempfile::tempdir().unwrap();
    let other_server = {
        let cancel = CancellationToken::new();
        let s = skiff_apiserver::start_local(other.path(), true, cancel.clone())
            .await
            .unwrap();
        (s, cancel)
    };
    let mut wrong_ca = Kubeconfig::read(other_server.0.kubeconfig_path())
        .unwrap()
        .resolve(None)
        .unwrap();
    wrong_ca.server = c.server().to_string();
    let err = Client::new(&wrong_ca)
        .unwrap()
        .list(&registry::POD, None, &ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, skiff_client::Error::Connect { .. }),
        "an untrusted server is not talked to: {err}"
    );
    assert!(err.to_string().contains(c.server()), "{err}");
    other_server.1.cancel();
    other_server.0.wait().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ends_when_the_server_stops_and_insecure_skips_verification() {
    let h = Harness::start().await;
    let kc_path = h.dir.path().join("server/kubeconfig.yaml");
    let mut cfg = Kubeconfig::read(&kc_path).unwrap().resolve(None).unwrap();
    cfg.ca_pem = None;
    cfg.insecure_skip_tls_verify = true;
    let insecure = Client::new(&cfg).unwrap();
    let list = insecure
        .list(&registry::NAMESPACE, None, &ListParams::default())
        .await
        .unwrap();
    assert!(names(&list).contains(&"default".to_string()));

    let mut events = h
        .client
        .watch(
            &registry::CONFIG_MAP,
            None,
            &ListParams {
                resource_version: list["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_string),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    h.cancel.cancel();
    let end = tokio::time::timeout(Duration::from_secs(15), events.next())
        .await
        .expect("the stream ends when the server stops");
    assert!(end.is_none(), "{end:?}");
    h.stop().await;
}

/// Waits (bounded) until `check` holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informer_lists_then_follows_changes() {
    use skiff_client::{Informer, InformerEvent, ObjectKey};
    let h = Harness::start().await;
    let cm = |name: &str, v: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "x"}},
            "data": {"v": v}})
    };
    h.client
        .create(&registry::CONFIG_MAP, Some("default"), &cm("before", "1"))
        .await
        .unwrap();
    let informer = Informer::new(
        h.client.clone(),
        &registry::CONFIG_MAP,
        ListParams::default().labels("app=x"),
    );
    let mut rx = informer.subscribe();
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let informer = informer.clone();
        let cancel = cancel.clone();
        async move { informer.run(cancel).await }
    });
    informer.synced().await;
    assert!(matches!(rx.recv().await.unwrap(), InformerEvent::Relisted));
    let key = ObjectKey::new(Some("default"), "before");
    let cached = informer.get(&key).expect("listed");
    // List items get their type back.
    assert_eq!(cached["kind"], "ConfigMap");
    assert_eq!(cached["apiVersion"], "v1");

    h.client
        .create(&registry::CONFIG_MAP, Some("default"), &cm("after", "2"))
        .await
        .unwrap();
    let patch = Patch::Merge(json!({"data": {"v": "3"}}));
    h.client
        .patch(&registry::CONFIG_MAP, Some("default"), "before", &patch)
        .await
        .unwrap();
    h.client
        .delete(
            &registry::CONFIG_MAP,
            Some("default"),
            "after",
            &DeleteParams::default(),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event")
            .unwrap();
        seen.push(event);
    }
    assert!(
        matches!(&seen[0], InformerEvent::Applied { old: None, new } if new["metadata"]["name"] == "after")
    );
    assert!(
        matches!(&seen[1], InformerEvent::Applied { old: Some(old), new }
        if old["data"]["v"] == "1" && new["data"]["v"] == "3")
    );
    assert!(matches!(&seen[2], InformerEvent::Deleted(old) if old["metadata"]["name"] == "after"));
    eventually("cache follows", || {
        informer.len() == 1 && informer.get(&key).is_some_and(|o| o["data"]["v"] == "3")
    })
    .await;
    assert_eq!(informer.list_namespace("default").len(), 1);
    assert!(informer.list_namespace("other").is_empty());
    cancel.cancel();
    task.await.unwrap();
    h.stop().await;
}
