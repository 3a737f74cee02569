//! The read side: a small pool of WAL read connections, and the reads they serve, each in
//! its own read transaction so the revision it reports matches what it read.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::schema;
use super::sql::{self, KeyFilter, lease_from_column};
use crate::{
    Error, Event, EventKind, KeyRange, KeyValue, OpResponse, RangeOptions, RangeResponse, Result,
    Revision, Txn, TxnResponse, WatchResponse,
};

/// Read connections, lent to one blocking task at a time.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    pub fn new(path: PathBuf, connections: Vec<Connection>) -> Self {
        let permits = Arc::new(Semaphore::new(connections.len().max(1)));
        Self {
            path,
            idle: Mutex::new(connections),
            permits,
        }
    }

    /// Runs `read` on a pooled connection in a blocking task.
    pub async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed)?;
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let popped = this
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            // Only a panic inside `read` loses a connection; open a replacement then.
            let conn = match popped {
                Some(conn) => conn,
                None => schema::open_reader(&this.path)?,
            };
            let result = read(&conn);
            this.idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(conn);
            result
        })
        .await
        .map_err(|e| Error::Internal(format!("a read task failed: {e}")))?
    }
}

/// The current revision and the compact revision, from one snapshot.
pub(super) fn snapshot(conn: &Connection) -> Result<(Revision, Revision)> {
    let tx = conn.unchecked_transaction()?;
    let current = sql::current_revision(&tx)?;
    let compact = sql::meta(&tx, "compact_revision")?;
    Ok((current, compact))
}

pub(super) fn range(
    conn: &Connection,
    range: &KeyRange,
    options: &RangeOptions,
) -> Result<RangeResponse> {
    let tx = conn.unchecked_transaction()?;
    let current = sql::current_revision(&tx)?;
    let limit = options.limit.filter(|&l| l > 0);
    let at = match options.revision {
        Some(r) if r > current => {
            return Err(Error::FutureRevision {
                requested: r,
                current,
            });
        }
        Some(r) if r > 0 && r < current => r,
        _ => current,
    };
    if at < current {
        let compact = sql::meta(&tx, "compact_revision")?;
        if at < compact {
            return Err(Error::Compacted {
                requested: at,
                compact_revision: compact,
            });
        }
        let (kvs, count) = range_at(&tx, range, at, limit, options.count_only)?;
        return Ok(RangeResponse {
            more: count > kvs.len() && !options.count_only,
            kvs,
            count,
            revision: at,
        });
    }
    let count = sql::count_kvs(&tx, range)?;
    let kvs = if options.count_only {
        Vec::new()
    } else {
        sql::read_kvs(&tx, range, limit)?
    };
    Ok(RangeResponse {
        more: !options.count_only && count > kvs.len(),
        kvs,
        count,
        revision: current,
    })
}

/// The keys of a range as they were at revision `at`: the current rows, with the first
/// change after `at` of each key undone (its previous row is the key's value at `at`).
/// Costs the size of the range plus the changes since `at`.
fn range_at(
    conn: &Connection,
    range: &KeyRange,
    at: Revision,
    limit: Option<usize>,
    count_only: bool,
) -> Result<(Vec<KeyValue>, usize)> {
    let filter = KeyFilter::new("l.key", range, 1);
    let sql = format!(
        "SELECT l.key, p.revision, p.value, p.create_revision, p.version, p.lease \
         FROM log AS l LEFT JOIN log AS p ON p.id = l.prev_id \
         WHERE {} AND l.revision > ?{} ORDER BY l.id",
        filter.clause,
        filter.next_param(1)
    );
    let mut undone: HashMap<Vec<u8>, Option<KeyValue>> = HashMap::new();
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(&*filter.bind(&[&at]))?;
    while let Some(row) = rows.next()? {
        let key: Vec<u8> = row.get(0)?;
        if undone.contains_key(&key) {
            continue;
        }
        let prev_revision: Option<Revision> = row.get(1)?;
        let prev_value: Option<Vec<u8>> = row.get(2)?;
        let prev = match (prev_revision, prev_value) {
            (Some(prev_revision), Some(value)) => Some(KeyValue {
                key: key.clone(),
                value,
                create_revision: row.get(3)?,
                mod_revision: prev_revision,
                version: row.get(4)?,
                lease: lease_from_column(row.get(5)?),
            }),
            _ => None,
        };
        undone.insert(key, prev);
    }
    let mut state: BTreeMap<Vec<u8>, KeyValue> = sql::read_kvs(conn, range, None)?
        .into_iter()
        .filter(|kv| !undone.contains_key(&kv.key))
        .map(|kv| (kv.key.clone(), kv))
        .collect();
    state.extend(
        undone
            .into_iter()
            .filter_map(|(key, kv)| kv.map(|kv| (key, kv))),
    );
    let count = state.len();
    let kvs = if count_only {
        Vec::new()
    } else {
        state
            .into_values()
            .take(limit.unwrap_or(usize::MAX))
            .collect()
    };
    Ok((kvs, count))
}

