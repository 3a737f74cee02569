//! skiff-apiserver: Skiff's Kubernetes-compatible REST API.
//!
//! Start with [`server::start`]: it binds, writes the admin kubeconfig and tokens into
//! the data directory, fills the [`cache::WatchCache`] from the store and serves until
//! its cancellation token fires. A request then goes
//!
//! ```text
//! server::route ── auth (bearer token) ── path::parse ── Query::parse
//!     ├─ discovery           /api, /apis, /version
//!     ├─ watch::start        ?watch=true  (from the watch cache, or the store below it)
//!     └─ handler::Api        get/list (watch cache), create/update/patch/delete (store, CAS)
//!            └─ admission    skiff-api: decode, unknown fields, defaults, validation
//! ```
//!
//! resourceVersion is the store revision; every write is a compare-and-swap on it.

pub mod accept;
pub mod admission;
mod allocator;
pub mod auth;
pub mod body;
pub mod cache;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod handler;
pub mod logs;
pub mod object;
pub mod openapi;
pub mod path;
mod protobuf;
pub mod query;
pub mod resources;
pub mod server;
pub mod table;
pub mod tls;
pub mod watch;

pub use error::{ApiError, Error, Result};
pub use server::{ApiServerConfig, RunningServer, start, start_local};
