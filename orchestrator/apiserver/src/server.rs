//! The HTTP server: accept loop, authentication, routing to the handlers, and graceful
//! shutdown (stop accepting, end watches, finish in-flight requests within a grace
//! period).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use skiff_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Tokens;
use crate::body::{self, Body};
use crate::cache::WatchCache;
use crate::discovery;
use crate::error::{ApiError, Error, Result};
use crate::handler::{Api, DeleteOptions, Part, Patch};
use crate::path::{self, Target};
use crate::query::Query;
use crate::resources;
use crate::table::{self, Format};
use crate::watch::{self, WatchConfig};

/// How the server runs. `Default` suits a single machine.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    /// Where to listen; port 0 picks a free one (see [`RunningServer::local_addr`]).
    pub listen: SocketAddr,
    /// Where tokens and the kubeconfig are kept.
    pub data_dir: PathBuf,
    /// Events the watch cache keeps for resuming watchers.
    pub watch_cache_events: usize,
    pub bookmark_interval: Duration,
    /// Longest watch when the client gives no timeoutSeconds.
    pub watch_timeout: Duration,
    /// Largest request body (Kubernetes: 3 MiB).
    pub max_body_bytes: usize,
    /// How long a consistent read waits for the watch cache to catch up.
    pub consistent_read_timeout: Duration,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Serve HTTPS with the cluster CA (see [`crate::tls`]). kubectl sends tokens only
    /// over TLS; plain HTTP is for in-process tests.
    pub tls: bool,
    /// Extra names for the server certificate (besides localhost and loopback).
    pub tls_sans: Vec<String>,
    /// How long Events live (Kubernetes' `--event-ttl`, default 1 h).
    pub event_ttl: Duration,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 6443)),
            data_dir: PathBuf::from(".skiff"),
            watch_cache_events: 100_000,
            bookmark_interval: Duration::from_secs(60),
            watch_timeout: Duration::from_secs(1800),
            max_body_bytes: 3 * 1024 * 1024,
            consistent_read_timeout: Duration::from_secs(3),
            shutdown_grace: Duration::from_secs(10),
            tls: true,
            tls_sans: Vec::new(),
            event_ttl: Duration::from_secs(3600),
        }
    }
}

/// A started server.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    url: String,
    ca_pem: Option<String>,
    tokens: Tokens,
    kubeconfig: PathBuf,
    tracker: TaskTracker,
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https://127.0.0.1:PORT` (or `http://` without TLS).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The cluster CA certificate (PEM) when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    pub fn kubeconfig_path(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// Waits until the server has shut down (after its cancellation token fired).
    pub async fn wait(self) {
        self.tracker.wait().await;
    }
}

struct Shared {
    api: Arc<Api>,
    tokens: Tokens,
    config: ApiServerConfig,
    cancel: CancellationToken,
}

/// An API server for tests and benchmarks in one process: the embedded store in
/// `dir/state.db`, 127.0.0.1 on a free port (HTTPS with a generated CA if `tls`, else
/// plain HTTP), tokens and kubeconfig under `dir/server`, bookmarks every 500 ms and a
/// 1 s shutdown grace.
pub async fn start_local(
    dir: &std::path::Path,
    tls: bool,
    cancel: CancellationToken,
) -> Result<RunningServer> {
    let store = skiff_store::embedded::EmbeddedStore::open(
        dir.join("state.db"),
        skiff_store::embedded::EmbeddedOptions::default(),
    )
    .await?;
    let config = ApiServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.join("server"),
        tls,
        bookmark_interval: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(1),
        ..Default::default()
    };
    start(config, Arc::new(store), cancel).await
}

