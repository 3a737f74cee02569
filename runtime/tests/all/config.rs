//! `wasi:config/store`: a component reads its container's configuration, which is the
//! container's resolved environment.

use skiff_runtime::{Error, Reason, WorkloadKind};

use crate::*;

#[tokio::test]
async fn config_store_holds_the_container_env() {
    let t = host();
    let workload = t.host.load(&image("config_echo")).await.unwrap();
    assert_eq!(workload.kind(), WorkloadKind::Command);

    let spec = spec(&["config_echo"], &[("GREETING", "hi"), ("A", "1")]);
    let (exit, log) = run(&t.host, &image("config_echo"), &unlimited(), &spec).await;
    assert_eq!(exit.reason, Reason::Completed, "{exit:?}\n{log}");
    assert_eq!(exit.exit_code, 0);
    assert_eq!(log, "config A=1\nconfig GREETING=hi\nget GREETING=hi\n");

    // Nothing of the host's leaks in; a missing key is `none`, not an error.
    let (exit, log) = run(
        &t.host,
        &image("config_echo"),
        &unlimited(),
        &crate::spec(&["config_echo"], &[]),
    )
    .await;
    assert_eq!(exit.reason, Reason::Completed, "{exit:?}\n{log}");
    assert_eq!(log, "get GREETING=<none>\n");
}

#[tokio::test]
async fn a_repeated_key_is_its_last_value() {
    let t = host();
    let spec = spec(
        &["config_echo"],
        &[("GREETING", "from envFrom"), ("GREETING", "hi")],
    );
    let (exit, log) = run(&t.host, &image("config_echo"), &unlimited(), &spec).await;
    assert_eq!(exit.reason, Reason::Completed, "{exit:?}\n{log}");
    assert_eq!(log, "config GREETING=hi\nget GREETING=hi\n");
}

#[tokio::test]
async fn another_wasi_config_version_is_a_missing_import() {
    // wasi:config is a pre-release: only the version wasmtime implements links.
    let t = host();
    let wasm = wat::parse_str(
        r#"(component
            (import "wasi:config/store@0.2.0-draft" (instance))
        )"#,
    )
    .unwrap();
    let image = file_image(t.dir.path(), "draft.wasm", &wasm);
    let err = t.host.load(&image).await.unwrap_err();
    let Error::MissingImports { missing, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(missing, &["wasi:config/store@0.2.0-draft"]);
}
