//! The watch cache: every object under `/registry/`, kept current by ONE store watch,
//! with a window of recent events. Lists and watches are served from here, so the
//! store is not ranged per request.
//!
//! ```text
//!   store ──range(/registry/) at R──▶ objects            (start, and after a compaction)
//!   store ──watch(/registry/, R+1)──▶ apply(batch) ──▶ objects + events window
//!                                                  └──▶ revision channel ──▶ watchers wake
//! ```
//!
//! A watcher asks for "events after revision N under this prefix". If N is inside the
//! window it is served from memory; below it, [`WatchCache::watch`] says so and the
//! caller falls back to a direct store watch (which fails with 410 below the store's
//! kept history).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use skiff_store::{EventKind, KeyRange, KeyValue, LeaseId, RangeOptions, Revision, Store};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::object;

/// The prefix every Kubernetes object is stored under.
pub const REGISTRY_PREFIX: &str = "/registry/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, decoded, with `metadata.resourceVersion` set.
#[derive(Debug, Clone)]
pub struct CacheEvent {
    pub revision: Revision,
    pub key: String,
    pub kind: EventType,
    /// The object after the change; for a delete, its last state (resourceVersion =
    /// the delete's revision), as Kubernetes sends it.
    pub object: Arc<Value>,
    /// The object before the change.
    pub prev: Option<Arc<Value>>,
}

#[derive(Debug, Clone)]
pub struct CachedObject {
    pub object: Arc<Value>,
    pub mod_revision: Revision,
    /// The store lease the key is attached to (an Event's TTL).
    pub lease: Option<LeaseId>,
}

struct CacheState {
    revision: Revision,
    objects: BTreeMap<String, CachedObject>,
    /// Objects this server has just written, by key, with the revision of the write:
    /// when the store's event for that write arrives, the cache takes the object from
    /// here instead of decoding the stored bytes again. Only writes above `revision`
    /// are kept, and each is gone once the cache has applied its revision.
    written: HashMap<String, (Revision, Arc<Value>)>,
    /// Events with revision in (`window_start`, `revision`], in revision order.
    events: VecDeque<CacheEvent>,
    window_start: Revision,
}

/// See the module docs.
pub struct WatchCache {
    store: Arc<dyn Store>,
    state: Mutex<CacheState>,
    revision_tx: watch::Sender<Revision>,
    capacity: usize,
    cancel: CancellationToken,
}

impl std::fmt::Debug for WatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCache")
            .field("revision", &self.revision())
            .finish()
    }
}

/// A watch asked for events the window no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooOld {
    pub window_start: Revision,
}

