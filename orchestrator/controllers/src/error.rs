//! The controllers' one error type.

use skiff_client::ObjectKey;

/// What can go wrong in a reconcile or the machinery around it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or could not be reached.
    #[error(transparent)]
    Api(#[from] skiff_client::Error),
    /// An object in the cache cannot be understood (a bug or a newer API).
    #[error("{key}: {message}")]
    Invalid { key: ObjectKey, message: String },
    /// A JSON (de)serialisation of an object failed.
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// A stale resourceVersion: normal under concurrency; requeue quietly.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Api(e) if e.is_conflict())
    }

    /// The object is already gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api(e) if e.is_not_found())
    }

    pub fn invalid(key: &ObjectKey, message: impl Into<String>) -> Error {
        Error::Invalid {
            key: key.clone(),
            message: message.into(),
        }
    }

    pub fn json(context: impl Into<String>, source: serde_json::Error) -> Error {
        Error::Json {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
