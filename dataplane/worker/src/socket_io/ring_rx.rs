//! The receive ring of the socket backend (opt-in, [`super::SocketIo::with_rx_ring`]): one
//! `AF_PACKET` socket per worker whose mmap'ed `TPACKET_V2` ring (bindings/packet-ring)
//! receives the worker's IPv4 media packets, read without a system call per packet.
//!
//! The kernel copies a packet into the ring when the ring's classic BPF filter accepts it:
//! IPv4, UDP, not a fragment, at most [`MAX_PACKET`] bytes (432), to one of the
//! worker's IPv4 media addresses and a port of its range. The packet also goes up the normal
//! stack to the port's UDP socket, which stays bound (it reserves the port, and a closed
//! port still gets the kernel's ICMP answer) but carries the complementary filter
//! ([`socket_filter`]): it drops what the ring took, so the kernel queues no copy. What the
//! ring does not take reaches the sockets as before: IPv6 media addresses, and IPv4
//! datagrams longer than a ring frame (reassembled fragments among them).
//!
//! Checks the kernel's UDP receive path would make are made here, per packet, on the
//! bytes: addressed to this host, IPv4 header checksum, lengths, the UDP checksum when the
//! kernel has not verified it (`TP_STATUS_CSUM_VALID`) and the packet did not start on this
//! host (`TP_STATUS_CSUMNOTREADY`), and that the port is open. Unlike the UDP sockets, the
//! ring sees packets before netfilter's INPUT chain: a firewall rule dropping media to a
//! port does not stop the ring.
//!
//! Fragmented IPv4 media datagrams that reassemble to at most a frame's size are dropped
//! (the ring does not take fragments, the socket filter cannot tell a reassembled datagram
//! from one that arrived whole). RTP is sent unfragmented.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use std::cell::Cell;

use packet_ring::{bpf, Filter, Insn, RxRing, NET_OFFSET, PACKET_HOST};

use super::Pkt;

/// Frames per worker ring: 16 MB of 512-byte frames, 187 ms of packets at 175k pps (a worker
/// stalled longer loses packets, counted; socket buffers would have held them).
const FRAMES: usize = 32768;

/// The ring's frame size: room for a 432-byte IPv4 datagram (404 bytes of UDP payload: RTP
/// audio, SRTP included, at the usual packet times); longer datagrams (video, long packet
/// times) stay on the sockets.
const FRAME_SIZE: usize = 512;

/// The longest IPv4 datagram the ring takes.
pub(super) const MAX_PACKET: usize = FRAME_SIZE - NET_OFFSET;

/// One worker's ring and what it needs to map a packet to a socket slot.
#[derive(Debug)]
pub(super) struct RingRx {
    ring: RxRing,
    /// `(IPv4 address, media address index)` of the IPv4 media addresses.
    v4: Vec<(Ipv4Addr, u8)>,
    first: u16,
    last: u16,
    /// Packets the ring delivered that the checks dropped.
    pub(super) drops: u64,
    /// Packets the kernel dropped because the ring was full (accumulated on each read).
    overflows: Cell<u64>,
}

/// The filter of a port's UDP socket when the ring is on: drop what the ring takes (an IPv4
/// datagram that fits a frame), accept the rest. The socket filter sees the UDP header at
/// offset 0; the IPv4 header is read at `SKF_NET_OFF`.
pub(super) fn socket_filter() -> Filter {
    Filter::new(&[
        Insn::stmt(bpf::LD | bpf::H | bpf::ABS, bpf::NET_OFF.wrapping_add(2)),
        Insn::jump(bpf::JMP | bpf::JGT | bpf::K, MAX_PACKET as u32, 0, 1),
        Insn::stmt(bpf::RET | bpf::K, u32::MAX),
        Insn::stmt(bpf::RET | bpf::K, 0),
    ])
    .expect("a 4-instruction program")
}

