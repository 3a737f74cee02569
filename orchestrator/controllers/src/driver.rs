//! The reconcile driver: informers in, a deduplicating work queue, N workers calling a
//! [`Reconciler`], per-key exponential back-off out.
//!
//! ```text
//!  primary informer ──key──┐
//!  owned informers ──owner key──┼─▶ WorkQueue (dedup; a key being reconciled is marked
//!  watched informers ──map()──┘     dirty and requeued when its reconcile ends)
//!                                      │
//!                         workers (≤ concurrency) ── reconcile(key) ──▶ Done
//!                                                                  ├─▶ After(d): requeue in d
//!                                                                  └─▶ Err: back-off 5 ms·2ⁿ ≤ 30 s
//!                                                                        (conflicts: quietly, 10 ms)
//! ```
//!
//! Nothing is reconciled until every informer has listed once; then every primary object
//! is enqueued, and again whenever an informer relists or a subscriber lags (level-
//! triggered: a reconcile never depends on which event woke it).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use skiff_client::{Informer, InformerEvent, ObjectKey};
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::Result;

const BACKOFF_BASE: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const CONFLICT_RETRY: Duration = Duration::from_millis(10);

/// What to do with a key after a successful reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// Converged: wait for the next change.
    Done,
    /// Look again after this long (a minReadySeconds or a deadline expiring).
    After(Duration),
}

/// One controller's convergence logic for one object key.
#[async_trait::async_trait]
pub trait Reconciler: Send + Sync + 'static {
    /// For logs and metrics: `replicaset`, `deployment`.
    fn name(&self) -> &'static str;
    /// Converges the object `key` (which may no longer exist) towards its desired state.
    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue>;
}

/// Maps a changed object to the keys to reconcile.
type KeyMap = Arc<dyn Fn(&Value) -> Vec<ObjectKey> + Send + Sync>;

/// A controller: a reconciler and the informers that wake it.
pub struct Controller<R: Reconciler> {
    reconciler: Arc<R>,
    primary: Informer,
    sources: Vec<(Informer, KeyMap)>,
    concurrency: usize,
}

impl<R: Reconciler> Controller<R> {
    pub fn new(reconciler: Arc<R>, primary: Informer) -> Self {
        Controller {
            reconciler,
            primary,
            sources: Vec::new(),
            concurrency: 4,
        }
    }

    /// Child events wake the owner: the child's controller ownerReference of
    /// `owner_kind`, in the child's namespace.
    pub fn owns(mut self, child: Informer, owner_kind: &'static str) -> Self {
        let map: KeyMap =
            Arc::new(move |object: &Value| controller_of(object, owner_kind).into_iter().collect());
        self.sources.push((child, map));
        self
    }

