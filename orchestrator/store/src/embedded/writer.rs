//! The single writer: a dedicated thread that owns the write connection.
//!
//! It takes everything queued (up to `max_batch` requests), applies the requests one
//! after the other inside one SQLite transaction, commits (the WAL is fsynced), and only
//! then publishes the batch's events to watchers and answers the callers. Each write
//! transaction still gets its own revision, and its compares see the writes of the
//! transactions before it in the batch, because they run on the same connection inside
//! the same SQLite transaction. If SQLite fails, the whole batch is rolled back and every
//! caller in it gets the error; nothing is acknowledged that is not durable.
//!
//! When the queue is empty and a compaction left history to purge, the writer deletes it
//! in chunks, so a large compaction never stalls writes for long.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::Connection;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::lease::LeaseClock;
use super::schema::Opened;
use super::sql::{self, KV_COLUMNS, Located, lease_to_column, located_from_row};
use crate::{
    Error, Event, EventKind, KeyValue, LeaseId, Op, OpResponse, Result, Revision, Txn, TxnResponse,
    WatchResponse,
};

/// One committed batch, as watchers receive it: one response per revision, every event
/// of the revision in it, unfiltered.
pub(super) type Batch = Arc<Vec<WatchResponse>>;

/// How many revisions one purge step covers.
const PURGE_CHUNK: Revision = 1000;

/// State shared by the store handle, the writer and the watchers.
pub(super) struct Shared {
    pub path: PathBuf,
    /// The revision of the last commit, published after it is durable.
    pub revision: AtomicI64,
    pub compact_revision: AtomicI64,
    pub events: broadcast::Sender<Batch>,
    pub leases: Arc<LeaseClock>,
}

/// What callers ask of the writer.
pub(super) enum Request {
    Txn {
        txn: Txn,
        reply: oneshot::Sender<Result<TxnResponse>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
    LeaseGrant {
        ttl: i64,
        reply: oneshot::Sender<Result<LeaseId>>,
    },
    LeaseRevoke {
        lease: LeaseId,
        reply: oneshot::Sender<Result<()>>,
    },
    /// From the expiry task: revoke if still granted, answer no one.
    LeaseExpired { lease: LeaseId },
    /// Commit what is queued, then stop.
    Shutdown,
}

/// An answer held back until the batch is durable.
enum Reply {
    Txn(oneshot::Sender<Result<TxnResponse>>, Result<TxnResponse>),
    Unit(oneshot::Sender<Result<()>>, Result<()>),
    Lease(oneshot::Sender<Result<LeaseId>>, Result<LeaseId>),
}

impl Reply {
    fn send(self) {
        // A caller that went away no longer wants the answer; the write stands.
        match self {
            Reply::Txn(tx, r) => drop(tx.send(r)),
            Reply::Unit(tx, r) => drop(tx.send(r)),
            Reply::Lease(tx, r) => drop(tx.send(r)),
        }
    }

    fn fail(self, message: &str) -> Self {
        fn err<T>(message: &str) -> Result<T> {
            Err(Error::Internal(message.to_owned()))
        }
        match self {
            Reply::Txn(tx, _) => Reply::Txn(tx, err(message)),
            Reply::Unit(tx, _) => Reply::Unit(tx, err(message)),
            Reply::Lease(tx, _) => Reply::Lease(tx, err(message)),
        }
    }
}

/// Lease deadline changes, applied once the batch is durable.
enum Effect {
    Start { id: i64, ttl: i64 },
    Remove { id: i64 },
}

/// Keeps a request's own error (`Ok(Err)`) and records SQLite's (`Err`), which fails
/// the whole batch.
fn settle<T>(failure: &mut Option<rusqlite::Error>, r: rusqlite::Result<Result<T>>) -> Result<T> {
    match r {
        Ok(r) => r,
        Err(e) => {
            let message = e.to_string();
            failure.get_or_insert(e);
            Err(Error::Internal(message))
        }
    }
}

pub(super) struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    max_batch: usize,
    rev: Revision,
    compact_rev: Revision,
    /// History below this revision is purged down to what compaction keeps.
    purged_below: Revision,
    next_lease_id: i64,
    /// Granted leases and their TTLs.
    leases: HashMap<i64, i64>,
}

