//! One pod worker per pod: a task that runs the pod's containers, records what it observes
//! in the pod's [`PodState`], and tears the pod down when it goes.
//!
//! ```text
//!                 setup (directory, address, volumes, sandbox; an error waits for deletion)
//!                   │
//!                   ▼
//!   ┌───────────── Fetching ◀──────────────┐  Host::load fails: Waiting <reason> (back-off)
//!   │               │ image loaded          │  config fails: Waiting CreateContainerConfigError
//!   │               ▼                       │
//!   │  Initializing: each init container    │  init exits ≠ 0: Never → pod Failed;
//!   │  in order, to completion ─────────────┤                  else CrashLoopBackOff, again
//!   │               │ all succeeded         │
//!   │               ▼                       │
//!   │  Running: every container at once ────┘  a command exits: Always / OnFailure(≠0) →
//!   │     commands run to completion           CrashLoopBackOff (back-off), then again;
//!   │     HTTP components serve, Ready         otherwise it stays Terminated
//!   │               │ nothing left to run
//!   │               ▼
//!   │  Completed (Succeeded / Failed): waits for deletion
//!   │               │
//!   ▼               ▼
//!  Terminating (deletionTimestamp, or the pod left the API): HTTP endpoints stop taking
//!  requests and in-flight ones finish; commands may finish; after the grace period the
//!  sandbox's kill switch stops the rest
//!                   │
//!                   ▼
//!  Stopped: final status → DELETE gracePeriodSeconds=0 (deletion) → teardown (address,
//!  directory). On agent shutdown the containers are killed at once and nothing is
//!  removed: the pod runs again when the agent starts.
//! ```
//!
//! The worker is the only writer of its [`PodState`]; each change marks the pod for the
//! status writer, which derives and writes the API status.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use serde_json::Value;
use skiff_api::k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodSpec, PodStatus};
use skiff_api::registry;
use skiff_client::DeleteParams;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::Shared;
use super::backoff::Backoff;
use super::env::{self, Downward, References, Sources};
use super::persist::{PodDir, is_safe_segment};
use super::pod_state::{ContainerState, FinishedPhase, Phase, PodState, Termination};
use super::volumes;
use crate::WorkloadKind;
use crate::http::HttpService;
use crate::limits::PodLimits;
use crate::logs::{ContainerLog, LogConfig};
use crate::pod::{ContainerSpec, PodSandbox};
use skiff_api::Quantity;

/// What each container's log keeps in memory (the file keeps more); small nodes run many.
const LOG_RING_BYTES: usize = 256 << 10;

/// The pod as last seen: the object and its typed form.
#[derive(Debug)]
pub(crate) struct Desired {
    pub raw: Arc<Value>,
    pub pod: Pod,
}

impl Desired {
    pub fn parse(raw: Arc<Value>) -> Result<Desired, String> {
        let pod: Pod = serde_json::from_value((*raw).clone()).map_err(|e| format!("{e}"))?;
        Ok(Desired { raw, pod })
    }

    pub fn spec(&self) -> &PodSpec {
        static EMPTY: std::sync::OnceLock<PodSpec> = std::sync::OnceLock::new();
        self.pod
            .spec
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(PodSpec::default))
    }

    fn deleting(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }
}

/// An HTTP container serving in a running pod.
pub(crate) struct Endpoint {
    pub container: String,
    pub ports: Vec<u16>,
    pub service: HttpService,
    pub inflight: TaskTracker,
}

/// An HTTP container of a running pod, for the node's service proxy. While it is held,
/// the container counts the request as in flight: a terminating pod stops handing out
/// endpoints, and waits (up to its grace period) for the ones out to be dropped.
#[derive(Debug)]
pub struct HttpEndpoint {
    service: HttpService,
    _inflight: TaskTrackerToken,
}

impl HttpEndpoint {
    /// The service itself.
    pub fn service(&self) -> &HttpService {
        &self.service
    }
}

impl std::ops::Deref for HttpEndpoint {
    type Target = HttpService;

    fn deref(&self) -> &HttpService {
        &self.service
    }
}

