//! Scheduling throughput: pods bound per second, in process, on the embedded store,
//! printed beside Kubernetes' scheduler_perf numbers.
//!
//! `cargo bench --bench scheduler`. In order:
//! 1. an API server (plain HTTP, embedded store in a temp dir);
//! 2. 1,000 Node objects (Ready; 32 CPUs, 64Gi, 110 pods each) and their Leases in
//!    `kube-node-lease`, renewed every 5 s by the benchmark while it runs (no agents);
//! 3. 10,000 pending pods (100m CPU, 128Mi each; 100 ReplicaSet owners of 100 pods, so
//!    the spreading score has work to do), created 64 at a time;
//! 4. the pods and nodes informers, synced;
//! 5. the scheduler, started on the clock: the time until its informer has seen every
//!    pod bound (`spec.nodeName` set by the bind), so each counted bind is durable and
//!    has come back through a watch.
//!
//! `SKIFF_BENCH_SCHED_PODS` and `SKIFF_BENCH_SCHED_NODES` change the counts (a quick run:
//! `SKIFF_BENCH_SCHED_PODS=1000`). Scheduled events are off (`scheduled_events: false`):
//! they are one more write per pod, and this measures binds.
//!
//! Kubernetes' scheduler_perf (SchedulingBasic, 5,000 nodes, 1,000 + 1,000 pods) reports
//! about 680–810 pods/s on its CI machines; its threshold is 270 pods/s. The server,
//! store, informers, scheduler and every client share this process and this machine's
//! cores.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};
use skiff_api::registry;
use skiff_client::{Client, ClusterConfig, InformerEvent, ObjectKey, Patch};
use skiff_controllers::scheduler::{self, SchedulerConfig};
use skiff_controllers::{Context, ControllerConfig};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const DEFAULT_NODES: usize = 1_000;
const DEFAULT_PODS: usize = 10_000;
/// Pods per owner (a ReplicaSet that does not exist: no controller runs here).
const PODS_PER_OWNER: usize = 100;
const CONCURRENCY: usize = 64;
/// How often the benchmark renews every node's Lease (twice the kubelet's rate).
const LEASE_RENEW: Duration = Duration::from_secs(5);
const LEASE_RENEWERS: usize = 8;
/// The benchmark fails instead of hanging.
const BIND_DEADLINE: Duration = Duration::from_secs(600);
const NS: &str = "default";

const KUBERNETES: &str = "680–810 pods/s at 5,000 nodes";
const TARGET_PODS_PER_SEC: f64 = 5_000.0;

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

fn env_count(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v}")),
        Err(_) => Ok(default),
    }
}

