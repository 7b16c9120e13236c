//! Where a tenant may load scripts from, and what a `url` source names.
//!
//! Both are parsed here, once: the tenants file's `sources` entries ([`SourceRule`]) and a
//! request's `url` ([`Location`]), so that the check between them compares like with like.
//! Bucket names and object keys are held to a conservative alphabet (no `%`, no `..` or empty
//! segments), so no store or server decodes a key into something the rule did not allow; web
//! hosts use the workspace's [`HostPattern`], and the address rules apply when connecting.

use std::fmt;

use egress::HostPattern;
use serde::{Deserialize, Deserializer};
use url::Url;

/// A bucket store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Store {
    /// Google Cloud Storage, `gs://`.
    Gcs,
    /// Amazon S3, `s3://`.
    S3,
}

impl Store {
    fn scheme(self) -> &'static str {
        match self {
            Self::Gcs => "gs",
            Self::S3 => "s3",
        }
    }
}

/// What a `url` source names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An object in a bucket.
    Object {
        store: Store,
        bucket: String,
        key: String,
    },
    /// A page on a web server (`https`, or `http`).
    Web(Url),
}

impl Location {
    /// Parses a request's `url`; the error says what is wrong without repeating the URL (which
    /// could carry credentials).
    pub fn parse(text: &str) -> Result<Self, String> {
        let scheme_end = text.find("://").ok_or("expected scheme://...")?;
        let scheme = text[..scheme_end].to_ascii_lowercase();
        let rest = &text[scheme_end + 3..];
        let store = match scheme.as_str() {
            "gs" => Store::Gcs,
            "s3" => Store::S3,
            "https" | "http" => return parse_web(text).map(Self::Web),
            _ => return Err("the scheme must be gs, s3, https or http".to_owned()),
        };
        let (bucket, key) = rest
            .split_once('/')
            .ok_or("expected a bucket and an object key: gs://bucket/path/script.js")?;
        check_bucket(bucket)?;
        check_key(key)?;
        Ok(Self::Object {
            store,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The key of the cache, and the name errors and logs use: no query (a signed URL's
    /// query is a credential), no fragment.
    pub fn name(&self) -> String {
        match self {
            Self::Object { store, bucket, key } => format!("{}://{bucket}/{key}", store.scheme()),
            Self::Web(url) => {
                let mut named = url.clone();
                named.set_query(None);
                named.set_fragment(None);
                let mut name = named.to_string();
                if url.query().is_some() {
                    name.push_str("?…");
                }
                name
            }
        }
    }

    /// What the cache keeps the script under: the whole location (queries included, since
    /// they may select another script), without a fragment.
    pub fn cache_key(&self) -> String {
        match self {
            Self::Web(url) => {
                let mut url = url.clone();
                url.set_fragment(None);
                url.to_string()
            }
            object => object.name(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name())
    }
}

fn parse_web(text: &str) -> Result<Url, String> {
    // The URL parser reads `\` as `/`; refused rather than reinterpreted.
    if text.contains('\\') {
        return Err("the URL must not contain backslashes".to_owned());
    }
    let url = Url::parse(text).map_err(|error| format!("not a URL: {error}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not accepted".to_owned());
    }
    if url.host().is_none() {
        return Err("the URL has no host".to_owned());
    }
    check_web_path(url.path())?;
    Ok(url)
}

/// Encoded separators and dots could be decoded by the server into a path the rule's prefix
/// did not allow; the URL parser has already resolved plain `.` and `..` segments.
fn check_web_path(path: &str) -> Result<(), String> {
    let lowered = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c"]
        .iter()
        .any(|encoded| lowered.contains(encoded))
        || path.contains('\\')
    {
        return Err("the path must not contain encoded dots, slashes or backslashes".to_owned());
    }
    Ok(())
}

/// GCS and S3 bucket names: 3 to 222 lowercase letters, digits, `-`, `_`, `.`, starting and
/// ending with a letter or digit, without `..`.
fn check_bucket(bucket: &str) -> Result<(), String> {
    let alphanumeric = |byte: Option<&u8>| {
        byte.is_some_and(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
    };
    let valid = (3..=222).contains(&bucket.len())
        && bucket.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'-' | b'_' | b'.')
        })
        && alphanumeric(bucket.as_bytes().first())
        && alphanumeric(bucket.as_bytes().last())
        && !bucket.contains("..");
    if valid {
        Ok(())
    } else {
        Err(
            "the bucket name must be 3 to 222 lowercase letters, digits, `-`, `_` or `.`"
                .to_owned(),
        )
    }
}

/// Object keys: 1 to 1024 bytes of letters, digits and `-_.~/!+=,@:()`, in `/`-separated
/// segments that are neither empty, `.` nor `..`.
fn check_key(key: &str) -> Result<(), String> {
    let plain = |byte: u8| byte.is_ascii_alphanumeric() || b"-_.~/!+=,@:()".contains(&byte);
    if key.is_empty() || key.len() > 1024 || !key.bytes().all(plain) {
        return Err(
            "the object key must be 1 to 1024 letters, digits or `-_.~/!+=,@:()`".to_owned(),
        );
    }
    if key
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err("the object key must not have empty, `.` or `..` segments".to_owned());
    }
    Ok(())
}

/// One entry of a tier's `sources` in the tenants file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRule {
    /// `gs://bucket/`, `gs://bucket/prefix/`, `s3://bucket/`: objects of that bucket whose
    /// key starts with the prefix.
    Bucket {
        store: Store,
        bucket: String,
        prefix: String,
    },
    /// `https://host`, `https://*.example.com/scripts/`, `http://host`: pages with that
    /// scheme, on a host the pattern allows (any port), whose path starts with the prefix.
    Web {
        plain_http: bool,
        host: HostPattern,
        prefix: String,
    },
}

impl SourceRule {
    fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("sources: {text:?}: {why}");
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            bad("expected gs://bucket/prefix, s3://bucket/, https://host or http://host")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, ""),
        };
        match scheme {
            "gs" | "s3" => {
                check_bucket(authority).map_err(|why| bad(&why))?;
                let prefix = path.strip_prefix('/').unwrap_or(path);
                if !prefix.is_empty() {
                    check_key(prefix.trim_end_matches('/')).map_err(|why| bad(&why))?;
                }
                Ok(Self::Bucket {
                    store: if scheme == "gs" {
                        Store::Gcs
                    } else {
                        Store::S3
                    },
                    bucket: authority.to_owned(),
                    prefix: prefix.to_owned(),
                })
            }
            "https" | "http" => {
                let host: HostPattern = authority
                    .parse()
                    .map_err(|error| bad(&format!("{error}")))?;
                check_web_path(path).map_err(|why| bad(&why))?;
                Ok(Self::Web {
                    plain_http: scheme == "http",
                    host,
                    prefix: if path.is_empty() {
                        "/".to_owned()
                    } else {
                        path.to_owned()
                    },
                })
            }
            _ => Err(bad("the scheme must be gs, s3, https or http")),
        }
    }

    fn allows(&self, location: &Location) -> bool {
        match (self, location) {
            (
                Self::Bucket {
                    store,
                    bucket,
                    prefix,
                },
                Location::Object {
                    store: wanted_store,
                    bucket: wanted_bucket,
                    key,
                },
            ) => {
                store == wanted_store && bucket == wanted_bucket && key.starts_with(prefix.as_str())
            }
            (
                Self::Web {
                    plain_http,
                    host,
                    prefix,
                },
                Location::Web(url),
            ) => {
                let scheme = if *plain_http { "http" } else { "https" };
                url.scheme() == scheme
                    && url.host_str().is_some_and(|name| host.matches(name))
                    && url.path().starts_with(prefix.as_str())
            }
            _ => false,
        }
    }
}

