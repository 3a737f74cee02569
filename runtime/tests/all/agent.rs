//! The node agent against a real API server (in process, embedded store, plain HTTP):
//! registration, lease, pod workers and their status, logs through the agent and through
//! the API server, deletion, and pods that run again after a restart without the API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty, Full};
use serde_json::{Value, json};
use skiff_api::registry;
use skiff_apiserver::RunningServer;
use skiff_client::{Client, ClusterConfig, DeleteParams, LogParams};
use skiff_runtime::{Agent, AgentConfig, BackoffConfig, Host, NodeCapacity, RunningAgent};
use tokio_util::sync::CancellationToken;

use crate::*;

const NODE: &str = "node-1";
/// A guard against hangs, not a measurement.
const LIMIT: Duration = Duration::from_secs(60);

struct Cluster {
    url: String,
    node_token: String,
    admin: Client,
    cancel: CancellationToken,
    server: Option<RunningServer>,
    _dir: tempfile::TempDir,
}

fn client(url: &str, token: &str) -> Client {
    Client::new(&ClusterConfig {
        source: PathBuf::new(),
        context: "test".into(),
        server: url.to_string(),
        ca_pem: None,
        insecure_skip_tls_verify: false,
        token: Some(token.to_string()),
        namespace: "default".into(),
    })
    .unwrap()
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let server = skiff_apiserver::start_local(dir.path(), false, cancel.clone())
            .await
            .unwrap();
        Cluster {
            url: server.url(),
            node_token: server.tokens().node().to_string(),
            admin: client(&server.url(), server.tokens().admin()),
            cancel,
            server: Some(server),
            _dir: dir,
        }
    }

    /// A client with the node's token (what `skiff node --token` gets).
    fn node_client(&self) -> Client {
        client(&self.url, &self.node_token)
    }

    async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(s) = self.server.take() {
            s.wait().await;
        }
    }
}

fn agent_config(data_dir: &Path, token: &str) -> AgentConfig {
    let mut config = AgentConfig::new(
        NODE,
        "127.0.0.1".parse().unwrap(),
        data_dir.into(),
        token.into(),
    );
    config.agent_listen = "127.0.0.1:0".parse().unwrap();
    config.capacity = NodeCapacity {
        memory_bytes: 8 << 30,
        cpu_millis: 4000,
        pods: 110,
    };
    config.labels.insert("skiff.dev/site".into(), "test".into());
    config.lease_duration = Duration::from_secs(2);
    config.node_status_interval = Duration::from_secs(1);
    config.resync_interval = Duration::from_millis(500);
    config.api_timeout = Duration::from_secs(5);
    config.restart_backoff = BackoffConfig {
        base: Duration::from_millis(100),
        cap: Duration::from_millis(800),
        reset_after: Duration::from_secs(600),
    };
    config
}

struct TestAgent {
    agent: RunningAgent,
    cancel: CancellationToken,
    data: PathBuf,
}

impl TestAgent {
    async fn start(client: Client, token: &str, data: &Path, host: Arc<Host>) -> TestAgent {
        let cancel = CancellationToken::new();
        let agent = Agent::start(agent_config(data, token), client, host, cancel.clone())
            .await
            .unwrap();
        TestAgent {
            agent,
            cancel,
            data: data.to_path_buf(),
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(LIMIT, self.agent.wait())
            .await
            .expect("the agent stops");
    }

    fn addr(&self) -> SocketAddr {
        self.agent.agent_addr()
    }
}

/// An API server, a host and an agent, each on its own temporary directory.
struct Setup {
    cluster: Cluster,
    agent: TestAgent,
    _host_dir: tempfile::TempDir,
    _data: tempfile::TempDir,
}

async fn setup() -> Setup {
    let cluster = Cluster::start().await;
    let host_dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let agent = TestAgent::start(
        cluster.node_client(),
        &cluster.node_token,
        data.path(),
        host_in(host_dir.path()),
    )
    .await;
    Setup {
        cluster,
        agent,
        _host_dir: host_dir,
        _data: data,
    }
}

impl Setup {
    async fn stop(self) {
        self.agent.stop().await;
        self.cluster.stop().await;
    }
}

fn pod(name: &str, policy: &str, containers: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": policy,
            "terminationGracePeriodSeconds": 1,
            "containers": containers,
        }
    })
}

async fn create(client: &Client, pod: &Value) -> Value {
    client
        .create(&registry::POD, Some("default"), pod)
        .await
        .unwrap()
}