/// What the worker, the controller, the status writer and the agent API share of a pod.
pub(crate) struct PodHandle {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub dir: PodDir,
    desired: watch::Sender<Arc<Desired>>,
    /// The pod left the API: stop and tear down, without a DELETE.
    pub gone: CancellationToken,
    state: Mutex<PodState>,
    /// One log per container (init containers too), by name.
    pub logs: BTreeMap<String, ContainerLog>,
    endpoints: Mutex<Vec<Endpoint>>,
    /// The resourceVersion of the object last saved to `pod.json`.
    saved_version: Mutex<Option<String>>,
    /// Containers that had run before this worker (an agent restart): their next start
    /// counts as a restart.
    previously_started: BTreeMap<String, bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn resource_version(v: &Value) -> Option<u64> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

impl PodHandle {
    /// A handle for a pod object; `Err` says why the object cannot be run.
    pub fn new(shared: &Shared, raw: Arc<Value>) -> Result<Arc<PodHandle>, String> {
        let desired = Desired::parse(raw)?;
        let meta = &desired.pod.metadata;
        let uid = meta.uid.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let dir = PodDir::new(&shared.config.data_dir, &uid)
            .ok_or_else(|| format!("pod {namespace}/{name}: unusable uid {uid:?}"))?;
        let spec = desired.spec();
        let mut logs = BTreeMap::new();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            if !is_safe_segment(&c.name) {
                return Err(format!(
                    "pod {namespace}/{name}: unusable container name {:?}",
                    c.name
                ));
            }
            logs.insert(
                c.name.clone(),
                ContainerLog::new(LogConfig {
                    file: Some(dir.log_file(&c.name)),
                    ring_bytes: LOG_RING_BYTES,
                    ..LogConfig::default()
                }),
            );
        }
        let previous = desired.pod.status.as_ref();
        let state = initial_state(spec, previous);
        let previously_started = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .map(|c| (c.name.clone(), had_started(previous, &c.name)))
            .collect();
        Ok(Arc::new(PodHandle {
            uid,
            namespace,
            name,
            dir,
            desired: watch::Sender::new(Arc::new(desired)),
            gone: CancellationToken::new(),
            state: Mutex::new(state),
            logs,
            endpoints: Mutex::new(Vec::new()),
            saved_version: Mutex::new(None),
            previously_started,
        }))
    }

    /// The pod as last seen.
    pub fn desired(&self) -> Arc<Desired> {
        self.desired.borrow().clone()
    }

    /// A newer object of the pod (from the informer, or the answer to a status write):
    /// kept when its resourceVersion is newer, and saved to disk.
    pub fn observe(&self, raw: Arc<Value>) {
        let current = self.desired();
        if let (Some(new), Some(old)) = (resource_version(&raw), resource_version(&current.raw))
            && new <= old
        {
            return;
        }
        if raw.pointer("/metadata/uid").and_then(Value::as_str) != Some(self.uid.as_str()) {
            return;
        }
        match Desired::parse(raw) {
            Ok(d) => {
                self.desired.send_replace(Arc::new(d));
                self.save();
            }
            Err(e) => {
                tracing::warn!(pod = %self.key(), error = %e, "ignoring an unreadable pod object")
            }
        }
    }

