//! Tenants: who may call the API, with which keys, under which limits.
//!
//! The operator lists them in the file named by `TENANTS_FILE`: TOML, or JSON when the name
//! ends in `.json`; `tenants.example.toml` at the repository root documents every field. Keys
//! are stored only as SHA-256 hex digests (`ingress hash-key` prints the digest of a key), so
//! the file reveals no key. API keys are long random tokens, not passwords, so a plain SHA-256
//! is enough: nobody can search a 256-bit key space through its hash.
//!
//! Without a file every request is anonymous, with the rate limit of `RATE_LIMIT_RPS` and
//! `RATE_LIMIT_BURST` and the sandbox's own limits.

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::rate_limit::RateLimit;
use contract::capabilities::{Capabilities, FetchGrant};
use contract::limits::{MemoryLimit, TimeLimit};

use crate::sources::rules::SourceRules;

pub use contract::tenant::{ANONYMOUS, Ceilings};
use contract::tenant::{MAX_TENANT_ID_LENGTH, is_valid_tenant_id};

/// Who may call, from the tenants file (or the defaults without one).
#[derive(Debug, Clone, PartialEq)]
pub struct Tenants {
    /// Requests that present no key.
    pub anonymous: AnonymousTier,
    /// Tenants with keys, in the file's order.
    pub tenants: Vec<Tenant>,
}

/// The tier of requests without a key (the demo page's).
#[derive(Debug, Clone, PartialEq)]
pub struct AnonymousTier {
    /// `false`: every `/api/*` request must present a key, or gets 401.
    pub enabled: bool,
    /// Ceilings for each anonymous client (the sandbox gives each its own turns, keyed by the
    /// client's address). The tier's rate limit, also per client address, is
    /// [`crate::Config::rate_limit`].
    pub ceilings: Ceilings,
    /// Where anonymous requests may load scripts from (`url`); none by default.
    pub sources: SourceRules,
    /// What anonymous scripts may use beyond the language (`fetch`); nothing by default.
    pub capabilities: Capabilities,
}

/// A tenant with API keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// ASCII letters, digits, `-`, `_` and `.`, at most 64; named in logs and metrics.
    pub id: String,
    /// SHA-256 digests of the tenant's keys; several allow rotating a key without downtime.
    pub keys: Vec<KeyHash>,
    /// One bucket shared by every client of the tenant; `None` for no rate limit.
    pub rate_limit: Option<RateLimit>,
    /// What the sandbox lets the tenant use.
    pub ceilings: Ceilings,
    /// Buckets, prefixes and hosts the tenant may load scripts from (`url`); none by default.
    pub sources: SourceRules,
    /// What the tenant's scripts may use beyond the language (`fetch`); nothing by default.
    pub capabilities: Capabilities,
}

impl Default for Tenants {
    /// No tenants; anonymous requests allowed with the sandbox's own limits.
    fn default() -> Self {
        Self {
            anonymous: AnonymousTier {
                enabled: true,
                ceilings: Ceilings::default(),
                sources: SourceRules::default(),
                capabilities: Capabilities::default(),
            },
            tenants: Vec::new(),
        }
    }
}

/// The SHA-256 digest of an API key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// The digest of `key` as presented (no trimming or case folding).
    pub fn of_key(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }
}

impl FromStr for KeyHash {
    type Err = &'static str;

    /// 64 hex digits, either case (`sha256sum` prints lower case).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid =
            "expected 64 hex digits: the SHA-256 of the key, as `ingress hash-key` prints it";
        let text = text.as_bytes();
        if text.len() != 64 {
            return Err(invalid);
        }
        let mut digest = [0; 32];
        for (byte, pair) in digest.iter_mut().zip(text.chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid)?;
        }
        Ok(Self(digest))
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({self})")
    }
}

/// Reads the tenants file at `path`. `anonymous_rate_limit` is the anonymous tier's limit
/// from the environment; the file's `[anonymous]` rate limit replaces it when it sets one.
/// Returns the tenants and the anonymous tier's rate limit.
pub fn load(
    path: &Path,
    anonymous_rate_limit: Option<RateLimit>,
) -> Result<(Tenants, Option<RateLimit>), String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read: {error}"))?;
    let is_json = path
        .extension()
        .is_some_and(|extension| extension == "json");
    parse(&text, is_json, anonymous_rate_limit)
}

