//! Where components come from: image references and the node's content-addressed store.
//!
//! An image is `file:///abs/path`, `sha256:<hex>` (already in the store), `https://…` or
//! `oci://…`. Whatever is fetched is kept under `<root>/blobs/sha256/<hex>`, so a restart
//! or a second replica finds it by digest. Blobs are written to a temporary file and
//! renamed into place: a crash never leaves a partial blob under a digest.
//!
//! # `https://` images
//!
//! Downloaded with a GET over HTTPS (HTTP/1.1 or HTTP/2, hyper + rustls), never over plain
//! HTTP: an `http://` image is refused, and so is a redirect to one. Servers are verified
//! against Mozilla's roots compiled into the binary (`webpki-roots`; the node's own trust
//! store is not read) and the extra CAs of [`FetchConfig::extra_ca_pem`]. At most
//! [`FetchConfig::max_redirects`] redirects are followed; [`FetchConfig::connect_timeout`]
//! bounds each TCP connect, [`FetchConfig::timeout`] the whole download, and
//! [`FetchConfig::max_size`] the body, counted as it streams in. Any failure is
//! [`Error::Fetch`] (`ComponentFetchFailed`) naming the URL and the cause: the HTTP status,
//! the TLS error, the timeout, the size.
//!
//! **Pinning a digest.** The one way is a URL fragment:
//! `https://host/app.wasm#sha256=<64 hex digits>`. The fragment is never sent to the server;
//! the downloaded bytes must have that digest, or the fetch fails with
//! [`Error::DigestMismatch`] and nothing is stored. Without a pin, the component is stored
//! by the digest computed from what was downloaded.
//!
//! **Downloaded once.** After a download, the URL's digest is remembered in
//! `<root>/index/https/<sha256 of the URL>` (a file holding the digest, then the URL), so a
//! restart, a second replica or another pod on the node finds the blob without a request;
//! concurrent fetches of one URL in a process make one download. A pinned image whose digest
//! is already in the store makes no request at all. An unpinned URL is thus taken as
//! immutable, like a tag pulled with `imagePullPolicy: IfNotPresent`: to pick up new content
//! at the same address, change the image — pin the new digest (`#sha256=…`), or name a new
//! URL (a versioned path, or a `?v=2` query: the index is keyed by the whole URL) — or delete
//! the URL's index file on the node.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::uri::Scheme;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
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
    /// `https://host/path[#sha256=<hex>]`: downloaded over HTTPS (see the module's doc).
    Https {
        /// The URL without its fragment: what is requested, and the key of the index.
        url: String,
        /// The digest the bytes must have, from a `#sha256=<hex>` fragment.
        pin: Option<Digest>,
    },
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
            parse_https(image)
        } else if image.starts_with("http://") {
            Err(invalid(
                "plain http:// is refused: https is required (components are fetched over \
                 https:// only, so that the node knows whom it got them from)",
            ))
        } else if image.starts_with("oci://") {
            Ok(ImageRef::Oci(image.to_string()))
        } else {
            Err(invalid(
                "expected file:///path, sha256:<digest>, https://… or oci://…",
            ))
        }
    }
}

/// `https://host[:port]/path[?query][#sha256=<hex>]`.
fn parse_https(image: &str) -> Result<ImageRef> {
    let invalid = |reason: String| Error::InvalidImage {
        image: image.to_string(),
        reason,
    };
    let (url, fragment) = match image.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (image, None),
    };
    let pin = match fragment {
        None => None,
        Some(fragment) => Some(
            fragment
                .strip_prefix("sha256=")
                .and_then(Digest::from_hex)
                .ok_or_else(|| {
                    invalid(
                        "the one fragment an https:// image may have is #sha256=<64 hex \
                         digits>, the digest its bytes must have"
                            .into(),
                    )
                })?,
        ),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e| invalid(format!("not a valid URL: {e}")))?;
    let authority = uri
        .authority()
        .ok_or_else(|| invalid("the URL names no host".into()))?;
    if authority.as_str().contains('@') {
        return Err(invalid(
            "credentials in an image URL are not supported (they would show in the pod's \
             status)"
                .into(),
        ));
    }
    if authority.host().is_empty() {
        return Err(invalid("the URL names no host".into()));
    }
    Ok(ImageRef::Https {
        url: url.to_string(),
        pin,
    })
}

