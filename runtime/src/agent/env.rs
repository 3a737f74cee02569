//! A container's environment and argv, as the kubelet makes them: `envFrom` sources first
//! (later ones override earlier ones), then `env` in order, each value with `$(VAR)`
//! expanded from what is defined before it; `command` and `args` are expanded with the
//! result.
//!
//! Resolution is split so that the rules are pure: [`references`] names the ConfigMaps and
//! Secrets a container needs, the worker fetches them into [`Sources`], and [`resolve`]
//! computes the environment — or the `CreateContainerConfigError` message Kubernetes
//! would show (`configmap "x" not found`).

use std::collections::{BTreeMap, BTreeSet};

use skiff_api::Quantity;
use skiff_api::k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};

/// The keys and values of a ConfigMap (`data` and `binaryData`) or Secret (decoded).
pub type Data = BTreeMap<String, Vec<u8>>;

/// The ConfigMaps and Secrets a container refers to, by name; `None` = does not exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    pub config_maps: BTreeMap<String, Option<Data>>,
    pub secrets: BTreeMap<String, Option<Data>>,
}

/// Names of the ConfigMaps and Secrets a container's environment refers to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

impl References {
    pub fn is_empty(&self) -> bool {
        self.config_maps.is_empty() && self.secrets.is_empty()
    }
}

/// What a container's environment needs fetched.
pub fn references(c: &Container) -> References {
    let mut refs = References::default();
    for from in c.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            refs.config_maps.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            refs.secrets.insert(r.name.clone());
        }
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        if let Some(r) = &from.config_map_key_ref {
            refs.config_maps.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_key_ref {
            refs.secrets.insert(r.name.clone());
        }
    }
    refs
}

/// What `fieldRef` and `resourceFieldRef` read besides the pod itself.
#[derive(Clone, Debug, Default)]
pub struct Downward {
    pub pod_ip: Option<String>,
    pub host_ip: String,
    /// The node's allocatable CPU (millicores) and memory (bytes): what an unset limit
    /// reads as.
    pub node_cpu_millis: i64,
    pub node_memory_bytes: i64,
}

/// An ordered environment where a later definition replaces an earlier one in place.
#[derive(Default)]
struct Env {
    order: Vec<String>,
    values: BTreeMap<String, String>,
}

impl Env {
    fn set(&mut self, key: String, value: String) {
        if !self.values.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.values.insert(key, value);
    }

    fn into_vec(mut self) -> Vec<(String, String)> {
        self.order
            .into_iter()
            .filter_map(|k| self.values.remove(&k).map(|v| (k, v)))
            .collect()
    }
}

/// Whether `name` is a valid environment variable name (Kubernetes: C identifier-ish,
/// letters, digits, `_`, `-`, `.`, not starting with a digit).
fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if !c.is_ascii_digit() => {}
        _ => return false,
    }
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn lookup<'a>(sources: &'a BTreeMap<String, Option<Data>>, name: &str) -> Option<&'a Data> {
    sources.get(name).and_then(Option::as_ref)
}

