//! Per-provider circuit breaker.
//!
//! Closed: calls flow; `threshold` consecutive failures open it. Open: calls
//! fail fast until `cool_down` has passed. Half-open: exactly one probe call
//! goes through; its success closes the breaker, its failure re-opens it.
//! Only failures of the provider itself count (unreachable, connection lost,
//! deadline); a tool that answers with an error is a healthy provider.
//!
//! A passing health check ends the first cool-down of an outage at once, so a
//! restarted provider is probed as soon as it answers. After a failed probe
//! the full cool-down applies, so a provider that answers health checks but
//! fails calls still gets at most one probe per cool-down.
//!
//! Time is `tokio::time::Instant`, so tests drive it with paused time.

use std::sync::{Arc, Mutex};

use tokio::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    /// `early`: a passing health check may end the cool-down now.
    Open {
        until: Instant,
        early: bool,
    },
    HalfOpen {
        probing: bool,
    },
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cool_down: Duration,
    state: Mutex<State>,
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    /// How long until a probe may go through.
    pub retry_in: Duration,
}

/// Permission for one call. Report its outcome with [`Permit::record`];
/// a permit dropped unreported (the client cancelled) counts for nothing,
/// and frees the probe slot if it held it.
pub struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
    done: bool,
}

impl Breaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Arc<Self> {
        Arc::new(Self {
            threshold: threshold.max(1),
            cool_down,
            state: Mutex::new(State::Closed { failures: 0 }),
        })
    }

    pub fn acquire(self: &Arc<Self>) -> Result<Permit, Open> {
        let mut s = self.state.lock().expect("breaker lock");
        let probe = match &*s {
            State::Closed { .. } => false,
            State::Open { until, .. } => {
                let now = Instant::now();
                if now < *until {
                    return Err(Open {
                        retry_in: *until - now,
                    });
                }
                *s = State::HalfOpen { probing: true };
                true
            }
            State::HalfOpen { probing: true } => {
                return Err(Open {
                    retry_in: Duration::ZERO,
                });
            }
            State::HalfOpen { probing: false } => {
                *s = State::HalfOpen { probing: true };
                true
            }
        };
        Ok(Permit {
            breaker: self.clone(),
            probe,
            done: false,
        })
    }

    pub fn state(&self) -> BreakerState {
        match &*self.state.lock().expect("breaker lock") {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until, .. } if Instant::now() >= *until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn record(&self, probe: bool, success: bool) {
        let mut s = self.state.lock().expect("breaker lock");
        *s = match (&*s, probe, success) {
            (State::HalfOpen { .. }, true, true) | (State::Closed { .. }, _, true) => {
                State::Closed { failures: 0 }
            }
            (State::HalfOpen { .. }, true, false) => State::Open {
                until: Instant::now() + self.cool_down,
                early: false,
            },
            (State::Closed { failures }, _, false) if failures + 1 < self.threshold => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (State::Closed { .. }, _, false) => State::Open {
                until: Instant::now() + self.cool_down,
                early: true,
            },
            // A call let through before the breaker opened, ending late,
            // says nothing about the provider now: only the probe decides.
            (State::Open { .. } | State::HalfOpen { .. }, _, _) => return,
        };
    }

    /// The provider answered a health check: the next call may probe it now,
    /// unless a probe already failed in this outage.
    pub fn health_passed(&self) {
        let mut s = self.state.lock().expect("breaker lock");
        if let State::Open { early: true, .. } = &*s {
            *s = State::HalfOpen { probing: false };
        }
    }
}

impl Permit {
    pub fn record(mut self, success: bool) {
        self.done = true;
        self.breaker.record(self.probe, success);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done && self.probe {
            let mut s = self.breaker.state.lock().expect("breaker lock");
            if let State::HalfOpen { probing } = &mut *s {
                *probing = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_fails_fast_then_probes_once() {
        let b = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            b.acquire().unwrap().record(false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.acquire().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Open);
        let err = b.acquire().err().unwrap();
        assert_eq!(err.retry_in, Duration::from_secs(10));

        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(b.acquire().is_err(), "still cooling down");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.acquire().expect("one probe goes through");
        assert!(b.acquire().is_err(), "only one probe at a time");
        probe.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
        b.acquire().unwrap().record(true);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_for_a_full_cool_down() {
        let b = Breaker::new(1, Duration::from_secs(5));
        b.acquire().unwrap().record(false);
        tokio::time::advance(Duration::from_secs(5)).await;
        b.acquire().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.acquire().err().unwrap().retry_in, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn passing_health_check_lets_the_probe_through_once_per_outage() {
        let b = Breaker::new(1, Duration::from_secs(10));
        b.health_passed();
        assert_eq!(b.state(), BreakerState::Closed, "no effect while closed");
        b.acquire().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Open);
        // The provider restarted and answers its health check.
        b.health_passed();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b
            .acquire()
            .expect("probe without waiting for the cool-down");
        assert!(b.acquire().is_err(), "still one probe at a time");
        // It answers health but fails calls: flapping.
        probe.record(false);
        b.health_passed();
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "full cool-down after a failed probe"
        );
        assert_eq!(b.acquire().err().unwrap().retry_in, Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(10)).await;
        b.acquire().unwrap().record(true);
        // A new outage may end early again.
        b.acquire().unwrap().record(false);
        b.health_passed();
        assert!(b.acquire().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn late_outcomes_of_calls_from_before_the_outage_are_ignored() {
        let b = Breaker::new(1, Duration::from_secs(10));
        let old_fail = b.acquire().unwrap();
        let old_ok = b.acquire().unwrap();
        b.acquire().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Open);
        old_ok.record(true);
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "a late success does not close it"
        );
        b.health_passed();
        old_fail.record(false);
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen,
            "a late failure does not cost the early probe"
        );
        b.acquire().expect("the probe").record(true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_count_and_abandoned_probe_frees_the_slot() {
        let b = Breaker::new(2, Duration::from_secs(1));
        b.acquire().unwrap().record(false);
        b.acquire().unwrap().record(true);
        b.acquire().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Closed, "not consecutive");
        b.acquire().unwrap().record(false);
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(b.acquire().unwrap()); // client cancelled the probe
        assert!(b.acquire().is_ok(), "a new probe may go");
    }
}
