//! Who is calling. A request to `/api/*` presents an API key in `x-api-key: <key>` or
//! `Authorization: Bearer <key>` (`x-api-key` wins when both are sent, so a proxy in front
//! can use `Authorization` for itself; other `Authorization` schemes are not ours and are
//! ignored). The key names its tenant; no key means the anonymous tier, or 401 when that is
//! off. Everything else (the page) is served to anyone as the anonymous tier.
//!
//! Keys are compared in constant time, never logged and never forwarded: the sandbox learns
//! the tenant from `x-tenant-id` instead (see [`crate::proxy`]). Failed attempts are charged
//! to the client's anonymous rate-limit bucket, so keys cannot be guessed at full speed.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use contract::capabilities::Capabilities;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::error::{ApiError, AuthFailure};
use crate::metrics::Metrics;
use crate::rate_limit::{Allowance, ClientKey, RateLimit, TierRateLimiter};
use crate::sources::rules::SourceRules;
use crate::tenants::{ANONYMOUS, KeyHash, Tenants};

/// The header that carries a key on its own.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Longest key accepted; anything longer is not a key of ours and is not hashed.
const MAX_KEY_LENGTH: usize = 512;

/// A tenant, or the anonymous tier, as the ingress serves it.
pub struct Tier {
    /// The tenant id, [`ANONYMOUS`] for the anonymous tier: sent to the sandbox as
    /// `x-tenant-id`, logged, and the `tenant` label of the metrics.
    pub id: Arc<str>,
    /// `x-tenant-limits` for the sandbox; `None` leaves the sandbox's own maximums.
    pub limits: Option<HeaderValue>,
    /// The tier's buckets: one per tenant, one per client address for the anonymous tier;
    /// `None` when it has no rate limit.
    pub rate_limiter: Option<TierRateLimiter>,
    /// Where the tier may load scripts from (`url`).
    pub sources: Arc<SourceRules>,
    /// The `x-tenant-capabilities` header for the sandbox (`fetch`); `None` when nothing is
    /// granted.
    pub capabilities: Option<HeaderValue>,
}

impl Tier {
    fn new(
        id: &str,
        limits: Option<String>,
        rate_limiter: Option<TierRateLimiter>,
        sources: &SourceRules,
        capabilities: &Capabilities,
    ) -> Arc<Self> {
        Arc::new(Self {
            sources: Arc::new(sources.clone()),
            capabilities: capabilities.header_value().map(|json| {
                HeaderValue::try_from(json).expect("capabilities are written as plain JSON")
            }),
            id: Arc::from(id),
            limits: limits.map(|limits| {
                HeaderValue::try_from(limits).expect("ceilings are written as plain ASCII")
            }),
            rate_limiter,
        })
    }

    /// Takes one request from `client`'s bucket of this tier. `Ok(None)` when the tier has no
    /// rate limit; a refusal is the 429 answer, counted in `metrics`.
    fn charge(
        &self,
        client: Option<IpAddr>,
        metrics: &Metrics,
    ) -> Result<Option<Allowance>, ApiError> {
        self.rate_limiter
            .as_ref()
            .map(|limiter| limiter.charge(&self.id, client, metrics))
            .transpose()
    }
}

/// Who a request is from; put in the request's extensions by [`identify`].
#[derive(Clone)]
pub struct Caller {
    pub tier: Arc<Tier>,
    /// The client's address as the rate limiter counts it (see [`ClientKey`]).
    pub client: Option<IpAddr>,
}

/// Every tier, and the key hashes that lead to them.
pub struct Directory {
    anonymous: Arc<Tier>,
    anonymous_enabled: bool,
    keys: Vec<(KeyHash, Arc<Tier>)>,
}

impl Directory {
    /// The tiers of `tenants`; `anonymous_rate_limit` is the anonymous tier's, per client.
    pub fn new(tenants: &Tenants, anonymous_rate_limit: Option<&RateLimit>) -> Self {
        let anonymous = Tier::new(
            ANONYMOUS,
            tenants.anonymous.ceilings.header_value(),
            anonymous_rate_limit.map(TierRateLimiter::per_client),
            &tenants.anonymous.sources,
            &tenants.anonymous.capabilities,
        );
        let keys = tenants
            .tenants
            .iter()
            .flat_map(|tenant| {
                let tier = Tier::new(
                    &tenant.id,
                    tenant.ceilings.header_value(),
                    tenant.rate_limit.as_ref().map(TierRateLimiter::shared),
                    &tenant.sources,
                    &tenant.capabilities,
                );
                tenant.keys.iter().map(move |key| (*key, tier.clone()))
            })
            .collect();
        Self {
            anonymous,
            anonymous_enabled: tenants.anonymous.enabled,
            keys,
        }
    }

