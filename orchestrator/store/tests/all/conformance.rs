//! One conformance suite, run against every backend: each `async fn` below takes a fresh
//! [`Backend`]; the `conformance!` macro instantiates it as `embedded::<name>` and
//! `etcd::<name>`.
//!
//! Revisions are compared relatively: etcd starts at revision 1, the embedded store at 0.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use skiff_store::{
    CompactionPolicy, Compare, CompareOp, Error, EventKind, KeyRange, KeyValue, LeaseId,
    MAX_VALUE_BYTES, Op, OpResponse, RangeOptions, Revision, Store, Txn, WatchResponse,
    WatchStream, run_compactor,
};
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, Kind, eventually};

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = crate::backend::embedded().await;
                    super::$name(&backend).await;
                    backend.close().await;
                }
            )*
        }
        #[cfg(feature = "etcd")]
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = crate::backend::etcd().await;
                    super::$name(&backend).await;
                    backend.close().await;
                }
            )*
        }
    };
}

conformance!(
    revision_ordering,
    get_and_range_at_old_revisions,
    range_limit_more_count,
    prefixes_and_odd_bytes,
    create_if_absent,
    cas_race_has_one_winner_per_round,
    delete_if,
    delete_range,
    watch_from_revision_1,
    watch_from_a_middle_revision,
    watch_resumes_without_loss_or_duplicates,
    live_watch_after_catch_up,
    compaction,
    compactor_trims_history,
    lease_expiry_deletes_attached_keys,
    lease_keepalive_and_revoke,
    large_values,
    txn_with_several_ops,
    invalid_requests,
    close_refuses_later_calls,
);

const WAIT: Duration = Duration::from_secs(10);

async fn put(s: &dyn Store, key: &str, value: &str) -> Revision {
    s.put(key.as_bytes(), value.as_bytes().to_vec())
        .await
        .expect("put")
}

async fn delete(s: &dyn Store, key: &str) -> Revision {
    s.txn(Txn::new().success(Op::delete(key)))
        .await
        .expect("delete")
        .revision
}

async fn revision(s: &dyn Store) -> Revision {
    s.status().await.expect("status").revision
}

async fn value_of(s: &dyn Store, key: &str) -> Option<Vec<u8>> {
    s.get(key.as_bytes())
        .await
        .expect("get")
        .0
        .map(|kv| kv.value)
}

fn keys(kvs: &[KeyValue]) -> Vec<&[u8]> {
    kvs.iter().map(|kv| kv.key.as_slice()).collect()
}

fn at(revision: Revision) -> RangeOptions {
    RangeOptions {
        revision: Some(revision),
        ..RangeOptions::default()
    }
}

async fn next_response(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a watch response within 10 s")
        .expect("the watch stream ended")
        .expect("a watch response, not an error")
}

/// Reads responses until one at `revision` or later.
async fn collect_until(stream: &mut WatchStream, revision: Revision) -> Vec<WatchResponse> {
    let mut got: Vec<WatchResponse> = Vec::new();
    while got.last().is_none_or(|r| r.revision < revision) {
        got.push(next_response(stream).await);
    }
    got
}

async fn assert_quiet(stream: &mut WatchStream) {
    let extra = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
    assert!(extra.is_err(), "unexpected watch item: {extra:?}");
}

fn revisions(responses: &[WatchResponse]) -> Vec<Revision> {
    responses.iter().map(|r| r.revision).collect()
}

