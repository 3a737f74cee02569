//! Defaulting: the fields Kubernetes fills in when a client leaves them out.
//!
//! [`apply_defaults`] runs after decoding and before validation, on create and on update,
//! as in the kube-apiserver; it is idempotent (defaulting twice changes nothing the second
//! time). As in Kubernetes (Go zero values), an empty string, and a `0` where `0` is not a
//! meaningful value (probe periods and thresholds), count as unset.
//!
//! [`prepare_for_update`] is the other half of an update: it carries over what the server
//! owns (uid, creation time, allocated cluster IPs and node ports) when a client's full
//! replacement (`kubectl replace`) leaves it out.

use k8s_openapi::api::core::v1::{
    Container, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, ServiceSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::object::Object;

/// `terminationMessagePath` Kubernetes gives every container.
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// The scheduler that places pods that name none.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";
/// The file mode of configMap/secret/downwardAPI/projected volume files (0644).
pub const DEFAULT_VOLUME_MODE: i32 = 0o644;

fn default_str(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_string());
    }
}

/// For numbers whose `0` means "unset" (probe settings).
fn default_nonzero<T: Default + PartialEq>(field: &mut Option<T>, value: T) {
    if field.as_ref().is_none_or(|v| *v == T::default()) {
        *field = Some(value);
    }
}

/// The pull policy Kubernetes would pick for `image`: `Always` for an OCI reference with
/// the `latest` tag or no tag (and no digest), `IfNotPresent` otherwise (digests, files,
/// URLs and content hashes name fixed content).
pub fn default_image_pull_policy(image: &str) -> &'static str {
    let Some(rest) = image.strip_prefix("oci://") else {
        return "IfNotPresent";
    };
    if rest.contains('@') {
        return "IfNotPresent";
    }
    let last = rest.rsplit('/').next().unwrap_or("");
    match last.rsplit_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

