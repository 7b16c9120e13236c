//! Which sites may use `/mcp`: the `Host` it answers for and the `Origin` of a browser's
//! request, checked before anything else (a refusal is 403 `forbidden`, charged to no bucket).
//!
//! The MCP specification asks servers to check both against DNS rebinding: a page on
//! `evil.example` whose name the attacker re-points at the server makes the browser send the
//! attacker's `Host` and `Origin` to it. The SDK's own check allows loopback names only, for
//! servers on a developer's machine; the ingress is a public service whose name Cloud Run's
//! front end (or a custom domain) chooses, so it has its own policy, [`AllowedHosts`]:
//!
//! - `MCP_ALLOWED_HOSTS` unset: any `Host`, and an `Origin`, when a request carries one, must
//!   be that same host (the page's own site, such as the demo page): a page on another site
//!   is refused.
//! - `MCP_ALLOWED_HOSTS` set: the `Host` must be one of them, and so must an `Origin`'s host.
//!
//! MCP clients that are not browsers send no `Origin` and pass the second rule.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::uri::Authority;
use axum::http::{HeaderMap, header};

use crate::error::ApiError;

/// `MCP_ALLOWED_HOSTS`: the hosts `/mcp` answers for, or any host (see the module's header).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedHosts {
    /// Unset: any `Host`; an `Origin` must name the request's own `Host`.
    #[default]
    Any,
    /// Only these (never empty).
    Listed(Vec<HostPattern>),
}

/// One entry of `MCP_ALLOWED_HOSTS`: a host name or address, and a port when one is given
/// (without one, any port of that host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    fn matches(&self, site: &Site) -> bool {
        self.host == site.host && self.port.is_none_or(|port| site.port == Some(port))
    }
}

/// A host and port as a request names them: from `Host`, or from `Origin` (whose port, when
/// it leaves it out, is its scheme's).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Site {
    host: String,
    port: Option<u16>,
}

impl Site {
    fn of_authority(authority: &Authority) -> Self {
        Self {
            host: normalize(authority.host()),
            port: authority.port_u16(),
        }
    }

    /// The site of an `Origin` header, and its scheme's default port; `None` for `null` (an
    /// opaque origin, which is no site) and anything that is not `scheme://host[:port]`.
    fn of_origin(origin: &str) -> Option<(Self, Option<u16>)> {
        let url = url::Url::parse(origin).ok()?;
        let default_port = match url.scheme() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        };
        let site = Self {
            host: normalize(url.host_str()?),
            port: url.port().or(default_port),
        };
        Some((site, default_port))
    }

    /// Whether this `Host` names the same site as an `Origin`: a `Host` without a port is on
    /// the origin scheme's default port (the front end terminates TLS, so the scheme the
    /// client used is the origin's, not the ingress's).
    fn same_as_origin(&self, origin: &Site, default_port: Option<u16>) -> bool {
        self.host == origin.host && self.port.or(default_port) == origin.port
    }
}

/// Lowercase, IPv6 brackets removed: `[::1]` and `::1` are the same host.
fn normalize(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

impl AllowedHosts {
    /// `MCP_ALLOWED_HOSTS`: comma-separated `host` or `host:port` entries.
    pub fn parse(value: &str) -> Result<Self, String> {
        let entries = value
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let authority: Authority = entry
                    .parse()
                    .ok()
                    .filter(|authority: &Authority| authority.as_str() == entry)
                    .ok_or_else(|| {
                        format!("`{entry}` is not a host name or host:port, such as jsbox.example.com or localhost:8080")
                    })?;
                let site = Site::of_authority(&authority);
                Ok(HostPattern {
                    host: site.host,
                    port: site.port,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if entries.is_empty() {
            return Err("expected at least one host name".into());
        }
        Ok(Self::Listed(entries))
    }

    /// `Ok` when a request with `headers` may use `/mcp`; otherwise the 403 answer.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = single(headers, &header::HOST)
            .and_then(|host| host.parse::<Authority>().ok())
            .map(|authority| Site::of_authority(&authority))
            .ok_or(ApiError::Forbidden("the request has no usable Host header"))?;
        if let Self::Listed(allowed) = self
            && !allowed.iter().any(|pattern| pattern.matches(&host))
        {
            return Err(ApiError::Forbidden(
                "this host is not one /mcp answers for (MCP_ALLOWED_HOSTS)",
            ));
        }
        if headers.get(header::ORIGIN).is_none() {
            return Ok(());
        }
        let origin_text = single(headers, &header::ORIGIN)
            .ok_or(ApiError::Forbidden("the Origin header is not one origin"))?;
        let (origin, default_port) = Site::of_origin(origin_text).ok_or(ApiError::Forbidden(
            "requests from pages of another site (Origin) are refused",
        ))?;
        let allowed = match self {
            Self::Any => host.same_as_origin(&origin, default_port),
            Self::Listed(allowed) => allowed.iter().any(|pattern| pattern.matches(&origin)),
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "requests from pages of another site (Origin) are refused",
            ))
        }
    }
}