/// Starts the API server on `store`; it runs until `cancel` fires.
pub async fn start(
    config: ApiServerConfig,
    store: Arc<dyn Store>,
    cancel: CancellationToken,
) -> Result<RunningServer> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Io {
            context: format!("listen on {}", config.listen),
            source: e,
        })?;
    let local_addr = listener.local_addr().map_err(|e| Error::Io {
        context: "read the listening address".into(),
        source: e,
    })?;
    let tls = if config.tls {
        let sans = crate::tls::default_sans(local_addr, &config.tls_sans);
        Some(crate::tls::TlsMaterial::load_or_create(
            &config.data_dir,
            &sans,
        )?)
    } else {
        None
    };
    // Clients reach an unspecified address (0.0.0.0) through loopback on this machine.
    let host = if local_addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], local_addr.port()))
    } else {
        local_addr
    };
    let url = format!("{}://{host}", if tls.is_some() { "https" } else { "http" });
    let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
    let tokens = Tokens::load_or_create(&config.data_dir, &url, ca_pem.as_deref())?;
    let kubeconfig = crate::auth::kubeconfig_path(&config.data_dir);

    ensure_system_namespaces(store.as_ref()).await?;
    let cache = WatchCache::new(store.clone(), config.watch_cache_events, cancel.clone()).await?;
    let tracker = TaskTracker::new();
    tracker.spawn(cache.clone().run());

    let shared = Arc::new(Shared {
        api: Arc::new(Api {
            store,
            event_ttl: config.event_ttl,
            event_lease: std::sync::Mutex::new(None),
            cache,
            consistent_read_timeout: config.consistent_read_timeout,
            agent_client: crate::logs::agent_client(),
            node_token: tokens.node().to_string(),
        }),
        tokens: tokens.clone(),
        config,
        cancel: cancel.clone(),
    });
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server_config));
    tracker.spawn(accept_loop(listener, acceptor, shared, tracker.clone()));
    tracker.close();
    tracing::info!(%url, "API server listening");
    Ok(RunningServer {
        local_addr,
        url,
        ca_pem,
        tokens,
        kubeconfig,
        tracker,
    })
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    tracker: TaskTracker,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tracker.spawn(async move {
            match tls {
                Some(acceptor) => {
                    // The handshake runs in the connection's task, never in the accept loop.
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => serve_connection(stream, peer, shared, watcher).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                None => serve_connection(stream, peer, shared, watcher).await,
            }
        });
    }
    drop(listener);
    let grace = shared.config.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "connections still open after the shutdown grace period"
        );
    }
}

