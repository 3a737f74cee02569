//! The database file: schema, pragmas, and opening (or refusing) a file.
//!
//! ```text
//! meta  (name PK, value)                    schema_version, compact_revision, next_lease_id
//! kv    (id, key UNIQUE, value,             the current value of every live key; log_id
//!        create_revision, mod_revision,     is its row in the log
//!        version, lease, log_id)            index on lease (revoking)
//! log   (id, revision, key, deleted, value, one row per change, in commit order (so by
//!        create_revision, version, lease,   revision, then by op within a transaction);
//!        prev_id)                           prev_id is the key's previous row, 0 if absent
//!                                           index on revision
//! lease (id PK, ttl)                        granted leases; deadlines live in memory
//! ```
//!
//! Rowid tables keep rows of up to ~4 KiB (a typical object) in their page instead of
//! overflow pages. The log has no index by key, on purpose: a put touches one random
//! page (its `kv` row, or its index entry when new) and the end of the log, which keeps
//! what each commit writes small. What would need one goes through `prev_id` instead: a
//! watch's previous values, a read at an old revision (the current rows, with the first
//! change after that revision of each key undone), and the purge (a row below the
//! compact revision deletes the row it replaced).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::ffi::ErrorCode;
use rusqlite::{Connection, OpenFlags};

use super::sql;
use crate::{Error, Result, Revision};

/// Bumped on any incompatible change to the tables below.
pub(super) const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
BEGIN;
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE kv (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL UNIQUE,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL,
    version INTEGER NOT NULL,
    lease INTEGER NOT NULL,
    log_id INTEGER NOT NULL
);
CREATE INDEX kv_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE log (
    id INTEGER PRIMARY KEY,
    revision INTEGER NOT NULL,
    key BLOB NOT NULL,
    deleted INTEGER NOT NULL,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    version INTEGER NOT NULL,
    lease INTEGER NOT NULL,
    prev_id INTEGER NOT NULL
);
CREATE INDEX log_revision ON log (revision);
CREATE TABLE lease (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL);
INSERT INTO meta (name, value) VALUES
    ('schema_version', 1), ('compact_revision', 0), ('next_lease_id', 1);
COMMIT;
";

/// Statements that touch every column the store uses: preparing them proves a file that
/// claims our schema version really has our tables.
const PROBES: &[&str] = &[
    "SELECT id, key, value, create_revision, mod_revision, version, lease, log_id FROM kv WHERE lease != 0 LIMIT 0",
    "SELECT id, revision, key, deleted, value, create_revision, version, lease, prev_id FROM log LIMIT 0",
    "SELECT id, ttl FROM lease LIMIT 0",
];

/// What [`open`] hands to the store: connections and the state found in the file.
pub(super) struct Opened {
    pub writer: Connection,
    pub readers: Vec<Connection>,
    /// Held while the store is open; see [`lock`].
    pub lock: Option<File>,
    pub revision: Revision,
    pub compact_revision: Revision,
    pub oldest_log_revision: Revision,
    pub next_lease_id: i64,
    pub leases: Vec<(i64, i64)>,
}

/// Maps an error met while opening to `Corrupt` (not a database, or not ours) or `Open`.
pub(super) fn open_error(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Error::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
        _ => Error::Open {
            path: path.to_path_buf(),
            source: Box::new(e),
        },
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Opens (creating if absent) the store file at `path`, blocking.
pub(super) fn open(path: &Path, read_connections: usize) -> Result<Opened> {
    if path.is_dir() {
        return Err(Error::Open {
            path: path.to_path_buf(),
            source: "it is a directory, not a database file".into(),
        });
    }
    let lock = lock(path)?;
    let writer = connect(path)?;
    let err = |e| open_error(path, e);
    // The first statement that reads the file: garbage fails here with NotADatabase.
    let mode: String = writer
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Open {
            path: path.to_path_buf(),
            source: format!("cannot switch the journal to WAL (it stays {mode})").into(),
        });
    }
    // Every commit fsyncs the WAL before the writer acknowledges it.
    writer
        .pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    // Checkpoint less often than the default 1000 pages: fewer stalls in the writer.
    writer
        .pragma_update(None, "wal_autocheckpoint", 4000)
        .map_err(err)?;
    writer
        .pragma_update(None, "cache_size", -32_768)
        .map_err(err)?;
    init_or_check(&writer, path)?;

    let revision = sql::current_revision(&writer).map_err(err)?;
    let compact_revision = sql::meta(&writer, "compact_revision").map_err(err)?;
    let next_lease_id = sql::meta(&writer, "next_lease_id").map_err(err)?;
    let oldest_log_revision: Revision = writer
        .query_row("SELECT COALESCE(MIN(revision), 0) FROM log", [], |row| {
            row.get(0)
        })
        .map_err(err)?;
    let leases = writer
        .prepare("SELECT id, ttl FROM lease")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(i64, i64)>>>()
        })
        .map_err(err)?;

    let mut readers = Vec::with_capacity(read_connections);
    for _ in 0..read_connections.max(1) {
        readers.push(open_reader(path)?);
    }
    Ok(Opened {
        writer,
        readers,
        lock: Some(lock),
        revision,
        compact_revision,
        oldest_log_revision,
        next_lease_id,
        leases,
    })
}

/// A read connection: WAL readers never block the writer nor each other.
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    let conn = connect(path)?;
    conn.pragma_update(None, "query_only", true)
        .and_then(|()| conn.pragma_update(None, "cache_size", -8192))
        .map_err(|e| open_error(path, e))?;
    Ok(conn)
}

fn connect(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| open_error(path, e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// One store per file: a second writer would hand out the same revisions. The lock is
/// on a side file, because closing any descriptor of the database file itself would drop
/// SQLite's own POSIX locks.
fn lock(path: &Path) -> Result<File> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push("-lock");
    let lock_path: PathBuf = path.with_file_name(name);
    let open_err = |source: Box<dyn std::error::Error + Send + Sync>| Error::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| open_err(format!("cannot create {}: {e}", lock_path.display()).into()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(open_err(
            format!(
                "another store has it open (lock {} is held)",
                lock_path.display()
            )
            .into(),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(open_err(
            format!("cannot lock {}: {e}", lock_path.display()).into(),
        )),
    }
}

fn init_or_check(conn: &Connection, path: &Path) -> Result<()> {
    let err = |e| open_error(path, e);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(err)?;
    if tables.is_empty() {
        return conn.execute_batch(SCHEMA).map_err(err);
    }
    for table in ["meta", "kv", "log", "lease"] {
        if !tables.iter().any(|t| t == table) {
            return Err(corrupt(
                path,
                format!("not a Skiff store: table {table:?} is missing (it has {tables:?})"),
            ));
        }
    }
    let version = sql::meta(conn, "schema_version").map_err(|e| {
        corrupt(
            path,
            format!("not a Skiff store: no schema_version in table meta ({e})"),
        )
    })?;
    if version != SCHEMA_VERSION {
        return Err(corrupt(
            path,
            format!("schema version {version}; this build reads version {SCHEMA_VERSION}"),
        ));
    }
    for probe in PROBES {
        conn.prepare(probe).map_err(|e| {
            corrupt(
                path,
                format!("tables do not match schema version {version}: {e}"),
            )
        })?;
    }
    for name in ["compact_revision", "next_lease_id"] {
        sql::meta(conn, name)
            .map_err(|e| corrupt(path, format!("table meta lacks {name}: {e}")))?;
    }
    Ok(())
}