async fn run() -> Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let nodes = env_count("SKIFF_BENCH_SCHED_NODES", DEFAULT_NODES)?;
    let pods = env_count("SKIFF_BENCH_SCHED_PODS", DEFAULT_PODS)?;
    ensure!(nodes > 0, "SKIFF_BENCH_SCHED_NODES must be at least 1");
    let bench_started = Instant::now();

    let dir = tempfile::tempdir()?;
    let cancel = CancellationToken::new();
    let server = skiff_apiserver::start_local(dir.path(), false, cancel.clone())
        .await
        .context("start the API server")?;
    let client = Client::new(&ClusterConfig {
        source: dir.path().join("kubeconfig"),
        context: "bench".into(),
        server: server.url(),
        ca_pem: None,
        insecure_skip_tls_verify: false,
        token: Some(server.tokens().admin().to_string()),
        namespace: NS.into(),
    })?;
    eprintln!(
        "API server at {} (plain HTTP, embedded store)",
        server.url()
    );
    let mut rows = Vec::new();

    // ------------------------------------------------------------ nodes and leases
    let started = Instant::now();
    let c = client.clone();
    concurrently(nodes, CONCURRENCY, move |i| {
        let client = c.clone();
        async move {
            client.create(&registry::NODE, None, &node(i)).await?;
            client
                .create(&registry::LEASE, Some("kube-node-lease"), &lease(i))
                .await?;
            Ok(())
        }
    })
    .await
    .context("create nodes and leases")?;
    eprintln!(
        "{nodes} nodes and leases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let renewals = Arc::new(AtomicUsize::new(0));
    let renewer = tokio::spawn(renew_leases(
        client.clone(),
        nodes,
        renewals.clone(),
        cancel.clone(),
    ));

    // ------------------------------------------------------------ pods
    let started = Instant::now();
    let c = client.clone();
    concurrently(pods, CONCURRENCY, move |i| {
        let client = c.clone();
        async move {
            client.create(&registry::POD, Some(NS), &pod(i)).await?;
            Ok(())
        }
    })
    .await
    .context("create pods")?;
    let create_rate = pods as f64 / started.elapsed().as_secs_f64();
    eprintln!("{pods} pods created: {create_rate:.0}/s");

    // ------------------------------------------------------------ informers
    let ctx = Context::new(
        client.clone(),
        ControllerConfig {
            scheduled_events: false,
            ..Default::default()
        },
    );
    let mut informers = JoinSet::new();
    for informer in [ctx.informers.pods.clone(), ctx.informers.nodes.clone()] {
        let cancel = cancel.clone();
        informers.spawn(async move { informer.run(cancel).await });
    }
    let started = Instant::now();
    ctx.informers.pods.synced().await;
    ctx.informers.nodes.synced().await;
    let sync = started.elapsed();
    eprintln!("informers synced in {:.2} s", sync.as_secs_f64());

    // ------------------------------------------------------------ scheduling
    let mut events = ctx.informers.pods.subscribe();
    let pod_informer = ctx.informers.pods.clone();
    let scheduler_cancel = cancel.child_token();
    let mut config = SchedulerConfig {
        scheduled_events: false,
        ..SchedulerConfig::default()
    };
    config.binds_in_flight = env_count("SKIFF_BENCH_SCHED_BINDS", config.binds_in_flight)?;
    let cpu_before = CpuSample::now();
    let started = Instant::now();
    let scheduler = tokio::spawn(scheduler::run_with(
        ctx.clone(),
        config,
        scheduler_cancel.clone(),
    ));
    let mut bound: HashSet<ObjectKey> = HashSet::with_capacity(pods);
    let mut first_bind = None;
    let count_all = |bound: &mut HashSet<ObjectKey>| {
        bound.clear();
        for p in pod_informer.list() {
            if is_bound(&p)
                && let Some(k) = ObjectKey::of(&p)
            {
                bound.insert(k);
            }
        }
    };
    count_all(&mut bound);
    let deadline = tokio::time::Instant::now() + BIND_DEADLINE;
    while bound.len() < pods {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = tokio::time::sleep_until(deadline) => {
                bail!("only {} of {pods} pods bound after {BIND_DEADLINE:?}", bound.len());
            }
        };
        match event {
            Ok(InformerEvent::Applied { new, .. }) => {
                if is_bound(&new)
                    && let Some(k) = ObjectKey::of(&new)
                {
                    bound.insert(k);
                    first_bind.get_or_insert_with(|| started.elapsed());
                }
            }
            Ok(InformerEvent::Deleted(_)) => {}
            Ok(InformerEvent::Relisted) | Err(RecvError::Lagged(_)) => count_all(&mut bound),
            Err(RecvError::Closed) => bail!("the pods informer stopped"),
        }
    }
    let elapsed = started.elapsed();
    let cpu = CpuSample::now()
        .zip(cpu_before)
        .map(|(after, before)| after.since(&before));
    let rate = pods as f64 / elapsed.as_secs_f64();
    eprintln!(
        "{pods} pods bound in {:.2} s: {rate:.0} pods/s",
        elapsed.as_secs_f64()
    );
    scheduler_cancel.cancel();
    scheduler.await.context("the scheduler task")?;

    // ------------------------------------------------------------ check the placement
    let mut per_node: std::collections::HashMap<String, usize> = Default::default();
    for p in ctx.informers.pods.list() {
        let node = p["spec"]["nodeName"].as_str().unwrap_or("").to_string();
        *per_node.entry(node).or_default() += 1;
    }
    let most = per_node.values().copied().max().unwrap_or(0);
    let least = if per_node.len() < nodes {
        0
    } else {
        per_node.values().copied().min().unwrap_or(0)
    };
    ensure!(most <= 110, "a node got {most} pods (allocatable 110)");

    cancel.cancel();
    renewer.await.context("the lease renewer")??;
    while informers.join_next().await.is_some() {}
    if tokio::time::timeout(Duration::from_secs(15), server.wait())
        .await
        .is_err()
    {
        eprintln!("warning: the server did not shut down within 15 s");
    }

    rows.push(Row::text(
        "nodes (Leases renewed every 5 s)",
        nodes.to_string(),
    ));
    rows.push(Row::text("pods", pods.to_string()));
    rows.push(Row::text(
        format!("pod creates/s ({CONCURRENCY} concurrent)"),
        format!("{create_rate:.0}"),
    ));
    rows.push(Row::text(
        format!("informer sync ({pods} pods, {nodes} nodes)"),
        fmt_duration(sync),
    ));
    rows.push(Row::text(
        "first pod bound after",
        fmt_duration(first_bind.unwrap_or_default()),
    ));
    rows.push(Row::text("every pod bound after", fmt_duration(elapsed)));
    rows.push(Row {
        metric: "pods bound/s".into(),
        value: format!("{rate:.0}"),
        kubernetes: KUBERNETES.into(),
        target: format!(">= {TARGET_PODS_PER_SEC:.0}"),
        within: if rate >= TARGET_PODS_PER_SEC {
            "yes"
        } else {
            "NO"
        }
        .into(),
    });
    if let Some(cpu) = &cpu {
        rows.push(Row::text(
            "CPU of this process per pod bound",
            fmt_duration(cpu.process.div_f64(pods as f64)),
        ));
        rows.push(Row::text(
            format!("machine ({} cores) busy with this process", cpu.cores),
            format!("{:.0} %", 100.0 * cpu.process_share()),
        ));
        rows.push(Row::text(
            "machine busy with other processes",
            format!("{:.0} %", 100.0 * cpu.others_share()),
        ));
    }
    rows.push(Row::text(
        "pods per node (fewest, most)",
        format!("{least}, {most}"),
    ));
    rows.push(Row::text(
        "lease renewals during the run",
        renewals.load(Ordering::Relaxed).to_string(),
    ));

    println!();
    println!(
        "skiff scheduler, in process, embedded store, HTTP/1.1 over loopback ({:.0} s in all)",
        bench_started.elapsed().as_secs_f64()
    );
    println!(
        "Kubernetes scheduler_perf (SchedulingBasic): {KUBERNETES} on its CI; target here >= {TARGET_PODS_PER_SEC:.0} pods/s"
    );
    println!(
        "{:<44} {:>12} {:>32} {:>8} {:>7}",
        "metric", "value", "Kubernetes", "target", "within"
    );
    for row in rows {
        println!(
            "{:<44} {:>12} {:>32} {:>8} {:>7}",
            row.metric, row.value, row.kubernetes, row.target, row.within
        );
    }
    Ok(())
}