/// How `https://` images are downloaded. [`Default`] is what a node uses unless told
/// otherwise.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// The longest a TCP connect may take (each hop of a redirect). Default 30 s.
    pub connect_timeout: Duration,
    /// The longest a whole download may take: connecting, TLS, redirects and the body.
    /// Default 5 minutes.
    pub timeout: Duration,
    /// The largest component accepted, in bytes: refused from its `Content-Length`, or as
    /// soon as the streamed body grows past it. Default 256 MiB.
    pub max_size: u64,
    /// How many redirects are followed (301, 302, 303, 307, 308). Default 5.
    pub max_redirects: u32,
    /// PEM `CERTIFICATE`s of CAs to trust besides Mozilla's roots (a private server's CA,
    /// a test CA); any number, concatenated. Default none.
    pub extra_ca_pem: String,
}

impl Default for FetchConfig {
    fn default() -> FetchConfig {
        FetchConfig {
            connect_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(5 * 60),
            max_size: 256 << 20,
            max_redirects: 5,
            extra_ca_pem: String::new(),
        }
    }
}

/// The node's content-addressed blob store.
#[derive(Clone, Debug)]
pub struct ContentStore {
    root: PathBuf,
    fetcher: Arc<Fetcher>,
}

impl ContentStore {
    /// A store under `root` (created on first write), fetching with the default
    /// [`FetchConfig`].
    pub fn new(root: impl Into<PathBuf>) -> ContentStore {
        ContentStore {
            root: root.into(),
            fetcher: Arc::new(Fetcher::new(FetchConfig::default(), mozilla_roots())),
        }
    }

