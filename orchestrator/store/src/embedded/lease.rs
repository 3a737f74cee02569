//! Lease deadlines, kept in memory (only the TTL is persisted), and the task that
//! expires them.
//!
//! A keepalive only moves a deadline, so it never waits for the writer. Expiry takes the
//! lease out of the deadline table first (so a late keepalive finds it gone) and then
//! asks the writer to revoke it, which deletes the attached keys with delete events.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::writer::Request;
use crate::{Error, LeaseId, Result};

/// When each granted lease expires.
#[derive(Default)]
pub(super) struct LeaseClock {
    deadlines: Mutex<HashMap<i64, Deadline>>,
    changed: Notify,
}

#[derive(Clone, Copy)]
struct Deadline {
    at: Instant,
    ttl: i64,
}

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}

impl LeaseClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Deadline>> {
        // A panic while holding this short lock leaves a consistent map: recover it.
        self.deadlines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts (or restarts) a lease's countdown from now.
    pub fn start(&self, id: i64, ttl: i64) {
        let at = Instant::now() + ttl_duration(ttl);
        self.lock().insert(id, Deadline { at, ttl });
        self.changed.notify_one();
    }

    /// Starts a lease's countdown unless it runs already.
    pub fn ensure(&self, id: i64, ttl: i64) {
        let at = Instant::now() + ttl_duration(ttl);
        self.lock().entry(id).or_insert(Deadline { at, ttl });
        self.changed.notify_one();
    }

    pub fn remove(&self, id: i64) {
        self.lock().remove(&id);
    }

    /// Renews a lease; returns its TTL.
    pub fn keep_alive(&self, lease: LeaseId) -> Result<i64> {
        let mut deadlines = self.lock();
        let deadline = deadlines
            .get_mut(&lease.0)
            .ok_or(Error::LeaseNotFound(lease))?;
        deadline.at = Instant::now() + ttl_duration(deadline.ttl);
        Ok(deadline.ttl)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.lock().values().map(|d| d.at).min()
    }

    /// Removes and returns the leases whose deadline has passed.
    fn take_expired(&self, now: Instant) -> Vec<i64> {
        let mut deadlines = self.lock();
        let expired: Vec<i64> = deadlines
            .iter()
            .filter(|(_, d)| d.at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            deadlines.remove(id);
        }
        expired
    }
}

/// Expires leases until `cancel` fires: sleeps until the earliest deadline (or until a
/// lease is granted or renewed), then hands the expired ones to the writer.
pub(super) async fn run_expiry(
    clock: std::sync::Arc<LeaseClock>,
    requests: mpsc::Sender<Request>,
    cancel: CancellationToken,
) {
    // With no lease, wake up now and then anyway; the wait costs nothing.
    const IDLE: Duration = Duration::from_secs(3600);
    loop {
        let wake = clock
            .next_deadline()
            .unwrap_or_else(|| Instant::now() + IDLE);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = clock.changed.notified() => continue,
            () = tokio::time::sleep_until(wake) => {}
        }
        for id in clock.take_expired(Instant::now()) {
            let send = requests.send(Request::LeaseExpired { lease: LeaseId(id) });
            tokio::select! {
                () = cancel.cancelled() => return,
                sent = send => if sent.is_err() { return },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keepalive_moves_the_deadline_and_expiry_takes_the_lease() {
        let clock = LeaseClock::default();
        clock.start(7, 10);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(clock.keep_alive(LeaseId(7)).ok(), Some(10));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(clock.take_expired(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(clock.take_expired(Instant::now()), vec![7]);
        assert!(matches!(
            clock.keep_alive(LeaseId(7)),
            Err(Error::LeaseNotFound(LeaseId(7)))
        ));
    }
}
