//! The REST verbs on objects: get, list, create, update, patch, delete, delete
//! collection, and the status, scale and binding subresources. Watch lives in
//! [`crate::watch`], discovery in [`crate::discovery`].
//!
//! Every write is compare-and-swap on the store revision of what it read, so two writers
//! never lose each other's changes: a stale resourceVersion from the client is a 409, an
//! internal race (a PATCH, a status write) is retried.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::StatusCode;
use serde_json::{Map, Value, json};
use skiff_store::{Compare, CompareOp, KeyRange, LeaseId, Op, RangeOptions, Revision, Store, Txn};

use crate::admission;
use crate::cache::{self, WatchCache};
use crate::error::{ApiError, Cause};
use crate::filter::Filter;
use crate::object;
use crate::query::{FieldValidation, PropagationPolicy, Query, ResourceVersionMatch};
use crate::resources::{self, Resource};

/// How often an internal compare-and-swap is retried before giving up with 409.
const MAX_CAS_RETRIES: usize = 16;

/// What handlers share.
pub struct Api {
    pub store: Arc<dyn Store>,
    /// How long Events live.
    pub event_ttl: Duration,
    /// The shared lease of recent Events and when it was granted.
    pub event_lease: std::sync::Mutex<Option<(LeaseId, tokio::time::Instant)>>,
    pub cache: Arc<WatchCache>,
    pub consistent_read_timeout: Duration,
    /// How the server reaches node agents (`pods/log`), and the token it shows them.
    pub agent_client: crate::logs::AgentClient,
    pub node_token: String,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

/// An object as stored, with its revision and lease.
struct Stored {
    object: Arc<Value>,
    mod_revision: Revision,
    lease: Option<LeaseId>,
}

/// A successful answer: status, body, warnings.
pub type Answer = (StatusCode, Value, Vec<String>);

fn ok(v: Value) -> Answer {
    (StatusCode::OK, v, Vec::new())
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything but status (when the kind has a status subresource).
    Main,
    /// Only status.
    Status,
}

impl Api {
    // ---------------------------------------------------------------- reads

    pub async fn get(
        &self,
        r: Resource,
        ns: Option<&str>,
        name: &str,
        q: &Query,
    ) -> Result<Answer, ApiError> {
        let key = resources::key(r, ns, name)?;
        let obj = match q.resource_version.as_deref() {
            // "0": any version the cache holds will do.
            Some("0") => self.cache.get(&key).map(|o| o.object),
            Some(rv) => {
                let rev = parse_rv(rv)?;
                self.cache
                    .wait_for(rev, self.consistent_read_timeout)
                    .await?;
                self.cache.get(&key).map(|o| o.object)
            }
            None => self.read_store(&key).await?.map(|(v, _)| v),
        };
        match obj {
            Some(o) => Ok(ok((*o).clone())),
            None => Err(ApiError::not_found(r.group, r.plural, name)),
        }
    }

    /// One object, current, straight from the store.
    pub async fn get_object(
        &self,
        r: Resource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        let key = resources::key(r, ns.filter(|_| r.namespaced), name)?;
        Ok(self
            .read_store(&key)
            .await?
            .map(|(v, _)| Arc::unwrap_or_clone(v)))
    }

    /// One object straight from the store, with its mod revision.
    async fn read_store(&self, key: &str) -> Result<Option<(Arc<Value>, Revision)>, ApiError> {
        Ok(self
            .read_stored(key)
            .await?
            .map(|s| (s.object, s.mod_revision)))
    }

    /// One object straight from the store with what a compare-and-swap needs.
    async fn read_stored(&self, key: &str) -> Result<Option<Stored>, ApiError> {
        let (kv, _) = self.store.get(key.as_bytes()).await?;
        Ok(kv.and_then(|kv| {
            cache::decode(&kv, kv.mod_revision).map(|object| Stored {
                object,
                mod_revision: kv.mod_revision,
                lease: kv.lease,
            })
        }))
    }

    /// Writes `obj` if the key is still at `mod_revision`, keeping its lease (an
    /// Event's TTL survives updates). `Ok(None)` when the compare failed.
    async fn cas_put(
        &self,
        key: &str,
        mod_revision: Revision,
        lease: Option<LeaseId>,
        obj: &mut Value,
    ) -> Result<Option<Revision>, ApiError> {
        let txn = Txn::new()
            .when(Compare::mod_revision(key, CompareOp::Equal, mod_revision))
            .success(Op::Put {
                key: key.as_bytes().to_vec(),
                value: to_stored(obj)?,
                lease,
            });
        let resp = self.store.txn(txn).await?;
        Ok(resp.succeeded.then_some(resp.revision))
    }

    /// The lease new Events are attached to: one per minute, granted for the event TTL,
    /// so Events disappear on their own (Kubernetes' `--event-ttl`).
    async fn event_lease(&self) -> Result<LeaseId, ApiError> {
        let now = tokio::time::Instant::now();
        let cached = *self.event_lease.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((id, granted)) = cached
            && now.duration_since(granted) < Duration::from_secs(60)
        {
            return Ok(id);
        }
        let ttl = self.event_ttl.as_secs().max(1) as i64;
        let id = self.store.lease_grant(ttl).await?;
        *self.event_lease.lock().unwrap_or_else(|e| e.into_inner()) = Some((id, now));
        Ok(id)
    }

