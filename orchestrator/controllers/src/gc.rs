//! The garbage collector: deletes objects whose owners are gone, and carries out the
//! Foreground and Orphan deletion policies the API server records as finalizers.
//!
//! - **Background** (and dangling references): an object all of whose owners
//!   (`ownerReferences`, matched by uid) no longer exist is deleted. An object with some
//!   owners left loses only the references to the missing ones.
//! - **Foreground**: the API server marks the owner (deletionTimestamp) and adds the
//!   `foregroundDeletion` finalizer. Its dependents are deleted (with Foreground
//!   themselves when they have dependents of their own); when no dependent with
//!   `blockOwnerDeletion: true` remains, the finalizer is removed and the API server
//!   deletes the owner.
//! - **Orphan**: the owner gets the `orphan` finalizer; the references to it are removed
//!   from its dependents, then the finalizer.
//!
//! Covered kinds: pods, replicasets, deployments, daemonsets and jobs (the informers the
//! controllers share), as dependents and as owners; an owner of another kind is looked up
//! in the API. One controller per kind, each woken by its own objects, by owners that go
//! away or start deleting (their dependents are found in the cache), and by dependents
//! that change (their owners are woken, so a Foreground owner notices the last one
//! leaving).
//!
//! An owner missing from the cache is confirmed with a live GET before anything is
//! deleted: the owner's informer may simply not have seen it yet (Kubernetes'
//! "absent owner" check).

use std::sync::Arc;

use serde_json::Value;
use skiff_api::registry::{self, Resource};
use skiff_client::{DeleteParams, Informer, ObjectKey, PropagationPolicy};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::Context;
use crate::driver::{Controller, Reconciler, Requeue};
use crate::error::Result;

/// The finalizer of an owner being deleted in the foreground.
pub const FOREGROUND_DELETION: &str = "foregroundDeletion";
/// The finalizer of an owner whose dependents are to be orphaned.
pub const ORPHAN: &str = "orphan";

/// Runs the garbage collector until `cancel`.
pub async fn run(ctx: Context, cancel: CancellationToken) {
    let kinds = covered(&ctx);
    let tasks = TaskTracker::new();
    for (resource, informer) in &kinds {
        let reconciler = Arc::new(GcReconciler {
            ctx: ctx.clone(),
            resource,
            informer: informer.clone(),
        });
        let mut controller = Controller::new(reconciler, informer.clone()).concurrency(2);
        for (other_resource, other) in &kinds {
            // Dependents wake their owners of this kind.
            if is_owner_kind(resource) {
                let kind = resource.kind;
                controller = controller.watches(other.clone(), move |dependent| {
                    let ns = dependent
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str);
                    owner_refs(dependent)
                        .filter(|r| r.kind == kind)
                        .filter_map(|r| Some(ObjectKey::new(ns, r.name?)))
                        .collect()
                });
            }
            // Owners that are gone or deleting wake their dependents of this kind.
            if is_owner_kind(other_resource) {
                let dependents = informer.clone();
                let owners = other.clone();
                controller = controller.watches(other.clone(), move |owner| {
                    dependents_to_wake(owner, &owners, &dependents)
                });
            }
        }
        tasks.spawn(controller.run(cancel.clone()));
    }
    tasks.close();
    tasks.wait().await;
}

/// Kinds watched as owners. Pods own nothing in practice; watching them as owners would
/// scan the caches once per deleted pod.
fn is_owner_kind(resource: &Resource) -> bool {
    !std::ptr::eq(resource, &registry::POD)
}

/// The dependents (in `dependents`) of an owner that is gone or deleting.
fn dependents_to_wake(owner: &Value, owners: &Informer, dependents: &Informer) -> Vec<ObjectKey> {
    let (Some(key), Some(uid)) = (
        ObjectKey::of(owner),
        owner.pointer("/metadata/uid").and_then(Value::as_str),
    ) else {
        return Vec::new();
    };
    // The informer updates its cache before it tells: what it holds now says whether the
    // owner is still there.
    let settled = owners.get(&key).is_some_and(|now| {
        now.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid)
            && now.pointer("/metadata/deletionTimestamp").is_none()
    });
    if settled {
        return Vec::new();
    }
    let candidates = match (&key.namespace, owners.resource().namespaced) {
        (Some(ns), true) => dependents.list_namespace(ns),
        _ => dependents.list(),
    };
    candidates
        .iter()
        .filter(|d| owner_refs(d).any(|r| r.uid == Some(uid)))
        .filter_map(|d| ObjectKey::of(d))
        .collect()
}

