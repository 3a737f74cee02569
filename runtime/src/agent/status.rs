//! A pod's API status, derived from its worker's observed state by pure functions: the
//! status writer calls [`derive`], compares the result with what it last wrote, and writes
//! only a difference, [`merge`]d over the status the API holds so that conditions other
//! writers own survive.
//!
//! The rules are the kubelet's (`getPhase`, `generateAPIPodStatus`):
//! - phase: a failed init container under `restartPolicy: Never` fails the pod; an init
//!   container still to succeed keeps it `Pending`; then, over the containers: any waiting
//!   for its first run → `Pending`; any running → `Running`; all stopped → by the restart
//!   policy (`Always` keeps `Running` while the kubelet restarts them; `OnFailure` is
//!   `Succeeded` only when all exited 0; `Never` is `Failed` when any failed). A pod whose
//!   containers were stopped for deletion is terminal: `Succeeded` if all exited 0, else
//!   `Failed`.
//! - conditions `PodReadyToStartContainers`, `Initialized`, `Ready`, `ContainersReady`
//!   (reasons `ContainersNotInitialized`, `ContainersNotReady`, `PodCompleted`) and
//!   `PodScheduled` (kept as the scheduler wrote it); a condition's `lastTransitionTime`
//!   changes only when its status does.

use jiff::Timestamp;
use serde_json::Value;
use skiff_api::k8s_openapi::api::core::v1::{
    ContainerState as K8sContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, PodCondition, PodIP, PodSpec, PodStatus,
};
use skiff_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::pod_state::{ContainerState, Phase, PodState, Termination};

/// The condition types this agent owns (it writes them; it keeps every other one).
pub const OWNED_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// The pod's phase, by the kubelet's rules.
pub fn phase(spec: &PodSpec, state: &PodState) -> &'static str {
    if let Some(done) = state.finished {
        return done.as_str();
    }
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let init_failed = state
        .init_containers
        .iter()
        .any(|c| matches!(&c.phase, Phase::Terminated(t) if t.exit_code != 0));
    if init_failed && policy == "Never" {
        return "Failed";
    }
    let init_pending = state.init_containers.iter().any(|c| !c.succeeded());
    let (mut running, mut waiting, mut stopped, mut succeeded, mut failed) = (0, 0, 0, 0, 0);
    for c in &state.containers {
        match &c.phase {
            Phase::Running { .. } => running += 1,
            Phase::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                } else {
                    failed += 1;
                }
            }
            Phase::Waiting { .. } => match &c.last {
                Some(t) => {
                    stopped += 1;
                    if t.exit_code == 0 {
                        succeeded += 1;
                    } else {
                        failed += 1;
                    }
                }
                None => waiting += 1,
            },
        }
    }
    if state.stopped && running == 0 && waiting == 0 && !init_pending {
        return if failed == 0 && stopped > 0 {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    if state.stopped && (init_pending || waiting > 0) && running == 0 {
        // Stopped before every container ever ran: nothing succeeded.
        return "Failed";
    }
    if init_pending || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        return "Pending";
    }
    match policy {
        "Always" => "Running",
        "OnFailure" if succeeded == stopped => "Succeeded",
        "OnFailure" => "Running",
        _ if failed > 0 => "Failed",
        _ => "Succeeded",
    }
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn terminated(t: &Termination) -> K8sContainerState {
    K8sContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            reason: Some(t.reason.clone()).filter(|r| !r.is_empty()),
            message: Some(t.message.clone()).filter(|m| !m.is_empty()),
            started_at: t.started_at.map(time),
            finished_at: Some(time(t.finished_at)),
            ..ContainerStateTerminated::default()
        }),
        ..K8sContainerState::default()
    }
}

fn container_status(c: &ContainerState) -> ContainerStatus {
    let (state, ready, started) = match &c.phase {
        Phase::Waiting { reason, message } => (
            K8sContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()).filter(|r| !r.is_empty()),
                    message: Some(message.clone()).filter(|m| !m.is_empty()),
                }),
                ..K8sContainerState::default()
            },
            false,
            false,
        ),
        Phase::Running { started_at, ready } => (
            K8sContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(time(*started_at)),
                }),
                ..K8sContainerState::default()
            },
            *ready,
            true,
        ),
        Phase::Terminated(t) => (terminated(t), false, false),
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone().unwrap_or_default(),
        ready,
        restart_count: c.restart_count,
        started: Some(started),
        state: Some(state),
        last_state: Some(c.last.as_ref().map(terminated).unwrap_or_default()),
        ..ContainerStatus::default()
    }
}

