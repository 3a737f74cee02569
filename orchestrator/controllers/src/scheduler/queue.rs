//! [`SchedulingQueue`]: the pods waiting for a node, and what happens to them between
//! attempts. Pure state: time comes in as an argument (tokio's `Instant`, so tests can
//! pause it).
//!
//! ```text
//!  upsert (new pending pod) ──▶ Active ──pop──▶ InFlight ──bound──▶ (gone)
//!                                 ▲                │
//!         backoff or flush timer  │                ├─ bind failed ──▶ BackingOff ─┐
//!         (or a cluster change    │                │                            │
//!          after the backoff)     │                └─ unschedulable ─▶ Parked ───┤
//!                                 └─────────────────────────────────────────────┘
//! ```
//!
//! Active pods come out by priority (higher first), then creation time, then arrival
//! (FIFO). A pod no node fits is parked: it is retried when the cluster changes in a way
//! that may make room ([`SchedulingQueue::cluster_changed`]) once its backoff (1 s,
//! doubling to 10 s per failed attempt, as in Kubernetes) has passed, and in any case
//! after [`UNSCHEDULABLE_FLUSH`]. A failed bind backs off the same way.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use skiff_client::ObjectKey;
use tokio::time::Instant;

use super::pod::PodInfo;

/// First retry delay after a failed attempt.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A parked (unschedulable) pod is retried at least this often.
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Active,
    InFlight,
    BackingOff,
    /// No node fits; `woken` once a cluster change asked for a retry.
    Parked {
        backoff_until: Instant,
        woken: bool,
    },
}

#[derive(Debug)]
struct Entry {
    pod: Arc<PodInfo>,
    state: State,
    attempts: u32,
    /// Bumped on every transition: heap and timer items of older generations are stale.
    generation: u64,
    /// The unschedulable message last reported for this pod.
    reported: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
struct ActiveItem {
    priority: i32,
    creation: String,
    seq: u64,
    key: ObjectKey,
    generation: u64,
}

impl Ord for ActiveItem {
    fn cmp(&self, other: &Self) -> Ordering {
        // Max-heap: higher priority, then older creation, then earlier arrival first.
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.creation.cmp(&self.creation))
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for ActiveItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

type Timer = Reverse<(Instant, u64, ObjectKey, u64)>;

/// See the module docs.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    entries: HashMap<ObjectKey, Entry>,
    active: BinaryHeap<ActiveItem>,
    timers: BinaryHeap<Timer>,
    /// Parked pods no cluster change has woken yet.
    sleeping: HashSet<ObjectKey>,
    seq: u64,
}

/// The delay before attempt `attempts + 1`.
pub fn backoff(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * (1u32 << shift)).min(MAX_BACKOFF)
}

impl SchedulingQueue {
    pub fn new() -> SchedulingQueue {
        SchedulingQueue::default()
    }

