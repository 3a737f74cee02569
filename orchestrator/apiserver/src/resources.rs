//! The kinds this server serves, from skiff-api's registry, and where they are stored.

use crate::error::ApiError;

/// A served kind. Registry entries are static, so they are passed by reference.
pub type Resource = &'static skiff_api::registry::Resource;

/// The kind served at `/{api|apis/group}/{version}/{plural}`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<Resource> {
    skiff_api::registry::lookup(group, version, plural)
}

/// `v1` or `apps/v1`.
pub fn api_version(r: Resource) -> &'static str {
    r.api_version
}

/// The storage key of one object; a name that cannot be a key segment is a 400.
pub fn key(r: Resource, namespace: Option<&str>, name: &str) -> Result<String, ApiError> {
    skiff_api::registry::storage_key(r, namespace, name)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The key prefix of a collection: one namespace's objects, or all of them.
pub fn prefix(r: Resource, namespace: Option<&str>) -> Result<String, ApiError> {
    skiff_api::registry::list_prefix(r, namespace).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Whether the kind has a `status` subresource (then status and spec are written apart).
pub fn has_status(r: Resource) -> bool {
    r.subresource("status").is_some()
}

/// Whether the kind has a `scale` subresource.
pub fn has_scale(r: Resource) -> bool {
    r.subresource("scale").is_some()
}

pub fn is(r: Resource, group: &str, plural: &str) -> bool {
    r.group == group && r.plural == plural
}
