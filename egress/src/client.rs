//! An HTTP client for requests made on someone else's behalf, with the address rules applied
//! where it matters: when the connection is made.
//!
//! - [`CheckedResolver`] resolves a name with the system's resolver and refuses the whole
//!   answer when any address in it is blocked, so a name cannot pair a public address with an
//!   internal one and hope the internal one is tried. reqwest connects only to the addresses
//!   the resolver returned, so a name that changes its answer between a check and the
//!   connection (DNS rebinding) gains nothing.
//! - [`check_url`] applies the same rules to URLs whose host is an address (which no resolver
//!   sees) and allows only `http` and `https`.
//! - [`redirect_policy`] re-checks every hop of a redirect chain, with the caller's own
//!   allow-list, and stops after [`MAX_REDIRECTS`].
//! - [`client_builder`] puts them together without any proxy from the environment, cookie
//!   store, or default credentials.
//!
//! A refused request's error carries an [`EgressError`] in its source chain; [`refusal`] finds
//! it, so callers can tell "blocked by a rule" from "the network failed".

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    redirect,
};
use url::{Host, Url};

use crate::address::{AddressPolicy, BlockedAddress, check_address};

/// Why a request was refused before or while connecting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// A host name resolved to at least one blocked address.
    #[error("{host} resolves to {blocked}")]
    ResolvesToBlocked {
        host: String,
        blocked: BlockedAddress,
    },
    /// The URL names a blocked address directly.
    #[error("the URL's host {blocked}")]
    Address { blocked: BlockedAddress },
    /// Only `http` and `https` are allowed.
    #[error("the scheme `{0}` is not allowed: only http and https are")]
    Scheme(String),
    /// The URL has no host, or one that cannot be used.
    #[error("the URL has no usable host")]
    NoHost,
    /// The caller's allow-list refused a hop of a redirect chain (named by its origin).
    #[error("a redirect to {url} was refused: {reason}")]
    RedirectRefused { url: String, reason: String },
    /// The redirect chain was longer than allowed.
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    /// The name could not be resolved.
    #[error("{host} could not be resolved: {message}")]
    Unresolved { host: String, message: String },
}

/// Resolves names with the system's resolver and refuses answers with any blocked address.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckedResolver {
    pub policy: AddressPolicy,
}

impl CheckedResolver {
    /// Every address `host` resolves to, if none of them is blocked.
    pub async fn resolve_checked(&self, host: &str) -> Result<Vec<IpAddr>, EgressError> {
        let unresolved = |message: String| EgressError::Unresolved {
            host: host.to_owned(),
            message,
        };
        let addresses: Vec<IpAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|error| unresolved(error.to_string()))?
            .map(|address| address.ip())
            .collect();
        if addresses.is_empty() {
            return Err(unresolved("no addresses".to_owned()));
        }
        for address in &addresses {
            check_address(*address, self.policy).map_err(|blocked| {
                EgressError::ResolvesToBlocked {
                    host: host.to_owned(),
                    blocked,
                }
            })?;
        }
        Ok(addresses)
    }
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = *self;
        Box::pin(async move {
            let addresses = resolver.resolve_checked(name.as_str()).await?;
            let addrs: Addrs = Box::new(
                addresses
                    .into_iter()
                    .map(|address| SocketAddr::new(address, 0)),
            );
            Ok(addrs)
        })
    }
}

/// Checks what can be checked of a URL before any connection: its scheme, and its host when
/// that is an address (names are checked by [`CheckedResolver`] when connecting).
pub fn check_url(url: &Url, policy: AddressPolicy) -> Result<(), EgressError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EgressError::Scheme(url.scheme().to_owned()));
    }
    let address = match url.host() {
        None => return Err(EgressError::NoHost),
        Some(Host::Domain(domain)) => {
            // A name that is an address in another notation (`0x7f.1`, `2130706433`) is
            // normalised by the URL parser; anything left is resolved, then checked.
            match domain.parse::<IpAddr>() {
                Ok(address) => address,
                Err(_) => return Ok(()),
            }
        }
        Some(Host::Ipv4(address)) => IpAddr::V4(address),
        Some(Host::Ipv6(address)) => IpAddr::V6(address),
    };
    check_address(address, policy).map_err(|blocked| EgressError::Address { blocked })
}

/// Most redirects one request follows, wherever the service follows them.
pub const MAX_REDIRECTS: usize = 5;

/// A redirect policy that stops after [`MAX_REDIRECTS`], and refuses a hop whose URL fails
/// [`check_url`] or `allow` (the caller's allow-list; its error text names the rule).
pub fn redirect_policy(
    policy: AddressPolicy,
    allow: impl Fn(&Url) -> Result<(), String> + Send + Sync + 'static,
) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(EgressError::TooManyRedirects(MAX_REDIRECTS));
        }
        let url = attempt.url().clone();
        if let Err(error) = check_url(&url, policy) {
            return attempt.error(error);
        }
        match allow(&url) {
            Ok(()) => attempt.follow(),
            // The origin only: a path or query may carry a secret.
            Err(reason) => attempt.error(EgressError::RedirectRefused {
                url: url.origin().ascii_serialization(),
                reason,
            }),
        }
    })
}

/// A client builder with the checked resolver, no proxy (a proxy would resolve names itself,
/// past the rules), no cookies, no default headers, and no automatic decompression (sizes are
/// capped on the bytes as sent). Callers add their redirect policy and timeouts.
pub fn client_builder(policy: AddressPolicy) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(CheckedResolver { policy }))
        .redirect(redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("jsbox/", env!("CARGO_PKG_VERSION")))
}

/// The rule that refused a request, if a rule did: looks through the error's source chain.
pub fn refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a EgressError> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refused) = error.downcast_ref::<EgressError>() {
            return Some(refused);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn urls_naming_blocked_addresses_are_refused_in_every_notation() {
        let policy = AddressPolicy::default();
        for text in [
            "http://127.0.0.1/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00::1]:8080/",
            "http://10.0.0.1/",
            "http://0.0.0.0/",
        ] {
            assert!(
                matches!(
                    check_url(&url(text), policy),
                    Err(EgressError::Address { .. })
                ),
                "{text}"
            );
        }
        assert!(check_url(&url("https://example.com/"), policy).is_ok());
        assert!(check_url(&url("http://93.184.216.34/"), policy).is_ok());
        assert!(matches!(
            check_url(&url("file:///etc/passwd"), policy),
            Err(EgressError::Scheme(_))
        ));
        assert!(matches!(
            check_url(&url("ftp://example.com/"), policy),
            Err(EgressError::Scheme(_))
        ));
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_unless_allowed() {
        let strict = CheckedResolver::default();
        let refused = strict.resolve_checked("localhost").await.unwrap_err();
        assert!(
            matches!(refused, EgressError::ResolvesToBlocked { .. }),
            "{refused}"
        );
        let relaxed = CheckedResolver {
            policy: AddressPolicy {
                allow_loopback: true,
            },
        };
        let addresses = relaxed.resolve_checked("localhost").await.unwrap();
        assert!(addresses.iter().all(IpAddr::is_loopback));
    }

    #[test]
    fn a_refusal_is_found_through_the_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] EgressError);
        let error = Outer(EgressError::TooManyRedirects(5));
        assert_eq!(refusal(&error), Some(&EgressError::TooManyRedirects(5)));
    }
}
