//! Watch over HTTP: newline-delimited `{"type": …, "object": …}` events, streamed.
//!
//! Where the events come from:
//! - the watch cache, when the requested revision is inside its window (the usual case);
//! - a direct store watch, when the client resumes from an older revision the store
//!   still keeps (below the store's history: 410 Gone).
//!
//! With no resourceVersion (or "0") the watch starts with an ADDED event for every
//! object that exists; `sendInitialEvents=true` ends that with a BOOKMARK annotated
//! `k8s.io/initial-events-end`. Label and field selectors turn transitions into
//! ADDED/DELETED the way Kubernetes does: an object that starts matching is ADDED,
//! one that stops matching is DELETED.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use skiff_store::{EventKind, KeyRange, Revision, WatchStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::body::Body;
use crate::cache::{self, CacheEvent, CacheWatcher, EventType};
use crate::error::ApiError;
use crate::filter::Filter;
use crate::handler::Api;
use crate::object;
use crate::query::Query;
use crate::resources::{self, Resource};

/// Watch settings from the server's configuration.
#[derive(Debug, Clone, Copy)]
pub struct WatchConfig {
    pub bookmark_interval: Duration,
    /// Used when the client gives no timeoutSeconds.
    pub default_timeout: Duration,
    /// JSON objects, or one-row Tables (kubectl get -w).
    pub format: crate::table::Format,
}

enum Source {
    Cache(CacheWatcher),
    Store(WatchStream),
}

struct State {
    r: Resource,
    source: Source,
    filter: Filter,
    pending: VecDeque<Bytes>,
    deadline: Instant,
    bookmarks: Option<tokio::time::Interval>,
    revision: Revision,
    cancel: CancellationToken,
    done: bool,
    encoder: Encoder,
}

/// Turns events into lines, as JSON objects or as one-row Tables (column definitions
/// only in the first, as Kubernetes does).
struct Encoder {
    r: Resource,
    table: Option<(&'static str, crate::table::IncludeObject)>,
    columns_sent: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, object: &Value) -> Bytes {
        match self.table {
            Some((version, include)) if kind != "BOOKMARK" && kind != "ERROR" => {
                let t = crate::table::table(
                    self.r,
                    &[object],
                    object::resource_version(object),
                    None,
                    include,
                    version,
                    !self.columns_sent,
                );
                self.columns_sent = true;
                encode(kind, &t)
            }
            _ => encode(kind, object),
        }
    }
}

