//! Token-bucket rate limits for login and registration, per client IP and per
//! username. In memory, per instance: with N instances an attacker gets N times the
//! budget, which still bounds guessing; a shared limit would need a database write per
//! attempt.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Above this many tracked keys, buckets that are full again are dropped...
const PRUNE_ABOVE: usize = 10_000;
/// ...at most this often, so a table that stays large is not scanned on every attempt.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    by_key: HashMap<String, Bucket>,
    pruned_at: Option<Instant>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// Allows `burst` attempts at once, refilled at `per_minute`.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_minute.max(1)) / 60.0,
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// Takes one token for `key` at `now`; on refusal, says how long until one is free.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = buckets.pruned_at.is_none_or(|at| now.saturating_duration_since(at) >= PRUNE_EVERY);
        if buckets.by_key.len() > PRUNE_ABOVE && due {
            let (burst, rate) = (self.burst, self.per_second);
            buckets
                .by_key
                .retain(|_, b| b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate < burst);
            buckets.pruned_at = Some(now);
        }
        let bucket = buckets.by_key.entry(key.to_owned()).or_insert(Bucket { tokens: self.burst, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second))
        }
    }
}

/// The limiters the auth endpoints use, and the clock they read.
pub struct RateLimits {
    pub login_by_ip: RateLimiter,
    pub login_by_username: RateLimiter,
    pub register_by_ip: RateLimiter,
    pub clock: Clock,
}

impl RateLimits {
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            login_by_ip: RateLimiter::new(burst, per_minute),
            login_by_username: RateLimiter::new(burst, per_minute),
            register_by_ip: RateLimiter::new(burst, per_minute),
            clock: Clock::default(),
        }
    }
}

/// The time the limits read: the monotonic clock plus an offset that only moves
/// forward. The server never moves it; tests do, to see a budget refill without
/// sleeping.
#[derive(Debug, Default)]
pub struct Clock {
    offset_millis: AtomicU64,
}

impl Clock {
    pub fn now(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.offset_millis.load(Ordering::Relaxed))
    }

    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_millis.fetch_add(millis, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_then_refilled() {
        let limiter = RateLimiter::new(2, 60);
        let start = Instant::now();
        assert!(limiter.check("ip", start).is_ok());
        assert!(limiter.check("ip", start).is_ok());
        let wait = limiter.check("ip", start).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900), "{wait:?}");
        assert!(limiter.check("ip", start + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn keys_are_limited_independently() {
        let limiter = RateLimiter::new(1, 1);
        let now = Instant::now();
        assert!(limiter.check("a", now).is_ok());
        assert!(limiter.check("a", now).is_err());
        assert!(limiter.check("b", now).is_ok());
    }
}
