//! Multi-process clusters of the real binary: `skiff server` and three `skiff node`s on
//! 127.0.0.2–4 (traffic entering any node reaches pods on every node; a node that dies
//! has its pods replaced on the others), and two `skiff server`s on one real etcd
//! (when the leader dies, the other takes over the scheduling).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{SKIFF, Server};
use serde_json::{Value, json};

fn guest(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/guests/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"))
}

/// A `skiff node` child process; SIGKILLed on drop.
struct Node {
    child: Child,
}

impl Node {
    fn start(server: &Server, server_dir: &Path, dir: &Path, n: u8) -> Node {
        let token = std::fs::read_to_string(server_dir.join("node-token")).unwrap();
        let child = Command::new(SKIFF)
            .args([
                "node",
                "--server",
                &server.url,
                "--token",
                token.trim(),
                "--ca-file",
            ])
            .arg(server_dir.join("tls/ca.crt"))
            .arg("--data-dir")
            .arg(dir)
            .args(["--name", &format!("node-{n}")])
            .args(["--node-ip", &format!("127.0.0.{}", n + 1)])
            .args(["--agent-port", "0"])
            .args(["--pod-cidr", &format!("10.42.{n}.0/24")])
            // Renewed every second: well inside the server's 3 s grace, so that the
            // live nodes never look unreachable (which would pause evictions).
            .args(["--node-lease-duration-seconds", "4"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start skiff node");
        Node { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn get_json(s: &Server, args: &[&str]) -> Option<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let (ok, out, _) = s.kubectl(&all);
    if !ok {
        return None;
    }
    serde_json::from_str(&out).ok()
}

/// Ready pods of `app=hello` by node.
fn ready_by_node(s: &Server) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_node: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let Some(pods) = get_json(s, &["get", "pods", "-l", "app=hello"]) else {
        return by_node;
    };
    for pod in pods["items"].as_array().into_iter().flatten() {
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        if ready && pod["metadata"].get("deletionTimestamp").is_none() {
            by_node
                .entry(pod["spec"]["nodeName"].as_str().unwrap_or("").to_string())
                .or_default()
                .insert(pod["metadata"]["name"].as_str().unwrap().to_string());
        }
    }
    by_node
}

/// GET / on ip:port; the body when the answer is 200.
fn hello(ip: &str, port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect((ip, port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    if !raw.starts_with("HTTP/1.1 200") {
        return None;
    }
    // `Hello from <pod>` sits in one chunk (or a plain body).
    raw.lines()
        .find_map(|l| l.strip_prefix("Hello from "))
        .map(|pod| pod.trim().to_string())
}

fn apply(s: &Server, manifest: &Value) {
    let (ok, out, err) = s.kubectl_with(
        "kubectl",
        &["apply", "-f", "-"],
        Some(&manifest.to_string()),
    );
    assert!(ok, "apply failed: {err}{out}");
}

fn hello_app(replicas: u32) -> (Value, Value) {
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "hello"}},
            "template": {"metadata": {"labels": {"app": "hello"}},
                "spec": {
                    "tolerations": [
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1},
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}
                    ],
                    "containers": [{"name": "hello",
                    "image": format!("file://{}", guest("http_hello").display()),
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "env": [{"name": "GREETING", "value": "Hello"}, {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "resources": {"limits": {"memory": "32Mi", "cpu": "100m"}}}]}}}
    });
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"type": "NodePort", "selector": {"app": "hello"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    });
    (deploy, svc)
}

