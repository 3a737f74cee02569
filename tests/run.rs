//! End-to-end tests of `skiff run` through the real binary and the real guests of
//! `tests/guests` (built by `make guests`).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn guest(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/guests/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "guest {name} is not built ({}): run `make guests`",
        path.display()
    );
    path
}

fn skiff_run(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("run")
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env_remove("RUST_LOG")
        .env("SKIFF_RUN_TEST_SECRET", "must not leak")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_command_gets_its_args_and_env_only() {
    let cache = tempfile::tempdir().unwrap();
    let wasm = guest("cli_hello");
    let out = skiff_run(
        cache.path(),
        &[
            "--env",
            "GREETING=hi there",
            wasm.to_str().unwrap(),
            "--",
            "one",
            "--two",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("hello from skiff\narg[0]=cli_hello.wasm\n"),
        "{stdout}"
    );
    assert!(stdout.contains("arg[1]=one\narg[2]=--two\n"), "{stdout}");
    let env: Vec<&str> = stdout.lines().filter(|l| l.starts_with("env ")).collect();
    assert_eq!(env, ["env GREETING=hi there"], "no host env leaks");
    assert_eq!(text(&out.stderr), "cli_hello: done\n");
}

#[test]
fn skiff_run_exits_with_the_guests_exit_code() {
    let cache = tempfile::tempdir().unwrap();
    let wasm = guest("cli_exit_code");
    let out = skiff_run(
        cache.path(),
        &["--env", "EXIT_CODE=42", wasm.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(42), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "exiting with 42\n");
    assert_eq!(
        text(&out.stderr),
        "",
        "a guest's own exit is not reported as a failure"
    );

    // A second run loads the cached artifact and behaves the same.
    let out = skiff_run(
        cache.path(),
        &["--env", "EXIT_CODE=0", wasm.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_memory_limit_hit_is_reported_as_oom_killed() {
    let cache = tempfile::tempdir().unwrap();
    let out = skiff_run(
        cache.path(),
        &[
            "--memory",
            "32Mi",
            guest("limits_memory_bomb").to_str().unwrap(),
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(137), "{stderr}");
    assert!(
        stderr.contains("skiff run: OOMKilled: memory limit 32Mi reached"),
        "{stderr}"
    );
}

#[test]
fn a_timeout_stops_a_spinning_command() {
    let cache = tempfile::tempdir().unwrap();
    let out = skiff_run(
        cache.path(),
        &[
            "--timeout",
            "500ms",
            "--cpu",
            "500m",
            guest("limits_spin").to_str().unwrap(),
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(137), "{stderr}");
    assert!(stderr.contains("skiff run: DeadlineExceeded"), "{stderr}");
    assert_eq!(text(&out.stdout), "spinning\n");
}

#[test]
fn a_trap_is_reported_with_exit_code_134() {
    let cache = tempfile::tempdir().unwrap();
    let out = skiff_run(cache.path(), &[guest("trap_at_start").to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(134), "{stderr}");
    assert!(stderr.contains("about to trap"), "{stderr}");
    assert!(stderr.contains("skiff run: Error: trap"), "{stderr}");
}

#[test]
fn dirs_are_preopened_and_nothing_else_is_visible() {
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("input.txt"), "hello file").unwrap();
    let dir = format!("{}::/data", data.path().display());
    let out = skiff_run(
        cache.path(),
        &["--dir", &dir, guest("cli_files").to_str().unwrap()],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(stdout, "input: hello file\noutside: denied\n");
    assert_eq!(
        std::fs::read_to_string(data.path().join("output.txt")).unwrap(),
        "written by cli_files\n"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let junk = cache.path().join("junk.wasm");
    std::fs::write(&junk, "not wasm").unwrap();
    let out = skiff_run(cache.path(), &[junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a WebAssembly binary"));

    let out = skiff_run(cache.path(), &["oci://example.invalid/hello:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("OCI registries are not supported yet"));

    let out = skiff_run(
        cache.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            guest("cli_hello").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not an HTTP component"));
}

#[test]
fn an_http_component_is_served_until_interrupted() {
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("run")
        .arg("--cache-dir")
        .arg(cache.path())
        .args(["--listen", "127.0.0.1:0"])
        .arg(guest("http_echo"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("skiff run exited before serving");
        }
        if let Some(rest) = line.trim().split(" on http://").nth(1) {
            break rest.trim_end_matches('/').to_string();
        }
    };

    for (method, path, body) in [("POST", "/echo?q=1", "ping"), ("GET", "/", "")] {
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            conn,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        // The body may be chunked: look for the echo inside it.
        assert!(
            response.contains(&format!("{method} {path}\n{body}")),
            "{response}"
        );
    }

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(stdout, "http_echo: POST /echo?q=1\nhttp_echo: GET /\n");
}