/// Starts a watch; errors known before streaming (bad selectors, 410) are returned as
/// plain error responses.
pub async fn start(
    api: &Arc<Api>,
    r: Resource,
    ns: Option<&str>,
    name: Option<&str>,
    q: &Query,
    config: WatchConfig,
    cancel: CancellationToken,
) -> Result<Response<Body>, ApiError> {
    let mut filter = Filter::parse(r, q.label_selector.as_deref(), q.field_selector.as_deref())?;
    if let Some(name) = name {
        filter = filter.with_name(name);
    }
    let prefix = resources::prefix(r, ns)?;
    let initial_wanted = match q.send_initial_events {
        Some(v) => v,
        None => matches!(q.resource_version.as_deref(), None | Some("0")),
    };
    let mut pending = VecDeque::new();
    let mut encoder = Encoder {
        r,
        table: match config.format {
            crate::table::Format::Table(v) => Some((v, q.include_object)),
            crate::table::Format::Json => None,
        },
        columns_sent: false,
    };

    let (source, revision) = if initial_wanted {
        // The state now, as ADDED events, then changes after it.
        if q.send_initial_events == Some(true) {
            if let Some(rv) = q.resource_version.as_deref().filter(|rv| *rv != "0") {
                let rev = object::parse_resource_version(rv).ok_or_else(|| {
                    ApiError::bad_request(format!("resourceVersion: Invalid value: {rv:?}"))
                })?;
                api.cache.wait_for(rev, api.consistent_read_timeout).await?;
            } else {
                let current = api.store.status().await?.revision;
                api.cache
                    .wait_for(current, api.consistent_read_timeout)
                    .await?;
            }
        }
        let (objects, revision) = api.cache.list(&prefix);
        for o in objects {
            if filter.matches(&o.object) {
                pending.push_back(encoder.event("ADDED", &o.object));
            }
        }
        if q.send_initial_events == Some(true) {
            pending.push_back(encoder.event("BOOKMARK", &bookmark(r, revision, true)));
        }
        let watcher = api
            .cache
            .watch(&prefix, revision)
            .map_err(|_| ApiError::internal("the watch cache moved past its own list"))?;
        (Source::Cache(watcher), revision)
    } else {
        let rv = q.resource_version.as_deref().unwrap_or("0");
        let from = object::parse_resource_version(rv).ok_or_else(|| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {rv:?}: must be a non-negative integer"
            ))
        })?;
        match api.cache.watch(&prefix, from) {
            Ok(w) => (Source::Cache(w), from),
            Err(_) => {
                // Older than the cache's window: the store may still have it.
                let stream = api
                    .store
                    .watch(KeyRange::prefix(prefix.as_bytes()), from + 1)
                    .await
                    .map_err(|e| match e {
                        skiff_store::Error::Compacted {
                            compact_revision, ..
                        } => ApiError::gone(format!(
                            "too old resource version: {from} ({compact_revision})"
                        )),
                        other => other.into(),
                    })?;
                (Source::Store(stream), from)
            }
        }
    };

    let timeout = q.timeout.unwrap_or(config.default_timeout);
    let bookmarks = q.allow_watch_bookmarks.then(|| {
        let mut i = tokio::time::interval_at(
            Instant::now() + config.bookmark_interval,
            config.bookmark_interval,
        );
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let state = State {
        r,
        source,
        filter,
        pending,
        deadline: Instant::now() + timeout,
        bookmarks,
        revision,
        cancel,
        done: false,
        encoder,
    };
    let stream = futures::stream::unfold(state, next_frame);
    let body = StreamBody::new(stream).boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

async fn next_frame(mut st: State) -> Option<(Result<Frame<Bytes>, Infallible>, State)> {
    loop {
        if let Some(b) = st.pending.pop_front() {
            return Some((Ok(Frame::data(b)), st));
        }
        if st.done {
            return None;
        }
        let bookmark_tick = async {
            match st.bookmarks.as_mut() {
                Some(i) => {
                    i.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = st.cancel.cancelled() => st.done = true,
            _ = tokio::time::sleep_until(st.deadline) => st.done = true,
            _ = bookmark_tick => {
                let rev = match &st.source {
                    Source::Cache(w) => w.revision(),
                    Source::Store(_) => st.revision,
                };
                st.revision = st.revision.max(rev);
                let b = bookmark(st.r, st.revision, false);
                let line = st.encoder.event("BOOKMARK", &b);
                st.pending.push_back(line);
            }
            batch = next_events(&mut st.source) => match batch {
                Ok(Some((events, rev))) => {
                    st.revision = st.revision.max(rev);
                    for ev in events {
                        if let Some((kind, obj)) = transition(&st.filter, &ev) {
                            let line = st.encoder.event(kind, &obj);
                            st.pending.push_back(line);
                        }
                    }
                }
                Ok(None) => st.done = true,
                Err(status) => {
                    let line = st.encoder.event("ERROR", &status);
                    st.pending.push_back(line);
                    st.done = true;
                }
            },
        }
    }
}

/// The next batch of events and the revision they bring the watcher to.
async fn next_events(source: &mut Source) -> Result<Option<(Vec<CacheEvent>, Revision)>, Value> {
    match source {
        Source::Cache(w) => match w.next().await {
            Ok(Some(events)) => Ok(Some((events, w.revision()))),
            Ok(None) => Ok(None),
            Err(too_old) => Err(ApiError::gone(format!(
                "too old resource version: {} ({})",
                w.revision(),
                too_old.window_start
            ))
            .to_status()),
        },
        Source::Store(stream) => match stream.next().await {
            None => Ok(None),
            Some(Ok(resp)) => {
                let events = resp
                    .events
                    .into_iter()
                    .filter_map(|ev| store_event(resp.revision, ev))
                    .collect();
                Ok(Some((events, resp.revision)))
            }
            Some(Err(skiff_store::Error::Closed)) => Ok(None),
            Some(Err(e)) => Err(ApiError::from(e).to_status()),
        },
    }
}

fn store_event(revision: Revision, ev: skiff_store::Event) -> Option<CacheEvent> {
    let key = String::from_utf8_lossy(&ev.kv.key).into_owned();
    let prev = ev
        .prev_kv
        .as_ref()
        .and_then(|kv| cache::decode(kv, kv.mod_revision));
    match ev.kind {
        EventKind::Put => Some(CacheEvent {
            revision,
            key,
            kind: if prev.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            object: cache::decode(&ev.kv, ev.kv.mod_revision)?,
            prev,
        }),
        EventKind::Delete => {
            let last = ev
                .prev_kv
                .as_ref()
                .and_then(|kv| cache::decode(kv, revision))?;
            Some(CacheEvent {
                revision,
                key,
                kind: EventType::Deleted,
                object: last,
                prev,
            })
        }
    }
}

/// What a filtered watcher sees of one event.
fn transition(filter: &Filter, ev: &CacheEvent) -> Option<(&'static str, Arc<Value>)> {
    let now = filter.matches(&ev.object);
    let before = ev.prev.as_ref().is_some_and(|p| filter.matches(p));
    match ev.kind {
        EventType::Added => now.then(|| ("ADDED", ev.object.clone())),
        EventType::Modified => match (before, now) {
            (true, true) => Some(("MODIFIED", ev.object.clone())),
            (false, true) => Some(("ADDED", ev.object.clone())),
            (true, false) => Some(("DELETED", ev.object.clone())),
            (false, false) => None,
        },
        EventType::Deleted => (now || before).then(|| ("DELETED", ev.object.clone())),
    }
}

fn bookmark(r: Resource, revision: Revision, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({
        "kind": r.kind,
        "apiVersion": resources::api_version(r),
        "metadata": meta,
    })
}

/// One event line, `{"type":…,"object":…}`, written without copying the object.
fn encode(kind: &str, object: &Value) -> Bytes {
    let mut line = Vec::with_capacity(256);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    if serde_json::to_writer(&mut line, object).is_err() {
        line.truncate(0);
        line.extend_from_slice(b"{\"type\":\"ERROR\",\"object\":{}");
    }
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}
