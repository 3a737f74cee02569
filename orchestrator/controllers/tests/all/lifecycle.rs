//! DaemonSet, Job, node lifecycle, garbage collector and namespace controllers against
//! a real API server (embedded store, plain HTTP on 127.0.0.1:0). The tests play the
//! node agents: they post pod phases and renew node Leases themselves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::harness::{Api, NS, wait_for};
use serde_json::{Value, json};
use skiff_api::registry::{self, Resource};
use skiff_client::{Client, DeleteParams, ListParams, Patch, PropagationPolicy};
use skiff_controllers::job::JobConfig;
use skiff_controllers::{Context, ControllerConfig};
use tokio_util::sync::CancellationToken;

/// An API server and the controllers a test asked for.
struct Cluster {
    client: Client,
    ctx: Context,
    api: Api,
}

impl Cluster {
    async fn start(config: ControllerConfig) -> Cluster {
        let api = Api::start().await;
        let client = api.client.clone();
        let cancel = api.cancel.clone();
        let ctx = Context::new(client.clone(), config);
        let tasks = api.tasks.clone();
        ctx.informers.spawn(&tasks, &cancel);
        Cluster { client, ctx, api }
    }

    fn run<F, Fut>(&self, controller: F)
    where
        F: FnOnce(Context, CancellationToken) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.api
            .tasks
            .spawn(controller(self.ctx.clone(), self.api.cancel.clone()));
    }

    async fn create(&self, r: &Resource, object: Value) -> Value {
        self.client.create(r, None, &object).await.unwrap()
    }

    async fn get(&self, r: &Resource, name: &str) -> Option<Value> {
        self.client.get_opt(r, None, name).await.unwrap()
    }

    async fn list(&self, r: &Resource, labels: &str) -> Vec<Value> {
        let list = self
            .client
            .list(r, Some(NS), &ListParams::default().labels(labels))
            .await
            .unwrap();
        list["items"].as_array().cloned().unwrap_or_default()
    }

    async fn delete(&self, r: &Resource, name: &str, policy: PropagationPolicy) {
        let params = DeleteParams {
            propagation_policy: Some(policy),
            ..Default::default()
        };
        self.client.delete(r, None, name, &params).await.unwrap();
    }

    /// Sets a pod's phase, as its node agent would.
    async fn set_phase(&self, pod: &str, phase: &str) {
        let patch = Patch::Merge(json!({"status": {"phase": phase}}));
        self.client
            .patch_status(&registry::POD, None, pod, &patch)
            .await
            .unwrap();
    }

    /// Confirms the deletion of terminating pods (a grace-0 delete), as their node
    /// agents would once the pods stopped.
    async fn confirm_terminations(&self, labels: &str) {
        for p in self.list(&registry::POD, labels).await {
            if p["metadata"]["deletionTimestamp"].is_string() {
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                };
                let _ = self
                    .client
                    .delete(&registry::POD, None, &name(&p), &params)
                    .await;
            }
        }
    }

    async fn stop(self) {
        self.api.stop().await;
    }
}

fn name(o: &Value) -> String {
    o["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
}

fn containers() -> Value {
    json!([{"name": "main", "image": "file:///srv/hello.wasm"}])
}

fn condition<'a>(o: &'a Value, type_: &str) -> Option<&'a Value> {
    o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

// ------------------------------------------------------------------------- DaemonSet

