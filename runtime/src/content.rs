//! Where components come from: image references and the node's content-addressed store.
//!
//! An image is `file:///abs/path`, `sha256:<hex>` (already in the store), `https://…` or
//! `oci://…`. Whatever is fetched is kept under `<root>/blobs/sha256/<hex>`, so a restart
//! or a second replica finds it by digest. Blobs are written to a temporary file and
//! renamed into place: a crash never leaves a partial blob under a digest.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A sha256 content digest, printed as `sha256:<64 hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The 64 lowercase hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        use fmt::Write as _;
        let mut s = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Option<Digest> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        s.strip_prefix("sha256:")
            .and_then(Digest::from_hex)
            .ok_or_else(|| Error::InvalidImage {
                image: s.to_string(),
                reason: "a digest is `sha256:` followed by 64 hex digits".into(),
            })
    }
}

/// A parsed `containers[].image`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// `file:///abs/path`: a file on the node.
    File(PathBuf),
    /// `sha256:<hex>`: a blob already in the node's content store.
    Digest(Digest),
    /// `https://…`: fetched over HTTPS (not implemented yet).
    Https(String),
    /// `oci://registry/repo:tag`: a Wasm OCI artifact (a later issue).
    Oci(String),
}

impl FromStr for ImageRef {
    type Err = Error;
    fn from_str(image: &str) -> Result<ImageRef> {
        let invalid = |reason: &str| Error::InvalidImage {
            image: image.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = image.strip_prefix("file://") {
            let path = Path::new(path);
            if !path.is_absolute() {
                return Err(invalid(
                    "a file:// image needs an absolute path (file:///…)",
                ));
            }
            Ok(ImageRef::File(path.to_path_buf()))
        } else if image.starts_with("sha256:") {
            Ok(ImageRef::Digest(image.parse()?))
        } else if image.starts_with("https://") {
            Ok(ImageRef::Https(image.to_string()))
        } else if image.starts_with("oci://") {
            Ok(ImageRef::Oci(image.to_string()))
        } else {
            Err(invalid(
                "expected file:///path, sha256:<digest>, https://… or oci://…",
            ))
        }
    }
}

/// The node's content-addressed blob store.
#[derive(Clone, Debug)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// A store under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> ContentStore {
        ContentStore { root: root.into() }
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// Whether the store holds `digest`.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Stores `bytes` under their digest.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let path = self.blob_path(&digest);
        if !path.is_file() {
            write_atomically(&path, bytes)?;
        }
        Ok(digest)
    }

    /// Reads a blob, verifying its digest (a corrupted blob is removed and reported as
    /// missing, so the next fetch replaces it).
    pub fn get(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotInStore {
                    digest: digest.to_string(),
                });
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            let _ = std::fs::remove_file(&path);
            return Err(Error::DigestMismatch {
                image: digest.to_string(),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Fetches an image into the store and returns its digest and bytes.
    pub fn fetch(&self, image: &ImageRef) -> Result<(Digest, Vec<u8>)> {
        match image {
            ImageRef::File(path) => {
                let bytes = std::fs::read(path).map_err(|source| Error::Fetch {
                    image: format!("file://{}", path.display()),
                    source,
                })?;
                let digest = self.put(&bytes)?;
                Ok((digest, bytes))
            }
            ImageRef::Digest(digest) => Ok((*digest, self.get(digest)?)),
            ImageRef::Https(url) => Err(Error::Unsupported {
                image: url.clone(),
                reason: "https:// images are not supported yet: copy the component to the \
                         node and use file:///… or sha256:<digest>"
                    .into(),
            }),
            ImageRef::Oci(reference) => Err(Error::Unsupported {
                image: reference.clone(),
                reason: "OCI registries are not supported yet".into(),
            }),
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::io(path, std::io::Error::other("no parent directory")))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        rand_suffix(path, bytes.len())
    ));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// A per-call suffix so that concurrent writers never share a temporary file.
fn rand_suffix(path: &Path, len: usize) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    format!("{}-{len}-{n}", name.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs() {
        assert_eq!(
            "file:///tmp/a.wasm".parse::<ImageRef>().ok(),
            Some(ImageRef::File("/tmp/a.wasm".into()))
        );
        assert!("file://relative.wasm".parse::<ImageRef>().is_err());
        assert!("sha256:abc".parse::<ImageRef>().is_err());
        let hex = "ab".repeat(32);
        assert!(matches!(
            format!("sha256:{hex}").parse::<ImageRef>(),
            Ok(ImageRef::Digest(d)) if d.hex() == hex
        ));
        assert!(matches!(
            "oci://ghcr.io/x/y:1".parse::<ImageRef>(),
            Ok(ImageRef::Oci(_))
        ));
        assert!("nginx:latest".parse::<ImageRef>().is_err());
    }

    #[test]
    fn digest_round_trip() {
        let d = Digest::of(b"hello");
        assert_eq!(
            d.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(d.to_string().parse::<Digest>().ok(), Some(d));
    }
}
