//! Rate limits: a token bucket per token for requests with a valid token, and a token bucket
//! per client address for everything no valid token pays for: anonymous reads (Open311's,
//! `/metrics`, the OpenAPI document) and requests with a missing, malformed, unknown or
//! revoked token or Open311 `api_key`. The defaults (see [`RateLimit`] and
//! [`crate::ServiceConfig::address_rate_limit`]) are well above what one busy client sends, so
//! only a runaway or hostile client meets them.
//!
//! A request with a valid token is charged to its token only: many staff behind one office
//! address must not share a bucket. The health probes (`/healthz`, `/readyz`) are never
//! charged: they cost nothing, and a load balancer polling them from one address must never
//! see its server as down because of someone else's traffic. A request the router gets
//! in-process (tests, an embedder) has no client address and is charged to none.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::Method;
use civicflow_core::domain::access::TokenId;

use crate::policy::Policy;

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
        Self::per_second(crate::ServiceConfig::DEFAULT_RATE_PER_SECOND)
    }
}

impl RateLimit {
    /// `rate` requests a second, with bursts of twice that.
    pub fn per_second(rate: u32) -> Self {
        Self {
            per_second: f64::from(rate),
            burst: 2.0 * f64::from(rate),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(limit: RateLimit, now: Instant) -> Self {
        Self {
            tokens: limit.burst,
            at: now,
        }
    }

    /// Refills for the time since it was last used, then takes one request; `Err(wait)`
    /// when it is empty.
    fn take(&mut self, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        let refill = now.duration_since(self.at).as_secs_f64() * limit.per_second;
        self.tokens = (self.tokens + refill).min(limit.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err(Duration::from_secs_f64(
                missing / limit.per_second.max(f64::MIN_POSITIVE),
            ))
        }
    }

    /// Whether it would be full by `now`: then it is no different from a new bucket.
    fn refilled(&self, limit: RateLimit, now: Instant) -> bool {
        self.tokens + now.duration_since(self.at).as_secs_f64() * limit.per_second >= limit.burst
    }
}

/// The buckets of every key seen, at most `capacity` of them.
#[derive(Debug)]
struct Buckets<K> {
    limit: RateLimit,
    capacity: usize,
    inner: Mutex<Inner<K>>,
}

#[derive(Debug)]
struct Inner<K> {
    buckets: HashMap<K, Bucket>,
    /// The one bucket every new key shares while the map is full of busy ones.
    overflow: Bucket,
    pruned_at: Instant,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(limit: RateLimit, capacity: usize) -> Self {
        let now = Instant::now();
        Self {
            limit,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                buckets: HashMap::new(),
                overflow: Bucket::full(limit, now),
                pruned_at: now,
            }),
        }
    }

    /// Takes one request from `key`'s bucket. A new key when the map is full: first the
    /// buckets that have refilled are dropped (at most once a second, so a flood of new keys
    /// does not scan the map on every request), and if it is still full the key shares the
    /// overflow bucket: memory stays bounded, and a flood of addresses throttles itself.
    fn take(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let limit = self.limit;
        if !inner.buckets.contains_key(key) && inner.buckets.len() >= self.capacity {
            if now.duration_since(inner.pruned_at) >= Duration::from_secs(1) {
                inner.pruned_at = now;
                inner
                    .buckets
                    .retain(|_, bucket| !bucket.refilled(limit, now));
            }
            if inner.buckets.len() >= self.capacity {
                return inner.overflow.take(limit, now);
            }
        }
        inner
            .buckets
            .entry(key.clone())
            .or_insert_with(|| Bucket::full(limit, now))
            .take(limit, now)
    }
}

/// The per-token buckets (one per token; tokens are few, issued by administrators).
#[derive(Debug)]
pub struct RateLimiter {
    tokens: Buckets<TokenId>,
}

impl RateLimiter {
    /// Limits every token to `limit`.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            tokens: Buckets::new(limit, usize::MAX),
        }
    }

    /// Takes one request from `token`'s bucket; `Err(wait)` when it is empty.
    ///
    /// # Errors
    /// How long until a request is allowed again.
    pub fn take(&self, token: &TokenId) -> Result<(), Duration> {
        self.tokens.take(token)
    }
}

