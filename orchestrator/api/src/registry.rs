//! The resources Skiff serves: one static [`Resource`] entry per kind.
//!
//! Discovery (`/api`, `/apis`), routing, `kubectl get <anything>` name resolution and
//! storage keys all read this table. Adding a kind is one `pub static` here, its line in
//! [`RESOURCES`] and its line in [`crate::object`]'s kind list.
//!
//! Storage keys follow the kube-apiserver's layout (`/registry/{group}/{plural}/{ns}/{name}`)
//! with the core group spelled `core`, so that every group has its own prefix.

use crate::error::{Error, Result};

/// A subresource (`pods/status`, `deployments/scale`), as discovery reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subresource {
    /// `status`, `scale`, `log`, `binding`.
    pub name: &'static str,
    /// Group of the kind the subresource takes and returns (`autoscaling` for `scale`).
    pub group: &'static str,
    /// Version of that kind.
    pub version: &'static str,
    /// That kind (`Scale`, `Binding`; the parent kind for `status` and `log`).
    pub kind: &'static str,
    /// The verbs it supports.
    pub verbs: &'static [&'static str],
}

/// One resource type, as the Kubernetes API describes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Resource {
    /// API group; `""` for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// `apiVersion` in objects: `v1`, `apps/v1`.
    pub api_version: &'static str,
    /// `Deployment`
    pub kind: &'static str,
    /// `DeploymentList`
    pub list_kind: &'static str,
    /// `deployments` — the URL segment.
    pub plural: &'static str,
    /// `deployment`
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// `deploy`
    pub short_names: &'static [&'static str],
    /// `all` where Kubernetes has it (what `kubectl get all` lists).
    pub categories: &'static [&'static str],
    /// Verbs on the resource itself.
    pub verbs: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [Subresource],
}

impl Resource {
    /// `pods`, `deployments.apps` — how Kubernetes names a resource in messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Pod`, `Deployment.apps` — how Kubernetes names a kind in `is invalid` messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// `apps/v1, Kind=Deployment` — the form Kubernetes prints a GroupVersionKind in.
    pub fn gvk_string(&self) -> String {
        format!("{}, Kind={}", self.api_version, self.kind)
    }

    /// The group as it appears in storage keys: `core` for the core group.
    pub fn storage_group(&self) -> &'static str {
        if self.group.is_empty() {
            "core"
        } else {
            self.group
        }
    }

    /// The named subresource, if the resource has it.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether the resource supports `verb` (`get`, `list`, `watch`, …).
    pub fn supports_verb(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// The URL path of the collection: `/api/v1/namespaces/{ns}/pods`,
    /// `/apis/apps/v1/deployments` (all namespaces), `/api/v1/nodes`.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let root = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{root}/namespaces/{ns}/{}", self.plural),
            _ => format!("{root}/{}", self.plural),
        }
    }
}

/// Every verb on a plain resource.
pub const VERBS_ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces cannot be deleted as a collection.
const VERBS_NO_COLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const VERBS_GET_UPDATE: &[&str] = &["get", "patch", "update"];

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> Subresource {
    Subresource {
        name: "status",
        group,
        version,
        kind,
        verbs: VERBS_GET_UPDATE,
    }
}

const SCALE: Subresource = Subresource {
    name: "scale",
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    verbs: VERBS_GET_UPDATE,
};

/// core/v1 Namespace
pub static NAMESPACE: Resource = Resource {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "Namespace",
    list_kind: "NamespaceList",
    plural: "namespaces",
    singular: "namespace",
    namespaced: false,
    short_names: &["ns"],
    categories: &[],
    verbs: VERBS_NO_COLLECTION,
    subresources: &[
        status("", "v1", "Namespace"),
        Subresource {
            name: "finalize",
            group: "",
            version: "v1",
            kind: "Namespace",
            verbs: &["update"],
        },
    ],
};

/// core/v1 Node
pub static NODE: Resource = Resource {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "Node",
    list_kind: "NodeList",
    plural: "nodes",
    singular: "node",
    namespaced: false,
    short_names: &["no"],
    categories: &[],
    verbs: VERBS_ALL,
    subresources: &[status("", "v1", "Node")],
};

