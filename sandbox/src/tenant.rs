//! Which tenant a request belongs to and what it may use, from the headers the ingress sets
//! (see `contract::tenant`): `x-tenant-id`, `x-tenant-limits`, `x-tenant-capabilities` (what
//! host functions such as `fetch` it may use, `contract::capabilities`), and for the anonymous
//! tier `x-client-key`, so that each anonymous client takes its own turns. The sandbox is reachable
//! only by the ingress, which removes these headers from client requests and sets them itself,
//! so they are trusted here. Without them a request belongs to [`ANONYMOUS`] with the server's
//! own limits, and its client is its TCP peer (an IPv6 peer's /64), as the ingress tells
//! clients apart: reached directly, the sandbox still gives each address its own turns.

use std::{net::IpAddr, sync::Arc};

use axum::http::{HeaderMap, HeaderName};
use contract::capabilities::{CAPABILITIES_HEADER, Capabilities};
pub use contract::tenant::{ANONYMOUS, Ceilings};

use crate::scheduler::{TenantShare, Turn};
use contract::tenant::{
    BadCeilings, CLIENT_KEY_HEADER, MAX_TENANT_ID_LENGTH, TENANT_ID_HEADER, TENANT_LIMITS_HEADER,
    is_valid_client_key, is_valid_tenant_id,
};

/// The tenant id header set by the ingress.
pub const TENANT_ID: HeaderName = HeaderName::from_static(TENANT_ID_HEADER);
/// The tenant ceilings header set by the ingress.
pub const TENANT_LIMITS: HeaderName = HeaderName::from_static(TENANT_LIMITS_HEADER);
/// The anonymous client header set by the ingress.
pub const CLIENT_KEY: HeaderName = HeaderName::from_static(CLIENT_KEY_HEADER);
/// The tenant capabilities header set by the ingress.
pub const CAPABILITIES: HeaderName = HeaderName::from_static(CAPABILITIES_HEADER);

/// The tenant a request runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The id: ASCII letters, digits, `-`, `_` and `.`.
    pub id: String,
    /// Its ceilings; `None` fields fall back to the server's maximums.
    pub ceilings: Ceilings,
    /// For the anonymous tier, which client: its turns and ceilings are its own.
    pub client: Option<String>,
    /// What the tenants file grants it beyond running code; nothing without the header.
    pub capabilities: Arc<Capabilities>,
}

/// A tenant header the sandbox cannot use; only a broken ingress sends one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantHeaderError {
    #[error(
        "x-tenant-id: expected 1 to {MAX_TENANT_ID_LENGTH} ASCII letters, digits, `-`, `_` or \
         `.`, once"
    )]
    BadId,
    #[error("{0}")]
    BadLimits(#[from] BadCeilings),
    #[error("x-client-key: expected an address of at most 64 characters, once")]
    BadClientKey,
    #[error("x-tenant-capabilities: expected the JSON of the tenant's capabilities, once")]
    BadCapabilities,
}