/// The per-address buckets: an IPv6 client by its /64 (`client::limit_key`), at most
/// `capacity` addresses (then new ones share one bucket).
#[derive(Debug)]
pub(crate) struct AddressLimiter {
    addresses: Buckets<IpAddr>,
}

impl AddressLimiter {
    /// Limits every address to `limit`, keeping at most `capacity` buckets.
    pub(crate) fn new(limit: RateLimit, capacity: usize) -> Self {
        Self {
            addresses: Buckets::new(limit, capacity),
        }
    }

    /// Takes one request from the bucket of `ip` (a client's address, as `client::resolve`
    /// gives it); `Err(wait)` when it is empty.
    pub(crate) fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        self.addresses.take(&crate::client::limit_key(ip))
    }
}

/// The routes never charged to anyone: the health probes.
const UNMETERED: &[&str] = &["/healthz", "/readyz"];

/// Whether a request to a route with `policy` is charged to its client address before its
/// handler runs: the public reads, but the health probes. (A public write, an Open311 filing,
/// is charged by its handler: to its `api_key`'s token, or to the address when the key is
/// missing or unknown. A route with a token policy is charged to the address only when the
/// token is missing or not valid.)
pub(crate) fn metered_by_address(method: &Method, path: &str, policy: Policy) -> bool {
    !policy.needs_token()
        && (method == Method::GET || method == Method::HEAD)
        && !UNMETERED.contains(&path)
}

/// `wait` as a `Retry-After` value: whole seconds, rounded up (a client that waits as long as
/// it says is let in), at least 1.
pub(crate) fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
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

    #[test]
    fn addresses_have_bounded_buckets_and_new_ones_share_the_overflow_when_full() {
        let limiter = AddressLimiter::new(
            RateLimit {
                per_second: 0.001,
                burst: 2.0,
            },
            2,
        );
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let c: IpAddr = "192.0.2.3".parse().expect("ip");
        let d: IpAddr = "192.0.2.4".parse().expect("ip");
        assert!(limiter.take(a).is_ok());
        assert!(limiter.take(b).is_ok());
        // Full of two busy buckets: c and d share one, of the same limit.
        assert!(limiter.take(c).is_ok());
        assert!(limiter.take(d).is_ok());
        assert!(
            limiter.take(c).is_err(),
            "c and d shared the overflow bucket"
        );
        assert!(limiter.take(a).is_ok(), "a keeps its own");
        assert!(limiter.take(a).is_err());
        let len = limiter.addresses.inner.lock().expect("lock").buckets.len();
        assert_eq!(len, 2, "never more buckets than the capacity");
    }

    #[test]
    fn refilled_buckets_make_room_for_new_addresses() {
        let limiter = AddressLimiter::new(
            RateLimit {
                per_second: 1000.0,
                burst: 1.0,
            },
            1,
        );
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "2001:db8::1".parse().expect("ip");
        assert!(limiter.take(a).is_ok());
        // The prune runs at most once a second; a's bucket refills in a millisecond.
        std::thread::sleep(Duration::from_millis(1_100));
        assert!(limiter.take(b).is_ok());
        assert!(
            limiter.take(b).is_err(),
            "b has a bucket of its own, now empty"
        );
        let inner = limiter.addresses.inner.lock().expect("lock");
        assert_eq!(inner.buckets.len(), 1);
        assert!(inner.buckets.contains_key(&crate::client::limit_key(b)));
    }

    #[test]
    fn public_reads_are_metered_but_health_probes_and_token_routes_are_not() {
        assert!(metered_by_address(&Method::GET, "/metrics", Policy::Public));
        assert!(metered_by_address(
            &Method::GET,
            "/open311/v2/requests.json",
            Policy::Public
        ));
        assert!(!metered_by_address(
            &Method::GET,
            "/healthz",
            Policy::Public
        ));
        assert!(!metered_by_address(&Method::GET, "/readyz", Policy::Public));
        assert!(!metered_by_address(
            &Method::POST,
            "/open311/v2/requests.json",
            Policy::Public
        ));
        assert!(!metered_by_address(
            &Method::GET,
            "/api/v1/units",
            Policy::Authenticated
        ));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }
}