/// core/v1 Pod
pub static POD: Resource = Resource {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "Pod",
    list_kind: "PodList",
    plural: "pods",
    singular: "pod",
    namespaced: true,
    short_names: &["po"],
    categories: &["all"],
    verbs: VERBS_ALL,
    subresources: &[
        status("", "v1", "Pod"),
        Subresource {
            name: "log",
            group: "",
            version: "v1",
            kind: "Pod",
            verbs: &["get"],
        },
        Subresource {
            name: "binding",
            group: "",
            version: "v1",
            kind: "Binding",
            verbs: &["create"],
        },
    ],
};

/// core/v1 Service
pub static SERVICE: Resource = Resource {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "Service",
    list_kind: "ServiceList",
    plural: "services",
    singular: "service",
    namespaced: true,
    short_names: &["svc"],
    categories: &["all"],
    verbs: VERBS_ALL,
    subresources: &[status("", "v1", "Service")],
};

/// core/v1 Endpoints
pub static ENDPOINTS: Resource = Resource {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "Endpoints",
    list_kind: "EndpointsList",
    plural: "endpoints",
    singular: "endpoints",
    namespaced: true,
    short_names: &["ep"],
    categories: &[],
    verbs: VERBS_ALL,
    subresources: &[],
};

/// core/v1 ConfigMap
pub static CONFIG_MAP: Resource = Resource {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "ConfigMap",
    list_kind: "ConfigMapList",
    plural: "configmaps",
    singular: "configmap",
    namespaced: true,
    short_names: &["cm"],
    categories: &[],
    verbs: VERBS_ALL,
    subresources: &[],
};

/// core/v1 Secret
pub static SECRET: Resource = Resource {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "Secret",
    list_kind: "SecretList",
    plural: "secrets",
    singular: "secret",
    namespaced: true,
    short_names: &[],
    categories: &[],
    verbs: VERBS_ALL,
    subresources: &[],
};

/// core/v1 Event
pub static EVENT: Resource = Resource {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "Event",
    list_kind: "EventList",
    plural: "events",
    singular: "event",
    namespaced: true,
    short_names: &["ev"],
    categories: &[],
    verbs: VERBS_ALL,
    subresources: &[],
};

/// core/v1 PersistentVolumeClaim
pub static PERSISTENT_VOLUME_CLAIM: Resource = Resource {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "PersistentVolumeClaim",
    list_kind: "PersistentVolumeClaimList",
    plural: "persistentvolumeclaims",
    singular: "persistentvolumeclaim",
    namespaced: true,
    short_names: &["pvc"],
    categories: &[],
    verbs: VERBS_ALL,
    subresources: &[status("", "v1", "PersistentVolumeClaim")],
};

/// core/v1 PersistentVolume
pub static PERSISTENT_VOLUME: Resource = Resource {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "PersistentVolume",
    list_kind: "PersistentVolumeList",
    plural: "persistentvolumes",
    singular: "persistentvolume",
    namespaced: false,
    short_names: &["pv"],
    categories: &[],
    verbs: VERBS_ALL,
    subresources: &[status("", "v1", "PersistentVolume")],
};

/// core/v1 ServiceAccount
pub static SERVICE_ACCOUNT: Resource = Resource {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "ServiceAccount",
    list_kind: "ServiceAccountList",
    plural: "serviceaccounts",
    singular: "serviceaccount",
    namespaced: true,
    short_names: &["sa"],
    categories: &[],
    verbs: VERBS_ALL,
    subresources: &[],
};

/// apps/v1 Deployment
pub static DEPLOYMENT: Resource = Resource {
    group: "apps",
    version: "v1",
    api_version: "apps/v1",
    kind: "Deployment",
    list_kind: "DeploymentList",
    plural: "deployments",
    singular: "deployment",
    namespaced: true,
    short_names: &["deploy"],
    categories: &["all"],
    verbs: VERBS_ALL,
    subresources: &[status("apps", "v1", "Deployment"), SCALE],
};