impl WatchCache {
    /// Lists everything once and returns the cache; [`WatchCache::run`] keeps it current.
    pub async fn new(
        store: Arc<dyn Store>,
        capacity: usize,
        cancel: CancellationToken,
    ) -> Result<Arc<Self>, skiff_store::Error> {
        let (objects, revision) = list_all(store.as_ref()).await?;
        let (revision_tx, _) = watch::channel(revision);
        Ok(Arc::new(Self {
            store,
            state: Mutex::new(CacheState {
                revision,
                objects,
                written: HashMap::new(),
                events: VecDeque::new(),
                window_start: revision,
            }),
            revision_tx,
            capacity: capacity.max(1),
            cancel,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // A poisoned lock means a panic in a short, non-async section of ours: the
        // state itself is still consistent (each update is a few inserts), keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest revision the cache has applied.
    pub fn revision(&self) -> Revision {
        *self.revision_tx.borrow()
    }

    /// Follows the store until cancelled. Restarts its store watch after lag or errors,
    /// relists after a compaction overtook it.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let from = self.revision() + 1;
            let stream = tokio::select! {
                _ = self.cancel.cancelled() => return,
                s = self.store.watch(KeyRange::prefix(REGISTRY_PREFIX), from) => s,
            };
            let mut stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    if !self.recover(e, &mut backoff).await {
                        return;
                    }
                    continue;
                }
            };
            loop {
                let item = tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    item = stream.next() => item,
                };
                match item {
                    Some(Ok(resp)) => {
                        backoff = Duration::from_millis(100);
                        self.apply(resp.revision, resp.events);
                    }
                    Some(Err(e)) => {
                        if !self.recover(e, &mut backoff).await {
                            return;
                        }
                        break;
                    }
                    None => {
                        tracing::warn!("store watch ended; restarting it");
                        break;
                    }
                }
            }
        }
    }

    /// Handles a store watch error; false when the cache should stop.
    async fn recover(&self, err: skiff_store::Error, backoff: &mut Duration) -> bool {
        match err {
            skiff_store::Error::WatchLagged { .. } => true,
            skiff_store::Error::Closed => false,
            skiff_store::Error::Compacted { .. } => {
                tracing::warn!("watch cache fell behind the store's history; relisting");
                match list_all(self.store.as_ref()).await {
                    Ok((objects, revision)) => {
                        let mut st = self.lock();
                        st.objects = objects;
                        st.events.clear();
                        st.written.clear();
                        st.revision = revision;
                        st.window_start = revision;
                        drop(st);
                        self.revision_tx.send_replace(revision);
                        true
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "watch cache relist failed");
                        self.sleep(backoff).await
                    }
                }
            }
            other => {
                tracing::error!(error = %other, "watch cache store watch failed; retrying");
                self.sleep(backoff).await
            }
        }
    }

    async fn sleep(&self, backoff: &mut Duration) -> bool {
        let wait = *backoff;
        *backoff = (*backoff * 2).min(Duration::from_secs(5));
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    fn apply(&self, revision: Revision, events: Vec<skiff_store::Event>) {
        let mut st = self.lock();
        if revision <= st.revision {
            return; // already applied (a restarted store watch may repeat one batch)
        }
        for ev in events {
            let key = String::from_utf8_lossy(&ev.kv.key).into_owned();
            match ev.kind {
                EventKind::Put => {
                    let obj = match st.written.remove(&key) {
                        Some((rev, obj)) if rev == ev.kv.mod_revision => obj,
                        _ => match decode(&ev.kv, ev.kv.mod_revision) {
                            Some(obj) => obj,
                            None => continue,
                        },
                    };
                    let prev = st.objects.get(&key).map(|o| o.object.clone());
                    let kind = if prev.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    };
                    st.objects.insert(
                        key.clone(),
                        CachedObject {
                            object: obj.clone(),
                            mod_revision: ev.kv.mod_revision,
                            lease: ev.kv.lease,
                        },
                    );
                    st.events.push_back(CacheEvent {
                        revision,
                        key,
                        kind,
                        object: obj,
                        prev,
                    });
                }
                EventKind::Delete => {
                    let prev = st.objects.remove(&key).map(|o| o.object);
                    let last = match (&prev, &ev.prev_kv) {
                        (Some(p), _) => {
                            let mut v = (**p).clone();
                            object::set_resource_version(&mut v, revision);
                            Some(Arc::new(v))
                        }
                        (None, Some(kv)) => decode(kv, revision),
                        (None, None) => None,
                    };
                    if let Some(object) = last {
                        st.events.push_back(CacheEvent {
                            revision,
                            key,
                            kind: EventType::Deleted,
                            object,
                            prev,
                        });
                    }
                }
            }
        }
        st.revision = revision;
        st.written.retain(|_, (rev, _)| *rev > revision);
        while st.events.len() > self.capacity {
            if let Some(ev) = st.events.pop_front() {
                // Everything at or below this revision may now be incomplete.
                st.window_start = st.window_start.max(ev.revision);
            }
        }
        // Drop whole revisions only: a partially kept revision would look complete.
        while st
            .events
            .front()
            .is_some_and(|ev| ev.revision <= st.window_start)
        {
            st.events.pop_front();
        }
        drop(st);
        self.revision_tx.send_replace(revision);
    }

    /// Waits until the cache has applied `revision` (a consistent read).
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> Result<(), ApiError> {
        let mut rx = self.revision_tx.subscribe();
        let wait = rx.wait_for(|r| *r >= revision);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ApiError::service_unavailable("the server is shutting down")),
            Err(_) => Err(ApiError::timeout(format!(
                "Too large resource version: {revision}, current: {}",
                self.revision()
            ))),
        }
    }

    /// Every object whose key starts with `prefix`, in key order, and the revision they
    /// are current at.
    pub fn list(&self, prefix: &str) -> (Vec<CachedObject>, Revision) {
        let st = self.lock();
        let items = st
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, o)| o.clone())
            .collect();
        (items, st.revision)
    }

    /// Tells the cache that this server wrote `object` (resourceVersion set) under `key`
    /// at `revision`, so that applying the store's event for it needs no decode. The
    /// object must be exactly what was stored.
    pub fn written(&self, key: &str, revision: Revision, object: Arc<Value>) {
        let mut st = self.lock();
        if revision > st.revision {
            st.written.insert(key.to_string(), (revision, object));
        }
    }

    /// One object by key.
    pub fn get(&self, key: &str) -> Option<CachedObject> {
        self.lock().objects.get(key).cloned()
    }

    /// Starts watching `prefix` for events after `after`; [`TooOld`] if the window does
    /// not reach back that far.
    pub fn watch(self: &Arc<Self>, prefix: &str, after: Revision) -> Result<CacheWatcher, TooOld> {
        let st = self.lock();
        if after < st.window_start {
            return Err(TooOld {
                window_start: st.window_start,
            });
        }
        Ok(CacheWatcher {
            cache: self.clone(),
            prefix: prefix.to_string(),
            after,
            rx: self.revision_tx.subscribe(),
        })
    }
}