    /// Saves the pod object when it changed since the last save.
    pub fn save(&self) {
        let d = self.desired();
        let rv = d
            .raw
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut saved = lock(&self.saved_version);
        if saved.is_some() && *saved == rv {
            return;
        }
        match self.dir.save_pod(&d.raw) {
            Ok(()) => *saved = rv,
            Err(e) => tracing::warn!(pod = %self.key(), error = %e, "cannot save the pod"),
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// A copy of the observed state.
    pub fn snapshot(&self) -> PodState {
        lock(&self.state).clone()
    }

    fn update(&self, shared: &Shared, f: impl FnOnce(&mut PodState)) {
        {
            let mut s = lock(&self.state);
            let before = s.clone();
            f(&mut s);
            if *s == before {
                return;
            }
        }
        shared.status.mark(&self.uid);
    }

    fn update_container(&self, shared: &Shared, which: Which, f: impl FnOnce(&mut ContainerState)) {
        self.update(shared, |s| {
            let list = match which {
                Which::Init(_) => &mut s.init_containers,
                Which::Regular(_) => &mut s.containers,
            };
            if let Some(c) = list.get_mut(which.index()) {
                f(c);
            }
        });
    }

    /// The HTTP endpoint serving `port` (else the only one), counted as in flight.
    pub fn http_endpoint(&self, port: u16) -> Option<HttpEndpoint> {
        let endpoints = lock(&self.endpoints);
        let pick = endpoints
            .iter()
            .find(|e| e.ports.contains(&port))
            .or_else(|| (endpoints.len() == 1).then(|| &endpoints[0]))?;
        Some(HttpEndpoint {
            service: pick.service.clone(),
            _inflight: pick.inflight.token(),
        })
    }

    fn add_endpoint(&self, endpoint: Endpoint) {
        lock(&self.endpoints).push(endpoint);
    }

    fn remove_endpoint(&self, container: &str) {
        lock(&self.endpoints).retain(|e| e.container != container);
    }
}

fn had_started(previous: Option<&PodStatus>, name: &str) -> bool {
    let Some(p) = previous else { return false };
    p.container_statuses
        .iter()
        .flatten()
        .chain(p.init_container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .is_some_and(|c| {
            let state = c.state.as_ref();
            state.is_some_and(|s| s.running.is_some() || s.terminated.is_some())
                || c.last_state
                    .as_ref()
                    .is_some_and(|s| s.terminated.is_some())
        })
}

fn termination_of(cs: &ContainerStatus) -> Option<Termination> {
    let t = cs.state.as_ref()?.terminated.as_ref()?;
    Some(Termination {
        exit_code: t.exit_code,
        reason: t.reason.clone().unwrap_or_default(),
        message: t.message.clone().unwrap_or_default(),
        started_at: t.started_at.as_ref().map(|t| t.0),
        finished_at: t
            .finished_at
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(Timestamp::now),
    })
}

/// The state a worker starts from: waiting containers, or — for a pod that already
/// finished (an agent restart) — the terminated containers the API recorded.
pub(crate) fn initial_state(spec: &PodSpec, previous: Option<&PodStatus>) -> PodState {
    let finished = match previous.and_then(|p| p.phase.as_deref()) {
        Some("Succeeded") => Some(FinishedPhase::Succeeded),
        Some("Failed") => Some(FinishedPhase::Failed),
        _ => None,
    };
    let recorded = |name: &str, init: bool| -> Option<&ContainerStatus> {
        let p = previous?;
        let list = if init {
            p.init_container_statuses.as_ref()
        } else {
            p.container_statuses.as_ref()
        };
        list?.iter().find(|c| c.name == name)
    };
    let has_init = spec.init_containers.as_ref().is_some_and(|i| !i.is_empty());
    let make = |c: &Container, init: bool| {
        let before = recorded(&c.name, init);
        let phase = if has_init || init {
            Phase::waiting("PodInitializing", "")
        } else {
            Phase::waiting("ContainerCreating", "")
        };
        let mut state = ContainerState::new(&c.name, c.image.as_deref().unwrap_or(""), phase);
        if let Some(b) = before {
            state.restart_count = b.restart_count;
            if !b.image_id.is_empty() {
                state.image_id = Some(b.image_id.clone());
            }
            if finished.is_some()
                && let Some(t) = termination_of(b)
            {
                state.phase = Phase::Terminated(t);
            }
        }
        state
    };
    PodState {
        pod_ip: None,
        start_time: previous.and_then(|p| p.start_time.as_ref()).map(|t| t.0),
        init_containers: spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| make(c, true))
            .collect(),
        containers: spec.containers.iter().map(|c| make(c, false)).collect(),
        terminating: false,
        stopped: false,
        finished,
    }
}

#[derive(Clone, Copy, Debug)]
enum Which {
    Init(usize),
    Regular(usize),
}

impl Which {
    fn index(self) -> usize {
        match self {
            Which::Init(i) | Which::Regular(i) => i,
        }
    }

    fn is_init(self) -> bool {
        matches!(self, Which::Init(_))
    }
}

/// How a container's loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    Stopped,
}

/// Why a pod's containers were stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// deletionTimestamp: stop, confirm with a grace-0 DELETE, tear down.
    Deleted,
    /// The pod left the API (or this node): stop, tear down.
    Gone,
    /// The agent is shutting down: kill, keep everything for the next start.
    Shutdown,
}