    pub async fn list(&self, r: Resource, ns: Option<&str>, q: &Query) -> Result<Answer, ApiError> {
        let filter = Filter::parse(r, q.label_selector.as_deref(), q.field_selector.as_deref())?;
        let prefix = resources::prefix(r, ns)?;
        let limit = q.limit;

        let (items, revision, more) = if let Some(token) = &q.continue_token {
            let cont = Continue::decode(token)?;
            if !cont.key.starts_with(&prefix) {
                return Err(ApiError::bad_request(
                    "continue: the continue token was issued for another request",
                ));
            }
            self.list_from_store(&prefix, &cont.key, cont.revision, &filter, limit)
                .await?
        } else if q.resource_version_match == Some(ResourceVersionMatch::Exact) {
            let rev = parse_rv(q.resource_version.as_deref().unwrap_or(""))?;
            self.list_from_store(&prefix, &prefix, rev, &filter, limit)
                .await?
        } else {
            match q.resource_version.as_deref() {
                Some("0") => {}
                Some(rv) => {
                    let rev = parse_rv(rv)?;
                    self.cache
                        .wait_for(rev, self.consistent_read_timeout)
                        .await?;
                }
                None => {
                    // A consistent read: at least as new as every acknowledged write.
                    let current = self.store.status().await?.revision;
                    self.cache
                        .wait_for(current, self.consistent_read_timeout)
                        .await?;
                }
            }
            let (objects, revision) = self.cache.list(&prefix);
            let mut items = Vec::new();
            let mut more = None;
            for o in objects {
                if !filter.matches(&o.object) {
                    continue;
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    more = Some(last_key(r, &items));
                    break;
                }
                items.push(o.object);
            }
            (items, revision, more.flatten())
        };

        let mut meta = Map::new();
        meta.insert("resourceVersion".into(), revision.to_string().into());
        if let Some(last) = more {
            let token = Continue {
                revision,
                key: format!("{last}\0"),
            };
            meta.insert("continue".into(), token.encode().into());
        }
        // Built by hand: `json!` would copy every item a second time (the bench showed
        // copies dominating a 10,000-pod list).
        let mut list = Map::new();
        list.insert("kind".into(), r.list_kind.into());
        list.insert("apiVersion".into(), resources::api_version(r).into());
        list.insert("metadata".into(), Value::Object(meta));
        list.insert(
            "items".into(),
            Value::Array(items.iter().map(|o| (**o).clone()).collect()),
        );
        Ok(ok(Value::Object(list)))
    }

    /// A page read from the store at `revision`, from `start` (inclusive).
    async fn list_from_store(
        &self,
        prefix: &str,
        start: &str,
        revision: Revision,
        filter: &Filter,
        limit: Option<usize>,
    ) -> Result<(Vec<Arc<Value>>, Revision, Option<String>), ApiError> {
        let end = skiff_store::prefix_end(prefix.as_bytes());
        let resp = self
            .store
            .range(
                KeyRange::between(start.as_bytes(), end),
                RangeOptions {
                    revision: Some(revision),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| match e {
                skiff_store::Error::Compacted { .. } => ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ),
                other => other.into(),
            })?;
        let mut items = Vec::new();
        let mut last_key = None;
        let mut more = None;
        for kv in resp.kvs {
            let Some(obj) = cache::decode(&kv, kv.mod_revision) else {
                continue;
            };
            if !filter.matches(&obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                more = last_key.clone();
                break;
            }
            last_key = Some(String::from_utf8_lossy(&kv.key).into_owned());
            items.push(obj);
        }
        Ok((items, revision, more))
    }

    // ---------------------------------------------------------------- create

    pub async fn create(
        &self,
        r: Resource,
        ns: Option<&str>,
        mut body: Value,
        q: &Query,
    ) -> Result<Answer, ApiError> {
        check_kind(r, &mut body)?;
        check_namespace(r, ns, &mut body)?;
        if object::name(&body).is_none_or(str::is_empty)
            && let Some(prefix) = object::generate_name(&body).filter(|p| !p.is_empty())
        {
            let name = object::generated_name(prefix);
            object::metadata_mut(&mut body).insert("name".into(), name.into());
        }
        let name = object::name(&body).unwrap_or_default().to_string();
        if let Some(ns) = ns.filter(|_| r.namespaced) {
            self.check_namespace_open(ns).await?;
        }
        let admitted = admission::admit_create(r, body, q.field_validation)?;
        let mut obj = admitted.object;
        stamp_new(r, &mut obj);
        if resources::is(r, "", "services") && !q.dry_run {
            crate::allocator::allocate(&self.store, &mut obj, None).await?;
        }
        if q.dry_run {
            return Ok((StatusCode::CREATED, obj, admitted.warnings));
        }
        let key = resources::key(r, ns.filter(|_| r.namespaced), &name)?;
        let bytes = to_stored(&mut obj)?;
        let lease = if resources::is(r, "", "events") {
            Some(self.event_lease().await?)
        } else {
            None
        };
        let created = match self
            .store
            .create(key.as_bytes(), bytes.clone(), lease)
            .await
        {
            // The shared event lease expired under us: take a fresh one.
            Err(skiff_store::Error::LeaseNotFound(_)) if lease.is_some() => {
                *self.event_lease.lock().unwrap_or_else(|e| e.into_inner()) = None;
                let lease = self.event_lease().await?;
                self.store
                    .create(key.as_bytes(), bytes, Some(lease))
                    .await?
            }
            other => other?,
        };
        match created {
            Ok(rev) => {
                object::set_resource_version(&mut obj, rev);
                Ok((StatusCode::CREATED, obj, admitted.warnings))
            }
            Err(_) => Err(ApiError::already_exists(r.group, r.plural, &name)),
        }
    }

