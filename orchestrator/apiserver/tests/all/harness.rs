//! A real API server on 127.0.0.1:0 over a real store (embedded in a temp dir, or a
//! real etcd process of its own), and a small HTTP client for the tests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use skiff_apiserver::{ApiServerConfig, RunningServer};
use skiff_store::Store;
use tokio_util::sync::CancellationToken;

pub use skiff_store::testing::EtcdProcess;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Embedded,
    Etcd,
}

pub struct TestServer {
    pub url: String,
    pub token: String,
    pub node_token: String,
    pub store: Arc<dyn Store>,
    client: Client<HttpConnector, Full<Bytes>>,
    cancel: CancellationToken,
    server: Option<RunningServer>,
    _dir: tempfile::TempDir,
    _etcd: Option<EtcdProcess>,
}

pub struct Options {
    pub bookmark_interval: Duration,
    pub watch_cache_events: usize,
    pub event_ttl: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_millis(300),
            watch_cache_events: 10_000,
            event_ttl: Duration::from_secs(3600),
        }
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::with_options(backend, Options::default()).await
    }

    pub async fn with_options(backend: Backend, opts: Options) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, etcd): (Arc<dyn Store>, _) = match backend {
            Backend::Embedded => {
                let s = skiff_store::embedded::EmbeddedStore::open(
                    &dir.path().join("state.db"),
                    Default::default(),
                )
                .await
                .expect("open embedded store");
                (Arc::new(s), None)
            }
            Backend::Etcd => {
                let etcd = EtcdProcess::start().await.unwrap_or_else(|e| panic!("{e}"));
                let s =
                    skiff_store::etcd::EtcdStore::connect(&[etcd.endpoint()], Default::default())
                        .await
                        .expect("connect to etcd");
                (Arc::new(s), Some(etcd))
            }
        };
        let cancel = CancellationToken::new();
        let config = ApiServerConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().join("server"),
            bookmark_interval: opts.bookmark_interval,
            watch_cache_events: opts.watch_cache_events,
            shutdown_grace: Duration::from_secs(2),
            tls: false,
            event_ttl: opts.event_ttl,
            ..Default::default()
        };
        let server = skiff_apiserver::start(config, store.clone(), cancel.clone())
            .await
            .expect("start API server");
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            url: server.url(),
            token: server.tokens().admin().to_string(),
            node_token: server.tokens().node().to_string(),
            store,
            client,
            cancel,
            server: Some(server),
            _dir: dir,
            _etcd: etcd,
        }
    }

    /// Stops the server and waits for it (graceful shutdown).
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(s) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), s.wait())
                .await
                .expect("server shuts down within 10 s");
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> (StatusCode, http::HeaderMap, Bytes) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        let resp = self.client.request(req).await.expect("HTTP request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, headers, bytes)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        ct: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let bytes = body
            .map(|b| serde_json::to_vec(&b).expect("json"))
            .unwrap_or_default();
        let ct = if bytes.is_empty() {
            None
        } else {
            Some(ct.unwrap_or("application/json"))
        };
        let (status, _, bytes) = self.raw(method, path, ct, bytes, Some(&self.token)).await;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, None, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, None, Some(body)).await
    }

    pub async fn patch(&self, path: &str, ct: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(ct), Some(body)).await
    }

    pub async fn delete(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None, body).await
    }

    /// Opens a watch and returns a reader of its events.
    pub async fn watch(&self, path: &str) -> Watch {
        let req = Request::builder()
            .uri(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {}", self.token))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = self.client.request(req).await.expect("watch request");
        Watch {
            status: resp.status(),
            body: resp.into_body(),
            buf: Vec::new(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub struct Watch {
    pub status: StatusCode,
    body: hyper::body::Incoming,
    buf: Vec<u8>,
}

impl Watch {
    /// The next event, or None when the stream ended. Fails the test after 10 s.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("watch event is JSON"));
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("watch event within 10 s");
            match frame {
                None => return None,
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => panic!("watch stream failed: {e}"),
            }
        }
    }

    /// The next event that is not a BOOKMARK.
    pub async fn next_change(&mut self) -> Option<Value> {
        loop {
            let ev = self.next().await?;
            if ev["type"] != "BOOKMARK" {
                return Some(ev);
            }
        }
    }

    /// (type, name) of the next non-bookmark event.
    pub async fn next_pair(&mut self) -> (String, String) {
        let ev = self.next_change().await.expect("an event");
        (
            ev["type"].as_str().unwrap_or_default().to_string(),
            ev["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }
}

/// A minimal valid pod.
pub fn pod(name: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "main", "image": "file:///srv/hello.wasm"}]},
    })
}

pub fn configmap(name: &str, data: Value) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": data,
    })
}

pub fn deployment(name: &str, replicas: i64) -> Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "file:///srv/hello.wasm"}]},
            },
        },
    })
}
