//! Kubernetes' strategic merge patch (`application/strategic-merge-patch+json`): what
//! `kubectl apply` sends to update an object, and `kubectl patch`'s default. Pure: JSON in,
//! JSON out.
//!
//! [`apply`] merges a patch into an object as the kube-apiserver does:
//!
//! - Objects merge key by key, recursively; `null` deletes a key; scalars replace. A patch
//!   value of another JSON type than the object's replaces it.
//! - A list replaces the object's list whole, unless Kubernetes gives the field a merge
//!   strategy (the `patchStrategy`/`patchMergeKey` struct tags): then a list of objects
//!   merges element by element, matched on the merge key (`containers` by `name`, container
//!   `ports` by `containerPort`, conditions by `type`…), and a list of primitives
//!   (`finalizers`) merges as a set. An empty patch list leaves a merged list as it is.
//! - Directives, none of which is ever left in the result:
//!   - `"$patch": "replace"` in an object replaces the object with the rest of the patch
//!     object; as an element `{"$patch": "replace"}` of a list, it replaces the list with
//!     the patch's other elements.
//!   - `"$patch": "delete"` in an object deletes it (like `null`); as an element of a merged
//!     list, `{"$patch": "delete", "<key>": v}` deletes every element whose merge key is `v`.
//!   - `"$patch": "merge"` is the default.
//!   - `"$setElementOrder/<list>": [...]` orders a merged list (see below); for a list of
//!     objects each entry is `{"<key>": v}`. The patch's elements must appear in it, in the
//!     same order.
//!   - `"$deleteFromPrimitiveList/<list>": [...]` removes those values from the list, after
//!     the merge.
//!   - `"$retainKeys": [...]` in an object clears the object's fields not listed, before the
//!     merge; every field the patch sets must be listed. kubectl sends it where Kubernetes
//!     tags a field `retainKeys` (each of a pod's `volumes`, a Deployment's `strategy`), so
//!     that switching a volume from `emptyDir` to `configMap` drops the `emptyDir`; it is
//!     honoured on any object, as in Kubernetes.
//!   - Other keys starting with `$` are ignored, as old Kubernetes servers ignore the
//!     directives they do not know.
//!
//! Problems are [`Error::Patch`] (400 `BadRequest`) naming the place in the patch
//! (`spec.template.spec.containers[1]: …`); a patch that is not a JSON object is
//! [`Error::NotAnObject`].
//!
//! # Where strategies come from
//!
//! Two small tables, read with the path the merge is at, written from the object's kind
//! (`Deployment.spec.template`) or from a type (`Container.env`):
//!
//! - `TYPES` names the places where a known type starts. When the walk reaches one, the
//!   path restarts at the type's name, so `Pod.spec`, `Deployment.spec.template.spec` and
//!   `Job.spec.template.spec` all become `PodSpec`, and each element of `containers`,
//!   `initContainers` and `ephemeralContainers` becomes `Container`.
//! - `LISTS` gives the strategy of each merged list at such a path. A list that is not
//!   there (`args`, `command`, `envFrom`, `tolerations`, `Endpoints.subsets`, anything of
//!   an unknown kind) is replaced.
//!
//! # Order of a merged list
//!
//! Kubernetes orders two elements by, first, their order in `$setElementOrder` if both are
//! there; else their order in the patch list if both are there; else their order in the
//! object's (live) list if both are there. In practice: the elements the patch names (by
//! `$setElementOrder`, or else by the patch list) come in the patch's order, the others keep
//! their live order, and an element the patch does not name goes before a named one when the
//! live list has it before; otherwise the named one comes first. So a `kubectl apply` keeps
//! the order of the manifest, elements other writers added stay where they are, and a
//! `kubectl patch` adding an element without `$setElementOrder` puts it first, exactly as a
//! kube-apiserver does.
//!
//! On a list that is replaced, `$setElementOrder` is ignored (the patch list's order is the
//! result's) and `replace`/`delete` elements are dropped.
//!
//! Where this departs from the kube-apiserver, on purpose: a nested `"$patch": "delete"`
//! removes the field (Kubernetes leaves `{}`; its docs say it deletes); a `{"$patch":
//! "merge"}` list element is accepted; a patch that deletes the whole object is refused;
//! every error is a 400 (Kubernetes answers 422 for a field missing from `$retainKeys`).
//! Merge keys are compared as JSON values, so `80` and `"80"` differ. Kinds Skiff does not
//! serve have no entries: all their lists are replaced (kubectl sends JSON merge patch for
//! kinds it does not know anyway).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::registry::Resource;

/// How a list merges (Kubernetes' `patchStrategy: merge`, with or without `patchMergeKey`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    /// A list of objects, merged element by element, matched on this field.
    MergeKey(&'static str),
    /// A list of primitives, merged as a set.
    MergeSet,
}

use Strategy::{MergeKey, MergeSet};

/// Where a known type starts, and its name. `*` is the object's own kind, whatever it is.
static TYPES: &[(&str, &str)] = &[
    ("*.metadata", "ObjectMeta"),
    ("Pod.spec", "PodSpec"),
    ("Deployment.spec.template", "PodTemplateSpec"),
    ("ReplicaSet.spec.template", "PodTemplateSpec"),
    ("DaemonSet.spec.template", "PodTemplateSpec"),
    ("Job.spec.template", "PodTemplateSpec"),
    ("PodTemplateSpec.metadata", "ObjectMeta"),
    ("PodTemplateSpec.spec", "PodSpec"),
    ("PodSpec.containers[]", "Container"),
    ("PodSpec.initContainers[]", "Container"),
    ("PodSpec.ephemeralContainers[]", "Container"),
];

/// The merged lists of the kinds Skiff serves, from Kubernetes 1.33's struct tags. Every
/// other list is replaced.
static LISTS: &[(&str, Strategy)] = &[
    // ObjectMeta: every kind, every pod template.
    ("ObjectMeta.finalizers", MergeSet),
    ("ObjectMeta.ownerReferences", MergeKey("uid")),
    // PodSpec: a Pod's and every pod template's.
    ("PodSpec.containers", MergeKey("name")),
    ("PodSpec.initContainers", MergeKey("name")),
    ("PodSpec.ephemeralContainers", MergeKey("name")),
    ("PodSpec.volumes", MergeKey("name")), // merge,retainKeys
    ("PodSpec.imagePullSecrets", MergeKey("name")),
    ("PodSpec.hostAliases", MergeKey("ip")),
    ("PodSpec.topologySpreadConstraints", MergeKey("topologyKey")),
    ("PodSpec.schedulingGates", MergeKey("name")),
    ("PodSpec.resourceClaims", MergeKey("name")), // merge,retainKeys
    // Container: containers, initContainers and ephemeralContainers alike.
    ("Container.env", MergeKey("name")),
    ("Container.ports", MergeKey("containerPort")),
    ("Container.volumeMounts", MergeKey("mountPath")),
    ("Container.volumeDevices", MergeKey("devicePath")),
    // Pod status.
    ("Pod.status.conditions", MergeKey("type")),
    ("Pod.status.podIPs", MergeKey("ip")),
    ("Pod.status.hostIPs", MergeKey("ip")),
    ("Pod.status.resourceClaimStatuses", MergeKey("name")), // merge,retainKeys
    // Workloads.
    ("Deployment.status.conditions", MergeKey("type")),
    ("ReplicaSet.status.conditions", MergeKey("type")),
    ("DaemonSet.status.conditions", MergeKey("type")),
    ("Job.status.conditions", MergeKey("type")),
    (
        "HorizontalPodAutoscaler.status.conditions",
        MergeKey("type"),
    ),
    // Everything else.
    ("Service.spec.ports", MergeKey("port")),
    ("Service.status.conditions", MergeKey("type")),
    ("Node.spec.podCIDRs", MergeSet),
    ("Node.status.conditions", MergeKey("type")),
    ("Node.status.addresses", MergeKey("type")),
    ("Namespace.status.conditions", MergeKey("type")),
    ("PersistentVolumeClaim.status.conditions", MergeKey("type")),
    ("ServiceAccount.secrets", MergeKey("name")),
];

