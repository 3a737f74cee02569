//! The Job controller: runs pods of a batch/v1 Job until enough of them succeed, or the
//! Job fails (backoffLimit, activeDeadlineSeconds), then cleans up after
//! ttlSecondsAfterFinished.
//!
//! ```text
//!            ┌───────────── suspend ──────────────┐
//!            ▼                                    │
//!  running ──┬── succeeded ≥ completions ─▶ SuccessCriteriaMet ──(no pods left)──▶ Complete
//!            ├── failed (+restarts) > backoffLimit ─┐
//!            └── active longer than deadline ───────┴▶ FailureTarget ──(no pods left)──▶ Failed
//!  Complete / Failed ── ttlSecondsAfterFinished ──▶ the Job is deleted (Background)
//! ```
//!
//! As in Kubernetes 1.33, the interim conditions (`SuccessCriteriaMet`, `FailureTarget`)
//! are set at once, the terminal ones only when no pod of the Job is still running or
//! terminating.
//!
//! **Counting finished pods.** Kubernetes tracks finished pods with the
//! `batch.kubernetes.io/job-tracking` finalizer so that a pod deleted before it was
//! counted is not lost. Skiff counts pods instead: the Job controller never deletes a
//! finished pod (they go with the Job, through the garbage collector), and
//! `status.succeeded`/`status.failed` never decrease, so a finished pod deleted by hand
//! after it was counted stays counted. The price: a pod deleted while it was still running
//! is not counted as a failure.
//!
//! Failed pods are replaced after Kubernetes' pod failure back-off: `base · 2^(n-1)` after
//! the last failure (n = failures since the last success), at most `max`.
//!
//! Only `completionMode: NonIndexed` is implemented; an Indexed Job runs as NonIndexed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Map, Value, json};
use skiff_api::registry;
use skiff_client::{DeleteParams, Informer, ObjectKey, PropagationPolicy};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::driver::{Controller, Reconciler, Requeue};
use crate::error::{Error, Result};

/// The label naming a Job's pods (and its legacy twin).
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
/// The label carrying the Job's uid on its pods (and its legacy twin).
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";

/// Job controller settings.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// The first delay before a failed pod is replaced (Kubernetes: 10 s).
    pub pod_failure_backoff: Duration,
    /// The longest such delay (Kubernetes: 10 min).
    pub pod_failure_backoff_max: Duration,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            pod_failure_backoff: Duration::from_secs(10),
            pod_failure_backoff_max: Duration::from_secs(600),
        }
    }
}

/// Runs the Job controller until `cancel`.
pub async fn run(ctx: Context, cancel: CancellationToken) {
    run_with(ctx, JobConfig::default(), cancel).await
}

/// [`run`] with other settings (tests use a short failure back-off).
pub async fn run_with(ctx: Context, config: JobConfig, cancel: CancellationToken) {
    let jobs = ctx.informers.jobs.clone();
    let pods = ctx.informers.pods.clone();
    let reconciler = Arc::new(JobReconciler {
        ctx,
        config,
        expectations: Expectations::default(),
    });
    Controller::new(reconciler, jobs)
        .owns(pods, "Job")
        .concurrency(4)
        .run(cancel)
        .await
}

// ------------------------------------------------------------------------------ plan

/// Where a pod of a Job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobPodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// What the plan needs to know about one pod of the Job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobPod {
    pub name: String,
    pub uid: String,
    pub phase: JobPodPhase,
    /// Has a deletionTimestamp.
    pub deleting: bool,
    /// Condition Ready=True.
    pub ready: bool,
    /// Bound to a node.
    pub bound: bool,
    pub created: Option<Timestamp>,
    /// When it finished (Succeeded/Failed).
    pub finished: Option<Timestamp>,
    /// Container restarts (they count against backoffLimit with restartPolicy OnFailure).
    pub restarts: i32,
}

impl JobPod {
    pub fn from_pod(pod: &Pod) -> JobPod {
        let status = pod.status.as_ref();
        let phase = match status.and_then(|s| s.phase.as_deref()) {
            Some("Running") => JobPodPhase::Running,
            Some("Succeeded") => JobPodPhase::Succeeded,
            Some("Failed") => JobPodPhase::Failed,
            _ => JobPodPhase::Pending,
        };
        let container_statuses = || {
            status
                .into_iter()
                .flat_map(|s| {
                    s.container_statuses
                        .iter()
                        .flatten()
                        .chain(s.init_container_statuses.iter().flatten())
                })
                .collect::<Vec<_>>()
        };
        let restarts = container_statuses().iter().map(|c| c.restart_count).sum();
        let finished = matches!(phase, JobPodPhase::Succeeded | JobPodPhase::Failed).then(|| {
            container_statuses()
                .iter()
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
                .map(|t| t.0)
                .max()
                .or_else(|| {
                    status?
                        .conditions
                        .iter()
                        .flatten()
                        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
                        .max()
                })
                .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
        });
        JobPod {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            phase,
            deleting: pod.metadata.deletion_timestamp.is_some(),
            ready: pod_ready(pod),
            bound: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty()),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            finished: finished.flatten(),
            restarts,
        }
    }

    fn active(&self) -> bool {
        matches!(self.phase, JobPodPhase::Pending | JobPodPhase::Running)
    }
}

