//! The Endpoints controller: for every Service with a selector, an Endpoints object of the
//! same name listing the pods that match — ready ones as `addresses`, the others as
//! `notReadyAddresses` — with each Service port's target resolved against the pod's
//! container ports. The node's service proxy routes by it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use skiff_api::registry;
use skiff_api::selector::LabelSelector;
use skiff_client::ObjectKey;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::driver::{Controller, Reconciler, Requeue};
use crate::error::Result;

pub async fn run(ctx: Context, cancel: CancellationToken) {
    let services = ctx.informers.services.clone();
    let pods = ctx.informers.pods.clone();
    let endpoints = ctx.informers.endpoints.clone();
    let services_for_pods = services.clone();
    Controller::new(Arc::new(EndpointsController { ctx }), services)
        .watches(pods, move |pod| services_selecting(&services_for_pods, pod))
        .watches(endpoints, |ep| ObjectKey::of(ep).into_iter().collect())
        .run(cancel)
        .await
}

struct EndpointsController {
    ctx: Context,
}

fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A Service's selector; `None` when it has none (its Endpoints are the user's).
fn selector_of(svc: &Value) -> Option<LabelSelector> {
    let map = svc.pointer("/spec/selector")?.as_object()?;
    if map.is_empty() {
        return None;
    }
    let labels = map
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    Some(LabelSelector::from_map(&labels))
}

fn services_selecting(services: &skiff_client::Informer, pod: &Value) -> Vec<ObjectKey> {
    let Some(ns) = pod.pointer("/metadata/namespace").and_then(Value::as_str) else {
        return Vec::new();
    };
    let labels = labels_of(pod);
    services
        .list_namespace(ns)
        .iter()
        .filter(|svc| selector_of(svc).is_some_and(|s| s.matches(&labels)))
        .filter_map(|svc| ObjectKey::of(svc))
        .collect()
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The port a Service port targets on `pod`: a number, or a container port's name.
fn target_port(port: &Value, pod: &Value) -> Option<i64> {
    match port.get("targetPort") {
        None | Some(Value::Null) => port.get("port")?.as_i64(),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(name)) => pod
            .pointer("/spec/containers")?
            .as_array()?
            .iter()
            .filter_map(|c| c.get("ports")?.as_array())
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("containerPort")?.as_i64())
            .or_else(|| name.parse().ok()),
        Some(_) => None,
    }
}

/// The desired `subsets` of a Service's Endpoints: pods grouped by their resolved port
/// list, addresses sorted by IP so the result is stable.
pub fn plan_subsets(svc: &Value, pods: &[Arc<Value>]) -> Value {
    let Some(selector) = selector_of(svc) else {
        return json!([]);
    };
    let svc_ports: Vec<&Value> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let publish_not_ready = svc
        .pointer("/spec/publishNotReadyAddresses")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // ports (as JSON text, for grouping) -> (ready, not ready)
    let mut groups: BTreeMap<String, (Vec<Value>, Vec<Value>, Value)> = BTreeMap::new();
    for pod in pods {
        if !selector.matches(&labels_of(pod))
            || pod.pointer("/metadata/deletionTimestamp").is_some()
        {
            continue;
        }
        let phase = pod.pointer("/status/phase").and_then(Value::as_str);
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let Some(ip) = pod
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        let ports: Vec<Value> = svc_ports
            .iter()
            .filter_map(|p| {
                let mut port = json!({
                    "port": target_port(p, pod)?,
                    "protocol": p.get("protocol").and_then(Value::as_str).unwrap_or("TCP"),
                });
                if let Some(name) = p.get("name").and_then(Value::as_str) {
                    port["name"] = json!(name);
                }
                Some(port)
            })
            .collect();
        let mut address = json!({
            "ip": ip,
            "targetRef": {
                "kind": "Pod",
                "namespace": pod.pointer("/metadata/namespace").cloned().unwrap_or(Value::Null),
                "name": pod.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
                "uid": pod.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
            },
        });
        if let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str) {
            address["nodeName"] = json!(node);
        }
        let group_key = Value::Array(ports.clone()).to_string();
        let entry = groups
            .entry(group_key)
            .or_insert_with(|| (Vec::new(), Vec::new(), Value::Array(ports)));
        if is_ready(pod) || publish_not_ready {
            entry.0.push(address);
        } else {
            entry.1.push(address);
        }
    }
    let by_ip = |a: &Value, b: &Value| a["ip"].as_str().cmp(&b["ip"].as_str());
    let subsets: Vec<Value> = groups
        .into_values()
        .map(|(mut ready, mut not_ready, ports)| {
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            let mut subset = json!({"ports": ports});
            if !ready.is_empty() {
                subset["addresses"] = Value::Array(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = Value::Array(not_ready);
            }
            subset
        })
        .collect();
    Value::Array(subsets)
}

