//! API server latency and throughput, in process over loopback HTTP/1.1, on the embedded
//! store, printed beside Kubernetes' API call SLOs.
//!
//! `cargo bench --bench apiserver`. In order:
//! 1. creates: 1,000 pods one at a time, then 64 concurrent clients until 10,000 exist;
//! 2. lists of the 10,000 pods: consistent, `resourceVersion=0`, and cluster-wide;
//! 3. watch fan-out: 100 watches on the pods collection, 200 writes at a steady pace,
//!    the delay from each write's acknowledgement to each watcher's receipt.
//!
//! The server, its store and the clients share this process (and this machine's
//! cores), so every number includes the client's own work.
//!
//! Kubernetes' SLOs (sig-scalability, api_call_latency): mutating single-object calls
//! p99 <= 1 s; read-only calls p99 <= 1 s per object, 5 s namespace-wide, 30 s
//! cluster-wide. Watch latency has no official SLO.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const PODS: &str = "/api/v1/namespaces/default/pods";
const ALL_PODS: &str = "/api/v1/pods";
const SEQUENTIAL_CREATES: usize = 1_000;
const TOTAL_PODS: usize = 10_000;
const CONCURRENCY: usize = 64;
const LIST_REPS: usize = 20;
const WATCHERS: usize = 100;
const WATCH_WRITES: usize = 200;
/// One write every this long during the watch phase (100 writes/s).
const WATCH_PACE: Duration = Duration::from_millis(10);
/// How long watchers may still take to receive events after the last write.
const WATCH_DRAIN: Duration = Duration::from_secs(10);
/// No single request may take longer than this (the bench fails instead of hanging).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const SLO_SINGLE: Duration = Duration::from_secs(1);
const SLO_NAMESPACE_LIST: Duration = Duration::from_secs(5);
const SLO_CLUSTER_LIST: Duration = Duration::from_secs(30);

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Talks to the server under test.
#[derive(Clone)]
struct Api {
    client: HttpClient,
    url: String,
    auth: Arc<str>,
}

impl Api {
    fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header(http::header::AUTHORIZATION, &*self.auth);
        if let Some(ct) = content_type {
            req = req.header(http::header::CONTENT_TYPE, ct);
        }
        Ok(req.body(Full::new(body))?)
    }

    /// One request, whole body read; fails after [`REQUEST_TIMEOUT`].
    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes)> {
        let req = self.request(method.clone(), path, content_type, body)?;
        let exchange = async {
            let resp = self.client.request(req).await?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, bytes))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .with_context(|| format!("{method} {path}: no answer within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("{method} {path}"))
    }

    /// A call that must answer `want`; returns the body.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
        want: StatusCode,
    ) -> Result<Bytes> {
        let (status, bytes) = self.call(method.clone(), path, content_type, body).await?;
        if status != want {
            bail!(
                "{method} {path}: {status} (wanted {want}): {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
            );
        }
        Ok(bytes)
    }

    async fn create_pod(&self, name: &str) -> Result<Bytes> {
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"app":"bench"}}}},"spec":{{"containers":[{{"name":"main","image":"file:///srv/app.wasm"}}]}}}}"#
        );
        self.expect(
            Method::POST,
            PODS,
            Some("application/json"),
            Bytes::from(body),
            StatusCode::CREATED,
        )
        .await
    }
}

