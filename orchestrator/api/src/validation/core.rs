//! The other core/v1 kinds and Lease: Service, ConfigMap, Secret, Namespace, Node,
//! Endpoints, Event, PersistentVolumeClaim, PersistentVolume, ServiceAccount.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Secret,
    Service, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::pod::{validate_port_num_or_name, validate_protocol, validate_quantity};
use super::{FieldError, FieldPath, invalid_each, is_set, non_negative};
use crate::names;
use crate::selector::validate_label_selector;

/// Largest ConfigMap or Secret payload, in bytes.
pub const MAX_CONFIG_SIZE: usize = 1024 * 1024;
/// The NodePort range Skiff allocates from (Kubernetes' default).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30000..=32767;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const ACCESS_MODES: &[&str] = &[
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];
const SECRET_TYPES: &[&str] = &[
    "Opaque",
    "kubernetes.io/service-account-token",
    "kubernetes.io/dockercfg",
    "kubernetes.io/dockerconfigjson",
    "kubernetes.io/basic-auth",
    "kubernetes.io/ssh-auth",
    "kubernetes.io/tls",
    "bootstrap.kubernetes.io/token",
];
const IP_MESSAGE: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

fn validate_ip(ip: &str, p: &FieldPath, errs: &mut Vec<FieldError>) {
    if ip.parse::<IpAddr>().is_err() {
        errs.push(FieldError::invalid(p, ip, IP_MESSAGE));
    }
}

fn validate_cidr(cidr: &str, p: &FieldPath, errs: &mut Vec<FieldError>) {
    let ok = cidr.split_once('/').is_some_and(|(ip, bits)| {
        match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(b)) => b <= 32,
            (Ok(IpAddr::V6(_)), Ok(b)) => b <= 128,
            _ => false,
        }
    });
    if !ok {
        errs.push(FieldError::invalid(
            p,
            cidr,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ));
    }
}

pub(super) fn validate_service(s: &Service, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let Some(spec) = &s.spec else {
        errs.push(FieldError::required(&path.child("ports"), ""));
        return;
    };
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if !SERVICE_TYPES.contains(&kind) {
        errs.push(FieldError::not_supported(
            &path.child("type"),
            kind,
            SERVICE_TYPES,
        ));
    }
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
    let headless = cluster_ip == "None";
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    match kind {
        "ExternalName" => {
            let name = spec.external_name.as_deref().unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(&path.child("externalName"), ""));
            } else {
                invalid_each(
                    &path.child("externalName"),
                    name,
                    names::is_dns1123_subdomain(name.trim_end_matches('.')),
                    errs,
                );
            }
            if !cluster_ip.is_empty() {
                errs.push(FieldError::forbidden(
                    &path.child("clusterIP"),
                    "may not be set for ExternalName services",
                ));
            }
        }
        _ => {
            if ports.is_empty() && !headless {
                errs.push(FieldError::required(&path.child("ports"), ""));
            }
            if headless && (kind == "NodePort" || kind == "LoadBalancer") {
                errs.push(FieldError::invalid(
                    &path.child("clusterIP"),
                    cluster_ip,
                    format!("may not be set to 'None' for {kind} services"),
                ));
            }
        }
    }
    if !cluster_ip.is_empty() && !headless {
        validate_ip(cluster_ip, &path.child("clusterIP"), errs);
    }
    for (i, ip) in spec.cluster_ips.iter().flatten().enumerate() {
        if ip != "None" {
            validate_ip(ip, &path.child("clusterIPs").index(i), errs);
        }
    }
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        validate_ip(ip, &path.child("externalIPs").index(i), errs);
    }

    let mut port_names = BTreeSet::new();
    let mut port_keys = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = path.child("ports").index(i);
        match port.name.as_deref().unwrap_or("") {
            "" if ports.len() > 1 => errs.push(FieldError::required(&pp.child("name"), "")),
            "" => {}
            name => {
                invalid_each(&pp.child("name"), name, names::is_dns1123_label(name), errs);
                if !port_names.insert(name) {
                    errs.push(FieldError::duplicate(&pp.child("name"), name));
                }
            }
        }
        for msg in names::is_port_num(i64::from(port.port)) {
            errs.push(FieldError::invalid(&pp.child("port"), port.port, msg));
        }
        validate_protocol(port.protocol.as_deref(), &pp.child("protocol"), errs);
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        if !port_keys.insert((port.port, protocol)) {
            errs.push(FieldError::duplicate(
                &pp,
                format!("{}/{protocol}", port.port),
            ));
        }
        if let Some(target) = &port.target_port {
            validate_port_num_or_name(target, &pp.child("targetPort"), errs);
        }
        if let Some(node_port) = port.node_port.filter(|n| *n != 0) {
            if kind == "ClusterIP" || kind == "ExternalName" {
                errs.push(FieldError::forbidden(
                    &pp.child("nodePort"),
                    format!("may not be used when `type` is '{kind}'"),
                ));
            } else if !NODE_PORT_RANGE.contains(&node_port) {
                errs.push(FieldError::invalid(
                    &pp.child("nodePort"),
                    node_port,
                    format!(
                        "provided port is not in the valid range. The range of valid ports is {}-{}",
                        NODE_PORT_RANGE.start(),
                        NODE_PORT_RANGE.end()
                    ),
                ));
            } else if !node_ports.insert((node_port, protocol)) {
                errs.push(FieldError::duplicate(&pp.child("nodePort"), node_port));
            }
        }
    }
    if let Some(selector) = &spec.selector {
        errs.extend(super::validate_labels(selector, &path.child("selector")));
    }
    if let Some(affinity) = spec.session_affinity.as_deref()
        && !["None", "ClientIP"].contains(&affinity)
    {
        errs.push(FieldError::not_supported(
            &path.child("sessionAffinity"),
            affinity,
            &["ClientIP", "None"],
        ));
    }
    for (field, value) in [
        ("externalTrafficPolicy", &spec.external_traffic_policy),
        ("internalTrafficPolicy", &spec.internal_traffic_policy),
    ] {
        if let Some(v) = value.as_deref()
            && !["Cluster", "Local"].contains(&v)
        {
            errs.push(FieldError::not_supported(
                &path.child(field),
                v,
                &["Cluster", "Local"],
            ));
        }
    }
    if is_set(&spec.external_traffic_policy) && (kind == "ClusterIP" || kind == "ExternalName") {
        errs.push(FieldError::invalid(
            &path.child("externalTrafficPolicy"),
            spec.external_traffic_policy.as_deref().unwrap_or(""),
            "may only be set for externally-accessible services",
        ));
    }
    if let Some(policy) = spec.ip_family_policy.as_deref()
        && !["SingleStack", "PreferDualStack", "RequireDualStack"].contains(&policy)
    {
        errs.push(FieldError::not_supported(
            &path.child("ipFamilyPolicy"),
            policy,
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        ));
    }
    for (i, family) in spec.ip_families.iter().flatten().enumerate() {
        if !["IPv4", "IPv6"].contains(&family.as_str()) {
            errs.push(FieldError::not_supported(
                &path.child("ipFamilies").index(i),
                family,
                &["IPv4", "IPv6"],
            ));
        }
    }
}

