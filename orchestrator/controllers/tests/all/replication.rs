//! The ReplicaSet and Deployment controllers against a real API server (embedded store,
//! plain HTTP on 127.0.0.1:0), with a fake kubelet that marks every pod Running and Ready
//! through the status subresource (no scheduler, no runtime): scaling, replacement,
//! adoption, rolling updates that never drop below the desired ready count, rollback,
//! a stalled rollout hitting its progress deadline, Recreate and pause.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::{Api, NS, WAIT, wait_for};
use futures::StreamExt;
use serde_json::{Value, json};
use skiff_api::registry::{self, Resource};
use skiff_client::{Client, DeleteParams, Informer, InformerEvent, ListParams, Patch, WatchEvent};
use skiff_controllers::{Context, ControllerConfig};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Pods with this image never become Ready.
const NEVER_READY: &str = "file:///srv/never-ready.wasm";

struct Cluster {
    client: Client,
    api: Api,
}

impl Cluster {
    /// An API server, the pod/ReplicaSet/Deployment informers, both controllers and the
    /// fake kubelet.
    async fn start() -> Cluster {
        let api = Api::start().await;
        let client = api.client.clone();
        let cancel = api.cancel.clone();
        let ctx = Context::new(client.clone(), ControllerConfig::default());
        let tasks = api.tasks.clone();
        for informer in [
            ctx.informers.pods.clone(),
            ctx.informers.replicasets.clone(),
            ctx.informers.deployments.clone(),
        ] {
            let cancel = cancel.clone();
            tasks.spawn(async move { informer.run(cancel).await });
        }
        tasks.spawn(kubelet(
            client.clone(),
            ctx.informers.pods.clone(),
            cancel.clone(),
        ));
        tasks.spawn(skiff_controllers::replicaset::run(
            ctx.clone(),
            cancel.clone(),
        ));
        tasks.spawn(skiff_controllers::deployment::run(ctx, cancel.clone()));
        Cluster { client, api }
    }

    async fn create(&self, r: &Resource, object: Value) -> Value {
        self.client.create(r, None, &object).await.unwrap()
    }

    async fn get(&self, r: &Resource, name: &str) -> Value {
        self.client.get(r, None, name).await.unwrap()
    }

    async fn merge(&self, r: &Resource, name: &str, patch: Value) -> Value {
        self.client
            .patch(r, None, name, &Patch::Merge(patch))
            .await
            .unwrap()
    }

    async fn list(&self, r: &Resource) -> Vec<Value> {
        let list = self
            .client
            .list(r, Some(NS), &ListParams::default())
            .await
            .unwrap();
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// The pods that are not being deleted.
    async fn pods(&self) -> Vec<Value> {
        self.list(&registry::POD)
            .await
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect()
    }

    /// Waits until the Deployment is rolled out as `kubectl rollout status` sees it.
    async fn rolled_out(&self, name: &str) -> Value {
        wait_for(&format!("deployment {name} rolled out"), || async {
            let d = self.get(&registry::DEPLOYMENT, name).await;
            (rollout_status(&d) == Rollout::Done).then_some(d)
        })
        .await
    }

    async fn stop(self) {
        self.api.stop().await;
    }
}

/// A stand-in for the node agents: every pod becomes Running, and Ready unless its image
/// is [`NEVER_READY`].
async fn kubelet(client: Client, pods: Informer, cancel: CancellationToken) {
    let mut rx = pods.subscribe();
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = pods.synced() => {}
    }
    for pod in pods.list() {
        start(&client, &pod).await;
    }
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = rx.recv() => event,
        };
        match event {
            Ok(InformerEvent::Applied { new, .. }) => start(&client, &new).await,
            Ok(InformerEvent::Relisted) | Err(broadcast::error::RecvError::Lagged(_)) => {
                for pod in pods.list() {
                    start(&client, &pod).await;
                }
            }
            Ok(InformerEvent::Deleted(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn start(client: &Client, pod: &Value) {
    if pod["status"]["phase"] == "Running" || !pod["metadata"]["deletionTimestamp"].is_null() {
        return;
    }
    let ready = pod["spec"]["containers"][0]["image"] != NEVER_READY;
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {
        "phase": "Running",
        "startTime": now,
        "conditions": [
            {"type": "Ready", "status": status, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": status, "lastTransitionTime": now},
        ],
    }});
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let ns = pod["metadata"]["namespace"].as_str();
    // Deleted meanwhile: nothing to do.
    let _ = client
        .patch_status(&registry::POD, ns, name, &Patch::Merge(patch))
        .await;
}

#[derive(Debug, PartialEq, Eq)]
enum Rollout {
    Done,
    Pending,
    DeadlineExceeded,
}

/// `kubectl rollout status` for a Deployment.
fn rollout_status(d: &Value) -> Rollout {
    let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    if n("/metadata/generation") > n("/status/observedGeneration") {
        return Rollout::Pending;
    }
    if condition(d, "Progressing").is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        return Rollout::DeadlineExceeded;
    }
    let desired = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (updated, replicas, available) = (
        n("/status/updatedReplicas"),
        n("/status/replicas"),
        n("/status/availableReplicas"),
    );
    if updated < desired || replicas > updated || available < updated {
        return Rollout::Pending;
    }
    Rollout::Done
}

fn condition<'a>(o: &'a Value, type_: &str) -> Option<&'a Value> {
    o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn is_ready(pod: &Value) -> bool {
    condition(pod, "Ready").is_some_and(|c| c["status"] == "True")
}

