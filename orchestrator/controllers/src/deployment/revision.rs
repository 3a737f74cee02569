//! The annotations a Deployment keeps on its ReplicaSets: the revision (with the history of
//! revisions a rolled-back ReplicaSet had), the desired and maximum replica counts, and
//! the Deployment's own annotations copied over (Kubernetes' `SetNewReplicaSetAnnotations`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// Kubernetes' `maxRevHistoryLengthInChars`.
const MAX_HISTORY_CHARS: usize = 2000;

/// Deployment annotations that are the controller's, never copied to a ReplicaSet.
fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO
    )
}

/// A ReplicaSet's revision (0 when it has none or it does not parse).
pub fn revision_of(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// An annotation of a ReplicaSet.
pub fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// An integer annotation of a ReplicaSet (desired or max replicas).
pub fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotation(rs, key).and_then(|v| v.parse().ok())
}

/// Copies the Deployment's annotations (but the controller's own) onto the ReplicaSet;
/// answers whether anything changed.
pub fn copy_deployment_annotations(
    deployment: Option<&BTreeMap<String, String>>,
    rs: &mut ReplicaSet,
) -> bool {
    let mut changed = false;
    let target = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in deployment.into_iter().flatten() {
        if skip_copy(k) || target.get(k) == Some(v) {
            continue;
        }
        target.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Sets the desired- and max-replicas annotations; answers whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_string(), value);
            changed = true;
        }
    }
    changed
}

/// The annotations of the Deployment's new ReplicaSet: the Deployment's own, a revision of
/// at least `new_revision` (a ReplicaSet that becomes current again — a rollback — gets a
/// bumped revision, and its earlier one goes into the revision history), and, when it is
/// about to be created (`!exists`), the replica annotations. Answers whether anything
/// changed.
pub fn set_new_replica_set_annotations(
    deployment_annotations: Option<&BTreeMap<String, String>>,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    replicas: i32,
    max_surge: i32,
) -> bool {
    let mut changed = copy_deployment_annotations(deployment_annotations, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = annotations.get(REVISION).cloned();
    let old_revision = match old.as_deref() {
        None | Some("") => 0,
        Some(r) => match r.parse::<i64>() {
            Ok(r) => r,
            // Not ours to fix: leave the annotations alone.
            Err(_) => return changed,
        },
    };
    if old_revision < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old.filter(|o| !o.is_empty()) {
            let history = annotations
                .get(REVISION_HISTORY)
                .cloned()
                .unwrap_or_default();
            if let Some(history) = append_history(&history, &old) {
                annotations.insert(REVISION_HISTORY.into(), history);
            }
        }
    }
    if !exists && set_replicas_annotations(rs, replicas, replicas + max_surge) {
        changed = true;
    }
    changed
}

