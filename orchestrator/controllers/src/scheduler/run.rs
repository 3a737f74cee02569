//! The scheduling loop: informer events in, decisions one at a time on the [`Snapshot`],
//! binds out concurrently.
//!
//! ```text
//!  pods, nodes informers ──events──▶ Snapshot (usage) + SchedulingQueue (pending pods)
//!                                           │ pop, schedule (pure), assume
//!                                           ▼
//!                         JoinSet of binds (≤ binds_in_flight)  ── POST pods/x/binding
//!                                           │ ok: done (the informer confirms)
//!                                           │ err: forget the assumption, back off
//!  unschedulable ──▶ park, and (once per message) ──▶ reporter: PodScheduled=False
//!                                                     + Warning FailedScheduling
//!  bound (optional) ─────────────────────────────▶ reporter: Normal Scheduled
//! ```
//!
//! One task owns the state, so a decision never races another; the binds and reports run
//! beside it. The reporter is best effort and bounded: `Scheduled` events are dropped
//! rather than slowing binds down when it falls behind.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use skiff_api::registry;
use skiff_client::{Client, Informer, InformerEvent, ObjectKey};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::node::NodeInfo;
use super::pod::PodInfo;
use super::queue::SchedulingQueue;
use super::snapshot::Snapshot;
use super::{NodeName, ScheduleOptions, Scratch, schedule_in};
use crate::context::{Context, EventRecorder};

/// The component name on the scheduler's Events, as Kubernetes'.
const COMPONENT: &str = "default-scheduler";
/// Reports (status writes and events) queued before `Scheduled` events are dropped.
const REPORT_QUEUE: usize = 4096;
/// Reports written at once.
const REPORTS_IN_FLIGHT: usize = 16;
/// How long in-flight binds and reports may finish after cancellation.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Decisions between yields to the runtime (a long queue must not starve other tasks).
const DECISIONS_PER_YIELD: usize = 64;

/// Scheduler settings.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Binds written concurrently: enough for the store to group-commit them.
    pub binds_in_flight: usize,
    /// Record a Normal `Scheduled` Event per bind, as Kubernetes does. It costs one more
    /// write per pod; it is written in the background, best effort.
    pub scheduled_events: bool,
    /// Score weights and how many nodes a decision looks at.
    pub options: ScheduleOptions,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            binds_in_flight: 64,
            scheduled_events: true,
            options: ScheduleOptions::default(),
        }
    }
}

/// Runs the scheduler until `cancel`, with [`SchedulerConfig`]'s defaults and
/// `ctx.config.scheduled_events`. Reads `ctx.informers.pods` and `.nodes` (which the
/// caller runs) and waits for both to sync.
pub async fn run(ctx: Context, cancel: CancellationToken) {
    let config = SchedulerConfig {
        scheduled_events: ctx.config.scheduled_events,
        ..SchedulerConfig::default()
    };
    run_with(ctx, config, cancel).await
}

/// [`run`] with explicit settings.
pub async fn run_with(ctx: Context, config: SchedulerConfig, cancel: CancellationToken) {
    let (reports, rx) = mpsc::channel(REPORT_QUEUE);
    let reporter = Reporter {
        client: ctx.client.clone(),
        events: ctx.events.for_component(COMPONENT),
    };
    let mut scheduler = Scheduler {
        client: ctx.client.clone(),
        pods: ctx.informers.pods.clone(),
        nodes: ctx.informers.nodes.clone(),
        config,
        known: HashMap::new(),
        snapshot: Snapshot::new(),
        queue: SchedulingQueue::new(),
        binds: JoinSet::new(),
        in_flight: HashMap::new(),
        reports,
        cluster_changed: false,
        next_start: 0,
        scratch: Scratch::default(),
    };
    let scheduling = async {
        scheduler.run(&cancel).await;
        // Dropping the scheduler closes the report queue: the reporter drains and ends.
        drop(scheduler);
    };
    tokio::join!(scheduling, reporter.run(rx, &cancel));
}

/// The last object seen for a pod and its parse.
struct Known {
    raw: Arc<Value>,
    info: Arc<PodInfo>,
}

/// A bind in flight.
struct Binding {
    key: ObjectKey,
    uid: String,
    node: NodeName,
}

enum Wake {
    Cancelled,
    Pod(Result<InformerEvent, RecvError>),
    Node(Result<InformerEvent, RecvError>),
    Bind(Result<(Id, skiff_client::Result<()>), JoinError>),
    Timer,
}

