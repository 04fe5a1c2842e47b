//! End-to-end tests of the swarm task: real swarms on localhost publishing, judging,
//! banning and fetching.

use crate::api::{BundleGossip, FetchCheck, GossipHandle, Inbound, Verdict};
use crate::config::{
    GossipConfig, DEFAULT_MAX_INBOUND, DEFAULT_MAX_INBOUND_PER_IP, MAINTENANCE_INTERVAL,
};
use crate::fetch::{self, ItemStore};
use crate::swarm::peer_id;
use crate::task::spawn;
use bytes::Bytes;
use libp2p::gossipsub::MessageId;
use libp2p::{Multiaddr, PeerId};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a test waits for something that takes milliseconds on an idle machine
/// (connecting, identify, a message crossing localhost) before it fails.
const DEADLINE: Duration = Duration::from_secs(30);
/// How often a waiting test looks again.
const POLL: Duration = Duration::from_millis(20);

/// Waits until `done` holds; fails naming `what` if it does not within [`DEADLINE`].
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {DEADLINE:?}: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The next inbound message; fails naming `what` if none comes within [`DEADLINE`].
async fn next_message(rx: &mut mpsc::Receiver<Inbound>, what: &str) -> Inbound {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("not within {DEADLINE:?}: {what}"))
        .expect("the gossip task stopped")
}

/// Publishes `items` on `from` until `to` receives a message, and returns it. Until the two
/// have exchanged subscriptions a publish reaches nobody (gossipsub drops it); once one goes
/// out, repeats are duplicates that gossipsub does not send again.
async fn publish_until_received(
    from: &GossipHandle,
    to: &mut mpsc::Receiver<Inbound>,
    items: Vec<Bytes>,
) -> Inbound {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        from.publish(items.clone()).await;
        if let Ok(m) = tokio::time::timeout(Duration::from_millis(200), to.recv()).await {
            return m.expect("the gossip task stopped");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{items:?} never arrived within {DEADLINE:?}"
        );
    }
}

/// Accepts every message `rx` brings (so gossipsub forwards it) and passes it on.
fn accept_all(h: GossipHandle, mut rx: mpsc::Receiver<Inbound>) -> mpsc::Receiver<Inbound> {
    let (tx, out) = mpsc::channel(256);
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            h.report(m.id.clone(), m.from, Verdict::Accept).await;
            if tx.send(m).await.is_err() {
                break;
            }
        }
    });
    out
}

fn items(m: &Inbound) -> Vec<&[u8]> {
    m.items.iter().map(|i| &i[..]).collect()
}

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
        validators: Vec::new(),
        allow_non_validators: true,
        max_inbound_per_ip: DEFAULT_MAX_INBOUND_PER_IP,
        max_inbound: DEFAULT_MAX_INBOUND,
    }
}

/// A check that takes every answer.
fn any() -> FetchCheck {
    Arc::new(|_, _| true)
}

fn pid(secret: u8) -> PeerId {
    peer_id(&[secret; 32]).unwrap()
}

/// Items by id (the id is the item's first byte, repeated), and what each request that
/// reached this store asked for (each id's first byte), in order.
struct Held {
    items: Vec<Bytes>,
    asked: Mutex<Vec<Vec<u8>>>,
}

impl Held {
    fn new(items: &[&'static [u8]]) -> Arc<Held> {
        Arc::new(Held {
            items: items.iter().map(|i| Bytes::from_static(i)).collect(),
            asked: Mutex::new(Vec::new()),
        })
    }

    /// The requests served since the last call.
    fn take_asked(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.asked.lock().unwrap())
    }
}

impl ItemStore for Held {
    fn lookup(&self, ids: &[[u8; 32]]) -> Vec<Option<Bytes>> {
        self.asked
            .lock()
            .unwrap()
            .push(ids.iter().map(|id| id[0]).collect());
        ids.iter()
            .map(|id| self.items.iter().find(|b| b[0] == id[0]).cloned())
            .collect()
    }
}

