//! Networks in the config: `"192.0.2.0/24"`, `"2001:db8::/32"`, or a bare address meaning
//! that one host.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(pub IpNet);

impl Cidr {
    /// A network written in the source (a default), known to parse.
    pub(crate) fn literal(s: &str) -> Cidr {
        s.parse().expect("literal network")
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(*ip, IpAddr::V4),
            v4 => *v4,
        };
        self.0.contains(&ip)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        s.parse::<IpAddr>().map(|ip| Cidr(IpNet::from(ip))).map_err(|_| format!("`{s}` is not an address or CIDR network"))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let net: Cidr = "192.0.2.77/24".parse().unwrap();
        assert_eq!(net.to_string(), "192.0.2.0/24");
        assert!(net.contains(&"192.0.2.1".parse().unwrap()));
        assert!(net.contains(&"::ffff:192.0.2.9".parse().unwrap()));
        assert!(!net.contains(&"192.0.3.1".parse().unwrap()));
        let host: Cidr = "2001:db8::1".parse().unwrap();
        assert_eq!(host.to_string(), "2001:db8::1/128");
        assert!("nonsense".parse::<Cidr>().is_err());
    }
}
