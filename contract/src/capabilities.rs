//! What a tenant may do beyond running code, as the tenants file grants it and as the ingress
//! tells the sandbox in the `x-tenant-capabilities` header (compact JSON of [`Capabilities`]).
//! Nothing is granted by default: without the header, a request has no capability. The ingress
//! removes the header from client requests and sets it itself; the sandbox, which only the
//! ingress reaches, trusts it.

use egress::HostPattern;
use serde::{Deserialize, Serialize};

/// The capabilities header.
pub const CAPABILITIES_HEADER: &str = "x-tenant-capabilities";

/// Everything a tenant was granted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// `fetch` from scripts, to the hosts and with the methods listed; absent, scripts have no
    /// `fetch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<FetchGrant>,
}

impl Capabilities {
    /// The header value, `None` when nothing is granted.
    pub fn header_value(&self) -> Option<String> {
        (self != &Self::default())
            .then(|| serde_json::to_string(self).expect("capabilities serialise"))
    }

    /// Parses a header value.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Where a tenant's scripts may `fetch`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchGrant {
    /// Hosts scripts may reach, exact (`api.example.com`) or wildcard (`*.example.com`); a
    /// redirect must stay within them too.
    pub hosts: Vec<HostPattern>,
    /// Methods allowed, upper case; `GET` and `HEAD` when absent.
    #[serde(default = "FetchGrant::default_methods")]
    pub methods: Vec<String>,
}

impl FetchGrant {
    fn default_methods() -> Vec<String> {
        vec!["GET".to_owned(), "HEAD".to_owned()]
    }

    /// True when `method` (any case) is allowed.
    pub fn allows_method(&self, method: &str) -> bool {
        self.methods
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(method))
    }

    /// True when `host` is on the allow-list.
    pub fn allows_host(&self, host: &str) -> bool {
        HostPattern::any_matches(&self.hosts, host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_round_trip_through_the_header() {
        assert_eq!(Capabilities::default().header_value(), None);
        let granted = Capabilities {
            fetch: Some(FetchGrant {
                hosts: vec![
                    "api.example.com".parse().unwrap(),
                    "*.example.org".parse().unwrap(),
                ],
                methods: vec!["GET".into(), "POST".into()],
            }),
        };
        let header = granted.header_value().unwrap();
        assert_eq!(Capabilities::parse(&header).unwrap(), granted);
        let fetch = granted.fetch.unwrap();
        assert!(fetch.allows_host("a.example.org"));
        assert!(!fetch.allows_host("example.org"));
        assert!(fetch.allows_method("post"));
        assert!(!fetch.allows_method("DELETE"));
    }

    #[test]
    fn methods_default_to_get_and_head_and_unknown_fields_are_refused() {
        let parsed = Capabilities::parse(r#"{"fetch": {"hosts": ["a.com"]}}"#).unwrap();
        assert_eq!(parsed.fetch.unwrap().methods, ["GET", "HEAD"]);
        assert!(Capabilities::parse(r#"{"fetch": {"hosts": ["a.com"], "x": 1}}"#).is_err());
        assert!(Capabilities::parse(r#"{"fetch": {"hosts": ["*"]}}"#).is_err());
    }
}
