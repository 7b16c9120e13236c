//! Who is calling. A request to `/api/*` or `/mcp` presents an API key in `x-api-key: <key>` or
//! `Authorization: Bearer <key>` (`x-api-key` wins when both are sent, so a proxy in front
//! can use `Authorization` for itself; other `Authorization` schemes are not ours and are
//! ignored). The key names its tenant; no key means the anonymous tier, or 401 when that is
//! off. Everything else (the page) is served to anyone as the anonymous tier.
//!
//! Keys are compared in constant time, never logged and never forwarded: the sandbox learns
//! the tenant from `x-tenant-id` instead (see [`crate::proxy`]). Failed attempts are charged
//! to the client's anonymous rate-limit bucket, so keys cannot be guessed at full speed.
//!
//! Each step takes the value of the step before it, so none can be skipped or run out of
//! order: identification finds a [`Caller`] (the tier, and the client key it is counted
//! by); charging that caller to its tier's rate limit makes it [`Admitted`]; and the proxy
//! forwards only for an admitted caller. On `/api/*` routes and `/mcp` both steps run as
//! [`Admitted`] is extracted; in front of the page, in [`admit_visitor`].

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use contract::capabilities::Capabilities;
use service_kit::telemetry::traces;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::Config;
use crate::error::{ApiError, AuthFailure};
use crate::metrics::Metrics;
use crate::rate_limit::{self, Allowance, ClientKey, RateLimit, TierRateLimiter, TrustedProxyHops};
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
    fn charge(&self, client: ClientKey, metrics: &Metrics) -> Result<Option<Allowance>, ApiError> {
        self.rate_limiter
            .as_ref()
            .map(|limiter| limiter.charge(&self.id, client, metrics))
            .transpose()
    }
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

/// What identification needs: every tier, which proxies to trust for the client's address,
/// and the metrics that count failed attempts and refusals.
#[derive(Clone)]
pub struct Identification {
    directory: Arc<Directory>,
    hops: TrustedProxyHops,
    metrics: Arc<Metrics>,
}

impl Identification {
    /// Identification of `config`'s tenants and anonymous tier, counting in `metrics`.
    ///
    /// # Panics
    /// Outside a Tokio runtime when the anonymous tier is rate-limited: the sweeper of idle
    /// clients' buckets is spawned here, and ends by itself once the buckets are dropped.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Self {
        let directory = Directory::new(&config.tenants, config.rate_limit.as_ref());
        if let Some(buckets) = directory
            .anonymous()
            .rate_limiter
            .as_ref()
            .and_then(TierRateLimiter::client_buckets)
        {
            tokio::spawn(rate_limit::forget_idle_clients(buckets));
        }
        Self {
            directory: Arc::new(directory),
            hops: TrustedProxyHops(config.trusted_proxy_hops),
            metrics,
        }
    }

    /// The caller of an `/api/*` request: the tier its key names, or the anonymous tier when it
    /// presents none and that tier is on. A failure answers 401, and is charged to the
    /// client's anonymous bucket, so that 429 answers a client that keeps failing.
    fn authenticate(&self, headers: &HeaderMap, client: ClientKey) -> Result<Caller, ApiError> {
        match self.directory.authenticate(headers) {
            Ok(tier) => Ok(Caller::identified(tier, client)),
            Err(failure) => {
                self.metrics.auth_failed(failure);
                tracing::info!(reason = failure.reason(), "request not authenticated");
                self.directory.anonymous().charge(client, &self.metrics)?;
                Err(ApiError::Unauthorized(failure))
            }
        }
    }

    /// The caller of a request for the page: always the anonymous tier, with no key asked.
    fn visitor(&self, client: ClientKey) -> Caller {
        Caller::identified(self.directory.anonymous().clone(), client)
    }

    /// The anonymous tier with no client, for answers that are the same for everyone and
    /// charged to no one (the API's description).
    pub fn nobody(&self) -> Caller {
        Caller {
            tier: self.directory.anonymous().clone(),
            client: ClientKey(None),
        }
    }
}

impl FromRef<Identification> for TrustedProxyHops {
    fn from_ref(identification: &Identification) -> Self {
        identification.hops
    }
}

