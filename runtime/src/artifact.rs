//! The on-disk cache of precompiled artifacts: each component digest is compiled once per
//! engine configuration.
//!
//! Layout: `<root>/artifacts/<engine hash>/<digest hex>.<kind>.cwasm` and, beside it,
//! `….cwasm.sha256` holding the artifact's own digest. `<engine hash>` is the sha256 of
//! `Engine::precompile_compatibility_hash()`: an artifact is only ever offered to an engine
//! that can load it. Deserializing trusts its bytes completely, so the artifact's digest is
//! checked against the sidecar first; an artifact that does not match (corrupted, truncated,
//! tampered with) is deleted and the component compiled again. This guards against damage
//! to the cache, not against someone who can write both files: the data directory must be
//! writable by the node alone.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::content::{Digest, write_atomically};
use crate::error::{Error, Result};

/// What a cached artifact holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArtifactKind {
    Component,
    Module,
}

impl ArtifactKind {
    fn extension(self) -> &'static str {
        match self {
            ArtifactKind::Component => "component.cwasm",
            ArtifactKind::Module => "module.cwasm",
        }
    }
}

/// A loaded artifact.
pub enum Compiled {
    Component(Component),
    Module(Module),
}

/// The artifact cache of one engine.
#[derive(Clone, Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
}

/// Feeds `Hash` output into sha256, for a stable hash of the engine's settings.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        // Never called: the full digest is read with `finalize`.
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The hex sha256 of the engine's precompile compatibility hash.
pub fn engine_hash(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let digest: [u8; 32] = hasher.0.finalize().into();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl ArtifactCache {
    /// The cache for `engine` under `<root>/artifacts/`.
    pub fn new(root: impl Into<PathBuf>, engine: &Engine) -> ArtifactCache {
        ArtifactCache {
            dir: root.into().join("artifacts").join(engine_hash(engine)),
        }
    }

    fn path(&self, digest: &Digest, kind: ArtifactKind) -> PathBuf {
        self.dir
            .join(format!("{}.{}", digest.hex(), kind.extension()))
    }

    /// The artifact file of a component, whether it exists or not.
    pub fn artifact_path(&self, digest: &Digest, kind: ArtifactKind) -> PathBuf {
        self.path(digest, kind)
    }

    /// Loads the artifact for `digest`, if one is cached and intact.
    pub fn load(&self, engine: &Engine, digest: &Digest, kind: ArtifactKind) -> Option<Compiled> {
        let path = self.path(digest, kind);
        let sidecar = sidecar_path(&path);
        let bytes = std::fs::read(&path).ok()?;
        let expected = std::fs::read_to_string(&sidecar).ok();
        let actual = Digest::of(&bytes);
        if expected.as_deref().map(str::trim) != Some(actual.to_string().as_str()) {
            tracing::warn!(
                artifact = %path.display(),
                "precompiled artifact does not match its recorded digest; compiling again"
            );
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(&sidecar);
            return None;
        }
        match deserialize(engine, &bytes, kind) {
            Ok(compiled) => Some(compiled),
            Err(e) => {
                tracing::warn!(artifact = %path.display(), error = %e, "cannot load artifact");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a freshly compiled artifact (best effort: a failed write only costs a
    /// compile later).
    pub fn store(&self, digest: &Digest, compiled: &Compiled) -> Result<()> {
        let (kind, bytes) = match compiled {
            Compiled::Component(c) => (ArtifactKind::Component, c.serialize()),
            Compiled::Module(m) => (ArtifactKind::Module, m.serialize()),
        };
        let bytes = bytes.map_err(|e| Error::Wasmtime(format!("serialize: {e:#}")))?;
        let path = self.path(digest, kind);
        // The sidecar goes last: an artifact without one is never loaded.
        write_atomically(&path, &bytes)?;
        write_atomically(
            &sidecar_path(&path),
            Digest::of(&bytes).to_string().as_bytes(),
        )
    }
}

fn sidecar_path(artifact: &std::path::Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// The one place Skiff runs unsafe code.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, bytes: &[u8], kind: ArtifactKind) -> wasmtime::Result<Compiled> {
    // SAFETY: wasmtime requires that the bytes were produced by `serialize` of a
    // compatible engine and not modified since. The caller checked their sha256 against
    // the digest recorded when this node serialized them, and the cache directory is
    // keyed by this engine's compatibility hash (wasmtime re-checks the engine settings
    // in the artifact's header as well).
    unsafe {
        Ok(match kind {
            ArtifactKind::Component => Compiled::Component(Component::deserialize(engine, bytes)?),
            ArtifactKind::Module => Compiled::Module(Module::deserialize(engine, bytes)?),
        })
    }
}