/// A pod to delete, with the uid the delete is conditional on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub name: String,
    pub uid: String,
}

/// An Event the apply records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
}

/// What one reconcile of a Job does.
#[derive(Clone, Debug, PartialEq)]
pub struct JobPlan {
    /// Pods to create.
    pub create: usize,
    /// Active pods to delete.
    pub delete: Vec<PodRef>,
    /// The status to write (written when it differs from the current one).
    pub status: JobStatus,
    /// ttlSecondsAfterFinished has passed: delete the Job.
    pub delete_job: bool,
    /// Look again after this long (a deadline, a back-off, a TTL).
    pub requeue: Option<Duration>,
    pub events: Vec<PlannedEvent>,
}

/// The inputs of [`plan`].
#[derive(Clone, Debug)]
pub struct JobObserved<'a> {
    pub job: &'a Job,
    /// The Job's pods (controller ownerReference).
    pub pods: &'a [JobPod],
    pub now: Timestamp,
    /// False while earlier creates/deletes are not yet in the cache: no new ones.
    pub may_manage_pods: bool,
    pub config: &'a JobConfig,
}

const COND_COMPLETE: &str = "Complete";
const COND_FAILED: &str = "Failed";
const COND_SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
const COND_FAILURE_TARGET: &str = "FailureTarget";
const COND_SUSPENDED: &str = "Suspended";

/// Decides what to do with a Job: pure.
pub fn plan(o: &JobObserved<'_>) -> JobPlan {
    let job = o.job;
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let now = o.now;
    let mut plan = JobPlan {
        create: 0,
        delete: Vec::new(),
        status: JobStatus::default(),
        delete_job: false,
        requeue: None,
        events: Vec::new(),
    };

    let active: Vec<&JobPod> = o
        .pods
        .iter()
        .filter(|p| p.active() && !p.deleting)
        .collect();
    let terminating = o.pods.iter().filter(|p| p.active() && p.deleting).count();
    let count = |phase| o.pods.iter().filter(|p| p.phase == phase).count() as i32;
    let succeeded = old
        .succeeded
        .unwrap_or(0)
        .max(count(JobPodPhase::Succeeded));
    let failed = old.failed.unwrap_or(0).max(count(JobPodPhase::Failed));
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    let delete_all_active = |plan: &mut JobPlan| {
        plan.delete = active
            .iter()
            .map(|p| PodRef {
                name: p.name.clone(),
                uid: p.uid.clone(),
            })
            .collect();
    };

    // Finished: only stragglers to delete and the TTL to wait for.
    if let Some(finished_at) = finished_at(&conditions) {
        if o.may_manage_pods {
            delete_all_active(&mut plan);
        }
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            let expires = add_secs(finished_at, i64::from(ttl));
            match until(now, expires) {
                None => plan.delete_job = true,
                Some(left) => plan.requeue = Some(left),
            }
        }
        finish_status(&mut status, conditions, &active, &plan, terminating);
        plan.status = status;
        return plan;
    }

    let suspended = spec.suspend.unwrap_or(false);
    let mut start_time = old.start_time.as_ref().map(|t| t.0);
    if !suspended && start_time.is_none() {
        start_time = Some(now);
    }

    // Failure: FailureTarget now, Failed once nothing runs any more.
    let failure = condition_true(&conditions, COND_FAILURE_TARGET)
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
        .or_else(|| {
            let restarts: i32 = if template_restart_policy(job) == Some("OnFailure") {
                active.iter().map(|p| p.restarts).sum()
            } else {
                0
            };
            let backoff_limit = spec.backoff_limit.unwrap_or(6);
            if failed.saturating_add(restarts) > backoff_limit {
                return Some((
                    "BackoffLimitExceeded".to_string(),
                    "Job has reached the specified backoff limit".to_string(),
                ));
            }
            let deadline = spec.active_deadline_seconds.zip(start_time);
            if let Some((seconds, start)) = deadline.filter(|_| !suspended)
                && until(now, add_secs(start, seconds)).is_none()
            {
                return Some((
                    "DeadlineExceeded".to_string(),
                    "Job was active longer than specified deadline".to_string(),
                ));
            }
            None
        });
    if let Some((reason, message)) = failure {
        set_condition(
            &mut conditions,
            COND_FAILURE_TARGET,
            "True",
            &reason,
            &message,
            now,
        );
        delete_all_active(&mut plan);
        if active.is_empty() && terminating == 0 {
            set_condition(&mut conditions, COND_FAILED, "True", &reason, &message, now);
            plan.events.push(PlannedEvent {
                type_: "Warning",
                reason: static_reason(&reason),
                message,
            });
        }
        status.start_time = start_time.map(Time);
        finish_status(&mut status, conditions, &active, &plan, terminating);
        plan.status = status;
        return plan;
    }

    // Success: SuccessCriteriaMet now, Complete once nothing runs any more.
    let done = match spec.completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active.is_empty(),
    };
    if done || condition_true(&conditions, COND_SUCCESS_CRITERIA_MET).is_some() {
        let (reason, message) = (
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        );
        set_condition(
            &mut conditions,
            COND_SUCCESS_CRITERIA_MET,
            "True",
            reason,
            message,
            now,
        );
        delete_all_active(&mut plan);
        if active.is_empty() && terminating == 0 {
            set_condition(&mut conditions, COND_COMPLETE, "True", reason, message, now);
            status.completion_time = Some(Time(now));
            plan.events.push(PlannedEvent {
                type_: "Normal",
                reason: "Completed",
                message: "Job completed".to_string(),
            });
        }
        status.start_time = start_time.map(Time);
        finish_status(&mut status, conditions, &active, &plan, terminating);
        plan.status = status;
        return plan;
    }

    if suspended {
        if condition_true(&conditions, COND_SUSPENDED).is_none() {
            plan.events.push(PlannedEvent {
                type_: "Normal",
                reason: "Suspended",
                message: "Job suspended".to_string(),
            });
        }
        set_condition(
            &mut conditions,
            COND_SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        );
        if o.may_manage_pods {
            delete_all_active(&mut plan);
        }
        status.start_time = start_time.map(Time);
        finish_status(&mut status, conditions, &active, &plan, terminating);
        plan.status = status;
        return plan;
    }
    if condition_true(&conditions, COND_SUSPENDED).is_some() {
        // Resumed: the deadline counts from now, as in Kubernetes.
        set_condition(
            &mut conditions,
            COND_SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now,
        );
        start_time = Some(now);
        plan.events.push(PlannedEvent {
            type_: "Normal",
            reason: "Resumed",
            message: "Job resumed".to_string(),
        });
    }
    status.start_time = start_time.map(Time);

    // Scale the active pods.
    let parallelism = spec.parallelism.unwrap_or(1).max(0) as usize;
    let want = match spec.completions {
        Some(c) => parallelism.min(c.saturating_sub(succeeded).max(0) as usize),
        // Once one pod succeeded, the others may finish but none is started.
        None if succeeded > 0 => active.len(),
        None => parallelism,
    };
    if o.may_manage_pods {
        if active.len() > want {
            let mut ranked = active.clone();
            ranked.sort_by_key(|p| deletion_rank(p));
            plan.delete = ranked
                .iter()
                .take(active.len() - want)
                .map(|p| PodRef {
                    name: p.name.clone(),
                    uid: p.uid.clone(),
                })
                .collect();
        } else if active.len() < want {
            match failure_backoff_left(o.pods, now, o.config) {
                Some(left) => plan.requeue = Some(left),
                None => plan.create = want - active.len(),
            }
        }
    }

    if let (Some(seconds), Some(start)) = (spec.active_deadline_seconds, start_time)
        && let Some(left) = until(now, add_secs(start, seconds))
    {
        plan.requeue = Some(plan.requeue.map_or(left, |r| r.min(left)));
    }
    finish_status(&mut status, conditions, &active, &plan, terminating);
    plan.status = status;
    plan
}

