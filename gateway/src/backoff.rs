//! The one backoff every retry loop uses (reconnects, restarts, discovery,
//! retried calls, `accept`): exponential, doubling from `first` up to `max`,
//! with jitter so a fleet of gateways does not retry in lockstep. The
//! delays come from backon's builder; this adds `reset` after a success.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

pub(crate) struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        let builder = ExponentialBuilder::default()
            .with_min_delay(first)
            .with_max_delay(max.max(first))
            .with_factor(2.0)
            .with_jitter()
            // Without backon's `std` feature its seed is a constant: every
            // process would jitter alike.
            .with_jitter_seed(fastrand::u64(..))
            .without_max_times();
        Self {
            delays: builder.build(),
            builder,
            max,
        }
    }

    /// The next wait: about twice the previous one, at most `max` plus
    /// jitter.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.max)
    }

    /// After a success: the next failure waits `first` again.
    pub(crate) fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets() {
        let (first, max) = (Duration::from_millis(100), Duration::from_secs(2));
        let mut b = Backoff::new(first, max);
        let d: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(d[0] >= first && d[0] <= first * 2, "{d:?}");
        assert!(d[3] >= first * 8, "grows: {d:?}");
        assert!(d.iter().all(|d| *d <= max * 2), "bounded: {d:?}");
        assert!(d[9] >= max, "reaches the cap: {d:?}");
        b.reset();
        assert!(b.next_delay() <= first * 2);
    }

    #[test]
    fn jitter_differs_between_backoffs() {
        let draws: std::collections::HashSet<Duration> = (0..20)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(10)).next_delay())
            .collect();
        assert!(draws.len() > 1, "no jitter: {draws:?}");
    }
}
