//! The pure half of the Deployment controller: from a Deployment, the ReplicaSets of its
//! namespace and (for Recreate) its pods, what to write.
//!
//! It follows Kubernetes' `syncDeployment` step by step, on working copies of the
//! ReplicaSets instead of API writes: each step sees what the earlier ones decided, and
//! the differences become the plan (at most one write per ReplicaSet).
//!
//! ```text
//!  claim ReplicaSets (adopt orphans the selector matches, release those it no longer does)
//!  being deleted ─────────────▶ status only
//!  paused conditions (Progressing=Unknown DeploymentPaused / DeploymentResumed)
//!  paused, or a scaling event ─▶ sync: scale proportionally, (paused) prune history, status
//!  Recreate ──▶ old ReplicaSets to 0 ─▶ wait for their pods to go ─▶ new one to replicas
//!  RollingUpdate ─▶ scale the new one up (≤ replicas + maxSurge) or else the old ones down
//!                   (≥ replicas − maxUnavailable available), unhealthy old replicas first
//!  complete ──▶ prune old ReplicaSets beyond revisionHistoryLimit
//!  rollout status: Available, Progressing (NewReplicaSetCreated/FoundNewReplicaSet/
//!                  ReplicaSetUpdated/NewReplicaSetAvailable, or False
//!                  ProgressDeadlineExceeded), ReplicaFailure copied from the ReplicaSets
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use skiff_api::LabelSelector;
use skiff_api::template_hash::{
    POD_TEMPLATE_HASH_LABEL, normalized_template, pod_template_hash_with_collisions,
};

use super::revision::{
    self, DESIRED_REPLICAS, MAX_REPLICAS, REVISION, int_annotation, revision_of,
    set_new_replica_set_annotations, set_replicas_annotations,
};
use super::status::{
    self as st, PROGRESSING, REPLICA_FAILURE, available_replicas, calculate_status, complete,
    condition, has_progress_deadline, new_condition, reason, remove_condition, set_condition,
    spec_replicas, status_replicas,
};
use super::strategy::{is_rolling_update, max_surge, max_unavailable, raw_max_surge, replicas};
use crate::replicaset::claim::{self, Claim, Owner};
use crate::replicaset::plan::OwnershipChange;
use crate::replicaset::pods::PodView;

/// A change to an existing ReplicaSet: its scale, minReadySeconds and annotations.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaSetUpdate {
    pub name: String,
    /// The write is conditional on this version.
    pub resource_version: String,
    pub replicas: i32,
    pub min_ready_seconds: Option<i32>,
    /// The complete annotations (only ever added to or changed).
    pub annotations: BTreeMap<String, String>,
    /// The `ScalingReplicaSet` message when the scale changes.
    pub event: Option<String>,
}

/// An old ReplicaSet beyond the revision history limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSetRef {
    pub name: String,
    pub uid: String,
}

/// An Event about the Deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
}

/// What one reconcile of a Deployment writes, in this order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeploymentPlan {
    pub adopt: Vec<OwnershipChange>,
    pub release: Vec<OwnershipChange>,
    /// A new ReplicaSet to create, with the `ScalingReplicaSet` message when it starts
    /// with replicas.
    pub create: Option<(ReplicaSet, Option<String>)>,
    pub updates: Vec<ReplicaSetUpdate>,
    pub deletes: Vec<ReplicaSetRef>,
    /// The Deployment's new `deployment.kubernetes.io/revision` annotation.
    pub revision: Option<String>,
    /// The new status, when it changed.
    pub status: Option<DeploymentStatus>,
    pub events: Vec<PlannedEvent>,
    /// When to look again (the progress deadline of a rollout in progress).
    pub requeue_after: Option<Duration>,
}

/// Reads a cached Deployment.
pub fn decode(d: &Value) -> Result<Deployment, String> {
    serde::Deserialize::deserialize(d).map_err(|e| format!("cannot decode the Deployment: {e}"))
}

/// Reads a cached ReplicaSet.
pub fn decode_replica_set(rs: &Value) -> Result<ReplicaSet, String> {
    crate::replicaset::plan::decode(rs)
}

/// The selector of a Deployment.
pub fn selector(d: &Deployment) -> Result<LabelSelector, String> {
    let spec = d.spec.as_ref().ok_or("the Deployment has no spec")?;
    LabelSelector::from_k8s(&spec.selector).map_err(|e| format!("invalid selector: {e}"))
}

/// Plans one reconcile of `d`. `replica_sets` and `pods` are those of its namespace.
pub fn plan(
    d: &Deployment,
    replica_sets: &[ReplicaSet],
    pods: &[PodView],
    now: Timestamp,
) -> Result<DeploymentPlan, String> {
    let selector = selector(d)?;
    let mut out = DeploymentPlan::default();
    let current = d.status.clone().unwrap_or_default();
    if selector.is_empty() {
        out.events.push(PlannedEvent {
            type_: "Warning",
            reason: "SelectingAll",
            message: "This deployment is selecting all pods. A non-empty selector is required."
                .into(),
        });
        if current.observed_generation < d.metadata.generation {
            out.status = Some(DeploymentStatus {
                observed_generation: d.metadata.generation,
                ..current
            });
        }
        return Ok(out);
    }

    let owner = Owner {
        api_version: "apps/v1",
        kind: "Deployment",
        name: d.metadata.name.as_deref().unwrap_or_default(),
        uid: d.metadata.uid.as_deref().unwrap_or_default(),
        deleting: d.metadata.deletion_timestamp.is_some(),
        selector: &selector,
    };
    let mut owned = Vec::new();
    for rs in replica_sets {
        let refs = rs.metadata.owner_references.as_deref().unwrap_or_default();
        let labels = rs.metadata.labels.clone().unwrap_or_default();
        let change = |refs| OwnershipChange {
            name: rs.metadata.name.clone().unwrap_or_default(),
            resource_version: rs.metadata.resource_version.clone().unwrap_or_default(),
            owner_references: refs,
        };
        match claim::claim(
            &owner,
            refs,
            &labels,
            rs.metadata.deletion_timestamp.is_some(),
        ) {
            Claim::Owned => owned.push(rs.clone()),
            Claim::Adopt => {
                out.adopt.push(change(claim::adopted(refs, &owner)));
                owned.push(rs.clone());
            }
            Claim::Release => out.release.push(change(claim::released(refs, owner.uid))),
            Claim::Ignore => {}
        }
    }
    owned.sort_by(by_creation);

    let mut sim = Sim {
        d,
        now,
        status: current.clone(),
        rss: owned
            .into_iter()
            .map(|rs| Working {
                original: Some(rs.clone()),
                rs,
                event: None,
            })
            .collect(),
        new: None,
        revision: None,
        deletes: Vec::new(),
        collision: false,
        taken_names: replica_sets
            .iter()
            .filter_map(|rs| rs.metadata.name.clone())
            .collect(),
    };
    sim.run(&selector, pods);

    let final_status = sim.status.clone();
    let mut plan = sim.into_plan(out);
    if Some(&final_status) != d.status.as_ref() {
        plan.status = Some(final_status.clone());
    }
    plan.requeue_after = st::until_deadline(d, &final_status, now);
    Ok(plan)
}