/// Fills the pod counts of the status after the plan's creates and deletes.
fn finish_status(
    status: &mut JobStatus,
    conditions: Vec<JobCondition>,
    active: &[&JobPod],
    plan: &JobPlan,
    terminating: usize,
) {
    let kept: Vec<&&JobPod> = active
        .iter()
        .filter(|p| !plan.delete.iter().any(|d| d.uid == p.uid))
        .collect();
    status.active = Some((kept.len() + plan.create) as i32);
    status.ready = Some(kept.iter().filter(|p| p.ready).count() as i32);
    status.terminating = Some((terminating + plan.delete.len()) as i32);
    status.conditions = (!conditions.is_empty()).then_some(conditions);
}

/// Which active pods go first when there are too many: unbound, pending, not ready,
/// newest — the pods that lose the least work.
fn deletion_rank(p: &JobPod) -> (bool, bool, bool, std::cmp::Reverse<Option<Timestamp>>) {
    (
        p.bound,
        p.phase == JobPodPhase::Running,
        p.ready,
        std::cmp::Reverse(p.created),
    )
}

/// How long new pods must still wait after the last failures (none when no failure
/// happened since the last success, or the back-off has passed).
fn failure_backoff_left(pods: &[JobPod], now: Timestamp, config: &JobConfig) -> Option<Duration> {
    let last_success = pods
        .iter()
        .filter(|p| p.phase == JobPodPhase::Succeeded)
        .filter_map(|p| p.finished)
        .max();
    let failures: Vec<Timestamp> = pods
        .iter()
        .filter(|p| p.phase == JobPodPhase::Failed)
        .filter_map(|p| p.finished)
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last_failure = failures.iter().max()?;
    let exponent = (failures.len() as u32).saturating_sub(1).min(30);
    let delay = config
        .pod_failure_backoff
        .checked_mul(1u32 << exponent)
        .unwrap_or(config.pod_failure_backoff_max)
        .min(config.pod_failure_backoff_max);
    let delay = SignedDuration::try_from(delay).unwrap_or(SignedDuration::MAX);
    until(now, last_failure.saturating_add(delay).ok()?)
}

