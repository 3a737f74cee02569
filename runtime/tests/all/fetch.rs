//! `https://` images against a loopback HTTPS server with its own CA: downloaded once and
//! cached across restarts, pinned digests checked, redirects followed, statuses, sizes,
//! timeouts and untrusted certificates reported as `ComponentFetchFailed`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use skiff_runtime::content::{ContentStore, FetchConfig, ImageRef};
use skiff_runtime::{Digest, Error, Reason};

use crate::*;

/// A loopback HTTPS server whose certificate a test CA signed. It serves `guest` at
/// `/app.wasm` (with a `Content-Length`) and `/stream.wasm` (chunked), and records every
/// request's path.
struct Server {
    addr: SocketAddr,
    ca_pem: String,
    paths: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(guest: Vec<u8>) -> Server {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "skiff test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
                .unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();

        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
        let guest = Bytes::from(guest);
        let seen = paths.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, guest, seen) = (acceptor.clone(), guest.clone(), seen.clone());
                tokio::spawn(async move {
                    // A client that refuses the certificate ends here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (guest, seen) = (guest.clone(), seen.clone());
                        async move { Ok::<_, Infallible>(respond(req, addr, &guest, &seen).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Server {
            addr,
            ca_pem: ca.pem(),
            paths,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// How many requests were made for `path`.
    fn hits(&self, path: &str) -> usize {
        self.paths
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }

    fn requests(&self) -> usize {
        self.paths.lock().unwrap().len()
    }

    /// A store under `dir` trusting this server's CA, as `config` otherwise says.
    fn store(&self, dir: &Path, config: FetchConfig) -> ContentStore {
        ContentStore::new(dir)
            .with_fetch_config(FetchConfig {
                extra_ca_pem: self.ca_pem.clone(),
                ..config
            })
            .unwrap()
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn respond(
    req: Request<Incoming>,
    addr: SocketAddr,
    guest: &Bytes,
    seen: &std::sync::Mutex<Vec<String>>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    seen.lock().unwrap().push(path.clone());
    let redirect = |status: StatusCode, location: String| {
        Response::builder()
            .status(status)
            .header("location", location)
            .body(Empty::new().boxed())
            .unwrap()
    };
    match path.as_str() {
        "/app.wasm" => Response::new(Full::new(guest.clone()).boxed()),
        "/stream.wasm" => {
            // No Content-Length: the size is only known as the body streams in.
            let chunks: Vec<Result<Frame<Bytes>, Infallible>> = guest
                .chunks(16 << 10)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            Response::new(StreamBody::new(futures::stream::iter(chunks)).boxed())
        }
        // A relative then an absolute redirect.
        "/redirect" => redirect(StatusCode::FOUND, "hop/../hop".into()),
        "/hop" => redirect(
            StatusCode::MOVED_PERMANENTLY,
            format!("https://127.0.0.1:{}/app.wasm", addr.port()),
        ),
        "/loop" => redirect(StatusCode::TEMPORARY_REDIRECT, "/loop".into()),
        "/to-http" => redirect(
            StatusCode::FOUND,
            format!("http://127.0.0.1:{}/app.wasm", addr.port()),
        ),
        "/slow.wasm" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Response::new(Full::new(guest.clone()).boxed())
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"no such component")).boxed())
            .unwrap(),
    }
}

fn parse(image: &str) -> ImageRef {
    image.parse().unwrap()
}

/// The fetch error of `image`, checked to be `ComponentFetchFailed` naming the URL.
async fn fetch_error(store: &ContentStore, image: &str) -> String {
    let err = store.fetch(&parse(image)).await.unwrap_err();
    assert!(matches!(err, Error::Fetch { .. }), "{err}");
    assert_eq!(err.waiting_reason(), "ComponentFetchFailed", "{err}");
    let message = err.to_string();
    let url = image.split('#').next().unwrap();
    assert!(message.contains(url), "{message}");
    message
}

#[tokio::test]
async fn an_https_image_is_downloaded_once() {
    let guest = std::fs::read(guest("cli_hello")).unwrap();
    let server = Server::start(guest.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = server.store(dir.path(), FetchConfig::default());
    let url = server.url("/app.wasm");

    let (digest, bytes) = store.fetch(&parse(&url)).await.unwrap();
    assert_eq!(digest, Digest::of(&guest));
    assert_eq!(bytes, guest);
    assert!(store.contains(&digest));
    assert_eq!(server.requests(), 1);

    // Again, after a restart (a new store on the same directory), and pinned to what it
    // served: no request.
    assert_eq!(store.fetch(&parse(&url)).await.unwrap().0, digest);
    let restarted = server.store(dir.path(), FetchConfig::default());
    assert_eq!(restarted.fetch(&parse(&url)).await.unwrap().0, digest);
    let pinned = format!("{url}#sha256={}", digest.hex());
    assert_eq!(restarted.fetch(&parse(&pinned)).await.unwrap().0, digest);
    assert_eq!(server.requests(), 1);

    // Concurrent fetches of a new URL make one download; a chunked body is fine.
    let stream = server.url("/stream.wasm");
    let fetches: Vec<_> = (0..4)
        .map(|_| {
            let (store, image) = (store.clone(), parse(&stream));
            tokio::spawn(async move { store.fetch(&image).await })
        })
        .collect();
    for fetch in fetches {
        assert_eq!(fetch.await.unwrap().unwrap().0, digest);
    }
    assert_eq!(server.hits("/stream.wasm"), 1);
}

#[tokio::test]
async fn a_pinned_digest_must_match() {
    let guest = std::fs::read(guest("cli_hello")).unwrap();
    let server = Server::start(guest.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = server.store(dir.path(), FetchConfig::default());
    let url = server.url("/app.wasm");

    let wrong = Digest::of(b"something else");
    let image = format!("{url}#sha256={}", wrong.hex());
    let err = store.fetch(&parse(&image)).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert_eq!(err.waiting_reason(), "DigestMismatch");
    let actual = Digest::of(&guest);
    assert!(err.to_string().contains(&actual.to_string()), "{err}");
    assert!(!store.contains(&actual), "a mismatch stores nothing");

    // The right pin downloads (the mismatch was not remembered).
    let image = format!("{url}#sha256={}", actual.hex());
    assert_eq!(store.fetch(&parse(&image)).await.unwrap().0, actual);
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn failed_downloads_name_the_url_and_the_cause() {
    let guest = std::fs::read(guest("cli_hello")).unwrap();
    let server = Server::start(guest.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = server.store(dir.path(), FetchConfig::default());

    let message = fetch_error(&store, &server.url("/missing.wasm")).await;
    assert!(message.contains("HTTP 404 Not Found"), "{message}");

    let message = fetch_error(&store, &server.url("/loop")).await;
    assert!(message.contains("too many redirects"), "{message}");
    assert_eq!(server.hits("/loop"), 6, "the first request and 5 redirects");

    let message = fetch_error(&store, &server.url("/to-http")).await;
    assert!(message.contains("https is required"), "{message}");
    assert_eq!(server.hits("/app.wasm"), 0, "http:// is never requested");

    // Nothing listens on the port any more.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let message = fetch_error(&store, &format!("https://127.0.0.1:{port}/app.wasm")).await;
    assert!(message.contains("cannot connect"), "{message}");

    // A failure is not remembered: the component is fetched once it is there.
    assert!(std::fs::read_dir(dir.path().join("index/https")).is_err());
}

#[tokio::test]
async fn redirects_are_followed() {
    let guest = std::fs::read(guest("cli_hello")).unwrap();
    let server = Server::start(guest.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = server.store(dir.path(), FetchConfig::default());
    let (digest, bytes) = store.fetch(&parse(&server.url("/redirect"))).await.unwrap();
    assert_eq!((digest, bytes), (Digest::of(&guest), guest));
    assert_eq!(
        (
            server.hits("/redirect"),
            server.hits("/hop"),
            server.hits("/app.wasm")
        ),
        (1, 1, 1)
    );
    // One redirect fewer than needed is too few.
    let strict = server.store(
        dir.path(),
        FetchConfig {
            max_redirects: 1,
            ..FetchConfig::default()
        },
    );
    let message = fetch_error(&strict, &server.url("/redirect?again")).await;
    assert!(
        message.contains("too many redirects: more than 1"),
        "{message}"
    );
}

#[tokio::test]
async fn an_oversized_component_is_refused() {
    let guest = std::fs::read(guest("cli_hello")).unwrap();
    let server = Server::start(guest.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = server.store(
        dir.path(),
        FetchConfig {
            max_size: 4096,
            ..FetchConfig::default()
        },
    );
    assert!(guest.len() > 4096);
    // Refused from its Content-Length, and while streaming when there is none.
    for path in ["/app.wasm", "/stream.wasm"] {
        let message = fetch_error(&store, &server.url(path)).await;
        assert!(message.contains("limit of 4096 bytes"), "{message}");
    }
    assert!(!store.contains(&Digest::of(&guest)));
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let server = Server::start(b"\0asm".to_vec()).await;
    let dir = tempfile::tempdir().unwrap();
    // Mozilla's roots only: the test CA is unknown.
    let store = ContentStore::new(dir.path());
    let message = fetch_error(&store, &server.url("/app.wasm")).await;
    assert!(message.contains("TLS error"), "{message}");
    assert!(message.contains("certificate"), "{message}");
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let server = Server::start(b"\0asm".to_vec()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = server.store(
        dir.path(),
        FetchConfig {
            timeout: Duration::from_millis(300),
            ..FetchConfig::default()
        },
    );
    let message = fetch_error(&store, &server.url("/slow.wasm")).await;
    assert!(message.contains("timed out after 300ms"), "{message}");
}

#[tokio::test]
async fn plain_http_is_refused() {
    let t = host();
    let err = t
        .host
        .load("http://127.0.0.1:1/app.wasm")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidImage { .. }), "{err}");
    assert!(err.to_string().contains("https is required"), "{err}");
    assert_eq!(err.waiting_reason(), "InvalidImageName");
}

#[tokio::test]
async fn a_host_runs_an_https_image() {
    let guest = std::fs::read(guest("cli_hello")).unwrap();
    let server = Server::start(guest.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(
        Host::with_fetch_config(
            HostConfig {
                data_dir: dir.path().to_path_buf(),
                engine: EngineConfig::small(),
            },
            FetchConfig {
                extra_ca_pem: server.ca_pem.clone(),
                ..FetchConfig::default()
            },
        )
        .unwrap(),
    );
    let image = server.url("/app.wasm");
    let (exit, log) = run(&host, &image, &unlimited(), &spec(&["cli_hello"], &[])).await;
    assert_eq!(exit.reason, Reason::Completed, "{exit:?}");
    assert!(log.contains("hello from skiff\n"), "{log}");
    // Loading it again (a restart of the container) asks the server nothing.
    let workload = host.load(&image).await.unwrap();
    assert_eq!(workload.digest(), Digest::of(&guest));
    assert_eq!(server.requests(), 1);
}
