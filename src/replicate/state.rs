//! Per-container state shared by invocations: which destinations were found owned (the
//! ownership check runs once per destination per warm container), and the write budget.

use crate::outcome::DestinationRef;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// After a throttled write the rate to that destination halves, down to this fraction of the
/// container's share (SPEC §2).
pub const FLOOR_DIVISOR: f64 = 8.0;
/// A throttled rate doubles back after this long without a throttle.
pub const RECOVERY: Duration = Duration::from_secs(10);

/// What every invocation of a container shares.
#[derive(Debug)]
pub struct ContainerState {
    owned: Mutex<HashSet<DestinationRef>>,
    pub budget: WriteBudget,
}

impl ContainerState {
    /// `write_tps` mutating calls per second per destination (account, region) for the whole
    /// function, shared by at most `concurrency` containers.
    pub fn new(write_tps: f64, concurrency: u32) -> Self {
        ContainerState {
            owned: Mutex::new(HashSet::new()),
            budget: WriteBudget::new(write_tps, concurrency),
        }
    }

    /// Whether the destination was found owned earlier in this container.
    pub fn is_owned(&self, at: &DestinationRef) -> bool {
        self.owned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(at)
    }

    /// Remembers (or forgets) that the destination is owned.
    pub fn set_owned(&self, at: &DestinationRef, owned: bool) {
        let mut set = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        if owned {
            set.insert(at.clone());
        } else {
            set.remove(at);
        }
    }
}

/// The write budget (SPEC §2): every mutating call to a destination (account, region) takes a
/// slot of a token bucket of capacity one, refilled at this container's share of the
/// function-wide rate (`REPLICATOR_WRITE_TPS ÷ REPLICATOR_CONCURRENCY`), so that the sum over
/// all containers never exceeds the budget. A throttled write halves the rate to that
/// destination (down to an eighth of the share); 10 s without a throttle doubles it back.
#[derive(Debug)]
pub struct WriteBudget {
    /// Slots per second per destination for this container.
    share: f64,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// When the next slot is free.
    next: Instant,
    /// Slots per second now.
    rate: f64,
    /// The last throttle, or the last time the rate doubled back since.
    changed: Instant,
}

impl WriteBudget {
    /// A budget of `write_tps` for the whole function, shared by `concurrency` containers.
    pub fn new(write_tps: f64, concurrency: u32) -> Self {
        let share = write_tps.max(f64::MIN_POSITIVE) / f64::from(concurrency.max(1));
        WriteBudget {
            share,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// This container's share, in slots per second per destination.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// The rate to one destination now.
    pub fn rate(&self, account: &str, region: &str) -> f64 {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match buckets.get_mut(&(account.to_string(), region.to_string())) {
            Some(b) => {
                self.recover(b, now);
                b.rate
            }
            None => self.share,
        }
    }

    fn recover(&self, b: &mut Bucket, now: Instant) {
        while b.rate < self.share && now.saturating_duration_since(b.changed) >= RECOVERY {
            b.rate = (b.rate * 2.0).min(self.share);
            b.changed += RECOVERY;
        }
    }

    /// Books the next slot to the destination; returns how long to wait for it.
    pub fn reserve(&self, account: &str, region: &str) -> Duration {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets
            .entry((account.to_string(), region.to_string()))
            .or_insert(Bucket {
                next: now,
                rate: self.share,
                changed: now,
            });
        self.recover(b, now);
        let start = b.next.max(now);
        b.next = start + Duration::from_secs_f64(1.0 / b.rate);
        start.saturating_duration_since(now)
    }

    /// Waits for a slot to the destination.
    pub async fn acquire(&self, account: &str, region: &str) {
        let wait = self.reserve(account, region);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// A write to the destination was throttled: halve its rate (not below the floor).
    pub fn throttled(&self, account: &str, region: &str) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets
            .entry((account.to_string(), region.to_string()))
            .or_insert(Bucket {
                next: now,
                rate: self.share,
                changed: now,
            });
        self.recover(b, now);
        b.rate = (b.rate / 2.0).max(self.share / FLOOR_DIVISOR);
        b.changed = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[tokio::test(start_paused = true)]
    async fn one_slot_no_burst_at_the_container_s_share() {
        // 20/s for the function, 2 containers: 10/s each, 100 ms apart, from the first call.
        let b = WriteBudget::new(20.0, 2);
        let waits: Vec<u128> = (0..4).map(|_| ms(b.reserve("1", "r"))).collect();
        assert_eq!(waits, [0, 100, 200, 300]);
        // Another destination has its own bucket.
        assert_eq!(ms(b.reserve("2", "r")), 0);
        assert_eq!(ms(b.reserve("1", "other")), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fractional_budget_spaces_writes_seconds_apart() {
        let b = WriteBudget::new(0.5, 1);
        assert_eq!(ms(b.reserve("1", "r")), 0);
        assert_eq!(ms(b.reserve("1", "r")), 2000);
    }

    #[tokio::test(start_paused = true)]
    async fn throttles_halve_the_rate_to_a_floor_and_quiet_doubles_it_back() {
        let b = WriteBudget::new(16.0, 1);
        let rates = |b: &WriteBudget| b.rate("1", "r");
        b.throttled("1", "r");
        assert_eq!(rates(&b), 8.0);
        for _ in 0..10 {
            b.throttled("1", "r");
        }
        assert_eq!(rates(&b), 2.0, "floor: an eighth of the share");
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(rates(&b), 2.0);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(rates(&b), 4.0);
        tokio::time::advance(Duration::from_secs(25)).await;
        assert_eq!(rates(&b), 16.0, "back to the share, never above");
        // Other destinations never slowed down.
        assert_eq!(b.rate("2", "r"), 16.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slowed_bucket_spaces_its_slots_wider() {
        let b = WriteBudget::new(10.0, 1);
        assert_eq!(ms(b.reserve("1", "r")), 0);
        b.throttled("1", "r");
        // The slot already booked stands; the next ones are 200 ms apart.
        let next = ms(b.reserve("1", "r"));
        let after = ms(b.reserve("1", "r"));
        assert_eq!(after - next, 200);
    }

    #[test]
    fn ownership_is_remembered_per_destination() {
        let s = ContainerState::new(25.0, 1);
        let at = DestinationRef {
            region: "us-west-2".into(),
            account: "1".into(),
            name: "a".into(),
        };
        assert!(!s.is_owned(&at));
        s.set_owned(&at, true);
        assert!(s.is_owned(&at));
        s.set_owned(&at, false);
        assert!(!s.is_owned(&at));
    }
}