fn template_restart_policy(job: &Job) -> Option<&str> {
    job.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .restart_policy
        .as_deref()
}

/// When the Job finished (Complete or Failed true), if it did.
fn finished_at(conditions: &[JobCondition]) -> Option<Timestamp> {
    [COND_COMPLETE, COND_FAILED].iter().find_map(|t| {
        condition_true(conditions, t).map(|c| {
            c.last_transition_time
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
        })
    })
}

fn condition_true<'c>(conditions: &'c [JobCondition], type_: &str) -> Option<&'c JobCondition> {
    conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Sets a condition; its times change only when something about it changes.
fn set_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.status = status.to_string();
                c.last_transition_time = Some(Time(now));
                c.last_probe_time = Some(Time(now));
            }
            if c.reason.as_deref() != Some(reason) || c.message.as_deref() != Some(message) {
                c.reason = Some(reason.to_string());
                c.message = Some(message.to_string());
                c.last_probe_time = Some(Time(now));
            }
        }
        None => conditions.push(JobCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            last_probe_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
        }),
    }
}

fn static_reason(reason: &str) -> &'static str {
    match reason {
        "BackoffLimitExceeded" => "BackoffLimitExceeded",
        "DeadlineExceeded" => "DeadlineExceeded",
        _ => "JobFailed",
    }
}

fn add_secs(t: Timestamp, seconds: i64) -> Timestamp {
    t.saturating_add(SignedDuration::from_secs(seconds))
        .unwrap_or(Timestamp::MAX)
}

/// How long from `now` until `at`; `None` once it has come.
fn until(now: Timestamp, at: Timestamp) -> Option<Duration> {
    let left = at.duration_since(now);
    (left.is_positive()).then(|| left.unsigned_abs())
}

/// Condition Ready=True.
pub(crate) fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

// ------------------------------------------------------------------------------ apply

struct JobReconciler {
    ctx: Context,
    config: JobConfig,
    expectations: Expectations,
}

#[async_trait::async_trait]
impl Reconciler for JobReconciler {
    fn name(&self) -> &'static str {
        "job"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue> {
        let Some(raw) = self.ctx.informers.jobs.get(key) else {
            self.expectations.forget(key);
            return Ok(Requeue::Done);
        };
        let job: Job = decode(&raw, key)?;
        // Being deleted: the garbage collector takes the pods.
        if job.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::Done);
        }
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let namespace = key.namespace_str();
        let pods: Vec<JobPod> = self
            .ctx
            .informers
            .pods
            .list_namespace(namespace)
            .iter()
            .filter(|p| crate::daemonset::controlled_by(p, &uid))
            .filter_map(|p| serde_json::from_value::<Pod>((**p).clone()).ok())
            .map(|p| JobPod::from_pod(&p))
            .collect();
        let pending = self.expectations.pending(key, &self.ctx.informers.pods);
        let plan = plan(&JobObserved {
            job: &job,
            pods: &pods,
            now: Timestamp::now(),
            may_manage_pods: pending.is_none(),
            config: &self.config,
        });

        let created = self.create_pods(&raw, &job, plan.create).await;
        let deleted = self.delete_pods(namespace, &plan.delete).await;
        self.expectations.expect(
            key,
            created.iter().map(|(name, _)| name.clone()).collect(),
            deleted.clone(),
        );
        for (name, result) in &created {
            let message = match result {
                Ok(()) => format!("Created pod: {name}"),
                Err(e) => format!("Error creating: {e}"),
            };
            let (type_, reason) = if result.is_ok() {
                ("Normal", "SuccessfulCreate")
            } else {
                ("Warning", "FailedCreate")
            };
            self.ctx.events.record(&raw, type_, reason, &message).await;
        }
        for d in &deleted {
            self.ctx
                .events
                .record(
                    &raw,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted pod: {}", d.name),
                )
                .await;
        }

        if Some(&plan.status) != job.status.as_ref() {
            let mut updated = (*raw).clone();
            updated["status"] = serde_json::to_value(&plan.status)
                .map_err(|e| Error::json(format!("job {key} status"), e))?;
            self.ctx
                .client
                .replace_status(&registry::JOB, Some(namespace), &key.name, &updated)
                .await?;
        }
        for e in &plan.events {
            self.ctx
                .events
                .record(&raw, e.type_, e.reason, &e.message)
                .await;
        }
        if plan.delete_job {
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                precondition_uid: Some(uid),
                ..Default::default()
            };
            match self
                .ctx
                .client
                .delete(&registry::JOB, Some(namespace), &key.name, &params)
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(Requeue::Done);
        }
        if let Some((name, Err(e))) = created.into_iter().find(|(_, r)| r.is_err()) {
            return Err(Error::invalid(key, format!("creating pod {name}: {e}")));
        }
        let requeue = match (plan.requeue, pending) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(requeue.map_or(Requeue::Done, Requeue::After))
    }
}

