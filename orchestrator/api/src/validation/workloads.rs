//! Workloads: Deployment, ReplicaSet, DaemonSet, Job, HorizontalPodAutoscaler.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sLabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::validate_template_meta;
use super::pod::validate_pod_spec;
use super::{FieldError, FieldPath, Raw, at_least, invalid_each, non_negative};
use crate::names;
use crate::selector::{LabelSelector, validate_label_selector};

fn selector_is_empty(s: &K8sLabelSelector) -> bool {
    s.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

/// The template of a controller: labels matched by the selector, a valid pod spec, and a
/// restart policy among `allowed` (an unset policy counts as `Always`, what defaulting
/// gives it).
fn validate_template(
    template: &PodTemplateSpec,
    selector: Option<&K8sLabelSelector>,
    allowed_restart: &[&str],
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    if let Some(meta) = &template.metadata {
        errs.extend(validate_template_meta(meta, &path.child("metadata")));
    }
    if let Some(selector) = selector {
        // An empty (absent) selector selects nothing, so the template never matches it, as
        // in Kubernetes.
        let matches = !selector_is_empty(selector)
            && LabelSelector::from_k8s(selector).is_ok_and(|s| s.matches_opt(labels));
        if !matches {
            let shown =
                serde_json::to_string(&labels.cloned().unwrap_or_default()).unwrap_or_default();
            errs.push(FieldError::invalid(
                &path.child("metadata").child("labels"),
                Raw(shown),
                "`selector` does not match template `labels`",
            ));
        }
    }
    let spec_path = path.child("spec");
    let Some(spec) = &template.spec else {
        errs.push(FieldError::required(&spec_path, ""));
        return;
    };
    errs.extend(validate_pod_spec(spec, &spec_path));
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if !policy.is_empty() && !allowed_restart.contains(&policy) {
        errs.push(FieldError::not_supported(
            &spec_path.child("restartPolicy"),
            policy,
            allowed_restart,
        ));
    }
}

/// A selector that must be present and not empty.
fn validate_required_selector(
    selector: &K8sLabelSelector,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if selector_is_empty(selector) {
        errs.push(FieldError::required(path, ""));
    } else {
        errs.extend(validate_label_selector(selector, path));
    }
}

/// `maxSurge`/`maxUnavailable`: a non-negative integer or a percentage. Returns the value
/// (percent or count) when valid, for the "not both 0" check.
fn validate_int_or_percent(
    v: &IntOrString,
    path: &FieldPath,
    max_100: bool,
    errs: &mut Vec<FieldError>,
) -> Option<i64> {
    let n = match v {
        IntOrString::Int(n) => {
            if *n < 0 {
                errs.push(FieldError::invalid(
                    path,
                    *n,
                    "must be greater than or equal to 0",
                ));
                return None;
            }
            i64::from(*n)
        }
        IntOrString::String(s) => match names::parse_percent(s) {
            Some(p) => {
                if max_100 && p > 100 {
                    errs.push(FieldError::invalid(
                        path,
                        s,
                        "must not be greater than 100%",
                    ));
                    return None;
                }
                p
            }
            None => {
                errs.push(FieldError::invalid(path, s, names::percent_error()));
                return None;
            }
        },
    };
    Some(n)
}

fn validate_rolling(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let surge = max_surge.map(|v| validate_int_or_percent(v, &path.child("maxSurge"), false, errs));
    let unavailable = max_unavailable
        .map(|v| validate_int_or_percent(v, &path.child("maxUnavailable"), true, errs));
    if let (Some(Some(0)), Some(Some(0))) = (surge, unavailable) {
        let shown = match max_unavailable {
            Some(IntOrString::String(s)) => FieldError::invalid(
                &path.child("maxUnavailable"),
                s,
                "may not be 0 when `maxSurge` is 0",
            ),
            _ => FieldError::invalid(
                &path.child("maxUnavailable"),
                0i32,
                "may not be 0 when `maxSurge` is 0",
            ),
        };
        errs.push(shown);
    }
}

pub(super) fn validate_deployment(d: &Deployment, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let Some(spec) = &d.spec else {
        errs.push(FieldError::required(&path, ""));
        return;
    };
    non_negative(spec.replicas, &path.child("replicas"), errs);
    validate_required_selector(&spec.selector, &path.child("selector"), errs);
    validate_template(
        &spec.template,
        Some(&spec.selector),
        &["Always"],
        &path.child("template"),
        errs,
    );
    if spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .is_some()
    {
        errs.push(FieldError::forbidden(
            &path
                .child("template")
                .child("spec")
                .child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in Deployment is not Supported",
        ));
    }
    if let Some(strategy) = &spec.strategy {
        let sp = path.child("strategy");
        match strategy.type_.as_deref() {
            None | Some("RollingUpdate") => {
                if let Some(r) = &strategy.rolling_update {
                    validate_rolling(
                        r.max_surge.as_ref(),
                        r.max_unavailable.as_ref(),
                        &sp.child("rollingUpdate"),
                        errs,
                    );
                }
            }
            Some("Recreate") => {
                if strategy.rolling_update.is_some() {
                    errs.push(FieldError::forbidden(
                        &sp.child("rollingUpdate"),
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            Some("") => errs.push(FieldError::required(&sp.child("type"), "")),
            Some(other) => errs.push(FieldError::not_supported(
                &sp.child("type"),
                other,
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    non_negative(
        spec.revision_history_limit,
        &path.child("revisionHistoryLimit"),
        errs,
    );
    non_negative(spec.min_ready_seconds, &path.child("minReadySeconds"), errs);
    if let Some(deadline) = spec.progress_deadline_seconds {
        if deadline < 0 {
            non_negative(Some(deadline), &path.child("progressDeadlineSeconds"), errs);
        } else if deadline <= spec.min_ready_seconds.unwrap_or(0) {
            errs.push(FieldError::invalid(
                &path.child("progressDeadlineSeconds"),
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
}

pub(super) fn validate_replica_set(r: &ReplicaSet, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let Some(spec) = &r.spec else {
        errs.push(FieldError::required(&path, ""));
        return;
    };
    non_negative(spec.replicas, &path.child("replicas"), errs);
    non_negative(spec.min_ready_seconds, &path.child("minReadySeconds"), errs);
    validate_required_selector(&spec.selector, &path.child("selector"), errs);
    match &spec.template {
        Some(t) => {
            validate_template(
                t,
                Some(&spec.selector),
                &["Always"],
                &path.child("template"),
                errs,
            );
            if t.spec
                .as_ref()
                .and_then(|s| s.active_deadline_seconds)
                .is_some()
            {
                errs.push(FieldError::forbidden(
                    &path
                        .child("template")
                        .child("spec")
                        .child("activeDeadlineSeconds"),
                    "activeDeadlineSeconds in ReplicaSet is not Supported",
                ));
            }
        }
        None => errs.push(FieldError::required(&path.child("template"), "")),
    }
}

pub(super) fn validate_daemon_set(d: &DaemonSet, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let Some(spec) = &d.spec else {
        errs.push(FieldError::required(&path, ""));
        return;
    };
    validate_required_selector(&spec.selector, &path.child("selector"), errs);
    validate_template(
        &spec.template,
        Some(&spec.selector),
        &["Always"],
        &path.child("template"),
        errs,
    );
    if spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .is_some()
    {
        errs.push(FieldError::forbidden(
            &path
                .child("template")
                .child("spec")
                .child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in DaemonSet is not Supported",
        ));
    }
    non_negative(spec.min_ready_seconds, &path.child("minReadySeconds"), errs);
    non_negative(
        spec.revision_history_limit,
        &path.child("revisionHistoryLimit"),
        errs,
    );
    if let Some(strategy) = &spec.update_strategy {
        let sp = path.child("updateStrategy");
        match strategy.type_.as_deref() {
            None | Some("RollingUpdate") => {
                if let Some(r) = &strategy.rolling_update {
                    validate_rolling(
                        r.max_surge.as_ref(),
                        r.max_unavailable.as_ref(),
                        &sp.child("rollingUpdate"),
                        errs,
                    );
                }
            }
            Some("OnDelete") => {
                if strategy.rolling_update.is_some() {
                    errs.push(FieldError::forbidden(
                        &sp.child("rollingUpdate"),
                        "may not be specified when strategy `type` is 'OnDelete'",
                    ));
                }
            }
            Some("") => errs.push(FieldError::required(&sp.child("type"), "")),
            Some(other) => errs.push(FieldError::not_supported(
                &sp.child("type"),
                other,
                &["OnDelete", "RollingUpdate"],
            )),
        }
    }
}

pub(super) fn validate_job(j: &Job, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let Some(spec) = &j.spec else {
        errs.push(FieldError::required(&path, ""));
        return;
    };
    non_negative(spec.parallelism, &path.child("parallelism"), errs);
    non_negative(spec.completions, &path.child("completions"), errs);
    non_negative(spec.backoff_limit, &path.child("backoffLimit"), errs);
    non_negative(
        spec.backoff_limit_per_index,
        &path.child("backoffLimitPerIndex"),
        errs,
    );
    non_negative(
        spec.max_failed_indexes,
        &path.child("maxFailedIndexes"),
        errs,
    );
    non_negative(
        spec.ttl_seconds_after_finished,
        &path.child("ttlSecondsAfterFinished"),
        errs,
    );
    at_least(
        spec.active_deadline_seconds,
        1,
        &path.child("activeDeadlineSeconds"),
        errs,
    );
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.completions.is_none() {
                errs.push(FieldError::required(
                    &path.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
        }
        Some(other) => errs.push(FieldError::not_supported(
            &path.child("completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    if let Some(selector) = &spec.selector {
        errs.extend(validate_label_selector(selector, &path.child("selector")));
    }
    // A selector the user gives must select the template; the API server generates one
    // (controller-uid) otherwise.
    let selector = spec.selector.as_ref().filter(|s| !selector_is_empty(s));
    validate_template(
        &spec.template,
        selector,
        &["OnFailure", "Never"],
        &path.child("template"),
        errs,
    );
}

pub(super) fn validate_hpa(h: &HorizontalPodAutoscaler, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let Some(spec) = &h.spec else {
        errs.push(FieldError::required(&path, ""));
        return;
    };
    let target = path.child("scaleTargetRef");
    if spec.scale_target_ref.kind.is_empty() {
        errs.push(FieldError::required(&target.child("kind"), ""));
    } else {
        invalid_each(
            &target.child("kind"),
            &spec.scale_target_ref.kind,
            names::is_path_segment_name(&spec.scale_target_ref.kind, false),
            errs,
        );
    }
    if spec.scale_target_ref.name.is_empty() {
        errs.push(FieldError::required(&target.child("name"), ""));
    } else {
        invalid_each(
            &target.child("name"),
            &spec.scale_target_ref.name,
            names::is_path_segment_name(&spec.scale_target_ref.name, false),
            errs,
        );
    }
    at_least(spec.min_replicas, 1, &path.child("minReplicas"), errs);
    if spec.max_replicas < 1 {
        errs.push(FieldError::invalid(
            &path.child("maxReplicas"),
            spec.max_replicas,
            "must be greater than 0",
        ));
    } else if let Some(min) = spec.min_replicas
        && min > spec.max_replicas
    {
        errs.push(FieldError::invalid(
            &path.child("maxReplicas"),
            spec.max_replicas,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    for (i, m) in spec.metrics.iter().flatten().enumerate() {
        let mp = path.child("metrics").index(i);
        let sources = [
            (
                "ContainerResource",
                "containerResource",
                m.container_resource.is_some(),
            ),
            ("External", "external", m.external.is_some()),
            ("Object", "object", m.object.is_some()),
            ("Pods", "pods", m.pods.is_some()),
            ("Resource", "resource", m.resource.is_some()),
        ];
        let types: Vec<&str> = sources.iter().map(|(t, _, _)| *t).collect();
        match sources.iter().find(|(t, _, _)| *t == m.type_) {
            None if m.type_.is_empty() => errs.push(FieldError::required(&mp.child("type"), "")),
            None => errs.push(FieldError::not_supported(
                &mp.child("type"),
                &m.type_,
                &types,
            )),
            Some((_, field, set)) => {
                if !set {
                    errs.push(FieldError::required(
                        &mp.child(field),
                        "must populate information for the given metric source",
                    ));
                }
                for (_, other, other_set) in sources.iter().filter(|(t, _, _)| *t != m.type_) {
                    if *other_set {
                        errs.push(FieldError::forbidden(
                            &mp.child(other),
                            "must populate the given metric source only",
                        ));
                    }
                }
            }
        }
        if let Some(r) = &m.resource {
            let rp = mp.child("resource");
            if r.name.is_empty() {
                errs.push(FieldError::required(&rp.child("name"), ""));
            }
            let tp = rp.child("target");
            let t = &r.target;
            match t.type_.as_str() {
                "Utilization" => match t.average_utilization {
                    None => errs.push(FieldError::required(
                        &tp.child("averageUtilization"),
                        "must set either a target raw value or a target utilization",
                    )),
                    Some(u) if u <= 0 => errs.push(FieldError::invalid(
                        &tp.child("averageUtilization"),
                        u,
                        "must be greater than 0",
                    )),
                    Some(_) => {}
                },
                "Value" if t.value.is_none() => {
                    errs.push(FieldError::required(&tp.child("value"), ""))
                }
                "AverageValue" if t.average_value.is_none() => {
                    errs.push(FieldError::required(&tp.child("averageValue"), ""))
                }
                "Value" | "AverageValue" => {}
                "" => errs.push(FieldError::required(&tp.child("type"), "")),
                other => errs.push(FieldError::not_supported(
                    &tp.child("type"),
                    other,
                    &["Utilization", "Value", "AverageValue"],
                )),
            }
            for (field, q) in [("value", &t.value), ("averageValue", &t.average_value)] {
                if let Some(q) = q {
                    super::pod::validate_quantity(q, &tp.child(field), errs);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::FieldErrorKind::*;
    use super::super::testutil::*;
    use super::super::validate_create;
    use serde_json::{Value, json};

    fn deployment(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn template(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": "oci://ghcr.io/org/app:1"}]}})
    }

    fn dspec(extra: Value) -> Value {
        let mut base = json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"}))});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        base
    }

    fn check(kind: &str, api_version: &str, cases: Vec<Case>) {
        for (name, spec, want) in cases {
            let body = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "default"}, "spec": spec});
            assert_errors(&validate_create(&obj(body)), &want, name);
        }
    }

    #[test]
    fn deployments() {
        check(
            "Deployment",
            "apps/v1",
            vec![
                (
                    "valid",
                    dspec(
                        json!({"replicas": 3, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}}),
                    ),
                    vec![],
                ),
                (
                    "no selector",
                    json!({"template": template(json!({"app": "web"}))}),
                    vec![
                        ("spec.selector", Required),
                        ("spec.template.metadata.labels", Invalid),
                    ],
                ),
                (
                    "selector mismatch",
                    dspec(json!({"selector": {"matchLabels": {"app": "db"}}})),
                    vec![("spec.template.metadata.labels", Invalid)],
                ),
                (
                    "expression selector",
                    dspec(
                        json!({"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}}),
                    ),
                    vec![],
                ),
                (
                    "bad selector",
                    dspec(
                        json!({"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}),
                    ),
                    vec![
                        ("spec.selector.matchExpressions[0].values", Required),
                        ("spec.template.metadata.labels", Invalid),
                    ],
                ),
                (
                    "negative replicas",
                    dspec(json!({"replicas": -1})),
                    vec![("spec.replicas", Invalid)],
                ),
                (
                    "strategy type",
                    dspec(json!({"strategy": {"type": "BlueGreen"}})),
                    vec![("spec.strategy.type", NotSupported)],
                ),
                (
                    "recreate with rolling",
                    dspec(
                        json!({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}),
                    ),
                    vec![("spec.strategy.rollingUpdate", Forbidden)],
                ),
                (
                    "both zero",
                    dspec(
                        json!({"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}),
                    ),
                    vec![("spec.strategy.rollingUpdate.maxUnavailable", Invalid)],
                ),
                (
                    "bad percent",
                    dspec(json!({"strategy": {"rollingUpdate": {"maxSurge": "lots"}}})),
                    vec![("spec.strategy.rollingUpdate.maxSurge", Invalid)],
                ),
                (
                    "over 100%",
                    dspec(json!({"strategy": {"rollingUpdate": {"maxUnavailable": "150%"}}})),
                    vec![("spec.strategy.rollingUpdate.maxUnavailable", Invalid)],
                ),
                (
                    "surge over 100% is fine",
                    dspec(json!({"strategy": {"rollingUpdate": {"maxSurge": "150%"}}})),
                    vec![],
                ),
                (
                    "negative surge",
                    dspec(json!({"strategy": {"rollingUpdate": {"maxSurge": -1}}})),
                    vec![("spec.strategy.rollingUpdate.maxSurge", Invalid)],
                ),
                (
                    "history",
                    dspec(json!({"revisionHistoryLimit": -1, "minReadySeconds": -1})),
                    vec![
                        ("spec.revisionHistoryLimit", Invalid),
                        ("spec.minReadySeconds", Invalid),
                    ],
                ),
                (
                    "progress deadline",
                    dspec(json!({"minReadySeconds": 10, "progressDeadlineSeconds": 10})),
                    vec![("spec.progressDeadlineSeconds", Invalid)],
                ),
                (
                    "template restartPolicy",
                    dspec(
                        json!({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "oci://r/a"}]}}}),
                    ),
                    vec![("spec.template.spec.restartPolicy", NotSupported)],
                ),
                (
                    "template pod errors",
                    dspec(
                        json!({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "nginx"}]}}}),
                    ),
                    vec![
                        ("spec.template.spec.hostNetwork", Forbidden),
                        ("spec.template.spec.containers[0].image", Invalid),
                    ],
                ),
                (
                    "template without spec",
                    dspec(json!({"template": {"metadata": {"labels": {"app": "web"}}}})),
                    vec![("spec.template.spec", Required)],
                ),
                (
                    "template label syntax",
                    dspec(
                        json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web", "bad key": "x"}))}),
                    ),
                    vec![("spec.template.metadata.labels", Invalid)],
                ),
                (
                    "deadline in template",
                    dspec(
                        json!({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"activeDeadlineSeconds": 5, "containers": [{"name": "a", "image": "oci://r/a"}]}}}),
                    ),
                    vec![("spec.template.spec.activeDeadlineSeconds", Forbidden)],
                ),
            ],
        );
        let errs = validate_create(&obj(deployment(dspec(
            json!({"selector": {"matchLabels": {"app": "db"}}}),
        ))));
        assert_eq!(
            errs[0].to_string(),
            "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`"
        );
    }

    #[test]
    fn replica_sets_and_daemon_sets() {
        check(
            "ReplicaSet",
            "apps/v1",
            vec![
                ("valid", dspec(json!({"replicas": 2})), vec![]),
                (
                    "no template",
                    json!({"selector": {"matchLabels": {"app": "web"}}}),
                    vec![("spec.template", Required)],
                ),
                (
                    "negative replicas",
                    dspec(json!({"replicas": -2})),
                    vec![("spec.replicas", Invalid)],
                ),
                (
                    "empty selector",
                    dspec(json!({"selector": {}})),
                    vec![
                        ("spec.selector", Required),
                        ("spec.template.metadata.labels", Invalid),
                    ],
                ),
            ],
        );
        check(
            "DaemonSet",
            "apps/v1",
            vec![
                (
                    "valid",
                    dspec(
                        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}}),
                    ),
                    vec![],
                ),
                (
                    "bad strategy",
                    dspec(json!({"updateStrategy": {"type": "Sometimes"}})),
                    vec![("spec.updateStrategy.type", NotSupported)],
                ),
                (
                    "both zero",
                    dspec(
                        json!({"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}),
                    ),
                    vec![("spec.updateStrategy.rollingUpdate.maxUnavailable", Invalid)],
                ),
                (
                    "on delete with rolling",
                    dspec(json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": {}}})),
                    vec![("spec.updateStrategy.rollingUpdate", Forbidden)],
                ),
                (
                    "history",
                    dspec(json!({"revisionHistoryLimit": -1})),
                    vec![("spec.revisionHistoryLimit", Invalid)],
                ),
            ],
        );
    }

    #[test]
    fn jobs() {
        let job_template = |policy: Value| json!({"spec": {"restartPolicy": policy, "containers": [{"name": "a", "image": "oci://r/a"}]}});
        check(
            "Job",
            "batch/v1",
            vec![
                (
                    "valid",
                    json!({"template": job_template(json!("Never")), "completions": 3, "parallelism": 2, "backoffLimit": 4}),
                    vec![],
                ),
                (
                    "on failure",
                    json!({"template": job_template(json!("OnFailure"))}),
                    vec![],
                ),
                (
                    "always",
                    json!({"template": job_template(json!("Always"))}),
                    vec![("spec.template.spec.restartPolicy", NotSupported)],
                ),
                (
                    "unset means always",
                    json!({"template": job_template(json!(null))}),
                    vec![("spec.template.spec.restartPolicy", NotSupported)],
                ),
                (
                    "negatives",
                    json!({"template": job_template(json!("Never")), "completions": -1, "parallelism": -1, "backoffLimit": -1}),
                    vec![
                        ("spec.completions", Invalid),
                        ("spec.parallelism", Invalid),
                        ("spec.backoffLimit", Invalid),
                    ],
                ),
                (
                    "deadline",
                    json!({"template": job_template(json!("Never")), "activeDeadlineSeconds": 0}),
                    vec![("spec.activeDeadlineSeconds", Invalid)],
                ),
                (
                    "indexed without completions",
                    json!({"template": job_template(json!("Never")), "completionMode": "Indexed"}),
                    vec![("spec.completions", Required)],
                ),
                (
                    "completion mode",
                    json!({"template": job_template(json!("Never")), "completionMode": "Sometimes"}),
                    vec![("spec.completionMode", NotSupported)],
                ),
                (
                    "selector mismatch",
                    json!({"template": job_template(json!("Never")), "selector": {"matchLabels": {"a": "b"}}, "manualSelector": true}),
                    vec![("spec.template.metadata.labels", Invalid)],
                ),
            ],
        );
    }

    #[test]
    fn hpas() {
        let target = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
        check(
            "HorizontalPodAutoscaler",
            "autoscaling/v2",
            vec![
                (
                    "valid",
                    json!({"scaleTargetRef": target, "minReplicas": 1, "maxReplicas": 5, "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}),
                    vec![],
                ),
                (
                    "no target",
                    json!({"scaleTargetRef": {}, "maxReplicas": 5}),
                    vec![
                        ("spec.scaleTargetRef.kind", Required),
                        ("spec.scaleTargetRef.name", Required),
                    ],
                ),
                (
                    "min over max",
                    json!({"scaleTargetRef": target, "minReplicas": 6, "maxReplicas": 5}),
                    vec![("spec.maxReplicas", Invalid)],
                ),
                (
                    "max zero",
                    json!({"scaleTargetRef": target, "maxReplicas": 0}),
                    vec![("spec.maxReplicas", Invalid)],
                ),
                (
                    "min zero",
                    json!({"scaleTargetRef": target, "minReplicas": 0, "maxReplicas": 3}),
                    vec![("spec.minReplicas", Invalid)],
                ),
                (
                    "metric type",
                    json!({"scaleTargetRef": target, "maxReplicas": 3, "metrics": [{"type": "Magic"}]}),
                    vec![("spec.metrics[0].type", NotSupported)],
                ),
                (
                    "metric source missing",
                    json!({"scaleTargetRef": target, "maxReplicas": 3, "metrics": [{"type": "Resource"}]}),
                    vec![("spec.metrics[0].resource", Required)],
                ),
                (
                    "utilization missing",
                    json!({"scaleTargetRef": target, "maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}]}),
                    vec![(
                        "spec.metrics[0].resource.target.averageUtilization",
                        Required,
                    )],
                ),
                (
                    "target type",
                    json!({"scaleTargetRef": target, "maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Most"}}}]}),
                    vec![("spec.metrics[0].resource.target.type", NotSupported)],
                ),
            ],
        );
    }
}
