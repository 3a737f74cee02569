//! `skiff up`: the single-machine cluster (like `k3s server`) — the API server on the
//! embedded store, the scheduler and controllers, and one node (agent + service proxy)
//! in one process, until SIGINT/SIGTERM. Writes `DIR/kubeconfig.yaml`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use skiff_runtime::agent::{Agent, AgentConfig};
use tokio_util::sync::CancellationToken;

use crate::server::{ControlPlane, ServerArgs, local_client};

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the cluster keeps its state: the embedded store, tokens and
    /// kubeconfig.yaml in DIR, the node's pods and compiled components in DIR/node
    #[arg(long, value_name = "DIR", default_value = ".skiff")]
    pub data_dir: PathBuf,

    /// Address the API listens on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,

    /// The node's name [default: the host name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// The address the node advertises and binds its agent API and NodePorts to
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub node_ip: IpAddr,

    /// The agent API's port (0 picks a free one)
    #[arg(long, value_name = "PORT", default_value_t = 10250)]
    pub agent_port: u16,

    /// Pods get virtual addresses from this range
    #[arg(long, value_name = "CIDR", default_value = "10.42.0.0/24")]
    pub pod_cidr: String,

    /// How long a node may go without renewing its Lease before it is marked Ready=Unknown
    #[arg(long, value_name = "DURATION", default_value = "40s", value_parser = crate::cli_common::parse_duration)]
    pub node_monitor_grace_period: Duration,

    /// How long pods without their own toleration stay on an unreachable node
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub default_unreachable_toleration_seconds: u64,

    /// Also trust these CA certificates (PEM) when fetching https:// images
    #[arg(long, value_name = "PATH")]
    pub image_ca_file: Option<PathBuf>,
}

/// The node's name when none is given: the host name, lower-cased (a DNS label).
pub fn default_node_name() -> String {
    let raw = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "skiff-node".into());
    node_name_of(&raw)
}

fn node_name_of(raw: &str) -> String {
    let name: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(|c| c == '-' || c == '.').to_string();
    if name.is_empty() {
        "skiff-node".into()
    } else {
        name
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let server_args = ServerArgs {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        etcd_endpoints: Vec::new(),
        tls_sans: Vec::new(),
        history_revisions: 10_000,
        node_monitor_grace_period: args.node_monitor_grace_period,
        default_unreachable_toleration_seconds: args.default_unreachable_toleration_seconds,
        no_controllers: false,
    };
    let plane = ControlPlane::start(&server_args, &cancel).await?;
    let client = local_client(&plane.server)?;

    let node_dir = args.data_dir.join("node");
    std::fs::create_dir_all(&node_dir)
        .with_context(|| format!("creating the node directory {}", node_dir.display()))?;
    let node_dir = std::fs::canonicalize(&node_dir)?;
    let host = Arc::new(crate::node::make_host(
        &node_dir,
        args.image_ca_file.as_deref(),
    )?);
    let name = args.name.clone().unwrap_or_else(default_node_name);
    let mut config = AgentConfig::new(
        name.clone(),
        args.node_ip,
        node_dir,
        plane.server.tokens().node().to_string(),
    );
    config.agent_listen = SocketAddr::new(args.node_ip, args.agent_port);
    config.pod_cidr = args.pod_cidr.clone();
    let agent = Agent::start(config, client.clone(), host, cancel.clone())
        .await
        .context("starting the node agent")?;
    let proxy = tokio::spawn(skiff_runtime::proxy::run(
        skiff_runtime::proxy::ProxyConfig {
            node_name: name.clone(),
            bind_ip: args.node_ip,
        },
        client,
        Arc::new(agent.endpoints()),
        cancel.clone(),
    ));

    println!("skiff up: API at {}", plane.server.url());
    println!("skiff up: node {name} (agent at {})", agent.agent_addr());
    println!(
        "skiff up: kubeconfig at {} (export KUBECONFIG={})",
        plane.server.kubeconfig_path().display(),
        plane.server.kubeconfig_path().display()
    );
    crate::signal::wait_for_shutdown().await;
    tracing::info!("shutting down");
    cancel.cancel();
    let _ = proxy.await;
    agent.wait().await;
    plane.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::node_name_of;

    #[test]
    fn host_names_become_node_names() {
        assert_eq!(node_name_of("Edge-Box_01"), "edge-box-01");
        assert_eq!(
            node_name_of("  site-3.example.com \n"),
            "site-3.example.com"
        );
        assert_eq!(node_name_of("--"), "skiff-node");
    }
}