    async fn check_namespace_open(&self, ns: &str) -> Result<(), ApiError> {
        let ns_resource = resources::find("", "v1", "namespaces")
            .ok_or_else(|| ApiError::internal("the namespaces kind is not registered"))?;
        let key = resources::key(ns_resource, None, ns)?;
        match self.read_store(&key).await? {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some((obj, _)) if object::deletion_timestamp(&obj).is_some() => {
                Err(ApiError::forbidden(format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                )))
            }
            Some(_) => Ok(()),
        }
    }

    // ---------------------------------------------------------------- update, patch

    /// PUT: replaces the object (or its status), compare-and-swap on the body's
    /// resourceVersion when it has one.
    pub async fn replace(
        &self,
        r: Resource,
        ns: Option<&str>,
        name: &str,
        part: Part,
        mut body: Value,
        q: &Query,
    ) -> Result<Answer, ApiError> {
        check_kind(r, &mut body)?;
        check_namespace(r, ns, &mut body)?;
        check_name(&body, name)?;
        let precondition = match object::resource_version(&body) {
            Some(rv) if !rv.is_empty() => Some(parse_rv(rv)?),
            _ => None,
        };
        let fv = q.field_validation;
        self.write(r, ns, name, precondition, q.dry_run, |current| {
            Ok(body.clone()).and_then(|new| admit_update(r, current, new, part, fv))
        })
        .await
    }

    /// PATCH: applies a JSON patch or JSON merge patch to the current object and writes
    /// the result with compare-and-swap, retrying on conflict.
    pub async fn patch(
        &self,
        r: Resource,
        ns: Option<&str>,
        name: &str,
        part: Part,
        patch: &Patch,
        q: &Query,
    ) -> Result<Answer, ApiError> {
        let fv = q.field_validation;
        self.write(r, ns, name, None, q.dry_run, |current| {
            let rv_before = object::resource_version(current).map(str::to_string);
            let patched = patch.apply(Some(r), current)?;
            let rv_after = object::resource_version(&patched).map(str::to_string);
            if rv_after.is_some() && rv_after != rv_before {
                return Err(ApiError::stale(r.group, r.plural, name));
            }
            admit_update(r, current, patched, part, fv)
        })
        .await
    }

    /// The read-modify-write loop every update goes through.
    ///
    /// `mutate` gets the current object (resourceVersion set) and returns the new one
    /// (already admitted). An object with deletionTimestamp and no finalizers left is
    /// deleted instead of written.
    async fn write<F>(
        &self,
        r: Resource,
        ns: Option<&str>,
        name: &str,
        precondition: Option<Revision>,
        dry_run: bool,
        mutate: F,
    ) -> Result<Answer, ApiError>
    where
        F: FnMut(&Value) -> Result<Admitted, ApiError>,
    {
        let (status, object, warnings) = self
            .write_shared(r, ns, name, precondition, dry_run, mutate)
            .await?;
        Ok((status, Arc::unwrap_or_clone(object), warnings))
    }

