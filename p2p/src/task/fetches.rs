//! The swarm task's side of fetches: which connected peers are asked for which items (the
//! preferred peer alone first, else [`FETCH_FANOUT`] at once, then one at a time for what is
//! still missing; see [`ask_order`]), gathering their answers, and serving peers' requests
//! from the node's [`ItemStore`](crate::fetch::ItemStore), at most
//! [`FETCH_REQUEST_BURST`] at once and [`FETCH_REQUESTS_PER_SECOND`] per peer, looked up on
//! tokio's blocking pool so this task never waits for the mempool's lock or the disk. The
//! wire protocol is in [`crate::fetch`].

use super::SwarmTask;
use crate::api::Answer;
use crate::config::{FETCH_FANOUT, FETCH_REQUESTS_PER_SECOND, FETCH_REQUEST_BURST};
use crate::fetch;
use crate::limits::TokenBucket;
use bytes::Bytes;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::PeerId;
use std::collections::HashSet;
use std::time::Instant;
use tokio::sync::oneshot;
use tracing::debug;

/// One fetch round: what was asked, what has come back and from whom, who else may be asked.
pub(super) struct Fetch {
    ids: Vec<[u8; 32]>,
    found: Vec<Answer>,
    in_flight: usize,
    untried: Vec<PeerId>,
    reply: oneshot::Sender<Vec<Answer>>,
}

/// Whom a fetch asks, in order, and how many at once at first: the connected peers that are
/// not excluded, starting at a different one each time (`start`) to spread the load; but the
/// preferred peer (the proposer: it surely holds the items), if connected, first and alone.
/// `prefer` is a peer id, authenticated by the connection's handshake: what a peer claims
/// about itself (identify's agent string) chooses nothing.
pub(super) fn ask_order(
    mut peers: Vec<PeerId>,
    prefer: Option<PeerId>,
    exclude: &HashSet<PeerId>,
    start: usize,
) -> (Vec<PeerId>, usize) {
    peers.retain(|p| !exclude.contains(p));
    if !peers.is_empty() {
        let k = start % peers.len();
        peers.rotate_left(k);
    }
    let mut fanout = FETCH_FANOUT;
    if let Some(i) = prefer.and_then(|want| peers.iter().position(|p| *p == want)) {
        let p = peers.remove(i);
        peers.insert(0, p);
        fanout = 1;
    }
    (peers, fanout)
}

impl Fetch {
    fn missing(&self) -> Vec<usize> {
        (0..self.ids.len())
            .filter(|&i| self.found[i].is_none())
            .collect()
    }
}

