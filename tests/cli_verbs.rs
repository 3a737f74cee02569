//! End-to-end tests of the client subcommands (`apply`, `get`, `describe`, `delete`,
//! `scale`, `rollout`, `logs`, `version`): the real `skiff` binary against a real
//! `skiff server` child process, checking exit codes and output text. The server runs
//! without controllers: these tests write the ReplicaSets and statuses a controller
//! would, to pin the CLI's output exactly (tests/up.rs drives the real controllers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

/// A `skiff server` child process on 127.0.0.1:0; killed on drop.
struct Cluster {
    child: Child,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

/// What one `skiff` run did.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        &self.stdout
    }

    #[track_caller]
    fn fails(&self) -> &str {
        assert_eq!(self.code, 1, "expected exit code 1: {self:?}");
        &self.stderr
    }
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut child = Command::new(SKIFF)
            .args([
                "server",
                "--no-controllers",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start skiff server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut up = false;
        while !up && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(line)) => up = line.starts_with("skiff server: API at "),
                _ => break,
            }
        }
        assert!(up, "the server prints its URL");
        std::thread::spawn(move || for _ in lines {});
        Cluster {
            child,
            kubeconfig: data.join("kubeconfig.yaml"),
            dir,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(SKIFF);
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env_remove("RUST_LOG");
        cmd
    }

    fn skiff(&self, args: &[&str]) -> Out {
        self.skiff_stdin(args, "")
    }

    fn skiff_stdin(&self, args: &[&str], stdin: &str) -> Out {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Writes `text` to a file in the test's directory.
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(self.skiff(&all).ok()).unwrap()
    }

    /// A client of the same cluster, for what the CLI cannot do (writing status as a
    /// controller would).
    fn client(&self) -> skiff_client::Client {
        skiff_client::Client::from_kubeconfig(Some(&self.kubeconfig)).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n  labels:\n    app: web\ndata:\n  hello: world\n";

fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: main\n        image: {image}\n"
    )
}

/// Lines of a table, each split on runs of 2+ spaces.
fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[test]
fn apply_creates_configures_and_leaves_unchanged() {
    let c = Cluster::start();
    let both = format!("{CM}---\n{}", deployment("web", "file:///srv/web.wasm"));
    let f = c.file("app.yaml", &both);
    let out = c.skiff(&["apply", "-f", &f]);
    assert_eq!(
        out.ok(),
        "configmap/greeting created\ndeployment.apps/web created\n"
    );
    let out = c.skiff(&["apply", "-f", &f]);
    assert_eq!(
        out.ok(),
        "configmap/greeting unchanged\ndeployment.apps/web unchanged\n"
    );

    // A change to one object; the other stays as it is.
    let changed = both.replace("hello: world", "hello: there");
    let f2 = c.file("app2.yaml", &changed);
    assert_eq!(
        c.skiff(&["apply", "-f", &f2]).ok(),
        "configmap/greeting configured\ndeployment.apps/web unchanged\n"
    );
    let cm = c.json(&["get", "configmap", "greeting"]);
    assert_eq!(cm["data"]["hello"], "there");

    // What a controller added survives an apply; what the user removed goes.
    block_on(async {
        let client = c.client();
        client
            .patch(
                &skiff_api::registry::CONFIG_MAP,
                None,
                "greeting",
                &skiff_client::Patch::Merge(
                    json!({"metadata": {"annotations": {"added-by": "controller"}}}),
                ),
            )
            .await
            .unwrap();
    });
    let no_label = changed.replace("  labels:\n    app: web\ndata:", "data:");
    let f3 = c.file("app3.yaml", &no_label);
    assert_eq!(
        c.skiff(&["apply", "-f", &f3]).ok(),
        "configmap/greeting configured\ndeployment.apps/web unchanged\n"
    );
    let cm = c.json(&["get", "configmap", "greeting"]);
    assert_eq!(cm["metadata"]["annotations"]["added-by"], "controller");
    assert!(cm["metadata"].get("labels").is_none(), "{cm}");

    // A directory: the namespace is created before what goes into it, whatever the file
    // names; and stdin.
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/demo");
    let out = c.skiff(&["apply", "-f", demo.to_str().unwrap()]);
    assert_eq!(
        out.ok(),
        "namespace/demo created\nconfigmap/greeting created\ndeployment.apps/hello created\nservice/hello created\n"
    );
    let out = c.skiff_stdin(
        &["apply", "-f", "-"],
        "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"from-stdin\"}, \"data\": {\"a\": \"b\"}}",
    );
    assert_eq!(out.ok(), "configmap/from-stdin created\n");

    // -n that disagrees with the manifest's namespace is refused, as in kubectl.
    let out = c.skiff(&[
        "apply",
        "-n",
        "default",
        "-f",
        demo.join("configmap.yaml").to_str().unwrap(),
    ]);
    assert!(
        out.fails()
            .contains("the namespace from the provided object \"demo\" does not match the namespace \"default\""),
        "{out:?}"
    );

    // Unknown kinds and unreadable files are named.
    let bad = c.file(
        "bad-kind.yaml",
        "apiVersion: v9\nkind: Gadget\nmetadata:\n  name: g\n",
    );
    let err = c.skiff(&["apply", "-f", &bad]);
    assert!(
        err.fails()
            .contains("no matches for kind \"Gadget\" in version \"v9\""),
        "{err:?}"
    );
    let err = c.skiff(&["apply", "-f", "/nonexistent.yaml"]);
    assert!(err.fails().contains("/nonexistent.yaml"), "{err:?}");
}

