//! The runtime's errors: what keeps a container from starting. What a guest does once it
//! runs (traps, exits, limit hits) is never an error here but a [`crate::ContainerExit`].

use std::path::PathBuf;

/// Why a component could not be fetched, compiled, linked or started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `image` field names nothing Skiff can fetch.
    #[error("invalid image reference {image:?}: {reason}")]
    InvalidImage { image: String, reason: String },

    /// The image kind is recognised but not supported (yet).
    #[error("cannot fetch {image:?}: {reason}")]
    Unsupported { image: String, reason: String },

    /// Reading or fetching the component failed (missing file, unreachable URL).
    #[error("cannot fetch {image:?}: {source}")]
    Fetch {
        image: String,
        #[source]
        source: std::io::Error,
    },

    /// A `sha256:` image that is not in the node's content store.
    #[error("{digest} is not in the content store")]
    NotInStore { digest: String },

    /// The bytes fetched do not have the digest the image names.
    #[error("digest mismatch for {image:?}: expected {expected}, got {actual}")]
    DigestMismatch {
        image: String,
        expected: String,
        actual: String,
    },

    /// Neither a component nor a core module, or wasmtime refused to compile it.
    #[error("invalid component {digest}: {message}")]
    InvalidComponent { digest: String, message: String },

    /// The component imports interfaces this host does not provide: every one is named.
    #[error(
        "component {digest} imports what this host does not provide: {}",
        missing.join(", ")
    )]
    MissingImports {
        digest: String,
        missing: Vec<String>,
    },

    /// The component's imports exist but do not type-check against the host's.
    #[error("component {digest} cannot be linked: {message}")]
    Link { digest: String, message: String },

    /// The component exports nothing Skiff knows how to run.
    #[error(
        "component {digest} exports [{}]; expected one of wasi:cli/run, \
         wasi:http/incoming-handler (or a preview-1 core module exporting _start)",
        exports.join(", ")
    )]
    NotRunnable {
        digest: String,
        exports: Vec<String>,
    },

    /// The container asked for something the sandbox cannot grant (a missing preopen).
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),

    /// The workload is of the other kind (serving an HTTP component as a command…).
    #[error("component {digest} is {actual}, not {expected}")]
    WrongKind {
        digest: String,
        expected: &'static str,
        actual: &'static str,
    },

    /// The engine could not be configured (pooling sizes, stack sizes).
    #[error("engine configuration: {0}")]
    Engine(String),

    /// The node's own settings are unusable (extra CA certificates that do not parse…).
    #[error("node configuration: {0}")]
    Config(String),

    /// Local disk I/O of the content store, artifact cache or logs.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// wasmtime failed where no guest was involved (creating a store, serializing).
    #[error("wasmtime: {0}")]
    Wasmtime(String),
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The reason a Kubernetes container status shows while this error keeps it waiting.
    pub fn waiting_reason(&self) -> &'static str {
        match self {
            Error::InvalidImage { .. } => "InvalidImageName",
            Error::Unsupported { .. } | Error::Fetch { .. } | Error::NotInStore { .. } => {
                "ComponentFetchFailed"
            }
            Error::DigestMismatch { .. } => "DigestMismatch",
            Error::InvalidComponent { .. }
            | Error::MissingImports { .. }
            | Error::Link { .. }
            | Error::NotRunnable { .. }
            | Error::WrongKind { .. } => "InvalidComponent",
            Error::InvalidSpec(_) => "CreateContainerConfigError",
            Error::Engine(_) | Error::Config(_) | Error::Io { .. } | Error::Wasmtime(_) => {
                "CreateContainerError"
            }
        }
    }
}