    /// [`Api::write`], answering with the object as the watch cache shares it: a written
    /// object is handed to the cache, which then need not decode it from the store's
    /// event (a caller that does not answer with the object copies nothing).
    async fn write_shared<F>(
        &self,
        r: Resource,
        ns: Option<&str>,
        name: &str,
        precondition: Option<Revision>,
        dry_run: bool,
        mut mutate: F,
    ) -> Result<(StatusCode, Arc<Value>, Vec<String>), ApiError>
    where
        F: FnMut(&Value) -> Result<Admitted, ApiError>,
    {
        let key = resources::key(r, ns.filter(|_| r.namespaced), name)?;
        // The first attempt starts from the watch cache's copy, as the kube-apiserver's
        // GuaranteedUpdate does: a write of it is a compare-and-swap on its mod revision,
        // so a stale copy only costs a retry. Any outcome that writes nothing (an error,
        // a no-op, a dry run) is decided again on the store's copy; every retry reads the
        // store. Services allocate addresses from the current object: always the store.
        let mut use_cache = !resources::is(r, "", "services");
        for _ in 0..=MAX_CAS_RETRIES {
            let cached = if use_cache {
                use_cache = false;
                self.cache
                    .get(&key)
                    .filter(|c| precondition.is_none_or(|p| p == c.mod_revision))
            } else {
                None
            };
            let from_cache = cached.is_some();
            let stored = match cached {
                Some(c) => Some(Stored {
                    object: c.object,
                    mod_revision: c.mod_revision,
                    lease: c.lease,
                }),
                None => self.read_stored(&key).await?,
            };
            let Some(Stored {
                object: current,
                mod_revision: mod_rev,
                lease,
            }) = stored
            else {
                return Err(ApiError::not_found(r.group, r.plural, name));
            };
            if precondition.is_some_and(|p| p != mod_rev) {
                return Err(ApiError::stale(r.group, r.plural, name));
            }
            let Admitted {
                object: mut new,
                warnings,
            } = match mutate(&current) {
                Ok(admitted) => admitted,
                Err(_) if from_cache => continue,
                Err(e) => return Err(e),
            };
            if resources::is(r, "", "services") && !dry_run {
                // A type change to NodePort needs ports; addresses kept are no conflict.
                crate::allocator::allocate(&self.store, &mut new, Some(&current)).await?;
            }
            if object::deletion_timestamp(&new).is_some()
                && object::finalizers(&new).is_empty()
                && !holds_namespace_finalizers(r, &new)
            {
                if dry_run {
                    if from_cache {
                        continue;
                    }
                    return Ok((StatusCode::OK, Arc::new(new), warnings));
                }
                match self.store.delete_if(key.as_bytes(), mod_rev).await? {
                    Ok(rev) => {
                        object::set_resource_version(&mut new, rev);
                        return Ok((StatusCode::OK, Arc::new(new), warnings));
                    }
                    Err(_) if precondition.is_some() => {
                        return Err(ApiError::stale(r.group, r.plural, name));
                    }
                    Err(_) => continue,
                }
            }
            object::set_resource_version(&mut new, mod_rev);
            if new == *current || dry_run {
                if from_cache {
                    continue;
                }
                return Ok((StatusCode::OK, Arc::new(new), warnings));
            }
            match self.cas_put(&key, mod_rev, lease, &mut new).await? {
                Some(rev) => {
                    object::set_resource_version(&mut new, rev);
                    let new = Arc::new(new);
                    self.cache.written(&key, rev, Arc::clone(&new));
                    return Ok((StatusCode::OK, new, warnings));
                }
                None if precondition.is_some() => {
                    return Err(ApiError::stale(r.group, r.plural, name));
                }
                None => continue,
            }
        }
        Err(ApiError::conflict(
            r.group,
            r.plural,
            name,
            "too many concurrent writes; try again",
        ))
    }

    // ---------------------------------------------------------------- scale, binding

    pub async fn get_scale(
        &self,
        r: Resource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Answer, ApiError> {
        let key = resources::key(r, ns, name)?;
        let (obj, _) = self
            .read_store(&key)
            .await?
            .ok_or_else(|| ApiError::not_found(r.group, r.plural, name))?;
        Ok(ok(scale_of(&obj)))
    }

    /// PUT or PATCH of `scale`: only `spec.replicas` of the owner changes.
    pub async fn write_scale(
        &self,
        r: Resource,
        ns: Option<&str>,
        name: &str,
        media_type: Option<&str>,
        body: &[u8],
        q: &Query,
    ) -> Result<Answer, ApiError> {
        let patch = match media_type {
            Some(mt) => Some(Patch::parse(mt, body)?),
            None => None,
        };
        let put_body = match &patch {
            None => Some(crate::body::decode_object(body, "application/json")?),
            Some(_) => None,
        };
        let fv = q.field_validation;
        let (status, obj, warnings) = self
            .write(r, ns, name, None, q.dry_run, |current| {
                let scale = scale_of(current);
                let new_scale = match (&patch, &put_body) {
                    (Some(p), _) => p.apply(None, &scale)?,
                    (None, Some(b)) => {
                        let rv = object::resource_version(b);
                        if rv.is_some_and(|rv| {
                            !rv.is_empty() && Some(rv) != object::resource_version(&scale)
                        }) {
                            return Err(ApiError::stale(r.group, r.plural, name));
                        }
                        b.clone()
                    }
                    (None, None) => scale.clone(),
                };
                let replicas = new_scale
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if replicas < 0 {
                    return Err(ApiError::invalid(
                        "Scale",
                        "autoscaling",
                        name,
                        vec![Cause {
                            reason: "FieldValueInvalid".into(),
                            message: format!(
                                "Invalid value: {replicas}: must be greater than or equal to 0"
                            ),
                            field: "spec.replicas".into(),
                        }],
                    ));
                }
                let mut new = current.clone();
                if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("replicas".into(), replicas.into());
                }
                admit_update(r, current, new, Part::Main, fv)
            })
            .await?;
        Ok((status, scale_of(&obj), warnings))
    }

