//! Compile once per digest: in memory, on disk, across hosts; tampered artifacts are
//! recompiled, never loaded.

use skiff_runtime::Reason;
use skiff_runtime::artifact::ArtifactKind;

use crate::*;

#[tokio::test]
async fn a_digest_is_compiled_once() {
    let t = host();
    let first = t.host.load(&image("cli_hello")).await.unwrap();
    assert_eq!(t.host.compiles(), 1);
    // Same image, and the same bytes by digest: no compile, the same InstancePre.
    let again = t.host.load(&image("cli_hello")).await.unwrap();
    let by_digest = t.host.load(&first.digest().to_string()).await.unwrap();
    assert_eq!(t.host.compiles(), 1);
    assert!(Arc::ptr_eq(&first, &again) && Arc::ptr_eq(&first, &by_digest));
    let (exit, _) = run(
        &t.host,
        &first.digest().to_string(),
        &unlimited(),
        &spec(&["x"], &[]),
    )
    .await;
    assert_eq!(exit.reason, Reason::Completed);

    // Concurrent loads of a new digest compile it once.
    let loads: Vec<_> = (0..4)
        .map(|_| {
            let host = t.host.clone();
            tokio::spawn(async move { host.load(&image("trap_at_start")).await })
        })
        .collect();
    for load in loads {
        load.await.unwrap().unwrap();
    }
    assert_eq!(t.host.compiles(), 2);

    // A restarted node (a new host on the same data directory) loads the artifact.
    let restarted = host_in(t.dir.path());
    let workload = restarted.load(&first.digest().to_string()).await.unwrap();
    assert_eq!(workload.digest(), first.digest());
    assert_eq!(restarted.compiles(), 0);
    let (exit, log) = run(
        &restarted,
        &image("cli_hello"),
        &unlimited(),
        &spec(&["y"], &[]),
    )
    .await;
    assert_eq!(exit.reason, Reason::Completed);
    assert!(log.contains("arg[0]=y"));
    assert_eq!(restarted.compiles(), 0);
}

#[tokio::test]
async fn a_tampered_artifact_is_recompiled_not_loaded() {
    let t = host();
    let workload = t.host.load(&image("cli_hello")).await.unwrap();
    let artifact = t
        .host
        .artifacts()
        .artifact_path(&workload.digest(), ArtifactKind::Component);
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();

    let restarted = host_in(t.dir.path());
    let (exit, _) = run(
        &restarted,
        &image("cli_hello"),
        &unlimited(),
        &spec(&["x"], &[]),
    )
    .await;
    assert_eq!(exit.reason, Reason::Completed);
    assert_eq!(
        restarted.compiles(),
        1,
        "the tampered artifact was not loaded"
    );
    assert_ne!(std::fs::read(&artifact).unwrap(), bytes, "and was replaced");
}