/// The pod's limits: over its containers, summed — when every container sets one — and
/// at least each init container's (they run alone).
pub(crate) fn pod_limits(spec: &PodSpec) -> Result<PodLimits, String> {
    fn limit(c: &Container, resource: &str) -> Result<Option<Quantity>, String> {
        let q = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(resource));
        match q {
            None => Ok(None),
            Some(q) => Quantity::parse(&q.0)
                .map(Some)
                .map_err(|e| format!("container {:?}: {resource} limit {:?}: {e}", c.name, q.0)),
        }
    }
    fn total(spec: &PodSpec, resource: &str) -> Result<Option<Quantity>, String> {
        let mut sum = Some(Quantity::default());
        for c in &spec.containers {
            sum = match (sum, limit(c, resource)?) {
                (Some(s), Some(q)) => Some(s.saturating_add(&q)),
                _ => None,
            };
        }
        if spec.containers.is_empty() {
            sum = None;
        }
        let Some(mut sum) = sum else { return Ok(None) };
        for c in spec.init_containers.iter().flatten() {
            if let Some(q) = limit(c, resource)?
                && q > sum
            {
                sum = q;
            }
        }
        Ok(Some(sum))
    }
    let memory = total(spec, "memory")?;
    let cpu = total(spec, "cpu")?;
    let memory_bytes = match memory {
        Some(q) => Some(u64::try_from(q.value()).map_err(|_| "memory limit below zero")?),
        None => None,
    };
    let cpu_millis = match cpu {
        Some(q) => {
            let m = u64::try_from(q.milli_value()).map_err(|_| "cpu limit below zero")?;
            if m == 0 {
                return Err("cpu limit must be above zero".into());
            }
            Some(m)
        }
        None => None,
    };
    Ok(PodLimits {
        memory_bytes,
        cpu_millis,
    })
}

/// The grace period of a stop: the deletion's, else the pod's, else 30 s.
pub(crate) fn grace_period(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// Go's `time.Duration` text, as the kubelet's back-off message prints it.
pub(crate) fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let frac = ms % 1000;
    let s = secs % 60;
    let seconds = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    if h > 0 {
        format!("{h}h{m}m{seconds}")
    } else if m > 0 {
        format!("{m}m{seconds}")
    } else {
        seconds
    }
}

/// Sleeps `delay` unless `stop` fires first (then `false`).
async fn pause(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stop.cancelled() => false,
    }
}

/// Resolves with the reason once the pod must stop.
async fn stop_reason(shared: &Shared, h: &PodHandle) -> StopReason {
    let mut rx = h.desired.subscribe();
    loop {
        if shared.cancel.is_cancelled() {
            return StopReason::Shutdown;
        }
        if h.gone.is_cancelled() {
            return StopReason::Gone;
        }
        if rx.borrow_and_update().deleting() {
            return StopReason::Deleted;
        }
        tokio::select! {
            () = shared.cancel.cancelled() => {}
            () = h.gone.cancelled() => {}
            changed = rx.changed() => {
                if changed.is_err() {
                    return StopReason::Gone;
                }
            }
        }
    }
}

/// The worker task: runs the pod until it must stop, then stops and cleans up. `true`
/// when the pod was torn down (it is gone for good).
pub(crate) async fn run(shared: Arc<Shared>, h: Arc<PodHandle>) -> bool {
    let why = drive(&shared, &h).await;
    tracing::debug!(pod = %h.key(), reason = ?why, "pod stopped");
    match why {
        StopReason::Shutdown => false,
        StopReason::Gone => {
            teardown(&shared, &h);
            true
        }
        StopReason::Deleted => {
            shared.status.sync_now(&shared, &h).await;
            if confirm_deletion(&shared, &h).await {
                teardown(&shared, &h);
                true
            } else {
                false
            }
        }
    }
}

fn teardown(shared: &Shared, h: &PodHandle) {
    shared.release_ip(&h.uid);
    if let Err(e) = h.dir.remove() {
        tracing::warn!(pod = %h.key(), error = %e, "cannot remove the pod's directory");
    }
    shared.status.forget(&h.uid);
}

/// DELETE with grace 0 (and the pod's uid as precondition) until the API confirms, the
/// pod is gone anyway, or the agent stops (then `false`: the pod stays on disk and the
/// next start finishes the job).
async fn confirm_deletion(shared: &Shared, h: &PodHandle) -> bool {
    let mut backoff = Backoff::new(shared.config.api_backoff());
    loop {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            precondition_uid: Some(h.uid.clone()),
            ..DeleteParams::default()
        };
        let what = format!("deleting pod {}", h.key());
        let result = super::error::call(
            what,
            shared.config.api_timeout,
            shared
                .client
                .delete(&registry::POD, Some(&h.namespace), &h.name, &params),
        )
        .await;
        match result {
            Ok(_) => return true,
            Err(e) if e.is_not_found() || e.is_conflict() => return true,
            Err(e) => {
                tracing::warn!(pod = %h.key(), error = %e, "cannot confirm the pod's deletion; retrying")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay(Duration::ZERO)) => {}
            () = h.gone.cancelled() => return true,
            () = shared.cancel.cancelled() => return false,
        }
    }
}