    /// POST `pods/{name}/binding`: assigns an unbound pod to a node.
    pub async fn bind(
        &self,
        r: Resource,
        ns: Option<&str>,
        name: &str,
        body: Value,
    ) -> Result<Answer, ApiError> {
        let node = body
            .pointer("/target/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::invalid(
                    "Binding",
                    "",
                    name,
                    vec![Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value".into(),
                        field: "target.name".into(),
                    }],
                )
            })?
            .to_string();
        self.write_shared(r, ns, name, None, false, |current| {
            if let Some(bound) = current
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                return Err(ApiError::conflict(
                    r.group,
                    r.plural,
                    name,
                    &format!("pod {name} is already assigned to node \"{bound}\""),
                ));
            }
            if object::deletion_timestamp(current).is_some() {
                return Err(ApiError::conflict(
                    r.group,
                    r.plural,
                    name,
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            let mut new = current.clone();
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("nodeName".into(), node.clone().into());
            }
            set_condition(&mut new, "PodScheduled", "True", None, None);
            Ok(Admitted {
                object: new,
                warnings: Vec::new(),
            })
        })
        .await?;
        Ok((
            StatusCode::CREATED,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            Vec::new(),
        ))
    }

    /// PUT `namespaces/{name}/finalize`: replaces only `spec.finalizers` (what the
    /// namespace controller removes `kubernetes` from once the namespace is empty). A
    /// terminating namespace left with no finalizer at all is deleted.
    pub async fn finalize_namespace(
        &self,
        r: Resource,
        name: &str,
        mut body: Value,
        q: &Query,
    ) -> Result<Answer, ApiError> {
        check_kind(r, &mut body)?;
        check_name(&body, name)?;
        let precondition = match object::resource_version(&body) {
            Some(rv) if !rv.is_empty() => Some(parse_rv(rv)?),
            _ => None,
        };
        let finalizers = body
            .pointer("/spec/finalizers")
            .cloned()
            .unwrap_or_else(|| json!([]));
        if !finalizers
            .as_array()
            .is_some_and(|f| f.iter().all(|x| x.as_str().is_some_and(|s| !s.is_empty())))
        {
            return Err(ApiError::invalid(
                r.kind,
                r.group,
                name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: spec.finalizers must be a list of names".into(),
                    field: "spec.finalizers".into(),
                }],
            ));
        }
        self.write(r, None, name, precondition, q.dry_run, |current| {
            let mut new = current.clone();
            let spec = new
                .as_object_mut()
                .map(|o| o.entry("spec").or_insert_with(|| json!({})));
            if let Some(Value::Object(spec)) = spec {
                spec.insert("finalizers".into(), finalizers.clone());
            }
            Ok(Admitted {
                object: new,
                warnings: Vec::new(),
            })
        })
        .await
    }

    // ---------------------------------------------------------------- delete

    pub async fn delete(
        &self,
        r: Resource,
        ns: Option<&str>,
        name: &str,
        options: &DeleteOptions,
        q: &Query,
    ) -> Result<Answer, ApiError> {
        let key = resources::key(r, ns.filter(|_| r.namespaced), name)?;
        for _ in 0..MAX_CAS_RETRIES {
            let Some(Stored {
                object: current,
                mod_revision: mod_rev,
                lease,
            }) = self.read_stored(&key).await?
            else {
                return Err(ApiError::not_found(r.group, r.plural, name));
            };
            if let Some(uid) = &options.precondition_uid
                && object::uid(&current) != Some(uid.as_str())
            {
                return Err(ApiError::conflict(
                    r.group,
                    r.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        object::uid(&current).unwrap_or("")
                    ),
                ));
            }
            if let Some(rv) = options.precondition_resource_version
                && rv != mod_rev
            {
                return Err(ApiError::conflict(
                    r.group,
                    r.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {mod_rev}"
                    ),
                ));
            }
            let mut finalizers = object::finalizers(&current);
            let policy = options.propagation_policy.or(q.propagation_policy);
            match policy {
                Some(PropagationPolicy::Foreground) => {
                    add_unique(&mut finalizers, "foregroundDeletion")
                }
                Some(PropagationPolicy::Orphan) => add_unique(&mut finalizers, "orphan"),
                _ => {}
            }
            let grace = options.grace_period_seconds.or(q.grace_period_seconds);
            let graceful_pod = self.is_graceful_pod(r, &current, grace).await;
            let namespace_content = holds_namespace_finalizers(r, &current);

            if finalizers.is_empty() && !graceful_pod && !namespace_content {
                if q.dry_run {
                    return Ok(ok(Arc::unwrap_or_clone(current)));
                }
                match self.store.delete_if(key.as_bytes(), mod_rev).await? {
                    Ok(rev) => {
                        let mut gone = Arc::unwrap_or_clone(current);
                        object::set_resource_version(&mut gone, rev);
                        return Ok(ok(gone));
                    }
                    Err(_) => continue,
                }
            }

            // Graceful: mark, and let finalizers (or the pod's node) finish the job.
            let mut new = Value::clone(&current);
            let already = object::deletion_timestamp(&current).is_some();
            object::set_finalizers(&mut new, finalizers);
            if !already {
                let meta = object::metadata_mut(&mut new);
                meta.insert("deletionTimestamp".into(), object::now_rfc3339().into());
                let grace = if graceful_pod {
                    grace.unwrap_or_else(|| {
                        current
                            .pointer("/spec/terminationGracePeriodSeconds")
                            .and_then(Value::as_i64)
                            .unwrap_or(30)
                    })
                } else {
                    0
                };
                meta.insert("deletionGracePeriodSeconds".into(), grace.into());
            }
            if namespace_content && let Some(o) = new.as_object_mut() {
                // The namespace controller empties it, then finalizes it.
                let status = o.entry("status").or_insert_with(|| json!({}));
                if let Some(status) = status.as_object_mut() {
                    status.insert("phase".into(), "Terminating".into());
                }
            }
            object::set_resource_version(&mut new, mod_rev);
            if new == *current || q.dry_run {
                return Ok((StatusCode::OK, new, Vec::new()));
            }
            match self.cas_put(&key, mod_rev, lease, &mut new).await? {
                Some(rev) => {
                    object::set_resource_version(&mut new, rev);
                    return Ok((StatusCode::OK, new, Vec::new()));
                }
                None => continue,
            }
        }
        Err(ApiError::conflict(
            r.group,
            r.plural,
            name,
            "too many concurrent writes; try again",
        ))
    }

    /// A pod bound to a node that still exists is deleted gracefully: it is marked,
    /// and disappears when its node confirms it stopped (a delete with grace 0).
    async fn is_graceful_pod(&self, r: Resource, pod: &Value, grace: Option<i64>) -> bool {
        if !resources::is(r, "", "pods") || grace == Some(0) {
            return false;
        }
        let Some(node) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        else {
            return false;
        };
        // A pod that has finished needs no confirmation.
        let phase = pod.pointer("/status/phase").and_then(Value::as_str);
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return false;
        }
        let Some(nodes) = resources::find("", "v1", "nodes") else {
            return false;
        };
        let Ok(key) = resources::key(nodes, None, node) else {
            return false;
        };
        matches!(self.read_store(&key).await, Ok(Some(_)))
    }

    pub async fn delete_collection(
        &self,
        r: Resource,
        ns: Option<&str>,
        options: &DeleteOptions,
        q: &Query,
    ) -> Result<Answer, ApiError> {
        let list_query = Query {
            label_selector: q.label_selector.clone(),
            field_selector: q.field_selector.clone(),
            ..Query::default()
        };
        let (_, list, _) = self.list(r, ns, &list_query).await?;
        let items = list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut deleted = Vec::new();
        for item in items {
            let Some(name) = object::name(&item) else {
                continue;
            };
            let item_ns = object::namespace(&item);
            match self.delete(r, item_ns, name, options, q).await {
                Ok((_, obj, _)) => deleted.push(obj),
                Err(e) if e.code == StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ok(json!({
            "kind": r.list_kind,
            "apiVersion": resources::api_version(r),
            "metadata": {},
            "items": deleted,
        })))
    }
}

