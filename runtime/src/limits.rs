//! Per-pod limits, enforced inside the process.
//!
//! - Memory: one [`MemoryBudget`] per pod, charged by every linear memory of every
//!   instance of the pod through an [`InstanceLimiter`] (wasmtime's own per-memory limit
//!   is not a pod total). A growth past the budget fails (`memory.grow` returns -1) and
//!   marks the pod as having hit its limit: a guest that then dies is `OOMKilled`.
//! - CPU: a [`CpuQuota`] per pod, as the Linux CFS quota Kubernetes uses: the pod's
//!   instances together run at most `millicores/1000 × period` in each `period` (100 ms).
//!   It is charged from the epoch deadline callback, which fires once per epoch tick while
//!   a guest runs. Over the quota, the callback yields with a sleep until the period ends;
//!   under it, it yields anyway (a time slice), so a spinning guest never holds a worker
//!   thread for longer than one tick — neighbours keep running and nothing gets killed.
//! - Deadlines and the kill switch are checked in the same callback ([`Stop`]), so they
//!   stop a guest that never calls the host; the caller also races them with the call
//!   future for guests blocked in host calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmtime::UpdateDeadline;

/// The Kubernetes CFS period.
pub const CPU_PERIOD: Duration = Duration::from_millis(100);

/// A pod's limits, from `resources.limits` (summed over its containers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodLimits {
    /// Bytes over all the pod's linear memories; `None` = the node's cap only.
    pub memory_bytes: Option<u64>,
    /// Millicores; `None` = unthrottled (still time-sliced).
    pub cpu_millis: Option<u64>,
}

impl PodLimits {
    /// Limits from Kubernetes quantities (`64Mi`, `500m`).
    pub fn from_quantities(memory: Option<&str>, cpu: Option<&str>) -> Result<PodLimits, String> {
        let parse = |what: &str, q: &str| {
            skiff_api::Quantity::parse(q).map_err(|e| format!("{what} limit {q:?}: {e}"))
        };
        let memory_bytes = match memory {
            Some(q) => {
                let q = parse("memory", q)?;
                Some(u64::try_from(q.value()).map_err(|_| "memory limit below zero".to_string())?)
            }
            None => None,
        };
        let cpu_millis = match cpu {
            Some(q) => {
                let q = parse("cpu", q)?;
                let m = u64::try_from(q.milli_value())
                    .map_err(|_| "cpu limit below zero".to_string())?;
                if m == 0 {
                    return Err("cpu limit must be above zero".into());
                }
                Some(m)
            }
            None => None,
        };
        Ok(PodLimits {
            memory_bytes,
            cpu_millis,
        })
    }
}

/// One pod's memory budget, shared by all its instances.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: Option<u64>,
    used: AtomicU64,
    peak: AtomicU64,
    hit: AtomicBool,
}

impl MemoryBudget {
    pub fn new(limit: Option<u64>) -> MemoryBudget {
        MemoryBudget {
            limit,
            used: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            hit: AtomicBool::new(false),
        }
    }

    /// Charges `bytes`, or refuses (and remembers the refusal) past the limit.
    fn try_charge(&self, bytes: u64) -> bool {
        let result = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let next = used.checked_add(bytes)?;
                match self.limit {
                    Some(limit) if next > limit => None,
                    _ => Some(next),
                }
            });
        match result {
            Ok(prev) => {
                self.peak.fetch_max(prev + bytes, Ordering::AcqRel);
                true
            }
            Err(_) => {
                self.hit.store(true, Ordering::Release);
                false
            }
        }
    }

    fn release(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(bytes))
            });
    }

    /// Bytes of linear memory the pod holds now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The most the pod ever held at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire)
    }

    /// The limit, if any.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Whether a growth was ever refused.
    pub fn limit_hit(&self) -> bool {
        self.hit.load(Ordering::Acquire)
    }

    /// Forgets a refusal (a container restarts with a clean slate).
    pub fn reset_hit(&self) {
        self.hit.store(false, Ordering::Release);
    }
}

/// The `ResourceLimiter` of one instance (one `Store`): charges the pod's budget and gives
/// back what it charged when the store is dropped.
#[derive(Debug)]
pub struct InstanceLimiter {
    budget: Arc<MemoryBudget>,
    /// The node's cap on one memory (the pool's slot size): refused here, before wasmtime
    /// fails the growth, so that hitting it is an OOM kill too.
    max_memory: u64,
    charged: u64,
    hit: bool,
}

/// Tables are small; this only stops a runaway `table.grow`.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl InstanceLimiter {
    pub fn new(budget: Arc<MemoryBudget>, max_memory: u64) -> InstanceLimiter {
        InstanceLimiter {
            budget,
            max_memory,
            charged: 0,
            hit: false,
        }
    }

    /// Whether this instance was refused a growth.
    pub fn hit(&self) -> bool {
        self.hit
    }
}

impl wasmtime::ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let delta = u64::try_from(desired.saturating_sub(current)).unwrap_or(u64::MAX);
        if u64::try_from(desired).unwrap_or(u64::MAX) > self.max_memory {
            self.hit = true;
            return Ok(false);
        }
        if self.budget.try_charge(delta) {
            self.charged += delta;
            Ok(true)
        } else {
            self.hit = true;
            Ok(false)
        }
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The host could not provide memory it had agreed to: as out of memory as it gets.
        // What was charged for it stays charged until the instance goes (never under).
        self.hit = true;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

impl Drop for InstanceLimiter {
    fn drop(&mut self) {
        self.budget.release(self.charged);
    }
}

/// A pod's CPU quota: at most `quota` of guest time in each [`CPU_PERIOD`].
#[derive(Debug)]
pub struct CpuQuota {
    quota: Duration,
    period: std::sync::Mutex<Period>,
    throttled_periods: AtomicUsize,
    used_total_micros: AtomicU64,
}