/// Defaults an object in place.
pub fn apply_defaults(object: &mut Object) {
    match object {
        Object::Pod(pod) => {
            if let Some(spec) = &mut pod.spec {
                default_pod_spec(spec);
                // Pods (not templates): a container that sets only limits requests them.
                for c in spec
                    .containers
                    .iter_mut()
                    .chain(spec.init_containers.iter_mut().flatten())
                {
                    if let Some(r) = &mut c.resources {
                        default_requests_from_limits(r);
                    }
                }
            }
        }
        Object::Deployment(d) => {
            if let Some(spec) = &mut d.spec {
                spec.replicas.get_or_insert(1);
                let strategy = spec.strategy.get_or_insert_with(Default::default);
                default_str(&mut strategy.type_, "RollingUpdate");
                if strategy.type_.as_deref() == Some("RollingUpdate") {
                    let r = strategy.rolling_update.get_or_insert_with(Default::default);
                    r.max_unavailable
                        .get_or_insert(IntOrString::String("25%".into()));
                    r.max_surge.get_or_insert(IntOrString::String("25%".into()));
                }
                spec.revision_history_limit.get_or_insert(10);
                spec.progress_deadline_seconds.get_or_insert(600);
                default_pod_template(&mut spec.template);
            }
        }
        Object::ReplicaSet(r) => {
            if let Some(spec) = &mut r.spec {
                spec.replicas.get_or_insert(1);
                if let Some(t) = &mut spec.template {
                    default_pod_template(t);
                }
            }
        }
        Object::DaemonSet(d) => {
            if let Some(spec) = &mut d.spec {
                let strategy = spec.update_strategy.get_or_insert_with(Default::default);
                default_str(&mut strategy.type_, "RollingUpdate");
                if strategy.type_.as_deref() == Some("RollingUpdate") {
                    let r = strategy.rolling_update.get_or_insert_with(Default::default);
                    r.max_unavailable.get_or_insert(IntOrString::Int(1));
                    r.max_surge.get_or_insert(IntOrString::Int(0));
                }
                spec.revision_history_limit.get_or_insert(10);
                default_pod_template(&mut spec.template);
            }
        }
        Object::Job(j) => {
            if let Some(spec) = &mut j.spec {
                if spec.completions.is_none() && spec.parallelism.is_none() {
                    spec.completions = Some(1);
                }
                spec.parallelism.get_or_insert(1);
                if spec.backoff_limit.is_none() {
                    spec.backoff_limit = Some(if spec.backoff_limit_per_index.is_some() {
                        i32::MAX
                    } else {
                        6
                    });
                }
                default_str(&mut spec.completion_mode, "NonIndexed");
                spec.suspend.get_or_insert(false);
                let replacement = if spec.pod_failure_policy.is_some() {
                    "Failed"
                } else {
                    "TerminatingOrFailed"
                };
                default_str(&mut spec.pod_replacement_policy, replacement);
                default_pod_template(&mut spec.template);
            }
        }
        Object::Service(s) => {
            if let Some(spec) = &mut s.spec {
                default_service_spec(spec);
            }
        }
        Object::Secret(s) => {
            default_str(&mut s.type_, "Opaque");
            // Kubernetes folds the write-only `stringData` into `data` (stringData wins).
            if let Some(string_data) = s.string_data.take() {
                let data = s.data.get_or_insert_with(Default::default);
                for (k, v) in string_data {
                    data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
                }
            }
        }
        Object::Namespace(ns) => {
            let spec = ns.spec.get_or_insert_with(Default::default);
            if spec.finalizers.as_ref().is_none_or(|f| f.is_empty()) {
                spec.finalizers = Some(vec!["kubernetes".to_string()]);
            }
            let status = ns.status.get_or_insert_with(Default::default);
            default_str(&mut status.phase, "Active");
        }
        Object::HorizontalPodAutoscaler(h) => {
            if let Some(spec) = &mut h.spec {
                spec.min_replicas.get_or_insert(1);
                if spec.metrics.as_ref().is_none_or(|m| m.is_empty()) {
                    // Kubernetes' default: scale on 80% CPU utilisation.
                    spec.metrics = Some(vec![k8s_openapi::api::autoscaling::v2::MetricSpec {
                        type_: "Resource".into(),
                        resource: Some(k8s_openapi::api::autoscaling::v2::ResourceMetricSource {
                            name: "cpu".into(),
                            target: k8s_openapi::api::autoscaling::v2::MetricTarget {
                                type_: "Utilization".into(),
                                average_utilization: Some(80),
                                ..Default::default()
                            },
                        }),
                        ..Default::default()
                    }]);
                }
            }
        }
        Object::PersistentVolumeClaim(p) => {
            if let Some(spec) = &mut p.spec {
                default_str(&mut spec.volume_mode, "Filesystem");
            }
        }
        Object::PersistentVolume(p) => {
            if let Some(spec) = &mut p.spec {
                default_str(&mut spec.volume_mode, "Filesystem");
                default_str(&mut spec.persistent_volume_reclaim_policy, "Retain");
            }
        }
        Object::Endpoints(e) => {
            for subset in e.subsets.iter_mut().flatten() {
                for port in subset.ports.iter_mut().flatten() {
                    default_str(&mut port.protocol, "TCP");
                }
            }
        }
        Object::Node(_)
        | Object::ConfigMap(_)
        | Object::Event(_)
        | Object::ServiceAccount(_)
        | Object::Lease(_) => {}
    }
}

/// Defaults a workload's pod template (its spec; labels are never copied).
pub fn default_pod_template(template: &mut PodTemplateSpec) {
    if let Some(spec) = &mut template.spec {
        default_pod_spec(spec);
    }
}