fn names(containers: &[&ContainerState]) -> String {
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    format!("[{}]", names.join(" "))
}

/// The status the agent owns, from the worker's state. `previous` (what was last
/// written, else what the API holds) keeps condition transition times and `PodScheduled`.
pub fn derive(
    spec: &PodSpec,
    state: &PodState,
    host_ip: &str,
    previous: Option<&PodStatus>,
    now: Timestamp,
) -> PodStatus {
    let phase = phase(spec, state);
    let completed = phase == "Succeeded";

    let incomplete: Vec<&ContainerState> = state
        .init_containers
        .iter()
        .filter(|c| !c.succeeded())
        .collect();
    // A finished pod's init containers all ran (else it could not have finished).
    let initialized = incomplete.is_empty() || state.finished.is_some();
    let unready: Vec<&ContainerState> = state
        .containers
        .iter()
        .filter(|c| !matches!(c.phase, Phase::Running { ready: true, .. }))
        .collect();
    let ready = unready.is_empty() && !state.containers.is_empty() && !state.terminating;

    let previous_conditions = previous
        .and_then(|p| p.conditions.as_deref())
        .unwrap_or(&[]);
    let condition = |kind: &str, status: bool, reason: Option<&str>, message: Option<String>| {
        let status = if status { "True" } else { "False" };
        let since = previous_conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| time(now));
        PodCondition {
            type_: kind.to_string(),
            status: status.to_string(),
            reason: reason.map(str::to_string),
            message,
            last_transition_time: Some(since),
            ..PodCondition::default()
        }
    };
    let (ready_reason, ready_message) = if ready {
        (None, None)
    } else if completed {
        (Some("PodCompleted"), None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                names(&unready)
            )),
        )
    };
    let scheduled = previous_conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .cloned()
        .unwrap_or_else(|| condition("PodScheduled", true, None, None));
    let conditions = vec![
        condition(
            "PodReadyToStartContainers",
            state.pod_ip.is_some() && !state.stopped,
            None,
            None,
        ),
        if initialized {
            condition("Initialized", true, None, None)
        } else {
            condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some(format!(
                    "containers with incomplete status: {}",
                    names(&incomplete)
                )),
            )
        },
        condition("Ready", ready, ready_reason, ready_message.clone()),
        condition("ContainersReady", ready, ready_reason, ready_message),
        scheduled,
    ];

    let mut statuses: Vec<ContainerStatus> =
        state.containers.iter().map(container_status).collect();
    statuses.sort_by(|a, b| a.name.cmp(&b.name));
    let init_statuses: Vec<ContainerStatus> =
        state.init_containers.iter().map(container_status).collect();

    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: host_ip.to_string(),
        }]),
        pod_ip: state.pod_ip.clone(),
        pod_ips: state
            .pod_ip
            .as_ref()
            .map(|ip| vec![PodIP { ip: ip.clone() }]),
        start_time: state.start_time.map(time),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        ..PodStatus::default()
    }
}