async fn revision_ordering(b: &Backend) {
    let s = &*b.store;
    let r0 = revision(s).await;
    let r1 = put(s, "a", "1").await;
    assert_eq!(r1, r0 + 1, "the first write on a fresh store");
    let r2 = put(s, "b", "1").await;
    assert_eq!(r2, r1 + 1);

    let failed = s
        .txn(
            Txn::new()
                .when(Compare::mod_revision("a", CompareOp::Equal, r1 + 100))
                .success(Op::put("a", b"x".to_vec())),
        )
        .await
        .expect("txn");
    assert!(!failed.succeeded);
    assert_eq!(failed.revision, r2, "a failed compare does not bump");
    let read = s
        .txn(Txn::new().success(Op::get("a")))
        .await
        .expect("read-only txn");
    assert_eq!(read.revision, r2, "a read-only txn does not bump");
    let nothing = s
        .txn(Txn::new().success(Op::delete("absent")))
        .await
        .expect("delete an absent key");
    assert!(nothing.succeeded);
    assert_eq!(nothing.revision, r2, "deleting nothing does not bump");
    assert_eq!(
        nothing.responses,
        vec![OpResponse::Delete { deleted: vec![] }]
    );
    assert_eq!(revision(s).await, r2);

    let r3 = delete(s, "a").await;
    assert_eq!(r3, r2 + 1);
    let (kv, read_at) = s.get(b"b").await.expect("get");
    assert_eq!(read_at, r3, "get reports the revision it read at");
    let kv = kv.expect("b exists");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r2, r2, 1)
    );
    let r4 = put(s, "b", "2").await;
    let kv = s.get(b"b").await.expect("get").0.expect("b exists");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r2, r4, 2)
    );
    assert_eq!(kv.lease, None);
}

async fn get_and_range_at_old_revisions(b: &Backend) {
    let s = &*b.store;
    let r1 = put(s, "/o/a", "1").await;
    let r2 = put(s, "/o/a", "2").await;
    let r3 = put(s, "/o/b", "1").await;
    let r4 = delete(s, "/o/a").await;

    assert_eq!(value_of(s, "/o/a").await, None);
    let read = |rev| s.range(KeyRange::prefix("/o/"), at(rev));
    let v1 = read(r1).await.expect("range at r1");
    assert_eq!(v1.revision, r1);
    assert_eq!(keys(&v1.kvs), [b"/o/a"]);
    assert_eq!(v1.kvs[0].value, b"1");
    assert_eq!(
        (
            v1.kvs[0].create_revision,
            v1.kvs[0].mod_revision,
            v1.kvs[0].version
        ),
        (r1, r1, 1)
    );
    let v2 = read(r2).await.expect("range at r2");
    assert_eq!(v2.kvs[0].value, b"2");
    assert_eq!(
        (
            v2.kvs[0].create_revision,
            v2.kvs[0].mod_revision,
            v2.kvs[0].version
        ),
        (r1, r2, 2)
    );
    let v3 = read(r3).await.expect("range at r3");
    assert_eq!(keys(&v3.kvs), [b"/o/a".as_slice(), b"/o/b"]);
    assert_eq!(v3.count, 2);
    let v4 = read(r4).await.expect("range at r4");
    assert_eq!(keys(&v4.kvs), [b"/o/b"]);
    let one = s
        .range(KeyRange::key("/o/a"), at(r2))
        .await
        .expect("one key at r2");
    assert_eq!(one.kvs[0].value, b"2");

    match s.range(KeyRange::key("/o/a"), at(r4 + 10)).await {
        Err(Error::FutureRevision { requested, current }) => {
            assert_eq!((requested, current), (r4 + 10, r4));
        }
        other => panic!("range in the future: {other:?}"),
    }
}

async fn range_limit_more_count(b: &Backend) {
    let s = &*b.store;
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(put(s, &format!("/l/{i:02}"), "v").await);
    }
    let with = |limit, count_only| RangeOptions {
        limit,
        count_only,
        ..RangeOptions::default()
    };
    let r = s
        .range(KeyRange::prefix("/l/"), with(Some(3), false))
        .await
        .expect("range");
    assert_eq!(keys(&r.kvs), [b"/l/00", b"/l/01", b"/l/02"]);
    assert!(r.more);
    assert_eq!(r.count, 10);
    let r = s
        .range(KeyRange::prefix("/l/"), with(Some(10), false))
        .await
        .expect("range");
    assert_eq!((r.kvs.len(), r.more, r.count), (10, false, 10));
    let r = s
        .range(KeyRange::prefix("/l/"), with(Some(0), false))
        .await
        .expect("range");
    assert_eq!((r.kvs.len(), r.more), (10, false), "limit 0 means no limit");
    let r = s
        .range(KeyRange::prefix("/l/"), with(None, true))
        .await
        .expect("count");
    assert_eq!((r.kvs.len(), r.count, r.more), (0, 10, false));
    let r = s
        .range(KeyRange::between("/l/03", "/l/07"), with(None, false))
        .await
        .expect("between");
    assert_eq!(keys(&r.kvs), [b"/l/03", b"/l/04", b"/l/05", b"/l/06"]);
    let old = s
        .range(
            KeyRange::prefix("/l/"),
            RangeOptions {
                revision: Some(revs[4]),
                limit: Some(2),
                count_only: false,
            },
        )
        .await
        .expect("old range with a limit");
    assert_eq!(keys(&old.kvs), [b"/l/00", b"/l/01"]);
    assert_eq!((old.more, old.count, old.revision), (true, 5, revs[4]));
}

