//! The worker loop in miniature on a `net_ring` virtual device, whose TX queue loops back into
//! its RX queue: rx_burst → edit in place → tx_burst → free what TX refused.
//!
//! `cargo run -p callbridge-dpdk --example loopback` (as root; no hugepages needed).

use callbridge_dpdk::{lcore, Burst, Eal, EalArgs, Mempool, Port, PortConf};

fn main() -> Result<(), callbridge_dpdk::DpdkError> {
    let args = EalArgs::for_tests().vdev("net_ring0").build();
    let eal = Eal::init(&args)?;
    let port_id = Port::by_name("net_ring0")?;
    let socket = port_id.socket_id()?;
    let pool = Mempool::new("loopback", 2047, 32, Mempool::DEFAULT_DATA_ROOM, socket)?;
    let mut port = Port::configure(port_id, PortConf::default(), &pool)?;
    port.start()?;
    println!(
        "{port_id} ({}) mac {} link {:?}",
        port.dev_info()?.driver_name,
        port.mac_addr()?,
        port.link()?
    );

    let (mut rx, mut tx) = (port.rx_queue(0)?, port.tx_queue(0)?);
    let mut burst = Burst::<32>::new();
    // Seed the loop with 32 frames carrying a hop counter in byte 0.
    for _ in 0..32 {
        let Some(mut m) = pool.alloc() else { break };
        if let Some(bytes) = m.append(64) {
            bytes.fill(0);
        }
        let _ = burst.push(m);
    }
    tx.tx_burst(&mut burst);
    burst.clear();

    let hz = lcore::tsc_hz();
    let start = lcore::rdtsc();
    let mut passes = 0u64;
    while lcore::rdtsc() - start < hz / 10 {
        rx.rx_burst(&mut burst);
        for m in burst.iter_mut() {
            let data = m.data_mut();
            data[0] = data[0].wrapping_add(1);
        }
        tx.tx_burst(&mut burst);
        burst.clear(); // frees whatever TX refused
        passes += 1;
    }
    let stats = port.stats()?;
    println!(
        "{passes} passes in 100 ms: {} packets relayed, {} received",
        stats.opackets, stats.ipackets
    );

    // Drain the ring so every mbuf is back in the pool and EAL cleans up on drop.
    while rx.rx_burst(&mut burst) > 0 {
        burst.clear();
    }
    println!(
        "pool: {} of {} mbufs free",
        pool.available(),
        pool.capacity()
    );
    drop((rx, tx));
    port.stop()?;
    let dir = eal.runtime_dir();
    drop((port, pool, eal));
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