/// Whether `b` asks its peer `prefer` alone first. The fetch is for an item `prefer` holds
/// and one nobody holds: asked alone first, `prefer` answers the first and `other` is then
/// asked only for the second; a node that does not prefer asks both for both at once. Either
/// way the fetch ends only after `other` has answered, so `other`'s log is complete.
async fn prefers(b: &GossipHandle, prefer: PeerId, held: u8, other: &Held) -> bool {
    other.take_asked();
    let got = b
        .fetch(vec![[held; 32], [b'q'; 32]], Some(prefer), any())
        .await;
    assert!(got[0].is_some() && got[1].is_none(), "{got:?}");
    other.take_asked() == vec![vec![b'q']]
}

/// A node fetches from its peers: the preferred peer first, each item from whoever holds
/// it, in the order asked, and `None` for what nobody holds.
#[tokio::test]
async fn a_fetch_gathers_items_from_the_peers_that_hold_them() {
    let (pa, pc, pb) = (free_port(), free_port(), free_port());
    let (a_held, c_held) = (Held::new(&[b"xray"]), Held::new(&[b"yankee", b"xylophone"]));
    let mut a_cfg = cfg(31, pa, vec![]);
    a_cfg.store = a_held.clone();
    let mut c_cfg = cfg(33, pc, vec![]);
    c_cfg.store = c_held.clone();
    let (_a, _a_in) = spawn(a_cfg).unwrap();
    let (_c, _c_in) = spawn(c_cfg).unwrap();
    let peers = vec![address(31, pa), address(33, pc)];
    let (b, _b_in) = spawn(cfg(32, pb, peers)).unwrap();
    wait_until("B connected to A and C", || b.peers() == 2).await;
    // The preferred peer is named by its peer id (authenticated by the handshake), so B
    // prefers it as soon as it is connected.
    assert!(prefers(&b, pid(33), b'y', &a_held).await);
    assert!(prefers(&b, pid(31), b'x', &c_held).await);
    a_held.take_asked();
    c_held.take_asked();
    let ask = || vec![[b'y'; 32], [b'z'; 32], [b'x'; 32]];
    let from_c = b.fetch(ask(), Some(pid(33)), any()).await;
    assert_eq!(
        from_c,
        vec![
            Some(Bytes::from_static(b"yankee")),
            None,
            Some(Bytes::from_static(b"xylophone"))
        ]
    );
    // C alone first; A only for z, which C lacked.
    assert_eq!(c_held.take_asked(), vec![b"yzx".to_vec()]);
    assert_eq!(a_held.take_asked(), vec![b"z".to_vec()]);
    // A first: its x, and C's y, which A lacks.
    let from_a = b.fetch(ask(), Some(pid(31)), any()).await;
    assert_eq!(
        from_a,
        vec![
            Some(Bytes::from_static(b"yankee")),
            None,
            Some(Bytes::from_static(b"xray"))
        ]
    );
    assert_eq!(a_held.take_asked(), vec![b"yzx".to_vec()]);
    assert_eq!(c_held.take_asked(), vec![b"yz".to_vec()]);
    assert_eq!(
        b.fetch(vec![], None, any()).await,
        Vec::<Option<Bytes>>::new()
    );
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

/// A message one peer publishes reaches the other, as published and from it; once the
/// receiver accepts it, it forwards it to its other peers (here C, connected to A alone).
#[tokio::test]
async fn a_published_message_reaches_a_peer_and_valid_ones_are_forwarded() {
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let (a, mut a_in) = spawn(cfg(1, pa, vec![])).unwrap();
    let (b, _b_in) = spawn(cfg(2, pb, vec![address(1, pa)])).unwrap();
    let (c, mut c_in) = spawn(cfg(3, pc, vec![address(1, pa)])).unwrap();
    wait_until("A connected to B and C", || a.peers() == 2).await;
    // A knows C is subscribed once C's first message reaches it (subscriptions go first).
    let hi = publish_until_received(&c, &mut a_in, vec![Bytes::from_static(b"c is here")]).await;
    assert_eq!(hi.from, c.local_peer_id);
    a.report(hi.id, hi.from, Verdict::Ignore).await;

    let got = publish_until_received(
        &b,
        &mut a_in,
        vec![Bytes::from_static(b"hello"), Bytes::from_static(b"world")],
    )
    .await;
    assert_eq!(items(&got), vec![&b"hello"[..], &b"world"[..]]);
    assert_eq!(got.id, MessageId::from(id(&[b"hello", b"world"])));
    assert_eq!(got.from, b.local_peer_id);
    a.report(got.id.clone(), got.from, Verdict::Accept).await;
    let forwarded = next_message(&mut c_in, "C never got the message A accepted").await;
    assert_eq!(items(&forwarded), vec![&b"hello"[..], &b"world"[..]]);
    assert_eq!(forwarded.id, got.id);
    assert_eq!(forwarded.from, a.local_peer_id, "A forwarded it");
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
/// stay connected and keep exchanging messages: a copy of a message we published ourselves
/// is a duplicate, not an invalid message.
#[tokio::test]
async fn peers_publishing_the_same_messages_are_not_penalised() {
    let (pa, pb) = (free_port(), free_port());
    let (a, a_in) = spawn(cfg(21, pa, vec![])).unwrap();
    let (b, b_in) = spawn(cfg(22, pb, vec![address(21, pa)])).unwrap();
    let (mut a_in, mut b_in) = (accept_all(a.clone(), a_in), accept_all(b.clone(), b_in));
    wait_until("A and B connected", || a.peers() == 1 && b.peers() == 1).await;
    // Each knows the other is subscribed once a message of the other's reached it.
    let to_a = publish_until_received(&b, &mut a_in, vec![Bytes::from_static(b"b here")]).await;
    assert_eq!(
        (items(&to_a), to_a.from),
        (vec![&b"b here"[..]], b.local_peer_id)
    );
    let to_b = publish_until_received(&a, &mut b_in, vec![Bytes::from_static(b"a here")]).await;
    assert_eq!(
        (items(&to_b), to_b.from),
        (vec![&b"a here"[..]], a.local_peer_id)
    );

    // Both publish each message. Where one's copy reaches the other first, the other's
    // publish is a duplicate and the message is delivered once; where the copies cross,
    // each node receives a copy of what it published itself, which it must take for a
    // duplicate (neither delivered nor penalised).
    let same: Vec<Bytes> = (0..20)
        .map(|n| Bytes::from(format!("same bundle {n}")))
        .collect();
    for m in &same {
        tokio::join!(a.publish(vec![m.clone()]), b.publish(vec![m.clone()]));
    }
    // Then each sends the other a message of its own. It travels behind the copies it sent
    // before, so it arrives after the receiver has judged them: if those had scored the
    // sender down to the graylist, it would not arrive at all.
    a.publish(vec![Bytes::from_static(b"a after")]).await;
    b.publish(vec![Bytes::from_static(b"b after")]).await;
    let mut delivered: Vec<Bytes> = Vec::new();
    for (rx, to, from, after) in [
        (&mut a_in, "A", &b, &b"b after"[..]),
        (&mut b_in, "B", &a, &b"a after"[..]),
    ] {
        let what = format!(
            "{to} never got {:?}: was the sender penalised?",
            String::from_utf8_lossy(after)
        );
        loop {
            let m = next_message(rx, &what).await;
            assert_eq!(m.from, from.local_peer_id, "{to} got {:?}", m.items);
            assert_eq!(m.items.len(), 1, "{to} got {:?}", m.items);
            if m.items[0] == after {
                break;
            }
            assert!(same.contains(&m.items[0]), "{to} got {:?}", m.items);
            delivered.push(m.items[0].clone());
        }
    }
    let mut once = delivered.clone();
    once.sort();
    once.dedup();
    assert_eq!(
        once.len(),
        delivered.len(),
        "delivered twice: {delivered:?}"
    );
    assert!(
        delivered.len() < same.len(),
        "no copies crossed, so nothing here tested the duplicate rule: {delivered:?}"
    );
    assert_eq!((a.peers(), b.peers()), (1, 1), "an honest peer was cut off");
}

/// Accepts connections on a local port and relays each to `to`; counts them.
async fn relay(to: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dials = Arc::new(AtomicUsize::new(0));
    let counted = dials.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    (port, dials)
}

/// A peer that keeps sending invalid messages is scored down through gossipsub
/// validation, then disconnected and kept out, while valid traffic was accepted before.
#[tokio::test]
async fn a_peer_sending_invalid_messages_is_disconnected_and_kept_out() {
    let (pa, pb) = (free_port(), free_port());
    let (a, mut a_in) = spawn(cfg(11, pa, vec![])).unwrap();
    // B reaches A through a relay that counts B's dials.
    let (relay_port, dials) = relay(pa).await;
    let a_via_relay: Multiaddr = format!("/ip4/127.0.0.1/tcp/{relay_port}/p2p/{}", a.local_peer_id)
        .parse()
        .unwrap();
    let (bad, _bad_in) = spawn(cfg(12, pb, vec![a_via_relay])).unwrap();

    // The honest validator on A rejects anything starting with "bad" and accepts the rest.
    let a2 = a.clone();
    let (accepted, rejected) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (acc2, rej2) = (accepted.clone(), rejected.clone());
    tokio::spawn(async move {
        while let Some(m) = a_in.recv().await {
            let v = if m.items.iter().any(|i| i.starts_with(b"bad")) {
                rej2.fetch_add(1, Ordering::Relaxed);
                Verdict::Reject
            } else {
                acc2.fetch_add(1, Ordering::Relaxed);
                Verdict::Accept
            };
            a2.report(m.id, m.from, v).await;
        }
    });

    // Valid traffic first: A accepts it and keeps B.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while accepted.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B's valid message never arrived"
        );
        bad.publish(vec![Bytes::from_static(b"good message")]).await;
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(a.peers(), 1);

    // B sends invalid messages until A has rejected some and cut B off.
    let deadline = tokio::time::Instant::now() + DEADLINE * 2;
    let mut n = 0u64;
    while !(rejected.load(Ordering::Relaxed) > 0 && a.peers() == 0) {
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
    // B keeps redialling (it is configured to stay connected, and dials once per
    // maintenance round); A refuses it: by B's second dial the first has been refused.
    let cut_off_at = dials.load(Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + DEADLINE.max(MAINTENANCE_INTERVAL * 10);
    while dials.load(Ordering::Relaxed) < cut_off_at + 2 {
        assert_eq!(a.peers(), 0, "a banned peer stays out");
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never redialled ({} dials)",
            dials.load(Ordering::Relaxed)
        );
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(a.peers(), 0, "a banned peer stays out");
}

/// An answer that fails the caller's check does not make the item unavailable: the item is
/// asked of another peer, and the fetch returns the copy that passes.
#[tokio::test]
async fn an_answer_that_fails_the_check_is_asked_of_another_peer() {
    let (pa, pc, pb) = (free_port(), free_port(), free_port());
    // Both hold an item under id `x`; only C's passes the check.
    let (a_held, c_held) = (Held::new(&[b"xbad"]), Held::new(&[b"xgood"]));
    let mut a_cfg = cfg(41, pa, vec![]);
    a_cfg.store = a_held.clone();
    let mut c_cfg = cfg(43, pc, vec![]);
    c_cfg.store = c_held.clone();
    let (_a, _a_in) = spawn(a_cfg).unwrap();
    let (_c, _c_in) = spawn(c_cfg).unwrap();
    let (b, _b_in) = spawn(cfg(42, pb, vec![address(41, pa), address(43, pc)])).unwrap();
    wait_until("B connected to A and C", || b.peers() == 2).await;
    let good: FetchCheck = Arc::new(|_, item| &item[..] == b"xgood");
    // A, preferred, answers first and alone, with the copy that fails.
    let got = b.fetch(vec![[b'x'; 32]], Some(pid(41)), good).await;
    assert_eq!(got, vec![Some(Bytes::from_static(b"xgood"))]);
    assert_eq!(a_held.take_asked(), vec![b"x".to_vec()]);
    assert_eq!(c_held.take_asked(), vec![b"x".to_vec()]);
}
