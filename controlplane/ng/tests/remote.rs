//! [`ng::remote::NgMedia`] over two real media nodes (ng listener + socket data plane on
//! loopback): a pair from the pool, the B2BUA's commands over `cb-leg`, RTP both ways
//! through the node, counters and removal as events; then one node stops answering: it is
//! marked dead within about one timeout, its call is told, and new pairs come from the other.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use b2bua::Media;
use common::{start_node, Lab, DEADLINE};
use dp_api::{Codec, Command, Event, Latch, LegSpec, SrcMismatch};
use ng::remote::{NgMedia, NgMediaConfig};
use ng::NodeSettings;

fn node(ip: Ipv4Addr, ports: std::ops::RangeInclusive<u16>) -> Lab {
    start_node(ip, ports, NodeSettings::default())
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0xff; 160]);
    p
}

/// Sends from `from` to `to` until `at` receives something (or the deadline).
fn flows(from: &UdpSocket, to: SocketAddr, at: &UdpSocket) -> bool {
    at.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 2048];
    let mut seq = 0u16;
    while t0.elapsed() < DEADLINE {
        seq = seq.wrapping_add(1);
        from.send_to(&rtp(seq), to).unwrap();
        if at.recv_from(&mut buf).is_ok() {
            return true;
        }
    }
    false
}

fn add(leg: dp_api::LegId, remote: SocketAddr) -> Command {
    Command::AddLeg(LegSpec {
        id: leg,
        remote: Some(remote),
        latch: Latch::Signalled,
        src_mismatch: SrcMismatch::Drop,
        codec: Codec::Pcmu,
        media_timeout: None,
    })
}

type Events = tokio::sync::mpsc::UnboundedReceiver<Event>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The next event on `rx`, within [`DEADLINE`].
fn next_event(rt: &tokio::runtime::Runtime, rx: &mut Events) -> Event {
    rt.block_on(async { tokio::time::timeout(DEADLINE, rx.recv()).await })
        .expect("an event in time")
        .expect("open")
}

/// Routes legs `(customer, agent)` to `tx`, adds them with remotes `(to_customer,
/// to_agent)` and bridges them.
fn bridge(
    media: &NgMedia,
    tx: &tokio::sync::mpsc::UnboundedSender<Event>,
    (customer, agent): (dp_api::LegId, dp_api::LegId),
    (to_customer, to_agent): (SocketAddr, SocketAddr),
) {
    for l in [customer, agent] {
        media.route(l, tx.clone());
    }
    media.send(add(customer, to_customer)).unwrap();
    media.send(add(agent, to_agent)).unwrap();
    media
        .send(Command::Bridge {
            a: customer,
            b: agent,
        })
        .unwrap();
}