    /// This store, downloading `https://` images as `config` says. Fails if
    /// [`FetchConfig::extra_ca_pem`] holds anything but usable CA certificates.
    pub fn with_fetch_config(self, config: FetchConfig) -> Result<ContentStore> {
        let mut roots = mozilla_roots();
        let invalid = |reason: String| Error::Config(format!("extra CA certificates: {reason}"));
        let mut extra = 0;
        for cert in CertificateDer::pem_slice_iter(config.extra_ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| invalid(e.to_string()))?;
            extra += 1;
            roots
                .add(cert)
                .map_err(|e| invalid(format!("certificate {extra}: {e}")))?;
        }
        if extra == 0 && !config.extra_ca_pem.trim().is_empty() {
            return Err(invalid("no PEM CERTIFICATE found".into()));
        }
        Ok(ContentStore {
            root: self.root,
            fetcher: Arc::new(Fetcher::new(config, roots)),
        })
    }

    /// How this store downloads `https://` images.
    pub fn fetch_config(&self) -> &FetchConfig {
        &self.fetcher.config
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
        self.store_as(&digest, bytes)?;
        Ok(digest)
    }

    /// Stores `bytes` whose digest the caller computed.
    fn store_as(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let path = self.blob_path(digest);
        if !path.is_file() {
            write_atomically(&path, bytes)?;
        }
        Ok(())
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

    /// Fetches an image into the store and returns its digest and bytes. Disk work runs on
    /// the blocking pool and downloads are async: no runtime worker is ever blocked.
    pub async fn fetch(&self, image: &ImageRef) -> Result<(Digest, Vec<u8>)> {
        match image {
            ImageRef::File(path) => {
                let path = path.clone();
                self.blocking(move |store| {
                    let bytes = std::fs::read(&path).map_err(|source| Error::Fetch {
                        image: format!("file://{}", path.display()),
                        source,
                    })?;
                    let digest = store.put(&bytes)?;
                    Ok((digest, bytes))
                })
                .await
            }
            ImageRef::Digest(digest) => {
                let digest = *digest;
                self.blocking(move |store| Ok((digest, store.get(&digest)?)))
                    .await
            }
            ImageRef::Https { url, pin } => self.fetch_https(url, *pin).await,
            ImageRef::Oci(reference) => Err(Error::Unsupported {
                image: reference.clone(),
                reason: "OCI registries are not supported yet".into(),
            }),
        }
    }

    /// Runs `work` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ContentStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| {
                Error::io(
                    &self.root,
                    std::io::Error::other(format!("content store task: {e}")),
                )
            })?
    }

    async fn fetch_https(&self, url: &str, pin: Option<Digest>) -> Result<(Digest, Vec<u8>)> {
        let cached = |url: &str| {
            let url = url.to_string();
            self.blocking(move |store| store.cached(&url, pin))
        };
        if let Some(hit) = cached(url).await? {
            return Ok(hit);
        }
        // One download of a URL at a time: who waited finds what the first one stored.
        let _in_flight = self.fetcher.in_flight(url).await;
        if let Some(hit) = cached(url).await? {
            return Ok(hit);
        }
        let started = std::time::Instant::now();
        let (digest, bytes) = self
            .fetcher
            .download(url)
            .await
            .map_err(|source| Error::Fetch {
                image: url.to_string(),
                source,
            })?;
        if let Some(expected) = pin
            && expected != digest
        {
            return Err(Error::DigestMismatch {
                image: format!("{url}#sha256={}", expected.hex()),
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        tracing::info!(
            %url,
            %digest,
            bytes = bytes.len(),
            elapsed = ?started.elapsed(),
            "downloaded"
        );
        let url = url.to_string();
        self.blocking(move |store| {
            store.store_as(&digest, &bytes)?;
            if let Err(e) = store.remember(&url, digest) {
                tracing::warn!(
                    %url,
                    %digest,
                    error = %e,
                    "cannot index the download: it will be downloaded again"
                );
            }
            Ok((digest, bytes))
        })
        .await
    }

    /// The blob an `https://` image names if the store has it: by its pin, else by the
    /// index. Blocking.
    fn cached(&self, url: &str, pin: Option<Digest>) -> Result<Option<(Digest, Vec<u8>)>> {
        let Some(digest) = pin.or_else(|| self.indexed(url)) else {
            return Ok(None);
        };
        match self.get(&digest) {
            Ok(bytes) => Ok(Some((digest, bytes))),
            // Never stored, or corrupted (and removed by `get`): download it again.
            Err(Error::NotInStore { .. } | Error::DigestMismatch { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn index_path(&self, url: &str) -> PathBuf {
        self.root
            .join("index")
            .join("https")
            .join(Digest::of(url.as_bytes()).hex())
    }

    /// The digest last downloaded from `url`, if any. Blocking.
    fn indexed(&self, url: &str) -> Option<Digest> {
        let text = std::fs::read_to_string(self.index_path(url)).ok()?;
        let mut lines = text.lines();
        let digest: Digest = lines.next()?.parse().ok()?;
        (lines.next()? == url).then_some(digest)
    }

    /// Records that `url` served `digest`. Blocking.
    fn remember(&self, url: &str, digest: Digest) -> Result<()> {
        write_atomically(
            &self.index_path(url),
            format!("{digest}\n{url}\n").as_bytes(),
        )
    }
}

fn mozilla_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

type Gate = Arc<tokio::sync::Mutex<()>>;

/// Downloads `https://` images, shared by a store's clones.
struct Fetcher {
    config: FetchConfig,
    roots: Arc<RootCertStore>,
    /// A lock per URL being downloaded.
    in_flight: Mutex<HashMap<String, Gate>>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("config", &self.config)
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

/// Holds a URL's download lock; forgets the lock when nobody else waits for it.
struct InFlight<'a> {
    fetcher: &'a Fetcher,
    url: &'a str,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.fetcher.lock_in_flight();
        if let Some(guard) = self.guard.take() {
            let gate = tokio::sync::OwnedMutexGuard::mutex(&guard).clone();
            drop(guard);
            // Clones are only made under the map's lock, held here: the map's and `gate`
            // are the last two.
            if Arc::strong_count(&gate) == 2 {
                in_flight.remove(self.url);
            }
        }
    }
}

impl Fetcher {
    fn new(config: FetchConfig, roots: RootCertStore) -> Fetcher {
        Fetcher {
            config,
            roots: Arc::new(roots),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<String, Gate>> {
        match self.in_flight.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    async fn in_flight<'a>(&'a self, url: &'a str) -> InFlight<'a> {
        let gate = self
            .lock_in_flight()
            .entry(url.to_string())
            .or_default()
            .clone();
        let guard = gate.lock_owned().await;
        InFlight {
            fetcher: self,
            url,
            guard: Some(guard),
        }
    }

    /// Downloads `url` within the total timeout; returns the digest and bytes.
    async fn download(&self, url: &str) -> std::io::Result<(Digest, Vec<u8>)> {
        let limit = self.config.timeout;
        tokio::time::timeout(limit, self.download_inner(url))
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("timed out after {limit:?} (the content store's download timeout)"),
                ))
            })
    }

    async fn download_inner(&self, url: &str) -> std::io::Result<(Digest, Vec<u8>)> {
        let other = std::io::Error::other;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| other(format!("TLS configuration: {e}")))?
        .with_root_certificates(self.roots.clone())
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(self.config.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);

        let mut uri: Uri = url.parse().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("invalid URL: {e}"),
            )
        })?;
        let mut redirects = 0;
        loop {
            // Where an error happened, when it is not the image's URL.
            let at = if redirects == 0 {
                String::new()
            } else {
                format!(" from {uri} (after {redirects} redirect(s))")
            };
            let request = http::Request::get(uri.clone())
                .header(
                    http::header::USER_AGENT,
                    concat!("skiff/", env!("CARGO_PKG_VERSION")),
                )
                .header(http::header::ACCEPT, "application/wasm, */*;q=0.5")
                .body(Empty::new())
                .map_err(|e| other(format!("building the request{at}: {e}")))?;
            let response = client
                .request(request)
                .await
                .map_err(|e| client_error(&e, &at))?;
            let status = response.status();
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        other(format!(
                            "HTTP {status}{at} without a usable Location header"
                        ))
                    })?;
                if redirects >= self.config.max_redirects {
                    return Err(other(format!(
                        "too many redirects: more than {}{at}",
                        self.config.max_redirects
                    )));
                }
                let next = resolve(&uri, location).ok_or_else(|| {
                    other(format!(
                        "HTTP {status}{at} redirects to an invalid location {location:?}"
                    ))
                })?;
                if next.scheme() != Some(&Scheme::HTTPS) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!(
                            "redirected{at} to {next}: refused, https is required for \
                             components"
                        ),
                    ));
                }
                uri = next;
                redirects += 1;
                continue;
            }
            if !status.is_success() {
                return Err(other(format!("HTTP {status}{at}")));
            }
            return self.read_body(response, &at).await;
        }
    }

    /// Streams the body in, hashing as it comes, refusing it past `max_size`.
    async fn read_body(
        &self,
        response: http::Response<hyper::body::Incoming>,
        at: &str,
    ) -> std::io::Result<(Digest, Vec<u8>)> {
        let max = self.config.max_size;
        let too_large = |what: String| {
            std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!(
                    "the component{at} {what}, more than the content store's limit of {max} \
                     bytes (max_size)"
                ),
            )
        };
        let announced = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(length) = announced
            && length > max
        {
            return Err(too_large(format!("is {length} bytes")));
        }
        // Trust the announced length for no more than a modest first allocation.
        let capacity = announced.unwrap_or(0).min(max).min(16 << 20);
        let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        let mut hasher = Sha256::new();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                std::io::Error::other(format!("reading the body{at}: {}", error_chain(&e)))
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let size = (bytes.len() as u64).saturating_add(data.len() as u64);
            if size > max {
                return Err(too_large(format!("grew to {size} bytes")));
            }
            hasher.update(&data);
            bytes.extend_from_slice(&data);
        }
        Ok((Digest(hasher.finalize().into()), bytes))
    }
}

