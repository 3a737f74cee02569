//! Service address allocation: a virtual IP from the service CIDR for every Service
//! that is not headless or ExternalName, and a node port from 30000–32767 for every port
//! of a NodePort or LoadBalancer Service — as kube-apiserver allocates them.
//!
//! What is in use is read from the stored Services; a new allocation is reserved under
//! `/skiff/allocations/…` with a short lease (create-if-absent), so two servers creating
//! Services at once on one etcd never hand out the same address. Once the Service is
//! stored, the Service itself holds the address; the reservation just expires. Nothing
//! has to be released when a Service is deleted.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{Value, json};
use skiff_store::{KeyRange, RangeOptions, Store};

use crate::error::{ApiError, Cause};

/// k3s' default service CIDR.
pub const SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 43, 0, 0), 16);
/// Kubernetes' default `--service-node-port-range`.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;
/// How long a reservation outlives its request (the Service is stored well before).
const RESERVATION_TTL_SECONDS: i64 = 60;
const SERVICES_PREFIX: &str = "/registry/services/specs/";

/// Addresses held by stored Services.
#[derive(Debug, Default)]
pub struct InUse {
    pub ips: HashSet<Ipv4Addr>,
    pub ports: HashSet<u16>,
}

impl InUse {
    /// Reads every stored Service.
    pub async fn read(store: &Arc<dyn Store>) -> Result<InUse, ApiError> {
        let prefix = skiff_api::registry::list_prefix(&skiff_api::registry::SERVICE, None)
            .unwrap_or_else(|_| SERVICES_PREFIX.to_string());
        let got = store
            .range(KeyRange::prefix(prefix), RangeOptions::default())
            .await?;
        let mut used = InUse::default();
        for kv in got.kvs {
            if let Ok(svc) = serde_json::from_slice::<Value>(&kv.value) {
                used.add(&svc);
            }
        }
        Ok(used)
    }

    fn add(&mut self, svc: &Value) {
        if let Some(ip) = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .and_then(|ip| ip.parse().ok())
        {
            self.ips.insert(ip);
        }
        for port in ports(svc) {
            if let Some(p) = port.get("nodePort").and_then(Value::as_u64) {
                self.ports.insert(p as u16);
            }
        }
    }
}

fn ports(svc: &Value) -> impl Iterator<Item = &Value> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn service_type(svc: &Value) -> &str {
    svc.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn wants_node_ports(svc: &Value) -> bool {
    matches!(service_type(svc), "NodePort" | "LoadBalancer")
}

/// On update: addresses the client left out are kept from the stored Service (as
/// Kubernetes does since 1.20), so `kubectl replace` of a file without them works.
pub fn keep_allocated(old: &Value, new: &mut Value) {
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("type").and_then(Value::as_str) == Some("ExternalName") {
        return;
    }
    if spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if let Some(v) = old.pointer(&format!("/spec/{field}")) {
                spec.insert(field.into(), v.clone());
            }
        }
    }
    let old_ports: Vec<&Value> = ports(old).collect();
    if let Some(Value::Array(new_ports)) = spec.get_mut("ports") {
        for port in new_ports.iter_mut() {
            if port.get("nodePort").is_some() {
                continue;
            }
            let same = old_ports.iter().find(|o| {
                o.get("port") == port.get("port")
                    && o.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                        == port
                            .get("protocol")
                            .and_then(Value::as_str)
                            .unwrap_or("TCP")
            });
            if let (Some(same), Some(p)) = (same, port.as_object_mut())
                && let Some(np) = same.get("nodePort")
            {
                p.insert("nodePort".into(), np.clone());
            }
        }
    }
}

/// What `svc` still needs: a cluster IP, and how many node ports.
fn needs(svc: &Value) -> (bool, usize) {
    let ip = service_type(svc) != "ExternalName"
        && svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
    let ports = if wants_node_ports(svc) {
        ports(svc).filter(|p| p.get("nodePort").is_none()).count()
    } else {
        0
    };
    (ip, ports)
}