async fn serve_connection<S>(
    io: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(shared, req).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    let conn = watcher.watch(conn);
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = match route(&shared, req).await {
        Ok(resp) => resp,
        Err(err) => body::error(&err),
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let target = path::parse(req.uri().path());
    if target == Some(Target::Health) {
        return Ok(Response::new(body::full("ok")));
    }
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if shared.tokens.authenticate(auth).is_none() {
        return Err(ApiError::unauthorized());
    }
    let target = target.ok_or_else(|| ApiError::path_not_found(req.uri().path()))?;
    let query = Query::parse(req.uri().query())?;
    let method = req.method().clone();
    let format = table::negotiate(
        req.headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let api = &shared.api;
    let json_ok = |(status, value, warnings): (StatusCode, serde_json::Value, Vec<String>)| {
        body::json(status, &value, &warnings)
    };

    match target {
        Target::Health => Ok(Response::new(body::full("ok"))),
        Target::Version => Ok(body::json(StatusCode::OK, &discovery::version(), &[])),
        Target::CoreVersions => Ok(body::json(StatusCode::OK, &discovery::core_versions(), &[])),
        Target::Groups => Ok(body::json(StatusCode::OK, &discovery::groups(), &[])),
        Target::Group(g) => discovery::group(&g)
            .map(|v| body::json(StatusCode::OK, &v, &[]))
            .ok_or_else(|| ApiError::path_not_found(req.uri().path())),
        Target::ResourceList { group, version } => discovery::resource_list(&group, &version)
            .map(|v| body::json(StatusCode::OK, &v, &[]))
            .ok_or_else(|| ApiError::path_not_found(req.uri().path())),
        Target::OpenApi(rest) => crate::openapi::serve(&rest)
            .map(body::json_bytes)
            .ok_or_else(|| ApiError::path_not_found(req.uri().path())),

        Target::Collection {
            resource: r,
            namespace,
            watch: legacy_watch,
        } => {
            let ns = namespace.as_deref();
            match method {
                Method::GET if query.watch || legacy_watch => {
                    watch::start(
                        api,
                        r,
                        ns,
                        None,
                        &query,
                        watch_config(shared, format),
                        shared.cancel.clone(),
                    )
                    .await
                }
                Method::GET => api
                    .list(r, ns, &query)
                    .await
                    .map(|a| as_table(r, a, format, &query))
                    .map(json_ok),
                Method::POST => {
                    let (headers, bytes) = read(shared, req).await?;
                    let obj = body::decode_object(&bytes, &body::content_type(&headers))?;
                    api.create(r, ns, obj, &query).await.map(json_ok)
                }
                Method::DELETE => {
                    let (headers, bytes) = read(shared, req).await?;
                    let opts = DeleteOptions::parse(&bytes, &body::content_type(&headers))?;
                    api.delete_collection(r, ns, &opts, &query)
                        .await
                        .map(json_ok)
                }
                other => Err(ApiError::method_not_allowed(&other, r.plural)),
            }
        }

        Target::Item {
            resource: r,
            namespace,
            name,
            subresource,
            watch: legacy_watch,
        } => {
            let ns = namespace.as_deref();
            match (subresource.as_deref(), method) {
                (None, Method::GET) if query.watch || legacy_watch => {
                    watch::start(
                        api,
                        r,
                        ns,
                        Some(&name),
                        &query,
                        watch_config(shared, format),
                        shared.cancel.clone(),
                    )
                    .await
                }
                (None, Method::GET) => api
                    .get(r, ns, &name, &query)
                    .await
                    .map(|a| as_table(r, a, format, &query))
                    .map(json_ok),
                (None | Some("status"), Method::PUT) => {
                    let part = part_of(r, subresource.as_deref())?;
                    let (headers, bytes) = read(shared, req).await?;
                    let obj = body::decode_object(&bytes, &body::content_type(&headers))?;
                    api.replace(r, ns, &name, part, obj, &query)
                        .await
                        .map(json_ok)
                }
                (None | Some("status"), Method::PATCH) => {
                    let part = part_of(r, subresource.as_deref())?;
                    let (headers, bytes) = read(shared, req).await?;
                    let patch = Patch::parse(&body::content_type(&headers), &bytes)?;
                    api.patch(r, ns, &name, part, &patch, &query)
                        .await
                        .map(json_ok)
                }
                (None, Method::DELETE) => {
                    let (headers, bytes) = read(shared, req).await?;
                    let opts = DeleteOptions::parse(&bytes, &body::content_type(&headers))?;
                    api.delete(r, ns, &name, &opts, &query).await.map(json_ok)
                }
                (Some("status"), Method::GET) => {
                    part_of(r, Some("status"))?;
                    api.get(r, ns, &name, &query).await.map(json_ok)
                }
                (Some("scale"), m) if resources::has_scale(r) => match m {
                    Method::GET => api.get_scale(r, ns, &name).await.map(json_ok),
                    Method::PUT => {
                        let (_, bytes) = read(shared, req).await?;
                        api.write_scale(r, ns, &name, None, &bytes, &query)
                            .await
                            .map(json_ok)
                    }
                    Method::PATCH => {
                        let (headers, bytes) = read(shared, req).await?;
                        let mt = body::content_type(&headers);
                        api.write_scale(r, ns, &name, Some(&mt), &bytes, &query)
                            .await
                            .map(json_ok)
                    }
                    other => Err(ApiError::method_not_allowed(&other, "scale")),
                },
                (Some("binding"), Method::POST) if resources::is(r, "", "pods") => {
                    let (headers, bytes) = read(shared, req).await?;
                    let obj = body::decode_object(&bytes, &body::content_type(&headers))?;
                    api.bind(r, ns, &name, obj).await.map(json_ok)
                }
                (Some("finalize"), Method::PUT) if resources::is(r, "", "namespaces") => {
                    let (headers, bytes) = read(shared, req).await?;
                    let obj = body::decode_object(&bytes, &body::content_type(&headers))?;
                    api.finalize_namespace(r, &name, obj, &query)
                        .await
                        .map(json_ok)
                }
                (Some("log"), Method::GET) if resources::is(r, "", "pods") => {
                    crate::logs::proxy(api, r, ns, &name, &query).await
                }
                (Some(sub), m) if r.subresource(sub).is_some() => Err(
                    ApiError::method_not_allowed(&m, &format!("{}/{sub}", r.plural)),
                ),
                (Some(sub), _) => Err(ApiError::path_not_found(&format!(
                    "{}/{name}/{sub}",
                    r.plural
                ))),
                (None, m) => Err(ApiError::method_not_allowed(&m, r.plural)),
            }
        }
    }
}

fn part_of(r: resources::Resource, sub: Option<&str>) -> Result<Part, ApiError> {
    match sub {
        None => Ok(Part::Main),
        Some("status") if resources::has_status(r) => Ok(Part::Status),
        Some(other) => Err(ApiError::path_not_found(&format!("{}/{other}", r.plural))),
    }
}

fn watch_config(shared: &Shared, format: Format) -> WatchConfig {
    WatchConfig {
        bookmark_interval: shared.config.bookmark_interval,
        default_timeout: shared.config.watch_timeout,
        format,
    }
}

/// A get or list answer as a Table when the client asked for one.
fn as_table(
    r: resources::Resource,
    (status, value, warnings): (StatusCode, serde_json::Value, Vec<String>),
    format: Format,
    query: &Query,
) -> (StatusCode, serde_json::Value, Vec<String>) {
    let Format::Table(version) = format else {
        return (status, value, warnings);
    };
    let rv = value
        .pointer("/metadata/resourceVersion")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let table = match value.get("items").and_then(serde_json::Value::as_array) {
        Some(items) => {
            let refs: Vec<&serde_json::Value> = items.iter().collect();
            let cont = value
                .pointer("/metadata/continue")
                .and_then(serde_json::Value::as_str);
            table::table(
                r,
                &refs,
                rv.as_deref(),
                cont,
                query.include_object,
                version,
                true,
            )
        }
        None => table::table(
            r,
            &[&value],
            rv.as_deref(),
            None,
            query.include_object,
            version,
            true,
        ),
    };
    (status, table, warnings)
}

async fn read(
    shared: &Shared,
    req: Request<Incoming>,
) -> Result<(http::HeaderMap, bytes::Bytes), ApiError> {
    let (parts, incoming) = req.into_parts();
    let bytes = body::read(incoming, &parts.headers, shared.config.max_body_bytes).await?;
    Ok((parts.headers, bytes))
}

/// The namespaces every cluster has.
async fn ensure_system_namespaces(store: &dyn Store) -> Result<()> {
    let Some(r) = resources::find("", "v1", "namespaces") else {
        return Err(Error::Config(
            "the namespaces kind is not registered".into(),
        ));
    };
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let key = resources::key(r, None, name).map_err(|e| Error::Config(e.to_string()))?;
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": crate::object::new_uid(),
                "creationTimestamp": crate::object::now_rfc3339(),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        let bytes = serde_json::to_vec(&obj)
            .map_err(|e| Error::Config(format!("encode namespace {name}: {e}")))?;
        // Already there (a restart): keep it.
        let _ = store.create(key.as_bytes(), bytes, None).await?;
    }
    Ok(())
}
