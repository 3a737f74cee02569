//! The node's host: one engine, one epoch ticker, the linkers, the content store and
//! artifact cache, and every prepared component by digest.
//!
//! [`Host::load`] turns an image into a [`Workload`]: fetch → digest → (cached artifact |
//! compile) → check imports and exports → `InstancePre`. Each digest is prepared once per
//! process (concurrent loads of the same digest wait for the first) and compiled once per
//! engine configuration, ever: a restart, a second replica or another pod loads the
//! artifact or reuses the `InstancePre`. [`Host::run`] runs a command to completion in a
//! pod's sandbox; `crate::http::HttpService` serves an HTTP component.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Module, Store};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::artifact::{ArtifactCache, ArtifactKind, Compiled};
use crate::content::{ContentStore, Digest, FetchConfig, ImageRef};
use crate::engine::{EngineConfig, EpochTicker};
use crate::error::{Error, Result};
use crate::imports::ProvidedImports;
use crate::limits::{EpochGuard, InstanceLimiter};
use crate::logs::ContainerLog;
use crate::pod::{ContainerExit, ContainerSpec, PodSandbox};
use crate::state::{InstanceState, P1State, wasi_builder};

/// Where the host keeps its data, and its engine settings.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// `<data_dir>/blobs/sha256/…` (content) and `<data_dir>/artifacts/…` (compiled).
    pub data_dir: PathBuf,
    pub engine: EngineConfig,
}

/// What kind of workload a component is, by what it exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Exports `wasi:cli/run`: runs to completion.
    Command,
    /// Exports `wasi:http/incoming-handler`: serves requests.
    Http,
    /// A WASI preview-1 core module with `_start`: runs as a command.
    Preview1,
}

impl WorkloadKind {
    pub fn describe(self) -> &'static str {
        match self {
            WorkloadKind::Command => "a command (wasi:cli/run)",
            WorkloadKind::Http => "an HTTP component (wasi:http/incoming-handler)",
            WorkloadKind::Preview1 => "a preview-1 command module (_start)",
        }
    }
}

pub(crate) enum Prepared {
    Command(CommandPre<InstanceState>),
    Http(ProxyPre<InstanceState>),
    Preview1(wasmtime::InstancePre<P1State>),
}

/// A component ready to instantiate: linked, checked, pre-instantiated.
pub struct Workload {
    digest: Digest,
    pub(crate) prepared: Prepared,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("digest", &self.digest)
            .field("kind", &self.kind())
            .finish()
    }
}

impl Workload {
    /// The content digest (`imageID`).
    pub fn digest(&self) -> Digest {
        self.digest
    }

    pub fn kind(&self) -> WorkloadKind {
        match self.prepared {
            Prepared::Command(_) => WorkloadKind::Command,
            Prepared::Http(_) => WorkloadKind::Http,
            Prepared::Preview1(_) => WorkloadKind::Preview1,
        }
    }
}

type Slot = Arc<OnceCell<Arc<Workload>>>;

