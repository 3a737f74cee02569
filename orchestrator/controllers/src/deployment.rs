//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets
//! named `<deployment>-<pod-template-hash>`, one per template, and reports the rollout in
//! the status `kubectl rollout status` reads.
//!
//! [`plan::plan`] decides (see its module doc for the steps, which are Kubernetes'); the
//! apply here writes, in order: ReplicaSet adoptions and releases (merge patches at the
//! ReplicaSet's resourceVersion), the new ReplicaSet (create), scale and annotation
//! changes (merge patches at the resourceVersion), pruned old ReplicaSets (delete with a
//! uid precondition), the Deployment's revision annotation, and its status (PUT at its
//! resourceVersion). Events: `ScalingReplicaSet` ("Scaled up replica set web-7d9c from
//! 0 to 3"), `ReplicaSetCreateError`, `SelectingAll`.
//!
//! Rollback is `kubectl rollout undo`'s business: it writes an old template back, and the
//! plan finds the ReplicaSet with that template (compared without its
//! `pod-template-hash` label), reuses it and gives it the next revision.

pub mod plan;
pub mod revision;
pub mod status;
pub mod strategy;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use serde_json::{Value, json};
use skiff_api::registry;
use skiff_api::template_hash::templates_equal;
use skiff_client::{DeleteParams, Informer, ObjectKey, Patch};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::driver::{Controller, Reconciler, Requeue, controller_of};
use crate::error::{Error, Result};
use crate::replicaset::claim;
use crate::replicaset::pods::PodView;

use plan::DeploymentPlan;
use status::{PROGRESSING, has_progress_deadline, new_condition, reason, set_condition};

/// Kubernetes' `--concurrent-deployment-syncs` default.
const CONCURRENCY: usize = 5;
/// After finding the ReplicaSet it was about to create already there (the cache lagged
/// behind an earlier create), look again this soon.
const CACHE_LAG_RETRY: Duration = Duration::from_millis(100);

/// Runs the Deployment controller until `cancel`.
pub async fn run(ctx: Context, cancel: CancellationToken) {
    let reconciler = Arc::new(DeploymentReconciler::new(ctx.clone()));
    let deployments = ctx.informers.deployments.clone();
    let replicasets = ctx.informers.replicasets.clone();
    let orphans = {
        let deployments = deployments.clone();
        move |rs: &Value| orphan_owners(&deployments, rs)
    };
    let pod_owner = {
        let (deployments, replicasets) = (deployments.clone(), replicasets.clone());
        move |pod: &Value| recreate_owner(&deployments, &replicasets, pod)
    };
    Controller::new(reconciler, deployments)
        .owns(replicasets.clone(), "Deployment")
        .watches(replicasets, orphans)
        .watches(ctx.informers.pods.clone(), pod_owner)
        .concurrency(CONCURRENCY)
        .run(cancel)
        .await;
}

/// An orphan ReplicaSet wakes every Deployment of its namespace whose selector matches it.
fn orphan_owners(deployments: &Informer, rs: &Value) -> Vec<ObjectKey> {
    let Ok(rs) = plan::decode_replica_set(rs) else {
        return Vec::new();
    };
    let refs = rs.metadata.owner_references.as_deref().unwrap_or_default();
    if claim::controller_of(refs).is_some() {
        return Vec::new();
    }
    let labels = rs.metadata.labels.clone().unwrap_or_default();
    let namespace = rs.metadata.namespace.as_deref().unwrap_or_default();
    deployments
        .list_namespace(namespace)
        .iter()
        .filter(|d| {
            plan::decode(d)
                .and_then(|d| plan::selector(&d))
                .is_ok_and(|s| !s.is_empty() && s.matches(&labels))
        })
        .filter_map(|d| ObjectKey::of(d))
        .collect()
}

/// A pod wakes its ReplicaSet's Deployment when that Deployment recreates: it waits for
/// the old pods to be gone. (Rolling updates follow the ReplicaSets' status instead.)
fn recreate_owner(deployments: &Informer, replicasets: &Informer, pod: &Value) -> Vec<ObjectKey> {
    let Some(rs_key) = controller_of(pod, "ReplicaSet") else {
        return Vec::new();
    };
    let Some(rs) = replicasets.get(&rs_key) else {
        return Vec::new();
    };
    let Some(key) = controller_of(&rs, "Deployment") else {
        return Vec::new();
    };
    let recreate = deployments.get(&key).is_some_and(|d| {
        d.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate")
    });
    if recreate { vec![key] } else { Vec::new() }
}