fn is_bound(pod: &Value) -> bool {
    pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty())
}

fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

fn node(i: usize) -> Value {
    let name = node_name(i);
    let resources = json!({"cpu": "32", "memory": "64Gi", "pods": "110"});
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "topology.kubernetes.io/zone": format!("zone-{}", i % 3),
        }},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "simulated by the benchmark"}],
        }
    })
}

fn micro_time() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn lease(i: usize) -> Value {
    let name = node_name(i);
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro_time()}
    })
}

fn pod(i: usize) -> Value {
    let owner = i / PODS_PER_OWNER;
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("pod-{i:06}"),
            "labels": {"app": format!("app-{owner}")},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("app-{owner}"),
                "uid": format!("00000000-0000-4000-8000-{owner:012}"),
                "controller": true, "blockOwnerDeletion": true
            }]
        },
        "spec": {"containers": [{
            "name": "main", "image": "file:///srv/app.wasm",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}
        }]}
    })
}

/// Runs `job(i)` for every `i` in `0..count`, `width` at a time.
async fn concurrently<F, Fut>(count: usize, width: usize, job: F) -> Result<()>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..width {
        let next = next.clone();
        let job = job.clone();
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(());
                }
                job(i).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Renews every node's Lease each [`LEASE_RENEW`], as kubelets would, until `cancel`.
