//! The I/O backend seam: batched receive and transmit over fixed bursts.
//!
//! Modelled on DPDK's `rte_eth_rx_burst`/`tx_burst`, ixy.rs `IxyDevice::rx_batch` and
//! capsule's `PacketRx`/`PacketTx`. A [`Burst`] is allocated once per worker and reused
//! every pass; backends fill or drain it without allocating. Forwarding moves a buffer from
//! the RX burst to the TX burst by swapping the two slots' buffers, so no payload is copied.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::stats::IoStats;

/// The largest burst any backend handles (DPDK's usual `MAX_PKT_BURST` is 32).
pub const MAX_BURST: usize = 64;
/// The size of one packet buffer: a UDP payload larger than this is dropped by the socket
/// backend (RTP is far smaller).
pub const BUF_LEN: usize = 2048;
/// The least room [`PacketIo::prepare_tx`] must give a TX buffer (an announcement packet is
/// 172 bytes).
pub const MIN_TX_ROOM: usize = 512;

// An announcement to an SRTP leg is encrypted in its TX buffer.
const _: () = assert!(MIN_TX_ROOM >= relay::announce::PACKET_LEN + relay::TRAILER_ROOM);

/// One packet in a burst. On receive, `peer` is the source and `local_addr`/`local_port` our
/// destination (media address index, port); on transmit, `peer` is the destination and
/// `local_addr`/`local_port` our source.
#[derive(Debug)]
pub struct Packet<B> {
    /// The buffer; the UDP payload is `buf[..len]`.
    pub buf: B,
    /// Payload length.
    pub len: usize,
    /// The remote address.
    pub peer: SocketAddr,
    /// Our port.
    pub local_port: u16,
    /// Our media address: an index into the data plane's addresses (0 = the first).
    pub local_addr: u8,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Packet<B> {
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[..self.len]
    }
    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[..self.len]
    }
}

/// A fixed array of packet slots, of which the first `len` are in use. Allocated once.
#[derive(Debug)]
pub struct Burst<B> {
    pkts: Box<[Packet<B>]>,
    len: usize,
}

const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

impl<B> Burst<B> {
    /// A burst of `capacity` slots (at most [`MAX_BURST`]) whose buffers come from `make`.
    ///
    /// # Panics
    /// If `capacity` is 0 or above [`MAX_BURST`].
    pub fn new(capacity: usize, mut make: impl FnMut() -> B) -> Self {
        assert!(
            (1..=MAX_BURST).contains(&capacity),
            "burst size must be 1..={MAX_BURST}"
        );
        let pkts = (0..capacity)
            .map(|_| Packet {
                buf: make(),
                len: 0,
                peer: UNSPECIFIED,
                local_port: 0,
                local_addr: 0,
            })
            .collect();
        Self { pkts, len: 0 }
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.pkts.len()
    }
    /// Slots in use.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether no slot is in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Whether every slot is in use.
    pub fn is_full(&self) -> bool {
        self.len == self.pkts.len()
    }
    /// Marks every slot free.
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Marks the first `n` slots used (backends call this after filling them).
    ///
    /// # Panics
    /// If `n > capacity()`.
    pub fn set_len(&mut self, n: usize) {
        assert!(n <= self.pkts.len());
        self.len = n;
    }
    /// The used slots.
    pub fn packets(&self) -> &[Packet<B>] {
        &self.pkts[..self.len]
    }
    /// The used slots, mutable.
    pub fn packets_mut(&mut self) -> &mut [Packet<B>] {
        &mut self.pkts[..self.len]
    }
    /// Every slot, for a backend to fill before [`Self::set_len`].
    pub fn slots_mut(&mut self) -> &mut [Packet<B>] {
        &mut self.pkts
    }
    /// The next free slot, without taking it; [`Self::commit`] takes it.
    pub fn next_free(&mut self) -> Option<&mut Packet<B>> {
        self.pkts.get_mut(self.len)
    }
    /// Takes the slot [`Self::next_free`] returned.
    ///
    /// # Panics
    /// If the burst is full.
    pub fn commit(&mut self) {
        assert!(self.len < self.pkts.len());
        self.len += 1;
    }
    /// Slot `i` (used or not), mutable.
    ///
    /// # Panics
    /// If `i >= capacity()`.
    pub fn slot_mut(&mut self, i: usize) -> &mut Packet<B> {
        &mut self.pkts[i]
    }
}

