//! Request paths: Kubernetes' URL layout, parsed into what the request is about.
//!
//! ```text
//! /api/v1/{plural}[/{name}[/{sub}]]                                 core, cluster-scoped (or all namespaces)
//! /api/v1/namespaces/{ns}/{plural}[/{name}[/{sub}]]                 core, namespaced
//! /apis/{group}/{version}/…                                         the same for named groups
//! /api/v1/watch/…, /apis/{g}/{v}/watch/…                            legacy watch paths
//! /api, /api/v1, /apis, /apis/{g}, /apis/{g}/{v}, /version, /healthz discovery and health
//! ```

use crate::resources::{self, Resource};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Version,
    Health,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`
    ResourceList {
        group: String,
        version: String,
    },
    /// `/openapi/v2`, `/openapi/v3`, `/openapi/v3/{path}`
    OpenApi(String),
    /// A collection: every object of a kind, in one namespace or in all.
    Collection {
        resource: Resource,
        namespace: Option<String>,
        /// Legacy `/watch/` path.
        watch: bool,
    },
    /// One object, or one of its subresources.
    Item {
        resource: Resource,
        namespace: Option<String>,
        name: String,
        subresource: Option<String>,
        watch: bool,
    },
}

/// Parses a request path; `None` when nothing is served there (404).
pub fn parse(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .collect::<Vec<_>>();
    match segs.as_slice() {
        ["version"] => return Some(Target::Version),
        ["healthz"] | ["livez"] | ["readyz"] => return Some(Target::Health),
        ["api"] => return Some(Target::CoreVersions),
        ["apis"] => return Some(Target::Groups),
        ["openapi", rest @ ..] => return Some(Target::OpenApi(rest.join("/"))),
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group] => return Some(Target::Group((*group).to_string())),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return Some(Target::ResourceList {
            group: group.to_string(),
            version: version.to_string(),
        });
    }
    let (watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    if rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    // `namespaces/{ns}/{plural}/…` when {plural} is a namespaced kind; otherwise the
    // path is about Namespace objects themselves (`namespaces/{name}/status`).
    if let ["namespaces", ns, plural, tail @ ..] = rest
        && let Some(resource) = resources::find(group, version, plural).filter(|r| r.namespaced)
    {
        return item_or_collection(resource, Some((*ns).to_string()), tail, watch);
    }
    let [plural, tail @ ..] = rest else {
        return None;
    };
    let resource = resources::find(group, version, plural)?;
    item_or_collection(resource, None, tail, watch)
}

fn item_or_collection(
    resource: Resource,
    namespace: Option<String>,
    tail: &[&str],
    watch: bool,
) -> Option<Target> {
    match tail {
        [] => Some(Target::Collection {
            resource,
            namespace,
            watch,
        }),
        [name] => Some(Target::Item {
            resource,
            namespace,
            name: (*name).to_string(),
            subresource: None,
            watch,
        }),
        [name, sub] if !watch => Some(Target::Item {
            resource,
            namespace,
            name: (*name).to_string(),
            subresource: Some((*sub).to_string()),
            watch,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn item(path: &str) -> (String, Option<String>, String, Option<String>) {
        match parse(path) {
            Some(Target::Item {
                resource,
                namespace,
                name,
                subresource,
                ..
            }) => (resource.plural.to_string(), namespace, name, subresource),
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn items() {
        assert_eq!(
            item("/api/v1/namespaces/default/pods/web"),
            ("pods".into(), Some("default".into()), "web".into(), None)
        );
        assert_eq!(
            item("/apis/apps/v1/namespaces/ns1/deployments/d/scale"),
            (
                "deployments".into(),
                Some("ns1".into()),
                "d".into(),
                Some("scale".into())
            )
        );
        assert_eq!(
            item("/api/v1/nodes/n1/status"),
            ("nodes".into(), None, "n1".into(), Some("status".into()))
        );
        assert_eq!(
            item("/api/v1/namespaces/kube-system"),
            ("namespaces".into(), None, "kube-system".into(), None)
        );
        assert_eq!(
            item("/api/v1/namespaces/kube-system/status"),
            (
                "namespaces".into(),
                None,
                "kube-system".into(),
                Some("status".into())
            )
        );
    }

    #[test]
    fn collections_and_discovery() {
        assert!(matches!(
            parse("/api/v1/pods"),
            Some(Target::Collection {
                namespace: None,
                ..
            })
        ));
        assert!(matches!(
            parse("/api/v1/watch/namespaces/a/pods"),
            Some(Target::Collection { watch: true, .. })
        ));
        assert_eq!(parse("/api"), Some(Target::CoreVersions));
        assert_eq!(
            parse("/apis/apps/v1"),
            Some(Target::ResourceList {
                group: "apps".into(),
                version: "v1".into()
            })
        );
        assert_eq!(parse("/apis/apps"), Some(Target::Group("apps".into())));
        assert_eq!(parse("/version"), Some(Target::Version));
    }

    #[test]
    fn unknown_paths() {
        for p in [
            "/",
            "/foo",
            "/api/v1/widgets",
            "/apis/apps/v1/pods",
            "/api/v1/namespaces/a/pods/x/y/z",
            "/api/v1/namespaces//pods",
        ] {
            assert_eq!(parse(p), None, "{p}");
        }
    }
}
