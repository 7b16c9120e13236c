//! Per-client rate limiting with tower-governor, and the client key it counts by.
//!
//! Behind Cloud Run's front end the TCP peer is Google's proxy, not the client, so the key comes
//! from `X-Forwarded-For`, and only from the part of it a client cannot write: every proxy
//! appends the address it received the request from, so the N-th entry from the right was
//! written by the N-th trusted proxy (`TRUSTED_PROXY_HOPS`=N). Entries further left are whatever
//! the client sent and are never used. With 0 hops (local use) the TCP peer is the client.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::Deref;
use std::sync::Weak;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use governor::middleware::StateInformationMiddleware;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfigBuilder, SharedRateLimiter};
use tower_governor::key_extractor::KeyExtractor;

use crate::config::RateLimit;
use crate::error::ApiError;

/// How often buckets of clients that have gone quiet are dropped, keeping memory bounded by
/// the number of recently active clients.
pub const FORGET_IDLE_CLIENTS_EVERY: Duration = Duration::from_secs(60);

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_RATELIMIT_AFTER: HeaderName = HeaderName::from_static("x-ratelimit-after");

/// The shared per-client buckets.
pub type ClientRateLimiter = SharedRateLimiter<IpAddr, StateInformationMiddleware>;

/// The rate-limiting layer as it is put on the router.
pub type ClientRateLimitLayer = GovernorLayer<ClientKeyExtractor, StateInformationMiddleware, Body>;

/// Keys requests by [`client_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKeyExtractor {
    /// See [`crate::Config::trusted_proxy_hops`].
    pub trusted_proxy_hops: usize,
}

impl KeyExtractor for ClientKeyExtractor {
    type Key = IpAddr;

    fn extract<T>(&self, request: &Request<T>) -> Result<IpAddr, GovernorError> {
        client_key(request, self.trusted_proxy_hops).ok_or(GovernorError::UnableToExtractKey)
    }
}

/// Builds the layer for `limit` and returns it with a handle on its buckets (for
/// [`forget_idle_clients`]). Successful answers carry `x-ratelimit-limit` and
/// `x-ratelimit-remaining`; refusals are 429 in the API's error shape with `retry-after`.
pub fn layer(
    limit: &RateLimit,
    trusted_proxy_hops: usize,
) -> (ClientRateLimitLayer, ClientRateLimiter) {
    let config = GovernorConfigBuilder::default()
        .period(limit.replenish_period())
        .burst_size(limit.burst.get())
        .key_extractor(ClientKeyExtractor { trusted_proxy_hops })
        .use_headers()
        .finish()
        .expect("Config guarantees a non-zero period and burst");
    let limiter = config.limiter().clone();
    let layer = GovernorLayer::new(config).error_handler(refusal);
    (layer, limiter)
}

/// Drops, every [`FORGET_IDLE_CLIENTS_EVERY`], the buckets that have refilled completely: a
/// client that comes back gets a fresh, identical one. Ends once the limiter is dropped.
pub async fn forget_idle_clients(limiter: Weak<<ClientRateLimiter as Deref>::Target>) {
    let mut ticks = tokio::time::interval(FORGET_IDLE_CLIENTS_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(limiter) = limiter.upgrade() else {
            return;
        };
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

/// The address a request is counted against: the trusted `X-Forwarded-For` entry when
/// `trusted_proxy_hops` > 0 and it is there, else the TCP peer. IPv6 clients are counted per
/// /64, the block one subscriber usually gets, so rotating addresses inside it doesn't help.
pub fn client_key<B>(request: &Request<B>, trusted_proxy_hops: usize) -> Option<IpAddr> {
    let peer = || {
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
    };
    forwarded_client(request.headers(), trusted_proxy_hops)
        .or_else(peer)
        .map(bucket_of)
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

fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
    }
}

/// Turns tower-governor's refusal into the API's error answer.
fn refusal(error: GovernorError) -> Response<Body> {
    match error {
        GovernorError::TooManyRequests { wait_time, headers } => {
            // governor rounds the wait down to whole seconds; a client told "0" would retry
            // at once and be refused again, so round up instead.
            let retry_after_secs = wait_time + 1;
            let mut headers = headers.unwrap_or_default();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            headers.insert(X_RATELIMIT_AFTER, HeaderValue::from(retry_after_secs));
            ApiError::RateLimited {
                retry_after_secs,
                headers,
            }
            .into_response()
        }
        GovernorError::UnableToExtractKey => {
            ApiError::Internal("no client address to rate-limit by").into_response()
        }
        GovernorError::Other { .. } => ApiError::Internal("rate limiter failed").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded_for: &[&str]) -> Request<()> {
        let mut request = Request::new(());
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        for line in forwarded_for {
            request
                .headers_mut()
                .append(X_FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
        }
        request
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
    fn ipv6_clients_share_a_bucket_per_64_block() {
        let a = request("[2001:db8:1:2:aaaa::1]:5555", &[]);
        let b = request("[2001:db8:1:2:bbbb::2]:5555", &[]);
        let other_block = request("[2001:db8:1:3::1]:5555", &[]);
        assert_eq!(client_key(&a, 0), client_key(&b, 0));
        assert_ne!(client_key(&a, 0), client_key(&other_block, 0));
    }
}