/// apps/v1 ReplicaSet
pub static REPLICA_SET: Resource = Resource {
    group: "apps",
    version: "v1",
    api_version: "apps/v1",
    kind: "ReplicaSet",
    list_kind: "ReplicaSetList",
    plural: "replicasets",
    singular: "replicaset",
    namespaced: true,
    short_names: &["rs"],
    categories: &["all"],
    verbs: VERBS_ALL,
    subresources: &[status("apps", "v1", "ReplicaSet"), SCALE],
};

/// apps/v1 DaemonSet
pub static DAEMON_SET: Resource = Resource {
    group: "apps",
    version: "v1",
    api_version: "apps/v1",
    kind: "DaemonSet",
    list_kind: "DaemonSetList",
    plural: "daemonsets",
    singular: "daemonset",
    namespaced: true,
    short_names: &["ds"],
    categories: &["all"],
    verbs: VERBS_ALL,
    subresources: &[status("apps", "v1", "DaemonSet")],
};

/// batch/v1 Job
pub static JOB: Resource = Resource {
    group: "batch",
    version: "v1",
    api_version: "batch/v1",
    kind: "Job",
    list_kind: "JobList",
    plural: "jobs",
    singular: "job",
    namespaced: true,
    short_names: &[],
    categories: &["all"],
    verbs: VERBS_ALL,
    subresources: &[status("batch", "v1", "Job")],
};

/// autoscaling/v2 HorizontalPodAutoscaler
pub static HORIZONTAL_POD_AUTOSCALER: Resource = Resource {
    group: "autoscaling",
    version: "v2",
    api_version: "autoscaling/v2",
    kind: "HorizontalPodAutoscaler",
    list_kind: "HorizontalPodAutoscalerList",
    plural: "horizontalpodautoscalers",
    singular: "horizontalpodautoscaler",
    namespaced: true,
    short_names: &["hpa"],
    categories: &["all"],
    verbs: VERBS_ALL,
    subresources: &[status("autoscaling", "v2", "HorizontalPodAutoscaler")],
};

/// coordination.k8s.io/v1 Lease
pub static LEASE: Resource = Resource {
    group: "coordination.k8s.io",
    version: "v1",
    api_version: "coordination.k8s.io/v1",
    kind: "Lease",
    list_kind: "LeaseList",
    plural: "leases",
    singular: "lease",
    namespaced: true,
    short_names: &[],
    categories: &[],
    verbs: VERBS_ALL,
    subresources: &[],
};

/// Every resource Skiff serves, core group first (the order discovery lists them in).
pub static RESOURCES: &[&Resource] = &[
    &NAMESPACE,
    &NODE,
    &POD,
    &SERVICE,
    &ENDPOINTS,
    &CONFIG_MAP,
    &SECRET,
    &EVENT,
    &PERSISTENT_VOLUME_CLAIM,
    &PERSISTENT_VOLUME,
    &SERVICE_ACCOUNT,
    &DEPLOYMENT,
    &REPLICA_SET,
    &DAEMON_SET,
    &JOB,
    &HORIZONTAL_POD_AUTOSCALER,
    &LEASE,
];

/// Every resource Skiff serves.
pub fn all() -> &'static [&'static Resource] {
    RESOURCES
}

/// The group/versions served, in table order, each once: `("", "v1")`, `("apps", "v1")`, …
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The resources of one group/version (what `/apis/{group}/{version}` lists).
pub fn resources_in(group: &str, version: &str) -> Vec<&'static Resource> {
    RESOURCES
        .iter()
        .copied()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

/// The resource a URL names: `("", "v1", "pods")`, `("apps", "v1", "deployments")`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of a kind (`Deployment`). Kinds are unique among the resources Skiff serves.
pub fn by_kind(kind: &str) -> Option<&'static Resource> {
    RESOURCES.iter().copied().find(|r| r.kind == kind)
}

/// The resource of an object's `apiVersion` and `kind` (`apps/v1`, `Deployment`).
pub fn by_api_version_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.api_version == api_version && r.kind == kind)
}