/// An error of the HTTP client as a fetch failure: TLS, connect or request, with every cause.
fn client_error(e: &hyper_util::client::legacy::Error, at: &str) -> std::io::Error {
    let tls = any_cause(e, &|err| err.is::<rustls::Error>());
    let timed_out = any_cause(e, &|err| {
        err.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    });
    let (kind, what) = if tls {
        (std::io::ErrorKind::InvalidData, "TLS error")
    } else if timed_out {
        (std::io::ErrorKind::TimedOut, "timed out")
    } else if e.is_connect() {
        (std::io::ErrorKind::ConnectionRefused, "cannot connect")
    } else {
        (std::io::ErrorKind::Other, "request failed")
    };
    // The top level only says "client error (Connect)": its causes say what happened.
    let cause = match e.source() {
        Some(cause) => error_chain(cause),
        None => e.to_string(),
    };
    std::io::Error::new(kind, format!("{what}{at}: {cause}"))
}

/// Whether `e` or any of its causes is `wanted`. An `io::Error` wrapping another error hides
/// it from `source()` (it is its Display): that one is looked into too.
fn any_cause(
    e: &(dyn StdError + 'static),
    wanted: &dyn Fn(&(dyn StdError + 'static)) -> bool,
) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if wanted(err) {
            return true;
        }
        let wrapped = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if let Some(inner) = wrapped
            && any_cause(inner, wanted)
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// `error: cause: cause…`, skipping a cause its parent's message already shows.
fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        let message = err.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = err.source();
    }
    text
}

/// Where a redirect's `Location` points, from the URL that answered it (RFC 3986 § 5.2).
fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    let location = location.split('#').next().unwrap_or_default().trim();
    if location.is_empty() {
        return None;
    }
    let absolute = location.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    });
    if absolute {
        return location.parse().ok();
    }
    let scheme = base.scheme()?.clone();
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    let path_and_query = if location.starts_with('/') {
        location.to_string()
    } else if location.starts_with('?') {
        format!("{}{location}", base.path())
    } else {
        let path = base.path();
        let dir = path.rfind('/').and_then(|i| path.get(..=i)).unwrap_or("/");
        format!("{dir}{location}")
    };
    Uri::builder()
        .scheme(scheme)
        .authority(base.authority()?.clone())
        .path_and_query(remove_dot_segments(&path_and_query))
        .build()
        .ok()
}

