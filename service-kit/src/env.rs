//! Environment variables declared once. Each variable is one [`Var`]: its name, its default
//! (written as an operator would set it, and parsed by the variable's own parser, so the
//! documented default and the value used cannot differ), its parser with its bounds, and its
//! help. [`variables!`](crate::variables) declares a binary's variables and the list of them,
//! from which `--help` ([`help`]), README's tables ([`readme_rows`]) and the configuration
//! ([`Env`]) all follow.
//!
//! Both binaries treat a value the same way: surrounding white space is ignored, and a
//! variable set to nothing but white space is unset.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

/// A variable that is set to something unusable: names the variable, the value and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

/// What a variable is when it is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// This value, as it would be set.
    Value(&'static str),
    /// No value; the text says what happens instead (`unset`, `CPU count`, ...).
    Unset(&'static str),
}

/// The default of a variable: `text` as it would be set.
pub const fn default(text: &'static str) -> Fallback {
    Fallback::Value(text)
}

/// A variable without a default value; `meaning` says what happens when it is not set.
pub const fn unset(meaning: &'static str) -> Fallback {
    Fallback::Unset(meaning)
}

/// One environment variable, declared once (see [`variables!`](crate::variables)).
#[derive(Debug)]
pub struct Var<T> {
    pub name: &'static str,
    pub fallback: Fallback,
    /// Parses a set value (trimmed) and checks its bounds; the error is the rule it broke.
    pub parse: fn(&str) -> Result<T, String>,
    pub help: &'static str,
}

/// What `--help` and README show of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doc {
    pub name: &'static str,
    pub fallback: Fallback,
    pub help: &'static str,
}

impl<T> Var<T> {
    /// What `--help` and README show of it.
    pub const fn doc(&self) -> Doc {
        Doc {
            name: self.name,
            fallback: self.fallback,
            help: self.help,
        }
    }

    /// The declared default, parsed.
    ///
    /// # Panics
    /// When the variable has none, or its declared default breaks its own rule: a mistake in
    /// the declaration, which the binaries' tests catch.
    pub fn default_value(&self) -> T {
        match self.fallback {
            Fallback::Value(text) => (self.parse)(text).unwrap_or_else(|reason| {
                panic!("{}'s declared default {text:?}: {reason}", self.name)
            }),
            Fallback::Unset(_) => panic!("{} has no default value", self.name),
        }
    }
}

impl Doc {
    /// The default as `--help` shows it.
    pub fn default_text(&self) -> &'static str {
        match self.fallback {
            Fallback::Value(text) | Fallback::Unset(text) => text,
        }
    }

    /// The row of README's configuration table for this variable.
    pub fn readme_row(&self) -> String {
        let default = match self.fallback {
            Fallback::Value(text) => format!("`{text}`"),
            Fallback::Unset(text) => text.to_owned(),
        };
        format!("| `{}` | {default} | {} |", self.name, self.help)
    }
}

/// README's table rows for `variables`, one per variable, in their order.
pub fn readme_rows(variables: &[Doc]) -> Vec<String> {
    variables.iter().map(Doc::readme_row).collect()
}

