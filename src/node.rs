//! `skiff node`: the node runtime — the agent (Node registration, Lease heartbeat, pod
//! workers, status, the logs API) on one wasmtime host, and the service proxy (NodePorts)
//! — until SIGINT/SIGTERM.
//!
//! Pods keep running while the API server is unreachable, and the pods saved under
//! `--data-dir` run again when `skiff node` restarts, API or not.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use skiff_client::{Client, ClusterConfig, Kubeconfig};
use skiff_runtime::{Agent, AgentConfig, EngineConfig, Host, HostConfig};
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Connecting: give --server and --token (the server's DATA/node-token); for an https:// \
server also --ca-file (the server's DATA/tls/ca.crt), which is the only CA trusted. \
Alternatively --kubeconfig takes the server URL and CA (and, if it has one, the API \
token) from a kubeconfig; --token is still the node token the API server must show on \
this node's agent API.

Addresses: --node-ip ADDR is the address the node advertises (InternalIP) and binds its \
agent API to, so that several nodes can share one machine (127.0.0.2, 127.0.0.3…). \
Without it the node advertises this machine's primary address and listens on all \
interfaces.")]
pub struct NodeArgs {
    /// The API server's URL, e.g. https://10.0.0.1:6443
    #[arg(long, value_name = "URL", required_unless_present = "kubeconfig")]
    server: Option<String>,

    /// The node token (the server's DATA/node-token): authenticates this node to the API
    /// and the API server to this node's agent
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SKIFF_NODE_TOKEN",
        hide_env_values = true
    )]
    token: String,

    /// The cluster CA certificate (PEM, the server's DATA/tls/ca.crt); required for https
    #[arg(long, value_name = "PATH", conflicts_with = "kubeconfig")]
    ca_file: Option<PathBuf>,

    /// Take the server URL and CA from this kubeconfig instead of --server and --ca-file
    #[arg(long, value_name = "PATH", conflicts_with = "server")]
    kubeconfig: Option<PathBuf>,

    /// Where the node keeps its pods, their logs and volumes, and compiled components
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,

    /// The Node's name [default: this machine's hostname]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// The address to advertise and to bind the agent API on [default: advertise the
    /// primary address, listen on 0.0.0.0]
    #[arg(long, value_name = "ADDR")]
    node_ip: Option<IpAddr>,

    /// The agent API's port (the kubelet's)
    #[arg(long, value_name = "PORT", default_value_t = 10250)]
    agent_port: u16,

    /// The range pods get their virtual addresses from [default: 10.42.N.0/24, N the
    /// last byte of the node's address, so that nodes sharing a machine differ]
    #[arg(long, value_name = "CIDR")]
    pod_cidr: Option<String>,

    /// A label for the Node (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,

    /// Also trust these CA certificates (PEM) when fetching https:// images, besides the
    /// public roots (a private registry or file server)
    #[arg(long, value_name = "PATH")]
    image_ca_file: Option<PathBuf>,

    /// The node Lease's duration (the kubelet's flag). The agent renews it every quarter of
    /// this, which must stay well under the server's --node-monitor-grace-period
    #[arg(long, value_name = "SECONDS", default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=3600))]
    node_lease_duration_seconds: u64,
}

/// The wasmtime host, trusting `image_ca_file` for https:// images.
pub fn make_host(
    data_dir: &std::path::Path,
    image_ca_file: Option<&std::path::Path>,
) -> anyhow::Result<Host> {
    let config = HostConfig {
        data_dir: data_dir.to_path_buf(),
        engine: EngineConfig::default(),
    };
    let host = match image_ca_file {
        None => Host::new(config),
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("--image-ca-file {}", path.display()))?;
            let fetch = skiff_runtime::content::FetchConfig {
                extra_ca_pem: pem,
                ..Default::default()
            };
            Host::with_fetch_config(config, fetch)
        }
    };
    host.context("starting the wasmtime host")
}

/// This machine's hostname as a Node name (a DNS subdomain: lowercase, other characters
/// turned into `-`).
fn hostname() -> String {
    let from_file = |p: &str| std::fs::read_to_string(p).ok();
    let raw = from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
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
    let name = name.trim_matches(|c| c == '-' || c == '.');
    if name.is_empty() {
        "skiff-node".to_string()
    } else {
        name.to_string()
    }
}