/// The fields Kubernetes tags `retainKeys` (kubectl then sends `$retainKeys` in them):
/// switching a volume's source, or a Deployment's strategy type, drops the old one's
/// fields. The merge honours `$retainKeys` anywhere; this list is for the OpenAPI
/// documents.
static RETAIN_KEYS_FIELDS: &[&str] = &[
    "PodSpec.volumes",
    "PodSpec.resourceClaims",
    "Pod.status.resourceClaimStatuses",
    "Deployment.spec.strategy",
];

/// One field's patch annotations, as Kubernetes publishes them in OpenAPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchAnnotation {
    /// `Container.env`, `Deployment.status.conditions`: a type name or a served kind,
    /// then field names.
    pub path: &'static str,
    /// `x-kubernetes-patch-merge-key`
    pub merge_key: Option<&'static str>,
    /// `x-kubernetes-patch-strategy`: `merge`, `retainKeys` or `merge,retainKeys`.
    pub strategy: &'static str,
}

/// Every field with a patch strategy: what `x-kubernetes-patch-strategy` and
/// `x-kubernetes-patch-merge-key` say in Kubernetes' OpenAPI, from the same tables the
/// merge reads, so a client computing patches from `/openapi/v3` agrees with it.
pub fn patch_annotations() -> Vec<PatchAnnotation> {
    let mut out: Vec<PatchAnnotation> = LISTS
        .iter()
        .map(|&(path, strategy)| PatchAnnotation {
            path,
            merge_key: match strategy {
                MergeKey(key) => Some(key),
                MergeSet => None,
            },
            strategy: if RETAIN_KEYS_FIELDS.contains(&path) {
                "merge,retainKeys"
            } else {
                "merge"
            },
        })
        .collect();
    for &path in RETAIN_KEYS_FIELDS {
        if !LISTS.iter().any(|(p, _)| *p == path) {
            out.push(PatchAnnotation {
                path,
                merge_key: None,
                strategy: "retainKeys",
            });
        }
    }
    out
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Deeper patches are refused rather than risk the stack (serde_json stops parsing at 128).
const MAX_DEPTH: usize = 256;

/// Applies a strategic merge `patch` to `original`, an object of `resource`, and returns the
/// patched object. Neither input is changed; the result has no directive left.
///
/// Fails with [`Error::NotAnObject`] if either is not a JSON object, and with
/// [`Error::Patch`] if the patch cannot apply (see the module docs). The result is not
/// validated: decode and validate it like any other body.
pub fn apply(resource: &Resource, original: &Value, patch: &Value) -> Result<Value> {
    let not_an_object = |value: &Value| Error::NotAnObject {
        expected: resource.gvk_string(),
        found: json_type(value),
    };
    let Value::Object(patch) = patch else {
        return Err(not_an_object(patch));
    };
    let Value::Object(original) = original else {
        return Err(not_an_object(original));
    };
    let root = Loc::root(resource);
    match merge_map(Some(original.clone()), patch, &root)? {
        Some(merged) => Ok(Value::Object(merged)),
        None => Err(root
            .field(PATCH)
            .error("\"delete\" cannot delete the object itself; send a DELETE request")),
    }
}

/// Where the merge is: the path for messages, and the path the tables are read with.
struct Loc {
    kind: &'static str,
    /// `spec.template.spec.containers[0]`, indexed by position in the patch.
    path: String,
    /// `Container`, `Deployment.status.conditions`: from the last known type.
    schema: String,
    depth: usize,
}

impl Loc {
    fn root(resource: &Resource) -> Loc {
        Loc {
            kind: resource.kind,
            path: String::new(),
            schema: resource.kind.to_string(),
            depth: 0,
        }
    }

    fn field(&self, name: &str) -> Loc {
        let path = if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        };
        self.child(path, format!("{}.{name}", self.schema))
    }

    fn element(&self, index: usize) -> Loc {
        self.child(
            format!("{}[{index}]", self.path),
            format!("{}[]", self.schema),
        )
    }

    fn child(&self, path: String, schema: String) -> Loc {
        let known = TYPES.iter().find(|(at, _)| match at.strip_prefix('*') {
            Some(rest) => schema.strip_prefix(self.kind) == Some(rest),
            None => *at == schema,
        });
        Loc {
            kind: self.kind,
            path,
            schema: known.map_or(schema, |(_, ty)| ty.to_string()),
            depth: self.depth + 1,
        }
    }

    fn strategy(&self) -> Option<Strategy> {
        LISTS
            .iter()
            .find(|(at, _)| *at == self.schema)
            .map(|(_, strategy)| *strategy)
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::Patch {
            path: if self.path.is_empty() {
                "<root>".to_string()
            } else {
                self.path.clone()
            },
            message: message.into(),
        }
    }

    fn check_depth(&self) -> Result<()> {
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("the patch nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Directive {
    Merge,
    Replace,
    Delete,
}

/// The `$patch` directive of a patch object.
fn directive(patch: &Map<String, Value>, loc: &Loc) -> Result<Directive> {
    match patch.get(PATCH) {
        None => Ok(Directive::Merge),
        Some(Value::String(s)) if s == "merge" => Ok(Directive::Merge),
        Some(Value::String(s)) if s == "replace" => Ok(Directive::Replace),
        Some(Value::String(s)) if s == "delete" => Ok(Directive::Delete),
        Some(other) => Err(loc.field(PATCH).error(format!(
            "unknown directive {other}: must be \"replace\", \"delete\" or \"merge\""
        ))),
    }
}

/// A `$setElementOrder/<list>` directive.
struct Order<'a> {
    entries: &'a [Value],
    /// Where the directive is, for messages.
    at: Loc,
}

impl Order<'_> {
    /// The keys it lists (merge key values, or the values of a set), once checked to list
    /// the patch list's elements (`patch_keys`) in the same order.
    fn keys(&self, merge_key: Option<&str>, patch_keys: &[String]) -> Result<Vec<String>> {
        let mut keys = Vec::with_capacity(self.entries.len());
        for (i, entry) in self.entries.iter().enumerate() {
            keys.push(match merge_key {
                Some(key) => merge_key_of(entry, key).ok_or_else(|| {
                    self.at
                        .element(i)
                        .error(format!("must be an object with the merge key {key:?}"))
                })?,
                None => canonical(entry),
            });
        }
        let mut next = 0;
        for key in patch_keys {
            match keys
                .get(next..)
                .and_then(|rest| rest.iter().position(|k| k == key))
            {
                Some(i) => next += i + 1,
                None if keys.contains(key) => {
                    return Err(self.at.error(format!(
                        "lists {key} in another order than the patch list does"
                    )));
                }
                None => {
                    return Err(self
                        .at
                        .error(format!("does not list {key}, which the patch list has")));
                }
            }
        }
        Ok(keys)
    }
}