async fn drive(shared: &Arc<Shared>, h: &Arc<PodHandle>) -> StopReason {
    if let Err(e) = h.dir.create() {
        tracing::warn!(pod = %h.key(), error = %e, "cannot create the pod's directory");
    }
    h.save();
    let desired = h.desired();
    let spec = desired.spec().clone();

    let ip = shared.allocate_ip(&h.uid, h.dir.load_ip());
    if let Some(ip) = ip
        && let Err(e) = h.dir.save_ip(ip)
    {
        tracing::warn!(pod = %h.key(), error = %e, "cannot save the pod's address");
    }
    h.update(shared, |s| {
        s.pod_ip = ip.map(|ip| ip.to_string());
        if s.start_time.is_none() {
            s.start_time = Some(Timestamp::now());
        }
    });

    let finished = h.snapshot().finished.is_some();
    let setup = if finished {
        Ok(None)
    } else if ip.is_none() {
        Err(format!("no free pod address in {}", shared.config.pod_cidr))
    } else {
        volumes::create(&h.dir, &spec)
            .and_then(|()| pod_limits(&spec))
            .map(|limits| Some(PodSandbox::new(limits)))
    };
    let sandbox = match setup {
        Ok(Some(sandbox)) => sandbox,
        Ok(None) => return stop_reason(shared, h).await,
        Err(message) => {
            tracing::warn!(pod = %h.key(), error = %message, "cannot set the pod up");
            h.update(shared, |s| {
                for c in s.init_containers.iter_mut().chain(s.containers.iter_mut()) {
                    c.phase = Phase::waiting("CreateContainerConfigError", message.clone());
                }
            });
            return stop_reason(shared, h).await;
        }
    };

    let stop = CancellationToken::new();
    let kill = CancellationToken::new();
    let containers = run_containers(shared, h, &spec, &sandbox, &stop, &kill);
    tokio::pin!(containers);
    let mut done = false;
    let why = tokio::select! {
        why = stop_reason(shared, h) => why,
        () = &mut containers => {
            done = true;
            stop_reason(shared, h).await
        }
    };
    if why != StopReason::Shutdown {
        h.update(shared, |s| s.terminating = true);
    }
    stop.cancel();
    if !done {
        let grace = match why {
            StopReason::Shutdown => Duration::ZERO,
            _ => grace_period(&h.desired().pod),
        };
        tokio::select! {
            () = &mut containers => {}
            () = tokio::time::sleep(grace) => {
                kill.cancel();
                sandbox.kill();
                containers.await;
            }
        }
    }
    // Requests already handed to an HTTP component through an untracked endpoint finish
    // on their own (bounded by the request timeout); on shutdown nothing is waited for.
    if why == StopReason::Shutdown {
        sandbox.kill();
    } else {
        h.update(shared, |s| s.stopped = true);
    }
    why
}

async fn run_containers(
    shared: &Arc<Shared>,
    h: &Arc<PodHandle>,
    spec: &PodSpec,
    sandbox: &PodSandbox,
    stop: &CancellationToken,
    kill: &CancellationToken,
) {
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let outcome = run_container(shared, h, spec, c, Which::Init(i), sandbox, stop, kill).await;
        if outcome != Outcome::Succeeded {
            return;
        }
    }
    h.update(shared, |s| {
        for c in &mut s.containers {
            if matches!(&c.phase, Phase::Waiting { reason, .. } if reason == "PodInitializing") {
                c.phase = Phase::waiting("ContainerCreating", "");
            }
        }
    });
    let all =
        spec.containers.iter().enumerate().map(|(i, c)| {
            run_container(shared, h, spec, c, Which::Regular(i), sandbox, stop, kill)
        });
    futures::future::join_all(all).await;
}

