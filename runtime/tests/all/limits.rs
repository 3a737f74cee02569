//! Memory, CPU, deadlines and the kill switch.

use std::time::Duration;

use skiff_runtime::{ContainerLog, LogConfig, LogQuery, PodLimits, PodSandbox, Reason};
use tokio_util::sync::CancellationToken;

use crate::*;

#[tokio::test]
async fn memory_bomb_is_oom_killed_at_the_pod_limit() {
    let t = host();
    let pod = PodSandbox::new(PodLimits::from_quantities(Some("64Mi"), None).unwrap());
    let (exit, log) = run(
        &t.host,
        &image("limits_memory_bomb"),
        &pod,
        &spec(&["bomb"], &[]),
    )
    .await;
    assert_eq!(exit.reason, Reason::OomKilled, "{exit:?}");
    assert_eq!(exit.exit_code, 137);
    assert_eq!(exit.message, "memory limit 64Mi reached");
    assert!(log.contains("allocated 56 MiB"), "{log}");
    assert!(pod.memory().peak() <= 64 << 20);
    assert_eq!(
        pod.memory().used(),
        0,
        "the dead instance gave its memory back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_stops_a_spinning_guest() {
    let t = host();
    let mut spec = spec(&["spin"], &[]);
    spec.deadline = Some(Duration::from_millis(300));
    let (exit, log) = run(&t.host, &image("limits_spin"), &unlimited(), &spec).await;
    assert_eq!(exit.reason, Reason::DeadlineExceeded, "{exit:?}");
    assert!(log.contains("spinning"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_switch_stops_a_spinning_guest() {
    let t = host();
    let workload = t.host.load(&image("limits_spin")).await.unwrap();
    let pod = unlimited();
    let log = ContainerLog::new(LogConfig::default());
    let kill = CancellationToken::new();
    let task = {
        let (host, pod, log, kill) = (t.host.clone(), pod.clone(), log.clone(), kill.clone());
        tokio::spawn(async move {
            host.run(&workload, &pod, &spec(&["spin"], &[]), &log, &kill)
                .await
        })
    };
    eventually(Duration::from_secs(30), || {
        !log.read(&LogQuery::default()).is_empty()
    })
    .await;
    kill.cancel();
    let exit = task.await.unwrap().unwrap();
    assert_eq!(exit.reason, Reason::Killed, "{exit:?}");
    assert_eq!(exit.exit_code, 137);
    assert_eq!(pod.memory().used(), 0);
}

/// A spinning guest limited to 100m is throttled — not killed — while a neighbour pod on
/// the same (single) worker thread runs to completion.
#[tokio::test(flavor = "current_thread")]
async fn cpu_limit_throttles_a_spinner_without_starving_neighbours() {
    let t = host();
    let spinner = t.host.load(&image("limits_spin")).await.unwrap();
    let throttled_pod = PodSandbox::new(PodLimits::from_quantities(None, Some("100m")).unwrap());
    let spin_log = ContainerLog::new(LogConfig::default());
    let spinning = {
        let (host, pod, log) = (t.host.clone(), throttled_pod.clone(), spin_log.clone());
        tokio::spawn(async move {
            host.run(
                &spinner,
                &pod,
                &spec(&["spin"], &[]),
                &log,
                &CancellationToken::new(),
            )
            .await
        })
    };
    let quota = throttled_pod.cpu().unwrap().clone();
    eventually(Duration::from_secs(30), || quota.throttled() > 0).await;

    let (exit, log) = run(
        &t.host,
        &image("cli_hello"),
        &unlimited(),
        &spec(&["neighbour"], &[]),
    )
    .await;
    assert_eq!(exit.reason, Reason::Completed, "{exit:?}");
    assert!(log.contains("arg[0]=neighbour"));

    assert!(
        !spinning.is_finished(),
        "the spinner is throttled, not killed"
    );
    throttled_pod.kill();
    let exit = spinning.await.unwrap().unwrap();
    assert_eq!(exit.reason, Reason::Killed);
    assert!(quota.throttled() > 0);
}

#[tokio::test]
async fn without_a_pod_limit_the_node_cap_is_an_oom_kill_too() {
    let t = host();
    let pod = unlimited();
    let (exit, _) = run(
        &t.host,
        &image("limits_memory_bomb"),
        &pod,
        &spec(&["bomb"], &[]),
    )
    .await;
    assert_eq!(exit.reason, Reason::OomKilled, "{exit:?}");
    assert_eq!(exit.message, "memory limit of the node reached");
    assert!(pod.memory().peak() <= t.host.max_memory());
    assert_eq!(pod.memory().used(), 0);
}
