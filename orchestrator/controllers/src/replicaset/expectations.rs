//! Expectations: a ReplicaSet's own pod creates and deletes that the pod informer has not
//! shown yet.
//!
//! The informer lags behind the API: right after creating three pods, the cache may still
//! show none, and a reconcile that trusted it would create three more. So, as in
//! Kubernetes, a ReplicaSet does not create or delete pods while any of its earlier
//! writes is unobserved — except after [`Expectations::timeout`], which bounds the damage
//! of a lost event.
//!
//! A create is observed once the cache holds the pod (by name and uid) or the informer
//! reported it at all (an `Applied` or a `Deleted` event: a pod created and deleted before
//! the cache caught up). A delete is observed once the cache no longer holds the pod, or
//! holds it with a `deletionTimestamp`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use skiff_client::ObjectKey;
use tokio::time::Instant;

/// Kubernetes' `ExpectationsTimeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Entry {
    /// Creates sent whose answer has not come back.
    in_flight: usize,
    /// Created pods not yet seen: uid → name.
    created: HashMap<String, String>,
    /// Deleted pods the cache still shows: uid → name.
    deleted: HashMap<String, String>,
    /// When the writes were made; after `timeout`, they are no longer waited for.
    since: Instant,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            in_flight: 0,
            created: HashMap::new(),
            deleted: HashMap::new(),
            since: Instant::now(),
        }
    }

    fn is_empty(&self) -> bool {
        self.in_flight == 0 && self.created.is_empty() && self.deleted.is_empty()
    }
}

/// Whether a ReplicaSet may create or delete pods now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Satisfaction {
    Satisfied,
    /// Writes are still unobserved; they stop counting after this long.
    Pending(Duration),
}

/// What the cache shows of a pod: its uid and whether it is being deleted.
pub type CachedPod = Option<(String, bool)>;

/// The expectations of every ReplicaSet of one controller.
#[derive(Debug)]
pub struct Expectations {
    entries: Mutex<HashMap<ObjectKey, Entry>>,
    timeout: Duration,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations::new(DEFAULT_TIMEOUT)
    }
}

