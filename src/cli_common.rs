//! What the client subcommands (`get`, `apply`, `delete`, …) share: the connection flags,
//! resource-name resolution, manifest reading and kubectl-style error reporting.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use serde::Deserialize as _;
use serde_json::Value;
use skiff_api::registry::{self, Resource};
use skiff_client::{ApiError, Client, Kubeconfig};

/// How to reach the cluster: shared by every client subcommand.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Path to the kubeconfig file [default: first entry of $KUBECONFIG, then ~/.skiff/kubeconfig.yaml]
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use [default: its current-context]
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// The namespace to work in [default: the context's namespace, else "default"]
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,
}

/// A connected client and the namespace a command works in.
#[derive(Debug, Clone)]
pub struct Conn {
    pub client: Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// Whether `-n` was given.
    pub explicit_namespace: bool,
}

impl ClientArgs {
    /// Reads the kubeconfig and builds the client.
    pub fn connect(&self) -> anyhow::Result<Conn> {
        let kc = Kubeconfig::load(self.kubeconfig.as_deref())?;
        let config = kc.resolve(self.context.as_deref())?;
        let namespace = self
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| config.namespace.clone());
        let client = Client::new(&config)?.with_namespace(&namespace);
        Ok(Conn {
            client,
            namespace,
            explicit_namespace: self.namespace.is_some(),
        })
    }
}

/// An error already printed to stderr: the command fails (exit 1) without another message.
#[derive(Debug)]
pub struct AlreadyReported;

impl std::fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("errors were reported above")
    }
}

impl std::error::Error for AlreadyReported {}

/// The server's Status, when the error is the server's refusal (not wrapped in context).
pub fn api_error(err: &anyhow::Error) -> Option<&ApiError> {
    err.downcast_ref::<skiff_client::Error>()
        .and_then(skiff_client::Error::api)
        .or_else(|| err.downcast_ref::<ApiError>())
}

/// Prints an error the way kubectl does: `Error from server (Reason): message` for the
/// server's refusals, `error: …` for everything else.
pub fn print_error(err: &anyhow::Error) {
    if err.downcast_ref::<AlreadyReported>().is_some() {
        return;
    }
    match api_error(err) {
        Some(api) => eprintln!("{api}"),
        None => eprintln!("error: {err:#}"),
    }
}

/// Ends a client subcommand: on failure, prints the error like kubectl and exits with 1.
pub fn exit_on_error(result: anyhow::Result<()>) -> anyhow::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(err) => {
            let _ = std::io::stdout().flush();
            print_error(&err);
            std::process::exit(1)
        }
    }
}

/// Resolves what a user typed (`po`, `deploy`, `deployments.apps`) to a resource.
pub fn resolve_kind(name: &str) -> anyhow::Result<&'static Resource> {
    registry::resolve(name)
        .ok_or_else(|| anyhow!("the server doesn't have a resource type \"{name}\""))
}

/// `deployment.apps/web`, `pod/x`: how kubectl names one object in its output.
pub fn object_ref(r: &Resource, name: &str) -> String {
    if r.group.is_empty() {
        format!("{}/{name}", r.singular)
    } else {
        format!("{}.{}/{name}", r.singular, r.group)
    }
}

/// Splits `TYPE/NAME` (or returns `None` when there is no slash).
pub fn split_type_name(arg: &str) -> anyhow::Result<Option<(&'static Resource, String)>> {
    let Some((kind, name)) = arg.split_once('/') else {
        return Ok(None);
    };
    if name.is_empty() || name.contains('/') {
        bail!("arguments in resource/name form must have a single resource and name");
    }
    Ok(Some((resolve_kind(kind)?, name.to_string())))
}

/// `metadata.name`, `metadata.namespace`, … of a JSON object.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// One object read from a manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it came from (`-` for stdin).
    pub source: String,
    pub resource: &'static Resource,
    pub object: Value,
}

impl Manifest {
    pub fn name(&self) -> anyhow::Result<&str> {
        meta_str(&self.object, "name").ok_or_else(|| {
            anyhow!(
                "error validating \"{}\": resource name may not be empty ({})",
                self.source,
                self.resource.kind
            )
        })
    }

    /// The namespace the object goes into: its own, or the command's. With `-n` given
    /// and a different namespace in the object, that is an error, as in kubectl.
    pub fn namespace(&self, conn: &Conn) -> anyhow::Result<Option<String>> {
        if !self.resource.namespaced {
            return Ok(None);
        }
        match meta_str(&self.object, "namespace") {
            Some(ns) if conn.explicit_namespace && ns != conn.namespace => bail!(
                "the namespace from the provided object \"{ns}\" does not match the namespace \"{}\". You must pass '--namespace={ns}' to perform this operation.",
                conn.namespace
            ),
            Some(ns) => Ok(Some(ns.to_string())),
            None => Ok(Some(conn.namespace.clone())),
        }
    }
}

