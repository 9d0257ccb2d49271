//! Per-token rate limits: a token bucket for each token, refilled continuously. The default
//! (see [`RateLimit`]) is well above what one busy client application sends, so only a
//! runaway or hostile client meets it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use civicflow_core::domain::access::TokenId;

/// A rate limit: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once above the sustained rate.
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: f64::from(crate::ServiceConfig::DEFAULT_RATE_PER_SECOND),
            burst: 2.0 * f64::from(crate::ServiceConfig::DEFAULT_RATE_PER_SECOND),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every token seen.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<TokenId, Bucket>>,
}

impl RateLimiter {
    /// Limits every token to `limit`.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `token`'s bucket; `Err(wait)` when it is empty.
    ///
    /// # Errors
    /// How long until a request is allowed again.
    pub fn take(&self, token: &TokenId) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(token.clone()).or_insert(Bucket {
            tokens: self.limit.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.limit.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.limit.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - bucket.tokens;
            Err(Duration::from_secs_f64(
                missing / self.limit.per_second.max(f64::MIN_POSITIVE),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use civicflow_core::domain::access::TokenHash;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 10.0,
            burst: 3.0,
        });
        let token = TokenId::of_hash(&TokenHash([1; 32]));
        let other = TokenId::of_hash(&TokenHash([2; 32]));
        for _ in 0..3 {
            assert!(limiter.take(&token).is_ok());
        }
        let wait = limiter.take(&token).expect_err("the bucket is empty");
        assert!(wait <= Duration::from_millis(100));
        assert!(limiter.take(&other).is_ok(), "buckets are per token");
        std::thread::sleep(Duration::from_millis(120));
        assert!(limiter.take(&token).is_ok(), "refilled");
    }
}
