//! Which tenant a request belongs to, as the ingress tells the sandbox in two headers:
//!
//! - `x-tenant-id: acme`: the sandbox's scheduling key and the `tenant` label of its metrics;
//! - `x-tenant-limits: concurrency=2,timeout-ms=10000,memory-mb=64,batch-items=100`: the
//!   tenant's ceilings, each optional, each capped by the sandbox's own maximum.
//!
//! The ingress removes both from client requests and sets them itself; the sandbox, which only
//! the ingress reaches, trusts them. Without them a request is [`ANONYMOUS`].

use std::num::NonZeroU64;

use crate::limits::{MemoryLimit, TimeLimit};

/// The tenant id header.
pub const TENANT_ID_HEADER: &str = "x-tenant-id";
/// The tenant ceilings header.
pub const TENANT_LIMITS_HEADER: &str = "x-tenant-limits";
/// For requests of the anonymous tier, who the client is (its address, or its IPv6 /64, as the
/// ingress tells clients apart): the sandbox gives each anonymous client its own turn, as it
/// does each tenant.
pub const CLIENT_KEY_HEADER: &str = "x-client-key";
/// The tenant of requests without a key.
pub const ANONYMOUS: &str = "anonymous";
/// Longest client key.
pub const MAX_CLIENT_KEY_LENGTH: usize = 64;
/// Longest tenant id.
pub const MAX_TENANT_ID_LENGTH: usize = 64;

/// True for 1 to [`MAX_TENANT_ID_LENGTH`] ASCII letters, digits, `-`, `_` or `.`: ids appear in
/// headers, log lines and metric labels.
pub fn is_valid_tenant_id(id: &str) -> bool {
    (1..=MAX_TENANT_ID_LENGTH).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// True for 1 to [`MAX_CLIENT_KEY_LENGTH`] ASCII letters, digits, `:`, `.`, `-` or `_`: an IP
/// address or network as text.
pub fn is_valid_client_key(key: &str) -> bool {
    (1..=MAX_CLIENT_KEY_LENGTH).contains(&key.len())
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b':' | b'.' | b'-' | b'_'))
}

/// A tenant's ceilings; `None` leaves the sandbox's own maximum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ceilings {
    /// `concurrency`: most executions of the tenant running at once.
    pub concurrency: Option<u32>,
    /// `timeout-ms`: longest `timeoutMs` the tenant may ask for; also lowers the default.
    pub timeout: Option<TimeLimit>,
    /// `memory-mb`: largest `memoryLimitMb` the tenant may ask for; also lowers the default.
    pub memory: Option<MemoryLimit>,
    /// `batch-items`: most `inputs` of one batch (`POST /api/batch`).
    pub batch_items: Option<u32>,
    /// `sessions`: most sessions open at once (`POST /api/sessions`); `0` turns sessions off
    /// (for the anonymous tier, each of its clients).
    pub sessions: Option<u32>,
    /// `session-memory-mb`: most memory limits of the open sessions together.
    pub session_memory: Option<MemoryLimit>,
}

/// An `x-tenant-limits` value the sandbox cannot use; only a broken ingress sends one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "x-tenant-limits: expected `name=value` pairs separated by commas, with names `concurrency`, \
     `timeout-ms`, `memory-mb`, `batch-items`, `session-memory-mb` and whole numbers of at least \
     1, or `sessions` and a whole number"
)]
pub struct BadCeilings;

impl Ceilings {
    /// The header value, `None` when no ceiling is set.
    pub fn header_value(&self) -> Option<String> {
        let parts: Vec<String> = [
            ("concurrency", self.concurrency.map(u64::from)),
            ("timeout-ms", self.timeout.map(TimeLimit::millis)),
            ("memory-mb", self.memory.map(MemoryLimit::mebibytes)),
            ("batch-items", self.batch_items.map(u64::from)),
            ("sessions", self.sessions.map(u64::from)),
            (
                "session-memory-mb",
                self.session_memory.map(MemoryLimit::mebibytes),
            ),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some(format!("{name}={}", value?)))
        .collect();
        (!parts.is_empty()).then(|| parts.join(","))
    }

