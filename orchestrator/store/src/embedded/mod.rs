//! The embedded backend: the whole store in one SQLite file.
//!
//! - One writer thread (`writer.rs`) owns the write connection and group-commits whatever
//!   is queued on a bounded channel: one SQLite transaction and one fsync for the batch,
//!   one revision per write transaction inside it. Callers are answered once the commit
//!   is durable.
//! - A few read connections (`read.rs`) serve ranges, reads at old revisions, read-only
//!   transactions and watch catch-up, each in its own read transaction (WAL readers
//!   never wait for the writer).
//! - Watches (`watch.rs`) replay the `log` table, then follow a broadcast of committed
//!   batches.
//! - Leases (`lease.rs`): TTLs persisted, deadlines in memory (reset to a full TTL when
//!   the store reopens), an expiry task that has the writer revoke them.
//! - Compaction moves the compact revision at once; the writer purges the history below
//!   it in chunks when it has nothing else to do.
//!
//! The schema is in `schema.rs`; the file can be inspected with the `sqlite3` CLI.

mod lease;
mod read;
mod schema;
mod sql;
mod watch;
mod writer;

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::lease::LeaseClock;
use self::read::Readers;
use self::writer::{Request, Shared, Writer};
use crate::{
    Error, KeyRange, LeaseId, RangeOptions, RangeResponse, Result, Revision, Store, StoreStatus,
    Txn, TxnResponse, WatchStream,
};

/// Tuning of an [`EmbeddedStore`]; the defaults suit a control plane.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Read connections (and so concurrent reads). Default 4.
    pub read_connections: usize,
    /// Requests that may wait for the writer before callers wait to enqueue. Default 4096.
    pub write_queue: usize,
    /// Most requests committed in one SQLite transaction. Default 1024.
    pub max_batch: usize,
    /// Committed batches buffered for live watchers; one that falls further behind ends
    /// with [`Error::WatchLagged`] (and resumes from the log). Default 1024.
    pub watch_buffer: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            read_connections: 4,
            write_queue: 4096,
            max_batch: 1024,
            watch_buffer: 1024,
        }
    }
}

