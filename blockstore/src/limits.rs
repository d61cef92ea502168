//! I/O limits: token buckets for operations per second and bytes per second, for reads,
//! writes, or both together, with a burst allowance. Changeable while in use.
//!
//! The limiter never sleeps: [`RateLimiter::admit`] either takes the tokens an operation
//! needs or says how long to wait, so a device model can stop its queue and come back.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One token bucket: `rate` tokens per second, holding at most `burst` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    /// Sustained rate: operations or bytes per second (> 0).
    pub rate: u64,
    /// Bucket size: how much may go at once after a quiet period. 0 means one second's
    /// worth (`rate`).
    #[serde(default)]
    pub burst: u64,
}

impl Bucket {
    fn capacity(&self) -> u64 {
        if self.burst == 0 {
            self.rate
        } else {
            self.burst
        }
    }
}

/// The limits of one volume or drive; every field is optional and they combine: an
/// operation must fit every bucket that applies to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Operations per second, reads and writes together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<Bucket>,
    /// Read operations per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_iops: Option<Bucket>,
    /// Write operations per second (discards count as writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_iops: Option<Bucket>,
    /// Bytes per second, reads and writes together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bps: Option<Bucket>,
    /// Bytes read per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bps: Option<Bucket>,
    /// Bytes written per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_bps: Option<Bucket>,
}