async fn prefixes_and_odd_bytes(b: &Backend) {
    let s = &*b.store;
    let odd: Vec<&[u8]> = vec![
        b"p/\xff",
        b"p/\xff\xff",
        b"p/\xff\x00",
        b"p/\x00",
        b"p/a\x00b",
        b"p/\xc3\x28",
        b"p\xff",
        b"\xff",
        b"\xff\xff\x01",
        b"\x00",
        b"q",
    ];
    let first = revision(s).await + 1;
    for key in &odd {
        let mut value = b"v\x00\xfe".to_vec();
        value.extend_from_slice(key);
        s.put(key, value).await.expect("put an odd key");
    }
    for key in &odd {
        let kv = s
            .get(key)
            .await
            .expect("get")
            .0
            .expect("the odd key exists");
        assert_eq!(&kv.key, key);
        assert!(kv.value.ends_with(key) && kv.value.starts_with(b"v\x00\xfe"));
    }
    let expect = |prefix: &[u8]| {
        let mut want: Vec<&[u8]> = odd
            .iter()
            .copied()
            .filter(|k| k.starts_with(prefix))
            .collect();
        want.sort();
        want
    };
    for prefix in [
        b"p/".as_slice(),
        b"p/\xff",
        b"p",
        b"\xff",
        b"\xff\xff",
        b"\x00",
        b"",
    ] {
        let got = s
            .range(KeyRange::prefix(prefix), RangeOptions::default())
            .await
            .expect("prefix range");
        assert_eq!(keys(&got.kvs), expect(prefix), "prefix {prefix:?}");
        assert_eq!(got.count, expect(prefix).len());
    }
    let mut watch = s
        .watch(KeyRange::prefix(b"p/\xff"), first)
        .await
        .expect("watch");
    let got = collect_until(&mut watch, first + 2).await;
    let seen: Vec<&[u8]> = got
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.kv.key.as_slice()))
        .collect();
    assert_eq!(seen, [b"p/\xff".as_slice(), b"p/\xff\xff", b"p/\xff\x00"]);
}

async fn create_if_absent(b: &Backend) {
    let s = &*b.store;
    let created = s
        .create(b"/c/a", b"1".to_vec(), None)
        .await
        .expect("create")
        .expect("the key was absent");
    let existing = s
        .create(b"/c/a", b"2".to_vec(), None)
        .await
        .expect("create again")
        .expect_err("the key exists");
    assert_eq!(existing.value, b"1");
    assert_eq!(existing.mod_revision, created);
    assert_eq!(value_of(s, "/c/a").await.as_deref(), Some(b"1".as_slice()));
    assert_eq!(
        revision(s).await,
        created,
        "the failed create wrote nothing"
    );
}

async fn cas_race_has_one_winner_per_round(b: &Backend) {
    const TASKS: usize = 16;
    const ROUNDS: usize = 4;
    put(&*b.store, "/cas", "init").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = Arc::clone(&b.store);
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            let mut results = Vec::new();
            for round in 0..ROUNDS {
                barrier.wait().await;
                let seen = store.get(b"/cas").await.expect("get").0.expect("exists");
                barrier.wait().await;
                let value = format!("{round}:{task}").into_bytes();
                let result = store
                    .update(b"/cas", seen.mod_revision, value.clone())
                    .await
                    .expect("update");
                results.push((round, value, result));
                barrier.wait().await;
            }
            results
        });
    }
    let mut all = Vec::new();
    while let Some(results) = tasks.join_next().await {
        all.extend(results.expect("a CAS task"));
    }
    for round in 0..ROUNDS {
        let this: Vec<_> = all.iter().filter(|(r, _, _)| *r == round).collect();
        let winners: Vec<_> = this.iter().filter(|(_, _, res)| res.is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one CAS wins");
        let (_, won_value, won) = winners[0];
        let won_rev = *won.as_ref().expect("the winner");
        for (_, _, result) in &this {
            if let Err(current) = result {
                let current = current.as_ref().expect("losers see the current value");
                assert_eq!(current.mod_revision, won_rev, "round {round}");
                assert_eq!(&current.value, won_value, "round {round}");
            }
        }
    }
}

