//! Claiming children, as Kubernetes' `ControllerRefManager` does: a controller owns the
//! children whose controller ownerReference names it; it adopts orphans its selector
//! matches and releases children it owns that its selector no longer matches. The
//! ReplicaSet controller claims Pods, the Deployment controller ReplicaSets.
//!
//! The writes are JSON merge patches of `metadata.ownerReferences` carrying the child's
//! `resourceVersion`: a compare-and-swap, so a concurrent owner change is never lost.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Value, json};
use skiff_api::LabelSelector;

/// The controller claiming children.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    /// The owner is being deleted: it neither adopts nor releases.
    pub deleting: bool,
    pub selector: &'a LabelSelector,
}

/// What a controller does with one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Owned and matching.
    Owned,
    /// An orphan that matches: take it.
    Adopt,
    /// Owned but no longer matching: let it go.
    Release,
    /// Someone else's, or nothing to do with us.
    Ignore,
}

/// The controlling reference among `refs`.
pub fn controller_of(refs: &[OwnerReference]) -> Option<&OwnerReference> {
    refs.iter().find(|r| r.controller == Some(true))
}

/// Kubernetes' `ClaimObject` decision for one child.
pub fn claim(
    owner: &Owner<'_>,
    refs: &[OwnerReference],
    labels: &BTreeMap<String, String>,
    child_deleting: bool,
) -> Claim {
    let matches = owner.selector.matches(labels);
    match controller_of(refs) {
        Some(c) if c.uid != owner.uid => Claim::Ignore,
        Some(_) if matches => Claim::Owned,
        Some(_) if owner.deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if owner.deleting || !matches || child_deleting => Claim::Ignore,
        None => Claim::Adopt,
    }
}

/// The ownerReference a controller puts on its children.
pub fn controller_ref(owner: &Owner<'_>) -> OwnerReference {
    OwnerReference {
        api_version: owner.api_version.to_string(),
        kind: owner.kind.to_string(),
        name: owner.name.to_string(),
        uid: owner.uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `refs` with the owner's controller reference added (replacing any reference to it).
pub fn adopted(refs: &[OwnerReference], owner: &Owner<'_>) -> Vec<OwnerReference> {
    let mut out: Vec<OwnerReference> = refs
        .iter()
        .filter(|r| r.uid != owner.uid)
        .cloned()
        .collect();
    out.push(controller_ref(owner));
    out
}

/// `refs` without any reference to `owner_uid`.
pub fn released(refs: &[OwnerReference], owner_uid: &str) -> Vec<OwnerReference> {
    refs.iter()
        .filter(|r| r.uid != owner_uid)
        .cloned()
        .collect()
}

/// The merge patch that sets a child's ownerReferences, conditional on its
/// resourceVersion.
pub fn ownership_patch(resource_version: &str, refs: &[OwnerReference]) -> Value {
    let refs = if refs.is_empty() {
        Value::Null
    } else {
        serde_json::to_value(refs).unwrap_or(Value::Null)
    };
    json!({"metadata": {"resourceVersion": resource_version, "ownerReferences": refs}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner_ref(uid: &str, controller: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            controller: Some(controller),
            block_owner_deletion: None,
        }
    }

    /// (case, owner deleting, refs, labels, child deleting, expected)
    type ClaimCase<'a> = (
        &'static str,
        bool,
        &'a [OwnerReference],
        &'a BTreeMap<String, String>,
        bool,
        Claim,
    );

    #[test]
    fn claims() {
        let selector = LabelSelector::parse("app=web").unwrap();
        let web: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let api: BTreeMap<String, String> = [("app".to_string(), "api".to_string())].into();
        let ours = vec![owner_ref("me", true)];
        let theirs = vec![owner_ref("other", true)];
        let not_controller = vec![owner_ref("other", false)];
        let cases: Vec<ClaimCase<'_>> = vec![
            (
                "owned and matching",
                false,
                &ours,
                &web,
                false,
                Claim::Owned,
            ),
            (
                "owned, no longer matching",
                false,
                &ours,
                &api,
                false,
                Claim::Release,
            ),
            (
                "owned, not matching, owner deleting",
                true,
                &ours,
                &api,
                false,
                Claim::Ignore,
            ),
            (
                "owned, matching, owner deleting",
                true,
                &ours,
                &web,
                false,
                Claim::Owned,
            ),
            ("someone else's", false, &theirs, &web, false, Claim::Ignore),
            ("orphan matching", false, &[], &web, false, Claim::Adopt),
            (
                "orphan with a non-controller ref",
                false,
                &not_controller,
                &web,
                false,
                Claim::Adopt,
            ),
            (
                "orphan not matching",
                false,
                &[],
                &api,
                false,
                Claim::Ignore,
            ),
            (
                "orphan being deleted",
                false,
                &[],
                &web,
                true,
                Claim::Ignore,
            ),
            (
                "orphan, owner deleting",
                true,
                &[],
                &web,
                false,
                Claim::Ignore,
            ),
        ];
        for (case, deleting, refs, labels, child_deleting, expected) in cases {
            let owner = Owner {
                api_version: "apps/v1",
                kind: "ReplicaSet",
                name: "rs",
                uid: "me",
                deleting,
                selector: &selector,
            };
            assert_eq!(
                claim(&owner, refs, labels, child_deleting),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn adopt_and_release_refs() {
        let selector = LabelSelector::everything();
        let owner = Owner {
            api_version: "apps/v1",
            kind: "ReplicaSet",
            name: "web",
            uid: "me",
            deleting: false,
            selector: &selector,
        };
        let other = owner_ref("other", false);
        let refs = adopted(std::slice::from_ref(&other), &owner);
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0], other);
        assert_eq!(refs[1].controller, Some(true));
        assert_eq!(refs[1].block_owner_deletion, Some(true));
        assert_eq!(refs[1].name, "web");
        assert_eq!(released(&refs, "me"), vec![other.clone()]);
        let patch = ownership_patch("42", &refs);
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(patch["metadata"]["ownerReferences"][1]["uid"], "me");
        assert_eq!(
            ownership_patch("42", &[])["metadata"]["ownerReferences"],
            Value::Null
        );
    }
}
