//! The node agent (the kubelet's job): registers the Node, heartbeats through its Lease,
//! watches the pods bound to the node and runs each in a pod worker, reports their status,
//! and serves their logs to the API server.
//!
//! Where a newcomer starts: [`Agent::start`] wires the pieces, each a task under the
//! agent's cancellation token:
//!
//! ```text
//!  informer (pods, spec.nodeName=<node>) ──▶ controller: desired pods vs pod workers
//!                                              │ start / update / stop (level-triggered)
//!                                              ▼
//!  persisted pods (data_dir/pods/*/pod.json) ─▶ pod workers (worker.rs) ──state──▶ status writer
//!                                              │ Host::load / run / http_service     (status.rs: pure
//!                                              ▼                                      derive, CAS write)
//!                                        ContainerLog ◀── agent API (logs_api.rs) ◀── apiserver pods/log
//!  node.rs: Node + status heartbeat        lease.rs: kube-node-lease/<node>
//! ```
//!
//! Edge autonomy: every pod's object is saved under its directory ([`persist`]); at start
//! the saved pods run before the API answers; while the API is unreachable they keep
//! running (the informer retries, status writes wait for the next pass); when it answers
//! again the controller reconciles — pods deleted meanwhile are stopped and torn down —
//! and every status is written again. Nothing a guest or a bad object does stops the
//! agent: a pod that cannot run is a pod status.

pub mod backoff;
pub mod env;
pub mod error;
pub mod ipam;
pub mod lease;
pub mod logs_api;
pub mod node;
pub mod persist;
pub mod pod_state;
pub mod status;
mod status_sync;
pub mod volumes;
pub mod worker;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use skiff_api::registry;
use skiff_client::{Client, Informer, InformerEvent, ListParams};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use backoff::BackoffConfig;
pub use error::{AgentError, AgentResult};
pub use node::NodeCapacity;
pub use worker::HttpEndpoint;

use crate::host::Host;
use crate::http::{HttpConfig, HttpService};
use ipam::{Cidr, Ipam};
use status_sync::StatusWriter;
use worker::PodHandle;

/// How long a torn-down pod's uid is remembered, so that a stale informer entry does not
/// start it again.
const FORGET_TORN_DOWN: Duration = Duration::from_secs(600);

/// Everything the agent is configured with.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The Node's name.
    pub node_name: String,
    /// The address the node advertises (`InternalIP`), and the pods' `hostIP`.
    pub node_ip: IpAddr,
    /// Where the agent API listens (port 0 picks one; the Node reports the real one).
    pub agent_listen: SocketAddr,
    /// Pods' directories (`<data_dir>/pods/<uid>`).
    pub data_dir: PathBuf,
    /// The token the API server shows on the agent API.
    pub node_token: String,
    /// Pods get virtual addresses from this range.
    pub pod_cidr: String,
    pub capacity: NodeCapacity,
    pub labels: BTreeMap<String, String>,
    /// The Lease's duration; it is renewed every quarter of it.
    pub lease_duration: Duration,
    /// How often the Node's status is posted.
    pub node_status_interval: Duration,
    /// Container restart (CrashLoopBackOff) and retry back-off.
    pub restart_backoff: BackoffConfig,
    /// How often every pod is reconciled and its status compared, besides on events.
    pub resync_interval: Duration,
    /// The longest one API call may take.
    pub api_timeout: Duration,
    /// How HTTP components serve.
    pub http: HttpConfig,
}

