//! Tenants with fresh API keys, and the tenants file that gives the ingress their hashes.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::error::Error;

/// Requests per second each tenant may make: far above what one machine sends, so the rate
/// limiter runs on every request without refusing any.
const GENEROUS_RATE_LIMIT_RPS: u32 = 100_000;
const GENEROUS_RATE_LIMIT_BURST: u32 = 100_000;
/// The anonymous tier's rate limit per client, when it is open: the ingress's defaults
/// (`RATE_LIMIT_RPS`, `RATE_LIMIT_BURST`), as a deployment has it.
const ANONYMOUS_RATE_LIMIT_RPS: usize = crate::scenario::CROWD_RATE_PER_ADDRESS;
const ANONYMOUS_RATE_LIMIT_BURST: u32 = 20;

/// A tenant and the key its users present as `Authorization: Bearer <key>`.
#[derive(Clone, Debug)]
pub struct TenantKey {
    pub id: &'static str,
    pub key: String,
}

/// Makes one random 32-byte key, hex-encoded, for each tenant id.
pub fn generate(ids: &[&'static str]) -> Result<Vec<TenantKey>, Error> {
    ids.iter()
        .map(|&id| {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)?;
            Ok(TenantKey {
                id,
                key: hex(&bytes),
            })
        })
        .collect()
}

/// The tenants file (see `tenants.example.toml`): each tenant with its key's SHA-256, generous
/// rate limits and, when given, its cap of open sessions (`max_sessions`), and the anonymous
/// tier open when `anonymous` (with the ingress's default rate limit for each client), else
/// off, so every request must carry one of the keys. The concurrency, time and memory
/// ceilings are left to the sandbox's own maximums.
pub fn tenants_toml(tenants: &[TenantKey], anonymous: bool, max_sessions: Option<u32>) -> String {
    let mut toml = format!(
        "# Written by loadtest for one run; the keys themselves are stored nowhere.\n\
         [anonymous]\nenabled = {anonymous}\n",
    );
    if anonymous {
        let _ = write!(
            toml,
            "rate_limit_rps = {ANONYMOUS_RATE_LIMIT_RPS}\nrate_limit_burst = {ANONYMOUS_RATE_LIMIT_BURST}\n"
        );
    }
    for tenant in tenants {
        let hash = hex(&Sha256::digest(tenant.key.as_bytes()));
        // Writing to a String cannot fail.
        let _ = write!(
            toml,
            "\n[[tenants]]\nid = \"{}\"\nkeys = [\"{hash}\"]\nrate_limit_rps = {GENEROUS_RATE_LIMIT_RPS}\n\
             rate_limit_burst = {GENEROUS_RATE_LIMIT_BURST}\n",
            tenant.id
        );
        if let Some(max_sessions) = max_sessions {
            let _ = writeln!(toml, "max_sessions = {max_sessions}");
        }
    }
    toml
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_file_holds_the_sha256_of_each_key_and_never_the_key() {
        let tenants = [TenantKey {
            id: "acme",
            key: "abc".into(),
        }];
        let toml = tenants_toml(&tenants, false, None);
        // printf %s abc | sha256sum
        assert!(toml.contains("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        assert!(toml.contains("id = \"acme\""));
        assert!(!toml.contains("\"abc\""));
        assert!(!toml.contains("[anonymous]\nenabled = false\nrate_limit"));
        assert!(!toml.contains("max_sessions"));
        let toml = tenants_toml(&tenants, false, Some(7));
        assert!(
            toml.ends_with("rate_limit_burst = 100000\nmax_sessions = 7\n"),
            "{toml}"
        );
    }

    #[test]
    fn an_open_anonymous_tier_keeps_the_ingress_default_rate_limit_per_client() {
        let toml = tenants_toml(&[], true, None);
        assert!(
            toml.contains(
                "[anonymous]\nenabled = true\nrate_limit_rps = 5\nrate_limit_burst = 20\n"
            ),
            "{toml}"
        );
    }

    #[test]
    fn generated_keys_are_64_hex_digits_and_differ() {
        let keys = generate(&["a", "b"]).unwrap();
        assert_eq!(keys[0].key.len(), 64);
        assert!(keys[0].key.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(keys[0].key, keys[1].key);
    }
}