#[tokio::test]
async fn daemonset_follows_nodes_and_rolls_out_template_changes() {
    let c = Cluster::start(ControllerConfig::default()).await;
    c.run(skiff_controllers::daemonset::run);
    for n in ["n1", "n2"] {
        c.create(&registry::NODE, node(n)).await;
    }
    c.create(
        &registry::DAEMON_SET,
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"}, "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": containers()}}}}),
    )
    .await;

    let nodes_of = |pods: &[Value]| -> Vec<String> {
        let mut v: Vec<String> = pods
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
            .collect();
        v.sort();
        v
    };
    let pods_on = |want: Vec<&'static str>| {
        let c = &c;
        async move {
            let pods = c.list(&registry::POD, "app=agent").await;
            (nodes_of(&pods) == want).then_some(pods)
        }
    };
    let pods = wait_for("a daemon pod on n1 and n2", || pods_on(vec!["n1", "n2"])).await;
    for p in &pods {
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
        assert!(p["metadata"]["labels"]["controller-revision-hash"].is_string());
    }

    c.create(&registry::NODE, node("n3")).await;
    wait_for("a daemon pod on the new node", || {
        pods_on(vec!["n1", "n2", "n3"])
    })
    .await;

    c.delete(&registry::NODE, "n2", PropagationPolicy::Background)
        .await;
    wait_for("the pod of the removed node gone", || {
        pods_on(vec!["n1", "n3"])
    })
    .await;
    wait_for("status counts two nodes", || async {
        let ds = c.get(&registry::DAEMON_SET, "agent").await?;
        let s = &ds["status"];
        (s["desiredNumberScheduled"] == 2
            && s["currentNumberScheduled"] == 2
            && s["observedGeneration"] == ds["metadata"]["generation"])
            .then_some(())
    })
    .await;

    // A new template: every pod is replaced by one with the new hash. (No agent makes
    // them Ready, so all of them count as unavailable and go at once.)
    let old_hash = pods[0]["metadata"]["labels"]["controller-revision-hash"].clone();
    let patch = Patch::Merge(
        json!({"spec": {"template": {"metadata": {"labels": {"app": "agent", "v": "2"}}}}}),
    );
    c.client
        .patch(&registry::DAEMON_SET, None, "agent", &patch)
        .await
        .unwrap();
    wait_for("every pod on the new template", || async {
        c.confirm_terminations("app=agent").await;
        let pods = c.list(&registry::POD, "app=agent,v=2").await;
        let old = c.list(&registry::POD, "app=agent,!v").await;
        (nodes_of(&pods) == ["n1", "n3"] && old.is_empty()).then_some(())
    })
    .await;
    let new = c.list(&registry::POD, "app=agent").await;
    assert!(
        new.iter()
            .all(|p| p["metadata"]["labels"]["controller-revision-hash"] != old_hash)
    );
    c.stop().await;
}

// ------------------------------------------------------------------------------- Job