impl Expectations {
    pub fn new(timeout: Duration) -> Expectations {
        Expectations {
            entries: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `key`'s earlier writes have all been observed, checking the cache
    /// (`lookup(name)`) for those not yet reported by an event.
    pub fn satisfied(&self, key: &ObjectKey, lookup: impl Fn(&str) -> CachedPod) -> Satisfaction {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(key) else {
            return Satisfaction::Satisfied;
        };
        entry
            .created
            .retain(|uid, name| !matches!(lookup(name), Some((u, _)) if u == *uid));
        entry.deleted.retain(
            |uid, name| matches!(lookup(name), Some((u, deleting)) if u == *uid && !deleting),
        );
        let elapsed = entry.since.elapsed();
        if entry.is_empty() || elapsed >= self.timeout {
            if elapsed >= self.timeout && !entry.is_empty() {
                tracing::debug!(%key, "expectations timed out");
            }
            entries.remove(key);
            return Satisfaction::Satisfied;
        }
        Satisfaction::Pending(self.timeout - elapsed)
    }

    /// `n` creates are about to be sent.
    pub fn expect_creations(&self, key: &ObjectKey, n: usize) {
        let mut entries = self.lock();
        let entry = entries.entry(key.clone()).or_insert_with(Entry::new);
        entry.in_flight += n;
        entry.since = Instant::now();
    }

    /// One create came back: `Some((name, uid))` when it made a pod, `None` when it failed
    /// or was skipped. `in_cache` tells whether the informer already holds it.
    pub fn creation_done(
        &self,
        key: &ObjectKey,
        created: Option<(&str, &str)>,
        in_cache: impl Fn(&str, &str) -> bool,
    ) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(key) else {
            return;
        };
        entry.in_flight = entry.in_flight.saturating_sub(1);
        if let Some((name, uid)) = created
            && !in_cache(name, uid)
        {
            entry.created.insert(uid.to_string(), name.to_string());
        }
    }

    /// These pods (name, uid) are about to be deleted.
    pub fn expect_deletions(&self, key: &ObjectKey, pods: &[(String, String)]) {
        let mut entries = self.lock();
        let entry = entries.entry(key.clone()).or_insert_with(Entry::new);
        for (name, uid) in pods {
            entry.deleted.insert(uid.clone(), name.clone());
        }
        entry.since = Instant::now();
    }

    /// A delete failed (other than NotFound): stop waiting for it.
    pub fn deletion_failed(&self, key: &ObjectKey, uid: &str) {
        if let Some(entry) = self.lock().get_mut(key) {
            entry.deleted.remove(uid);
        }
    }

    /// The informer reported `pod` (`gone`: a Deleted event).
    pub fn observe(&self, pod: &Value, gone: bool) {
        let meta = pod.get("metadata");
        let Some(uid) = meta.and_then(|m| m.get("uid")).and_then(Value::as_str) else {
            return;
        };
        let deleting = gone
            || meta
                .and_then(|m| m.get("deletionTimestamp"))
                .is_some_and(|t| !t.is_null());
        let mut entries = self.lock();
        for entry in entries.values_mut() {
            entry.created.remove(uid);
            if deleting {
                entry.deleted.remove(uid);
            }
        }
    }

    /// The ReplicaSet is gone.
    pub fn forget(&self, key: &ObjectKey) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> ObjectKey {
        ObjectKey::new(Some("ns"), "web")
    }

    fn nothing(_: &str) -> CachedPod {
        None
    }

    #[tokio::test(start_paused = true)]
    async fn creations_wait_for_the_cache() {
        let e = Expectations::new(Duration::from_secs(60));
        assert_eq!(e.satisfied(&key(), nothing), Satisfaction::Satisfied);
        e.expect_creations(&key(), 2);
        assert!(matches!(
            e.satisfied(&key(), nothing),
            Satisfaction::Pending(_)
        ));
        e.creation_done(&key(), Some(("web-a", "ua")), |_, _| false);
        // Already in the cache when the answer came: nothing to wait for.
        e.creation_done(&key(), Some(("web-b", "ub")), |_, _| true);
        assert!(matches!(
            e.satisfied(&key(), nothing),
            Satisfaction::Pending(_)
        ));
        let cached = |name: &str| (name == "web-a").then(|| ("ua".to_string(), false));
        assert_eq!(e.satisfied(&key(), cached), Satisfaction::Satisfied);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_creates_and_events() {
        let e = Expectations::new(Duration::from_secs(60));
        e.expect_creations(&key(), 3);
        e.creation_done(&key(), None, |_, _| false);
        e.creation_done(&key(), Some(("web-a", "ua")), |_, _| false);
        e.creation_done(&key(), Some(("web-b", "ub")), |_, _| false);
        // A pod created and deleted before the cache saw it: the Deleted event counts.
        e.observe(&json!({"metadata": {"name": "web-a", "uid": "ua"}}), true);
        assert!(matches!(
            e.satisfied(&key(), nothing),
            Satisfaction::Pending(_)
        ));
        e.observe(&json!({"metadata": {"name": "web-b", "uid": "ub"}}), false);
        assert_eq!(e.satisfied(&key(), nothing), Satisfaction::Satisfied);
    }

    #[tokio::test(start_paused = true)]
    async fn deletions() {
        let e = Expectations::new(Duration::from_secs(60));
        let pods = vec![
            ("web-a".to_string(), "ua".to_string()),
            ("web-b".to_string(), "ub".to_string()),
            ("web-c".to_string(), "uc".to_string()),
        ];
        e.expect_deletions(&key(), &pods);
        e.deletion_failed(&key(), "uc");
        let cache = |name: &str| match name {
            "web-a" => Some(("ua".to_string(), true)), // terminating: observed
            "web-b" => Some(("ub".to_string(), false)), // still there
            _ => None,
        };
        assert!(matches!(
            e.satisfied(&key(), cache),
            Satisfaction::Pending(_)
        ));
        // Replaced by a new pod of the same name: the old one is gone.
        let replaced = |name: &str| (name == "web-b").then(|| ("other".to_string(), false));
        assert_eq!(e.satisfied(&key(), replaced), Satisfaction::Satisfied);
    }

    #[tokio::test(start_paused = true)]
    async fn expectations_time_out() {
        let e = Expectations::new(Duration::from_secs(60));
        e.expect_creations(&key(), 1);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(
            e.satisfied(&key(), nothing),
            Satisfaction::Pending(Duration::from_secs(40))
        );
        tokio::time::advance(Duration::from_secs(40)).await;
        assert_eq!(e.satisfied(&key(), nothing), Satisfaction::Satisfied);
        // And they are gone for good.
        assert_eq!(e.satisfied(&key(), nothing), Satisfaction::Satisfied);
        e.expect_creations(&key(), 1);
        e.forget(&key());
        assert_eq!(e.satisfied(&key(), nothing), Satisfaction::Satisfied);
    }
}
