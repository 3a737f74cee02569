//! skiff-controllers: the scheduler and the controllers that make desired state real —
//! replication, rollouts, daemons, jobs, node lifecycle, garbage collection.
//!
//! Where a newcomer starts: [`manager::run`] wires everything (under [`leader`]
//! election when several servers share one store). Each controller is a [`Reconciler`]
//! driven by a [`Controller`] ([`driver`]): informer caches ([`skiff_client::Informer`])
//! in, a deduplicating work queue, a pure `plan` per object, a thin compare-and-swap
//! apply. [`Context`] is what every controller gets: the client, the shared informers,
//! the event recorder and the settings.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod context;
pub mod daemonset;
pub mod deployment;
pub mod driver;
pub mod endpoints;
pub mod error;
pub mod gc;
pub mod job;
pub mod leader;
pub mod manager;
pub mod namespace;
pub mod nodelifecycle;
pub mod replicaset;
pub mod scheduler;

pub use context::{Context, ControllerConfig, EventRecorder, Informers};
pub use driver::{Controller, Reconciler, Requeue, WorkQueue};
pub use error::{Error, Result};
pub use leader::LeaderElectionConfig;
pub use manager::ManagerConfig;