/// A transaction that only reads: compares and gets against one snapshot.
pub(super) fn read_only_txn(conn: &Connection, txn: &Txn) -> Result<TxnResponse> {
    let tx = conn.unchecked_transaction()?;
    let revision = sql::current_revision(&tx)?;
    let succeeded = sql::eval_compares(&tx, &txn.compares)?;
    let ops = if succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        if let crate::Op::Get(range) = op {
            responses.push(OpResponse::Get {
                kvs: sql::read_kvs(&tx, range, None)?,
            });
        }
    }
    Ok(TxnResponse {
        succeeded,
        revision,
        responses,
    })
}

/// The events of `range` with revisions in `[from, to]`, grouped by revision, each with
/// its previous value. Fails with `Compacted` if `from` is no longer kept.
pub(super) fn events(
    conn: &Connection,
    range: &KeyRange,
    from: Revision,
    to: Revision,
) -> Result<Vec<WatchResponse>> {
    let tx = conn.unchecked_transaction()?;
    let compact = sql::meta(&tx, "compact_revision")?;
    if from < compact {
        return Err(Error::Compacted {
            requested: from,
            compact_revision: compact,
        });
    }
    let filter = KeyFilter::new("l.key", range, 1);
    let next = filter.next_param(1);
    let sql = format!(
        "SELECT l.revision, l.key, l.deleted, l.value, l.create_revision, l.version, l.lease, \
                p.revision, p.value, p.create_revision, p.version, p.lease \
         FROM log AS l LEFT JOIN log AS p ON p.id = l.prev_id \
         WHERE {} AND l.revision >= ?{next} AND l.revision <= ?{} \
         ORDER BY l.id",
        filter.clause,
        next + 1
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows = stmt.query(&*filter.bind(&[&from, &to]))?;
    let mut out: Vec<WatchResponse> = Vec::new();
    while let Some(row) = rows.next()? {
        let revision: Revision = row.get(0)?;
        let key: Vec<u8> = row.get(1)?;
        let deleted: bool = row.get(2)?;
        let prev_revision: Option<Revision> = row.get(7)?;
        let prev_value: Option<Vec<u8>> = row.get(8)?;
        let prev_kv = match (prev_revision, prev_value) {
            (Some(prev_revision), Some(value)) => Some(KeyValue {
                key: key.clone(),
                value,
                create_revision: row.get(9)?,
                mod_revision: prev_revision,
                version: row.get(10)?,
                lease: lease_from_column(row.get(11)?),
            }),
            _ => None,
        };
        let (kind, kv) = if deleted {
            let kv = KeyValue {
                key,
                value: Vec::new(),
                create_revision: 0,
                mod_revision: revision,
                version: 0,
                lease: None,
            };
            (EventKind::Delete, kv)
        } else {
            let kv = KeyValue {
                key,
                value: row.get(3)?,
                create_revision: row.get(4)?,
                mod_revision: revision,
                version: row.get(5)?,
                lease: lease_from_column(row.get(6)?),
            };
            (EventKind::Put, kv)
        };
        let event = Event { kind, kv, prev_kv };
        match out.last_mut() {
            Some(last) if last.revision == revision => last.events.push(event),
            _ => out.push(WatchResponse {
                revision,
                events: vec![event],
            }),
        }
    }
    Ok(out)
}
