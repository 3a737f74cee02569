//! Serving an HTTP component: a fresh instance per request, bounded concurrency, a
//! request timeout, the pod's limits on every instance.
//!
//! [`HttpService::handle`] is the whole request path; [`HttpService::serve`] puts it behind
//! a real listener (`skiff run --listen`); the node's service proxy will call `handle`
//! directly. A guest's failure on one request answers that request with a 5xx and is
//! counted in [`HttpStats`]; the service keeps serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::error::{Error, Result};
use crate::host::{Host, Prepared, Raced, Workload, WorkloadKind, race};
use crate::limits::{EpochGuard, InstanceLimiter, Stop};
use crate::logs::ContainerLog;
use crate::pod::{ContainerSpec, PodSandbox};
use crate::state::{InstanceState, wasi_builder};

/// How an HTTP component is served.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Requests running at once; more wait (up to the timeout) for a slot.
    pub max_concurrency: usize,
    /// From arrival to the response head; the instance is killed past it.
    pub request_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_concurrency: 100,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters of an HTTP service.
#[derive(Debug, Default)]
pub struct HttpStats {
    pub requests: AtomicU64,
    /// Answered 5xx because the guest trapped, failed or hit its memory limit.
    pub guest_failures: AtomicU64,
    pub timeouts: AtomicU64,
    pub oom_kills: AtomicU64,
}

/// An HTTP component serving in a pod's sandbox. Cheap to clone.
#[derive(Clone)]
pub struct HttpService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HttpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpService").finish_non_exhaustive()
    }
}

struct Inner {
    engine: wasmtime::Engine,
    pre: ProxyPre<InstanceState>,
    tick: Duration,
    max_memory: u64,
    pod: PodSandbox,
    spec: ContainerSpec,
    log: ContainerLog,
    config: HttpConfig,
    slots: Arc<Semaphore>,
    tasks: TaskTracker,
    stats: HttpStats,
}

/// The response type of the service.
pub type HttpResponse = hyper::Response<HyperOutgoingBody>;