impl SwarmTask {
    pub(super) fn start_fetch(
        &mut self,
        ids: Vec<[u8; 32]>,
        prefer: Option<PeerId>,
        exclude: HashSet<PeerId>,
        reply: oneshot::Sender<Vec<Answer>>,
    ) {
        metrics::counter!(crate::metrics::FETCHES).increment(1);
        let connected: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|p| !self.banned.contains(p))
            .copied()
            .collect();
        let (mut peers, fanout) = ask_order(connected, prefer, &exclude, self.next_fetch as usize);
        peers.reverse(); // `untried` is popped from the back.
        let key = self.next_fetch;
        self.next_fetch += 1;
        let n = ids.len();
        self.fetches.insert(
            key,
            Fetch {
                ids,
                found: vec![None; n],
                in_flight: 0,
                untried: peers,
                reply,
            },
        );
        for _ in 0..fanout {
            self.ask_next(key);
        }
        self.finish_if_done(key);
    }

    /// Asks the next untried peer for what the fetch still misses (the chunks of ids a request
    /// may carry); false if there is nobody left to ask.
    fn ask_next(&mut self, key: u64) -> bool {
        let Some(f) = self.fetches.get_mut(&key) else {
            return false;
        };
        let missing = f.missing();
        if missing.is_empty() {
            return false;
        }
        let Some(peer) = f.untried.pop() else {
            return false;
        };
        for positions in missing.chunks(fetch::MAX_IDS) {
            let ids: Vec<[u8; 32]> = positions.iter().map(|&i| f.ids[i]).collect();
            let id = self.swarm.behaviour_mut().fetch.send_request(&peer, ids);
            f.in_flight += 1;
            self.requests.insert(id, (key, positions.to_vec()));
        }
        true
    }

    /// Replies once everything is found or nobody is left to ask.
    fn finish_if_done(&mut self, key: u64) {
        let Some(f) = self.fetches.get(&key) else {
            return;
        };
        let complete = f.found.iter().all(Option::is_some);
        if complete || (f.in_flight == 0 && f.untried.is_empty()) {
            if let Some(f) = self.fetches.remove(&key) {
                let got = f.found.iter().filter(|x| x.is_some()).count();
                metrics::counter!(crate::metrics::FETCHED_ITEMS).increment(got as u64);
                if !complete {
                    debug!(
                        missing = f.found.len() - got,
                        "fetch ended without every item"
                    );
                }
                let _ = f.reply.send(f.found);
            }
        }
    }

    /// A request ended (answered or failed): records what came back, asks someone else for
    /// the rest if needed, replies when done.
    pub(super) fn request_ended(
        &mut self,
        request: OutboundRequestId,
        response: Option<(PeerId, Bytes)>,
    ) {
        let Some((key, positions)) = self.requests.remove(&request) else {
            return;
        };
        let Some(f) = self.fetches.get_mut(&key) else {
            return;
        };
        f.in_flight = f.in_flight.saturating_sub(1);
        if let Some((peer, data)) = response {
            match fetch::decode_response(&data, positions.len()) {
                Some(items) => {
                    for (pos, item) in positions.into_iter().zip(items) {
                        if f.found[pos].is_none() {
                            f.found[pos] = item.map(|i| (peer, i));
                        }
                    }
                }
                None => debug!(%peer, "malformed fetch response"),
            }
        }
        let still_missing = f.found.iter().any(Option::is_none);
        if still_missing && f.in_flight == 0 {
            self.ask_next(key);
        }
        self.finish_if_done(key);
    }

    /// A peer's fetch request: refused (the channel dropped: the peer's request fails and it
    /// asks another peer) if the peer is over its rate or every lookup slot is taken; else
    /// looked up on the blocking pool and answered through [`SwarmTask::respond`].
    pub(super) fn serve(
        &mut self,
        peer: PeerId,
        ids: Vec<[u8; 32]>,
        channel: request_response::ResponseChannel<fetch::Response>,
    ) {
        let now = Instant::now();
        let allowed = self
            .buckets
            .entry(peer)
            .or_insert_with(|| {
                TokenBucket::new(FETCH_REQUEST_BURST, FETCH_REQUESTS_PER_SECOND, now)
            })
            .try_take(now);
        if !allowed {
            debug!(%peer, "fetch request refused: over the peer's rate");
            metrics::counter!(crate::metrics::FETCH_REFUSED, "reason" => "rate").increment(1);
            return;
        }
        let Ok(permit) = self.serving.clone().try_acquire_owned() else {
            debug!(%peer, "fetch request refused: every lookup slot is taken");
            metrics::counter!(crate::metrics::FETCH_REFUSED, "reason" => "busy").increment(1);
            return;
        };
        let store = self.cfg.store.clone();
        let max_bytes = self.cfg.max_fetch_bytes;
        let served = self.served.clone();
        tokio::task::spawn_blocking(move || {
            let items = store.lookup(&ids);
            let n = items.iter().filter(|i| i.is_some()).count();
            metrics::counter!(crate::metrics::FETCH_SERVED_ITEMS).increment(n as u64);
            let response = Bytes::from(fetch::encode_response(&items, max_bytes));
            // The channel has a slot per permit; the swarm task may have stopped.
            let _ = served.try_send((peer, channel, response));
            drop(permit);
        });
    }

    /// Sends a response looked up off this task.
    pub(super) fn respond(
        &mut self,
        peer: PeerId,
        channel: request_response::ResponseChannel<fetch::Response>,
        response: Bytes,
    ) {
        if self
            .swarm
            .behaviour_mut()
            .fetch
            .send_response(channel, response)
            .is_err()
        {
            debug!(%peer, "fetch response not sent: the connection closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preferred_peer_is_asked_first_and_alone_and_excluded_peers_never() {
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let none = HashSet::new();
        // No preference: everyone, rotated by `start`, FETCH_FANOUT at once.
        let (order, fanout) = ask_order(peers.clone(), None, &none, 1);
        assert_eq!(order, [&peers[1..], &peers[..1]].concat());
        assert_eq!(fanout, FETCH_FANOUT);
        // The preferred peer first, alone.
        let (order, fanout) = ask_order(peers.clone(), Some(peers[2]), &none, 3);
        assert_eq!(order[0], peers[2]);
        assert_eq!(order.len(), 4);
        assert_eq!(fanout, 1);
        // A preferred peer that is not connected changes nothing.
        let (order, fanout) = ask_order(peers.clone(), Some(PeerId::random()), &none, 0);
        assert_eq!((order, fanout), (peers.clone(), FETCH_FANOUT));
        // Excluded peers are never asked, even when preferred.
        let exclude: HashSet<PeerId> = [peers[0], peers[2]].into_iter().collect();
        let (order, fanout) = ask_order(peers.clone(), Some(peers[2]), &exclude, 0);
        assert_eq!(order, vec![peers[1], peers[3]]);
        assert_eq!(fanout, FETCH_FANOUT);
    }
}