/// Merges a patch object into an object (`None`: there is none). `None` back: deleted.
fn merge_map(
    original: Option<Map<String, Value>>,
    patch: &Map<String, Value>,
    loc: &Loc,
) -> Result<Option<Map<String, Value>>> {
    loc.check_depth()?;
    let mut out = match directive(patch, loc)? {
        Directive::Delete => return Ok(None),
        Directive::Replace => Map::new(),
        Directive::Merge => {
            let mut out = original.unwrap_or_default();
            if let Some(keys) = patch.get(RETAIN_KEYS) {
                retain_keys(&mut out, keys, patch, loc)?;
            }
            out
        }
    };

    let mut orders = BTreeMap::new();
    let mut deletions = BTreeMap::new();
    let mut fields = Vec::new();
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
            let entries = list_directive(key, value, loc)?;
            let at = loc.field(key);
            orders.insert(field, Order { entries, at });
        } else if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let values = list_directive(key, value, loc)?;
            deletions.insert(field, values.iter().map(canonical).collect::<BTreeSet<_>>());
        } else if !key.starts_with('$') {
            fields.push(key.as_str());
        }
    }
    // Lists only a directive names (reordered, or values deleted) are visited too.
    let named: BTreeSet<&str> = orders.keys().chain(deletions.keys()).copied().collect();
    fields.extend(named.into_iter().filter(|f| !patch.contains_key(*f)));

    for field in fields {
        let at = loc.field(field);
        let current = out.remove(field);
        let order = orders.get(field);
        let merged = match patch.get(field) {
            Some(value) => merge_value(current, value, order, &at)?,
            // A reorder alone: merge an empty patch list, which changes nothing else.
            None => match (current, order) {
                (Some(Value::Array(list)), Some(order)) if at.strategy().is_some() => {
                    Some(Value::Array(merge_list(Some(list), &[], Some(order), &at)?))
                }
                (current, _) => current,
            },
        };
        let merged = match (merged, deletions.get(field)) {
            (Some(Value::Array(mut list)), Some(remove)) => {
                list.retain(|v| !remove.contains(&canonical(v)));
                Some(Value::Array(list))
            }
            (merged, _) => merged,
        };
        if let Some(value) = merged {
            out.insert(field.to_string(), value);
        }
    }
    Ok(Some(out))
}

/// The value of a list directive (`$setElementOrder/…`, `$deleteFromPrimitiveList/…`).
fn list_directive<'a>(key: &str, value: &'a Value, loc: &Loc) -> Result<&'a [Value]> {
    match value {
        Value::Array(list) => Ok(list),
        other => Err(loc
            .field(key)
            .error(format!("must be a list, found {}", json_type(other)))),
    }
}

/// Applies `$retainKeys` to the object being patched.
fn retain_keys(
    out: &mut Map<String, Value>,
    keys: &Value,
    patch: &Map<String, Value>,
    loc: &Loc,
) -> Result<()> {
    let at = loc.field(RETAIN_KEYS);
    let Value::Array(keys) = keys else {
        return Err(at.error(format!(
            "must be a list of field names, found {}",
            json_type(keys)
        )));
    };
    let mut names = BTreeSet::new();
    for (i, key) in keys.iter().enumerate() {
        let Value::String(name) = key else {
            return Err(at
                .element(i)
                .error(format!("must be a field name, found {}", json_type(key))));
        };
        names.insert(name.as_str());
    }
    if let Some(missing) = patch
        .iter()
        .find(|(k, v)| !k.starts_with('$') && !v.is_null() && !names.contains(k.as_str()))
    {
        return Err(at.error(format!(
            "does not list {:?}, which the patch sets",
            missing.0
        )));
    }
    out.retain(|k, _| names.contains(k.as_str()));
    Ok(())
}

/// Merges one patch value into the object's value for that field (`None`: absent).
/// `None` back: the field goes.
fn merge_value(
    current: Option<Value>,
    patch: &Value,
    order: Option<&Order<'_>>,
    at: &Loc,
) -> Result<Option<Value>> {
    Ok(match patch {
        Value::Null => None,
        Value::Object(patch) => {
            let current = match current {
                Some(Value::Object(map)) => Some(map),
                _ => None,
            };
            merge_map(current, patch, at)?.map(Value::Object)
        }
        Value::Array(patch) => {
            let current = match current {
                Some(Value::Array(list)) => Some(list),
                _ => None,
            };
            Some(Value::Array(merge_list(current, patch, order, at)?))
        }
        scalar => Some(scalar.clone()),
    })
}

/// Merges a patch list into a list (`None`: the object has none) by the field's strategy.
fn merge_list(
    original: Option<Vec<Value>>,
    patch: &[Value],
    order: Option<&Order<'_>>,
    at: &Loc,
) -> Result<Vec<Value>> {
    at.check_depth()?;
    match at.strategy() {
        None => replace_list(patch, at),
        Some(MergeKey(key)) => merge_by_key(original, patch, key, order, at),
        Some(MergeSet) => merge_set(original, patch, order, at),
    }
}

/// A list without a merge strategy: the patch's, its directives applied to nothing.
fn replace_list(patch: &[Value], at: &Loc) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(patch.len());
    for (i, element) in patch.iter().enumerate() {
        let at = at.element(i);
        match element {
            Value::Object(fields) => {
                // `replace` and `delete` elements speak of merged lists; this one is replaced.
                if directive(fields, &at)? == Directive::Merge {
                    out.extend(merge_map(None, fields, &at)?.map(Value::Object));
                }
            }
            Value::Array(list) => out.push(Value::Array(merge_list(None, list, None, &at)?)),
            scalar => out.push(scalar.clone()),
        }
    }
    Ok(out)
}

/// A list of objects merged on `key`.
fn merge_by_key(
    original: Option<Vec<Value>>,
    patch: &[Value],
    key: &'static str,
    order: Option<&Order<'_>>,
    at: &Loc,
) -> Result<Vec<Value>> {
    // A list the object does not have yet is taken as the patch gives it, merge keys or
    // not, as Kubernetes does; validation judges the result.
    let strict = original.is_some();
    let live = original.unwrap_or_default();
    let live_keys: Vec<Option<String>> = live.iter().map(|e| merge_key_of(e, key)).collect();

    let mut replace = false;
    let mut deletes = BTreeSet::new();
    let mut items = Vec::new();
    for (i, element) in patch.iter().enumerate() {
        let at = at.element(i);
        let Value::Object(fields) = element else {
            return Err(at.error(format!(
                "must be an object with the merge key {key:?}, found {}",
                json_type(element)
            )));
        };
        match directive(fields, &at)? {
            Directive::Replace => replace = true,
            Directive::Delete => match merge_key_of(element, key) {
                Some(k) => {
                    deletes.insert(k);
                }
                None => {
                    return Err(at.error(format!(
                        "\"$patch\": \"delete\" needs the merge key {key:?} to find the element"
                    )));
                }
            },
            Directive::Merge => items.push((at, fields)),
        }
    }

    let mut list = if replace { Vec::new() } else { live };
    list.retain(|e| merge_key_of(e, key).is_none_or(|k| !deletes.contains(&k)));
    let mut index = BTreeMap::new();
    for (pos, element) in list.iter().enumerate() {
        if let Some(k) = merge_key_of(element, key) {
            index.entry(k).or_insert(pos);
        }
    }

    let mut patch_keys = Vec::new();
    for (at, fields) in items {
        let Some(k) = fields.get(key).filter(|v| !v.is_null()).map(canonical) else {
            if strict && !replace {
                return Err(at.error(format!("the element has no merge key {key:?}")));
            }
            list.extend(merge_map(None, fields, &at)?.map(Value::Object));
            continue;
        };
        patch_keys.push(k.clone());
        match index.get(&k).and_then(|&pos| list.get_mut(pos)) {
            Some(existing) => {
                let current = match std::mem::take(existing) {
                    Value::Object(map) => Some(map),
                    _ => None,
                };
                // `fields` is not a delete (those were sorted out above): a map comes back.
                *existing = Value::Object(merge_map(current, fields, &at)?.unwrap_or_default());
            }
            None => {
                if let Some(created) = merge_map(None, fields, &at)? {
                    index.insert(k, list.len());
                    list.push(Value::Object(created));
                }
            }
        }
    }

    let order_keys = match order {
        Some(order) => order.keys(Some(key), &patch_keys)?,
        None => patch_keys,
    };
    Ok(arrange(list, &order_keys, &live_keys, |e| {
        merge_key_of(e, key)
    }))
}