impl Tenant {
    /// The tenant named by `headers`, or [`ANONYMOUS`] with no ceilings when they name none;
    /// an anonymous request whose headers name no client is `peer`'s.
    pub fn from_headers(
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Self, TenantHeaderError> {
        let id = match single(headers, &TENANT_ID) {
            Ok(None) => ANONYMOUS.to_owned(),
            Ok(Some(id)) if is_valid_tenant_id(id) => id.to_owned(),
            _ => return Err(TenantHeaderError::BadId),
        };
        let ceilings = match single(headers, &TENANT_LIMITS) {
            Ok(None) => Ceilings::default(),
            Ok(Some(text)) => Ceilings::parse(text)?,
            Err(()) => return Err(BadCeilings.into()),
        };
        let client = match single(headers, &CLIENT_KEY) {
            Ok(None) if id == ANONYMOUS => {
                peer.map(|peer| service_kit::client_of(peer).to_string())
            }
            Ok(None) => None,
            Ok(Some(key)) if id == ANONYMOUS && is_valid_client_key(key) => Some(key.to_owned()),
            _ => return Err(TenantHeaderError::BadClientKey),
        };
        let capabilities = match single(headers, &CAPABILITIES) {
            Ok(None) => Capabilities::default(),
            Ok(Some(text)) => {
                Capabilities::parse(text).map_err(|_| TenantHeaderError::BadCapabilities)?
            }
            Err(()) => return Err(TenantHeaderError::BadCapabilities),
        };
        Ok(Self {
            id,
            ceilings,
            client,
            capabilities: Arc::new(capabilities),
        })
    }

    /// Who takes turns within the tenant's tier: the tenant, or for the anonymous tier its
    /// client.
    pub fn turn_key(&self) -> &str {
        self.client.as_deref().unwrap_or(&self.id)
    }

    /// Where the request takes its turns for the workers (see [`crate::scheduler`]): its tier,
    /// which may hold `anonymous_max_workers` workers when it is the anonymous tier, and its
    /// client within it, which may hold what `share` says.
    pub fn turn(&self, anonymous_max_workers: usize, share: TenantShare) -> Turn<'_> {
        Turn {
            tier: &self.id,
            client: self.turn_key(),
            tier_max_running: if self.id == ANONYMOUS {
                anonymous_max_workers
            } else {
                usize::MAX
            },
            share,
        }
    }

    /// How the tenant is named in error messages.
    pub fn described(&self) -> String {
        if self.id == ANONYMOUS {
            "the anonymous tier".to_owned()
        } else {
            format!("tenant {}", self.id)
        }
    }
}