fn image(pod: &Value) -> &str {
    pod["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
}

fn controller_uid(o: &Value) -> Option<&str> {
    o["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?["uid"]
        .as_str()
}

fn annotation<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o["metadata"]["annotations"][key].as_str()
}

fn template(app: &str, image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": image}]},
    })
}

fn replica_set(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": template(name, "file:///srv/v1.wasm")},
    })
}

fn deployment(name: &str, replicas: i64, image: &str, strategy: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "strategy": strategy, "template": template(name, image)},
    })
}

fn rolling(max_surge: i64, max_unavailable: i64) -> Value {
    json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable}})
}

/// The pods owned by the object with `uid`, not being deleted.
async fn owned_pods(c: &Cluster, uid: &str) -> Vec<Value> {
    c.pods()
        .await
        .into_iter()
        .filter(|p| controller_uid(p) == Some(uid))
        .collect()
}

async fn events(c: &Cluster, object: &str, reason: &str) -> Vec<String> {
    c.list(&registry::EVENT)
        .await
        .into_iter()
        .filter(|e| e["involvedObject"]["name"] == object && e["reason"] == reason)
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_set_scales_up_and_down() {
    let c = Cluster::start().await;
    let rs = c
        .create(&registry::REPLICA_SET, replica_set("web", 3))
        .await;
    let uid = rs["metadata"]["uid"].as_str().unwrap().to_string();
    wait_for("3 ready and available replicas", || async {
        let rs = c.get(&registry::REPLICA_SET, "web").await;
        let s = &rs["status"];
        (s["replicas"] == 3
            && s["readyReplicas"] == 3
            && s["availableReplicas"] == 3
            && s["fullyLabeledReplicas"] == 3
            && s["observedGeneration"] == rs["metadata"]["generation"])
            .then_some(())
    })
    .await;
    let pods = owned_pods(&c, &uid).await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert!(p["metadata"]["name"].as_str().unwrap().starts_with("web-"));
        assert_eq!(p["metadata"]["labels"]["app"], "web");
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["name"], &owner["blockOwnerDeletion"]),
            (&json!("ReplicaSet"), &json!("web"), &json!(true))
        );
    }
    let created = wait_for("SuccessfulCreate events", || async {
        let e = events(&c, "web", "SuccessfulCreate").await;
        (e.len() == 3).then_some(e)
    })
    .await;
    assert!(
        created.iter().all(|m| m.starts_with("Created pod: web-")),
        "{created:?}"
    );

    c.merge(
        &registry::REPLICA_SET,
        "web",
        json!({"spec": {"replicas": 1}}),
    )
    .await;
    wait_for("scaled down to 1", || async {
        let rs = c.get(&registry::REPLICA_SET, "web").await;
        (owned_pods(&c, &uid).await.len() == 1
            && rs["status"]["replicas"] == 1
            && rs["status"]["observedGeneration"] == 2)
            .then_some(())
    })
    .await;
    assert_eq!(events(&c, "web", "SuccessfulDelete").await.len(), 2);

    c.merge(
        &registry::REPLICA_SET,
        "web",
        json!({"spec": {"replicas": 4}}),
    )
    .await;
    wait_for("scaled up to 4", || async {
        let rs = c.get(&registry::REPLICA_SET, "web").await;
        (rs["status"]["readyReplicas"] == 4).then_some(())
    })
    .await;
    // The informer has caught up with every create: no extra pod appears.
    assert_eq!(owned_pods(&c, &uid).await.len(), 4);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleted_pods_are_replaced() {
    let c = Cluster::start().await;
    let rs = c
        .create(&registry::REPLICA_SET, replica_set("web", 2))
        .await;
    let uid = rs["metadata"]["uid"].as_str().unwrap().to_string();
    let pods = wait_for("2 pods", || async {
        let pods = owned_pods(&c, &uid).await;
        (pods.len() == 2).then_some(pods)
    })
    .await;
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    c.client
        .delete(&registry::POD, None, &victim, &DeleteParams::default())
        .await
        .unwrap();
    wait_for("a replacement", || async {
        let pods = owned_pods(&c, &uid).await;
        let names: Vec<&str> = pods
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str())
            .collect();
        (pods.len() == 2 && !names.contains(&victim.as_str()) && pods.iter().all(is_ready))
            .then_some(())
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orphans_are_adopted_and_relabeled_pods_released() {
    let c = Cluster::start().await;
    let orphan = c
        .create(
            &registry::POD,
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "stray", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "file:///srv/v1.wasm"}]}}),
        )
        .await;
    assert!(orphan["metadata"]["ownerReferences"].is_null());
    let rs = c
        .create(&registry::REPLICA_SET, replica_set("web", 2))
        .await;
    let uid = rs["metadata"]["uid"].as_str().unwrap().to_string();
    wait_for("the orphan adopted and one pod created", || async {
        let pods = owned_pods(&c, &uid).await;
        let names: Vec<&str> = pods
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str())
            .collect();
        (pods.len() == 2 && names.contains(&"stray")).then_some(())
    })
    .await;
    assert_eq!(c.pods().await.len(), 2, "only one pod was created");
    let stray = c.get(&registry::POD, "stray").await;
    assert_eq!(stray["metadata"]["ownerReferences"][0]["controller"], true);

    // Relabeled out of the selector: released (no owner left) and replaced.
    c.merge(
        &registry::POD,
        "stray",
        json!({"metadata": {"labels": {"app": "debug"}}}),
    )
    .await;
    wait_for("the relabeled pod released and replaced", || async {
        let stray = c.get(&registry::POD, "stray").await;
        let owned = owned_pods(&c, &uid).await;
        (stray["metadata"]["ownerReferences"].is_null() && owned.len() == 2).then_some(())
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployment_creates_a_replica_set_and_reports_status() {
    let c = Cluster::start().await;
    c.create(
        &registry::DEPLOYMENT,
        deployment("web", 3, "file:///srv/v1.wasm", rolling(1, 0)),
    )
    .await;
    let d = c.rolled_out("web").await;
    let s = &d["status"];
    assert_eq!(
        (
            &s["replicas"],
            &s["updatedReplicas"],
            &s["readyReplicas"],
            &s["availableReplicas"]
        ),
        (&json!(3), &json!(3), &json!(3), &json!(3))
    );
    assert!(s["unavailableReplicas"].is_null());
    assert_eq!(s["observedGeneration"], d["metadata"]["generation"]);
    let available = condition(&d, "Available").unwrap();
    assert_eq!(
        (&available["status"], &available["reason"]),
        (&json!("True"), &json!("MinimumReplicasAvailable"))
    );
    let progressing = wait_for("Progressing NewReplicaSetAvailable", || async {
        let d = c.get(&registry::DEPLOYMENT, "web").await;
        condition(&d, "Progressing")
            .filter(|p| p["reason"] == "NewReplicaSetAvailable")
            .cloned()
    })
    .await;
    assert_eq!(progressing["status"], "True");
    assert_eq!(
        annotation(&d, "deployment.kubernetes.io/revision"),
        Some("1")
    );

    let sets = c.list(&registry::REPLICA_SET).await;
    assert_eq!(sets.len(), 1);
    let rs = &sets[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    let t: k8s_openapi::api::core::v1::PodTemplateSpec =
        serde_json::from_value(d["spec"]["template"].clone()).unwrap();
    assert_eq!(hash, skiff_api::template_hash::pod_template_hash(&t));
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash
    );
    assert_eq!(
        rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
        hash
    );
    assert_eq!(
        annotation(rs, "deployment.kubernetes.io/revision"),
        Some("1")
    );
    assert_eq!(
        annotation(rs, "deployment.kubernetes.io/desired-replicas"),
        Some("3")
    );
    assert_eq!(
        annotation(rs, "deployment.kubernetes.io/max-replicas"),
        Some("4")
    );
    assert_eq!(controller_uid(rs), d["metadata"]["uid"].as_str());
    let pods = c.pods().await;
    assert_eq!(pods.len(), 3);
    assert!(
        pods.iter()
            .all(|p| p["metadata"]["labels"]["pod-template-hash"] == hash)
    );
    let scaled = events(&c, "web", "ScalingReplicaSet").await;
    assert_eq!(
        scaled,
        vec![format!("Scaled up replica set web-{hash} from 0 to 3")]
    );
    c.stop().await;
}

/// Rolls `web` to `image` while watching pods; asserts that at every event at least
/// `replicas` pods are Ready, until the rollout is done and only `replicas` pods are
/// left. Answers the most ready pods seen at once.
async fn roll_and_watch(c: &Cluster, image: &str, replicas: usize) -> usize {
    let list = c
        .client
        .list(&registry::POD, Some(NS), &ListParams::default())
        .await
        .unwrap();
    let mut ready: BTreeMap<String, bool> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                is_ready(p),
            )
        })
        .collect();
    let params = ListParams {
        resource_version: list["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        ..ListParams::default()
    };
    let mut watch = c
        .client
        .watch(&registry::POD, Some(NS), &params)
        .await
        .unwrap();
    c.merge(
        &registry::DEPLOYMENT,
        "web",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut most = 0;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rollout finishes in time"
        );
        // No pod event for a while: the last one may have come before the status.
        let Ok(event) = tokio::time::timeout(Duration::from_millis(200), watch.next()).await else {
            let d = c.get(&registry::DEPLOYMENT, "web").await;
            if rollout_status(&d) == Rollout::Done && ready.len() == replicas {
                return most;
            }
            continue;
        };
        let event = event.expect("the watch stays open").unwrap();
        let (pod, gone) = match &event {
            WatchEvent::Added(p) | WatchEvent::Modified(p) => (p, false),
            WatchEvent::Deleted(p) => (p, true),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("watch failed: {e}"),
        };
        let name = pod["metadata"]["name"].as_str().unwrap().to_string();
        if gone || !pod["metadata"]["deletionTimestamp"].is_null() {
            ready.remove(&name);
        } else {
            ready.insert(name, is_ready(pod));
        }
        let count = ready.values().filter(|r| **r).count();
        most = most.max(count);
        assert!(
            count >= replicas,
            "{count} ready pods after {} {}",
            event.type_name(),
            pod["metadata"]["name"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_update_keeps_every_replica_ready_and_rollback_reuses_the_first_replica_set() {
    let c = Cluster::start().await;
    c.create(
        &registry::DEPLOYMENT,
        deployment("web", 3, "file:///srv/v1.wasm", rolling(1, 0)),
    )
    .await;
    c.rolled_out("web").await;
    let v1 = c.list(&registry::REPLICA_SET).await.remove(0);
    let v1_name = v1["metadata"]["name"].as_str().unwrap().to_string();

    let most = roll_and_watch(&c, "file:///srv/v2.wasm", 3).await;
    assert!(most > 3, "new pods were ready before old ones went");
    let d = c.rolled_out("web").await;
    assert_eq!(
        annotation(&d, "deployment.kubernetes.io/revision"),
        Some("2")
    );
    let pods = c.pods().await;
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| image(p) == "file:///srv/v2.wasm"));
    let sets = c.list(&registry::REPLICA_SET).await;
    assert_eq!(sets.len(), 2);
    let old = sets
        .iter()
        .find(|r| r["metadata"]["name"] == v1_name.as_str())
        .unwrap();
    assert_eq!(old["spec"]["replicas"], 0);
    let scaled = events(&c, "web", "ScalingReplicaSet").await;
    assert!(
        scaled
            .iter()
            .any(|m| m.starts_with(&format!("Scaled down replica set {v1_name} from 3 to 2"))),
        "{scaled:?}"
    );

    // `kubectl rollout undo`: the template of revision 1, without its hash label.
    let mut undo = old["spec"]["template"].clone();
    undo["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    c.client
        .patch(
            &registry::DEPLOYMENT,
            None,
            "web",
            &Patch::Json(json!([{"op": "replace", "path": "/spec/template", "value": undo}])),
        )
        .await
        .unwrap();
    let mut d = c.rolled_out("web").await;
    if annotation(&d, "deployment.kubernetes.io/revision") != Some("3") {
        d = wait_for("the revision annotation", || async {
            let d = c.get(&registry::DEPLOYMENT, "web").await;
            (annotation(&d, "deployment.kubernetes.io/revision") == Some("3")).then_some(d)
        })
        .await;
    }
    assert_eq!(rollout_status(&d), Rollout::Done);
    let sets = c.list(&registry::REPLICA_SET).await;
    assert_eq!(sets.len(), 2, "the first ReplicaSet is reused");
    let reused = sets
        .iter()
        .find(|r| r["metadata"]["name"] == v1_name.as_str())
        .unwrap();
    assert_eq!(reused["metadata"]["uid"], v1["metadata"]["uid"]);
    assert_eq!(reused["spec"]["replicas"], 3);
    assert_eq!(
        annotation(reused, "deployment.kubernetes.io/revision"),
        Some("3")
    );
    assert_eq!(
        annotation(reused, "deployment.kubernetes.io/revision-history"),
        Some("1")
    );
    let pods = c.pods().await;
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| image(p) == "file:///srv/v1.wasm"));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollout_that_never_becomes_ready_exceeds_its_progress_deadline() {
    let c = Cluster::start().await;
    c.create(
        &registry::DEPLOYMENT,
        deployment("web", 3, "file:///srv/v1.wasm", rolling(1, 0)),
    )
    .await;
    c.rolled_out("web").await;
    let v1 = c.list(&registry::REPLICA_SET).await.remove(0);
    c.merge(
        &registry::DEPLOYMENT,
        "web",
        json!({"spec": {"progressDeadlineSeconds": 2, "template": {"spec": {"containers": [
            {"name": "main", "image": NEVER_READY}]}}}}),
    )
    .await;
    let d = wait_for("ProgressDeadlineExceeded", || async {
        let d = c.get(&registry::DEPLOYMENT, "web").await;
        (rollout_status(&d) == Rollout::DeadlineExceeded).then_some(d)
    })
    .await;
    let cond = condition(&d, "Progressing").unwrap();
    assert_eq!(cond["status"], "False");
    assert!(
        cond["message"]
            .as_str()
            .unwrap()
            .ends_with("has timed out progressing."),
        "{cond}"
    );
    // v1 keeps serving: its ReplicaSet and its three ready pods stay.
    let old = c
        .get(
            &registry::REPLICA_SET,
            v1["metadata"]["name"].as_str().unwrap(),
        )
        .await;
    assert_eq!(old["spec"]["replicas"], 3);
    let v1_uid = v1["metadata"]["uid"].as_str().unwrap();
    let serving = owned_pods(&c, v1_uid).await;
    assert_eq!(serving.len(), 3);
    assert!(serving.iter().all(is_ready));
    assert_eq!(condition(&d, "Available").unwrap()["status"], "True");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recreate_stops_every_old_pod_before_starting_new_ones() {
    let c = Cluster::start().await;
    c.create(
        &registry::DEPLOYMENT,
        deployment("web", 3, "file:///srv/v1.wasm", json!({"type": "Recreate"})),
    )
    .await;
    c.rolled_out("web").await;
    let list = c
        .client
        .list(&registry::POD, Some(NS), &ListParams::default())
        .await
        .unwrap();
    let mut live: BTreeMap<String, String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                image(p).to_string(),
            )
        })
        .collect();
    let params = ListParams {
        resource_version: list["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        ..ListParams::default()
    };
    let mut watch = c
        .client
        .watch(&registry::POD, Some(NS), &params)
        .await
        .unwrap();
    c.merge(
        &registry::DEPLOYMENT,
        "web",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "file:///srv/v2.wasm"}]}}}}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, watch.next())
            .await
            .expect("the rollout finishes in time")
            .expect("the watch stays open")
            .unwrap();
        match &event {
            WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                live.insert(
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    image(p).to_string(),
                );
            }
            WatchEvent::Deleted(p) => {
                live.remove(p["metadata"]["name"].as_str().unwrap());
            }
            _ => continue,
        }
        let images: std::collections::BTreeSet<&str> = live.values().map(String::as_str).collect();
        assert!(images.len() <= 1, "old and new pods at once: {live:?}");
        if live.len() == 3 && images.contains("file:///srv/v2.wasm") {
            break;
        }
    }
    let d = c.rolled_out("web").await;
    assert_eq!(
        annotation(&d, "deployment.kubernetes.io/revision"),
        Some("2")
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_deployment_scales_but_does_not_roll() {
    let c = Cluster::start().await;
    c.create(
        &registry::DEPLOYMENT,
        deployment("web", 2, "file:///srv/v1.wasm", rolling(1, 0)),
    )
    .await;
    c.rolled_out("web").await;
    c.merge(
        &registry::DEPLOYMENT,
        "web",
        json!({"spec": {"paused": true}}),
    )
    .await;
    let d = c
        .merge(
            &registry::DEPLOYMENT,
            "web",
            json!({"spec": {"replicas": 4, "template": {"spec": {"containers": [
                {"name": "main", "image": "file:///srv/v2.wasm"}]}}}}),
        )
        .await;
    let generation = d["metadata"]["generation"].clone();
    let d = wait_for("the paused spec observed, scaled to 4", || async {
        let d = c.get(&registry::DEPLOYMENT, "web").await;
        (d["status"]["observedGeneration"] == generation && d["status"]["availableReplicas"] == 4)
            .then_some(d)
    })
    .await;
    let cond = condition(&d, "Progressing").unwrap();
    assert_eq!(
        (&cond["status"], &cond["reason"]),
        (&json!("Unknown"), &json!("DeploymentPaused"))
    );
    assert_eq!(
        c.list(&registry::REPLICA_SET).await.len(),
        1,
        "no rollout while paused"
    );
    assert!(
        c.pods()
            .await
            .iter()
            .all(|p| image(p) == "file:///srv/v1.wasm")
    );

    c.merge(
        &registry::DEPLOYMENT,
        "web",
        json!({"spec": {"paused": false}}),
    )
    .await;
    c.rolled_out("web").await;
    let pods = wait_for("4 v2 pods", || async {
        let pods = c.pods().await;
        (pods.len() == 4 && pods.iter().all(|p| image(p) == "file:///srv/v2.wasm")).then_some(pods)
    })
    .await;
    assert!(pods.iter().all(is_ready));
    c.stop().await;
}