/// [`load`] for the file's contents.
pub fn parse(
    text: &str,
    is_json: bool,
    anonymous_rate_limit: Option<RateLimit>,
) -> Result<(Tenants, Option<RateLimit>), String> {
    let file: TenantsFile = if is_json {
        serde_json::from_str(text).map_err(|error| error.to_string())?
    } else {
        toml::from_str(text).map_err(|error| error.to_string().trim_end().to_owned())?
    };

    let anonymous = file.anonymous;
    let anonymous_rate_limit = match (anonymous.rate_limit_rps, anonymous.rate_limit_burst) {
        (None, None) => anonymous_rate_limit,
        (Some(per_second), burst) => {
            rate_limit(per_second, burst).map_err(|reason| format!("[anonymous]: {reason}"))?
        }
        (None, Some(_)) => {
            return Err("[anonymous]: rate_limit_burst needs rate_limit_rps".to_owned());
        }
    };
    let anonymous = AnonymousTier {
        enabled: anonymous.enabled,
        ceilings: ceilings(
            anonymous.max_concurrency,
            anonymous.max_timeout_ms,
            anonymous.max_memory_limit_mb,
            anonymous.max_batch_items,
            (anonymous.max_sessions, anonymous.max_session_memory_mb),
        )
        .map_err(|reason| format!("[anonymous]: {reason}"))?,
        sources: anonymous.sources,
        capabilities: capabilities(anonymous.fetch)
            .map_err(|reason| format!("[anonymous]: {reason}"))?,
    };

    let mut tenants: Vec<Tenant> = Vec::with_capacity(file.tenants.len());
    for (index, section) in file.tenants.into_iter().enumerate() {
        let tenant = check_tenant(section, &tenants)
            .map_err(|reason| format!("tenants[{index}]: {reason}"))?;
        tenants.push(tenant);
    }
    Ok((Tenants { anonymous, tenants }, anonymous_rate_limit))
}

/// The file as written, before checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsFile {
    anonymous: AnonymousSection,
    #[serde(default)]
    tenants: Vec<TenantSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnonymousSection {
    enabled: bool,
    rate_limit_rps: Option<f64>,
    rate_limit_burst: Option<u32>,
    max_concurrency: Option<u32>,
    max_timeout_ms: Option<u64>,
    max_memory_limit_mb: Option<u64>,
    max_batch_items: Option<u32>,
    max_sessions: Option<u32>,
    max_session_memory_mb: Option<u64>,
    #[serde(default)]
    sources: SourceRules,
    fetch: Option<FetchGrant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantSection {
    id: String,
    keys: Vec<String>,
    rate_limit_rps: f64,
    rate_limit_burst: Option<u32>,
    max_concurrency: Option<u32>,
    max_timeout_ms: Option<u64>,
    max_memory_limit_mb: Option<u64>,
    max_batch_items: Option<u32>,
    max_sessions: Option<u32>,
    max_session_memory_mb: Option<u64>,
    #[serde(default)]
    sources: SourceRules,
    fetch: Option<FetchGrant>,
}

/// `fetch = { hosts = [...], methods = [...] }`: at least one host; methods are HTTP tokens,
/// kept in upper case.
fn capabilities(fetch: Option<FetchGrant>) -> Result<Capabilities, String> {
    let Some(mut fetch) = fetch else {
        return Ok(Capabilities::default());
    };
    if fetch.hosts.is_empty() {
        return Err("fetch.hosts: list at least one host (or leave fetch out)".to_owned());
    }
    for method in &mut fetch.methods {
        let token = !method.is_empty()
            && method
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte));
        if !token {
            return Err(format!("fetch.methods: {method:?} is not an HTTP method"));
        }
        method.make_ascii_uppercase();
    }
    Ok(Capabilities { fetch: Some(fetch) })
}