/// The header's one value as text; `Err` when it is repeated or not visible ASCII.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, ()> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value.to_str().map(Some).map_err(drop),
        (Some(_), Some(_)) => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use std::{num::NonZeroU64, time::Duration};

    use super::*;
    use axum::http::HeaderValue;
    use contract::limits::{MemoryLimit, TimeLimit};

    fn headers(pairs: &[(&HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn no_headers_means_the_anonymous_tenant_with_no_ceilings() {
        let tenant = Tenant::from_headers(&HeaderMap::new(), None).unwrap();
        assert_eq!(tenant.id, ANONYMOUS);
        assert_eq!(tenant.ceilings, Ceilings::default());
        assert_eq!(*tenant.capabilities, Capabilities::default());
    }

    #[test]
    fn the_capabilities_header_grants_fetch_and_nothing_else_does() {
        let granted = Tenant::from_headers(
            &headers(&[
                (&TENANT_ID, "acme"),
                (&CAPABILITIES, r#"{"fetch":{"hosts":["api.example.com"]}}"#),
            ]),
            None,
        )
        .unwrap();
        let fetch = granted.capabilities.fetch.as_ref().unwrap();
        assert!(fetch.allows_host("api.example.com"));
        for bad in ["{", r#"{"fetch":{"hosts":["a b"]}}"#, r#"{"shell":true}"#] {
            assert_eq!(
                Tenant::from_headers(&headers(&[(&CAPABILITIES, bad)]), None),
                Err(TenantHeaderError::BadCapabilities),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_ingress_headers_name_the_tenant_and_its_ceilings() {
        let tenant = Tenant::from_headers(
            &headers(&[
                (&TENANT_ID, "acme"),
                (
                    &TENANT_LIMITS,
                    "concurrency=2, timeout-ms=10000,memory-mb=64",
                ),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(tenant.id, "acme");
        assert_eq!(
            tenant.ceilings,
            Ceilings {
                concurrency: Some(2),
                timeout: NonZeroU64::new(10_000).map(TimeLimit::from_millis),
                memory: NonZeroU64::new(64).map(MemoryLimit::from_mebibytes),
                batch_items: None,
                sessions: None,
                session_memory: None,
            }
        );
        let partial =
            Tenant::from_headers(&headers(&[(&TENANT_LIMITS, "timeout-ms=500")]), None).unwrap();
        assert_eq!(
            partial.ceilings.timeout.map(TimeLimit::duration),
            Some(Duration::from_millis(500))
        );
        assert_eq!(partial.ceilings.concurrency, None);
    }

    #[test]
    fn each_anonymous_client_takes_its_own_turns() {
        let one = Tenant::from_headers(&headers(&[(&CLIENT_KEY, "192.0.2.1")]), None).unwrap();
        let other = Tenant::from_headers(&headers(&[(&CLIENT_KEY, "2001:db8::")]), None).unwrap();
        assert_eq!(one.id, ANONYMOUS);
        assert_ne!(one.turn_key(), other.turn_key());
        let keyed = Tenant::from_headers(&headers(&[(&TENANT_ID, "acme")]), None).unwrap();
        assert_eq!(keyed.turn_key(), "acme");
        // Only the anonymous tier is split by client.
        let keyed_with_client = headers(&[(&TENANT_ID, "acme"), (&CLIENT_KEY, "192.0.2.1")]);
        assert_eq!(
            Tenant::from_headers(&keyed_with_client, None),
            Err(TenantHeaderError::BadClientKey)
        );
    }

    #[test]
    fn an_anonymous_request_without_a_client_key_is_its_peers_and_an_ipv6_peer_is_its_64() {
        let peer = |address: &str| Some(address.parse().unwrap());
        let one = Tenant::from_headers(&HeaderMap::new(), peer("192.0.2.1")).unwrap();
        let other = Tenant::from_headers(&HeaderMap::new(), peer("192.0.2.2")).unwrap();
        assert_eq!(one.client.as_deref(), Some("192.0.2.1"));
        assert_ne!(one.turn_key(), other.turn_key());
        let v6 = Tenant::from_headers(&HeaderMap::new(), peer("2001:db8:0:1:aaaa::1")).unwrap();
        let same_64 = Tenant::from_headers(&HeaderMap::new(), peer("2001:db8:0:1::2")).unwrap();
        assert_eq!(v6.client.as_deref(), Some("2001:db8:0:1::"));
        assert_eq!(v6.turn_key(), same_64.turn_key());
        // The ingress's key wins over the peer (which is the ingress itself), and a keyed
        // tenant is never split by address.
        let named = headers(&[(&CLIENT_KEY, "198.51.100.7")]);
        let forwarded = Tenant::from_headers(&named, peer("127.0.0.1")).unwrap();
        assert_eq!(forwarded.client.as_deref(), Some("198.51.100.7"));
        let keyed = headers(&[(&TENANT_ID, "acme")]);
        assert_eq!(
            Tenant::from_headers(&keyed, peer("192.0.2.1"))
                .unwrap()
                .client,
            None
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for id in ["", "a b", &"x".repeat(65)] {
            let map = headers(&[(&TENANT_ID, id)]);
            assert_eq!(
                Tenant::from_headers(&map, None),
                Err(TenantHeaderError::BadId),
                "{id:?}"
            );
        }
        let twice = headers(&[(&TENANT_ID, "a"), (&TENANT_ID, "b")]);
        assert_eq!(
            Tenant::from_headers(&twice, None),
            Err(TenantHeaderError::BadId)
        );
        for limits in ["concurrency=0", "threads=2"] {
            assert_eq!(
                Tenant::from_headers(&headers(&[(&TENANT_LIMITS, limits)]), None),
                Err(TenantHeaderError::BadLimits(BadCeilings)),
                "{limits}"
            );
        }
        let twice = headers(&[
            (&TENANT_LIMITS, "concurrency=1"),
            (&TENANT_LIMITS, "memory-mb=2"),
        ]);
        assert_eq!(
            Tenant::from_headers(&twice, None),
            Err(TenantHeaderError::BadLimits(BadCeilings))
        );
    }
}
