//! Commands: argv, env, exit codes, traps, preopens, preview-1 modules, logs.

use std::time::Duration;

use futures::StreamExt;
use skiff_runtime::{ContainerLog, LogConfig, LogQuery, Preopen, Reason, WorkloadKind};
use tokio_util::sync::CancellationToken;

use crate::*;

#[tokio::test]
async fn cli_hello_gets_exactly_its_args_and_env() {
    let t = host();
    let spec = spec(&["cli_hello", "one", "two words"], &[("GREETING", "hi")]);
    let (exit, log) = run(&t.host, &image("cli_hello"), &unlimited(), &spec).await;
    assert_eq!(exit.reason, Reason::Completed, "{exit:?}");
    assert_eq!(exit.exit_code, 0);
    assert!(log.contains("hello from skiff\n"), "{log}");
    assert!(
        log.contains("arg[0]=cli_hello\narg[1]=one\narg[2]=two words\n"),
        "{log}"
    );
    // The whole environment is the one given: nothing of the host's leaks in.
    let env: Vec<&str> = log.lines().filter(|l| l.starts_with("env ")).collect();
    assert_eq!(env, vec!["env GREETING=hi"], "{log}");
    assert!(
        log.contains("cli_hello: done"),
        "stderr is logged too: {log}"
    );
}

#[tokio::test]
async fn exit_codes_become_the_container_exit() {
    let t = host();
    let spec = spec(&["cli_exit_code"], &[("EXIT_CODE", "42")]);
    let (exit, log) = run(&t.host, &image("cli_exit_code"), &unlimited(), &spec).await;
    assert_eq!(exit.exit_code, 42, "{exit:?}");
    assert_eq!(exit.reason, Reason::Error);
    assert!(exit.message.contains("exited with code 42"), "{exit:?}");
    assert_eq!(log, "exiting with 42\n");

    // Rust's `std::process::exit(3)` can only say "failed" in WASI 0.2: exit code 1.
    let spec = crate::spec(&["cli_hello"], &[("EXIT_CODE", "3")]);
    let (exit, _) = run(&t.host, &image("cli_hello"), &unlimited(), &spec).await;
    assert_eq!(
        (exit.exit_code, exit.reason),
        (1, Reason::Error),
        "{exit:?}"
    );

    let spec = crate::spec(&["cli_exit_code"], &[("EXIT_CODE", "0")]);
    let (exit, _) = run(&t.host, &image("cli_exit_code"), &unlimited(), &spec).await;
    assert_eq!(
        (exit.exit_code, exit.reason),
        (0, Reason::Completed),
        "{exit:?}"
    );
}

#[tokio::test]
async fn a_trap_is_an_error_exit_not_a_host_error() {
    let t = host();
    let (exit, log) = run(
        &t.host,
        &image("trap_at_start"),
        &unlimited(),
        &spec(&["trap_at_start"], &[]),
    )
    .await;
    assert_eq!(exit.reason, Reason::Error, "{exit:?}");
    assert_eq!(exit.exit_code, skiff_runtime::pod::EXIT_TRAP);
    assert!(exit.message.contains("unreachable"), "{exit:?}");
    assert!(log.contains("about to trap"), "{log}");
}

#[tokio::test]
async fn stack_overflow_is_an_error_exit() {
    let t = host();
    let (exit, _) = run(
        &t.host,
        &image("limits_stack_overflow"),
        &unlimited(),
        &spec(&["x"], &[]),
    )
    .await;
    assert_eq!(exit.reason, Reason::Error, "{exit:?}");
    assert_eq!(exit.exit_code, skiff_runtime::pod::EXIT_TRAP);
    assert!(exit.message.contains("call stack exhausted"), "{exit:?}");
}

#[tokio::test]
async fn preopens_are_the_only_files() {
    let t = host();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("input.txt"), "from the host\n").unwrap();
    let mut spec = spec(&["cli_files"], &[]);
    spec.preopens.push(Preopen {
        host: data.path().to_path_buf(),
        guest: "/data".into(),
        read_only: false,
    });
    let (exit, log) = run(&t.host, &image("cli_files"), &unlimited(), &spec).await;
    assert_eq!(exit.reason, Reason::Completed, "{exit:?} {log}");
    assert!(log.contains("input: from the host\n"), "{log}");
    assert!(log.contains("outside: denied\n"), "{log}");
    let written = std::fs::read_to_string(data.path().join("output.txt")).unwrap();
    assert_eq!(written, "written by cli_files\n");
}

#[tokio::test]
async fn a_read_only_preopen_refuses_writes() {
    let t = host();
    let data = tempfile::tempdir().unwrap();
    let mut spec = spec(&["cli_files"], &[]);
    spec.preopens.push(Preopen {
        host: data.path().to_path_buf(),
        guest: "/data".into(),
        read_only: true,
    });
    let (exit, log) = run(&t.host, &image("cli_files"), &unlimited(), &spec).await;
    assert_eq!(exit.exit_code, 1, "{exit:?} {log}");
    assert!(!data.path().join("output.txt").exists());
}

const PREVIEW1_HELLO: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello p1\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 9))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 7))))
"#;

#[tokio::test]
async fn preview1_modules_run_as_commands() {
    let t = host();
    let wasm = wat::parse_str(PREVIEW1_HELLO).unwrap();
    let image = file_image(t.dir.path(), "p1.wasm", &wasm);
    let workload = t.host.load(&image).await.unwrap();
    assert_eq!(workload.kind(), WorkloadKind::Preview1);
    let (exit, log) = run(&t.host, &image, &unlimited(), &spec(&["p1"], &[])).await;
    assert_eq!(exit.exit_code, 7, "{exit:?}");
    assert_eq!(log, "hello p1\n");
}

#[tokio::test]
async fn logs_follow_a_running_command() {
    let t = host();
    let workload = t.host.load(&image("cli_ticker")).await.unwrap();
    let log = ContainerLog::new(LogConfig::default());
    let mut follow = Box::pin(log.follow(LogQuery::default()));
    let host = t.host.clone();
    let pod = unlimited();
    let spec = spec(&["cli_ticker"], &[("TICKS", "3")]);
    let run_log = log.clone();
    let run = tokio::spawn(async move {
        host.run(&workload, &pod, &spec, &run_log, &CancellationToken::new())
            .await
    });
    let mut followed = Vec::new();
    let collect = async {
        while let Some(chunk) = follow.next().await {
            followed.extend_from_slice(&chunk);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), collect)
        .await
        .expect("follow ends when the container does");
    let exit = run.await.unwrap().unwrap();
    assert_eq!(exit.reason, Reason::Completed);
    assert_eq!(
        String::from_utf8_lossy(&followed),
        "tick 0\ntick 1\ntick 2\nticker: done\n"
    );
    let tail = LogQuery {
        tail_lines: Some(1),
        timestamps: true,
        ..LogQuery::default()
    };
    let last = String::from_utf8_lossy(&log.read(&tail)).into_owned();
    assert!(last.ends_with("Z ticker: done\n"), "{last}");
}
