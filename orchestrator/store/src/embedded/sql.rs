//! SQL shared by the writer and the readers: row mapping, key-range filters, reads of
//! the current state.

use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Row};

use crate::{Compare, KeyRange, KeyValue, LeaseId, Revision};

/// The columns [`kv_from_row`] reads, in its order, then `log_id` (see [`Located`]).
pub(super) const KV_COLUMNS: &str =
    "key, value, create_revision, mod_revision, version, lease, log_id";

/// A current value with the id of its row in the log, which the key's next change
/// points back to.
pub(super) type Located = (KeyValue, i64);

pub(super) fn located_from_row(row: &Row<'_>) -> rusqlite::Result<Located> {
    Ok((kv_from_row(row)?, row.get(6)?))
}

pub(super) fn lease_from_column(id: i64) -> Option<LeaseId> {
    (id != 0).then_some(LeaseId(id))
}

pub(super) fn lease_to_column(lease: Option<LeaseId>) -> i64 {
    lease.map_or(0, |l| l.0)
}

pub(super) fn kv_from_row(row: &Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: row.get(0)?,
        value: row.get(1)?,
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
        version: row.get(4)?,
        lease: lease_from_column(row.get(5)?),
    })
}

/// A `WHERE` condition selecting a [`KeyRange`] on one column, with its parameters
/// numbered from `first`.
pub(super) struct KeyFilter<'a> {
    pub clause: String,
    pub params: Vec<&'a [u8]>,
}

impl<'a> KeyFilter<'a> {
    pub fn new(column: &str, range: &'a KeyRange, first: usize) -> Self {
        if range.end.is_empty() {
            Self {
                clause: format!("{column} = ?{first}"),
                params: vec![range.start.as_slice()],
            }
        } else if range.end == [0] {
            Self {
                clause: format!("{column} >= ?{first}"),
                params: vec![range.start.as_slice()],
            }
        } else {
            Self {
                clause: format!("{column} >= ?{first} AND {column} < ?{}", first + 1),
                params: vec![range.start.as_slice(), range.end.as_slice()],
            }
        }
    }

    /// The index of the first parameter after this filter's.
    pub fn next_param(&self, first: usize) -> usize {
        first + self.params.len()
    }

    /// This filter's parameters followed by `rest`, ready to bind.
    pub fn bind<'p>(&'p self, rest: &[&'p dyn ToSql]) -> Vec<&'p dyn ToSql> {
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(self.params.len() + rest.len());
        for p in &self.params {
            params.push(p);
        }
        params.extend_from_slice(rest);
        params
    }
}

/// The current value of one key, located in the log.
pub(super) fn get_located(conn: &Connection, key: &[u8]) -> rusqlite::Result<Option<Located>> {
    conn.prepare_cached(
        "SELECT key, value, create_revision, mod_revision, version, lease, log_id \
         FROM kv WHERE key = ?1",
    )?
    .query_row([key], located_from_row)
    .optional()
}

/// The current keys of a range, in key order, at most `limit` of them, located.
pub(super) fn read_located(
    conn: &Connection,
    range: &KeyRange,
    limit: Option<usize>,
) -> rusqlite::Result<Vec<Located>> {
    if range.is_single_key() {
        return Ok(get_located(conn, &range.start)?
            .into_iter()
            .take(limit.unwrap_or(usize::MAX))
            .collect());
    }
    let filter = KeyFilter::new("key", range, 1);
    let sql = format!(
        "SELECT {KV_COLUMNS} FROM kv WHERE {} ORDER BY key LIMIT ?{}",
        filter.clause,
        filter.next_param(1)
    );
    let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(&*filter.bind(&[&limit]), located_from_row)?;
    rows.collect()
}

/// The current keys of a range, in key order, at most `limit` of them.
pub(super) fn read_kvs(
    conn: &Connection,
    range: &KeyRange,
    limit: Option<usize>,
) -> rusqlite::Result<Vec<KeyValue>> {
    Ok(read_located(conn, range, limit)?
        .into_iter()
        .map(|(kv, _)| kv)
        .collect())
}

/// How many keys of a range exist now.
pub(super) fn count_kvs(conn: &Connection, range: &KeyRange) -> rusqlite::Result<usize> {
    let filter = KeyFilter::new("key", range, 1);
    let sql = format!("SELECT COUNT(*) FROM kv WHERE {}", filter.clause);
    let count: i64 = conn
        .prepare_cached(&sql)?
        .query_row(&*filter.bind(&[]), |row| row.get(0))?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// Evaluates every compare against the current state (as the connection sees it).
pub(super) fn eval_compares(conn: &Connection, compares: &[Compare]) -> rusqlite::Result<bool> {
    let mut stmt = conn
        .prepare_cached("SELECT create_revision, mod_revision, version FROM kv WHERE key = ?1")?;
    for compare in compares {
        let current = stmt
            .query_row([compare.key.as_slice()], |row| {
                Ok(KeyValue {
                    key: Vec::new(),
                    value: Vec::new(),
                    create_revision: row.get(0)?,
                    mod_revision: row.get(1)?,
                    version: row.get(2)?,
                    lease: None,
                })
            })
            .optional()?;
        if !compare.holds(current.as_ref()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The revision of the last write: the newest log entry survives any compaction.
pub(super) fn current_revision(conn: &Connection) -> rusqlite::Result<Revision> {
    conn.prepare_cached("SELECT COALESCE(MAX(revision), 0) FROM log")?
        .query_row([], |row| row.get(0))
}

pub(super) fn meta(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
}

pub(super) fn set_meta(conn: &Connection, name: &str, value: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE meta SET value = ?2 WHERE name = ?1")?
        .execute(rusqlite::params![name, value])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_filters_number_their_parameters() {
        let one = KeyRange::key("a");
        let from = KeyRange::between("a", [0]);
        let between = KeyRange::between("a", "b");
        let cases = [
            (&one, "k = ?3", 4),
            (&from, "k >= ?3", 4),
            (&between, "k >= ?3 AND k < ?4", 5),
        ];
        for (range, clause, next) in cases {
            let filter = KeyFilter::new("k", range, 3);
            assert_eq!(filter.clause, clause);
            assert_eq!(filter.next_param(3), next);
            assert_eq!(filter.bind(&[&1]).len(), next - 3 + 1);
        }
    }
}