/// A limit that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("I/O limit {field}: {problem}")]
pub struct LimitsError {
    /// Which limit (`iops`, `read_bps`, ...).
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl Limits {
    fn fields(&self) -> [(&'static str, Option<Bucket>); 6] {
        [
            ("iops", self.iops),
            ("read_iops", self.read_iops),
            ("write_iops", self.write_iops),
            ("bps", self.bps),
            ("read_bps", self.read_bps),
            ("write_bps", self.write_bps),
        ]
    }

    /// Checks every bucket: a rate of at least 1, a burst no larger than 2^40.
    pub fn validate(&self) -> Result<(), LimitsError> {
        for (field, bucket) in self.fields() {
            if let Some(b) = bucket {
                if b.rate == 0 {
                    return Err(LimitsError {
                        field,
                        problem: "rate must be at least 1 per second".into(),
                    });
                }
                if b.rate > 1 << 40 || b.burst > 1 << 40 {
                    return Err(LimitsError {
                        field,
                        problem: "rate and burst must be at most 2^40".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether no limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.fields().iter().all(|(_, b)| b.is_none())
    }
}

/// Direction of an operation, for choosing the buckets that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A read.
    Read,
    /// A write, discard or write-zeroes.
    Write,
}

#[derive(Debug, Clone)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(b: Bucket, now: Instant) -> Self {
        let capacity = b.capacity() as f64;
        TokenBucket {
            rate: b.rate as f64,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.last = now;
    }

    /// Tokens needed before an operation of `cost` may go: a cost larger than the bucket
    /// goes once the bucket is full (and leaves it in debt), so nothing waits forever.
    fn wait_for(&self, cost: f64) -> Duration {
        let need = cost.min(self.capacity);
        if self.tokens >= need {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((need - self.tokens) / self.rate)
        }
    }
}

/// Token buckets for one [`Limits`].
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limits: Limits,
    /// In the order of [`Limits::fields`].
    buckets: [Option<TokenBucket>; 6],
    throttled: u64,
}

impl RateLimiter {
    /// Buckets for `limits`, all full.
    pub fn new(limits: Limits, now: Instant) -> Result<Self, LimitsError> {
        limits.validate()?;
        let buckets = limits
            .fields()
            .map(|(_, b)| b.map(|b| TokenBucket::new(b, now)));
        Ok(RateLimiter {
            limits,
            buckets,
            throttled: 0,
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// How many times [`RateLimiter::admit`] has said "wait".
    pub fn throttled(&self) -> u64 {
        self.throttled
    }

    /// Replaces the limits. A bucket that existed before keeps its tokens (capped by the new
    /// size), so changing a limit cannot be used to get a fresh burst.
    pub fn set_limits(&mut self, limits: Limits, now: Instant) -> Result<(), LimitsError> {
        limits.validate()?;
        let old = std::mem::take(&mut self.buckets);
        for (i, (_, b)) in limits.fields().into_iter().enumerate() {
            self.buckets[i] = b.map(|b| {
                let mut fresh = TokenBucket::new(b, now);
                if let Some(mut prev) = old[i].clone() {
                    prev.refill(now);
                    fresh.tokens = prev.tokens.min(fresh.capacity);
                }
                fresh
            });
        }
        self.limits = limits;
        Ok(())
    }

    /// Takes the tokens for one operation of `bytes` in `dir`, or returns how long to wait
    /// before trying again (no tokens are taken then).
    pub fn admit(&mut self, dir: Direction, bytes: u64, now: Instant) -> Result<(), Duration> {
        // (iops, read_iops, write_iops, bps, read_bps, write_bps): which apply, at what cost.
        let ops = 1.0;
        let b = bytes as f64;
        let costs: [Option<f64>; 6] = match dir {
            Direction::Read => [Some(ops), Some(ops), None, Some(b), Some(b), None],
            Direction::Write => [Some(ops), None, Some(ops), Some(b), None, Some(b)],
        };
        let mut wait = Duration::ZERO;
        for (bucket, cost) in self.buckets.iter_mut().zip(costs) {
            if let (Some(bucket), Some(cost)) = (bucket.as_mut(), cost) {
                bucket.refill(now);
                wait = wait.max(bucket.wait_for(cost));
            }
        }
        if !wait.is_zero() {
            self.throttled += 1;
            return Err(wait);
        }
        for (bucket, cost) in self.buckets.iter_mut().zip(costs) {
            if let (Some(bucket), Some(cost)) = (bucket.as_mut(), cost) {
                bucket.tokens -= cost;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(rate: u64, burst: u64) -> Option<Bucket> {
        Some(Bucket { rate, burst })
    }

    #[test]
    fn ops_bucket_allows_burst_then_the_rate() {
        let t0 = Instant::now();
        let limits = Limits {
            iops: bucket(100, 10),
            ..Default::default()
        };
        let mut rl = RateLimiter::new(limits, t0).unwrap();
        for _ in 0..10 {
            assert!(rl.admit(Direction::Read, 4096, t0).is_ok());
        }
        let wait = rl.admit(Direction::Write, 4096, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.01).abs() < 1e-6, "{wait:?}");
        // Over one simulated second, at most burst + rate operations go through.
        let mut admitted = 10;
        let mut now = t0;
        while now < t0 + Duration::from_secs(1) {
            match rl.admit(Direction::Read, 512, now) {
                Ok(()) => admitted += 1,
                Err(w) => now += w,
            }
        }
        assert!(admitted <= 10 + 100 + 1, "{admitted}");
        assert!(admitted >= 100, "{admitted}");
        assert!(rl.throttled() > 0);
    }

    #[test]
    fn direction_specific_buckets_only_apply_to_their_direction() {
        let t0 = Instant::now();
        let limits = Limits {
            write_bps: bucket(1000, 1000),
            ..Default::default()
        };
        let mut rl = RateLimiter::new(limits, t0).unwrap();
        for _ in 0..100 {
            assert!(rl.admit(Direction::Read, 1 << 20, t0).is_ok());
        }
        assert!(rl.admit(Direction::Write, 1000, t0).is_ok());
        assert!(rl.admit(Direction::Write, 1, t0).is_err());
    }

    #[test]
    fn oversized_operation_waits_for_a_full_bucket_then_goes() {
        let t0 = Instant::now();
        let limits = Limits {
            bps: bucket(1000, 500),
            ..Default::default()
        };
        let mut rl = RateLimiter::new(limits, t0).unwrap();
        assert!(
            rl.admit(Direction::Write, 5000, t0).is_ok(),
            "a full bucket admits any size"
        );
        let wait = rl.admit(Direction::Write, 100, t0).unwrap_err();
        // 4500 bytes of debt plus 100 needed, at 1000/s.
        assert!((wait.as_secs_f64() - 4.6).abs() < 1e-6, "{wait:?}");
    }

    #[test]
    fn changing_limits_keeps_the_tokens_already_spent() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(
            Limits {
                iops: bucket(10, 10),
                ..Default::default()
            },
            t0,
        )
        .unwrap();
        for _ in 0..10 {
            rl.admit(Direction::Read, 0, t0).unwrap();
        }
        rl.set_limits(
            Limits {
                iops: bucket(1000, 1000),
                ..Default::default()
            },
            t0,
        )
        .unwrap();
        assert!(
            rl.admit(Direction::Read, 0, t0).is_err(),
            "no fresh burst from a change"
        );
        assert!(rl
            .admit(Direction::Read, 0, t0 + Duration::from_millis(2))
            .is_ok());
        rl.set_limits(Limits::default(), t0).unwrap();
        assert!(rl.limits().is_unlimited());
        assert!(rl.admit(Direction::Write, 1 << 30, t0).is_ok());
    }

    #[test]
    fn rejects_zero_rates_by_name() {
        let err = Limits {
            read_bps: bucket(0, 0),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "read_bps");
        let json = r#"{"iops": {"rate": 5, "burst": 2}, "bogus": 1}"#;
        assert!(serde_json::from_str::<Limits>(json)
            .unwrap_err()
            .to_string()
            .contains("bogus"));
    }
}
