//! Durability: a child process (this test binary, re-executed) writes as fast as it can
//! and prints every acknowledged write; the parent SIGKILLs it, reopens the file and
//! finds every acknowledged write, and a history without holes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use skiff_store::embedded::{EmbeddedOptions, EmbeddedStore};
use skiff_store::{KeyRange, Store};

const DB_ENV: &str = "SKIFF_STORE_CRASH_DB";
const WRITERS: usize = 16;

/// The child half: does nothing unless run by `acknowledged_writes_survive_sigkill`.
#[test]
#[ignore = "run by crash::acknowledged_writes_survive_sigkill in a child process"]
fn child() {
    let Ok(path) = std::env::var(DB_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a runtime");
    runtime.block_on(async {
        let store = Arc::new(
            EmbeddedStore::open(&path, EmbeddedOptions::default())
                .await
                .expect("open the store"),
        );
        let mut writers = tokio::task::JoinSet::new();
        for writer in 0..WRITERS {
            let store = Arc::clone(&store);
            writers.spawn(async move {
                for i in 0u64.. {
                    let key = format!("/crash/{writer}/{i}");
                    let revision = store
                        .put(key.as_bytes(), vec![b'x'; 64])
                        .await
                        .expect("put");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {key} {revision}").expect("print an ack");
                    out.flush().expect("flush the ack");
                }
            });
        }
        // Writes until killed.
        writers.join_next().await;
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("crash.db");
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash::child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DB_ENV, &db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the writer process");
    let stdout = child.stdout.take().expect("the child's stdout");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut acks: Vec<(String, i64)> = Vec::new();
    let started = Instant::now();
    let mut first_ack: Option<Instant> = None;
    while acks.len() < 2000 && first_ack.is_none_or(|t| t.elapsed() < Duration::from_secs(3)) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the writer process acknowledged nothing in 30 s"
        );
        let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        if let Some(ack) = parse_ack(&line) {
            first_ack.get_or_insert_with(Instant::now);
            acks.push(ack);
        }
    }
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap the writer");
    reader.join().expect("the reader thread");
    // Acks printed before the kill and still in the pipe count too.
    acks.extend(lines.try_iter().filter_map(|line| parse_ack(&line)));
    assert!(acks.len() >= 100, "only {} acks", acks.len());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a runtime");
    runtime.block_on(verify(&db, &acks));
}

fn parse_ack(line: &str) -> Option<(String, i64)> {
    let mut parts = line.strip_prefix("ack ")?.split(' ');
    let key = parts.next()?.to_owned();
    let revision = parts.next()?.parse().ok()?;
    Some((key, revision))
}

async fn verify(db: &std::path::Path, acks: &[(String, i64)]) {
    let store = EmbeddedStore::open(db, EmbeddedOptions::default())
        .await
        .expect("reopen after the crash");
    let current = store.status().await.expect("status").revision;
    let max_ack = acks.iter().map(|(_, r)| *r).max().unwrap_or(0);
    assert!(
        current >= max_ack,
        "revision {current} < acknowledged {max_ack}"
    );
    for (key, revision) in acks {
        let kv = store
            .get(key.as_bytes())
            .await
            .expect("get")
            .0
            .unwrap_or_else(|| panic!("acknowledged write {key} at {revision} is lost"));
        assert_eq!(kv.mod_revision, *revision, "{key}");
    }
    let mut watch = store
        .watch(KeyRange::prefix(""), 1)
        .await
        .expect("watch the whole history");
    let mut expected = 1;
    while expected <= current {
        let response = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("history within 10 s")
            .expect("the history stream ended")
            .expect("a history response");
        assert_eq!(response.revision, expected, "a hole in the history");
        assert_eq!(response.events.len(), 1);
        expected += 1;
    }
    store.close().await.expect("close");
}
