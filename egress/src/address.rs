//! The addresses the service never connects to on a script's or tenant's behalf.
//!
//! The rules follow IANA's special-purpose address registries: anything that is not a global
//! unicast address is refused, and IPv6 forms that carry an IPv4 address (mapped, compatible,
//! NAT64, 6to4, Teredo) are refused outright rather than decoded, since no public service needs
//! them and each has been used to smuggle an internal address past a filter.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Which addresses are allowed beyond the global ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Allows loopback addresses (127.0.0.0/8, ::1). For tests that serve on loopback only;
    /// never set in production.
    pub allow_loopback: bool,
}

/// Why an address is refused; the rule's name appears in the error a script or client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Unspecified,
    Loopback,
    Private,
    LinkLocal,
    UniqueLocal,
    SharedAddressSpace,
    Multicast,
    Broadcast,
    Documentation,
    Reserved,
    EmbeddedIpv4,
}

impl Rule {
    /// The rule as a phrase: "a loopback address".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "an unspecified address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::LinkLocal => {
                "a link-local address (this includes the cloud metadata service, 169.254.169.254)"
            }
            Self::UniqueLocal => "a unique-local IPv6 address",
            Self::SharedAddressSpace => "a carrier-grade NAT address (100.64.0.0/10)",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Documentation => "a documentation address",
            Self::Reserved => "a reserved, non-global address",
            Self::EmbeddedIpv4 => {
                "an IPv6 address that embeds an IPv4 address (mapped, compatible, NAT64, 6to4 or \
                 Teredo)"
            }
        }
    }
}

/// An address the rules refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct BlockedAddress {
    pub address: IpAddr,
    pub rule: Rule,
}

impl fmt::Display for BlockedAddress {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} is {}, which is blocked",
            self.address,
            self.rule.describe()
        )
    }
}

/// Refuses every address that is not global unicast (loopback only when `policy` allows it).
pub fn check_address(address: IpAddr, policy: AddressPolicy) -> Result<(), BlockedAddress> {
    let rule = match address {
        IpAddr::V4(v4) => v4_rule(v4),
        IpAddr::V6(v6) => v6_rule(v6),
    };
    match rule {
        None => Ok(()),
        Some(Rule::Loopback) if policy.allow_loopback => Ok(()),
        Some(rule) => Err(BlockedAddress { address, rule }),
    }
}

fn v4_rule(address: Ipv4Addr) -> Option<Rule> {
    if address.is_loopback() {
        return Some(Rule::Loopback);
    }
    if address.is_broadcast() {
        return Some(Rule::Broadcast);
    }
    V4_RULES
        .iter()
        .find(|(network, _)| {
            network
                .parse::<Ipv4Net>()
                .expect("the table holds valid networks")
                .contains(&address)
        })
        .map(|(_, rule)| *rule)
}

fn v6_rule(address: Ipv6Addr) -> Option<Rule> {
    if address.is_loopback() {
        return Some(Rule::Loopback);
    }
    V6_RULES
        .iter()
        .find(|(network, _)| {
            network
                .parse::<Ipv6Net>()
                .expect("the table holds valid networks")
                .contains(&address)
        })
        .map(|(_, rule)| *rule)
}

/// IANA's IPv4 special-purpose registry, less the globally reachable entries.
const V4_RULES: &[(&str, Rule)] = &[
    ("0.0.0.0/8", Rule::Unspecified),
    ("10.0.0.0/8", Rule::Private),
    ("100.64.0.0/10", Rule::SharedAddressSpace),
    ("127.0.0.0/8", Rule::Loopback),
    ("169.254.0.0/16", Rule::LinkLocal),
    ("172.16.0.0/12", Rule::Private),
    ("192.0.0.0/24", Rule::Reserved),
    ("192.0.2.0/24", Rule::Documentation),
    ("192.88.99.0/24", Rule::Reserved),
    ("192.168.0.0/16", Rule::Private),
    ("198.18.0.0/15", Rule::Reserved),
    ("198.51.100.0/24", Rule::Documentation),
    ("203.0.113.0/24", Rule::Documentation),
    ("224.0.0.0/4", Rule::Multicast),
    ("240.0.0.0/4", Rule::Reserved),
];

