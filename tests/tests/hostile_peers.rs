//! Strangers on the network against a running 4-validator network (docs/security.md,
//! ADR-022): a libp2p peer that is not a validator is refused on the bundle-gossip port and
//! disconnected from the consensus port; connections from one address beyond its limit are
//! closed before any handshake; and heights keep being decided while they try.
//!
//! Multi-process tests: run them one at a time (`--test-threads=1`), as `scripts/test.sh` does.

#![allow(clippy::unwrap_used)]

use libp2p::futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, noise, tcp, yamux, Multiaddr, Swarm};
use lockstep_testnet::{Cluster, ClusterOptions};
use lockstep_tests::{metric, network_dir};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const READY: Duration = Duration::from_secs(90);
/// Longest wait for the node to do what a test expects of it.
const DEADLINE: Duration = Duration::from_secs(20);
/// The identify protocol version Malachite's consensus network expects (a peer announcing
/// another is disconnected for that alone, which would prove nothing here).
const MALACHITE_CONSENSUS: &str = "/malachitebft-core-consensus/v1beta1";
/// multistream-select's header: what a libp2p listener answers on a fresh connection.
const MULTISTREAM: &[u8] = b"\x13/multistream/1.0.0\n";

async fn network(name: &str) -> eyre::Result<Cluster> {
    let mut c = Cluster::create(
        &network_dir(name),
        &ClusterOptions {
            validators: 4,
            ..Default::default()
        },
    )?;
    c.start_all()?;
    c.wait_ready(READY).await?;
    Ok(c)
}

/// A libp2p peer with a fresh identity, running only identify (announcing `protocol`).
fn stranger(protocol: &str) -> eyre::Result<Swarm<identify::Behaviour>> {
    let protocol = protocol.to_string();
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            identify::Behaviour::new(identify::Config::new(protocol, key.public()))
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build())
}

/// What became of a stranger's dial.
#[derive(Debug, Default)]
struct Outcome {
    established: bool,
    /// The node sent its identify info (it ran a protocol with the stranger).
    identified: bool,
    /// Closed by the node, or refused before it was established, and how long after the dial.
    closed_after: Option<Duration>,
    why: String,
}

/// Dials `addr` as a stranger and watches the connection for up to `watch`.
async fn dial(addr: &str, protocol: &str, watch: Duration) -> eyre::Result<Outcome> {
    let mut swarm = stranger(protocol)?;
    let addr: Multiaddr = addr.parse()?;
    let started = Instant::now();
    swarm.dial(addr)?;
    let mut out = Outcome::default();
    let until = tokio::time::Instant::now() + watch;
    loop {
        let event = match tokio::time::timeout_at(until, swarm.select_next_some()).await {
            Ok(e) => e,
            Err(_) => return Ok(out),
        };
        match event {
            SwarmEvent::ConnectionEstablished { .. } => out.established = true,
            SwarmEvent::Behaviour(identify::Event::Received { .. }) => out.identified = true,
            SwarmEvent::ConnectionClosed { cause, .. } => {
                out.closed_after = Some(started.elapsed());
                out.why = format!("closed: {cause:?}");
                return Ok(out);
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                out.closed_after = Some(started.elapsed());
                out.why = format!("refused: {error}");
                return Ok(out);
            }
            _ => {}
        }
    }
}

/// The TCP address of a `/ip4/A/tcp/P` multiaddr.
fn socket(multiaddr: &str) -> std::net::SocketAddr {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    format!("{}:{}", parts[2], parts[4]).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_kept_out_of_both_swarms_while_heights_advance() -> eyre::Result<()> {
    let cluster = network("hostile-peers").await?;
    let node = &cluster.nodes[0];
    let gossip = node.config.gossip.listen.clone();
    let consensus = node.config.consensus.listen.clone();
    let before = cluster.height(0).await.unwrap_or(0);

    // The bundle-gossip swarm takes only validators: the connection ends right after the
    // handshake, before any protocol (identify included) runs on it, and the node counts it.
    let refused_before = metric(
        &node.metrics_url(),
        "lockstep_gossip_connections_refused_total",
    )
    .await?;
    let got = dial(&gossip, "/lockstep/stranger/1", DEADLINE).await?;
    eprintln!("stranger on the gossip port: {got:?}");
    assert!(
        got.closed_after.is_some(),
        "a stranger's gossip connection was kept for {DEADLINE:?}: {got:?}"
    );
    assert!(
        !got.identified,
        "the node ran identify with a stranger: {got:?}"
    );
    let refused = metric(
        &node.metrics_url(),
        "lockstep_gossip_connections_refused_total",
    )
    .await?;
    assert!(
        refused > refused_before,
        "the refusal was not counted ({refused_before} → {refused})"
    );

    // The consensus swarm (Malachite's, persistent peers only): a stranger that speaks its
    // protocol is disconnected once its identify arrives.
    let got = dial(&consensus, MALACHITE_CONSENSUS, DEADLINE).await?;
    eprintln!("stranger on the consensus port: {got:?}");
    assert!(
        got.closed_after.is_some(),
        "a stranger stayed connected to the consensus swarm for {DEADLINE:?}: {got:?}"
    );

    // And the chain went on meanwhile.
    cluster
        .wait_for_height(&[0, 1, 2, 3], before + 5, DEADLINE)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_from_one_address_beyond_its_limit_are_closed_before_any_handshake(
) -> eyre::Result<()> {
    let cluster = network("hostile-ip").await?;
    let node = &cluster.nodes[0];
    let limit = node.config.gossip.max_inbound_per_ip;
    let addr = socket(&node.config.gossip.listen);
    let before = cluster.height(0).await.unwrap_or(0);

    // Raw TCP connections that start multistream-select and go no further: each within the
    // limit is answered, the one past it is closed unanswered. (The validators' own
    // connections come from this address too, but do not count once they are known.)
    let mut held = Vec::new();
    let mut answered = 0;
    let mut closed = 0;
    for _ in 0..limit + 1 {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(MULTISTREAM).await?;
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            Ok(Ok(n)) => {
                assert!(
                    buf[..n].starts_with(MULTISTREAM),
                    "not a multistream answer: {:?}",
                    &buf[..n]
                );
                answered += 1;
            }
            Err(_) => panic!("the node neither answered nor closed a connection within 5 s"),
        }
        held.push(s);
    }
    assert_eq!(
        (answered, closed),
        (limit, 1),
        "gossip.max_inbound_per_ip = {limit}: every connection within it answered, the next closed"
    );
    let by_ip = lockstep_testnet::scrape_metrics(&node.metrics_url()).await?;
    let ip_limit: f64 =
        lockstep_testnet::metric_series(&by_ip, "lockstep_gossip_connections_refused_total")
            .iter()
            .filter(|(labels, _)| labels.contains("ip_limit"))
            .map(|(_, v)| v)
            .sum();
    assert!(ip_limit >= 1.0, "the refusal by IP was not counted");

    // The held connections take no validator's place: heights go on.
    cluster
        .wait_for_height(&[0, 1, 2, 3], before + 5, DEADLINE)
        .await?;
    drop(held);
    Ok(())
}
