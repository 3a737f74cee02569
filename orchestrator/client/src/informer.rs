//! [`Informer`]: a local cache of one resource kept current by list + watch, and a
//! broadcast of what changed — what controllers and node agents read instead of asking
//! the API server.
//!
//! ```text
//!  ┌──────── list (paged) ──▶ replace cache, send Relisted, synced = true
//!  │                                  │
//!  │           watch from the list's resourceVersion (bookmarks on)
//!  │              ADDED/MODIFIED ─▶ cache insert, send Applied{old,new}
//!  │              DELETED        ─▶ cache remove, send Deleted(old)
//!  │              BOOKMARK       ─▶ remember its resourceVersion
//!  │              end of stream  ─▶ watch again from the last resourceVersion
//!  └── 410 Gone / list error ◀──── ERROR event or failed request (back-off, then relist)
//! ```
//!
//! The cache is the informer's only state; readers get `Arc`s of the objects, never a
//! lock held across an await. A subscriber that falls behind the broadcast (it is
//! bounded) sees `Lagged` from tokio; treat it like [`InformerEvent::Relisted`]: every
//! object may have changed. Consumers are level-triggered, so that is always safe.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use skiff_api::registry::Resource;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::client::{Client, ListParams};
use crate::watch::WatchEvent;

/// How many changes a subscriber may fall behind before it must resync.
const BROADCAST_CAPACITY: usize = 16_384;
/// Page size of a relist.
const LIST_PAGE: u32 = 1_000;
/// Longest single watch request; the server ends it and we resume from the last version.
const WATCH_TIMEOUT_SECONDS: u64 = 290;
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Namespace and name of an object (no namespace: cluster-scoped).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            namespace: namespace.filter(|ns| !ns.is_empty()).map(str::to_string),
            name: name.to_string(),
        }
    }

    /// The key of `object`, from `metadata.namespace` and `metadata.name`.
    pub fn of(object: &Value) -> Option<ObjectKey> {
        let meta = object.get("metadata")?;
        let name = meta.get("name")?.as_str()?;
        let namespace = meta.get("namespace").and_then(Value::as_str);
        Some(ObjectKey::new(namespace, name))
    }

    /// The namespace, or "" for a cluster-scoped object.
    pub fn namespace_str(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One change to an informer's cache.
#[derive(Clone, Debug)]
pub enum InformerEvent {
    /// Created or updated (`old` is what the cache held before, if anything).
    Applied {
        old: Option<Arc<Value>>,
        new: Arc<Value>,
    },
    /// Deleted; the object as last seen.
    Deleted(Arc<Value>),
    /// The cache was rebuilt from a fresh list: treat every object as changed (objects
    /// may also have disappeared).
    Relisted,
}

impl InformerEvent {
    /// The object this event is about (the new one for `Applied`).
    pub fn object(&self) -> Option<&Arc<Value>> {
        match self {
            InformerEvent::Applied { new, .. } => Some(new),
            InformerEvent::Deleted(old) => Some(old),
            InformerEvent::Relisted => None,
        }
    }
}

struct Inner {
    client: Client,
    resource: &'static Resource,
    params: ListParams,
    cache: RwLock<HashMap<ObjectKey, Arc<Value>>>,
    changes: broadcast::Sender<InformerEvent>,
    synced: AtomicBool,
    synced_notify: Notify,
}

/// A cache of every object of one resource (in every namespace) matching the params'
/// selectors. Cheap to clone: clones share one cache. Nothing happens until
/// [`Informer::run`] is polled.
#[derive(Clone)]
pub struct Informer {
    inner: Arc<Inner>,
}

impl fmt::Debug for Informer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Informer")
            .field("resource", &self.inner.resource.plural)
            .field("synced", &self.has_synced())
            .finish_non_exhaustive()
    }
}

impl Informer {
    /// An informer over `resource` in every namespace; `params` may narrow it with label
    /// and field selectors (its other fields are the informer's own business).
    pub fn new(client: Client, resource: &'static Resource, params: ListParams) -> Informer {
        let (changes, _) = broadcast::channel(BROADCAST_CAPACITY);
        let params = ListParams {
            label_selector: params.label_selector,
            field_selector: params.field_selector,
            ..ListParams::default()
        };
        Informer {
            inner: Arc::new(Inner {
                client,
                resource,
                params,
                cache: RwLock::new(HashMap::new()),
                changes,
                synced: AtomicBool::new(false),
                synced_notify: Notify::new(),
            }),
        }
    }