fn job(name: &str, spec: Value) -> Value {
    let mut s =
        json!({"template": {"spec": {"restartPolicy": "Never", "containers": containers()}}});
    for (k, v) in spec.as_object().unwrap() {
        s[k] = v.clone();
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": s})
}

fn fast_jobs() -> impl FnOnce(Context, CancellationToken) -> futures::future::BoxFuture<'static, ()>
{
    |ctx, cancel| {
        Box::pin(skiff_controllers::job::run_with(
            ctx,
            JobConfig {
                pod_failure_backoff: Duration::from_millis(100),
                pod_failure_backoff_max: Duration::from_millis(400),
            },
            cancel,
        ))
    }
}

async fn active_job_pods(c: &Cluster, job: &str) -> Vec<Value> {
    c.list(
        &registry::POD,
        &format!("batch.kubernetes.io/job-name={job}"),
    )
    .await
    .into_iter()
    .filter(|p| {
        p["metadata"]["deletionTimestamp"].is_null()
            && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    })
    .collect()
}

#[tokio::test]
async fn job_with_failing_pods_respects_backoff_limit() {
    let c = Cluster::start(ControllerConfig::default()).await;
    c.run(fast_jobs());
    c.create(&registry::JOB, job("flaky", json!({"backoffLimit": 2})))
        .await;

    // Fail every pod the Job starts; the third failure exceeds backoffLimit 2.
    for attempt in 1..=3 {
        let pods = wait_for(&format!("attempt {attempt}"), || async {
            let pods = active_job_pods(&c, "flaky").await;
            (!pods.is_empty()).then_some(pods)
        })
        .await;
        assert_eq!(pods.len(), 1, "parallelism 1");
        let pod = &pods[0];
        assert!(pod["metadata"]["labels"]["batch.kubernetes.io/controller-uid"].is_string());
        c.set_phase(&name(pod), "Failed").await;
    }
    let failed = wait_for("the Job Failed", || async {
        let j = c.get(&registry::JOB, "flaky").await?;
        let cond = condition(&j, "Failed")?;
        (cond["status"] == "True").then(|| j.clone())
    })
    .await;
    assert_eq!(
        condition(&failed, "Failed").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
    assert_eq!(
        condition(&failed, "FailureTarget").unwrap()["status"],
        "True"
    );
    assert_eq!(failed["status"]["failed"], 3);
    assert_eq!(failed["status"]["active"], 0);
    // No new pod after the failure.
    let all = c
        .list(&registry::POD, "batch.kubernetes.io/job-name=flaky")
        .await;
    assert_eq!(
        all.len(),
        3,
        "finished pods are kept; nothing new was started"
    );
    c.stop().await;
}

#[tokio::test]
async fn job_completes_three_completions_two_at_a_time() {
    let c = Cluster::start(ControllerConfig::default()).await;
    c.run(fast_jobs());
    c.create(
        &registry::JOB,
        job("batch", json!({"completions": 3, "parallelism": 2})),
    )
    .await;

    let mut succeeded = 0;
    while succeeded < 3 {
        let pods = wait_for("an active pod", || async {
            let pods = active_job_pods(&c, "batch").await;
            (!pods.is_empty()).then_some(pods)
        })
        .await;
        assert!(
            pods.len() <= 2,
            "never more than parallelism: {}",
            pods.len()
        );
        c.set_phase(&name(&pods[0]), "Succeeded").await;
        succeeded += 1;
    }
    let done = wait_for("the Job Complete", || async {
        let j = c.get(&registry::JOB, "batch").await?;
        (condition(&j, "Complete")?["status"] == "True").then(|| j.clone())
    })
    .await;
    assert_eq!(done["status"]["succeeded"], 3);
    assert!(done["status"]["completionTime"].is_string());
    assert!(done["status"]["startTime"].is_string());
    let all = c
        .list(&registry::POD, "batch.kubernetes.io/job-name=batch")
        .await;
    assert_eq!(all.len(), 3, "exactly three pods ran");
    c.stop().await;
}

#[tokio::test]
async fn finished_job_is_deleted_after_its_ttl() {
    let c = Cluster::start(ControllerConfig::default()).await;
    c.run(fast_jobs());
    c.run(skiff_controllers::gc::run);
    c.create(
        &registry::JOB,
        job("short", json!({"ttlSecondsAfterFinished": 1})),
    )
    .await;
    let pod = wait_for("the pod", || async {
        active_job_pods(&c, "short").await.into_iter().next()
    })
    .await;
    c.set_phase(&name(&pod), "Succeeded").await;
    wait_for("the Job and its pod gone", || async {
        let job = c.get(&registry::JOB, "short").await;
        let pods = c
            .list(&registry::POD, "batch.kubernetes.io/job-name=short")
            .await;
        (job.is_none() && pods.is_empty()).then_some(())
    })
    .await;
    c.stop().await;
}

// -------------------------------------------------------------------- node lifecycle

fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Renews the node's Lease every 200 ms while `alive` is set, as an agent does.
fn heartbeat(c: &Cluster, node: &'static str, alive: Arc<AtomicBool>) {
    let client = c.client.clone();
    let cancel = c.api.cancel.clone();
    c.api.tasks.spawn(async move {
        while !cancel.is_cancelled() {
            if alive.load(Ordering::SeqCst) {
                let patch = Patch::Merge(json!({"spec": {"renewTime": now_micro()}}));
                let _ = client
                    .patch(&registry::LEASE, Some("kube-node-lease"), node, &patch)
                    .await;
            }
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    });
}

async fn ready_node(c: &Cluster, name: &str) {
    c.create(&registry::NODE, node(name)).await;
    let patch = Patch::Merge(
        json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "reason": "KubeletReady",
        "lastHeartbeatTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}]}}),
    );
    c.client
        .patch_status(&registry::NODE, None, name, &patch)
        .await
        .unwrap();
    c.client
        .create(
            &registry::LEASE,
            Some("kube-node-lease"),
            &json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 2, "renewTime": now_micro()}}),
        )
        .await
        .unwrap();
}

fn bound_pod(name: &str, node: &str, tolerations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "nodeName": node, "tolerations": tolerations, "containers": containers()}})
}

