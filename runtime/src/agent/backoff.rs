//! Restart back-off, as the kubelet's: the first restart waits `base`, each next one twice
//! as long up to `cap`; a container that ran for `reset_after` without failing starts over
//! from `base`. The same shape paces retries of image fetches and container configuration.

use std::time::Duration;

/// The back-off's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first delay (kubelet: 10 s).
    pub base: Duration,
    /// The longest delay (kubelet: 5 min).
    pub cap: Duration,
    /// A run at least this long resets the delay to `base` (kubelet: 10 min).
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

/// One container's back-off state.
#[derive(Clone, Debug)]
pub struct Backoff {
    config: BackoffConfig,
    /// The delay the next failure waits; `None` before the first one.
    next: Option<Duration>,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Backoff {
        Backoff { config, next: None }
    }

    /// The delay before the next attempt, after an attempt that lasted `ran`.
    pub fn next_delay(&mut self, ran: Duration) -> Duration {
        if ran >= self.config.reset_after {
            self.next = None;
        }
        let delay = self
            .next
            .unwrap_or(self.config.base)
            .min(self.config.cap.max(self.config.base));
        self.next = Some(delay.saturating_mul(2).min(self.config.cap));
        delay
    }

    /// Forgets past failures.
    pub fn reset(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets_after_a_stable_run() {
        let config = BackoffConfig {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        };
        let short = Duration::from_secs(1);
        let cases: &[(Duration, u64)] = &[
            (short, 10),
            (short, 20),
            (short, 40),
            (short, 80),
            (short, 160),
            (short, 300),
            (short, 300),
            (Duration::from_secs(600), 10),
            (short, 20),
        ];
        let mut b = Backoff::new(config);
        for (i, (ran, want)) in cases.iter().enumerate() {
            assert_eq!(b.next_delay(*ran), Duration::from_secs(*want), "step {i}");
        }
        b.reset();
        assert_eq!(b.next_delay(short), Duration::from_secs(10));
    }

    #[test]
    fn a_cap_below_the_base_never_panics() {
        let mut b = Backoff::new(BackoffConfig {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(50),
            reset_after: Duration::from_secs(1),
        });
        assert_eq!(b.next_delay(Duration::ZERO), Duration::from_millis(100));
        assert_eq!(b.next_delay(Duration::ZERO), Duration::from_millis(50));
    }
}