#[async_trait::async_trait]
impl Reconciler for EndpointsController {
    fn name(&self) -> &'static str {
        "endpoints"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue> {
        let inf = &self.ctx.informers;
        let client = &self.ctx.client;
        let ns = key.namespace_str();
        let Some(svc) = inf.services.get(key) else {
            return Ok(Requeue::Done); // its Endpoints go with it (garbage collector / owner)
        };
        if selector_of(&svc).is_none() || svc.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(Requeue::Done);
        }
        let subsets = plan_subsets(&svc, &inf.pods.list_namespace(ns));
        let current = inf.endpoints.get(key);
        let mut labels = svc
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some(map) = labels.as_object_mut() {
            map.insert(
                "endpoints.kubernetes.io/managed-by".into(),
                json!("endpoint-controller"),
            );
        }
        match current {
            Some(ep) => {
                let same_subsets =
                    ep.get("subsets").cloned().unwrap_or_else(|| json!([])) == subsets;
                if same_subsets && ep.pointer("/metadata/labels") == Some(&labels) {
                    return Ok(Requeue::Done);
                }
                let mut next = (*ep).clone();
                next["subsets"] = subsets;
                next["metadata"]["labels"] = labels;
                client
                    .replace(&registry::ENDPOINTS, Some(ns), &key.name, &next)
                    .await?;
            }
            None => {
                let ep = json!({
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": key.name, "namespace": ns, "labels": labels},
                    "subsets": subsets,
                });
                match client.create(&registry::ENDPOINTS, Some(ns), &ep).await {
                    Ok(_) => {}
                    // Our cache is behind: the next event reconciles again.
                    Err(e) if e.api().is_some_and(|a| a.is_already_exists()) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(Requeue::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, labels: Value) -> Arc<Value> {
        Arc::new(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"), "labels": labels},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
    }

    #[test]
    fn subsets_from_matching_pods() {
        let svc = json!({"spec": {"selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}});
        let pods = vec![
            pod("b", "10.42.0.3", true, json!({"app": "web"})),
            pod("a", "10.42.0.2", true, json!({"app": "web"})),
            pod("c", "10.42.0.4", false, json!({"app": "web"})),
            pod("other", "10.42.0.5", true, json!({"app": "db"})),
            pod("no-ip", "", true, json!({"app": "web"})),
        ];
        let subsets = plan_subsets(&svc, &pods);
        assert_eq!(subsets.as_array().unwrap().len(), 1);
        let s = &subsets[0];
        assert_eq!(
            s["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        let ips: Vec<&str> = s["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["ip"].as_str().unwrap())
            .collect();
        assert_eq!(ips, ["10.42.0.2", "10.42.0.3"]);
        assert_eq!(s["notReadyAddresses"][0]["ip"], "10.42.0.4");
        assert_eq!(s["addresses"][0]["targetRef"]["name"], "a");
        assert_eq!(s["addresses"][0]["nodeName"], "n1");
    }

    #[test]
    fn target_ports() {
        let p = pod("a", "1.1.1.1", true, json!({}));
        assert_eq!(target_port(&json!({"port": 80}), &p), Some(80));
        assert_eq!(
            target_port(&json!({"port": 80, "targetPort": 9090}), &p),
            Some(9090)
        );
        assert_eq!(
            target_port(&json!({"port": 80, "targetPort": "http"}), &p),
            Some(8080)
        );
        assert_eq!(
            target_port(&json!({"port": 80, "targetPort": "nope"}), &p),
            None
        );
    }

    #[test]
    fn no_selector_no_endpoints() {
        let svc = json!({"spec": {"ports": [{"port": 80}]}});
        assert_eq!(
            plan_subsets(&svc, &[pod("a", "1.1.1.1", true, json!({}))]),
            json!([])
        );
    }
}
