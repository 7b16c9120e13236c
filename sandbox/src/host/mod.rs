//! The host functions this sandbox offers scripts: the standard set ([`standard`]: `fetch`,
//! for tenants granted it), to which an operator adds their own (see the engine's `host`
//! module and the README's "Exposing host functions") before handing the registry to
//! [`crate::main`].

pub mod fetch;

use std::sync::Arc;

pub use engine::{CallContext, HostError, HostFunctions, Json, Usage};

use crate::Config;

/// The standard host functions: `fetch`, offered to tenants whose capabilities grant it.
pub fn standard(config: &Config) -> HostFunctions {
    let fetcher = Arc::new(fetch::Fetcher::new(config.fetch.clone()));
    HostFunctions::new()
        .asynchronous("fetch", move |arguments, call| {
            fetcher.clone().fetch(arguments, call)
        })
        .offered_when("fetch", |capabilities| capabilities.fetch.is_some())
}