fn plain(status: u16, text: impl Into<Bytes>) -> HttpResponse {
    let body = Full::new(text.into())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

fn timeout_text(config: &HttpConfig) -> String {
    format!(
        "request timeout: no response within {:?}",
        config.request_timeout
    )
}

impl Host {
    /// Prepares `workload` to serve in `pod`'s sandbox. The spec's args, env and preopens
    /// are given to every request's instance.
    pub fn http_service(
        &self,
        workload: &Workload,
        pod: PodSandbox,
        spec: ContainerSpec,
        log: ContainerLog,
        config: HttpConfig,
    ) -> Result<HttpService> {
        let Prepared::Http(pre) = &workload.prepared else {
            return Err(Error::WrongKind {
                digest: workload.digest().to_string(),
                expected: WorkloadKind::Http.describe(),
                actual: workload.kind().describe(),
            });
        };
        // Fail now, not on the first request, when the sandbox cannot be built.
        wasi_builder(&spec, &log)?;
        Ok(HttpService {
            inner: Arc::new(Inner {
                engine: self.engine().clone(),
                pre: pre.clone(),
                tick: self.tick(),
                max_memory: self.max_memory(),
                slots: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
                pod,
                spec,
                log,
                config,
                tasks: TaskTracker::new(),
                stats: HttpStats::default(),
            }),
        })
    }
}

impl HttpService {
    /// The service's counters.
    pub fn stats(&self) -> &HttpStats {
        &self.inner.stats
    }

    /// Handles one request on a fresh instance.
    pub async fn handle<B>(&self, request: hyper::Request<B>) -> HttpResponse
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let inner = &self.inner;
        inner.stats.requests.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + inner.config.request_timeout;
        let permit =
            match tokio::time::timeout_at(deadline, inner.slots.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return plain(503, "service is shutting down\n"),
                Err(_) => {
                    inner.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    return plain(503, "too many requests in flight\n");
                }
            };
        let builder = match wasi_builder(&inner.spec, &inner.log) {
            Ok(b) => b,
            Err(e) => return plain(500, format!("{e}\n")),
        };
        let mut builder = builder;
        let mut store = Store::new(
            &inner.engine,
            InstanceState::new(
                builder.build(),
                InstanceLimiter::new(inner.pod.memory_budget(), inner.max_memory),
            ),
        );
        store.limiter(|s| &mut s.limiter);
        let kill = CancellationToken::new();
        EpochGuard {
            cpu: inner.pod.cpu().cloned(),
            tick: inner.tick,
            deadline: Some(deadline),
            cancel: kill.clone(),
        }
        .arm(&mut store);

        let (tx, rx) = oneshot::channel();
        let prepared = (|| -> wasmtime::Result<_> {
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)?;
            let out = store.data_mut().http().new_response_outparam(tx)?;
            Ok((req, out))
        })();
        let (req, out) = match prepared {
            Ok(p) => p,
            Err(e) => return plain(400, format!("bad request: {e:#}\n")),
        };

        // The guest keeps writing the body after it sends the head: it runs in its own
        // task, bounded by the deadline and the pod's kill switch.
        let pre = inner.pre.clone();
        let pod = inner.pod.clone();
        let task_kill = kill.clone();
        let task = inner.tasks.spawn(async move {
            let _permit = permit;
            let call = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            let stopped = async {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = pod.kill_switch().cancelled() => {}
                }
            };
            let result = race(call, stopped, &task_kill).await;
            let hit = store.data().limiter.hit();
            (result, hit)
        });

        let answer = tokio::select! {
            r = rx => Some(r),
            () = tokio::time::sleep_until(deadline) => None,
        };
        match answer {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => {
                inner.stats.guest_failures.fetch_add(1, Ordering::Relaxed);
                plain(500, format!("the component failed the request: {code:?}\n"))
            }
            Some(Err(_)) => {
                // The guest returned (or died) without sending a response.
                let (status, text) = match task.await {
                    Ok((Raced::Done(Ok(())), _)) => {
                        (500, "the component sent no response".to_string())
                    }
                    Ok((_, true)) => {
                        inner.stats.oom_kills.fetch_add(1, Ordering::Relaxed);
                        let limit = crate::pod::ContainerExit::oom(inner.pod.memory().limit());
                        (500, format!("OOMKilled: {}", limit.message))
                    }
                    Ok((Raced::Done(Err(e)), false)) => match e.downcast_ref::<Stop>() {
                        Some(Stop::DeadlineExceeded) => (504, timeout_text(&inner.config)),
                        Some(Stop::Killed) => (503, "killed".to_string()),
                        None => (500, format!("{e:?}")),
                    },
                    Ok((Raced::Stopped, false)) if Instant::now() >= deadline => {
                        (504, timeout_text(&inner.config))
                    }
                    Ok((Raced::Stopped, false)) => (503, "killed".to_string()),
                    Err(e) => (500, format!("request task failed: {e}")),
                };
                match status {
                    500 => inner.stats.guest_failures.fetch_add(1, Ordering::Relaxed),
                    504 => inner.stats.timeouts.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
                tracing::warn!(status, error = %text, "HTTP guest failed");
                plain(status, format!("{text}\n"))
            }
            None => {
                kill.cancel();
                inner.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                plain(504, format!("{}\n", timeout_text(&inner.config)))
            }
        }
    }

    /// Serves on `listener` (HTTP/1.1) until `shutdown`; then stops accepting, lets
    /// in-flight requests finish within `grace`, and kills the rest.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> std::io::Result<()> {
        let connections = TaskTracker::new();
        let hard_stop = CancellationToken::new();
        loop {
            let (stream, _peer) = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let service = self.clone();
            let hard_stop = hard_stop.clone();
            let shutdown = shutdown.clone();
            connections.spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let svc = hyper::service::service_fn(move |req| {
                    let service = service.clone();
                    async move { Ok::<_, std::convert::Infallible>(service.handle(req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(io, svc);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "connection ended");
                        }
                    }
                    () = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            () = hard_stop.cancelled() => {}
                        }
                    }
                }
            });
        }
        connections.close();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, connections.wait())
            .await
            .is_err()
        {
            hard_stop.cancel();
            self.inner.pod.kill();
        }
        connections.wait().await;
        self.inner.tasks.wait().await;
        Ok(())
    }
}