/// IANA's IPv6 special-purpose registry, less the globally reachable entries, and every form
/// that carries an IPv4 address.
const V6_RULES: &[(&str, Rule)] = &[
    ("::/128", Rule::Unspecified),
    ("::/96", Rule::EmbeddedIpv4),
    ("::ffff:0:0/96", Rule::EmbeddedIpv4),
    ("::ffff:0:0:0/96", Rule::EmbeddedIpv4),
    ("64:ff9b::/96", Rule::EmbeddedIpv4),
    ("64:ff9b:1::/48", Rule::EmbeddedIpv4),
    ("100::/64", Rule::Reserved),
    ("2001::/32", Rule::EmbeddedIpv4),
    ("2001::/23", Rule::Reserved),
    ("2001:db8::/32", Rule::Documentation),
    ("2002::/16", Rule::EmbeddedIpv4),
    ("3fff::/20", Rule::Documentation),
    ("5f00::/16", Rule::Reserved),
    ("fc00::/7", Rule::UniqueLocal),
    ("fe80::/10", Rule::LinkLocal),
    ("fec0::/10", Rule::Reserved),
    ("ff00::/8", Rule::Multicast),
];

/// Every network the rules name, for documentation and tests.
pub fn blocked_networks() -> impl Iterator<Item = (IpNet, Rule)> {
    let v4 = V4_RULES
        .iter()
        .map(|(network, rule)| (IpNet::V4(network.parse().expect("valid")), *rule));
    let v6 = V6_RULES
        .iter()
        .map(|(network, rule)| (IpNet::V6(network.parse().expect("valid")), *rule));
    v4.chain(v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(address: &str) -> Option<Rule> {
        check_address(address.parse().unwrap(), AddressPolicy::default())
            .err()
            .map(|blocked| blocked.rule)
    }

    #[test]
    fn global_addresses_pass() {
        for address in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
        ] {
            assert_eq!(rule(address), None, "{address}");
        }
    }

    #[test]
    fn every_internal_range_is_refused_with_its_rule() {
        let cases = [
            ("0.0.0.0", Rule::Unspecified),
            ("127.0.0.1", Rule::Loopback),
            ("127.255.255.254", Rule::Loopback),
            ("10.1.2.3", Rule::Private),
            ("172.16.0.1", Rule::Private),
            ("172.31.255.255", Rule::Private),
            ("192.168.1.1", Rule::Private),
            ("169.254.169.254", Rule::LinkLocal),
            ("100.64.0.1", Rule::SharedAddressSpace),
            ("100.127.255.255", Rule::SharedAddressSpace),
            ("224.0.0.1", Rule::Multicast),
            ("239.255.255.250", Rule::Multicast),
            ("255.255.255.255", Rule::Broadcast),
            ("240.0.0.1", Rule::Reserved),
            ("192.0.2.1", Rule::Documentation),
            ("198.18.0.1", Rule::Reserved),
            ("::", Rule::Unspecified),
            ("::1", Rule::Loopback),
            ("fd00::1", Rule::UniqueLocal),
            ("fc12:3456::1", Rule::UniqueLocal),
            ("fe80::1", Rule::LinkLocal),
            ("ff02::1", Rule::Multicast),
            ("::ffff:127.0.0.1", Rule::EmbeddedIpv4),
            ("::ffff:169.254.169.254", Rule::EmbeddedIpv4),
            ("::ffff:8.8.8.8", Rule::EmbeddedIpv4),
            ("::127.0.0.1", Rule::EmbeddedIpv4),
            ("64:ff9b::a9fe:a9fe", Rule::EmbeddedIpv4),
            ("2002:7f00:1::1", Rule::EmbeddedIpv4),
            ("2001:0:4136:e378::1", Rule::EmbeddedIpv4),
            ("2001:db8::1", Rule::Documentation),
        ];
        for (address, expected) in cases {
            assert_eq!(rule(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn the_loopback_setting_allows_loopback_and_nothing_else() {
        let policy = AddressPolicy {
            allow_loopback: true,
        };
        for address in ["127.0.0.1", "::1"] {
            assert!(check_address(address.parse().unwrap(), policy).is_ok());
        }
        for address in ["10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "0.0.0.0"] {
            assert!(check_address(address.parse().unwrap(), policy).is_err());
        }
    }

    #[test]
    fn the_error_names_the_address_and_the_rule() {
        let error = check_address("169.254.169.254".parse().unwrap(), AddressPolicy::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("169.254.169.254"), "{error}");
        assert!(error.contains("link-local"), "{error}");
    }

    #[test]
    fn the_tables_parse() {
        assert_eq!(blocked_networks().count(), V4_RULES.len() + V6_RULES.len());
    }
}
