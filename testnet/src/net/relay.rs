//! Delay and jitter per directed link without netem: a userspace TCP relay in the harness.
//!
//! For each directed link `i→j` and relayed port, a listener on `shadow_j` accepts node `i`'s
//! connections and opens one to node `j`'s real address from `shadow_i`, so inside `j`'s
//! namespace the link's traffic comes from `shadow_i` (and the lab's nftables rules can name
//! it). Each direction of a relayed connection is a reader and a writer joined by a bounded
//! queue: a chunk read at `t` is written at `max(previous write, t + delay + jitter sample)`,
//! so a stream is never reordered. The delay of a direction is that of its own link (`i→j` for
//! what `i` sends, `j→i` for the replies), read when each chunk arrives, so changes apply at
//! once. The relay runs on its own runtime; dropping it stops every listener and connection.

use rand::{Rng as _, SeedableRng as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;

/// Chunks queued per direction of a relayed connection before the reader waits (with
/// [`CHUNK_BYTES`], at most 16 MiB in flight per direction).
const CHUNKS_IN_FLIGHT: usize = 256;
/// Largest chunk read at once.
const CHUNK_BYTES: usize = 64 * 1024;
/// How long the relay waits for the target node to accept (a fault may drop its replies).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One listener of the relay: link `from→to`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Listener {
    pub(super) from: usize,
    pub(super) to: usize,
    /// `shadow_to:(port + offset + from)`.
    pub(super) listen: SocketAddr,
    /// `shadow_from`: the source address of the connection to the target.
    pub(super) source: Ipv4Addr,
    /// `real_to:port`.
    pub(super) target: SocketAddr,
}

/// Delay, jitter and jitter generator of one directed link.
struct Link {
    delay: Duration,
    jitter: Duration,
    rng: rand::rngs::StdRng,
}

/// Every directed link's settings, indexed `from * n + to`.
struct Links {
    n: usize,
    links: Vec<Mutex<Link>>,
}

impl Links {
    fn get(&self, from: usize, to: usize) -> Option<std::sync::MutexGuard<'_, Link>> {
        if from >= self.n || to >= self.n {
            return None;
        }
        self.links
            .get(from * self.n + to)
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// This chunk's delay on link `from→to`: the delay plus a uniform sample of `[0, jitter]`.
    fn sample(&self, from: usize, to: usize) -> Duration {
        let Some(mut l) = self.get(from, to) else {
            return Duration::ZERO;
        };
        let jitter = u64::try_from(l.jitter.as_nanos()).unwrap_or(u64::MAX);
        let extra = if jitter == 0 {
            0
        } else {
            l.rng.gen_range(0..=jitter)
        };
        l.delay + Duration::from_nanos(extra)
    }
}

/// The running relay.
pub(super) struct Relay {
    links: Arc<Links>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Relay {
    /// Binds every listener (a failure names the address) and starts serving them.
    pub(super) fn start(n: usize, listeners: Vec<Listener>, seed: u64) -> eyre::Result<Relay> {
        let links = Arc::new(Links {
            n,
            links: (0..n * n)
                .map(|k| {
                    Mutex::new(Link {
                        delay: Duration::ZERO,
                        jitter: Duration::ZERO,
                        rng: rand::rngs::StdRng::seed_from_u64(
                            seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        ),
                    })
                })
                .collect(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lab-relay")
            .enable_all()
            .build()?;
        let relay = Relay {
            links,
            runtime: Some(runtime),
        };
        for l in listeners {
            let socket = std::net::TcpListener::bind(l.listen).map_err(|e| {
                eyre::eyre!(
                    "relay cannot listen on {} (link {}→{}): {e}",
                    l.listen,
                    l.from,
                    l.to
                )
            })?;
            socket.set_nonblocking(true)?;
            let links = relay.links.clone();
            if let Some(rt) = &relay.runtime {
                rt.spawn(serve(socket, l, links));
            }
        }
        Ok(relay)
    }

    pub(super) fn set_delay(&self, from: usize, to: usize, delay: Duration, jitter: Duration) {
        if let Some(mut l) = self.links.get(from, to) {
            l.delay = delay;
            l.jitter = jitter;
        }
    }

    pub(super) fn delay(&self, from: usize, to: usize) -> (Duration, Duration) {
        self.links
            .get(from, to)
            .map(|l| (l.delay, l.jitter))
            .unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Never blocks, so the relay may be dropped inside another runtime's task.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Accepts link `l`'s connections and relays each.
async fn serve(socket: std::net::TcpListener, l: Listener, links: Arc<Links>) {
    let listener = match TcpListener::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("relay {}: {e}", l.listen);
            return;
        }
    };
    loop {
        match listener.accept().await {
            Ok((inbound, _)) => {
                tokio::spawn(relay_connection(inbound, l, links.clone()));
            }
            Err(e) => {
                // Out of descriptors, say: wait, do not spin.
                tracing::debug!("relay {} accept: {e}", l.listen);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Opens the connection to the target from `shadow_from` and pumps both directions.
async fn relay_connection(inbound: TcpStream, l: Listener, links: Arc<Links>) {
    let outbound = async {
        let s = TcpSocket::new_v4()?;
        s.bind(SocketAddr::from((l.source, 0)))?;
        s.connect(l.target).await
    };
    let outbound = match tokio::time::timeout(CONNECT_TIMEOUT, outbound).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!("relay {}→{}: cannot reach {}: {e}", l.from, l.to, l.target);
            return;
        }
        Err(_) => {
            tracing::debug!("relay {}→{}: {} did not accept", l.from, l.to, l.target);
            return;
        }
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    tokio::join!(
        pump(in_read, out_write, links.clone(), l.from, l.to),
        pump(out_read, in_write, links, l.to, l.from),
    );
}

/// One direction: what `from` sends is written towards `to` after link `from→to`'s delay.
async fn pump(
    mut read: OwnedReadHalf,
    mut write: OwnedWriteHalf,
    links: Arc<Links>,
    from: usize,
    to: usize,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(CHUNKS_IN_FLIGHT);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let k = match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => k,
            };
            let due = Instant::now() + links.sample(from, to);
            if tx.send((due, buf[..k].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        let mut last = Instant::now();
        while let Some((due, chunk)) = rx.recv().await {
            let at = due.max(last);
            tokio::time::sleep_until(at).await;
            last = at;
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        // The sender closed (or the receiver went away): pass the end of the stream on.
        let _ = write.shutdown().await;
    };
    tokio::join!(reader, writer);
}