/// A list of primitives merged as a set.
fn merge_set(
    original: Option<Vec<Value>>,
    patch: &[Value],
    order: Option<&Order<'_>>,
    at: &Loc,
) -> Result<Vec<Value>> {
    let live = original.unwrap_or_default();
    let live_keys: Vec<Option<String>> = live.iter().map(|v| Some(canonical(v))).collect();

    let mut replace = false;
    let mut additions = Vec::new();
    for (i, element) in patch.iter().enumerate() {
        let at = at.element(i);
        match element {
            Value::Object(fields)
                if directive(fields, &at)? == Directive::Replace && fields.len() == 1 =>
            {
                replace = true;
            }
            Value::Object(_) | Value::Array(_) => {
                return Err(at.error(format!(
                    "this list merges as a set of values: it takes no {} but the \
                     {{\"$patch\": \"replace\"}} marker",
                    json_type(element)
                )));
            }
            value => additions.push(value),
        }
    }

    let base = if replace { Vec::new() } else { live };
    let mut seen = BTreeSet::new();
    let mut list = Vec::new();
    for value in base.into_iter().chain(additions.iter().copied().cloned()) {
        if seen.insert(canonical(&value)) {
            list.push(value);
        }
    }

    let patch_keys: Vec<String> = additions.iter().copied().map(canonical).collect();
    let order_keys = match order {
        Some(order) => order.keys(None, &patch_keys)?,
        None => patch_keys,
    };
    Ok(arrange(list, &order_keys, &live_keys, |v| {
        Some(canonical(v))
    }))
}

/// Puts a merged list in order (see the module docs): the elements `order` names, as it
/// orders them, interleaved with the others, which keep their relative order; an other goes
/// before a named one only when the live list has both and has it before.
fn arrange(
    list: Vec<Value>,
    order: &[String],
    live: &[Option<String>],
    key_of: impl Fn(&Value) -> Option<String>,
) -> Vec<Value> {
    let mut order_pos = BTreeMap::new();
    for (pos, key) in order.iter().enumerate() {
        order_pos.entry(key.as_str()).or_insert(pos);
    }
    let mut live_pos = BTreeMap::new();
    for (pos, key) in live.iter().enumerate() {
        if let Some(key) = key {
            live_pos.entry(key.as_str()).or_insert(pos);
        }
    }

    let mut named = Vec::new();
    let mut others = Vec::new();
    for element in list {
        let key = key_of(&element);
        let in_live = key.as_deref().and_then(|k| live_pos.get(k).copied());
        match key.as_deref().and_then(|k| order_pos.get(k).copied()) {
            Some(pos) => named.push((pos, in_live, element)),
            None => others.push((in_live, element)),
        }
    }
    named.sort_by_key(|(pos, _, _)| *pos);

    let mut out = Vec::with_capacity(named.len() + others.len());
    let mut named = named.into_iter().peekable();
    let mut others = others.into_iter().peekable();
    loop {
        let other_first = match (others.peek(), named.peek()) {
            (Some((Some(o), _)), Some((_, Some(n), _))) => o < n,
            (Some(_), Some(_)) | (None, Some(_)) => false,
            (Some(_), None) => true,
            (None, None) => break,
        };
        if other_first {
            out.extend(others.next().map(|(_, element)| element));
        } else {
            out.extend(named.next().map(|(_, _, element)| element));
        }
    }
    out
}

/// The merge key's value of a list element, as a comparable string; `None` if the element is
/// not an object or has no (or a null) merge key.
fn merge_key_of(element: &Value, key: &str) -> Option<String> {
    match element.as_object()?.get(key)? {
        Value::Null => None,
        value => Some(canonical(value)),
    }
}

