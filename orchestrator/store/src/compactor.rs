//! History compaction, shared by every backend.
//!
//! Neither etcd nor the embedded store compacts by itself: like the kube-apiserver,
//! Skiff runs one compactor per store that keeps the last `keep_revisions` revisions and
//! discards older history every `interval`. Watchers that fall further behind than the
//! kept history get [`Error::Compacted`](crate::Error::Compacted) and relist.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{Revision, Store, StoreStatus};

/// How much history to keep, and how often to trim it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Revisions kept below the current one (at least 1). Default 10,000: minutes of
    /// history for a busy small cluster, enough for a watcher to resume after a restart.
    pub keep_revisions: i64,
    /// Time between compactions. Default 60 s (the kube-apiserver uses 5 min and keeps
    /// everything since the previous run; counting revisions bounds the history by
    /// size instead).
    pub interval: Duration,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        Self {
            keep_revisions: 10_000,
            interval: Duration::from_secs(60),
        }
    }
}

impl CompactionPolicy {
    /// The revision to compact at, if history has grown beyond what the policy keeps.
    pub fn target(&self, status: StoreStatus) -> Option<Revision> {
        let target = status.revision - self.keep_revisions.max(1);
        (target > status.compact_revision && target > 0).then_some(target)
    }
}

/// Compacts `store` by `policy` until `cancel` fires: once at start, then every
/// `interval`. Failures are logged and retried at the next tick.
pub async fn run_compactor(
    store: Arc<dyn Store>,
    policy: CompactionPolicy,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(policy.interval.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let status = match store.status().await {
            Ok(status) => status,
            Err(e) => {
                tracing::warn!(error = %e, "compactor: reading the store status failed");
                continue;
            }
        };
        let Some(target) = policy.target(status) else {
            continue;
        };
        match store.compact(target).await {
            Ok(()) => tracing::debug!(revision = target, "compacted the store history"),
            Err(e) => tracing::warn!(revision = target, error = %e, "compaction failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_keeps_the_last_revisions() {
        let policy = CompactionPolicy {
            keep_revisions: 100,
            interval: Duration::from_secs(1),
        };
        let status = |revision, compact_revision| StoreStatus {
            revision,
            compact_revision,
        };
        let cases = [
            (status(0, 0), None),
            (status(100, 0), None),
            (status(101, 0), Some(1)),
            (status(1000, 0), Some(900)),
            (status(1000, 900), None),
            (status(1000, 950), None),
            (status(1001, 900), Some(901)),
        ];
        for (status, want) in cases {
            assert_eq!(policy.target(status), want, "{status:?}");
        }
    }
}
