//! Who may use how much of the RPC server: call budgets per connection and per client
//! address (token buckets), and connections per client address. The rules are plain data
//! with the clock passed in; [`RateLimit`] applies the budgets to every call, `serve` the
//! connection count to every accepted socket.

use jsonrpsee::core::server::BatchResponseBuilder;
use jsonrpsee::server::middleware::rpc::{Batch, BatchEntry, Notification, Request, RpcServiceT};
use jsonrpsee::{ConnectionId, MethodResponse};
use lockstep_client::api::{codes, error};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Buckets kept per kind before the full ones are forgotten. A bucket untouched for a second
/// is full again, the same as a new one, so forgetting it loses nothing; what stays is one
/// entry per connection or address that made a call in the last second.
pub const MAX_TRACKED_BUDGETS: usize = 100_000;
/// A bucket holds one second of its rate.
const BUCKET_SPAN: Duration = Duration::from_secs(1);

/// The address a client's limits are kept under: an IPv4 address, or an IPv6 address's /64
/// network (one host is usually given a whole /64, so its single addresses are free to it).
/// An IPv4 address mapped into IPv6 is the IPv4 address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The client address of a request, as `serve` found it: `None` when the per-address limits
/// do not apply to it (exempt, or the limit is off).
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientAddress(pub(super) Option<IpAddr>);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    last: Instant,
    tokens: f64,
}

/// Token buckets of `rate` calls a second (holding one second's worth), one per key; rate 0
/// is no limit.
struct Budgets<K> {
    rate: u32,
    buckets: HashMap<K, Bucket>,
}

impl<K: Hash + Eq> Budgets<K> {
    fn new(rate: u32) -> Self {
        Budgets {
            rate,
            buckets: HashMap::new(),
        }
    }

    /// `key`'s bucket refilled up to `now`; `None` when there is no limit.
    fn refill(&mut self, key: K, now: Instant) -> Option<&mut Bucket> {
        if self.rate == 0 {
            return None;
        }
        if self.buckets.len() >= MAX_TRACKED_BUDGETS {
            self.buckets
                .retain(|_, b| now.saturating_duration_since(b.last) < BUCKET_SPAN);
        }
        let rate = f64::from(self.rate);
        let b = self.buckets.entry(key).or_insert(Bucket {
            last: now,
            tokens: rate,
        });
        b.tokens =
            (b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate).min(rate);
        b.last = now;
        Some(b)
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    Connection,
    Address,
}

impl Refusal {
    fn message(self) -> &'static str {
        match self {
            Refusal::Connection => {
                "node busy: rate limit hit for this connection (rpc.rate_per_connection); retry later"
            }
            Refusal::Address => {
                "node busy: rate limit hit for this client address, all its connections together \
                 (rpc.rate_per_ip); retry later"
            }
        }
    }

    fn label(self) -> &'static str {
        match self {
            Refusal::Connection => "connection",
            Refusal::Address => "address",
        }
    }
}

/// The call budgets of every connection and every client address.
pub(super) struct CallBudgets {
    connections: Budgets<ConnectionId>,
    addresses: Budgets<IpAddr>,
}

impl CallBudgets {
    pub(super) fn new(per_connection: u32, per_address: u32) -> Self {
        CallBudgets {
            connections: Budgets::new(per_connection),
            addresses: Budgets::new(per_address),
        }
    }

