//! The Pod spec, with its Wasm meaning (ARCHITECTURE.md § API).
//!
//! Kubernetes' rules for the fields Skiff runs, plus the Wasm rules: `image` names a
//! component, and a field that asks for something a Wasm sandbox does not have (host
//! namespaces, privileges, capabilities, processes to `exec`, terminals, host ports, block
//! devices, host paths) is `Forbidden` (or `Unsupported` for volume types) with the reason.
//!
//! Decisions:
//! - `hostUsers` is accepted either way: a component has no user identity, so neither
//!   value grants anything (`false`, "isolate users", is what the sandbox always gives;
//!   `true` is Kubernetes' default and kubectl manifests state it).
//! - Restrictive security settings (`runAsNonRoot`, `readOnlyRootFilesystem`, dropping
//!   capabilities, seccomp/AppArmor profiles) are accepted: the sandbox satisfies them.
//! - Two containers of a pod may not declare the same port and protocol: they share one
//!   pod network, so both cannot listen on it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, EnvVarSource, HTTPGetAction, KeyToPath, LifecycleHandler, ObjectFieldSelector, Pod,
    PodSpec, Probe, ResourceFieldSelector, ResourceRequirements, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{FieldError, FieldPath, at_least, invalid_each, is_set, non_negative};
use crate::names;
use crate::quantity::{QUANTITY_REGEX_MESSAGE, Quantity};

/// The component reference forms `image` accepts, as error messages list them.
pub const ALLOWED_IMAGE_FORMS: &str = "file:///absolute/path, https://host/path, \
     oci://registry/repository[:tag|@sha256:<digest>] or sha256:<64 hex digits>";

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
const SUPPORTED_VOLUMES: &str =
    "configMap, downwardAPI, emptyDir, persistentVolumeClaim, projected, secret";
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];
const RESOURCE_FIELD_REFS: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

const NO_EXEC_PROBE: &str = "Wasm components cannot run commands: there are no processes in a Wasm sandbox; use httpGet, tcpSocket or grpc";
const NO_EXEC_HOOK: &str = "Wasm components cannot run commands: there are no processes in a Wasm sandbox; use httpGet or sleep";
const NO_TERMINAL: &str = "Skiff attaches no terminal or standard input to Wasm components";
const NO_HOST_PORT: &str = "Skiff pods get no host ports; a component listens in its pod's virtual network, expose it through a Service (NodePort)";

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn oci_reference(rest: &str) -> Result<(), &'static str> {
    let (name, digest) = match rest.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (rest, None),
    };
    if let Some(d) = digest
        && !d
            .strip_prefix("sha256:")
            .is_some_and(|h| is_lower_hex(h, 64))
    {
        return Err("the digest must be sha256:<64 lowercase hex digits>");
    }
    let (registry, repository) = name.split_once('/').ok_or(
        "an oci:// reference needs a registry and a repository (oci://registry/repository)",
    )?;
    let registry_ok = !registry.is_empty()
        && registry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':' || b == b'_')
        && !registry.starts_with(['.', '-', ':']);
    if !registry_ok {
        return Err("the registry must be a host name with an optional port");
    }
    let (path, tag) = match repository.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, Some(tag)),
        _ => (repository, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
            && !tag.starts_with(['.', '-']);
        if !ok {
            return Err(
                "the tag must be 1-128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'",
            );
        }
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
            })
            && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
    };
    if !path.split('/').all(component_ok) {
        return Err(
            "the repository must be lowercase path components of [a-z0-9._-] separated by '/'",
        );
    }
    Ok(())
}

/// Checks that `image` is a Wasm component reference; the error message says what is
/// wrong and lists the forms Skiff accepts.
pub fn validate_image(image: &str) -> Result<(), String> {
    if image.trim() != image {
        return Err("must not have leading or trailing whitespace".to_string());
    }
    let with_forms = |reason: &str| {
        format!("{reason}; a Wasm component reference is one of {ALLOWED_IMAGE_FORMS}")
    };
    if let Some(path) = image.strip_prefix("file://") {
        if !path.starts_with('/') || path.len() < 2 {
            return Err(with_forms(
                "a file:// reference needs an absolute path (file:///path/to/component.wasm)",
            ));
        }
        if path.chars().any(char::is_control) {
            return Err(with_forms("the path must not contain control characters"));
        }
        return Ok(());
    }
    if let Some(rest) = image.strip_prefix("https://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(with_forms(
                "an https:// reference needs a host and no whitespace",
            ));
        }
        return Ok(());
    }
    if let Some(rest) = image.strip_prefix("oci://") {
        return oci_reference(rest).map_err(with_forms);
    }
    if let Some(hex) = image.strip_prefix("sha256:") {
        if !is_lower_hex(hex, 64) {
            return Err(with_forms(
                "a sha256: reference needs exactly 64 lowercase hex digits",
            ));
        }
        return Ok(());
    }
    Err(format!(
        "must be a Wasm component reference: {ALLOWED_IMAGE_FORMS} (Skiff runs WebAssembly components, not container images)"
    ))
}

pub(super) fn validate_pod(pod: &Pod, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    match &pod.spec {
        Some(spec) => errs.extend(validate_pod_spec(spec, &path)),
        None => errs.push(FieldError::required(&path, "")),
    }
}