/// One container's life: fetch, configure, run, restart by the policy, until it is done
/// or the pod stops.
#[allow(clippy::too_many_arguments)]
async fn run_container(
    shared: &Arc<Shared>,
    h: &Arc<PodHandle>,
    spec: &PodSpec,
    c: &Container,
    which: Which,
    sandbox: &PodSandbox,
    stop: &CancellationToken,
    kill: &CancellationToken,
) -> Outcome {
    let Some(log) = h.logs.get(&c.name).cloned() else {
        return Outcome::Failed;
    };
    let image = c.image.clone().unwrap_or_default();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let mut restart_backoff = Backoff::new(shared.config.restart_backoff);
    let mut retry_backoff = Backoff::new(shared.config.restart_backoff);
    let mut started_before = h.previously_started.get(&c.name).copied().unwrap_or(false);
    let mut cached_sources: Option<Sources> = None;
    let waiting = |reason: &str, message: String| {
        h.update_container(shared, which, |s| s.phase = Phase::waiting(reason, message));
    };
    loop {
        if stop.is_cancelled() {
            return Outcome::Stopped;
        }
        let workload = match shared.host.load(&image).await {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(pod = %h.key(), container = %c.name, error = %e, "cannot load the image");
                waiting(e.waiting_reason(), e.to_string());
                if !pause(retry_backoff.next_delay(Duration::ZERO), stop).await {
                    return Outcome::Stopped;
                }
                continue;
            }
        };
        let digest = workload.digest().to_string();
        h.update_container(shared, which, |s| s.image_id = Some(digest));
        if which.is_init() && workload.kind() == WorkloadKind::Http {
            waiting(
                "CreateContainerError",
                format!(
                    "init container {:?} must run to completion, but {image} is {}",
                    c.name,
                    WorkloadKind::Http.describe()
                ),
            );
            if !pause(retry_backoff.next_delay(Duration::ZERO), stop).await {
                return Outcome::Stopped;
            }
            continue;
        }
        let container_spec = match prepare(shared, h, spec, c, &mut cached_sources).await {
            Ok(s) => s,
            Err((reason, message)) => {
                waiting(reason, message);
                if !pause(retry_backoff.next_delay(Duration::ZERO), stop).await {
                    return Outcome::Stopped;
                }
                continue;
            }
        };
        if stop.is_cancelled() {
            return Outcome::Stopped;
        }
        let started = Instant::now();
        let started_at = Timestamp::now();
        let begin = |ready: bool| {
            if started_before {
                log.restart();
            }
            h.update_container(shared, which, |s| {
                if started_before {
                    s.restart_count = s.restart_count.saturating_add(1);
                }
                s.phase = Phase::Running { started_at, ready };
            });
        };

        if workload.kind() == WorkloadKind::Http {
            let service = match shared.host.http_service(
                &workload,
                sandbox.clone(),
                container_spec,
                log.clone(),
                shared.config.http.clone(),
            ) {
                Ok(s) => s,
                Err(e) => {
                    waiting(e.waiting_reason(), e.to_string());
                    if !pause(retry_backoff.next_delay(Duration::ZERO), stop).await {
                        return Outcome::Stopped;
                    }
                    continue;
                }
            };
            retry_backoff.reset();
            let inflight = TaskTracker::new();
            let ports = c
                .ports
                .iter()
                .flatten()
                .filter_map(|p| u16::try_from(p.container_port).ok())
                .collect();
            begin(true);
            h.add_endpoint(Endpoint {
                container: c.name.clone(),
                ports,
                service,
                inflight: inflight.clone(),
            });
            stop.cancelled().await;
            // Stop routing, then let the requests out finish within the grace period.
            h.remove_endpoint(&c.name);
            inflight.close();
            let killed = tokio::select! {
                () = inflight.wait() => false,
                () = kill.cancelled() => true,
            };
            let (exit_code, reason) = if killed {
                (137, "Error")
            } else {
                (0, "Completed")
            };
            h.update_container(shared, which, |s| {
                s.phase = Phase::Terminated(Termination {
                    exit_code,
                    reason: reason.to_string(),
                    message: String::new(),
                    started_at: Some(started_at),
                    finished_at: Timestamp::now(),
                });
            });
            return Outcome::Stopped;
        }

        begin(!which.is_init());
        started_before = true;
        let exit = match shared
            .host
            .run(&workload, sandbox, &container_spec, &log, kill)
            .await
        {
            Ok(exit) => exit,
            Err(e) => {
                waiting(e.waiting_reason(), e.to_string());
                if !pause(retry_backoff.next_delay(Duration::ZERO), stop).await {
                    return Outcome::Stopped;
                }
                continue;
            }
        };
        retry_backoff.reset();
        let termination = Termination {
            exit_code: exit.exit_code,
            reason: exit.reason.as_str().to_string(),
            message: exit.message.clone(),
            started_at: Some(started_at),
            finished_at: Timestamp::now(),
        };
        h.update_container(shared, which, |s| {
            s.phase = Phase::Terminated(termination.clone());
        });
        if stop.is_cancelled() {
            return Outcome::Stopped;
        }
        let success = exit.success();
        let restart = match (which.is_init(), policy) {
            (true, "Never") => false,
            (true, _) => !success,
            (false, "Always") => true,
            (false, "OnFailure") => !success,
            (false, _) => false,
        };
        if !restart {
            return if success {
                Outcome::Succeeded
            } else {
                Outcome::Failed
            };
        }
        let delay = restart_backoff.next_delay(started.elapsed());
        let message = format!(
            "back-off {} restarting failed container={} pod={}_{}({})",
            go_duration(delay),
            c.name,
            h.name,
            h.namespace,
            h.uid
        );
        h.update_container(shared, which, |s| {
            s.last = Some(termination);
            s.phase = Phase::waiting("CrashLoopBackOff", message);
        });
        if !pause(delay, stop).await {
            return Outcome::Stopped;
        }
    }
}

