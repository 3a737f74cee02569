//! The ReplicaSet controller: keeps `spec.replicas` active pods matching each
//! ReplicaSet's selector, and reports them in its status.
//!
//! ```text
//!  cache (ReplicaSet, pods of its namespace) ─▶ plan::plan ─▶ ReplicaSetPlan
//!     adopt / release   merge patch of ownerReferences at the pod's resourceVersion
//!     create N          slow start: 1, 2, 4, … concurrent creates; stop at the first failure
//!     delete pods       all at once, in Kubernetes' deletion order, uid precondition
//!     status            PUT status at the ReplicaSet's resourceVersion when it changed
//! ```
//!
//! Creates and deletes wait for [`expectations`]: until the pod informer has shown this
//! controller's previous writes for a ReplicaSet, it neither creates nor deletes more, so
//! a lagging cache never doubles a scale-up. Finished (Succeeded/Failed) and terminating
//! pods are not counted, as in Kubernetes; they are left to the garbage collector.
//! Events: `SuccessfulCreate`/`SuccessfulDelete` ("Created pod: web-x2k9p"),
//! `FailedCreate`/`FailedDelete`.

pub mod claim;
pub mod expectations;
pub mod plan;
pub mod pods;

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use serde_json::Value;
use skiff_api::registry;
use skiff_client::{DeleteParams, InformerEvent, ObjectKey, Patch};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::driver::{Controller, Reconciler, Requeue};
use crate::error::{Error, Result};

use expectations::{Expectations, Satisfaction};
use plan::{ReplicaSetPlan, status_conditions};
use pods::PodView;

/// Kubernetes' `--concurrent-replicaset-syncs` default.
const CONCURRENCY: usize = 5;
/// While writes are unobserved, look again at least this often (an event that would
/// have woken the ReplicaSet may have been handled before the expectation was lowered).
const EXPECTATIONS_POLL: Duration = Duration::from_secs(1);

/// Runs the ReplicaSet controller until `cancel`.
pub async fn run(ctx: Context, cancel: CancellationToken) {
    let reconciler = Arc::new(ReplicaSetReconciler::new(ctx.clone()));
    let pods = ctx.informers.pods.clone();
    let replicasets = ctx.informers.replicasets.clone();
    let observer = observe_pods(
        pods.subscribe(),
        reconciler.expectations.clone(),
        cancel.clone(),
    );
    let controller = Controller::new(reconciler, replicasets.clone())
        .owns(pods.clone(), "ReplicaSet")
        .watches(pods, move |pod| orphan_owners(&replicasets, pod))
        .concurrency(CONCURRENCY);
    tokio::join!(controller.run(cancel), observer);
}

/// An orphan pod wakes every ReplicaSet of its namespace whose selector matches it (one
/// of them will adopt it).
fn orphan_owners(replicasets: &skiff_client::Informer, pod: &Value) -> Vec<ObjectKey> {
    let Some(view) = PodView::from_value(pod) else {
        return Vec::new();
    };
    if view.controller().is_some() || !view.is_active() {
        return Vec::new();
    }
    replicasets
        .list_namespace(&view.namespace)
        .iter()
        .filter(|rs| {
            plan::decode(rs)
                .and_then(|rs| plan::selector(&rs))
                .is_ok_and(|s| !s.is_empty() && s.matches(&view.labels))
        })
        .filter_map(|rs| ObjectKey::of(rs))
        .collect()
}

