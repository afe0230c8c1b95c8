//! The simulator's notion of "now", which tests can move forward.
//!
//! Every validity rule (token TTLs, the 10-minute AuthCode, the 30-minute suite ticket, rate-limit
//! windows) and every WeCom timestamp in a pushed event reads this clock, so a test can expire a
//! token with `POST /sim/clock/advance` instead of sleeping. Timers that really wait (the ticket
//! interval, callback timeouts and retry intervals) use tokio's time, not this clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time plus an offset that only grows.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// A clock reading the wall clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Milliseconds since the Unix epoch, offset included.
    pub fn now_ms(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        wall.saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Seconds since the Unix epoch, offset included (WeCom's `TimeStamp`/`CreateTime`).
    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Moves the clock forward by `by`; returns the new offset.
    pub fn advance(&self, by: Duration) -> Duration {
        let by_ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let total = self
            .offset_ms
            .fetch_add(by_ms, Ordering::Relaxed)
            .saturating_add(by_ms);
        Duration::from_millis(u64::try_from(total).unwrap_or(0))
    }

    /// How far the clock has been moved forward in total.
    pub fn offset(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.offset_ms.load(Ordering::Relaxed)).unwrap_or(0))
    }
}

/// A duration in milliseconds as `i64`, saturating (for adding TTLs to [`Clock::now_ms`]).
pub fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now_forward() {
        let clock = Clock::new();
        let before = clock.now_ms();
        assert_eq!(
            clock.advance(Duration::from_secs(600)),
            Duration::from_secs(600)
        );
        assert!(clock.now_ms() >= before + 600_000);
        assert_eq!(clock.offset(), Duration::from_secs(600));
        assert!(clock.now_secs() >= before / 1000 + 600);
    }
}
