//! The node's heartbeat: the coordination.k8s.io/v1 Lease `kube-node-lease/<node>`,
//! renewed every `lease_duration / 4` with compare-and-swap (a conflict re-reads it), as
//! the kubelet does. The namespace is created when missing.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};
use skiff_api::registry;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::backoff::Backoff;
use super::error::{AgentResult, call};

/// The namespace of node leases.
pub const NAMESPACE: &str = "kube-node-lease";

/// `MicroTime`: `2026-01-02T03:04:05.000000Z`.
pub fn micro_time(t: Timestamp) -> String {
    format!("{}", t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

/// A new Lease for the node.
pub fn lease_object(node: &str, duration: Duration, now: Timestamp) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": NAMESPACE},
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": duration_seconds(duration),
            "renewTime": micro_time(now),
        },
    })
}

fn duration_seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX).max(1)
}

/// The lease renewed at `now` by `node` (keeping its resourceVersion: a CAS write).
pub fn renewed(lease: &Value, node: &str, duration: Duration, now: Timestamp) -> Value {
    let mut lease = lease.clone();
    if let Some(o) = lease.as_object_mut() {
        let spec = o.entry("spec").or_insert_with(|| json!({}));
        if let Some(spec) = spec.as_object_mut() {
            spec.insert("holderIdentity".into(), node.into());
            spec.insert(
                "leaseDurationSeconds".into(),
                duration_seconds(duration).into(),
            );
            spec.insert("renewTime".into(), micro_time(now).into());
        }
    }
    lease
}

async fn ensure_namespace(shared: &Shared) -> AgentResult<()> {
    let config = &shared.config;
    let existing = call(
        format!("reading namespace {NAMESPACE}"),
        config.api_timeout,
        shared.client.get_opt(&registry::NAMESPACE, None, NAMESPACE),
    )
    .await?;
    if existing.is_some() {
        return Ok(());
    }
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    match call(
        format!("creating namespace {NAMESPACE}"),
        config.api_timeout,
        shared.client.create(&registry::NAMESPACE, None, &ns),
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => Err(e),
    }
}

/// One renewal: from the lease last written (or read), re-reading on a conflict.
async fn renew(shared: &Shared, cached: &mut Option<Value>) -> AgentResult<()> {
    let config = &shared.config;
    let node = &config.node_name;
    for _ in 0..4 {
        let now = Timestamp::now();
        let result = match cached.as_ref() {
            Some(lease) => {
                call(
                    format!("renewing lease {NAMESPACE}/{node}"),
                    config.api_timeout,
                    shared.client.replace(
                        &registry::LEASE,
                        Some(NAMESPACE),
                        node,
                        &renewed(lease, node, config.lease_duration, now),
                    ),
                )
                .await
            }
            None => {
                call(
                    format!("creating lease {NAMESPACE}/{node}"),
                    config.api_timeout,
                    shared.client.create(
                        &registry::LEASE,
                        Some(NAMESPACE),
                        &lease_object(node, config.lease_duration, now),
                    ),
                )
                .await
            }
        };
        match result {
            Ok(lease) => {
                *cached = Some(lease);
                return Ok(());
            }
            Err(e) if e.is_conflict() || e.is_already_exists() || e.is_not_found() => {
                if e.is_not_found() && cached.is_none() {
                    // The namespace is missing.
                    ensure_namespace(shared).await?;
                }
                *cached = call(
                    format!("reading lease {NAMESPACE}/{node}"),
                    config.api_timeout,
                    shared
                        .client
                        .get_opt(&registry::LEASE, Some(NAMESPACE), node),
                )
                .await?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(super::error::AgentError::Invalid(format!(
        "renewing lease {NAMESPACE}/{node} kept conflicting"
    )))
}

/// Renews the node's lease every `lease_duration / 4` until cancelled.
pub(crate) async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    let interval = (shared.config.lease_duration / 4).max(Duration::from_millis(10));
    let mut backoff = Backoff::new(shared.config.api_backoff());
    let mut cached: Option<Value> = None;
    let mut failing = false;
    loop {
        let wait = match renew(&shared, &mut cached).await {
            Ok(()) => {
                if failing {
                    tracing::info!(node = %shared.config.node_name, "node lease renewed again");
                }
                failing = false;
                backoff.reset();
                interval
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(node = %shared.config.node_name, error = %e, "cannot renew the node lease; retrying");
                }
                failing = true;
                backoff.next_delay(Duration::ZERO).min(interval)
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_objects() {
        let t = Timestamp::from_second(1_767_323_045).unwrap();
        assert_eq!(micro_time(t), "2026-01-02T03:04:05.000000Z");
        let lease = lease_object("n1", Duration::from_secs(40), t);
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(lease["spec"]["holderIdentity"], "n1");
        let mut stored = lease.clone();
        stored["metadata"]["resourceVersion"] = json!("7");
        let later = Timestamp::from_second(1_767_323_055).unwrap();
        let r = renewed(&stored, "n1", Duration::from_secs(40), later);
        assert_eq!(r["metadata"]["resourceVersion"], "7", "a CAS write");
        assert_eq!(r["spec"]["renewTime"], "2026-01-02T03:04:15.000000Z");
    }
}
