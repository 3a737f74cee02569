use std::path::PathBuf;

use crate::{LeaseId, Revision};

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "revision {requested} has been compacted; the oldest kept revision is {compact_revision}"
    )]
    Compacted {
        requested: Revision,
        compact_revision: Revision,
    },
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("value for key {key:?} is {size} bytes; the limit is {limit} bytes")]
    ValueTooLarge {
        key: String,
        size: usize,
        limit: usize,
    },
    #[error("lease {0:?} not found (expired or revoked)")]
    LeaseNotFound(LeaseId),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("watcher fell behind; resume watching from revision {resume_from}")]
    WatchLagged { resume_from: Revision },
    #[error("the database file {path} is corrupt or not a Skiff store: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot open the database file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot reach the store at {endpoints}: {reason}")]
    Unavailable { endpoints: String, reason: String },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[cfg(feature = "etcd")]
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("the store is shut down")]
    Closed,
    #[error("internal store error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
