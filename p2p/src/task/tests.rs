//! End-to-end tests of the swarm task: real swarms on localhost publishing, judging,
//! banning and fetching.

use crate::api::{BundleGossip, Verdict};
use crate::config::{GossipConfig, MAINTENANCE_INTERVAL};
use crate::fetch::{self, ItemStore};
use crate::swarm::peer_id;
use crate::task::spawn;
use bytes::Bytes;
use libp2p::gossipsub::MessageId;
use libp2p::Multiaddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn id(items: &[&[u8]]) -> Vec<u8> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for i in items {
        h.update(i);
    }
    h.finalize().to_vec()
}

fn cfg(secret: u8, port: u16, peers: Vec<Multiaddr>) -> GossipConfig {
    GossipConfig {
        secret: [secret; 32],
        listen: format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap(),
        peers,
        topic: "test".into(),
        max_message_bytes: 1 << 20,
        inbound_capacity: 16,
        mesh_n: 2,
        publish_linger: Duration::ZERO,
        message_id: id,
        store: Arc::new(fetch::NoItems),
        max_fetch_bytes: 1 << 20,
        agent: format!("test/{secret}"),
    }
}

/// Items by id (the id is the item's first byte, repeated).
struct Held(Vec<Bytes>);

impl ItemStore for Held {
    fn lookup(&self, ids: &[[u8; 32]]) -> Vec<Option<Bytes>> {
        ids.iter()
            .map(|id| self.0.iter().find(|b| b[0] == id[0]).cloned())
            .collect()
    }
}

/// A node fetches from its peers: the preferred peer first, each item from whoever holds
/// it, in the order asked, and `None` for what nobody holds.
#[tokio::test]
async fn a_fetch_gathers_items_from_the_peers_that_hold_them() {
    let (pa, pc, pb) = (free_port(), free_port(), free_port());
    let mut a_cfg = cfg(31, pa, vec![]);
    a_cfg.store = Arc::new(Held(vec![Bytes::from_static(b"xray")]));
    let mut c_cfg = cfg(33, pc, vec![]);
    c_cfg.store = Arc::new(Held(vec![
        Bytes::from_static(b"yankee"),
        Bytes::from_static(b"xylophone"),
    ]));
    let (_a, _a_in) = spawn(a_cfg).unwrap();
    let (_c, _c_in) = spawn(c_cfg).unwrap();
    let peers = vec![address(31, pa), address(33, pc)];
    let (b, _b_in) = spawn(cfg(32, pb, peers)).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while b.peers() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Identify tells B each peer's agent shortly after connecting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ask = || vec![[b'y'; 32], [b'z'; 32], [b'x'; 32]];
    let from_c = b.fetch(ask(), Some("test/33".into())).await;
    assert_eq!(
        from_c,
        vec![
            Some(Bytes::from_static(b"yankee")),
            None,
            Some(Bytes::from_static(b"xylophone"))
        ]
    );
    // A first: its x, and C's y, which A lacks.
    let from_a = b.fetch(ask(), Some("test/31".into())).await;
    assert_eq!(
        from_a,
        vec![
            Some(Bytes::from_static(b"yankee")),
            None,
            Some(Bytes::from_static(b"xray"))
        ]
    );
    assert_eq!(b.fetch(vec![], None).await, Vec::<Option<Bytes>>::new());
}

/// Where to dial the node with `secret` listening on `port`.
fn address(secret: u8, port: u16) -> Multiaddr {
    let id = peer_id(&[secret; 32]).unwrap();
    format!("/ip4/127.0.0.1/tcp/{port}/p2p/{id}")
        .parse()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_published_message_reaches_a_peer_and_valid_ones_are_forwarded() {
    let (pa, pb) = (free_port(), free_port());
    let (a, mut a_in) = spawn(cfg(1, pa, vec![])).unwrap();
    let addr = address(1, pa);
    let (b, _b_in) = spawn(cfg(2, pb, vec![addr])).unwrap();
    // Wait for the connection and the mesh, then publish until delivered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let got = loop {
        b.publish(vec![
            Bytes::from_static(b"hello"),
            Bytes::from_static(b"world"),
        ])
        .await;
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), a_in.recv()).await {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "message never arrived"
        );
    };
    assert_eq!(got.items, vec![&b"hello"[..], &b"world"[..]]);
    assert_eq!(got.id, MessageId::from(id(&[b"hello", b"world"])));
    assert_eq!(got.from, b.local_peer_id);
    a.report(got.id, got.from, Verdict::Accept).await;
    assert!(a.peers() >= 1);
}