/// The container's environment, or the message of a `CreateContainerConfigError`.
pub fn resolve(
    c: &Container,
    pod: &Pod,
    downward: &Downward,
    sources: &Sources,
) -> Result<Vec<(String, String)>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env = Env::default();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let data = if let Some(r) = &from.config_map_ref {
            match lookup(&sources.config_maps, &r.name) {
                Some(d) => d,
                None if r.optional == Some(true) => continue,
                None => return Err(format!("configmap \"{}\" not found", r.name)),
            }
        } else if let Some(r) = &from.secret_ref {
            match lookup(&sources.secrets, &r.name) {
                Some(d) => d,
                None if r.optional == Some(true) => continue,
                None => return Err(format!("secret \"{}\" not found", r.name)),
            }
        } else {
            continue;
        };
        for (k, v) in data {
            let key = format!("{prefix}{k}");
            if valid_env_name(&key) {
                env.set(key, String::from_utf8_lossy(v).into_owned());
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => {
                let raw = e.value.as_deref().unwrap_or("");
                expand(raw, |name| env.values.get(name).cloned())
            }
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    match lookup(&sources.config_maps, &r.name) {
                        Some(d) => match d.get(&r.key) {
                            Some(v) => String::from_utf8_lossy(v).into_owned(),
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(format!(
                                    "couldn't find key {} in ConfigMap {namespace}/{}",
                                    r.key, r.name
                                ));
                            }
                        },
                        None if r.optional == Some(true) => continue,
                        None => return Err(format!("configmap \"{}\" not found", r.name)),
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    match lookup(&sources.secrets, &r.name) {
                        Some(d) => match d.get(&r.key) {
                            Some(v) => String::from_utf8_lossy(v).into_owned(),
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(format!(
                                    "couldn't find key {} in Secret {namespace}/{}",
                                    r.key, r.name
                                ));
                            }
                        },
                        None if r.optional == Some(true) => continue,
                        None => return Err(format!("secret \"{}\" not found", r.name)),
                    }
                } else if let Some(r) = &from.field_ref {
                    field_value(pod, downward, &r.field_path)?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_value(pod, c, downward, r)?
                } else {
                    String::new()
                }
            }
        };
        env.set(e.name.clone(), value);
    }
    Ok(env.into_vec())
}

/// The value of a `fieldRef` (the paths the kubelet supports for env).
pub fn field_value(pod: &Pod, downward: &Downward, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(rest.to_string())
    };
    if let Some(key) = subscript("metadata.labels['") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|l| l.get(&key))
            .cloned()
            .unwrap_or_default());
    }
    if let Some(key) = subscript("metadata.annotations['") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|l| l.get(&key))
            .cloned()
            .unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => downward.host_ip.clone(),
        "status.podIP" | "status.podIPs" => downward.pod_ip.clone().unwrap_or_default(),
        other => return Err(format!("unsupported fieldRef path {other:?}")),
    })
}

fn resource_value(
    pod: &Pod,
    own: &Container,
    downward: &Downward,
    r: &ResourceFieldSelector,
) -> Result<String, String> {
    let container = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => own,
        Some(name) => pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == name)
            .ok_or_else(|| format!("resourceFieldRef: no container named {name:?}"))?,
    };
    let (which, resource) = r
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported resourceFieldRef resource {:?}", r.resource))?;
    let resources = container.resources.as_ref();
    let list = match which {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => {
            return Err(format!(
                "unsupported resourceFieldRef resource {:?}",
                r.resource
            ));
        }
    };
    let set = list.and_then(|l| l.get(resource)).map(|q| q.0.as_str());
    let quantity = match (resource, set) {
        (_, Some(q)) => Quantity::parse(q).map_err(|e| format!("{}: {e}", r.resource))?,
        ("cpu", None) => Quantity::from_millis(downward.node_cpu_millis),
        ("memory", None) => Quantity::from_bytes(downward.node_memory_bytes),
        _ => {
            return Err(format!(
                "unsupported resourceFieldRef resource {:?}",
                r.resource
            ));
        }
    };
    let divisor = match &r.divisor {
        Some(d) => Quantity::parse(&d.0).map_err(|e| format!("divisor: {e}"))?,
        None => Quantity::from_value(1),
    };
    let d = divisor.nanos();
    if d <= 0 {
        return Err("divisor must be positive".into());
    }
    let n = quantity.nanos();
    let value = n / d + i128::from(n % d != 0);
    Ok(value.to_string())
}

