//! When an invocation that has a deadline stops each part of its work (SPEC §6, §11): an `all`
//! link and an SQS batch stop *starting* work at the cutoff, abandon what is still in flight
//! halfway through the reserved margin, give up the continuation's Invoke three quarters
//! through, and answer with the last quarter left. Nothing in flight can outlive the deadline,
//! so a destination that never answers makes a link continue (or leaves the unreached messages
//! on the queue) instead of timing the invocation out: Lambda stops a timed-out environment
//! without a response, and a timed-out link would neither continue nor report. Pure.

use std::time::{Duration, Instant};

/// The least reserved margin: the answer and the continuation need this much whatever the
/// timeout (SPEC §6: "the deadline minus max(1 s, 10% of the time left at start)").
pub const MIN_MARGIN: Duration = Duration::from_secs(1);

/// The continuation's Invoke never gets more than this (SPEC §6: "the Invoke has its own
/// timeout of at most 2 s"); the SDK client's own operation timeout is the same.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(2);

/// The instants an invocation stops at, in order: `cutoff` ≤ `abandon` ≤ `invoke_by` ≤ the
/// deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stops {
    /// No new source or message starts from here on.
    pub cutoff: Instant,
    /// Work still in flight is dropped here: its sources stay `remaining`, its messages stay on
    /// the queue. A write dropped mid-call may or may not have happened; either way the next
    /// attempt repeats it with the same version token (SPEC §8), so it is never doubled.
    pub abandon: Instant,
    /// The continuation's Invoke is given up here (at most [`INVOKE_TIMEOUT`] after it starts);
    /// what is left until the deadline is for the answer.
    pub invoke_by: Instant,
}

impl Stops {
    /// The stops of an invocation that started at `started` and must answer by `deadline`:
    /// the reserved margin is max(1 s, 10% of the time left at the start); half of it drains
    /// the work in flight, a quarter is the Invoke's, a quarter the answer's.
    pub fn new(deadline: Instant, started: Instant) -> Stops {
        let left = deadline.saturating_duration_since(started);
        let margin = std::cmp::max(MIN_MARGIN, left / 10);
        // Never before the start (a deadline already inside the margin starts nothing), never
        // after the deadline.
        let floor = started.min(deadline);
        let before = |d: Duration| deadline.checked_sub(d).unwrap_or(floor).max(floor);
        Stops {
            cutoff: before(margin),
            abandon: before(margin / 2),
            invoke_by: before(margin / 4),
        }
    }

    /// How long the continuation's Invoke may take if it starts at `now`.
    pub fn invoke_timeout(&self, now: Instant) -> Duration {
        std::cmp::min(
            INVOKE_TIMEOUT,
            self.invoke_by.saturating_duration_since(now),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stops: Stops, started: Instant) -> [u128; 3] {
        [stops.cutoff, stops.abandon, stops.invoke_by].map(|i| (i - started).as_millis())
    }

    #[test]
    fn the_margin_is_max_1s_or_10_percent_split_half_quarter_quarter() {
        let t = Instant::now() + Duration::from_secs(3600);
        // Lambda's shortest useful timeouts: the 1 s floor.
        let s = Stops::new(t + Duration::from_secs(5), t);
        assert_eq!(at(s, t), [4000, 4500, 4750]);
        // The template's 300 s: 30 s reserved.
        let s = Stops::new(t + Duration::from_secs(300), t);
        assert_eq!(at(s, t), [270_000, 285_000, 292_500]);
        assert_eq!(s.invoke_timeout(s.abandon), INVOKE_TIMEOUT);
        // A short margin shortens the Invoke to what is left before its stop.
        let s = Stops::new(t + Duration::from_secs(5), t);
        assert_eq!(s.invoke_timeout(s.abandon), Duration::from_millis(250));
        assert_eq!(s.invoke_timeout(s.invoke_by), Duration::ZERO);
    }

    #[test]
    fn a_deadline_already_inside_the_margin_stops_everything_at_once() {
        let t = Instant::now() + Duration::from_secs(3600);
        let s = Stops::new(t + Duration::from_millis(400), t);
        assert_eq!(s.cutoff, t, "nothing starts");
        assert!(s.cutoff <= s.abandon && s.abandon <= s.invoke_by);
        assert!(s.invoke_by <= t + Duration::from_millis(400));
        let passed = Stops::new(t, t + Duration::from_secs(1));
        assert!(passed.cutoff <= passed.abandon && passed.abandon <= passed.invoke_by);
    }
}