    /// The anonymous tier (also used for the page and for failed attempts).
    pub fn anonymous(&self) -> &Arc<Tier> {
        &self.anonymous
    }

    /// The tier of an `/api/*` request with `headers`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Tier>, AuthFailure> {
        match presented_key(headers)? {
            Some(key) => self.find(key).ok_or(AuthFailure::Unknown),
            None if self.anonymous_enabled => Ok(self.anonymous.clone()),
            None => Err(AuthFailure::Missing),
        }
    }

    /// The tier whose key is `key`. The presented key's digest is compared with every stored
    /// digest, in constant time and without stopping at a match, so the time taken says
    /// nothing about which stored digest, if any, matched or how much of it did. (A hash map
    /// keyed by the digest would leak only facts about digests, which do not help find a key;
    /// the scan is chosen because it needs no such argument and costs microseconds for
    /// thousands of keys, next to the hashing itself.)
    fn find(&self, key: &str) -> Option<Arc<Tier>> {
        let presented = KeyHash::of_key(key);
        // 1 + the index of the matching entry; 0 for none.
        let mut found = 0u32;
        for (index, (stored, _)) in self.keys.iter().enumerate() {
            let candidate = u32::try_from(index + 1).unwrap_or(u32::MAX);
            found.conditional_assign(&candidate, stored.0.ct_eq(&presented.0));
        }
        let index = usize::try_from(found).ok()?.checked_sub(1)?;
        Some(self.keys.get(index)?.1.clone())
    }
}

/// The key a request presents: `x-api-key`, else `Authorization: Bearer`. `Ok(None)` when it
/// presents none (an `Authorization` of another scheme is for someone else).
fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, AuthFailure> {
    if let Some(key) = single_header(headers, &X_API_KEY)? {
        return usable_key(key.trim()).map(Some);
    }
    let Some(authorization) = single_header(headers, &header::AUTHORIZATION)? else {
        return Ok(None);
    };
    let (scheme, credentials) = authorization
        .trim()
        .split_once(' ')
        .unwrap_or((authorization.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    usable_key(credentials.trim()).map(Some)
}

/// The header's one value as text; malformed when repeated or not visible ASCII.
fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, AuthFailure> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value.to_str().map(Some).map_err(|_| AuthFailure::Malformed),
        (Some(_), Some(_)) => Err(AuthFailure::Malformed),
    }
}

fn usable_key(key: &str) -> Result<&str, AuthFailure> {
    let usable = (1..=MAX_KEY_LENGTH).contains(&key.len())
        && key.bytes().all(|byte| byte.is_ascii_graphic());
    if usable {
        Ok(key)
    } else {
        Err(AuthFailure::Malformed)
    }
}

/// State of [`identify`].
#[derive(Clone)]
pub struct Identification {
    pub directory: Arc<Directory>,
    pub metrics: Arc<Metrics>,
}

/// Middleware: finds the [`Caller`] of a request, records its tenant in the request's log
/// span, and answers 401 (or 429, when the client keeps failing) if an `/api/*` request is
/// not authenticated.
pub async fn identify(
    State(identification): State<Identification>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(&ClientKey(client)) = request.extensions().get::<ClientKey>() else {
        return ApiError::Internal("identification before the client key").into_response();
    };
    let directory = &identification.directory;
    let tier = if request.uri().path().starts_with("/api/") {
        match directory.authenticate(request.headers()) {
            Ok(tier) => tier,
            Err(failure) => {
                identification.metrics.auth_failed(failure);
                tracing::info!(reason = failure.reason(), "request not authenticated");
                let anonymous = directory.anonymous();
                if let Err(refusal) = anonymous.charge(client, &identification.metrics) {
                    return refusal.into_response();
                }
                return ApiError::Unauthorized(failure).into_response();
            }
        }
    } else {
        directory.anonymous().clone()
    };
    tracing::Span::current().record("tenant", &*tier.id);
    request.extensions_mut().insert(Caller { tier, client });
    next.run(request).await
}

