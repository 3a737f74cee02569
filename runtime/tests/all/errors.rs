//! What keeps a container from starting is an error naming the problem.

use skiff_runtime::Error;

use crate::*;

#[tokio::test]
async fn missing_imports_are_all_named() {
    let t = host();
    let wasm = wat::parse_str(
        r#"(component
            (import "skiff:test/nope@1.0.0" (instance (export "f" (func))))
            (import "wasi:keyvalue/store@0.2.0-draft" (instance))
            (import "wasi:cli/environment@0.2.0" (instance))
        )"#,
    )
    .unwrap();
    let image = file_image(t.dir.path(), "needs.wasm", &wasm);
    let err = t.host.load(&image).await.unwrap_err();
    let Error::MissingImports { missing, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        missing,
        &["skiff:test/nope@1.0.0", "wasi:keyvalue/store@0.2.0-draft"]
    );
    assert_eq!(err.waiting_reason(), "InvalidComponent");
    let text = err.to_string();
    assert!(
        text.contains("skiff:test/nope@1.0.0, wasi:keyvalue/store@0.2.0-draft"),
        "{text}"
    );
}

#[tokio::test]
async fn a_component_exporting_nothing_runnable_is_rejected_with_its_exports() {
    let t = host();
    let wasm = wat::parse_str(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $api (export "f" (func $f)))
            (export "my:thing/api@1.0.0" (instance $api))
        )"#,
    )
    .unwrap();
    let image = file_image(t.dir.path(), "lib.wasm", &wasm);
    let err = t.host.load(&image).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NotRunnable { .. }), "{text}");
    assert!(text.contains("[my:thing/api@1.0.0]"), "{text}");
    assert!(
        text.contains("wasi:cli/run, wasi:http/incoming-handler"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_bytes_are_an_invalid_component() {
    let t = host();
    let image = file_image(t.dir.path(), "junk.wasm", b"#!/bin/sh\necho not wasm\n");
    let err = t.host.load(&image).await.unwrap_err();
    assert!(matches!(err, Error::InvalidComponent { .. }), "{err}");
    assert!(
        err.to_string().contains("not a WebAssembly binary"),
        "{err}"
    );

    let real = std::fs::read(guest("cli_hello")).unwrap();
    let image = file_image(t.dir.path(), "truncated.wasm", &real[..real.len() / 2]);
    let err = t.host.load(&image).await.unwrap_err();
    assert!(matches!(err, Error::InvalidComponent { .. }), "{err}");
    assert_eq!(
        t.host.compiles(),
        1,
        "compiling was tried, and failed cleanly"
    );
}

#[tokio::test]
async fn images_that_cannot_be_fetched() {
    let t = host();
    let err = t
        .host
        .load("oci://ghcr.io/skiff/hello:1")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("OCI registries are not supported yet"),
        "{err}"
    );
    assert_eq!(err.waiting_reason(), "ComponentFetchFailed");

    let err = t
        .host
        .load("file:///no/such/component.wasm")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fetch { .. }), "{err}");
    assert_eq!(err.waiting_reason(), "ComponentFetchFailed");

    let unknown = format!("sha256:{}", "0".repeat(64));
    let err = t.host.load(&unknown).await.unwrap_err();
    assert!(matches!(err, Error::NotInStore { .. }), "{err}");

    let err = t.host.load("nginx:latest").await.unwrap_err();
    assert_eq!(err.waiting_reason(), "InvalidImageName");
}

#[tokio::test]
async fn an_http_component_is_not_run_as_a_command() {
    let t = host();
    let workload = t.host.load(&image("http_echo")).await.unwrap();
    let log = skiff_runtime::ContainerLog::new(skiff_runtime::LogConfig::default());
    let err = t
        .host
        .run(
            &workload,
            &unlimited(),
            &spec(&[], &[]),
            &log,
            &tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongKind { .. }), "{err}");
}