/// The kinds the collector watches, with their informers.
fn covered(ctx: &Context) -> Vec<(&'static Resource, Informer)> {
    let i = &ctx.informers;
    vec![
        (&registry::POD, i.pods.clone()),
        (&registry::REPLICA_SET, i.replicasets.clone()),
        (&registry::DEPLOYMENT, i.deployments.clone()),
        (&registry::DAEMON_SET, i.daemonsets.clone()),
        (&registry::JOB, i.jobs.clone()),
    ]
}

// ------------------------------------------------------------------------------ plan

/// An ownerReference as read from an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerRef<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: Option<&'a str>,
    pub uid: Option<&'a str>,
    pub block_owner_deletion: bool,
}

/// The ownerReferences of an object.
pub fn owner_refs(object: &Value) -> impl Iterator<Item = OwnerRef<'_>> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| OwnerRef {
            api_version: r.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
            kind: r.get("kind").and_then(Value::as_str).unwrap_or(""),
            name: r.get("name").and_then(Value::as_str),
            uid: r.get("uid").and_then(Value::as_str),
            block_owner_deletion: r.get("blockOwnerDeletion").and_then(Value::as_bool)
                == Some(true),
        })
}

/// What became of one owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists and is not being deleted in the foreground.
    Solid,
    /// Gone (or replaced by another object of the same name).
    Absent,
    /// Being deleted in the foreground: waits for its dependents.
    WaitingForDependents,
}

/// What to do with an object as a dependent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DependentPlan {
    Keep,
    /// Remove the references with these uids (dangling or to foreground-deleted owners).
    RemoveOwnerRefs(Vec<String>),
    /// Delete it, with this propagation.
    Delete(PropagationPolicy),
}

/// Decides what to do with an object given the state of each of its owners (by
/// reference uid): pure. `has_dependents`: whether anything is owned by the object.
pub fn plan_dependent(owners: &[(String, OwnerState)], has_dependents: bool) -> DependentPlan {
    if owners.is_empty() {
        return DependentPlan::Keep;
    }
    let solid = owners.iter().any(|(_, s)| *s == OwnerState::Solid);
    if solid {
        let stale: Vec<String> = owners
            .iter()
            .filter(|(_, s)| *s != OwnerState::Solid)
            .map(|(uid, _)| uid.clone())
            .collect();
        return if stale.is_empty() {
            DependentPlan::Keep
        } else {
            DependentPlan::RemoveOwnerRefs(stale)
        };
    }
    let waiting = owners
        .iter()
        .any(|(_, s)| *s == OwnerState::WaitingForDependents);
    if waiting && has_dependents {
        DependentPlan::Delete(PropagationPolicy::Foreground)
    } else {
        DependentPlan::Delete(PropagationPolicy::Background)
    }
}

/// What to do with an object that is being deleted, as an owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerPlan {
    Nothing,
    /// Remove the reference to the owner from these dependents, then the `orphan`
    /// finalizer.
    Orphan(Vec<ObjectKey>),
    /// Foreground: dependents that still block; when none, remove the finalizer.
    WaitForDependents {
        blocking: usize,
    },
    RemoveForegroundFinalizer,
}

/// Decides the owner side: pure. `dependents`: (key, blockOwnerDeletion) of every
/// object referencing the owner's uid.
pub fn plan_owner(owner: &Value, dependents: &[(ObjectKey, bool)]) -> OwnerPlan {
    let meta = owner.get("metadata");
    if meta.and_then(|m| m.get("deletionTimestamp")).is_none() {
        return OwnerPlan::Nothing;
    }
    let finalizers: Vec<&str> = meta
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if finalizers.contains(&ORPHAN) {
        return OwnerPlan::Orphan(dependents.iter().map(|(k, _)| k.clone()).collect());
    }
    if finalizers.contains(&FOREGROUND_DELETION) {
        let blocking = dependents.iter().filter(|(_, b)| *b).count();
        return if blocking == 0 {
            OwnerPlan::RemoveForegroundFinalizer
        } else {
            OwnerPlan::WaitForDependents { blocking }
        };
    }
    OwnerPlan::Nothing
}