async fn delete_if(b: &Backend) {
    let s = &*b.store;
    let r1 = put(s, "/d", "1").await;
    let r2 = put(s, "/d", "2").await;
    let stale = s.delete_if(b"/d", r1).await.expect("delete_if");
    assert_eq!(
        stale.expect_err("stale revision").map(|kv| kv.mod_revision),
        Some(r2)
    );
    let r3 = s
        .delete_if(b"/d", r2)
        .await
        .expect("delete_if")
        .expect("current revision");
    assert_eq!(r3, r2 + 1);
    let gone = s.delete_if(b"/d", r2).await.expect("delete_if");
    assert_eq!(gone, Err(None), "a deleted key");
    assert_eq!(value_of(s, "/d").await, None);
}

async fn delete_range(b: &Backend) {
    let s = &*b.store;
    for key in ["/dr/a", "/dr/b", "/dr/c", "/dr0"] {
        put(s, key, key).await;
    }
    let before = revision(s).await;
    let resp = s
        .txn(Txn::new().success(Op::Delete(KeyRange::prefix("/dr/"))))
        .await
        .expect("delete a prefix");
    assert_eq!(
        resp.revision,
        before + 1,
        "one revision for the whole range"
    );
    let OpResponse::Delete { deleted } = &resp.responses[0] else {
        panic!("not a delete response: {:?}", resp.responses)
    };
    assert_eq!(keys(deleted), [b"/dr/a", b"/dr/b", b"/dr/c"]);
    assert_eq!(deleted[1].value, b"/dr/b");
    let left = s
        .range(KeyRange::prefix("/dr"), RangeOptions::default())
        .await
        .expect("range");
    assert_eq!(keys(&left.kvs), [b"/dr0"]);

    let mut watch = s
        .watch(KeyRange::prefix("/dr/"), resp.revision)
        .await
        .expect("watch");
    let got = next_response(&mut watch).await;
    assert_eq!(got.revision, resp.revision);
    assert_eq!(got.events.len(), 3);
    for (event, key) in got.events.iter().zip(["/dr/a", "/dr/b", "/dr/c"]) {
        assert_eq!(event.kind, EventKind::Delete);
        assert_eq!(event.kv.key, key.as_bytes());
        assert!(event.kv.value.is_empty());
        assert_eq!(event.kv.mod_revision, resp.revision);
        let prev = event
            .prev_kv
            .as_ref()
            .expect("a delete carries the prev value");
        assert_eq!(prev.value, key.as_bytes());
    }
}

/// Writes a small history under `/w/` (and one key outside it); returns the revisions
/// of the writes under `/w/`.
async fn write_history(s: &dyn Store) -> Vec<Revision> {
    let r1 = put(s, "/w/a", "1").await;
    let r2 = put(s, "/w/b", "1").await;
    let r3 = put(s, "/w/a", "2").await;
    let r4 = delete(s, "/w/b").await;
    let r5 = s
        .txn(
            Txn::new()
                .success(Op::put("/w/d", b"1".to_vec()))
                .success(Op::put("/w/c", b"1".to_vec())),
        )
        .await
        .expect("txn")
        .revision;
    put(s, "/x/outside", "1").await;
    let r7 = put(s, "/w/e", "1").await;
    vec![r1, r2, r3, r4, r5, r7]
}

