//! The values that cross the [`crate::Store`] trait.

use crate::{Error, Result};

/// A store revision: strictly increasing, one per write transaction. 0 means "none".
/// The embedded store's first write is revision 1; etcd's is 2 (an empty etcd is at 1).
pub type Revision = i64;

/// A lease's id, chosen by the store; never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

/// The largest value a store accepts, as etcd's default request limit: 1.5 MiB.
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;

/// One key with its value and revisions, as etcd's `mvccpb.KeyValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Revision of the write that created this incarnation of the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key (for a delete event: the delete's).
    pub mod_revision: Revision,
    /// Number of writes since creation, starting at 1 (0 in a delete event).
    pub version: i64,
    pub lease: Option<LeaseId>,
}

/// A range of keys: `[start, end)`, or exactly `start` when `end` is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Vec<u8>,
    /// Exclusive end. Empty: the single key `start`. `[0]`: every key ≥ `start`.
    pub end: Vec<u8>,
}

impl KeyRange {
    /// Exactly one key.
    pub fn key(key: impl AsRef<[u8]>) -> Self {
        Self {
            start: key.as_ref().to_vec(),
            end: Vec::new(),
        }
    }

    /// Every key that starts with `prefix`. An empty prefix means every key.
    pub fn prefix(prefix: impl AsRef<[u8]>) -> Self {
        let start = prefix.as_ref().to_vec();
        let end = prefix_end(&start);
        Self { start, end }
    }

    /// Keys in `[start, end)`.
    pub fn between(start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> Self {
        Self {
            start: start.as_ref().to_vec(),
            end: end.as_ref().to_vec(),
        }
    }

    /// Whether this range holds exactly one key.
    pub fn is_single_key(&self) -> bool {
        self.end.is_empty()
    }

    /// Refuses the empty key: a single-key range needs a key (an empty `start` is only
    /// meaningful with an `end`, as in "every key").
    pub fn validate(&self) -> Result<()> {
        if self.start.is_empty() && self.end.is_empty() {
            return Err(Error::InvalidRequest("empty key".into()));
        }
        Ok(())
    }

    /// Whether `key` falls in this range.
    pub fn contains(&self, key: &[u8]) -> bool {
        if self.end.is_empty() {
            return key == self.start.as_slice();
        }
        if key < self.start.as_slice() {
            return false;
        }
        self.end == [0] || key < self.end.as_slice()
    }
}

/// The smallest key greater than every key starting with `prefix` (etcd's
/// `GetPrefixRangeEnd`): `[0]` ("no end") when no such key exists.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// How a range is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// Read at this revision instead of the current one. Fails with `Compacted` below
    /// the kept history and `FutureRevision` above the current revision.
    pub revision: Option<Revision>,
    /// Return at most this many keys (in key order); `more` tells whether there are more.
    /// `Some(0)` means no limit, as in etcd.
    pub limit: Option<usize>,
    /// Return only the count, no keys.
    pub count_only: bool,
}

/// What a range read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResponse {
    /// The keys, in byte order of key.
    pub kvs: Vec<KeyValue>,
    /// Whether keys beyond `limit` exist in the range.
    pub more: bool,
    /// The number of keys in the whole range, ignoring `limit`.
    pub count: usize,
    /// The revision the read was served at (the store's current revision, or the
    /// requested one).
    pub revision: Revision,
}

/// What a compare looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareTarget {
    /// 0 when the key does not exist.
    ModRevision(Revision),
    /// 0 when the key does not exist.
    CreateRevision(Revision),
    /// 0 when the key does not exist.
    Version(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Less,
    Greater,
}

