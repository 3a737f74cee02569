//! What a pod worker has observed of its pod: one [`ContainerState`] per init container and
//! container, the pod's address and start time. The worker is its only writer; the status
//! writer reads snapshots and derives the API status from them ([`super::status::derive`]).

use jiff::Timestamp;

/// How one container attempt ended (Kubernetes' `state.terminated`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Termination {
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
}

/// Where one container is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not running: fetching its image, backing off, waiting for init containers…
    Waiting { reason: String, message: String },
    /// Running (a command) or serving (an HTTP component).
    Running { started_at: Timestamp, ready: bool },
    /// Ended and not (yet) restarted.
    Terminated(Termination),
}

impl Phase {
    pub fn waiting(reason: &str, message: impl Into<String>) -> Phase {
        Phase::Waiting {
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// One container's observed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerState {
    pub name: String,
    /// The image as the spec names it.
    pub image: String,
    /// `sha256:<hex>` once the image was loaded.
    pub image_id: Option<String>,
    pub phase: Phase,
    /// The previous attempt's end.
    pub last: Option<Termination>,
    pub restart_count: i32,
}

impl ContainerState {
    pub fn new(name: &str, image: &str, phase: Phase) -> ContainerState {
        ContainerState {
            name: name.to_string(),
            image: image.to_string(),
            image_id: None,
            phase,
            last: None,
            restart_count: 0,
        }
    }

    /// Whether the container ended successfully (an init container is done).
    pub fn succeeded(&self) -> bool {
        matches!(&self.phase, Phase::Terminated(t) if t.exit_code == 0)
    }
}

/// A pod worker's observed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodState {
    pub pod_ip: Option<String>,
    pub start_time: Option<Timestamp>,
    pub init_containers: Vec<ContainerState>,
    pub containers: Vec<ContainerState>,
    /// The containers are being stopped (deletion, or the pod left this node).
    pub terminating: bool,
    /// Every container has stopped for good.
    pub stopped: bool,
    /// The pod reached Succeeded or Failed before this worker started (an agent restart):
    /// its containers are not run again.
    pub finished: Option<FinishedPhase>,
}

/// A terminal phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishedPhase {
    Succeeded,
    Failed,
}

impl FinishedPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishedPhase::Succeeded => "Succeeded",
            FinishedPhase::Failed => "Failed",
        }
    }
}
