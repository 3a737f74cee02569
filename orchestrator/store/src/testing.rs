//! Test support (feature `testing`): a real etcd process of a test's own, for this
//! crate's conformance suite, the API server's tests, the binary's end-to-end tests and
//! the benchmarks.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::etcd::{EtcdOptions, EtcdStore};

/// An etcd started on free loopback ports with its data in a temporary directory;
/// killed (and its data removed) on drop. Each test gets its own, because revisions
/// and compaction are global to an etcd.
///
/// The binary is `$SKIFF_ETCD_BIN`, else `etcd` on PATH (Debian package `etcd-server`;
/// `make test` installs it).
#[derive(Debug)]
pub struct EtcdProcess {
    child: Child,
    endpoint: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl EtcdProcess {
    /// Starts etcd and waits until it answers (20 s at most). Ports found free can be
    /// taken before etcd binds them, so a failed start is retried twice. The error says
    /// how to get etcd, or shows the end of its log.
    pub async fn start() -> Result<Self, String> {
        let mut last_log = String::new();
        for _ in 0..3 {
            let mut proc = Self::spawn()?;
            if proc.wait_ready().await {
                return Ok(proc);
            }
            last_log = proc.log_tail();
        }
        Err(format!(
            "etcd did not start; its log ends with:\n{last_log}"
        ))
    }

    fn spawn() -> Result<Self, String> {
        let bin = std::env::var("SKIFF_ETCD_BIN").unwrap_or_else(|_| "etcd".into());
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir for etcd: {e}"))?;
        let (client, peer) = (free_port()?, free_port()?);
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = dir.path().join("etcd.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("create the etcd log: {e}"))?;
        let child = Command::new(&bin)
            .arg("--name=t")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=t={peer_url}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "etcd not found (`{bin}`): these tests need a real etcd. Install etcd-server \
                         (`make test` installs it), or point SKIFF_ETCD_BIN at an etcd binary"
                    )
                } else {
                    format!("cannot start etcd (`{bin}`): {e}")
                }
            })?;
        Ok(Self {
            child,
            endpoint,
            log,
            _dir: dir,
        })
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn try_connect(&self) -> Option<EtcdStore> {
        let options = EtcdOptions {
            connect_timeout: Duration::from_secs(1),
            ..EtcdOptions::default()
        };
        tokio::time::timeout(
            Duration::from_secs(2),
            EtcdStore::connect(std::slice::from_ref(&self.endpoint), options),
        )
        .await
        .ok()?
        .ok()
    }

    /// Whether etcd answers within 20 s (false if it exited).
    async fn wait_ready(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline {
            if self.try_connect().await.is_some() {
                return true;
            }
            if !matches!(self.child.try_wait(), Ok(None)) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// A store client on this etcd.
    pub async fn connect(&self) -> Result<EtcdStore, String> {
        self.try_connect()
            .await
            .ok_or_else(|| format!("etcd at {} stopped answering", self.endpoint))
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}