fn check_tenant(section: TenantSection, earlier: &[Tenant]) -> Result<Tenant, String> {
    let id = section.id;
    if !is_valid_tenant_id(&id) {
        return Err(format!(
            "id {id:?}: expected 1 to {MAX_TENANT_ID_LENGTH} ASCII letters, digits, `-`, `_` or `.`"
        ));
    }
    if id == ANONYMOUS {
        return Err(format!(
            "id {id:?} is the anonymous tier's; configure it in [anonymous]"
        ));
    }
    if earlier.iter().any(|tenant| tenant.id == id) {
        return Err(format!("id {id:?} is used twice"));
    }
    if section.keys.is_empty() {
        return Err(format!("{id}: keys: give at least one key hash"));
    }
    let mut keys = Vec::with_capacity(section.keys.len());
    for (index, key) in section.keys.iter().enumerate() {
        let hash: KeyHash = key
            .trim()
            .parse()
            .map_err(|reason| format!("{id}: keys[{index}]: {reason}"))?;
        let owner = earlier
            .iter()
            .find(|tenant| tenant.keys.contains(&hash))
            .map(|tenant| tenant.id.as_str())
            .or_else(|| keys.contains(&hash).then_some(id.as_str()));
        if let Some(owner) = owner {
            return Err(format!(
                "{id}: keys[{index}]: already a key of tenant {owner}"
            ));
        }
        keys.push(hash);
    }
    let rate_limit = rate_limit(section.rate_limit_rps, section.rate_limit_burst)
        .map_err(|r| format!("{id}: {r}"))?;
    let ceilings = ceilings(
        section.max_concurrency,
        section.max_timeout_ms,
        section.max_memory_limit_mb,
        section.max_batch_items,
        (section.max_sessions, section.max_session_memory_mb),
    )
    .map_err(|reason| format!("{id}: {reason}"))?;
    let capabilities = capabilities(section.fetch).map_err(|reason| format!("{id}: {reason}"))?;
    Ok(Tenant {
        id,
        keys,
        rate_limit,
        ceilings,
        sources: section.sources,
        capabilities,
    })
}

/// `rate_limit_rps` 0 turns the limit off; otherwise `rate_limit_burst` is required.
fn rate_limit(per_second: f64, burst: Option<u32>) -> Result<Option<RateLimit>, String> {
    if !per_second.is_finite() || !(0.0..=RateLimit::MAX_PER_SECOND).contains(&per_second) {
        return Err(format!(
            "rate_limit_rps: {per_second} is not between 0 and {:e}",
            RateLimit::MAX_PER_SECOND
        ));
    }
    if per_second == 0.0 {
        return Ok(None);
    }
    let burst = burst.ok_or("rate_limit_burst: required when rate_limit_rps is above 0")?;
    let burst = NonZeroU32::new(burst).ok_or("rate_limit_burst: must be at least 1")?;
    Ok(Some(RateLimit { per_second, burst }))
}