/// Oldest first; ties by name. A ReplicaSet not created yet is the newest.
fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    let key = |rs: &ReplicaSet| {
        (
            rs.metadata
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::MAX, |t| t.0),
            rs.metadata.name.clone().unwrap_or_default(),
        )
    };
    key(a).cmp(&key(b))
}

fn min_ready(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// A ReplicaSet as this reconcile leaves it.
struct Working {
    rs: ReplicaSet,
    /// As the cache showed it; `None` for the new ReplicaSet about to be created.
    original: Option<ReplicaSet>,
    /// The last `ScalingReplicaSet` message.
    event: Option<String>,
}

struct Sim<'a> {
    d: &'a Deployment,
    now: Timestamp,
    /// The Deployment's status as the steps change it.
    status: DeploymentStatus,
    /// The Deployment's ReplicaSets, oldest first (a created one last).
    rss: Vec<Working>,
    /// Which of `rss` is the new ReplicaSet (its template is the Deployment's).
    new: Option<usize>,
    revision: Option<String>,
    deletes: Vec<usize>,
    /// The new ReplicaSet's name is taken by another: the collision count went up.
    collision: bool,
    /// Every ReplicaSet name in the namespace.
    taken_names: Vec<String>,
}

impl Sim<'_> {
    fn rs(&self, i: usize) -> &ReplicaSet {
        &self.rss[i].rs
    }

    fn name(&self, i: usize) -> String {
        self.rs(i).metadata.name.clone().unwrap_or_default()
    }

    fn spec(&self, i: usize) -> i32 {
        spec_replicas(self.rs(i))
    }

    fn olds(&self) -> Vec<usize> {
        (0..self.rss.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }

    fn active(&self, indices: &[usize]) -> Vec<usize> {
        indices
            .iter()
            .copied()
            .filter(|i| self.spec(*i) > 0)
            .collect()
    }

    fn with_new(&self, mut indices: Vec<usize>) -> Vec<usize> {
        indices.extend(self.new);
        indices
    }

    fn sum_spec(&self, indices: &[usize]) -> i32 {
        indices.iter().map(|i| self.spec(*i)).sum()
    }

    fn sum_available(&self, indices: &[usize]) -> i32 {
        indices
            .iter()
            .map(|i| available_replicas(self.rs(*i)))
            .sum()
    }

    fn sort_by_creation(&self, indices: &mut [usize]) {
        indices.sort_by(|a, b| by_creation(self.rs(*a), self.rs(*b)));
    }

    fn run(&mut self, selector: &LabelSelector, pods: &[PodView]) {
        if self.d.metadata.deletion_timestamp.is_some() {
            self.sync_new(false);
            self.sync_status();
            return;
        }
        self.check_paused_conditions();
        let paused = self.d.spec.as_ref().and_then(|s| s.paused) == Some(true);
        if paused {
            self.sync(true);
            return;
        }
        self.sync_new(false);
        if self.is_scaling_event() {
            self.sync(false);
            return;
        }
        if is_rolling_update(self.d) {
            self.rolling();
        } else {
            self.recreate(selector, pods);
        }
    }

    // ------------------------------------------------------------ the new ReplicaSet

    /// Kubernetes' `getNewReplicaSet`: finds the ReplicaSet whose template is the
    /// Deployment's (syncing its revision and annotations), or with `create`, makes one.
    fn sync_new(&mut self, create: bool) {
        let d = self.d;
        let Some(spec) = d.spec.as_ref() else {
            return;
        };
        let wanted = normalized_template(&spec.template);
        let found = self.new.or_else(|| {
            (0..self.rss.len()).find(|i| {
                self.rs(*i)
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| normalized_template(t) == wanted)
            })
        });
        let max_old = (0..self.rss.len())
            .filter(|i| Some(*i) != found)
            .map(|i| revision_of(self.rs(i)))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        let annotations = d.metadata.annotations.as_ref();
        let (want, surge) = (replicas(d), max_surge(d));
        if let Some(i) = found {
            self.new = Some(i);
            let rs = &mut self.rss[i].rs;
            set_new_replica_set_annotations(annotations, rs, new_revision, true, want, surge);
            let rs_spec = rs.spec.get_or_insert_with(Default::default);
            if rs_spec.min_ready_seconds.unwrap_or(0) != min_ready(d) {
                rs_spec.min_ready_seconds = Some(min_ready(d));
            }
            let name = rs.metadata.name.clone().unwrap_or_default();
            let current = revision::annotation(rs, REVISION).map(str::to_string);
            self.set_revision(current);
            if has_progress_deadline(d) && condition(&self.status, PROGRESSING).is_none() {
                let cond = new_condition(
                    PROGRESSING,
                    "True",
                    reason::FOUND_NEW_RS,
                    format!("Found new replica set \"{name}\""),
                    self.now,
                );
                set_condition(&mut self.status, cond);
            }
            return;
        }
        if !create || self.collision {
            return;
        }
        let hash = pod_template_hash_with_collisions(&spec.template, self.status.collision_count);
        let name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default());
        if self.taken_names.contains(&name) {
            // Another ReplicaSet (not ours, or another template) has the name: step past
            // it with a new hash next time.
            self.status.collision_count = Some(self.status.collision_count.unwrap_or(0) + 1);
            self.collision = true;
            return;
        }
        let mut template = spec.template.clone();
        let labels = template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new);
        labels.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let labels = labels.clone();
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash);
        let owner_selector = LabelSelector::everything();
        let owner = Owner {
            api_version: "apps/v1",
            kind: "Deployment",
            name: d.metadata.name.as_deref().unwrap_or_default(),
            uid: d.metadata.uid.as_deref().unwrap_or_default(),
            deleting: false,
            selector: &owner_selector,
        };
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.metadata.namespace.clone(),
                labels: Some(labels),
                owner_references: Some(vec![claim::controller_ref(&owner)]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: Some(min_ready(d)),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        self.rss.push(Working {
            rs: rs.clone(),
            original: None,
            event: None,
        });
        let index = self.rss.len() - 1;
        self.new = Some(index);
        let count = self.new_replicas(index);
        rs.spec.get_or_insert_with(Default::default).replicas = Some(count);
        set_new_replica_set_annotations(annotations, &mut rs, new_revision, false, want, surge);
        self.rss[index].rs = rs;
        if count > 0 {
            self.rss[index].event = Some(format!("Scaled up replica set {name} from 0 to {count}"));
        }
        self.set_revision(Some(new_revision.to_string()));
        if has_progress_deadline(d) {
            let cond = new_condition(
                PROGRESSING,
                "True",
                reason::NEW_RS_CREATED,
                format!("Created new replica set \"{name}\""),
                self.now,
            );
            set_condition(&mut self.status, cond);
        }
    }

    /// The Deployment's revision annotation follows the new ReplicaSet's.
    fn set_revision(&mut self, revision: Option<String>) {
        let Some(revision) = revision else {
            return;
        };
        let current = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION));
        self.revision = (current != Some(&revision)).then_some(revision);
    }

    /// Kubernetes' `NewRSNewReplicas`: how far the new ReplicaSet may grow now.
    fn new_replicas(&self, new: usize) -> i32 {
        let want = replicas(self.d);
        if !is_rolling_update(self.d) {
            return want;
        }
        let all: Vec<usize> = (0..self.rss.len()).collect();
        let current = self.sum_spec(&all);
        let max_total = want + raw_max_surge(self.d);
        if current >= max_total {
            return self.spec(new);
        }
        let up = (max_total - current).min(want - self.spec(new));
        self.spec(new) + up
    }

    // ------------------------------------------------------------------- scaling

    /// Sets a ReplicaSet's scale and replica annotations (Kubernetes' `scaleReplicaSet`).
    fn scale(&mut self, i: usize, to: i32, operation: &str) -> bool {
        let (want, surge) = (replicas(self.d), max_surge(self.d));
        let from = self.spec(i);
        let name = self.name(i);
        let w = &mut self.rss[i];
        set_replicas_annotations(&mut w.rs, want, want + surge);
        if from == to {
            return false;
        }
        w.rs.spec.get_or_insert_with(Default::default).replicas = Some(to);
        let message = format!("Scaled {operation} replica set {name} from {from} to {to}");
        w.event = Some(match w.original {
            // Created in this reconcile: its creation is the event.
            None => format!("Scaled up replica set {name} from 0 to {to}"),
            Some(_) => message,
        });
        true
    }

    /// Scales when the size differs (Kubernetes' `scaleReplicaSetAndRecordEvent`).
    fn scale_to(&mut self, i: usize, to: i32) -> bool {
        let from = self.spec(i);
        if from == to {
            return false;
        }
        let operation = if from < to { "up" } else { "down" };
        self.scale(i, to, operation)
    }

    /// Kubernetes' `isScalingEvent`: an active ReplicaSet was sized for another
    /// `replicas`.
    fn is_scaling_event(&self) -> bool {
        let want = replicas(self.d);
        let all = self.with_new(self.olds());
        self.active(&all)
            .iter()
            .filter_map(|i| int_annotation(self.rs(*i), DESIRED_REPLICAS))
            .any(|desired| desired != want)
    }

    /// Kubernetes' `sync`: scale (proportionally mid-rollout), prune history when
    /// paused, and write the status without estimating progress.
    fn sync(&mut self, paused: bool) {
        self.sync_new(false);
        self.scale_deployment();
        if paused {
            self.cleanup();
        }
        self.sync_status();
    }

    /// Kubernetes' `FindActiveOrLatest`.
    fn active_or_latest(&self) -> Option<usize> {
        let mut olds = self.olds();
        if self.new.is_none() && olds.is_empty() {
            return None;
        }
        self.sort_by_creation(&mut olds);
        olds.reverse();
        let active = self.active(&self.with_new(olds.clone()));
        match active.as_slice() {
            [] => self.new.or(olds.first().copied()),
            [one] => Some(*one),
            _ => None,
        }
    }

    fn is_saturated(&self, i: usize) -> bool {
        let want = replicas(self.d);
        self.spec(i) == want
            && int_annotation(self.rs(i), DESIRED_REPLICAS) == Some(want)
            && available_replicas(self.rs(i)) == want
    }

    /// Kubernetes' `scale`.
    fn scale_deployment(&mut self) {
        let want = replicas(self.d);
        if let Some(i) = self.active_or_latest() {
            if self.spec(i) != want {
                self.scale_to(i, want);
            }
            return;
        }
        if let Some(new) = self.new
            && self.is_saturated(new)
        {
            for old in self.active(&self.olds()) {
                self.scale_to(old, 0);
            }
            return;
        }
        if !is_rolling_update(self.d) {
            return;
        }
        let mut all = self.active(&self.with_new(self.olds()));
        let total = self.sum_spec(&all);
        let allowed = if want > 0 {
            want + max_surge(self.d)
        } else {
            0
        };
        let to_add = allowed - total;
        let created = |s: &Self, i: usize| {
            s.rs(i)
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::MAX, |t| t.0)
        };
        let operation = match to_add.signum() {
            1 => {
                // Largest first; among equals, newest first.
                all.sort_by(|a, b| {
                    self.spec(*b)
                        .cmp(&self.spec(*a))
                        .then_with(|| created(self, *b).cmp(&created(self, *a)))
                        .then_with(|| self.name(*b).cmp(&self.name(*a)))
                });
                "up"
            }
            -1 => {
                // Largest first; among equals, oldest first.
                all.sort_by(|a, b| {
                    self.spec(*b)
                        .cmp(&self.spec(*a))
                        .then_with(|| created(self, *a).cmp(&created(self, *b)))
                        .then_with(|| self.name(*a).cmp(&self.name(*b)))
                });
                "down"
            }
            _ => "",
        };
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for &i in &all {
            if to_add == 0 {
                sizes.push(self.spec(i));
                continue;
            }
            let proportion = self.proportion(i, to_add, added);
            sizes.push(self.spec(i) + proportion);
            added += proportion;
        }
        if to_add != 0
            && let Some(first) = sizes.first_mut()
        {
            // Leftovers go to the largest ReplicaSet.
            *first = (*first + to_add - added).max(0);
        }
        for (i, size) in all.into_iter().zip(sizes) {
            self.scale(i, size, operation);
        }
    }

    /// Kubernetes' `GetProportion`.
    fn proportion(&self, i: usize, to_add: i32, added: i32) -> i32 {
        if self.spec(i) == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = self.fraction(i);
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// Kubernetes' `getReplicaSetFraction`: the ReplicaSet's share of the new size, minus
    /// its current size.
    fn fraction(&self, i: usize) -> i32 {
        let want = replicas(self.d);
        let spec = self.spec(i);
        if want == 0 {
            return -spec;
        }
        let deployment_replicas = want + max_surge(self.d);
        let annotated = int_annotation(self.rs(i), MAX_REPLICAS)
            .unwrap_or_else(|| self.status.replicas.unwrap_or(0));
        if annotated == 0 {
            return 0;
        }
        let size = f64::from(spec) * f64::from(deployment_replicas) / f64::from(annotated);
        // A share of an i32 total: within range (`as` saturates anyway).
        let rounded = size.round() as i32;
        rounded - spec
    }

    // -------------------------------------------------------------------- rollouts

    /// Kubernetes' `rolloutRolling`.
    fn rolling(&mut self) {
        self.sync_new(true);
        if self.new.is_none() {
            // A name collision: the status records it, the next reconcile retries.
            self.sync_rollout_status();
            return;
        }
        if self.reconcile_new() || self.reconcile_old() {
            self.sync_rollout_status();
            return;
        }
        if complete(self.d, &self.status) {
            self.cleanup();
        }
        self.sync_rollout_status();
    }

    fn reconcile_new(&mut self) -> bool {
        let Some(new) = self.new else {
            return false;
        };
        let want = replicas(self.d);
        let spec = self.spec(new);
        if spec == want {
            return false;
        }
        if spec > want {
            return self.scale_to(new, want);
        }
        let count = self.new_replicas(new);
        self.scale_to(new, count)
    }

    fn reconcile_old(&mut self) -> bool {
        let Some(new) = self.new else {
            return false;
        };
        let mut olds = self.active(&self.olds());
        if self.sum_spec(&olds) == 0 {
            return false;
        }
        let all: Vec<usize> = (0..self.rss.len()).collect();
        let all_pods = self.sum_spec(&all);
        let min_available = replicas(self.d) - max_unavailable(self.d);
        let new_unavailable = self.spec(new) - available_replicas(self.rs(new));
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        // An old ReplicaSet reporting more available pods than it is scaled to has not
        // caught up with its last scale-down (its status counts pods it is deleting):
        // trusting it could take availability below the minimum. Kubernetes fails the
        // sync here; wait for its status instead.
        if olds
            .iter()
            .any(|i| self.spec(*i) < available_replicas(self.rs(*i)))
        {
            return false;
        }
        self.sort_by_creation(&mut olds);
        // Unhealthy old replicas first: they would block the rollout.
        let mut cleaned = 0;
        for &i in &olds {
            if cleaned >= max_scaled_down {
                break;
            }
            let (spec, available) = (self.spec(i), available_replicas(self.rs(i)));
            if spec == 0 || spec == available {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(spec - available);
            self.scale_to(i, spec - down);
            cleaned += down;
        }
        // Then healthy ones, as far as availability allows.
        let available = self.sum_available(&self.with_new(olds.clone()));
        let mut scaled = 0;
        if available > min_available {
            let budget = available - min_available;
            for &i in &olds {
                if scaled >= budget {
                    break;
                }
                let spec = self.spec(i);
                if spec == 0 {
                    continue;
                }
                let down = spec.min(budget - scaled);
                self.scale_to(i, spec - down);
                scaled += down;
            }
        }
        cleaned + scaled > 0
    }

    /// Kubernetes' `rolloutRecreate`.
    fn recreate(&mut self, selector: &LabelSelector, pods: &[PodView]) {
        let mut scaled_down = false;
        for old in self.active(&self.olds()) {
            scaled_down |= self.scale_to(old, 0);
        }
        if scaled_down || self.old_pods_running(selector, pods) {
            self.sync_rollout_status();
            return;
        }
        if self.new.is_none() {
            self.sync_new(true);
        }
        if let Some(new) = self.new {
            self.scale_to(new, replicas(self.d));
        }
        if complete(self.d, &self.status) {
            self.cleanup();
        }
        self.sync_rollout_status();
    }

    /// Whether a pod of an old ReplicaSet may still be running.
    fn old_pods_running(&self, selector: &LabelSelector, pods: &[PodView]) -> bool {
        let olds = self.olds();
        if olds
            .iter()
            .map(|i| status_replicas(self.rs(*i)))
            .sum::<i32>()
            > 0
        {
            return true;
        }
        let old_uids: Vec<&str> = olds
            .iter()
            .filter_map(|i| self.rs(*i).metadata.uid.as_deref())
            .collect();
        pods.iter().any(|p| {
            selector.matches(&p.labels)
                && p.controller()
                    .is_some_and(|c| old_uids.contains(&c.uid.as_str()))
                && p.phase != "Failed"
                && p.phase != "Succeeded"
        })
    }

    /// Kubernetes' `cleanupDeployment`: deletes the oldest revisions beyond
    /// `revisionHistoryLimit` that are scaled to zero and settled.
    fn cleanup(&mut self) {
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        if limit == i32::MAX {
            return;
        }
        let mut cleanable: Vec<usize> = self
            .olds()
            .into_iter()
            .filter(|i| self.rs(*i).metadata.deletion_timestamp.is_none())
            .collect();
        let surplus = i32::try_from(cleanable.len()).unwrap_or(i32::MAX) - limit.max(0);
        if surplus <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| {
            revision_of(self.rs(*a))
                .cmp(&revision_of(self.rs(*b)))
                .then_with(|| by_creation(self.rs(*a), self.rs(*b)))
        });
        for &i in cleanable.iter().take(usize::try_from(surplus).unwrap_or(0)) {
            let w = &self.rss[i];
            let rs = &w.rs;
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            let settled = status_replicas(rs) == 0
                && spec_replicas(rs) == 0
                && rs.metadata.generation.unwrap_or(0) <= observed
                && w.original.as_ref() == Some(rs);
            if settled {
                self.deletes.push(i);
            }
        }
    }

    // --------------------------------------------------------------------- status

    fn all_and_new(&self) -> (Vec<&ReplicaSet>, Option<&ReplicaSet>) {
        let all = self.rss.iter().map(|w| &w.rs).collect();
        (all, self.new.map(|i| self.rs(i)))
    }

    /// Kubernetes' `syncDeploymentStatus`: the counts and Available, no progress.
    fn sync_status(&mut self) {
        let (all, new) = self.all_and_new();
        let status = calculate_status(self.d, &self.status, &all, new, self.now);
        self.status = status;
    }

    /// Kubernetes' `checkPausedConditions`.
    fn check_paused_conditions(&mut self) {
        if !has_progress_deadline(self.d) {
            return;
        }
        let current = condition(&self.status, PROGRESSING).and_then(|c| c.reason.clone());
        if current.as_deref() == Some(reason::TIMED_OUT) {
            return;
        }
        let paused = self.d.spec.as_ref().and_then(|s| s.paused) == Some(true);
        let paused_recorded = current.as_deref() == Some(reason::PAUSED);
        let cond = if paused && !paused_recorded {
            (reason::PAUSED, "Deployment is paused")
        } else if !paused && paused_recorded {
            (reason::RESUMED, "Deployment is resumed")
        } else {
            return;
        };
        let cond = new_condition(PROGRESSING, "Unknown", cond.0, cond.1.into(), self.now);
        set_condition(&mut self.status, cond);
    }

    /// Kubernetes' `syncRolloutStatus`: the counts, Available, and the progress
    /// estimate.
    fn sync_rollout_status(&mut self) {
        let d = self.d;
        let now = self.now;
        let (all, new) = self.all_and_new();
        let new_name = new.and_then(|rs| rs.metadata.name.clone());
        let mut status = calculate_status(d, &self.status, &all, new, now);
        if !has_progress_deadline(d) {
            remove_condition(&mut status, PROGRESSING);
        }
        let current = condition(&self.status, PROGRESSING).cloned();
        let was_complete = status.replicas == status.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(reason::NEW_RS_AVAILABLE);
        let subject = |what: &str| match &new_name {
            Some(n) => format!("ReplicaSet \"{n}\" {what}"),
            None => format!(
                "Deployment \"{}\" {what}",
                d.metadata.name.as_deref().unwrap_or_default()
            ),
        };
        if has_progress_deadline(d) && !was_complete {
            if complete(d, &status) {
                let cond = new_condition(
                    PROGRESSING,
                    "True",
                    reason::NEW_RS_AVAILABLE,
                    subject("has successfully progressed."),
                    now,
                );
                set_condition(&mut status, cond);
            } else if st::progressing(&self.status, &status) {
                let mut cond = new_condition(
                    PROGRESSING,
                    "True",
                    reason::RS_UPDATED,
                    subject("is progressing."),
                    now,
                );
                if let Some(current) = &current {
                    if current.status == "True" {
                        cond.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut status, PROGRESSING);
                }
                set_condition(&mut status, cond);
            } else if st::timed_out(d, &status, now) {
                let cond = new_condition(
                    PROGRESSING,
                    "False",
                    reason::TIMED_OUT,
                    subject("has timed out progressing."),
                    now,
                );
                set_condition(&mut status, cond);
            }
        }
        match self.replica_failure() {
            Some(cond) => set_condition(&mut status, cond),
            None => remove_condition(&mut status, REPLICA_FAILURE),
        }
        self.status = status;
    }

    /// The ReplicaFailure condition of the new ReplicaSet, else of any other.
    fn replica_failure(&self) -> Option<k8s_openapi::api::apps::v1::DeploymentCondition> {
        let failure = |rs: &ReplicaSet| {
            rs.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == REPLICA_FAILURE))
                .map(|c| k8s_openapi::api::apps::v1::DeploymentCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_update_time: c.last_transition_time.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
        };
        self.new
            .and_then(|i| failure(self.rs(i)))
            .or_else(|| self.rss.iter().find_map(|w| failure(&w.rs)))
    }

    // ----------------------------------------------------------------------- plan

    fn into_plan(self, mut out: DeploymentPlan) -> DeploymentPlan {
        for (i, w) in self.rss.iter().enumerate() {
            match &w.original {
                None => out.create = Some((w.rs.clone(), w.event.clone())),
                Some(original) if original != &w.rs && !self.deletes.contains(&i) => {
                    let spec = w.rs.spec.as_ref();
                    out.updates.push(ReplicaSetUpdate {
                        name: w.rs.metadata.name.clone().unwrap_or_default(),
                        resource_version: w
                            .rs
                            .metadata
                            .resource_version
                            .clone()
                            .unwrap_or_default(),
                        replicas: spec_replicas(&w.rs),
                        min_ready_seconds: spec.and_then(|s| s.min_ready_seconds),
                        annotations: w.rs.metadata.annotations.clone().unwrap_or_default(),
                        event: w.event.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        out.deletes = self
            .deletes
            .iter()
            .map(|i| ReplicaSetRef {
                name: self.rss[*i].rs.metadata.name.clone().unwrap_or_default(),
                uid: self.rss[*i].rs.metadata.uid.clone().unwrap_or_default(),
            })
            .collect();
        out.revision = self.revision;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
    use serde_json::json;
    use skiff_api::template_hash::pod_template_hash;

    const NOW: &str = "2024-01-01T00:10:00Z";

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn template(image: &str) -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": image}]}})
    }

    fn hash(image: &str) -> String {
        pod_template_hash(&serde_json::from_value(template(image)).unwrap())
    }

    fn rs_name(image: &str) -> String {
        format!("web-{}", hash(image))
    }

    /// A Deployment of `image` with `replicas`; `spec` is merged over the defaults.
    fn deployment(image: &str, replicas: i32, spec: Value) -> Deployment {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": template(image), "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}
        });
        for (k, val) in spec.as_object().unwrap() {
            v["spec"][k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    /// The Deployment's ReplicaSet of `image`: `spec` replicas, `[replicas, ready,
    /// available]` in its status, `revision`, created at minute `minute`.
    fn rs(image: &str, spec: i32, counts: [i32; 3], revision: i64, minute: u32) -> ReplicaSet {
        let h = hash(image);
        let mut t = template(image);
        t["metadata"]["labels"]["pod-template-hash"] = h.clone().into();
        serde_json::from_value(json!({
            "metadata": {"name": format!("web-{h}"), "namespace": "ns", "uid": format!("uid-{h}"),
                "resourceVersion": "5", "generation": 1,
                "creationTimestamp": format!("2024-01-01T00:0{minute}:00Z"),
                "labels": {"app": "web", "pod-template-hash": h},
                "annotations": {REVISION: revision.to_string(), DESIRED_REPLICAS: "3", MAX_REPLICAS: "4"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "uid": "d-uid", "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": spec, "selector": {"matchLabels": {"app": "web", "pod-template-hash": h}},
                "template": t},
            "status": {"replicas": counts[0], "readyReplicas": counts[1],
                "availableReplicas": counts[2], "observedGeneration": 1}
        }))
        .unwrap()
    }

    fn run(d: &Deployment, rss: &[ReplicaSet]) -> DeploymentPlan {
        plan(d, rss, &[], ts(NOW)).unwrap()
    }

    /// (name, replicas) of every scale change.
    fn scales(p: &DeploymentPlan) -> Vec<(String, i32)> {
        p.updates
            .iter()
            .filter(|u| u.event.is_some())
            .map(|u| (u.name.clone(), u.replicas))
            .collect()
    }

    fn progressing(p: &DeploymentPlan) -> (String, String) {
        let c = condition(p.status.as_ref().unwrap(), PROGRESSING).unwrap();
        (c.status.clone(), c.reason.clone().unwrap())
    }

    /// Feeds a plan's writes back as if the API had made them (the controller's view on
    /// the next reconcile).
    fn applied(
        d: &Deployment,
        rss: &[ReplicaSet],
        p: &DeploymentPlan,
    ) -> (Deployment, Vec<ReplicaSet>) {
        let mut d = d.clone();
        if let Some(s) = &p.status {
            d.status = Some(s.clone());
        }
        if let Some(r) = &p.revision {
            d.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(REVISION.into(), r.clone());
        }
        let mut rss = rss.to_vec();
        for u in &p.updates {
            let rs = rss
                .iter_mut()
                .find(|r| r.metadata.name.as_deref() == Some(&u.name))
                .unwrap();
            rs.spec.as_mut().unwrap().replicas = Some(u.replicas);
            rs.spec.as_mut().unwrap().min_ready_seconds = u.min_ready_seconds;
            rs.metadata.annotations = Some(u.annotations.clone());
        }
        if let Some((created, _)) = &p.create {
            let mut c = created.clone();
            c.metadata.creation_timestamp = Some(Time(ts(NOW)));
            c.metadata.uid = Some("new-uid".into());
            rss.push(c);
        }
        rss.retain(|r| {
            !p.deletes
                .iter()
                .any(|x| Some(&x.name) == r.metadata.name.as_ref())
        });
        (d, rss)
    }

    #[test]
    fn first_rollout_creates_a_replica_set() {
        let d = deployment("v1", 3, json!({}));
        let p = run(&d, &[]);
        let (created, event) = p.create.clone().unwrap();
        let name = rs_name("v1");
        assert_eq!(created.metadata.name.as_deref(), Some(name.as_str()));
        assert_eq!(
            event.as_deref(),
            Some(format!("Scaled up replica set {name} from 0 to 3").as_str())
        );
        let spec = created.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        let h = hash("v1");
        assert_eq!(
            spec.selector.match_labels.as_ref().unwrap()["pod-template-hash"],
            h
        );
        let t = spec.template.as_ref().unwrap().metadata.as_ref().unwrap();
        assert_eq!(t.labels.as_ref().unwrap()["pod-template-hash"], h);
        assert_eq!(
            created.metadata.labels.as_ref().unwrap()["pod-template-hash"],
            h
        );
        let owner = &created.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Deployment", "d-uid", Some(true))
        );
        assert_eq!(owner.block_owner_deletion, Some(true));
        let ann = created.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            (
                ann[REVISION].as_str(),
                ann[DESIRED_REPLICAS].as_str(),
                ann[MAX_REPLICAS].as_str()
            ),
            ("1", "3", "4")
        );
        assert_eq!(p.revision.as_deref(), Some("1"));
        assert_eq!(
            progressing(&p),
            ("True".into(), reason::NEW_RS_CREATED.into())
        );
        let s = p.status.as_ref().unwrap();
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(condition(s, st::AVAILABLE).unwrap().status, "False");
        assert!(p.requeue_after.is_some(), "the deadline is watched");
    }

    #[test]
    fn a_converged_deployment_writes_nothing() {
        let d = deployment("v1", 3, json!({}));
        let rss = vec![rs("v1", 3, [3, 3, 3], 1, 1)];
        let p = run(&d, &rss);
        assert!(p.create.is_none() && p.updates.is_empty() && p.deletes.is_empty());
        assert_eq!(p.revision.as_deref(), Some("1"));
        assert_eq!(
            progressing(&p),
            ("True".into(), reason::NEW_RS_AVAILABLE.into())
        );
        let s = p.status.clone().unwrap();
        assert_eq!(
            (
                s.replicas,
                s.updated_replicas,
                s.ready_replicas,
                s.available_replicas,
                s.unavailable_replicas
            ),
            (Some(3), Some(3), Some(3), Some(3), None)
        );
        assert_eq!(p.requeue_after, None);
        let (d, rss) = applied(&d, &rss, &p);
        assert_eq!(
            run(&d, &rss),
            DeploymentPlan::default(),
            "level-triggered and idempotent"
        );
    }

    /// (case, strategy, ReplicaSets, expected create (replicas), expected scale changes)
    type RollingCase = (
        &'static str,
        Value,
        Vec<ReplicaSet>,
        Option<i32>,
        Vec<(String, i32)>,
    );

    #[test]
    fn rolling_update_steps() {
        let v1 = rs_name("v1");
        let v2 = rs_name("v2");
        let surge =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
        let unavailable =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}});
        let cases: Vec<RollingCase> = vec![
            (
                "start: surge one new pod",
                surge.clone(),
                vec![rs("v1", 3, [3, 3, 3], 1, 1)],
                Some(1),
                vec![],
            ),
            (
                "new pod available: one old goes",
                surge.clone(),
                vec![rs("v1", 3, [3, 3, 3], 1, 1), rs("v2", 1, [1, 1, 1], 2, 2)],
                None,
                vec![(v1.clone(), 2)],
            ),
            (
                "new pod not available: wait",
                surge.clone(),
                vec![rs("v1", 3, [3, 3, 3], 1, 1), rs("v2", 1, [1, 0, 0], 2, 2)],
                None,
                vec![],
            ),
            (
                "room again: the new one grows",
                surge.clone(),
                vec![rs("v1", 2, [2, 2, 2], 1, 1), rs("v2", 1, [1, 1, 1], 2, 2)],
                None,
                vec![(v2.clone(), 2)],
            ),
            (
                "maxSurge 0: an old pod goes first",
                unavailable.clone(),
                vec![rs("v1", 3, [3, 3, 3], 1, 1)],
                Some(0),
                vec![(v1.clone(), 2)],
            ),
            (
                "unhealthy old replicas go first",
                unavailable,
                vec![rs("v1", 3, [3, 1, 1], 1, 1), rs("v2", 0, [0, 0, 0], 2, 2)],
                None,
                vec![(v1.clone(), 2)],
            ),
            (
                "old status behind its scale-down: wait for it",
                surge.clone(),
                vec![rs("v1", 2, [3, 3, 3], 1, 1), rs("v2", 2, [2, 2, 2], 2, 2)],
                None,
                vec![],
            ),
            (
                "last old pod goes",
                surge,
                vec![rs("v1", 1, [1, 1, 1], 1, 1), rs("v2", 3, [3, 3, 3], 2, 2)],
                None,
                vec![(v1.clone(), 0)],
            ),
        ];
        for (case, strategy, rss, create, expected) in cases {
            let d = deployment("v2", 3, json!({"strategy": strategy}));
            let p = run(&d, &rss);
            assert_eq!(
                p.create.as_ref().map(|(c, _)| spec_replicas(c)),
                create,
                "{case}"
            );
            let mut got = scales(&p);
            got.retain(|(n, r)| !(n == &v2 && *r == 0));
            let mut expected = expected;
            expected.retain(|(n, r)| !(n == &v2 && *r == 0));
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn a_rolling_update_converges_without_dropping_availability() {
        // Simulate: the ReplicaSet controller makes every pod available at once.
        let mut d = deployment("v2", 3, json!({}));
        let mut rss = vec![rs("v1", 3, [3, 3, 3], 1, 1)];
        for _ in 0..20 {
            let p = run(&d, &rss);
            (d, rss) = applied(&d, &rss, &p);
            for r in &mut rss {
                let n = spec_replicas(r);
                let available: i32 = r
                    .status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0);
                // Pods go away at once, new ones come up on the next step.
                let s = r.status.get_or_insert_with(Default::default);
                s.replicas = n;
                s.ready_replicas = Some(n.min(available + 1));
                s.available_replicas = s.ready_replicas;
            }
            let total_available: i32 = rss.iter().map(available_replicas).sum();
            assert!(
                total_available >= 3,
                "maxUnavailable 0 keeps 3 available: {total_available}"
            );
        }
        let p = run(&d, &rss);
        let s = p.status.clone().or(d.status.clone()).unwrap();
        assert!(complete(&d, &s), "{s:?}");
        assert_eq!(
            condition(&s, PROGRESSING).unwrap().reason.as_deref(),
            Some(reason::NEW_RS_AVAILABLE)
        );
        let v1 = rss
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(rs_name("v1").as_str()))
            .unwrap();
        assert_eq!(spec_replicas(v1), 0);
        assert_eq!(d.metadata.annotations.as_ref().unwrap()[REVISION], "2");
    }

    #[test]
    fn rollback_reuses_the_old_replica_set() {
        let d = deployment("v1", 3, json!({}));
        let rss = vec![rs("v1", 0, [0, 0, 0], 1, 1), rs("v2", 3, [3, 3, 3], 2, 2)];
        let p = run(&d, &rss);
        assert!(p.create.is_none());
        assert_eq!(p.revision.as_deref(), Some("3"));
        let v1 = p.updates.iter().find(|u| u.name == rs_name("v1")).unwrap();
        assert_eq!(v1.annotations[REVISION], "3");
        assert_eq!(v1.annotations[revision::REVISION_HISTORY], "1");
        assert_eq!(v1.replicas, 1, "surges like any rollout");
    }

    #[test]
    fn recreate() {
        let strategy = json!({"strategy": {"type": "Recreate"}});
        let d = deployment("v2", 3, strategy.clone());
        // Old pods running: scale the old ReplicaSet down, create nothing.
        let p = run(&d, &[rs("v1", 3, [3, 3, 3], 1, 1)]);
        assert_eq!(scales(&p), vec![(rs_name("v1"), 0)]);
        assert!(p.create.is_none());
        // Scaled down, but its pods are still there.
        let p = run(&d, &[rs("v1", 0, [2, 0, 0], 1, 1)]);
        assert!(p.create.is_none() && p.updates.is_empty());
        // Status says none, yet a terminating pod of the old ReplicaSet is still there.
        let mut pod = crate::replicaset::pods::PodView {
            name: "web-old".into(),
            phase: "Running".into(),
            deleting: true,
            ..Default::default()
        };
        pod.labels.insert("app".into(), "web".into());
        pod.owner_references = vec![OwnerReference {
            uid: format!("uid-{}", hash("v1")),
            controller: Some(true),
            ..Default::default()
        }];
        let p = plan(
            &d,
            &[rs("v1", 0, [0, 0, 0], 1, 1)],
            std::slice::from_ref(&pod),
            ts(NOW),
        )
        .unwrap();
        assert!(p.create.is_none());
        // A finished one does not hold the rollout.
        pod.phase = "Succeeded".into();
        let p = plan(&d, &[rs("v1", 0, [0, 0, 0], 1, 1)], &[pod], ts(NOW)).unwrap();
        let (created, event) = p.create.unwrap();
        assert_eq!(spec_replicas(&created), 3);
        assert!(event.unwrap().ends_with("from 0 to 3"));
        assert_eq!(p.revision.as_deref(), Some("2"));
    }

    #[test]
    fn paused_deployments_scale_but_do_not_roll() {
        let d = deployment("v2", 5, json!({"paused": true}));
        let p = run(&d, &[rs("v1", 3, [3, 3, 3], 1, 1)]);
        assert!(p.create.is_none(), "no rollout while paused");
        assert_eq!(scales(&p), vec![(rs_name("v1"), 5)]);
        assert_eq!(progressing(&p), ("Unknown".into(), reason::PAUSED.into()));
        // Resumed: recorded, then the rollout goes on.
        let mut rss = vec![rs("v1", 5, [5, 5, 5], 1, 1)];
        let a = rss[0].metadata.annotations.as_mut().unwrap();
        a.insert(DESIRED_REPLICAS.into(), "5".into());
        a.insert(MAX_REPLICAS.into(), "7".into());
        let p = run(&d, &rss);
        assert!(p.create.is_none() && p.updates.is_empty());
        let (mut d, rss) = applied(&d, &rss, &p);
        d.spec.as_mut().unwrap().paused = None;
        let p = run(&d, &rss);
        assert!(p.create.is_some());
        assert_eq!(
            progressing(&p),
            ("True".into(), reason::NEW_RS_CREATED.into())
        );
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        let d = deployment(
            "v2",
            6,
            json!({"strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}}}),
        );
        let rss = vec![rs("v1", 3, [3, 3, 3], 1, 1), rs("v2", 1, [1, 0, 0], 2, 2)];
        let p = run(&d, &rss);
        // 4 running, room for 8: each grows by its share (max-replicas was 4).
        assert_eq!(scales(&p), vec![(rs_name("v1"), 6), (rs_name("v2"), 2)]);
        for u in &p.updates {
            assert_eq!(
                (
                    u.annotations[DESIRED_REPLICAS].as_str(),
                    u.annotations[MAX_REPLICAS].as_str()
                ),
                ("6", "8")
            );
        }
        // Scaling down to 2 (room for 4 with maxSurge 2): the larger, older one shrinks first.
        let d = deployment(
            "v2",
            2,
            json!({"strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}}}),
        );
        let rss = vec![rs("v1", 6, [6, 6, 6], 1, 1), rs("v2", 2, [2, 0, 0], 2, 2)];
        let mut rss = rss;
        for r in &mut rss {
            let a = r.metadata.annotations.as_mut().unwrap();
            a.insert(DESIRED_REPLICAS.into(), "6".into());
            a.insert(MAX_REPLICAS.into(), "8".into());
        }
        let p = run(&d, &rss);
        assert_eq!(scales(&p), vec![(rs_name("v1"), 3), (rs_name("v2"), 1)]);
    }

    #[test]
    fn progress_deadline() {
        let d = deployment("v2", 3, json!({"progressDeadlineSeconds": 2}));
        let rss = vec![rs("v1", 3, [3, 3, 3], 1, 1), rs("v2", 1, [1, 0, 0], 2, 2)];
        let mut d = d;
        let mut status = DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(4),
            updated_replicas: Some(1),
            ready_replicas: Some(3),
            available_replicas: Some(3),
            unavailable_replicas: Some(1),
            ..Default::default()
        };
        set_condition(
            &mut status,
            new_condition(
                PROGRESSING,
                "True",
                reason::RS_UPDATED,
                String::new(),
                ts("2024-01-01T00:09:59Z"),
            ),
        );
        d.status = Some(status);
        // One second in: wait until the deadline has passed.
        let p = plan(&d, &rss, &[], ts("2024-01-01T00:10:00Z")).unwrap();
        assert!(p.updates.is_empty() && p.create.is_none());
        assert_eq!(p.requeue_after, Some(Duration::from_secs(2)));
        // Past it: Progressing=False, and nothing more to wait for.
        let p = plan(&d, &rss, &[], ts("2024-01-01T00:10:02Z")).unwrap();
        assert_eq!(progressing(&p), ("False".into(), reason::TIMED_OUT.into()));
        let c = condition(p.status.as_ref().unwrap(), PROGRESSING).unwrap();
        assert_eq!(
            c.message.as_deref(),
            Some(
                format!(
                    "ReplicaSet \"{}\" has timed out progressing.",
                    rs_name("v2")
                )
                .as_str()
            )
        );
        assert_eq!(p.requeue_after, None);
        // The old pods stay.
        assert!(p.updates.is_empty());
        // Progress again (a new pod became ready) lifts it.
        let (d, mut rss) = applied(&d, &rss, &p);
        rss[1].status.as_mut().unwrap().ready_replicas = Some(1);
        rss[1].status.as_mut().unwrap().available_replicas = Some(1);
        let p = plan(&d, &rss, &[], ts("2024-01-01T00:10:03Z")).unwrap();
        assert_eq!(progressing(&p), ("True".into(), reason::RS_UPDATED.into()));
    }

    #[test]
    fn revision_history_is_pruned() {
        let d = deployment("v4", 3, json!({"revisionHistoryLimit": 1}));
        let mut rss = vec![
            rs("v1", 0, [0, 0, 0], 1, 1),
            rs("v2", 0, [0, 0, 0], 2, 2),
            rs("v3", 0, [0, 0, 0], 3, 3),
            rs("v4", 3, [3, 3, 3], 4, 4),
        ];
        // Complete: status says so.
        let p = run(&d, &rss);
        let (d, _) = applied(&d, &rss, &p);
        let p = run(&d, &rss);
        let deleted: Vec<&str> = p.deletes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            deleted,
            vec![rs_name("v1").as_str(), rs_name("v2").as_str()]
        );
        // A ReplicaSet whose status is behind its spec is kept (and only the oldest
        // revisions beyond the limit are candidates).
        rss[0].metadata.generation = Some(2);
        let p = run(&d, &rss);
        let deleted: Vec<&str> = p.deletes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(deleted, vec![rs_name("v2").as_str()]);
    }

    #[test]
    fn claims_replica_sets() {
        let d = deployment("v1", 3, json!({}));
        let mut orphan = rs("v1", 3, [3, 3, 3], 1, 1);
        orphan.metadata.owner_references = None;
        let mut stray = rs("v0", 0, [0, 0, 0], 1, 0);
        stray.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
        let p = run(&d, &[orphan, stray]);
        assert_eq!(p.adopt.len(), 1);
        assert_eq!(p.adopt[0].owner_references[0].uid, "d-uid");
        assert_eq!(p.release.len(), 1);
        assert_eq!(p.release[0].name, rs_name("v0"));
        assert!(p.create.is_none(), "the adopted ReplicaSet is the new one");
    }

    #[test]
    fn name_collisions_bump_the_count() {
        let d = deployment("v1", 3, json!({}));
        let mut squatter = rs("v1", 1, [1, 1, 1], 0, 1);
        squatter.metadata.owner_references = None;
        squatter.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
        let p = run(&d, &[squatter.clone()]);
        assert!(p.create.is_none());
        assert_eq!(p.status.as_ref().unwrap().collision_count, Some(1));
        // With the count, another name.
        let (d, _) = applied(&d, &[], &p);
        let p = run(&d, &[squatter]);
        let (created, _) = p.create.unwrap();
        assert_ne!(
            created.metadata.name.as_deref(),
            Some(rs_name("v1").as_str())
        );
    }

    #[test]
    fn selecting_everything_is_refused() {
        let mut d = deployment("v1", 3, json!({"selector": {}}));
        d.metadata.generation = Some(4);
        let p = run(&d, &[rs("v1", 3, [3, 3, 3], 1, 1)]);
        assert_eq!(p.events[0].reason, "SelectingAll");
        assert_eq!(p.status.unwrap().observed_generation, Some(4));
        assert!(p.updates.is_empty() && p.create.is_none());
    }

    #[test]
    fn replica_failures_surface() {
        let d = deployment("v1", 3, json!({}));
        let mut r = rs("v1", 3, [1, 1, 1], 1, 1);
        r.status.as_mut().unwrap().conditions =
            Some(vec![k8s_openapi::api::apps::v1::ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some("FailedCreate".into()),
                message: Some("quota".into()),
                last_transition_time: Some(Time(ts(NOW))),
            }]);
        let p = run(&d, &[r]);
        let c = condition(p.status.as_ref().unwrap(), REPLICA_FAILURE).unwrap();
        assert_eq!(c.reason.as_deref(), Some("FailedCreate"));
    }
}
