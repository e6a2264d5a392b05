//! Remote-address patterns of `plain_acl.yml` (`RemoteAddressStrategyFactory`): blank never
//! matches; `*` matches everything; `192.168.1.{1,2}` and `a,b` list addresses; `192.168.1.*`,
//! `192.168.1.1-10`, `192.168.*.*` are ranges on the first wildcard octet; anything else is one
//! exact address.

use std::net::IpAddr;

/// A parsed white-address pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddressPattern {
    Blank,
    Any,
    List(Vec<IpAddr>),
    /// IPv4: the leading octets, then the range of the next one (later octets are free).
    Range {
        head: Vec<u8>,
        low: u8,
        high: u8,
    },
    One(IpAddr),
}

fn netaddress(s: &str) -> String {
    format!("Netaddress examine Exception netaddress is {s}")
}

fn ip(s: &str) -> Result<IpAddr, String> {
    s.trim().parse().map_err(|_| netaddress(s))
}

impl AddressPattern {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self::Blank);
        }
        if matches!(s, "*" | "*.*.*.*" | "*:*:*:*:*:*:*:*") {
            return Ok(Self::Any);
        }
        if s.ends_with('}') {
            let (head, tail) = s.rsplit_once('{').ok_or_else(|| netaddress(s))?;
            let tail = tail.trim_end_matches('}');
            let ips = tail
                .split(',')
                .map(|last| ip(&format!("{head}{}", last.trim())))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Self::List(ips));
        }
        if s.contains(',') {
            return Ok(Self::List(
                s.split(',').map(ip).collect::<Result<Vec<_>, _>>()?,
            ));
        }
        if s.contains('*') || s.contains('-') {
            let parts: Vec<&str> = s.split('.').collect();
            if parts.len() != 4 {
                return Err(netaddress(s));
            }
            let mut head = Vec::new();
            for (i, p) in parts.iter().enumerate() {
                if *p == "*" || p.contains('-') {
                    if i == 0 {
                        return Err(netaddress(s));
                    }
                    let (low, high) = if *p == "*" {
                        (0, 255)
                    } else {
                        let (a, b) = p.split_once('-').ok_or_else(|| netaddress(s))?;
                        let a: u8 = a.parse().map_err(|_| netaddress(s))?;
                        let b: u8 = b.parse().map_err(|_| netaddress(s))?;
                        if a > b {
                            return Err(format!(
                                "RangeRemoteAddressStrategy netaddress examine scope Exception start is {a} , end is {b}"
                            ));
                        }
                        (a, b)
                    };
                    return Ok(Self::Range { head, low, high });
                }
                head.push(p.parse::<u8>().map_err(|_| netaddress(s))?);
            }
            return Err(netaddress(s));
        }
        Ok(Self::One(ip(s)?))
    }

    /// Whether a client address matches.
    pub(crate) fn matches(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        match self {
            Self::Blank => false,
            Self::Any => true,
            Self::List(ips) => ips.contains(&addr),
            Self::One(ip) => *ip == addr,
            Self::Range { head, low, high } => match addr {
                IpAddr::V4(v4) => {
                    let o = v4.octets();
                    o.starts_with(head)
                        && o.get(head.len())
                            .is_some_and(|x| (*low..=*high).contains(x))
                }
                IpAddr::V6(_) => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, addr: &str) -> bool {
        let ip: IpAddr = addr.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        AddressPattern::parse(pattern).is_ok_and(|p| p.matches(ip))
    }

    #[test]
    fn the_pattern_forms() {
        assert!(!m("", "127.0.0.1"));
        assert!(m("*", "10.1.2.3"));
        assert!(m("192.168.1.{1,2}", "192.168.1.2"));
        assert!(!m("192.168.1.{1,2}", "192.168.1.3"));
        assert!(m("192.168.1.1,192.168.1.2", "192.168.1.1"));
        assert!(m("192.168.1.*", "192.168.1.200"));
        assert!(!m("192.168.1.*", "192.168.2.1"));
        assert!(m("192.168.1.1-10", "192.168.1.10"));
        assert!(!m("192.168.1.1-10", "192.168.1.11"));
        assert!(m("192.168.*.*", "192.168.77.1"));
        assert!(m("127.0.0.1", "127.0.0.1"));
        assert!(m("127.0.0.1", "::ffff:127.0.0.1"));
        assert!(AddressPattern::parse("not-an-ip").is_err());
        assert!(AddressPattern::parse("10.0.0.5-1").is_err());
    }
}