/// The header's one value as text; `None` when absent, repeated or not visible ASCII.
fn single<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok(),
        _ => None,
    }
}

/// A request whose `Host` and `Origin` [`AllowedHosts`] let through: the first thing `/mcp`
/// extracts, so a refused site is answered 403 before identification and the rate limit.
pub struct PermittedSite;

impl<S> FromRequestParts<S> for PermittedSite
where
    std::sync::Arc<AllowedHosts>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        std::sync::Arc::<AllowedHosts>::from_ref(state).check(&parts.headers)?;
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn allows(policy: &AllowedHosts, pairs: &[(&str, &str)]) -> bool {
        policy.check(&headers(pairs)).is_ok()
    }

    #[test]
    fn unset_any_host_is_served_and_an_origin_must_be_that_host() {
        let any = AllowedHosts::Any;
        assert!(allows(&any, &[("host", "jsbox-abc.a.run.app")]));
        assert!(allows(&any, &[("host", "127.0.0.1:8080")]));
        // Behind a TLS-terminating front end, the Host has no port and the Origin is https.
        assert!(allows(
            &any,
            &[
                ("host", "jsbox-abc.a.run.app"),
                ("origin", "https://jsbox-abc.a.run.app")
            ]
        ));
        assert!(allows(
            &any,
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080")
            ]
        ));
        for origin in [
            "https://evil.example",
            "http://127.0.0.1:9999",
            "https://jsbox-abc.a.run.app.evil.example",
            "null",
            "not an origin",
        ] {
            assert!(
                !allows(&any, &[("host", "jsbox-abc.a.run.app"), ("origin", origin)]),
                "{origin}"
            );
        }
        assert!(!allows(
            &any,
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:9999")
            ]
        ));
        assert!(!allows(&any, &[]));
    }

    #[test]
    fn listed_hosts_are_the_only_hosts_and_origins_served() {
        let listed = AllowedHosts::parse("jsbox.example.com, localhost:8080").unwrap();
        assert!(allows(&listed, &[("host", "jsbox.example.com")]));
        assert!(allows(&listed, &[("host", "JSBOX.example.com:443")]));
        assert!(allows(&listed, &[("host", "localhost:8080")]));
        assert!(!allows(&listed, &[("host", "localhost:9090")]));
        assert!(!allows(&listed, &[("host", "rebound.evil.example")]));
        assert!(allows(
            &listed,
            &[
                ("host", "jsbox.example.com"),
                ("origin", "https://jsbox.example.com")
            ]
        ));
        // A listed site may call another listed one.
        assert!(allows(
            &listed,
            &[
                ("host", "jsbox.example.com"),
                ("origin", "http://localhost:8080")
            ]
        ));
        assert!(!allows(
            &listed,
            &[
                ("host", "jsbox.example.com"),
                ("origin", "https://evil.example")
            ]
        ));
    }

    #[test]
    fn bad_entries_are_refused_with_the_entry_named() {
        assert!(AllowedHosts::parse(" , ").is_err());
        for bad in ["https://jsbox.example.com", "jsbox.example.com/mcp", "a b"] {
            let error = AllowedHosts::parse(bad).unwrap_err();
            assert!(error.contains(bad), "{error}");
        }
        assert_eq!(
            AllowedHosts::parse("[::1]:8080").unwrap(),
            AllowedHosts::Listed(vec![HostPattern {
                host: "::1".into(),
                port: Some(8080)
            }])
        );
    }
}
