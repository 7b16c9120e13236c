//! Where the service may connect on someone else's behalf: a script's `fetch`, a tenant's
//! script loaded from a URL. One implementation of the rules for both, so that they cannot
//! drift apart:
//!
//! - [`HostPattern`]: the allow-list entries of the tenants file (`api.example.com`,
//!   `*.example.com`);
//! - [`check_address`]: the addresses nobody may reach from the service, whatever a name
//!   resolves to (loopback, private, link-local and the cloud metadata address, unique-local,
//!   CGNAT, multicast, and IPv6 forms that embed an IPv4 address);
//! - with the `client` feature, [`client`]: a resolver that applies the address rules to
//!   every address a name resolves to, at connection time (so DNS rebinding cannot slip past
//!   a check made earlier), the same rules for addresses written in URLs, redirects re-checked
//!   at every hop, and an HTTP client built with them that carries no proxy, cookie or
//!   credential of the service's own.

mod address;
mod host;

#[cfg(feature = "client")]
pub mod client;

pub use address::{AddressPolicy, BlockedAddress, Rule, blocked_networks, check_address};
pub use host::{BadHostPattern, HostPattern};