/// Under load, publishes share messages: one that comes less than `publish_linger` after
/// the previous message waits for the rest of it, and what is published meanwhile goes
/// with it, in order.
#[tokio::test]
async fn publishes_close_together_travel_in_one_message() {
    let (pa, pb) = (free_port(), free_port());
    let (_a, mut a_in) = spawn(cfg(1, pa, vec![])).unwrap();
    let addr = address(1, pa);
    let mut b_cfg = cfg(2, pb, vec![addr]);
    b_cfg.publish_linger = Duration::from_secs(1);
    let (b, _b_in) = spawn(b_cfg).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0u32;
    loop {
        n += 1;
        b.publish(vec![Bytes::from(format!("probe {n}"))]).await;
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), a_in.recv()).await {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never connected");
    }
    // x may go at once (or join a probe still waiting); y and z come right after a
    // message went out, so they wait for the next one, together.
    for item in [&b"x"[..], b"y", b"z"] {
        b.publish(vec![Bytes::from_static(item)]).await;
    }
    let mut messages: Vec<Vec<Bytes>> = Vec::new();
    while !messages.iter().flatten().any(|i| &i[..] == b"z") {
        let m = tokio::time::timeout(Duration::from_secs(10), a_in.recv())
            .await
            .expect("z never arrived")
            .expect("gossip stopped");
        messages.push(m.items);
    }
    let with_y = messages
        .iter()
        .find(|m| m.iter().any(|i| &i[..] == b"y"))
        .expect("y never arrived");
    let ends: Vec<&[u8]> = with_y.iter().rev().take(2).map(|i| &i[..]).collect();
    assert_eq!(ends, vec![&b"z"[..], b"y"], "{messages:?}");
}

/// Two honest nodes that publish the same messages (the same bundles submitted to both)
/// stay connected: a copy of a message we published ourselves is a duplicate, not an
/// invalid message.
#[tokio::test]
async fn peers_publishing_the_same_messages_are_not_penalised() {
    let (pa, pb) = (free_port(), free_port());
    let (a, a_in) = spawn(cfg(21, pa, vec![])).unwrap();
    let addr = address(21, pa);
    let (b, b_in) = spawn(cfg(22, pb, vec![addr])).unwrap();
    for (h, mut rx) in [(a.clone(), a_in), (b.clone(), b_in)] {
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                h.report(m.id, m.from, Verdict::Accept).await;
            }
        });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while a.peers() == 0 || b.peers() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in 0..20 {
        let m = vec![Bytes::from(format!("same bundle {n}"))];
        a.publish(m.clone()).await;
        b.publish(m).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(MAINTENANCE_INTERVAL * 3).await;
    assert!(
        a.peers() >= 1 && b.peers() >= 1,
        "an honest peer was cut off"
    );
}

/// A peer that keeps sending invalid messages is scored down through gossipsub
/// validation, then disconnected and kept out, while valid traffic was accepted before.
#[tokio::test]
async fn a_peer_sending_invalid_messages_is_disconnected_and_kept_out() {
    let (pa, pb) = (free_port(), free_port());
    let (a, mut a_in) = spawn(cfg(11, pa, vec![])).unwrap();
    let addr = address(11, pa);
    let (bad, _bad_in) = spawn(cfg(12, pb, vec![addr])).unwrap();

    // The honest validator on A rejects anything starting with "bad".
    let a2 = a.clone();
    let rejected = Arc::new(AtomicUsize::new(0));
    let r2 = rejected.clone();
    tokio::spawn(async move {
        while let Some(m) = a_in.recv().await {
            let v = if m.items.iter().any(|i| i.starts_with(b"bad")) {
                Verdict::Reject
            } else {
                Verdict::Accept
            };
            if v == Verdict::Reject {
                r2.fetch_add(1, Ordering::Relaxed);
            }
            a2.report(m.id, m.from, v).await;
        }
    });

    // B sends invalid messages until A has rejected some and cut B off.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut n = 0u64;
    loop {
        if rejected.load(Ordering::Relaxed) > 0 && a.peers() == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "misbehaving peer was not disconnected ({} rejected, {} peers)",
            rejected.load(Ordering::Relaxed),
            a.peers()
        );
        bad.publish(vec![Bytes::from(format!("bad message {n}"))])
            .await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // B keeps redialling (it is configured to stay connected); A keeps it out.
    tokio::time::sleep(MAINTENANCE_INTERVAL * 3).await;
    assert_eq!(a.peers(), 0, "a banned peer stays out");
}
