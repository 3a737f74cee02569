//! skiff-store: the desired state of a Skiff cluster, kept with etcd's semantics.
//!
//! Start with [`Store`]: every backend implements it, and one conformance suite
//! (`tests/all/conformance.rs`) holds each of them to the same behaviour.
//!
//! - [`embedded::EmbeddedStore`] (the default): SQLite in one file (WAL, fsync on every
//!   commit). One writer thread group-commits whatever is queued, giving each transaction
//!   its own revision; a `kv` table holds the current values, a `log` table keyed by
//!   revision holds the history that serves reads at old revisions and watch catch-up,
//!   and a broadcast of committed batches feeds live watches. Lease TTLs are persisted,
//!   their deadlines live in memory.
//! - `etcd::EtcdStore` (feature `etcd`): a thin mapping onto a real etcd ≥ 3.4.
//! - [`compactor::run_compactor`]: trims history on a [`compactor::CompactionPolicy`];
//!   neither etcd nor the embedded store compacts by itself.
//! - `testing` (feature): an etcd process of its own for other crates' tests.
//!
//! The model is etcd's: one global, strictly increasing revision; each write
//! transaction gets the next revision; every key remembers the revision that created
//! it and the one that last modified it; watches replay history from any revision that
//! has not been compacted away.

pub mod compactor;
pub mod embedded;
mod error;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "testing")]
pub mod testing;
mod types;

pub use compactor::{CompactionPolicy, run_compactor};
pub use error::{Error, Result};
pub use types::*;

use std::pin::Pin;

use futures::Stream;

/// A stream of watch responses, in revision order, as [`Store::watch`] returns it.
///
/// It ends with `Err(Error::WatchLagged { resume_from })` if the consumer fell too far
/// behind (resume with a new watch from that revision), `Err(Error::Compacted { .. })`
/// if compaction overtook a replay still in progress, or `Err(Error::Closed)` when the
/// store shuts down. It never skips an event silently, and it never ends without an
/// error item (a backend error such as a lost etcd connection is one too).
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse>> + Send>>;

/// A key-value store with etcd's semantics.
///
/// Guarantees every backend keeps (and the conformance suite checks):
/// - Every successful write transaction gets exactly one new revision, one greater than
///   the previous; a transaction whose compares fail, that only reads, or whose writes
///   change nothing (deleting absent keys) keeps the current revision, as in etcd.
/// - A write is durable once its future resolves `Ok`.
/// - Reads at `revision: None` see every write acknowledged before the read started.
/// - `watch(range, from)` delivers every event with revision ≥ `from` in revision order,
///   grouped by revision, each with the previous value of the key, and then the live ones.
/// - Keys attached to a lease are deleted (with delete events) when it expires or is
///   revoked.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads a range of keys (or one key) at the current revision or at `options.revision`.
    async fn range(&self, range: KeyRange, options: RangeOptions) -> Result<RangeResponse>;

    /// Applies `compares`, then `success` or `failure` atomically, as etcd's Txn does.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse>;

    /// Watches a range from `from_revision` (inclusive). `from_revision` of 0 means
    /// "from the next write"; a revision beyond the current one waits for it.
    ///
    /// A `from_revision` below the compact revision fails here, with
    /// [`Error::Compacted`]; the stream itself can still end with `Compacted` if a
    /// compaction overtakes its replay of history (see [`WatchStream`]).
    async fn watch(&self, range: KeyRange, from_revision: Revision) -> Result<WatchStream>;

    /// Discards the history before `revision`: reads and watches below it fail with
    /// [`Error::Compacted`]; reads at any revision from `revision` on still work. The
    /// latest value of every key is kept. Compacting at or below the current compact
    /// revision does nothing; above the current revision fails with
    /// [`Error::FutureRevision`].
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Grants a lease that expires `ttl_seconds` after its last keepalive. etcd may
    /// round a short TTL up to its minimum (about 2 s by default).
    async fn lease_grant(&self, ttl_seconds: i64) -> Result<LeaseId>;

    /// Renews a lease; returns its TTL in seconds. [`Error::LeaseNotFound`] if it expired.
    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<i64>;

    /// Revokes a lease at once, deleting the keys attached to it.
    async fn lease_revoke(&self, lease: LeaseId) -> Result<()>;

    /// The current revision and the oldest revision still readable.
    async fn status(&self) -> Result<StoreStatus>;

    /// Shuts the store down: writes already queued are committed and answered, later
    /// calls fail with [`Error::Closed`], open watches end with `Closed`. Dropping the
    /// last handle does the same without waiting.
    async fn close(&self) -> Result<()> {
        Ok(())
    }

    // Conveniences over `range` and `txn`; backends need not override them.

    /// Reads one key at the current revision. Returns the value (if any) and the
    /// revision the read was served at.
    async fn get(&self, key: &[u8]) -> Result<(Option<KeyValue>, Revision)> {
        let resp = self
            .range(KeyRange::key(key), RangeOptions::default())
            .await?;
        Ok((resp.kvs.into_iter().next(), resp.revision))
    }

    /// Puts a value unconditionally; returns the revision of the write.
    async fn put(&self, key: &[u8], value: Vec<u8>) -> Result<Revision> {
        let resp = self.txn(Txn::new().success(Op::put(key, value))).await?;
        Ok(resp.revision)
    }

    /// Creates a key only if it does not exist. `Ok(Err(current))` carries the existing
    /// value when it does.
    async fn create(
        &self,
        key: &[u8],
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<std::result::Result<Revision, KeyValue>> {
        let txn = Txn::new()
            .when(Compare::create_revision(key, CompareOp::Equal, 0))
            .success(Op::Put {
                key: key.to_vec(),
                value,
                lease,
            })
            .failure(Op::get(key));
        let resp = self.txn(txn).await?;
        if resp.succeeded {
            return Ok(Ok(resp.revision));
        }
        match resp.into_first_get() {
            Some(kv) => Ok(Err(kv)),
            // Created and deleted between the compare and the read cannot happen inside
            // one transaction; an empty get here means the backend broke atomicity.
            None => Err(Error::Internal(
                "create failed its compare but the key is absent".into(),
            )),
        }
    }

    /// Compare-and-swap: writes `value` only if the key's mod revision is still
    /// `expected_mod_revision`. `Ok(Err(current))` carries the current value (None if
    /// the key is gone) when it is not.
    async fn update(
        &self,
        key: &[u8],
        expected_mod_revision: Revision,
        value: Vec<u8>,
    ) -> Result<std::result::Result<Revision, Option<KeyValue>>> {
        let txn = Txn::new()
            .when(Compare::mod_revision(
                key,
                CompareOp::Equal,
                expected_mod_revision,
            ))
            .success(Op::put(key, value))
            .failure(Op::get(key));
        let resp = self.txn(txn).await?;
        if resp.succeeded {
            Ok(Ok(resp.revision))
        } else {
            Ok(Err(resp.into_first_get()))
        }
    }

    /// Deletes a key only if its mod revision is still `expected_mod_revision`.
    /// `Ok(Err(current))` carries the current value when it is not.
    async fn delete_if(
        &self,
        key: &[u8],
        expected_mod_revision: Revision,
    ) -> Result<std::result::Result<Revision, Option<KeyValue>>> {
        let txn = Txn::new()
            .when(Compare::mod_revision(
                key,
                CompareOp::Equal,
                expected_mod_revision,
            ))
            .success(Op::delete(key))
            .failure(Op::get(key));
        let resp = self.txn(txn).await?;
        if resp.succeeded {
            Ok(Ok(resp.revision))
        } else {
            Ok(Err(resp.into_first_get()))
        }
    }
}