/// Defaults a pod spec, as Kubernetes' `SetDefaults_PodSpec` and the container, port,
/// probe and volume defaults do.
pub fn default_pod_spec(spec: &mut PodSpec) {
    default_str(&mut spec.dns_policy, "ClusterFirst");
    default_str(&mut spec.restart_policy, "Always");
    default_str(&mut spec.scheduler_name, DEFAULT_SCHEDULER);
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.security_context.get_or_insert_with(Default::default);
    spec.enable_service_links.get_or_insert(true);
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

fn default_container(c: &mut Container) {
    default_str(&mut c.termination_message_path, TERMINATION_MESSAGE_PATH);
    default_str(&mut c.termination_message_policy, "File");
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        let policy = default_image_pull_policy(c.image.as_deref().unwrap_or(""));
        c.image_pull_policy = Some(policy.to_string());
    }
    for port in c.ports.iter_mut().flatten() {
        default_str(&mut port.protocol, "TCP");
    }
    for env in c.env.iter_mut().flatten() {
        if let Some(field_ref) = env.value_from.as_mut().and_then(|f| f.field_ref.as_mut()) {
            default_str(&mut field_ref.api_version, "v1");
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(lifecycle) = &mut c.lifecycle {
        for h in [&mut lifecycle.post_start, &mut lifecycle.pre_stop]
            .into_iter()
            .flatten()
        {
            if let Some(g) = &mut h.http_get {
                default_str(&mut g.path, "/");
                default_str(&mut g.scheme, "HTTP");
            }
        }
    }
}

fn default_probe(p: &mut Probe) {
    default_nonzero(&mut p.timeout_seconds, 1);
    default_nonzero(&mut p.period_seconds, 10);
    default_nonzero(&mut p.success_threshold, 1);
    default_nonzero(&mut p.failure_threshold, 3);
    if let Some(g) = &mut p.http_get {
        default_str(&mut g.path, "/");
        default_str(&mut g.scheme, "HTTP");
    }
}

fn default_volume(v: &mut Volume) {
    // A volume with no source is an emptyDir, as in Kubernetes.
    let any_source = {
        let mut probe = v.clone();
        probe.name = String::new();
        probe != Volume::default()
    };
    if !any_source {
        v.empty_dir = Some(Default::default());
    }
    if let Some(cm) = &mut v.config_map {
        cm.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(s) = &mut v.secret {
        s.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(d) = &mut v.downward_api {
        d.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for item in d.items.iter_mut().flatten() {
            if let Some(f) = &mut item.field_ref {
                default_str(&mut f.api_version, "v1");
            }
        }
    }
    if let Some(p) = &mut v.projected {
        p.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for source in p.sources.iter_mut().flatten() {
            if let Some(t) = &mut source.service_account_token {
                t.expiration_seconds.get_or_insert(3600);
            }
        }
    }
}

fn default_requests_from_limits(r: &mut ResourceRequirements) {
    let Some(limits) = &r.limits else { return };
    if limits.is_empty() {
        return;
    }
    let requests = r.requests.get_or_insert_with(Default::default);
    for (k, v) in limits {
        requests.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

fn default_service_spec(spec: &mut ServiceSpec) {
    default_str(&mut spec.type_, "ClusterIP");
    default_str(&mut spec.session_affinity, "None");
    let kind = spec.type_.clone().unwrap_or_default();
    if spec.session_affinity.as_deref() == Some("ClientIP") {
        let config = spec
            .session_affinity_config
            .get_or_insert_with(Default::default);
        let client_ip = config.client_ip.get_or_insert_with(Default::default);
        client_ip.timeout_seconds.get_or_insert(10800);
    }
    if kind != "ExternalName" {
        default_str(&mut spec.internal_traffic_policy, "Cluster");
    }
    if kind == "NodePort" || kind == "LoadBalancer" {
        default_str(&mut spec.external_traffic_policy, "Cluster");
    }
    for port in spec.ports.iter_mut().flatten() {
        default_str(&mut port.protocol, "TCP");
        let unset = match &port.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
}

/// Carries over what the server owns from the stored `old` object into a client's
/// replacement `new` when the client left it out: `metadata.uid` and
/// `creationTimestamp`, a Service's allocated `clusterIP`/`clusterIPs`/IP families and
/// node ports (matched by port and protocol), a claim's `volumeName`. Call it before
/// [`apply_defaults`] and validation on update, as the kube-apiserver's update strategy
/// does.
pub fn prepare_for_update(old: &Object, new: &mut Object) {
    {
        let (om, nm) = (old.metadata(), new.metadata_mut());
        if nm.uid.as_deref().is_none_or(str::is_empty) {
            nm.uid.clone_from(&om.uid);
        }
        if nm.creation_timestamp.is_none() {
            nm.creation_timestamp.clone_from(&om.creation_timestamp);
        }
    }
    match (old, new) {
        (Object::Service(o), Object::Service(n)) => {
            let (Some(os), Some(ns)) = (&o.spec, &mut n.spec) else {
                return;
            };
            let same_kind = os.type_.as_deref().unwrap_or("ClusterIP")
                == ns.type_.as_deref().unwrap_or("ClusterIP");
            if ns.cluster_ip.as_deref().is_none_or(str::is_empty)
                && os.type_.as_deref() != Some("ExternalName")
            {
                ns.cluster_ip.clone_from(&os.cluster_ip);
                if ns.cluster_ips.as_ref().is_none_or(|v| v.is_empty()) {
                    ns.cluster_ips.clone_from(&os.cluster_ips);
                }
                if ns.ip_families.as_ref().is_none_or(|v| v.is_empty()) {
                    ns.ip_families.clone_from(&os.ip_families);
                }
                if ns.ip_family_policy.is_none() {
                    ns.ip_family_policy.clone_from(&os.ip_family_policy);
                }
            }
            if same_kind {
                if ns.health_check_node_port.is_none() {
                    ns.health_check_node_port = os.health_check_node_port;
                }
                for port in ns.ports.iter_mut().flatten() {
                    if port.node_port.is_some_and(|p| p != 0) {
                        continue;
                    }
                    let protocol = port.protocol.as_deref().unwrap_or("TCP");
                    let allocated = os.ports.iter().flatten().find(|p| {
                        p.port == port.port && p.protocol.as_deref().unwrap_or("TCP") == protocol
                    });
                    if let Some(a) = allocated {
                        port.node_port = a.node_port;
                    }
                }
            }
        }
        (Object::PersistentVolumeClaim(o), Object::PersistentVolumeClaim(n)) => {
            if let (Some(os), Some(ns)) = (&o.spec, &mut n.spec)
                && ns.volume_name.as_deref().is_none_or(str::is_empty)
            {
                ns.volume_name.clone_from(&os.volume_name);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testutil::obj;
    use serde_json::{Value, json};

    fn defaulted(body: Value) -> Value {
        let mut o = obj(body);
        apply_defaults(&mut o);
        o.to_value().unwrap()
    }

    #[test]
    fn pull_policies() {
        let cases = [
            ("oci://ghcr.io/org/app:1.0", "IfNotPresent"),
            ("oci://ghcr.io/org/app:latest", "Always"),
            ("oci://ghcr.io/org/app", "Always"),
            ("oci://localhost:5000/app", "Always"),
            ("oci://localhost:5000/app:2", "IfNotPresent"),
            ("oci://ghcr.io/org/app@sha256:aa", "IfNotPresent"),
            ("file:///app.wasm", "IfNotPresent"),
            ("https://example.com/app.wasm", "IfNotPresent"),
            ("sha256:abc", "IfNotPresent"),
        ];
        for (image, want) in cases {
            assert_eq!(default_image_pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn pod_defaults() {
        let v = defaulted(
            json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "d"}, "spec": {
                "containers": [{
                    "name": "a", "image": "oci://r/a:latest",
                    "ports": [{"containerPort": 80}],
                    "livenessProbe": {"httpGet": {"port": 80}, "periodSeconds": 0},
                    "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Mi"}},
                    "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                }],
                "volumes": [{"name": "v"}, {"name": "c", "configMap": {"name": "cm"}}],
            }}),
        );
        let s = &v["spec"];
        let cases: &[(&str, Value)] = &[
            ("/restartPolicy", json!("Always")),
            ("/dnsPolicy", json!("ClusterFirst")),
            ("/schedulerName", json!("default-scheduler")),
            ("/terminationGracePeriodSeconds", json!(30)),
            ("/enableServiceLinks", json!(true)),
            ("/securityContext", json!({})),
            (
                "/containers/0/terminationMessagePath",
                json!("/dev/termination-log"),
            ),
            ("/containers/0/terminationMessagePolicy", json!("File")),
            ("/containers/0/imagePullPolicy", json!("Always")),
            ("/containers/0/ports/0/protocol", json!("TCP")),
            ("/containers/0/livenessProbe/timeoutSeconds", json!(1)),
            ("/containers/0/livenessProbe/periodSeconds", json!(10)),
            ("/containers/0/livenessProbe/successThreshold", json!(1)),
            ("/containers/0/livenessProbe/failureThreshold", json!(3)),
            ("/containers/0/livenessProbe/httpGet/path", json!("/")),
            ("/containers/0/livenessProbe/httpGet/scheme", json!("HTTP")),
            (
                "/containers/0/resources/requests",
                json!({"cpu": "1", "memory": "1Mi"}),
            ),
            (
                "/containers/0/env/0/valueFrom/fieldRef/apiVersion",
                json!("v1"),
            ),
            ("/volumes/0/emptyDir", json!({})),
            ("/volumes/1/configMap/defaultMode", json!(420)),
        ];
        for (pointer, want) in cases {
            assert_eq!(s.pointer(pointer), Some(want), "{pointer} in {s}");
        }
    }

    #[test]
    fn explicit_values_are_kept() {
        let v = defaulted(
            json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "d"}, "spec": {
                "restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "schedulerName": "mine",
                "containers": [{"name": "a", "image": "oci://r/a:latest", "imagePullPolicy": "Never",
                    "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 3}}]
            }}),
        );
        assert_eq!(v["spec"]["restartPolicy"], "Never");
        assert_eq!(v["spec"]["terminationGracePeriodSeconds"], 0);
        assert_eq!(v["spec"]["schedulerName"], "mine");
        assert_eq!(v["spec"]["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(
            v["spec"]["containers"][0]["readinessProbe"]["periodSeconds"],
            3
        );
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "oci://r/a:1"}]}})
    }

    #[test]
    fn workload_defaults() {
        let cases: Vec<(Value, Vec<(&str, Value)>)> = vec![
            (
                json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "d", "namespace": "n"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}}),
                vec![
                    ("/spec/replicas", json!(1)),
                    (
                        "/spec/strategy",
                        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                    ),
                    ("/spec/revisionHistoryLimit", json!(10)),
                    ("/spec/progressDeadlineSeconds", json!(600)),
                    ("/spec/template/spec/restartPolicy", json!("Always")),
                    (
                        "/spec/template/spec/containers/0/imagePullPolicy",
                        json!("IfNotPresent"),
                    ),
                ],
            ),
            (
                json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "d", "namespace": "n"}, "spec": {"replicas": 0, "strategy": {"type": "Recreate"}, "selector": {}, "template": template()}}),
                vec![
                    ("/spec/replicas", json!(0)),
                    ("/spec/strategy", json!({"type": "Recreate"})),
                ],
            ),
            (
                json!({"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": {"name": "r", "namespace": "n"}, "spec": {"selector": {}, "template": template()}}),
                vec![
                    ("/spec/replicas", json!(1)),
                    ("/spec/template/spec/dnsPolicy", json!("ClusterFirst")),
                ],
            ),
            (
                json!({"kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": {"name": "r", "namespace": "n"}, "spec": {"selector": {}, "template": template()}}),
                vec![
                    (
                        "/spec/updateStrategy",
                        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                    ),
                    ("/spec/revisionHistoryLimit", json!(10)),
                ],
            ),
            (
                json!({"kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": "j", "namespace": "n"}, "spec": {"template": template()}}),
                vec![
                    ("/spec/completions", json!(1)),
                    ("/spec/parallelism", json!(1)),
                    ("/spec/backoffLimit", json!(6)),
                    ("/spec/completionMode", json!("NonIndexed")),
                    ("/spec/suspend", json!(false)),
                    ("/spec/podReplacementPolicy", json!("TerminatingOrFailed")),
                ],
            ),
            (
                json!({"kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": "j", "namespace": "n"}, "spec": {"parallelism": 3, "template": template()}}),
                vec![("/spec/parallelism", json!(3))],
            ),
            (
                json!({"kind": "Service", "metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [{"port": 80}, {"port": 81, "targetPort": "http"}]}}),
                vec![
                    ("/spec/type", json!("ClusterIP")),
                    ("/spec/sessionAffinity", json!("None")),
                    ("/spec/internalTrafficPolicy", json!("Cluster")),
                    ("/spec/ports/0/protocol", json!("TCP")),
                    ("/spec/ports/0/targetPort", json!(80)),
                    ("/spec/ports/1/targetPort", json!("http")),
                ],
            ),
            (
                json!({"kind": "Service", "metadata": {"name": "s", "namespace": "n"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
                vec![("/spec/externalTrafficPolicy", json!("Cluster"))],
            ),
            (
                json!({"kind": "Secret", "metadata": {"name": "s", "namespace": "n"}}),
                vec![("/type", json!("Opaque"))],
            ),
            (
                json!({"kind": "Namespace", "metadata": {"name": "n"}}),
                vec![
                    ("/spec/finalizers", json!(["kubernetes"])),
                    ("/status/phase", json!("Active")),
                ],
            ),
            (
                json!({"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2", "metadata": {"name": "h", "namespace": "n"}, "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "d"}}}),
                vec![
                    ("/spec/minReplicas", json!(1)),
                    (
                        "/spec/metrics/0/resource/target/averageUtilization",
                        json!(80),
                    ),
                ],
            ),
            (
                json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "n"}, "spec": {}}),
                vec![("/spec/volumeMode", json!("Filesystem"))],
            ),
            (
                json!({"kind": "PersistentVolume", "metadata": {"name": "v"}, "spec": {}}),
                vec![("/spec/persistentVolumeReclaimPolicy", json!("Retain"))],
            ),
        ];
        for (body, expected) in cases {
            let v = defaulted(body.clone());
            for (pointer, want) in expected {
                assert_eq!(v.pointer(pointer), Some(&want), "{pointer} in {v}");
            }
        }
    }

    #[test]
    fn defaulting_is_idempotent() {
        let bodies = vec![
            json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": [{"name": "a", "image": "oci://r/a",
                "resources": {"limits": {"memory": "1Gi"}}, "startupProbe": {"grpc": {"port": 1}}, "lifecycle": {"preStop": {"httpGet": {"port": 1}}}}],
                "initContainers": [{"name": "i", "image": "file:///i.wasm"}],
                "volumes": [{"name": "v"}, {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}, {"name": "d", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}}),
            json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "d", "namespace": "n"}, "spec": {"selector": {}, "template": template()}}),
            json!({"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": {"name": "r", "namespace": "n"}, "spec": {"selector": {}, "template": template()}}),
            json!({"kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": {"name": "r", "namespace": "n"}, "spec": {"selector": {}, "template": template()}}),
            json!({"kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": "j", "namespace": "n"}, "spec": {"template": template()}}),
            json!({"kind": "Service", "metadata": {"name": "s", "namespace": "n"}, "spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}),
            json!({"kind": "Secret", "metadata": {"name": "s", "namespace": "n"}}),
            json!({"kind": "Namespace", "metadata": {"name": "n"}}),
            json!({"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2", "metadata": {"name": "h", "namespace": "n"}, "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "d"}}}),
            json!({"kind": "Endpoints", "metadata": {"name": "e", "namespace": "n"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
            json!({"kind": "PersistentVolume", "metadata": {"name": "v"}, "spec": {}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}),
        ];
        for body in bodies {
            let mut once = obj(body.clone());
            apply_defaults(&mut once);
            let mut twice = once.clone();
            apply_defaults(&mut twice);
            assert_eq!(once, twice, "{body}");
        }
    }

    #[test]
    fn defaulted_objects_validate() {
        let body = json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "d", "namespace": "n"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}});
        let mut o = obj(body);
        apply_defaults(&mut o);
        assert_eq!(crate::validation::validate_create(&o), vec![]);
    }

    #[test]
    fn update_preparation() {
        let old = obj(
            json!({"kind": "Service", "metadata": {"name": "s", "namespace": "n", "uid": "u1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"], "ports": [{"name": "a", "port": 80, "protocol": "TCP", "nodePort": 30080}, {"name": "b", "port": 53, "protocol": "UDP", "nodePort": 30053}]}}),
        );
        let mut new = obj(
            json!({"kind": "Service", "metadata": {"name": "s", "namespace": "n"},
            "spec": {"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 53, "protocol": "TCP"}]}}),
        );
        prepare_for_update(&old, &mut new);
        let v = new.to_value().unwrap();
        assert_eq!(v["metadata"]["uid"], "u1");
        assert_eq!(v["metadata"]["creationTimestamp"], "2024-01-01T00:00:00Z");
        assert_eq!(v["spec"]["clusterIP"], "10.43.0.5");
        assert_eq!(v["spec"]["clusterIPs"], json!(["10.43.0.5"]));
        assert_eq!(v["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(v["spec"]["ports"][1].get("nodePort"), None);
        assert_eq!(crate::validation::validate_update(&old, &new), vec![]);

        let old = obj(
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "n"}, "spec": {"volumeName": "pv1"}}),
        );
        let mut new = obj(
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "n"}, "spec": {}}),
        );
        prepare_for_update(&old, &mut new);
        assert_eq!(new.to_value().unwrap()["spec"]["volumeName"], "pv1");
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;
    use crate::registry;

    #[test]
    fn string_data_is_folded_into_data() {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
            "data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "new", "c": "z"}});
        let mut obj = crate::object::decode(&registry::SECRET, &body)
            .unwrap()
            .object;
        apply_defaults(&mut obj);
        let v = obj.to_value().unwrap();
        assert_eq!(
            v["data"],
            serde_json::json!({"a": "eA==", "b": "bmV3", "c": "eg=="})
        );
        assert!(v.get("stringData").is_none());
        assert_eq!(v["type"], "Opaque");
    }
}