/// One condition of a transaction, on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: Vec<u8>,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    pub fn mod_revision(key: impl AsRef<[u8]>, op: CompareOp, revision: Revision) -> Self {
        Self {
            key: key.as_ref().to_vec(),
            op,
            target: CompareTarget::ModRevision(revision),
        }
    }

    pub fn create_revision(key: impl AsRef<[u8]>, op: CompareOp, revision: Revision) -> Self {
        Self {
            key: key.as_ref().to_vec(),
            op,
            target: CompareTarget::CreateRevision(revision),
        }
    }

    pub fn version(key: impl AsRef<[u8]>, op: CompareOp, version: i64) -> Self {
        Self {
            key: key.as_ref().to_vec(),
            op,
            target: CompareTarget::Version(version),
        }
    }

    /// Evaluates the compare against the key's current value (None: absent), as etcd
    /// does: absent keys compare with revisions and version 0.
    pub fn holds(&self, current: Option<&KeyValue>) -> bool {
        let (actual, expected) = match self.target {
            CompareTarget::ModRevision(r) => (current.map_or(0, |kv| kv.mod_revision), r),
            CompareTarget::CreateRevision(r) => (current.map_or(0, |kv| kv.create_revision), r),
            CompareTarget::Version(v) => (current.map_or(0, |kv| kv.version), v),
        };
        match self.op {
            CompareOp::Equal => actual == expected,
            CompareOp::NotEqual => actual != expected,
            CompareOp::Less => actual < expected,
            CompareOp::Greater => actual > expected,
        }
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    /// Deletes the keys in the range (one key when `end` is empty).
    Delete(KeyRange),
    /// Reads the keys in the range at the transaction's revision.
    Get(KeyRange),
}

impl Op {
    pub fn put(key: impl AsRef<[u8]>, value: Vec<u8>) -> Self {
        Op::Put {
            key: key.as_ref().to_vec(),
            value,
            lease: None,
        }
    }

    pub fn delete(key: impl AsRef<[u8]>) -> Self {
        Op::Delete(KeyRange::key(key))
    }

    pub fn get(key: impl AsRef<[u8]>) -> Self {
        Op::Get(KeyRange::key(key))
    }
}

