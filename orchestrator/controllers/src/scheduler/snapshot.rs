//! [`Snapshot`]: the scheduler's view of the cluster — every node and what the pods bound
//! to it (or assumed onto it) use — kept current incrementally from informer events.
//!
//! "Assumed" pods are the scheduler's own decisions whose bind is in flight or not yet
//! seen in the informer: they count like bound pods, so consecutive decisions never
//! overcommit a node. The informer's bound pod replaces the assumption
//! ([`Snapshot::add_pod`]); a failed bind removes it ([`Snapshot::forget`]).
//!
//! Nodes live in slots whose index stays put while the node exists, so that per-owner
//! counts can be turned into a dense vector per decision (see `schedule`). A slot also
//! exists for a node name that pods are bound to but whose Node object is not (yet)
//! known: its usage is right when the Node appears.

use std::collections::HashMap;
use std::sync::Arc;

use skiff_client::ObjectKey;

use super::node::NodeInfo;
use super::pod::{HostPort, PodInfo, Resources};

/// What the pods placed on one node use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of the pods' requests (what fitting checks).
    pub requested: Resources,
    /// Sum with non-zero defaults (what scoring counts).
    pub non_zero: Resources,
    pub pods: i64,
    /// Host ports in use (a multiset: one entry per pod port).
    pub host_ports: Vec<HostPort>,
}

impl Usage {
    fn add(&mut self, pod: &PodInfo) {
        self.requested.add(pod.spec.requests);
        self.non_zero.add(pod.spec.non_zero);
        self.pods += 1;
        self.host_ports.extend(pod.spec.host_ports.iter().cloned());
    }

    fn remove(&mut self, pod: &PodInfo) {
        self.requested.sub(pod.spec.requests);
        self.non_zero.sub(pod.spec.non_zero);
        self.pods -= 1;
        for hp in &pod.spec.host_ports {
            if let Some(i) = self.host_ports.iter().position(|h| h == hp) {
                self.host_ports.swap_remove(i);
            }
        }
    }
}

/// One node's slot.
#[derive(Clone, Debug)]
pub struct NodeSlot {
    pub name: Arc<str>,
    /// A hash of the name, for the deterministic tie-break.
    pub name_hash: u64,
    /// `None`: pods are bound to this name but the Node object is unknown.
    pub info: Option<Arc<NodeInfo>>,
    pub usage: Usage,
}

#[derive(Clone, Debug)]
struct Placed {
    slot: usize,
    pod: Arc<PodInfo>,
    assumed: bool,
}

/// Nodes and their usage. See the module docs.
#[derive(Debug, Default)]
pub struct Snapshot {
    slots: Vec<Option<NodeSlot>>,
    by_name: HashMap<Arc<str>, usize>,
    free: Vec<usize>,
    nodes: usize,
    placed: HashMap<ObjectKey, Placed>,
    /// Owner uid → slot → how many of its pods are placed there.
    owners: HashMap<Arc<str>, HashMap<usize, u32>>,
}

impl Snapshot {
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// How many Node objects are known.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// The slots (indexes are stable while a node exists); `None` entries are free.
    pub fn slots(&self) -> &[Option<NodeSlot>] {
        &self.slots
    }

    /// A node's slot by name.
    pub fn node(&self, name: &str) -> Option<&NodeSlot> {
        let i = *self.by_name.get(name)?;
        self.slots.get(i)?.as_ref()
    }

    /// Slot → how many pods of `owner` are placed there.
    pub fn owner_counts(&self, owner: &str) -> Option<&HashMap<usize, u32>> {
        self.owners.get(owner)
    }

    /// How many pods are placed (bound or assumed).
    pub fn pod_count(&self) -> usize {
        self.placed.len()
    }

    /// Adds or updates a Node; returns whether anything the scheduler uses changed.
    pub fn upsert_node(&mut self, info: NodeInfo) -> bool {
        let slot = self.slot_for(&info.name);
        let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        if s.info.as_deref() == Some(&info) {
            return false;
        }
        if s.info.is_none() {
            self.nodes += 1;
        }
        s.info = Some(Arc::new(info));
        true
    }

    /// Removes a Node (its pods' usage stays until they go).
    pub fn remove_node(&mut self, name: &str) -> bool {
        let Some(&slot) = self.by_name.get(name) else {
            return false;
        };
        let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        if s.info.take().is_none() {
            return false;
        }
        self.nodes -= 1;
        self.release_if_empty(slot);
        true
    }

