//! The gate every gossip connection passes: at most [`GossipConfig::max_inbound_per_ip`]
//! inbound connections per remote IP (counted from the moment one is accepted, before its
//! handshake), and, unless [`GossipConfig::allow_non_validators`], only validators' peer ids
//! (known from the genesis file, authenticated by the noise handshake) past the handshake,
//! before any protocol runs. A validator's connection is kept alive however idle it is (the
//! idle timeout is for other peers) and does not count against its IP: validators may share
//! one (a local network, one host, a NAT).
//!
//! [`GossipConfig::max_inbound_per_ip`]: crate::GossipConfig::max_inbound_per_ip
//! [`GossipConfig::allow_non_validators`]: crate::GossipConfig::allow_non_validators

use crate::limits::{ip_key, IpCounter};
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::Endpoint;
use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour,
    SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use std::collections::HashSet;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};
use tracing::debug;

/// Why the gate refused a connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error("{ip} already has {count} inbound connections (the limit)")]
    IpLimit { ip: IpAddr, count: usize },
    #[error("peer {0} is not a validator and this node takes only validators")]
    NotValidator(PeerId),
}

pub(crate) struct Gate {
    validators: HashSet<PeerId>,
    allow_non_validators: bool,
    ips: IpCounter,
}

impl Gate {
    pub(crate) fn new(
        validators: impl IntoIterator<Item = PeerId>,
        allow_non_validators: bool,
        max_inbound_per_ip: usize,
    ) -> Gate {
        Gate {
            validators: validators.into_iter().collect(),
            allow_non_validators,
            ips: IpCounter::new(max_inbound_per_ip),
        }
    }

    /// Takes `peers` from now on as validators.
    pub(crate) fn admit(&mut self, peers: Vec<PeerId>) {
        self.validators.extend(peers);
    }

    /// Whether `peer` may have a connection at all.
    pub(crate) fn admits(&self, peer: &PeerId) -> bool {
        self.allow_non_validators || self.validators.contains(peer)
    }

    fn established(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
    ) -> Result<KeepAlive, ConnectionDenied> {
        if !self.admits(&peer) {
            debug!(%peer, "gossip connection refused: not a validator");
            metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => "not_validator")
                .increment(1);
            return Err(ConnectionDenied::new(Refused::NotValidator(peer)));
        }
        let validator = self.validators.contains(&peer);
        if validator {
            self.ips.remove(connection);
        }
        Ok(KeepAlive(validator))
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = KeepAlive;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_key(remote) else {
            return Ok(());
        };
        self.ips.try_add(connection, ip).map_err(|count| {
            debug!(%ip, count, "gossip connection refused: per-IP limit");
            metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => "ip_limit")
                .increment(1);
            ConnectionDenied::new(Refused::IpLimit { ip, count })
        })
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.established(connection, peer)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.established(connection, peer)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionClosed(c) => self.ips.remove(c.connection_id),
            FromSwarm::ListenFailure(f) => self.ips.remove(f.connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// A handler that runs no protocol and keeps its connection alive if it is a validator's
/// (gossipsub keeps only mesh peers' connections alive, and a validator publishes to every
/// validator directly).
pub(crate) struct KeepAlive(bool);

impl libp2p::swarm::ConnectionHandler for KeepAlive {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade, ()> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.0
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, (), Infallible>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(&mut self, _: ConnectionEvent<'_, DeniedUpgrade, DeniedUpgrade>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_validators_are_admitted_unless_non_validators_are_allowed() {
        let (v, stranger) = (PeerId::random(), PeerId::random());
        let closed = Gate::new([v], false, 8);
        assert!(closed.admits(&v));
        assert!(!closed.admits(&stranger));
        let open = Gate::new([v], true, 8);
        assert!(open.admits(&v) && open.admits(&stranger));
    }
}
