//! Rate limiting with governor's token buckets, one set per tier: a tenant's clients share
//! one bucket, the anonymous tier has one per client address. Every tier has its own rate and
//! burst, so one tenant running out leaves every other untouched. A request costs one token;
//! a batch (`POST /api/batch`) one per item, all at once or none
//! ([`TierRateLimiter::charge_rest_of_batch`]),
//! so running inputs in a batch earns no more executions than sending them one by one.
//!
//! The client address comes from `X-Forwarded-For` behind Cloud Run's proxies, and only from
//! the part of it a client cannot write: every proxy appends the address it received the
//! request from, so the N-th entry from the right was written by the N-th trusted proxy
//! (`TRUSTED_PROXY_HOPS`=N). Entries further left are whatever the client sent and are never
//! used. With 0 hops (local use) the TCP peer is the client.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponseParts, ResponseParts};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// How often buckets of clients that have gone quiet are dropped, keeping memory bounded by
/// the number of recently active clients.
pub const FORGET_IDLE_CLIENTS_EVERY: Duration = Duration::from_secs(60);

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_RATELIMIT_AFTER: HeaderName = HeaderName::from_static("x-ratelimit-after");
const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

/// Per-client token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second (may be fractional: 0.5 is one request every two seconds).
    pub per_second: f64,
    /// Bucket size.
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// The highest rate: beyond it the refill period would round to zero nanoseconds.
    pub const MAX_PER_SECOND: f64 = 1e9;

    /// Time it takes to earn one request back.
    pub fn replenish_period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

/// Per-client buckets of the anonymous tier.
pub type ClientBuckets = DefaultKeyedRateLimiter<IpAddr, StateInformationMiddleware>;

/// The buckets of one tier.
pub enum TierRateLimiter {
    /// One bucket for all of a tenant's requests.
    Shared(DefaultDirectRateLimiter<StateInformationMiddleware>),
    /// One bucket per client address.
    PerClient(Arc<ClientBuckets>),
}

impl TierRateLimiter {
    /// One bucket of `limit` for the whole tier.
    pub fn shared(limit: &RateLimit) -> Self {
        Self::Shared(governor::RateLimiter::direct(quota(limit)).with_middleware())
    }

    /// A bucket of `limit` for each client address.
    pub fn per_client(limit: &RateLimit) -> Self {
        Self::PerClient(Arc::new(
            governor::RateLimiter::keyed(quota(limit)).with_middleware(),
        ))
    }

    /// The per-client buckets, for [`forget_idle_clients`].
    pub fn client_buckets(&self) -> Option<Weak<ClientBuckets>> {
        match self {
            Self::Shared(_) => None,
            Self::PerClient(buckets) => Some(Arc::downgrade(buckets)),
        }
    }

    /// Takes `n` requests from the bucket at once, or none: its state after, or the 429
    /// answer. `in_all` is what the whole request costs (`n`, or one more when its first
    /// request was taken already): one the bucket could never hold is answered 422.
    fn check_n(
        &self,
        ClientKey(client): ClientKey,
        n: NonZeroU32,
        in_all: NonZeroU32,
    ) -> Result<StateSnapshot, ApiError> {
        let checked = match self {
            Self::Shared(bucket) => bucket.check_n(n),
            Self::PerClient(buckets) => buckets.check_key_n(
                &client.ok_or(ApiError::Internal("no client address to rate-limit by"))?,
                n,
            ),
        };
        let over_burst = |burst: u32| ApiError::OverBurst {
            wanted: in_all.get(),
            burst,
        };
        let checked = checked.map_err(|governor::InsufficientCapacity(burst)| over_burst(burst))?;
        checked.map_err(|not_until| {
            let burst = not_until.quota().burst_size().get();
            if in_all.get() > burst {
                return over_burst(burst);
            }
            // governor rounds the wait down to whole seconds; a client told "0" would retry
            // at once and be refused again, so round up instead.
            let retry_after_secs = not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                + 1;
            let mut headers = HeaderMap::new();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            headers.insert(X_RATELIMIT_AFTER, HeaderValue::from(retry_after_secs));
            headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(burst));
            headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(0));
            ApiError::RateLimited {
                retry_after_secs,
                headers,
            }
        })
    }
}