// -------------------------------------------------------------------- helpers

pub use admission::Admitted;

/// Admission for an update of `part`: carries over what the writer may not change, then
/// validates the transition.
fn admit_update(
    r: Resource,
    current: &Value,
    mut new: Value,
    part: Part,
    fv: FieldValidation,
) -> Result<Admitted, ApiError> {
    if part == Part::Status {
        let status = new.get("status").cloned();
        new = current.clone();
        if let Some(obj) = new.as_object_mut() {
            match status {
                Some(s) => obj.insert("status".into(), s),
                None => obj.remove("status"),
            };
        }
    } else if resources::has_status(r) {
        if let (Some(obj), Some(status)) = (new.as_object_mut(), current.get("status")) {
            obj.insert("status".into(), status.clone());
        } else if let Some(obj) = new.as_object_mut() {
            obj.remove("status");
        }
    }
    // Only the finalize subresource changes a namespace's spec.finalizers.
    if part == Part::Main && resources::is(r, "", "namespaces") {
        let before = current.pointer("/spec/finalizers").cloned();
        let spec = new
            .as_object_mut()
            .map(|o| o.entry("spec").or_insert_with(|| json!({})));
        if let Some(Value::Object(spec)) = spec {
            match before {
                Some(f) => spec.insert("finalizers".into(), f),
                None => spec.remove("finalizers"),
            };
        }
    }
    // Server-owned metadata.
    let keep = [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "name",
        "namespace",
    ];
    let current_meta = object::metadata(current).cloned().unwrap_or_default();
    {
        let meta = object::metadata_mut(&mut new);
        for k in keep {
            match current_meta.get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
    }
    if object::deletion_timestamp(current).is_some() {
        let before = object::finalizers(current);
        let added: Vec<String> = object::finalizers(&new)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            return Err(ApiError::invalid(
                r.kind,
                r.group,
                object::name(current).unwrap_or(""),
                vec![Cause {
                    reason: "FieldValueForbidden".into(),
                    message: format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                    ),
                    field: "metadata.finalizers".into(),
                }],
            ));
        }
    }
    let mut admitted = admission::admit_update(r, current, new, part == Part::Status, fv)?;
    // generation counts changes of the desired state.
    if current.get("spec") != admitted.object.get("spec") {
        let g = object::generation(current) + 1;
        object::metadata_mut(&mut admitted.object).insert("generation".into(), g.into());
    }
    Ok(admitted)
}