/// The container's sandbox: argv, environment, preopens. An error is the waiting reason
/// and message.
async fn prepare(
    shared: &Shared,
    h: &PodHandle,
    spec: &PodSpec,
    c: &Container,
    cached: &mut Option<Sources>,
) -> Result<ContainerSpec, (&'static str, String)> {
    let desired = h.desired();
    let mut refs = env::references(c);
    let from_volumes = volumes::references(spec, c);
    refs.config_maps.extend(from_volumes.config_maps);
    refs.secrets.extend(from_volumes.secrets);
    let sources = if refs.is_empty() {
        Sources::default()
    } else {
        match fetch_sources(shared, &h.namespace, &refs).await {
            Ok(s) => {
                if cached.as_ref() != Some(&s)
                    && let Err(e) = h.dir.save_sources(&c.name, &s)
                {
                    tracing::warn!(pod = %h.namespace, container = %c.name, error = %e, "cannot save the container's config sources");
                }
                *cached = Some(s.clone());
                s
            }
            // The API is unreachable: what was read last — in this process, or saved on
            // disk before a reboot — keeps the pod going (edge autonomy); a first start
            // has nothing to go on.
            Err(e) => match h.dir.load_sources(&c.name).or_else(|| cached.clone()) {
                Some(s) => {
                    *cached = Some(s.clone());
                    s
                }
                None => return Err(("CreateContainerConfigError", e)),
            },
        }
    };
    let state = h.snapshot();
    let downward = Downward {
        pod_ip: state.pod_ip.clone(),
        host_ip: shared.host_ip.clone(),
        node_cpu_millis: i64::try_from(shared.config.capacity.cpu_millis).unwrap_or(i64::MAX),
        node_memory_bytes: i64::try_from(shared.config.capacity.memory_bytes).unwrap_or(i64::MAX),
    };
    let environment = env::resolve(c, &desired.pod, &downward, &sources)
        .map_err(|m| ("CreateContainerConfigError", m))?;
    let preopens = volumes::preopens(&h.dir, spec, c, &sources)
        .map_err(|m| ("CreateContainerConfigError", m))?;
    Ok(ContainerSpec {
        name: c.name.clone(),
        args: env::argv(c, &environment),
        env: environment,
        preopens,
        deadline: None,
    })
}

fn decode_data(object: &Value, field: &str, base64_values: bool, into: &mut env::Data) {
    let Some(map) = object.get(field).and_then(Value::as_object) else {
        return;
    };
    for (k, v) in map {
        let Some(text) = v.as_str() else { continue };
        let bytes = if base64_values {
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(b) => b,
                Err(_) => continue,
            }
        } else {
            text.as_bytes().to_vec()
        };
        into.insert(k.clone(), bytes);
    }
}