/// A watcher's cursor into the cache.
pub struct CacheWatcher {
    cache: Arc<WatchCache>,
    prefix: String,
    after: Revision,
    rx: watch::Receiver<Revision>,
}

impl std::fmt::Debug for CacheWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheWatcher")
            .field("prefix", &self.prefix)
            .field("after", &self.after)
            .finish()
    }
}

impl CacheWatcher {
    /// The revision this watcher has delivered up to.
    pub fn revision(&self) -> Revision {
        self.after
    }

    /// Waits for the next events under the prefix. `Err(TooOld)` if the watcher fell out
    /// of the window (the client must relist: 410); `Ok(None)` when the server stops.
    pub async fn next(&mut self) -> Result<Option<Vec<CacheEvent>>, TooOld> {
        loop {
            {
                let st = self.cache.lock();
                if self.after < st.window_start {
                    return Err(TooOld {
                        window_start: st.window_start,
                    });
                }
                if st.revision > self.after {
                    let start = st.events.partition_point(|e| e.revision <= self.after);
                    let batch: Vec<CacheEvent> = st
                        .events
                        .range(start..)
                        .filter(|e| e.key.starts_with(&self.prefix))
                        .cloned()
                        .collect();
                    self.after = st.revision;
                    if !batch.is_empty() {
                        return Ok(Some(batch));
                    }
                }
            }
            tokio::select! {
                _ = self.cache.cancel.cancelled() => return Ok(None),
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

async fn list_all(
    store: &dyn Store,
) -> Result<(BTreeMap<String, CachedObject>, Revision), skiff_store::Error> {
    let resp = store
        .range(KeyRange::prefix(REGISTRY_PREFIX), RangeOptions::default())
        .await?;
    let mut objects = BTreeMap::new();
    for kv in resp.kvs {
        if let Some(object) = decode(&kv, kv.mod_revision) {
            objects.insert(
                String::from_utf8_lossy(&kv.key).into_owned(),
                CachedObject {
                    object,
                    mod_revision: kv.mod_revision,
                    lease: kv.lease,
                },
            );
        }
    }
    Ok((objects, resp.revision))
}

/// Decodes a stored object and stamps its resourceVersion. A value that is not JSON
/// (written by something else) is logged and skipped rather than served broken.
pub fn decode(kv: &KeyValue, revision: Revision) -> Option<Arc<Value>> {
    match serde_json::from_slice::<Value>(&kv.value) {
        Ok(mut v) => {
            object::set_resource_version(&mut v, revision);
            Some(Arc::new(v))
        }
        Err(e) => {
            tracing::warn!(key = %String::from_utf8_lossy(&kv.key), error = %e, "skipping undecodable stored object");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use skiff_store::embedded::{EmbeddedOptions, EmbeddedStore};

    async fn wait_until(cache: &WatchCache, revision: Revision) {
        cache
            .wait_for(revision, Duration::from_secs(10))
            .await
            .unwrap();
    }

    /// An object the server says it wrote is taken as it is; a claim for another revision
    /// is ignored (the stored bytes are decoded) and forgotten.
    #[tokio::test]
    async fn written_objects_skip_the_decode_only_for_their_revision() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            EmbeddedStore::open(dir.path().join("s.db"), EmbeddedOptions::default())
                .await
                .unwrap(),
        );
        let cancel = CancellationToken::new();
        let cache = WatchCache::new(store.clone(), 100, cancel.clone())
            .await
            .unwrap();
        let key = "/registry/pods/default/p";
        let stored = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
        let rev = store
            .put(key.as_bytes(), serde_json::to_vec(&stored).unwrap())
            .await
            .unwrap();
        let mut object = stored.clone();
        object::set_resource_version(&mut object, rev);
        let hint = Arc::new(object.clone());
        cache.written(key, rev, Arc::clone(&hint));
        // A second key, claimed at a revision its write does not have.
        let other = "/registry/pods/default/q";
        let rev2 = store
            .put(other.as_bytes(), serde_json::to_vec(&stored).unwrap())
            .await
            .unwrap();
        cache.written(other, rev2 + 1, Arc::new(json!({"wrong": true})));

        tokio::spawn(Arc::clone(&cache).run());
        wait_until(&cache, rev2).await;
        let got = cache.get(key).unwrap();
        assert!(
            Arc::ptr_eq(&got.object, &hint),
            "the written object is shared"
        );
        assert_eq!(*got.object, object);
        let q = cache.get(other).unwrap();
        assert_eq!(q.object["spec"]["nodeName"], "n1", "decoded from the store");
        assert_eq!(
            object::resource_version(&q.object),
            Some(rev2.to_string().as_str())
        );
        // An old claim (at or below what the cache applied) is not kept at all.
        cache.written(key, rev, Arc::new(json!({})));
        assert!(cache.lock().written.is_empty());
        cancel.cancel();
    }
}