fn ceilings(
    max_concurrency: Option<u32>,
    max_timeout_ms: Option<u64>,
    max_memory_limit_mb: Option<u64>,
    max_batch_items: Option<u32>,
    (max_sessions, max_session_memory_mb): (Option<u32>, Option<u64>),
) -> Result<Ceilings, String> {
    let at_least_1 = |name: &str, value: Option<u64>| {
        value
            .map(|value| {
                NonZeroU64::new(value).ok_or_else(|| {
                    format!("{name}: must be at least 1 (leave it out for no ceiling)")
                })
            })
            .transpose()
    };
    at_least_1("max_concurrency", max_concurrency.map(u64::from))?;
    at_least_1("max_batch_items", max_batch_items.map(u64::from))?;
    Ok(Ceilings {
        concurrency: max_concurrency,
        timeout: at_least_1("max_timeout_ms", max_timeout_ms)?.map(TimeLimit::from_millis),
        memory: at_least_1("max_memory_limit_mb", max_memory_limit_mb)?
            .map(MemoryLimit::from_mebibytes),
        batch_items: max_batch_items,
        // 0 turns sessions off for the tier.
        sessions: max_sessions,
        session_memory: at_least_1("max_session_memory_mb", max_session_memory_mb)?
            .map(MemoryLimit::from_mebibytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENV_LIMIT: RateLimit = RateLimit {
        per_second: 5.0,
        burst: NonZeroU32::new(20).unwrap(),
    };

    fn hash(key: &str) -> String {
        KeyHash::of_key(key).to_string()
    }

    fn parse_toml(text: &str) -> Result<(Tenants, Option<RateLimit>), String> {
        parse(text, false, Some(ENV_LIMIT))
    }

    #[test]
    fn key_hashes_are_the_sha256_of_the_key_in_hex() {
        // printf %s secret | sha256sum
        assert_eq!(
            hash("secret"),
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
        let upper: KeyHash = hash("secret").to_uppercase().parse().unwrap();
        assert_eq!(upper, KeyHash::of_key("secret"));
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(65)] {
            assert!(bad.parse::<KeyHash>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_full_file_gives_tenants_ceilings_and_the_anonymous_tier() {
        let text = format!(
            r#"
            [anonymous]
            enabled = true
            rate_limit_rps = 1
            rate_limit_burst = 5
            max_concurrency = 1
            max_timeout_ms = 5000
            max_sessions = 0

            [[tenants]]
            id = "acme"
            keys = ["{}", "{}"]
            rate_limit_rps = 10.5
            rate_limit_burst = 20
            max_concurrency = 2
            max_timeout_ms = 10000
            max_memory_limit_mb = 64
            max_batch_items = 100
            max_sessions = 3
            max_session_memory_mb = 192
            sources = ["gs://acme-scripts/prod/", "https://*.acme.example"]

            [[tenants]]
            id = "unlimited"
            keys = ["{}"]
            rate_limit_rps = 0
            "#,
            hash("a1"),
            hash("a2"),
            hash("u1")
        );
        let (tenants, anonymous_limit) = parse_toml(&text).unwrap();
        assert!(tenants.anonymous.enabled);
        assert_eq!(
            tenants.anonymous.ceilings.header_value().as_deref(),
            Some("concurrency=1,timeout-ms=5000,sessions=0")
        );
        let anonymous_limit = anonymous_limit.unwrap();
        assert_eq!(
            (anonymous_limit.per_second, anonymous_limit.burst.get()),
            (1.0, 5)
        );

        let acme = &tenants.tenants[0];
        assert_eq!(acme.id, "acme");
        assert_eq!(acme.keys, [KeyHash::of_key("a1"), KeyHash::of_key("a2")]);
        assert_eq!(acme.rate_limit.unwrap().per_second, 10.5);
        assert_eq!(
            acme.ceilings.header_value().as_deref(),
            Some(
                "concurrency=2,timeout-ms=10000,memory-mb=64,batch-items=100,sessions=3,\
                 session-memory-mb=192"
            )
        );
        assert_eq!(acme.sources.0.len(), 2);
        assert_eq!(acme.sources.0[0].to_string(), "gs://acme-scripts/prod/");
        assert!(tenants.anonymous.sources.0.is_empty());
        let unlimited = &tenants.tenants[1];
        assert!(unlimited.sources.0.is_empty());
        assert_eq!(unlimited.rate_limit, None);
        assert_eq!(unlimited.ceilings.header_value(), None);
    }

    #[test]
    fn fetch_is_granted_per_tier_and_to_nobody_by_default() {
        let text = format!(
            "[anonymous]\nenabled = true\n\n[[tenants]]\nid = \"acme\"\nkeys = [\"{}\"]\n\
             rate_limit_rps = 0\nfetch = {{ hosts = [\"api.example.com\", \"*.example.org\"], \
             methods = [\"get\", \"Post\"] }}\n\n[[tenants]]\nid = \"beta\"\nkeys = [\"{}\"]\n\
             rate_limit_rps = 0\n",
            hash("a"),
            hash("b")
        );
        let (tenants, _) = parse_toml(&text).unwrap();
        assert_eq!(tenants.anonymous.capabilities, Capabilities::default());
        assert_eq!(tenants.tenants[1].capabilities, Capabilities::default());
        let fetch = tenants.tenants[0].capabilities.fetch.as_ref().unwrap();
        assert!(fetch.allows_host("api.example.com") && fetch.allows_host("x.example.org"));
        assert!(!fetch.allows_host("example.org"));
        assert_eq!(fetch.methods, ["GET", "POST"]);
        assert_eq!(
            tenants.tenants[0].capabilities.header_value().as_deref(),
            Some(
                r#"{"fetch":{"hosts":["api.example.com","*.example.org"],"methods":["GET","POST"]}}"#
            )
        );
    }

    #[test]
    fn the_anonymous_tier_keeps_the_environment_rate_limit_unless_the_file_sets_one() {
        let (tenants, limit) = parse_toml("[anonymous]\nenabled = false\n").unwrap();
        assert!(!tenants.anonymous.enabled);
        assert!(tenants.tenants.is_empty());
        assert_eq!(limit, Some(ENV_LIMIT));
        let (_, limit) = parse_toml("[anonymous]\nenabled = true\nrate_limit_rps = 0\n").unwrap();
        assert_eq!(limit, None);
    }

    #[test]
    fn json_files_have_the_same_shape() {
        let text = format!(
            r#"{{"anonymous": {{"enabled": false}},
                "tenants": [{{"id": "acme", "keys": ["{}"], "rate_limit_rps": 2, "rate_limit_burst": 4}}]}}"#,
            hash("k")
        );
        let (tenants, _) = parse(&text, true, None).unwrap();
        assert_eq!(tenants.tenants[0].rate_limit.unwrap().burst.get(), 4);
    }

    #[test]
    fn mistakes_are_refused_with_what_and_where() {
        let key = hash("k");
        let tenant = |fields: &str| format!("[anonymous]\nenabled = true\n[[tenants]]\n{fields}\n");
        for (text, expected) in [
            ("", "missing field `anonymous`"),
            ("[anonymous]\n", "missing field `enabled`"),
            (
                "[anonymous]\nenabled = true\ncolour = 1\n",
                "unknown field `colour`",
            ),
            (
                "[anonymous]\nenabled = true\nrate_limit_burst = 3\n",
                "[anonymous]: rate_limit_burst needs rate_limit_rps",
            ),
            (
                "[anonymous]\nenabled = true\nsources = [\"ftp://x/\"]\n",
                "sources: \"ftp://x/\": the scheme must be",
            ),
            (
                "[anonymous]\nenabled = true\nfetch = { hosts = [] }\n",
                "[anonymous]: fetch.hosts: list at least one host",
            ),
            (
                "[anonymous]\nenabled = true\nfetch = { hosts = [\"*\"] }\n",
                "is not a host pattern",
            ),
            (
                "[anonymous]\nenabled = true\nfetch = { hosts = [\"a.com\"], ports = [1] }\n",
                "unknown field `ports`",
            ),
            (
                &tenant(&format!(
                    "id = \"acme\"\nkeys = [\"{key}\"]\nrate_limit_rps = 0\n\
                     fetch = {{ hosts = [\"a.com\"], methods = [\"GET X\"] }}"
                )),
                "tenants[0]: acme: fetch.methods: \"GET X\" is not an HTTP method",
            ),
            (
                &tenant(&format!(
                    "id = \"anonymous\"\nkeys = [\"{key}\"]\nrate_limit_rps = 0"
                )),
                "tenants[0]: id \"anonymous\" is the anonymous tier's",
            ),
            (
                &tenant(&format!(
                    "id = \"a b\"\nkeys = [\"{key}\"]\nrate_limit_rps = 0"
                )),
                "tenants[0]: id \"a b\": expected",
            ),
            (
                &tenant("id = \"acme\"\nkeys = []\nrate_limit_rps = 0"),
                "tenants[0]: acme: keys: give at least one",
            ),
            (
                &tenant("id = \"acme\"\nkeys = [\"plain-key\"]\nrate_limit_rps = 0"),
                "tenants[0]: acme: keys[0]: expected 64 hex digits",
            ),
            (
                &tenant(&format!(
                    "id = \"acme\"\nkeys = [\"{key}\"]\nrate_limit_rps = 3"
                )),
                "tenants[0]: acme: rate_limit_burst: required",
            ),
            (
                &tenant(&format!(
                    "id = \"acme\"\nkeys = [\"{key}\"]\nrate_limit_rps = 0\nmax_timeout_ms = 0"
                )),
                "tenants[0]: acme: max_timeout_ms: must be at least 1",
            ),
            (
                &tenant(&format!(
                    "id = \"acme\"\nkeys = [\"{key}\"]\nrate_limit_rps = 0\nmax_batch_items = 0"
                )),
                "tenants[0]: acme: max_batch_items: must be at least 1",
            ),
            (
                &format!(
                    "{}[[tenants]]\nid = \"beta\"\nkeys = [\"{key}\"]\nrate_limit_rps = 0\n",
                    tenant(&format!(
                        "id = \"acme\"\nkeys = [\"{key}\"]\nrate_limit_rps = 0"
                    ))
                ),
                "tenants[1]: beta: keys[0]: already a key of tenant acme",
            ),
            (
                &format!(
                    "{}[[tenants]]\nid = \"acme\"\nkeys = [\"{}\"]\nrate_limit_rps = 0\n",
                    tenant(&format!(
                        "id = \"acme\"\nkeys = [\"{key}\"]\nrate_limit_rps = 0"
                    )),
                    hash("other")
                ),
                "tenants[1]: id \"acme\" is used twice",
            ),
        ] {
            let error = parse_toml(text).unwrap_err();
            assert!(error.contains(expected), "{text}\n=> {error}");
        }
    }
}
