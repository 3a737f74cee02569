//! skiff-store: the desired state of a Skiff cluster, kept with etcd's semantics.
//!
//! Start with [`Store`]: every backend implements it, and one conformance suite
//! (`tests/all/conformance.rs`) holds each of them to the same behaviour.
//!
//! - [`embedded::EmbeddedStore`] (the default): SQLite in one file, one writer task that
//!   group-commits, an events table feeding watches, an in-memory lease table.
//! - `etcd::EtcdStore` (feature `etcd`): a thin mapping onto a real etcd ≥ 3.4.
//!
//! The model is etcd's: one global, strictly increasing revision; each write
//! transaction gets the next revision; every key remembers the revision that created
//! it and the one that last modified it; watches replay history from any revision that
//! has not been compacted away.

mod error;
mod types;

pub use error::{Error, Result};
pub use types::*;

use std::pin::Pin;

use futures::Stream;

/// A stream of watch responses, in revision order, as [`Store::watch`] returns it.
///
/// It ends with `Err(Error::WatchLagged { resume_from })` if the consumer fell too far
/// behind (resume with a new watch from that revision), `Err(Error::Compacted { .. })`
/// if its start revision is no longer kept, or `Err(Error::Closed)` when the store
/// shuts down. It never skips an event silently.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse>> + Send>>;

/// A key-value store with etcd's semantics.
///
/// Guarantees every backend keeps (and the conformance suite checks):
/// - Every successful write transaction gets exactly one new revision, one greater than
///   the previous; a transaction whose compares fail, or that only reads, writes nothing
///   and keeps the current revision.
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
    /// "from the next write".
    async fn watch(&self, range: KeyRange, from_revision: Revision) -> Result<WatchStream>;

    /// Discards the history before `revision`: reads and watches below it fail with
    /// [`Error::Compacted`]. The latest value of every key is kept.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Grants a lease that expires `ttl_seconds` after its last keepalive.
    async fn lease_grant(&self, ttl_seconds: i64) -> Result<LeaseId>;

    /// Renews a lease; returns its TTL in seconds. [`Error::LeaseNotFound`] if it expired.
    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<i64>;

    /// Revokes a lease at once, deleting the keys attached to it.
    async fn lease_revoke(&self, lease: LeaseId) -> Result<()>;

    /// The current revision and the oldest revision still readable.
    async fn status(&self) -> Result<StoreStatus>;

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
pub mod embedded;
