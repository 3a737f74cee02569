//! A pod's volumes on the node: a directory each under the pod's directory, preopened
//! into the containers that mount them at their `mountPath` (read-only when asked).
//!
//! - `emptyDir`: an empty directory, created when the pod starts, gone with the pod.
//! - `configMap`, `secret`: files written from the object's keys (all of them, or the
//!   `items` asked for), rewritten before each container start; always read-only.
//!
//! Other volume types are refused with a message naming them.

use std::path::{Component, Path, PathBuf};

use skiff_api::k8s_openapi::api::core::v1::{Container, KeyToPath, PodSpec, Volume};

use super::env::{Data, References, Sources};
use super::persist::{PodDir, is_safe_segment};
use crate::pod::Preopen;

/// The ConfigMaps and Secrets the volumes a container mounts are made from.
pub fn references(spec: &PodSpec, c: &Container) -> References {
    let mut refs = References::default();
    for m in c.volume_mounts.iter().flatten() {
        let Some(v) = find(spec, &m.name) else {
            continue;
        };
        if let Some(cm) = &v.config_map {
            refs.config_maps.insert(cm.name.clone());
        }
        if let Some(s) = &v.secret
            && let Some(name) = &s.secret_name
        {
            refs.secrets.insert(name.clone());
        }
    }
    refs
}

fn find<'a>(spec: &'a PodSpec, name: &str) -> Option<&'a Volume> {
    spec.volumes.iter().flatten().find(|v| v.name == name)
}

/// Whether `p` is a relative path that stays inside its base.
fn is_inside(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Creates the directories of the pod's volumes (idempotent).
pub fn create(dir: &PodDir, spec: &PodSpec) -> Result<(), String> {
    for v in spec.volumes.iter().flatten() {
        if !is_safe_segment(&v.name) {
            return Err(format!("volume name {:?} cannot be used", v.name));
        }
        if v.empty_dir.is_some() || v.config_map.is_some() || v.secret.is_some() {
            let path = dir.volume(&v.name);
            std::fs::create_dir_all(&path)
                .map_err(|e| format!("creating volume {:?}: {e}", v.name))?;
        }
    }
    Ok(())
}

fn write_files(
    path: &Path,
    data: &Data,
    items: Option<&[KeyToPath]>,
    volume: &str,
    kind: &str,
    object: &str,
) -> Result<(), String> {
    let files: Vec<(String, &Vec<u8>)> = match items {
        Some(items) => {
            let mut files = Vec::new();
            for item in items {
                match data.get(&item.key) {
                    Some(bytes) => files.push((item.path.clone(), bytes)),
                    None => {
                        let what = if kind == "configmap" {
                            "config"
                        } else {
                            "secret"
                        };
                        return Err(format!(
                            "MountVolume.SetUp failed for volume \"{volume}\" : {kind} references non-existent {what} key: {}",
                            item.key
                        ));
                    }
                }
            }
            files
        }
        None => data.iter().map(|(k, v)| (k.clone(), v)).collect(),
    };
    for (rel, bytes) in files {
        if !is_inside(&rel) {
            return Err(format!(
                "volume {volume:?}: path {rel:?} of {kind} {object:?} leaves the volume"
            ));
        }
        let file = path.join(&rel);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("volume {volume:?}: {e}"))?;
        }
        std::fs::write(&file, bytes).map_err(|e| format!("volume {volume:?}: {e}"))?;
    }
    Ok(())
}