/// The ring's filter: IPv4 UDP, unfragmented, at most a frame, to one of `v4` and a port in
/// `first..=last`.
fn ring_filter(v4: &[Ipv4Addr], first: u16, last: u16) -> io::Result<Filter> {
    // Jump targets are resolved once the program's length is known.
    let n = v4.len();
    // 0..=5: protocol, fragment, length; 6: load dst; 7..7+n: addresses; then 4 port
    // instructions, accept, drop.
    let ports = 7 + n;
    let accept = ports + 4;
    let drop = accept + 1;
    let rel = |at: usize, to: usize| -> io::Result<u8> {
        u8::try_from(to - at - 1)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many media addresses"))
    };
    let mut p = vec![
        Insn::stmt(bpf::LD | bpf::B | bpf::ABS, 9),
        Insn::jump(bpf::JMP | bpf::JEQ | bpf::K, 17, 0, rel(1, drop)?),
        Insn::stmt(bpf::LD | bpf::H | bpf::ABS, 6),
        Insn::jump(bpf::JMP | bpf::JSET | bpf::K, 0x3fff, rel(3, drop)?, 0),
        Insn::stmt(bpf::LD | bpf::H | bpf::ABS, 2),
        Insn::jump(
            bpf::JMP | bpf::JGT | bpf::K,
            MAX_PACKET as u32,
            rel(5, drop)?,
            0,
        ),
        Insn::stmt(bpf::LD | bpf::W | bpf::ABS, 16),
    ];
    for (i, a) in v4.iter().enumerate() {
        let at = 7 + i;
        let miss = if i + 1 == n { rel(at, drop)? } else { 0 };
        p.push(Insn::jump(
            bpf::JMP | bpf::JEQ | bpf::K,
            u32::from(*a),
            rel(at, ports)?,
            miss,
        ));
    }
    p.extend([
        Insn::stmt(bpf::LDX | bpf::B | bpf::MSH, 0),
        Insn::stmt(bpf::LD | bpf::H | bpf::IND, 2),
        Insn::jump(bpf::JMP | bpf::JGE | bpf::K, u32::from(first), 0, 2),
        Insn::jump(bpf::JMP | bpf::JGT | bpf::K, u32::from(last), 1, 0),
        Insn::stmt(bpf::RET | bpf::K, u32::MAX),
        Insn::stmt(bpf::RET | bpf::K, 0),
    ]);
    debug_assert_eq!(p.len(), drop + 1);
    Filter::new(&p)
}

impl RingRx {
    /// A ring for the IPv4 addresses among `addresses` and ports `first..=last`; `None` when
    /// there is none.
    ///
    /// # Errors
    /// The kernel's (`EPERM` without `CAP_NET_RAW`).
    pub(super) fn open(addresses: &[IpAddr], first: u16, last: u16) -> io::Result<Option<Self>> {
        let v4: Vec<(Ipv4Addr, u8)> = addresses
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match a {
                IpAddr::V4(v4) => Some((*v4, i as u8)),
                IpAddr::V6(_) => None,
            })
            .collect();
        if v4.is_empty() {
            return Ok(None);
        }
        let ips: Vec<Ipv4Addr> = v4.iter().map(|(a, _)| *a).collect();
        let ring = RxRing::open(FRAMES, FRAME_SIZE, &ring_filter(&ips, first, last)?)?;
        Ok(Some(Self {
            ring,
            v4,
            first,
            last,
            drops: 0,
            overflows: Cell::new(0),
        }))
    }

    /// Packets the kernel could not put in the full ring, so far.
    pub(super) fn overflows(&self) -> u64 {
        if let Ok((_, drops)) = self.ring.take_stats() {
            self.overflows.set(self.overflows.get() + u64::from(drops));
        }
        self.overflows.get()
    }

    /// The descriptor to watch in epoll.
    pub(super) fn ring(&self) -> &RxRing {
        &self.ring
    }

    /// Receives into `slots` from the ring (no system call); `open(addr, port)` says whether
    /// a port is open. Returns how many packets.
    pub(super) fn recv(&mut self, slots: &mut [Pkt], open: impl Fn(u8, u16) -> bool) -> usize {
        let mut n = 0;
        while n < slots.len() {
            let Some(frame) = self.ring.next_frame() else {
                break;
            };
            if frame.pkttype() != PACKET_HOST || frame.truncated() {
                self.drops += 1;
                continue;
            }
            let Some(d) = parse(frame.data(), frame.checksum_trusted()) else {
                self.drops += 1;
                continue;
            };
            let Some(&(_, addr)) = self.v4.iter().find(|(a, _)| *a == d.dst) else {
                self.drops += 1;
                continue;
            };
            if d.dst_port < self.first || d.dst_port > self.last || !open(addr, d.dst_port) {
                // The kernel answers for a closed port (its socket is gone).
                self.drops += 1;
                continue;
            }
            let payload = &frame.data()[d.payload.0..d.payload.1];
            let s = &mut slots[n];
            let Some(buf) = s.buf.get_mut(..payload.len()) else {
                self.drops += 1;
                continue;
            };
            buf.copy_from_slice(payload);
            s.len = payload.len();
            s.peer = SocketAddr::V4(d.src);
            s.local_port = d.dst_port;
            s.local_addr = addr;
            n += 1;
        }
        n
    }
}