/// Now, to the second (what the API stores).
fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// The Deployment controller's [`Reconciler`].
pub struct DeploymentReconciler {
    ctx: Context,
}

impl DeploymentReconciler {
    pub fn new(ctx: Context) -> DeploymentReconciler {
        DeploymentReconciler { ctx }
    }

    async fn can_adopt(&self, key: &ObjectKey, d: &Deployment) -> Result<bool> {
        let fresh = self
            .ctx
            .client
            .get_opt(&registry::DEPLOYMENT, Some(key.namespace_str()), &key.name)
            .await?;
        Ok(fresh.is_some_and(|f| {
            f.pointer("/metadata/uid").and_then(Value::as_str) == d.metadata.uid.as_deref()
                && f.pointer("/metadata/deletionTimestamp").is_none()
        }))
    }

    async fn write_status(&self, key: &ObjectKey, object: &Value, d: &Deployment) -> Result<Value> {
        let mut body = object.clone();
        body["status"] = serde_json::to_value(d.status.clone().unwrap_or_default())
            .map_err(|e| Error::json("encoding a Deployment status", e))?;
        Ok(self
            .ctx
            .client
            .replace_status(
                &registry::DEPLOYMENT,
                Some(key.namespace_str()),
                &key.name,
                &body,
            )
            .await?)
    }

    /// Creates the new ReplicaSet. `Ok(Some(requeue))` ends this reconcile early.
    async fn create_replica_set(
        &self,
        key: &ObjectKey,
        object: &Value,
        d: &Deployment,
        rs: &ReplicaSet,
        event: Option<&str>,
    ) -> Result<Option<Requeue>> {
        let ns = key.namespace_str();
        let name = rs.metadata.name.clone().unwrap_or_default();
        let mut body =
            serde_json::to_value(rs).map_err(|e| Error::json("encoding a ReplicaSet", e))?;
        body["apiVersion"] = "apps/v1".into();
        body["kind"] = "ReplicaSet".into();
        let err = match self
            .ctx
            .client
            .create(&registry::REPLICA_SET, Some(ns), &body)
            .await
        {
            Ok(_) => {
                if let Some(message) = event {
                    self.ctx
                        .events
                        .record(object, "Normal", "ScalingReplicaSet", message)
                        .await;
                }
                return Ok(None);
            }
            Err(e) => e,
        };
        if err.api().is_some_and(|a| a.is_already_exists()) {
            let existing = self
                .ctx
                .client
                .get_opt(&registry::REPLICA_SET, Some(ns), &name)
                .await?
                .map(|v| plan::decode_replica_set(&v))
                .transpose()
                .map_err(|m| Error::invalid(key, m))?;
            let ours = existing.as_ref().is_some_and(|existing| {
                let owned = claim::controller_of(
                    existing
                        .metadata
                        .owner_references
                        .as_deref()
                        .unwrap_or_default(),
                )
                .is_some_and(|c| Some(c.uid.as_str()) == d.metadata.uid.as_deref());
                let same = match (
                    existing.spec.as_ref().and_then(|s| s.template.as_ref()),
                    d.spec.as_ref().map(|s| &s.template),
                ) {
                    (Some(a), Some(b)) => templates_equal(a, b),
                    _ => false,
                };
                owned && same
            });
            if ours {
                // Our own earlier create, not in the cache yet.
                return Ok(Some(Requeue::After(CACHE_LAG_RETRY)));
            }
            // A hash collision: the next name comes from a higher collision count.
            let mut d = d.clone();
            let status = d.status.get_or_insert_with(Default::default);
            status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
            self.write_status(key, object, &d).await?;
            return Err(Error::invalid(
                key,
                format!("the ReplicaSet name {name} is taken by another template"),
            ));
        }
        let message = format!("Failed to create new replica set \"{name}\": {err}");
        if has_progress_deadline(d) {
            let mut d = d.clone();
            let status = d.status.get_or_insert_with(Default::default);
            let cond = new_condition(
                PROGRESSING,
                "False",
                reason::FAILED_RS_CREATE,
                message.clone(),
                now(),
            );
            set_condition(status, cond);
            self.write_status(key, object, &d).await?;
        }
        self.ctx
            .events
            .record(object, "Warning", reason::FAILED_RS_CREATE, &message)
            .await;
        Err(err.into())
    }