/// Reads the objects of `-f` arguments: files, directories (their `.yaml`, `.yml` and
/// `.json` files in name order; `recursive` descends) or `-` for stdin. Each file may
/// hold several YAML documents and `kind: List`s.
pub fn read_manifests(paths: &[String], recursive: bool) -> anyhow::Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for p in paths {
        if p == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the manifest from stdin")?;
            parse_manifest("-", &text, &mut out)?;
            continue;
        }
        let path = Path::new(p);
        let meta = std::fs::metadata(path)
            .map_err(|e| anyhow!("the path \"{p}\" does not exist ({e})"))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_dir(path, recursive, &mut files)?;
            if files.is_empty() {
                bail!("no objects passed to apply: {p} has no .yaml, .yml or .json files");
            }
            for f in files {
                read_file(&f, &mut out)?;
            }
        } else {
            read_file(path, &mut out)?;
        }
    }
    if out.is_empty() {
        bail!("no objects passed to apply");
    }
    Ok(out)
}

fn collect_dir(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading the directory {}", dir.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading the directory {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            if recursive {
                collect_dir(&p, recursive, out)?;
            }
        } else if matches!(
            p.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

fn read_file(path: &Path, out: &mut Vec<Manifest>) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_manifest(&path.display().to_string(), &text, out)
}

/// Parses the YAML (or JSON) documents of one manifest file.
pub fn parse_manifest(source: &str, text: &str, out: &mut Vec<Manifest>) -> anyhow::Result<()> {
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc)
            .map_err(|e| anyhow!("error parsing {source}: document {}: {e}", i + 1))?;
        push_object(source, value, out)?;
    }
    Ok(())
}

fn push_object(source: &str, value: Value, out: &mut Vec<Manifest>) -> anyhow::Result<()> {
    match value {
        Value::Null => Ok(()),
        Value::Object(ref map) if map.is_empty() => Ok(()),
        Value::Object(_) => {
            let api_version = value
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind.is_empty() || api_version.is_empty() {
                let missing = if api_version.is_empty() {
                    "apiVersion"
                } else {
                    "kind"
                };
                bail!("error validating \"{source}\": {missing} not set");
            }
            if kind.ends_with("List")
                && let Some(Value::Array(items)) = value.get("items")
            {
                for item in items.clone() {
                    push_object(source, item, out)?;
                }
                return Ok(());
            }
            let resource = registry::by_api_version_kind(api_version, kind).ok_or_else(|| {
                anyhow!(
                    "resource mapping not found for name: \"{}\" namespace: \"{}\" from \"{source}\": no matches for kind \"{kind}\" in version \"{api_version}\"",
                    meta_str(&value, "name").unwrap_or(""),
                    meta_str(&value, "namespace").unwrap_or(""),
                )
            })?;
            out.push(Manifest {
                source: source.to_string(),
                resource,
                object: value,
            });
            Ok(())
        }
        _ => bail!("error parsing {source}: a document must be an object"),
    }
}

/// Parses `5m`, `30s`, `1h30m`, `500ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            "ms"
        } else {
            match c {
                'h' => "h",
                'm' => "m",
                's' => "s",
                _ => return Err(format!("invalid duration {s:?}: unknown unit {c:?}")),
            }
        };
        let n: f64 = num
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: a unit needs a number before it"))?;
        num.clear();
        total += n * match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            _ => 0.001,
        };
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(format!(
            "invalid duration {s:?}: use a number with a unit, like 30s, 5m or 1h"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m").unwrap().as_secs(), 300);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("45").unwrap().as_secs(), 45);
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn manifests_split_documents_and_lists() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: n}\n";
        let mut out = Vec::new();
        parse_manifest("f.yaml", text, &mut out).unwrap();
        let kinds: Vec<_> = out.iter().map(|m| m.resource.kind).collect();
        assert_eq!(kinds, ["ConfigMap", "Namespace"]);
        let mut out = Vec::new();
        let err = parse_manifest(
            "f.yaml",
            "apiVersion: v9\nkind: Nope\nmetadata: {name: x}\n",
            &mut out,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no matches for kind \"Nope\" in version \"v9\""),
            "{err}"
        );
        let err = parse_manifest("f.yaml", "kind: ConfigMap\n", &mut out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("apiVersion not set"), "{err}");
        let err = parse_manifest("f.yaml", "a: [\n", &mut out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.yaml"), "{err}");
    }

    #[test]
    fn object_refs_like_kubectl() {
        assert_eq!(
            object_ref(&registry::DEPLOYMENT, "web"),
            "deployment.apps/web"
        );
        assert_eq!(object_ref(&registry::CONFIG_MAP, "c"), "configmap/c");
        assert!(split_type_name("deploy/web").unwrap().is_some());
        assert!(split_type_name("web").unwrap().is_none());
        assert!(split_type_name("deploy/").is_err());
        assert!(split_type_name("nope/x").is_err());
    }
}