/// What the fast lane of [`PacketIo::rx_burst_lane`] did in one burst.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneOut {
    /// Packets the relay took through the lane (counted as relayed).
    pub taken: usize,
    /// Of those, packets the TX queue accepted.
    pub sent: usize,
    /// Packets the TX queue refused (counted on their legs as `TxFull`).
    pub refused: usize,
}

/// A batched packet backend owned by one worker (`SocketIo`, `MemIo`; later `DpdkIo`).
///
/// The backend is chosen once, when the worker starts (l3fwd's lookup-mode table, ixy's
/// `ixy_init`), so nothing on the per-packet path is dynamically dispatched.
pub trait PacketIo {
    /// The packet buffer type (a boxed byte slice for sockets, an mbuf for DPDK).
    type Buf: AsRef<[u8]> + AsMut<[u8]>;

    /// A fresh buffer for building bursts (called only at start-up).
    fn new_buf(&self) -> Self::Buf;

    /// Starts receiving on `rtp_port` and `rtp_port + 1` of media address `addr` (an index).
    ///
    /// # Errors
    /// When the backend cannot open the ports (e.g. already bound, unknown address).
    fn open_port(&mut self, addr: u8, rtp_port: u16) -> io::Result<()>;

    /// Stops receiving on `rtp_port` and `rtp_port + 1` of media address `addr`. Unknown
    /// ports are ignored.
    fn close_port(&mut self, addr: u8, rtp_port: u16);

    /// Receives up to `rx.capacity()` packets into `rx` (replacing its contents) and returns
    /// how many. Each slot's `buf.as_mut()` holds the payload and, where the buffer allows,
    /// at least `relay::TRAILER_ROOM` bytes after it, into which the relay encrypts packets
    /// relayed toward SRTP legs (a packet without that room is dropped and counted as
    /// `SrtpNoRoom`, never written past). When nothing is ready and `wait` is `Some`, may block up to `wait` for the
    /// first packet (the DPDK backend busy-polls instead and ignores `wait`).
    fn rx_burst(&mut self, rx: &mut Burst<Self::Buf>, wait: Option<Duration>) -> usize;

    /// The relay rewrote the payload in `buf` beyond the RTP fixed header (it decrypted or
    /// encrypted it for an SRTP leg, or converted its G.711 law, see
    /// `relay::Datagram::payload_rewritten`): anything the
    /// backend kept about the received bytes (the DPDK backend's partial UDP checksum) no
    /// longer holds. The default does nothing.
    fn payload_rewritten(&self, buf: &mut Self::Buf) {
        let _ = buf;
    }

    /// Makes a free TX slot's buffer writable for an announcement packet: afterwards
    /// `buf.as_mut()` must hold at least [`MIN_TX_ROOM`] bytes. Returns `false` when no buffer
    /// is available (the announcement waits for a later pass).
    ///
    /// Buffers of `SocketIo`/`MemIo` always are (the default); a DPDK slot may be empty after
    /// transmit and is refilled from the mempool here.
    fn prepare_tx(&mut self, buf: &mut Self::Buf) -> bool {
        let _ = buf;
        true
    }

    /// The backend's clock, read by the worker once per pass (the DPDK backend reads the
    /// TSC; the default is [`std::time::Instant::now`]).
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }

    /// [`Self::rx_burst`] with the relay's fast lane ([`relay::Lane`]): a backend that can
    /// send a received datagram without copying it offers each one to the lane as it
    /// receives it, sends those the lane takes itself, and leaves the rest in `rx` for the
    /// full path. Returns how many it left in `rx`, and what the lane did. The default (the
    /// socket backend's) takes nothing through the lane.
    fn rx_burst_lane(
        &mut self,
        rx: &mut Burst<Self::Buf>,
        wait: Option<Duration>,
        relay: &mut relay::Relay,
    ) -> (usize, LaneOut) {
        let _ = relay;
        (self.rx_burst(rx, wait), LaneOut::default())
    }

    /// The backend's own counters (L2/L3 drops, port counters); zero for backends without.
    fn io_stats(&self) -> IoStats {
        IoStats::default()
    }

    /// Sends `tx.packets()`; returns how many were sent. Each refused packet is passed to
    /// `refused` (so the caller can count it as `TxFull`). Does not clear `tx`.
    fn tx_burst(
        &mut self,
        tx: &mut Burst<Self::Buf>,
        refused: &mut dyn FnMut(&Packet<Self::Buf>),
    ) -> usize;
}