/// Reads the ConfigMaps and Secrets a container needs; `Err` when the API cannot say.
async fn fetch_sources(
    shared: &Shared,
    namespace: &str,
    refs: &References,
) -> Result<Sources, String> {
    let mut sources = Sources::default();
    for name in &refs.config_maps {
        let got = super::error::call(
            format!("reading configmap {namespace}/{name}"),
            shared.config.api_timeout,
            shared
                .client
                .get_opt(&registry::CONFIG_MAP, Some(namespace), name),
        )
        .await
        .map_err(|e| e.to_string())?;
        let data = got.map(|cm| {
            let mut data = env::Data::new();
            decode_data(&cm, "binaryData", true, &mut data);
            decode_data(&cm, "data", false, &mut data);
            data
        });
        sources.config_maps.insert(name.clone(), data);
    }
    for name in &refs.secrets {
        let got = super::error::call(
            format!("reading secret {namespace}/{name}"),
            shared.config.api_timeout,
            shared
                .client
                .get_opt(&registry::SECRET, Some(namespace), name),
        )
        .await
        .map_err(|e| e.to_string())?;
        let data = got.map(|s| {
            let mut data = env::Data::new();
            decode_data(&s, "data", true, &mut data);
            data
        });
        sources.secrets.insert(name.clone(), data);
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn limits_sum_containers_and_cover_init_containers() {
        let cases = [
            (json!({"containers": [{"name": "a"}]}), Ok((None, None))),
            (
                json!({"containers": [
                    {"name": "a", "resources": {"limits": {"memory": "64Mi", "cpu": "200m"}}},
                    {"name": "b", "resources": {"limits": {"memory": "32Mi", "cpu": "300m"}}}
                ]}),
                Ok((Some(96 << 20), Some(500))),
            ),
            (
                json!({"containers": [
                    {"name": "a", "resources": {"limits": {"memory": "64Mi"}}},
                    {"name": "b"}
                ]}),
                Ok((None, None)),
            ),
            (
                json!({
                    "initContainers": [{"name": "i", "resources": {"limits": {"memory": "1Gi"}}}],
                    "containers": [{"name": "a", "resources": {"limits": {"memory": "64Mi"}}}]
                }),
                Ok((Some(1 << 30), None)),
            ),
            (
                json!({"containers": [{"name": "a", "resources": {"limits": {"cpu": "0"}}}]}),
                Err(()),
            ),
            (
                json!({"containers": [{"name": "a", "resources": {"limits": {"memory": "lots"}}}]}),
                Err(()),
            ),
        ];
        for (s, want) in cases {
            let got = pod_limits(&spec(s.clone()))
                .map(|l| (l.memory_bytes, l.cpu_millis))
                .map_err(|_| ());
            assert_eq!(got, want, "{s}");
        }
    }

    #[test]
    fn go_durations() {
        let cases = [
            (Duration::from_millis(100), "100ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(80), "1m20s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3661), "1h1m1s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want);
        }
    }

    #[test]
    fn grace_periods() {
        let pod = |v: Value| -> Pod { serde_json::from_value(v).unwrap() };
        let cases = [
            (json!({"metadata": {}, "spec": {"containers": []}}), 30),
            (
                json!({"metadata": {}, "spec": {"containers": [], "terminationGracePeriodSeconds": 5}}),
                5,
            ),
            (
                json!({"metadata": {"deletionGracePeriodSeconds": 1}, "spec": {"containers": [], "terminationGracePeriodSeconds": 5}}),
                1,
            ),
            (
                json!({"metadata": {}, "spec": {"containers": [], "terminationGracePeriodSeconds": -3}}),
                0,
            ),
        ];
        for (p, want) in cases {
            assert_eq!(grace_period(&pod(p)), Duration::from_secs(want));
        }
    }

    #[test]
    fn a_finished_pod_starts_finished() {
        let spec = spec(json!({"containers": [{"name": "a", "image": "file:///a.wasm"}]}));
        let status: PodStatus = serde_json::from_value(json!({
            "phase": "Succeeded",
            "startTime": "2026-01-02T03:04:05Z",
            "containerStatuses": [{
                "name": "a", "image": "file:///a.wasm", "imageID": "sha256:ab", "ready": false,
                "restartCount": 2,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": "2026-01-02T03:04:06Z"}}
            }]
        }))
        .unwrap();
        let state = initial_state(&spec, Some(&status));
        assert_eq!(state.finished, Some(FinishedPhase::Succeeded));
        let a = &state.containers[0];
        assert_eq!(a.restart_count, 2);
        assert_eq!(a.image_id.as_deref(), Some("sha256:ab"));
        assert!(matches!(&a.phase, Phase::Terminated(t) if t.exit_code == 0));
        assert!(had_started(Some(&status), "a"));
        assert!(!had_started(Some(&status), "b"));

        let fresh = initial_state(&spec, None);
        assert_eq!(fresh.finished, None);
        assert_eq!(
            fresh.containers[0].phase,
            Phase::waiting("ContainerCreating", "")
        );
    }
}