/// Lowers expectations as the pod informer reports pods.
async fn observe_pods(
    mut rx: broadcast::Receiver<InformerEvent>,
    expectations: Arc<Expectations>,
    cancel: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = rx.recv() => event,
        };
        match event {
            Ok(InformerEvent::Applied { new, .. }) => expectations.observe(&new, false),
            Ok(InformerEvent::Deleted(old)) => expectations.observe(&old, true),
            // The cache itself is checked on every reconcile.
            Ok(InformerEvent::Relisted) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// The ReplicaSet controller's [`Reconciler`].
pub struct ReplicaSetReconciler {
    ctx: Context,
    expectations: Arc<Expectations>,
}

impl ReplicaSetReconciler {
    pub fn new(ctx: Context) -> ReplicaSetReconciler {
        ReplicaSetReconciler {
            ctx,
            expectations: Arc::new(Expectations::default()),
        }
    }

    fn cached_pod(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.ctx
            .informers
            .pods
            .get(&ObjectKey::new(Some(namespace), name))
    }

    /// Whether the ReplicaSet the cache shows is still the one in the API, alive: checked
    /// once before adopting, as Kubernetes does.
    async fn can_adopt(&self, key: &ObjectKey, rs: &ReplicaSet) -> Result<bool> {
        let fresh = self
            .ctx
            .client
            .get_opt(&registry::REPLICA_SET, Some(key.namespace_str()), &key.name)
            .await?;
        Ok(fresh.is_some_and(|f| {
            f.pointer("/metadata/uid").and_then(Value::as_str) == rs.metadata.uid.as_deref()
                && f.pointer("/metadata/deletionTimestamp").is_none()
        }))
    }

    async fn apply(
        &self,
        key: &ObjectKey,
        object: &Value,
        rs: &ReplicaSet,
        plan: ReplicaSetPlan,
    ) -> Result<Requeue> {
        let ns = key.namespace_str();
        let client = &self.ctx.client;
        if !plan.adopt.is_empty() && !self.can_adopt(key, rs).await? {
            return Err(Error::invalid(
                key,
                "the ReplicaSet changed or is being deleted; not adopting pods",
            ));
        }
        for change in plan.adopt.iter().chain(&plan.release) {
            let patch = claim::ownership_patch(&change.resource_version, &change.owner_references);
            match client
                .patch(&registry::POD, Some(ns), &change.name, &Patch::Merge(patch))
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }

        let mut failure: Option<(&str, String)> = None;
        if plan.create > 0 {
            if let Err(message) = self.create_pods(key, object, rs, plan.create).await {
                failure = Some(("FailedCreate", message));
            }
        } else if !plan.delete.is_empty()
            && let Err(message) = self.delete_pods(key, object, &plan.delete).await
        {
            failure = Some(("FailedDelete", message));
        }

        let now = Timestamp::now();
        // Conditions carry whole seconds, as the API stores them.
        let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
        let mut status = plan.status;
        status.conditions = status_conditions(
            rs.status.as_ref().and_then(|s| s.conditions.as_ref()),
            failure.as_ref().map(|(r, m)| (*r, m.as_str())),
            now,
        );
        if rs.status.as_ref() != Some(&status) {
            let mut body = object.clone();
            body["status"] = serde_json::to_value(&status)
                .map_err(|e| Error::json("encoding a ReplicaSet status", e))?;
            client
                .replace_status(&registry::REPLICA_SET, Some(ns), &key.name, &body)
                .await?;
        }
        if let Some((_, message)) = failure {
            return Err(Error::invalid(key, message));
        }
        Ok(plan.requeue_after.map_or(Requeue::Done, Requeue::After))
    }

    /// Creates `count` pods in slow-start batches (1, 2, 4, …); stops after the first
    /// batch with a failure and answers its message.
    async fn create_pods(
        &self,
        key: &ObjectKey,
        object: &Value,
        rs: &ReplicaSet,
        count: usize,
    ) -> std::result::Result<(), String> {
        let pod = plan::pod_from_template(rs)?;
        let ns = key.namespace_str();
        self.expectations.expect_creations(key, count);
        let mut remaining = count;
        let mut batch = 1;
        let mut first_error = None;
        while remaining > 0 && first_error.is_none() {
            let size = batch.min(remaining);
            let results =
                join_all((0..size).map(|_| self.ctx.client.create(&registry::POD, Some(ns), &pod)))
                    .await;
            for result in results {
                match result {
                    Ok(created) => {
                        let name = created
                            .pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let uid = created
                            .pointer("/metadata/uid")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        self.expectations
                            .creation_done(key, Some((name, uid)), |name, uid| {
                                self.cached_pod(ns, name).is_some_and(|p| {
                                    p.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid)
                                })
                            });
                        self.ctx
                            .events
                            .record(
                                object,
                                "Normal",
                                "SuccessfulCreate",
                                &format!("Created pod: {name}"),
                            )
                            .await;
                    }
                    Err(e) => {
                        self.expectations.creation_done(key, None, |_, _| false);
                        let message = format!("Error creating: {e}");
                        self.ctx
                            .events
                            .record(object, "Warning", "FailedCreate", &message)
                            .await;
                        first_error.get_or_insert(e.to_string());
                    }
                }
            }
            remaining -= size;
            batch *= 2;
        }
        // Creates never sent are not waited for.
        for _ in 0..remaining {
            self.expectations.creation_done(key, None, |_, _| false);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Deletes `pods` concurrently; answers the first failure's message.
    async fn delete_pods(
        &self,
        key: &ObjectKey,
        object: &Value,
        pods: &[plan::PodRef],
    ) -> std::result::Result<(), String> {
        let ns = key.namespace_str();
        let expected: Vec<(String, String)> = pods
            .iter()
            .map(|p| (p.name.clone(), p.uid.clone()))
            .collect();
        self.expectations.expect_deletions(key, &expected);
        let results = join_all(pods.iter().map(|p| {
            let params = DeleteParams {
                precondition_uid: Some(p.uid.clone()),
                ..DeleteParams::default()
            };
            async move {
                let result = self
                    .ctx
                    .client
                    .delete(&registry::POD, Some(ns), &p.name, &params)
                    .await;
                (p, result)
            }
        }))
        .await;
        let mut first_error = None;
        for (pod, result) in results {
            match result {
                Ok(_) => {
                    self.ctx
                        .events
                        .record(
                            object,
                            "Normal",
                            "SuccessfulDelete",
                            &format!("Deleted pod: {}", pod.name),
                        )
                        .await;
                }
                // Already gone, or replaced by another pod of that name: nothing to do.
                Err(e) if e.is_not_found() || e.is_conflict() => {
                    self.expectations.deletion_failed(key, &pod.uid);
                }
                Err(e) => {
                    self.expectations.deletion_failed(key, &pod.uid);
                    let message = format!("Error deleting: {e}");
                    self.ctx
                        .events
                        .record(object, "Warning", "FailedDelete", &message)
                        .await;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Reconciler for ReplicaSetReconciler {
    fn name(&self) -> &'static str {
        "replicaset"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue> {
        let Some(object) = self.ctx.informers.replicasets.get(key) else {
            self.expectations.forget(key);
            return Ok(Requeue::Done);
        };
        let rs = plan::decode(&object).map_err(|m| Error::invalid(key, m))?;
        let ns = key.namespace_str();
        let pods: Vec<PodView> = self
            .ctx
            .informers
            .pods
            .list_namespace(ns)
            .iter()
            .filter_map(|p| PodView::from_value(p))
            .collect();
        let satisfaction = self.expectations.satisfied(key, |name| {
            let pod = self.cached_pod(ns, name)?;
            let uid = pod.pointer("/metadata/uid")?.as_str()?.to_string();
            let deleting = pod
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|t| !t.is_null());
            Some((uid, deleting))
        });
        let may_manage = satisfaction == Satisfaction::Satisfied;
        let plan = plan::plan(&rs, &pods, may_manage, Timestamp::now())
            .map_err(|m| Error::invalid(key, m))?;
        let requeue = self.apply(key, &object, &rs, plan).await?;
        Ok(match satisfaction {
            Satisfaction::Satisfied => requeue,
            Satisfaction::Pending(left) => {
                let poll = left.min(EXPECTATIONS_POLL);
                match requeue {
                    Requeue::After(d) => Requeue::After(d.min(poll)),
                    Requeue::Done => Requeue::After(poll),
                }
            }
        })
    }
}