/// The state of an owner from what was found under its name.
pub fn owner_state(reference_uid: &str, found: Option<&Value>) -> OwnerState {
    let Some(found) = found else {
        return OwnerState::Absent;
    };
    if found.pointer("/metadata/uid").and_then(Value::as_str) != Some(reference_uid) {
        return OwnerState::Absent;
    }
    let deleting = found.pointer("/metadata/deletionTimestamp").is_some();
    let foreground = found
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(FOREGROUND_DELETION)));
    if deleting && foreground {
        OwnerState::WaitingForDependents
    } else {
        OwnerState::Solid
    }
}

// ------------------------------------------------------------------------------ apply

struct GcReconciler {
    ctx: Context,
    resource: &'static Resource,
    informer: Informer,
}

#[async_trait::async_trait]
impl Reconciler for GcReconciler {
    fn name(&self) -> &'static str {
        "garbagecollector"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue> {
        let Some(object) = self.informer.get(key) else {
            return Ok(Requeue::Done);
        };
        self.as_owner(key, &object).await?;
        if object.pointer("/metadata/deletionTimestamp").is_none() {
            self.as_dependent(key, &object).await?;
        }
        Ok(Requeue::Done)
    }
}

impl GcReconciler {
    /// Every cached object (of the covered kinds) referencing `uid`.
    fn dependents_of(
        &self,
        namespace: Option<&str>,
        uid: &str,
    ) -> Vec<(&'static Resource, ObjectKey, bool)> {
        let mut out = Vec::new();
        for (resource, informer) in covered(&self.ctx) {
            let objects = match namespace {
                Some(ns) => informer.list_namespace(ns),
                None => informer.list(),
            };
            for o in objects {
                if let Some(r) = owner_refs(&o).find(|r| r.uid == Some(uid))
                    && let Some(k) = ObjectKey::of(&o)
                {
                    out.push((resource, k, r.block_owner_deletion));
                }
            }
        }
        out
    }

    async fn as_owner(&self, key: &ObjectKey, object: &Value) -> Result<()> {
        let Some(uid) = object.pointer("/metadata/uid").and_then(Value::as_str) else {
            return Ok(());
        };
        if object.pointer("/metadata/deletionTimestamp").is_none() {
            return Ok(());
        }
        // Namespaced owners own only objects of their namespace.
        let ns = self.resource.namespaced.then(|| key.namespace_str());
        let dependents = self.dependents_of(ns, uid);
        let pairs: Vec<(ObjectKey, bool)> =
            dependents.iter().map(|(_, k, b)| (k.clone(), *b)).collect();
        match plan_owner(object, &pairs) {
            OwnerPlan::Nothing | OwnerPlan::WaitForDependents { .. } => Ok(()),
            OwnerPlan::Orphan(_) => {
                for (resource, dep_key, _) in &dependents {
                    self.remove_owner_refs(resource, dep_key, &[uid.to_string()])
                        .await?;
                }
                self.remove_finalizer(key, ORPHAN).await
            }
            OwnerPlan::RemoveForegroundFinalizer => {
                self.remove_finalizer(key, FOREGROUND_DELETION).await
            }
        }
    }