    /// Any other informer: `map` turns a changed object into the keys to reconcile.
    pub fn watches(
        mut self,
        other: Informer,
        map: impl Fn(&Value) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> Self {
        self.sources.push((other, Arc::new(map)));
        self
    }

    /// How many keys may be reconciled at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Runs until `cancel`; in-flight reconciles finish before it returns.
    pub async fn run(self, cancel: CancellationToken) {
        let name = self.reconciler.name();
        let queue = WorkQueue::new();
        let tasks = TaskTracker::new();
        // Subscribe before waiting for sync so nothing between the list and now is lost.
        let primary_rx = self.primary.subscribe();
        let source_rx: Vec<_> = self
            .sources
            .iter()
            .map(|(informer, map)| (informer.clone(), informer.subscribe(), map.clone()))
            .collect();

        let synced = async {
            self.primary.synced().await;
            for (informer, _) in &self.sources {
                informer.synced().await;
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = synced => {}
        }
        tracing::debug!(controller = name, "caches synced");

        let primary = self.primary.clone();
        let all_primaries: KeyMap =
            Arc::new(|object: &Value| ObjectKey::of(object).into_iter().collect());
        enqueue_all(&queue, &primary, &all_primaries);
        tasks.spawn(pump(
            primary.clone(),
            primary_rx,
            all_primaries,
            queue.clone(),
            cancel.clone(),
        ));
        for (informer, rx, map) in source_rx {
            tasks.spawn(pump(informer, rx, map, queue.clone(), cancel.clone()));
        }

        for _ in 0..self.concurrency {
            let queue = queue.clone();
            let reconciler = self.reconciler.clone();
            let cancel = cancel.clone();
            let tasks2 = tasks.clone();
            tasks.spawn(async move {
                loop {
                    let key = tokio::select! {
                        _ = cancel.cancelled() => return,
                        key = queue.next() => key,
                    };
                    let result = reconciler.reconcile(&key).await;
                    queue.done(&key);
                    match result {
                        Ok(Requeue::Done) => queue.forget(&key),
                        Ok(Requeue::After(delay)) => {
                            queue.forget(&key);
                            queue.add_after(&tasks2, &cancel, key, delay);
                        }
                        Err(e) if e.is_conflict() => {
                            queue.add_after(&tasks2, &cancel, key, CONFLICT_RETRY);
                        }
                        Err(e) => {
                            let delay = queue.backoff(&key);
                            tracing::warn!(controller = reconciler.name(), %key, error = %e, retry_in = ?delay, "reconcile failed");
                            queue.add_after(&tasks2, &cancel, key, delay);
                        }
                    }
                }
            });
        }
        cancel.cancelled().await;
        tasks.close();
        tasks.wait().await;
    }
}

/// The key of `object`'s controlling owner of kind `owner_kind`, if any.
pub fn controller_of(object: &Value, owner_kind: &str) -> Option<ObjectKey> {
    let meta = object.get("metadata")?;
    let namespace = meta.get("namespace").and_then(Value::as_str);
    meta.get("ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| {
            r.get("controller").and_then(Value::as_bool) == Some(true)
                && r.get("kind").and_then(Value::as_str) == Some(owner_kind)
        })
        .and_then(|r| r.get("name")?.as_str())
        .map(|name| ObjectKey::new(namespace, name))
}

fn enqueue_all(queue: &WorkQueue, informer: &Informer, map: &KeyMap) {
    for object in informer.list() {
        for key in map(&object) {
            queue.add(key);
        }
    }
}

/// Feeds one informer's changes into the queue.
async fn pump(
    informer: Informer,
    mut rx: broadcast::Receiver<InformerEvent>,
    map: KeyMap,
    queue: WorkQueue,
    cancel: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = rx.recv() => event,
        };
        match event {
            Ok(InformerEvent::Applied { old, new }) => {
                if let Some(old) = old {
                    for key in map(&old) {
                        queue.add(key);
                    }
                }
                for key in map(&new) {
                    queue.add(key);
                }
            }
            Ok(InformerEvent::Deleted(old)) => {
                for key in map(&old) {
                    queue.add(key);
                }
            }
            Ok(InformerEvent::Relisted) | Err(broadcast::error::RecvError::Lagged(_)) => {
                enqueue_all(&queue, &informer, &map);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[derive(Default)]
struct QueueState {
    queue: VecDeque<ObjectKey>,
    queued: HashSet<ObjectKey>,
    processing: HashSet<ObjectKey>,
    /// Added while being processed: queued again when done.
    dirty: HashSet<ObjectKey>,
    failures: HashMap<ObjectKey, u32>,
    /// The earliest pending delayed add per key.
    delayed: HashMap<ObjectKey, Instant>,
}

/// A deduplicating FIFO of keys: a key is at most once in the queue and never
/// reconciled by two workers at once.
#[derive(Clone, Default)]
pub struct WorkQueue {
    state: Arc<Mutex<QueueState>>,
    ready: Arc<Notify>,
}

impl std::fmt::Debug for WorkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueue")
            .field("len", &self.len())
            .finish()
    }
}

impl WorkQueue {
    pub fn new() -> WorkQueue {
        WorkQueue::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keys waiting (not counting those being processed).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn add(&self, key: ObjectKey) {
        let mut s = self.lock();
        if s.processing.contains(&key) {
            s.dirty.insert(key);
            return;
        }
        if s.queued.insert(key.clone()) {
            s.queue.push_back(key);
            drop(s);
            self.ready.notify_one();
        }
    }

    /// Adds `key` after `delay` (an earlier pending add for the key wins).
    pub fn add_after(
        &self,
        tasks: &TaskTracker,
        cancel: &CancellationToken,
        key: ObjectKey,
        delay: Duration,
    ) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let at = Instant::now() + delay;
        {
            let mut s = self.lock();
            match s.delayed.get(&key) {
                Some(existing) if *existing <= at => return,
                _ => {
                    s.delayed.insert(key.clone(), at);
                }
            }
        }
        let queue = self.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep_until(at) => {
                    let due = {
                        let mut s = queue.lock();
                        if s.delayed.get(&key) == Some(&at) {
                            s.delayed.remove(&key);
                            true
                        } else {
                            false
                        }
                    };
                    if due {
                        queue.add(key);
                    }
                }
            }
        });
    }

    /// The next key to work on; it is marked as being processed until [`WorkQueue::done`].
    pub async fn next(&self) -> ObjectKey {
        loop {
            let notified = self.ready.notified();
            {
                let mut s = self.lock();
                if let Some(key) = s.queue.pop_front() {
                    s.queued.remove(&key);
                    s.processing.insert(key.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        self.ready.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// The reconcile of `key` ended; a re-add that came meanwhile is queued now.
    pub fn done(&self, key: &ObjectKey) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.remove(key) && s.queued.insert(key.clone()) {
            s.queue.push_back(key.clone());
            drop(s);
            self.ready.notify_one();
        }
    }

    /// The key converged: its back-off starts over.
    pub fn forget(&self, key: &ObjectKey) {
        self.lock().failures.remove(key);
    }

    /// The delay before the next retry of a failing key: 5 ms · 2ⁿ, at most 30 s.
    pub fn backoff(&self, key: &ObjectKey) -> Duration {
        let mut s = self.lock();
        let n = s.failures.entry(key.clone()).or_insert(0);
        let delay = backoff_delay(*n);
        *n = n.saturating_add(1);
        delay
    }
}

fn backoff_delay(failures: u32) -> Duration {
    BACKOFF_BASE
        .checked_mul(1u32 << failures.min(20))
        .unwrap_or(BACKOFF_MAX)
        .min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new(Some("ns"), name)
    }

    #[tokio::test]
    async fn queue_dedups_and_defers_keys_in_flight() {
        let q = WorkQueue::new();
        q.add(key("a"));
        q.add(key("b"));
        q.add(key("a"));
        assert_eq!(q.len(), 2);
        let first = q.next().await;
        assert_eq!(first, key("a"));
        // Re-added while processing: not handed to a second worker...
        q.add(key("a"));
        assert_eq!(q.next().await, key("b"));
        assert!(q.is_empty());
        // ...but queued again once the first reconcile is done.
        q.done(&first);
        assert_eq!(q.next().await, key("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_adds_keep_the_earliest() {
        let q = WorkQueue::new();
        let tasks = TaskTracker::new();
        let cancel = CancellationToken::new();
        q.add_after(&tasks, &cancel, key("a"), Duration::from_secs(10));
        q.add_after(&tasks, &cancel, key("a"), Duration::from_secs(1));
        q.add_after(&tasks, &cancel, key("a"), Duration::from_secs(5));
        let start = Instant::now();
        assert_eq!(q.next().await, key("a"));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        q.done(&key("a"));
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(q.is_empty(), "the later adds were superseded");
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_delay(0), Duration::from_millis(5));
        assert_eq!(backoff_delay(1), Duration::from_millis(10));
        assert_eq!(backoff_delay(10), Duration::from_millis(5120));
        assert_eq!(backoff_delay(13), BACKOFF_MAX);
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
        let q = WorkQueue::new();
        assert_eq!(q.backoff(&key("x")), Duration::from_millis(5));
        assert_eq!(q.backoff(&key("x")), Duration::from_millis(10));
        q.forget(&key("x"));
        assert_eq!(q.backoff(&key("x")), Duration::from_millis(5));
    }

    #[test]
    fn owner_keys() {
        let pod = json!({"metadata": {"namespace": "ns", "name": "p", "ownerReferences": [
            {"kind": "ReplicaSet", "name": "other", "controller": false},
            {"kind": "ReplicaSet", "name": "web-1", "controller": true},
        ]}});
        assert_eq!(controller_of(&pod, "ReplicaSet"), Some(key("web-1")));
        assert_eq!(controller_of(&pod, "Job"), None);
        assert_eq!(
            controller_of(&json!({"metadata": {"name": "x"}}), "Job"),
            None
        );
    }
}
