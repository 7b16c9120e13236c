//! The connection limits and the environment variables both binaries read them from; each
//! binary gives its own defaults.

use std::time::Duration;

/// Variable names, shared by the ingress and the sandbox.
pub mod vars {
    pub const HEADER_READ_TIMEOUT_MS: &str = "HEADER_READ_TIMEOUT_MS";
    pub const BODY_READ_TIMEOUT_MS: &str = "BODY_READ_TIMEOUT_MS";
    pub const WRITE_TIMEOUT_MS: &str = "WRITE_TIMEOUT_MS";
    pub const MAX_CONNECTIONS: &str = "MAX_CONNECTIONS";
    pub const MAX_CONNECTIONS_PER_CLIENT: &str = "MAX_CONNECTIONS_PER_CLIENT";
}

/// What one server allows its clients' connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `HEADER_READ_TIMEOUT_MS`: a request's head must arrive whole within this of the
    /// connection being ready for it (accepted, or answered before); it also closes idle
    /// kept-alive connections.
    pub header_read_timeout: Duration,
    /// `BODY_READ_TIMEOUT_MS`: a request's body must arrive whole within this.
    pub body_read_timeout: Duration,
    /// `WRITE_TIMEOUT_MS`: an answer's write may make no progress for this long before the
    /// connection and the answer are dropped.
    pub write_timeout: Duration,
    /// `MAX_CONNECTIONS`: connections open at once.
    pub max_connections: usize,
    /// `MAX_CONNECTIONS_PER_CLIENT`: connections open at once from one client (IPv4 address or
    /// IPv6 /64); `None` (`0`) when clients cannot be told apart by their address.
    pub max_connections_per_client: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            max_connections: 1024,
            max_connections_per_client: Some(128),
        }
    }
}

/// A variable set to something unusable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct LimitsError {
    pub variable: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl Limits {
    /// Reads the limits through `lookup` (the environment, or a map in tests); unset
    /// variables take `defaults`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        defaults: Limits,
    ) -> Result<Self, LimitsError> {
        let number = |variable: &'static str, default: u64| -> Result<u64, LimitsError> {
            match lookup(variable) {
                None => Ok(default),
                Some(value) => value.trim().parse().map_err(|_| LimitsError {
                    variable,
                    value,
                    reason: "expected a whole number",
                }),
            }
        };
        let positive = |variable: &'static str, default: u64| -> Result<u64, LimitsError> {
            match number(variable, default)? {
                0 => Err(LimitsError {
                    variable,
                    value: "0".to_owned(),
                    reason: "must be at least 1",
                }),
                value => Ok(value),
            }
        };
        let millis = |variable, default: Duration| {
            positive(variable, default.as_millis() as u64).map(Duration::from_millis)
        };
        use vars::*;
        let per_client = number(
            MAX_CONNECTIONS_PER_CLIENT,
            defaults.max_connections_per_client.unwrap_or(0) as u64,
        )?;
        Ok(Self {
            header_read_timeout: millis(HEADER_READ_TIMEOUT_MS, defaults.header_read_timeout)?,
            body_read_timeout: millis(BODY_READ_TIMEOUT_MS, defaults.body_read_timeout)?,
            write_timeout: millis(WRITE_TIMEOUT_MS, defaults.write_timeout)?,
            max_connections: positive(MAX_CONNECTIONS, defaults.max_connections as u64)? as usize,
            max_connections_per_client: (per_client > 0).then_some(per_client as usize),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variables_take_the_defaults_and_set_ones_are_read() {
        let defaults = Limits::default();
        assert_eq!(
            Limits::from_lookup(|_| None, defaults.clone()).unwrap(),
            defaults
        );
        let set = Limits::from_lookup(
            |name| match name {
                vars::HEADER_READ_TIMEOUT_MS => Some("2500".into()),
                vars::MAX_CONNECTIONS_PER_CLIENT => Some("0".into()),
                _ => None,
            },
            defaults,
        )
        .unwrap();
        assert_eq!(set.header_read_timeout, Duration::from_millis(2500));
        assert_eq!(set.max_connections_per_client, None);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (variable, value) in [
            (vars::WRITE_TIMEOUT_MS, "0"),
            (vars::MAX_CONNECTIONS, "many"),
        ] {
            let error = Limits::from_lookup(
                |name| (name == variable).then(|| value.to_owned()),
                Limits::default(),
            )
            .unwrap_err();
            assert_eq!(error.variable, variable);
        }
    }
}
