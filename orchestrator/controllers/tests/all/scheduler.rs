//! The scheduler against a real API server (embedded store, plain HTTP on 127.0.0.1:0)
//! with fake Node objects: binds respect resources, node selectors, affinity and
//! taints; an unschedulable pod gets Kubernetes' condition and event, and is bound once
//! a node that fits appears.

use std::collections::BTreeMap;

use crate::harness::{Api, NS, wait_for};
use serde_json::{Value, json};
use skiff_api::registry::{self, Resource};
use skiff_client::{Client, ListParams};
use skiff_controllers::{Context, ControllerConfig};

struct Cluster {
    client: Client,
    api: Api,
}

impl Cluster {
    /// An API server, the pods and nodes informers, and the scheduler.
    async fn start() -> Cluster {
        let api = Api::start().await;
        let client = api.client.clone();
        let cancel = api.cancel.clone();
        let ctx = Context::new(client.clone(), ControllerConfig::default());
        let tasks = api.tasks.clone();
        for informer in [ctx.informers.pods.clone(), ctx.informers.nodes.clone()] {
            let cancel = cancel.clone();
            tasks.spawn(async move { informer.run(cancel).await });
        }
        tasks.spawn(skiff_controllers::scheduler::run(ctx, cancel.clone()));
        Cluster { client, api }
    }

    async fn create(&self, r: &Resource, object: Value) -> Value {
        self.client.create(r, None, &object).await.unwrap()
    }

    async fn pod(&self, name: &str) -> Value {
        self.client.get(&registry::POD, None, name).await.unwrap()
    }

    async fn stop(self) {
        self.api.stop().await;
    }
}

/// A Ready node with `cpu` CPUs and `cpu * 2` GiB, with `patch` merged into the object.
fn node(name: &str, cpu: u32, labels: Value, taints: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {
            "capacity": {"cpu": cpu.to_string(), "memory": format!("{}Gi", cpu * 2), "pods": "110"},
            "allocatable": {"cpu": cpu.to_string(), "memory": format!("{}Gi", cpu * 2), "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
        }
    })
}