impl JobReconciler {
    /// Creates `n` pods concurrently; the names of those created (or the error).
    async fn create_pods(
        &self,
        raw: &Value,
        job: &Job,
        n: usize,
    ) -> Vec<(String, std::result::Result<(), skiff_client::Error>)> {
        if n == 0 {
            return Vec::new();
        }
        let pod = job_pod(raw, job);
        let namespace = job.metadata.namespace.as_deref();
        let creates = (0..n).map(|_| self.ctx.client.create(&registry::POD, namespace, &pod));
        futures::future::join_all(creates)
            .await
            .into_iter()
            .map(|r| match r {
                Ok(created) => (
                    created
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    Ok(()),
                ),
                Err(e) => (String::new(), Err(e)),
            })
            .collect()
    }

    /// Deletes pods (each only if it still has its uid); the ones deleted.
    async fn delete_pods(&self, namespace: &str, pods: &[PodRef]) -> Vec<PodRef> {
        delete_pods(&self.ctx, namespace, pods).await
    }
}

/// Deletes pods concurrently, each only if it still has its uid; the ones deleted (or
/// already gone). Failures are logged: the next reconcile tries again.
pub(crate) async fn delete_pods(ctx: &Context, namespace: &str, pods: &[PodRef]) -> Vec<PodRef> {
    let deletes = pods.iter().map(|p| async move {
        let params = DeleteParams {
            precondition_uid: Some(p.uid.clone()),
            ..Default::default()
        };
        match ctx
            .client
            .delete(&registry::POD, Some(namespace), &p.name, &params)
            .await
        {
            Ok(_) => Some(p.clone()),
            Err(e) if e.is_not_found() => Some(p.clone()),
            Err(e) => {
                tracing::debug!(pod = %p.name, error = %e, "could not delete a pod");
                None
            }
        }
    });
    futures::future::join_all(deletes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// A new pod of the Job, from its template.
fn job_pod(raw: &Value, job: &Job) -> Value {
    let name = job.metadata.name.as_deref().unwrap_or_default();
    let uid = job.metadata.uid.as_deref().unwrap_or_default();
    let owner = TemplateOwner {
        api_version: "batch/v1",
        kind: "Job",
        name,
        uid,
    };
    pod_from_raw_template(
        raw,
        &owner,
        &[
            (JOB_NAME_LABEL, name),
            (LEGACY_JOB_NAME_LABEL, name),
            (CONTROLLER_UID_LABEL, uid),
            (LEGACY_CONTROLLER_UID_LABEL, uid),
        ],
    )
}

/// The controller whose pod template makes a pod.
pub(crate) struct TemplateOwner<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

/// A new pod from the stored object's `spec.template` (raw, so that fields the typed
/// model drops survive): the template's metadata without identity fields, plus
/// `labels`, `generateName: <owner>-`, and the owner as controlling owner.
pub(crate) fn pod_from_raw_template(
    raw: &Value,
    owner: &TemplateOwner<'_>,
    labels: &[(&str, &str)],
) -> Value {
    let template = raw.pointer("/spec/template").cloned().unwrap_or_default();
    let mut meta = template
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        meta.remove(k);
    }
    let existing = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(existing) = existing.as_object_mut() {
        for (k, v) in labels {
            existing.insert((*k).into(), (*v).into());
        }
    }
    meta.insert("generateName".into(), format!("{}-", owner.name).into());
    meta.insert(
        "ownerReferences".into(),
        json!([{
            "apiVersion": owner.api_version,
            "kind": owner.kind,
            "name": owner.name,
            "uid": owner.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }]),
    );
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(raw: &Value, key: &ObjectKey) -> Result<T> {
    serde_json::from_value(raw.clone()).map_err(|e| Error::json(format!("decoding {key}"), e))
}

// ------------------------------------------------------------------------ expectations

/// How long creates/deletes a controller made may take to show in the cache before it
/// stops waiting for them (a pod created and deleted before the cache saw it).
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(30);

/// What a controller wrote and its informer has not shown yet: until it has, the
/// controller must not count pods again (it would create them twice). Kubernetes'
/// `ControllerExpectations`, keyed by pod name.
#[derive(Debug, Default)]
pub(crate) struct Expectations {
    inner: Mutex<HashMap<ObjectKey, Expected>>,
}

#[derive(Debug)]
struct Expected {
    /// Names of pods created.
    creates: Vec<String>,
    /// Pods deleted (name and uid).
    deletes: Vec<PodRef>,
    since: tokio::time::Instant,
}

impl Expectations {
    /// Records writes just made for `key` (in the owner's namespace).
    pub(crate) fn expect(&self, key: &ObjectKey, creates: Vec<String>, deletes: Vec<PodRef>) {
        let creates: Vec<String> = creates.into_iter().filter(|n| !n.is_empty()).collect();
        if creates.is_empty() && deletes.is_empty() {
            return;
        }
        let mut map = self.lock();
        let entry = map.entry(key.clone()).or_insert_with(|| Expected {
            creates: Vec::new(),
            deletes: Vec::new(),
            since: tokio::time::Instant::now(),
        });
        entry.creates.extend(creates);
        entry.deletes.extend(deletes);
        entry.since = tokio::time::Instant::now();
    }

    /// `None` when the cache shows every expected write (or they timed out); else how long
    /// until they time out.
    pub(crate) fn pending(&self, key: &ObjectKey, pods: &Informer) -> Option<Duration> {
        let mut map = self.lock();
        let entry = map.get_mut(key)?;
        let ns = key.namespace.as_deref();
        entry
            .creates
            .retain(|name| pods.get(&ObjectKey::new(ns, name)).is_none());
        entry.deletes.retain(|d| {
            pods.get(&ObjectKey::new(ns, &d.name)).is_some_and(|p| {
                p.pointer("/metadata/uid").and_then(Value::as_str) == Some(d.uid.as_str())
                    && p.pointer("/metadata/deletionTimestamp").is_none()
            })
        });
        let elapsed = entry.since.elapsed();
        if (entry.creates.is_empty() && entry.deletes.is_empty()) || elapsed >= EXPECTATIONS_TIMEOUT
        {
            map.remove(key);
            return None;
        }
        Some(EXPECTATIONS_TIMEOUT - elapsed)
    }

    pub(crate) fn forget(&self, key: &ObjectKey) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Expected>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const T0: &str = "2025-01-01T00:00:00Z";

    fn job(spec: Value, status: Value) -> Job {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "ns", "uid": "u1"},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    fn spec(extra: Value) -> Value {
        let mut s = json!({
            "parallelism": 1, "completions": 1, "backoffLimit": 6,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "file:///x.wasm"}]}},
        });
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    }

    fn pod(name: &str, phase: JobPodPhase, finished: Option<&str>) -> JobPod {
        JobPod {
            name: name.into(),
            uid: format!("uid-{name}"),
            phase,
            deleting: false,
            ready: phase == JobPodPhase::Running,
            bound: true,
            created: Some(ts(T0)),
            finished: finished.map(ts),
            restarts: 0,
        }
    }

    fn run_plan(job: &Job, pods: &[JobPod], now: &str) -> JobPlan {
        plan(&JobObserved {
            job,
            pods,
            now: ts(now),
            may_manage_pods: true,
            config: &JobConfig::default(),
        })
    }

    fn cond<'a>(p: &'a JobPlan, t: &str) -> Option<&'a JobCondition> {
        p.status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t && c.status == "True")
    }

    use JobPodPhase::*;

    #[test]
    fn scaling_table() {
        // (name, spec, pods, creates, deletes)
        let cases: Vec<(&str, Value, Vec<JobPod>, usize, usize)> = vec![
            ("new job starts one pod", spec(json!({})), vec![], 1, 0),
            (
                "parallelism caps the active pods",
                spec(json!({"completions": 3, "parallelism": 2})),
                vec![],
                2,
                0,
            ),
            (
                "only as many as completions still needed",
                spec(json!({"completions": 3, "parallelism": 2})),
                vec![pod("a", Succeeded, Some(T0)), pod("b", Succeeded, Some(T0))],
                1,
                0,
            ),
            (
                "running pods count as active",
                spec(json!({"completions": 3, "parallelism": 2})),
                vec![pod("a", Running, None), pod("b", Running, None)],
                0,
                0,
            ),
            (
                "parallelism lowered: the excess goes",
                spec(json!({"completions": 5, "parallelism": 1})),
                vec![pod("a", Running, None), pod("b", Pending, None)],
                0,
                1,
            ),
            (
                "work queue (no completions): parallelism pods",
                spec(json!({"completions": null, "parallelism": 3})),
                vec![],
                3,
                0,
            ),
            (
                "work queue: after one success no new pods",
                spec(json!({"completions": null, "parallelism": 3})),
                vec![pod("a", Succeeded, Some(T0)), pod("b", Running, None)],
                0,
                0,
            ),
            (
                "terminating pods are replaced",
                spec(json!({})),
                vec![JobPod {
                    deleting: true,
                    ..pod("a", Running, None)
                }],
                1,
                0,
            ),
        ];
        for (name, s, pods, creates, deletes) in cases {
            let j = job(s, json!({}));
            let p = run_plan(&j, &pods, "2025-01-01T01:00:00Z");
            assert_eq!(p.create, creates, "{name}: creates");
            assert_eq!(p.delete.len(), deletes, "{name}: deletes");
            assert!(cond(&p, COND_FAILED).is_none(), "{name}");
        }
    }

    #[test]
    fn excess_pods_lose_pending_first() {
        let j = job(spec(json!({"completions": 5, "parallelism": 1})), json!({}));
        let pods = vec![pod("run", Running, None), pod("pend", Pending, None)];
        let p = run_plan(&j, &pods, T0);
        assert_eq!(p.delete[0].name, "pend");
    }

    #[test]
    fn completion_and_ttl() {
        let j = job(
            spec(json!({"completions": 2, "parallelism": 2, "ttlSecondsAfterFinished": 60})),
            json!({}),
        );
        let pods = vec![pod("a", Succeeded, Some(T0)), pod("b", Succeeded, Some(T0))];
        let p = run_plan(&j, &pods, "2025-01-01T00:00:10Z");
        assert!(cond(&p, COND_COMPLETE).is_some());
        assert!(cond(&p, COND_SUCCESS_CRITERIA_MET).is_some());
        assert_eq!(p.status.succeeded, Some(2));
        assert_eq!(p.status.active, Some(0));
        assert!(p.status.completion_time.is_some());
        assert_eq!(p.create, 0);
        assert_eq!(p.events[0].reason, "Completed");

        // Finished: the TTL runs from the Complete condition.
        let done = Job {
            status: Some(p.status.clone()),
            ..j.clone()
        };
        let p2 = run_plan(&done, &pods, "2025-01-01T00:00:40Z");
        assert!(!p2.delete_job);
        assert_eq!(p2.requeue, Some(Duration::from_secs(30)));
        assert_eq!(p2.status, p.status, "nothing changes once finished");
        assert!(run_plan(&done, &pods, "2025-01-01T00:01:10Z").delete_job);
    }

    #[test]
    fn completion_waits_for_running_pods() {
        // A work queue job: one pod succeeded, another still runs.
        let j = job(
            spec(json!({"completions": null, "parallelism": 2})),
            json!({}),
        );
        let pods = vec![pod("a", Succeeded, Some(T0)), pod("b", Running, None)];
        let p = run_plan(&j, &pods, T0);
        assert!(cond(&p, COND_COMPLETE).is_none());
        // With completions reached the stragglers are deleted, Complete comes later.
        let j = job(spec(json!({"completions": 1, "parallelism": 2})), json!({}));
        let p = run_plan(&j, &pods, T0);
        assert!(cond(&p, COND_SUCCESS_CRITERIA_MET).is_some());
        assert!(cond(&p, COND_COMPLETE).is_none());
        assert_eq!(
            p.delete,
            vec![PodRef {
                name: "b".into(),
                uid: "uid-b".into()
            }]
        );
    }

    #[test]
    fn backoff_limit_table() {
        // (name, backoffLimit, restartPolicy, pods, failed?)
        let restarted = JobPod {
            restarts: 3,
            ..pod("r", Running, None)
        };
        let cases: Vec<(&str, i32, &str, Vec<JobPod>, bool)> = vec![
            (
                "no failures",
                1,
                "Never",
                vec![pod("a", Running, None)],
                false,
            ),
            (
                "at the limit",
                1,
                "Never",
                vec![pod("a", Failed, Some(T0))],
                false,
            ),
            (
                "over the limit",
                1,
                "Never",
                vec![pod("a", Failed, Some(T0)), pod("b", Failed, Some(T0))],
                true,
            ),
            (
                "limit 0: the first failure",
                0,
                "Never",
                vec![pod("a", Failed, Some(T0))],
                true,
            ),
            (
                "OnFailure restarts count",
                2,
                "OnFailure",
                vec![restarted.clone()],
                true,
            ),
            (
                "Never: restarts do not count",
                2,
                "Never",
                vec![restarted],
                false,
            ),
        ];
        for (name, limit, policy, pods, failed) in cases {
            let mut s = spec(json!({"backoffLimit": limit}));
            s["template"]["spec"]["restartPolicy"] = policy.into();
            let j = job(s, json!({}));
            let p = run_plan(&j, &pods, "2025-01-01T01:00:00Z");
            assert_eq!(cond(&p, COND_FAILURE_TARGET).is_some(), failed, "{name}");
            if failed {
                let running = pods.iter().filter(|p| p.active()).count();
                assert_eq!(p.delete.len(), running, "{name}: active pods deleted");
                assert_eq!(p.create, 0, "{name}");
                // Failed only once nothing runs.
                assert_eq!(cond(&p, COND_FAILED).is_some(), running == 0, "{name}");
                if running == 0 {
                    let c = cond(&p, COND_FAILED).unwrap();
                    assert_eq!(c.reason.as_deref(), Some("BackoffLimitExceeded"));
                    assert_eq!(p.events[0].reason, "BackoffLimitExceeded");
                }
            }
        }
    }

    #[test]
    fn failure_target_leads_to_failed_when_pods_are_gone() {
        let j = job(
            spec(json!({"backoffLimit": 0})),
            json!({"failed": 1, "conditions": [{"type": "FailureTarget", "status": "True",
                "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
        );
        // The failed pod was deleted by hand: the status still counts it.
        let p = run_plan(&j, &[], T0);
        let c = cond(&p, COND_FAILED).unwrap();
        assert_eq!(c.reason.as_deref(), Some("BackoffLimitExceeded"));
        assert_eq!(p.status.failed, Some(1));
        assert_eq!(p.create, 0);
    }

    #[test]
    fn active_deadline() {
        let j = job(
            spec(json!({"activeDeadlineSeconds": 30})),
            json!({"startTime": T0}),
        );
        let pods = vec![pod("a", Running, None)];
        let p = run_plan(&j, &pods, "2025-01-01T00:00:20Z");
        assert!(cond(&p, COND_FAILURE_TARGET).is_none());
        assert_eq!(p.requeue, Some(Duration::from_secs(10)), "exact time left");
        let p = run_plan(&j, &pods, "2025-01-01T00:00:30Z");
        let c = cond(&p, COND_FAILURE_TARGET).unwrap();
        assert_eq!(c.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(p.delete.len(), 1);
    }

    #[test]
    fn failed_pods_are_replaced_after_a_backoff() {
        let j = job(spec(json!({})), json!({"startTime": T0}));
        let pods = vec![
            pod("a", Failed, Some("2025-01-01T00:00:00Z")),
            pod("b", Failed, Some("2025-01-01T00:00:05Z")),
        ];
        // Two failures: 10 s · 2 = 20 s after the last one.
        let p = run_plan(&j, &pods, "2025-01-01T00:00:15Z");
        assert_eq!(p.create, 0);
        assert_eq!(p.requeue, Some(Duration::from_secs(10)));
        let p = run_plan(&j, &pods, "2025-01-01T00:00:25Z");
        assert_eq!(p.create, 1);
        // A later success resets the back-off.
        let mut s = spec(json!({"completions": 3}));
        s["parallelism"] = 1.into();
        let j = job(s, json!({"startTime": T0}));
        let pods = vec![
            pod("a", Failed, Some("2025-01-01T00:00:00Z")),
            pod("b", Succeeded, Some("2025-01-01T00:00:05Z")),
        ];
        assert_eq!(run_plan(&j, &pods, "2025-01-01T00:00:06Z").create, 1);
    }

    #[test]
    fn status_is_stable() {
        let j = job(spec(json!({"completions": 3, "parallelism": 2})), json!({}));
        let pods = vec![pod("a", Running, None), pod("b", Succeeded, Some(T0))];
        let p = run_plan(&j, &pods, T0);
        assert_eq!(p.status.active, Some(2), "one running, one created");
        assert_eq!(p.status.ready, Some(1));
        assert_eq!(p.status.succeeded, Some(1));
        assert_eq!(p.status.start_time, Some(Time(ts(T0))));
        // Applied, then seen again later: the same status (no write).
        let j2 = Job {
            status: Some(p.status.clone()),
            ..j
        };
        let mut pods2 = pods.clone();
        pods2.push(pod("c", Pending, None));
        pods2[2].ready = false;
        let p2 = run_plan(&j2, &pods2, "2025-01-01T00:05:00Z");
        assert_eq!(p2.status, p.status);
        assert_eq!(p2.create, 0);
    }

    #[test]
    fn unobserved_writes_hold_pod_changes() {
        let j = job(spec(json!({"parallelism": 2, "completions": 2})), json!({}));
        let p = plan(&JobObserved {
            job: &j,
            pods: &[],
            now: ts(T0),
            may_manage_pods: false,
            config: &JobConfig::default(),
        });
        assert_eq!(p.create, 0);
    }

    #[test]
    fn suspend_and_resume() {
        let j = job(spec(json!({"suspend": true})), json!({"startTime": T0}));
        let p = run_plan(&j, &[pod("a", Running, None)], "2025-01-01T00:01:00Z");
        assert!(cond(&p, COND_SUSPENDED).is_some());
        assert_eq!(p.delete.len(), 1);
        assert_eq!(p.create, 0);
        let resumed = job(
            spec(json!({"suspend": false})),
            serde_json::to_value(&p.status).unwrap(),
        );
        let p = run_plan(&resumed, &[], "2025-01-01T00:02:00Z");
        assert!(cond(&p, COND_SUSPENDED).is_none());
        assert_eq!(p.create, 1);
        assert_eq!(p.status.start_time, Some(Time(ts("2025-01-01T00:02:00Z"))));
    }

    #[test]
    fn pods_are_labelled_and_owned() {
        let raw = json!({"metadata": {"name": "pi", "namespace": "ns", "uid": "u9"}, "spec": {"template": {
            "metadata": {"labels": {"app": "pi"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "file:///pi.wasm"}]}}}});
        let j: Job = serde_json::from_value(raw.clone()).unwrap();
        let pod = job_pod(&raw, &j);
        assert_eq!(pod["metadata"]["generateName"], "pi-");
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels["app"], "pi");
        assert_eq!(labels[JOB_NAME_LABEL], "pi");
        assert_eq!(labels[CONTROLLER_UID_LABEL], "u9");
        assert_eq!(labels[LEGACY_CONTROLLER_UID_LABEL], "u9");
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["uid"].as_str()),
            (Some("Job"), Some("u9"))
        );
        assert_eq!(owner["controller"], true);
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
    }

    #[test]
    fn finish_time_of_a_pod() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "a", "uid": "1", "creationTimestamp": T0},
            "spec": {"containers": [], "nodeName": "n1"},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "c", "image": "x", "imageID": "",
                "ready": false, "restartCount": 2,
                "state": {"terminated": {"exitCode": 1, "finishedAt": "2025-01-01T00:00:07Z"}}}]},
        }))
        .unwrap();
        let jp = JobPod::from_pod(&p);
        assert_eq!(jp.phase, Failed);
        assert_eq!(jp.finished, Some(ts("2025-01-01T00:00:07Z")));
        assert_eq!(jp.restarts, 2);
        assert!(jp.bound);
    }
}
