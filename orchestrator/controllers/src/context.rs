//! [`Context`]: what every controller gets — the client, the shared informers, an event
//! recorder and the controller settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use skiff_api::registry::{self, Resource};
use skiff_client::{Client, Informer, ListParams, Patch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Settings shared by the controllers (Kubernetes' kube-controller-manager flag names).
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// `--node-monitor-grace-period`: a node whose Lease is older is Ready=Unknown.
    pub node_monitor_grace_period: Duration,
    /// `--default-unreachable-toleration-seconds`: how long pods without their own
    /// toleration stay on an unreachable node.
    pub default_unreachable_toleration: Duration,
    /// Write a `Scheduled` Event for every bind (Kubernetes does; it doubles the writes).
    pub scheduled_events: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            node_monitor_grace_period: Duration::from_secs(40),
            default_unreachable_toleration: Duration::from_secs(300),
            scheduled_events: true,
        }
    }
}

/// One informer per resource the controllers read, shared by all of them.
#[derive(Clone, Debug)]
pub struct Informers {
    pub pods: Informer,
    pub nodes: Informer,
    /// Node heartbeats (`kube-node-lease`) and leader-election Leases.
    pub leases: Informer,
    pub namespaces: Informer,
    pub replicasets: Informer,
    pub deployments: Informer,
    pub daemonsets: Informer,
    pub jobs: Informer,
    pub services: Informer,
    pub endpoints: Informer,
}

impl Informers {
    pub fn new(client: &Client) -> Informers {
        let make = |r: &'static Resource| Informer::new(client.clone(), r, ListParams::default());
        Informers {
            pods: make(&registry::POD),
            nodes: make(&registry::NODE),
            leases: make(&registry::LEASE),
            namespaces: make(&registry::NAMESPACE),
            replicasets: make(&registry::REPLICA_SET),
            deployments: make(&registry::DEPLOYMENT),
            daemonsets: make(&registry::DAEMON_SET),
            jobs: make(&registry::JOB),
            services: make(&registry::SERVICE),
            endpoints: make(&registry::ENDPOINTS),
        }
    }

    pub fn all(&self) -> [&Informer; 10] {
        [
            &self.pods,
            &self.nodes,
            &self.leases,
            &self.namespaces,
            &self.replicasets,
            &self.deployments,
            &self.daemonsets,
            &self.jobs,
            &self.services,
            &self.endpoints,
        ]
    }

    /// Runs every informer until `cancel`, on `tasks`.
    pub fn spawn(&self, tasks: &TaskTracker, cancel: &CancellationToken) {
        for informer in self.all() {
            let informer = informer.clone();
            let cancel = cancel.clone();
            tasks.spawn(async move { informer.run(cancel).await });
        }
    }

    /// Waits until every informer has listed once.
    pub async fn synced(&self) {
        for informer in self.all() {
            informer.synced().await;
        }
    }
}

/// What every controller gets. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Context {
    pub client: Client,
    pub informers: Informers,
    pub events: EventRecorder,
    pub config: ControllerConfig,
}

impl Context {
    pub fn new(client: Client, config: ControllerConfig) -> Context {
        Context {
            informers: Informers::new(&client),
            events: EventRecorder::new(client.clone(), "skiff-controller-manager"),
            client,
            config,
        }
    }
}

/// Repeats of one (object, type, reason, message) update one Event's count, as
/// Kubernetes' recorder aggregates them.
#[derive(Clone, Debug)]
struct Recorded {
    namespace: String,
    name: String,
    count: u64,
}

/// (involved uid, type, reason, message) → the Event written for it.
type Seen = HashMap<(String, String, String, String), Recorded>;

/// Writes core/v1 Events about objects. Best effort: a failed write is logged, never
/// returned — an event must not fail a reconcile.
#[derive(Clone, Debug)]
pub struct EventRecorder {
    client: Client,
    component: Arc<str>,
    seen: Arc<Mutex<Seen>>,
}

/// How many distinct events the recorder remembers for aggregation.
const RECORDER_MEMORY: usize = 4096;

impl EventRecorder {
    pub fn new(client: Client, component: &str) -> EventRecorder {
        EventRecorder {
            client,
            component: component.into(),
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The same recorder reporting as another component (`default-scheduler`).
    pub fn for_component(&self, component: &str) -> EventRecorder {
        EventRecorder {
            component: component.into(),
            ..self.clone()
        }
    }

    /// Records an Event of `type_` ("Normal" or "Warning") about `object`.
    pub async fn record(&self, object: &Value, type_: &str, reason: &str, message: &str) {
        if let Err(e) = self.try_record(object, type_, reason, message).await {
            tracing::debug!(reason, error = %e, "could not record an event");
        }
    }

    async fn try_record(
        &self,
        object: &Value,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> skiff_client::Result<()> {
        let meta = object.get("metadata").cloned().unwrap_or_default();
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let obj_name = text(&meta, "name");
        let uid = text(&meta, "uid");
        let namespace = match text(&meta, "namespace") {
            ns if ns.is_empty() => "default".to_string(),
            ns => ns,
        };
        let now = jiff::Timestamp::now();
        let stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let key = (
            uid.clone(),
            type_.to_string(),
            reason.to_string(),
            message.to_string(),
        );
        let previous = self.lock().get(&key).cloned();
        if let Some(prev) = previous {
            let count = prev.count + 1;
            let patch = json!({"count": count, "lastTimestamp": stamp});
            match self
                .client
                .patch(
                    &registry::EVENT,
                    Some(&prev.namespace),
                    &prev.name,
                    &Patch::Merge(patch),
                )
                .await
            {
                Ok(_) => {
                    self.lock().insert(key, Recorded { count, ..prev });
                    return Ok(());
                }
                // Expired (TTL) or deleted: write a new one.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!("{obj_name}.{:016x}", rand::random::<u64>());
        let involved = json!({
            "apiVersion": object.get("apiVersion").cloned().unwrap_or(Value::Null),
            "kind": object.get("kind").cloned().unwrap_or(Value::Null),
            "name": obj_name,
            "namespace": meta.get("namespace").cloned().unwrap_or(Value::Null),
            "uid": uid,
            "resourceVersion": meta.get("resourceVersion").cloned().unwrap_or(Value::Null),
        });
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": &*self.component},
            "reportingComponent": &*self.component,
            "reportingInstance": &*self.component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        });
        self.client
            .create(&registry::EVENT, Some(&namespace), &event)
            .await?;
        let mut seen = self.lock();
        if seen.len() >= RECORDER_MEMORY {
            seen.clear();
        }
        seen.insert(
            key,
            Recorded {
                namespace,
                name,
                count: 1,
            },
        );
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