#[test]
fn three_nodes_spread_relay_and_replace_a_dead_node() {
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("server");
    let s = Server::start(
        &server_dir,
        &[
            "--node-monitor-grace-period",
            "3s",
            "--default-unreachable-toleration-seconds",
            "2",
        ],
    );
    let mut nodes: Vec<Node> = (1..=3)
        .map(|n| Node::start(&s, &server_dir, &dir.path().join(format!("node-{n}")), n))
        .collect();
    eventually("three Ready nodes", Duration::from_secs(30), || {
        let v = get_json(&s, &["get", "nodes"])?;
        let ready = v["items"]
            .as_array()?
            .iter()
            .filter(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .count();
        (ready == 3).then_some(())
    });

    let (deploy, svc) = hello_app(6);
    apply(&s, &svc);
    apply(&s, &deploy);
    // The scheduler spreads one owner's replicas: two on each node.
    let spread = eventually("6 ready pods on 3 nodes", Duration::from_secs(60), || {
        let by_node = ready_by_node(&s);
        (by_node.values().map(BTreeSet::len).sum::<usize>() == 6).then_some(by_node)
    });
    assert_eq!(
        spread.values().map(BTreeSet::len).collect::<Vec<_>>(),
        [2, 2, 2],
        "{spread:?}"
    );

    // Traffic entering node 1 reaches the pods on every node.
    let port: u16 = get_json(&s, &["get", "svc", "hello"]).unwrap()["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .unwrap() as u16;
    let all: BTreeSet<String> = spread.values().flatten().cloned().collect();
    eventually(
        "every pod answering through node 1",
        Duration::from_secs(30),
        || {
            let mut seen = BTreeSet::new();
            for _ in 0..18 {
                seen.insert(hello("127.0.0.2", port)?);
            }
            (seen == all).then_some(())
        },
    );

    // Node 3 dies: Ready=Unknown, tainted; its pods are replaced on nodes 1 and 2.
    nodes[2].kill();
    eventually("node-3 unreachable", Duration::from_secs(60), || {
        let node = get_json(&s, &["get", "node", "node-3"])?;
        let unknown = node["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "Unknown");
        let tainted = node["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute");
        (unknown && tainted).then_some(())
    });
    let healed = eventually(
        "6 ready pods on nodes 1 and 2",
        Duration::from_secs(90),
        || {
            let by_node = ready_by_node(&s);
            let total: usize = by_node.values().map(BTreeSet::len).sum();
            (total == 6 && !by_node.contains_key("node-3")).then_some(by_node)
        },
    );
    assert_eq!(healed.len(), 2, "{healed:?}");
    // And the service still answers from node 2.
    eventually(
        "the service through node 2",
        Duration::from_secs(30),
        || hello("127.0.0.3", port),
    );
    drop(nodes);
}

/// Waits for the controller-manager Lease's holder.
fn leader(s: &Server) -> Option<String> {
    let lease = get_json(
        s,
        &[
            "-n",
            "kube-system",
            "get",
            "lease",
            "skiff-controller-manager",
        ],
    )?;
    lease["spec"]["holderIdentity"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

fn bound_to(s: &Server, pod: &str) -> Option<String> {
    let v = get_json(s, &["get", "pod", pod])?;
    v["spec"]["nodeName"].as_str().map(str::to_string)
}

#[test]
fn a_second_server_takes_over_when_the_leader_dies() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etcd = rt
        .block_on(skiff_store::testing::EtcdProcess::start())
        .expect("etcd starts (make test installs etcd-server)");
    let endpoint = etcd.endpoint();
    let dir = tempfile::tempdir().unwrap();
    // A starts alone, so it leads; then B joins as a follower.
    let a = Server::start(&dir.path().join("a"), &["--etcd-endpoints", &endpoint]);
    let first = eventually("a leader", Duration::from_secs(30), || leader(&a));
    let b = Server::start(&dir.path().join("b"), &["--etcd-endpoints", &endpoint]);

    // A Node object (no agent needed to be scheduled onto) and a pod.
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "edge-1"},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}});
    apply(&a, &node);
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "reason": "KubeletReady",
        "lastHeartbeatTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}]}});
    let (ok, _, err) = a.kubectl(&[
        "patch",
        "node",
        "edge-1",
        "--subresource=status",
        "--type=merge",
        "-p",
        &ready.to_string(),
    ]);
    assert!(ok, "{err}");
    let pod = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "sha256:0000000000000000000000000000000000000000000000000000000000000000"}]}})
    };
    apply(&a, &pod("before"));
    eventually("the first pod bound", Duration::from_secs(30), || {
        bound_to(&a, "before")
    });

    // The leader dies (SIGKILL: no release); B must schedule once the Lease has stood
    // still for its 15 s (retry period 2 s).
    drop(a);
    apply(&b, &pod("after"));
    let node = eventually(
        "the second pod bound by the new leader",
        Duration::from_secs(40),
        || bound_to(&b, "after"),
    );
    assert_eq!(node, "edge-1");
    let second = leader(&b).unwrap();
    assert_ne!(first, second, "leadership moved");
    drop(etcd);
}