impl AgentConfig {
    /// The kubelet's defaults: agent API on 0.0.0.0:10250, pods from 10.42.0.0/24, this
    /// machine's capacity, a 40 s lease, back-off from 10 s to 5 min.
    pub fn new(
        node_name: impl Into<String>,
        node_ip: IpAddr,
        data_dir: PathBuf,
        node_token: String,
    ) -> AgentConfig {
        AgentConfig {
            node_name: node_name.into(),
            node_ip,
            agent_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 10250),
            data_dir,
            node_token,
            pod_cidr: "10.42.0.0/24".into(),
            capacity: NodeCapacity::detect(),
            labels: BTreeMap::new(),
            lease_duration: Duration::from_secs(40),
            node_status_interval: Duration::from_secs(40),
            restart_backoff: BackoffConfig::default(),
            resync_interval: Duration::from_secs(10),
            api_timeout: Duration::from_secs(15),
            http: HttpConfig::default(),
        }
    }

    /// Retries of API calls: quick, capped low.
    pub(crate) fn api_backoff(&self) -> BackoffConfig {
        let base = self.restart_backoff.base.min(Duration::from_secs(1));
        BackoffConfig {
            base,
            cap: Duration::from_secs(10).max(base),
            reset_after: Duration::MAX,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// What the agent's tasks share.
pub(crate) struct Shared {
    pub config: AgentConfig,
    pub client: Client,
    pub host: Arc<Host>,
    /// `status.hostIP` of the pods.
    pub host_ip: String,
    /// The agent API's port (the Node's `daemonEndpoints`).
    pub agent_port: u16,
    /// The agent stops.
    pub cancel: CancellationToken,
    pub status: Arc<StatusWriter>,
    pods: Mutex<BTreeMap<String, Arc<PodHandle>>>,
    torn_down: Mutex<BTreeMap<String, Instant>>,
    ipam: Mutex<Ipam>,
    workers: TaskTracker,
}

impl Shared {
    pub fn pod(&self, uid: &str) -> Option<Arc<PodHandle>> {
        lock(&self.pods).get(uid).cloned()
    }

    pub fn pod_uids(&self) -> Vec<String> {
        lock(&self.pods).keys().cloned().collect()
    }

    /// The pod `namespace/name` running here (the newest when a deleted one with the
    /// same name is still stopping).
    pub fn find_pod(&self, namespace: &str, name: &str) -> Option<Arc<PodHandle>> {
        let pods = lock(&self.pods);
        let mut matching: Vec<&Arc<PodHandle>> = pods
            .values()
            .filter(|h| h.namespace == namespace && h.name == name)
            .collect();
        matching.sort_by_key(|h| h.gone.is_cancelled());
        matching.first().map(|h| (*h).clone())
    }

    pub fn allocate_ip(&self, uid: &str, preferred: Option<IpAddr>) -> Option<IpAddr> {
        lock(&self.ipam).allocate(uid, preferred)
    }

    pub fn release_ip(&self, uid: &str) {
        lock(&self.ipam).release(uid);
    }

    /// Starts a worker for the pod, or hands the running one the newer object.
    fn ensure_worker(self: &Arc<Self>, raw: Arc<Value>) {
        let Some(uid) = raw.pointer("/metadata/uid").and_then(Value::as_str) else {
            return;
        };
        if let Some(h) = self.pod(uid) {
            h.observe(raw);
            return;
        }
        if self.cancel.is_cancelled() || lock(&self.torn_down).contains_key(uid) {
            return;
        }
        let h = match PodHandle::new(self, raw.clone()) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(uid, error = %e, "cannot run a pod");
                lock(&self.torn_down).insert(uid.to_string(), Instant::now());
                return;
            }
        };
        tracing::info!(pod = %h.key(), uid, "starting pod worker");
        lock(&self.pods).insert(h.uid.clone(), h.clone());
        let shared = self.clone();
        self.workers.spawn(async move {
            let torn_down = worker::run(shared.clone(), h.clone()).await;
            let mut pods = lock(&shared.pods);
            if pods.get(&h.uid).is_some_and(|p| Arc::ptr_eq(p, &h)) {
                pods.remove(&h.uid);
            }
            drop(pods);
            if torn_down {
                let mut gone = lock(&shared.torn_down);
                let now = Instant::now();
                gone.retain(|_, at| now.duration_since(*at) < FORGET_TORN_DOWN);
                gone.insert(h.uid.clone(), now);
            }
        });
    }

    /// Desired pods (the informer's) against running workers.
    fn reconcile(self: &Arc<Self>, informer: &Informer) {
        if !informer.has_synced() {
            // Not heard from the API yet: the saved pods run as they are.
            return;
        }
        let mut desired = BTreeMap::new();
        for pod in informer.list() {
            let on_node = pod.pointer("/spec/nodeName").and_then(Value::as_str)
                == Some(self.config.node_name.as_str());
            if let (true, Some(uid)) = (
                on_node,
                pod.pointer("/metadata/uid").and_then(Value::as_str),
            ) {
                desired.insert(uid.to_string(), pod.clone());
            }
        }
        for pod in desired.values() {
            self.ensure_worker(pod.clone());
        }
        let running: Vec<Arc<PodHandle>> = lock(&self.pods).values().cloned().collect();
        for h in running {
            if !desired.contains_key(&h.uid) && !h.gone.is_cancelled() {
                tracing::info!(pod = %h.key(), "pod left the API; stopping it");
                h.gone.cancel();
            }
        }
    }
}