fn pod(name: &str, cpu: &str, extra: Value) -> Value {
    let mut spec = json!({"containers": [{
        "name": "main", "image": "file:///srv/app.wasm",
        "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}
    }]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

fn node_name(pod: &Value) -> Option<String> {
    pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

fn condition<'a>(o: &'a Value, type_: &str) -> Option<&'a Value> {
    o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// The events about pod `name` with `reason`.
async fn events(client: &Client, name: &str, reason: &str) -> Vec<Value> {
    let list = client
        .list(&registry::EVENT, Some(NS), &ListParams::default())
        .await
        .unwrap();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name && e["reason"] == reason)
        .cloned()
        .collect()
}

#[tokio::test]
async fn binds_pods_respecting_resources_selectors_and_taints() {
    let c = Cluster::start().await;
    c.create(
        &registry::NODE,
        node("n1", 2, json!({"disk": "ssd"}), json!([])),
    )
    .await;
    c.create(&registry::NODE, node("n2", 4, json!({}), json!([])))
        .await;
    c.create(
        &registry::NODE,
        node(
            "n3",
            8,
            json!({"accelerator": "gpu"}),
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
        ),
    )
    .await;

    // (pod, where it must go)
    let gpu_affinity = json!({
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "accelerator", "operator": "In", "values": ["gpu"]}]}]
        }}}
    });
    let expected: Vec<(Value, &[&str])> = vec![
        (
            pod("ssd", "500m", json!({"nodeSelector": {"disk": "ssd"}})),
            &["n1"],
        ),
        (pod("gpu", "500m", gpu_affinity), &["n3"]),
        // Only n2 has 3 free CPUs among the nodes it tolerates.
        (pod("big", "3", json!({})), &["n2"]),
    ];
    for (p, _) in &expected {
        c.create(&registry::POD, p.clone()).await;
    }
    // Plain pods never land on the tainted node.
    for i in 0..6 {
        c.create(
            &registry::POD,
            pod(&format!("plain-{i}"), "100m", json!({})),
        )
        .await;
    }

    let bound: BTreeMap<String, String> = wait_for("every pod bound", || async {
        let list = c
            .client
            .list(&registry::POD, Some(NS), &ListParams::default())
            .await
            .unwrap();
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let bound: BTreeMap<String, String> = items
            .iter()
            .filter_map(|p| Some((p["metadata"]["name"].as_str()?.to_string(), node_name(p)?)))
            .collect();
        (bound.len() == 9).then_some(bound)
    })
    .await;
    for (p, allowed) in &expected {
        let name = p["metadata"]["name"].as_str().unwrap();
        assert!(
            allowed.contains(&bound[name].as_str()),
            "{name} on {} (allowed {allowed:?})",
            bound[name]
        );
    }
    for i in 0..6 {
        let on = &bound[&format!("plain-{i}")];
        assert_ne!(on, "n3", "plain-{i} does not tolerate n3's taint");
    }

    // The bind set PodScheduled=True; the scheduler recorded a Scheduled event.
    let ssd = c.pod("ssd").await;
    assert_eq!(condition(&ssd, "PodScheduled").unwrap()["status"], "True");
    let scheduled = wait_for("a Scheduled event", || async {
        events(&c.client, "ssd", "Scheduled")
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(scheduled["type"], "Normal");
    assert_eq!(
        scheduled["message"],
        "Successfully assigned default/ssd to n1"
    );
    assert_eq!(scheduled["source"]["component"], "default-scheduler");
    c.stop().await;
}

#[tokio::test]
async fn an_unschedulable_pod_is_reported_and_bound_once_a_node_fits() {
    let c = Cluster::start().await;
    c.create(&registry::NODE, node("small", 1, json!({}), json!([])))
        .await;
    c.create(
        &registry::NODE,
        node(
            "gone",
            16,
            json!({}),
            json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]),
        ),
    )
    .await;
    c.create(&registry::POD, pod("huge", "8", json!({}))).await;

    let want = "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }.";
    // (The scheduler may see the pod before the second node: wait for the final word.)
    let cond = wait_for("PodScheduled=False", || async {
        let p = c.pod("huge").await;
        condition(&p, "PodScheduled")
            .filter(|c| c["status"] == "False" && c["message"] == want)
            .cloned()
    })
    .await;
    assert_eq!(cond["reason"], "Unschedulable");
    assert_eq!(cond["message"], want);
    let warning = wait_for("a FailedScheduling event", || async {
        events(&c.client, "huge", "FailedScheduling")
            .await
            .into_iter()
            .find(|e| e["message"] == want)
    })
    .await;
    assert_eq!(warning["type"], "Warning");
    assert_eq!(warning["message"], want);

    // A node that changes nothing for the pod: a new message, still unbound.
    c.create(&registry::NODE, node("small-2", 1, json!({}), json!([])))
        .await;
    let want = "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient cpu.";
    wait_for("the message counts the new node", || async {
        let p = c.pod("huge").await;
        condition(&p, "PodScheduled")
            .filter(|c| c["message"] == want)
            .map(|_| ())
    })
    .await;
    assert_eq!(node_name(&c.pod("huge").await), None);

    // A node that fits: bound there, PodScheduled=True.
    c.create(&registry::NODE, node("roomy", 16, json!({}), json!([])))
        .await;
    let p = wait_for("huge bound", || async {
        let p = c.pod("huge").await;
        node_name(&p).is_some().then_some(p)
    })
    .await;
    assert_eq!(node_name(&p).as_deref(), Some("roomy"));
    assert_eq!(condition(&p, "PodScheduled").unwrap()["status"], "True");
    // One warning per distinct message, not one per attempt.
    let warnings = events(&c.client, "huge", "FailedScheduling").await;
    for w in &warnings {
        assert_eq!(w["count"], 1, "a message reported twice: {warnings:#?}");
    }
    c.stop().await;
}