/// The embedded [`Store`]: SQLite in one file. See the [module docs](self).
///
/// Open it inside a tokio runtime (it starts the lease expiry task). Share it behind an
/// `Arc`; [`Store::close`] (or dropping the last handle) commits what is queued and stops
/// the writer.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    readers: Arc<Readers>,
    requests: mpsc::Sender<Request>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    writer_done: Mutex<Option<oneshot::Receiver<()>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    lock: Mutex<Option<File>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens the store in the file at `path`, creating it if it does not exist.
    ///
    /// A file that is not a SQLite database, or a database that is not a Skiff store (or
    /// of another schema version), fails with [`Error::Corrupt`]; a path that cannot be
    /// opened (a directory, no permission, a store already open elsewhere) with
    /// [`Error::Open`]. Both name the path.
    pub async fn open(path: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut opened = {
            let path = path.clone();
            let readers = options.read_connections;
            tokio::task::spawn_blocking(move || schema::open(&path, readers))
                .await
                .map_err(|e| Error::Internal(format!("opening the store panicked: {e}")))??
        };
        let lock = Mutex::new(opened.lock.take());
        let clock = Arc::new(LeaseClock::default());
        for &(id, ttl) in &opened.leases {
            clock.start(id, ttl);
        }
        let (events, _) = broadcast::channel(options.watch_buffer.max(1));
        let shared = Arc::new(Shared {
            path: path.clone(),
            revision: AtomicI64::new(opened.revision),
            compact_revision: AtomicI64::new(opened.compact_revision),
            events,
            leases: Arc::clone(&clock),
        });
        let (writer, read_connections) =
            Writer::new(opened, Arc::clone(&shared), options.max_batch);
        let readers = Arc::new(Readers::new(path.clone(), read_connections));

        let (requests, queue) = mpsc::channel(options.write_queue.max(1));
        let (done_tx, done_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("skiff-store-writer".into())
            .spawn(move || {
                writer.run(queue);
                drop(done_tx);
            })
            .map_err(|e| open_error(&path, e))?;

        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(lease::run_expiry(clock, requests.clone(), shutdown.clone()));
        tasks.close();
        Ok(Self {
            shared,
            readers,
            requests,
            shutdown,
            tasks,
            writer_done: Mutex::new(Some(done_rx)),
            writer_thread: Mutex::new(Some(thread)),
            lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    fn check_open(&self) -> Result<()> {
        if self.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T>>) -> Request,
    ) -> Result<T> {
        self.check_open()?;
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(request(reply))
            .await
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

fn open_error(path: &Path, e: std::io::Error) -> Error {
    Error::Open {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Stops the expiry task and the watches; once its last sender is gone the writer
        // commits what is queued and exits on its own.
        self.shutdown.cancel();
    }
}

#[async_trait::async_trait]
impl Store for EmbeddedStore {
    async fn range(&self, range: KeyRange, options: RangeOptions) -> Result<RangeResponse> {
        self.check_open()?;
        range.validate()?;
        self.readers
            .run(move |conn| read::range(conn, &range, &options))
            .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        txn.validate()?;
        if txn.is_read_only() {
            self.check_open()?;
            return self
                .readers
                .run(move |conn| read::read_only_txn(conn, &txn))
                .await;
        }
        self.ask(|reply| Request::Txn { txn, reply }).await
    }

    async fn watch(&self, range: KeyRange, from_revision: Revision) -> Result<WatchStream> {
        self.check_open()?;
        range.validate()?;
        if from_revision < 0 {
            return Err(Error::InvalidRequest(format!(
                "watch from negative revision {from_revision}"
            )));
        }
        // Subscribe before reading the snapshot: see the `watch` module for why.
        let live = self.shared.events.subscribe();
        let (current, compact) = self.readers.run(read::snapshot).await?;
        if from_revision != 0 && from_revision < compact {
            return Err(Error::Compacted {
                requested: from_revision,
                compact_revision: compact,
            });
        }
        let next = if from_revision == 0 {
            current + 1
        } else {
            from_revision
        };
        Ok(watch::Watch {
            readers: Arc::clone(&self.readers),
            live,
            shutdown: self.shutdown.clone(),
            range,
            next,
            catch_up_to: current,
        }
        .into_stream())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.ask(|reply| Request::Compact { revision, reply }).await
    }

    async fn lease_grant(&self, ttl_seconds: i64) -> Result<LeaseId> {
        if ttl_seconds <= 0 {
            return Err(Error::InvalidRequest(format!(
                "lease TTL must be positive, got {ttl_seconds}"
            )));
        }
        self.ask(|reply| Request::LeaseGrant {
            ttl: ttl_seconds,
            reply,
        })
        .await
    }

    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<i64> {
        self.check_open()?;
        self.shared.leases.keep_alive(lease)
    }

    async fn lease_revoke(&self, lease: LeaseId) -> Result<()> {
        self.ask(|reply| Request::LeaseRevoke { lease, reply })
            .await
    }

    async fn status(&self) -> Result<StoreStatus> {
        self.check_open()?;
        Ok(StoreStatus {
            revision: self.shared.revision.load(Ordering::Acquire),
            compact_revision: self.shared.compact_revision.load(Ordering::Acquire),
        })
    }

    async fn close(&self) -> Result<()> {
        self.shutdown.cancel();
        self.tasks.wait().await;
        // Queued behind every write already sent; the writer commits those first. If the
        // writer is gone already, there is nothing to flush.
        drop(self.requests.send(Request::Shutdown).await);
        let done = self
            .writer_done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(done) = done {
            // Resolves (with an error) when the thread drops its sender on exit.
            drop(done.await);
        }
        let thread = self
            .writer_thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // It has finished; joining only collects it.
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|e| Error::Internal(format!("joining the writer failed: {e}")))?
                .map_err(|_| Error::Internal("the store writer panicked".into()))?;
        }
        // Another store may open the file now.
        drop(
            self.lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        Ok(())
    }
}