/// Who a request is from, as identification found it; nothing else makes one.
#[derive(Clone)]
pub struct Caller {
    tier: Arc<Tier>,
    client: ClientKey,
}

impl Caller {
    /// The caller's tenant, or the anonymous tier.
    pub fn tier(&self) -> &Tier {
        &self.tier
    }

    /// The client's address as the rate limiter counts it.
    pub fn client(&self) -> ClientKey {
        self.client
    }

    /// The caller once identification has found its tier; its tenant goes into the request's
    /// log span.
    fn identified(tier: Arc<Tier>, client: ClientKey) -> Self {
        tracing::Span::current().record("tenant", &*tier.id);
        Self { tier, client }
    }

    /// Charges the rest of a batch of `items` to the caller's bucket at once, its request
    /// having paid for the first on arrival. What the answer may say about the bucket now
    /// (`None` when nothing was charged: no rate limit, or a batch of one), or the 429 answer
    /// (422 for a batch larger than the bucket).
    pub fn charge_rest_of_batch(
        &self,
        items: std::num::NonZeroU32,
        metrics: &Metrics,
    ) -> Result<Option<Allowance>, ApiError> {
        let Some(limiter) = &self.tier.rate_limiter else {
            return Ok(None);
        };
        limiter.charge_rest_of_batch(&self.tier.id, self.client, items, metrics)
    }

    /// Charges one request to the caller's bucket: the caller, let through with what its
    /// answer may say about the bucket, or the 429 answer.
    fn admit(self, metrics: &Metrics) -> Result<Admitted, ApiError> {
        let allowance = self.tier.charge(self.client, metrics)?;
        Ok(Admitted {
            caller: self,
            allowance,
        })
    }
}

/// A caller that identification found and its rate limit let through: what the proxy takes
/// to forward a request. Extracting it on an `/api/*` route identifies the caller and then
/// charges its bucket, in that order, answering 401 or 429 when either refuses.
pub struct Admitted {
    caller: Caller,
    allowance: Option<Allowance>,
}

impl Admitted {
    /// The caller, and what the answer tells it about its bucket (`x-ratelimit-limit` and
    /// `x-ratelimit-remaining`; `None` when its tier has no rate limit).
    pub fn into_parts(self) -> (Caller, Option<Allowance>) {
        (self.caller, self.allowance)
    }
}

impl<S> FromRequestParts<S> for Admitted
where
    Identification: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let identification = Identification::from_ref(state);
        let client = ClientKey::of(parts, identification.hops);
        let request = tracing::Span::current();
        let span = traces::span(|| {
            tracing::info_span!(
                "identification",
                tenant = tracing::field::Empty,
                refusal.reason = tracing::field::Empty
            )
        });
        let caller = span.in_scope(|| {
            let caller = identification.authenticate(&parts.headers, client);
            if let Err(refusal) = &caller {
                tracing::Span::current().record("refusal.reason", refusal.kind().as_str());
            }
            caller
        })?;
        // Recorded in identification's span, when traces are exported; the request's span, its
        // parent, gets it too. Otherwise identification ran in the request's span, which has it.
        if !span.is_disabled() {
            request.record("tenant", &*caller.tier().id);
        }
        traces::span(|| {
            tracing::info_span!(
                "rate_limit",
                tenant.id = &*caller.tier().id,
                refusal.reason = tracing::field::Empty
            )
        })
        .in_scope(|| {
            let admitted = caller.admit(&identification.metrics);
            if let Err(refusal) = &admitted {
                tracing::Span::current().record("refusal.reason", refusal.kind().as_str());
            }
            admitted
        })
    }
}

/// Middleware in front of the page: every visitor is the anonymous tier, charged per client.
pub async fn admit_visitor(
    State(identification): State<Identification>,
    client: ClientKey,
    request: Request,
    next: Next,
) -> Response {
    let visitor = identification.visitor(client);
    match visitor.admit(&identification.metrics) {
        Err(refusal) => refusal.into_response(),
        Ok(admitted) => (admitted.allowance, next.run(request).await).into_response(),
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