impl fmt::Display for SourceRule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bucket {
                store,
                bucket,
                prefix,
            } => write!(formatter, "{}://{bucket}/{prefix}", store.scheme()),
            Self::Web {
                plain_http,
                host,
                prefix,
            } => {
                let scheme = if *plain_http { "http" } else { "https" };
                write!(formatter, "{scheme}://{host}{prefix}")
            }
        }
    }
}

impl<'de> Deserialize<'de> for SourceRule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A tier's allowed sources; empty (the default) allows none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SourceRules(pub Vec<SourceRule>);

impl SourceRules {
    /// Whether `tier` may load from `location`; the refusal names the rule that applies.
    pub fn check(&self, tier: &str, location: &Location) -> Result<(), String> {
        if self.0.iter().any(|rule| rule.allows(location)) {
            return Ok(());
        }
        Err(if self.0.is_empty() {
            format!("tenant {tier} may not load scripts from URLs (its `sources` list is empty)")
        } else {
            format!("not in tenant {tier}'s allowed sources")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(entries: &[&str]) -> SourceRules {
        SourceRules(
            entries
                .iter()
                .map(|entry| SourceRule::parse(entry).unwrap())
                .collect(),
        )
    }

    fn allowed(rules: &SourceRules, url: &str) -> bool {
        rules.check("t", &Location::parse(url).unwrap()).is_ok()
    }

    #[test]
    fn bucket_rules_allow_their_bucket_and_prefix_only() {
        let rules = rules(&["gs://acme/prod/", "s3://acme-s3/"]);
        assert!(allowed(&rules, "gs://acme/prod/a.js"));
        assert!(allowed(&rules, "gs://acme/prod/x/y.js"));
        assert!(!allowed(&rules, "gs://acme/dev/a.js"));
        assert!(!allowed(&rules, "gs://acme/production.js"));
        assert!(!allowed(&rules, "s3://acme/prod/a.js"));
        assert!(!allowed(&rules, "gs://acme2/prod/a.js"));
        assert!(allowed(&rules, "s3://acme-s3/any/key.js"));
        assert!(!allowed(&rules, "gs://acme-s3/any/key.js"));
    }

    #[test]
    fn web_rules_allow_their_scheme_host_and_path_prefix() {
        let rules = rules(&[
            "https://scripts.example.com",
            "https://*.cdn.example/acme/",
            "http://intranet.example",
        ]);
        assert!(allowed(&rules, "https://scripts.example.com/a.js"));
        assert!(allowed(&rules, "https://SCRIPTS.example.com:8443/a.js?v=1"));
        assert!(!allowed(&rules, "http://scripts.example.com/a.js"));
        assert!(!allowed(
            &rules,
            "https://scripts.example.com.evil.net/a.js"
        ));
        assert!(allowed(&rules, "https://eu.cdn.example/acme/a.js"));
        assert!(!allowed(&rules, "https://eu.cdn.example/other/a.js"));
        assert!(!allowed(
            &rules,
            "https://eu.cdn.example/acme/../other/a.js"
        ));
        assert!(allowed(&rules, "http://intranet.example/a.js"));
        assert!(!allowed(&rules, "https://intranet.example/a.js"));
        assert!(
            SourceRules::default()
                .check("t", &Location::parse("https://a.example/").unwrap())
                .is_err()
        );
    }

    #[test]
    fn odd_locations_are_refused_before_any_rule() {
        for url in [
            "gs://acme/prod/../secret.js",
            "gs://acme/prod//a.js",
            "gs://acme/prod/%2e%2e/a.js",
            "gs://acme/./a.js",
            "gs://acme/",
            "gs://acme",
            "gs://../a.js",
            "gs://Acme/a.js",
            "gs://ac/a.js",
            "s3://acme/a b.js",
            "ftp://example.com/a.js",
            "https://user:secret@example.com/a.js",
            "https://example.com/a/..%2fb.js",
            "https://example.com/a\\b.js",
            "https://",
        ] {
            assert!(Location::parse(url).is_err(), "{url}");
        }
        let error = Location::parse("https://user:secret@example.com/a.js").unwrap_err();
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn names_leave_out_queries_and_rules_reject_bad_entries() {
        let location = Location::parse("https://example.com/a.js?token=s3cret#x").unwrap();
        assert_eq!(location.name(), "https://example.com/a.js?…");
        assert_eq!(
            location.cache_key(),
            "https://example.com/a.js?token=s3cret"
        );
        for entry in [
            "gs://",
            "gs://A/",
            "ftp://x",
            "https://exa mple.com",
            "https://*",
            "gs://b/../",
        ] {
            assert!(SourceRule::parse(entry).is_err(), "{entry}");
        }
        assert_eq!(
            SourceRule::parse("https://*.Example.com")
                .unwrap()
                .to_string(),
            "https://*.example.com/"
        );
    }
}