/// Fills a Service's missing cluster IP and node ports, reserving each in the store.
/// A node port the client chose must be free (422 otherwise, as Kubernetes answers).
pub async fn allocate(
    store: &Arc<dyn Store>,
    svc: &mut Value,
    previous: Option<&Value>,
) -> Result<(), ApiError> {
    let (need_ip, need_ports) = needs(svc);
    let chosen_ports: Vec<u16> = if wants_node_ports(svc) {
        ports(svc)
            .filter_map(|p| p.get("nodePort")?.as_u64())
            .map(|p| p as u16)
            .collect()
    } else {
        Vec::new()
    };
    // The Service's own addresses (on update) are no conflict with itself.
    let mut own = InUse::default();
    if let Some(prev) = previous {
        own.add(prev);
    }
    let new_ports: Vec<(usize, u16)> = chosen_ports
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, p)| !own.ports.contains(p))
        .collect();
    if !need_ip && need_ports == 0 && new_ports.is_empty() {
        return Ok(());
    }
    let mut in_use = InUse::read(store).await?;
    in_use.ips.retain(|ip| !own.ips.contains(ip));
    in_use.ports.retain(|p| !own.ports.contains(p));
    for (i, port) in new_ports.iter() {
        if in_use.ports.contains(port) || !reserve(store, "nodeport", &port.to_string()).await? {
            let name = svc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(ApiError::invalid(
                "Service",
                "",
                name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: {port}: provided port is already allocated"),
                    field: format!("spec.ports[{i}].nodePort"),
                }],
            ));
        }
        in_use.ports.insert(*port);
    }
    if need_ip {
        let ip = pick_ip(store, &mut in_use).await?;
        if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("clusterIP".into(), json!(ip.to_string()));
            spec.insert("clusterIPs".into(), json!([ip.to_string()]));
            spec.insert("ipFamilies".into(), json!(["IPv4"]));
            spec.insert("ipFamilyPolicy".into(), json!("SingleStack"));
        }
    }
    if need_ports > 0 {
        let mut picked = Vec::with_capacity(need_ports);
        for _ in 0..need_ports {
            picked.push(pick_port(store, &mut in_use).await?);
        }
        let mut picked = picked.into_iter();
        if let Some(Value::Array(ps)) = svc.pointer_mut("/spec/ports") {
            for port in ps.iter_mut().filter(|p| p.get("nodePort").is_none()) {
                if let (Some(p), Some(np)) = (port.as_object_mut(), picked.next()) {
                    p.insert("nodePort".into(), json!(np));
                }
            }
        }
    }
    Ok(())
}

async fn pick_ip(store: &Arc<dyn Store>, in_use: &mut InUse) -> Result<Ipv4Addr, ApiError> {
    let (base, bits) = SERVICE_CIDR;
    let size = 1u32 << (32 - bits);
    let base = u32::from(base);
    // .0 is the network, .1 is kept for the API's own `kubernetes` Service, the last
    // is broadcast: start at a random offset for few collisions between servers.
    let start = rand::random::<u32>() % (size - 3);
    for i in 0..size - 3 {
        let ip = Ipv4Addr::from(base + 2 + (start + i) % (size - 3));
        if in_use.ips.contains(&ip) {
            continue;
        }
        if reserve(store, "clusterip", &ip.to_string()).await? {
            in_use.ips.insert(ip);
            return Ok(ip);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a serviceIP: range is full",
    ))
}

async fn pick_port(store: &Arc<dyn Store>, in_use: &mut InUse) -> Result<u16, ApiError> {
    let span = (NODE_PORTS.end() - NODE_PORTS.start()) as u32 + 1;
    let start = rand::random::<u32>() % span;
    for i in 0..span {
        let port = NODE_PORTS.start() + ((start + i) % span) as u16;
        if in_use.ports.contains(&port) {
            continue;
        }
        if reserve(store, "nodeport", &port.to_string()).await? {
            in_use.ports.insert(port);
            return Ok(port);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a nodePort: range is full",
    ))
}

/// Create-if-absent of a short-lived reservation key; false when someone holds it.
async fn reserve(store: &Arc<dyn Store>, what: &str, value: &str) -> Result<bool, ApiError> {
    let lease = store.lease_grant(RESERVATION_TTL_SECONDS).await?;
    let key = format!("/skiff/allocations/{what}/{value}");
    Ok(store
        .create(key.as_bytes(), Vec::new(), Some(lease))
        .await?
        .is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_by_type() {
        let svc = |spec: Value| json!({"spec": spec});
        assert_eq!(needs(&svc(json!({"ports": [{"port": 80}]}))), (true, 0));
        assert_eq!(needs(&svc(json!({"clusterIP": "None"}))), (false, 0));
        assert_eq!(needs(&svc(json!({"type": "ExternalName"}))), (false, 0));
        assert_eq!(
            needs(&svc(
                json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "nodePort": 30001}]})
            )),
            (true, 1)
        );
    }

    #[test]
    fn updates_keep_what_was_allocated() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"],
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 90, "protocol": "UDP", "nodePort": 30090}]}});
        let mut new = json!({"spec": {"type": "NodePort",
            "ports": [{"port": 80}, {"port": 90, "protocol": "TCP"}]}});
        keep_allocated(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.43.0.9");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        // Another protocol is another port: allocated anew.
        assert!(new["spec"]["ports"][1].get("nodePort").is_none());
    }
}