async fn renew_leases(
    client: Client,
    nodes: usize,
    renewals: Arc<AtomicUsize>,
    cancel: CancellationToken,
) -> Result<()> {
    let mut tick = tokio::time::interval(LEASE_RENEW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate: the leases are fresh
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let round = concurrently(nodes, LEASE_RENEWERS, {
            let client = client.clone();
            let renewals = renewals.clone();
            move |i| {
                let client = client.clone();
                let renewals = renewals.clone();
                async move {
                    let patch = Patch::Merge(json!({"spec": {"renewTime": micro_time()}}));
                    client
                        .patch(
                            &registry::LEASE,
                            Some("kube-node-lease"),
                            &node_name(i),
                            &patch,
                        )
                        .await?;
                    renewals.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            }
        });
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            done = round => done.context("renew leases")?,
        }
    }
}

/// Process and machine CPU counters (Linux `/proc`), to tell how much of the machine
/// the run had: other processes on a shared machine slow it down.
#[derive(Clone, Copy, Debug)]
struct CpuSample {
    /// This process: user + system.
    process: Duration,
    /// Every core: busy, and busy + idle.
    busy: Duration,
    total: Duration,
    cores: usize,
}

/// What `/proc` counts in (USER_HZ, 100 on Linux).
const TICK: Duration = Duration::from_millis(10);

impl CpuSample {
    fn now() -> Option<CpuSample> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // After the command (which may contain spaces and parentheses): state, ppid, …;
        // utime and stime are fields 14 and 15 of the line, 11th and 12th here.
        let after = stat.rsplit_once(')')?.1;
        let field = |i: usize| after.split_whitespace().nth(i)?.parse::<u32>().ok();
        let process = TICK * (field(11)? + field(12)?);
        let machine = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = machine
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let total: u64 = cpu.iter().take(8).sum();
        let idle = cpu.get(3)? + cpu.get(4)?;
        let cores = machine
            .lines()
            .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
            .count();
        Some(CpuSample {
            process,
            busy: TICK * u32::try_from(total - idle).ok()?,
            total: TICK * u32::try_from(total).ok()?,
            cores,
        })
    }

    fn since(&self, before: &CpuSample) -> CpuSample {
        CpuSample {
            process: self.process.saturating_sub(before.process),
            busy: self.busy.saturating_sub(before.busy),
            total: self.total.saturating_sub(before.total),
            cores: self.cores,
        }
    }

    fn process_share(&self) -> f64 {
        self.process.as_secs_f64() / self.total.as_secs_f64().max(1e-9)
    }

    fn others_share(&self) -> f64 {
        (self.busy.saturating_sub(self.process)).as_secs_f64() / self.total.as_secs_f64().max(1e-9)
    }
}

struct Row {
    metric: String,
    value: String,
    kubernetes: String,
    target: String,
    within: String,
}

impl Row {
    fn text(metric: impl Into<String>, value: String) -> Self {
        Row {
            metric: metric.into(),
            value,
            kubernetes: "—".into(),
            target: "—".into(),
            within: "—".into(),
        }
    }
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
