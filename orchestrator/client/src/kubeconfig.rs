//! Kubeconfig files: where to find one, and what its current context says to connect to.
//!
//! Lookup order (first that applies): an explicit path (`--kubeconfig`), the first entry of
//! `$KUBECONFIG`, then `~/.skiff/kubeconfig.yaml` (what `skiff server` writes into its data
//! directory, copied there). Of the file, [`Kubeconfig::resolve`] reads the current context
//! (or a named one) → its cluster (server, `certificate-authority-data` or
//! `certificate-authority` file, `insecure-skip-tls-verify`) and user (`token` or
//! `tokenFile`) and namespace. Relative file paths are relative to the kubeconfig's folder,
//! as kubectl has them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The namespace used when neither flag nor context names one.
pub const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawKubeconfig {
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(default)]
    current_context: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct NamedCluster {
    #[serde(default)]
    name: String,
    #[serde(default)]
    cluster: Option<RawCluster>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawCluster {
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    certificate_authority_data: Option<String>,
    #[serde(default)]
    certificate_authority: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct NamedUser {
    #[serde(default)]
    name: String,
    #[serde(default)]
    user: Option<RawUser>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawUser {
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "tokenFile")]
    token_file: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct NamedContext {
    #[serde(default)]
    name: String,
    #[serde(default)]
    context: Option<RawContext>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawContext {
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

/// A parsed kubeconfig file.
#[derive(Debug, Clone)]
pub struct Kubeconfig {
    path: PathBuf,
    raw: RawKubeconfig,
}

/// What one context of a kubeconfig says: everything needed to connect.
#[derive(Clone)]
pub struct ClusterConfig {
    /// The kubeconfig this came from.
    pub source: PathBuf,
    /// The context's name.
    pub context: String,
    /// `https://127.0.0.1:6443` (no trailing slash).
    pub server: String,
    /// The CA to trust (PEM), from `certificate-authority-data` or `certificate-authority`.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any server certificate (`insecure-skip-tls-verify: true`).
    pub insecure_skip_tls_verify: bool,
    /// The bearer token, from `token` or `tokenFile`.
    pub token: Option<String>,
    /// The context's namespace, or `default`.
    pub namespace: String,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("source", &self.source)
            .field("context", &self.context)
            .field("server", &self.server)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| ".."))
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("token", &self.token.as_ref().map(|_| ".."))
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Kubeconfig {
    /// Which file to read: `explicit`, else the first entry of `kubeconfig_env`
    /// (`$KUBECONFIG`), else `home/.skiff/kubeconfig.yaml`. An explicit or `$KUBECONFIG`
    /// path is returned even when it does not exist (reading it then names it); the home
    /// default only when it exists.
    pub fn locate(
        explicit: Option<&Path>,
        kubeconfig_env: Option<OsString>,
        home: Option<PathBuf>,
    ) -> Result<PathBuf> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        if let Some(env) = kubeconfig_env
            && let Some(first) = std::env::split_paths(&env).find(|p| !p.as_os_str().is_empty())
        {
            return Ok(first);
        }
        let mut tried = Vec::new();
        if let Some(home) = home {
            let p = home.join(".skiff").join("kubeconfig.yaml");
            if p.exists() {
                return Ok(p);
            }
            tried.push(p);
        }
        Err(Error::NoKubeconfig { tried })
    }

    /// Finds (see [`Kubeconfig::locate`], with this process's `$KUBECONFIG` and `$HOME`)
    /// and reads the kubeconfig.
    pub fn load(explicit: Option<&Path>) -> Result<Kubeconfig> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let path = Self::locate(explicit, std::env::var_os("KUBECONFIG"), home)?;
        Self::read(&path)
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<Kubeconfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Kubeconfig {
            path: path.to_path_buf(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                "no such file".to_string()
            } else {
                format!("cannot read it: {e}")
            },
        })?;
        Self::parse(path, &text)
    }

    /// Parses kubeconfig YAML; `path` is for messages and relative file paths.
    pub fn parse(path: &Path, text: &str) -> Result<Kubeconfig> {
        let raw: RawKubeconfig = if text.trim().is_empty() {
            RawKubeconfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| Error::Kubeconfig {
                path: path.to_path_buf(),
                message: format!("not a valid kubeconfig: {e}"),
            })?
        };
        Ok(Kubeconfig {
            path: path.to_path_buf(),
            raw,
        })
    }

    /// Where this kubeconfig was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `current-context`, if set.
    pub fn current_context(&self) -> Option<&str> {
        self.raw
            .current_context
            .as_deref()
            .filter(|c| !c.is_empty())
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Kubeconfig {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    /// Resolves `context` (or the current context) to what to connect to.
    pub fn resolve(&self, context: Option<&str>) -> Result<ClusterConfig> {
        let context_name = match context {
            Some(c) => c.to_string(),
            None => self
                .current_context()
                .ok_or_else(|| {
                    self.err("current-context is not set (pass --context or set current-context)")
                })?
                .to_string(),
        };
        let ctx = self
            .raw
            .contexts
            .iter()
            .find(|c| c.name == context_name)
            .ok_or_else(|| self.err(format!("context \"{context_name}\" not found in contexts")))?;
        let ctx = ctx
            .context
            .as_ref()
            .ok_or_else(|| self.err(format!("context \"{context_name}\" has no context field")))?;
        let cluster_name = ctx
            .cluster
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| self.err(format!("context \"{context_name}\" names no cluster")))?;
        let cluster = self
            .raw
            .clusters
            .iter()
            .find(|c| c.name == cluster_name)
            .ok_or_else(|| self.err(format!("cluster \"{cluster_name}\" not found in clusters")))?
            .cluster
            .as_ref()
            .ok_or_else(|| self.err(format!("cluster \"{cluster_name}\" has no cluster field")))?;
        let server = cluster
            .server
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.err(format!("cluster \"{cluster_name}\" has no server")))?
            .trim_end_matches('/')
            .to_string();
        if !(server.starts_with("https://") || server.starts_with("http://")) {
            return Err(self.err(format!(
                "cluster \"{cluster_name}\": server {server:?} must start with https:// or http://"
            )));
        }

        let ca_pem = if let Some(data) = cluster
            .certificate_authority_data
            .as_deref()
            .filter(|d| !d.trim().is_empty())
        {
            let compact: String = data.split_whitespace().collect();
            let pem = base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|e| {
                    self.err(format!(
                        "cluster \"{cluster_name}\": certificate-authority-data is not base64: {e}"
                    ))
                })?;
            Some(pem)
        } else if let Some(file) = cluster
            .certificate_authority
            .as_deref()
            .filter(|f| !f.is_empty())
        {
            let p = self.relative(file);
            Some(std::fs::read(&p).map_err(|e| Error::Io { path: p, cause: e })?)
        } else {
            None
        };

        let mut token = None;
        if let Some(user_name) = ctx.user.as_deref().filter(|u| !u.is_empty()) {
            let user = self
                .raw
                .users
                .iter()
                .find(|u| u.name == user_name)
                .ok_or_else(|| self.err(format!("user \"{user_name}\" not found in users")))?;
            if let Some(u) = &user.user {
                if let Some(t) = u.token.as_deref().filter(|t| !t.trim().is_empty()) {
                    token = Some(t.trim().to_string());
                } else if let Some(file) = u.token_file.as_deref().filter(|f| !f.is_empty()) {
                    let p = self.relative(file);
                    let t = std::fs::read_to_string(&p).map_err(|e| Error::Io {
                        path: p.clone(),
                        cause: e,
                    })?;
                    let t = t.trim();
                    if t.is_empty() {
                        return Err(self.err(format!(
                            "user \"{user_name}\": tokenFile {} is empty",
                            p.display()
                        )));
                    }
                    token = Some(t.to_string());
                }
            }
        }

        let namespace = ctx
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_string();
        Ok(ClusterConfig {
            source: self.path.clone(),
            context: context_name,
            server,
            ca_pem,
            insecure_skip_tls_verify: cluster.insecure_skip_tls_verify,
            token,
            namespace,
        })
    }

    fn relative(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path
                .parent()
                .map(|d| d.join(p))
                .unwrap_or_else(|| p.to_path_buf())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SKIFF: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    certificate-authority-data: LS0tLS1CRUdJTg==\n    server: https://127.0.0.1:6443/\nusers:\n- name: skiff-admin\n  user:\n    token: abc\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: skiff-admin\n    namespace: team\ncurrent-context: skiff\n";

    fn parse(text: &str) -> Kubeconfig {
        Kubeconfig::parse(Path::new("/etc/kc.yaml"), text).unwrap()
    }

    #[test]
    fn the_file_skiff_server_writes_resolves() {
        let c = parse(SKIFF).resolve(None).unwrap();
        assert_eq!(c.server, "https://127.0.0.1:6443");
        assert_eq!(c.ca_pem.as_deref(), Some(&b"-----BEGIN"[..]));
        assert_eq!(c.token.as_deref(), Some("abc"));
        assert_eq!(c.namespace, "team");
        assert_eq!(c.context, "skiff");
        assert!(!c.insecure_skip_tls_verify);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("abc"), "the token stays out of Debug: {dbg}");
    }

    #[test]
    fn namespace_defaults_and_ca_and_token_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "PEM").unwrap();
        std::fs::write(dir.path().join("tok"), "  secret\n").unwrap();
        let text = "clusters:\n- name: c\n  cluster:\n    server: http://h:1\n    certificate-authority: ca.crt\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    tokenFile: tok\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n- name: y\n  context: {cluster: c}\ncurrent-context: x\n";
        let path = dir.path().join("config");
        std::fs::write(&path, text).unwrap();
        let kc = Kubeconfig::read(&path).unwrap();
        let c = kc.resolve(None).unwrap();
        assert_eq!(c.ca_pem.as_deref(), Some(&b"PEM"[..]));
        assert_eq!(c.token.as_deref(), Some("secret"));
        assert_eq!(c.namespace, "default");
        assert!(c.insecure_skip_tls_verify);
        let y = kc.resolve(Some("y")).unwrap();
        assert_eq!(y.token, None);
    }

    #[test]
    fn missing_pieces_are_named_with_the_file() {
        let cases = [
            ("", "current-context is not set"),
            ("current-context: nope\n", "context \"nope\" not found"),
            (
                "contexts:\n- name: a\n  context: {user: u}\ncurrent-context: a\n",
                "context \"a\" names no cluster",
            ),
            (
                "contexts:\n- name: a\n  context: {cluster: c}\ncurrent-context: a\n",
                "cluster \"c\" not found",
            ),
            (
                "clusters:\n- name: c\n  cluster: {}\ncontexts:\n- name: a\n  context: {cluster: c}\ncurrent-context: a\n",
                "cluster \"c\" has no server",
            ),
            (
                "clusters:\n- name: c\n  cluster: {server: 'ftp://x'}\ncontexts:\n- name: a\n  context: {cluster: c}\ncurrent-context: a\n",
                "must start with https://",
            ),
            (
                "clusters:\n- name: c\n  cluster: {server: 'https://x', certificate-authority-data: '!!!'}\ncontexts:\n- name: a\n  context: {cluster: c}\ncurrent-context: a\n",
                "certificate-authority-data is not base64",
            ),
            (
                "clusters:\n- name: c\n  cluster: {server: 'https://x'}\ncontexts:\n- name: a\n  context: {cluster: c, user: ghost}\ncurrent-context: a\n",
                "user \"ghost\" not found",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).resolve(None).unwrap_err().to_string();
            assert!(err.contains("/etc/kc.yaml"), "{err}");
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn malformed_yaml_and_missing_files_are_named() {
        let err = Kubeconfig::parse(Path::new("/k.yaml"), "clusters: 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/k.yaml") && err.contains("not a valid kubeconfig"),
            "{err}"
        );
        let err = Kubeconfig::read(Path::new("/nonexistent/kc.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/kc.yaml") && err.contains("no such file"),
            "{err}"
        );
        let err = parse(
            "clusters:\n- name: c\n  cluster: {server: 'https://x', certificate-authority: /nonexistent/ca}\ncontexts:\n- name: a\n  context: {cluster: c}\ncurrent-context: a\n",
        )
        .resolve(None)
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/ca"), "{err}");
    }

    #[test]
    fn lookup_order() {
        let dir = tempfile::tempdir().unwrap();
        let explicit = Path::new("/x/explicit.yaml");
        let env: OsString = "/x/first.yaml:/x/second.yaml".into();
        assert_eq!(
            Kubeconfig::locate(Some(explicit), Some(env.clone()), None).unwrap(),
            explicit
        );
        assert_eq!(
            Kubeconfig::locate(None, Some(env), None).unwrap(),
            Path::new("/x/first.yaml")
        );
        let err = Kubeconfig::locate(None, Some("".into()), Some(dir.path().into())).unwrap_err();
        assert!(
            err.to_string().contains(".skiff/kubeconfig.yaml"),
            "names where it looked: {err}"
        );
        std::fs::create_dir_all(dir.path().join(".skiff")).unwrap();
        std::fs::write(dir.path().join(".skiff/kubeconfig.yaml"), SKIFF).unwrap();
        assert_eq!(
            Kubeconfig::locate(None, None, Some(dir.path().into())).unwrap(),
            dir.path().join(".skiff/kubeconfig.yaml")
        );
    }
}
