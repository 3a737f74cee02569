//! Bearer-token authentication and the credentials a server writes at first start:
//! `DIR/kubeconfig.yaml` (server URL + admin token) and `DIR/node-token` (what
//! `skiff node --token` takes). Later starts reuse them.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Who a request is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    Admin,
    Node,
}

/// The tokens the server accepts.
#[derive(Clone)]
pub struct Tokens {
    admin: String,
    node: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { .. }")
    }
}

impl Tokens {
    pub fn new(admin: String, node: String) -> Self {
        Self { admin, node }
    }

    pub fn admin(&self) -> &str {
        &self.admin
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Checks an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Option<Identity> {
        let token = header?.strip_prefix("Bearer ")?.trim();
        if token.is_empty() {
            return None;
        }
        if constant_time_eq(token.as_bytes(), self.admin.as_bytes()) {
            Some(Identity::Admin)
        } else if constant_time_eq(token.as_bytes(), self.node.as_bytes()) {
            Some(Identity::Node)
        } else {
            None
        }
    }

    /// Reads the tokens from `dir`, creating them (and the kubeconfig pointing at
    /// `server_url`) on first start. The kubeconfig's server URL is rewritten when the
    /// listen address changed; the tokens never change.
    pub fn load_or_create(dir: &Path, server_url: &str, ca_pem: Option<&str>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io(format!("create {}", dir.display()), e))?;
        let admin_path = dir.join("admin-token");
        let node_path = dir.join("node-token");
        let admin = read_or_create(&admin_path)?;
        let node = read_or_create(&node_path)?;
        let kubeconfig = kubeconfig_yaml(server_url, &admin, ca_pem);
        let kc_path = dir.join("kubeconfig.yaml");
        let current = std::fs::read_to_string(&kc_path).ok();
        if current.as_deref() != Some(kubeconfig.as_str()) {
            write_private(&kc_path, &kubeconfig)?;
        }
        Ok(Self { admin, node })
    }
}

/// The kubeconfig for the admin: one cluster, one user, one context, all named `skiff`.
pub fn kubeconfig_yaml(server_url: &str, token: &str, ca_pem: Option<&str>) -> String {
    use base64::Engine as _;
    let ca = ca_pem
        .map(|pem| {
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n{ca}    server: {server_url}\nusers:\n- name: skiff-admin\n  user:\n    token: {token}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: skiff-admin\n    namespace: default\ncurrent-context: skiff\n"
    )
}

pub fn kubeconfig_path(dir: &Path) -> PathBuf {
    dir.join("kubeconfig.yaml")
}

fn read_or_create(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Ok(_) => Err(Error::Config(format!(
            "{} is empty; delete it to generate a new token",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = new_token();
            write_private(path, &format!("{token}\n"))?;
            Ok(token)
        }
        Err(e) => Err(io(format!("read {}", path.display()), e)),
    }
}

pub(crate) fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(&tmp)
        .map_err(|e| io(format!("write {}", tmp.display()), e))?;
    f.write_all(contents.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(format!("rename to {}", path.display()), e))
}

fn io(context: String, source: std::io::Error) -> Error {
    Error::Io { context, source }
}

/// 32 random bytes, hex.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_persist_and_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let t1 = Tokens::load_or_create(dir.path(), "http://127.0.0.1:1", None).unwrap();
        let t2 = Tokens::load_or_create(dir.path(), "https://127.0.0.1:2", Some("PEM")).unwrap();
        assert_eq!(t1.admin(), t2.admin());
        assert_eq!(t1.node(), t2.node());
        let kc = std::fs::read_to_string(dir.path().join("kubeconfig.yaml")).unwrap();
        assert!(kc.contains("https://127.0.0.1:2"));
        assert!(kc.contains("certificate-authority-data: UEVN"));
        assert!(kc.contains(t1.admin()));
        let admin = format!("Bearer {}", t1.admin());
        assert_eq!(t1.authenticate(Some(&admin)), Some(Identity::Admin));
        let node = format!("Bearer {}", t1.node());
        assert_eq!(t1.authenticate(Some(&node)), Some(Identity::Node));
        assert_eq!(t1.authenticate(Some("Bearer nope")), None);
        assert_eq!(t1.authenticate(Some("Basic abc")), None);
        assert_eq!(t1.authenticate(None), None);
    }
}