/// Kubernetes' `$(VAR)` expansion: a defined `$(VAR)` is replaced, an undefined one is left
/// as written, `$$` is a literal `$`.
pub fn expand(input: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(end) => {
                    let name = &tail[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// argv: `command` + `args`, expanded with the environment; without a `command`, the
/// container's name is `argv[0]`.
pub fn argv(c: &Container, env: &[(String, String)]) -> Vec<String> {
    let values: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand_one = |s: &String| expand(s, |n| values.get(n).map(|v| v.to_string()));
    let mut argv: Vec<String> = match c.command.as_ref().filter(|c| !c.is_empty()) {
        Some(command) => command.iter().map(expand_one).collect(),
        None => vec![c.name.clone()],
    };
    argv.extend(c.args.iter().flatten().map(expand_one));
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "file:///x"}]}
        }))
        .unwrap()
    }

    fn downward() -> Downward {
        Downward {
            pod_ip: Some("10.42.0.5".into()),
            host_ip: "192.168.0.2".into(),
            node_cpu_millis: 4000,
            node_memory_bytes: 1 << 30,
        }
    }

    fn data(pairs: &[(&str, &str)]) -> Option<Data> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn expansion() {
        let vars = |n: &str| (n == "A").then(|| "1".to_string());
        let cases = [
            ("plain", "plain"),
            ("$(A)", "1"),
            ("x$(A)y$(A)", "x1y1"),
            ("$(B)", "$(B)"),
            ("$$(A)", "$(A)"),
            ("$$", "$"),
            ("$", "$"),
            ("a$b", "a$b"),
            ("$(A", "$(A"),
            ("ünï$(A)", "ünï1"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, vars), want, "{input}");
        }
    }

    #[test]
    fn env_sources_in_kubernetes_order() {
        let c = container(json!({
            "name": "main",
            "envFrom": [
                {"configMapRef": {"name": "base"}},
                {"secretRef": {"name": "creds"}, "prefix": "S_"},
                {"configMapRef": {"name": "gone", "optional": true}}
            ],
            "env": [
                {"name": "GREETING", "value": "hello $(NAME)"},
                {"name": "NAME", "value": "override"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "base", "key": "NAME"}}},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope", "optional": true}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}
            ]
        }));
        let sources = Sources {
            config_maps: [
                (
                    "base".to_string(),
                    data(&[("NAME", "world"), ("1bad", "x")]),
                ),
                ("gone".to_string(), None),
            ]
            .into(),
            secrets: [("creds".to_string(), data(&[("password", "s3cret")]))].into(),
        };
        let env = resolve(&c, &pod(), &downward(), &sources).unwrap();
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("NAME", "override"),
                ("S_password", "s3cret"),
                ("GREETING", "hello world"),
                ("POD", "web"),
                ("NS", "shop"),
                ("IP", "10.42.0.5"),
                ("NODE", "n1"),
                ("APP", "web"),
                ("KEY", "world"),
                ("PW", "s3cret"),
                ("MEM", "1024"),
            ]
        );
    }

    #[test]
    fn missing_sources_are_kubernetes_messages() {
        let cases = [
            (
                json!({"name": "m", "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}]}),
                "configmap \"x\" not found",
            ),
            (
                json!({"name": "m", "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}),
                "secret \"s\" not found",
            ),
            (
                json!({"name": "m", "envFrom": [{"configMapRef": {"name": "x"}}]}),
                "configmap \"x\" not found",
            ),
            (
                json!({"name": "m", "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "present", "key": "k"}}}]}),
                "couldn't find key k in ConfigMap shop/present",
            ),
        ];
        let sources = Sources {
            config_maps: [("x".to_string(), None), ("present".to_string(), data(&[]))].into(),
            secrets: [("s".to_string(), None)].into(),
        };
        for (c, want) in cases {
            let c = container(c);
            assert_eq!(
                resolve(&c, &pod(), &downward(), &sources),
                Err(want.to_string())
            );
        }
    }

    #[test]
    fn references_and_argv() {
        let c = container(json!({
            "name": "main",
            "command": ["prog", "$(MODE)"],
            "args": ["--x=$(MODE)", "$(UNSET)"],
            "envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "b"}}],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]
        }));
        let refs = references(&c);
        assert_eq!(refs.config_maps, ["a".to_string(), "c".to_string()].into());
        assert_eq!(refs.secrets, ["b".to_string()].into());
        let env = vec![("MODE".to_string(), "fast".to_string())];
        assert_eq!(argv(&c, &env), ["prog", "fast", "--x=fast", "$(UNSET)"]);
        let bare = container(json!({"name": "main", "args": ["a"]}));
        assert_eq!(argv(&bare, &[]), ["main", "a"]);
    }
}
