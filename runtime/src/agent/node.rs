//! The node's Node object: registered at start (created, or updated when it exists), and
//! its status — capacity, addresses, the agent's endpoint, system info and the kubelet's
//! conditions with heartbeat times — posted through the status subresource at start and
//! every `node_status_interval`.
//!
//! The objects are built by pure functions ([`node_object`], [`node_status`]); [`run`]
//! only reads, merges and writes them with compare-and-swap.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use skiff_api::registry;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::error::{AgentError, AgentResult, call};
use super::{AgentConfig, Shared};

/// What the node offers to pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeCapacity {
    pub memory_bytes: u64,
    pub cpu_millis: u64,
    pub pods: u32,
}

impl Default for NodeCapacity {
    fn default() -> Self {
        NodeCapacity::detect()
    }
}

impl NodeCapacity {
    /// This machine's: MemTotal of `/proc/meminfo` (4 GiB when unreadable), a core per
    /// available thread, 110 pods (the kubelet's default).
    pub fn detect() -> NodeCapacity {
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_total(&text))
            .unwrap_or(4 << 30);
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        NodeCapacity {
            memory_bytes,
            cpu_millis: u64::try_from(cores).unwrap_or(1).saturating_mul(1000),
            pods: 110,
        }
    }
}

/// `MemTotal:  16318420 kB` → bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// Bytes as the kubelet reports memory: `Ki` when whole.
fn memory_quantity(bytes: u64) -> String {
    if bytes.is_multiple_of(1024) && bytes > 0 {
        format!("{}Ki", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

/// Millicores as a quantity: whole cores when whole.
fn cpu_quantity(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// `kubernetes.io/arch`'s value for this build (Go's names).
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// The version the node reports as `kubeletVersion`.
pub const KUBELET_VERSION: &str = "v1.33.0-skiff";
/// The runtime the node reports as `containerRuntimeVersion`.
pub const RUNTIME_VERSION: &str = "wasmtime://48";

/// The node's labels: the well-known ones, then the configured ones (which win).
pub fn labels(config: &AgentConfig) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (
            "kubernetes.io/hostname".to_string(),
            config.node_name.clone(),
        ),
        ("kubernetes.io/arch".to_string(), arch().to_string()),
        (
            "kubernetes.io/os".to_string(),
            std::env::consts::OS.to_string(),
        ),
    ]);
    labels.extend(config.labels.clone());
    labels
}

/// The Node to create.
pub fn node_object(config: &AgentConfig) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": config.node_name,
            "labels": labels(config),
        },
        "spec": {
            "podCIDR": config.pod_cidr,
            "podCIDRs": [config.pod_cidr],
        },
    })
}

/// An existing Node with the agent's labels applied; `None` when nothing changes.
pub fn updated_node(existing: &Value, config: &AgentConfig) -> Option<Value> {
    let mut node = existing.clone();
    let meta = node.get_mut("metadata")?.as_object_mut()?;
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    let map = labels.as_object_mut()?;
    for (k, v) in self::labels(config) {
        map.insert(k, Value::String(v));
    }
    (node != *existing).then_some(node)
}

/// The agent's part of the Node's status; `previous` keeps condition transition times.
pub fn node_status(
    config: &AgentConfig,
    agent_port: u16,
    previous: Option<&Value>,
    now: Timestamp,
) -> Value {
    let now_text = format!("{}", now.strftime("%Y-%m-%dT%H:%M:%SZ"));
    let resources = json!({
        "cpu": cpu_quantity(config.capacity.cpu_millis),
        "memory": memory_quantity(config.capacity.memory_bytes),
        "pods": config.capacity.pods.to_string(),
    });
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        let since = previous
            .and_then(|p| p.get("conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter().find(|c| {
                    c.get("type").and_then(Value::as_str) == Some(kind)
                        && c.get("status").and_then(Value::as_str) == Some(status)
                })
            })
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| Value::String(now_text.clone()));
        json!({
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now_text,
            "lastTransitionTime": since,
        })
    };
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip.to_string()},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": agent_port}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": "",
            "osImage": format!("Skiff {}", env!("CARGO_PKG_VERSION")),
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": std::env::consts::OS,
            "architecture": arch(),
        },
    })
}

/// `status` over the Node's current status: the agent's keys replace theirs.
fn merge_status(current: Option<&Value>, ours: &Value) -> Value {
    let mut merged = current
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(o) = ours.as_object() {
        for (k, v) in o {
            merged.insert(k.clone(), v.clone());
        }
    }
    Value::Object(merged)
}

