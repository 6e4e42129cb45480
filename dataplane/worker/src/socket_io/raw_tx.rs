//! The raw IPv4 sender of the socket backend: one `IPPROTO_RAW` socket (send-only, header
//! included) through which a whole burst leaves in one `sendmmsg`, each message carrying its
//! own IPv4 and UDP header (see the parent module).

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    sendmmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessage, MsgFlags, MultiHeaders,
    SockFlag, SockProtocol, SockType, SockaddrIn,
};

use super::Pkt;
use crate::io::MAX_BURST;

/// One raw IPv4 socket (`IPPROTO_RAW`: send-only, header included) and its scratch.
pub(super) struct RawTx {
    fd: OwnedFd,
    hdrs: MultiHeaders<SockaddrIn>,
    /// IPv4 + UDP header of each message of a burst.
    heads: Box<[[u8; 28]; MAX_BURST]>,
}

impl RawTx {
    pub(super) fn open() -> Option<Self> {
        Self::try_open().ok()
    }

    /// [`Self::open`], saying why not (`EPERM` without `CAP_NET_RAW`).
    pub(super) fn try_open() -> std::io::Result<Self> {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::Raw,
        )?;
        // Bursts of up to 64 packets from many legs share this one buffer.
        let _ = setsockopt(&fd, sockopt::SndBuf, &(4 << 20));
        Ok(Self {
            fd,
            hdrs: MultiHeaders::preallocate(MAX_BURST, None),
            heads: Box::new([[0; 28]; MAX_BURST]),
        })
    }

    /// Whether this packet can leave through the raw sender (IPv4 both ends).
    pub(super) fn takes(addresses: &[IpAddr], p: &Pkt) -> bool {
        matches!(
            (addresses.get(usize::from(p.local_addr)), p.peer),
            (Some(IpAddr::V4(_)), SocketAddr::V4(_))
        )
    }

    /// Sends every packet of `order` it takes in one `sendmmsg` (more if the kernel takes
    /// fewer at once); refuses what the kernel will not take. Returns how many were sent.
    pub(super) fn send(
        &mut self,
        pkts: &[Pkt],
        order: &[(u32, u8)],
        addresses: &[IpAddr],
        refused: &mut dyn FnMut(&Pkt),
    ) -> usize {
        let mut idx = [0u8; MAX_BURST];
        let mut n = 0;
        for &(_, i) in order {
            let p = &pkts[usize::from(i)];
            let (Some(IpAddr::V4(src)), SocketAddr::V4(dst)) =
                (addresses.get(usize::from(p.local_addr)), p.peer)
            else {
                continue;
            };
            write_headers(&mut self.heads[n], *src, p.local_port, dst, p.payload());
            idx[n] = i;
            n += 1;
        }
        let (mut done, mut sent) = (0, 0);
        while done < n {
            let k = n - done;
            let iovs: [[IoSlice<'_>; 2]; MAX_BURST] = std::array::from_fn(|j| {
                if j < k {
                    [
                        IoSlice::new(&self.heads[done + j]),
                        IoSlice::new(pkts[usize::from(idx[done + j])].payload()),
                    ]
                } else {
                    [IoSlice::new(&[]), IoSlice::new(&[])]
                }
            });
            let addrs: [Option<SockaddrIn>; MAX_BURST] = std::array::from_fn(|j| {
                (j < k).then(|| match pkts[usize::from(idx[done + j])].peer {
                    SocketAddr::V4(a) => SockaddrIn::from(a),
                    SocketAddr::V6(_) => SockaddrIn::new(0, 0, 0, 0, 0),
                })
            });
            let cmsgs: [ControlMessage<'_>; 0] = [];
            match sendmmsg(
                self.fd.as_raw_fd(),
                &mut self.hdrs,
                iovs.iter().take(k),
                &addrs[..k],
                cmsgs,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(res) => match res.count() {
                    0 => {
                        refused(&pkts[usize::from(idx[done])]);
                        done += 1;
                    }
                    c => {
                        done += c;
                        sent += c;
                    }
                },
                Err(Errno::EINTR) => {}
                Err(_) => {
                    refused(&pkts[usize::from(idx[done])]);
                    done += 1;
                }
            }
        }
        sent
    }
}

/// The IPv4 header (checksum, length and id left to the kernel) and UDP header (checksum
/// computed) of one datagram from `src:sport` to `dst` carrying `payload`.
fn write_headers(
    h: &mut [u8; 28],
    src: std::net::Ipv4Addr,
    sport: u16,
    dst: std::net::SocketAddrV4,
    payload: &[u8],
) {
    let udp_len = (8 + payload.len()) as u16;
    h[0] = 0x45;
    h[1] = 0xb8; // DSCP EF, as RTP is usually marked
    h[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
    h[4..8].copy_from_slice(&[0, 0, 0x40, 0]); // id by the kernel, DF
    h[8] = 64;
    h[9] = 17;
    h[10..12].copy_from_slice(&[0, 0]);
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.ip().octets());
    h[20..22].copy_from_slice(&sport.to_be_bytes());
    h[22..24].copy_from_slice(&dst.port().to_be_bytes());
    h[24..26].copy_from_slice(&udp_len.to_be_bytes());
    h[26..28].copy_from_slice(&[0, 0]);
    // RFC 768 checksum: pseudo-header, UDP header, payload (odd tail padded with zero).
    let mut sum: u64 = 0;
    for w in h[12..20].chunks_exact(2) {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    sum += 17 + u64::from(udp_len);
    for w in h[20..28].chunks_exact(2) {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    let mut words = payload.chunks_exact(2);
    for w in words.by_ref() {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    h[26..28].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use wire::udp::UdpPacket;

    use super::*;

    #[test]
    fn headers_carry_a_valid_udp_checksum() {
        let src = Ipv4Addr::new(198, 18, 0, 1);
        let dst = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 20000);
        for len in [0usize, 1, 171, 172] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut h = [0u8; 28];
            write_headers(&mut h, src, 10000, dst, &payload);
            let mut dgram = h[20..].to_vec();
            dgram.extend_from_slice(&payload);
            let udp = UdpPacket::new_checked(&dgram[..]).unwrap();
            assert_eq!((udp.src_port(), udp.dst_port()), (10000, 20000));
            assert_eq!(usize::from(udp.len()), 8 + len);
            assert!(udp.verify_checksum(src, *dst.ip()), "len {len}");
            assert_eq!(&h[12..16], &src.octets());
            assert_eq!(&h[16..20], &dst.ip().octets());
        }
    }
}