#[test]
fn ng_media_relays_through_a_node_and_leaves_a_dead_one() {
    let ips = [Ipv4Addr::new(127, 0, 78, 1), Ipv4Addr::new(127, 0, 78, 2)];
    let mut n1 = node(ips[0], 43_000..=43_099);
    let n2 = node(ips[1], 43_100..=43_199);
    let rt = runtime();
    let mut cfg = NgMediaConfig::new(vec![n1.ng, n2.ng]);
    cfg.client.timeout = Duration::from_millis(300);
    cfg.pool = 2;
    let media = rt.block_on(NgMedia::start(cfg)).unwrap();
    assert!(
        media.status().iter().all(|s| s.healthy && s.pooled == 2),
        "{:?}",
        media.status()
    );
    assert!(media.free_pairs() >= 4);

    // Least-loaded first: the two first pairs on different nodes.
    let legs = media.allocate_pair().unwrap();
    let other = media.allocate_pair().unwrap();
    let (ip, oip) = (
        media.address_of(legs.customer).unwrap(),
        media.address_of(other.customer).unwrap(),
    );
    assert_ne!(ip, oip);
    assert_eq!(media.address_of(legs.agent), Some(ip));
    let on_n1 = if ip == IpAddr::V4(ips[0]) {
        legs
    } else {
        other
    };
    let on_n2 = if ip == IpAddr::V4(ips[0]) {
        other
    } else {
        legs
    };

    // A call on node 2: two RTP peers, bridged through it.
    let alice = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let bob = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    bridge(
        &media,
        &tx,
        (on_n2.customer, on_n2.agent),
        (alice.local_addr().unwrap(), bob.local_addr().unwrap()),
    );
    let n2ip = IpAddr::V4(ips[1]);
    let next = |rx: &mut Events| next_event(&rt, rx);
    let mut added = 0;
    while added < 2 {
        if let Event::LegAdded { leg } = next(&mut rx) {
            assert!(leg == on_n2.customer || leg == on_n2.agent);
            added += 1;
        }
    }
    assert!(
        flows(&alice, SocketAddr::new(n2ip, on_n2.customer.port()), &bob),
        "alice → bob"
    );
    assert!(
        flows(&bob, SocketAddr::new(n2ip, on_n2.agent.port()), &alice),
        "bob → alice"
    );
    media
        .send(Command::QueryStats {
            leg: on_n2.customer,
        })
        .unwrap();
    loop {
        if let Event::Stats { leg, stats } = next(&mut rx) {
            assert_eq!(leg, on_n2.customer);
            assert!(stats.rx_packets > 0 && stats.tx_packets > 0, "{stats:?}");
            break;
        }
    }

    // A bridged call on node 1, which then stops answering: its legs are re-created on node
    // 2 (same local ids, new ports there) and the call is told to re-offer.
    let carol = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let dave = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let (tx1, mut rx1) = tokio::sync::mpsc::unbounded_channel();
    bridge(
        &media,
        &tx1,
        (on_n1.customer, on_n1.agent),
        (carol.local_addr().unwrap(), dave.local_addr().unwrap()),
    );
    let old = media.rtp_of(on_n1.customer).unwrap();
    assert_eq!(
        old,
        SocketAddr::new(IpAddr::V4(ips[0]), on_n1.customer.port())
    );
    // Its legs exist on node 1 before it stops (else there is nothing to re-create).
    let mut added = 0;
    while added < 2 {
        let ev = rt
            .block_on(async { tokio::time::timeout(DEADLINE, rx1.recv()).await })
            .expect("legs added on node 1")
            .unwrap();
        if matches!(ev, Event::LegAdded { .. }) {
            added += 1;
        }
    }
    n1.stop();
    let t0 = Instant::now();
    let mut moved = Vec::new();
    while moved.len() < 2 {
        let ev = rt
            .block_on(async { tokio::time::timeout(DEADLINE, rx1.recv()).await })
            .expect("the dead node's call is told")
            .unwrap();
        assert!(!matches!(ev, Event::CommandFailed { .. }), "{ev:?}");
        if let Event::Moved { leg } = ev {
            moved.push(leg);
        }
    }
    let detected = t0.elapsed();
    println!("node death noticed and the call re-anchored after {detected:?}");
    let (c, d) = (
        media.rtp_of(on_n1.customer).unwrap(),
        media.rtp_of(on_n1.agent).unwrap(),
    );
    assert_eq!(c.ip(), n2ip, "{c}");
    assert_eq!(media.address_of(on_n1.agent), Some(n2ip));
    assert!(flows(&carol, c, &dave), "carol → dave through node 2");
    assert!(flows(&dave, d, &carol), "dave → carol through node 2");
    assert!(detected < Duration::from_secs(5), "{detected:?}");
    let dead = media
        .status()
        .into_iter()
        .find(|s| s.addr == n1.ng)
        .unwrap();
    assert!(!dead.healthy && dead.pooled == 0, "{dead:?}");
    // Every new pair from node 2 now, without waiting on node 1.
    for _ in 0..4 {
        let t = Instant::now();
        let l = loop {
            match media.allocate_pair() {
                Ok(l) => break l,
                Err(_) => {
                    assert!(t.elapsed() < DEADLINE, "no pair from the live node");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        assert_eq!(media.address_of(l.customer), Some(n2ip));
        media.release(l);
    }
    media.release(on_n1);

    // The live call ends normally.
    media
        .send(Command::RemoveLeg {
            leg: on_n2.customer,
        })
        .unwrap();
    media.send(Command::RemoveLeg { leg: on_n2.agent }).unwrap();
    let mut removed = 0;
    while removed < 2 {
        if let Event::LegRemoved { .. } = next(&mut rx) {
            removed += 1;
        }
    }
    media.release(on_n2);
    drop(media);
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// Waits until `f` holds (polling every 10 ms), or fails after [`DEADLINE`] with `what`.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < DEADLINE, "not within {DEADLINE:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_draining_node_gets_its_pooled_pairs_back_and_gives_no_new_ones() {
    let ips = [Ipv4Addr::new(127, 0, 78, 4), Ipv4Addr::new(127, 0, 78, 5)];
    let n1 = node(ips[0], 43_300..=43_319);
    let n2 = node(ips[1], 43_320..=43_339);
    let rt = runtime();
    let mut cfg = NgMediaConfig::new(vec![n1.ng, n2.ng]);
    cfg.pool = 3;
    let media = rt.block_on(NgMedia::start(cfg)).unwrap();
    // A call on n1 before the drain.
    let mut live = None;
    for _ in 0..2 {
        let legs = media.allocate_pair().unwrap();
        if media.address_of(legs.customer) == Some(IpAddr::V4(ips[0])) {
            live = Some(legs);
        } else {
            media.release(legs);
        }
    }
    let live = live.expect("one of two pairs from the least-loaded n1");
    wait_until("n1 counts the live pair and its pool", || {
        n1.drain.calls() >= 2
    });

    n1.drain.start();
    // Its pool comes back; only the live call's pair stays.
    wait_until("the pooled pairs given back to the draining node", || {
        n1.drain.calls() == 1 && media.status().first().is_some_and(|s| s.pooled == 0)
    });
    for _ in 0..5 {
        // n2's pool refills in the background.
        let mut got = None;
        wait_until("a pair from n2", || {
            got = media.allocate_pair().ok();
            got.is_some()
        });
        let legs = got.unwrap();
        assert_eq!(
            media.address_of(legs.customer),
            Some(IpAddr::V4(ips[1])),
            "a new pair from the draining node: {:?}",
            media.status()
        );
        media.release(legs);
    }
    // The live call ends: the draining node has nothing left.
    media.release(live);
    wait_until("the draining node empty", || n1.drain.calls() == 0);
    drop(media);
    rt.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn extension_legs_belong_to_their_controller() {
    let n = node(Ipv4Addr::new(127, 0, 78, 3), 43_200..=43_219);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = ng::client::Client::connect(n.ng, ng::client::ClientConfig::default())
            .await
            .unwrap();
        let raw = c
            .request(b"d7:command11:cb-allocate10:controller1:x5:counti2ee")
            .await
            .unwrap();
        let v = ng::bencode::decode(&raw).unwrap();
        let pairs = ng::ext::decode_pairs(&v).unwrap();
        assert_eq!(pairs.len(), 2, "{v:?}");
        assert!(v
            .get("instance")
            .and_then(|i| i.as_str())
            .is_some_and(|i| !i.is_empty()));
        // Another controller may not touch x's legs; x may.
        let leg = pairs[0].a.0;
        for (who, refused) in [("y", true), ("x", false)] {
            let msg =
                format!("d7:command6:cb-leg10:controller1:{who}4:cmdsld2:op5:query3:legi{leg}eeee");
            let raw = c.request(msg.as_bytes()).await.unwrap();
            let v = ng::bencode::decode(&raw).unwrap();
            let failed = v.get("failed").and_then(|f| f.as_list()).unwrap().len();
            assert_eq!(failed == 1, refused, "{who}: {v:?}");
        }
        // x sees its Stats event, y sees nothing.
        let t0 = Instant::now();
        loop {
            let raw = c
                .request(b"d7:command9:cb-events10:controller1:x5:sincei0ee")
                .await
                .unwrap();
            let v = ng::bencode::decode(&raw).unwrap();
            let evs = v.get("events").and_then(|e| e.as_list()).unwrap();
            if let Some(ev) = evs.first() {
                let ev = ng::ext::decode_event(ev).unwrap();
                assert_eq!(ev.leg(), Some(pairs[0].a), "{ev:?}");
                break;
            }
            assert!(t0.elapsed() < DEADLINE, "no event for x");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let raw = c
            .request(b"d7:command9:cb-events10:controller1:y5:sincei0ee")
            .await
            .unwrap();
        let v = ng::bencode::decode(&raw).unwrap();
        assert!(
            v.get("events")
                .and_then(|e| e.as_list())
                .unwrap()
                .is_empty(),
            "{v:?}"
        );
        // Releasing gives the ports back.
        let msg = format!(
            "d7:command10:cb-release10:controller1:x5:pairslli{}eeli{}eeee",
            pairs[0].a.0, pairs[1].a.0
        );
        let raw = c.request(msg.as_bytes()).await.unwrap();
        let v = ng::bencode::decode(&raw).unwrap();
        assert_eq!(v.get("released").and_then(|r| r.as_int()), Some(2), "{v:?}");
    });
}

/// A dead node with more live pairs than the survivor holds pooled: every pair still moves
/// (those beyond the pool as soon as the survivor has allocated more), none is failed.
#[test]
fn more_live_pairs_than_the_survivors_pool_all_move() {
    const PAIRS: usize = 7;
    let ips = [Ipv4Addr::new(127, 0, 78, 7), Ipv4Addr::new(127, 0, 78, 8)];
    let mut n1 = node(ips[0], 43_400..=43_499);
    let n2 = node(ips[1], 43_500..=43_599);
    let rt = runtime();
    let mut cfg = NgMediaConfig::new(vec![n1.ng, n2.ng]);
    cfg.client.timeout = Duration::from_millis(300);
    cfg.pool = 2;
    let media = rt.block_on(NgMedia::start(cfg)).unwrap();
    let n1ip = IpAddr::V4(ips[0]);
    // PAIRS pairs on node 1 (pairs from node 2 are given back at once).
    let mut on_n1 = Vec::new();
    let t0 = Instant::now();
    while on_n1.len() < PAIRS {
        assert!(t0.elapsed() < DEADLINE, "no {PAIRS} pairs on node 1");
        match media.allocate_pair() {
            Ok(l) if media.address_of(l.customer) == Some(n1ip) => on_n1.push(l),
            Ok(l) => media.release(l),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let at = peer.local_addr().unwrap();
    for l in &on_n1 {
        bridge(&media, &tx, (l.customer, l.agent), (at, at));
    }
    let next = |rx: &mut Events| next_event(&rt, rx);
    let mut added = 0;
    while added < 2 * PAIRS {
        if let Event::LegAdded { .. } = next(&mut rx) {
            added += 1;
        }
    }
    n1.stop();
    let mut moved = std::collections::BTreeSet::new();
    while moved.len() < 2 * PAIRS {
        match next(&mut rx) {
            Event::Moved { leg } => {
                moved.insert(leg);
            }
            ev @ Event::CommandFailed { .. } => panic!("a pair was not moved: {ev:?}"),
            _ => {}
        }
    }
    for l in &on_n1 {
        for leg in [l.customer, l.agent] {
            assert_eq!(media.address_of(leg), Some(IpAddr::V4(ips[1])), "{leg}");
        }
    }
    let n2s = media
        .status()
        .into_iter()
        .find(|s| s.addr == n2.ng)
        .unwrap();
    assert!(n2s.live >= PAIRS, "{n2s:?}");
    for l in on_n1 {
        media.release(l);
    }
    drop(media);
    rt.shutdown_timeout(Duration::from_secs(1));
}
