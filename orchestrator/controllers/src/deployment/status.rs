//! A Deployment's status and conditions, exactly as `kubectl rollout status` and
//! `kubectl describe` read them (Kubernetes' `calculateStatus`, `SetDeploymentCondition`,
//! `DeploymentComplete`, `DeploymentProgressing`, `DeploymentTimedOut`).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::strategy::{max_unavailable, replicas};

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// The reasons of the Deployment conditions, as Kubernetes spells them.
pub mod reason {
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    pub const PAUSED: &str = "DeploymentPaused";
    pub const RESUMED: &str = "DeploymentResumed";
    pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
    pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
    pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

/// `spec.replicas` of a ReplicaSet (default 1).
pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `status.replicas` of a ReplicaSet.
pub fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn ready_replicas(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn available_replicas(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The condition of `type_`.
pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// A condition updated and transitioned `now`.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets a condition unless one with the same status and reason is there; keeps the
/// transition time when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(current) = condition(status, &cond.type_) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &cond.type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = &mut status.conditions {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// `progressDeadlineSeconds` is set (and not the "never" value).
pub fn has_progress_deadline(d: &Deployment) -> bool {
    progress_deadline(d).is_some()
}

/// `progressDeadlineSeconds` as a duration, when it is set.
pub fn progress_deadline(d: &Deployment) -> Option<Duration> {
    let seconds = d.spec.as_ref()?.progress_deadline_seconds?;
    if seconds == i32::MAX {
        return None;
    }
    Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// The status the ReplicaSets add up to (Kubernetes' `calculateStatus`), with the
/// conditions of `current` and a fresh `Available` condition.
pub fn calculate_status(
    d: &Deployment,
    current: &DeploymentStatus,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let available: i32 = all.iter().map(|rs| available_replicas(rs)).sum();
    let total: i32 = all.iter().map(|rs| spec_replicas(rs)).sum();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nonzero(all.iter().map(|rs| status_replicas(rs)).sum()),
        updated_replicas: nonzero(new.map_or(0, status_replicas)),
        ready_replicas: nonzero(all.iter().map(|rs| ready_replicas(rs)).sum()),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero((total - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
        terminating_replicas: None,
    };
    let cond = if available >= replicas(d) - max_unavailable(d) {
        new_condition(
            AVAILABLE,
            "True",
            reason::MIN_AVAILABLE,
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        new_condition(
            AVAILABLE,
            "False",
            reason::MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut status, cond);
    status
}

/// Every replica updated and available, and the spec observed.
pub fn complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let want = replicas(d);
    status.updated_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether `new` shows progress over `old`: more updated, ready or available replicas, or
/// fewer old ones.
pub fn progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// When the Progressing condition's last update is older than the deadline.
pub fn timed_out(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(cond) = condition(status, PROGRESSING) else {
        return false;
    };
    match cond.reason.as_deref() {
        Some(reason::NEW_RS_AVAILABLE) => false,
        Some(reason::TIMED_OUT) => true,
        _ => cond
            .last_update_time
            .as_ref()
            .is_some_and(|from| deadline_passed(from.0, deadline, now)),
    }
}

fn deadline_passed(from: Timestamp, deadline: Duration, now: Timestamp) -> bool {
    let elapsed = now.duration_since(from);
    jiff::SignedDuration::try_from(deadline).is_ok_and(|d| elapsed > d)
}

/// How long until the progress deadline of a rollout in progress expires, so that it
/// is looked at again then (Kubernetes' `requeueStuckDeployment`); `None` when there is
/// nothing to wait for.
pub fn until_deadline(
    d: &Deployment,
    status: &DeploymentStatus,
    now: Timestamp,
) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let cond = condition(status, PROGRESSING)?;
    if complete(d, status) || cond.reason.as_deref() == Some(reason::TIMED_OUT) {
        return None;
    }
    let from = cond.last_update_time.as_ref()?.0;
    let elapsed = Duration::try_from(now.duration_since(from)).unwrap_or(Duration::ZERO);
    // A second past the deadline, so that it has surely passed (times are in seconds).
    Some(
        deadline
            .saturating_sub(elapsed)
            .max(Duration::from_millis(100))
            + Duration::from_secs(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn deployment(replicas: i32, generation: i64) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {},
                "progressDeadlineSeconds": 60,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}
        }))
        .unwrap()
    }

    fn rs(spec: i32, replicas: i32, ready: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "rs"},
            "spec": {"replicas": spec, "selector": {}},
            "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": available}
        }))
        .unwrap()
    }

    fn counts(s: &DeploymentStatus) -> [i32; 5] {
        let n = |v: Option<i32>| v.unwrap_or(0);
        [
            n(s.replicas),
            n(s.updated_replicas),
            n(s.ready_replicas),
            n(s.available_replicas),
            n(s.unavailable_replicas),
        ]
    }

    #[test]
    fn status_from_replica_sets() {
        let now = ts("2024-01-01T00:00:00Z");
        let d = deployment(3, 2);
        let old = rs(2, 2, 2, 2);
        let new = rs(2, 1, 0, 0);
        let s = calculate_status(
            &d,
            &DeploymentStatus::default(),
            &[&old, &new],
            Some(&new),
            now,
        );
        assert_eq!(counts(&s), [3, 1, 2, 2, 2]);
        assert_eq!(s.observed_generation, Some(2));
        let avail = condition(&s, AVAILABLE).unwrap();
        // 2 available >= 3 - maxUnavailable 1.
        assert_eq!(
            (avail.status.as_str(), avail.reason.as_deref()),
            ("True", Some(reason::MIN_AVAILABLE))
        );
        let s = calculate_status(&d, &s, &[&rs(3, 3, 1, 1)], None, now);
        assert_eq!(counts(&s), [3, 0, 1, 1, 2]);
        let avail = condition(&s, AVAILABLE).unwrap();
        assert_eq!(avail.reason.as_deref(), Some(reason::MIN_UNAVAILABLE));
        // Over-available while scaling down: unavailable never negative.
        let s = calculate_status(&d, &s, &[&rs(1, 4, 4, 4)], None, now);
        assert_eq!(counts(&s)[4], 0);
    }

    #[test]
    fn conditions_keep_transition_times() {
        let t0 = ts("2024-01-01T00:00:00Z");
        let t1 = ts("2024-01-01T00:01:00Z");
        let mut s = DeploymentStatus::default();
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "True", reason::NEW_RS_CREATED, "a".into(), t0),
        );
        // Same status and reason: unchanged (message and times stay).
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "True", reason::NEW_RS_CREATED, "b".into(), t1),
        );
        let c = condition(&s, PROGRESSING).unwrap();
        assert_eq!(
            (c.message.as_deref(), c.last_update_time.clone()),
            (Some("a"), Some(Time(t0)))
        );
        // Same status, new reason: updated, transition time kept.
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "True", reason::RS_UPDATED, "c".into(), t1),
        );
        let c = condition(&s, PROGRESSING).unwrap();
        assert_eq!(c.last_update_time, Some(Time(t1)));
        assert_eq!(c.last_transition_time, Some(Time(t0)));
        // New status: both times move.
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "False", reason::TIMED_OUT, "d".into(), t1),
        );
        assert_eq!(
            condition(&s, PROGRESSING).unwrap().last_transition_time,
            Some(Time(t1))
        );
        assert_eq!(s.conditions.as_ref().unwrap().len(), 1);
        remove_condition(&mut s, PROGRESSING);
        assert_eq!(s.conditions, None);
    }

    fn status(counts: [i32; 4], generation: i64) -> DeploymentStatus {
        DeploymentStatus {
            replicas: Some(counts[0]),
            updated_replicas: Some(counts[1]),
            ready_replicas: Some(counts[2]),
            available_replicas: Some(counts[3]),
            observed_generation: Some(generation),
            ..Default::default()
        }
    }

    #[test]
    fn completeness_and_progress() {
        let d = deployment(3, 2);
        // (case, [replicas, updated, ready, available], observed generation, complete)
        let cases = [
            ("done", [3, 3, 3, 3], 2, true),
            ("spec not observed", [3, 3, 3, 3], 1, false),
            ("old replicas left", [4, 3, 4, 4], 2, false),
            ("not all available", [3, 3, 3, 2], 2, false),
            ("not all updated", [3, 2, 3, 3], 2, false),
        ];
        for (case, c, generation, expected) in cases {
            assert_eq!(complete(&d, &status(c, generation)), expected, "{case}");
        }
        // (case, old, new, progressing)
        let cases = [
            ("more updated", [4, 1, 3, 3], [4, 2, 3, 3], true),
            ("fewer old", [4, 2, 4, 4], [3, 2, 3, 3], true),
            ("more ready", [4, 2, 2, 2], [4, 2, 3, 2], true),
            ("more available", [4, 2, 3, 2], [4, 2, 3, 3], true),
            ("nothing moved", [4, 1, 3, 3], [4, 1, 3, 3], false),
            ("went backwards", [4, 1, 3, 3], [4, 1, 2, 2], false),
        ];
        for (case, old, new, expected) in cases {
            assert_eq!(
                progressing(&status(old, 1), &status(new, 1)),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn deadlines() {
        let d = deployment(3, 1);
        let t0 = ts("2024-01-01T00:00:00Z");
        let mut s = status([4, 1, 3, 3], 1);
        assert!(
            !timed_out(&d, &s, t0),
            "no condition: no base to measure from"
        );
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "True", reason::RS_UPDATED, String::new(), t0),
        );
        assert!(
            !timed_out(&d, &s, ts("2024-01-01T00:01:00Z")),
            "exactly at the deadline"
        );
        assert!(timed_out(&d, &s, ts("2024-01-01T00:01:01Z")));
        assert_eq!(
            until_deadline(&d, &s, ts("2024-01-01T00:00:20Z")),
            Some(Duration::from_secs(41))
        );
        let mut done = s.clone();
        set_condition(
            &mut done,
            new_condition(
                PROGRESSING,
                "True",
                reason::NEW_RS_AVAILABLE,
                String::new(),
                t0,
            ),
        );
        assert!(!timed_out(&d, &done, ts("2024-01-02T00:00:00Z")));
        let mut failed = s.clone();
        set_condition(
            &mut failed,
            new_condition(PROGRESSING, "False", reason::TIMED_OUT, String::new(), t0),
        );
        assert!(timed_out(&d, &failed, t0));
        assert_eq!(until_deadline(&d, &failed, t0), None);
        let mut never = d.clone();
        never.spec.as_mut().unwrap().progress_deadline_seconds = Some(i32::MAX);
        assert!(!has_progress_deadline(&never));
        assert!(!timed_out(&never, &s, ts("2030-01-01T00:00:00Z")));
    }
}
