//! The lab on this machine's kernel (these tests need root, and fail without it).

use super::*;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Instant;

const PORT: u16 = 7_000;
/// Long enough for a SYN on a healthy veth; a dropped one never answers.
const CONNECT: Duration = Duration::from_millis(700);

/// A listener in node `i`'s namespace on its address, accepting (and echoing) in a thread.
fn echo_server(lab: &Lab, i: usize, port: u16) -> SocketAddr {
    let addr = SocketAddr::from((lab.node_ip(i), port));
    let l = lab
        .in_namespace(i, || TcpListener::bind(addr))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(k) = s.read(&mut buf) {
                    if k == 0 || s.write_all(&buf[..k]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Whether a TCP connection from node `from`'s namespace to `to` is accepted.
fn tcp_ok(lab: &Lab, from: usize, to: SocketAddr) -> bool {
    lab.in_namespace(from, || TcpStream::connect_timeout(&to, CONNECT).is_ok())
        .unwrap()
}

/// Whether a UDP datagram from node `from` to node `to` arrives.
fn udp_ok(lab: &Lab, from: usize, to: usize, port: u16) -> bool {
    let dest = SocketAddr::from((lab.node_ip(to), port));
    let rx = lab
        .in_namespace(to, || UdpSocket::bind(dest))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(CONNECT)).unwrap();
    let tx = lab
        .in_namespace(from, || UdpSocket::bind((lab.node_ip(from), 0)))
        .unwrap()
        .unwrap();
    let mut buf = [0u8; 16];
    tx.send_to(b"ping", dest).is_ok() && rx.recv_from(&mut buf).is_ok()
}

fn namespace_exists(name: &str) -> bool {
    Path::new("/var/run/netns").join(name).exists()
}

#[test]
fn lab_nodes_and_the_harness_reach_each_other() {
    let lab = Lab::create(2).unwrap();
    let a = echo_server(&lab, 0, PORT);
    let b = echo_server(&lab, 1, PORT);
    assert!(tcp_ok(&lab, 0, b));
    assert!(tcp_ok(&lab, 1, a));
    // The harness, in the root namespace, through the bridge.
    assert!(TcpStream::connect_timeout(&a, CONNECT).is_ok());
    assert!(TcpStream::connect_timeout(&b, CONNECT).is_ok());
}

#[test]
fn lab_partition_blocks_tcp_both_ways_and_heal_restores_it() {
    let lab = Lab::create(3).unwrap();
    let addr: Vec<SocketAddr> = (0..3).map(|i| echo_server(&lab, i, PORT)).collect();
    let how = lab.partition(&[vec![0], vec![1]]).unwrap();
    assert!(how.contains("nftables"), "{how}");
    assert!(!tcp_ok(&lab, 0, addr[1]));
    assert!(!tcp_ok(&lab, 1, addr[0]));
    // Node 2 is in no group: it keeps full connectivity.
    assert!(tcp_ok(&lab, 2, addr[0]) && tcp_ok(&lab, 0, addr[2]));
    assert!(tcp_ok(&lab, 2, addr[1]) && tcp_ok(&lab, 1, addr[2]));
    // The harness reaches every node whatever the partition.
    for a in &addr {
        assert!(TcpStream::connect_timeout(a, CONNECT).is_ok());
    }
    lab.heal().unwrap();
    assert!(tcp_ok(&lab, 0, addr[1]));
    assert!(tcp_ok(&lab, 1, addr[0]));
}

#[test]
fn lab_a_node_in_two_groups_bridges_them() {
    let lab = Lab::create(3).unwrap();
    let addr: Vec<SocketAddr> = (0..3).map(|i| echo_server(&lab, i, PORT)).collect();
    lab.partition(&[vec![0, 1], vec![1, 2]]).unwrap();
    assert!(!tcp_ok(&lab, 0, addr[2]) && !tcp_ok(&lab, 2, addr[0]));
    assert!(tcp_ok(&lab, 1, addr[0]) && tcp_ok(&lab, 1, addr[2]));
    assert!(tcp_ok(&lab, 0, addr[1]) && tcp_ok(&lab, 2, addr[1]));
}

#[test]
fn lab_block_one_way_drops_one_direction_only() {
    let lab = Lab::create(2).unwrap();
    assert!(udp_ok(&lab, 0, 1, PORT) && udp_ok(&lab, 1, 0, PORT));
    lab.block_one_way(0, 1).unwrap();
    assert!(!udp_ok(&lab, 0, 1, PORT + 1));
    assert!(udp_ok(&lab, 1, 0, PORT + 2));
    lab.unblock_one_way(0, 1).unwrap();
    assert!(udp_ok(&lab, 0, 1, PORT + 3));
}

#[test]
fn lab_loss_drops_some_all_or_none_of_a_link() {
    let lab = Lab::create(2).unwrap();
    let how = lab.set_loss(0, 1, 50).unwrap();
    assert!(how.contains("numgen random"), "{how}");
    assert!(lab.rules(1).unwrap().contains("numgen random mod 100 < 50"));
    // About half of 400 datagrams arrive (below 100 or above 300: odds under 1e-20).
    let dest = SocketAddr::from((lab.node_ip(1), PORT));
    let rx = lab
        .in_namespace(1, || UdpSocket::bind(dest))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(CONNECT)).unwrap();
    let tx = lab
        .in_namespace(0, || UdpSocket::bind((lab.node_ip(0), 0)))
        .unwrap()
        .unwrap();
    for _ in 0..400 {
        tx.send_to(b"x", dest).unwrap();
    }
    let mut got = 0;
    let mut buf = [0u8; 4];
    while rx.recv_from(&mut buf).is_ok() {
        got += 1;
    }
    assert!(
        (100..=300).contains(&got),
        "{got} of 400 arrived at 50% loss"
    );
    lab.set_loss(0, 1, 100).unwrap();
    assert!(!udp_ok(&lab, 0, 1, PORT + 1));
    assert!(udp_ok(&lab, 1, 0, PORT + 2));
    lab.set_loss(0, 1, 0).unwrap();
    assert!(udp_ok(&lab, 0, 1, PORT + 3));
}

#[test]
fn lab_relay_delays_each_direction_and_nothing_bypasses_it() {
    let lab = Lab::create_with(
        2,
        &LabOptions {
            relay_ports: vec![PORT],
            seed: 7,
        },
    )
    .unwrap();
    let direct = echo_server(&lab, 1, PORT);
    // Direct peer traffic is dropped in relay mode.
    assert!(!tcp_ok(&lab, 0, direct));
    let via = lab.relay_addr(0, 1, PORT).unwrap();
    assert_eq!(via.ip(), std::net::IpAddr::V4(lab.shadow_ip(1)));
    let delay = Duration::from_millis(100);
    lab.set_delay(0, 1, delay, Duration::ZERO).unwrap();
    lab.set_delay(1, 0, delay, Duration::from_millis(5))
        .unwrap();
    let mut s = lab
        .in_namespace(0, || {
            TcpStream::connect_timeout(&via, Duration::from_secs(5))
        })
        .unwrap()
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        s.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        let rtt = t.elapsed();
        assert!(
            rtt >= 2 * delay,
            "round trip {rtt:?} below twice the one-way delay"
        );
    }
    // Inside node 1, the connection comes from node 0's shadow address.
    let ss = run(lab.command(1, "ss").args(["-tnH", "state", "established"])).unwrap();
    assert!(ss.contains(&lab.shadow_ip(0).to_string()), "{ss}");
    assert!(!ss.contains(&format!("{}:", lab.node_ip(0))), "{ss}");
    // Partitions name shadow addresses too.
    lab.partition(&[vec![0], vec![1]]).unwrap();
    assert!(!tcp_ok(&lab, 0, via));
    lab.heal().unwrap();
    assert!(tcp_ok(&lab, 0, via));
}