/// Fills server-owned fields of a new object.
fn stamp_new(r: Resource, obj: &mut Value) {
    let meta = object::metadata_mut(obj);
    meta.insert("uid".into(), object::new_uid().into());
    meta.insert("creationTimestamp".into(), object::now_rfc3339().into());
    meta.remove("resourceVersion");
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    if obj.get("spec").is_some() {
        object::metadata_mut(obj).insert("generation".into(), 1.into());
    }
    if resources::is(r, "", "pods") {
        if let Some(o) = obj.as_object_mut() {
            o.insert("status".into(), json!({"phase": "Pending"}));
        }
    } else if resources::is(r, "", "namespaces")
        && let Some(o) = obj.as_object_mut()
    {
        o.insert("status".into(), json!({"phase": "Active"}));
    }
}

/// The bytes stored for an object: JSON without resourceVersion (the store revision is
/// the resourceVersion).
/// The stored form: the object without `metadata.resourceVersion` (the store's
/// revision is the version). Takes the field out for the encoding and puts it back,
/// rather than copying the object.
fn to_stored(obj: &mut Value) -> Result<Vec<u8>, ApiError> {
    let rv = object::metadata_mut(obj).remove("resourceVersion");
    let bytes = serde_json::to_vec(obj)
        .map_err(|e| ApiError::internal(format!("cannot encode the object: {e}")));
    if let Some(rv) = rv {
        object::metadata_mut(obj).insert("resourceVersion".into(), rv);
    }
    bytes
}

/// Fills a missing apiVersion/kind from the URL; a different one is a 400.
fn check_kind(r: Resource, body: &mut Value) -> Result<(), ApiError> {
    let want_version = resources::api_version(r);
    let obj = body
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be an object"))?;
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            obj.insert("apiVersion".into(), want_version.into());
        }
        Some(v) if v == want_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )));
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            obj.insert("kind".into(), r.kind.into());
        }
        Some(k) if k == r.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({}) for {}",
                r.kind,
                crate::error::qualified(r.group, r.plural)
            )));
        }
    }
    Ok(())
}

fn check_namespace(r: Resource, ns: Option<&str>, body: &mut Value) -> Result<(), ApiError> {
    if !r.namespaced {
        if object::namespace(body).is_some_and(|n| !n.is_empty()) {
            return Err(ApiError::bad_request(format!(
                "{} is cluster-scoped: metadata.namespace must be empty",
                r.plural
            )));
        }
        object::metadata_mut(body).remove("namespace");
        return Ok(());
    }
    let Some(ns) = ns else {
        return Err(ApiError::bad_request(format!(
            "{} is namespaced: write it under /namespaces/{{namespace}}/{}",
            r.plural, r.plural
        )));
    };
    match object::namespace(body) {
        None | Some("") => {
            object::metadata_mut(body).insert("namespace".into(), ns.into());
            Ok(())
        }
        Some(n) if n == ns => Ok(()),
        Some(n) => Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({n}) does not match the namespace sent on the request ({ns})"
        ))),
    }
}

fn check_name(body: &Value, name: &str) -> Result<(), ApiError> {
    match object::name(body) {
        Some(n) if n == name => Ok(()),
        None | Some("") => Err(ApiError::bad_request(
            "metadata.name: Required value: name is required in the body",
        )),
        Some(n) => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
    }
}

fn parse_rv(rv: &str) -> Result<Revision, ApiError> {
    object::parse_resource_version(rv).ok_or_else(|| {
        ApiError::bad_request(format!(
            "resourceVersion: Invalid value: {rv:?}: must be a non-negative integer"
        ))
    })
}

fn last_key(r: Resource, items: &[Arc<Value>]) -> Option<String> {
    let last = items.last()?;
    resources::key(
        r,
        object::namespace(last).filter(|_| r.namespaced),
        object::name(last)?,
    )
    .ok()
}

/// A namespace whose `spec.finalizers` is not empty: its deletion waits for them.
fn holds_namespace_finalizers(r: Resource, obj: &Value) -> bool {
    resources::is(r, "", "namespaces")
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
}

fn add_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|f| f == item) {
        list.push(item.to_string());
    }
}

/// Sets one condition in `status.conditions`, keeping the others.
pub fn set_condition(
    obj: &mut Value,
    kind: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let st = root.entry("status").or_insert_with(|| json!({}));
    let Some(st) = st.as_object_mut() else { return };
    let conds = st.entry("conditions").or_insert_with(|| json!([]));
    let Some(conds) = conds.as_array_mut() else {
        return;
    };
    let mut cond =
        json!({"type": kind, "status": status, "lastTransitionTime": object::now_rfc3339()});
    if let Some(r) = reason {
        cond["reason"] = r.into();
    }
    if let Some(m) = message {
        cond["message"] = m.into();
    }
    match conds
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
    {
        Some(c) => *c = cond,
        None => conds.push(cond),
    }
}

/// The autoscaling/v1 Scale of a Deployment/ReplicaSet-like object.
fn scale_of(obj: &Value) -> Value {
    let meta = object::metadata(obj).cloned().unwrap_or_default();
    let mut scale_meta = Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(k) {
            scale_meta.insert(k.into(), v.clone());
        }
    }
    let selector = obj
        .pointer("/spec/selector")
        .map(selector_string)
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// A LabelSelector object in the string syntax (`app=web,tier in (a,b)`).
fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