fn taint_keys(node: &Value) -> Vec<String> {
    let mut v: Vec<String> = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}:{}",
                t["key"].as_str().unwrap_or(""),
                t["effect"].as_str().unwrap_or("")
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn unreachable_node_is_tainted_its_pods_evicted_and_untainted_when_back() {
    let c = Cluster::start(ControllerConfig {
        node_monitor_grace_period: Duration::from_secs(2),
        default_unreachable_toleration: Duration::from_secs(300),
        ..ControllerConfig::default()
    })
    .await;
    let a_alive = Arc::new(AtomicBool::new(true));
    for n in ["a", "b"] {
        ready_node(&c, n).await;
    }
    heartbeat(&c, "a", a_alive.clone());
    heartbeat(&c, "b", Arc::new(AtomicBool::new(true)));
    let quick = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
        "effect": "NoExecute", "tolerationSeconds": 1}]);
    c.create(&registry::POD, bound_pod("quick", "a", quick))
        .await;
    c.create(&registry::POD, bound_pod("patient", "a", json!([])))
        .await;
    c.create(&registry::POD, bound_pod("elsewhere", "b", json!([])))
        .await;
    c.run(skiff_controllers::nodelifecycle::run);

    // Agent a stops.
    a_alive.store(false, Ordering::SeqCst);
    let a = wait_for("node a Ready=Unknown and tainted", || async {
        let n = c.get(&registry::NODE, "a").await?;
        let ready = condition(&n, "Ready")?;
        (ready["status"] == "Unknown" && taint_keys(&n).len() == 2).then(|| n.clone())
    })
    .await;
    let ready = condition(&a, "Ready").unwrap();
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    assert_eq!(
        taint_keys(&a),
        [
            "node.kubernetes.io/unreachable:NoExecute",
            "node.kubernetes.io/unreachable:NoSchedule"
        ]
    );
    let no_execute = a["spec"]["taints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["effect"] == "NoExecute")
        .unwrap();
    assert!(no_execute["timeAdded"].is_string());

    wait_for("the pod tolerating 1 s evicted", || async {
        c.get(&registry::POD, "quick").await.is_none().then_some(())
    })
    .await;
    assert!(
        c.get(&registry::POD, "patient").await.is_some(),
        "the default toleration (300 s) has not run out"
    );
    assert!(c.get(&registry::POD, "elsewhere").await.is_some());
    let b = c.get(&registry::NODE, "b").await.unwrap();
    assert!(taint_keys(&b).is_empty(), "node b keeps heartbeating");
    assert_eq!(condition(&b, "Ready").unwrap()["status"], "True");

    // Agent a comes back.
    a_alive.store(true, Ordering::SeqCst);
    wait_for("node a untainted", || async {
        let n = c.get(&registry::NODE, "a").await?;
        taint_keys(&n).is_empty().then_some(())
    })
    .await;
    assert!(c.get(&registry::POD, "patient").await.is_some());
    c.stop().await;
}

// ---------------------------------------------------------------- garbage collector

async fn replicaset_with_pods(c: &Cluster, rs: &str, n: usize) -> Vec<String> {
    let owner = c
        .create(
            &registry::REPLICA_SET,
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": rs}, "spec": {
                "replicas": n, "selector": {"matchLabels": {"rs": rs}},
                "template": {"metadata": {"labels": {"rs": rs}}, "spec": {"containers": containers()}}}}),
        )
        .await;
    let mut names = Vec::new();
    for i in 0..n {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": format!("{rs}-{i}"), "labels": {"rs": rs},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"containers": containers()}});
        names.push(name(&c.create(&registry::POD, pod).await));
    }
    names
}

