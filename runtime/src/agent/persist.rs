//! What the agent keeps on disk about its pods, for edge autonomy: each pod's last known
//! object and address, its volumes and its logs, in one directory per pod uid.
//!
//! ```text
//! <data_dir>/pods/<uid>/pod.json         the pod as last seen (spec, metadata, status)
//! <data_dir>/pods/<uid>/pod-ip           its virtual address
//! <data_dir>/pods/<uid>/volumes/<name>/  emptyDir, configMap and secret volumes
//! <data_dir>/pods/<uid>/logs/<container>.log[.1]
//! ```
//!
//! At start the agent runs every pod found here before the API answers; a pod leaves
//! only when its worker tore it down (the pod was deleted, or left the node).
//! `pod.json` and `pod-ip` are written to a temporary file and renamed into place, so a
//! crash never leaves half a file.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::env::{Data, Sources};
use super::error::{AgentError, AgentResult};

/// Whether `s` is safe as one path segment (uids, container and volume names).
pub fn is_safe_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The directory of one pod.
#[derive(Clone, Debug)]
pub struct PodDir {
    root: PathBuf,
}

impl PodDir {
    /// `None` when the uid cannot be a directory name.
    pub fn new(data_dir: &Path, uid: &str) -> Option<PodDir> {
        is_safe_segment(uid).then(|| PodDir {
            root: pods_dir(data_dir).join(uid),
        })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The current log file of a container.
    pub fn log_file(&self, container: &str) -> PathBuf {
        self.root.join("logs").join(format!("{container}.log"))
    }

    /// A volume's directory.
    pub fn volume(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    /// Creates the directory.
    pub fn create(&self) -> AgentResult<()> {
        std::fs::create_dir_all(&self.root).map_err(|e| AgentError::io(&self.root, e))
    }

    /// Saves the pod object.
    pub fn save_pod(&self, pod: &Value) -> AgentResult<()> {
        let bytes = serde_json::to_vec(pod)
            .map_err(|e| AgentError::Invalid(format!("encoding the pod: {e}")))?;
        write_atomic(&self.root.join("pod.json"), &bytes)
    }

    /// The saved pod object.
    pub fn load_pod(&self) -> AgentResult<Value> {
        let path = self.root.join("pod.json");
        let bytes = std::fs::read(&path).map_err(|e| AgentError::io(&path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| AgentError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Saves the pod's address.
    pub fn save_ip(&self, ip: IpAddr) -> AgentResult<()> {
        write_atomic(&self.root.join("pod-ip"), ip.to_string().as_bytes())
    }

    /// The saved address, if any.
    pub fn load_ip(&self) -> Option<IpAddr> {
        std::fs::read_to_string(self.root.join("pod-ip"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Saves what a container's ConfigMaps and Secrets held when last read, so that the
    /// pod can start again after a node reboot while the API is unreachable (edge
    /// autonomy). Readable by the agent's user only: it may hold Secret values, as the
    /// pod's secret volumes do.
    pub fn save_sources(&self, container: &str, sources: &Sources) -> AgentResult<()> {
        if !is_safe_segment(container) {
            return Err(AgentError::Invalid(format!("container name {container:?}")));
        }
        let encode = |m: &BTreeMap<String, Option<Data>>| -> Value {
            m.iter()
                .map(|(name, data)| {
                    let data = data.as_ref().map(|d| {
                        d.iter()
                            .map(|(k, v)| (k.clone(), Value::String(BASE64.encode(v))))
                            .collect::<serde_json::Map<_, _>>()
                    });
                    (name.clone(), data.map(Value::Object).unwrap_or(Value::Null))
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let doc = serde_json::json!({
            "configMaps": encode(&sources.config_maps),
            "secrets": encode(&sources.secrets),
        });
        let path = self.root.join("sources").join(format!("{container}.json"));
        write_atomic(&path, doc.to_string().as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| AgentError::io(&path, e))?;
        }
        Ok(())
    }

    /// What [`PodDir::save_sources`] saved for a container, if anything readable.
    pub fn load_sources(&self, container: &str) -> Option<Sources> {
        if !is_safe_segment(container) {
            return None;
        }
        let path = self.root.join("sources").join(format!("{container}.json"));
        let doc: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        let decode = |v: Option<&Value>| -> Option<BTreeMap<String, Option<Data>>> {
            v?.as_object()?
                .iter()
                .map(|(name, data)| {
                    let data = match data {
                        Value::Null => None,
                        Value::Object(m) => Some(
                            m.iter()
                                .map(|(k, v)| Some((k.clone(), BASE64.decode(v.as_str()?).ok()?)))
                                .collect::<Option<Data>>()?,
                        ),
                        _ => return None,
                    };
                    Some((name.clone(), data))
                })
                .collect()
        };
        Some(Sources {
            config_maps: decode(doc.get("configMaps"))?,
            secrets: decode(doc.get("secrets"))?,
        })
    }

    /// Removes everything of the pod. Idempotent.
    pub fn remove(&self) -> AgentResult<()> {
        match std::fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(AgentError::io(&self.root, e)),
        }
    }
}

/// `<data_dir>/pods`.
pub fn pods_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pods")
}

/// Every saved pod (uid directory and object). Unreadable entries are skipped with a
/// warning: one corrupt file must not keep the other pods from running.
pub fn load_all(data_dir: &Path) -> Vec<(String, Value)> {
    let dir = pods_dir(data_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read saved pods");
            }
            return Vec::new();
        }
    };
    let mut pods = Vec::new();
    for entry in entries.flatten() {
        let Some(uid) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(pod_dir) = PodDir::new(data_dir, &uid) else {
            continue;
        };
        if !pod_dir.root.join("pod.json").is_file() {
            continue;
        }
        match pod_dir.load_pod() {
            Ok(pod) => pods.push((uid, pod)),
            Err(e) => tracing::warn!(error = %e, "skipping a saved pod"),
        }
    }
    pods.sort_by(|a, b| a.0.cmp(&b.0));
    pods
}

fn write_atomic(path: &Path, bytes: &[u8]) -> AgentResult<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| AgentError::io(parent, e))?;
    }
    let tmp = path.with_extension("tmp");
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    result.map_err(|e| AgentError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        for (s, ok) in [
            ("0f6c8a2e-1b7d-4e0a-9d6b-3c1f2a4b5c6d", true),
            ("web", true),
            ("a.b_c", true),
            ("", false),
            ("..", false),
            (".", false),
            ("a/b", false),
            ("a\\b", false),
        ] {
            assert_eq!(is_safe_segment(s), ok, "{s:?}");
        }
    }

    #[test]
    fn saves_loads_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let pod = serde_json::json!({"metadata": {"name": "a", "uid": "u1"}});
        let p = PodDir::new(dir.path(), "u1").unwrap();
        p.create().unwrap();
        p.save_pod(&pod).unwrap();
        p.save_ip("10.42.0.3".parse().unwrap()).unwrap();
        std::fs::create_dir_all(dir.path().join("pods/broken")).unwrap();
        std::fs::write(dir.path().join("pods/broken/pod.json"), b"{not json").unwrap();
        std::fs::create_dir_all(dir.path().join("pods/empty")).unwrap();
        let all = load_all(dir.path());
        assert_eq!(all, vec![("u1".to_string(), pod)]);
        assert_eq!(p.load_ip(), Some("10.42.0.3".parse().unwrap()));
        p.remove().unwrap();
        p.remove().unwrap();
        assert!(load_all(dir.path()).is_empty());
        assert!(PodDir::new(dir.path(), "../x").is_none());
    }

    #[test]
    fn sources_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = PodDir::new(dir.path(), "u1").unwrap();
        assert_eq!(p.load_sources("main"), None);
        let mut sources = Sources::default();
        sources.config_maps.insert(
            "cfg".into(),
            Some(Data::from([("GREETING".to_string(), b"hi".to_vec())])),
        );
        sources.config_maps.insert("missing".into(), None);
        sources.secrets.insert(
            "s".into(),
            Some(Data::from([("token".to_string(), vec![0, 159, 255])])),
        );
        p.save_sources("main", &sources).unwrap();
        assert_eq!(p.load_sources("main"), Some(sources));
        assert!(p.save_sources("../x", &Sources::default()).is_err());
        std::fs::write(dir.path().join("pods/u1/sources/bad.json"), b"{").unwrap();
        assert_eq!(p.load_sources("bad"), None);
    }
}