/// The agent. See the module doc.
#[derive(Debug)]
pub struct Agent;

/// A started agent.
pub struct RunningAgent {
    shared: Arc<Shared>,
    tasks: TaskTracker,
    addr: SocketAddr,
}

impl std::fmt::Debug for RunningAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningAgent")
            .field("node", &self.shared.config.node_name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts the agent: binds its API, starts the saved pods, then registers the node,
    /// heartbeats and follows the API until `cancel`. Fails only on what it cannot work
    /// without (a bad pod CIDR, an unusable data directory, a port in use).
    pub async fn start(
        config: AgentConfig,
        client: Client,
        host: Arc<Host>,
        cancel: CancellationToken,
    ) -> AgentResult<RunningAgent> {
        let cidr: Cidr = config
            .pod_cidr
            .parse()
            .map_err(|e| AgentError::Config(format!("pod CIDR: {e}")))?;
        let pods_dir = persist::pods_dir(&config.data_dir);
        std::fs::create_dir_all(&pods_dir).map_err(|e| AgentError::io(&pods_dir, e))?;
        let listener = tokio::net::TcpListener::bind(config.agent_listen)
            .await
            .map_err(|source| AgentError::Listen {
                addr: config.agent_listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| AgentError::io(&pods_dir, e))?;
        let shared = Arc::new(Shared {
            host_ip: config.node_ip.to_string(),
            agent_port: addr.port(),
            client: client.clone(),
            host,
            cancel: cancel.clone(),
            status: Arc::new(StatusWriter::default()),
            pods: Mutex::new(BTreeMap::new()),
            torn_down: Mutex::new(BTreeMap::new()),
            ipam: Mutex::new(Ipam::new(cidr)),
            workers: TaskTracker::new(),
            config,
        });

        // The saved pods first: they run whether or not the API answers.
        let node = shared.config.node_name.clone();
        for (uid, pod) in persist::load_all(&shared.config.data_dir) {
            if pod.pointer("/spec/nodeName").and_then(Value::as_str) != Some(node.as_str()) {
                tracing::warn!(uid, "a saved pod is bound to another node; leaving it");
                continue;
            }
            shared.ensure_worker(Arc::new(pod));
        }

        let tasks = TaskTracker::new();
        tasks.spawn(logs_api::serve(listener, shared.clone(), cancel.clone()));
        tasks.spawn(node::run(shared.clone(), cancel.clone()));
        tasks.spawn(lease::run(shared.clone(), cancel.clone()));
        tasks.spawn(shared.status.clone().run(shared.clone(), cancel.clone()));
        let informer = Informer::new(
            client,
            &registry::POD,
            ListParams::default().fields(&format!("spec.nodeName={node}")),
        );
        {
            let informer = informer.clone();
            let cancel = cancel.clone();
            tasks.spawn(async move { informer.run(cancel).await });
        }
        tasks.spawn(control(shared.clone(), informer, cancel));
        tracing::info!(node = %node, %addr, "agent started");
        Ok(RunningAgent {
            shared,
            tasks,
            addr,
        })
    }
}

/// The controller loop: reconcile on every pod event, and every `resync_interval`.
async fn control(shared: Arc<Shared>, informer: Informer, cancel: CancellationToken) {
    let mut events = informer.subscribe();
    let mut open = true;
    let mut tick = tokio::time::interval(shared.config.resync_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut relisted = false;
        tokio::select! {
            () = cancel.cancelled() => return,
            event = events.recv(), if open => match event {
                Ok(InformerEvent::Relisted) | Err(RecvError::Lagged(_)) => relisted = true,
                Ok(_) => {}
                Err(RecvError::Closed) => open = false,
            },
            _ = tick.tick() => {}
        }
        // Coalesce whatever else is queued into this pass.
        loop {
            match events.try_recv() {
                Ok(InformerEvent::Relisted)
                | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => relisted = true,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        shared.reconcile(&informer);
        if relisted {
            // Back in touch with the API: every status is compared (and written) again.
            shared.status.mark_all(shared.pod_uids());
        }
    }
}

/// The HTTP components running on this node, for the service proxy. Cheap to clone.
#[derive(Clone)]
pub struct AgentEndpoints {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AgentEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentEndpoints").finish_non_exhaustive()
    }
}

impl AgentEndpoints {
    /// The running HTTP container of pod `namespace/pod` serving containerPort `port`
    /// (or its only HTTP container), counted in flight while the endpoint is held: a
    /// terminating pod waits for it before it stops.
    pub fn http_endpoint_tracked(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Option<HttpEndpoint> {
        self.shared.find_pod(namespace, pod)?.http_endpoint(port)
    }

    /// As [`AgentEndpoints::http_endpoint_tracked`], the service alone.
    pub fn http_endpoint(&self, namespace: &str, pod: &str, port: u16) -> Option<HttpService> {
        self.http_endpoint_tracked(namespace, pod, port)
            .map(|e| e.service().clone())
    }
}

impl crate::proxy::LocalEndpoints for AgentEndpoints {
    fn http_endpoint(&self, namespace: &str, pod: &str, port: u16) -> Option<HttpEndpoint> {
        self.http_endpoint_tracked(namespace, pod, port)
    }
}

impl RunningAgent {
    /// Where the agent API listens.
    pub fn agent_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn node_name(&self) -> &str {
        &self.shared.config.node_name
    }

    /// The HTTP components of this node's pods (for the service proxy).
    pub fn endpoints(&self) -> AgentEndpoints {
        AgentEndpoints {
            shared: self.shared.clone(),
        }
    }

    /// See [`AgentEndpoints::http_endpoint`].
    pub fn http_endpoint(&self, namespace: &str, pod: &str, port: u16) -> Option<HttpService> {
        self.endpoints().http_endpoint(namespace, pod, port)
    }

    /// See [`AgentEndpoints::http_endpoint_tracked`].
    pub fn http_endpoint_tracked(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Option<HttpEndpoint> {
        self.endpoints().http_endpoint_tracked(namespace, pod, port)
    }

    /// The virtual address of pod `namespace/name`, while it runs here.
    pub fn pod_ip(&self, namespace: &str, name: &str) -> Option<String> {
        self.shared.find_pod(namespace, name)?.snapshot().pod_ip
    }

    /// How many pod workers run.
    pub fn pod_count(&self) -> usize {
        lock(&self.shared.pods).len()
    }

    /// Waits until the agent stopped (its token was cancelled): every task ended and
    /// every pod worker stopped its containers.
    pub async fn wait(self) {
        self.shared.cancel.cancelled().await;
        self.tasks.close();
        self.tasks.wait().await;
        self.shared.workers.close();
        self.shared.workers.wait().await;
    }
}
