//! The pure rules that keep strangers from hurting the node, apart from the swarm that applies
//! them: inbound connections counted by remote IP ([`IpCounter`]), the bounded set of banned
//! peers ([`Banned`]), and a token bucket per peer for fetch requests ([`TokenBucket`]).

use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

/// The address an inbound connection is counted under: an IPv4 address as it is (an
/// IPv4-mapped IPv6 address as its IPv4 address), an IPv6 address by its /64 prefix (one end
/// site's allocation, so one host cannot take a fresh address per connection). `None` for an
/// address without an IP (not counted).
pub(crate) fn ip_key(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(match ip.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = ip.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        }),
        _ => None,
    })
}

/// Inbound connections per remote IP: each counts from the moment it is accepted (before its
/// handshake) until it closes, is refused later, or is released. At most `max_per_ip` at once.
#[derive(Debug)]
pub(crate) struct IpCounter {
    max_per_ip: usize,
    by_ip: HashMap<IpAddr, usize>,
    by_connection: HashMap<ConnectionId, IpAddr>,
}

impl IpCounter {
    pub(crate) fn new(max_per_ip: usize) -> IpCounter {
        IpCounter {
            max_per_ip,
            by_ip: HashMap::new(),
            by_connection: HashMap::new(),
        }
    }

    /// Counts `connection` under `ip`, or refuses it (returning how many `ip` already has) if
    /// `ip` is at its limit.
    pub(crate) fn try_add(&mut self, connection: ConnectionId, ip: IpAddr) -> Result<(), usize> {
        let n = self.count(&ip);
        if n >= self.max_per_ip {
            return Err(n);
        }
        self.by_ip.insert(ip, n + 1);
        self.by_connection.insert(connection, ip);
        Ok(())
    }

    /// Stops counting `connection`; a connection not counted is ignored.
    pub(crate) fn remove(&mut self, connection: ConnectionId) {
        let Some(ip) = self.by_connection.remove(&connection) else {
            return;
        };
        if let Some(n) = self.by_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_ip.remove(&ip);
            }
        }
    }

    /// Connections counted under `ip`.
    pub(crate) fn count(&self, ip: &IpAddr) -> usize {
        self.by_ip.get(ip).copied().unwrap_or(0)
    }
}

/// Peers banned for misbehaviour, at most `capacity`: banning one more forgets the one banned
/// longest ago (it may connect again, and is banned again if it misbehaves again).
#[derive(Debug)]
pub(crate) struct Banned {
    capacity: usize,
    order: VecDeque<PeerId>,
    set: HashSet<PeerId>,
}

impl Banned {
    pub(crate) fn new(capacity: usize) -> Banned {
        Banned {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// Bans `peer`: whether it was newly banned, and the peer forgotten to make room.
    pub(crate) fn insert(&mut self, peer: PeerId) -> (bool, Option<PeerId>) {
        if !self.set.insert(peer) {
            return (false, None);
        }
        self.order.push_back(peer);
        let mut evicted = None;
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
                evicted = Some(old);
            }
        }
        (true, evicted)
    }

    pub(crate) fn contains(&self, peer: &PeerId) -> bool {
        self.set.contains(peer)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.order.len()
    }
}

/// A token bucket: up to `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(burst: u32, per_second: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            last: now,
        }
    }

    /// Takes a token if there is one, after refilling for the time since the last call.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        ip_key(&s.parse().unwrap()).unwrap()
    }

    fn conn(i: usize) -> ConnectionId {
        ConnectionId::new_unchecked(i)
    }

    #[test]
    fn ip_counter_refuses_the_connection_past_the_limit_and_frees_a_slot_on_close() {
        let (a, b) = (ip("/ip4/10.0.0.1/tcp/1"), ip("/ip4/10.0.0.2/tcp/1"));
        let mut c = IpCounter::new(3);
        for i in 0..3 {
            assert_eq!(c.try_add(conn(i), a), Ok(()));
        }
        // The fourth from the same address is refused; another address is not.
        assert_eq!(c.try_add(conn(3), a), Err(3));
        assert_eq!(c.try_add(conn(4), b), Ok(()));
        // A refused connection was never counted: removing it changes nothing.
        c.remove(conn(3));
        assert_eq!(c.count(&a), 3);
        c.remove(conn(0));
        assert_eq!(c.count(&a), 2);
        assert_eq!(c.try_add(conn(5), a), Ok(()));
        assert_eq!(c.try_add(conn(6), a), Err(3));
        // Removing twice frees one slot, not two.
        c.remove(conn(1));
        c.remove(conn(1));
        assert_eq!(c.count(&a), 2);
    }

    #[test]
    fn ip_counter_with_limit_zero_refuses_everything() {
        let mut c = IpCounter::new(0);
        assert_eq!(c.try_add(conn(0), ip("/ip4/10.0.0.1/tcp/1")), Err(0));
        assert!(c.by_ip.is_empty() && c.by_connection.is_empty());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_prefix_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            ip("/ip6/2001:db8:1:2::1/tcp/1"),
            ip("/ip6/2001:db8:1:2:ffff::9/tcp/1")
        );
        assert_ne!(
            ip("/ip6/2001:db8:1:2::1/tcp/1"),
            ip("/ip6/2001:db8:1:3::1/tcp/1")
        );
        assert_eq!(ip("/ip6/::ffff:10.0.0.1/tcp/1"), ip("/ip4/10.0.0.1/tcp/1"));
        assert_eq!(ip_key(&"/dns4/example.com/tcp/1".parse().unwrap()), None);
    }

    #[test]
    fn banned_set_forgets_the_oldest_ban_at_its_capacity() {
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let mut b = Banned::new(3);
        for p in &peers[..3] {
            assert_eq!(b.insert(*p), (true, None));
        }
        // Banning again is a no-op.
        assert_eq!(b.insert(peers[1]), (false, None));
        assert_eq!(b.len(), 3);
        // One more forgets the first.
        assert_eq!(b.insert(peers[3]), (true, Some(peers[0])));
        assert_eq!(b.len(), 3);
        assert!(!b.contains(&peers[0]));
        assert!(peers[1..].iter().all(|p| b.contains(p)));
    }

    #[test]
    fn token_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(4, 2, t0);
        for _ in 0..4 {
            assert!(b.try_take(t0));
        }
        assert!(!b.try_take(t0), "the burst is spent");
        // Half a second at 2 per second refills one token.
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.try_take(t1));
        assert!(!b.try_take(t1));
        // A long idle time refills to the burst, no more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..4 {
            assert!(b.try_take(t2));
        }
        assert!(!b.try_take(t2));
        // An earlier instant refills nothing.
        assert!(!b.try_take(t0));
    }
}