/// Polls `f` until it gives a value; panics with the last thing seen after [`LIMIT`].
async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = tokio::time::Instant::now();
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) => {
                assert!(start.elapsed() < LIMIT, "{what}: not reached; last: {last}");
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_pod(client: &Client, name: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let cond = &cond;
    wait_for(what, || async move {
        match client.get_opt(&registry::POD, Some("default"), name).await {
            Ok(Some(p)) if cond(&p) => Ok(p),
            Ok(Some(p)) => Err(format!("{:#}", p["status"])),
            Ok(None) => Err("no pod".into()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

fn phase(p: &Value) -> &str {
    p.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn container<'a>(p: &'a Value, name: &str) -> &'a Value {
    p.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

fn condition<'a>(p: &'a Value, kind: &str) -> &'a Value {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

fn waiting_reason(p: &Value, name: &str) -> String {
    container(p, name)
        .pointer("/state/waiting/reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// GET on the agent API.
async fn agent_get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let mut req = hyper::Request::builder().uri(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn api_logs(client: &Client, pod: &str, params: LogParams) -> String {
    let mut stream = client.logs(Some("default"), pod, &params).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_node_registers_and_renews_its_lease() {
    let s = setup().await;
    let api = &s.cluster.admin;
    let port = s.agent.addr().port();
    let node = wait_for("node registered and ready", || async move {
        match api.get_opt(&registry::NODE, None, NODE).await {
            Ok(Some(n)) if n.pointer("/status/daemonEndpoints").is_some() => Ok(n),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/hostname"], NODE);
    assert_eq!(labels["kubernetes.io/os"], std::env::consts::OS);
    assert!(labels["kubernetes.io/arch"].is_string());
    assert_eq!(labels["skiff.dev/site"], "test");
    let status = &node["status"];
    assert_eq!(status["capacity"]["cpu"], "4");
    assert_eq!(status["capacity"]["memory"], "8388608Ki");
    assert_eq!(status["capacity"]["pods"], "110");
    assert_eq!(status["allocatable"], status["capacity"]);
    assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], port);
    assert_eq!(
        status["addresses"][0],
        json!({"type": "InternalIP", "address": "127.0.0.1"})
    );
    assert_eq!(
        status["nodeInfo"]["containerRuntimeVersion"],
        "wasmtime://48"
    );
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("True"), Some("KubeletReady"))
    );

    let lease_of = || async move {
        match api
            .get_opt(&registry::LEASE, Some("kube-node-lease"), NODE)
            .await
        {
            Ok(Some(l)) => Ok(l),
            other => Err(format!("{other:?}")),
        }
    };
    let first = wait_for("lease created", lease_of).await;
    assert_eq!(first["spec"]["holderIdentity"], NODE);
    assert_eq!(first["spec"]["leaseDurationSeconds"], 2);
    let renew = first["spec"]["renewTime"].as_str().unwrap().to_string();
    let renew = renew.as_str();
    assert!(
        renew.ends_with('Z') && renew.contains('.'),
        "MicroTime: {renew}"
    );
    wait_for("lease renewed", || async move {
        let l = lease_of().await?;
        if l["spec"]["renewTime"].as_str() != Some(renew) {
            Ok(())
        } else {
            Err(format!("{l}"))
        }
    })
    .await;

    let (code, body) = agent_get(s.agent.addr(), "/healthz", None).await;
    assert_eq!((code, body.as_str()), (200, "ok"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_pod_succeeds_and_its_logs_are_served() {
    let s = setup().await;
    let api = &s.cluster.admin;
    let spec = pod(
        "hello",
        "Never",
        json!([{
            "name": "main",
            "image": image("cli_hello"),
            "args": ["one", "two words"],
            "env": [
                {"name": "GREETING", "value": "hi $(WHO)"},
                {"name": "WHO", "value": "early"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
            ]
        }]),
    );
    create(api, &spec).await;
    let p = wait_pod(api, "hello", "Succeeded", |p| phase(p) == "Succeeded").await;
    let c = container(&p, "main");
    let terminated = &c["state"]["terminated"];
    assert_eq!(terminated["exitCode"], 0, "{c:#}");
    assert_eq!(terminated["reason"], "Completed");
    assert!(terminated["startedAt"].is_string() && terminated["finishedAt"].is_string());
    assert!(
        c["imageID"].as_str().unwrap().starts_with("sha256:"),
        "{c:#}"
    );
    assert_eq!(c["image"], image("cli_hello"));
    assert_eq!(c["restartCount"], 0);
    assert_eq!(c["ready"], false);
    let pod_ip = p["status"]["podIP"].as_str().unwrap().to_string();
    assert!(pod_ip.starts_with("10.42.0."), "{pod_ip}");
    assert_eq!(p["status"]["hostIP"], "127.0.0.1");
    assert!(p["status"]["startTime"].is_string());
    assert_eq!(condition(&p, "Ready")["reason"], "PodCompleted");
    assert_eq!(condition(&p, "Initialized")["status"], "True");
    assert_eq!(condition(&p, "PodScheduled")["status"], "True");

    // Through the agent API, with the node token.
    let path = "/containerLogs/default/hello/main";
    let (code, logs) = agent_get(s.agent.addr(), path, Some(&s.cluster.node_token)).await;
    assert_eq!(code, 200, "{logs}");
    assert!(logs.contains("hello from skiff\n"), "{logs}");
    assert!(
        logs.contains("arg[0]=main\narg[1]=one\narg[2]=two words\n"),
        "{logs}"
    );
    // `$(WHO)` is defined after GREETING: left as written, as Kubernetes does.
    assert!(logs.contains("env GREETING=hi $(WHO)\n"), "{logs}");
    assert!(logs.contains("env POD=hello\n"), "{logs}");
    assert!(logs.contains(&format!("env POD_IP={pod_ip}\n")), "{logs}");
    let (code, tail) = agent_get(
        s.agent.addr(),
        &format!("{path}?tailLines=1&timestamps=true"),
        Some(&s.cluster.node_token),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.ends_with("Z cli_hello: done\n"), "{tail}");
    let (code, followed) = agent_get(
        s.agent.addr(),
        &format!("{path}?follow=true"),
        Some(&s.cluster.node_token),
    )
    .await;
    assert_eq!(
        (code, followed.as_str()),
        (200, logs.as_str()),
        "a finished container's follow ends"
    );

    let (code, body) = agent_get(s.agent.addr(), path, None).await;
    assert_eq!(code, 401, "{body}");
    let (code, body) = agent_get(s.agent.addr(), path, Some("wrong")).await;
    assert_eq!(code, 401, "{body}");
    let (code, body) = agent_get(
        s.agent.addr(),
        "/containerLogs/default/nope/main",
        Some(&s.cluster.node_token),
    )
    .await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("\"kind\":\"Status\""), "{body}");
    let (code, body) = agent_get(
        s.agent.addr(),
        "/containerLogs/default/hello/other",
        Some(&s.cluster.node_token),
    )
    .await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = agent_get(
        s.agent.addr(),
        &format!("{path}?previous=true"),
        Some(&s.cluster.node_token),
    )
    .await;
    assert_eq!(code, 400, "{body}");

    // Through the API server's pods/log proxy.
    let through_api = api_logs(api, "hello", LogParams::default()).await;
    assert_eq!(through_api, logs);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_always_backs_off_in_crash_loop() {
    let s = setup().await;
    let api = &s.cluster.admin;
    let spec = pod(
        "crash",
        "Always",
        json!([{"name": "main", "image": image("cli_exit_code"), "env": [{"name": "EXIT_CODE", "value": "3"}]}]),
    );
    create(api, &spec).await;
    let p = wait_pod(api, "crash", "CrashLoopBackOff", |p| {
        waiting_reason(p, "main") == "CrashLoopBackOff"
    })
    .await;
    let c = container(&p, "main");
    let message = c["state"]["waiting"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("back-off ")
            && message.contains("restarting failed container=main pod=crash_default("),
        "{c:#}"
    );
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 3, "{c:#}");
    assert_eq!(c["lastState"]["terminated"]["reason"], "Error");
    assert_eq!(phase(&p), "Running", "the kubelet keeps restarting it");
    let p = wait_pod(api, "crash", "restarted twice", |p| {
        container(p, "main")["restartCount"].as_i64() >= Some(2)
    })
    .await;
    assert_eq!(condition(&p, "Ready")["status"], "False");
    assert_eq!(condition(&p, "Ready")["reason"], "ContainersNotReady");

    // The previous attempt's logs.
    let (code, previous) = agent_get(
        s.agent.addr(),
        "/containerLogs/default/crash/main?previous=true",
        Some(&s.cluster.node_token),
    )
    .await;
    assert_eq!((code, previous.as_str()), (200, "exiting with 3\n"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_failure_and_never_follow_the_exit_code() {
    let s = setup().await;
    let api = &s.cluster.admin;
    let exit = |name: &str, policy: &str, code: &str| {
        pod(
            name,
            policy,
            json!([{"name": "main", "image": image("cli_exit_code"), "env": [{"name": "EXIT_CODE", "value": code}]}]),
        )
    };
    create(api, &exit("ok-on-failure", "OnFailure", "0")).await;
    create(api, &exit("bad-on-failure", "OnFailure", "4")).await;
    create(api, &exit("bad-never", "Never", "5")).await;

    let p = wait_pod(api, "ok-on-failure", "Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await;
    assert_eq!(container(&p, "main")["restartCount"], 0);
    let p = wait_pod(api, "bad-never", "Failed", |p| phase(p) == "Failed").await;
    let c = container(&p, "main");
    assert_eq!(c["restartCount"], 0);
    assert_eq!(c["state"]["terminated"]["exitCode"], 5);
    assert_eq!(c["state"]["terminated"]["reason"], "Error");
    let p = wait_pod(api, "bad-on-failure", "restarted", |p| {
        container(p, "main")["restartCount"].as_i64() >= Some(1)
    })
    .await;
    assert_eq!(phase(&p), "Running");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http_pod_runs_ready_with_an_address() {
    let s = setup().await;
    let api = &s.cluster.admin;
    let spec = pod(
        "web",
        "Always",
        json!([{"name": "web", "image": image("http_echo"), "ports": [{"containerPort": 8080}]}]),
    );
    create(api, &spec).await;
    let p = wait_pod(api, "web", "Running and Ready", |p| {
        phase(p) == "Running" && condition(p, "Ready")["status"] == "True"
    })
    .await;
    let c = container(&p, "web");
    assert_eq!(
        (c["ready"].as_bool(), c["started"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(c["state"]["running"]["startedAt"].is_string());
    assert_eq!(condition(&p, "ContainersReady")["status"], "True");
    let ip = p["status"]["podIP"].as_str().unwrap();
    assert!(ip.starts_with("10.42.0."), "{ip}");
    assert_eq!(s.agent.agent.pod_ip("default", "web").as_deref(), Some(ip));

    let service = s
        .agent
        .agent
        .http_endpoint("default", "web", 8080)
        .expect("endpoint");
    let req = hyper::Request::builder()
        .uri("http://web/echo?x=1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = service.handle(req).await;
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "GET /echo?x=1\n");
    // The only HTTP container answers for an unknown port too; other pods have none.
    assert!(s.agent.agent.http_endpoint("default", "web", 1).is_some());
    assert!(
        s.agent
            .agent
            .http_endpoint("default", "nope", 8080)
            .is_none()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_memory_bomb_is_oom_killed() {
    let s = setup().await;
    let api = &s.cluster.admin;
    let spec = pod(
        "bomb",
        "Never",
        json!([{
            "name": "main",
            "image": image("limits_memory_bomb"),
            "resources": {"limits": {"memory": "64Mi"}}
        }]),
    );
    create(api, &spec).await;
    let p = wait_pod(api, "bomb", "Failed", |p| phase(p) == "Failed").await;
    let t = &container(&p, "main")["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{t:#}");
    assert_eq!(t["exitCode"], 137);
    assert_eq!(t["message"], "memory limit 64Mi reached");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_images_wait_with_their_reasons() {
    let s = setup().await;
    let api = &s.cluster.admin;
    let files = tempfile::tempdir().unwrap();
    let garbage = file_image(files.path(), "garbage.wasm", b"this is not wasm");
    let missing = format!("file://{}/missing.wasm", files.path().display());
    create(
        api,
        &pod(
            "missing",
            "Always",
            json!([{"name": "main", "image": missing}]),
        ),
    )
    .await;
    create(
        api,
        &pod(
            "garbage",
            "Always",
            json!([{"name": "main", "image": garbage}]),
        ),
    )
    .await;

    let p = wait_pod(api, "missing", "ComponentFetchFailed", |p| {
        waiting_reason(p, "main") == "ComponentFetchFailed"
    })
    .await;
    assert!(
        container(&p, "main")["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("missing.wasm")
    );
    assert_eq!(phase(&p), "Pending");
    let p = wait_pod(api, "garbage", "InvalidComponent", |p| {
        waiting_reason(p, "main") == "InvalidComponent"
    })
    .await;
    let message = container(&p, "main")["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("not a WebAssembly binary"), "{message}");

    // Missing non-optional ConfigMap: Kubernetes' reason and message, until it exists.
    let needs = pod(
        "needs-config",
        "Never",
        json!([{
            "name": "main",
            "image": image("cli_hello"),
            "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}],
            "envFrom": [{"secretRef": {"name": "creds"}, "prefix": "S_"}]
        }]),
    );
    create(api, &needs).await;
    // envFrom is resolved first (as the kubelet does): the Secret is reported first.
    let config_error = |message: &'static str| {
        move |p: &Value| {
            waiting_reason(p, "main") == "CreateContainerConfigError"
                && container(p, "main")["state"]["waiting"]["message"] == message
        }
    };
    wait_pod(
        api,
        "needs-config",
        "secret not found",
        config_error("secret \"creds\" not found"),
    )
    .await;
    api.create(
        &registry::SECRET,
        Some("default"),
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}}),
    )
    .await
    .unwrap();
    let p = wait_pod(
        api,
        "needs-config",
        "configmap not found",
        config_error("configmap \"settings\" not found"),
    )
    .await;
    assert_eq!(phase(&p), "Pending");
    api.create(
        &registry::CONFIG_MAP,
        Some("default"),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "fast"}}),
    )
    .await
    .unwrap();
    wait_pod(api, "needs-config", "Succeeded once configured", |p| {
        phase(p) == "Succeeded"
    })
    .await;
    let (_, logs) = agent_get(
        s.agent.addr(),
        "/containerLogs/default/needs-config/main",
        Some(&s.cluster.node_token),
    )
    .await;
    assert!(
        logs.contains("env MODE=fast\nenv S_token=s3cret\n"),
        "{logs}"
    );

    // The agent went through all of it.
    let (code, _) = agent_get(s.agent.addr(), "/healthz", None).await;
    assert_eq!(code, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn init_containers_run_first_and_volumes_are_shared() {
    let s = setup().await;
    let api = &s.cluster.admin;
    let mut spec = pod(
        "init",
        "Never",
        json!([{
            "name": "main",
            "image": image("cli_files"),
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]
        }]),
    );
    spec["spec"]["initContainers"] = json!([
        {"name": "first", "image": image("cli_exit_code"), "env": [{"name": "EXIT_CODE", "value": "0"}]},
        {"name": "writer", "image": image("cli_files"), "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    ]);
    spec["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    create(api, &spec).await;
    let p = wait_pod(api, "init", "Succeeded", |p| phase(p) == "Succeeded").await;
    let inits = p["status"]["initContainerStatuses"].as_array().unwrap();
    let names: Vec<&str> = inits.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["first", "writer"]);
    for c in inits {
        assert_eq!(c["state"]["terminated"]["reason"], "Completed", "{c:#}");
    }
    // Each saw the volume and nothing else of the host; the file written is in the volume.
    let (_, logs) = agent_get(
        s.agent.addr(),
        "/containerLogs/default/init/main",
        Some(&s.cluster.node_token),
    )
    .await;
    assert!(logs.contains("input: <missing>"), "{logs}");
    assert!(logs.contains("outside: denied"), "{logs}");
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let written = s
        .agent
        .data
        .join("pods")
        .join(uid)
        .join("volumes/data/output.txt");
    assert_eq!(
        std::fs::read_to_string(&written).unwrap().trim(),
        "written by cli_files"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletion_stops_the_worker_then_removes_the_pod() {
    let s = setup().await;
    let api = &s.cluster.admin;
    // Its environment comes from a ConfigMap, which must also outlive the API.
    api.create(
        &registry::CONFIG_MAP,
        Some("default"),
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ticks", "namespace": "default"}, "data": {"TICKS": "0"}}),
    )
    .await
    .unwrap();
    create(
        api,
        &pod(
            "ticker",
            "Always",
            json!([{"name": "main", "image": image("cli_ticker"), "env": [{"name": "TICKS",
                "valueFrom": {"configMapKeyRef": {"name": "ticks", "key": "TICKS"}}}]}]),
        ),
    )
    .await;
    create(
        api,
        &pod(
            "web",
            "Always",
            json!([{"name": "web", "image": image("http_echo")}]),
        ),
    )
    .await;
    let ticker = wait_pod(api, "ticker", "Running", |p| phase(p) == "Running").await;
    wait_pod(api, "web", "Running", |p| phase(p) == "Running").await;
    let uid = ticker["metadata"]["uid"].as_str().unwrap().to_string();
    let pod_dir = s.agent.data.join("pods").join(&uid);
    assert!(pod_dir.join("pod.json").is_file());
    assert!(pod_dir.join("logs/main.log").is_file());

    for name in ["ticker", "web"] {
        let marked = api
            .delete(
                &registry::POD,
                Some("default"),
                name,
                &DeleteParams::default(),
            )
            .await
            .unwrap();
        assert!(
            marked.pointer("/metadata/deletionTimestamp").is_some(),
            "a pod on a live node waits for its node: {marked:#}"
        );
    }
    for name in ["ticker", "web"] {
        wait_for("the pod is removed", || async move {
            match api.get_opt(&registry::POD, Some("default"), name).await {
                Ok(None) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }
    let pod_dir = &pod_dir;
    wait_for("the pod's directory is removed", || async move {
        if pod_dir.exists() {
            Err(pod_dir.display().to_string())
        } else {
            Ok(())
        }
    })
    .await;
    assert!(
        s.agent
            .agent
            .http_endpoint("default", "web", 8080)
            .is_none()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saved_pods_run_again_after_a_restart_without_the_api() {
    let cluster = Cluster::start().await;
    let api = &cluster.admin;
    let host_dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let host = host_in(host_dir.path());
    let first = TestAgent::start(
        cluster.node_client(),
        &cluster.node_token,
        data.path(),
        host.clone(),
    )
    .await;
    create(
        api,
        &pod("web", "Always", json!([{"name": "web", "image": image("http_echo"), "ports": [{"containerPort": 8080}]}])),
    )
    .await;
    create(
        api,
        &pod(
            "ticker",
            "Always",
            json!([{"name": "main", "image": image("cli_ticker"), "env": [{"name": "TICKS", "value": "0"}]}]),
        ),
    )
    .await;
    let p = wait_pod(api, "web", "Running", |p| phase(p) == "Running").await;
    let ip = p["status"]["podIP"].as_str().unwrap().to_string();
    wait_pod(api, "ticker", "Running", |p| phase(p) == "Running").await;
    first.stop().await;

    // The API is unreachable: a port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let offline = client(&format!("http://{closed}"), &cluster.node_token);
    let second = TestAgent::start(offline, &cluster.node_token, data.path(), host.clone()).await;
    let (second_agent, second_addr, token) =
        (&second.agent, second.addr(), cluster.node_token.as_str());
    let service = wait_for("the saved HTTP pod serves again", || async move {
        second_agent
            .http_endpoint("default", "web", 8080)
            .ok_or_else(|| "not yet".to_string())
    })
    .await;
    let req = hyper::Request::builder()
        .uri("http://web/again")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(service.handle(req).await.status(), 200);
    assert_eq!(
        second.agent.pod_ip("default", "web").as_deref(),
        Some(ip.as_str()),
        "same address"
    );
    wait_for("the saved command pod runs again", || async move {
        let (code, logs) = agent_get(
            second_addr,
            "/containerLogs/default/ticker/main",
            Some(token),
        )
        .await;
        if code == 200 && logs.contains("tick 1\n") {
            Ok(())
        } else {
            Err(format!("{code} {logs}"))
        }
    })
    .await;
    second.stop().await;

    // Back online, with a deletion made while the node was away: the pod is stopped,
    // confirmed and torn down; the other one runs on, its restart counted.
    let web_uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    api.delete(
        &registry::POD,
        Some("default"),
        "web",
        &DeleteParams::default(),
    )
    .await
    .unwrap();
    let third = TestAgent::start(
        cluster.node_client(),
        &cluster.node_token,
        data.path(),
        host,
    )
    .await;
    wait_for("the deleted pod is confirmed", || async move {
        match api.get_opt(&registry::POD, Some("default"), "web").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let web_dir = third.data.join("pods").join(&web_uid);
    let web_dir = &web_dir;
    wait_for("its directory is removed", || async move {
        if web_dir.exists() {
            Err("still there".to_string())
        } else {
            Ok(())
        }
    })
    .await;
    wait_pod(
        api,
        "ticker",
        "restart counted after the agent restarts",
        |p| phase(p) == "Running" && container(p, "main")["restartCount"].as_i64() >= Some(1),
    )
    .await;
    third.stop().await;
    cluster.stop().await;
}