/// The resource for any name a user types, as kubectl resolves it: plural, singular,
/// short name or kind (case-insensitive), optionally qualified by group
/// (`deployments.apps`, `deploy.apps`) or by version and group (`deployments.v1.apps`).
pub fn resolve(name: &str) -> Option<&'static Resource> {
    let name = name.to_ascii_lowercase();
    let names_match = |r: &Resource, n: &str| {
        r.plural == n
            || r.singular == n
            || r.short_names.contains(&n)
            || r.kind.eq_ignore_ascii_case(n)
    };
    if let Some(r) = RESOURCES.iter().copied().find(|r| names_match(r, &name)) {
        return Some(r);
    }
    let (head, qualifier) = name.split_once('.')?;
    RESOURCES.iter().copied().find(|r| {
        if !names_match(r, head) {
            return false;
        }
        if r.group == qualifier || (r.group.is_empty() && qualifier == "core") {
            return true;
        }
        match qualifier.split_once('.') {
            Some((version, group)) => {
                version == r.version
                    && (group == r.group || (r.group.is_empty() && group == "core"))
            }
            None => r.group.is_empty() && qualifier == r.version,
        }
    })
}

/// Like [`resolve`], but an error naming what was asked for.
pub fn resolve_or_err(name: &str) -> Result<&'static Resource> {
    resolve(name).ok_or_else(|| Error::UnknownResource(name.to_string()))
}

fn check_segment(what: &'static str, value: &str) -> Result<()> {
    let reason = if value.is_empty() {
        "must not be empty"
    } else if value.contains('/') {
        "must not contain '/'"
    } else if value == "." || value == ".." {
        "must not be '.' or '..'"
    } else {
        return Ok(());
    };
    Err(Error::StorageKey {
        what,
        value: value.to_string(),
        reason,
    })
}

/// Where an object lives in the store:
/// `/registry/{group or "core"}/{plural}/{namespace}/{name}`, without the namespace
/// segment for cluster-scoped resources (whose `namespace` argument is ignored).
///
/// Fails when a namespaced resource gets no namespace, or when a name or namespace could
/// not be one key segment (empty, containing `/`, `.` or `..`), so that a request can never
/// address a prefix or another resource's keys.
pub fn storage_key(resource: &Resource, namespace: Option<&str>, name: &str) -> Result<String> {
    check_segment("name", name)?;
    let prefix = list_prefix(
        resource,
        if resource.namespaced {
            Some(namespace.unwrap_or(""))
        } else {
            None
        },
    )?;
    Ok(format!("{prefix}{name}"))
}

/// The key prefix that a list or watch ranges over, ending in `/`: every object of the
/// resource (`namespace: None`: `/registry/core/pods/`) or those of one namespace
/// (`/registry/core/pods/default/`). Cluster-scoped resources ignore `namespace`.
pub fn list_prefix(resource: &Resource, namespace: Option<&str>) -> Result<String> {
    let base = format!(
        "/registry/{}/{}/",
        resource.storage_group(),
        resource.plural
    );
    match namespace {
        Some(ns) if resource.namespaced => {
            check_segment("namespace", ns)?;
            Ok(format!("{base}{ns}/"))
        }
        _ => Ok(base),
    }
}