/// Removes the `.` and `..` segments of an absolute path, keeping its query.
fn remove_dot_segments(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut out: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
        if last && matches!(*segment, "." | "..") {
            out.push("");
        }
    }
    let mut result = format!("/{}", out.join("/"));
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
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
    fn https_image_refs() {
        assert_eq!(
            "https://example.com/app.wasm?v=2".parse::<ImageRef>().ok(),
            Some(ImageRef::Https {
                url: "https://example.com/app.wasm?v=2".into(),
                pin: None
            })
        );
        let hex = "AB".repeat(32);
        assert_eq!(
            format!("https://example.com:8443/app.wasm#sha256={hex}")
                .parse::<ImageRef>()
                .ok(),
            Some(ImageRef::Https {
                url: "https://example.com:8443/app.wasm".into(),
                pin: Digest::from_hex(&hex)
            })
        );
        let reason = |image: &str| match image.parse::<ImageRef>() {
            Err(e @ Error::InvalidImage { .. }) => e.to_string(),
            other => panic!("{image}: {other:?}"),
        };
        assert!(reason("http://example.com/app.wasm").contains("https is required"));
        assert!(reason("https://example.com/app.wasm#v1").contains("#sha256="));
        assert!(reason("https://example.com/app.wasm#sha256=abc").contains("#sha256="));
        assert!(reason("https://user:pw@example.com/app.wasm").contains("credentials"));
        assert!(reason("https:///app.wasm").contains("URL"));
    }

    #[test]
    fn redirect_locations() {
        let base: Uri = "https://a.example/x/y/app.wasm?q=1".parse().unwrap();
        let at = |location: &str| resolve(&base, location).map(|u| u.to_string());
        let some = |s: &str| Some(s.to_string());
        assert_eq!(at("https://b.example/z"), some("https://b.example/z"));
        assert_eq!(at("http://b.example/z"), some("http://b.example/z"));
        assert_eq!(at("//b.example/z"), some("https://b.example/z"));
        assert_eq!(at("/z?w=1#frag"), some("https://a.example/z?w=1"));
        assert_eq!(at("other.wasm"), some("https://a.example/x/y/other.wasm"));
        assert_eq!(at("../other.wasm"), some("https://a.example/x/other.wasm"));
        assert_eq!(at("./.."), some("https://a.example/x/"));
        assert_eq!(at("../../../.."), some("https://a.example/"));
        assert_eq!(at("?r=2"), some("https://a.example/x/y/app.wasm?r=2"));
        assert_eq!(at(""), None);
    }

    #[test]
    fn the_index_remembers_urls() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path());
        let url = "https://example.com/app.wasm";
        assert_eq!(store.cached(url, None).unwrap(), None);
        let digest = store.put(b"\0asm component").unwrap();
        store.remember(url, digest).unwrap();
        assert_eq!(store.indexed(url), Some(digest));
        assert_eq!(
            store.cached(url, None).unwrap(),
            Some((digest, b"\0asm component".to_vec()))
        );
        // A pin finds the blob without the index; an unknown pin finds nothing.
        assert!(
            store
                .cached("https://other/", Some(digest))
                .unwrap()
                .is_some()
        );
        let unknown = Digest::of(b"unknown");
        assert_eq!(store.cached(url, Some(unknown)).unwrap(), None);
        // An entry for another URL (a hash collision, a copied file) is not believed.
        std::fs::copy(store.index_path(url), store.index_path("https://x/")).unwrap();
        assert_eq!(store.indexed("https://x/"), None);
        // A blob gone missing means downloading again, not an error.
        std::fs::remove_file(store.blob_path(&digest)).unwrap();
        assert_eq!(store.cached(url, None).unwrap(), None);
    }

    #[test]
    fn extra_cas_are_checked_when_configured() {
        let store = || ContentStore::new("/nonexistent");
        let config = |pem: &str| FetchConfig {
            extra_ca_pem: pem.to_string(),
            ..FetchConfig::default()
        };
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap().pem();
        let with_ca = store().with_fetch_config(config(&ca)).unwrap();
        assert_eq!(
            with_ca.fetcher.roots.len(),
            webpki_roots::TLS_SERVER_ROOTS.len() + 1
        );
        assert!(store().with_fetch_config(config("")).is_ok());
        for bad in [
            "not a certificate".to_string(),
            key.serialize_pem(),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_string(),
        ] {
            let err = store().with_fetch_config(config(&bad)).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err}");
        }
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