/// `ours` over the status the API holds: the agent's fields replace theirs; conditions of
/// types the agent does not own, and fields it never writes (`qosClass`,
/// `nominatedNodeName`…), stay.
pub fn merge(current: Option<&Value>, ours: &PodStatus) -> Value {
    let mut merged = current
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let Ok(Value::Object(ours_json)) = serde_json::to_value(ours) else {
        return Value::Object(merged);
    };
    let foreign: Vec<Value> = merged
        .get("conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter(|c| {
                    let kind = c.get("type").and_then(Value::as_str).unwrap_or_default();
                    !OWNED_CONDITIONS.contains(&kind)
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for (key, value) in ours_json {
        if key == "conditions" {
            let mut all = value.as_array().cloned().unwrap_or_default();
            all.extend(foreign.iter().cloned());
            merged.insert(key, Value::Array(all));
        } else {
            merged.insert(key, value);
        }
    }
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::pod_state::FinishedPhase;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn spec(policy: &str) -> PodSpec {
        PodSpec {
            restart_policy: Some(policy.to_string()),
            ..PodSpec::default()
        }
    }

    fn waiting(reason: &str) -> Phase {
        Phase::waiting(reason, "")
    }

    fn running(ready: bool) -> Phase {
        Phase::Running {
            started_at: ts(1),
            ready,
        }
    }

    fn ended(code: i32) -> Termination {
        Termination {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: String::new(),
            started_at: Some(ts(1)),
            finished_at: ts(2),
        }
    }

    fn c(name: &str, phase: Phase, last: Option<Termination>) -> ContainerState {
        ContainerState {
            last,
            ..ContainerState::new(name, "file:///x.wasm", phase)
        }
    }

    fn pod(init: Vec<ContainerState>, containers: Vec<ContainerState>) -> PodState {
        PodState {
            pod_ip: Some("10.42.0.2".into()),
            start_time: Some(ts(0)),
            init_containers: init,
            containers,
            terminating: false,
            stopped: false,
            finished: None,
        }
    }

    #[test]
    fn phases() {
        let t = |code| Phase::Terminated(ended(code));
        let cases: Vec<(&str, &str, PodState, &str)> = vec![
            (
                "nothing yet",
                "Always",
                pod(vec![], vec![c("a", waiting("ContainerCreating"), None)]),
                "Pending",
            ),
            (
                "fetch failed",
                "Always",
                pod(vec![], vec![c("a", waiting("ComponentFetchFailed"), None)]),
                "Pending",
            ),
            (
                "running",
                "Always",
                pod(vec![], vec![c("a", running(true), None)]),
                "Running",
            ),
            (
                "one running one waiting",
                "Always",
                pod(
                    vec![],
                    vec![c("a", running(true), None), c("b", waiting("X"), None)],
                ),
                "Pending",
            ),
            (
                "crash loop",
                "Always",
                pod(
                    vec![],
                    vec![c("a", waiting("CrashLoopBackOff"), Some(ended(1)))],
                ),
                "Running",
            ),
            (
                "always, exited 0",
                "Always",
                pod(vec![], vec![c("a", t(0), None)]),
                "Running",
            ),
            (
                "never, exited 0",
                "Never",
                pod(vec![], vec![c("a", t(0), None)]),
                "Succeeded",
            ),
            (
                "never, exited 1",
                "Never",
                pod(vec![], vec![c("a", t(1), None)]),
                "Failed",
            ),
            (
                "never, one of two failed",
                "Never",
                pod(vec![], vec![c("a", t(0), None), c("b", t(2), None)]),
                "Failed",
            ),
            (
                "never, one still running",
                "Never",
                pod(
                    vec![],
                    vec![c("a", t(0), None), c("b", running(true), None)],
                ),
                "Running",
            ),
            (
                "on failure, exited 0",
                "OnFailure",
                pod(vec![], vec![c("a", t(0), None)]),
                "Succeeded",
            ),
            (
                "on failure, backing off",
                "OnFailure",
                pod(
                    vec![],
                    vec![c("a", waiting("CrashLoopBackOff"), Some(ended(1)))],
                ),
                "Running",
            ),
            (
                "init running",
                "Always",
                pod(
                    vec![c("i", running(false), None)],
                    vec![c("a", waiting("PodInitializing"), None)],
                ),
                "Pending",
            ),
            (
                "init failed, never",
                "Never",
                pod(
                    vec![c("i", t(1), None)],
                    vec![c("a", waiting("PodInitializing"), None)],
                ),
                "Failed",
            ),
            (
                "init failed, backing off",
                "OnFailure",
                pod(
                    vec![c("i", waiting("CrashLoopBackOff"), Some(ended(1)))],
                    vec![c("a", waiting("PodInitializing"), None)],
                ),
                "Pending",
            ),
            (
                "init done",
                "Always",
                pod(vec![c("i", t(0), None)], vec![c("a", running(true), None)]),
                "Running",
            ),
        ];
        for (name, policy, state, want) in cases {
            assert_eq!(phase(&spec(policy), &state), want, "{name}");
        }
    }

    #[test]
    fn stopped_and_finished_pods_are_terminal() {
        let mut s = pod(vec![], vec![c("a", Phase::Terminated(ended(0)), None)]);
        s.terminating = true;
        s.stopped = true;
        assert_eq!(phase(&spec("Always"), &s), "Succeeded");
        s.containers = vec![c("a", Phase::Terminated(ended(137)), None)];
        assert_eq!(phase(&spec("Always"), &s), "Failed");
        s.containers = vec![c("a", waiting("ComponentFetchFailed"), None)];
        assert_eq!(phase(&spec("Always"), &s), "Failed");
        let mut done = pod(vec![], vec![c("a", Phase::Terminated(ended(0)), None)]);
        done.finished = Some(FinishedPhase::Succeeded);
        assert_eq!(phase(&spec("Always"), &done), "Succeeded");
    }

    fn cond<'a>(s: &'a PodStatus, kind: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == kind)
            .unwrap()
    }

    #[test]
    fn conditions_and_container_statuses() {
        let state = pod(
            vec![c("init", Phase::Terminated(ended(0)), None)],
            vec![
                c("web", running(true), None),
                c("b-worker", waiting("CrashLoopBackOff"), Some(ended(3))),
            ],
        );
        let s = derive(&spec("Always"), &state, "192.168.1.5", None, ts(10));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.42.0.2"));
        assert_eq!(s.host_ip.as_deref(), Some("192.168.1.5"));
        assert_eq!(s.start_time, Some(Time(ts(0))));
        assert_eq!(cond(&s, "Initialized").status, "True");
        assert_eq!(cond(&s, "PodScheduled").status, "True");
        assert_eq!(cond(&s, "PodReadyToStartContainers").status, "True");
        let ready = cond(&s, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("ContainersNotReady"))
        );
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [b-worker]")
        );
        let statuses = s.container_statuses.as_ref().unwrap();
        let names: Vec<&str> = statuses.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["b-worker", "web"], "sorted by name, as the kubelet");
        let worker = &statuses[0];
        assert!(!worker.ready);
        let waiting = worker.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        let last = worker
            .last_state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap();
        assert_eq!(last.exit_code, 3);
        assert_eq!(last.reason.as_deref(), Some("Error"));
        assert!(statuses[1].ready && statuses[1].started == Some(true));
        assert_eq!(s.init_container_statuses.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn init_pending_and_completed_reasons() {
        let state = pod(
            vec![
                c("a", Phase::Terminated(ended(0)), None),
                c("b", running(false), None),
            ],
            vec![c("main", waiting("PodInitializing"), None)],
        );
        let s = derive(&spec("Always"), &state, "h", None, ts(0));
        let init = cond(&s, "Initialized");
        assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
        assert_eq!(
            init.message.as_deref(),
            Some("containers with incomplete status: [b]")
        );
        let done = pod(vec![], vec![c("main", Phase::Terminated(ended(0)), None)]);
        let s = derive(&spec("Never"), &done, "h", None, ts(0));
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
        assert_eq!(
            cond(&s, "ContainersReady").reason.as_deref(),
            Some("PodCompleted")
        );
        assert!(s.init_container_statuses.is_none());
    }

    #[test]
    fn transition_times_move_only_with_the_status() {
        let not_ready = pod(vec![], vec![c("a", waiting("ContainerCreating"), None)]);
        let first = derive(&spec("Always"), &not_ready, "h", None, ts(5));
        assert_eq!(
            cond(&first, "Ready").last_transition_time,
            Some(Time(ts(5)))
        );
        let again = derive(&spec("Always"), &not_ready, "h", Some(&first), ts(50));
        assert_eq!(
            again, first,
            "nothing changed: the same status, nothing to write"
        );
        let ready = pod(vec![], vec![c("a", running(true), None)]);
        let later = derive(&spec("Always"), &ready, "h", Some(&first), ts(60));
        assert_eq!(
            cond(&later, "Ready").last_transition_time,
            Some(Time(ts(60)))
        );
        assert_eq!(
            cond(&later, "Initialized").last_transition_time,
            Some(Time(ts(5)))
        );
    }

    #[test]
    fn scheduled_condition_is_kept_as_written() {
        let previous = PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "True".into(),
                last_transition_time: Some(Time(ts(-100))),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        };
        let state = pod(vec![], vec![c("a", running(true), None)]);
        let s = derive(&spec("Always"), &state, "h", Some(&previous), ts(0));
        assert_eq!(
            cond(&s, "PodScheduled").last_transition_time,
            Some(Time(ts(-100)))
        );
    }

    #[test]
    fn merge_keeps_foreign_conditions_and_fields() {
        let current = serde_json::json!({
            "phase": "Pending",
            "qosClass": "BestEffort",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "DisruptionTarget", "status": "True", "reason": "Eviction"}
            ]
        });
        let state = pod(vec![], vec![c("a", running(true), None)]);
        let ours = derive(&spec("Always"), &state, "h", None, ts(0));
        let merged = merge(Some(&current), &ours);
        assert_eq!(merged["phase"], "Running");
        assert_eq!(merged["qosClass"], "BestEffort");
        let types: Vec<&str> = merged["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
                "DisruptionTarget"
            ]
        );
        assert_eq!(merged["podIP"], "10.42.0.2");
        assert_eq!(
            merged["containerStatuses"][0]["state"]["running"]["startedAt"],
            "2023-11-14T22:13:21Z"
        );
    }
}