    /// Places a pod the informer shows bound (`node_name` set), replacing an assumption
    /// or an earlier version of it. A pod without a node, or finished, is removed
    /// instead. Returns whether room may have been freed somewhere (the pod left a node
    /// or its requests changed) — not when an assumption is merely confirmed.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) -> bool {
        let Some(node) = pod.node_name.clone().filter(|_| !pod.terminal) else {
            return self.remove_pod(&pod.key);
        };
        let freed = match self.placed.get(&pod.key) {
            Some(prev) => {
                let moved = self
                    .slots
                    .get(prev.slot)
                    .and_then(Option::as_ref)
                    .is_none_or(|s| *s.name != *node);
                let resized = !Arc::ptr_eq(&prev.pod.spec, &pod.spec) && prev.pod.spec != pod.spec;
                moved || resized
            }
            None => false,
        };
        self.remove_pod(&pod.key);
        self.place(pod, &node, false);
        freed
    }

    /// Places a pod the scheduler has just decided to bind to `node`.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.remove_pod(&pod.key);
        self.place(pod, node, true);
    }

    /// Drops an assumption (the bind failed). A pod the informer already shows bound
    /// stays.
    pub fn forget(&mut self, key: &ObjectKey) -> bool {
        if self.is_assumed(key) {
            self.remove_pod(key)
        } else {
            false
        }
    }

    /// Whether `key` is placed by assumption only.
    pub fn is_assumed(&self, key: &ObjectKey) -> bool {
        self.placed.get(key).is_some_and(|p| p.assumed)
    }

    /// The pod placed under `key`, and whether it is an assumption.
    pub fn placed(&self, key: &ObjectKey) -> Option<(&Arc<PodInfo>, bool)> {
        self.placed.get(key).map(|p| (&p.pod, p.assumed))
    }

    /// Removes a placed pod; returns whether there was one.
    pub fn remove_pod(&mut self, key: &ObjectKey) -> bool {
        let Some(p) = self.placed.remove(key) else {
            return false;
        };
        if let Some(s) = self.slots.get_mut(p.slot).and_then(Option::as_mut) {
            s.usage.remove(&p.pod);
        }
        if let Some(owner) = &p.pod.owner
            && let Some(counts) = self.owners.get_mut(owner)
        {
            if let Some(c) = counts.get_mut(&p.slot) {
                *c -= 1;
                if *c == 0 {
                    counts.remove(&p.slot);
                }
            }
            if counts.is_empty() {
                self.owners.remove(owner);
            }
        }
        self.release_if_empty(p.slot);
        true
    }

    fn place(&mut self, pod: Arc<PodInfo>, node: &str, assumed: bool) {
        let slot = self.slot_for(node);
        if let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) {
            s.usage.add(&pod);
        }
        if let Some(owner) = &pod.owner {
            *self
                .owners
                .entry(owner.clone())
                .or_default()
                .entry(slot)
                .or_default() += 1;
        }
        self.placed
            .insert(pod.key.clone(), Placed { slot, pod, assumed });
    }

    fn slot_for(&mut self, name: &str) -> usize {
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        let name: Arc<str> = Arc::from(name);
        let slot = NodeSlot {
            name: name.clone(),
            name_hash: fnv1a(name.as_bytes()),
            info: None,
            usage: Usage::default(),
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        self.by_name.insert(name, i);
        i
    }

    fn release_if_empty(&mut self, slot: usize) {
        let Some(entry) = self.slots.get_mut(slot) else {
            return;
        };
        if entry
            .as_ref()
            .is_some_and(|s| s.info.is_none() && s.usage.pods == 0)
            && let Some(s) = entry.take()
        {
            self.by_name.remove(&s.name);
            self.free.push(slot);
        }
    }
}