/// The address this machine reaches the world from (no packet is sent: connecting a UDP
/// socket only picks a route); loopback when there is no route.
fn primary_address() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
        Ok(socket.local_addr()?.ip())
    };
    match probe() {
        Ok(ip) if !ip.is_unspecified() => ip,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// `10.42.N.0/24`, N the last byte of the node's address.
fn default_pod_cidr(node_ip: IpAddr) -> String {
    let last = match node_ip {
        IpAddr::V4(ip) => ip.octets()[3],
        IpAddr::V6(ip) => ip.octets()[15],
    };
    format!("10.42.{last}.0/24")
}

fn cluster_config(args: &NodeArgs) -> anyhow::Result<ClusterConfig> {
    if let Some(path) = &args.kubeconfig {
        let mut config = Kubeconfig::read(path)?.resolve(None)?;
        if config.token.is_none() {
            config.token = Some(args.token.clone());
        }
        return Ok(config);
    }
    let Some(server) = args.server.clone() else {
        bail!("--server URL (or --kubeconfig PATH) is required");
    };
    let ca_pem = match &args.ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("reading the CA certificate {}", path.display()))?,
        ),
        None if server.starts_with("https://") => bail!(
            "--server {server} is https: give --ca-file PATH (the server's DATA/tls/ca.crt), or --kubeconfig"
        ),
        None => {
            tracing::warn!(%server, "plain HTTP: the node token travels unencrypted");
            None
        }
    };
    Ok(ClusterConfig {
        source: PathBuf::new(),
        context: "skiff-node".into(),
        server,
        ca_pem,
        insecure_skip_tls_verify: false,
        token: Some(args.token.clone()),
        namespace: "default".into(),
    })
}

fn parse_labels(labels: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    labels
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--label {kv:?}: expected KEY=VALUE"))
        })
        .collect()
}

pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    if args.token.trim().is_empty() {
        bail!("--token is empty: give the server's node token (DATA/node-token)");
    }
    let client = Client::new(&cluster_config(&args)?)?;
    let name = args.name.clone().unwrap_or_else(hostname);
    let (node_ip, listen_ip) = match args.node_ip {
        Some(ip) => (ip, ip),
        None => (primary_address(), IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
    };
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
    let host = Arc::new(make_host(&args.data_dir, args.image_ca_file.as_deref())?);
    let mut config = AgentConfig::new(
        name.clone(),
        node_ip,
        args.data_dir.clone(),
        args.token.trim().to_string(),
    );
    config.agent_listen = SocketAddr::new(listen_ip, args.agent_port);
    config.pod_cidr = args
        .pod_cidr
        .clone()
        .unwrap_or_else(|| default_pod_cidr(node_ip));
    config.labels = parse_labels(&args.labels)?;
    config.lease_duration = std::time::Duration::from_secs(args.node_lease_duration_seconds);

    let cancel = CancellationToken::new();
    let agent = Agent::start(config, client.clone(), host, cancel.clone())
        .await
        .context("starting the node agent")?;
    // The service proxy (kube-proxy's job): NodePorts, served by this node's pods.
    let proxy = tokio::spawn(skiff_runtime::proxy::run(
        skiff_runtime::proxy::ProxyConfig {
            node_name: name.clone(),
            bind_ip: listen_ip,
        },
        client.clone(),
        Arc::new(agent.endpoints()),
        cancel.clone(),
    ));
    println!(
        "skiff node: {name} ({node_ip}) joined {}; agent API on {}",
        client.server(),
        agent.agent_addr()
    );
    crate::signal::wait_for_shutdown().await;
    tracing::info!("shutting down");
    cancel.cancel();
    let _ = proxy.await;
    agent.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn default_pod_cidrs_follow_the_node_address() {
        let cases = [
            ("127.0.0.2", "10.42.2.0/24"),
            ("192.168.1.17", "10.42.17.0/24"),
            ("fd00::5", "10.42.5.0/24"),
        ];
        for (ip, want) in cases {
            assert_eq!(default_pod_cidr(ip.parse().unwrap()), want);
        }
    }

    #[test]
    fn labels_parse() {
        let labels = parse_labels(&["a=1".into(), "b=x=y".into()]).unwrap();
        assert_eq!(labels.get("b").map(String::as_str), Some("x=y"));
        assert!(parse_labels(&["nope".into()]).is_err());
    }
}
