//! The legs of the benchmark and what their peers send: ports, addresses, pre-built frames,
//! and the worker set up with every leg bridged.

use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use dp_api::{Codec, Command, Latch, LegSpec, SrcMismatch};
use dpdk::{Mempool, Port, RxOffloads, RxQueue, ThreadRegistration, TxQueue};
use relay::{Relay, RelayConfig};
use wire::ethernet::Address;
use worker::dpdk_io::DpdkIo;
use worker::netstack::{NetConfig, TxOffload};
use worker::Worker;

use crate::queues::PORT;

// The addressing scheme and the frames are the memif generator's (`dpdkgen`): the same legs
// and peers on both DPDK harnesses.
pub(crate) use callbridge_perf::dpdkgen::{
    addr_ip, addresses_for, frame, leg_id, remote, FIRST_PORT, FRAME_LEN, GW, GW_MAC, MAX_LEGS,
    PER_ADDR, RTP_LEN, US,
};
pub(crate) const GEN_BURST: usize = 32;
/// What the generator rewrites in a returned frame: headers up to and including the RTP
/// header (54 bytes) fit one cache line; the RTP payload comes back as it was sent, since
/// relaying never touches it, so the UDP checksum of the pre-built frame still holds.
pub(crate) const HEADER_COPY: usize = 64;

/// The worker: the real [`Worker`] loop over [`DpdkIo`] with `legs` bridged legs (pairs),
/// the gateway's MAC pre-loaded. Returns it with the command sender and event receiver,
/// which must stay alive (a closed command queue stops the worker).
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub(crate) fn build_worker(
    rxq: RxQueue,
    txq: TxQueue,
    pool: Mempool,
    our_mac: Address,
    offload: TxOffload,
    legs: usize,
    burst: usize,
    stop: Arc<AtomicBool>,
    reg: Option<ThreadRegistration>,
) -> anyhow::Result<(
    Worker<DpdkIo>,
    crossbeam_channel::Sender<Command>,
    crossbeam_channel::Receiver<dp_api::Event>,
)> {
    let last = FIRST_PORT + (2 * legs.min(PER_ADDR) - 1) as u16;
    let addresses = addresses_for(legs);
    let extra: Vec<IpAddr> = (1..addresses)
        .map(|a| IpAddr::V4(addr_ip(a as u8)))
        .collect();
    let net = NetConfig {
        mac: our_mac,
        ip: US,
        prefix_len: 24,
        gateway: Some(GW),
    };
    // With offload modelled (`--assume-offload`), the worker trusts the receive checksum
    // flags the generator sets, as on a port that enabled receive checksum offload.
    let rx_offloads = if offload.udp_checksum {
        RxOffloads {
            ipv4_cksum: true,
            udp_cksum: true,
        }
    } else {
        PORT.lock()
            .expect("port")
            .as_ref()
            .map(Port::rx_offloads)
            .unwrap_or_default()
    };
    let mut io = DpdkIo::new(rxq, txq, pool, net, offload, FIRST_PORT..=last, None)
        .with_extra_addresses(&extra)
        .with_rx_offloads(rx_offloads)
        .with_registration(reg);
    let t0 = io.clock().now();
    io.insert_neighbour(t0, IpAddr::V4(GW), GW_MAC);
    let mut cfg = RelayConfig::new(FIRST_PORT..=last, 1 << 16);
    cfg.seed = 7;
    cfg.addresses = addresses;
    let (cmd_tx, cmd_rx) = crossbeam_channel::bounded(16);
    let (ev_tx, ev_rx) = crossbeam_channel::bounded(1 << 16);
    let mut w = Worker::new(0, io, Relay::new(cfg), cmd_rx, ev_tx, burst, stop);
    for i in 0..legs {
        let id = leg_id(i);
        w.handle_command(
            t0,
            Command::AddLeg(LegSpec {
                id,
                remote: Some(remote(i)),
                latch: Latch::Off,
                src_mismatch: SrcMismatch::Drop,
                codec: Codec::Pcma,
                media_timeout: Some(Duration::from_secs(30)),
            }),
        );
        if i % 2 == 1 {
            let a = leg_id(i - 1);
            w.handle_command(t0, Command::Bridge { a, b: id });
        }
        while ev_rx.try_recv().is_ok() {}
    }
    let legs_up = w.relay().stats().legs;
    ensure!(legs_up == legs, "only {legs_up} of {legs} legs");
    Ok((w, cmd_tx, ev_rx))
}