/// 64-bit FNV-1a: a stable hash (the same on every run and platform), for tie-breaks.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::node::{Allocatable, Readiness};
    use crate::scheduler::pod::PodSpecInfo;

    fn node(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            labels: Default::default(),
            unschedulable: false,
            readiness: Readiness::Ready,
            taints: vec![],
            allocatable: Allocatable {
                milli_cpu: 4000,
                memory: 8 << 30,
                pods: 110,
            },
        }
    }

    fn pod(name: &str, node: Option<&str>, cpu: i64, owner: Option<&str>) -> Arc<PodInfo> {
        Arc::new(PodInfo {
            key: ObjectKey::new(Some("ns"), name),
            uid: format!("uid-{name}"),
            node_name: node.map(str::to_string),
            scheduler_name: "default-scheduler".into(),
            deleting: false,
            terminal: false,
            gated: false,
            priority: 0,
            creation: String::new(),
            owner: owner.map(Arc::from),
            unschedulable_message: None,
            spec: Arc::new(PodSpecInfo {
                requests: Resources {
                    milli_cpu: cpu,
                    memory: 1 << 20,
                },
                non_zero: Resources {
                    milli_cpu: cpu.max(100),
                    memory: 1 << 20,
                },
                host_ports: vec![HostPort {
                    protocol: "TCP".into(),
                    ip: "0.0.0.0".into(),
                    port: 80,
                }],
                ..Default::default()
            }),
        })
    }

    fn usage(s: &Snapshot, node: &str) -> (i64, i64, usize) {
        let u = &s.node(node).unwrap().usage;
        (u.requested.milli_cpu, u.pods, u.host_ports.len())
    }

    #[test]
    fn usage_follows_pods_and_assumptions() {
        let mut s = Snapshot::new();
        assert!(s.upsert_node(node("n1")));
        assert!(!s.upsert_node(node("n1")), "the same node is no change");
        s.upsert_node(node("n2"));
        assert_eq!(s.node_count(), 2);

        s.add_pod(pod("a", Some("n1"), 100, Some("rs")));
        s.assume(pod("b", None, 200, Some("rs")), "n1");
        assert_eq!(usage(&s, "n1"), (300, 2, 2));
        assert!(s.is_assumed(&ObjectKey::new(Some("ns"), "b")));
        assert_eq!(s.owner_counts("rs").unwrap().values().sum::<u32>(), 2);

        // The informer confirms b on n1: no double counting, nothing freed.
        assert!(!s.add_pod(pod("b", Some("n1"), 200, Some("rs"))));
        assert_eq!(usage(&s, "n1"), (300, 2, 2));
        assert!(!s.is_assumed(&ObjectKey::new(Some("ns"), "b")));
        assert!(
            !s.forget(&ObjectKey::new(Some("ns"), "b")),
            "confirmed pods stay"
        );

        // A failed bind forgets the assumption.
        s.assume(pod("c", None, 1000, None), "n2");
        assert_eq!(usage(&s, "n2"), (1000, 1, 1));
        assert!(s.forget(&ObjectKey::new(Some("ns"), "c")));
        assert_eq!(usage(&s, "n2"), (0, 0, 0));

        // A finished pod frees its node.
        let mut done = (*pod("a", Some("n1"), 100, Some("rs"))).clone();
        done.terminal = true;
        assert!(s.add_pod(Arc::new(done)));
        assert_eq!(usage(&s, "n1"), (200, 1, 1));
        assert!(s.remove_pod(&ObjectKey::new(Some("ns"), "b")));
        assert_eq!(usage(&s, "n1"), (0, 0, 0));
        assert!(s.owner_counts("rs").is_none());
        assert_eq!(s.pod_count(), 0);
    }

    #[test]
    fn pods_on_unknown_nodes_keep_their_usage_until_the_node_appears() {
        let mut s = Snapshot::new();
        s.add_pod(pod("a", Some("late"), 500, None));
        assert_eq!(s.node_count(), 0);
        assert_eq!(usage(&s, "late"), (500, 1, 1));
        s.upsert_node(node("late"));
        assert_eq!(s.node_count(), 1);
        assert_eq!(usage(&s, "late"), (500, 1, 1));
        assert!(s.remove_node("late"));
        assert_eq!(s.node_count(), 0);
        assert!(
            s.node("late").is_some(),
            "the slot stays while pods are bound"
        );
        s.remove_pod(&ObjectKey::new(Some("ns"), "a"));
        assert!(s.node("late").is_none());
        // Slots are reused.
        s.upsert_node(node("again"));
        assert_eq!(s.slots().len(), 1);
    }

    #[test]
    fn moving_a_pod_moves_its_usage() {
        let mut s = Snapshot::new();
        s.upsert_node(node("n1"));
        s.upsert_node(node("n2"));
        s.assume(pod("a", None, 100, None), "n1");
        // The informer shows it on n2 (another scheduler won the race).
        assert!(s.add_pod(pod("a", Some("n2"), 100, None)));
        assert_eq!(usage(&s, "n1"), (0, 0, 0));
        assert_eq!(usage(&s, "n2"), (100, 1, 1));
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
