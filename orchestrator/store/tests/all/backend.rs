//! Backends for the tests: a fresh embedded store in a temporary directory, or a fresh
//! etcd process of its own per test (so revisions and compaction are isolated).

use std::sync::Arc;
use std::time::Duration;

use skiff_store::Store;
use skiff_store::embedded::{EmbeddedOptions, EmbeddedStore};

pub struct Backend {
    pub store: Arc<dyn Store>,
    pub kind: Kind,
    _guard: Guard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Embedded,
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    Etcd,
}

#[allow(dead_code)]
enum Guard {
    Dir(tempfile::TempDir),
    #[cfg(feature = "etcd")]
    Etcd(skiff_store::testing::EtcdProcess),
}

impl Backend {
    pub async fn close(self) {
        self.store.close().await.expect("close the store");
    }
}

pub async fn embedded() -> Backend {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = EmbeddedStore::open(dir.path().join("store.db"), EmbeddedOptions::default())
        .await
        .expect("open an embedded store");
    Backend {
        store: Arc::new(store),
        kind: Kind::Embedded,
        _guard: Guard::Dir(dir),
    }
}

#[cfg(feature = "etcd")]
pub async fn etcd() -> Backend {
    let server = skiff_store::testing::EtcdProcess::start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = server.connect().await.unwrap_or_else(|e| panic!("{e}"));
    Backend {
        store: Arc::new(store),
        kind: Kind::Etcd,
        _guard: Guard::Etcd(server),
    }
}

/// Waits for `check` to hold, polling, failing after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