#[test]
fn invalid_manifest_names_the_field_and_conflicts_are_reported() {
    let c = Cluster::start();
    let bad = c.file(
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  hostNetwork: true\n  containers:\n  - name: main\n    image: file:///x.wasm\n",
    );
    let out = c.skiff(&["apply", "-f", &bad]);
    let err = out.fails();
    assert!(
        err.starts_with(&format!(
            "Error from server (Invalid): error when creating \"{bad}\": Pod \"bad\" is invalid: spec.hostNetwork"
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");

    // Other objects of the same apply still go in; the exit code says something failed.
    let mixed = c.file(
        "mixed.yaml",
        &format!("{}---\n{CM}", std::fs::read_to_string(&bad).unwrap()),
    );
    let out = c.skiff(&["apply", "-f", &mixed]);
    assert!(out.fails().contains("spec.hostNetwork"), "{out:?}");
    assert_eq!(out.stdout, "configmap/greeting created\n");

    // A manifest pinned to a stale resourceVersion: the conflict is reported, not retried
    // over.
    let cm = c.json(&["get", "cm", "greeting"]);
    let rv = cm["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let v2 = CM.replace("hello: world", "hello: two");
    c.skiff_stdin(&["apply", "-f", "-"], &v2).ok();
    let stale = CM.replace("hello: world", "hello: three").replace(
        "  name: greeting\n",
        &format!("  name: greeting\n  resourceVersion: \"{rv}\"\n"),
    );
    let pinned = c.file("stale.yaml", &stale);
    let out = c.skiff(&["apply", "-f", &pinned]);
    assert_eq!(
        out.fails().trim_end(),
        format!(
            "Error from server (Conflict): error when applying configmap/greeting from \"{pinned}\": Operation cannot be fulfilled on configmaps \"greeting\": the object has been modified; please apply your changes to the latest version and try again"
        )
    );
    assert_eq!(c.json(&["get", "cm", "greeting"])["data"]["hello"], "two");
}

#[test]
fn get_in_every_format() {
    let c = Cluster::start();
    let f = c.file(
        "objs.yaml",
        &format!(
            "{CM}---\n{}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n  namespace: team\n  labels:\n    app: api\ndata:\n  a: \"1\"\n  b: \"2\"\n",
            deployment("web", "file:///srv/web.wasm")
        ),
    );
    c.skiff(&["apply", "-f", &f]).ok();

    // Table.
    let out = c.skiff(&["get", "configmaps"]);
    let rows = table(out.ok());
    assert_eq!(rows[0], ["NAME", "DATA", "AGE"]);
    assert_eq!(rows.len(), 2, "{}", out.stdout);
    assert_eq!(rows[1][..2], ["greeting", "1"]);
    assert!(
        rows[1][2].ends_with('s'),
        "an age in seconds: {:?}",
        rows[1]
    );
    assert!(
        out.stdout
            .starts_with("NAME       DATA   AGE\ngreeting   1      "),
        "{}",
        out.stdout
    );

    // Wide, and short names.
    let out = c.skiff(&["get", "deploy", "-o", "wide"]);
    let rows = table(out.ok());
    assert_eq!(
        rows[0],
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(rows[1][..4], ["web", "0/2", "0", "0"]);
    assert_eq!(rows[1][5..], ["main", "file:///srv/web.wasm", "app=web"]);

    // All namespaces, label and field selectors.
    let out = c.skiff(&["get", "cm", "-A"]);
    let rows = table(out.ok());
    assert_eq!(rows[0], ["NAMESPACE", "NAME", "DATA", "AGE"]);
    let names: Vec<_> = rows[1..]
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(names, [("default", "greeting"), ("team", "other")]);
    let out = c.skiff(&["get", "cm", "-A", "-l", "app=api", "-o", "name"]);
    assert_eq!(out.ok(), "configmap/other\n");
    let out = c.skiff(&[
        "get",
        "cm",
        "-n",
        "team",
        "--field-selector",
        "metadata.name=other",
        "--no-headers",
    ]);
    assert!(out.ok().starts_with("other   2   "), "{out:?}");
    let rows = table(c.skiff(&["get", "cm", "-n", "team", "--show-labels"]).ok());
    assert_eq!(rows[0], ["NAME", "DATA", "AGE", "LABELS"]);
    assert_eq!(rows[1][..2], ["other", "2"]);
    assert_eq!(rows[1][3], "app=api");
    let out = c.skiff(&["get", "cm", "-l", "app=nothing"]);
    assert_eq!(out.ok(), "");
    assert_eq!(out.stderr, "No resources found in default namespace.\n");

    // One object as YAML or JSON is the object; a list is a List.
    let y: Value =
        serde_yaml::from_str(c.skiff(&["get", "cm", "greeting", "-o", "yaml"]).ok()).unwrap();
    assert_eq!(y["kind"], "ConfigMap");
    assert_eq!(y["data"]["hello"], "world");
    let out = c.skiff(&["get", "configmap/greeting", "-o", "json"]);
    assert!(
        out.ok().starts_with("{\n    \"apiVersion\": \"v1\","),
        "{}",
        out.stdout
    );
    let list = c.json(&["get", "cm", "-A"]);
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][1]["kind"], "ConfigMap");

    // Cluster-scoped kinds, and `all`.
    let rows = table(c.skiff(&["get", "namespaces"]).ok());
    assert_eq!(rows[0], ["NAME", "STATUS", "AGE"]);
    for ns in ["default", "kube-system", "team"] {
        assert!(
            rows.iter().any(|r| r[0] == ns && r[1] == "Active"),
            "{rows:?}"
        );
    }
    let out = c.skiff(&["get", "all"]);
    assert!(out.ok().contains("deployment.apps/web"), "{out:?}");
    let rows = table(c.skiff(&["get", "cm,deploy", "-A", "--no-headers"]).ok());
    assert!(
        rows.iter()
            .any(|r| r.starts_with(&["team".into(), "configmap/other".into(), "2".into()])),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with(&["default".into(), "deployment.apps/web".into()])),
        "{rows:?}"
    );

    // Errors like kubectl's.
    let out = c.skiff(&["get", "cm", "greeting", "nope"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("greeting"),
        "found ones are printed: {out:?}"
    );
    assert_eq!(
        out.stderr,
        "Error from server (NotFound): configmaps \"nope\" not found\n"
    );
    let out = c.skiff(&["get", "gizmos"]);
    assert_eq!(
        out.fails(),
        "error: the server doesn't have a resource type \"gizmos\"\n"
    );
    let out = c.skiff(&["get", "pods", "-l", "a in (("]);
    assert!(
        out.fails().starts_with("Error from server (BadRequest): "),
        "{out:?}"
    );
}

#[test]
fn get_watch_prints_rows_as_events_arrive() {
    let c = Cluster::start();
    c.skiff_stdin(&["apply", "-f", "-"], CM).ok();
    let mut child = c
        .command(&["get", "configmaps", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no line for {what}"))
    };
    assert!(next("header").starts_with("NAME"));
    assert!(next("existing row").starts_with("greeting "));
    c.skiff_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: later\ndata:\n  x: y\n",
    )
    .ok();
    let row = next("the new object");
    assert!(row.starts_with("later "), "{row}");
    assert!(row.contains(" 1 "), "{row}");
    // Ctrl-C ends the watch cleanly.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "get -w did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit}");
}

#[test]
fn describe_shows_fields_and_events() {
    let c = Cluster::start();
    c.skiff_stdin(
        &["apply", "-f", "-"],
        &format!("{CM}---\n{}", deployment("web", "file:///w.wasm")),
    )
    .ok();
    let cm = c.json(&["get", "cm", "greeting"]);
    let uid = cm["metadata"]["uid"].as_str().unwrap();
    let event = format!(
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: greeting.1\ninvolvedObject:\n  apiVersion: v1\n  kind: ConfigMap\n  name: greeting\n  namespace: default\n  uid: {uid}\nreason: Checked\nmessage: all good\ntype: Normal\nsource:\n  component: tester\ncount: 1\n"
    );
    let other = event
        .replace("greeting.1", "other.1")
        .replace(&format!("uid: {uid}"), "uid: someone-else")
        .replace("all good", "not mine");
    c.skiff_stdin(&["apply", "-f", "-"], &format!("{event}---\n{other}"))
        .ok();

    let out = c.skiff(&["describe", "configmap", "greeting"]);
    let text = out.ok();
    assert!(
        text.starts_with("Name:               greeting\nNamespace:          default\nLabels:             app=web\n"),
        "{text}"
    );
    assert!(text.contains("Data\n====\nhello:\n----\nworld\n"), "{text}");
    assert!(text.contains("Events:"), "{text}");
    assert!(text.contains("Normal  Checked"), "{text}");
    assert!(text.contains("tester  all good"), "{text}");
    assert!(
        !text.contains("not mine"),
        "events of another object (uid) are not shown: {text}"
    );

    let text = c.skiff(&["describe", "deployment/web"]).ok().to_string();
    assert!(text.contains("Replicas:"), "{text}");
    assert!(
        text.contains("2 desired | 0 updated | 0 total | 0 available | 0 unavailable"),
        "{text}"
    );
    assert!(
        text.contains("Image:") && text.contains("file:///w.wasm"),
        "{text}"
    );
    assert!(text.ends_with("Events:             <none>\n"), "{text}");

    let out = c.skiff(&["describe", "deploy", "nope"]);
    assert_eq!(
        out.fails(),
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );
}

#[test]
fn delete_by_name_and_by_file_and_scale() {
    let c = Cluster::start();
    let f = c.file(
        "app.yaml",
        &format!("{CM}---\n{}", deployment("web", "file:///w.wasm")),
    );
    c.skiff(&["apply", "-f", &f]).ok();

    assert_eq!(
        c.skiff(&["scale", "deployment/web", "--replicas", "5"])
            .ok(),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(c.json(&["get", "deploy", "web"])["spec"]["replicas"], 5);
    assert_eq!(
        c.skiff(&[
            "scale",
            "deploy",
            "web",
            "--replicas",
            "1",
            "--current-replicas",
            "5"
        ])
        .ok(),
        "deployment.apps/web scaled\n"
    );
    let out = c.skiff(&[
        "scale",
        "deploy/web",
        "--replicas",
        "3",
        "--current-replicas",
        "5",
    ]);
    assert!(
        out.fails().contains("Expected replicas to be 5, was 1"),
        "{out:?}"
    );
    let out = c.skiff(&["scale", "configmap/greeting", "--replicas", "2"]);
    assert!(out.fails().contains("cannot be scaled"), "{out:?}");
    let out = c.skiff(&["scale", "deploy/nope", "--replicas", "2"]);
    assert_eq!(
        out.fails(),
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );

    assert_eq!(
        c.skiff(&["delete", "configmap", "greeting", "--wait"]).ok(),
        "configmap \"greeting\" deleted\n"
    );
    let out = c.skiff(&["delete", "configmap", "greeting"]);
    assert_eq!(
        out.fails(),
        "Error from server (NotFound): configmaps \"greeting\" not found\n"
    );
    c.skiff(&["delete", "cm", "greeting", "--ignore-not-found"])
        .ok();

    // By file: what exists is deleted, what does not is reported.
    let out = c.skiff(&["delete", "-f", &f]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "deployment.apps \"web\" deleted\n");
    assert!(
        out.stderr.contains("configmaps \"greeting\" not found"),
        "{out:?}"
    );
    let out = c.skiff(&["get", "deploy", "web"]);
    assert!(out.fails().contains("NotFound"), "{out:?}");

    // Orphan: the object stays, marked, until the garbage collector (not there yet)
    // removes its dependents' owner references.
    c.skiff(&["apply", "-f", &f]).ok();
    assert_eq!(
        c.skiff(&["delete", "deploy/web", "--cascade", "orphan"])
            .ok(),
        "deployment.apps \"web\" deleted\n"
    );
    let d = c.json(&["get", "deploy", "web"]);
    assert!(d["metadata"]["deletionTimestamp"].is_string(), "{d}");
    assert_eq!(d["metadata"]["finalizers"], json!(["orphan"]));
    let out = c.skiff(&["delete", "deploy/web", "--wait", "--timeout", "1s"]);
    assert!(
        out.fails()
            .contains("timed out waiting for the deletion of deployments/web"),
        "{out:?}"
    );

    // By label.
    c.skiff(&["apply", "-f", &f]).ok();
    assert_eq!(
        c.skiff(&["delete", "configmaps", "-l", "app=web"]).ok(),
        "configmap \"greeting\" deleted\n"
    );
    let out = c.skiff(&["delete", "pods"]);
    assert!(out.fails().contains("no name was specified"), "{out:?}");
}

/// A ReplicaSet of `deploy` (uid) at `revision`, as the deployment controller would make.
fn replica_set(deploy_uid: &str, revision: i64, image: &str) -> String {
    let hash = format!("h{revision}");
    format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web-{hash}\n  labels:\n    app: web\n    pod-template-hash: {hash}\n  annotations:\n    deployment.kubernetes.io/revision: \"{revision}\"\n    kubernetes.io/change-cause: image {image}\n  ownerReferences:\n  - apiVersion: apps/v1\n    kind: Deployment\n    name: web\n    uid: {deploy_uid}\n    controller: true\n    blockOwnerDeletion: true\nspec:\n  replicas: 0\n  selector:\n    matchLabels:\n      app: web\n      pod-template-hash: {hash}\n  template:\n    metadata:\n      labels:\n        app: web\n        pod-template-hash: {hash}\n    spec:\n      containers:\n      - name: main\n        image: {image}\n"
    )
}

#[test]
fn rollout_history_undo_and_status() {
    let c = Cluster::start();
    c.skiff_stdin(&["apply", "-f", "-"], &deployment("web", "file:///v2.wasm"))
        .ok();
    let d = c.json(&["get", "deploy", "web"]);
    let uid = d["metadata"]["uid"].as_str().unwrap();

    let out = c.skiff(&["rollout", "history", "deployment/web"]);
    assert_eq!(
        out.ok(),
        "No rollout history found in deployment.apps/web.\n"
    );
    let out = c.skiff(&["rollout", "undo", "deployment/web"]);
    assert_eq!(
        out.fails(),
        "error: no rollout history found for deployment \"web\"\n"
    );

    let sets = format!(
        "{}---\n{}---\n{}",
        replica_set(uid, 1, "file:///v1.wasm"),
        replica_set(uid, 2, "file:///v2.wasm"),
        // Same labels, but not owned by this deployment: not part of its history.
        replica_set("another-uid", 7, "file:///v7.wasm").replace("web-h7", "stranger")
    );
    c.skiff_stdin(&["apply", "-f", "-"], &sets).ok();

    let out = c.skiff(&["rollout", "history", "deploy/web"]);
    assert_eq!(
        out.ok(),
        "deployment.apps/web \nREVISION   CHANGE-CAUSE\n1          image file:///v1.wasm\n2          image file:///v2.wasm\n\n"
    );
    let out = c.skiff(&["rollout", "history", "deployment", "web", "--revision", "1"]);
    let text = out.ok();
    assert!(
        text.starts_with("deployment.apps/web with revision #1\nPod Template:\n"),
        "{text}"
    );
    assert!(text.contains("image: file:///v1.wasm"), "{text}");
    assert!(!text.contains("pod-template-hash"), "{text}");

    // Undo to the previous revision: the template comes back from revision 1's
    // ReplicaSet, without its pod-template-hash.
    let out = c.skiff(&["rollout", "undo", "deployment/web"]);
    assert_eq!(out.ok(), "deployment.apps/web rolled back\n");
    let d = c.json(&["get", "deploy", "web"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "file:///v1.wasm"
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"],
        json!({"app": "web"})
    );
    assert_eq!(
        d["metadata"]["annotations"]["kubernetes.io/change-cause"],
        "image file:///v1.wasm"
    );
    assert!(
        d["metadata"]["annotations"]
            .get("deployment.kubernetes.io/revision")
            .is_none()
    );
    let out = c.skiff(&["rollout", "undo", "deployment/web", "--to-revision", "1"]);
    assert_eq!(
        out.ok(),
        "deployment.apps/web skipped rollback (current template already matches revision 1)\n"
    );
    let out = c.skiff(&["rollout", "undo", "deployment/web", "--to-revision", "9"]);
    assert_eq!(
        out.fails(),
        "error: unable to find specified revision 9 in history\n"
    );
    let out = c.skiff(&["rollout", "undo", "configmap/x"]);
    assert!(
        out.fails().contains("only deployments are supported"),
        "{out:?}"
    );

    // Status: as a controller reports it.
    let generation = d["metadata"]["generation"].as_i64().unwrap();
    let out = c.skiff(&["rollout", "status", "deployment/web", "--watch=false"]);
    assert_eq!(
        out.ok(),
        "Waiting for deployment spec update to be observed...\n"
    );
    let set_status = |status: Value| {
        block_on(async {
            c.client()
                .patch_status(
                    &skiff_api::registry::DEPLOYMENT,
                    None,
                    "web",
                    &skiff_client::Patch::Merge(json!({"status": status})),
                )
                .await
                .unwrap();
        })
    };
    set_status(
        json!({"observedGeneration": generation, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
    );
    let out = c.skiff(&["rollout", "status", "deployment/web", "--watch=false"]);
    assert_eq!(
        out.ok(),
        "Waiting for deployment \"web\" rollout to finish: 1 of 2 updated replicas are available...\n"
    );
    // Watching: the next status write ends it.
    let child = c
        .command(&["rollout", "status", "deployment/web", "--timeout", "20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    set_status(
        json!({"observedGeneration": generation, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
    );
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.ends_with("deployment \"web\" successfully rolled out\n"),
        "{stdout}"
    );

    set_status(json!({"observedGeneration": generation, "conditions": [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}));
    let out = c.skiff(&["rollout", "status", "deployment/web"]);
    assert_eq!(
        out.fails(),
        "error: deployment \"web\" exceeded its progress deadline\n"
    );
}

#[test]
fn apply_wait_follows_readiness_with_a_timeout() {
    let c = Cluster::start();
    // Kinds without a readiness rule are ready at once.
    let out = c.skiff_stdin(&["apply", "-f", "-", "--wait"], CM);
    assert_eq!(out.ok(), "configmap/greeting created\n");

    let f = c.file("d.yaml", &deployment("web", "file:///w.wasm"));
    let out = c.skiff(&["apply", "-f", &f, "--wait", "--timeout", "1s"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.starts_with(
            "deployment.apps/web created\nWaiting for deployment spec update to be observed...\n"
        ),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("timed out waiting for the condition on deployments/web"),
        "{out:?}"
    );

    let child = c
        .command(&["apply", "-f", &f, "--wait", "--timeout", "20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    block_on(async {
        let client = c.client();
        let d = client
            .get(&skiff_api::registry::DEPLOYMENT, None, "web")
            .await
            .unwrap();
        client
            .patch_status(
                &skiff_api::registry::DEPLOYMENT,
                None,
                "web",
                &skiff_client::Patch::Merge(json!({"status": {
                    "observedGeneration": d["metadata"]["generation"],
                    "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2,
                }})),
            )
            .await
            .unwrap();
    });
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("deployment.apps/web unchanged\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("deployment \"web\" successfully rolled out\n"),
        "{stdout}"
    );
    let rows = table(c.skiff(&["get", "deploy"]).ok());
    assert_eq!(rows[1][..4], ["web", "2/2", "2", "2"]);
}

#[test]
fn logs_version_help_and_missing_kubeconfig() {
    let c = Cluster::start();
    c.skiff_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: main\n    image: file:///x.wasm\n",
    )
    .ok();
    let out = c.skiff(&["logs", "p", "-c", "main", "--tail", "5"]);
    // No node runs the pod: the server says why, and so does skiff.
    let err = out.fails();
    assert!(err.starts_with("Error from server ("), "{out:?}");
    assert!(err.contains("\"p\""), "{out:?}");
    let out = c.skiff(&["logs", "nope"]);
    assert_eq!(
        out.fails(),
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let rows = table(c.skiff(&["get", "pods", "-o", "wide"]).ok());
    // The server's wide columns for pods, as Kubernetes' (kubectl prints them as they are).
    assert_eq!(
        rows[0],
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    assert_eq!(rows[1][..4], ["p", "0/1", "Pending", "0"]);
    assert_eq!(rows[1][5..], ["<none>", "<none>", "<none>", "<none>"]);

    let out = c.skiff(&["version"]);
    let text = out.ok();
    assert!(
        text.starts_with(&format!(
            "skiff {}\nServer Version: v1.",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(text.contains("skiff"), "{text}");
    assert_eq!(
        c.skiff(&["version", "--client"]).ok(),
        format!("skiff {}\n", env!("CARGO_PKG_VERSION"))
    );

    for sub in [
        "apply", "get", "describe", "delete", "scale", "logs", "version",
    ] {
        let out = c.skiff(&[sub, "--help"]);
        assert!(out.ok().contains("--kubeconfig"), "{sub}: {out:?}");
    }
    assert!(
        c.skiff(&["get", "--help"])
            .ok()
            .contains("--field-selector")
    );
    assert!(
        c.skiff(&["rollout", "undo", "--help"])
            .ok()
            .contains("--to-revision")
    );

    // Without any kubeconfig: where it looked is named.
    let out = Command::new(SKIFF)
        .args(["get", "pods"])
        .env_remove("KUBECONFIG")
        .env("HOME", c.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: no kubeconfig found"), "{err}");
    assert!(err.contains(".skiff/kubeconfig.yaml"), "{err}");
    let out = c.skiff(&["get", "pods", "--kubeconfig", "/nonexistent/kc.yaml"]);
    assert!(
        out.fails().contains("/nonexistent/kc.yaml: no such file"),
        "{out:?}"
    );
}