async fn watch_from_revision_1(b: &Backend) {
    let s = &*b.store;
    let revs = write_history(s).await;
    let mut watch = s.watch(KeyRange::prefix("/w/"), 1).await.expect("watch");
    let got = collect_until(&mut watch, revs[5]).await;
    assert_eq!(revisions(&got), revs);
    assert!(
        got.iter()
            .all(|r| r.events.iter().all(|e| e.kv.key.starts_with(b"/w/")))
    );
    let first = &got[0].events[0];
    assert_eq!(
        (first.kind, first.prev_kv.is_none()),
        (EventKind::Put, true)
    );
    let update = &got[2].events[0];
    assert_eq!(update.kv.value, b"2");
    assert_eq!((update.kv.create_revision, update.kv.version), (revs[0], 2));
    let prev = update
        .prev_kv
        .as_ref()
        .expect("an update carries the prev value");
    assert_eq!(
        (prev.value.as_slice(), prev.mod_revision),
        (b"1".as_slice(), revs[0])
    );
    let removal = &got[3].events[0];
    assert_eq!(removal.kind, EventKind::Delete);
    assert_eq!(removal.kv.key, b"/w/b");
    assert_eq!(removal.kv.mod_revision, revs[3]);
    assert_eq!(
        removal.prev_kv.as_ref().map(|kv| kv.mod_revision),
        Some(revs[1])
    );
    let pair: Vec<&[u8]> = got[4].events.iter().map(|e| e.kv.key.as_slice()).collect();
    assert_eq!(
        pair,
        [b"/w/d".as_slice(), b"/w/c"],
        "a txn's events in op order"
    );
    assert_quiet(&mut watch).await;
}

async fn watch_from_a_middle_revision(b: &Backend) {
    let s = &*b.store;
    let revs = write_history(s).await;
    let mut watch = s
        .watch(KeyRange::prefix("/w/"), revs[2])
        .await
        .expect("watch");
    let got = collect_until(&mut watch, revs[5]).await;
    assert_eq!(revisions(&got), revs[2..]);
    let prev = got[0].events[0].prev_kv.as_ref().expect("prev value");
    assert_eq!(prev.value, b"1");
    let mut one = s
        .watch(KeyRange::key("/w/a"), revs[1])
        .await
        .expect("watch");
    let got = next_response(&mut one).await;
    assert_eq!(got.revision, revs[2], "a single-key watch skips other keys");
}

async fn watch_resumes_without_loss_or_duplicates(b: &Backend) {
    let s = &*b.store;
    let mut revs = Vec::new();
    for i in 0..20 {
        revs.push(put(s, &format!("/r/{}", i % 5), &i.to_string()).await);
    }
    let mut watch = s
        .watch(KeyRange::prefix("/r/"), revs[0])
        .await
        .expect("watch");
    let mut got = Vec::new();
    for _ in 0..7 {
        got.push(next_response(&mut watch).await);
    }
    drop(watch);
    let resume = got.last().expect("seven responses").revision + 1;
    let mut watch = s
        .watch(KeyRange::prefix("/r/"), resume)
        .await
        .expect("resume");
    got.extend(collect_until(&mut watch, revs[19]).await);
    assert_eq!(revisions(&got), revs);
    assert_quiet(&mut watch).await;
}

async fn live_watch_after_catch_up(b: &Backend) {
    let s = &*b.store;
    let mut first = Vec::new();
    for i in 0..5 {
        first.push(put(s, &format!("/lv/{i}"), "old").await);
    }
    let mut watch = s
        .watch(KeyRange::prefix("/lv/"), first[0])
        .await
        .expect("watch");
    assert_eq!(revisions(&collect_until(&mut watch, first[4]).await), first);
    let mut tail = s
        .watch(KeyRange::prefix("/lv/"), 0)
        .await
        .expect("watch from now");
    let mut other = s
        .watch(KeyRange::prefix("/other/"), 0)
        .await
        .expect("watch other");

    let store = Arc::clone(&b.store);
    let writer = tokio::spawn(async move {
        let mut revs = Vec::new();
        for i in 0..5 {
            revs.push(put(&*store, &format!("/lv/{i}"), "new").await);
            if i == 2 {
                put(&*store, "/other/x", "1").await;
            }
        }
        revs
    });
    let live = writer.await.expect("the writer task");
    let got = collect_until(&mut watch, live[4]).await;
    assert_eq!(revisions(&got), live);
    assert!(got.iter().all(|r| r.events[0].kv.value == b"new"));
    assert_eq!(revisions(&collect_until(&mut tail, live[4]).await), live);
    let got = next_response(&mut other).await;
    assert_eq!(got.events[0].kv.key, b"/other/x");
    assert_quiet(&mut watch).await;
    assert_quiet(&mut tail).await;
    assert_quiet(&mut other).await;
}