/// Creates the Node or brings its labels up to date.
async fn register(shared: &Shared) -> AgentResult<()> {
    let config = &shared.config;
    let name = &config.node_name;
    for _ in 0..4 {
        let existing = call(
            format!("reading node {name}"),
            config.api_timeout,
            shared.client.get_opt(&registry::NODE, None, name),
        )
        .await?;
        let result = match existing {
            None => {
                call(
                    format!("creating node {name}"),
                    config.api_timeout,
                    shared
                        .client
                        .create(&registry::NODE, None, &node_object(config)),
                )
                .await
            }
            Some(node) => match updated_node(&node, config) {
                None => return Ok(()),
                Some(updated) => {
                    call(
                        format!("updating node {name}"),
                        config.api_timeout,
                        shared.client.replace(&registry::NODE, None, name, &updated),
                    )
                    .await
                }
            },
        };
        match result {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() || e.is_already_exists() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(AgentError::Invalid(format!(
        "registering node {name} kept conflicting"
    )))
}

/// Posts the node's status (read, merge, compare-and-swap).
async fn post_status(shared: &Shared) -> AgentResult<()> {
    let config = &shared.config;
    let name = &config.node_name;
    for _ in 0..4 {
        let node = call(
            format!("reading node {name}"),
            config.api_timeout,
            shared.client.get(&registry::NODE, None, name),
        )
        .await?;
        let ours = node_status(
            config,
            shared.agent_port,
            node.get("status"),
            Timestamp::now(),
        );
        let mut updated = node.clone();
        if let Some(o) = updated.as_object_mut() {
            o.insert("status".into(), merge_status(node.get("status"), &ours));
        }
        let result = call(
            format!("writing the status of node {name}"),
            config.api_timeout,
            shared
                .client
                .replace_status(&registry::NODE, None, name, &updated),
        )
        .await;
        match result {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(AgentError::Invalid(format!(
        "the status of node {name} kept conflicting"
    )))
}

/// Registers the node (retrying while the API is unreachable), then posts its status
/// every `node_status_interval` until cancelled.
pub(crate) async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut backoff = Backoff::new(shared.config.api_backoff());
    let mut registered = false;
    let mut failing = false;
    loop {
        let result = if registered {
            post_status(&shared).await
        } else {
            match register(&shared).await {
                Ok(()) => {
                    registered = true;
                    tracing::info!(node = %shared.config.node_name, "node registered");
                    post_status(&shared).await
                }
                Err(e) => Err(e),
            }
        };
        let wait = match result {
            Ok(()) => {
                if failing {
                    tracing::info!(node = %shared.config.node_name, "node status posted again");
                }
                failing = false;
                backoff.reset();
                shared.config.node_status_interval
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(node = %shared.config.node_name, error = %e, "cannot register the node or post its status; retrying");
                }
                failing = true;
                if e.is_not_found() {
                    // Someone deleted the Node: register it again.
                    registered = false;
                }
                backoff
                    .next_delay(std::time::Duration::ZERO)
                    .min(shared.config.node_status_interval)
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AgentConfig {
        let mut c = AgentConfig::new(
            "edge-1",
            "192.168.1.20".parse().unwrap(),
            "/tmp/x".into(),
            "t".into(),
        );
        c.capacity = NodeCapacity {
            memory_bytes: 8 << 30,
            cpu_millis: 4000,
            pods: 110,
        };
        c.labels.insert("site".into(), "berlin".into());
        c
    }

    #[test]
    fn quantities_and_meminfo() {
        assert_eq!(memory_quantity(8 << 30), "8388608Ki");
        assert_eq!(memory_quantity(1000), "1000");
        assert_eq!(cpu_quantity(4000), "4");
        assert_eq!(cpu_quantity(1500), "1500m");
        assert_eq!(
            mem_total("MemTotal:       16318420 kB\nMemFree: 1 kB\n"),
            Some(16318420 * 1024)
        );
        assert_eq!(mem_total("nothing"), None);
    }

    #[test]
    fn node_object_and_status() {
        let c = config();
        let node = node_object(&c);
        assert_eq!(
            node["metadata"]["labels"]["kubernetes.io/hostname"],
            "edge-1"
        );
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/arch"], arch());
        assert_eq!(node["metadata"]["labels"]["site"], "berlin");
        assert_eq!(node["spec"]["podCIDR"], "10.42.0.0/24");

        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let s = node_status(&c, 10250, None, t0);
        assert_eq!(s["capacity"]["cpu"], "4");
        assert_eq!(s["allocatable"]["memory"], "8388608Ki");
        assert_eq!(s["capacity"]["pods"], "110");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(s["addresses"][0]["address"], "192.168.1.20");
        assert_eq!(s["nodeInfo"]["containerRuntimeVersion"], "wasmtime://48");
        let ready = &s["conditions"][3];
        assert_eq!(
            (&ready["type"], &ready["status"]),
            (&json!("Ready"), &json!("True"))
        );
        assert_eq!(ready["reason"], "KubeletReady");

        // A later heartbeat keeps the transition time and moves the heartbeat.
        let t1 = Timestamp::from_second(1_800_000_040).unwrap();
        let later = node_status(&c, 10250, Some(&s), t1);
        assert_eq!(
            later["conditions"][3]["lastTransitionTime"],
            ready["lastTransitionTime"]
        );
        assert_ne!(
            later["conditions"][3]["lastHeartbeatTime"],
            ready["lastHeartbeatTime"]
        );
    }

    #[test]
    fn updating_an_existing_node_only_when_labels_differ() {
        let c = config();
        let mut existing = node_object(&c);
        assert!(updated_node(&existing, &c).is_none());
        existing["metadata"]["labels"]["other"] = json!("kept");
        assert!(updated_node(&existing, &c).is_none());
        existing["metadata"]["labels"]["site"] = json!("paris");
        let updated = updated_node(&existing, &c).unwrap();
        assert_eq!(updated["metadata"]["labels"]["site"], "berlin");
        assert_eq!(updated["metadata"]["labels"]["other"], "kept");
    }
}