#[test]
fn lab_drop_removes_everything_it_made() {
    let lab = Lab::create(2).unwrap();
    let names = lab.namespaces();
    let bridge = lab.bridge();
    let id = lab.id();
    assert!(names.iter().all(|n| namespace_exists(n)));
    drop(lab);
    assert!(names.iter().all(|n| !namespace_exists(n)));
    assert!(!Path::new("/sys/class/net").join(&bridge).exists());
    assert!(!owner_file(id).exists());
}

#[test]
fn lab_stale_leftovers_are_removed_and_names_parsed() {
    assert_eq!(lab_id_of("lslab7"), Some(7));
    assert_eq!(lab_id_of("lslab7v12"), Some(7));
    assert_eq!(lab_id_of("lslab250n0"), Some(250));
    assert_eq!(lab_id_of("lslab7x"), None);
    assert_eq!(lab_id_of("lslabv1"), None);
    assert_eq!(lab_id_of("eth0"), None);
    // A namespace of a killed run: its owner file names no running process.
    let tools = Tools::find().unwrap();
    let id = 249;
    let ns = format!("{NAME_PREFIX}{id}n0");
    // Under the lock, so a lab created meanwhile by another test does not clean it first.
    let lock = state_lock().unwrap();
    std::fs::write(owner_file(id), "4194303 1\n").unwrap();
    run(Command::new(&tools.ip).args(["netns", "add", &ns])).unwrap();
    let removed = cleanup_stale_locked(&tools).unwrap();
    drop(lock);
    assert!(removed.iter().any(|r| r.contains(&ns)), "{removed:?}");
    assert!(!namespace_exists(&ns));
    assert!(!owner_file(id).exists());
}