async fn compaction(b: &Backend) {
    let s = &*b.store;
    let _a1 = put(s, "/k/a", "1").await;
    let b1 = put(s, "/k/b", "1").await;
    let a2 = put(s, "/k/a", "2").await;
    let rb = delete(s, "/k/b").await;
    let c1 = put(s, "/k/c", "1").await;
    let a3 = put(s, "/k/a", "3").await;

    s.compact(a2).await.expect("compact");
    assert_eq!(s.status().await.expect("status").compact_revision, a2);
    match s.range(KeyRange::prefix("/k/"), at(b1)).await {
        Err(Error::Compacted {
            requested,
            compact_revision,
        }) => assert_eq!((requested, compact_revision), (b1, a2)),
        other => panic!("range below the compact revision: {other:?}"),
    }
    match s.watch(KeyRange::prefix("/k/"), b1).await {
        Err(Error::Compacted {
            requested,
            compact_revision,
        }) => assert_eq!((requested, compact_revision), (b1, a2)),
        Err(e) => panic!("watch below the compact revision: {e}"),
        Ok(_) => panic!("watch below the compact revision was accepted"),
    }
    let then = s
        .range(KeyRange::prefix("/k/"), at(a2))
        .await
        .expect("range at the compact revision");
    assert_eq!(keys(&then.kvs), [b"/k/a".as_slice(), b"/k/b"]);
    assert_eq!(
        (then.kvs[0].value.as_slice(), then.kvs[1].value.as_slice()),
        (b"2".as_slice(), b"1".as_slice())
    );
    let after_delete = s
        .range(KeyRange::prefix("/k/"), at(rb))
        .await
        .expect("range");
    assert_eq!(keys(&after_delete.kvs), [b"/k/a"]);

    let mut watch = s
        .watch(KeyRange::prefix("/k/"), a2)
        .await
        .expect("watch at the compact revision");
    let got = collect_until(&mut watch, a3).await;
    assert_eq!(revisions(&got), [a2, rb, c1, a3]);
    let removal = &got[1].events[0];
    assert_eq!(
        removal.prev_kv.as_ref().map(|kv| kv.value.as_slice()),
        Some(b"1".as_slice()),
        "the prev value of an event above the compact revision is kept"
    );

    s.compact(b1).await.expect("compacting below is a no-op");
    assert_eq!(s.status().await.expect("status").compact_revision, a2);
    assert!(matches!(
        s.compact(a3 + 100).await,
        Err(Error::FutureRevision { .. })
    ));

    // A second compaction over history the first one already trimmed.
    s.compact(c1).await.expect("compact again");
    for pause in [Duration::ZERO, Duration::from_millis(300)] {
        tokio::time::sleep(pause).await;
        let at_c1 = s
            .range(KeyRange::prefix("/k/"), at(c1))
            .await
            .expect("range at the new compact revision");
        assert_eq!(keys(&at_c1.kvs), [b"/k/a".as_slice(), b"/k/c"]);
        assert_eq!(at_c1.kvs[0].value, b"2");
        let now = s
            .range(KeyRange::prefix("/k/"), RangeOptions::default())
            .await
            .expect("range now");
        assert_eq!(keys(&now.kvs), [b"/k/a".as_slice(), b"/k/c"]);
        assert_eq!(now.kvs[0].value, b"3");
        assert!(matches!(
            s.range(KeyRange::prefix("/k/"), at(rb)).await,
            Err(Error::Compacted { .. })
        ));
    }
}

async fn compactor_trims_history(b: &Backend) {
    let s = &*b.store;
    for i in 0..30 {
        put(s, &format!("/cp/{}", i % 3), &i.to_string()).await;
    }
    let current = revision(s).await;
    let cancel = CancellationToken::new();
    let policy = CompactionPolicy {
        keep_revisions: 10,
        interval: Duration::from_millis(50),
    };
    let compactor = tokio::spawn(run_compactor(Arc::clone(&b.store), policy, cancel.clone()));
    eventually(WAIT, "the compactor to run", || async {
        s.status().await.expect("status").compact_revision == current - 10
    })
    .await;
    cancel.cancel();
    compactor.await.expect("the compactor task");
    assert!(matches!(
        s.range(KeyRange::prefix("/cp/"), at(current - 11)).await,
        Err(Error::Compacted { .. })
    ));
    let kept = s
        .range(KeyRange::prefix("/cp/"), at(current - 10))
        .await
        .expect("range at the compact revision");
    assert_eq!(kept.count, 3);
}