/// An atomic transaction: if every compare holds, `success` runs, else `failure`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn when(mut self, compare: Compare) -> Self {
        self.compares.push(compare);
        self
    }

    pub fn success(mut self, op: Op) -> Self {
        self.success.push(op);
        self
    }

    pub fn failure(mut self, op: Op) -> Self {
        self.failure.push(op);
        self
    }

    /// Whether any branch writes.
    pub fn is_read_only(&self) -> bool {
        self.success
            .iter()
            .chain(&self.failure)
            .all(|op| matches!(op, Op::Get(_)))
    }

    /// Checks what every backend refuses before touching storage, as etcd does: empty
    /// keys, values over [`MAX_VALUE_BYTES`], and a branch that writes the same key twice
    /// (two puts, or a put inside a deleted range). Both branches are checked, so a
    /// refused transaction never writes anything.
    pub fn validate(&self) -> Result<()> {
        for compare in &self.compares {
            if compare.key.is_empty() {
                return Err(Error::InvalidRequest("a compare has an empty key".into()));
            }
        }
        for (branch, ops) in [("success", &self.success), ("failure", &self.failure)] {
            for op in ops.iter() {
                match op {
                    Op::Put { key, value, .. } => {
                        if key.is_empty() {
                            return Err(Error::InvalidRequest(format!(
                                "a put in the {branch} branch has an empty key"
                            )));
                        }
                        check_value_size(key, value)?;
                    }
                    Op::Delete(range) | Op::Get(range) => range.validate()?,
                }
            }
            let mut puts: Vec<&[u8]> = ops
                .iter()
                .filter_map(|op| match op {
                    Op::Put { key, .. } => Some(key.as_slice()),
                    _ => None,
                })
                .collect();
            puts.sort_unstable();
            if let Some(pair) = puts.windows(2).find(|pair| pair[0] == pair[1]) {
                return Err(Error::InvalidRequest(format!(
                    "the {branch} branch puts key {:?} twice",
                    String::from_utf8_lossy(pair[0])
                )));
            }
            for op in ops.iter() {
                if let Op::Delete(range) = op
                    && let Some(key) = puts.iter().find(|key| range.contains(key))
                {
                    return Err(Error::InvalidRequest(format!(
                        "the {branch} branch both puts and deletes key {:?}",
                        String::from_utf8_lossy(key)
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Refuses a value over [`MAX_VALUE_BYTES`].
pub(crate) fn check_value_size(key: &[u8], value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge {
            key: String::from_utf8_lossy(key).into_owned(),
            size: value.len(),
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

/// The result of one [`Op`], in the order of the branch that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResponse {
    /// The previous value, if the key existed.
    Put {
        prev: Option<KeyValue>,
    },
    /// The deleted keys with their last values.
    Delete {
        deleted: Vec<KeyValue>,
    },
    Get {
        kvs: Vec<KeyValue>,
    },
}

/// What a transaction returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether the compares held (and `success` ran).
    pub succeeded: bool,
    /// The transaction's revision if it wrote, else the current revision it read at.
    pub revision: Revision,
    pub responses: Vec<OpResponse>,
}

impl TxnResponse {
    /// The first key returned by the first `Get` of the branch that ran.
    pub fn into_first_get(self) -> Option<KeyValue> {
        self.responses.into_iter().find_map(|r| match r {
            OpResponse::Get { kvs } => kvs.into_iter().next(),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The key after the change. For a delete: the key, an empty value and
    /// `mod_revision` = the delete's revision.
    pub kv: KeyValue,
    /// The key before the change, if it existed.
    pub prev_kv: Option<KeyValue>,
}

/// A batch of events of one revision, as a watch delivers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchResponse {
    /// The revision of these events.
    pub revision: Revision,
    pub events: Vec<Event>,
}

/// The store's revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStatus {
    /// The revision of the last write.
    pub revision: Revision,
    /// Revisions below this are compacted away (0: nothing compacted).
    pub compact_revision: Revision,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte_below_ff() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"/a", b"/b"),
            (b"a\xff", b"b"),
            (b"\xff\xff", b"\0"),
            (b"", b"\0"),
        ];
        for (prefix, want) in cases {
            assert_eq!(prefix_end(prefix), want.to_vec(), "prefix {prefix:?}");
        }
    }

    #[test]
    fn range_contains() {
        let r = KeyRange::prefix("/registry/pods/");
        assert!(r.contains(b"/registry/pods/default/a"));
        assert!(!r.contains(b"/registry/pods"));
        assert!(!r.contains(b"/registry/podsx"));
        let all = KeyRange::prefix("");
        assert!(all.contains(b"anything"));
        let one = KeyRange::key("k");
        assert!(one.contains(b"k"));
        assert!(!one.contains(b"k2"));
    }

    #[test]
    fn validate_refuses_what_etcd_refuses() {
        let ok = Txn::new()
            .when(Compare::version("a", CompareOp::Equal, 0))
            .success(Op::put("a", b"1".to_vec()))
            .success(Op::put("b", b"2".to_vec()))
            .success(Op::Delete(KeyRange::prefix("c")))
            .failure(Op::put("a", b"3".to_vec()));
        assert!(ok.validate().is_ok());
        let bad: Vec<(&str, Txn)> = vec![
            ("empty put key", Txn::new().success(Op::put("", vec![]))),
            ("empty get key", Txn::new().failure(Op::get(""))),
            (
                "empty compare key",
                Txn::new().when(Compare::version("", CompareOp::Equal, 0)),
            ),
            (
                "duplicate put",
                Txn::new()
                    .success(Op::put("a", vec![]))
                    .success(Op::put("a", vec![])),
            ),
            (
                "put inside a deleted range",
                Txn::new()
                    .success(Op::Delete(KeyRange::prefix("/p/")))
                    .success(Op::put("/p/x", vec![])),
            ),
            (
                "value too large in the branch that may not run",
                Txn::new().failure(Op::put("a", vec![0; MAX_VALUE_BYTES + 1])),
            ),
        ];
        for (what, txn) in bad {
            assert!(txn.validate().is_err(), "{what} was accepted");
        }
        assert!(
            Txn::new()
                .success(Op::put("a", vec![0; MAX_VALUE_BYTES]))
                .validate()
                .is_ok()
        );
        assert!(KeyRange::prefix("").validate().is_ok());
    }

    #[test]
    fn compare_on_absent_key_uses_zero() {
        let c = Compare::create_revision("k", CompareOp::Equal, 0);
        assert!(c.holds(None));
        let kv = KeyValue {
            key: b"k".to_vec(),
            value: vec![],
            create_revision: 3,
            mod_revision: 5,
            version: 2,
            lease: None,
        };
        assert!(!c.holds(Some(&kv)));
        assert!(Compare::mod_revision("k", CompareOp::Greater, 4).holds(Some(&kv)));
        assert!(Compare::version("k", CompareOp::Less, 3).holds(Some(&kv)));
    }
}