/// Keys of ConfigMaps and Secrets: valid file names (they become files in volumes).
fn validate_keys<'a>(
    keys: impl Iterator<Item = &'a String>,
    field: &str,
    errs: &mut Vec<FieldError>,
) {
    let p = FieldPath::new(field);
    for key in keys {
        invalid_each(&p.key(key), key, names::is_config_key(key), errs);
    }
}

pub(super) fn validate_config_map(cm: &ConfigMap, errs: &mut Vec<FieldError>) {
    let data = cm.data.as_ref();
    let binary = cm.binary_data.as_ref();
    validate_keys(data.into_iter().flat_map(|d| d.keys()), "data", errs);
    validate_keys(
        binary.into_iter().flat_map(|d| d.keys()),
        "binaryData",
        errs,
    );
    for key in binary.into_iter().flat_map(|d| d.keys()) {
        if data.is_some_and(|d| d.contains_key(key)) {
            errs.push(FieldError::invalid(
                &FieldPath::new("binaryData").key(key),
                key,
                "duplicate of key present in data",
            ));
        }
    }
    let size: usize = data
        .into_iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>()
        + binary
            .into_iter()
            .flatten()
            .map(|(k, v)| k.len() + v.0.len())
            .sum::<usize>();
    if size > MAX_CONFIG_SIZE {
        errs.push(FieldError::too_long(
            &FieldPath::new("data"),
            MAX_CONFIG_SIZE,
        ));
    }
}