/// The node's wasmtime host. Share it behind an `Arc`.
pub struct Host {
    engine: Engine,
    linker: Linker<InstanceState>,
    p1_linker: wasmtime::Linker<P1State>,
    provided: ProvidedImports,
    /// `(module, name)` of every preview-1 import the host provides.
    p1_provided: std::collections::HashSet<(String, String)>,
    content: ContentStore,
    artifacts: ArtifactCache,
    workloads: Mutex<HashMap<Digest, Slot>>,
    compiles: AtomicU64,
    tick: Duration,
    max_memory: u64,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("compiles", &self.compiles())
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Builds the engine, starts the epoch ticker and links WASI: for components, WASI 0.2,
    /// `wasi:http` and `wasi:config` (what `wit/skiff.wit`'s worlds import); for core
    /// modules, preview 1.
    pub fn new(config: HostConfig) -> Result<Host> {
        let engine = config.engine.build()?;
        let mut linker = Linker::new(&engine);
        let link = |e: wasmtime::Error| Error::Engine(format!("linking WASI: {e:#}"));
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link)?;
        wasmtime_wasi_config::add_to_linker(&mut linker, InstanceState::config).map_err(link)?;
        let mut p1_linker = wasmtime::Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut p1_linker, |s: &mut P1State| &mut s.wasi)
            .map_err(link)?;
        let p1_provided = {
            let mut store = Store::new(
                &engine,
                P1State {
                    wasi: wasmtime_wasi::WasiCtxBuilder::new().build_p1(),
                    limiter: InstanceLimiter::new(
                        Arc::new(crate::limits::MemoryBudget::new(None)),
                        0,
                    ),
                },
            );
            p1_linker
                .iter(&mut store)
                .map(|(m, n, _)| (m.to_string(), n.to_string()))
                .collect()
        };
        let ticker = EpochTicker::start(&engine, config.engine.epoch_tick)?;
        Ok(Host {
            artifacts: ArtifactCache::new(&config.data_dir, &engine),
            content: ContentStore::new(&config.data_dir),
            engine,
            linker,
            p1_linker,
            provided: ProvidedImports::default(),
            p1_provided,
            workloads: Mutex::new(HashMap::new()),
            compiles: AtomicU64::new(0),
            tick: config.engine.epoch_tick,
            max_memory: u64::try_from(config.engine.max_memory_size).unwrap_or(u64::MAX),
            _ticker: ticker,
        })
    }

    /// Like [`Host::new`], downloading `https://` images as `fetch` says (timeouts, size
    /// cap, extra trusted CAs).
    pub fn with_fetch_config(config: HostConfig, fetch: FetchConfig) -> Result<Host> {
        let content = ContentStore::new(&config.data_dir).with_fetch_config(fetch)?;
        let mut host = Host::new(config)?;
        host.content = content;
        Ok(host)
    }

    /// The node's engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The node's content store.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The artifact cache.
    pub fn artifacts(&self) -> &ArtifactCache {
        &self.artifacts
    }

    /// How many times this host compiled wasm (not counting artifact loads).
    pub fn compiles(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// The epoch tick (the granularity of CPU accounting and deadlines).
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// The node's cap on one linear memory, in bytes.
    pub fn max_memory(&self) -> u64 {
        self.max_memory
    }

    /// Forgets the prepared workloads held in memory (the artifacts on disk stay):
    /// what a restarted node starts from.
    pub fn forget_loaded(&self) {
        self.lock_workloads().clear();
    }

    fn lock_workloads(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Slot>> {
        match self.workloads.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Fetches, compiles (once) and prepares the component an image names.
    pub async fn load(self: &Arc<Self>, image: &str) -> Result<Arc<Workload>> {
        let image: ImageRef = image.parse()?;
        if let ImageRef::Digest(digest)
        | ImageRef::Https {
            pin: Some(digest), ..
        } = &image
        {
            let slot = self.lock_workloads().get(digest).cloned();
            if let Some(ready) = slot.as_ref().and_then(|s| s.get()) {
                return Ok(ready.clone());
            }
        }
        let (digest, bytes) = self.content.fetch(&image).await?;
        let slot = self.lock_workloads().entry(digest).or_default().clone();
        let host = self.clone();
        let workload = slot
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || host.prepare(digest, &bytes))
                    .await
                    .map_err(|e| Error::Wasmtime(format!("compile task: {e}")))?
            })
            .await?;
        Ok(workload.clone())
    }

    /// Loads the artifact or compiles, then links and classifies. Blocking.
    fn prepare(&self, digest: Digest, bytes: &[u8]) -> Result<Arc<Workload>> {
        let invalid = |message: String| Error::InvalidComponent {
            digest: digest.to_string(),
            message,
        };
        let kind = match bytes.get(0..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => ArtifactKind::Module,
            Some([0, b'a', b's', b'm', _, _, 1, 0]) => ArtifactKind::Component,
            Some([0, b'a', b's', b'm', ..]) => {
                return Err(invalid("unsupported WebAssembly version or layer".into()));
            }
            _ => {
                return Err(invalid(
                    "not a WebAssembly binary (no \\0asm header)".into(),
                ));
            }
        };
        let compiled = match self.artifacts.load(&self.engine, &digest, kind) {
            Some(compiled) => compiled,
            None => {
                self.compiles.fetch_add(1, Ordering::Relaxed);
                let started = std::time::Instant::now();
                let compiled = match kind {
                    ArtifactKind::Component => {
                        Component::new(&self.engine, bytes).map(Compiled::Component)
                    }
                    ArtifactKind::Module => Module::new(&self.engine, bytes).map(Compiled::Module),
                }
                .map_err(|e| invalid(format!("{e:#}")))?;
                tracing::debug!(%digest, elapsed = ?started.elapsed(), "compiled");
                if let Err(e) = self.artifacts.store(&digest, &compiled) {
                    tracing::warn!(%digest, error = %e, "cannot cache the compiled artifact");
                }
                compiled
            }
        };
        let prepared = match compiled {
            Compiled::Component(component) => self.prepare_component(digest, &component)?,
            Compiled::Module(module) => self.prepare_module(digest, &module)?,
        };
        Ok(Arc::new(Workload { digest, prepared }))
    }

    fn prepare_component(&self, digest: Digest, component: &Component) -> Result<Prepared> {
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let missing = self.provided.missing(imports.iter().map(String::as_str));
        if !missing.is_empty() {
            return Err(Error::MissingImports {
                digest: digest.to_string(),
                missing,
            });
        }
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let link = |e: wasmtime::Error| Error::Link {
            digest: digest.to_string(),
            message: format!("{e:#}"),
        };
        let exports_interface = |prefix: &str| exports.iter().any(|e| e.starts_with(prefix));
        if exports_interface("wasi:http/incoming-handler@0.2.") {
            let pre = self.linker.instantiate_pre(component).map_err(link)?;
            Ok(Prepared::Http(ProxyPre::new(pre).map_err(link)?))
        } else if exports_interface("wasi:cli/run@0.2.") {
            let pre = self.linker.instantiate_pre(component).map_err(link)?;
            Ok(Prepared::Command(CommandPre::new(pre).map_err(link)?))
        } else {
            Err(Error::NotRunnable {
                digest: digest.to_string(),
                exports,
            })
        }
    }

    fn prepare_module(&self, digest: Digest, module: &Module) -> Result<Prepared> {
        let missing: Vec<String> = module
            .imports()
            .filter(|i| {
                !self
                    .p1_provided
                    .contains(&(i.module().to_string(), i.name().to_string()))
            })
            .map(|i| format!("{}::{}", i.module(), i.name()))
            .collect();
        let exports: Vec<String> = module.exports().map(|e| e.name().to_string()).collect();
        if !exports.iter().any(|e| e == "_start") {
            return Err(Error::NotRunnable {
                digest: digest.to_string(),
                exports,
            });
        }
        if !missing.is_empty() {
            return Err(Error::MissingImports {
                digest: digest.to_string(),
                missing,
            });
        }
        let pre = self
            .p1_linker
            .instantiate_pre(module)
            .map_err(|e| Error::Link {
                digest: digest.to_string(),
                message: format!("{e:#}"),
            })?;
        Ok(Prepared::Preview1(pre))
    }

    /// Runs a command (or preview-1 module) to completion in `pod`'s sandbox. Whatever
    /// the guest does, the result is a [`ContainerExit`]; only a spec the sandbox cannot
    /// grant is an error. `cancel` kills this container alone; [`PodSandbox::kill`] kills
    /// it with the rest of the pod. The log's attempt is finished when this returns.
    pub async fn run(
        &self,
        workload: &Workload,
        pod: &PodSandbox,
        spec: &ContainerSpec,
        log: &ContainerLog,
        cancel: &CancellationToken,
    ) -> Result<ContainerExit> {
        let result = self.run_inner(workload, pod, spec, log, cancel).await;
        log.finish();
        result
    }

    async fn run_inner(
        &self,
        workload: &Workload,
        pod: &PodSandbox,
        spec: &ContainerSpec,
        log: &ContainerLog,
        cancel: &CancellationToken,
    ) -> Result<ContainerExit> {
        let deadline = spec.deadline.map(|d| Instant::now() + d);
        let kill = CancellationToken::new();
        let guard = EpochGuard {
            cpu: pod.cpu().cloned(),
            tick: self.tick,
            deadline,
            cancel: kill.clone(),
        };
        let limiter = InstanceLimiter::new(pod.memory_budget(), self.max_memory);
        let builder = wasi_builder(spec, log);
        let stopped = async {
            tokio::select! {
                () = pod.kill_switch().cancelled() => {}
                () = cancel.cancelled() => {}
                () = sleep_until(deadline) => {}
            }
        };
        let (result, memory_hit) = match &workload.prepared {
            Prepared::Command(pre) => {
                let mut store =
                    Store::new(&self.engine, InstanceState::new(builder?.build(), limiter));
                store.limiter(|s| &mut s.limiter);
                guard.arm(&mut store);
                let call = async {
                    let command = pre.instantiate_async(&mut store).await?;
                    command.wasi_cli_run().call_run(&mut store).await
                };
                let result = race(call, stopped, &kill).await;
                (result, store.data().limiter.hit())
            }
            Prepared::Preview1(pre) => {
                let wasi = builder?.build_p1();
                let mut store = Store::new(&self.engine, P1State { wasi, limiter });
                store.limiter(|s| &mut s.limiter);
                guard.arm(&mut store);
                let call = async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await.map(Ok)
                };
                let result = race(call, stopped, &kill).await;
                (result, store.data().limiter.hit())
            }
            Prepared::Http(_) => {
                return Err(Error::WrongKind {
                    digest: workload.digest.to_string(),
                    expected: WorkloadKind::Command.describe(),
                    actual: WorkloadKind::Http.describe(),
                });
            }
        };
        let result = match result {
            Raced::Done(r) => r,
            Raced::Stopped => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    Err(wasmtime::Error::new(crate::limits::Stop::DeadlineExceeded))
                } else {
                    Err(wasmtime::Error::new(crate::limits::Stop::Killed))
                }
            }
        };
        Ok(ContainerExit::from_call(
            result,
            memory_hit,
            pod.memory().limit(),
            spec.deadline,
        ))
    }
}

pub(crate) enum Raced<T> {
    Done(T),
    Stopped,
}

/// Runs `call` until it ends or `stopped` fires. `kill` is cancelled first so that a guest
/// parked in an epoch yield notices; dropping `call` then tears the instance down.
pub(crate) async fn race<T>(
    call: impl Future<Output = T>,
    stopped: impl Future<Output = ()>,
    kill: &CancellationToken,
) -> Raced<T> {
    tokio::select! {
        r = call => Raced::Done(r),
        () = stopped => {
            kill.cancel();
            Raced::Stopped
        }
    }
}

pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
