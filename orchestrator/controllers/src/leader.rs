//! Leader election through a coordination.k8s.io/v1 Lease, as client-go does it: with
//! several `skiff server`s on one etcd, exactly one runs the scheduler and controllers.
//!
//! ```text
//!  follower ──(Lease absent, or its record unchanged for leaseDuration)── CAS write ──▶ leader
//!  leader   ──renew (CAS) every retryPeriod──▶ leader
//!  leader   ──no successful renew within renewDeadline──▶ stops its work ──▶ follower
//! ```
//!
//! Expiry is judged by the local clock only: a follower remembers when it first saw the
//! current record (its resourceVersion) and takes over once that record has stood
//! unchanged for leaseDuration. Clocks of different machines are never compared.

use std::future::Future;
use std::time::Duration;

use serde_json::{Value, json};
use skiff_api::registry;
use skiff_client::Client;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::Result;

/// Kubernetes' defaults for kube-controller-manager's election.
#[derive(Clone, Debug)]
pub struct LeaderElectionConfig {
    pub namespace: String,
    pub name: String,
    /// Who we are (unique per process): `hostname_<random>`.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    pub fn new(identity: impl Into<String>) -> Self {
        LeaderElectionConfig {
            namespace: "kube-system".into(),
            name: "skiff-controller-manager".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Runs `lead` whenever this process holds the Lease, until `cancel`. `lead` gets a
/// token that is cancelled when leadership is lost; the election waits for it to return
/// before competing again.
pub async fn run_elected<F, Fut>(
    client: Client,
    config: LeaderElectionConfig,
    cancel: CancellationToken,
    mut lead: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut elector = Elector {
        client,
        config,
        observed: None,
    };
    loop {
        // Follower: try to acquire every retry period.
        loop {
            match elector.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) if e.is_conflict() => {}
                Err(e) => tracing::debug!(error = %e, "leader election: cannot reach the Lease"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(elector.config.retry_period) => {}
            }
        }
        tracing::info!(identity = %elector.config.identity, "became leader");
        let term = cancel.child_token();
        let work = lead(term.clone());
        tokio::pin!(work);
        let mut last_renew = Instant::now();
        let mut work_done = false;
        loop {
            tokio::select! {
                _ = &mut work, if !work_done => { work_done = true; }
                _ = tokio::time::sleep(elector.config.retry_period) => {}
            }
            if cancel.is_cancelled() || work_done {
                break;
            }
            match elector.try_acquire_or_renew().await {
                Ok(true) => last_renew = Instant::now(),
                Ok(false) => {
                    tracing::warn!("leader election: another process holds the Lease");
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "leader election: renew failed");
                    if last_renew.elapsed() >= elector.config.renew_deadline {
                        tracing::warn!("leader election: could not renew within the deadline");
                        break;
                    }
                }
            }
        }
        term.cancel();
        if !work_done {
            work.await;
        }
        if cancel.is_cancelled() {
            elector.release().await;
            return;
        }
        tracing::info!(identity = %elector.config.identity, "lost leadership");
        elector.observed = None;
    }
}

struct Elector {
    client: Client,
    config: LeaderElectionConfig,
    /// The Lease record we last saw (resourceVersion) and when we first saw it.
    observed: Option<(String, Instant)>,
}

fn micro_time() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

impl Elector {
    /// Takes or renews the Lease; `Ok(false)` when another holder's record is current.
    async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let c = &self.config;
        let now = micro_time();
        let existing = self
            .client
            .get_opt(&registry::LEASE, Some(&c.namespace), &c.name)
            .await?;
        let Some(mut lease) = existing else {
            self.ensure_namespace().await?;
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": c.name, "namespace": c.namespace},
                "spec": {
                    "holderIdentity": c.identity,
                    "leaseDurationSeconds": c.lease_duration.as_secs(),
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": 0,
                },
            });
            match self
                .client
                .create(&registry::LEASE, Some(&c.namespace), &lease)
                .await
            {
                Ok(_) => return Ok(true),
                Err(e) if e.api().is_some_and(|a| a.is_already_exists()) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        };
        let rv = lease
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let spec = lease.get("spec").cloned().unwrap_or_default();
        let holder = spec
            .get("holderIdentity")
            .and_then(Value::as_str)
            .unwrap_or("");
        let ours = holder == c.identity;
        if !ours && !holder.is_empty() {
            // Someone else's: ours only once their record has stood still long enough.
            let first_seen = match &self.observed {
                Some((seen_rv, at)) if *seen_rv == rv => *at,
                _ => {
                    self.observed = Some((rv.clone(), Instant::now()));
                    return Ok(false);
                }
            };
            let duration = spec
                .get("leaseDurationSeconds")
                .and_then(Value::as_u64)
                .map(Duration::from_secs)
                .unwrap_or(c.lease_duration);
            if first_seen.elapsed() < duration {
                return Ok(false);
            }
        }
        let transitions = spec
            .get("leaseTransitions")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let mut new_spec = json!({
            "holderIdentity": c.identity,
            "leaseDurationSeconds": c.lease_duration.as_secs(),
            "renewTime": now,
            "leaseTransitions": if ours { transitions } else { transitions + 1 },
        });
        new_spec["acquireTime"] = if ours {
            spec.get("acquireTime").cloned().unwrap_or(json!(now))
        } else {
            json!(now)
        };
        lease["spec"] = new_spec;
        // CAS on the resourceVersion we read.
        let written = self
            .client
            .replace(&registry::LEASE, Some(&c.namespace), &c.name, &lease)
            .await?;
        if let Some(rv) = written
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            self.observed = Some((rv.to_string(), Instant::now()));
        }
        Ok(true)
    }

    /// At shutdown: give the Lease up so a peer takes over at once.
    async fn release(&self) {
        let c = &self.config;
        let Ok(Some(mut lease)) = self
            .client
            .get_opt(&registry::LEASE, Some(&c.namespace), &c.name)
            .await
        else {
            return;
        };
        if lease
            .pointer("/spec/holderIdentity")
            .and_then(Value::as_str)
            != Some(&c.identity)
        {
            return;
        }
        lease["spec"]["holderIdentity"] = json!("");
        lease["spec"]["leaseDurationSeconds"] = json!(1);
        if let Err(e) = self
            .client
            .replace(&registry::LEASE, Some(&c.namespace), &c.name, &lease)
            .await
        {
            tracing::debug!(error = %e, "leader election: release failed");
        }
    }

    async fn ensure_namespace(&self) -> Result<()> {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": self.config.namespace}});
        match self.client.create(&registry::NAMESPACE, None, &ns).await {
            Ok(_) => Ok(()),
            Err(e) if e.api().is_some_and(|a| a.is_already_exists()) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