/// What [`parse`] finds in a valid IPv4 UDP packet.
#[derive(Debug, PartialEq, Eq)]
struct Udp4 {
    src: SocketAddrV4,
    dst: Ipv4Addr,
    dst_port: u16,
    /// The payload's range in the packet.
    payload: (usize, usize),
}

fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// The ones'-complement sum of `b` (odd tail padded with zero), folded to 16 bits later.
fn sum(b: &[u8], mut acc: u64) -> u64 {
    let mut words = b.chunks_exact(2);
    for w in words.by_ref() {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Checks an IPv4 packet as the kernel's IPv4 and UDP receive paths would (header checksum,
/// lengths, no fragment, UDP; the UDP checksum unless `trusted` or zero) and finds its
/// addresses and payload.
fn parse(p: &[u8], trusted: bool) -> Option<Udp4> {
    if p.len() < 28 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0xf) * 4;
    let total = usize::from(be16(p, 2));
    if ihl < 20 || total > p.len() || total < ihl + 8 || p[9] != 17 {
        return None;
    }
    if be16(p, 6) & 0x3fff != 0 || fold(sum(&p[..ihl], 0)) != 0xffff {
        return None;
    }
    let u = &p[ihl..total];
    let udp_len = usize::from(be16(u, 4));
    if udp_len < 8 || udp_len > u.len() {
        return None;
    }
    if !trusted && be16(u, 6) != 0 {
        // Pseudo-header (addresses, protocol, UDP length), then header and payload.
        let acc = sum(&p[12..20], 17 + udp_len as u64);
        if fold(sum(&u[..udp_len], acc)) != 0xffff {
            return None;
        }
    }
    let ip = |i: usize| Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]);
    Some(Udp4 {
        src: SocketAddrV4::new(ip(12), be16(u, 0)),
        dst: ip(16),
        dst_port: be16(u, 2),
        payload: (ihl + 8, ihl + udp_len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 UDP packet with valid checksums.
    fn packet(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
        let udp_len = 8 + payload.len();
        let mut p = vec![0u8; 20 + udp_len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&src.ip().octets());
        p[16..20].copy_from_slice(&dst.ip().octets());
        let c = !fold(sum(&p[..20], 0));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p[20..22].copy_from_slice(&src.port().to_be_bytes());
        p[22..24].copy_from_slice(&dst.port().to_be_bytes());
        p[24..26].copy_from_slice(&(udp_len as u16).to_be_bytes());
        p[28..].copy_from_slice(payload);
        let acc = sum(&p[12..20], 17 + udp_len as u64);
        let c = !fold(sum(&p[20..], acc));
        p[26..28].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
        p
    }

    #[test]
    fn parse_checks_what_the_kernel_checks() {
        let src = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 4000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 20000);
        let mut p = packet(src, dst, b"hello rtp");
        p.extend_from_slice(&[0; 6]); // link-layer padding after the datagram
        let d = parse(&p, false).unwrap();
        assert_eq!(d.src, src);
        assert_eq!((d.dst, d.dst_port), (*dst.ip(), 20000));
        assert_eq!(&p[d.payload.0..d.payload.1], b"hello rtp");
        // A flipped payload bit: the UDP checksum catches it unless the kernel vouches.
        let mut bad = p.clone();
        bad[30] ^= 1;
        assert!(parse(&bad, false).is_none());
        assert!(parse(&bad, true).is_some());
        // A zero UDP checksum means none.
        let mut none = bad.clone();
        none[26..28].copy_from_slice(&[0, 0]);
        assert!(parse(&none, false).is_some());
        // IPv4 header checksum, fragments, protocol, lengths.
        let mut h = p.clone();
        h[8] = 63;
        assert!(parse(&h, true).is_none(), "header checksum");
        let mut frag = packet(src, dst, b"x");
        frag[6] = 0x20; // MF
        assert!(parse(&frag, true).is_none());
        let mut tcp = packet(src, dst, b"x");
        tcp[9] = 6;
        assert!(parse(&tcp, true).is_none());
        assert!(parse(&p[..30], true).is_none(), "cut short");
        assert!(parse(&p[..20], true).is_none());
    }

    #[test]
    fn filters_pass_the_kernels_checker() {
        // The kernel verifies a classic program when it is attached (jumps inside the
        // program, ending in a return), on any socket.
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for n in [1u8, 2, 31, 32] {
            let v4: Vec<Ipv4Addr> = (0..n).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
            ring_filter(&v4, 20000, 20099)
                .unwrap()
                .attach(std::os::fd::AsFd::as_fd(&s))
                .unwrap();
        }
        socket_filter()
            .attach(std::os::fd::AsFd::as_fd(&s))
            .unwrap();
    }
}
