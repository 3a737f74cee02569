//! What only the embedded store has: a file that outlives the process, bounded watch
//! buffers, history purging, shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use skiff_store::embedded::{EmbeddedOptions, EmbeddedStore};
use skiff_store::{Error, KeyRange, Op, RangeOptions, Store, Txn};

use crate::backend::eventually;

async fn open(path: &std::path::Path) -> EmbeddedStore {
    EmbeddedStore::open(path, EmbeddedOptions::default())
        .await
        .expect("open the store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_values_revisions_and_leases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = open(&path).await;
    store.put(b"/a", b"1".to_vec()).await.expect("put");
    let lease = store.lease_grant(2).await.expect("grant");
    store
        .create(b"/held", b"x".to_vec(), Some(lease))
        .await
        .expect("create")
        .expect("absent");
    let r = store.put(b"/a", b"2".to_vec()).await.expect("put");
    store.compact(2).await.expect("compact");
    store.close().await.expect("close");
    drop(store);

    let store = open(&path).await;
    let status = store.status().await.expect("status");
    assert_eq!((status.revision, status.compact_revision), (r, 2));
    let (kv, _) = store.get(b"/a").await.expect("get");
    assert_eq!(kv.map(|kv| kv.value), Some(b"2".to_vec()));
    assert_eq!(store.put(b"/b", vec![]).await.expect("put"), r + 1);
    // The lease came back with a fresh deadline, and still expires.
    assert_eq!(store.lease_keep_alive(lease).await.expect("keepalive"), 2);
    assert!(store.get(b"/held").await.expect("get").0.is_some());
    let other = store.lease_grant(5).await.expect("grant");
    assert_ne!(other, lease, "lease ids are not reused");
    eventually(Duration::from_secs(10), "the lease to expire", || async {
        store.get(b"/held").await.expect("get").0.is_none()
    })
    .await;
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_commits_queued_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = Arc::new(open(&path).await);
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..300 {
        let store = Arc::clone(&store);
        writes.spawn(async move {
            let key = format!("/q/{i}");
            (key.clone(), store.put(key.as_bytes(), vec![1]).await)
        });
    }
    tokio::task::yield_now().await;
    store.close().await.expect("close");
    let mut done = Vec::new();
    while let Some(write) = writes.join_next().await {
        let (key, result) = write.expect("a write task");
        match result {
            Ok(revision) => done.push((key, revision)),
            Err(Error::Closed) => {}
            Err(e) => panic!("{key}: {e}"),
        }
    }
    drop(store);
    let store = open(&path).await;
    for (key, revision) in &done {
        let kv = store.get(key.as_bytes()).await.expect("get").0;
        assert_eq!(kv.map(|kv| kv.mod_revision), Some(*revision), "{key}");
    }
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_watcher_is_told_where_to_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EmbeddedOptions {
        watch_buffer: 4,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open(dir.path().join("store.db"), options)
        .await
        .expect("open");
    let mut watch = store
        .watch(KeyRange::prefix("/lag/"), 0)
        .await
        .expect("watch");
    let mut revisions = Vec::new();
    for i in 0..40 {
        // One write at a time: one committed batch each.
        revisions.push(
            store
                .put(format!("/lag/{i}").as_bytes(), vec![])
                .await
                .expect("put"),
        );
    }
    let mut seen = Vec::new();
    let resume_from = loop {
        match watch.next().await.expect("the stream ends with an error") {
            Ok(response) => seen.push(response.revision),
            Err(Error::WatchLagged { resume_from }) => break resume_from,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(watch.next().await.is_none(), "nothing after the error");
    let mut resumed = store
        .watch(KeyRange::prefix("/lag/"), resume_from)
        .await
        .expect("resume");
    while seen.last() != revisions.last() {
        let response = resumed.next().await.expect("more").expect("a response");
        seen.push(response.revision);
    }
    assert_eq!(seen, revisions, "nothing lost or repeated across the lag");
    store.close().await.expect("close");
}

/// The rows of the log table below `revision`: (revision, key, deleted).
fn log_rows_below(path: &std::path::Path, revision: i64) -> Vec<(i64, Vec<u8>, bool)> {
    let conn = rusqlite::Connection::open(path).expect("open the file with sqlite");
    let mut stmt = conn
        .prepare("SELECT revision, key, deleted FROM log WHERE revision < ?1 ORDER BY revision")
        .expect("prepare");
    stmt.query_map([revision], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    })
    .expect("query")
    .collect::<rusqlite::Result<_>>()
    .expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_purges_history_below_the_compact_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = open(&path).await;
    let put = |key: &'static str| {
        let store = &store;
        async move {
            store
                .put(key.as_bytes(), key.as_bytes().to_vec())
                .await
                .expect("put")
        }
    };
    let delete = |key: &'static str| {
        let store = &store;
        async move {
            store
                .txn(Txn::new().success(Op::delete(key)))
                .await
                .expect("delete")
                .revision
        }
    };
    for _ in 0..3 {
        put("/p/a").await;
        put("/p/b").await;
    }
    put("/p/gone").await;
    delete("/p/gone").await;
    put("/p/late").await;
    let c1 = put("/p/a").await;
    store.compact(c1).await.expect("compact");
    // Below c1 survives, for each key, only its newest row below c1, if a put: /p/a's
    // (the previous value of its event at c1), /p/b's and /p/late's.
    eventually(Duration::from_secs(10), "the purge", || async {
        let keys: Vec<Vec<u8>> = log_rows_below(&path, c1).into_iter().map(|r| r.1).collect();
        keys == [b"/p/a".to_vec(), b"/p/b".to_vec(), b"/p/late".to_vec()]
    })
    .await;

    // /p/late, a survivor, is deleted and /p/b replaced: the next purge drops both
    // (and the delete), keeping /p/a at c1 and /p/b's new value.
    delete("/p/late").await;
    put("/p/b").await;
    let c2 = put("/p/c").await;
    store.compact(c2).await.expect("compact again");
    eventually(Duration::from_secs(10), "the second purge", || async {
        let rows = log_rows_below(&path, c2);
        rows.len() == 2 && rows.iter().all(|r| !r.2)
    })
    .await;
    let now = store
        .range(KeyRange::prefix("/p/"), RangeOptions::default())
        .await
        .expect("range");
    let at_c2 = store
        .range(
            KeyRange::prefix("/p/"),
            RangeOptions {
                revision: Some(c2),
                ..RangeOptions::default()
            },
        )
        .await
        .expect("range at c2");
    assert_eq!(now.kvs, at_c2.kvs);
    let keys: Vec<&[u8]> = now.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, [b"/p/a".as_slice(), b"/p/b", b"/p/c"]);
    store.close().await.expect("close");
}