pub(super) fn validate_secret(s: &Secret, errs: &mut Vec<FieldError>) {
    let data = s.data.as_ref();
    let string_data = s.string_data.as_ref();
    validate_keys(data.into_iter().flat_map(|d| d.keys()), "data", errs);
    validate_keys(
        string_data.into_iter().flat_map(|d| d.keys()),
        "stringData",
        errs,
    );
    let size: usize = data
        .into_iter()
        .flatten()
        .map(|(k, v)| k.len() + v.0.len())
        .sum::<usize>()
        + string_data
            .into_iter()
            .flatten()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    if size > MAX_CONFIG_SIZE {
        errs.push(FieldError::too_long(
            &FieldPath::new("data"),
            MAX_CONFIG_SIZE,
        ));
    }
    // stringData is merged into data on write, so a required key may come from either.
    let has = |key: &str| {
        data.is_some_and(|d| d.contains_key(key))
            || string_data.is_some_and(|d| d.contains_key(key))
    };
    let value = |key: &str| -> Option<Vec<u8>> {
        string_data
            .and_then(|d| d.get(key))
            .map(|v| v.as_bytes().to_vec())
            .or_else(|| data.and_then(|d| d.get(key)).map(|v| v.0.clone()))
    };
    let data_path = FieldPath::new("data");
    let secret_type = s.type_.as_deref().unwrap_or("Opaque");
    match secret_type {
        "Opaque" | "bootstrap.kubernetes.io/token" => {}
        "kubernetes.io/service-account-token" => {
            let key = "kubernetes.io/service-account.name";
            let annotations = s.metadata.annotations.as_ref();
            if annotations.is_none_or(|a| a.get(key).is_none_or(String::is_empty)) {
                errs.push(FieldError::required(
                    &FieldPath::new("metadata").child("annotations").key(key),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let key = if secret_type == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match value(key) {
                None => errs.push(FieldError::required(&data_path.key(key), "")),
                Some(bytes) => {
                    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                        errs.push(FieldError::invalid(
                            &data_path.key(key),
                            "<secret contents redacted>",
                            e.to_string(),
                        ));
                    }
                }
            }
        }
        "kubernetes.io/basic-auth" => {
            if !has("username") && !has("password") {
                errs.push(FieldError::required(&data_path.key("username"), ""));
                errs.push(FieldError::required(&data_path.key("password"), ""));
            }
        }
        "kubernetes.io/ssh-auth" => {
            if !has("ssh-privatekey") {
                errs.push(FieldError::required(&data_path.key("ssh-privatekey"), ""));
            }
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    errs.push(FieldError::required(&data_path.key(key), ""));
                }
            }
        }
        "" => errs.push(FieldError::required(&FieldPath::new("type"), "")),
        // A type of one's own needs a domain prefix (`example.com/kind`, `helm.sh/release.v1`),
        // so that it can never collide with a built-in one.
        other if other.contains('/') && names::is_qualified_name(other).is_empty() => {}
        other => errs.push(FieldError::not_supported_msg(
            &FieldPath::new("type"),
            other,
            format!(
                "supported values: {}, or a custom type with a domain prefix (example.com/my-type)",
                SECRET_TYPES
                    .iter()
                    .map(|t| format!("\"{t}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

pub(super) fn validate_namespace(ns: &Namespace, errs: &mut Vec<FieldError>) {
    let p = FieldPath::new("spec").child("finalizers");
    for (i, f) in ns
        .spec
        .iter()
        .flat_map(|s| s.finalizers.iter().flatten())
        .enumerate()
    {
        if f.contains('/') {
            invalid_each(&p.index(i), f, names::is_qualified_name(f), errs);
        } else if f != "kubernetes" {
            errs.push(FieldError::invalid(
                &p.index(i),
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

pub(super) fn validate_node(node: &Node, errs: &mut Vec<FieldError>) {
    let Some(spec) = &node.spec else { return };
    let path = FieldPath::new("spec");
    if let Some(cidr) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
        validate_cidr(cidr, &path.child("podCIDR"), errs);
    }
    for (i, cidr) in spec.pod_cidrs.iter().flatten().enumerate() {
        validate_cidr(cidr, &path.child("podCIDRs").index(i), errs);
    }
    let mut seen = BTreeSet::new();
    for (i, t) in spec.taints.iter().flatten().enumerate() {
        let tp = path.child("taints").index(i);
        if t.key.is_empty() {
            errs.push(FieldError::required(&tp.child("key"), ""));
        } else {
            invalid_each(
                &tp.child("key"),
                &t.key,
                names::is_qualified_name(&t.key),
                errs,
            );
        }
        if let Some(v) = &t.value {
            invalid_each(&tp.child("value"), v, names::is_label_value(v), errs);
        }
        match t.effect.as_str() {
            "" => errs.push(FieldError::required(&tp.child("effect"), "")),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => errs.push(FieldError::not_supported(
                &tp.child("effect"),
                other,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )),
        }
        if !seen.insert((t.key.as_str(), t.effect.as_str())) {
            errs.push(FieldError::duplicate(
                &tp,
                format!("{}:{}", t.key, t.effect),
            ));
        }
    }
}

pub(super) fn validate_endpoints(e: &Endpoints, errs: &mut Vec<FieldError>) {
    for (i, subset) in e.subsets.iter().flatten().enumerate() {
        let sp = FieldPath::new("subsets").index(i);
        let ready = subset.addresses.as_deref().unwrap_or(&[]);
        let not_ready = subset.not_ready_addresses.as_deref().unwrap_or(&[]);
        if ready.is_empty() && not_ready.is_empty() {
            errs.push(FieldError::required(
                &sp,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (field, list) in [("addresses", ready), ("notReadyAddresses", not_ready)] {
            for (j, a) in list.iter().enumerate() {
                let ap = sp.child(field).index(j);
                if a.ip.is_empty() {
                    errs.push(FieldError::required(&ap.child("ip"), ""));
                } else {
                    validate_ip(&a.ip, &ap.child("ip"), errs);
                }
                if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
                    invalid_each(&ap.child("hostname"), h, names::is_dns1123_label(h), errs);
                }
                if let Some(n) = a.node_name.as_deref().filter(|n| !n.is_empty()) {
                    invalid_each(
                        &ap.child("nodeName"),
                        n,
                        names::is_dns1123_subdomain(n),
                        errs,
                    );
                }
            }
        }
        let ports = subset.ports.as_deref().unwrap_or(&[]);
        let mut port_names = BTreeSet::new();
        for (j, port) in ports.iter().enumerate() {
            let pp = sp.child("ports").index(j);
            match port.name.as_deref().unwrap_or("") {
                "" if ports.len() > 1 => errs.push(FieldError::required(&pp.child("name"), "")),
                "" => {}
                name => {
                    invalid_each(&pp.child("name"), name, names::is_dns1123_label(name), errs);
                    if !port_names.insert(name) {
                        errs.push(FieldError::duplicate(&pp.child("name"), name));
                    }
                }
            }
            for msg in names::is_port_num(i64::from(port.port)) {
                errs.push(FieldError::invalid(&pp.child("port"), port.port, msg));
            }
            validate_protocol(port.protocol.as_deref(), &pp.child("protocol"), errs);
        }
    }
}

pub(super) fn validate_event(e: &Event, errs: &mut Vec<FieldError>) {
    let event_ns = e.metadata.namespace.as_deref().unwrap_or("");
    let involved_ns = e.involved_object.namespace.as_deref().unwrap_or("");
    // Events about cluster-scoped objects live in `default`, as in Kubernetes.
    let ok = if involved_ns.is_empty() {
        event_ns.is_empty() || event_ns == "default"
    } else {
        event_ns == involved_ns
    };
    if !ok {
        errs.push(FieldError::invalid(
            &FieldPath::new("involvedObject").child("namespace"),
            involved_ns,
            "does not match event.namespace",
        ));
    }
    if let Some(t) = e.type_.as_deref().filter(|t| !t.is_empty())
        && !["Normal", "Warning"].contains(&t)
    {
        errs.push(FieldError::not_supported(
            &FieldPath::new("type"),
            t,
            &["Normal", "Warning"],
        ));
    }
    non_negative(e.count, &FieldPath::new("count"), errs);
}

fn validate_access_modes(modes: Option<&Vec<String>>, p: &FieldPath, errs: &mut Vec<FieldError>) {
    let modes = modes.map(Vec::as_slice).unwrap_or(&[]);
    if modes.is_empty() {
        errs.push(FieldError::required(
            p,
            "at least 1 access mode is required",
        ));
    }
    for (i, m) in modes.iter().enumerate() {
        if !ACCESS_MODES.contains(&m.as_str()) {
            errs.push(FieldError::not_supported(&p.index(i), m, ACCESS_MODES));
        }
    }
}

fn validate_storage(
    list: Option<&BTreeMap<String, K8sQuantity>>,
    p: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    match list.and_then(|l| l.get("storage")) {
        None => errs.push(FieldError::required(&p.key("storage"), "")),
        Some(q) => {
            if let Some(parsed) = validate_quantity(q, &p.key("storage"), errs)
                && parsed.is_zero()
            {
                errs.push(FieldError::invalid(
                    &p.key("storage"),
                    &q.0,
                    "must be greater than zero",
                ));
            }
        }
    }
}

fn validate_volume_mode(mode: Option<&str>, p: &FieldPath, errs: &mut Vec<FieldError>) {
    match mode {
        None | Some("Filesystem") => {}
        Some("Block") => errs.push(FieldError::not_supported_msg(
            p,
            "Block",
            "Wasm components see volumes as directories; supported values: \"Filesystem\"",
        )),
        Some(other) => errs.push(FieldError::not_supported(p, other, &["Filesystem"])),
    }
}

pub(super) fn validate_pvc(pvc: &PersistentVolumeClaim, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let default = Default::default();
    let spec = pvc.spec.as_ref().unwrap_or(&default);
    validate_access_modes(spec.access_modes.as_ref(), &path.child("accessModes"), errs);
    validate_storage(
        spec.resources.as_ref().and_then(|r| r.requests.as_ref()),
        &path.child("resources"),
        errs,
    );
    validate_volume_mode(spec.volume_mode.as_deref(), &path.child("volumeMode"), errs);
    if let Some(selector) = &spec.selector {
        errs.extend(validate_label_selector(selector, &path.child("selector")));
    }
}

pub(super) fn validate_pv(pv: &PersistentVolume, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let default = Default::default();
    let spec = pv.spec.as_ref().unwrap_or(&default);
    match spec.capacity.as_ref() {
        Some(c) if !c.is_empty() => {
            validate_storage(Some(c), &path.child("capacity"), errs);
            for key in c.keys().filter(|k| k.as_str() != "storage") {
                errs.push(FieldError::not_supported(
                    &path.child("capacity").key(key),
                    key,
                    &["storage"],
                ));
            }
        }
        _ => errs.push(FieldError::required(&path.child("capacity"), "")),
    }
    validate_access_modes(spec.access_modes.as_ref(), &path.child("accessModes"), errs);
    if let Some(policy) = spec.persistent_volume_reclaim_policy.as_deref()
        && !["Retain", "Delete", "Recycle"].contains(&policy)
    {
        errs.push(FieldError::not_supported(
            &path.child("persistentVolumeReclaimPolicy"),
            policy,
            &["Delete", "Recycle", "Retain"],
        ));
    }
    validate_volume_mode(spec.volume_mode.as_deref(), &path.child("volumeMode"), errs);
    let supported = [
        ("hostPath", spec.host_path.as_ref().map(|h| h.path.as_str())),
        ("local", spec.local.as_ref().map(|l| l.path.as_str())),
    ];
    let unsupported = [
        (
            "awsElasticBlockStore",
            spec.aws_elastic_block_store.is_some(),
        ),
        ("azureDisk", spec.azure_disk.is_some()),
        ("azureFile", spec.azure_file.is_some()),
        ("cephfs", spec.cephfs.is_some()),
        ("cinder", spec.cinder.is_some()),
        ("csi", spec.csi.is_some()),
        ("fc", spec.fc.is_some()),
        ("flexVolume", spec.flex_volume.is_some()),
        ("flocker", spec.flocker.is_some()),
        ("gcePersistentDisk", spec.gce_persistent_disk.is_some()),
        ("glusterfs", spec.glusterfs.is_some()),
        ("iscsi", spec.iscsi.is_some()),
        ("nfs", spec.nfs.is_some()),
        (
            "photonPersistentDisk",
            spec.photon_persistent_disk.is_some(),
        ),
        ("portworxVolume", spec.portworx_volume.is_some()),
        ("quobyte", spec.quobyte.is_some()),
        ("rbd", spec.rbd.is_some()),
        ("scaleIO", spec.scale_io.is_some()),
        ("storageos", spec.storageos.is_some()),
        ("vsphereVolume", spec.vsphere_volume.is_some()),
    ];
    let set: Vec<&str> = supported
        .iter()
        .filter(|(_, p)| p.is_some())
        .map(|(n, _)| *n)
        .chain(unsupported.iter().filter(|(_, s)| *s).map(|(n, _)| *n))
        .collect();
    if set.is_empty() {
        errs.push(FieldError::required(&path, "must specify a volume type"));
    }
    for name in set.iter().skip(1) {
        errs.push(FieldError::forbidden(
            &path.child(name),
            "may not specify more than 1 volume type",
        ));
    }
    for (name, present) in unsupported {
        if present {
            errs.push(FieldError::not_supported_msg(
                &path.child(name),
                name,
                "Skiff nodes provide node-local storage only; supported volume types: \"hostPath\", \"local\"",
            ));
        }
    }
    for (name, dir) in supported {
        match dir {
            Some("") => errs.push(FieldError::required(&path.child(name).child("path"), "")),
            Some(d) if !d.starts_with('/') => errs.push(FieldError::invalid(
                &path.child(name).child("path"),
                d,
                "must be an absolute path",
            )),
            _ => {}
        }
    }
}

pub(super) fn validate_service_account(sa: &ServiceAccount, errs: &mut Vec<FieldError>) {
    for (i, s) in sa.image_pull_secrets.iter().flatten().enumerate() {
        if s.name.is_empty() {
            errs.push(FieldError::required(
                &FieldPath::new("imagePullSecrets").index(i).child("name"),
                "",
            ));
        }
    }
    for (i, s) in sa.secrets.iter().flatten().enumerate() {
        if !is_set(&s.name) {
            errs.push(FieldError::required(
                &FieldPath::new("secrets").index(i).child("name"),
                "",
            ));
        }
    }
}

pub(super) fn validate_lease(l: &Lease, errs: &mut Vec<FieldError>) {
    let Some(spec) = &l.spec else { return };
    let path = FieldPath::new("spec");
    if let Some(d) = spec.lease_duration_seconds
        && d <= 0
    {
        errs.push(FieldError::invalid(
            &path.child("leaseDurationSeconds"),
            d,
            "must be greater than 0",
        ));
    }
    non_negative(
        spec.lease_transitions,
        &path.child("leaseTransitions"),
        errs,
    );
    if let Some(s) = spec.strategy.as_deref()
        && s != "OldestEmulationVersion"
    {
        errs.push(FieldError::not_supported(
            &path.child("strategy"),
            s,
            &["OldestEmulationVersion"],
        ));
    }
    if is_set(&spec.preferred_holder) && !is_set(&spec.strategy) {
        errs.push(FieldError::forbidden(
            &path.child("preferredHolder"),
            "may only be specified if `strategy` is defined",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::FieldErrorKind::*;
    use super::super::testutil::*;
    use super::super::validate_create;
    use serde_json::{Value, json};

    fn check(cases: Vec<Case>) {
        for (name, mut body, want) in cases {
            if body["metadata"].is_null() {
                body["metadata"] = json!({"name": "x", "namespace": "default"});
            }
            assert_errors(&validate_create(&obj(body)), &want, name);
        }
    }

    #[test]
    fn services() {
        let svc = |spec: Value| json!({"kind": "Service", "spec": spec});
        check(vec![
            (
                "valid",
                svc(
                    json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}),
                ),
                vec![],
            ),
            (
                "two named ports",
                svc(
                    json!({"ports": [{"name": "http", "port": 80}, {"name": "grpc", "port": 9000, "targetPort": 9000}]}),
                ),
                vec![],
            ),
            (
                "no ports",
                svc(json!({"selector": {"app": "web"}})),
                vec![("spec.ports", Required)],
            ),
            (
                "no spec",
                json!({"kind": "Service"}),
                vec![("spec.ports", Required)],
            ),
            (
                "headless without ports",
                svc(json!({"clusterIP": "None"})),
                vec![],
            ),
            (
                "external name",
                svc(json!({"type": "ExternalName", "externalName": "db.example.com"})),
                vec![],
            ),
            (
                "external name missing",
                svc(json!({"type": "ExternalName"})),
                vec![("spec.externalName", Required)],
            ),
            (
                "external name with clusterIP",
                svc(
                    json!({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "10.0.0.1"}),
                ),
                vec![("spec.clusterIP", Forbidden)],
            ),
            (
                "bad type",
                svc(json!({"type": "Ingress", "ports": [{"port": 80}]})),
                vec![("spec.type", NotSupported)],
            ),
            (
                "port 0",
                svc(json!({"ports": [{"port": 0}]})),
                vec![("spec.ports[0].port", Invalid)],
            ),
            (
                "port too big",
                svc(json!({"ports": [{"port": 65536}]})),
                vec![("spec.ports[0].port", Invalid)],
            ),
            (
                "unnamed second port",
                svc(json!({"ports": [{"name": "a", "port": 80}, {"port": 81}]})),
                vec![("spec.ports[1].name", Required)],
            ),
            (
                "duplicate names",
                svc(json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]})),
                vec![("spec.ports[1].name", Duplicate)],
            ),
            (
                "bad name",
                svc(json!({"ports": [{"name": "Web", "port": 80}]})),
                vec![("spec.ports[0].name", Invalid)],
            ),
            (
                "duplicate port",
                svc(json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]})),
                vec![("spec.ports[1]", Duplicate)],
            ),
            (
                "protocol",
                svc(json!({"ports": [{"port": 80, "protocol": "HTTP"}]})),
                vec![("spec.ports[0].protocol", NotSupported)],
            ),
            (
                "target port 0",
                svc(json!({"ports": [{"port": 80, "targetPort": 0}]})),
                vec![("spec.ports[0].targetPort", Invalid)],
            ),
            (
                "target port name",
                svc(json!({"ports": [{"port": 80, "targetPort": "HTTP_1"}]})),
                vec![
                    ("spec.ports[0].targetPort", Invalid),
                    ("spec.ports[0].targetPort", Invalid),
                ],
            ),
            (
                "node port on ClusterIP",
                svc(json!({"ports": [{"port": 80, "nodePort": 30080}]})),
                vec![("spec.ports[0].nodePort", Forbidden)],
            ),
            (
                "node port",
                svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]})),
                vec![],
            ),
            (
                "node port range",
                svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]})),
                vec![("spec.ports[0].nodePort", Invalid)],
            ),
            (
                "duplicate node port",
                svc(
                    json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080}]}),
                ),
                vec![("spec.ports[1].nodePort", Duplicate)],
            ),
            (
                "headless NodePort",
                svc(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]})),
                vec![("spec.clusterIP", Invalid)],
            ),
            (
                "bad clusterIP",
                svc(json!({"clusterIP": "10.0.0.300", "ports": [{"port": 80}]})),
                vec![("spec.clusterIP", Invalid)],
            ),
            (
                "session affinity",
                svc(json!({"sessionAffinity": "Sticky", "ports": [{"port": 80}]})),
                vec![("spec.sessionAffinity", NotSupported)],
            ),
            (
                "bad selector",
                svc(json!({"selector": {"a b": "c"}, "ports": [{"port": 80}]})),
                vec![("spec.selector", Invalid)],
            ),
            (
                "traffic policy on ClusterIP",
                svc(json!({"externalTrafficPolicy": "Local", "ports": [{"port": 80}]})),
                vec![("spec.externalTrafficPolicy", Invalid)],
            ),
        ]);
    }

    #[test]
    fn config_maps_and_secrets() {
        let big = "x".repeat(1024 * 1024 + 1);
        check(vec![
            (
                "valid cm",
                json!({"kind": "ConfigMap", "data": {"a.conf": "x", "KEY_1": "y"}, "binaryData": {"b.bin": "aGk="}}),
                vec![],
            ),
            (
                "bad key",
                json!({"kind": "ConfigMap", "data": {"a b": "x"}}),
                vec![("data[a b]", Invalid)],
            ),
            (
                "dot key",
                json!({"kind": "ConfigMap", "data": {"..": "x"}}),
                vec![("data[..]", Invalid)],
            ),
            (
                "bad binary key",
                json!({"kind": "ConfigMap", "binaryData": {"a/b": "aGk="}}),
                vec![("binaryData[a/b]", Invalid)],
            ),
            (
                "key in both",
                json!({"kind": "ConfigMap", "data": {"k": "x"}, "binaryData": {"k": "aGk="}}),
                vec![("binaryData[k]", Invalid)],
            ),
            (
                "too big",
                json!({"kind": "ConfigMap", "data": {"k": big}}),
                vec![("data", TooLong)],
            ),
            (
                "valid secret",
                json!({"kind": "Secret", "data": {"k": "aGk="}, "stringData": {"s": "v"}, "type": "Opaque"}),
                vec![],
            ),
            (
                "custom type",
                json!({"kind": "Secret", "type": "helm.sh/release.v1"}),
                vec![],
            ),
            (
                "unknown type",
                json!({"kind": "Secret", "type": "Magic"}),
                vec![("type", NotSupported)],
            ),
            (
                "bad secret key",
                json!({"kind": "Secret", "stringData": {"a b": "v"}}),
                vec![("stringData[a b]", Invalid)],
            ),
            (
                "tls",
                json!({"kind": "Secret", "type": "kubernetes.io/tls", "stringData": {"tls.crt": "c"}}),
                vec![("data[tls.key]", Required)],
            ),
            (
                "basic auth",
                json!({"kind": "Secret", "type": "kubernetes.io/basic-auth"}),
                vec![("data[username]", Required), ("data[password]", Required)],
            ),
            (
                "basic auth ok",
                json!({"kind": "Secret", "type": "kubernetes.io/basic-auth", "stringData": {"username": "u"}}),
                vec![],
            ),
            (
                "ssh",
                json!({"kind": "Secret", "type": "kubernetes.io/ssh-auth"}),
                vec![("data[ssh-privatekey]", Required)],
            ),
            (
                "docker json",
                json!({"kind": "Secret", "type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{not json"}}),
                vec![("data[.dockerconfigjson]", Invalid)],
            ),
            (
                "docker json ok",
                json!({"kind": "Secret", "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30="}}),
                vec![],
            ),
            (
                "sa token",
                json!({"kind": "Secret", "type": "kubernetes.io/service-account-token"}),
                vec![(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    Required,
                )],
            ),
            (
                "secret too big",
                json!({"kind": "Secret", "stringData": {"k": big}}),
                vec![("data", TooLong)],
            ),
        ]);
    }

    #[test]
    fn cluster_kinds_and_small_ones() {
        let cluster = json!({"name": "x"});
        check(vec![
            (
                "namespace",
                json!({"kind": "Namespace", "metadata": cluster, "spec": {"finalizers": ["kubernetes", "example.com/f"]}}),
                vec![],
            ),
            (
                "namespace finalizer",
                json!({"kind": "Namespace", "metadata": cluster, "spec": {"finalizers": ["custom"]}}),
                vec![("spec.finalizers[0]", Invalid)],
            ),
            (
                "node",
                json!({"kind": "Node", "metadata": cluster, "spec": {"podCIDR": "10.42.0.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]}}),
                vec![],
            ),
            (
                "node cidr",
                json!({"kind": "Node", "metadata": cluster, "spec": {"podCIDR": "10.42.0.0/33"}}),
                vec![("spec.podCIDR", Invalid)],
            ),
            (
                "node taints",
                json!({"kind": "Node", "metadata": cluster, "spec": {"taints": [{"key": "", "effect": ""}, {"key": "k", "effect": "Sometimes"}, {"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"}]}}),
                vec![
                    ("spec.taints[0].key", Required),
                    ("spec.taints[0].effect", Required),
                    ("spec.taints[1].effect", NotSupported),
                    ("spec.taints[3]", Duplicate),
                ],
            ),
            (
                "endpoints",
                json!({"kind": "Endpoints", "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
                vec![],
            ),
            (
                "endpoints bad",
                json!({"kind": "Endpoints", "subsets": [{"addresses": [{"ip": "x"}], "ports": [{"port": 0}, {"port": 81}]}, {}]}),
                vec![
                    ("subsets[0].addresses[0].ip", Invalid),
                    ("subsets[0].ports[0].port", Invalid),
                    ("subsets[0].ports[0].name", Required),
                    ("subsets[0].ports[1].name", Required),
                    ("subsets[1]", Required),
                ],
            ),
            (
                "event",
                json!({"kind": "Event", "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "type": "Normal"}),
                vec![],
            ),
            (
                "event about a node",
                json!({"kind": "Event", "involvedObject": {"kind": "Node", "name": "n"}}),
                vec![],
            ),
            (
                "event namespace",
                json!({"kind": "Event", "involvedObject": {"kind": "Pod", "name": "p", "namespace": "other"}}),
                vec![("involvedObject.namespace", Invalid)],
            ),
            (
                "event type",
                json!({"kind": "Event", "involvedObject": {"namespace": "default"}, "type": "Info"}),
                vec![("type", NotSupported)],
            ),
            (
                "pvc",
                json!({"kind": "PersistentVolumeClaim", "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
                vec![],
            ),
            (
                "pvc empty",
                json!({"kind": "PersistentVolumeClaim", "spec": {}}),
                vec![
                    ("spec.accessModes", Required),
                    ("spec.resources[storage]", Required),
                ],
            ),
            (
                "pvc zero",
                json!({"kind": "PersistentVolumeClaim", "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "0"}}}}),
                vec![("spec.resources[storage]", Invalid)],
            ),
            (
                "pvc mode",
                json!({"kind": "PersistentVolumeClaim", "spec": {"accessModes": ["ReadWriteAlways"], "volumeMode": "Block", "resources": {"requests": {"storage": "1Gi"}}}}),
                vec![
                    ("spec.accessModes[0]", NotSupported),
                    ("spec.volumeMode", NotSupported),
                ],
            ),
            (
                "pv",
                json!({"kind": "PersistentVolume", "metadata": cluster, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "local": {"path": "/var/lib/skiff/pv1"}}}),
                vec![],
            ),
            (
                "pv empty",
                json!({"kind": "PersistentVolume", "metadata": cluster, "spec": {}}),
                vec![
                    ("spec.capacity", Required),
                    ("spec.accessModes", Required),
                    ("spec", Required),
                ],
            ),
            (
                "pv nfs",
                json!({"kind": "PersistentVolume", "metadata": cluster, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "nfs": {"server": "s", "path": "/"}}}),
                vec![("spec.nfs", NotSupported)],
            ),
            (
                "pv two sources",
                json!({"kind": "PersistentVolume", "metadata": cluster, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "local": {"path": "/a"}, "hostPath": {"path": "b"}}}),
                vec![("spec.local", Forbidden), ("spec.hostPath.path", Invalid)],
            ),
            (
                "pv policy",
                json!({"kind": "PersistentVolume", "metadata": cluster, "spec": {"capacity": {"storage": "1Gi", "iops": "5"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Keep", "local": {"path": "/a"}}}),
                vec![
                    ("spec.capacity[iops]", NotSupported),
                    ("spec.persistentVolumeReclaimPolicy", NotSupported),
                ],
            ),
            (
                "service account",
                json!({"kind": "ServiceAccount", "imagePullSecrets": [{"name": ""}]}),
                vec![("imagePullSecrets[0].name", Required)],
            ),
            (
                "lease",
                json!({"kind": "Lease", "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0}}),
                vec![],
            ),
            (
                "lease bad",
                json!({"kind": "Lease", "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1, "preferredHolder": "b"}}),
                vec![
                    ("spec.leaseDurationSeconds", Invalid),
                    ("spec.leaseTransitions", Invalid),
                    ("spec.preferredHolder", Forbidden),
                ],
            ),
        ]);
    }
}