async fn lease_expiry_deletes_attached_keys(b: &Backend) {
    let s = &*b.store;
    let lease = s.lease_grant(1).await.expect("grant");
    for key in ["/lease/a", "/lease/b"] {
        s.create(key.as_bytes(), b"held".to_vec(), Some(lease))
            .await
            .expect("create")
            .expect("absent");
    }
    put(s, "/lease/c", "free").await;
    let kv = s.get(b"/lease/a").await.expect("get").0.expect("exists");
    assert_eq!(kv.lease, Some(lease));
    let mut watch = s
        .watch(KeyRange::prefix("/lease/"), 0)
        .await
        .expect("watch");

    eventually(Duration::from_secs(15), "the lease to expire", || async {
        value_of(s, "/lease/a").await.is_none()
    })
    .await;
    assert_eq!(value_of(s, "/lease/b").await, None);
    assert_eq!(
        value_of(s, "/lease/c").await.as_deref(),
        Some(b"free".as_slice())
    );
    let got = next_response(&mut watch).await;
    assert_eq!(got.events.len(), 2, "both keys go in one revision");
    for (event, key) in got.events.iter().zip(["/lease/a", "/lease/b"]) {
        assert_eq!(
            (event.kind, event.kv.key.as_slice()),
            (EventKind::Delete, key.as_bytes())
        );
        assert_eq!(event.prev_kv.as_ref().and_then(|kv| kv.lease), Some(lease));
    }
    assert!(matches!(
        s.lease_keep_alive(lease).await,
        Err(Error::LeaseNotFound(l)) if l == lease
    ));
    assert!(matches!(
        s.create(b"/lease/d", b"x".to_vec(), Some(lease)).await,
        Err(Error::LeaseNotFound(_))
    ));
}

async fn lease_keepalive_and_revoke(b: &Backend) {
    let s = &*b.store;
    let lease = s.lease_grant(1).await.expect("grant");
    s.create(b"/ka/a", b"held".to_vec(), Some(lease))
        .await
        .expect("create")
        .expect("absent");
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let ttl = s.lease_keep_alive(lease).await.expect("keepalive");
        assert!(ttl >= 1, "ttl {ttl}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        value_of(s, "/ka/a").await.is_some(),
        "keepalives keep the key"
    );

    s.lease_revoke(lease).await.expect("revoke");
    assert_eq!(value_of(s, "/ka/a").await, None, "revoke deletes at once");
    assert!(matches!(
        s.lease_revoke(lease).await,
        Err(Error::LeaseNotFound(_))
    ));
    assert!(matches!(
        s.lease_keep_alive(lease).await,
        Err(Error::LeaseNotFound(_))
    ));

    let before = revision(s).await;
    let unknown = LeaseId(0x7777_7777);
    assert!(matches!(
        s.create(b"/ka/b", b"x".to_vec(), Some(unknown)).await,
        Err(Error::LeaseNotFound(l)) if l == unknown
    ));
    assert_eq!(value_of(s, "/ka/b").await, None);
    assert_eq!(revision(s).await, before, "nothing written");
}

async fn large_values(b: &Backend) {
    let s = &*b.store;
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    s.put(b"/big/ok", big.clone()).await.expect("a 1 MiB value");
    assert_eq!(value_of(s, "/big/ok").await, Some(big));
    let before = revision(s).await;
    match s.put(b"/big/no", vec![7; MAX_VALUE_BYTES + 1]).await {
        Err(Error::ValueTooLarge { size, limit, .. }) => {
            assert_eq!((size, limit), (MAX_VALUE_BYTES + 1, MAX_VALUE_BYTES));
        }
        other => panic!("an oversized value: {other:?}"),
    }
    assert_eq!(value_of(s, "/big/no").await, None);
    assert_eq!(revision(s).await, before, "nothing written");
}

