//! The status writer: derives each pod's status from its worker's state
//! ([`super::status::derive`]) and writes it through the status subresource when it
//! differs from what was last written — level-triggered and coalesced: any number of
//! state changes between two passes make one write, and a periodic pass retries what
//! failed (the API was unreachable) and re-posts after a reconnect.
//!
//! Writes are compare-and-swap `PUT …/status` of the latest object known (the informer's
//! or the answer to the previous write), with the agent's fields [`super::status::merge`]d
//! over the API's status; on a conflict the pod is read again and the write retried.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use serde_json::Value;
use skiff_api::k8s_openapi::api::core::v1::PodStatus;
use skiff_api::registry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::error::{AgentError, AgentResult, call};
use super::status;
use super::worker::PodHandle;

/// Conflicts in a row before a write waits for the next pass.
const MAX_CONFLICTS: usize = 4;

#[derive(Default)]
pub(crate) struct StatusWriter {
    dirty: Mutex<BTreeSet<String>>,
    notify: Notify,
    written: Mutex<HashMap<String, PodStatus>>,
    /// One write at a time (the periodic pass and a worker's final write).
    writing: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl StatusWriter {
    /// The pod's state changed: derive and write its status soon.
    pub fn mark(&self, uid: &str) {
        lock(&self.dirty).insert(uid.to_string());
        self.notify.notify_one();
    }

    /// Every pod, on the next pass.
    pub fn mark_all(&self, uids: impl IntoIterator<Item = String>) {
        lock(&self.dirty).extend(uids);
        self.notify.notify_one();
    }

    /// The pod is gone: forget what was written for it.
    pub fn forget(&self, uid: &str) {
        lock(&self.written).remove(uid);
        lock(&self.dirty).remove(uid);
    }

    /// Writes the pod's status now (best effort): a worker's last word before deletion.
    pub async fn sync_now(&self, shared: &Shared, h: &PodHandle) {
        if let Err(e) = self.sync(shared, h).await {
            tracing::debug!(pod = %h.key(), error = %e, "cannot write the final status");
        }
    }

    /// Until cancelled: a pass whenever a pod is marked, and every `resync_interval`.
    pub async fn run(self: Arc<Self>, shared: Arc<Shared>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(shared.config.resync_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.notify.notified() => {}
                _ = tick.tick() => self.mark_all(shared.pod_uids()),
            }
            let batch = std::mem::take(&mut *lock(&self.dirty));
            let mut rest = batch.into_iter();
            while let Some(uid) = rest.next() {
                if cancel.is_cancelled() {
                    return;
                }
                let Some(h) = shared.pod(&uid) else { continue };
                match self.sync(&shared, &h).await {
                    Ok(()) => {}
                    Err(e) if e.is_conflict() => {
                        tracing::debug!(pod = %h.key(), "status write conflicted; next pass");
                    }
                    Err(e) if e.is_unreachable() => {
                        // The API is down: the others would wait as long; next pass.
                        tracing::debug!(error = %e, "API unreachable; status writes wait");
                        let mut dirty = lock(&self.dirty);
                        dirty.insert(uid);
                        dirty.extend(rest);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(pod = %h.key(), error = %e, "cannot write the status; next pass");
                    }
                }
            }
        }
    }

    async fn sync(&self, shared: &Shared, h: &PodHandle) -> AgentResult<()> {
        let _one = self.writing.lock().await;
        let desired = h.desired();
        let state = h.snapshot();
        let last = lock(&self.written).get(&h.uid).cloned();
        let previous = last.clone().or_else(|| desired.pod.status.clone());
        let ours = status::derive(
            desired.spec(),
            &state,
            &shared.host_ip,
            previous.as_ref(),
            Timestamp::now(),
        );
        if last.as_ref() == Some(&ours) {
            return Ok(());
        }
        let mut current: Arc<Value> = desired.raw.clone();
        for _ in 0..MAX_CONFLICTS {
            let mut object = (*current).clone();
            let merged = status::merge(current.get("status"), &ours);
            if let Some(o) = object.as_object_mut() {
                o.insert("status".into(), merged);
            }
            if object == *current {
                lock(&self.written).insert(h.uid.clone(), ours);
                return Ok(());
            }
            let result = call(
                format!("writing the status of pod {}", h.key()),
                shared.config.api_timeout,
                shared
                    .client
                    .replace_status(&registry::POD, Some(&h.namespace), &h.name, &object),
            )
            .await;
            match result {
                Ok(written) => {
                    lock(&self.written).insert(h.uid.clone(), ours);
                    h.observe(Arc::new(written));
                    return Ok(());
                }
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) if e.is_conflict() => {
                    let fresh = call(
                        format!("reading pod {}", h.key()),
                        shared.config.api_timeout,
                        shared
                            .client
                            .get_opt(&registry::POD, Some(&h.namespace), &h.name),
                    )
                    .await?;
                    let Some(fresh) = fresh else { return Ok(()) };
                    if fresh.pointer("/metadata/uid").and_then(Value::as_str)
                        != Some(h.uid.as_str())
                    {
                        return Ok(());
                    }
                    let fresh = Arc::new(fresh);
                    h.observe(fresh.clone());
                    current = fresh;
                }
                Err(e) => return Err(e),
            }
        }
        Err(AgentError::Invalid(format!(
            "the status of pod {} kept conflicting",
            h.key()
        )))
    }
}
