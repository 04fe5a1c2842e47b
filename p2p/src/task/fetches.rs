//! The swarm task's side of fetches: which connected peers are asked for which items (the
//! preferred peer alone first, else [`FETCH_FANOUT`] at once, then one at a time for what is
//! still missing), gathering their answers, and serving peers' requests from the node's
//! [`ItemStore`](crate::fetch::ItemStore). The wire protocol is in [`crate::fetch`].

use super::SwarmTask;
use crate::config::FETCH_FANOUT;
use crate::fetch;
use bytes::Bytes;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::PeerId;
use tokio::sync::oneshot;
use tracing::debug;

/// One fetch: what was asked, what has come back, who else may be asked.
pub(super) struct Fetch {
    ids: Vec<[u8; 32]>,
    found: Vec<Option<Bytes>>,
    in_flight: usize,
    untried: Vec<PeerId>,
    reply: oneshot::Sender<Vec<Option<Bytes>>>,
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
        prefer: Option<String>,
        reply: oneshot::Sender<Vec<Option<Bytes>>>,
    ) {
        metrics::counter!(crate::metrics::FETCHES).increment(1);
        let mut peers: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|p| !self.banned.contains(p))
            .copied()
            .collect();
        // Spread the load: a different first peer each time; but the preferred peer (the one
        // that surely holds the items, such as a proposal's proposer) goes first.
        if !peers.is_empty() {
            let k = (self.next_fetch as usize) % peers.len();
            peers.rotate_left(k);
        }
        // The preferred peer is asked alone: others only for what it lacks, or if it fails.
        let mut fanout = FETCH_FANOUT;
        if let Some(want) = prefer {
            if let Some(i) = peers
                .iter()
                .position(|p| self.agents.get(p).is_some_and(|a| *a == want))
            {
                let p = peers.remove(i);
                peers.insert(0, p);
                fanout = 1;
            }
        }
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
    pub(super) fn request_ended(&mut self, request: OutboundRequestId, response: Option<Bytes>) {
        let Some((key, positions)) = self.requests.remove(&request) else {
            return;
        };
        let Some(f) = self.fetches.get_mut(&key) else {
            return;
        };
        f.in_flight = f.in_flight.saturating_sub(1);
        if let Some(data) = response {
            match fetch::decode_response(&data, positions.len()) {
                Some(items) => {
                    for (pos, item) in positions.into_iter().zip(items) {
                        if f.found[pos].is_none() {
                            f.found[pos] = item;
                        }
                    }
                }
                None => debug!("malformed fetch response"),
            }
        }
        let still_missing = f.found.iter().any(Option::is_none);
        if still_missing && f.in_flight == 0 {
            self.ask_next(key);
        }
        self.finish_if_done(key);
    }

    pub(super) fn serve(
        &mut self,
        peer: PeerId,
        ids: Vec<[u8; 32]>,
        channel: request_response::ResponseChannel<fetch::Response>,
    ) {
        let items = self.cfg.store.lookup(&ids);
        let served = items.iter().filter(|i| i.is_some()).count();
        metrics::counter!(crate::metrics::FETCH_SERVED_ITEMS).increment(served as u64);
        let response = Bytes::from(fetch::encode_response(&items, self.cfg.max_fetch_bytes));
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