struct Scheduler {
    client: Client,
    pods: Informer,
    nodes: Informer,
    config: SchedulerConfig,
    known: HashMap<ObjectKey, Known>,
    snapshot: Snapshot,
    queue: SchedulingQueue,
    binds: JoinSet<skiff_client::Result<()>>,
    in_flight: HashMap<Id, Binding>,
    reports: mpsc::Sender<Report>,
    /// Something changed that may make room for parked pods.
    cluster_changed: bool,
    /// The node slot the next decision starts filtering at.
    next_start: usize,
    /// Buffers reused by each decision.
    scratch: Scratch,
}

impl Scheduler {
    async fn run(&mut self, cancel: &CancellationToken) {
        // Subscribe before the first list so that nothing is missed between the two.
        let mut pod_events = self.pods.subscribe();
        let mut node_events = self.nodes.subscribe();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = async { self.pods.synced().await; self.nodes.synced().await } => {}
        }
        let started = Instant::now();
        self.resync_nodes();
        self.resync_pods();
        tracing::info!(
            nodes = self.snapshot.node_count(),
            pods = self.known.len(),
            pending = self.queue.len(),
            took_ms = started.elapsed().as_millis(),
            "scheduler started"
        );
        loop {
            // Take in everything already there before deciding anything.
            loop {
                let event = match node_events.try_recv() {
                    Err(broadcast::error::TryRecvError::Empty) => break,
                    Err(broadcast::error::TryRecvError::Lagged(_)) => Err(RecvError::Lagged(0)),
                    Err(broadcast::error::TryRecvError::Closed) => break,
                    Ok(e) => Ok(e),
                };
                self.node_event(event);
            }
            loop {
                let event = match pod_events.try_recv() {
                    Err(broadcast::error::TryRecvError::Empty) => break,
                    Err(broadcast::error::TryRecvError::Lagged(_)) => Err(RecvError::Lagged(0)),
                    Err(broadcast::error::TryRecvError::Closed) => break,
                    Ok(e) => Ok(e),
                };
                self.pod_event(event);
            }
            while let Some(done) = self.binds.try_join_next_with_id() {
                self.bind_done(done);
            }
            let now = Instant::now();
            if std::mem::take(&mut self.cluster_changed) {
                self.queue.cluster_changed(now);
            }
            self.queue.tick(now);
            self.schedule_pending().await;

            let timer = self.queue.next_timer();
            let wake = tokio::select! {
                _ = cancel.cancelled() => Wake::Cancelled,
                e = node_events.recv() => Wake::Node(e),
                e = pod_events.recv() => Wake::Pod(e),
                Some(done) = self.binds.join_next_with_id(), if !self.binds.is_empty() => Wake::Bind(done),
                _ = sleep_until(timer), if timer.is_some() => Wake::Timer,
            };
            match wake {
                Wake::Cancelled => break,
                // Cannot happen while we hold the informers; never spin on it.
                Wake::Node(Err(RecvError::Closed)) | Wake::Pod(Err(RecvError::Closed)) => {
                    tracing::error!("an informer's event stream closed: the scheduler stops");
                    break;
                }
                Wake::Node(e) => self.node_event(e),
                Wake::Pod(e) => self.pod_event(e),
                Wake::Bind(done) => self.bind_done(done),
                Wake::Timer => {}
            }
        }
        // Let the binds already sent finish (their outcome no longer matters to us).
        let drain = async { while self.binds.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            self.binds.abort_all();
        }
    }

    /// Decides for pending pods while there is room for more binds in flight.
    async fn schedule_pending(&mut self) {
        let mut decided = 0;
        while self.binds.len() < self.config.binds_in_flight.max(1) {
            let Some(pod) = self.queue.pop() else { break };
            decided += 1;
            if decided % DECISIONS_PER_YIELD == 0 {
                tokio::task::yield_now().await;
            }
            match schedule_in(
                &pod,
                &self.snapshot,
                &self.config.options,
                self.next_start,
                &mut self.scratch,
            ) {
                Ok(super::Decision { node, examined }) => {
                    self.next_start =
                        (self.next_start + examined) % self.snapshot.slots().len().max(1);
                    tracing::debug!(pod = %pod.key, %node, "scheduled");
                    self.snapshot.assume(pod.clone(), &node);
                    let handle =
                        self.binds
                            .spawn(bind(self.client.clone(), pod.clone(), node.clone()));
                    self.in_flight.insert(
                        handle.id(),
                        Binding {
                            key: pod.key.clone(),
                            uid: pod.uid.clone(),
                            node,
                        },
                    );
                }
                Err(why) => {
                    let message = why.to_string();
                    tracing::debug!(pod = %pod.key, %message, "unschedulable");
                    self.queue.unschedulable(&pod.key, Instant::now());
                    let new_message = pod.unschedulable_message.as_deref() != Some(&message)
                        && self.queue.should_report(&pod.key, &message);
                    if let Some(known) = self.known.get(&pod.key).filter(|_| new_message) {
                        self.queue.reported(&pod.key, &message);
                        let report = Report::Unschedulable {
                            pod: known.raw.clone(),
                            message,
                        };
                        // Back-pressure: these are rare and must not be lost.
                        if self.reports.send(report).await.is_err() {
                            tracing::debug!("the reporter has stopped");
                        }
                    }
                }
            }
        }
    }

    fn bind_done(&mut self, done: Result<(Id, skiff_client::Result<()>), JoinError>) {
        let (id, result) = match done {
            Ok((id, result)) => (id, Ok(result)),
            Err(e) => (e.id(), Err(e)),
        };
        let Some(Binding { key, uid, node }) = self.in_flight.remove(&id) else {
            return;
        };
        let error = match result {
            Ok(Ok(())) => {
                self.queue.bound(&key, &uid);
                if self.config.scheduled_events
                    && let Some(known) = self.known.get(&key)
                {
                    let message = format!("Successfully assigned {key} to {node}");
                    let report = Report::Scheduled {
                        pod: known.raw.clone(),
                        message,
                    };
                    if self.reports.try_send(report).is_err() {
                        tracing::debug!(pod = %key, "event queue full: Scheduled event dropped");
                    }
                }
                return;
            }
            Ok(Err(e)) if e.is_not_found() => {
                // The pod is gone.
                self.forget(&key, &uid);
                self.queue.remove(&key);
                return;
            }
            // Bound by someone else, being deleted, or a busy object: the informer has
            // the truth; retried after a backoff if it is still pending.
            Ok(Err(e)) if e.is_conflict() => {
                tracing::debug!(pod = %key, %node, error = %e, "bind conflict");
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(error) = error {
            tracing::warn!(pod = %key, %node, %error, "bind failed");
        }
        self.forget(&key, &uid);
        self.queue.bind_failed(&key, &uid, Instant::now());
    }

    /// Drops our assumption about `key` if it is still the one made for `uid`.
    fn forget(&mut self, key: &ObjectKey, uid: &str) {
        if self
            .snapshot
            .placed(key)
            .is_some_and(|(p, assumed)| assumed && p.uid == uid)
        {
            self.snapshot.forget(key);
            self.cluster_changed = true;
        }
    }

    // ------------------------------------------------------------------ informer events

    fn pod_event(&mut self, event: Result<InformerEvent, RecvError>) {
        match event {
            Ok(InformerEvent::Applied { new, .. }) => self.apply_pod(new),
            Ok(InformerEvent::Deleted(old)) => {
                if let Some(key) = ObjectKey::of(&old) {
                    self.delete_pod(&key);
                }
            }
            Ok(InformerEvent::Relisted) | Err(RecvError::Lagged(_)) => self.resync_pods(),
            Err(RecvError::Closed) => {}
        }
    }

    fn node_event(&mut self, event: Result<InformerEvent, RecvError>) {
        match event {
            Ok(InformerEvent::Applied { new, .. }) => self.apply_node(&new),
            Ok(InformerEvent::Deleted(old)) => {
                if let Some(name) = old.pointer("/metadata/name").and_then(Value::as_str) {
                    self.snapshot.remove_node(name);
                }
            }
            Ok(InformerEvent::Relisted) | Err(RecvError::Lagged(_)) => self.resync_nodes(),
            Err(RecvError::Closed) => {}
        }
    }

    fn apply_pod(&mut self, raw: Arc<Value>) {
        let Some(key) = ObjectKey::of(&raw) else {
            return;
        };
        let parsed = match self.known.get(&key) {
            Some(k) if Arc::ptr_eq(&k.raw, &raw) => return,
            Some(k) => PodInfo::parse_update(&raw, &k.raw, &k.info),
            None => PodInfo::parse(&raw),
        };
        let info = match parsed {
            Ok(info) => Arc::new(info),
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "cannot schedule a pod that does not parse");
                self.delete_pod(&key);
                return;
            }
        };
        self.known.insert(
            key,
            Known {
                raw,
                info: info.clone(),
            },
        );
        self.place(info);
    }

    /// Files a pod's latest state into the snapshot and the queue.
    fn place(&mut self, info: Arc<PodInfo>) {
        if info.node_name.is_some() {
            if self.snapshot.add_pod(info.clone()) {
                self.cluster_changed = true;
            }
            self.queue.remove(&info.key);
            return;
        }
        if let Some((placed, assumed)) = self.snapshot.placed(&info.key) {
            // Our bind is in flight or not yet seen: this older unbound state is stale.
            if assumed && placed.uid == info.uid {
                return;
            }
            // The pod was recreated under the same name.
            if self.snapshot.remove_pod(&info.key) {
                self.cluster_changed = true;
            }
        }
        if info.is_pending() {
            self.queue.upsert(info, Instant::now());
        } else {
            self.queue.remove(&info.key);
        }
    }

    fn delete_pod(&mut self, key: &ObjectKey) {
        self.known.remove(key);
        if self.snapshot.remove_pod(key) {
            self.cluster_changed = true;
        }
        self.queue.remove(key);
    }

    /// Reconciles with the informer's whole cache (after a relist or a lag).
    fn resync_pods(&mut self) {
        let objects = self.pods.list();
        let mut seen = HashSet::with_capacity(objects.len());
        for raw in objects {
            if let Some(key) = ObjectKey::of(&raw) {
                seen.insert(key);
            }
            self.apply_pod(raw);
        }
        let gone: Vec<ObjectKey> = self
            .known
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.delete_pod(&key);
        }
    }

    fn apply_node(&mut self, raw: &Value) {
        if let Some(info) = NodeInfo::parse(raw)
            && self.snapshot.upsert_node(info)
        {
            self.cluster_changed = true;
        }
    }

    fn resync_nodes(&mut self) {
        let objects = self.nodes.list();
        let mut seen = HashSet::with_capacity(objects.len());
        for raw in &objects {
            if let Some(name) = raw.pointer("/metadata/name").and_then(Value::as_str) {
                seen.insert(name.to_string());
            }
            self.apply_node(raw);
        }
        let gone: Vec<String> = self
            .snapshot
            .slots()
            .iter()
            .flatten()
            .filter(|s| s.info.is_some() && !seen.contains(&*s.name))
            .map(|s| s.name.to_string())
            .collect();
        for name in gone {
            self.snapshot.remove_node(&name);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `POST pods/{name}/binding`.
async fn bind(client: Client, pod: Arc<PodInfo>, node: NodeName) -> skiff_client::Result<()> {
    let ns = pod.key.namespace_str();
    let name = pod.key.name.as_str();
    let path = Client::item_path(&registry::POD, Some(ns), name, Some("binding"));
    let body = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": pod.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": &*node},
    });
    let bytes = serde_json::to_vec(&body).map_err(skiff_client::Error::Encode)?;
    client
        .json(Method::POST, &path, Some(("application/json", bytes)))
        .await?;
    Ok(())
}