fn quota(limit: &RateLimit) -> Quota {
    Quota::with_period(limit.replenish_period())
        .expect("Config guarantees a non-zero period")
        .allow_burst(limit.burst)
}

/// What a charged request may be told about its bucket: its size and what is left.
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    limit: u32,
    remaining: u32,
}

impl TierRateLimiter {
    /// Takes one request from `client`'s bucket, on behalf of `tenant`; a refusal is the 429
    /// answer, counted in `metrics`.
    pub fn charge(
        &self,
        tenant: &Arc<str>,
        client: ClientKey,
        metrics: &Metrics,
    ) -> Result<Allowance, ApiError> {
        self.charge_n(tenant, client, NonZeroU32::MIN, NonZeroU32::MIN, metrics)
    }

    /// Takes the rest of a batch of `items` from `client`'s bucket at once, its request having
    /// paid for the first item as [`TierRateLimiter::charge`] does; `None` when nothing is
    /// left to take (a batch of one).
    pub fn charge_rest_of_batch(
        &self,
        tenant: &Arc<str>,
        client: ClientKey,
        items: NonZeroU32,
        metrics: &Metrics,
    ) -> Result<Option<Allowance>, ApiError> {
        NonZeroU32::new(items.get() - 1)
            .map(|rest| self.charge_n(tenant, client, rest, items, metrics))
            .transpose()
    }

    /// Takes `n` requests at once of a request that costs `in_all`.
    fn charge_n(
        &self,
        tenant: &Arc<str>,
        client: ClientKey,
        n: NonZeroU32,
        in_all: NonZeroU32,
        metrics: &Metrics,
    ) -> Result<Allowance, ApiError> {
        let snapshot = self.check_n(client, n, in_all).inspect_err(|error| {
            if let ApiError::RateLimited { .. } = error {
                metrics.rate_limited(tenant);
            }
        })?;
        Ok(Allowance {
            limit: snapshot.quota().burst_size().get(),
            remaining: snapshot.remaining_burst_capacity(),
        })
    }
}

/// `x-ratelimit-limit` and `x-ratelimit-remaining` on an allowed answer.
impl IntoResponseParts for Allowance {
    type Error = Infallible;

    fn into_response_parts(self, mut parts: ResponseParts) -> Result<ResponseParts, Infallible> {
        let headers = parts.headers_mut();
        headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(self.limit));
        headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(self.remaining));
        Ok(parts)
    }
}

/// How many proxies in front are trusted to append the client's address to `X-Forwarded-For`
/// (see [`crate::Config::trusted_proxy_hops`]).
#[derive(Debug, Clone, Copy)]
pub struct TrustedProxyHops(pub usize);

/// The address a request is counted against, as the module's header describes; `None` only
/// when the server records no peer addresses and no trusted proxy named one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKey(pub Option<IpAddr>);

impl ClientKey {
    /// The client key of the request whose head is `parts`: worked out by the first step that
    /// asks (the request log, for its line) and kept in the request's extensions, so
    /// identification and rate limiting use that same key at no further cost.
    pub fn of(parts: &mut Parts, hops: TrustedProxyHops) -> Self {
        if let Some(known) = parts.extensions.get::<Self>() {
            return *known;
        }
        let key = Self(client_key(parts, hops.0));
        parts.extensions.insert(key);
        key
    }
}

/// Extracting a `ClientKey` cannot fail: without a trusted `X-Forwarded-For` entry the peer is
/// the client.
impl<S> FromRequestParts<S> for ClientKey
where
    TrustedProxyHops: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        Ok(Self::of(parts, TrustedProxyHops::from_ref(state)))
    }
}

/// Drops, every [`FORGET_IDLE_CLIENTS_EVERY`], the buckets that have refilled completely: a
/// client that comes back gets a fresh, identical one. Ends once the buckets are dropped.
pub async fn forget_idle_clients(buckets: Weak<ClientBuckets>) {
    let mut ticks = tokio::time::interval(FORGET_IDLE_CLIENTS_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(buckets) = buckets.upgrade() else {
            return;
        };
        buckets.retain_recent();
        buckets.shrink_to_fit();
    }
}

