//! Host allow-list entries: `api.example.com` allows that host only; `*.example.com` allows
//! every name below `example.com` but not `example.com` itself (list both for both). Names
//! compare without case and without a trailing dot; a pattern may also be an IP address, which
//! the address rules still judge.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One entry of a host allow-list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    /// Lowercase, without a trailing dot; for a wildcard, the part after `*.`.
    name: String,
    wildcard: bool,
}

/// A pattern that is not a host name, `*.` and a host name, or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a host pattern: expected a host name (`api.example.com`), `*.` and a domain \
     (`*.example.com`), or an IP address"
)]
pub struct BadHostPattern(pub String);

impl HostPattern {
    /// True when `host` (a URL's host, as text) is allowed by this entry.
    pub fn matches(&self, host: &str) -> bool {
        let host = normalise(host);
        if self.wildcard {
            host.len() > self.name.len() + 1
                && host.ends_with(&self.name)
                && host.as_bytes()[host.len() - self.name.len() - 1] == b'.'
        } else {
            host == self.name
        }
    }

    /// True when any entry of `list` allows `host`.
    pub fn any_matches(list: &[Self], host: &str) -> bool {
        list.iter().any(|pattern| pattern.matches(host))
    }
}

fn normalise(host: &str) -> String {
    let host = host.strip_suffix('.').unwrap_or(host);
    let host = host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

impl FromStr for HostPattern {
    type Err = BadHostPattern;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadHostPattern(text.to_owned());
        let (wildcard, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let name = normalise(name);
        if name.parse::<std::net::IpAddr>().is_ok() {
            return if wildcard {
                Err(bad())
            } else {
                Ok(Self { name, wildcard })
            };
        }
        let valid_label = |label: &str| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
            return Err(bad());
        }
        Ok(Self { name, wildcard })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            formatter.write_str("*.")?;
        }
        formatter.write_str(&self.name)
    }
}

impl Serialize for HostPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> HostPattern {
        text.parse().unwrap()
    }

    #[test]
    fn an_exact_pattern_matches_only_its_host() {
        let exact = pattern("API.Example.com.");
        assert!(exact.matches("api.example.com"));
        assert!(exact.matches("API.EXAMPLE.COM."));
        assert!(!exact.matches("example.com"));
        assert!(!exact.matches("x.api.example.com"));
        assert!(!exact.matches("api.example.com.evil.net"));
    }

    #[test]
    fn a_wildcard_matches_names_below_its_domain_only() {
        let wildcard = pattern("*.example.com");
        assert!(wildcard.matches("a.example.com"));
        assert!(wildcard.matches("a.b.example.com"));
        assert!(!wildcard.matches("example.com"));
        assert!(!wildcard.matches("badexample.com"));
        assert!(!wildcard.matches("example.com.evil.net"));
        assert_eq!(wildcard.to_string(), "*.example.com");
    }

    #[test]
    fn addresses_are_patterns_but_not_wildcards() {
        assert!(pattern("127.0.0.1").matches("127.0.0.1"));
        assert!(pattern("[::1]").matches("[::1]"));
        for bad in [
            "",
            "*",
            "*.",
            "*.1.2.3.4",
            "a..b",
            "-a.com",
            "a b.com",
            "*.*.com",
            "a/b",
        ] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?}");
        }
    }
}
