//! A pod's sandbox and what its containers are given and end with.
//!
//! A [`PodSandbox`] holds what a pod's containers share: the memory budget, the CPU quota
//! and the kill switch. A [`ContainerSpec`] is what one container is given (argv, env,
//! preopens, an optional hard deadline). A [`ContainerExit`] is how it ended — always a
//! value, whatever the guest did.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::limits::{CpuQuota, MemoryBudget, PodLimits, Stop};

/// What a pod's containers share. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PodSandbox {
    limits: PodLimits,
    memory: Arc<MemoryBudget>,
    cpu: Option<Arc<CpuQuota>>,
    kill: CancellationToken,
}

impl PodSandbox {
    /// A sandbox with the pod's limits.
    pub fn new(limits: PodLimits) -> PodSandbox {
        PodSandbox {
            memory: Arc::new(MemoryBudget::new(limits.memory_bytes)),
            cpu: limits.cpu_millis.map(|m| Arc::new(CpuQuota::new(m))),
            kill: CancellationToken::new(),
            limits,
        }
    }

    /// The limits it was made with.
    pub fn limits(&self) -> &PodLimits {
        &self.limits
    }

    /// The pod's memory budget (usage, peak, whether the limit was hit).
    pub fn memory(&self) -> &MemoryBudget {
        &self.memory
    }

    pub(crate) fn memory_budget(&self) -> Arc<MemoryBudget> {
        self.memory.clone()
    }

    /// The pod's CPU quota, if it has a CPU limit.
    pub fn cpu(&self) -> Option<&Arc<CpuQuota>> {
        self.cpu.as_ref()
    }

    /// Kills every running instance of the pod (they end with [`Reason::Killed`]).
    pub fn kill(&self) {
        self.kill.cancel();
    }

    /// The pod's kill switch; a child token kills one container only.
    pub fn kill_switch(&self) -> &CancellationToken {
        &self.kill
    }
}

/// A host directory given to the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    /// The path the guest sees (`/data`).
    pub guest: String,
    pub read_only: bool,
}

/// What one container is given.
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    /// The container's name (logs, messages).
    pub name: String,
    /// argv: `command` + `args`; `argv[0]` is conventionally the program name.
    pub args: Vec<String>,
    /// The whole environment: nothing of the host's is inherited.
    pub env: Vec<(String, String)>,
    pub preopens: Vec<Preopen>,
    /// A hard deadline for a command (`activeDeadlineSeconds`); for an HTTP component the
    /// request timeout is in its `HttpConfig`.
    pub deadline: Option<Duration>,
}

/// Why a container ended, as Kubernetes names it in `state.terminated.reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Exited 0.
    Completed,
    /// Exited non-zero or trapped.
    Error,
    /// Died after its pod's memory limit refused a growth.
    OomKilled,
    /// Ran past its deadline.
    DeadlineExceeded,
    /// Stopped by the kill switch.
    Killed,
}

impl Reason {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Completed => "Completed",
            Reason::Error => "Error",
            Reason::OomKilled => "OOMKilled",
            Reason::DeadlineExceeded => "DeadlineExceeded",
            Reason::Killed => "Killed",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a container ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerExit {
    /// The exit code: the guest's own, 134 for a trap (as an abort), 137 for a kill,
    /// an OOM kill or a deadline (as SIGKILL).
    pub exit_code: i32,
    pub reason: Reason,
    /// What happened, for `state.terminated.message` (at most 4 KiB, as Kubernetes).
    pub message: String,
}

/// Exit code of a trapped guest (128 + SIGABRT, as `wasmtime run`).
pub const EXIT_TRAP: i32 = 134;
/// Exit code of a killed guest (128 + SIGKILL).
pub const EXIT_KILLED: i32 = 137;
const MAX_MESSAGE: usize = 4096;

impl ContainerExit {
    pub(crate) fn new(exit_code: i32, reason: Reason, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        ContainerExit {
            exit_code,
            reason,
            message,
        }
    }

    /// Whether the container succeeded.
    pub fn success(&self) -> bool {
        self.reason == Reason::Completed
    }

    pub(crate) fn killed() -> Self {
        Self::new(EXIT_KILLED, Reason::Killed, "killed")
    }

    pub(crate) fn deadline(deadline: Option<Duration>) -> Self {
        let message = match deadline {
            Some(d) => format!("deadline of {d:?} exceeded"),
            None => "deadline exceeded".to_string(),
        };
        Self::new(EXIT_KILLED, Reason::DeadlineExceeded, message)
    }

    pub(crate) fn oom(limit: Option<u64>) -> Self {
        let limit = match limit {
            Some(bytes) => {
                skiff_api::Quantity::from_bytes(i64::try_from(bytes).unwrap_or(i64::MAX))
                    .to_string()
            }
            None => "of the node".to_string(),
        };
        Self::new(
            EXIT_KILLED,
            Reason::OomKilled,
            format!("memory limit {limit} reached"),
        )
    }

    /// Classifies the end of a guest call.
    pub(crate) fn from_call(
        result: wasmtime::Result<Result<(), ()>>,
        memory_hit: bool,
        memory_limit: Option<u64>,
        deadline: Option<Duration>,
    ) -> Self {
        match result {
            Ok(Ok(())) => Self::new(0, Reason::Completed, ""),
            Ok(Err(())) if memory_hit => Self::oom(memory_limit),
            Ok(Err(())) => Self::new(1, Reason::Error, "wasi:cli/run returned an error"),
            Err(e) => {
                if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                    return match exit.0 {
                        0 => Self::new(0, Reason::Completed, ""),
                        _ if memory_hit => Self::oom(memory_limit),
                        code => Self::new(code, Reason::Error, format!("exited with code {code}")),
                    };
                }
                match e.downcast_ref::<Stop>() {
                    Some(Stop::DeadlineExceeded) => return Self::deadline(deadline),
                    Some(Stop::Killed) => return Self::killed(),
                    None => {}
                }
                if memory_hit {
                    return Self::oom(memory_limit);
                }
                let trap = e
                    .downcast_ref::<wasmtime::Trap>()
                    .map(|t| format!("trap: {t}: "))
                    .unwrap_or_default();
                Self::new(EXIT_TRAP, Reason::Error, format!("{trap}{e:?}"))
            }
        }
    }
}
