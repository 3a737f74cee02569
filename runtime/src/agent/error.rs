//! The agent's errors: what keeps the agent itself from starting or one of its API calls
//! from succeeding. What a pod or a guest does is never an agent error: it is pod status.

use std::path::PathBuf;

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A call to the API server failed (`what` names the call and the object).
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: skiff_client::Error,
    },

    /// A call to the API server did not answer in time.
    #[error("{what}: no answer within {timeout:?}")]
    Timeout {
        what: String,
        timeout: std::time::Duration,
    },

    /// Local disk I/O (the data directory, a pod's directory, the agent's listener).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The agent's listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// The configuration is unusable (a bad pod CIDR…).
    #[error("invalid agent configuration: {0}")]
    Config(String),

    /// An object from the API (or from disk) is not what it should be.
    #[error("{0}")]
    Invalid(String),
}

impl AgentError {
    pub(crate) fn api(what: impl Into<String>, source: skiff_client::Error) -> AgentError {
        AgentError::Api {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> AgentError {
        AgentError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the server refused the write as stale (409): requeue, don't report.
    pub fn is_conflict(&self) -> bool {
        matches!(self, AgentError::Api { source, .. } if source.is_conflict())
    }

    /// Whether the object does not exist (404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, AgentError::Api { source, .. } if source.is_not_found())
    }

    /// Whether the API server could not be reached (or did not answer in time), as opposed
    /// to answering with an error.
    pub fn is_unreachable(&self) -> bool {
        match self {
            AgentError::Timeout { .. } => true,
            AgentError::Api { source, .. } => matches!(
                source,
                skiff_client::Error::Connect { .. } | skiff_client::Error::Body { .. }
            ),
            _ => false,
        }
    }

    /// Whether the object already exists (409 AlreadyExists).
    pub fn is_already_exists(&self) -> bool {
        matches!(self, AgentError::Api { source, .. }
            if source.api().is_some_and(skiff_client::ApiError::is_already_exists))
    }
}

/// The agent's result type.
pub type AgentResult<T, E = AgentError> = std::result::Result<T, E>;

/// Runs one API call with a deadline: the client's own connect timeout does not bound a
/// server that accepts and then never answers.
pub(crate) async fn call<T>(
    what: impl Into<String>,
    timeout: std::time::Duration,
    fut: impl Future<Output = skiff_client::Result<T>>,
) -> AgentResult<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(AgentError::api(what, source)),
        Err(_) => Err(AgentError::Timeout {
            what: what.into(),
            timeout,
        }),
    }
}