    /// Takes one call from the connection's budget and from its address's (`None`: not
    /// limited by address) if both have one; otherwise takes nothing and says which is spent.
    pub(super) fn allow(
        &mut self,
        conn: ConnectionId,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Refusal> {
        if self
            .connections
            .refill(conn, now)
            .is_some_and(|b| b.tokens < 1.0)
        {
            return Err(Refusal::Connection);
        }
        if let Some(a) = address {
            if self
                .addresses
                .refill(a, now)
                .is_some_and(|b| b.tokens < 1.0)
            {
                return Err(Refusal::Address);
            }
            if let Some(b) = self.addresses.buckets.get_mut(&a) {
                b.tokens -= 1.0;
            }
        }
        if let Some(b) = self.connections.buckets.get_mut(&conn) {
            b.tokens -= 1.0;
        }
        Ok(())
    }
}

/// Connections open per client address, at most `max` each.
pub(super) struct ConnectionsPerAddress {
    max: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One open connection of an address; dropping it closes its place.
pub(super) struct AddressSlot {
    owner: Arc<ConnectionsPerAddress>,
    address: IpAddr,
}

impl ConnectionsPerAddress {
    pub(super) fn new(max: u32) -> Arc<Self> {
        Arc::new(ConnectionsPerAddress {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection from `address`, or `None` if it holds `max` already.
    pub(super) fn try_open(self: &Arc<Self>, address: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock();
        let n = open.entry(address).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            owner: self.clone(),
            address,
        })
    }

    #[cfg(test)]
    fn open(&self, address: IpAddr) -> u32 {
        self.open.lock().get(&address).copied().unwrap_or(0)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock();
        if let Some(n) = open.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Applies [`CallBudgets`] to every call, each call of a batch request included. Batch
/// requests are answered with their calls run concurrently (jsonrpsee runs them one after
/// another), so a batch of submissions is admitted as a group.
#[derive(Clone)]
pub(super) struct RateLimit<S> {
    pub(super) inner: S,
    pub(super) budgets: Arc<Mutex<CallBudgets>>,
}

impl<S> RpcServiceT for RateLimit<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let conn = req
            .extensions()
            .get::<ConnectionId>()
            .copied()
            .unwrap_or_default();
        let address = req.extensions().get::<ClientAddress>().and_then(|a| a.0);
        let allowed = self.budgets.lock().allow(conn, address, Instant::now());
        let inner = self.inner.clone();
        async move {
            match allowed {
                Ok(()) => inner.call(req).await,
                Err(why) => {
                    metrics::counter!(crate::metrics::RATE_LIMITED, "by" => why.label())
                        .increment(1);
                    MethodResponse::error(req.id, error(codes::BUSY, why.message()))
                }
            }
        }
    }

    fn batch<'a>(&self, b: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let this = self.clone();
        async move {
            let mut calls = Vec::with_capacity(b.len());
            let mut got_notification = false;
            for entry in b {
                match entry {
                    Ok(BatchEntry::Call(req)) => {
                        calls.push(futures::future::Either::Left(this.call(req)))
                    }
                    Ok(BatchEntry::Notification(n)) => {
                        got_notification = true;
                        this.inner.notification(n).await;
                    }
                    Err(e) => {
                        let (err, id) = e.into_parts();
                        calls.push(futures::future::Either::Right(std::future::ready(
                            MethodResponse::error(id, err),
                        )));
                    }
                }
            }
            let mut out = BatchResponseBuilder::new_with_limit(super::MAX_RESPONSE_BYTES as usize);
            for response in futures::future::join_all(calls).await {
                if let Err(too_big) = out.append(response) {
                    return too_big;
                }
            }
            if out.is_empty() && got_notification {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(out.finish())
            }
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.inner.notification(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_refused_at_its_rate_whatever_connection_calls() {
        const RATE: u32 = 5;
        let mut b = CallBudgets::new(1_000, RATE);
        let t0 = Instant::now();
        let a = Some(ip("203.0.113.7"));
        // The budget is shared: RATE calls over several connections, then a refusal on any.
        for i in 0..RATE {
            assert_eq!(b.allow(ConnectionId((i % 2) as usize), a, t0), Ok(()));
        }
        assert_eq!(
            b.allow(ConnectionId(7), a, t0),
            Err(Refusal::Address),
            "a new connection does not bring a new budget"
        );
        // Another address has its own.
        assert_eq!(
            b.allow(ConnectionId(7), Some(ip("203.0.113.8")), t0),
            Ok(())
        );
        // One call's worth refills in 1/RATE s, not before.
        let almost = t0 + Duration::from_secs(1) / RATE - Duration::from_millis(1);
        assert_eq!(b.allow(ConnectionId(0), a, almost), Err(Refusal::Address));
        let refilled = t0 + Duration::from_secs(1) / RATE;
        assert_eq!(b.allow(ConnectionId(0), a, refilled), Ok(()));
        // Not limited by address: only the connection's budget counts.
        for _ in 0..100 {
            assert_eq!(b.allow(ConnectionId(9), None, refilled), Ok(()));
        }
    }

    #[test]
    fn a_refused_call_takes_nothing_from_the_other_budget() {
        let mut b = CallBudgets::new(2, 3);
        let t0 = Instant::now();
        let a = Some(ip("198.51.100.1"));
        assert_eq!(b.allow(ConnectionId(1), a, t0), Ok(()));
        assert_eq!(b.allow(ConnectionId(1), a, t0), Ok(()));
        // The connection's budget (2) is spent; its refusals leave the address's third call.
        for _ in 0..10 {
            assert_eq!(b.allow(ConnectionId(1), a, t0), Err(Refusal::Connection));
        }
        assert_eq!(b.allow(ConnectionId(2), a, t0), Ok(()));
        assert_eq!(b.allow(ConnectionId(2), a, t0), Err(Refusal::Address));
        // Rate 0 is no limit.
        let mut off = CallBudgets::new(0, 0);
        for _ in 0..1_000 {
            assert_eq!(off.allow(ConnectionId(1), a, t0), Ok(()));
        }
    }

    #[test]
    fn full_buckets_are_forgotten_past_the_tracking_bound() {
        let mut b: Budgets<u64> = Budgets::new(10);
        let t0 = Instant::now();
        for k in 0..MAX_TRACKED_BUDGETS as u64 {
            b.refill(k, t0);
        }
        assert_eq!(b.buckets.len(), MAX_TRACKED_BUDGETS);
        // A second later every one of them is full again: all forgotten for the new one.
        b.refill(u64::MAX, t0 + BUCKET_SPAN);
        assert_eq!(b.buckets.len(), 1);
    }

    #[test]
    fn an_address_holds_at_most_its_connections_and_a_closed_one_frees_a_place() {
        let c = ConnectionsPerAddress::new(2);
        let a = ip("192.0.2.1");
        let first = c.try_open(a).unwrap();
        let _second = c.try_open(a).unwrap();
        assert!(
            c.try_open(a).is_none(),
            "a third connection at a limit of 2"
        );
        assert!(c.try_open(ip("192.0.2.2")).is_some(), "another address");
        drop(first);
        assert_eq!(c.open(a), 1);
        assert!(c.try_open(a).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1")),
            client_key(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(client_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