#[tokio::test]
async fn garbage_collector_background_foreground_orphan() {
    let c = Cluster::start(ControllerConfig::default()).await;
    c.run(skiff_controllers::gc::run);

    // Dependents of an owner that exists are left alone.
    replicaset_with_pods(&c, "kept", 1).await;

    // Background: the owner goes at once, its pods after.
    replicaset_with_pods(&c, "bg", 2).await;
    c.delete(&registry::REPLICA_SET, "bg", PropagationPolicy::Background)
        .await;
    assert!(c.get(&registry::REPLICA_SET, "bg").await.is_none());
    wait_for("the background owner's pods gone", || async {
        c.list(&registry::POD, "rs=bg")
            .await
            .is_empty()
            .then_some(())
    })
    .await;

    // Foreground: the owner stays (deleting) until its pods are gone.
    replicaset_with_pods(&c, "fg", 2).await;
    c.delete(&registry::REPLICA_SET, "fg", PropagationPolicy::Foreground)
        .await;
    wait_for("the foreground owner and its pods gone", || async {
        let owner = c.get(&registry::REPLICA_SET, "fg").await;
        let pods = c.list(&registry::POD, "rs=fg").await;
        if let Some(o) = &owner {
            assert!(o["metadata"]["deletionTimestamp"].is_string());
            if pods.is_empty() {
                // Fine: the finalizer is about to go.
            }
        } else {
            assert!(pods.is_empty(), "the owner went before its dependents");
        }
        (owner.is_none() && pods.is_empty()).then_some(())
    })
    .await;

    // Orphan: the owner goes, its pods stay without the reference.
    let orphans = replicaset_with_pods(&c, "or", 2).await;
    c.delete(&registry::REPLICA_SET, "or", PropagationPolicy::Orphan)
        .await;
    wait_for("the orphaning owner gone", || async {
        c.get(&registry::REPLICA_SET, "or")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    for pod in &orphans {
        let p = c.get(&registry::POD, pod).await.expect("orphaned pod kept");
        assert!(
            p["metadata"]["ownerReferences"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "{p}"
        );
    }

    assert_eq!(c.list(&registry::POD, "rs=kept").await.len(), 1);
    c.stop().await;
}

// ------------------------------------------------------------------------ namespace

#[tokio::test]
async fn deleting_a_namespace_empties_it_then_removes_it() {
    let c = Cluster::start(ControllerConfig::default()).await;
    c.run(skiff_controllers::namespace::run);
    c.create(&registry::NODE, node("n1")).await;
    c.create(
        &registry::NAMESPACE,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}),
    )
    .await;
    let in_ns = |r: &'static Resource, object: Value| {
        let client = c.client.clone();
        async move { client.create(r, Some("doomed"), &object).await.unwrap() }
    };
    in_ns(
        &registry::CONFIG_MAP,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "b"}}),
    )
    .await;
    in_ns(
        &registry::POD,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "loose"}, "spec": {"containers": containers()}}),
    )
    .await;
    in_ns(
        &registry::POD,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "running"},
            "spec": {"nodeName": "n1", "containers": containers()}}),
    )
    .await;
    in_ns(
        &registry::DEPLOYMENT,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers()}}}}),
    )
    .await;

    c.delete(
        &registry::NAMESPACE,
        "doomed",
        PropagationPolicy::Background,
    )
    .await;
    let ns = c
        .get(&registry::NAMESPACE, "doomed")
        .await
        .expect("kept while it has content");
    assert_eq!(ns["status"]["phase"], "Terminating");
    let refused = c
        .client
        .create(
            &registry::CONFIG_MAP,
            Some("doomed"),
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}}),
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("being terminated"),
        "{refused}"
    );

    // The pod on n1 waits for its agent; everything else goes at once.
    let pods = |c: &Cluster| {
        let client = c.client.clone();
        async move {
            let l = client
                .list(&registry::POD, Some("doomed"), &ListParams::default())
                .await
                .unwrap();
            l["items"].as_array().cloned().unwrap_or_default()
        }
    };
    let stopping = wait_for("only the bound pod left, terminating", || async {
        let p = pods(&c).await;
        let cms = c
            .client
            .list(
                &registry::CONFIG_MAP,
                Some("doomed"),
                &ListParams::default(),
            )
            .await
            .unwrap();
        (p.len() == 1
            && p[0]["metadata"]["deletionTimestamp"].is_string()
            && cms["items"].as_array().is_some_and(Vec::is_empty))
        .then(|| p[0].clone())
    })
    .await;
    assert_eq!(name(&stopping), "running");
    let ns = c
        .get(&registry::NAMESPACE, "doomed")
        .await
        .expect("still waiting");
    assert!(
        condition(&ns, "NamespaceContentRemaining").is_some(),
        "{ns}"
    );

    // The agent confirms; the namespace goes.
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    c.client
        .delete(&registry::POD, Some("doomed"), "running", &params)
        .await
        .unwrap();
    wait_for("the namespace gone", || async {
        c.get(&registry::NAMESPACE, "doomed")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    c.stop().await;
}
