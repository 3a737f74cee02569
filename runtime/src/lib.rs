//! skiff-runtime: Skiff's node runtime — runs pods of Wasm components in wasmtime,
//! sandboxed, limited and logged.
//!
//! Where a newcomer starts: [`Host`] (one per node) owns the one [`wasmtime::Engine`]
//! (configured in [`engine::EngineConfig`]), the epoch ticker, the content store and the
//! artifact cache. [`Host::load`] turns a container's `image` into a [`Workload`] (compiled
//! once per digest, ever); [`Host::run`] runs a command in a [`PodSandbox`] to a
//! [`ContainerExit`]; [`Host::http_service`] serves an HTTP component. A pod's limits
//! ([`limits`]) and a container's logs ([`logs`]) come with them.
//!
//! ```text
//! image ──content──▶ digest ──artifact cache | compile──▶ Component ──imports, exports──▶ Workload
//! Workload + PodSandbox + ContainerSpec + ContainerLog ──run──▶ ContainerExit
//!                                                      ──http_service──▶ HttpService
//! ```
//!
//! A guest's failure is never this crate's error: traps, exits and limit hits are a
//! [`ContainerExit`] (or a 5xx for one HTTP request). [`Error`] is for what keeps a
//! container from starting (a bad image, a missing import…), with the Kubernetes
//! `waiting` reason it maps to.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod agent;
pub mod artifact;
pub mod content;
pub mod engine;
pub mod error;
pub mod host;
pub mod http;
pub mod imports;
pub mod limits;
pub mod logs;
pub mod pod;
pub mod proxy;
mod state;

pub use agent::{
    Agent, AgentConfig, AgentEndpoints, AgentError, BackoffConfig, HttpEndpoint, NodeCapacity,
    RunningAgent,
};
pub use content::{ContentStore, Digest, ImageRef};
pub use engine::EngineConfig;
pub use error::{Error, Result};
pub use host::{Host, HostConfig, Workload, WorkloadKind};
pub use http::{HttpConfig, HttpService};
pub use limits::PodLimits;
pub use logs::{ContainerLog, LogConfig, LogQuery};
pub use pod::{ContainerExit, ContainerSpec, PodSandbox, Preopen, Reason};