#[derive(Debug)]
struct Period {
    start: Instant,
    used: Duration,
}

impl CpuQuota {
    /// A quota of `millis` millicores.
    pub fn new(millis: u64) -> CpuQuota {
        let quota = CPU_PERIOD.mul_f64(millis as f64 / 1000.0);
        CpuQuota {
            quota,
            period: std::sync::Mutex::new(Period {
                start: Instant::now(),
                used: Duration::ZERO,
            }),
            throttled_periods: AtomicUsize::new(0),
            used_total_micros: AtomicU64::new(0),
        }
    }

    /// Charges `used` at `now`; returns when to resume if the quota is spent.
    fn charge(&self, used: Duration, now: Instant) -> Option<Instant> {
        self.used_total_micros.fetch_add(
            u64::try_from(used.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let mut p = match self.period.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        if now >= p.start + CPU_PERIOD {
            // Periods are aligned to the first one, as CFS's are to its timer.
            let behind = now.duration_since(p.start).as_nanos() / CPU_PERIOD.as_nanos();
            let skip = u32::try_from(behind).unwrap_or(u32::MAX);
            p.start += CPU_PERIOD.saturating_mul(skip);
            p.used = Duration::ZERO;
        }
        p.used += used;
        if p.used >= self.quota {
            self.throttled_periods.fetch_add(1, Ordering::Relaxed);
            Some(p.start + CPU_PERIOD)
        } else {
            None
        }
    }

    /// How many times the pod was throttled (as `nr_throttled` in cgroups).
    pub fn throttled(&self) -> usize {
        self.throttled_periods.load(Ordering::Relaxed)
    }

    /// Guest CPU time charged so far (epoch-tick resolution).
    pub fn used(&self) -> Duration {
        Duration::from_micros(self.used_total_micros.load(Ordering::Relaxed))
    }
}

/// Why the epoch callback stopped a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    #[error("deadline exceeded")]
    DeadlineExceeded,
    #[error("killed")]
    Killed,
}

/// What the epoch callback of one store checks on each tick.
pub(crate) struct EpochGuard {
    pub cpu: Option<Arc<CpuQuota>>,
    pub tick: Duration,
    pub deadline: Option<Instant>,
    pub cancel: CancellationToken,
}

impl EpochGuard {
    /// Arms `store`: a callback on every epoch tick.
    pub fn arm<T: Send + 'static>(self, store: &mut wasmtime::Store<T>) {
        let EpochGuard {
            cpu,
            tick,
            deadline,
            cancel,
        } = self;
        let mut resumed = Instant::now();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_ctx| {
            let now = Instant::now();
            if cancel.is_cancelled() {
                return Err(wasmtime::Error::new(Stop::Killed));
            }
            if deadline.is_some_and(|d| now >= d) {
                return Err(wasmtime::Error::new(Stop::DeadlineExceeded));
            }
            // The guest ran at most one tick since it last resumed: the deadline is one
            // tick ahead. Time spent blocked in the host is not charged beyond that.
            let ran = now.saturating_duration_since(resumed).min(tick);
            let resume_at = cpu.as_ref().and_then(|cpu| cpu.charge(ran, now));
            match resume_at {
                Some(at) => {
                    let at = match deadline {
                        Some(d) => at.min(d),
                        None => at,
                    };
                    resumed = at;
                    let cancel = cancel.clone();
                    Ok(UpdateDeadline::YieldCustom(
                        1,
                        Box::pin(async move {
                            tokio::select! {
                                () = tokio::time::sleep_until(at) => {}
                                () = cancel.cancelled() => {}
                            }
                        }),
                    ))
                }
                None => {
                    resumed = now;
                    Ok(UpdateDeadline::Yield(1))
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_budget_is_shared_and_released() {
        let budget = Arc::new(MemoryBudget::new(Some(100)));
        let mut a = InstanceLimiter::new(budget.clone(), 1 << 30);
        let mut b = InstanceLimiter::new(budget.clone(), 1 << 30);
        use wasmtime::ResourceLimiter as _;
        assert!(a.memory_growing(0, 60, None).unwrap_or(false));
        assert!(!b.memory_growing(0, 60, None).unwrap_or(true));
        assert!(budget.limit_hit());
        assert!(b.memory_growing(0, 40, None).unwrap_or(false));
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert_eq!(budget.peak(), 100);

        let mut capped = InstanceLimiter::new(budget.clone(), 50);
        assert!(!capped.memory_growing(0, 60, None).unwrap_or(true));
        assert!(capped.hit());
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn quantities() {
        let l = PodLimits::from_quantities(Some("64Mi"), Some("500m"));
        assert_eq!(
            l,
            Ok(PodLimits {
                memory_bytes: Some(64 << 20),
                cpu_millis: Some(500)
            })
        );
        assert!(PodLimits::from_quantities(None, Some("0")).is_err());
        assert!(PodLimits::from_quantities(Some("lots"), None).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn cpu_quota_throttles_within_a_period() {
        let q = CpuQuota::new(200); // 20 ms per 100 ms
        let start = Instant::now();
        let tick = Duration::from_millis(5);
        let mut throttled_at = None;
        for i in 0..4u32 {
            throttled_at = q.charge(tick, start + tick * i);
        }
        // 4 ticks = 20 ms: the quota is spent, resume at the next period.
        assert!(throttled_at.is_some_and(|at| at >= start + CPU_PERIOD));
        assert_eq!(q.throttled(), 1);
        // A new period starts fresh.
        assert_eq!(q.charge(tick, start + CPU_PERIOD), None);
    }
}