async fn run() -> Result<()> {
    let bench_started = Instant::now();
    let dir = tempfile::tempdir()?;
    let cancel = CancellationToken::new();
    let server = skiff_apiserver::start_local(dir.path(), false, cancel.clone())
        .await
        .context("start the API server")?;
    let api = Api {
        client: Client::builder(TokioExecutor::new()).build_http(),
        url: server.url(),
        auth: format!("Bearer {}", server.tokens().admin()).into(),
    };
    eprintln!("API server at {} (plain HTTP, embedded store)", api.url);

    let mut rows = Vec::new();

    // ------------------------------------------------------------ creates
    let started = Instant::now();
    let mut seq = Vec::with_capacity(SEQUENTIAL_CREATES);
    for i in 0..SEQUENTIAL_CREATES {
        let t = Instant::now();
        api.create_pod(&format!("p-{i}")).await?;
        seq.push(t.elapsed());
    }
    let seq_rate = SEQUENTIAL_CREATES as f64 / started.elapsed().as_secs_f64();
    eprintln!("sequential creates: {seq_rate:.0}/s");
    rows.push(Row::rate(
        format!("create, sequential ({SEQUENTIAL_CREATES})"),
        seq_rate,
    ));
    push_latencies(&mut rows, "create, sequential", &mut seq, Some(SLO_SINGLE));

    let next = Arc::new(AtomicUsize::new(SEQUENTIAL_CREATES));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let api = api.clone();
        let next = next.clone();
        tasks.spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= TOTAL_PODS {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                api.create_pod(&format!("p-{i}")).await?;
                lat.push(t.elapsed());
            }
        });
    }
    let mut conc = Vec::with_capacity(TOTAL_PODS - SEQUENTIAL_CREATES);
    while let Some(done) = tasks.join_next().await {
        conc.extend(done??);
    }
    let conc_count = conc.len();
    let conc_rate = conc_count as f64 / started.elapsed().as_secs_f64();
    eprintln!("{CONCURRENCY} concurrent creators: {conc_rate:.0}/s");
    rows.push(Row::rate(
        format!("create, {CONCURRENCY} concurrent ({conc_count})"),
        conc_rate,
    ));
    push_latencies(
        &mut rows,
        &format!("create, {CONCURRENCY} concurrent"),
        &mut conc,
        Some(SLO_SINGLE),
    );

    // ------------------------------------------------------------ lists
    for (label, path, slo) in [
        (
            "list 10k pods, namespace, consistent",
            PODS.to_string(),
            SLO_NAMESPACE_LIST,
        ),
        (
            "list 10k pods, namespace, rv=0",
            format!("{PODS}?resourceVersion=0"),
            SLO_NAMESPACE_LIST,
        ),
        (
            "list 10k pods, cluster, consistent",
            ALL_PODS.to_string(),
            SLO_CLUSTER_LIST,
        ),
    ] {
        let mut lat = Vec::with_capacity(LIST_REPS);
        let mut last = Bytes::new();
        for _ in 0..LIST_REPS {
            let t = Instant::now();
            last = api
                .expect(Method::GET, &path, None, Bytes::new(), StatusCode::OK)
                .await?;
            lat.push(t.elapsed());
        }
        let list: Value = serde_json::from_slice(&last).context("list body")?;
        let items = list["items"].as_array().map_or(0, Vec::len);
        ensure!(
            items == TOTAL_PODS,
            "GET {path}: {items} items, wanted {TOTAL_PODS}"
        );
        eprintln!("{label}: p50 {}", fmt_duration(percentile(&mut lat, 50.0)));
        push_latencies(&mut rows, label, &mut lat, Some(slo));
        rows.push(Row::text(
            format!("{label}: response size"),
            format!("{:.1} MiB", last.len() as f64 / (1024.0 * 1024.0)),
        ));
    }

    // ------------------------------------------------------------ watch fan-out
    let fanout = watch_fanout(&api).await?;
    rows.extend(fanout);

    cancel.cancel();
    if tokio::time::timeout(Duration::from_secs(15), server.wait())
        .await
        .is_err()
    {
        eprintln!("warning: the server did not shut down within 15 s");
    }

    println!();
    println!(
        "skiff API server, in process, embedded store, HTTP/1.1 over loopback ({:.0} s in all)",
        bench_started.elapsed().as_secs_f64()
    );
    println!(
        "Kubernetes SLOs (p99): single-object calls 1 s; namespace-wide list 5 s; cluster-wide list 30 s; watch none"
    );
    println!(
        "{:<56} {:>12} {:>16} {:>7}",
        "metric", "value", "Kubernetes SLO", "within"
    );
    for row in rows {
        println!(
            "{:<56} {:>12} {:>16} {:>7}",
            row.metric, row.value, row.slo, row.within
        );
    }
    Ok(())
}

