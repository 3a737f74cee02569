//! skiff-runtime's integration tests: the real guests of `tests/guests` (built by `make
//! guests`) and a few hand-written components and modules, on a real host.

#![allow(clippy::unwrap_used)]

mod agent;
mod cache;
mod command;
mod config;
mod errors;
mod fetch;
mod http;
mod limits;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skiff_runtime::{
    ContainerExit, ContainerLog, ContainerSpec, EngineConfig, Host, HostConfig, LogConfig,
    LogQuery, PodLimits, PodSandbox,
};
use tokio_util::sync::CancellationToken;

/// The path of a built guest; panics with how to build it.
pub fn guest(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/guests/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "guest {name} is not built ({}): run `make guests`",
        path.display()
    );
    path.canonicalize().unwrap()
}

/// `file:///…` of a built guest.
pub fn image(name: &str) -> String {
    format!("file://{}", guest(name).display())
}

/// A host on its own data directory.
pub struct TestHost {
    pub host: Arc<Host>,
    pub dir: tempfile::TempDir,
}

pub fn host() -> TestHost {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path());
    TestHost { host, dir }
}

pub fn host_in(dir: &Path) -> Arc<Host> {
    Arc::new(
        Host::new(HostConfig {
            data_dir: dir.to_path_buf(),
            engine: EngineConfig::small(),
        })
        .unwrap(),
    )
}

pub fn spec(args: &[&str], env: &[(&str, &str)]) -> ContainerSpec {
    ContainerSpec {
        name: "main".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ContainerSpec::default()
    }
}

/// Runs `image` to completion; returns how it ended and its log.
pub async fn run(
    host: &Arc<Host>,
    image: &str,
    pod: &PodSandbox,
    spec: &ContainerSpec,
) -> (ContainerExit, String) {
    let workload = host.load(image).await.unwrap();
    let log = ContainerLog::new(LogConfig::default());
    let exit = host
        .run(&workload, pod, spec, &log, &CancellationToken::new())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&log.read(&LogQuery::default())).into_owned();
    (exit, text)
}

pub fn unlimited() -> PodSandbox {
    PodSandbox::new(PodLimits::default())
}

/// Waits for `cond`, failing after `limit` (a guard against hangs, not a measurement).
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "condition not reached in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes `bytes` as a file in `dir` and returns its `file://` image.
pub fn file_image(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    format!("file://{}", path.display())
}
