//! Which multicast groups the server may use (`--multicast-range`), and which of them
//! are taken. Pure bookkeeping: no sockets.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The default `--multicast-range`: 254 groups inside 239.255.0.0/16, the IPv4 Local
/// Scope of administratively scoped multicast (RFC 2365 6.1), which routers at a site's
/// edge do not pass on.
pub const DEFAULT_RANGE: &str = "239.255.12.0/24";
/// The default `--multicast-ttl`: the group's packets stay on the server's own network.
pub const DEFAULT_TTL: u8 = 1;

/// IPv4 multicast (RFC 5771).
const MULTICAST: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4);
/// The Local Network Control Block (224.0.0.0/24): routing protocols and discovery.
const CONTROL_BLOCK: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 24);

/// Why a `--multicast-range` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{0:?} is not an IPv4 CIDR block such as {DEFAULT_RANGE}")]
    NotCidr(String),
    #[error(
        "{0} is not a multicast range (it must lie inside 224.0.0.0/4; 239.0.0.0/8 is the administratively scoped part, RFC 2365)"
    )]
    NotMulticast(Ipv4Net),
    #[error("{0} overlaps 224.0.0.0/24, which is kept for network control protocols")]
    ControlBlock(Ipv4Net),
}

/// Reads a `--multicast-range` (`239.255.12.0/24`; a bare address is a /32), checking it
/// lies inside 224.0.0.0/4 and outside 224.0.0.0/24. Host bits are dropped.
pub fn parse_range(text: &str) -> Result<Ipv4Net, RangeError> {
    let text = text.trim();
    let net = match text.parse::<Ipv4Net>() {
        Ok(net) => net.trunc(),
        Err(_) => text
            .parse::<Ipv4Addr>()
            .map(Ipv4Net::from)
            .map_err(|_| RangeError::NotCidr(text.to_string()))?,
    };
    if !MULTICAST.contains(&net) {
        return Err(RangeError::NotMulticast(net));
    }
    if net.contains(&CONTROL_BLOCK) || CONTROL_BLOCK.contains(&net) {
        return Err(RangeError::ControlBlock(net));
    }
    Ok(net)
}

/// The range's groups and which are in use. The groups are the range's host addresses
/// (239.255.12.1 to .254 of a /24: an address ending in .0 or .255 is a valid group,
/// but reads as a network's or a broadcast address). They are handed out in turn,
/// wrapping at the range's end, so that a group just freed is the last to be used again
/// (receivers of its old stream may still be joined to it).
#[derive(Debug, Clone)]
pub struct Addresses {
    range: Ipv4Net,
    taken: BTreeSet<Ipv4Addr>,
    /// Where the search for the next free group starts.
    next: u32,
}

impl Addresses {
    pub fn new(range: Ipv4Net) -> Addresses {
        Addresses {
            range,
            taken: BTreeSet::new(),
            next: first_and_last(range).0,
        }
    }

    pub fn range(&self) -> Ipv4Net {
        self.range
    }

    /// Groups in use.
    pub fn in_use(&self) -> usize {
        self.taken.len()
    }

    /// A free group, now taken; `None` when every group of the range is.
    pub fn take(&mut self) -> Option<Ipv4Addr> {
        let (first, last) = first_and_last(self.range);
        let size = u64::from(last - first) + 1;
        if self.taken.len() as u64 >= size {
            return None;
        }
        let mut candidate = self.next.clamp(first, last);
        loop {
            let addr = Ipv4Addr::from(candidate);
            candidate = if candidate == last {
                first
            } else {
                candidate + 1
            };
            if self.taken.insert(addr) {
                self.next = candidate;
                return Some(addr);
            }
        }
    }

    /// Gives `addr` back (a group of another range, or not taken, changes nothing).
    pub fn free(&mut self, addr: Ipv4Addr) {
        self.taken.remove(&addr);
    }
}

