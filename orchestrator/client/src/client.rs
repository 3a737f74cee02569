//! [`Client`]: Kubernetes REST over HTTPS (hyper 1 + rustls), trusting only the cluster's CA
//! and sending the kubeconfig's bearer token on every request.
//!
//! Objects are `serde_json::Value`s; which kind a call is about is a
//! [`skiff_api::registry::Resource`] (from [`skiff_api::registry::resolve`] for what a user
//! typed). Namespaces: for calls on one object, `None` means the client's default namespace
//! (the kubeconfig context's, or `default`); for `list` and `watch`, `None` means all
//! namespaces. Cluster-scoped resources ignore the namespace.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{Value, json};
use skiff_api::registry::Resource;

use crate::error::{ApiError, Error, Result};
use crate::kubeconfig::{ClusterConfig, Kubeconfig};
use crate::table::{IncludeObject, TABLE_ACCEPT, Table};
use crate::watch::{self, WatchStream};

/// The `Accept` of every request but the Table ones.
const JSON: &str = "application/json";

/// How long connecting (TCP + TLS) may take before a request fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to one Skiff (or Kubernetes) API server. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    server: String,
    token: Option<Arc<str>>,
    namespace: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Query options of `list` and `watch`.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// `app=web,tier!=db`
    pub label_selector: Option<String>,
    /// `metadata.name=web`
    pub field_selector: Option<String>,
    /// List: read at (or after) this version; watch: start after it.
    pub resource_version: Option<String>,
    /// Page size of a list.
    pub limit: Option<u32>,
    /// The `continue` token of the previous page.
    pub continue_token: Option<String>,
    /// Watch: the server ends the watch after this many seconds.
    pub timeout_seconds: Option<u64>,
    /// Watch: ask for BOOKMARK events.
    pub allow_watch_bookmarks: bool,
}

impl ListParams {
    pub fn labels(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.to_string());
        self
    }

    pub fn fields(mut self, selector: &str) -> Self {
        self.field_selector = Some(selector.to_string());
        self
    }

    fn query(&self, watch: bool) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if watch {
            q.push(("watch", "true".to_string()));
        }
        if let Some(s) = self.label_selector.as_ref().filter(|s| !s.is_empty()) {
            q.push(("labelSelector", s.clone()));
        }
        if let Some(s) = self.field_selector.as_ref().filter(|s| !s.is_empty()) {
            q.push(("fieldSelector", s.clone()));
        }
        if let Some(rv) = &self.resource_version {
            q.push(("resourceVersion", rv.clone()));
        }
        if !watch {
            if let Some(l) = self.limit {
                q.push(("limit", l.to_string()));
            }
            if let Some(c) = &self.continue_token {
                q.push(("continue", c.clone()));
            }
        }
        if watch {
            if let Some(t) = self.timeout_seconds {
                q.push(("timeoutSeconds", t.to_string()));
            }
            if self.allow_watch_bookmarks {
                q.push(("allowWatchBookmarks", "true".to_string()));
            }
        }
        q
    }
}

/// A PATCH body and its media type.
#[derive(Debug, Clone)]
pub enum Patch {
    /// `application/merge-patch+json` (RFC 7386)
    Merge(Value),
    /// `application/json-patch+json` (RFC 6902): an array of operations.
    Json(Value),
}

impl Patch {
    fn content_type(&self) -> &'static str {
        match self {
            Patch::Merge(_) => "application/merge-patch+json",
            Patch::Json(_) => "application/json-patch+json",
        }
    }

    fn body(&self) -> &Value {
        match self {
            Patch::Merge(v) | Patch::Json(v) => v,
        }
    }
}

/// What happens to an object's dependents when it is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagationPolicy {
    /// Delete the object now; the garbage collector deletes dependents after.
    Background,
    /// Delete dependents first; the object stays (with a finalizer) until they are gone.
    Foreground,
    /// Leave dependents, removing their owner reference.
    Orphan,
}

impl PropagationPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PropagationPolicy::Background => "Background",
            PropagationPolicy::Foreground => "Foreground",
            PropagationPolicy::Orphan => "Orphan",
        }
    }
}

/// DeleteOptions.
#[derive(Debug, Clone, Default)]
pub struct DeleteParams {
    pub propagation_policy: Option<PropagationPolicy>,
    pub grace_period_seconds: Option<i64>,
    /// Delete only if the object still has this uid.
    pub precondition_uid: Option<String>,
    /// Delete only if the object is still at this resourceVersion.
    pub precondition_resource_version: Option<String>,
}