async fn txn_with_several_ops(b: &Backend) {
    let s = &*b.store;
    let r0 = put(s, "/t/c", "1").await;
    let txn = || {
        Txn::new()
            .when(Compare::version("/t/a", CompareOp::Equal, 0))
            .when(Compare::create_revision("/t/c", CompareOp::Greater, 0))
            .success(Op::put("/t/a", b"1".to_vec()))
            .success(Op::put("/t/b", b"1".to_vec()))
            .success(Op::delete("/t/c"))
            .success(Op::Get(KeyRange::prefix("/t/")))
            .failure(Op::get("/t/a"))
    };
    let resp = s.txn(txn()).await.expect("txn");
    assert!(resp.succeeded);
    assert_eq!(resp.revision, r0 + 1);
    assert_eq!(resp.responses.len(), 4);
    assert_eq!(resp.responses[0], OpResponse::Put { prev: None });
    let OpResponse::Delete { deleted } = &resp.responses[2] else {
        panic!("{:?}", resp.responses[2])
    };
    assert_eq!(keys(deleted), [b"/t/c"]);
    let OpResponse::Get { kvs } = &resp.responses[3] else {
        panic!("{:?}", resp.responses[3])
    };
    assert_eq!(
        keys(kvs),
        [b"/t/a".as_slice(), b"/t/b"],
        "a get sees the txn's writes"
    );
    assert!(kvs.iter().all(|kv| kv.mod_revision == r0 + 1));

    let mut watch = s
        .watch(KeyRange::prefix("/t/"), r0 + 1)
        .await
        .expect("watch");
    let got = next_response(&mut watch).await;
    let kinds: Vec<_> = got
        .events
        .iter()
        .map(|e| (e.kind, e.kv.key.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventKind::Put, b"/t/a".to_vec()),
            (EventKind::Put, b"/t/b".to_vec()),
            (EventKind::Delete, b"/t/c".to_vec())
        ]
    );

    let again = s.txn(txn()).await.expect("txn again");
    assert!(!again.succeeded);
    assert_eq!(again.revision, r0 + 1);
    assert_eq!(
        again.into_first_get().map(|kv| kv.value),
        Some(b"1".to_vec())
    );
    let holds = s
        .txn(
            Txn::new()
                .when(Compare::version("/t/a", CompareOp::Less, 2))
                .when(Compare::mod_revision("/t/b", CompareOp::NotEqual, 0))
                .when(Compare::version("/t/c", CompareOp::Equal, 0))
                .success(Op::put("/t/b", b"2".to_vec())),
        )
        .await
        .expect("txn");
    assert!(holds.succeeded);
}

async fn invalid_requests(b: &Backend) {
    let s = &*b.store;
    assert!(matches!(
        s.put(b"", b"x".to_vec()).await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(s.get(b"").await, Err(Error::InvalidRequest(_))));
    let twice = Txn::new()
        .success(Op::put("/i/a", b"1".to_vec()))
        .success(Op::put("/i/a", b"2".to_vec()));
    assert!(matches!(s.txn(twice).await, Err(Error::InvalidRequest(_))));
    assert_eq!(value_of(s, "/i/a").await, None);
    assert!(matches!(
        s.lease_grant(0).await,
        Err(Error::InvalidRequest(_))
    ));
    if b.kind == Kind::Embedded {
        assert!(matches!(
            s.watch(KeyRange::key(""), 0).await,
            Err(Error::InvalidRequest(_))
        ));
    }
}

async fn close_refuses_later_calls(b: &Backend) {
    let s = &*b.store;
    put(s, "/cl/a", "1").await;
    let mut watch = s.watch(KeyRange::prefix("/cl/"), 0).await.expect("watch");
    s.close().await.expect("close");
    assert!(matches!(
        s.put(b"/cl/b", b"1".to_vec()).await,
        Err(Error::Closed)
    ));
    assert!(matches!(s.get(b"/cl/a").await, Err(Error::Closed)));
    let end = tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("the watch ends");
    assert!(matches!(end, Some(Err(Error::Closed))), "{end:?}");
    s.close().await.expect("closing twice is fine");
}
