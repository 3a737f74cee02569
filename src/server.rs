//! `skiff server`: the control plane — API server on the embedded store (default) or
//! on etcd — with the scheduler and controllers (leader-elected), until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use skiff_store::Store;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Directory for the embedded database, tokens and the admin kubeconfig
    #[arg(long, value_name = "DIR", default_value = ".skiff/server")]
    pub data_dir: PathBuf,

    /// Address the API listens on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,

    /// Use etcd at these client URLs instead of the embedded store (comma-separated)
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,

    /// Extra DNS names or IPs for the API's TLS certificate (localhost and loopback are always in)
    #[arg(long = "tls-san", value_name = "NAME")]
    pub tls_sans: Vec<String>,

    /// Store revisions of history kept for watches to resume from; older ones are compacted
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub history_revisions: i64,

    /// How long a node may go without renewing its Lease before it is marked Ready=Unknown
    /// and tainted unreachable (`40s`, `5s`)
    #[arg(long, value_name = "DURATION", default_value = "40s", value_parser = crate::cli_common::parse_duration)]
    pub node_monitor_grace_period: std::time::Duration,

    /// How long pods without their own toleration stay on an unreachable node before they
    /// are evicted and replaced elsewhere
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub default_unreachable_toleration_seconds: u64,

    /// Run only the API (no scheduler, no controllers)
    #[arg(long)]
    pub no_controllers: bool,
}

impl ServerArgs {
    /// The controller manager's settings from the flags; leader election is always on, so
    /// several servers on one etcd run the controllers exactly once.
    pub fn manager_config(&self) -> skiff_controllers::ManagerConfig {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "skiff".into());
        let identity = format!("{host}_{:08x}", rand::random::<u32>());
        skiff_controllers::ManagerConfig {
            controllers: skiff_controllers::ControllerConfig {
                node_monitor_grace_period: self.node_monitor_grace_period,
                default_unreachable_toleration: std::time::Duration::from_secs(
                    self.default_unreachable_toleration_seconds,
                ),
                ..Default::default()
            },
            leader_election: Some(skiff_controllers::LeaderElectionConfig::new(identity)),
        }
    }
}

/// A client for the in-process controllers (and agent): the server's own kubeconfig.
pub fn local_client(
    server: &skiff_apiserver::RunningServer,
) -> anyhow::Result<skiff_client::Client> {
    let path = server.kubeconfig_path();
    let kubeconfig = skiff_client::Kubeconfig::read(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let cluster = kubeconfig.resolve(None)?;
    Ok(skiff_client::Client::new(&cluster)?)
}

/// A running control plane: API server, compactor, controller manager.
pub struct ControlPlane {
    pub server: skiff_apiserver::RunningServer,
    compactor: tokio::task::JoinHandle<()>,
    manager: Option<tokio::task::JoinHandle<()>>,
}

impl ControlPlane {
    /// Opens the store and starts everything; it all stops when `cancel` fires.
    pub async fn start(args: &ServerArgs, cancel: &CancellationToken) -> anyhow::Result<Self> {
        let store = open_store(args).await?;
        let config = skiff_apiserver::ApiServerConfig {
            listen: args.listen,
            data_dir: args.data_dir.clone(),
            tls_sans: args.tls_sans.clone(),
            ..Default::default()
        };
        let server = skiff_apiserver::start(config, store.clone(), cancel.clone())
            .await
            .context("starting the API server")?;
        let policy = skiff_store::CompactionPolicy {
            keep_revisions: args.history_revisions,
            ..Default::default()
        };
        let compactor = tokio::spawn(skiff_store::run_compactor(store, policy, cancel.clone()));
        let manager = if args.no_controllers {
            None
        } else {
            let client = local_client(&server)?;
            Some(tokio::spawn(skiff_controllers::manager::run(
                client,
                args.manager_config(),
                cancel.clone(),
            )))
        };
        Ok(ControlPlane {
            server,
            compactor,
            manager,
        })
    }

    /// Waits for everything to stop (after the cancel given to `start`).
    pub async fn wait(self) {
        if let Some(manager) = self.manager {
            let _ = manager.await;
        }
        self.server.wait().await;
        let _ = self.compactor.await;
    }
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let plane = ControlPlane::start(&args, &cancel).await?;
    println!("skiff server: API at {}", plane.server.url());
    println!(
        "skiff server: kubeconfig at {} (export KUBECONFIG={})",
        plane.server.kubeconfig_path().display(),
        plane.server.kubeconfig_path().display()
    );
    crate::signal::wait_for_shutdown().await;
    tracing::info!("shutting down");
    cancel.cancel();
    plane.wait().await;
    Ok(())
}

async fn open_store(args: &ServerArgs) -> anyhow::Result<Arc<dyn Store>> {
    if args.etcd_endpoints.is_empty() {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
        let path = args.data_dir.join("state.db");
        let store = skiff_store::embedded::EmbeddedStore::open(&path, Default::default())
            .await
            .with_context(|| format!("opening the embedded store {}", path.display()))?;
        tracing::info!(path = %path.display(), "embedded store opened");
        Ok(Arc::new(store))
    } else {
        let store = skiff_store::etcd::EtcdStore::connect(&args.etcd_endpoints, Default::default())
            .await
            .with_context(|| format!("connecting to etcd at {}", args.etcd_endpoints.join(",")))?;
        tracing::info!(endpoints = %args.etcd_endpoints.join(","), "connected to etcd");
        Ok(Arc::new(store))
    }
}