    async fn as_dependent(&self, key: &ObjectKey, object: &Value) -> Result<()> {
        let refs: Vec<OwnerRef<'_>> = owner_refs(object).collect();
        if refs.is_empty() {
            return Ok(());
        }
        let mut owners = Vec::new();
        for r in &refs {
            let Some(uid) = r.uid else { continue };
            let state = self.owner_state(key, r).await?;
            owners.push((uid.to_string(), state));
        }
        let has_dependents = owners
            .iter()
            .any(|(_, s)| *s == OwnerState::WaitingForDependents)
            && object
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .is_some_and(|uid| !self.dependents_of(key.namespace.as_deref(), uid).is_empty());
        match plan_dependent(&owners, has_dependents) {
            DependentPlan::Keep => Ok(()),
            DependentPlan::RemoveOwnerRefs(uids) => {
                self.remove_owner_refs(self.resource, key, &uids).await
            }
            DependentPlan::Delete(policy) => {
                let params = DeleteParams {
                    propagation_policy: Some(policy),
                    precondition_uid: object
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    ..Default::default()
                };
                tracing::debug!(object = %key, kind = self.resource.kind, ?policy, "garbage collecting");
                match self
                    .ctx
                    .client
                    .delete(self.resource, key.namespace.as_deref(), &key.name, &params)
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_not_found() => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Looks the owner up: in the cache when its kind is covered, in the API otherwise or
    /// when the cache does not have it (it may not have seen it yet).
    async fn owner_state(&self, dependent: &ObjectKey, r: &OwnerRef<'_>) -> Result<OwnerState> {
        let (Some(uid), Some(name)) = (r.uid, r.name) else {
            return Ok(OwnerState::Solid);
        };
        let Some(resource) = registry::by_api_version_kind(r.api_version, r.kind) else {
            // An owner of a kind this server does not serve: never collect for it.
            return Ok(OwnerState::Solid);
        };
        let ns = resource.namespaced.then(|| dependent.namespace_str());
        if resource.namespaced && ns.is_none_or(str::is_empty) {
            // A cluster-scoped object cannot have a namespaced owner: leave it alone.
            return Ok(OwnerState::Solid);
        }
        let owner_key = ObjectKey::new(ns, name);
        let cached = covered(&self.ctx)
            .into_iter()
            .find(|(res, _)| std::ptr::eq(*res, resource))
            .and_then(|(_, informer)| informer.get(&owner_key));
        if let Some(found) = &cached
            && owner_state(uid, Some(found)) != OwnerState::Absent
        {
            return Ok(owner_state(uid, Some(found)));
        }
        let live = self.ctx.client.get_opt(resource, ns, name).await?;
        Ok(owner_state(uid, live.as_ref()))
    }

    /// Removes the references with `uids` from a dependent (compare-and-swap on what the
    /// API returns now).
    async fn remove_owner_refs(
        &self,
        resource: &'static Resource,
        key: &ObjectKey,
        uids: &[String],
    ) -> Result<()> {
        let ns = key.namespace.as_deref();
        let Some(mut current) = self.ctx.client.get_opt(resource, ns, &key.name).await? else {
            return Ok(());
        };
        let Some(refs) = current
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        else {
            return Ok(());
        };
        let before = refs.len();
        refs.retain(|r| {
            !r.get("uid")
                .and_then(Value::as_str)
                .is_some_and(|u| uids.iter().any(|x| x == u))
        });
        if refs.len() == before {
            return Ok(());
        }
        if refs.is_empty()
            && let Some(meta) = current.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.remove("ownerReferences");
        }
        match self
            .ctx
            .client
            .replace(resource, ns, &key.name, &current)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes one finalizer from the owner (compare-and-swap); the API server deletes it
    /// when none is left.
    async fn remove_finalizer(&self, key: &ObjectKey, finalizer: &str) -> Result<()> {
        let ns = key.namespace.as_deref();
        let Some(mut current) = self
            .ctx
            .client
            .get_opt(self.resource, ns, &key.name)
            .await?
        else {
            return Ok(());
        };
        let Some(list) = current
            .pointer_mut("/metadata/finalizers")
            .and_then(Value::as_array_mut)
        else {
            return Ok(());
        };
        let before = list.len();
        list.retain(|f| f.as_str() != Some(finalizer));
        if list.len() == before {
            return Ok(());
        }
        match self
            .ctx
            .client
            .replace(self.resource, ns, &key.name, &current)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use OwnerState::*;

    fn owners(states: &[OwnerState]) -> Vec<(String, OwnerState)> {
        states
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("u{i}"), *s))
            .collect()
    }

    #[test]
    fn dependent_table() {
        let cases: Vec<(&str, Vec<OwnerState>, bool, DependentPlan)> = vec![
            (
                "no owners: never collected",
                vec![],
                false,
                DependentPlan::Keep,
            ),
            ("owner exists", vec![Solid], false, DependentPlan::Keep),
            (
                "owner gone: background delete",
                vec![Absent],
                false,
                DependentPlan::Delete(PropagationPolicy::Background),
            ),
            (
                "every owner gone",
                vec![Absent, Absent],
                false,
                DependentPlan::Delete(PropagationPolicy::Background),
            ),
            (
                "one owner left: only the dangling reference goes",
                vec![Solid, Absent],
                false,
                DependentPlan::RemoveOwnerRefs(vec!["u1".into()]),
            ),
            (
                "foreground owner, dependent without dependents",
                vec![WaitingForDependents],
                false,
                DependentPlan::Delete(PropagationPolicy::Background),
            ),
            (
                "foreground owner, dependent with dependents: foreground too",
                vec![WaitingForDependents],
                true,
                DependentPlan::Delete(PropagationPolicy::Foreground),
            ),
            (
                "foreground owner and a solid one: unlink",
                vec![WaitingForDependents, Solid],
                false,
                DependentPlan::RemoveOwnerRefs(vec!["u0".into()]),
            ),
        ];
        for (name, states, has_dependents, want) in cases {
            assert_eq!(
                plan_dependent(&owners(&states), has_dependents),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn owner_table() {
        let key = |n: &str| ObjectKey::new(Some("ns"), n);
        let owner = |meta: Value| json!({"metadata": meta});
        type Case<'a> = (&'a str, Value, Vec<(ObjectKey, bool)>, OwnerPlan);
        let cases: Vec<Case<'_>> = vec![
            (
                "not deleting",
                owner(json!({"finalizers": ["orphan"]})),
                vec![(key("a"), true)],
                OwnerPlan::Nothing,
            ),
            (
                "orphan",
                owner(json!({"deletionTimestamp": "t", "finalizers": ["orphan"]})),
                vec![(key("a"), true), (key("b"), false)],
                OwnerPlan::Orphan(vec![key("a"), key("b")]),
            ),
            (
                "foreground with blocking dependents",
                owner(json!({"deletionTimestamp": "t", "finalizers": ["foregroundDeletion"]})),
                vec![(key("a"), true), (key("b"), false)],
                OwnerPlan::WaitForDependents { blocking: 1 },
            ),
            (
                "foreground, only non-blocking dependents left",
                owner(json!({"deletionTimestamp": "t", "finalizers": ["foregroundDeletion"]})),
                vec![(key("b"), false)],
                OwnerPlan::RemoveForegroundFinalizer,
            ),
            (
                "someone else's finalizer",
                owner(json!({"deletionTimestamp": "t", "finalizers": ["example.com/x"]})),
                vec![],
                OwnerPlan::Nothing,
            ),
        ];
        for (name, o, deps, want) in cases {
            assert_eq!(plan_owner(&o, &deps), want, "{name}");
        }
    }

    #[test]
    fn owner_states() {
        assert_eq!(owner_state("u", None), Absent);
        let o = |meta: Value| json!({"metadata": meta});
        assert_eq!(owner_state("u", Some(&o(json!({"uid": "u"})))), Solid);
        assert_eq!(
            owner_state("u", Some(&o(json!({"uid": "other"})))),
            Absent,
            "recreated under the same name"
        );
        assert_eq!(
            owner_state(
                "u",
                Some(&o(
                    json!({"uid": "u", "deletionTimestamp": "t", "finalizers": ["foregroundDeletion"]})
                ))
            ),
            WaitingForDependents
        );
        assert_eq!(
            owner_state(
                "u",
                Some(&o(
                    json!({"uid": "u", "deletionTimestamp": "t", "finalizers": ["orphan"]})
                ))
            ),
            Solid,
            "orphaning owners keep their dependents"
        );
    }

    #[test]
    fn reading_owner_refs() {
        let pod = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true, "blockOwnerDeletion": true},
            {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u2"},
        ]}});
        let refs: Vec<OwnerRef<'_>> = owner_refs(&pod).collect();
        assert_eq!(refs.len(), 2);
        assert!(refs[0].block_owner_deletion);
        assert_eq!(refs[1].kind, "Node");
        assert!(!refs[1].block_owner_deletion);
        assert_eq!(owner_refs(&json!({})).count(), 0);
    }
}