    pub fn resource(&self) -> &'static Resource {
        self.inner.resource
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        self.read(|cache| cache.get(key).cloned())
    }

    /// Every cached object, in no particular order.
    pub fn list(&self) -> Vec<Arc<Value>> {
        self.read(|cache| cache.values().cloned().collect())
    }

    /// The cached objects of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<Value>> {
        self.read(|cache| {
            cache
                .iter()
                .filter(|(k, _)| k.namespace.as_deref() == Some(namespace))
                .map(|(_, v)| v.clone())
                .collect()
        })
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.read(|cache| cache.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<InformerEvent> {
        self.inner.changes.subscribe()
    }

    /// Whether the first list has been applied.
    pub fn has_synced(&self) -> bool {
        self.inner.synced.load(Ordering::Acquire)
    }

    /// Waits until the first list has been applied.
    pub async fn synced(&self) {
        loop {
            let notified = self.inner.synced_notify.notified();
            if self.has_synced() {
                return;
            }
            notified.await;
        }
    }

    /// Lists and watches until `cancel`; never returns an error: failures are logged and
    /// retried with back-off, a 410 relists.
    pub async fn run(&self, cancel: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let round = async {
                let rv = self.relist().await?;
                self.watch_from(rv).await
            };
            let result = tokio::select! {
                _ = cancel.cancelled() => return,
                result = round => result,
            };
            match result {
                Ok(()) => backoff = BACKOFF_MIN,
                Err(e) => {
                    tracing::debug!(resource = self.inner.resource.plural, error = %e, "informer: retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn read<T>(&self, f: impl FnOnce(&HashMap<ObjectKey, Arc<Value>>) -> T) -> T {
        // A poisoned lock means a panic elsewhere while writing a map insert; the map
        // itself is still consistent, so keep serving it.
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&cache)
    }

    fn write<T>(&self, f: impl FnOnce(&mut HashMap<ObjectKey, Arc<Value>>) -> T) -> T {
        let mut cache = self
            .inner
            .cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut cache)
    }

    /// Lists every page and replaces the cache; returns the list's resourceVersion.
    async fn relist(&self) -> crate::Result<String> {
        let inner = &self.inner;
        let mut fresh = HashMap::new();
        let mut params = ListParams {
            limit: Some(LIST_PAGE),
            ..inner.params.clone()
        };
        let resource_version = loop {
            let mut page = inner.client.list(inner.resource, None, &params).await?;
            let meta = page.get("metadata").cloned().unwrap_or_default();
            if let Some(Value::Array(items)) = page.get_mut("items").map(Value::take) {
                for mut item in items {
                    fill_type_meta(&mut item, inner.resource);
                    if let Some(key) = ObjectKey::of(&item) {
                        fresh.insert(key, Arc::new(item));
                    }
                }
            }
            match meta.get("continue").and_then(Value::as_str) {
                Some(token) if !token.is_empty() => params.continue_token = Some(token.into()),
                _ => {
                    break meta
                        .get("resourceVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("0")
                        .to_string();
                }
            }
        };
        self.write(|cache| *cache = fresh);
        // Nobody listening is fine.
        let _ = inner.changes.send(InformerEvent::Relisted);
        if !inner.synced.swap(true, Ordering::AcqRel) {
            inner.synced_notify.notify_waiters();
        }
        Ok(resource_version)
    }

    /// Watches from `rv` until the server ends the watch with an error (returned: relist).
    /// A watch that simply ends is resumed from the last version seen.
    async fn watch_from(&self, mut rv: String) -> crate::Result<()> {
        let inner = &self.inner;
        loop {
            let params = ListParams {
                resource_version: Some(rv.clone()),
                timeout_seconds: Some(WATCH_TIMEOUT_SECONDS),
                allow_watch_bookmarks: true,
                ..inner.params.clone()
            };
            let mut stream = inner.client.watch(inner.resource, None, &params).await?;
            while let Some(event) = stream.next().await {
                let event = event?;
                if let Some(v) = event
                    .object()
                    .and_then(|o| o.pointer("/metadata/resourceVersion"))
                    .and_then(Value::as_str)
                {
                    rv = v.to_string();
                }
                match event {
                    WatchEvent::Added(mut object) | WatchEvent::Modified(mut object) => {
                        fill_type_meta(&mut object, inner.resource);
                        let Some(key) = ObjectKey::of(&object) else {
                            continue;
                        };
                        let new = Arc::new(object);
                        let old = self.write(|cache| cache.insert(key, new.clone()));
                        let _ = inner.changes.send(InformerEvent::Applied { old, new });
                    }
                    WatchEvent::Deleted(mut object) => {
                        fill_type_meta(&mut object, inner.resource);
                        let Some(key) = ObjectKey::of(&object) else {
                            continue;
                        };
                        let old = self.write(|cache| cache.remove(&key));
                        let _ = inner.changes.send(InformerEvent::Deleted(
                            old.unwrap_or_else(|| Arc::new(object)),
                        ));
                    }
                    WatchEvent::Bookmark(_) => {}
                    WatchEvent::Error(status) => return Err(crate::Error::Api(Box::new(status))),
                }
            }
        }
    }
}

/// List items carry no `apiVersion`/`kind`; give every cached object its own so that
/// consumers (owner references, events) can rely on them.
fn fill_type_meta(object: &mut Value, resource: &Resource) {
    if let Value::Object(map) = object {
        if !map.contains_key("apiVersion") {
            map.insert(
                "apiVersion".into(),
                Value::String(resource.api_version.to_string()),
            );
        }
        if !map.contains_key("kind") {
            map.insert("kind".into(), Value::String(resource.kind.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_of_objects() {
        let pod = json!({"metadata": {"namespace": "ns", "name": "a"}});
        let node = json!({"metadata": {"name": "n1"}});
        assert_eq!(ObjectKey::of(&pod).unwrap().to_string(), "ns/a");
        assert_eq!(ObjectKey::of(&node).unwrap().to_string(), "n1");
        assert_eq!(ObjectKey::of(&node).unwrap().namespace_str(), "");
        assert_eq!(ObjectKey::of(&json!({"metadata": {}})), None);
        assert_eq!(ObjectKey::new(Some(""), "x"), ObjectKey::new(None, "x"));
    }
}