    /// Parses a header value: any subset of the names, in any order; an unknown or repeated
    /// name, or a value that is not a whole number of at least 1 (`sessions` may be 0), is
    /// refused.
    pub fn parse(text: &str) -> Result<Self, BadCeilings> {
        let mut ceilings = Self::default();
        let mut seen = [false; 6];
        for pair in text
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
        {
            let (name, value) = pair.split_once('=').ok_or(BadCeilings)?;
            let whole: u64 = value.trim().parse().map_err(|_| BadCeilings)?;
            if name.trim() == "sessions" {
                ceilings.sessions = Some(u32::try_from(whole).map_err(|_| BadCeilings)?);
                if std::mem::replace(&mut seen[4], true) {
                    return Err(BadCeilings);
                }
                continue;
            }
            let value = NonZeroU64::new(whole).ok_or(BadCeilings)?;
            let index = match name.trim() {
                "concurrency" => {
                    ceilings.concurrency =
                        Some(u32::try_from(value.get()).map_err(|_| BadCeilings)?);
                    0
                }
                "timeout-ms" => {
                    ceilings.timeout = Some(TimeLimit::from_millis(value));
                    1
                }
                "memory-mb" => {
                    ceilings.memory = Some(MemoryLimit::from_mebibytes(value));
                    2
                }
                "batch-items" => {
                    ceilings.batch_items =
                        Some(u32::try_from(value.get()).map_err(|_| BadCeilings)?);
                    3
                }
                "session-memory-mb" => {
                    ceilings.session_memory = Some(MemoryLimit::from_mebibytes(value));
                    5
                }
                _ => return Err(BadCeilings),
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(BadCeilings);
            }
        }
        Ok(ceilings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_survive_the_header_round_trip() {
        for ceilings in [
            Ceilings::default(),
            Ceilings {
                concurrency: Some(2),
                timeout: NonZeroU64::new(10_000).map(TimeLimit::from_millis),
                memory: NonZeroU64::new(64).map(MemoryLimit::from_mebibytes),
                batch_items: Some(100),
                sessions: Some(0),
                session_memory: NonZeroU64::new(256).map(MemoryLimit::from_mebibytes),
            },
            Ceilings {
                timeout: NonZeroU64::new(500).map(TimeLimit::from_millis),
                ..Ceilings::default()
            },
        ] {
            let parsed = match ceilings.header_value() {
                Some(value) => Ceilings::parse(&value).unwrap(),
                None => Ceilings::default(),
            };
            assert_eq!(parsed, ceilings);
        }
    }

    #[test]
    fn the_header_takes_any_order_and_spaces() {
        assert_eq!(
            Ceilings::parse("memory-mb=64, concurrency=2").unwrap(),
            Ceilings {
                concurrency: Some(2),
                memory: NonZeroU64::new(64).map(MemoryLimit::from_mebibytes),
                ..Ceilings::default()
            }
        );
    }

    #[test]
    fn malformed_ceilings_are_refused() {
        for text in [
            "concurrency",
            "concurrency=0",
            "concurrency=-1",
            "concurrency=two",
            "concurrency=99999999999",
            "threads=2",
            "timeout-ms=5,timeout-ms=6",
            "batch-items=0",
            "batch-items=1,batch-items=2",
        ] {
            assert_eq!(Ceilings::parse(text), Err(BadCeilings), "{text}");
        }
    }

    #[test]
    fn client_keys_are_addresses_as_text() {
        for key in ["192.0.2.1", "2001:db8:1:2::"] {
            assert!(is_valid_client_key(key), "{key}");
        }
        for key in ["", "a b", "x/y", &"1".repeat(65)] {
            assert!(!is_valid_client_key(key), "{key:?}");
        }
    }

    #[test]
    fn tenant_ids_are_plain_names() {
        assert!(is_valid_tenant_id("acme-2.prod_x"));
        for id in ["", "a b", "caf\u{e9}", &"x".repeat(65), "a/b"] {
            assert!(!is_valid_tenant_id(id), "{id:?}");
        }
    }
}