/// A PATCH body, parsed by media type.
pub enum Patch {
    Json(json_patch::Patch),
    Merge(Value),
    /// Kubernetes' strategic merge patch (skiff-api's `strategic_merge`).
    Strategic(Value),
}

impl Patch {
    pub fn parse(media_type: &str, body: &[u8]) -> Result<Self, ApiError> {
        match media_type {
            "application/json-patch+json" => serde_json::from_slice(body)
                .map(Patch::Json)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}"))),
            "application/merge-patch+json" => serde_json::from_slice(body)
                .map(Patch::Merge)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON merge patch: {e}"))),
            "application/strategic-merge-patch+json" => serde_json::from_slice(body)
                .map(Patch::Strategic)
                .map_err(|e| ApiError::bad_request(format!("invalid strategic merge patch: {e}"))),
            "application/apply-patch+yaml" => Err(ApiError::unsupported_media_type(
                "server-side apply is not supported: use client-side apply (kubectl apply without --server-side)",
            )),
            other => Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"
            ))),
        }
    }

    /// Applies the patch to `current`, an object of `r` (`None`: a subresource kind such
    /// as Scale, which has no merge strategies: strategic patches merge plainly).
    pub fn apply(&self, r: Option<Resource>, current: &Value) -> Result<Value, ApiError> {
        let mut doc = current.clone();
        match self {
            Patch::Strategic(p) => match r {
                Some(r) => {
                    doc = skiff_api::strategic_merge::apply(r, current, p)
                        .map_err(admission::api_error)?;
                }
                None => json_patch::merge(&mut doc, p),
            },
            Patch::Json(p) => json_patch::patch(&mut doc, p).map_err(|e| {
                ApiError::invalid(
                    "Patch",
                    "",
                    object::name(current).unwrap_or(""),
                    vec![Cause {
                        reason: "FieldValueInvalid".into(),
                        message: format!("the JSON patch could not be applied: {e}"),
                        field: String::new(),
                    }],
                )
            })?,
            Patch::Merge(m) => json_patch::merge(&mut doc, m),
        }
        if !doc.is_object() {
            return Err(ApiError::bad_request("the patch did not produce an object"));
        }
        Ok(doc)
    }
}

/// A DELETE body (`DeleteOptions`) merged with its query parameters.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation_policy: Option<PropagationPolicy>,
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<Revision>,
}

impl DeleteOptions {
    pub fn parse(body: &[u8], media_type: &str) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let v = crate::body::decode_object(body, media_type)?;
        let mut o = Self::default();
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            o.propagation_policy = Some(PropagationPolicy::parse(p)?);
        }
        if v.get("orphanDependents").and_then(Value::as_bool) == Some(true)
            && o.propagation_policy.is_none()
        {
            o.propagation_policy = Some(PropagationPolicy::Orphan);
        }
        o.grace_period_seconds = v.get("gracePeriodSeconds").and_then(Value::as_i64);
        o.precondition_uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(rv) = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
        {
            o.precondition_resource_version = Some(parse_rv(rv)?);
        }
        Ok(o)
    }
}

/// A list's continue token: the revision of the first page and the key to resume at.
struct Continue {
    revision: Revision,
    key: String,
}

impl Continue {
    fn encode(&self) -> String {
        let raw = json!({"rv": self.revision, "start": self.key}).to_string();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    fn decode(token: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::bad_request(format!(
                "continue: Invalid value: {token:?}: not a continue token issued by this server"
            ))
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| bad())?;
        let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
        Ok(Continue {
            revision: v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?,
            key: v
                .get("start")
                .and_then(Value::as_str)
                .ok_or_else(bad)?
                .to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn selector_strings() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "x", "operator": "DoesNotExist"}
        ]});
        assert_eq!(selector_string(&sel), "app=web,tier in (a,b),!x");
    }

    #[test]
    fn continue_round_trip_and_garbage() {
        let c = Continue {
            revision: 42,
            key: "/registry/core/pods/a/b\0".into(),
        };
        let d = Continue::decode(&c.encode()).unwrap();
        assert_eq!(
            (d.revision, d.key.as_str()),
            (42, "/registry/core/pods/a/b\0")
        );
        assert_eq!(
            Continue::decode("!!").err().unwrap().code,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn patch_media_types() {
        assert!(matches!(
            Patch::parse("application/merge-patch+json", b"{}"),
            Ok(Patch::Merge(_))
        ));
        assert!(matches!(
            Patch::parse("application/json-patch+json", b"[]"),
            Ok(Patch::Json(_))
        ));
        assert!(matches!(
            Patch::parse("application/strategic-merge-patch+json", b"{}"),
            Ok(Patch::Strategic(_))
        ));
        for mt in ["application/apply-patch+yaml", "text/plain"] {
            assert_eq!(
                Patch::parse(mt, b"{}").err().unwrap().code,
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            );
        }
    }

    #[test]
    fn conditions_replace_by_type() {
        let mut pod = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        set_condition(&mut pod, "Ready", "True", None, None);
        set_condition(&mut pod, "PodScheduled", "True", None, None);
        let conds = pod
            .pointer("/status/conditions")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[0]["status"], "True");
    }
}
