//! End-to-end tests of the `skiff` binary: `skiff server` on the embedded store and on
//! a real etcd, driven over HTTP and with the real `kubectl`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

mod common;

use common::{SKIFF, Server};

fn curl_status(url: &str, ca: &Path) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(ca)
        .arg(url)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kubectl_scenario(server: &Server, dir: &Path) {
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let ca = server.kubeconfig.parent().unwrap().join("tls/ca.crt");
    assert_eq!(
        curl_status(&format!("{}/api/v1/pods", server.url), &ca),
        "401",
        "anonymous requests are refused"
    );
    assert_eq!(
        curl_status(&format!("{}/healthz", server.url), &ca),
        "200",
        "TLS verifies against the cluster CA"
    );

    let (ok, out, err) = server.kubectl(&["get", "namespaces"]);
    assert!(ok, "kubectl get namespaces failed: {err}");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(ns), "{ns} missing from:\n{out}");
    }

    let manifest = dir.join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n  hello: world\n",
    )
    .unwrap();
    let (ok, out, err) = server.kubectl(&[
        "create",
        "--validate=false",
        "-f",
        manifest.to_str().unwrap(),
    ]);
    assert!(ok, "create failed: {err}");
    assert!(out.contains("configmap/greeting created"), "{out}");

    let (ok, out, err) = server.kubectl(&[
        "get",
        "configmap",
        "greeting",
        "-o",
        "jsonpath={.data.hello}",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "world");

    let (ok, _, err) = server.kubectl(&[
        "create",
        "--validate=false",
        "-f",
        manifest.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("AlreadyExists"), "{err}");

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  hostNetwork: true\n  containers:\n  - name: main\n    image: file:///x.wasm\n").unwrap();
    let (ok, _, err) = server.kubectl(&["create", "--validate=false", "-f", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("spec.hostNetwork"), "{err}");

    let (ok, out, err) = server.kubectl(&["delete", "configmap", "greeting"]);
    assert!(ok, "{err}");
    assert!(out.contains("deleted"), "{out}");
    let (ok, _, err) = server.kubectl(&["get", "configmap", "greeting"]);
    assert!(!ok);
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn server_on_embedded_store_serves_kubectl_and_restarts_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    kubectl_scenario(&server, dir.path());
    let manifest = dir.path().join("keep.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\ndata:\n  a: b\n",
    )
    .unwrap();
    let (ok, _, err) = server.kubectl(&[
        "create",
        "--validate=false",
        "-f",
        manifest.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let status = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    // Restart: same tokens, same data.
    let server = Server::start(&data, &[]);
    assert_eq!(
        std::fs::read_to_string(data.join("admin-token")).unwrap(),
        token
    );
    let (ok, out, err) = server.kubectl(&["get", "configmap", "keep", "-o", "jsonpath={.data.a}"]);
    assert!(ok, "{err}");
    assert_eq!(out, "b");
    assert!(server.terminate().success());
}

#[tokio::test]
async fn server_on_etcd_serves_kubectl() {
    let etcd = skiff_store::testing::EtcdProcess::start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let endpoint = etcd.endpoint();
    let server = tokio::task::spawn_blocking({
        let data = dir.path().join("data");
        move || Server::start(&data, &["--etcd-endpoints", &endpoint])
    })
    .await
    .unwrap();
    let dir_path = dir.path().to_path_buf();
    let server = tokio::task::spawn_blocking(move || {
        kubectl_scenario(&server, &dir_path);
        server
    })
    .await
    .unwrap();
    assert!(server.terminate().success());
}

#[test]
fn bad_arguments_are_named() {
    let out = Command::new(SKIFF)
        .args(["server", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--listen"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("data");
    std::fs::create_dir_all(&db_dir).unwrap();
    std::fs::write(db_dir.join("state.db"), b"this is not a database").unwrap();
    let out = Command::new(SKIFF)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&db_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("state.db"), "the error names the file: {err}");
}