/// The namespace and name of a storage key of `resource`, or `None` if the key is not one
/// of its keys. The inverse of [`storage_key`].
pub fn parse_storage_key<'k>(
    resource: &Resource,
    key: &'k str,
) -> Option<(Option<&'k str>, &'k str)> {
    let base = format!(
        "/registry/{}/{}/",
        resource.storage_group(),
        resource.plural
    );
    let rest = key.strip_prefix(&base)?;
    if resource.namespaced {
        let (ns, name) = rest.split_once('/')?;
        if ns.is_empty() || name.is_empty() || name.contains('/') {
            return None;
        }
        Some((Some(ns), name))
    } else if rest.is_empty() || rest.contains('/') {
        None
    } else {
        Some((None, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let mut kinds = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        for r in RESOURCES {
            let expected = if r.group.is_empty() {
                r.version.to_string()
            } else {
                format!("{}/{}", r.group, r.version)
            };
            assert_eq!(r.api_version, expected, "{}", r.kind);
            assert_eq!(r.list_kind, format!("{}List", r.kind));
            assert_eq!(r.singular, r.kind.to_ascii_lowercase());
            assert!(kinds.insert(r.kind), "duplicate kind {}", r.kind);
            for n in std::iter::once(&r.plural).chain(r.short_names) {
                assert!(names.insert(*n), "duplicate name {n}");
            }
            assert!(r.supports_verb("get") && r.supports_verb("watch"));
        }
    }

    #[test]
    fn short_names_and_categories_as_kubernetes() {
        let cases: &[(&str, &[&str], bool)] = &[
            ("namespaces", &["ns"], false),
            ("nodes", &["no"], false),
            ("pods", &["po"], true),
            ("services", &["svc"], true),
            ("endpoints", &["ep"], false),
            ("configmaps", &["cm"], false),
            ("secrets", &[], false),
            ("events", &["ev"], false),
            ("persistentvolumeclaims", &["pvc"], false),
            ("persistentvolumes", &["pv"], false),
            ("serviceaccounts", &["sa"], false),
            ("deployments", &["deploy"], true),
            ("replicasets", &["rs"], true),
            ("daemonsets", &["ds"], true),
            ("jobs", &[], true),
            ("horizontalpodautoscalers", &["hpa"], true),
            ("leases", &[], false),
        ];
        assert_eq!(cases.len(), RESOURCES.len());
        for (plural, short, all) in cases {
            let r = RESOURCES.iter().find(|r| r.plural == *plural).unwrap();
            assert_eq!(r.short_names, *short, "{plural}");
            assert_eq!(r.categories.contains(&"all"), *all, "{plural}");
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(lookup("", "v1", "pods").map(|r| r.kind), Some("Pod"));
        assert_eq!(
            lookup("apps", "v1", "deployments").map(|r| r.kind),
            Some("Deployment")
        );
        assert_eq!(lookup("", "v1", "deployments"), None);
        assert_eq!(lookup("apps", "v2", "deployments"), None);
        assert_eq!(
            by_kind("Lease").map(|r| r.group),
            Some("coordination.k8s.io")
        );
        assert_eq!(
            by_api_version_kind("autoscaling/v2", "HorizontalPodAutoscaler").map(|r| r.plural),
            Some("horizontalpodautoscalers")
        );
        assert_eq!(by_api_version_kind("v1", "Deployment"), None);
        assert_eq!(
            group_versions(),
            vec![
                ("", "v1"),
                ("apps", "v1"),
                ("batch", "v1"),
                ("autoscaling", "v2"),
                ("coordination.k8s.io", "v1")
            ]
        );
        assert_eq!(resources_in("apps", "v1").len(), 3);
    }

    #[test]
    fn resolve_names() {
        let cases: &[(&str, Option<&str>)] = &[
            ("pods", Some("Pod")),
            ("pod", Some("Pod")),
            ("po", Some("Pod")),
            ("Pod", Some("Pod")),
            ("PODS", Some("Pod")),
            ("deploy", Some("Deployment")),
            ("deployments.apps", Some("Deployment")),
            ("deployment.apps", Some("Deployment")),
            ("deploy.apps", Some("Deployment")),
            ("deployments.v1.apps", Some("Deployment")),
            ("deployments.batch", None),
            ("pods.core", Some("Pod")),
            ("pods.v1", Some("Pod")),
            ("hpa", Some("HorizontalPodAutoscaler")),
            (
                "horizontalpodautoscalers.autoscaling",
                Some("HorizontalPodAutoscaler"),
            ),
            ("leases.coordination.k8s.io", Some("Lease")),
            ("leases.v1.coordination.k8s.io", Some("Lease")),
            ("svc", Some("Service")),
            ("ep", Some("Endpoints")),
            ("endpoints", Some("Endpoints")),
            ("no", Some("Node")),
            ("ns", Some("Namespace")),
            ("cm", Some("ConfigMap")),
            ("ev", Some("Event")),
            ("pvc", Some("PersistentVolumeClaim")),
            ("pv", Some("PersistentVolume")),
            ("sa", Some("ServiceAccount")),
            ("rs", Some("ReplicaSet")),
            ("ds", Some("DaemonSet")),
            ("jobs", Some("Job")),
            ("statefulsets", None),
            ("", None),
            (".", None),
        ];
        for (name, kind) in cases {
            assert_eq!(resolve(name).map(|r| r.kind), *kind, "{name}");
        }
        assert!(matches!(resolve_or_err("foos"), Err(Error::UnknownResource(n)) if n == "foos"));
    }

    #[test]
    fn subresources() {
        let cases: &[(&Resource, &str, Option<&str>)] = &[
            (&POD, "status", Some("Pod")),
            (&POD, "log", Some("Pod")),
            (&POD, "binding", Some("Binding")),
            (&POD, "scale", None),
            (&DEPLOYMENT, "scale", Some("Scale")),
            (&REPLICA_SET, "scale", Some("Scale")),
            (&DEPLOYMENT, "status", Some("Deployment")),
            (&NODE, "status", Some("Node")),
            (&CONFIG_MAP, "status", None),
            (&DAEMON_SET, "scale", None),
        ];
        for (r, sub, kind) in cases {
            assert_eq!(
                r.subresource(sub).map(|s| s.kind),
                *kind,
                "{}/{sub}",
                r.plural
            );
        }
        assert_eq!(
            DEPLOYMENT.subresource("scale").map(|s| s.group),
            Some("autoscaling")
        );
        assert!(!NAMESPACE.supports_verb("deletecollection"));
    }

    #[test]
    fn keys_and_prefixes() {
        type KeyCase<'a> = (&'a Resource, Option<&'a str>, &'a str, Option<&'a str>);
        let cases: Vec<KeyCase> = vec![
            (
                &POD,
                Some("default"),
                "web",
                Some("/registry/core/pods/default/web"),
            ),
            (
                &DEPLOYMENT,
                Some("ns1"),
                "web",
                Some("/registry/apps/deployments/ns1/web"),
            ),
            (&NODE, None, "n1", Some("/registry/core/nodes/n1")),
            (
                &NODE,
                Some("ignored"),
                "n1",
                Some("/registry/core/nodes/n1"),
            ),
            (
                &LEASE,
                Some("kube-system"),
                "l",
                Some("/registry/coordination.k8s.io/leases/kube-system/l"),
            ),
            (&POD, None, "web", None),
            (&POD, Some(""), "web", None),
            (&POD, Some("default"), "", None),
            (&POD, Some("default"), "a/b", None),
            (&POD, Some("a/b"), "x", None),
            (&POD, Some(".."), "x", None),
            (&NODE, None, ".", None),
        ];
        for (r, ns, name, want) in cases {
            let got = storage_key(r, ns, name);
            match want {
                Some(key) => {
                    assert_eq!(got.as_deref().ok(), Some(key), "{ns:?}/{name}");
                    let parsed = parse_storage_key(r, key).unwrap();
                    assert_eq!(parsed.1, name);
                    assert_eq!(parsed.0, if r.namespaced { ns } else { None });
                }
                None => assert!(got.is_err(), "{ns:?}/{name} should fail"),
            }
        }
        assert_eq!(list_prefix(&POD, None).unwrap(), "/registry/core/pods/");
        assert_eq!(
            list_prefix(&POD, Some("default")).unwrap(),
            "/registry/core/pods/default/"
        );
        assert_eq!(
            list_prefix(&NODE, Some("default")).unwrap(),
            "/registry/core/nodes/"
        );
        assert!(list_prefix(&POD, Some("a/b")).is_err());
        assert_eq!(parse_storage_key(&POD, "/registry/core/pods/default"), None);
        assert_eq!(
            parse_storage_key(&POD, "/registry/apps/deployments/a/b"),
            None
        );
    }

    #[test]
    fn paths_and_names() {
        assert_eq!(
            POD.collection_path(Some("default")),
            "/api/v1/namespaces/default/pods"
        );
        assert_eq!(
            DEPLOYMENT.collection_path(None),
            "/apis/apps/v1/deployments"
        );
        assert_eq!(NODE.collection_path(Some("x")), "/api/v1/nodes");
        assert_eq!(DEPLOYMENT.group_resource(), "deployments.apps");
        assert_eq!(POD.qualified_kind(), "Pod");
        assert_eq!(DEPLOYMENT.gvk_string(), "apps/v1, Kind=Deployment");
    }
}