/// The first and last group of a range: its host addresses.
fn first_and_last(range: Ipv4Net) -> (u32, u32) {
    let (network, broadcast) = (u32::from(range.network()), u32::from(range.broadcast()));
    if range.prefix_len() < 31 {
        (network + 1, broadcast - 1)
    } else {
        (network, broadcast)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    #[test]
    fn reads_multicast_ranges_and_refuses_others() {
        assert_eq!(parse_range(DEFAULT_RANGE), Ok(net("239.255.12.0/24")));
        assert_eq!(parse_range(" 239.1.2.3/16 "), Ok(net("239.1.0.0/16")));
        assert_eq!(parse_range("239.1.2.3"), Ok(net("239.1.2.3/32")));
        assert_eq!(parse_range("224.0.1.0/24"), Ok(net("224.0.1.0/24")));
        assert_eq!(
            parse_range("10.0.0.0/8"),
            Err(RangeError::NotMulticast(net("10.0.0.0/8")))
        );
        // Reaching out of 224.0.0.0/4 is not multicast either.
        assert_eq!(
            parse_range("224.0.0.0/3"),
            Err(RangeError::NotMulticast(net("224.0.0.0/3")))
        );
        assert_eq!(
            parse_range("224.0.0.0/4"),
            Err(RangeError::ControlBlock(net("224.0.0.0/4")))
        );
        assert_eq!(
            parse_range("224.0.0.128/25"),
            Err(RangeError::ControlBlock(net("224.0.0.128/25")))
        );
        for bad in ["", "239.1.2.0/33", "nonsense", "ff02::1/16", "239.1.2/24"] {
            assert!(
                matches!(parse_range(bad), Err(RangeError::NotCidr(_))),
                "{bad}"
            );
        }
        assert!(
            parse_range("10.0.0.0/8")
                .unwrap_err()
                .to_string()
                .starts_with("10.0.0.0/8 is not a multicast range")
        );
    }

    #[test]
    fn hands_out_each_group_once_until_freed() {
        let mut addresses = Addresses::new(net("239.9.9.0/29"));
        let taken: Vec<Ipv4Addr> = (0..6).map(|_| addresses.take().unwrap()).collect();
        assert_eq!(
            taken,
            (1..=6)
                .map(|n| Ipv4Addr::new(239, 9, 9, n))
                .collect::<Vec<_>>()
        );
        assert_eq!(addresses.in_use(), 6);
        assert_eq!(addresses.take(), None, "the range is used up");
        addresses.free("239.9.9.1".parse().unwrap());
        assert_eq!(addresses.take(), Some("239.9.9.1".parse().unwrap()));
        assert_eq!(addresses.take(), None);
    }

    #[test]
    fn a_freed_group_is_used_again_last() {
        let mut addresses = Addresses::new(net("239.9.9.0/29"));
        let first = addresses.take().unwrap();
        addresses.free(first);
        // The others come first, then the freed one, wrapping at the range's end.
        let order: Vec<Ipv4Addr> = (0..6).map(|_| addresses.take().unwrap()).collect();
        assert_eq!(order[5], first);
        assert_eq!(order[0], Ipv4Addr::new(239, 9, 9, 2));
        // Freeing what was never taken, or another range's group, changes nothing.
        addresses.free("239.1.1.1".parse().unwrap());
        assert_eq!(addresses.in_use(), 6);
        // A /31 and a /32 have no network or broadcast address to leave out.
        let mut pair = Addresses::new(net("239.9.9.8/31"));
        assert_eq!(pair.take(), Some(Ipv4Addr::new(239, 9, 9, 8)));
        assert_eq!(pair.take(), Some(Ipv4Addr::new(239, 9, 9, 9)));
        assert_eq!(pair.take(), None);
    }

    #[test]
    fn a_single_group_range_works() {
        let mut addresses = Addresses::new(parse_range("239.255.77.7").unwrap());
        let only = addresses.take().unwrap();
        assert_eq!(only, "239.255.77.7".parse::<Ipv4Addr>().unwrap());
        assert_eq!(addresses.take(), None);
        addresses.free(only);
        assert_eq!(addresses.take(), Some(only));
    }
}