impl DeleteParams {
    fn body(&self) -> Value {
        let mut b = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
        if let Some(p) = self.propagation_policy {
            b["propagationPolicy"] = p.as_str().into();
        }
        if let Some(g) = self.grace_period_seconds {
            b["gracePeriodSeconds"] = g.into();
        }
        let mut pre = serde_json::Map::new();
        if let Some(uid) = &self.precondition_uid {
            pre.insert("uid".into(), uid.clone().into());
        }
        if let Some(rv) = &self.precondition_resource_version {
            pre.insert("resourceVersion".into(), rv.clone().into());
        }
        if !pre.is_empty() {
            b["preconditions"] = Value::Object(pre);
        }
        b
    }
}

/// Options of `pods/{name}/log`.
#[derive(Debug, Clone, Default)]
pub struct LogParams {
    pub container: Option<String>,
    pub follow: bool,
    pub tail_lines: Option<i64>,
    pub timestamps: bool,
    pub previous: bool,
    pub since_seconds: Option<i64>,
}

/// A response body as a stream of chunks (logs).
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

impl Client {
    /// A client for what a kubeconfig context says.
    pub fn new(config: &ClusterConfig) -> Result<Client> {
        let https = config.server.starts_with("https://");
        let tls = tls_config(config, https)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Client {
            http: client,
            server: config.server.trim_end_matches('/').to_string(),
            token: config.token.as_deref().map(Arc::from),
            namespace: config.namespace.clone(),
        })
    }

    /// A client for the kubeconfig found the usual way (see [`Kubeconfig::load`]), on its
    /// current context.
    pub fn from_kubeconfig(explicit: Option<&std::path::Path>) -> Result<Client> {
        let kc = Kubeconfig::load(explicit)?;
        Client::new(&kc.resolve(None)?)
    }

    /// The server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The namespace calls on one object use when given none.
    pub fn default_namespace(&self) -> &str {
        &self.namespace
    }

    /// The same client with another default namespace.
    pub fn with_namespace(mut self, namespace: &str) -> Client {
        self.namespace = namespace.to_string();
        self
    }

    fn item_ns<'a>(&'a self, r: &Resource, ns: Option<&'a str>) -> Option<&'a str> {
        r.namespaced.then(|| ns.unwrap_or(&self.namespace))
    }

    /// `/api/v1/namespaces/{ns}/pods` (or all namespaces with `ns = None`).
    pub fn collection_path(r: &Resource, ns: Option<&str>) -> String {
        let ns = ns.filter(|_| r.namespaced).map(encode_segment);
        r.collection_path(ns.as_deref())
    }

    /// `/api/v1/namespaces/{ns}/pods/{name}[/{sub}]`; `ns` must already be resolved.
    pub fn item_path(r: &Resource, ns: Option<&str>, name: &str, sub: Option<&str>) -> String {
        let mut p = format!("{}/{}", Self::collection_path(r, ns), encode_segment(name));
        if let Some(sub) = sub {
            p.push('/');
            p.push_str(sub);
        }
        p
    }

    // ------------------------------------------------------------------ verbs

    /// GET one object.
    pub async fn get(&self, r: &Resource, ns: Option<&str>, name: &str) -> Result<Value> {
        let path = Self::item_path(r, self.item_ns(r, ns), name, None);
        self.json(Method::GET, &path, None).await
    }

    /// GET one object, `None` when it does not exist.
    pub async fn get_opt(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>> {
        match self.get(r, ns, name).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// List (the whole `…List` object: `items` and `metadata.resourceVersion`). `ns =
    /// None` lists every namespace.
    pub async fn list(&self, r: &Resource, ns: Option<&str>, params: &ListParams) -> Result<Value> {
        let path = with_query(&Self::collection_path(r, ns), &params.query(false));
        self.json(Method::GET, &path, None).await
    }

    /// POST a new object into `ns` (or its own `metadata.namespace`, or the default).
    pub async fn create(&self, r: &Resource, ns: Option<&str>, object: &Value) -> Result<Value> {
        let ns = ns.or_else(|| object_namespace(object));
        let path = Self::collection_path(r, self.item_ns(r, ns));
        self.json(Method::POST, &path, Some(json_body(object)?))
            .await
    }

    /// PUT: replace an object. With `metadata.resourceVersion` set, the write is a
    /// compare-and-swap (409 Conflict when it is stale).
    pub async fn replace(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        object: &Value,
    ) -> Result<Value> {
        let path = Self::item_path(r, self.item_ns(r, ns), name, None);
        self.json(Method::PUT, &path, Some(json_body(object)?))
            .await
    }

    /// PUT the status subresource.
    pub async fn replace_status(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        object: &Value,
    ) -> Result<Value> {
        let path = Self::item_path(r, self.item_ns(r, ns), name, Some("status"));
        self.json(Method::PUT, &path, Some(json_body(object)?))
            .await
    }

    /// PATCH an object.
    pub async fn patch(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        patch: &Patch,
    ) -> Result<Value> {
        self.patch_sub(r, ns, name, None, patch).await
    }

    /// PATCH the status subresource.
    pub async fn patch_status(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        patch: &Patch,
    ) -> Result<Value> {
        self.patch_sub(r, ns, name, Some("status"), patch).await
    }

    async fn patch_sub(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        sub: Option<&str>,
        patch: &Patch,
    ) -> Result<Value> {
        let path = Self::item_path(r, self.item_ns(r, ns), name, sub);
        let body = serde_json::to_vec(patch.body()).map_err(Error::Encode)?;
        self.json(Method::PATCH, &path, Some((patch.content_type(), body)))
            .await
    }

    /// DELETE an object; answers what the server returns (the deleted object, or the
    /// object marked for deletion while finalizers run).
    pub async fn delete(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Value> {
        let path = Self::item_path(r, self.item_ns(r, ns), name, None);
        self.json(Method::DELETE, &path, Some(json_body(&params.body())?))
            .await
    }

    /// GET the `scale` subresource (an autoscaling/v1 Scale).
    pub async fn get_scale(&self, r: &Resource, ns: Option<&str>, name: &str) -> Result<Value> {
        let path = Self::item_path(r, self.item_ns(r, ns), name, Some("scale"));
        self.json(Method::GET, &path, None).await
    }

    /// PATCH the `scale` subresource: `{"spec":{"replicas":N}}` as a merge patch.
    pub async fn patch_scale(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        replicas: i64,
    ) -> Result<Value> {
        let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
        self.patch_sub(r, ns, name, Some("scale"), &patch).await
    }

    /// Watch a collection (`ns = None`: every namespace): a stream of events that ends
    /// when the server ends the watch.
    pub async fn watch(
        &self,
        r: &Resource,
        ns: Option<&str>,
        params: &ListParams,
    ) -> Result<WatchStream> {
        let path = with_query(&Self::collection_path(r, ns), &params.query(true));
        let resp = self.send(Method::GET, &path, None).await?;
        Ok(watch::event_stream(resp.into_body(), path))
    }

    // ------------------------------------------------------------------ tables

    /// GET one object as a one-row [`Table`] (server-side printing).
    pub async fn get_table(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        include: IncludeObject,
    ) -> Result<Table> {
        let path = with_query(
            &Self::item_path(r, self.item_ns(r, ns), name, None),
            &table_query(Vec::new(), include),
        );
        self.table(&path).await
    }

    /// List as a [`Table`]; `ns = None` lists every namespace.
    pub async fn list_table(
        &self,
        r: &Resource,
        ns: Option<&str>,
        params: &ListParams,
        include: IncludeObject,
    ) -> Result<Table> {
        let path = with_query(
            &Self::collection_path(r, ns),
            &table_query(params.query(false), include),
        );
        self.table(&path).await
    }

    /// Watch a collection, each ADDED/MODIFIED/DELETED event's object a one-row Table
    /// (read it with [`Table::from_value`]; the column definitions come only with the
    /// first). BOOKMARK and ERROR events are as in [`Client::watch`].
    pub async fn watch_table(
        &self,
        r: &Resource,
        ns: Option<&str>,
        params: &ListParams,
        include: IncludeObject,
    ) -> Result<WatchStream> {
        let path = with_query(
            &Self::collection_path(r, ns),
            &table_query(params.query(true), include),
        );
        let resp = self
            .send_accept(Method::GET, &path, None, TABLE_ACCEPT)
            .await?;
        Ok(watch::event_stream(resp.into_body(), path))
    }

    async fn table(&self, path: &str) -> Result<Table> {
        let v = self
            .json_accept(Method::GET, path, None, TABLE_ACCEPT)
            .await?;
        Table::from_value(v).map_err(|e| Error::Decode {
            method: "GET".into(),
            path: path.to_string(),
            cause: e,
        })
    }

    /// GET `pods/{name}/log`, streamed.
    pub async fn logs(
        &self,
        ns: Option<&str>,
        pod: &str,
        params: &LogParams,
    ) -> Result<ByteStream> {
        let r = &skiff_api::registry::POD;
        let mut q = Vec::new();
        if let Some(c) = &params.container {
            q.push(("container", c.clone()));
        }
        if params.follow {
            q.push(("follow", "true".to_string()));
        }
        if let Some(t) = params.tail_lines {
            q.push(("tailLines", t.to_string()));
        }
        if params.timestamps {
            q.push(("timestamps", "true".to_string()));
        }
        if params.previous {
            q.push(("previous", "true".to_string()));
        }
        if let Some(s) = params.since_seconds {
            q.push(("sinceSeconds", s.to_string()));
        }
        let path = with_query(
            &Self::item_path(r, self.item_ns(r, ns), pod, Some("log")),
            &q,
        );
        let resp = self.send(Method::GET, &path, None).await?;
        let body = resp.into_body();
        let stream = futures::stream::unfold(Some((body, path)), |state| async move {
            let (mut body, path) = state?;
            loop {
                match body.frame().await {
                    None => return None,
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Some((Ok(data), Some((body, path))));
                        }
                    }
                    Some(Err(e)) => {
                        let err = Error::Body {
                            method: "GET".into(),
                            path,
                            cause: e,
                        };
                        return Some((Err(err), None));
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }

    /// GET `/version`.
    pub async fn server_version(&self) -> Result<Value> {
        self.json(Method::GET, "/version", None).await
    }

    // ------------------------------------------------------------------ plumbing

    /// A request whose answer is JSON.
    pub async fn json(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Value> {
        self.json_accept(method, path_and_query, body, JSON).await
    }

    /// A request whose answer is JSON, with this `Accept`.
    async fn json_accept(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(&'static str, Vec<u8>)>,
        accept: &'static str,
    ) -> Result<Value> {
        let resp = self
            .send_accept(method.clone(), path_and_query, body, accept)
            .await?;
        let bytes = read_body(resp.into_body(), &method, path_and_query).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            method: method.to_string(),
            path: path_and_query.to_string(),
            cause: e,
        })
    }

    /// Sends a request; a non-2xx answer becomes [`Error::Api`].
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<hyper::Response<Incoming>> {
        self.send_accept(method, path_and_query, body, JSON).await
    }

    /// Sends a request with this `Accept`; a non-2xx answer becomes [`Error::Api`].
    async fn send_accept(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(&'static str, Vec<u8>)>,
        accept: &'static str,
    ) -> Result<hyper::Response<Incoming>> {
        let url = format!("{}{path_and_query}", self.server);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(header::ACCEPT, accept)
            .header(
                header::USER_AGENT,
                concat!("skiff/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some((ct, bytes)) => req
                .header(header::CONTENT_TYPE, ct)
                .body(Full::new(Bytes::from(bytes))),
            None => req.body(Full::new(Bytes::new())),
        }
        .map_err(|e| Error::Url {
            url: url.clone(),
            message: e.to_string(),
        })?;
        tracing::debug!(%method, path = path_and_query, "request");
        let resp = self.http.request(req).await.map_err(|e| Error::Connect {
            server: self.server.clone(),
            cause: e,
        })?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(resp);
        }
        let bytes = read_body(resp.into_body(), &method, path_and_query).await?;
        Err(ApiError::from_response(status.as_u16(), &bytes).into())
    }
}

async fn read_body(body: Incoming, method: &Method, path: &str) -> Result<Bytes> {
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::Body {
            method: method.to_string(),
            path: path.to_string(),
            cause: e,
        })
}

fn json_body(v: &Value) -> Result<(&'static str, Vec<u8>)> {
    Ok((
        "application/json",
        serde_json::to_vec(v).map_err(Error::Encode)?,
    ))
}

fn object_namespace(v: &Value) -> Option<&str> {
    v.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    encode(s, &mut out);
    out
}

/// `query` and `includeObject` (left out when it is the server's default).
fn table_query(
    mut query: Vec<(&'static str, String)>,
    include: IncludeObject,
) -> Vec<(&'static str, String)> {
    if include != IncludeObject::Metadata {
        query.push(("includeObject", include.as_str().to_string()));
    }
    query
}

fn with_query(path: &str, query: &[(&str, String)]) -> String {
    let mut out = path.to_string();
    for (i, (k, v)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        encode(k, &mut out);
        out.push('=');
        encode(v, &mut out);
    }
    out
}

fn tls_config(config: &ClusterConfig, https: bool) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    if config.insecure_skip_tls_verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_pem {
        Some(pem) => {
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    Error::Tls(format!(
                        "the certificate authority of {} is not PEM: {e}",
                        config.source.display()
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    Error::Tls(format!(
                        "the certificate authority of {} is not usable: {e}",
                        config.source.display()
                    ))
                })?;
                n += 1;
            }
            if n == 0 {
                return Err(Error::Tls(format!(
                    "the certificate authority of {} holds no certificate",
                    config.source.display()
                )));
            }
        }
        None if https => {
            return Err(Error::Tls(format!(
                "{}: the cluster has no certificate-authority(-data) for {}, and only the cluster's CA is trusted (set insecure-skip-tls-verify: true to skip verification)",
                config.source.display(),
                config.server
            )));
        }
        None => {}
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `insecure-skip-tls-verify: true`: any certificate, but the handshake signatures are
/// still checked.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use skiff_api::registry;

    #[test]
    fn paths_and_queries_are_encoded() {
        assert_eq!(
            Client::item_path(&registry::DEPLOYMENT, Some("team a"), "web", Some("scale")),
            "/apis/apps/v1/namespaces/team%20a/deployments/web/scale"
        );
        assert_eq!(
            Client::collection_path(&registry::NODE, Some("ignored")),
            "/api/v1/nodes"
        );
        assert_eq!(
            Client::collection_path(&registry::POD, None),
            "/api/v1/pods"
        );
        let q = ListParams::default()
            .labels("app in (a,b)")
            .fields("metadata.name=x")
            .query(false);
        assert_eq!(
            with_query("/p", &q),
            "/p?labelSelector=app%20in%20%28a%2Cb%29&fieldSelector=metadata.name%3Dx"
        );
        let w = ListParams {
            resource_version: Some("5".into()),
            timeout_seconds: Some(3),
            allow_watch_bookmarks: true,
            limit: Some(9),
            ..Default::default()
        }
        .query(true);
        assert_eq!(
            with_query("/p", &w),
            "/p?watch=true&resourceVersion=5&timeoutSeconds=3&allowWatchBookmarks=true"
        );
    }

    #[test]
    fn table_queries_carry_include_object() {
        let q = table_query(
            ListParams::default().labels("app=web").query(false),
            IncludeObject::Object,
        );
        assert_eq!(
            with_query("/p", &q),
            "/p?labelSelector=app%3Dweb&includeObject=Object"
        );
        assert!(table_query(Vec::new(), IncludeObject::Metadata).is_empty());
        assert_eq!(
            table_query(Vec::new(), IncludeObject::None),
            [("includeObject", "None".to_string())]
        );
        assert!(TABLE_ACCEPT.starts_with("application/json;as=Table;v=v1;g=meta.k8s.io,"));
    }

    #[test]
    fn delete_options_body() {
        let b = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            precondition_uid: Some("u".into()),
            ..Default::default()
        }
        .body();
        assert_eq!(b["propagationPolicy"], "Foreground");
        assert_eq!(b["preconditions"]["uid"], "u");
        assert!(b.get("gracePeriodSeconds").is_none());
    }

    #[test]
    fn https_without_a_ca_is_refused_clearly() {
        let c = ClusterConfig {
            source: "/k.yaml".into(),
            context: "c".into(),
            server: "https://127.0.0.1:1".into(),
            ca_pem: None,
            insecure_skip_tls_verify: false,
            token: None,
            namespace: "default".into(),
        };
        let e = Client::new(&c).unwrap_err().to_string();
        assert!(
            e.contains("certificate-authority") && e.contains("/k.yaml"),
            "{e}"
        );
        let bad = ClusterConfig {
            ca_pem: Some(b"not pem".to_vec()),
            ..c.clone()
        };
        assert!(Client::new(&bad).is_err());
        let insecure = ClusterConfig {
            insecure_skip_tls_verify: true,
            ..c
        };
        assert!(Client::new(&insecure).is_ok());
    }
}
