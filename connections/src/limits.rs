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
    pub const SHUTDOWN_NOTICE_MS: &str = "SHUTDOWN_NOTICE_MS";
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
    /// `SHUTDOWN_NOTICE_MS`: after the shutdown signal, how long the listener stays open,
    /// serving as before while `/healthz` answers 503, so that a load balancer probing it sees
    /// the server leave before its connections are refused; 0 closes the listener at once.
    pub shutdown_notice: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            max_connections: 1024,
            max_connections_per_client: Some(128),
            shutdown_notice: Duration::from_secs(1),
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

/// One environment variable as `--help` lists it: name, default, meaning.
pub type VariableHelp = (&'static str, String, &'static str);

/// The "Environment variables" section of a binary's `--help`, from its variables.
pub fn environment_help(variables: &[VariableHelp]) -> String {
    let width = variables
        .iter()
        .map(|(name, ..)| name.len())
        .max()
        .unwrap_or(0);
    let mut help = String::from("Environment variables (unset: the default in brackets):\n");
    for (name, default, meaning) in variables {
        help.push_str(&format!(
            "  {name:width$}  {meaning} [default: {default}]\n"
        ));
    }
    help
}

impl Limits {
    /// These limits' variables for `--help`, with `self` as the defaults.
    pub fn help(&self) -> Vec<VariableHelp> {
        let millis = |duration: Duration| duration.as_millis().to_string();
        vec![
            (
                vars::HEADER_READ_TIMEOUT_MS,
                millis(self.header_read_timeout),
                "ms for a request's head to arrive; also closes idle kept-alive connections",
            ),
            (
                vars::BODY_READ_TIMEOUT_MS,
                millis(self.body_read_timeout),
                "ms for a request's body to arrive whole (408 after)",
            ),
            (
                vars::WRITE_TIMEOUT_MS,
                millis(self.write_timeout),
                "ms an answer's write may make no progress before the connection is dropped",
            ),
            (
                vars::MAX_CONNECTIONS,
                self.max_connections.to_string(),
                "connections open at once",
            ),
            (
                vars::MAX_CONNECTIONS_PER_CLIENT,
                self.max_connections_per_client
                    .map_or_else(|| "0".to_owned(), |limit| limit.to_string()),
                "connections open at once from one address (IPv6: one /64); 0 for no limit",
            ),
            (
                vars::SHUTDOWN_NOTICE_MS,
                millis(self.shutdown_notice),
                "ms the listener stays open after SIGTERM, serving while /healthz answers 503; 0 for none",
            ),
        ]
    }

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
            shutdown_notice: Duration::from_millis(number(
                SHUTDOWN_NOTICE_MS,
                defaults.shutdown_notice.as_millis() as u64,
            )?),
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
                vars::SHUTDOWN_NOTICE_MS => Some("0".into()),
                _ => None,
            },
            defaults,
        )
        .unwrap();
        assert_eq!(set.header_read_timeout, Duration::from_millis(2500));
        assert_eq!(set.max_connections_per_client, None);
        assert_eq!(set.shutdown_notice, Duration::ZERO);
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