/// The address a request is counted against: the trusted `X-Forwarded-For` entry when
/// `trusted_proxy_hops` > 0 and it is there, else the TCP peer. IPv6 clients are counted per
/// /64, the block one subscriber usually gets, so rotating addresses inside it doesn't help.
fn client_key(parts: &Parts, trusted_proxy_hops: usize) -> Option<IpAddr> {
    let peer = || {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
    };
    forwarded_client(&parts.headers, trusted_proxy_hops)
        .or_else(peer)
        .map(service_kit::client_of)
}

/// The `hops`-th `X-Forwarded-For` entry from the right, across all header lines in order.
/// `None` when there are fewer entries (the request did not come through the proxies, so the
/// peer is the client) or when `hops` is 0.
fn forwarded_client(headers: &HeaderMap, hops: usize) -> Option<IpAddr> {
    let position_from_right = hops.checked_sub(1)?;
    let entry = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|line| line.as_bytes().rsplit(|byte| *byte == b','))
        .nth(position_from_right)?;
    parse_forwarded_address(std::str::from_utf8(entry).ok()?.trim())
}

/// `1.2.3.4`, `2001:db8::1`, and the forms with a port (`1.2.3.4:80`, `[2001:db8::1]:80`).
fn parse_forwarded_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn request(peer: &str, forwarded_for: &[&str]) -> Parts {
        let (mut parts, ()) = Request::new(()).into_parts();
        let peer: SocketAddr = peer.parse().unwrap();
        parts.extensions.insert(ConnectInfo(peer));
        for line in forwarded_for {
            parts
                .headers
                .append(X_FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
        }
        parts
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn zero_hops_keys_by_peer_and_ignores_forwarded_for() {
        let request = request("10.0.0.1:5555", &["203.0.113.9"]);
        assert_eq!(client_key(&request, 0), Some(ip("10.0.0.1")));
    }

    #[test]
    fn one_hop_takes_the_right_most_entry_whatever_the_client_prepended() {
        for lines in [
            &["203.0.113.9"][..],
            &["1.1.1.1, 203.0.113.9"],
            &["1.1.1.1,2.2.2.2 ,203.0.113.9"],
            &["garbage, 1.1.1.1", "203.0.113.9"],
        ] {
            let request = request("10.0.0.1:5555", lines);
            assert_eq!(
                client_key(&request, 1),
                Some(ip("203.0.113.9")),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn two_hops_take_the_second_entry_from_the_right() {
        let request = request("10.0.0.1:5555", &["6.6.6.6, 203.0.113.9", "198.51.100.1"]);
        assert_eq!(client_key(&request, 2), Some(ip("203.0.113.9")));
    }

    #[test]
    fn too_few_entries_fall_back_to_the_peer() {
        assert_eq!(
            client_key(&request("10.0.0.1:5555", &[]), 1),
            Some(ip("10.0.0.1"))
        );
        let request = request("10.0.0.1:5555", &["203.0.113.9"]);
        assert_eq!(client_key(&request, 2), Some(ip("10.0.0.1")));
    }

    #[test]
    fn entries_with_ports_and_brackets_are_understood() {
        for (entry, expected) in [
            ("203.0.113.9:443", "203.0.113.9"),
            ("[2001:db8::1]:443", "2001:db8::"),
            ("[2001:db8::1]", "2001:db8::"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
        ] {
            let request = request("10.0.0.1:5555", &[entry]);
            assert_eq!(client_key(&request, 1), Some(ip(expected)), "{entry}");
        }
    }

    #[test]
    fn a_requests_client_key_is_worked_out_once_and_kept() {
        let mut parts = request("10.0.0.1:5555", &["203.0.113.9"]);
        let first = ClientKey::of(&mut parts, TrustedProxyHops(1));
        parts
            .headers
            .insert(X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.1"));
        assert_eq!(first, ClientKey(Some(ip("203.0.113.9"))));
        assert_eq!(ClientKey::of(&mut parts, TrustedProxyHops(1)), first);
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_block() {
        let a = request("[2001:db8:1:2:aaaa::1]:5555", &[]);
        let b = request("[2001:db8:1:2:bbbb::2]:5555", &[]);
        let other_block = request("[2001:db8:1:3::1]:5555", &[]);
        assert_eq!(client_key(&a, 0), client_key(&b, 0));
        assert_ne!(client_key(&a, 0), client_key(&other_block, 0));
    }
}