/// Every problem with a pod spec at `path` (`spec` for a Pod, `spec.template.spec` for a
/// workload's template).
pub fn validate_pod_spec(spec: &PodSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let volumes = validate_volumes(
        spec.volumes.as_deref().unwrap_or(&[]),
        &path.child("volumes"),
        &mut errs,
    );

    if spec.containers.is_empty() {
        errs.push(FieldError::required(&path.child("containers"), ""));
    }
    let mut container_names = BTreeSet::new();
    let mut pod_ports: BTreeSet<(i32, String)> = BTreeSet::new();
    let lists = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or(&[]),
            true,
        ),
        ("containers", spec.containers.as_slice(), false),
    ];
    for (list, containers, init) in lists {
        for (i, c) in containers.iter().enumerate() {
            let p = path.child(list).index(i);
            validate_container(c, &p, &volumes, init, &mut errs);
            if !c.name.is_empty() && !container_names.insert(c.name.as_str()) {
                errs.push(FieldError::duplicate(&p.child("name"), &c.name));
            }
            for (j, port) in c.ports.iter().flatten().enumerate() {
                let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".to_string());
                if port.container_port > 0 && !pod_ports.insert((port.container_port, protocol)) {
                    errs.push(FieldError::duplicate(
                        &p.child("ports").index(j).child("containerPort"),
                        port.container_port,
                    ));
                }
            }
        }
    }
    if let Some(ephemeral) = &spec.ephemeral_containers
        && !ephemeral.is_empty()
    {
        errs.push(FieldError::forbidden(
            &path.child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }

    if let Some(policy) = spec.restart_policy.as_deref() {
        if policy.is_empty() {
            errs.push(FieldError::required(&path.child("restartPolicy"), ""));
        } else if !RESTART_POLICIES.contains(&policy) {
            errs.push(FieldError::not_supported(
                &path.child("restartPolicy"),
                policy,
                RESTART_POLICIES,
            ));
        }
    }
    if let Some(policy) = spec.dns_policy.as_deref().filter(|p| !p.is_empty()) {
        if !DNS_POLICIES.contains(&policy) {
            errs.push(FieldError::not_supported(
                &path.child("dnsPolicy"),
                policy,
                DNS_POLICIES,
            ));
        } else if policy == "None" && spec.dns_config.is_none() {
            errs.push(FieldError::required(
                &path.child("dnsConfig"),
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
        }
    }

    // Wasm: what a sandboxed component does not have.
    let forbid_true = |flag: Option<bool>, field: &str, why: &str, errs: &mut Vec<FieldError>| {
        if flag == Some(true) {
            errs.push(FieldError::forbidden(&path.child(field), why));
        }
    };
    forbid_true(
        spec.host_network,
        "hostNetwork",
        "Wasm components have no host network; pods get a virtual network namespace",
        &mut errs,
    );
    forbid_true(
        spec.host_pid,
        "hostPID",
        "Wasm components are not processes; there is no host PID namespace to share",
        &mut errs,
    );
    forbid_true(
        spec.host_ipc,
        "hostIPC",
        "Wasm components have no host IPC namespace to share",
        &mut errs,
    );
    forbid_true(
        spec.share_process_namespace,
        "shareProcessNamespace",
        "Wasm components are not processes; there is no process namespace to share",
        &mut errs,
    );
    if let Some(sc) = &spec.security_context {
        let p = path.child("securityContext");
        if sc.se_linux_options.is_some() {
            errs.push(FieldError::forbidden(
                &p.child("seLinuxOptions"),
                "Wasm components are not confined by SELinux; the Wasm sandbox isolates them",
            ));
        }
        if sc.windows_options.is_some() {
            errs.push(FieldError::forbidden(
                &p.child("windowsOptions"),
                "Wasm components are not Windows processes",
            ));
        }
        if sc.sysctls.as_ref().is_some_and(|s| !s.is_empty()) {
            errs.push(FieldError::forbidden(
                &p.child("sysctls"),
                "Wasm components have no kernel parameters to set",
            ));
        }
    }
    if spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()) {
        errs.push(FieldError::forbidden(
            &path.child("resourceClaims"),
            "Wasm components cannot use devices (dynamic resource allocation)",
        ));
    }

    if let Some(seconds) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&seconds)
    {
        errs.push(FieldError::invalid(
            &path.child("activeDeadlineSeconds"),
            seconds,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    non_negative(
        spec.termination_grace_period_seconds,
        &path.child("terminationGracePeriodSeconds"),
        &mut errs,
    );
    if let Some(selector) = &spec.node_selector {
        errs.extend(super::validate_labels(
            selector,
            &path.child("nodeSelector"),
        ));
    }
    for (field, value) in [
        ("nodeName", &spec.node_name),
        ("serviceAccountName", &spec.service_account_name),
        ("schedulerName", &spec.scheduler_name),
        ("priorityClassName", &spec.priority_class_name),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            invalid_each(
                &path.child(field),
                v,
                names::is_dns1123_subdomain(v),
                &mut errs,
            );
        }
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            invalid_each(&path.child(field), v, names::is_dns1123_label(v), &mut errs);
        }
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        validate_toleration(t, &path.child("tolerations").index(i), &mut errs);
    }
    for (i, secret) in spec.image_pull_secrets.iter().flatten().enumerate() {
        if secret.name.is_empty() {
            errs.push(FieldError::required(
                &path.child("imagePullSecrets").index(i).child("name"),
                "",
            ));
        }
    }
    errs
}

fn validate_toleration(
    t: &k8s_openapi::api::core::v1::Toleration,
    p: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let key = t.key.as_deref().unwrap_or("");
    let operator = t.operator.as_deref().unwrap_or("");
    let value = t.value.as_deref().unwrap_or("");
    if !key.is_empty() {
        invalid_each(&p.child("key"), key, names::is_qualified_name(key), errs);
    } else if operator != "Exists" {
        errs.push(FieldError::invalid(
            &p.child("operator"),
            operator,
            "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        ));
    }
    match operator {
        "" | "Equal" => invalid_each(&p.child("value"), value, names::is_label_value(value), errs),
        "Exists" => {
            if !value.is_empty() {
                errs.push(FieldError::invalid(
                    &p.child("operator"),
                    value,
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            &p.child("operator"),
            other,
            &["Equal", "Exists"],
        )),
    }
    let effect = t.effect.as_deref().unwrap_or("");
    if !["", "NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        errs.push(FieldError::not_supported(
            &p.child("effect"),
            effect,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        ));
    }
    if t.toleration_seconds.is_some() && effect != "NoExecute" {
        errs.push(FieldError::invalid(
            &p.child("effect"),
            effect,
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
}

/// Validates the volumes and returns their names (for volume mounts).
fn validate_volumes<'a>(
    volumes: &'a [Volume],
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) -> BTreeSet<&'a str> {
    let mut names_seen = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        if v.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else {
            invalid_each(
                &p.child("name"),
                &v.name,
                names::is_dns1123_label(&v.name),
                errs,
            );
            if !names_seen.insert(v.name.as_str()) {
                errs.push(FieldError::duplicate(&p.child("name"), &v.name));
            }
        }
        validate_volume_source(v, &p, errs);
    }
    names_seen
}

fn validate_volume_source(v: &Volume, p: &FieldPath, errs: &mut Vec<FieldError>) {
    let supported = [
        ("emptyDir", v.empty_dir.is_some()),
        ("configMap", v.config_map.is_some()),
        ("secret", v.secret.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("projected", v.projected.is_some()),
    ];
    let unsupported = [
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("cinder", v.cinder.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("flocker", v.flocker.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("image", v.image.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("nfs", v.nfs.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("rbd", v.rbd.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
    ];
    let mut count = 0;
    for (name, set) in supported.iter().chain(unsupported.iter()) {
        if !set {
            continue;
        }
        count += 1;
        if count > 1 {
            errs.push(FieldError::forbidden(
                &p.child(name),
                "may not specify more than 1 volume type",
            ));
        }
    }
    for (name, set) in unsupported {
        if set {
            let why = if name == "hostPath" {
                format!(
                    "Skiff has no host filesystem: a component sees only the volumes its pod declares (supported volume types: {SUPPORTED_VOLUMES})"
                )
            } else {
                format!(
                    "Skiff's Wasm runtime does not support this volume type (supported volume types: {SUPPORTED_VOLUMES})"
                )
            };
            errs.push(FieldError::not_supported_msg(&p.child(name), name, why));
        }
    }
    if count == 0 {
        errs.push(FieldError::required(p, "must specify a volume type"));
    }
    if let Some(e) = &v.empty_dir {
        let medium = e.medium.as_deref().unwrap_or("");
        if !["", "Memory"].contains(&medium) {
            errs.push(FieldError::not_supported(
                &p.child("emptyDir").child("medium"),
                medium,
                &["", "Memory"],
            ));
        }
        if let Some(q) = &e.size_limit {
            validate_quantity(q, &p.child("emptyDir").child("sizeLimit"), errs);
        }
    }
    if let Some(cm) = &v.config_map {
        let cp = p.child("configMap");
        if cm.name.is_empty() {
            errs.push(FieldError::required(&cp.child("name"), ""));
        }
        validate_mode(cm.default_mode, &cp.child("defaultMode"), errs);
        validate_items(cm.items.as_deref(), &cp.child("items"), errs);
    }
    if let Some(s) = &v.secret {
        let sp = p.child("secret");
        if !is_set(&s.secret_name) {
            errs.push(FieldError::required(&sp.child("secretName"), ""));
        }
        validate_mode(s.default_mode, &sp.child("defaultMode"), errs);
        validate_items(s.items.as_deref(), &sp.child("items"), errs);
    }
    if let Some(pvc) = &v.persistent_volume_claim
        && pvc.claim_name.is_empty()
    {
        errs.push(FieldError::required(
            &p.child("persistentVolumeClaim").child("claimName"),
            "",
        ));
    }
    if let Some(d) = &v.downward_api {
        let dp = p.child("downwardAPI");
        validate_mode(d.default_mode, &dp.child("defaultMode"), errs);
        for (i, f) in d.items.iter().flatten().enumerate() {
            validate_downward_file(f, &dp.child("items").index(i), errs);
        }
    }
    if let Some(pr) = &v.projected {
        let pp = p.child("projected");
        validate_mode(pr.default_mode, &pp.child("defaultMode"), errs);
        for (i, s) in pr.sources.iter().flatten().enumerate() {
            let sp = pp.child("sources").index(i);
            let set = [
                ("configMap", s.config_map.is_some()),
                ("secret", s.secret.is_some()),
                ("downwardAPI", s.downward_api.is_some()),
                ("serviceAccountToken", s.service_account_token.is_some()),
                ("clusterTrustBundle", s.cluster_trust_bundle.is_some()),
            ];
            let n = set.iter().filter(|(_, s)| *s).count();
            if n == 0 {
                errs.push(FieldError::required(
                    &sp,
                    "must specify exactly one projection source",
                ));
            }
            for (name, _) in set.iter().filter(|(_, s)| *s).skip(1) {
                errs.push(FieldError::forbidden(
                    &sp.child(name),
                    "may not specify more than 1 projection source",
                ));
            }
            if s.cluster_trust_bundle.is_some() {
                errs.push(FieldError::not_supported_msg(
                    &sp.child("clusterTrustBundle"),
                    "clusterTrustBundle",
                    "Skiff does not serve ClusterTrustBundles",
                ));
            }
            if let Some(cm) = &s.config_map {
                validate_items(
                    cm.items.as_deref(),
                    &sp.child("configMap").child("items"),
                    errs,
                );
            }
            if let Some(sec) = &s.secret {
                validate_items(
                    sec.items.as_deref(),
                    &sp.child("secret").child("items"),
                    errs,
                );
            }
            if let Some(d) = &s.downward_api {
                for (j, f) in d.items.iter().flatten().enumerate() {
                    validate_downward_file(
                        f,
                        &sp.child("downwardAPI").child("items").index(j),
                        errs,
                    );
                }
            }
            if let Some(t) = &s.service_account_token {
                let tp = sp.child("serviceAccountToken");
                validate_relative_path(&t.path, &tp.child("path"), errs);
                if let Some(exp) = t.expiration_seconds
                    && exp < 600
                {
                    errs.push(FieldError::invalid(
                        &tp.child("expirationSeconds"),
                        exp,
                        "may not specify a duration less than 10 minutes",
                    ));
                }
            }
        }
    }
}

fn validate_mode(mode: Option<i32>, p: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(m) = mode
        && !(0..=0o777).contains(&m)
    {
        errs.push(FieldError::invalid(
            p,
            m,
            "must be a number between 0 and 0777 (octal), both inclusive",
        ));
    }
}

fn validate_items(items: Option<&[KeyToPath]>, p: &FieldPath, errs: &mut Vec<FieldError>) {
    for (i, item) in items.unwrap_or(&[]).iter().enumerate() {
        let ip = p.index(i);
        if item.key.is_empty() {
            errs.push(FieldError::required(&ip.child("key"), ""));
        } else {
            invalid_each(
                &ip.child("key"),
                &item.key,
                names::is_config_key(&item.key),
                errs,
            );
        }
        validate_relative_path(&item.path, &ip.child("path"), errs);
        validate_mode(item.mode, &ip.child("mode"), errs);
    }
}

/// A path inside a volume: relative, without `..`.
fn validate_relative_path(path: &str, p: &FieldPath, errs: &mut Vec<FieldError>) {
    if path.is_empty() {
        errs.push(FieldError::required(p, ""));
        return;
    }
    if path.starts_with('/') {
        errs.push(FieldError::invalid(p, path, "must be a relative path"));
    }
    if path.split('/').any(|c| c == "..") {
        errs.push(FieldError::invalid(p, path, "must not contain '..'"));
    }
}

fn validate_downward_file(
    f: &k8s_openapi::api::core::v1::DownwardAPIVolumeFile,
    p: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    validate_relative_path(&f.path, &p.child("path"), errs);
    validate_mode(f.mode, &p.child("mode"), errs);
    match (&f.field_ref, &f.resource_field_ref) {
        (Some(fr), None) => {
            validate_object_field_ref(fr, VOLUME_FIELD_PATHS, &p.child("fieldRef"), errs)
        }
        (None, Some(rr)) => {
            validate_resource_field_ref(rr, true, &p.child("resourceFieldRef"), errs)
        }
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            &p.child("resourceFieldRef"),
            "",
            "fieldRef and resourceFieldRef can not be specified simultaneously",
        )),
        (None, None) => errs.push(FieldError::required(
            p,
            "one of fieldRef and resourceFieldRef is required",
        )),
    }
}

fn validate_object_field_ref(
    r: &ObjectFieldSelector,
    supported: &[&str],
    p: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if let Some(v) = r.api_version.as_deref().filter(|v| !v.is_empty())
        && v != "v1"
    {
        errs.push(FieldError::not_supported(
            &p.child("apiVersion"),
            v,
            &["v1"],
        ));
    }
    let fp = p.child("fieldPath");
    let field = r.field_path.as_str();
    if field.is_empty() {
        errs.push(FieldError::required(&fp, ""));
        return;
    }
    // metadata.labels['key'] / metadata.annotations['key'] select one entry.
    for map in ["metadata.labels", "metadata.annotations"] {
        if let Some(rest) = field
            .strip_prefix(map)
            .and_then(|r| r.strip_prefix("['"))
            .and_then(|r| r.strip_suffix("']"))
        {
            let msgs = if map == "metadata.labels" {
                names::is_qualified_name(rest)
            } else {
                names::is_qualified_name(&rest.to_ascii_lowercase())
            };
            invalid_each(&fp, field, msgs, errs);
            return;
        }
    }
    if !supported.contains(&field) {
        errs.push(FieldError::not_supported(&fp, field, supported));
    }
}

fn validate_resource_field_ref(
    r: &ResourceFieldSelector,
    volume: bool,
    p: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if volume && !is_set(&r.container_name) {
        errs.push(FieldError::required(&p.child("containerName"), ""));
    }
    if r.resource.is_empty() {
        errs.push(FieldError::required(&p.child("resource"), ""));
    } else if !RESOURCE_FIELD_REFS.contains(&r.resource.as_str()) {
        errs.push(FieldError::not_supported(
            &p.child("resource"),
            &r.resource,
            RESOURCE_FIELD_REFS,
        ));
    }
    if let Some(d) = &r.divisor {
        validate_quantity(d, &p.child("divisor"), errs);
    }
}

/// A quantity parses and is not negative.
pub(super) fn validate_quantity(
    q: &K8sQuantity,
    p: &FieldPath,
    errs: &mut Vec<FieldError>,
) -> Option<Quantity> {
    match Quantity::from_k8s(q) {
        Ok(parsed) if parsed.is_negative() => {
            errs.push(FieldError::invalid(
                p,
                &q.0,
                "must be greater than or equal to 0",
            ));
            None
        }
        Ok(parsed) => Some(parsed),
        Err(_) => {
            errs.push(FieldError::invalid(p, &q.0, QUANTITY_REGEX_MESSAGE));
            None
        }
    }
}

fn validate_container(
    c: &Container,
    p: &FieldPath,
    volumes: &BTreeSet<&str>,
    init: bool,
    errs: &mut Vec<FieldError>,
) {
    if c.name.is_empty() {
        errs.push(FieldError::required(&p.child("name"), ""));
    } else {
        invalid_each(
            &p.child("name"),
            &c.name,
            names::is_dns1123_label(&c.name),
            errs,
        );
    }
    match c.image.as_deref() {
        None | Some("") => errs.push(FieldError::required(&p.child("image"), "")),
        Some(image) => {
            if let Err(msg) = validate_image(image) {
                errs.push(FieldError::invalid(&p.child("image"), image, msg));
            }
        }
    }
    if let Some(policy) = c.image_pull_policy.as_deref().filter(|s| !s.is_empty())
        && !PULL_POLICIES.contains(&policy)
    {
        errs.push(FieldError::not_supported(
            &p.child("imagePullPolicy"),
            policy,
            PULL_POLICIES,
        ));
    }
    if let Some(policy) = c
        .termination_message_policy
        .as_deref()
        .filter(|s| !s.is_empty())
        && !TERMINATION_MESSAGE_POLICIES.contains(&policy)
    {
        errs.push(FieldError::not_supported(
            &p.child("terminationMessagePolicy"),
            policy,
            TERMINATION_MESSAGE_POLICIES,
        ));
    }
    let sidecar = init && c.restart_policy.as_deref() == Some("Always");
    if let Some(policy) = c.restart_policy.as_deref() {
        if !init {
            errs.push(FieldError::forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        } else if policy != "Always" {
            errs.push(FieldError::not_supported(
                &p.child("restartPolicy"),
                policy,
                &["Always"],
            ));
        }
    }

    // Ports.
    let mut port_names = BTreeSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let pp = p.child("ports").index(i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            invalid_each(&pp.child("name"), name, names::is_port_name(name), errs);
            if !port_names.insert(name) {
                errs.push(FieldError::duplicate(&pp.child("name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(&pp.child("containerPort"), ""));
        } else {
            for msg in names::is_port_num(i64::from(port.container_port)) {
                errs.push(FieldError::invalid(
                    &pp.child("containerPort"),
                    port.container_port,
                    msg,
                ));
            }
        }
        if port.host_port.is_some_and(|h| h != 0) {
            errs.push(FieldError::forbidden(&pp.child("hostPort"), NO_HOST_PORT));
        }
        if is_set(&port.host_ip) {
            errs.push(FieldError::forbidden(&pp.child("hostIP"), NO_HOST_PORT));
        }
        validate_protocol(port.protocol.as_deref(), &pp.child("protocol"), errs);
    }

    // Environment.
    for (i, env) in c.env.iter().flatten().enumerate() {
        let ep = p.child("env").index(i);
        if env.name.is_empty() {
            errs.push(FieldError::required(&ep.child("name"), ""));
        } else {
            invalid_each(
                &ep.child("name"),
                &env.name,
                names::is_env_var_name(&env.name),
                errs,
            );
        }
        if let Some(from) = &env.value_from {
            validate_env_source(from, is_set(&env.value), &ep.child("valueFrom"), errs);
        }
    }
    for (i, from) in c.env_from.iter().flatten().enumerate() {
        let fp = p.child("envFrom").index(i);
        if let Some(prefix) = from.prefix.as_deref().filter(|s| !s.is_empty()) {
            invalid_each(
                &fp.child("prefix"),
                prefix,
                names::is_env_var_name(prefix),
                errs,
            );
        }
        match (&from.config_map_ref, &from.secret_ref) {
            (None, None) => errs.push(FieldError::invalid(
                &fp,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            )),
            (Some(_), Some(_)) => errs.push(FieldError::invalid(
                &fp,
                "",
                "may not have more than one field specified at a time",
            )),
            (Some(r), None) if r.name.is_empty() => errs.push(FieldError::required(
                &fp.child("configMapRef").child("name"),
                "",
            )),
            (None, Some(r)) if r.name.is_empty() => errs.push(FieldError::required(
                &fp.child("secretRef").child("name"),
                "",
            )),
            _ => {}
        }
    }

    // Volume mounts become WASI preopens.
    let mut mount_paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = p.child("volumeMounts").index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(&mp.child("name"), ""));
        } else if !volumes.contains(m.name.as_str()) {
            errs.push(FieldError::not_found(&mp.child("name"), &m.name));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(&mp.child("mountPath"), ""));
        } else {
            if !m.mount_path.starts_with('/') {
                errs.push(FieldError::invalid(
                    &mp.child("mountPath"),
                    &m.mount_path,
                    "must be an absolute path: it becomes the component's preopened directory",
                ));
            }
            if !mount_paths.insert(m.mount_path.as_str()) {
                errs.push(FieldError::invalid(
                    &mp.child("mountPath"),
                    &m.mount_path,
                    "must be unique",
                ));
            }
        }
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sub.starts_with('/') {
                errs.push(FieldError::invalid(
                    &mp.child("subPath"),
                    sub,
                    "must be a relative path",
                ));
            }
            if sub.split('/').any(|c| c == "..") {
                errs.push(FieldError::invalid(
                    &mp.child("subPath"),
                    sub,
                    "must not contain '..'",
                ));
            }
            if is_set(&m.sub_path_expr) {
                errs.push(FieldError::invalid(
                    &mp.child("subPathExpr"),
                    m.sub_path_expr.as_deref().unwrap_or(""),
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
        }
        if let Some(prop) = m
            .mount_propagation
            .as_deref()
            .filter(|s| !s.is_empty() && *s != "None")
        {
            errs.push(FieldError::forbidden(
                &mp.child("mountPropagation"),
                format!("{prop}: Skiff has no host mounts to propagate"),
            ));
        }
    }
    if c.volume_devices.as_ref().is_some_and(|d| !d.is_empty()) {
        errs.push(FieldError::forbidden(
            &p.child("volumeDevices"),
            "Wasm components have no block devices",
        ));
    }

    if let Some(r) = &c.resources {
        validate_resources(r, &p.child("resources"), errs);
    }

    // Probes.
    let probes = [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ];
    for (field, probe) in probes {
        let Some(probe) = probe else { continue };
        let pp = p.child(field);
        if init && !sidecar {
            errs.push(FieldError::forbidden(
                &pp,
                "may not be set for init containers without restartPolicy=Always",
            ));
            continue;
        }
        validate_probe(probe, field, &pp, errs);
    }

    if let Some(lifecycle) = &c.lifecycle {
        let lp = p.child("lifecycle");
        if init && !sidecar {
            errs.push(FieldError::forbidden(
                &lp,
                "may not be set for init containers without restartPolicy=Always",
            ));
        } else {
            for (field, handler) in [
                ("postStart", &lifecycle.post_start),
                ("preStop", &lifecycle.pre_stop),
            ] {
                if let Some(h) = handler {
                    validate_lifecycle_handler(h, &lp.child(field), errs);
                }
            }
            if is_set(&lifecycle.stop_signal) {
                errs.push(FieldError::forbidden(
                    &lp.child("stopSignal"),
                    "Wasm components receive no signals",
                ));
            }
        }
    }

    if let Some(sc) = &c.security_context {
        let sp = p.child("securityContext");
        if sc.privileged == Some(true) {
            errs.push(FieldError::forbidden(
                &sp.child("privileged"),
                "Wasm components run in a sandbox and cannot be privileged",
            ));
        }
        if sc.allow_privilege_escalation == Some(true) {
            errs.push(FieldError::forbidden(
                &sp.child("allowPrivilegeEscalation"),
                "Wasm components have no privileges to escalate",
            ));
        }
        if let Some(caps) = &sc.capabilities
            && caps.add.as_ref().is_some_and(|a| !a.is_empty())
        {
            errs.push(FieldError::forbidden(
                &sp.child("capabilities").child("add"),
                "Wasm components have no Linux capabilities; a component gets only what its pod grants (args, env, volumes, its pod network)",
            ));
        }
        if let Some(pm) = sc
            .proc_mount
            .as_deref()
            .filter(|s| !s.is_empty() && *s != "Default")
        {
            errs.push(FieldError::forbidden(
                &sp.child("procMount"),
                format!("{pm}: Wasm components have no /proc"),
            ));
        }
        if sc.se_linux_options.is_some() {
            errs.push(FieldError::forbidden(
                &sp.child("seLinuxOptions"),
                "Wasm components are not confined by SELinux; the Wasm sandbox isolates them",
            ));
        }
        if sc.windows_options.is_some() {
            errs.push(FieldError::forbidden(
                &sp.child("windowsOptions"),
                "Wasm components are not Windows processes",
            ));
        }
    }
    for (field, flag) in [
        ("stdin", c.stdin),
        ("stdinOnce", c.stdin_once),
        ("tty", c.tty),
    ] {
        if flag == Some(true) {
            errs.push(FieldError::forbidden(&p.child(field), NO_TERMINAL));
        }
    }
}

pub(super) fn validate_protocol(protocol: Option<&str>, p: &FieldPath, errs: &mut Vec<FieldError>) {
    match protocol {
        None => {}
        Some("") => errs.push(FieldError::required(p, "")),
        Some(proto) if !PROTOCOLS.contains(&proto) => {
            errs.push(FieldError::not_supported(p, proto, PROTOCOLS))
        }
        Some(_) => {}
    }
}

fn validate_env_source(
    from: &EnvVarSource,
    has_value: bool,
    p: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let mut n = 0;
    if let Some(r) = &from.field_ref {
        n += 1;
        validate_object_field_ref(r, ENV_FIELD_PATHS, &p.child("fieldRef"), errs);
    }
    if let Some(r) = &from.resource_field_ref {
        n += 1;
        validate_resource_field_ref(r, false, &p.child("resourceFieldRef"), errs);
    }
    let key_refs = [
        (
            "configMapKeyRef",
            from.config_map_key_ref
                .as_ref()
                .map(|r| (r.key.as_str(), r.name.as_str())),
        ),
        (
            "secretKeyRef",
            from.secret_key_ref
                .as_ref()
                .map(|r| (r.key.as_str(), r.name.as_str())),
        ),
    ];
    for (field, refs) in key_refs {
        let Some((key, name)) = refs else { continue };
        n += 1;
        let rp = p.child(field);
        if name.is_empty() {
            errs.push(FieldError::required(&rp.child("name"), ""));
        }
        if key.is_empty() {
            errs.push(FieldError::required(&rp.child("key"), ""));
        } else {
            invalid_each(&rp.child("key"), key, names::is_config_key(key), errs);
        }
    }
    if n == 0 {
        errs.push(FieldError::invalid(
            p,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ));
    } else if n > 1 {
        errs.push(FieldError::invalid(
            p,
            "",
            "may not have more than one field specified at a time",
        ));
    }
    if has_value {
        errs.push(FieldError::invalid(
            p,
            "",
            "may not be specified when `value` is not empty",
        ));
    }
}

fn validate_resources(r: &ResourceRequirements, p: &FieldPath, errs: &mut Vec<FieldError>) {
    fn parse_list<'a>(
        list: &'a Option<BTreeMap<String, K8sQuantity>>,
        p: &FieldPath,
        errs: &mut Vec<FieldError>,
    ) -> BTreeMap<&'a str, (Quantity, &'a str)> {
        let mut out = BTreeMap::new();
        for (name, q) in list.iter().flatten() {
            let qp = p.key(name);
            if name.starts_with("hugepages-") {
                errs.push(FieldError::forbidden(
                    &qp,
                    "Wasm linear memory cannot be backed by huge pages",
                ));
            } else if name.contains('/') {
                invalid_each(&qp, name, names::is_qualified_name(name), errs);
            } else if !["cpu", "memory", "ephemeral-storage"].contains(&name.as_str()) {
                errs.push(FieldError::invalid(
                    &qp,
                    name,
                    "must be a standard resource type or fully qualified",
                ));
            }
            if let Some(parsed) = validate_quantity(q, &qp, errs) {
                out.insert(name.as_str(), (parsed, q.0.as_str()));
            }
        }
        out
    }
    let limits = parse_list(&r.limits, &p.child("limits"), errs);
    let requests = parse_list(&r.requests, &p.child("requests"), errs);
    for (name, (request, raw)) in &requests {
        if let Some((limit, limit_raw)) = limits.get(name)
            && request > limit
        {
            errs.push(FieldError::invalid(
                &p.child("requests").key(name),
                *raw,
                format!("must be less than or equal to {name} limit of {limit_raw}"),
            ));
        }
    }
    if r.claims.as_ref().is_some_and(|c| !c.is_empty()) {
        errs.push(FieldError::forbidden(
            &p.child("claims"),
            "Wasm components cannot use devices (dynamic resource allocation)",
        ));
    }
}

pub(super) fn validate_port_num_or_name(
    port: &IntOrString,
    p: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    match port {
        IntOrString::Int(n) => {
            for msg in names::is_port_num(i64::from(*n)) {
                errs.push(FieldError::invalid(p, *n, msg));
            }
        }
        IntOrString::String(s) => {
            if s.is_empty() {
                errs.push(FieldError::required(p, ""));
            } else {
                invalid_each(p, s, names::is_port_name(s), errs);
            }
        }
    }
}

fn validate_http_get(h: &HTTPGetAction, p: &FieldPath, errs: &mut Vec<FieldError>) {
    validate_port_num_or_name(&h.port, &p.child("port"), errs);
    if let Some(scheme) = h.scheme.as_deref().filter(|s| !s.is_empty())
        && !["HTTP", "HTTPS"].contains(&scheme)
    {
        errs.push(FieldError::not_supported(
            &p.child("scheme"),
            scheme,
            &["HTTP", "HTTPS"],
        ));
    }
    for (i, header) in h.http_headers.iter().flatten().enumerate() {
        let hp = p.child("httpHeaders").index(i).child("name");
        let ok = !header.name.is_empty()
            && header
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !ok {
            errs.push(FieldError::invalid(
                &hp,
                &header.name,
                "a valid HTTP header must consist of alphanumeric characters or '-'",
            ));
        }
    }
}

/// Counts one handler of a probe or lifecycle hook; a second one is Forbidden.
fn count_handler(handlers: &mut usize, p: &FieldPath, field: &str, errs: &mut Vec<FieldError>) {
    *handlers += 1;
    if *handlers > 1 {
        errs.push(FieldError::forbidden(
            &p.child(field),
            "may not specify more than 1 handler type",
        ));
    }
}

fn validate_probe(probe: &Probe, kind: &str, p: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut handlers = 0;
    if probe.exec.is_some() {
        handlers += 1;
        errs.push(FieldError::forbidden(&p.child("exec"), NO_EXEC_PROBE));
    }
    if let Some(h) = &probe.http_get {
        count_handler(&mut handlers, p, "httpGet", errs);
        validate_http_get(h, &p.child("httpGet"), errs);
    }
    if let Some(t) = &probe.tcp_socket {
        count_handler(&mut handlers, p, "tcpSocket", errs);
        validate_port_num_or_name(&t.port, &p.child("tcpSocket").child("port"), errs);
    }
    if let Some(g) = &probe.grpc {
        count_handler(&mut handlers, p, "grpc", errs);
        for msg in names::is_port_num(i64::from(g.port)) {
            errs.push(FieldError::invalid(
                &p.child("grpc").child("port"),
                g.port,
                msg,
            ));
        }
    }
    if handlers == 0 {
        errs.push(FieldError::required(p, "must specify a handler type"));
    }
    // 0 means "unset" (defaulting replaces it); negative values are errors.
    non_negative(
        probe.initial_delay_seconds,
        &p.child("initialDelaySeconds"),
        errs,
    );
    non_negative(probe.timeout_seconds, &p.child("timeoutSeconds"), errs);
    non_negative(probe.period_seconds, &p.child("periodSeconds"), errs);
    non_negative(probe.success_threshold, &p.child("successThreshold"), errs);
    non_negative(probe.failure_threshold, &p.child("failureThreshold"), errs);
    if kind != "readinessProbe"
        && let Some(s) = probe.success_threshold
        && s > 1
    {
        errs.push(FieldError::invalid(
            &p.child("successThreshold"),
            s,
            "must be 1",
        ));
    }
    if let Some(t) = probe.termination_grace_period_seconds {
        if kind == "readinessProbe" {
            errs.push(FieldError::invalid(
                &p.child("terminationGracePeriodSeconds"),
                t,
                "must not be set for readinessProbes",
            ));
        } else {
            at_least(Some(t), 1, &p.child("terminationGracePeriodSeconds"), errs);
        }
    }
}

fn validate_lifecycle_handler(h: &LifecycleHandler, p: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut handlers = 0;
    if h.exec.is_some() {
        handlers += 1;
        errs.push(FieldError::forbidden(&p.child("exec"), NO_EXEC_HOOK));
    }
    if let Some(g) = &h.http_get {
        count_handler(&mut handlers, p, "httpGet", errs);
        validate_http_get(g, &p.child("httpGet"), errs);
    }
    if let Some(t) = &h.tcp_socket {
        count_handler(&mut handlers, p, "tcpSocket", errs);
        validate_port_num_or_name(&t.port, &p.child("tcpSocket").child("port"), errs);
    }
    if let Some(s) = &h.sleep {
        count_handler(&mut handlers, p, "sleep", errs);
        non_negative(Some(s.seconds), &p.child("sleep").child("seconds"), errs);
    }
    if handlers == 0 {
        errs.push(FieldError::required(p, "must specify a handler type"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::FieldErrorKind::*;
    use super::super::testutil::*;
    use super::super::validate_create;
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn image_references() {
        let hex = "a".repeat(64);
        let cases: Vec<(String, bool)> = vec![
            ("file:///abs/path/app.wasm".into(), true),
            ("file://relative/app.wasm".into(), false),
            ("file:///".into(), false),
            ("https://example.com/app.wasm".into(), true),
            ("https://".into(), false),
            ("https:///path".into(), false),
            ("http://example.com/app.wasm".into(), false),
            ("oci://ghcr.io/org/app:1.0".into(), true),
            ("oci://ghcr.io/org/app".into(), true),
            ("oci://localhost:5000/app:latest".into(), true),
            (format!("oci://ghcr.io/org/app@sha256:{hex}"), true),
            (format!("oci://ghcr.io/org/app:1.0@sha256:{hex}"), true),
            ("oci://ghcr.io/org/app@sha256:abc".into(), false),
            ("oci://ghcr.io".into(), false),
            ("oci://ghcr.io/".into(), false),
            ("oci://ghcr.io/Org/app".into(), false),
            ("oci://ghcr.io/org/app:".into(), false),
            ("oci://ghcr.io/org/app:-x".into(), false),
            ("oci:///app".into(), false),
            (format!("sha256:{hex}"), true),
            (format!("sha256:{}", "A".repeat(64)), false),
            ("sha256:abc".into(), false),
            ("nginx:latest".into(), false),
            ("nginx".into(), false),
            ("docker.io/library/nginx:1.25".into(), false),
            (" oci://ghcr.io/org/app".into(), false),
        ];
        for (image, ok) in cases {
            assert_eq!(
                validate_image(&image).is_ok(),
                ok,
                "{image}: {:?}",
                validate_image(&image)
            );
        }
        let msg = validate_image("nginx:latest").unwrap_err();
        assert!(
            msg.contains("file:///absolute/path")
                && msg.contains("oci://")
                && msg.contains("sha256:"),
            "{msg}"
        );
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    fn c(extra: Value) -> Value {
        let mut base = json!({"name": "app", "image": "oci://ghcr.io/org/app:1"});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        base
    }

    fn check(cases: Vec<Case>) {
        for (name, spec, want) in cases {
            assert_errors(&validate_create(&obj(pod(spec))), &want, name);
        }
    }

    #[test]
    fn containers_names_images() {
        check(vec![
            ("minimal", json!({"containers": [c(json!({}))]}), vec![]),
            (
                "no containers",
                json!({"containers": []}),
                vec![("spec.containers", Required)],
            ),
            (
                "no name",
                json!({"containers": [{"image": "oci://r/a"}]}),
                vec![("spec.containers[0].name", Required)],
            ),
            (
                "bad name",
                json!({"containers": [c(json!({"name": "App"}))]}),
                vec![("spec.containers[0].name", Invalid)],
            ),
            (
                "duplicate name",
                json!({"containers": [c(json!({})), c(json!({}))]}),
                vec![("spec.containers[1].name", Duplicate)],
            ),
            (
                "duplicate with init",
                json!({"initContainers": [c(json!({}))], "containers": [c(json!({}))]}),
                vec![("spec.containers[0].name", Duplicate)],
            ),
            (
                "no image",
                json!({"containers": [{"name": "a"}]}),
                vec![("spec.containers[0].image", Required)],
            ),
            (
                "empty image",
                json!({"containers": [{"name": "a", "image": ""}]}),
                vec![("spec.containers[0].image", Required)],
            ),
            (
                "container image",
                json!({"containers": [c(json!({"image": "nginx:latest"}))]}),
                vec![("spec.containers[0].image", Invalid)],
            ),
            (
                "bad init image",
                json!({"initContainers": [c(json!({"name": "i", "image": "busybox"}))], "containers": [c(json!({}))]}),
                vec![("spec.initContainers[0].image", Invalid)],
            ),
            (
                "pull policy",
                json!({"containers": [c(json!({"imagePullPolicy": "Sometimes"}))]}),
                vec![("spec.containers[0].imagePullPolicy", NotSupported)],
            ),
            (
                "termination message policy",
                json!({"containers": [c(json!({"terminationMessagePolicy": "X"}))]}),
                vec![("spec.containers[0].terminationMessagePolicy", NotSupported)],
            ),
            (
                "restartPolicy on a container",
                json!({"containers": [c(json!({"restartPolicy": "Always"}))]}),
                vec![("spec.containers[0].restartPolicy", Forbidden)],
            ),
            (
                "sidecar",
                json!({"initContainers": [c(json!({"name": "s", "restartPolicy": "Always", "readinessProbe": {"httpGet": {"port": 80}}}))], "containers": [c(json!({}))]}),
                vec![],
            ),
            (
                "init restartPolicy",
                json!({"initContainers": [c(json!({"name": "s", "restartPolicy": "Never"}))], "containers": [c(json!({}))]}),
                vec![("spec.initContainers[0].restartPolicy", NotSupported)],
            ),
            (
                "init probe",
                json!({"initContainers": [c(json!({"name": "i", "livenessProbe": {"httpGet": {"port": 80}}}))], "containers": [c(json!({}))]}),
                vec![("spec.initContainers[0].livenessProbe", Forbidden)],
            ),
            (
                "ephemeral",
                json!({"containers": [c(json!({}))], "ephemeralContainers": [{"name": "dbg", "image": "oci://r/x"}]}),
                vec![("spec.ephemeralContainers", Forbidden)],
            ),
        ]);
        let errs = validate_create(&obj(pod(json!({"containers": [{"name": "a"}]}))));
        assert_eq!(
            errs[0].to_string(),
            "spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn ports() {
        check(vec![
            (
                "good ports",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 53, "protocol": "UDP"}]}))]}),
                vec![],
            ),
            (
                "port 0",
                json!({"containers": [c(json!({"ports": [{"containerPort": 0}]}))]}),
                vec![("spec.containers[0].ports[0].containerPort", Required)],
            ),
            (
                "port too big",
                json!({"containers": [c(json!({"ports": [{"containerPort": 70000}]}))]}),
                vec![("spec.containers[0].ports[0].containerPort", Invalid)],
            ),
            (
                "negative port",
                json!({"containers": [c(json!({"ports": [{"containerPort": -1}]}))]}),
                vec![("spec.containers[0].ports[0].containerPort", Invalid)],
            ),
            (
                "protocol",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "protocol": "HTTP"}]}))]}),
                vec![("spec.containers[0].ports[0].protocol", NotSupported)],
            ),
            (
                "port name",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "name": "HTTP"}]}))]}),
                vec![
                    ("spec.containers[0].ports[0].name", Invalid),
                    ("spec.containers[0].ports[0].name", Invalid),
                ],
            ),
            (
                "duplicate port name",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}]}))]}),
                vec![("spec.containers[0].ports[1].name", Duplicate)],
            ),
            (
                "host port",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "hostPort": 8080}]}))]}),
                vec![("spec.containers[0].ports[0].hostPort", Forbidden)],
            ),
            (
                "host ip",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "hostIP": "0.0.0.0"}]}))]}),
                vec![("spec.containers[0].ports[0].hostIP", Forbidden)],
            ),
            (
                "same port in two containers",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80}]})), c(json!({"name": "b", "ports": [{"containerPort": 80}]}))]}),
                vec![("spec.containers[1].ports[0].containerPort", Duplicate)],
            ),
            (
                "same port other protocol",
                json!({"containers": [c(json!({"ports": [{"containerPort": 53}]})), c(json!({"name": "b", "ports": [{"containerPort": 53, "protocol": "UDP"}]}))]}),
                vec![],
            ),
        ]);
        let errs = validate_create(&obj(pod(
            json!({"containers": [c(json!({"ports": [{"containerPort": 70000}]}))]}),
        )));
        assert_eq!(
            errs[0].to_string(),
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
    }

    #[test]
    fn env() {
        check(vec![
            (
                "good env",
                json!({"containers": [c(json!({"env": [
                    {"name": "A", "value": "1"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                ]}))]}),
                vec![],
            ),
            (
                "no name",
                json!({"containers": [c(json!({"env": [{"value": "1"}]}))]}),
                vec![("spec.containers[0].env[0].name", Required)],
            ),
            (
                "bad name",
                json!({"containers": [c(json!({"env": [{"name": "A=B"}]}))]}),
                vec![("spec.containers[0].env[0].name", Invalid)],
            ),
            (
                "empty valueFrom",
                json!({"containers": [c(json!({"env": [{"name": "A", "valueFrom": {}}]}))]}),
                vec![("spec.containers[0].env[0].valueFrom", Invalid)],
            ),
            (
                "two sources",
                json!({"containers": [c(json!({"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}, "secretKeyRef": {"name": "s", "key": "k"}}}]}))]}),
                vec![("spec.containers[0].env[0].valueFrom", Invalid)],
            ),
            (
                "value and valueFrom",
                json!({"containers": [c(json!({"env": [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}))]}),
                vec![("spec.containers[0].env[0].valueFrom", Invalid)],
            ),
            (
                "bad fieldPath",
                json!({"containers": [c(json!({"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}}]}))]}),
                vec![(
                    "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
                    NotSupported,
                )],
            ),
            (
                "bad resource",
                json!({"containers": [c(json!({"env": [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]}))]}),
                vec![(
                    "spec.containers[0].env[0].valueFrom.resourceFieldRef.resource",
                    NotSupported,
                )],
            ),
            (
                "key ref without key",
                json!({"containers": [c(json!({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": ""}}}]}))]}),
                vec![(
                    "spec.containers[0].env[0].valueFrom.configMapKeyRef.key",
                    Required,
                )],
            ),
            (
                "envFrom empty",
                json!({"containers": [c(json!({"envFrom": [{}]}))]}),
                vec![("spec.containers[0].envFrom[0]", Invalid)],
            ),
            (
                "envFrom both",
                json!({"containers": [c(json!({"envFrom": [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]}))]}),
                vec![("spec.containers[0].envFrom[0]", Invalid)],
            ),
            (
                "envFrom ok",
                json!({"containers": [c(json!({"envFrom": [{"configMapRef": {"name": "a"}, "prefix": "CM_"}]}))]}),
                vec![],
            ),
        ]);
    }

    #[test]
    fn volumes_and_mounts() {
        check(vec![
            (
                "supported volumes",
                json!({"volumes": [
                {"name": "a", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "b", "configMap": {"name": "cm", "items": [{"key": "k", "path": "dir/k"}], "defaultMode": 420}},
                {"name": "c", "secret": {"secretName": "s"}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "pvc"}},
                {"name": "e", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "f", "projected": {"sources": [{"configMap": {"name": "cm"}}, {"serviceAccountToken": {"path": "token"}}]}},
            ], "containers": [c(json!({"volumeMounts": [{"name": "a", "mountPath": "/data"}, {"name": "b", "mountPath": "/config", "readOnly": true}]}))]}),
                vec![],
            ),
            (
                "hostPath",
                json!({"volumes": [{"name": "h", "hostPath": {"path": "/etc"}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].hostPath", NotSupported)],
            ),
            (
                "nfs",
                json!({"volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].nfs", NotSupported)],
            ),
            (
                "two sources",
                json!({"volumes": [{"name": "v", "emptyDir": {}, "secret": {"secretName": "s"}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].secret", Forbidden)],
            ),
            (
                "no source",
                json!({"volumes": [{"name": "v"}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0]", Required)],
            ),
            (
                "duplicate volume",
                json!({"volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[1].name", Duplicate)],
            ),
            (
                "bad volume name",
                json!({"volumes": [{"name": "V_1", "emptyDir": {}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].name", Invalid)],
            ),
            (
                "no volume name",
                json!({"volumes": [{"emptyDir": {}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].name", Required)],
            ),
            (
                "configMap without name",
                json!({"volumes": [{"name": "v", "configMap": {}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].configMap.name", Required)],
            ),
            (
                "secret without name",
                json!({"volumes": [{"name": "v", "secret": {}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].secret.secretName", Required)],
            ),
            (
                "pvc without claim",
                json!({"volumes": [{"name": "v", "persistentVolumeClaim": {}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].persistentVolumeClaim.claimName", Required)],
            ),
            (
                "bad item path",
                json!({"volumes": [{"name": "v", "configMap": {"name": "cm", "items": [{"key": "k", "path": "../x"}, {"key": "a b", "path": "/abs"}]}}], "containers": [c(json!({}))]}),
                vec![
                    ("spec.volumes[0].configMap.items[0].path", Invalid),
                    ("spec.volumes[0].configMap.items[1].key", Invalid),
                    ("spec.volumes[0].configMap.items[1].path", Invalid),
                ],
            ),
            (
                "bad mode",
                json!({"volumes": [{"name": "v", "secret": {"secretName": "s", "defaultMode": 1000}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].secret.defaultMode", Invalid)],
            ),
            (
                "emptyDir medium",
                json!({"volumes": [{"name": "v", "emptyDir": {"medium": "HugePages"}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].emptyDir.medium", NotSupported)],
            ),
            (
                "emptyDir size",
                json!({"volumes": [{"name": "v", "emptyDir": {"sizeLimit": "lots"}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].emptyDir.sizeLimit", Invalid)],
            ),
            (
                "projected with two in one source",
                json!({"volumes": [{"name": "v", "projected": {"sources": [{"configMap": {"name": "a"}, "secret": {"name": "b"}}]}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].projected.sources[0].secret", Forbidden)],
            ),
            (
                "downward both refs",
                json!({"volumes": [{"name": "v", "downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath": "metadata.name"}, "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu"}}]}}], "containers": [c(json!({}))]}),
                vec![(
                    "spec.volumes[0].downwardAPI.items[0].resourceFieldRef",
                    Invalid,
                )],
            ),
            (
                "downward resource without container",
                json!({"volumes": [{"name": "v", "downwardAPI": {"items": [{"path": "x", "resourceFieldRef": {"resource": "limits.cpu"}}]}}], "containers": [c(json!({}))]}),
                vec![(
                    "spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName",
                    Required,
                )],
            ),
            (
                "mount of missing volume",
                json!({"containers": [c(json!({"volumeMounts": [{"name": "data", "mountPath": "/data"}]}))]}),
                vec![("spec.containers[0].volumeMounts[0].name", NotFound)],
            ),
            (
                "mount path relative",
                json!({"volumes": [{"name": "v", "emptyDir": {}}], "containers": [c(json!({"volumeMounts": [{"name": "v", "mountPath": "data"}]}))]}),
                vec![("spec.containers[0].volumeMounts[0].mountPath", Invalid)],
            ),
            (
                "mount path missing",
                json!({"volumes": [{"name": "v", "emptyDir": {}}], "containers": [c(json!({"volumeMounts": [{"name": "v"}]}))]}),
                vec![("spec.containers[0].volumeMounts[0].mountPath", Required)],
            ),
            (
                "mount path twice",
                json!({"volumes": [{"name": "v", "emptyDir": {}}], "containers": [c(json!({"volumeMounts": [{"name": "v", "mountPath": "/d"}, {"name": "v", "mountPath": "/d"}]}))]}),
                vec![("spec.containers[0].volumeMounts[1].mountPath", Invalid)],
            ),
            (
                "subPath escapes",
                json!({"volumes": [{"name": "v", "emptyDir": {}}], "containers": [c(json!({"volumeMounts": [{"name": "v", "mountPath": "/d", "subPath": "../x"}]}))]}),
                vec![("spec.containers[0].volumeMounts[0].subPath", Invalid)],
            ),
            (
                "propagation",
                json!({"volumes": [{"name": "v", "emptyDir": {}}], "containers": [c(json!({"volumeMounts": [{"name": "v", "mountPath": "/d", "mountPropagation": "Bidirectional"}]}))]}),
                vec![(
                    "spec.containers[0].volumeMounts[0].mountPropagation",
                    Forbidden,
                )],
            ),
            (
                "volumeDevices",
                json!({"volumes": [{"name": "v", "emptyDir": {}}], "containers": [c(json!({"volumeDevices": [{"name": "v", "devicePath": "/dev/x"}]}))]}),
                vec![("spec.containers[0].volumeDevices", Forbidden)],
            ),
        ]);
        let errs = validate_create(&obj(pod(
            json!({"volumes": [{"name": "h", "hostPath": {"path": "/etc"}}], "containers": [c(json!({}))]}),
        )));
        let msg = errs[0].to_string();
        assert!(msg.starts_with("spec.volumes[0].hostPath: Unsupported value: \"hostPath\": Skiff has no host filesystem"), "{msg}");
    }

    #[test]
    fn resources() {
        check(vec![
            (
                "good",
                json!({"containers": [c(json!({"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi", "example.com/widget": "1"}}}))]}),
                vec![],
            ),
            (
                "bad quantity",
                json!({"containers": [c(json!({"resources": {"limits": {"cpu": "lots"}}}))]}),
                vec![("spec.containers[0].resources.limits[cpu]", Invalid)],
            ),
            (
                "negative",
                json!({"containers": [c(json!({"resources": {"requests": {"memory": "-1"}}}))]}),
                vec![("spec.containers[0].resources.requests[memory]", Invalid)],
            ),
            (
                "request over limit",
                json!({"containers": [c(json!({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}}))]}),
                vec![("spec.containers[0].resources.requests[cpu]", Invalid)],
            ),
            (
                "unknown name",
                json!({"containers": [c(json!({"resources": {"limits": {"gpu": "1"}}}))]}),
                vec![("spec.containers[0].resources.limits[gpu]", Invalid)],
            ),
            (
                "hugepages",
                json!({"containers": [c(json!({"resources": {"limits": {"hugepages-2Mi": "1Gi"}}}))]}),
                vec![(
                    "spec.containers[0].resources.limits[hugepages-2Mi]",
                    Forbidden,
                )],
            ),
            (
                "claims",
                json!({"containers": [c(json!({"resources": {"claims": [{"name": "gpu"}]}}))]}),
                vec![("spec.containers[0].resources.claims", Forbidden)],
            ),
        ]);
        let errs = validate_create(&obj(pod(
            json!({"containers": [c(json!({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}}))]}),
        )));
        assert_eq!(
            errs[0].to_string(),
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1500m"
        );
    }

    #[test]
    fn probes_and_lifecycle() {
        check(vec![
            (
                "good probes",
                json!({"containers": [c(json!({
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
                    "readinessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2},
                    "startupProbe": {"grpc": {"port": 9000}, "failureThreshold": 30},
                    "ports": [{"containerPort": 80, "name": "http"}]
                }))]}),
                vec![],
            ),
            (
                "exec probe",
                json!({"containers": [c(json!({"livenessProbe": {"exec": {"command": ["cat", "/tmp/ok"]}}}))]}),
                vec![("spec.containers[0].livenessProbe.exec", Forbidden)],
            ),
            (
                "no handler",
                json!({"containers": [c(json!({"readinessProbe": {"periodSeconds": 5}}))]}),
                vec![("spec.containers[0].readinessProbe", Required)],
            ),
            (
                "two handlers",
                json!({"containers": [c(json!({"readinessProbe": {"httpGet": {"port": 80}, "tcpSocket": {"port": 80}}}))]}),
                vec![("spec.containers[0].readinessProbe.tcpSocket", Forbidden)],
            ),
            (
                "bad port",
                json!({"containers": [c(json!({"livenessProbe": {"httpGet": {"port": 0}}}))]}),
                vec![("spec.containers[0].livenessProbe.httpGet.port", Invalid)],
            ),
            (
                "bad named port",
                json!({"containers": [c(json!({"livenessProbe": {"tcpSocket": {"port": "Web_1"}}}))]}),
                vec![("spec.containers[0].livenessProbe.tcpSocket.port", Invalid)],
            ),
            (
                "bad scheme",
                json!({"containers": [c(json!({"livenessProbe": {"httpGet": {"port": 80, "scheme": "FTP"}}}))]}),
                vec![(
                    "spec.containers[0].livenessProbe.httpGet.scheme",
                    NotSupported,
                )],
            ),
            (
                "negative period",
                json!({"containers": [c(json!({"livenessProbe": {"httpGet": {"port": 80}, "periodSeconds": -1, "timeoutSeconds": -2}}))]}),
                vec![
                    ("spec.containers[0].livenessProbe.periodSeconds", Invalid),
                    ("spec.containers[0].livenessProbe.timeoutSeconds", Invalid),
                ],
            ),
            (
                "liveness success threshold",
                json!({"containers": [c(json!({"livenessProbe": {"httpGet": {"port": 80}, "successThreshold": 3}}))]}),
                vec![("spec.containers[0].livenessProbe.successThreshold", Invalid)],
            ),
            (
                "grpc port",
                json!({"containers": [c(json!({"startupProbe": {"grpc": {"port": 70000}}}))]}),
                vec![("spec.containers[0].startupProbe.grpc.port", Invalid)],
            ),
            (
                "readiness grace",
                json!({"containers": [c(json!({"readinessProbe": {"httpGet": {"port": 80}, "terminationGracePeriodSeconds": 5}}))]}),
                vec![(
                    "spec.containers[0].readinessProbe.terminationGracePeriodSeconds",
                    Invalid,
                )],
            ),
            (
                "exec hook",
                json!({"containers": [c(json!({"lifecycle": {"preStop": {"exec": {"command": ["sh"]}}}}))]}),
                vec![("spec.containers[0].lifecycle.preStop.exec", Forbidden)],
            ),
            (
                "good hooks",
                json!({"containers": [c(json!({"lifecycle": {"preStop": {"sleep": {"seconds": 5}}, "postStart": {"httpGet": {"port": 80}}}}))]}),
                vec![],
            ),
            (
                "empty hook",
                json!({"containers": [c(json!({"lifecycle": {"postStart": {}}}))]}),
                vec![("spec.containers[0].lifecycle.postStart", Required)],
            ),
            (
                "stop signal",
                json!({"containers": [c(json!({"lifecycle": {"stopSignal": "SIGTERM"}}))]}),
                vec![("spec.containers[0].lifecycle.stopSignal", Forbidden)],
            ),
        ]);
        let errs = validate_create(&obj(pod(
            json!({"containers": [c(json!({"livenessProbe": {"exec": {"command": ["true"]}}}))]}),
        )));
        assert_eq!(
            errs[0].to_string(),
            "spec.containers[0].livenessProbe.exec: Forbidden: Wasm components cannot run commands: there are no processes in a Wasm sandbox; use httpGet, tcpSocket or grpc"
        );
    }

    #[test]
    fn wasm_forbidden_fields() {
        check(vec![
            (
                "hostNetwork",
                json!({"hostNetwork": true, "containers": [c(json!({}))]}),
                vec![("spec.hostNetwork", Forbidden)],
            ),
            (
                "hostNetwork false",
                json!({"hostNetwork": false, "hostPID": false, "hostIPC": false, "containers": [c(json!({}))]}),
                vec![],
            ),
            (
                "hostPID",
                json!({"hostPID": true, "containers": [c(json!({}))]}),
                vec![("spec.hostPID", Forbidden)],
            ),
            (
                "hostIPC",
                json!({"hostIPC": true, "containers": [c(json!({}))]}),
                vec![("spec.hostIPC", Forbidden)],
            ),
            (
                "hostUsers either way",
                json!({"hostUsers": false, "containers": [c(json!({}))]}),
                vec![],
            ),
            (
                "shareProcessNamespace",
                json!({"shareProcessNamespace": true, "containers": [c(json!({}))]}),
                vec![("spec.shareProcessNamespace", Forbidden)],
            ),
            (
                "pod seLinux",
                json!({"securityContext": {"seLinuxOptions": {"level": "s0"}}, "containers": [c(json!({}))]}),
                vec![("spec.securityContext.seLinuxOptions", Forbidden)],
            ),
            (
                "pod windows",
                json!({"securityContext": {"windowsOptions": {"runAsUserName": "x"}}, "containers": [c(json!({}))]}),
                vec![("spec.securityContext.windowsOptions", Forbidden)],
            ),
            (
                "sysctls",
                json!({"securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1"}]}, "containers": [c(json!({}))]}),
                vec![("spec.securityContext.sysctls", Forbidden)],
            ),
            (
                "restrictive pod settings",
                json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}, "containers": [c(json!({}))]}),
                vec![],
            ),
            (
                "privileged",
                json!({"containers": [c(json!({"securityContext": {"privileged": true}}))]}),
                vec![("spec.containers[0].securityContext.privileged", Forbidden)],
            ),
            (
                "unprivileged",
                json!({"containers": [c(json!({"securityContext": {"privileged": false, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}}))]}),
                vec![],
            ),
            (
                "capabilities add",
                json!({"containers": [c(json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}))]}),
                vec![(
                    "spec.containers[0].securityContext.capabilities.add",
                    Forbidden,
                )],
            ),
            (
                "escalation",
                json!({"containers": [c(json!({"securityContext": {"allowPrivilegeEscalation": true}}))]}),
                vec![(
                    "spec.containers[0].securityContext.allowPrivilegeEscalation",
                    Forbidden,
                )],
            ),
            (
                "procMount",
                json!({"containers": [c(json!({"securityContext": {"procMount": "Unmasked"}}))]}),
                vec![("spec.containers[0].securityContext.procMount", Forbidden)],
            ),
            (
                "procMount default",
                json!({"containers": [c(json!({"securityContext": {"procMount": "Default"}}))]}),
                vec![],
            ),
            (
                "container seLinux",
                json!({"containers": [c(json!({"securityContext": {"seLinuxOptions": {}}}))]}),
                vec![(
                    "spec.containers[0].securityContext.seLinuxOptions",
                    Forbidden,
                )],
            ),
            (
                "container windows",
                json!({"containers": [c(json!({"securityContext": {"windowsOptions": {}}}))]}),
                vec![(
                    "spec.containers[0].securityContext.windowsOptions",
                    Forbidden,
                )],
            ),
            (
                "stdin tty",
                json!({"containers": [c(json!({"stdin": true, "stdinOnce": true, "tty": true}))]}),
                vec![
                    ("spec.containers[0].stdin", Forbidden),
                    ("spec.containers[0].stdinOnce", Forbidden),
                    ("spec.containers[0].tty", Forbidden),
                ],
            ),
            (
                "stdin false",
                json!({"containers": [c(json!({"stdin": false, "tty": false}))]}),
                vec![],
            ),
            (
                "resourceClaims",
                json!({"resourceClaims": [{"name": "gpu"}], "containers": [c(json!({}))]}),
                vec![("spec.resourceClaims", Forbidden)],
            ),
            (
                "everything at once",
                json!({"hostNetwork": true, "hostPID": true, "containers": [c(json!({"image": "nginx", "securityContext": {"privileged": true}, "tty": true}))]}),
                vec![
                    ("spec.hostNetwork", Forbidden),
                    ("spec.hostPID", Forbidden),
                    ("spec.containers[0].image", Invalid),
                    ("spec.containers[0].securityContext.privileged", Forbidden),
                    ("spec.containers[0].tty", Forbidden),
                ],
            ),
        ]);
        let errs = validate_create(&obj(pod(
            json!({"hostNetwork": true, "containers": [c(json!({}))]}),
        )));
        assert_eq!(
            errs[0].to_string(),
            "spec.hostNetwork: Forbidden: Wasm components have no host network; pods get a virtual network namespace"
        );
    }

    #[test]
    fn pod_level_fields() {
        check(vec![
            ("no spec", json!(null), vec![("spec", Required)]),
            (
                "restartPolicy",
                json!({"restartPolicy": "Sometimes", "containers": [c(json!({}))]}),
                vec![("spec.restartPolicy", NotSupported)],
            ),
            (
                "dnsPolicy",
                json!({"dnsPolicy": "Google", "containers": [c(json!({}))]}),
                vec![("spec.dnsPolicy", NotSupported)],
            ),
            (
                "dnsPolicy None without config",
                json!({"dnsPolicy": "None", "containers": [c(json!({}))]}),
                vec![("spec.dnsConfig", Required)],
            ),
            (
                "deadline",
                json!({"activeDeadlineSeconds": 0, "containers": [c(json!({}))]}),
                vec![("spec.activeDeadlineSeconds", Invalid)],
            ),
            (
                "grace",
                json!({"terminationGracePeriodSeconds": -1, "containers": [c(json!({}))]}),
                vec![("spec.terminationGracePeriodSeconds", Invalid)],
            ),
            (
                "nodeSelector",
                json!({"nodeSelector": {"a b": "c"}, "containers": [c(json!({}))]}),
                vec![("spec.nodeSelector", Invalid)],
            ),
            (
                "nodeName",
                json!({"nodeName": "Node_1", "containers": [c(json!({}))]}),
                vec![("spec.nodeName", Invalid)],
            ),
            (
                "serviceAccountName",
                json!({"serviceAccountName": "A", "containers": [c(json!({}))]}),
                vec![("spec.serviceAccountName", Invalid)],
            ),
            (
                "hostname",
                json!({"hostname": "a.b", "containers": [c(json!({}))]}),
                vec![("spec.hostname", Invalid)],
            ),
            (
                "tolerations",
                json!({"tolerations": [
                {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
                {"operator": "Exists"},
                {"key": "k", "operator": "Exists", "value": "v"},
                {"key": "k", "operator": "Greater"},
                {"key": "k", "effect": "Never"},
                {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5},
                {"operator": "Equal", "value": "x"},
            ], "containers": [c(json!({}))]}),
                vec![
                    ("spec.tolerations[2].operator", Invalid),
                    ("spec.tolerations[3].operator", NotSupported),
                    ("spec.tolerations[4].effect", NotSupported),
                    ("spec.tolerations[5].effect", Invalid),
                    ("spec.tolerations[6].operator", Invalid),
                ],
            ),
        ]);
    }
}