impl Writer {
    pub fn new(opened: Opened, shared: Arc<Shared>, max_batch: usize) -> (Self, Vec<Connection>) {
        let Opened {
            writer,
            readers,
            revision,
            compact_revision,
            oldest_log_revision,
            next_lease_id,
            leases,
            ..
        } = opened;
        let purged_below = if oldest_log_revision == 0 {
            compact_revision
        } else {
            oldest_log_revision
        };
        let writer = Self {
            conn: writer,
            shared,
            max_batch: max_batch.max(1),
            rev: revision,
            compact_rev: compact_revision,
            purged_below,
            next_lease_id,
            leases: leases.into_iter().collect(),
        };
        (writer, readers)
    }

    /// Serves requests until the queue closes or a `Shutdown` has been handled and the
    /// queue is drained.
    pub fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut closing = false;
        loop {
            let first = if closing || self.purged_below < self.compact_rev {
                match requests.try_recv() {
                    Ok(request) => request,
                    Err(mpsc::error::TryRecvError::Empty) if closing => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        self.purge_chunk();
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match requests.blocking_recv() {
                    Some(request) => request,
                    None => break,
                }
            };
            batch.push(first);
            while batch.len() < self.max_batch {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            closing |= self.process(&mut batch);
        }
    }

    fn exec(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    /// Applies and commits one batch; returns whether it held a `Shutdown`.
    fn process(&mut self, batch: &mut Vec<Request>) -> bool {
        let saved = (self.rev, self.compact_rev, self.next_lease_id);
        let mut replies = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut effects = Vec::new();
        let mut shutdown = false;
        let mut failure = self.exec("BEGIN IMMEDIATE").err();
        for request in batch.drain(..) {
            let reply = match request {
                Request::Shutdown => {
                    shutdown = true;
                    continue;
                }
                // The batch is lost already: answer without doing anything (the answer
                // is replaced by the batch's error below).
                Request::Txn { reply, .. } if failure.is_some() => {
                    Reply::Txn(reply, Err(Error::Closed))
                }
                Request::Compact { reply, .. } | Request::LeaseRevoke { reply, .. }
                    if failure.is_some() =>
                {
                    Reply::Unit(reply, Err(Error::Closed))
                }
                Request::LeaseGrant { reply, .. } if failure.is_some() => {
                    Reply::Lease(reply, Err(Error::Closed))
                }
                Request::LeaseExpired { .. } if failure.is_some() => continue,
                Request::LeaseExpired { lease } => {
                    if self.leases.contains_key(&lease.0) {
                        let r = self.revoke(lease, &mut events, &mut effects);
                        if let Err(e) = settle(&mut failure, r) {
                            tracing::warn!(lease = lease.0, error = %e, "expiring a lease failed");
                        }
                    }
                    continue;
                }
                Request::Txn { txn, reply } => {
                    let r = self.apply_txn(txn, &mut events);
                    Reply::Txn(reply, settle(&mut failure, r))
                }
                Request::Compact { revision, reply } => {
                    let r = self.compact(revision);
                    Reply::Unit(reply, settle(&mut failure, r))
                }
                Request::LeaseGrant { ttl, reply } => {
                    let r = self.grant(ttl, &mut effects);
                    Reply::Lease(reply, settle(&mut failure, r))
                }
                Request::LeaseRevoke { lease, reply } => {
                    let r = if self.leases.contains_key(&lease.0) {
                        self.revoke(lease, &mut events, &mut effects)
                    } else {
                        Ok(Err(Error::LeaseNotFound(lease)))
                    };
                    Reply::Unit(reply, settle(&mut failure, r))
                }
            };
            replies.push(reply);
        }
        if failure.is_none() {
            failure = self.exec("COMMIT").err();
        }

        if let Some(e) = failure {
            tracing::error!(path = %self.shared.path.display(), error = %e, "store commit failed; the batch is rolled back");
            if !self.conn.is_autocommit() {
                drop(self.exec("ROLLBACK"));
            }
            (self.rev, self.compact_rev, self.next_lease_id) = saved;
            match load_leases(&self.conn) {
                Ok(leases) => {
                    // A lease whose expiry was lost with the batch expires again later.
                    for (&id, &ttl) in &leases {
                        self.shared.leases.ensure(id, ttl);
                    }
                    self.leases = leases;
                }
                Err(e) => tracing::error!(error = %e, "reloading leases after a rollback failed"),
            }
            let message = format!("the write was rolled back: {e}");
            for reply in replies {
                reply.fail(&message).send();
            }
            return shutdown;
        }

        self.shared.revision.store(self.rev, Ordering::Release);
        self.shared
            .compact_revision
            .store(self.compact_rev, Ordering::Release);
        for effect in effects {
            match effect {
                Effect::Start { id, ttl } => self.shared.leases.start(id, ttl),
                Effect::Remove { id } => self.shared.leases.remove(id),
            }
        }
        if !events.is_empty() {
            // No receiver is fine: nobody is watching.
            drop(self.shared.events.send(Arc::new(events)));
        }
        for reply in replies {
            reply.send();
        }
        shutdown
    }

    fn apply_txn(
        &mut self,
        txn: Txn,
        events: &mut Vec<WatchResponse>,
    ) -> rusqlite::Result<Result<TxnResponse>> {
        let succeeded = sql::eval_compares(&self.conn, &txn.compares)?;
        let ops = if succeeded { txn.success } else { txn.failure };
        for op in &ops {
            if let Op::Put {
                lease: Some(lease), ..
            } = op
                && !self.leases.contains_key(&lease.0)
            {
                return Ok(Err(Error::LeaseNotFound(*lease)));
            }
        }
        let rev = self.rev + 1;
        let mut changes: Vec<Event> = Vec::new();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    let lease_col = lease_to_column(lease);
                    let prev = sql::get_located(&self.conn, &key)?;
                    let (create_revision, version, prev_id) = match &prev {
                        Some((p, p_log_id)) => (p.create_revision, p.version + 1, *p_log_id),
                        None => (rev, 1, 0),
                    };
                    self.conn
                        .prepare_cached(
                            "INSERT INTO log (revision, key, deleted, value, create_revision, \
                             version, lease, prev_id) VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7)",
                        )?
                        .execute(rusqlite::params![
                            rev,
                            key,
                            value,
                            create_revision,
                            version,
                            lease_col,
                            prev_id
                        ])?;
                    let log_id = self.conn.last_insert_rowid();
                    if prev.is_some() {
                        self.conn
                            .prepare_cached(
                                "UPDATE kv SET value = ?2, mod_revision = ?3, version = ?4, \
                                 lease = ?5, log_id = ?6 WHERE key = ?1",
                            )?
                            .execute(rusqlite::params![
                                key, value, rev, version, lease_col, log_id
                            ])?;
                    } else {
                        self.conn
                            .prepare_cached(
                                "INSERT INTO kv (key, value, create_revision, mod_revision, \
                                 version, lease, log_id) VALUES (?1, ?2, ?3, ?3, 1, ?4, ?5)",
                            )?
                            .execute(rusqlite::params![key, value, rev, lease_col, log_id])?;
                    }
                    let prev = prev.map(|(kv, _)| kv);
                    responses.push(OpResponse::Put { prev: prev.clone() });
                    changes.push(Event {
                        kind: EventKind::Put,
                        kv: KeyValue {
                            key,
                            value,
                            create_revision,
                            mod_revision: rev,
                            version,
                            lease,
                        },
                        prev_kv: prev,
                    });
                }
                Op::Delete(range) => {
                    let located = sql::read_located(&self.conn, &range, None)?;
                    let mut deleted = Vec::with_capacity(located.len());
                    for (kv, prev_id) in located {
                        deleted.push(kv.clone());
                        changes.push(self.delete_key(rev, kv, prev_id)?);
                    }
                    responses.push(OpResponse::Delete { deleted });
                }
                Op::Get(range) => {
                    let kvs = sql::read_kvs(&self.conn, &range, None)?;
                    responses.push(OpResponse::Get { kvs });
                }
            }
        }
        if !changes.is_empty() {
            self.rev = rev;
            events.push(WatchResponse {
                revision: rev,
                events: changes,
            });
        }
        Ok(Ok(TxnResponse {
            succeeded,
            revision: self.rev,
            responses,
        }))
    }

    /// Deletes one live key at `rev`; returns its delete event. `prev_id` is the key's
    /// current row in the log.
    fn delete_key(&self, rev: Revision, prev: KeyValue, prev_id: i64) -> rusqlite::Result<Event> {
        self.conn
            .prepare_cached("DELETE FROM kv WHERE key = ?1")?
            .execute([prev.key.as_slice()])?;
        self.conn
            .prepare_cached(
                "INSERT INTO log (revision, key, deleted, value, create_revision, version, \
                 lease, prev_id) VALUES (?1, ?2, 1, x'', 0, 0, 0, ?3)",
            )?
            .execute(rusqlite::params![rev, prev.key, prev_id])?;
        Ok(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: prev.key.clone(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: rev,
                version: 0,
                lease: None,
            },
            prev_kv: Some(prev),
        })
    }

    fn compact(&mut self, revision: Revision) -> rusqlite::Result<Result<()>> {
        if revision > self.rev {
            return Ok(Err(Error::FutureRevision {
                requested: revision,
                current: self.rev,
            }));
        }
        if revision > self.compact_rev {
            sql::set_meta(&self.conn, "compact_revision", revision)?;
            self.compact_rev = revision;
        }
        Ok(Ok(()))
    }

    fn grant(&mut self, ttl: i64, effects: &mut Vec<Effect>) -> rusqlite::Result<Result<LeaseId>> {
        let id = self.next_lease_id;
        self.next_lease_id += 1;
        sql::set_meta(&self.conn, "next_lease_id", self.next_lease_id)?;
        self.conn
            .prepare_cached("INSERT INTO lease (id, ttl) VALUES (?1, ?2)")?
            .execute([id, ttl])?;
        self.leases.insert(id, ttl);
        effects.push(Effect::Start { id, ttl });
        Ok(Ok(LeaseId(id)))
    }

    /// Revokes a granted lease: its keys are deleted in one new revision (none if it
    /// holds no key).
    fn revoke(
        &mut self,
        lease: LeaseId,
        events: &mut Vec<WatchResponse>,
        effects: &mut Vec<Effect>,
    ) -> rusqlite::Result<Result<()>> {
        self.leases.remove(&lease.0);
        let attached: Vec<Located> = self
            .conn
            .prepare_cached(&format!(
                "SELECT {KV_COLUMNS} FROM kv WHERE lease = ?1 AND lease != 0 ORDER BY key"
            ))?
            .query_map([lease.0], located_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        if !attached.is_empty() {
            let rev = self.rev + 1;
            let mut changes = Vec::with_capacity(attached.len());
            for (kv, prev_id) in attached {
                changes.push(self.delete_key(rev, kv, prev_id)?);
            }
            self.rev = rev;
            events.push(WatchResponse {
                revision: rev,
                events: changes,
            });
        }
        self.conn
            .prepare_cached("DELETE FROM lease WHERE id = ?1")?
            .execute([lease.0])?;
        effects.push(Effect::Remove { id: lease.0 });
        Ok(Ok(()))
    }

    /// Deletes the history of revisions `[purged_below, purged_below + PURGE_CHUNK)`
    /// (capped at the compact revision) that compaction no longer keeps.
    ///
    /// Kept, for a compact revision C: every row at or above C, and for each key its
    /// newest row below C if that is a put (reads at C and later see it; it is the
    /// previous value of the key's next event). So a row below C goes once a newer row
    /// below C points back at it, and a delete below C goes at once. Purging a chunk
    /// again (after a restart) deletes nothing more.
    fn purge_chunk(&mut self) {
        let from = self.purged_below;
        let to = (from + PURGE_CHUNK).min(self.compact_rev);
        let result = (|| -> rusqlite::Result<()> {
            self.exec("BEGIN IMMEDIATE")?;
            // The rows that rows of this chunk replaced (in this chunk or before it).
            self.conn
                .prepare_cached(
                    "DELETE FROM log WHERE id IN ( \
                         SELECT prev_id FROM log \
                         WHERE revision >= ?1 AND revision < ?2 AND prev_id != 0)",
                )?
                .execute([from, to])?;
            self.conn
                .prepare_cached(
                    "DELETE FROM log WHERE revision >= ?1 AND revision < ?2 AND deleted = 1",
                )?
                .execute([from, to])?;
            self.exec("COMMIT")
        })();
        match result {
            Ok(()) => self.purged_below = to,
            Err(e) => {
                tracing::warn!(error = %e, from, to, "purging compacted history failed; retrying after a restart");
                if !self.conn.is_autocommit() {
                    drop(self.exec("ROLLBACK"));
                }
                self.purged_below = self.compact_rev;
            }
        }
    }
}

fn load_leases(conn: &Connection) -> rusqlite::Result<HashMap<i64, i64>> {
    conn.prepare_cached("SELECT id, ttl FROM lease")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect()
}