    async fn apply(
        &self,
        key: &ObjectKey,
        object: &Value,
        d: &Deployment,
        plan: DeploymentPlan,
    ) -> Result<Requeue> {
        let ns = key.namespace_str();
        let client = &self.ctx.client;
        if !plan.adopt.is_empty() && !self.can_adopt(key, d).await? {
            return Err(Error::invalid(
                key,
                "the Deployment changed or is being deleted; not adopting ReplicaSets",
            ));
        }
        for change in plan.adopt.iter().chain(&plan.release) {
            let patch = claim::ownership_patch(&change.resource_version, &change.owner_references);
            match client
                .patch(
                    &registry::REPLICA_SET,
                    Some(ns),
                    &change.name,
                    &Patch::Merge(patch),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some((rs, event)) = &plan.create
            && let Some(requeue) = self
                .create_replica_set(key, object, d, rs, event.as_deref())
                .await?
        {
            return Ok(requeue);
        }
        for update in &plan.updates {
            let patch = json!({
                "metadata": {
                    "resourceVersion": update.resource_version,
                    "annotations": update.annotations,
                },
                "spec": {
                    "replicas": update.replicas,
                    "minReadySeconds": update.min_ready_seconds,
                },
            });
            client
                .patch(
                    &registry::REPLICA_SET,
                    Some(ns),
                    &update.name,
                    &Patch::Merge(patch),
                )
                .await?;
            if let Some(message) = &update.event {
                self.ctx
                    .events
                    .record(object, "Normal", "ScalingReplicaSet", message)
                    .await;
            }
        }
        for old in &plan.deletes {
            let params = DeleteParams {
                precondition_uid: Some(old.uid.clone()),
                ..DeleteParams::default()
            };
            match client
                .delete(&registry::REPLICA_SET, Some(ns), &old.name, &params)
                .await
            {
                Ok(_) => {
                    tracing::debug!(deployment = %key, replicaset = %old.name, "pruned an old ReplicaSet")
                }
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut latest = object.clone();
        if let Some(revision) = &plan.revision {
            let patch = json!({"metadata": {
                "resourceVersion": object.pointer("/metadata/resourceVersion"),
                "annotations": {revision::REVISION: revision},
            }});
            latest = client
                .patch(
                    &registry::DEPLOYMENT,
                    Some(ns),
                    &key.name,
                    &Patch::Merge(patch),
                )
                .await?;
        }
        if let Some(status) = &plan.status {
            let mut body = latest;
            body["status"] = serde_json::to_value(status)
                .map_err(|e| Error::json("encoding a Deployment status", e))?;
            client
                .replace_status(&registry::DEPLOYMENT, Some(ns), &key.name, &body)
                .await?;
        }
        for event in &plan.events {
            self.ctx
                .events
                .record(object, event.type_, event.reason, &event.message)
                .await;
        }
        Ok(plan.requeue_after.map_or(Requeue::Done, Requeue::After))
    }
}

#[async_trait::async_trait]
impl Reconciler for DeploymentReconciler {
    fn name(&self) -> &'static str {
        "deployment"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue> {
        let Some(object) = self.ctx.informers.deployments.get(key) else {
            return Ok(Requeue::Done);
        };
        let d = plan::decode(&object).map_err(|m| Error::invalid(key, m))?;
        let ns = key.namespace_str();
        let replica_sets: Vec<ReplicaSet> = self
            .ctx
            .informers
            .replicasets
            .list_namespace(ns)
            .iter()
            .filter_map(|rs| match plan::decode_replica_set(rs) {
                Ok(rs) => Some(rs),
                Err(e) => {
                    tracing::debug!(deployment = %key, error = %e, "skipping a ReplicaSet");
                    None
                }
            })
            .collect();
        // Only Recreate looks at pods (are the old ones gone?).
        let pods: Vec<PodView> = if strategy::is_rolling_update(&d) {
            Vec::new()
        } else {
            self.ctx
                .informers
                .pods
                .list_namespace(ns)
                .iter()
                .filter_map(|p| PodView::from_value(p))
                .collect()
        };
        let plan =
            plan::plan(&d, &replica_sets, &pods, now()).map_err(|m| Error::invalid(key, m))?;
        self.apply(key, &object, &d, plan).await
    }
}
