//! What every test here starts from: an in-process API server
//! ([`skiff_apiserver::start_local`]), an admin client for it, and the tasks a test
//! starts against it, stopped together.

use std::time::Duration;

use skiff_apiserver::RunningServer;
use skiff_client::{Client, ClusterConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const NS: &str = "default";
/// How long [`wait_for`] waits.
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Api {
    pub client: Client,
    pub cancel: CancellationToken,
    pub tasks: TaskTracker,
    _server: RunningServer,
    _dir: tempfile::TempDir,
}

impl Api {
    pub async fn start() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let server = skiff_apiserver::start_local(dir.path(), false, cancel.clone())
            .await
            .unwrap();
        let client = Client::new(&ClusterConfig {
            source: dir.path().join("kubeconfig"),
            context: "test".into(),
            server: server.url(),
            ca_pem: None,
            insecure_skip_tls_verify: false,
            token: Some(server.tokens().admin().to_string()),
            namespace: NS.into(),
        })
        .unwrap();
        Api {
            client,
            cancel,
            tasks: TaskTracker::new(),
            _server: server,
            _dir: dir,
        }
    }

    /// Cancels every task the test started and waits for them (10 s at most).
    pub async fn stop(self) {
        self.cancel.cancel();
        self.tasks.close();
        tokio::time::timeout(Duration::from_secs(10), self.tasks.wait())
            .await
            .expect("the test's tasks stop within 10 s");
    }
}

/// Polls `check` until it answers `Some`, failing the test after [`WAIT`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