/// A value as compact JSON: equal values give equal strings, strings come quoted.
fn canonical(value: &Value) -> String {
    value.to_string()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::{self, DEPLOYMENT, JOB, NODE, POD, SERVICE};

    fn patched(resource: &Resource, original: Value, patch: Value) -> Value {
        match apply(resource, &original, &patch) {
            Ok(v) => v,
            Err(e) => panic!("{}: {e}", resource.kind),
        }
    }

    /// A Deployment as the first `kubectl apply` created it.
    fn deployment(containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "finalizers": ["a", "b"],
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                },
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": containers, "restartPolicy": "Always"},
                },
            },
            "status": {"conditions": [
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "True"},
            ]},
        })
    }

    fn web_container() -> Value {
        json!({
            "name": "web",
            "image": "file:///v1.wasm",
            "args": ["--port", "8080"],
            "env": [
                {"name": "OLD", "value": "1"},
                {"name": "KEEP", "value": "2"},
            ],
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        })
    }

    /// `deployment` with `f` applied to its JSON.
    fn deployment_with(containers: Value, f: impl FnOnce(&mut Value)) -> Value {
        let mut d = deployment(containers);
        f(&mut d);
        d
    }

    #[test]
    fn kubectl_second_apply() {
        // Exactly the patch kubectl 1.32 sends when the image changes and OLD goes.
        let patch = json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"web"}],
            "containers":[{"env":[{"$patch":"delete","name":"OLD"}],"image":"file:///v2.wasm","name":"web"}]
        }}}});
        let got = patched(&DEPLOYMENT, deployment(json!([web_container()])), patch);
        let want = deployment_with(json!([web_container()]), |d| {
            let c = &mut d["spec"]["template"]["spec"]["containers"][0];
            c["image"] = json!("file:///v2.wasm");
            c["env"] = json!([{"name": "KEEP", "value": "2"}]);
        });
        assert_eq!(got, want);
    }

    #[test]
    fn golden_cases() {
        // (name, resource, original, patch, result)
        let cases: Vec<(&str, &Resource, Value, Value, Value)> = vec![
            (
                "kubectl apply with the env order and the last-applied annotation",
                &DEPLOYMENT,
                deployment(json!([web_container()])),
                json!({
                    "metadata": {"annotations": {
                        "kubectl.kubernetes.io/last-applied-configuration": "{\"v\":2}"
                    }},
                    "spec": {"template": {"spec": {
                        "$setElementOrder/containers": [{"name": "web"}],
                        "containers": [{
                            "$setElementOrder/env": [{"name": "NEW"}, {"name": "KEEP"}],
                            "env": [{"name": "NEW", "value": "3"}, {"$patch": "delete", "name": "OLD"}],
                            "name": "web",
                        }],
                    }}},
                }),
                deployment_with(json!([web_container()]), |d| {
                    d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
                        json!("{\"v\":2}");
                    d["spec"]["template"]["spec"]["containers"][0]["env"] = json!([
                        {"name": "NEW", "value": "3"},
                        {"name": "KEEP", "value": "2"},
                    ]);
                }),
            ),
            (
                "add a container where $setElementOrder puts it",
                &DEPLOYMENT,
                deployment(json!([web_container()])),
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                    "containers": [{"name": "sidecar", "image": "file:///s.wasm"}],
                }}}}),
                deployment(
                    json!([web_container(), {"name": "sidecar", "image": "file:///s.wasm"}]),
                ),
            ),
            (
                // Kubernetes: a named element not in the live list comes before the others.
                "add a container without an order: first",
                &DEPLOYMENT,
                deployment(json!([web_container()])),
                json!({"spec": {"template": {"spec": {
                    "containers": [{"name": "sidecar", "image": "file:///s.wasm"}],
                }}}}),
                deployment(
                    json!([{"name": "sidecar", "image": "file:///s.wasm"}, web_container()]),
                ),
            ),
            (
                "delete a container",
                &DEPLOYMENT,
                deployment(json!([web_container(), {"name": "sidecar", "image": "s"}])),
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [{"$patch": "delete", "name": "sidecar"}],
                }}}}),
                deployment(json!([web_container()])),
            ),
            (
                "delete every element with the key",
                &POD,
                json!({"spec": {"containers": [
                    {"name": "a", "image": "1"}, {"name": "b"}, {"name": "a", "image": "2"},
                ]}}),
                json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
                json!({"spec": {"containers": [{"name": "b"}]}}),
            ),
            (
                "reorder with $setElementOrder alone",
                &DEPLOYMENT,
                deployment(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}])),
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
                }}}}),
                deployment(json!([{"name": "c"}, {"name": "a"}, {"name": "b"}])),
            ),
            (
                // Live [C, B, D, A, E], order [A, B]: the others keep their places where the
                // live list puts them before a named element.
                "unnamed live elements keep their place",
                &POD,
                json!({"spec": {"containers": [
                    {"name": "C"}, {"name": "B"}, {"name": "D"}, {"name": "A"}, {"name": "E"},
                ]}}),
                json!({"spec": {
                    "$setElementOrder/containers": [{"name": "A"}, {"name": "B"}],
                    "containers": [{"name": "A", "image": "a"}, {"name": "B", "image": "b"}],
                }}),
                json!({"spec": {"containers": [
                    {"name": "C"}, {"name": "D"}, {"name": "A", "image": "a"},
                    {"name": "B", "image": "b"}, {"name": "E"},
                ]}}),
            ),
            (
                // The design proposal's env example: server-added ENV5 and ENV4 stay put.
                "env reorder with server-added variables",
                &POD,
                json!({"spec": {"containers": [{"name": "c", "env": [
                    {"name": "ENV2", "value": "bar"},
                    {"name": "ENV5", "value": "server-added-2"},
                    {"name": "ENV1", "value": "foo"},
                    {"name": "ENV3", "value": "baz"},
                    {"name": "ENV4", "value": "server-added-1"},
                ]}]}}),
                json!({"spec": {"containers": [{
                    "name": "c",
                    "$setElementOrder/env": [{"name": "ENV1"}, {"name": "ENV2"}, {"name": "ENV6"}],
                    "env": [{"name": "ENV3", "$patch": "delete"}, {"name": "ENV6", "value": "new-env"}],
                }]}}),
                json!({"spec": {"containers": [{"name": "c", "env": [
                    {"name": "ENV5", "value": "server-added-2"},
                    {"name": "ENV1", "value": "foo"},
                    {"name": "ENV2", "value": "bar"},
                    {"name": "ENV6", "value": "new-env"},
                    {"name": "ENV4", "value": "server-added-1"},
                ]}]}}),
            ),
            (
                "$setElementOrder entries the list lacks are ignored",
                &POD,
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"]}}),
                json!({"metadata": {"finalizers": ["b", "a"]}}),
            ),
            (
                "container ports by containerPort",
                &POD,
                json!({"spec": {"containers": [{"name": "c", "ports": [
                    {"containerPort": 8080, "protocol": "TCP"},
                    {"containerPort": 9090, "name": "metrics"},
                ]}]}}),
                json!({"spec": {"containers": [{"name": "c", "ports": [
                    {"containerPort": 8080, "name": "http"},
                    {"containerPort": 9090, "$patch": "delete"},
                    {"containerPort": 7070},
                ]}]}}),
                json!({"spec": {"containers": [{"name": "c", "ports": [
                    {"containerPort": 8080, "protocol": "TCP", "name": "http"},
                    {"containerPort": 7070},
                ]}]}}),
            ),
            (
                "service ports by port",
                &SERVICE,
                json!({"spec": {"selector": {"app": "web"}, "ports": [
                    {"port": 80, "targetPort": 8080, "protocol": "TCP"},
                    {"port": 443, "targetPort": 8443},
                ]}}),
                json!({"spec": {
                    "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                    "ports": [{"port": 443, "targetPort": 9443}],
                }}),
                json!({"spec": {"selector": {"app": "web"}, "ports": [
                    {"port": 80, "targetPort": 8080, "protocol": "TCP"},
                    {"port": 443, "targetPort": 9443},
                ]}}),
            ),
            (
                "pod conditions by type",
                &POD,
                json!({"status": {"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                ]}}),
                json!({"status": {
                    "phase": "Running",
                    "conditions": [
                        {"type": "Ready", "status": "True", "reason": null},
                        {"type": "Initialized", "status": "True"},
                    ],
                }}),
                // PodScheduled is live before Ready, so it stays first.
                json!({"status": {"phase": "Running", "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "True"},
                    {"type": "Initialized", "status": "True"},
                ]}}),
            ),
            (
                "node conditions and addresses by type",
                &NODE,
                json!({"status": {
                    "conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}],
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                }}),
                json!({"status": {
                    "$setElementOrder/conditions": [{"type": "Ready"}, {"type": "MemoryPressure"}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "Hostname", "address": "n1"}],
                }}),
                json!({"status": {
                    "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}],
                    "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"}],
                }}),
            ),
            (
                "finalizers merge as a set",
                &POD,
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"finalizers": ["b", "c"]}}),
                // b is named and live, a is live before it; c is named and new.
                json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            ),
            (
                "finalizers: a new one without an order comes first",
                &POD,
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"finalizers": ["c", "a"]}}),
                json!({"metadata": {"finalizers": ["c", "a", "b"]}}),
            ),
            (
                // The design proposal's finalizers example, as Kubernetes computes it.
                "finalizers: $setElementOrder and $deleteFromPrimitiveList",
                &POD,
                json!({"metadata": {"finalizers": ["b", "e", "a", "c", "d"]}}),
                json!({"metadata": {
                    "$setElementOrder/finalizers": ["a", "b", "f"],
                    "$deleteFromPrimitiveList/finalizers": ["c"],
                    "finalizers": ["f"],
                }}),
                json!({"metadata": {"finalizers": ["e", "a", "b", "f", "d"]}}),
            ),
            (
                "$deleteFromPrimitiveList alone",
                &DEPLOYMENT,
                deployment(json!([])),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zz"]}}),
                deployment_with(json!([]), |d| d["metadata"]["finalizers"] = json!(["b"])),
            ),
            (
                "node podCIDRs merge as a set",
                &NODE,
                json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}}),
                json!({"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64"]}}),
                json!({"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64"]}}),
            ),
            (
                "ownerReferences by uid",
                &registry::REPLICA_SET,
                json!({"metadata": {"ownerReferences": [
                    {"uid": "u1", "kind": "Deployment", "name": "web", "controller": true},
                    {"uid": "u2", "kind": "Deployment", "name": "other"},
                ]}}),
                json!({"metadata": {"ownerReferences": [
                    {"uid": "u1", "blockOwnerDeletion": true},
                    {"uid": "u2", "$patch": "delete"},
                ]}}),
                json!({"metadata": {"ownerReferences": [
                    {"uid": "u1", "kind": "Deployment", "name": "web", "controller": true, "blockOwnerDeletion": true},
                ]}}),
            ),
            (
                "$patch: replace on a list",
                &DEPLOYMENT,
                deployment(json!([web_container(), {"name": "sidecar"}])),
                json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "only", "image": "x", "env": [{"name": "A", "$patch": "delete"}]},
                    {"$patch": "replace"},
                ]}}}}),
                deployment(json!([{"name": "only", "image": "x", "env": []}])),
            ),
            (
                "$patch: replace on a map",
                &DEPLOYMENT,
                deployment(json!([])),
                json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}),
                deployment_with(json!([]), |d| {
                    d["spec"]["strategy"] = json!({"type": "Recreate"});
                }),
            ),
            (
                "$patch: replace on a map is recursive",
                &POD,
                json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "a"}], "hostname": "h"}}),
                json!({"spec": {"$patch": "replace", "containers": [{"name": "b", "$setElementOrder/env": [], "env": []}]}}),
                json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "b", "env": []}]}}),
            ),
            (
                "$patch: delete on a map deletes it",
                &DEPLOYMENT,
                deployment(json!([])),
                json!({"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}}),
                deployment_with(json!([]), |d| {
                    d["spec"]["strategy"] = json!({"type": "RollingUpdate"});
                }),
            ),
            (
                "$patch: merge is the default",
                &POD,
                json!({"metadata": {"labels": {"a": "1"}}}),
                json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
                json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            ),
            (
                "$retainKeys: a volume from emptyDir to configMap",
                &DEPLOYMENT,
                deployment_with(json!([]), |d| {
                    d["spec"]["template"]["spec"]["volumes"] = json!([
                        {"name": "data", "emptyDir": {}},
                        {"name": "cache", "emptyDir": {"medium": "Memory"}},
                    ]);
                }),
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/volumes": [{"name": "data"}, {"name": "cache"}],
                    "volumes": [{
                        "$retainKeys": ["configMap", "name"],
                        "configMap": {"name": "cfg"},
                        "name": "data",
                    }],
                }}}}),
                deployment_with(json!([]), |d| {
                    d["spec"]["template"]["spec"]["volumes"] = json!([
                        {"name": "data", "configMap": {"name": "cfg"}},
                        {"name": "cache", "emptyDir": {"medium": "Memory"}},
                    ]);
                }),
            ),
            (
                "$retainKeys: a Deployment strategy from RollingUpdate to Recreate",
                &DEPLOYMENT,
                deployment(json!([])),
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
                deployment_with(json!([]), |d| {
                    d["spec"]["strategy"] = json!({"type": "Recreate"});
                }),
            ),
            (
                "null deletes a key; absent keys stay",
                &DEPLOYMENT,
                deployment(json!([web_container()])),
                json!({"metadata": {"annotations": null, "labels": {"gone": null}}, "spec": {"replicas": null}}),
                deployment_with(json!([web_container()]), |d| {
                    if let Some(m) = d["metadata"].as_object_mut() {
                        m.remove("annotations");
                        m.insert("labels".into(), json!({}));
                    }
                    if let Some(s) = d["spec"].as_object_mut() {
                        s.remove("replicas");
                    }
                }),
            ),
            (
                "lists without a strategy are replaced: args, command, tolerations, envFrom",
                &POD,
                json!({"spec": {
                    "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}],
                    "containers": [{"name": "c", "args": ["1", "2"], "command": ["run"], "envFrom": [{"configMapRef": {"name": "x"}}]}],
                }}),
                json!({"spec": {
                    "tolerations": [{"key": "c", "operator": "Exists"}],
                    "containers": [{"name": "c", "args": ["3"], "envFrom": [{"secretRef": {"name": "y"}}]}],
                }}),
                json!({"spec": {
                    "tolerations": [{"key": "c", "operator": "Exists"}],
                    "containers": [{"name": "c", "args": ["3"], "command": ["run"], "envFrom": [{"secretRef": {"name": "y"}}]}],
                }}),
            ),
            (
                "every list of an unknown place is replaced (ConfigMap, Endpoints)",
                &registry::ENDPOINTS,
                json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
                json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]}),
                json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]}),
            ),
            (
                "an empty patch list leaves a merged list",
                &DEPLOYMENT,
                deployment(json!([web_container()])),
                json!({"spec": {"template": {"spec": {"containers": []}}}}),
                deployment(json!([web_container()])),
            ),
            (
                "a list the object lacks is created, directives applied",
                &POD,
                json!({"spec": {"containers": [{"name": "c"}]}}),
                json!({"spec": {"containers": [{"name": "c", "volumeMounts": [
                    {"mountPath": "/a", "name": "v"},
                    {"mountPath": "/gone", "$patch": "delete"},
                    {"name": "no-path-yet"},
                ]}]}}),
                json!({"spec": {"containers": [{"name": "c", "volumeMounts": [
                    {"mountPath": "/a", "name": "v"},
                    {"name": "no-path-yet"},
                ]}]}}),
            ),
            (
                "a value of another type replaces",
                &registry::CONFIG_MAP,
                json!({"data": {"a": "1"}, "x": [1], "y": {"z": 1}}),
                json!({"data": "s", "x": {"k": null, "$patch": "merge", "j": 2}, "y": [{"$patch": "delete"}, 3]}),
                json!({"data": "s", "x": {"j": 2}, "y": [3]}),
            ),
            (
                "unknown directives are ignored",
                &registry::CONFIG_MAP,
                json!({"data": {"a": "1"}}),
                json!({"data": {"$future": [1], "b": "2"}, "$other": true}),
                json!({"data": {"a": "1", "b": "2"}}),
            ),
            (
                "a Pod's own containers, init and ephemeral containers, and their lists",
                &POD,
                json!({"spec": {
                    "initContainers": [{"name": "i", "env": [{"name": "A", "value": "1"}]}],
                    "ephemeralContainers": [{"name": "dbg", "image": "d1"}],
                    "containers": [{"name": "c", "volumeMounts": [{"mountPath": "/a", "name": "v1"}]}],
                    "imagePullSecrets": [{"name": "s1"}],
                    "hostAliases": [{"ip": "1.1.1.1", "hostnames": ["a"]}],
                    "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}],
                }}),
                json!({"spec": {
                    "initContainers": [{"name": "i", "env": [{"name": "B", "value": "2"}]}],
                    "ephemeralContainers": [{"name": "dbg", "image": "d2"}],
                    "containers": [{"name": "c", "volumeMounts": [{"mountPath": "/a", "readOnly": true}]}],
                    "imagePullSecrets": [{"name": "s2"}],
                    "hostAliases": [{"ip": "1.1.1.1", "hostnames": ["b"]}],
                    "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}],
                }}),
                json!({"spec": {
                    "initContainers": [{"name": "i", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}],
                    "ephemeralContainers": [{"name": "dbg", "image": "d2"}],
                    "containers": [{"name": "c", "volumeMounts": [{"mountPath": "/a", "name": "v1", "readOnly": true}]}],
                    "imagePullSecrets": [{"name": "s2"}, {"name": "s1"}],
                    "hostAliases": [{"ip": "1.1.1.1", "hostnames": ["b"]}],
                    "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2, "whenUnsatisfiable": "DoNotSchedule"}],
                }}),
            ),
            (
                "a Job's template and conditions",
                &JOB,
                json!({
                    "spec": {"template": {"metadata": {"finalizers": ["x"]}, "spec": {"containers": [{"name": "c", "image": "1"}]}}},
                    "status": {"conditions": [{"type": "Complete", "status": "False"}]},
                }),
                json!({
                    "spec": {"template": {"metadata": {"finalizers": ["x", "y"]}, "spec": {"containers": [{"name": "c", "image": "2"}]}}},
                    "status": {"conditions": [{"type": "Complete", "status": "True"}]},
                }),
                json!({
                    "spec": {"template": {"metadata": {"finalizers": ["x", "y"]}, "spec": {"containers": [{"name": "c", "image": "2"}]}}},
                    "status": {"conditions": [{"type": "Complete", "status": "True"}]},
                }),
            ),
            (
                "$patch: replace on the whole object",
                &registry::CONFIG_MAP,
                json!({"metadata": {"name": "a"}, "data": {"a": "1"}}),
                json!({"$patch": "replace", "metadata": {"name": "a"}, "data": {"b": "2"}}),
                json!({"metadata": {"name": "a"}, "data": {"b": "2"}}),
            ),
        ];
        for (name, resource, original, patch, want) in cases {
            let got = apply(resource, &original, &patch).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, want, "{name}");
            // Inputs are left alone: applying twice from them gives the same.
            assert_eq!(apply(resource, &original, &patch).unwrap(), got, "{name}");
        }
    }

    #[test]
    fn kubectl_apply_is_idempotent() {
        let patch = json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"web"}],
            "containers":[{"env":[{"$patch":"delete","name":"OLD"}],"image":"file:///v2.wasm","name":"web"}]
        }}}});
        let once = patched(
            &DEPLOYMENT,
            deployment(json!([web_container()])),
            patch.clone(),
        );
        assert_eq!(patched(&DEPLOYMENT, once.clone(), patch), once);
    }

    #[test]
    fn errors_name_the_path() {
        let pod = json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "c", "env": []}]}});
        // (patch, path, part of the message)
        let cases = [
            (
                json!({"spec": {"containers": [{"image": "x"}]}}),
                "spec.containers[0]",
                "no merge key \"name\"",
            ),
            (
                json!({"spec": {"containers": [{"name": "c", "env": [{"name": "A"}, {"value": "x"}]}]}}),
                "spec.containers[0].env[1]",
                "no merge key \"name\"",
            ),
            (
                json!({"spec": {"containers": [{"$patch": "delete"}]}}),
                "spec.containers[0]",
                "needs the merge key \"name\"",
            ),
            (
                json!({"spec": {"containers": ["c"]}}),
                "spec.containers[0]",
                "must be an object with the merge key \"name\", found string",
            ),
            (
                json!({"spec": {"$patch": "remove"}}),
                "spec.$patch",
                "unknown directive \"remove\": must be \"replace\", \"delete\" or \"merge\"",
            ),
            (
                json!({"spec": {"$patch": 1}}),
                "spec.$patch",
                "unknown directive 1",
            ),
            (
                json!({"spec": {"containers": [{"name": "c", "$patch": "drop"}]}}),
                "spec.containers[0].$patch",
                "unknown directive \"drop\"",
            ),
            (
                json!({"spec": {"$setElementOrder/containers": "c"}}),
                "spec.$setElementOrder/containers",
                "must be a list, found string",
            ),
            (
                json!({"spec": {"$setElementOrder/containers": [{"image": "c"}]}}),
                "spec.$setElementOrder/containers[0]",
                "must be an object with the merge key \"name\"",
            ),
            (
                json!({"spec": {
                    "$setElementOrder/containers": [{"name": "c"}],
                    "containers": [{"name": "d"}],
                }}),
                "spec.$setElementOrder/containers",
                "does not list \"d\", which the patch list has",
            ),
            (
                json!({"spec": {
                    "$setElementOrder/containers": [{"name": "c"}, {"name": "d"}],
                    "containers": [{"name": "d"}, {"name": "c"}],
                }}),
                "spec.$setElementOrder/containers",
                "lists \"c\" in another order",
            ),
            (
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": {"a": 1}}}),
                "metadata.$deleteFromPrimitiveList/finalizers",
                "must be a list, found object",
            ),
            (
                json!({"metadata": {"finalizers": [{"name": "a"}]}}),
                "metadata.finalizers[0]",
                "merges as a set of values",
            ),
            (
                json!({"spec": {"volumes": [{"name": "v", "$retainKeys": "name"}]}}),
                "spec.volumes[0].$retainKeys",
                "must be a list of field names, found string",
            ),
            (
                json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", 2]}]}}),
                "spec.volumes[0].$retainKeys[1]",
                "must be a field name, found number",
            ),
            (
                json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name"], "secret": {}}]}}),
                "spec.volumes[0].$retainKeys",
                "does not list \"secret\", which the patch sets",
            ),
            (
                json!({"$patch": "delete"}),
                "$patch",
                "cannot delete the object itself",
            ),
        ];
        for (patch, path, message) in cases {
            let Err(err) = apply(&POD, &pod, &patch) else {
                panic!("{patch} should fail");
            };
            let Error::Patch {
                path: p,
                message: m,
            } = &err
            else {
                panic!("{patch}: {err:?}");
            };
            assert_eq!(p, path, "{patch}");
            assert!(m.contains(message), "{patch}: {m}");
            assert_eq!((err.reason(), err.code()), ("BadRequest", 400));
            assert!(
                err.to_string()
                    .starts_with("invalid strategic merge patch at ")
            );
        }
    }

    #[test]
    fn bodies_that_are_not_objects() {
        for (original, patch, found) in [
            (json!({}), json!([{"op": "add"}]), "array"),
            (json!({}), json!("x"), "string"),
            (json!({}), Value::Null, "null"),
            (json!([]), json!({}), "array"),
        ] {
            let err = apply(&DEPLOYMENT, &original, &patch).unwrap_err();
            assert!(
                matches!(&err, Error::NotAnObject { expected, found: f }
                    if expected == "apps/v1, Kind=Deployment" && *f == found),
                "{err:?}"
            );
            assert_eq!(err.code(), 400);
        }
    }

    #[test]
    fn deep_patches_are_refused() {
        let mut patch = json!({"x": 1});
        for _ in 0..MAX_DEPTH + 10 {
            patch = json!({"a": patch});
        }
        let err = apply(&POD, &json!({}), &patch).unwrap_err();
        assert!(err.to_string().contains("nests deeper"), "{err}");

        let mut shallow = json!(1);
        for _ in 0..100 {
            shallow = json!([{"a": shallow}]);
        }
        assert!(apply(&POD, &json!({}), &json!({"a": shallow})).is_ok());
    }

    /// Walks a dotted path (`spec.template.spec.containers[].env`) from a kind's root.
    fn strategy_at(resource: &Resource, path: &str) -> Option<Strategy> {
        let mut loc = Loc::root(resource);
        for segment in path.split('.') {
            let name = segment.trim_end_matches("[]");
            loc = loc.field(name);
            for _ in 0..(segment.len() - name.len()) / 2 {
                loc = loc.element(0);
            }
        }
        loc.strategy()
    }

    #[test]
    fn strategy_table() {
        let template = "spec.template.spec";
        let cases: Vec<(&Resource, String, Option<Strategy>)> = vec![
            (&POD, "spec.containers".into(), Some(MergeKey("name"))),
            (&POD, "spec.containers[].env".into(), Some(MergeKey("name"))),
            (
                &POD,
                "spec.initContainers[].ports".into(),
                Some(MergeKey("containerPort")),
            ),
            (
                &POD,
                "spec.ephemeralContainers[].volumeMounts".into(),
                Some(MergeKey("mountPath")),
            ),
            (
                &POD,
                "spec.containers[].volumeDevices".into(),
                Some(MergeKey("devicePath")),
            ),
            (&POD, "spec.containers[].envFrom".into(), None),
            (&POD, "spec.containers[].args".into(), None),
            (&POD, "spec.containers[].command".into(), None),
            (&POD, "spec.tolerations".into(), None),
            (&POD, "spec.volumes".into(), Some(MergeKey("name"))),
            (&POD, "spec.hostAliases".into(), Some(MergeKey("ip"))),
            (
                &POD,
                "spec.topologySpreadConstraints".into(),
                Some(MergeKey("topologyKey")),
            ),
            (&POD, "status.conditions".into(), Some(MergeKey("type"))),
            (&POD, "status.podIPs".into(), Some(MergeKey("ip"))),
            (&POD, "status.containerStatuses".into(), None),
            (&POD, "metadata.finalizers".into(), Some(MergeSet)),
            (
                &POD,
                "metadata.ownerReferences".into(),
                Some(MergeKey("uid")),
            ),
            (&POD, "metadata.managedFields".into(), None),
            (&POD, "spec.template.spec.containers".into(), None),
            (&POD, "spec.containers[].containers".into(), None),
            (
                &DEPLOYMENT,
                format!("{template}.containers"),
                Some(MergeKey("name")),
            ),
            (
                &DEPLOYMENT,
                format!("{template}.containers[].env"),
                Some(MergeKey("name")),
            ),
            (
                &DEPLOYMENT,
                format!("{template}.imagePullSecrets"),
                Some(MergeKey("name")),
            ),
            (
                &DEPLOYMENT,
                "spec.template.metadata.finalizers".into(),
                Some(MergeSet),
            ),
            (&DEPLOYMENT, "spec.containers".into(), None),
            (
                &DEPLOYMENT,
                "status.conditions".into(),
                Some(MergeKey("type")),
            ),
            (
                &registry::REPLICA_SET,
                format!("{template}.initContainers[].env"),
                Some(MergeKey("name")),
            ),
            (
                &registry::REPLICA_SET,
                "status.conditions".into(),
                Some(MergeKey("type")),
            ),
            (
                &registry::DAEMON_SET,
                format!("{template}.volumes"),
                Some(MergeKey("name")),
            ),
            (
                &registry::DAEMON_SET,
                "status.conditions".into(),
                Some(MergeKey("type")),
            ),
            (
                &JOB,
                format!("{template}.containers[].ports"),
                Some(MergeKey("containerPort")),
            ),
            (&JOB, "status.conditions".into(), Some(MergeKey("type"))),
            (&JOB, "spec.podFailurePolicy.rules".into(), None),
            (&SERVICE, "spec.ports".into(), Some(MergeKey("port"))),
            (&SERVICE, "status.conditions".into(), Some(MergeKey("type"))),
            (&SERVICE, "spec.externalIPs".into(), None),
            (&NODE, "spec.podCIDRs".into(), Some(MergeSet)),
            (&NODE, "spec.taints".into(), None),
            (&NODE, "status.conditions".into(), Some(MergeKey("type"))),
            (&NODE, "status.addresses".into(), Some(MergeKey("type"))),
            (&NODE, "status.images".into(), None),
            (
                &registry::NAMESPACE,
                "status.conditions".into(),
                Some(MergeKey("type")),
            ),
            (&registry::NAMESPACE, "spec.finalizers".into(), None),
            (
                &registry::NAMESPACE,
                "metadata.finalizers".into(),
                Some(MergeSet),
            ),
            (
                &registry::PERSISTENT_VOLUME_CLAIM,
                "status.conditions".into(),
                Some(MergeKey("type")),
            ),
            (
                &registry::PERSISTENT_VOLUME_CLAIM,
                "spec.accessModes".into(),
                None,
            ),
            (
                &registry::PERSISTENT_VOLUME,
                "spec.accessModes".into(),
                None,
            ),
            (
                &registry::HORIZONTAL_POD_AUTOSCALER,
                "status.conditions".into(),
                Some(MergeKey("type")),
            ),
            (
                &registry::HORIZONTAL_POD_AUTOSCALER,
                "spec.metrics".into(),
                None,
            ),
            (
                &registry::SERVICE_ACCOUNT,
                "secrets".into(),
                Some(MergeKey("name")),
            ),
            (&registry::SERVICE_ACCOUNT, "imagePullSecrets".into(), None),
            (&registry::ENDPOINTS, "subsets".into(), None),
            (
                &registry::EVENT,
                "metadata.ownerReferences".into(),
                Some(MergeKey("uid")),
            ),
            (
                &registry::LEASE,
                "metadata.finalizers".into(),
                Some(MergeSet),
            ),
            (
                &registry::CONFIG_MAP,
                "metadata.finalizers".into(),
                Some(MergeSet),
            ),
            (
                &registry::SECRET,
                "metadata.ownerReferences".into(),
                Some(MergeKey("uid")),
            ),
        ];
        for (resource, path, want) in cases {
            assert_eq!(
                strategy_at(resource, &path),
                want,
                "{} {path}",
                resource.kind
            );
        }
    }

    #[test]
    fn tables_are_consistent() {
        for (at, _) in LISTS {
            assert!(
                LISTS.iter().filter(|(other, _)| other == at).count() == 1,
                "{at} twice"
            );
            // An entry under a place where a type starts would never be reached.
            for (start, ty) in TYPES {
                let start = start.trim_start_matches("*.");
                assert!(!at.starts_with(&format!("{start}.")), "{at} is under {ty}");
            }
        }
        for (_, ty) in TYPES {
            assert!(
                LISTS
                    .iter()
                    .any(|(at, _)| at.starts_with(&format!("{ty}.")))
                    || TYPES
                        .iter()
                        .any(|(at, _)| at.starts_with(&format!("{ty}."))),
                "{ty} leads nowhere"
            );
        }
    }

    /// A small xorshift generator: the tests stay deterministic and need no dependency.
    struct Rng(u64);

    impl Rng {
        fn step(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.step() % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }

        fn value(&mut self, depth: usize, directives: bool) -> Value {
            const KEYS: &[&str] = &[
                "spec",
                "template",
                "metadata",
                "status",
                "containers",
                "initContainers",
                "env",
                "ports",
                "name",
                "image",
                "containerPort",
                "port",
                "conditions",
                "type",
                "finalizers",
                "ownerReferences",
                "uid",
                "volumes",
                "emptyDir",
                "podCIDRs",
                "volumeMounts",
                "mountPath",
            ];
            const DIRECTIVES: &[&str] = &[
                "$patch",
                "$retainKeys",
                "$setElementOrder/containers",
                "$setElementOrder/env",
                "$setElementOrder/finalizers",
                "$deleteFromPrimitiveList/finalizers",
                "$deleteFromPrimitiveList/env",
                "$unknown",
            ];
            const WORDS: &[&str] = &["replace", "delete", "merge", "web", "a", "b", "name", ""];
            let leaf = depth == 0 || self.below(3) == 0;
            match self.below(if leaf { 4 } else { 6 }) {
                0 => Value::Null,
                1 => json!(self.below(3)),
                2 => json!(self.pick(WORDS)),
                3 => json!(self.below(2) == 0),
                4 => Value::Array(
                    (0..self.below(4))
                        .map(|_| self.value(depth - 1, directives))
                        .collect(),
                ),
                _ => {
                    let mut map = Map::new();
                    for _ in 0..self.below(5) {
                        let key = if directives && self.below(3) == 0 {
                            self.pick(DIRECTIVES)
                        } else {
                            self.pick(KEYS)
                        };
                        map.insert(key.to_string(), self.value(depth - 1, directives));
                    }
                    Value::Object(map)
                }
            }
        }
    }

    fn has_directive(value: &Value) -> bool {
        match value {
            Value::Object(map) => map
                .iter()
                .any(|(k, v)| k.starts_with('$') || has_directive(v)),
            Value::Array(list) => list.iter().any(has_directive),
            _ => false,
        }
    }

    #[test]
    fn random_patches_never_panic_nor_leave_directives() {
        let mut rng = Rng(0x5eed_cafe_f00d_d00d);
        let (mut ok, mut failed) = (0, 0);
        for i in 0..20_000 {
            let resource = registry::all()[i % registry::all().len()];
            let original = match rng.value(5, false) {
                Value::Object(map) => Value::Object(map),
                other => json!({"spec": other}),
            };
            let patch = match rng.value(5, true) {
                Value::Object(map) => Value::Object(map),
                other => json!({"spec": {"template": {"spec": {"containers": other}}}}),
            };
            match apply(resource, &original, &patch) {
                Ok(result) => {
                    ok += 1;
                    assert!(
                        !has_directive(&result),
                        "{patch} on {original} gave {result}"
                    );
                    assert_eq!(apply(resource, &original, &patch).ok(), Some(result));
                }
                Err(e) => {
                    failed += 1;
                    assert!(matches!(e, Error::Patch { .. }), "{e:?}");
                }
            }
        }
        // Both outcomes are exercised.
        assert!(ok > 100 && failed > 100, "ok {ok}, failed {failed}");
    }
}