/// What the reporter writes.
enum Report {
    /// `PodScheduled=False`, reason `Unschedulable`, and a Warning `FailedScheduling`.
    Unschedulable { pod: Arc<Value>, message: String },
    /// A Normal `Scheduled` event.
    Scheduled { pod: Arc<Value>, message: String },
}

/// Writes reports in the background, a few at a time.
struct Reporter {
    client: Client,
    events: EventRecorder,
}

impl Reporter {
    async fn run(self, mut queue: mpsc::Receiver<Report>, cancel: &CancellationToken) {
        let mut writes = JoinSet::new();
        loop {
            tokio::select! {
                report = queue.recv(), if writes.len() < REPORTS_IN_FLIGHT => {
                    let Some(report) = report else { break };
                    writes.spawn(write_report(self.client.clone(), self.events.clone(), report));
                }
                Some(_) = writes.join_next(), if !writes.is_empty() => {}
            }
        }
        // The queue is closed: the scheduler has stopped. Finish what was started.
        let drain = async { while writes.join_next().await.is_some() {} };
        let grace = async {
            cancel.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            _ = drain => {}
            _ = grace => writes.abort_all(),
        }
    }
}

async fn write_report(client: Client, events: EventRecorder, report: Report) {
    match report {
        Report::Scheduled { pod, message } => {
            events.record(&pod, "Normal", "Scheduled", &message).await;
        }
        Report::Unschedulable { pod, message } => {
            if let Err(e) = set_unschedulable(&client, &pod, &message).await
                && !e.is_not_found()
            {
                tracing::debug!(error = %e, "could not set PodScheduled=False");
            }
            events
                .record(&pod, "Warning", "FailedScheduling", &message)
                .await;
        }
    }
}

/// Sets `PodScheduled=False` (reason `Unschedulable`) with a strategic merge patch of the
/// status: conditions merge by type, the others stay.
async fn set_unschedulable(
    client: &Client,
    pod: &Value,
    message: &str,
) -> skiff_client::Result<()> {
    let Some(key) = ObjectKey::of(pod) else {
        return Ok(());
    };
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastTransitionTime": now,
    }]}});
    let path = Client::item_path(
        &registry::POD,
        Some(key.namespace_str()),
        &key.name,
        Some("status"),
    );
    let bytes = serde_json::to_vec(&patch).map_err(skiff_client::Error::Encode)?;
    client
        .json(
            Method::PATCH,
            &path,
            Some(("application/strategic-merge-patch+json", bytes)),
        )
        .await?;
    Ok(())
}
