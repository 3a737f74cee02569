//! skiff-client: talk to a Skiff API server (or any Kubernetes API server) over its REST
//! API.
//!
//! Where a newcomer starts:
//!
//! 1. [`Kubeconfig`] finds and reads a kubeconfig (`--kubeconfig`, `$KUBECONFIG`,
//!    `~/.skiff/kubeconfig.yaml`) and [`Kubeconfig::resolve`]s a context into a
//!    [`ClusterConfig`]: server URL, the CA to trust, the bearer token, the namespace.
//! 2. [`Client::new`] connects with it: hyper 1 over rustls, trusting only that CA.
//! 3. The verbs take a [`skiff_api::registry::Resource`] (what kind) and work on
//!    `serde_json::Value` objects: [`Client::get`], [`Client::list`], [`Client::create`],
//!    [`Client::replace`], [`Client::patch`], [`Client::delete`], [`Client::patch_scale`],
//!    [`Client::watch`] (a stream of [`WatchEvent`]s), [`Client::logs`]. For printing,
//!    [`Client::get_table`], [`Client::list_table`] and [`Client::watch_table`] ask for
//!    the server's [`Table`]s (kubectl's columns, computed by the server).
//! 4. A refusal from the server is an [`ApiError`] carrying its `kind: Status`; it prints
//!    as kubectl prints it: `Error from server (NotFound): pods "x" not found`.
//!
//! ```no_run
//! # async fn demo() -> skiff_client::Result<()> {
//! use skiff_api::registry;
//! let client = skiff_client::Client::from_kubeconfig(None)?;
//! let pods = client.list(&registry::POD, Some("default"), &Default::default()).await?;
//! # let _ = pods; Ok(()) }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod client;
pub mod error;
pub mod informer;
pub mod kubeconfig;
pub mod table;
pub mod watch;

pub use client::{
    ByteStream, Client, DeleteParams, ListParams, LogParams, Patch, PropagationPolicy,
};
pub use error::{ApiError, Error, Result, StatusCause};
pub use informer::{Informer, InformerEvent, ObjectKey};
pub use kubeconfig::{ClusterConfig, Kubeconfig};
pub use table::{IncludeObject, Table, TableColumn, TableRow};
pub use watch::{WatchEvent, WatchStream};