/// What one watcher received: each frame's bytes and when it arrived.
struct Received {
    watcher: usize,
    frames: Vec<(Instant, Bytes)>,
    error: Option<String>,
}

async fn watch_fanout(api: &Api) -> Result<Vec<Row>> {
    // The current revision, to start every watch right after it.
    let list = api
        .expect(
            Method::GET,
            &format!("{PODS}?limit=1"),
            None,
            Bytes::new(),
            StatusCode::OK,
        )
        .await?;
    let list: Value = serde_json::from_slice(&list)?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .context("list resourceVersion")?
        .to_string();

    // Open every watch (response headers in) before the first write.
    let stop = CancellationToken::new();
    let mut watchers = tokio::task::JoinSet::new();
    let path = format!("{PODS}?watch=true&resourceVersion={rv}");
    for watcher in 0..WATCHERS {
        let req = api.request(Method::GET, &path, None, Bytes::new())?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, api.client.request(req))
            .await
            .context("watch: no answer")?
            .context("watch")?;
        ensure!(resp.status() == StatusCode::OK, "watch: {}", resp.status());
        let mut body = resp.into_body();
        let stop = stop.clone();
        watchers.spawn(async move {
            let mut got = Received {
                watcher,
                frames: Vec::new(),
                error: None,
            };
            let mut events = 0;
            while events < WATCH_WRITES {
                let frame = tokio::select! {
                    _ = stop.cancelled() => break,
                    f = body.frame() => f,
                };
                let now = Instant::now();
                match frame {
                    None => {
                        got.error = Some("the watch ended early".into());
                        break;
                    }
                    Some(Err(e)) => {
                        got.error = Some(format!("the watch failed: {e}"));
                        break;
                    }
                    Some(Ok(f)) => {
                        if let Ok(data) = f.into_data() {
                            events += data.iter().filter(|b| **b == b'\n').count();
                            got.frames.push((now, data));
                        }
                    }
                }
            }
            got
        });
    }
    eprintln!("{WATCHERS} watches open from resourceVersion {rv}");

    // Writes at a steady pace: create w-N, then patch it; remember when each was sent and
    // when it was acknowledged (its response read).
    let mut writes: std::collections::HashMap<String, (Instant, Instant)> = Default::default();
    let mut pace = tokio::time::interval(WATCH_PACE);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let writes_started = Instant::now();
    for i in 0..WATCH_WRITES {
        pace.tick().await;
        let sent = Instant::now();
        let name = format!("w-{}", i / 2);
        let body = if i % 2 == 0 {
            api.create_pod(&name).await?
        } else {
            let patch = format!(r#"{{"metadata":{{"labels":{{"step":"{i}"}}}}}}"#);
            api.expect(
                Method::PATCH,
                &format!("{PODS}/{name}"),
                Some("application/merge-patch+json"),
                Bytes::from(patch),
                StatusCode::OK,
            )
            .await?
        };
        let at = Instant::now();
        let obj: Value = serde_json::from_slice(&body)?;
        let rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .context("written object's resourceVersion")?
            .to_string();
        writes.insert(rv, (sent, at));
    }
    let write_secs = writes_started.elapsed().as_secs_f64();
    eprintln!(
        "{WATCH_WRITES} writes in {write_secs:.1} s ({:.0}/s)",
        WATCH_WRITES as f64 / write_secs
    );

    let drain = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(WATCH_DRAIN).await;
            stop.cancel();
        })
    };
    let mut after_ack = Vec::with_capacity(WATCHERS * WATCH_WRITES);
    let mut after_send = Vec::with_capacity(WATCHERS * WATCH_WRITES);
    let mut early = 0usize; // received before the writer had its acknowledgement
    let mut complete = 0usize;
    let mut missed_total = 0usize;
    let mut unexpected = 0usize;
    while let Some(done) = watchers.join_next().await {
        let got = done?;
        let mut seen = std::collections::HashSet::new();
        for (at, data) in &got.frames {
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let ev: Value = serde_json::from_slice(line).context("watch event")?;
                if ev["type"] == "BOOKMARK" {
                    continue;
                }
                let rv = ev["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default();
                let Some((sent, ack)) = writes.get(rv) else {
                    unexpected += 1;
                    continue;
                };
                if !seen.insert(rv.to_string()) {
                    unexpected += 1;
                    continue;
                }
                if *at < *ack {
                    early += 1;
                }
                after_ack.push(at.saturating_duration_since(*ack));
                after_send.push(at.saturating_duration_since(*sent));
            }
        }
        let missed = WATCH_WRITES - seen.len();
        missed_total += missed;
        if missed == 0 {
            complete += 1;
        } else {
            eprintln!(
                "ERROR: watcher {} missed {missed} of {WATCH_WRITES} events{}",
                got.watcher,
                got.error.map(|e| format!(" ({e})")).unwrap_or_default()
            );
        }
    }
    drain.abort();
    if unexpected > 0 {
        eprintln!("ERROR: {unexpected} duplicate or unknown watch events");
    }
    if missed_total > 0 {
        eprintln!(
            "ERROR: {missed_total} of {} deliveries missing",
            WATCHERS * WATCH_WRITES
        );
    }

    let mut rows = Vec::new();
    for (label, delays) in [
        (
            format!("watch x{WATCHERS}: after the write's ack"),
            &mut after_ack,
        ),
        (
            format!("watch x{WATCHERS}: after the write was sent"),
            &mut after_send,
        ),
    ] {
        push_latencies(&mut rows, &label, delays, None);
        rows.push(Row::text(
            format!("{label}: max"),
            fmt_duration(delays.iter().max().copied().unwrap_or_default()),
        ));
    }
    let expected = WATCHERS * WATCH_WRITES;
    let mut delivered = Row::text(
        format!("watch x{WATCHERS}: deliveries ({WATCH_WRITES} writes each)"),
        format!("{}/{expected}", after_ack.len()),
    );
    delivered.slo = "all".into();
    delivered.within = if after_ack.len() == expected && unexpected == 0 {
        "yes"
    } else {
        "NO"
    }
    .into();
    rows.push(delivered);
    rows.push(Row::text(
        format!("watch x{WATCHERS}: watchers that got every event"),
        format!("{complete}/{WATCHERS}"),
    ));
    rows.push(Row::text(
        format!("watch x{WATCHERS}: received before the ack (counted as 0)"),
        early.to_string(),
    ));
    Ok(rows)
}

struct Row {
    metric: String,
    value: String,
    slo: String,
    within: String,
}

impl Row {
    fn text(metric: String, value: String) -> Self {
        Row {
            metric,
            value,
            slo: "—".into(),
            within: "—".into(),
        }
    }

    fn rate(metric: String, per_sec: f64) -> Self {
        Row::text(format!("{metric}: creates/s"), format!("{per_sec:.0}"))
    }
}

/// p50 and p99 rows; the p99 one is compared with `slo` (a p99 objective).
fn push_latencies(rows: &mut Vec<Row>, label: &str, lat: &mut [Duration], slo: Option<Duration>) {
    let p50 = percentile(lat, 50.0);
    let p99 = percentile(lat, 99.0);
    rows.push(Row::text(format!("{label}: p50"), fmt_duration(p50)));
    let mut row = Row::text(format!("{label}: p99"), fmt_duration(p99));
    if let Some(slo) = slo {
        row.slo = format!("p99 <= {}", fmt_duration(slo));
        row.within = if p99 <= slo { "yes" } else { "NO" }.into();
    }
    rows.push(row);
}

/// Nearest-rank percentile (of 20 samples, p99 is the slowest).
fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}