/// The preopens of a container: one per volume mount, with configMap and secret volumes'
/// files (re)written from `sources`. An error is the waiting message.
pub fn preopens(
    dir: &PodDir,
    spec: &PodSpec,
    c: &Container,
    sources: &Sources,
) -> Result<Vec<Preopen>, String> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let v = find(spec, &m.name)
            .ok_or_else(|| format!("volume mount {:?}: no volume of that name", m.name))?;
        if !is_safe_segment(&v.name) {
            return Err(format!("volume name {:?} cannot be used", v.name));
        }
        let root = dir.volume(&v.name);
        let mut read_only = m.read_only == Some(true);
        if let Some(cm) = &v.config_map {
            read_only = true;
            match sources.config_maps.get(&cm.name).and_then(Option::as_ref) {
                Some(data) => write_files(
                    &root,
                    data,
                    cm.items.as_deref(),
                    &v.name,
                    "configmap",
                    &cm.name,
                )?,
                None if cm.optional == Some(true) => {}
                None => {
                    return Err(format!(
                        "MountVolume.SetUp failed for volume \"{}\" : configmap \"{}\" not found",
                        v.name, cm.name
                    ));
                }
            }
        } else if let Some(s) = &v.secret {
            read_only = true;
            let name = s.secret_name.clone().unwrap_or_default();
            match sources.secrets.get(&name).and_then(Option::as_ref) {
                Some(data) => {
                    write_files(&root, data, s.items.as_deref(), &v.name, "secret", &name)?
                }
                None if s.optional == Some(true) => {}
                None => {
                    return Err(format!(
                        "MountVolume.SetUp failed for volume \"{}\" : secret \"{name}\" not found",
                        v.name
                    ));
                }
            }
        } else if v.empty_dir.is_none() {
            return Err(format!(
                "volume {:?}: this node supports emptyDir, configMap and secret volumes only",
                v.name
            ));
        }
        std::fs::create_dir_all(&root).map_err(|e| format!("volume {:?}: {e}", v.name))?;
        let host: PathBuf = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            None => root,
            Some(sub) if is_inside(sub) => {
                let p = root.join(sub);
                std::fs::create_dir_all(&p).map_err(|e| format!("volume {:?}: {e}", v.name))?;
                p
            }
            Some(sub) => {
                return Err(format!(
                    "volume mount {:?}: subPath {sub:?} leaves the volume",
                    m.name
                ));
            }
        };
        out.push(Preopen {
            host,
            guest: m.mount_path.clone(),
            read_only,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_dir_config_map_and_secret_volumes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = PodDir::new(tmp.path(), "u1").unwrap();
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [{
                "name": "main",
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "cache", "mountPath": "/cache", "readOnly": true},
                    {"name": "conf", "mountPath": "/etc/conf"},
                    {"name": "creds", "mountPath": "/etc/creds"},
                    {"name": "data", "mountPath": "/sub", "subPath": "a/b"}
                ]
            }],
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "cache", "emptyDir": {}},
                {"name": "conf", "configMap": {"name": "app", "items": [{"key": "k", "path": "dir/file"}]}},
                {"name": "creds", "secret": {"secretName": "s"}}
            ]
        }))
        .unwrap();
        create(&dir, &spec).unwrap();
        let sources = Sources {
            config_maps: [(
                "app".to_string(),
                Some([("k".to_string(), b"v".to_vec())].into()),
            )]
            .into(),
            secrets: [(
                "s".to_string(),
                Some([("pw".to_string(), vec![0, 1, 2])].into()),
            )]
            .into(),
        };
        let c = &spec.containers[0];
        let refs = references(&spec, c);
        assert_eq!(refs.config_maps, ["app".to_string()].into());
        assert_eq!(refs.secrets, ["s".to_string()].into());
        let p = preopens(&dir, &spec, c, &sources).unwrap();
        let got: Vec<(&str, bool)> = p.iter().map(|p| (p.guest.as_str(), p.read_only)).collect();
        assert_eq!(
            got,
            [
                ("/data", false),
                ("/cache", true),
                ("/etc/conf", true),
                ("/etc/creds", true),
                ("/sub", false)
            ]
        );
        assert_eq!(std::fs::read(p[2].host.join("dir/file")).unwrap(), b"v");
        assert_eq!(std::fs::read(p[3].host.join("pw")).unwrap(), [0, 1, 2]);
        assert!(p[4].host.ends_with("volumes/data/a/b") && p[4].host.is_dir());

        let missing = Sources::default();
        assert_eq!(
            preopens(&dir, &spec, c, &missing),
            Err(
                "MountVolume.SetUp failed for volume \"conf\" : configmap \"app\" not found".into()
            )
        );
    }

    #[test]
    fn unsupported_volumes_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = PodDir::new(tmp.path(), "u1").unwrap();
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [{"name": "main", "volumeMounts": [{"name": "claim", "mountPath": "/d"}]}],
            "volumes": [{"name": "claim", "persistentVolumeClaim": {"claimName": "c"}}]
        }))
        .unwrap();
        let err = preopens(&dir, &spec, &spec.containers[0], &Sources::default()).unwrap_err();
        assert!(err.contains("emptyDir, configMap and secret"), "{err}");
    }
}
