//! The API server's integration tests: every behaviour through real HTTP on
//! 127.0.0.1:0, each test run on the embedded store and on a real etcd.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod events;
mod harness;
mod logs;
mod manifests;
mod printing;
mod rest;
mod services;
mod watch;

/// Runs `async fn $name(s: TestServer)` once per backend, as `$name::embedded` and
/// `$name::etcd`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                let s = $crate::harness::TestServer::start($crate::harness::Backend::Embedded).await;
                super::$name(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                let s = $crate::harness::TestServer::start($crate::harness::Backend::Etcd).await;
                super::$name(s).await;
            }
        }
    )*};
}