/// Middleware, after [`identify`]: charges the request to its [`Caller`]'s bucket. Allowed
/// answers carry `x-ratelimit-limit` and `x-ratelimit-remaining`; refusals are 429 in the
/// API's error shape with `retry-after`.
pub async fn enforce_rate_limit(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(caller) = request.extensions().get::<Caller>() else {
        return ApiError::Internal("rate limiting before identification").into_response();
    };
    match caller.tier.charge(caller.client, &metrics) {
        Err(refusal) => refusal.into_response(),
        Ok(None) => next.run(request).await,
        Ok(Some(allowance)) => {
            let mut response = next.run(request).await;
            allowance.tell(response.headers_mut());
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::{Ceilings, Tenant};

    fn directory(anonymous_enabled: bool) -> Directory {
        let mut tenants = Tenants::default();
        tenants.anonymous.enabled = anonymous_enabled;
        for (id, keys) in [
            ("acme", ["acme-1", "acme-2"]),
            ("beta", ["beta-1", "beta-2"]),
        ] {
            tenants.tenants.push(Tenant {
                id: id.to_owned(),
                keys: keys.iter().map(|key| KeyHash::of_key(key)).collect(),
                rate_limit: None,
                ceilings: Ceilings::default(),
                sources: Default::default(),
                capabilities: Default::default(),
            });
        }
        Directory::new(&tenants, None)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn tenant_of(directory: &Directory, pairs: &[(&str, &str)]) -> Result<String, AuthFailure> {
        directory
            .authenticate(&headers(pairs))
            .map(|tier| tier.id.to_string())
    }

    #[test]
    fn every_key_leads_to_its_tenant_in_either_header() {
        let directory = directory(false);
        assert_eq!(
            tenant_of(&directory, &[("authorization", "Bearer acme-2")]),
            Ok("acme".into())
        );
        assert_eq!(
            tenant_of(&directory, &[("authorization", "bearer  beta-1 ")]),
            Ok("beta".into())
        );
        assert_eq!(
            tenant_of(&directory, &[("x-api-key", "beta-2")]),
            Ok("beta".into())
        );
        // x-api-key wins over a bearer token meant for a proxy in front.
        assert_eq!(
            tenant_of(
                &directory,
                &[
                    ("authorization", "Bearer proxy-token"),
                    ("x-api-key", "acme-1")
                ]
            ),
            Ok("acme".into())
        );
    }

    #[test]
    fn failures_say_whether_the_key_was_missing_unknown_or_malformed() {
        let closed = directory(false);
        assert_eq!(tenant_of(&closed, &[]), Err(AuthFailure::Missing));
        assert_eq!(
            tenant_of(&closed, &[("authorization", "Basic dXNlcjpwdw==")]),
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            tenant_of(&closed, &[("authorization", "Bearer nope")]),
            Err(AuthFailure::Unknown)
        );
        assert_eq!(
            tenant_of(&closed, &[("authorization", "Bearer ACME-1")]),
            Err(AuthFailure::Unknown)
        );
        for malformed in [
            &[("authorization", "Bearer")][..],
            &[("authorization", "Bearer a b")],
            &[("x-api-key", "")],
            &[("x-api-key", "acme-1"), ("x-api-key", "acme-1")],
            &[
                ("authorization", "Bearer acme-1"),
                ("authorization", "Bearer acme-1"),
            ],
        ] {
            assert_eq!(
                tenant_of(&closed, malformed),
                Err(AuthFailure::Malformed),
                "{malformed:?}"
            );
        }
        let long = "k".repeat(MAX_KEY_LENGTH + 1);
        assert_eq!(
            tenant_of(&closed, &[("x-api-key", &long)]),
            Err(AuthFailure::Malformed)
        );
    }

    #[test]
    fn without_a_key_requests_are_anonymous_when_the_tier_is_on() {
        let open = directory(true);
        assert_eq!(tenant_of(&open, &[]), Ok(ANONYMOUS.into()));
        // A key that is presented must still be right.
        assert_eq!(
            tenant_of(&open, &[("x-api-key", "wrong")]),
            Err(AuthFailure::Unknown)
        );
    }
}
