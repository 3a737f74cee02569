//! `skiff up` end to end: the real binary (API, scheduler, controllers, one node and its
//! service proxy in one process) driven by the real kubectl — the demo app deployed,
//! served through its NodePort and load-balanced, logs read, a pod deleted and
//! replaced, a rolling update and a rollback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Server;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn guests() -> PathBuf {
    repo().join("tests/guests/target/wasm32-wasip2/release")
}

/// The demo manifests, pointed at the built guest, with the node port left to the API.
fn demo_manifests() -> String {
    let dir = repo().join("manifests/demo");
    let mut out = String::new();
    for file in [
        "namespace.yaml",
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        out.push_str(&text.replace(
            "file:///opt/skiff/demo/",
            &format!("file://{}/", guests().display()),
        ));
        out.push_str("\n---\n");
    }
    out.replace("      nodePort: 30080\n", "")
}

fn kubectl_ok(s: &Server, args: &[&str]) -> String {
    let (ok, out, err) = s.kubectl(args);
    assert!(ok, "kubectl {args:?} failed: {err}\n{out}");
    out
}

/// Polls `check` (bounded) until it returns Some.
fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One plain HTTP/1.1 GET; (status line, body).
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some((head.lines().next()?.to_string(), body))
}

/// A chunked HTTP/1.1 body, decoded.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

fn ready_pods(s: &Server) -> Vec<String> {
    let out = kubectl_ok(
        s,
        &[
            "-n",
            "demo",
            "get",
            "pods",
            "-l",
            "app=hello",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type==\"Ready\")].status} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ],
    );
    out.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?;
            (parts.next() == Some("True") && parts.next().is_none()).then(|| name.to_string())
        })
        .collect()
}

#[test]
fn up_serves_the_demo_app_and_heals_and_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::up(dir.path(), &[]);
    assert!(dir.path().join("kubeconfig.yaml").exists());

    // One node, Ready, with the agent's facts.
    let node = eventually("the node to register", Duration::from_secs(30), || {
        let (ok, out, _) = s.kubectl(&["get", "nodes", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        let node = v["items"].as_array()?.first()?.clone();
        (ok && node["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True"))
        .then_some(node)
    });
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/os"],
        std::env::consts::OS
    );
    assert!(
        node["status"]["allocatable"]["memory"].is_string(),
        "{node}"
    );

    // The demo app: three replicas behind a NodePort Service.
    let (ok, out, err) = s.kubectl_with("kubectl", &["apply", "-f", "-"], Some(&demo_manifests()));
    assert!(ok, "{err}");
    assert!(out.contains("deployment.apps/hello created"), "{out}");
    kubectl_ok(
        &s,
        &[
            "-n",
            "demo",
            "wait",
            "--for=condition=Available",
            "deployment/hello",
            "--timeout=90s",
        ],
    );
    let port: u16 = kubectl_ok(
        &s,
        &[
            "-n",
            "demo",
            "get",
            "svc",
            "hello",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ],
    )
    .trim()
    .parse()
    .unwrap();

    // Every replica answers in turn (round-robin over the ready endpoints).
    let pods: BTreeSet<String> = ready_pods(&s).into_iter().collect();
    assert_eq!(pods.len(), 3, "{pods:?}");
    let answered = eventually("every replica to answer", Duration::from_secs(30), || {
        let mut seen = BTreeSet::new();
        for _ in 0..9 {
            let (status, body) = http_get(port, "/")?;
            if !status.contains("200") {
                return None;
            }
            let pod = body.trim().strip_prefix("Hello from ")?.to_string();
            seen.insert(pod);
        }
        (seen == pods).then_some(seen)
    });
    assert_eq!(answered.len(), 3);

    // Logs come from the node through the API.
    let some_pod = pods.iter().next().unwrap().clone();
    let logs = eventually("the pod's log", Duration::from_secs(10), || {
        let (ok, out, _) = s.kubectl(&["-n", "demo", "logs", &some_pod]);
        (ok && out.contains("http_hello:")).then_some(out)
    });
    assert!(
        logs.lines().all(|l| l.starts_with("http_hello: ")),
        "{logs}"
    );

    // Self-healing: a deleted pod is replaced.
    kubectl_ok(
        &s,
        &["-n", "demo", "delete", "pod", &some_pod, "--wait=true"],
    );
    eventually("a replacement pod", Duration::from_secs(60), || {
        let now: BTreeSet<String> = ready_pods(&s).into_iter().collect();
        (now.len() == 3 && !now.contains(&some_pod)).then_some(())
    });

    // A rolling update, then a rollback to the first ReplicaSet.
    kubectl_ok(
        &s,
        &[
            "-n",
            "demo",
            "set",
            "env",
            "deployment/hello",
            "GREETING=Howdy",
        ],
    );
    let status = kubectl_ok(
        &s,
        &[
            "-n",
            "demo",
            "rollout",
            "status",
            "deployment/hello",
            "--timeout=90s",
        ],
    );
    assert!(status.contains("successfully rolled out"), "{status}");
    eventually("the new greeting", Duration::from_secs(30), || {
        let (_, body) = http_get(port, "/")?;
        body.starts_with("Howdy from ").then_some(())
    });
    let history = kubectl_ok(
        &s,
        &["-n", "demo", "rollout", "history", "deployment/hello"],
    );
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );
    kubectl_ok(&s, &["-n", "demo", "rollout", "undo", "deployment/hello"]);
    kubectl_ok(
        &s,
        &[
            "-n",
            "demo",
            "rollout",
            "status",
            "deployment/hello",
            "--timeout=90s",
        ],
    );
    eventually("the old greeting back", Duration::from_secs(30), || {
        let (_, body) = http_get(port, "/")?;
        body.starts_with("Hello from ").then_some(())
    });
    let rs = kubectl_ok(
        &s,
        &[
            "-n",
            "demo",
            "get",
            "rs",
            "-o",
            "jsonpath={range .items[*]}{.spec.replicas} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}{\"\\n\"}{end}",
        ],
    );
    // Two ReplicaSets: the first one reused with revision 3, the second scaled to 0.
    let mut rows: Vec<&str> = rs.lines().collect();
    rows.sort();
    assert_eq!(rows, ["0 2", "3 3"], "{rs}");

    let status = s.terminate();
    assert!(status.success(), "skiff up exits 0 on SIGTERM: {status:?}");
}