/// The "Environment variables" section of a binary's `--help`: each variable with its help
/// and default, the help wrapped under the name.
pub fn help(variables: &[Doc]) -> String {
    let mut help = String::from("Environment variables (unset: the default in brackets):\n");
    for doc in variables {
        help.push_str(&format!("  {}\n", doc.name));
        let text = format!(
            "{} [default: {}]",
            without_links(doc.help),
            doc.default_text()
        );
        let mut line = String::new();
        for word in text.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > 88 {
                help.push_str(&format!("          {line}\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        help.push_str(&format!("          {line}\n"));
    }
    help
}

/// `text` with its Markdown links (`[Memory budget](#memory-budget)`) reduced to their text.
fn without_links(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some((label, after)) = rest[open + 1..].split_once("](") else {
            break;
        };
        let Some(close) = after.find(')') else {
            break;
        };
        plain.push_str(&rest[..open]);
        plain.push_str(label);
        rest = &after[close + 1..];
    }
    plain.push_str(rest);
    plain
}

/// Reads declared variables through a lookup (the process environment, or a map in tests).
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    /// Variables as `lookup` gives them.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The trimmed value of `name`, or `None` when it is unset or empty.
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// The variable's value, or its declared default when it is not set.
    pub fn get<T>(&self, var: &Var<T>) -> Result<T, ConfigError> {
        Ok(match self.optional(var)? {
            Some(value) => value,
            None => var.default_value(),
        })
    }

    /// The variable's value if it is set.
    pub fn optional<T>(&self, var: &Var<T>) -> Result<Option<T>, ConfigError> {
        self.raw(var.name)
            .map(|value| {
                (var.parse)(&value).map_err(|reason| ConfigError {
                    variable: var.name,
                    value,
                    reason,
                })
            })
            .transpose()
    }
}

/// Parsers for [`Var::parse`]; each names its rule when a value breaks it.
pub mod parse {
    use super::*;

    /// Any text.
    pub fn text(value: &str) -> Result<String, String> {
        Ok(value.to_owned())
    }

    /// A path.
    pub fn path(value: &str) -> Result<PathBuf, String> {
        Ok(PathBuf::from(value))
    }

    /// `true` or `false`.
    pub fn boolean(value: &str) -> Result<bool, String> {
        match value {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected `true` or `false`".into()),
        }
    }

    /// `host:port`.
    pub fn socket_addr(value: &str) -> Result<SocketAddr, String> {
        value
            .parse()
            .map_err(|_| "expected host:port, e.g. 127.0.0.1:8080".into())
    }

    /// `host:port`, or `off` for none.
    pub fn socket_addr_or_off(value: &str) -> Result<Option<SocketAddr>, String> {
        match value {
            "off" => Ok(None),
            address => socket_addr(address)
                .map(Some)
                .map_err(|rule| format!("{rule}, or `off`")),
        }
    }

    /// A TCP port.
    pub fn port(value: &str) -> Result<u16, String> {
        value
            .parse()
            .map_err(|_| "expected a port number (0 to 65535)".into())
    }

    /// A whole number, 0 included.
    pub fn whole<T: FromStr>(value: &str) -> Result<T, String> {
        value
            .parse()
            .map_err(|_| "expected a whole number (0, 1, 2, ...)".into())
    }

    /// A whole number of at least 1.
    pub fn at_least_one<T: FromStr + PartialEq + From<u8>>(value: &str) -> Result<T, String> {
        match whole::<T>(value)? {
            zero if zero == T::from(0) => Err("must be at least 1".into()),
            number => Ok(number),
        }
    }

    /// Milliseconds, 0 included.
    pub fn millis(value: &str) -> Result<Duration, String> {
        whole(value)
            .map(Duration::from_millis)
            .map_err(|_| "expected milliseconds (a whole number)".into())
    }

    /// Milliseconds, at least 1.
    pub fn positive_millis(value: &str) -> Result<Duration, String> {
        match millis(value)? {
            Duration::ZERO => Err("must be at least 1".into()),
            duration => Ok(duration),
        }
    }

    /// Seconds, at least 1.
    pub fn positive_seconds(value: &str) -> Result<Duration, String> {
        match whole::<u64>(value) {
            Ok(0) => Err("must be at least 1".into()),
            Ok(seconds) => Ok(Duration::from_secs(seconds)),
            Err(_) => Err("expected seconds (a whole number)".into()),
        }
    }

    /// Mebibytes, at least 1, read as bytes.
    pub fn mebibytes(value: &str) -> Result<u64, String> {
        at_least_one::<u64>(value)?
            .checked_mul(1024 * 1024)
            .ok_or_else(|| "too large".into())
    }

    /// A percentage from 1 to 100.
    pub fn percent(value: &str) -> Result<u8, String> {
        match whole::<u8>(value) {
            Ok(percent @ 1..=100) => Ok(percent),
            _ => Err("expected a percentage from 1 to 100".into()),
        }
    }

    /// The share of successful requests logged, from 0 to 1.
    pub fn sample(value: &str) -> Result<crate::telemetry::Sample, String> {
        value
            .parse::<f64>()
            .ok()
            .and_then(crate::telemetry::Sample::new)
            .ok_or_else(|| "expected a number from 0 to 1".into())
    }

    /// `text` or `json`.
    pub fn log_format(value: &str) -> Result<crate::LogFormat, String> {
        match value {
            "text" => Ok(crate::LogFormat::Text),
            "json" => Ok(crate::LogFormat::Json),
            _ => Err("expected `text` or `json`".into()),
        }
    }
}

/// Declares a binary's environment variables, each once, and the list of them in order:
///
/// ```
/// use std::net::SocketAddr;
/// use service_kit::env::{default, parse::*};
///
/// service_kit::variables! {
///     /// Every variable of the binary, in the order of `--help` and README.
///     pub const VARIABLES;
///
///     /// address to listen on
///     LISTEN_ADDR: SocketAddr = default("127.0.0.1:8081"), socket_addr;
/// }
///
/// assert_eq!(VARIABLES[0].name, "LISTEN_ADDR");
/// assert_eq!(LISTEN_ADDR.default_value().port(), 8081);
/// ```
///
/// Each variable becomes a `pub const` [`Var`]; its doc comment is its help (README's
/// "Meaning" column).
#[macro_export]
macro_rules! variables {
    (
        $(#[$list_doc:meta])*
        pub const $list:ident;
        $(
            $(#[doc = $help:literal])+
            $name:ident: $ty:ty = $fallback:expr, $parse:expr;
        )+
    ) => {
        $(
            $(#[doc = $help])+
            pub const $name: $crate::env::Var<$ty> = $crate::env::Var {
                name: stringify!($name),
                fallback: $fallback,
                parse: $parse,
                help: concat!($($help),+).trim_ascii(),
            };
        )+
        $(#[$list_doc])*
        pub const $list: &[$crate::env::Doc] = &[$($name.doc()),+];
    };
}

#[cfg(test)]
mod tests {
    use super::{parse::*, *};

    crate::variables! {
        /// The variables of these tests.
        pub const VARIABLES;

        /// a number
        /// of things
        COUNT: u32 = default("3"), at_least_one;
        /// where to listen ([Addresses](#addresses))
        ADDRESS: SocketAddr = unset("nowhere"), socket_addr;
    }

    #[test]
    fn unset_and_empty_values_take_the_declared_default_and_set_ones_are_trimmed() {
        let lookup = |name: &str| match name {
            "COUNT" => Some("  ".to_owned()),
            "ADDRESS" => Some(" 127.0.0.1:1 ".to_owned()),
            _ => None,
        };
        let env = Env::new(&lookup);
        assert_eq!(env.get(&COUNT).unwrap(), 3);
        assert_eq!(
            env.optional(&ADDRESS).unwrap(),
            Some("127.0.0.1:1".parse().unwrap())
        );
    }

    #[test]
    fn a_bad_value_names_the_variable_the_value_and_the_rule() {
        let lookup = |_: &str| Some("0".to_owned());
        let error = Env::new(&lookup).get(&COUNT).unwrap_err();
        assert_eq!(error.to_string(), "invalid COUNT=\"0\": must be at least 1");
    }

    #[test]
    fn doc_comments_are_the_help_of_readme_and_of_help() {
        assert_eq!(
            readme_rows(VARIABLES),
            [
                "| `COUNT` | `3` | a number of things |",
                "| `ADDRESS` | nowhere | where to listen ([Addresses](#addresses)) |"
            ]
        );
        let help = help(VARIABLES);
        assert!(help.contains("  COUNT\n"), "{help}");
        assert!(help.contains("a number of things [default: 3]"), "{help}");
        assert!(
            help.contains("where to listen (Addresses) [default: nowhere]"),
            "{help}"
        );
    }
}