    /// How many pods the queue holds in any state.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many pods are parked as unschedulable.
    pub fn parked(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e.state, State::Parked { .. }))
            .count()
    }

    /// Whether `key` is queued in any state.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        self.entries.contains_key(key)
    }

    /// A pending pod was seen (created or updated). A new pod becomes active; a parked
    /// one whose scheduling-relevant spec changed is retried (after its backoff).
    pub fn upsert(&mut self, pod: Arc<PodInfo>, now: Instant) {
        let key = pod.key.clone();
        match self.entries.get_mut(&key) {
            Some(e) if e.pod.uid == pod.uid => {
                let spec_changed = !Arc::ptr_eq(&e.pod.spec, &pod.spec) && e.pod.spec != pod.spec;
                e.pod = pod;
                if spec_changed && let State::Parked { .. } = e.state {
                    self.wake(&key, now);
                }
            }
            _ => {
                self.entries.insert(
                    key.clone(),
                    Entry {
                        pod,
                        state: State::Active,
                        attempts: 0,
                        generation: 0,
                        reported: None,
                    },
                );
                self.activate(&key);
            }
        }
    }

    /// Forgets a pod (bound elsewhere, deleted, no longer ours).
    pub fn remove(&mut self, key: &ObjectKey) {
        self.entries.remove(key);
        self.sleeping.remove(key);
    }

    /// The next pod to schedule; it is in flight until [`bound`](Self::bound),
    /// [`bind_failed`](Self::bind_failed) or [`unschedulable`](Self::unschedulable).
    pub fn pop(&mut self) -> Option<Arc<PodInfo>> {
        while let Some(item) = self.active.pop() {
            let Some(e) = self.entries.get_mut(&item.key) else {
                continue;
            };
            if e.generation != item.generation || e.state != State::Active {
                continue;
            }
            e.state = State::InFlight;
            e.generation += 1;
            return Some(e.pod.clone());
        }
        None
    }

    /// The bind of `key` (uid `uid`) succeeded: done with it.
    pub fn bound(&mut self, key: &ObjectKey, uid: &str) {
        if self
            .entries
            .get(key)
            .is_some_and(|e| e.pod.uid == uid && e.state == State::InFlight)
        {
            self.entries.remove(key);
        }
    }

    /// The bind failed: retry after a backoff.
    pub fn bind_failed(&mut self, key: &ObjectKey, uid: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        if e.pod.uid != uid || e.state != State::InFlight {
            return;
        }
        e.attempts += 1;
        e.state = State::BackingOff;
        let at = now + backoff(e.attempts);
        self.arm(key, at);
    }

    /// No node fits: park the pod until the cluster changes or the flush interval ends.
    pub fn unschedulable(&mut self, key: &ObjectKey, now: Instant) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        if e.state != State::InFlight {
            return;
        }
        e.attempts += 1;
        e.state = State::Parked {
            backoff_until: now + backoff(e.attempts),
            woken: false,
        };
        self.sleeping.insert(key.clone());
        self.arm(key, now + UNSCHEDULABLE_FLUSH);
    }

    /// Something changed that may make room (a node appeared or changed, a pod left a
    /// node): every parked pod is retried once its backoff has passed.
    pub fn cluster_changed(&mut self, now: Instant) {
        for key in std::mem::take(&mut self.sleeping) {
            self.wake(&key, now);
        }
    }

    /// Moves pods whose timer has expired to the active queue.
    pub fn tick(&mut self, now: Instant) {
        while let Some(Reverse((at, _, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, _, key, generation))) = self.timers.pop() else {
                break;
            };
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.generation == generation && e.state != State::InFlight)
            {
                self.activate(&key);
            }
        }
    }

    /// When [`tick`](Self::tick) next has something to do (possibly earlier: stale timers
    /// are dropped lazily).
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, ..))| *at)
    }

    /// Whether `message` should be reported for `key` (it was not the last one).
    pub fn should_report(&self, key: &ObjectKey, message: &str) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| e.reported.as_deref() != Some(message))
    }

    /// Remembers that `message` was reported for `key`.
    pub fn reported(&mut self, key: &ObjectKey, message: &str) {
        if let Some(e) = self.entries.get_mut(key) {
            e.reported = Some(message.to_string());
        }
    }

    fn wake(&mut self, key: &ObjectKey, now: Instant) {
        self.sleeping.remove(key);
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        let State::Parked { backoff_until, .. } = e.state else {
            return;
        };
        if backoff_until <= now {
            self.activate(key);
        } else {
            e.state = State::Parked {
                backoff_until,
                woken: true,
            };
            self.arm(key, backoff_until);
        }
    }

    fn activate(&mut self, key: &ObjectKey) {
        self.sleeping.remove(key);
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        e.state = State::Active;
        e.generation += 1;
        self.seq += 1;
        self.active.push(ActiveItem {
            priority: e.pod.priority,
            creation: e.pod.creation.clone(),
            seq: self.seq,
            key: key.clone(),
            generation: e.generation,
        });
    }

    /// A timer for `key`'s current state (invalidating older ones).
    fn arm(&mut self, key: &ObjectKey, at: Instant) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        e.generation += 1;
        self.seq += 1;
        self.timers
            .push(Reverse((at, self.seq, key.clone(), e.generation)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::named_pod;
    use serde_json::json;

    fn pod(name: &str, priority: i32, created: &str) -> Arc<PodInfo> {
        let mut p = named_pod(name, json!({"priority": priority}));
        p.creation = created.to_string();
        Arc::new(p)
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new(Some("ns"), name)
    }

    fn drain(q: &mut SchedulingQueue) -> Vec<String> {
        std::iter::from_fn(|| q.pop().map(|p| p.key.name.clone())).collect()
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let secs: Vec<u64> = (1..=6).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn order_is_priority_then_creation_then_arrival() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new();
        q.upsert(pod("late", 0, "2025-01-01T00:00:02Z"), now);
        q.upsert(pod("early", 0, "2025-01-01T00:00:01Z"), now);
        q.upsert(pod("same-1", 0, "2025-01-01T00:00:03Z"), now);
        q.upsert(pod("same-2", 0, "2025-01-01T00:00:03Z"), now);
        q.upsert(pod("urgent", 100, "2025-01-01T00:00:09Z"), now);
        assert_eq!(
            drain(&mut q),
            ["urgent", "early", "late", "same-1", "same-2"]
        );
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn updates_and_removals_leave_no_duplicates() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new();
        q.upsert(pod("a", 0, "1"), now);
        q.upsert(pod("a", 0, "1"), now);
        q.upsert(pod("b", 0, "2"), now);
        q.remove(&key("b"));
        assert_eq!(drain(&mut q), ["a"]);
        // In flight: an update does not queue it again.
        q.upsert(pod("a", 0, "1"), now);
        assert_eq!(q.pop(), None);
        q.bound(&key("a"), "u-a");
        assert!(q.is_empty());
    }

    #[test]
    fn failed_binds_back_off() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.upsert(pod("a", 0, "1"), t0);
        q.pop();
        q.bind_failed(&key("a"), "u-a", t0);
        q.tick(t0 + Duration::from_millis(999));
        assert_eq!(q.pop(), None);
        assert_eq!(q.next_timer(), Some(t0 + Duration::from_secs(1)));
        q.tick(t0 + Duration::from_secs(1));
        assert_eq!(drain(&mut q), ["a"]);
        q.bind_failed(&key("a"), "u-a", t0);
        q.tick(t0 + Duration::from_secs(1));
        assert_eq!(q.pop(), None, "the second failure waits 2 s");
        q.tick(t0 + Duration::from_secs(2));
        assert_eq!(drain(&mut q), ["a"]);
        // A stale outcome (another uid) changes nothing.
        q.bind_failed(&key("a"), "other", t0);
        q.bound(&key("a"), "other");
        assert!(q.contains(&key("a")));
    }

    #[test]
    fn parked_pods_wait_for_a_change_after_their_backoff_or_the_flush() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.upsert(pod("a", 0, "1"), t0);
        q.pop();
        q.unschedulable(&key("a"), t0);
        assert_eq!(q.parked(), 1);
        // No change: nothing before the flush.
        q.tick(t0 + Duration::from_secs(29));
        assert_eq!(q.pop(), None);
        q.tick(t0 + UNSCHEDULABLE_FLUSH);
        assert_eq!(drain(&mut q), ["a"]);

        // A change during the backoff: retried when the backoff ends (2 s: 2nd attempt).
        let t1 = t0 + UNSCHEDULABLE_FLUSH;
        q.unschedulable(&key("a"), t1);
        q.cluster_changed(t1 + Duration::from_millis(500));
        q.tick(t1 + Duration::from_secs(1));
        assert_eq!(q.pop(), None);
        q.tick(t1 + Duration::from_secs(2));
        assert_eq!(drain(&mut q), ["a"]);

        // A change after the backoff: retried at once.
        let t2 = t1 + Duration::from_secs(2);
        q.unschedulable(&key("a"), t2);
        q.cluster_changed(t2 + Duration::from_secs(5));
        assert_eq!(drain(&mut q), ["a"]);
    }

    #[test]
    fn a_spec_change_wakes_a_parked_pod_but_a_status_change_does_not() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        let a = pod("a", 0, "1");
        q.upsert(a.clone(), t0);
        q.pop();
        q.unschedulable(&key("a"), t0);
        let t1 = t0 + Duration::from_secs(5);
        // Same spec (our own status write coming back).
        let mut same = (*a).clone();
        same.unschedulable_message = Some("m".into());
        q.upsert(Arc::new(same), t1);
        assert_eq!(q.pop(), None);
        // A toleration added.
        let changed = named_pod("a", json!({"tolerations": [{"operator": "Exists"}]}));
        q.upsert(Arc::new(changed), t1);
        assert_eq!(drain(&mut q), ["a"]);
    }

    #[test]
    fn a_recreated_pod_starts_over() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.upsert(pod("a", 0, "1"), t0);
        q.pop();
        q.unschedulable(&key("a"), t0);
        let mut again = (*pod("a", 0, "1")).clone();
        again.uid = "new".into();
        q.upsert(Arc::new(again), t0);
        assert_eq!(q.pop().map(|p| p.uid.clone()), Some("new".to_string()));
    }

    #[test]
    fn reports_once_per_message() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.upsert(pod("a", 0, "1"), t0);
        assert!(q.should_report(&key("a"), "m1"));
        q.reported(&key("a"), "m1");
        assert!(!q.should_report(&key("a"), "m1"));
        assert!(q.should_report(&key("a"), "m2"));
        assert!(!q.should_report(&key("gone"), "m1"));
    }
}
