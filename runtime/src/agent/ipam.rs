//! Pod IPs: virtual addresses from the node's pod CIDR, one per pod, stable for the pod's
//! uid while it lives (and across agent restarts, through the pod's directory).
//!
//! The network address and the first host address (the "gateway", as a CNI bridge would
//! take it) are never handed out, nor is the broadcast address of an IPv4 range.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A parsed CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub network: IpAddr,
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (expected e.g. 10.42.0.0/24)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|e| format!("{s:?}: bad address: {e}"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|e| format!("{s:?}: bad prefix length: {e}"))?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > bits || bits - prefix < 2 {
            return Err(format!(
                "{s:?}: the prefix leaves no room for pod addresses"
            ));
        }
        let network = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(u32::from(32 - prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Ok(Cidr { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    fn base(&self) -> u128 {
        match self.network {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn size(&self) -> u128 {
        let bits = if self.network.is_ipv4() { 32 } else { 128 };
        1u128
            .checked_shl(u32::from(bits - self.prefix))
            .unwrap_or(u128::MAX)
    }

    /// The offsets pods may get: from 2 up to the last (IPv4: before broadcast).
    fn usable(&self) -> (u128, u128) {
        let last = if self.network.is_ipv4() {
            self.size() - 2
        } else {
            self.size() - 1
        };
        (2, last)
    }

    fn offset_of(&self, ip: IpAddr) -> Option<u128> {
        let value = match (ip, self.network) {
            (IpAddr::V4(a), IpAddr::V4(_)) => u128::from(u32::from(a)),
            (IpAddr::V6(a), IpAddr::V6(_)) => u128::from(a),
            _ => return None,
        };
        let offset = value.checked_sub(self.base())?;
        (offset < self.size()).then_some(offset)
    }

    fn at(&self, offset: u128) -> IpAddr {
        let value = self.base() + offset;
        match self.network {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(0))),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }
}

/// The node's pod address allocator.
#[derive(Debug)]
pub struct Ipam {
    cidr: Cidr,
    by_offset: BTreeMap<u128, String>,
    by_uid: BTreeMap<String, u128>,
    /// Where the next search starts: addresses are not reused right away.
    cursor: u128,
}

impl Ipam {
    pub fn new(cidr: Cidr) -> Ipam {
        let (first, _) = cidr.usable();
        Ipam {
            cidr,
            by_offset: BTreeMap::new(),
            by_uid: BTreeMap::new(),
            cursor: first,
        }
    }

    /// The pod's address: its own if it has one, else `preferred` (a persisted address)
    /// when free and in range, else the next free one. `None` when the range is full.
    pub fn allocate(&mut self, uid: &str, preferred: Option<IpAddr>) -> Option<IpAddr> {
        if let Some(offset) = self.by_uid.get(uid) {
            return Some(self.cidr.at(*offset));
        }
        let (first, last) = self.cidr.usable();
        let wanted = preferred
            .and_then(|ip| self.cidr.offset_of(ip))
            .filter(|o| (first..=last).contains(o) && !self.by_offset.contains_key(o));
        let offset = match wanted {
            Some(o) => o,
            None => {
                let span = last - first + 1;
                let mut found = None;
                // Bounded by the number of taken addresses + 1, not by the range size.
                let mut candidate = self.cursor.clamp(first, last);
                for _ in 0..=self
                    .by_offset
                    .len()
                    .min(usize::try_from(span).unwrap_or(usize::MAX))
                {
                    if !self.by_offset.contains_key(&candidate) {
                        found = Some(candidate);
                        break;
                    }
                    candidate = if candidate >= last {
                        first
                    } else {
                        candidate + 1
                    };
                }
                found?
            }
        };
        self.by_offset.insert(offset, uid.to_string());
        self.by_uid.insert(uid.to_string(), offset);
        self.cursor = if offset >= last { first } else { offset + 1 };
        Some(self.cidr.at(offset))
    }

    /// Gives the pod's address back.
    pub fn release(&mut self, uid: &str) {
        if let Some(offset) = self.by_uid.remove(uid) {
            self.by_offset.remove(&offset);
        }
    }

    /// The pod's address, if it has one.
    pub fn get(&self, uid: &str) -> Option<IpAddr> {
        self.by_uid.get(uid).map(|o| self.cidr.at(*o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_cidrs() {
        let cases = [
            ("10.42.0.0/24", Ok("10.42.0.0/24")),
            ("10.42.0.7/24", Ok("10.42.0.0/24")),
            ("fd00::/64", Ok("fd00::/64")),
            ("10.42.0.0/31", Err(())),
            ("10.42.0.0", Err(())),
            ("10.42.0.0/33", Err(())),
            ("nope/24", Err(())),
        ];
        for (input, want) in cases {
            let got = input.parse::<Cidr>().map(|c| c.to_string()).map_err(|_| ());
            assert_eq!(got, want.map(str::to_string), "{input}");
        }
    }

    #[test]
    fn allocates_stably_skipping_reserved_addresses() {
        let mut ipam = Ipam::new("10.42.0.0/30".parse().unwrap());
        // /30: .0 network, .1 gateway, .3 broadcast: only .2 is usable.
        assert_eq!(ipam.allocate("a", None), Some(ip("10.42.0.2")));
        assert_eq!(ipam.allocate("a", None), Some(ip("10.42.0.2")), "stable");
        assert_eq!(ipam.allocate("b", None), None, "full");
        ipam.release("a");
        assert_eq!(ipam.allocate("b", None), Some(ip("10.42.0.2")));
        assert_eq!(ipam.get("b"), Some(ip("10.42.0.2")));
        assert_eq!(ipam.get("a"), None);
    }

    #[test]
    fn honours_a_free_preferred_address() {
        let mut ipam = Ipam::new("10.42.0.0/24".parse().unwrap());
        assert_eq!(
            ipam.allocate("a", Some(ip("10.42.0.9"))),
            Some(ip("10.42.0.9"))
        );
        // Taken, out of range or reserved: the next free one instead.
        let b = ipam.allocate("b", Some(ip("10.42.0.9"))).unwrap();
        assert_ne!(b, ip("10.42.0.9"));
        let c = ipam.allocate("c", Some(ip("192.168.0.9"))).unwrap();
        let d = ipam.allocate("d", Some(ip("10.42.0.255"))).unwrap();
        let e = ipam.allocate("e", Some(ip("10.42.0.1"))).unwrap();
        let all = [b, c, d, e];
        for (i, x) in all.iter().enumerate() {
            assert!(x.to_string().starts_with("10.42.0."), "{x}");
            assert!(!["10.42.0.0", "10.42.0.1", "10.42.0.255"].contains(&x.to_string().as_str()));
            assert!(!all[..i].contains(x), "{x} handed out twice");
        }
    }
}