/// `history` with `revision` appended, dropping the oldest entries to stay within
/// [`MAX_HISTORY_CHARS`]; `None` when even that cannot fit.
fn append_history(history: &str, revision: &str) -> Option<String> {
    if history.is_empty() {
        return Some(revision.to_string());
    }
    let entries: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + revision.len() + 1;
    let mut start = 0;
    while total > MAX_HISTORY_CHARS && start < entries.len() {
        total -= entries[start].len() + 1;
        start += 1;
    }
    if total > MAX_HISTORY_CHARS {
        return None;
    }
    let mut kept: Vec<&str> = entries[start..].to_vec();
    kept.push(revision);
    Some(kept.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(annotations: &[(&str, &str)]) -> ReplicaSet {
        let mut rs = ReplicaSet::default();
        if !annotations.is_empty() {
            rs.metadata.annotations = Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }
        rs
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn revisions() {
        assert_eq!(revision_of(&rs(&[(REVISION, "7")])), 7);
        assert_eq!(revision_of(&rs(&[(REVISION, "x")])), 0);
        assert_eq!(revision_of(&rs(&[])), 0);
        assert_eq!(
            int_annotation(&rs(&[(MAX_REPLICAS, "4")]), MAX_REPLICAS),
            Some(4)
        );
    }

    /// (case, existing annotations, new revision, exists, changed, expected annotations)
    type AnnotationCase = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        i64,
        bool,
        bool,
        Vec<(&'static str, &'static str)>,
    );

    #[test]
    fn new_replica_set_annotations() {
        let d = map(&[
            ("team", "a"),
            (LAST_APPLIED, "{}"),
            (REVISION, "9"),
            ("kubernetes.io/change-cause", "v2"),
        ]);
        let cases: Vec<AnnotationCase> = vec![
            (
                "a new ReplicaSet",
                vec![],
                1,
                false,
                true,
                vec![
                    ("team", "a"),
                    ("kubernetes.io/change-cause", "v2"),
                    (REVISION, "1"),
                    (DESIRED_REPLICAS, "3"),
                    (MAX_REPLICAS, "4"),
                ],
            ),
            (
                "already current",
                vec![
                    ("team", "a"),
                    ("kubernetes.io/change-cause", "v2"),
                    (REVISION, "2"),
                ],
                2,
                true,
                false,
                vec![
                    ("team", "a"),
                    ("kubernetes.io/change-cause", "v2"),
                    (REVISION, "2"),
                ],
            ),
            (
                "rolled back to: revision bumped, history kept",
                vec![
                    ("team", "a"),
                    ("kubernetes.io/change-cause", "v2"),
                    (REVISION, "1"),
                ],
                3,
                true,
                true,
                vec![
                    ("team", "a"),
                    ("kubernetes.io/change-cause", "v2"),
                    (REVISION, "3"),
                    (REVISION_HISTORY, "1"),
                ],
            ),
            (
                "rolled back twice",
                vec![
                    ("team", "a"),
                    ("kubernetes.io/change-cause", "v2"),
                    (REVISION, "3"),
                    (REVISION_HISTORY, "1"),
                ],
                5,
                true,
                true,
                vec![
                    ("team", "a"),
                    ("kubernetes.io/change-cause", "v2"),
                    (REVISION, "5"),
                    (REVISION_HISTORY, "1,3"),
                ],
            ),
            (
                "never lowered",
                vec![
                    ("team", "a"),
                    ("kubernetes.io/change-cause", "v2"),
                    (REVISION, "6"),
                ],
                4,
                true,
                false,
                vec![
                    ("team", "a"),
                    ("kubernetes.io/change-cause", "v2"),
                    (REVISION, "6"),
                ],
            ),
            (
                "deployment annotation changed",
                vec![
                    ("team", "b"),
                    ("kubernetes.io/change-cause", "v2"),
                    (REVISION, "2"),
                ],
                2,
                true,
                true,
                vec![
                    ("team", "a"),
                    ("kubernetes.io/change-cause", "v2"),
                    (REVISION, "2"),
                ],
            ),
        ];
        for (case, existing, new_revision, exists, changed, expected) in cases {
            let mut r = rs(&existing);
            let got = set_new_replica_set_annotations(Some(&d), &mut r, new_revision, exists, 3, 1);
            assert_eq!(got, changed, "{case}");
            assert_eq!(
                r.metadata.annotations.unwrap_or_default(),
                map(&expected),
                "{case}"
            );
        }
    }

    #[test]
    fn replicas_annotations() {
        let mut r = rs(&[]);
        assert!(set_replicas_annotations(&mut r, 3, 4));
        assert!(!set_replicas_annotations(&mut r, 3, 4));
        assert!(set_replicas_annotations(&mut r, 5, 4));
        assert_eq!(int_annotation(&r, DESIRED_REPLICAS), Some(5));
    }

    #[test]
    fn history_is_bounded() {
        assert_eq!(append_history("", "1").as_deref(), Some("1"));
        assert_eq!(append_history("1,2", "3").as_deref(), Some("1,2,3"));
        let long: Vec<String> = (0..600).map(|i| i.to_string()).collect();
        let history = long.join(",");
        let appended = append_history(&history, "600").unwrap();
        assert!(appended.len() <= MAX_HISTORY_CHARS);
        assert!(appended.ends_with(",599,600"));
        assert!(!appended.starts_with("0,"));
    }
}
