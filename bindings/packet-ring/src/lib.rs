//! A safe receive ring over an `AF_PACKET` socket (`SOCK_DGRAM`, IPv4, `TPACKET_V2`), and
//! classic BPF socket filters.
//!
//! [`RxRing`] maps the kernel's receive ring into the process: the kernel copies every IPv4
//! packet its [`Filter`] accepts into the next free frame and marks it ready; user space reads
//! frames in order ([`RxRing::next_frame`]) without a system call, and hands each back when done
//! (dropping the [`Frame`]). `poll`/`epoll` on [`RxRing`]'s descriptor reports it readable when
//! a frame is ready. `TPACKET_V2` (a status word per frame), not `TPACKET_V3` (blocks handed
//! over when full or after a timeout of at least a millisecond): V3 would hold a lone packet
//! back for the block timeout, too long for media.
//!
//! The socket is `SOCK_DGRAM`: frames start at the IPv4 header (no link-layer header,
//! whatever the device), and the filter sees the same bytes. Outgoing packets are not
//! captured (`PACKET_IGNORE_OUTGOING`).
//!
//! Opening an `AF_PACKET` socket needs `CAP_NET_RAW`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// The opcode (`BPF_LD | BPF_H | BPF_ABS`, …).
    pub code: u16,
    /// Relative jump when the condition holds.
    pub jt: u8,
    /// Relative jump when it does not.
    pub jf: u8,
    /// The constant.
    pub k: u32,
}

/// Classic BPF opcodes and the ancillary offsets used by the filters built on this crate.
pub mod bpf {
    /// Load.
    pub const LD: u16 = 0x00;
    /// Load into X.
    pub const LDX: u16 = 0x01;
    /// ALU operation.
    pub const ALU: u16 = 0x04;
    /// Jump.
    pub const JMP: u16 = 0x05;
    /// Return.
    pub const RET: u16 = 0x06;
    /// Word (32 bits).
    pub const W: u16 = 0x00;
    /// Half word (16 bits).
    pub const H: u16 = 0x08;
    /// Byte.
    pub const B: u16 = 0x10;
    /// Absolute offset.
    pub const ABS: u16 = 0x20;
    /// Offset relative to X.
    pub const IND: u16 = 0x40;
    /// `4 * (pkt[k] & 0xf)` (an IPv4 header length), into X.
    pub const MSH: u16 = 0xa0;
    /// Bitwise and.
    pub const AND: u16 = 0x50;
    /// Jump if equal.
    pub const JEQ: u16 = 0x10;
    /// Jump if greater.
    pub const JGT: u16 = 0x20;
    /// Jump if greater or equal.
    pub const JGE: u16 = 0x30;
    /// Jump if any bit of k is set.
    pub const JSET: u16 = 0x40;
    /// Constant operand.
    pub const K: u16 = 0x00;
    /// Operand from A (return).
    pub const A: u16 = 0x10;
    /// Offset of the network header in a socket filter (`SKF_NET_OFF`), as a `k`.
    pub const NET_OFF: u32 = (-0x10_0000i32) as u32;
}

impl Insn {
    /// A non-jump instruction.
    #[must_use]
    pub const fn stmt(code: u16, k: u32) -> Self {
        Self {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    /// A conditional jump (`jt`/`jf`: instructions to skip).
    #[must_use]
    pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Self {
        Self { code, jt, jf, k }
    }
}

/// A checked classic BPF program (the kernel verifies it again when attached).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter(Vec<Insn>);

impl Filter {
    /// A program of `insns` (1..=4096 instructions).
    ///
    /// # Errors
    /// If the program is empty or too long.
    pub fn new(insns: &[Insn]) -> io::Result<Self> {
        if insns.is_empty() || insns.len() > 4096 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("BPF program of {} instructions", insns.len()),
            ));
        }
        Ok(Self(insns.to_vec()))
    }

    /// A filter that accepts nothing.
    #[must_use]
    pub fn drop_all() -> Self {
        Self(vec![Insn::stmt(bpf::RET | bpf::K, 0)])
    }

    /// A filter that accepts every packet whole (as if none were attached).
    #[must_use]
    pub fn accept_all() -> Self {
        Self(vec![Insn::stmt(bpf::RET | bpf::K, u32::MAX)])
    }

    /// Attaches this filter to a socket (`SO_ATTACH_FILTER`), replacing any before it.
    ///
    /// # Errors
    /// The kernel's (e.g. `EINVAL` for a program it rejects).
    pub fn attach(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut insns: Vec<libc::sock_filter> = self
            .0
            .iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        let prog = libc::sock_fprog {
            len: insns.len() as u16,
            filter: insns.as_mut_ptr(),
        };
        // SAFETY: `prog` points at `insns`, alive for the call; the kernel copies the
        // program and reads exactly `size_of::<sock_fprog>()` bytes of `prog`.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                std::ptr::from_ref(&prog).cast(),
                size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// Where a frame's packet starts (`TPACKET_ALIGN(TPACKET2_HDRLEN + 16)` for `SOCK_DGRAM`
/// without reserve): the longest packet a frame of `size` bytes holds whole is
/// `size - NET_OFFSET`.
pub const NET_OFFSET: usize = 80;

/// `PACKET_HOST`: a packet addressed to this host.
pub const PACKET_HOST: u8 = 0;

/// An `AF_PACKET` receive ring (`TPACKET_V2`) of IPv4 packets.
#[derive(Debug)]
pub struct RxRing {
    fd: OwnedFd,
    map: NonNull<u8>,
    frames: usize,
    frame_size: usize,
    head: usize,
}

/// The offset of `sll_pkttype` in a frame (after the 32-byte aligned `tpacket2_hdr`, at
/// offset 10 of `sockaddr_ll`).
const PKTTYPE_OFF: usize = 32 + 10;

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&v).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

impl RxRing {
    /// Opens a ring of `frames` frames of `frame_size` bytes (a power of two from 256 to the
    /// page size; `frames` is rounded up to fill whole pages) that receives the IPv4 packets
    /// to this host `filter` accepts, on every interface. A packet longer than
    /// `frame_size - NET_OFFSET` is cut short ([`Frame::truncated`]). Non-blocking,
    /// close-on-exec.
    ///
    /// # Errors
    /// A bad `frame_size`; `EPERM` without `CAP_NET_RAW`; any other refusal of the kernel.
    pub fn open(frames: usize, frame_size: usize, filter: &Filter) -> io::Result<Self> {
        const PAGE: usize = 4096;
        if !frame_size.is_power_of_two() || !(256..=PAGE).contains(&frame_size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("ring frame size {frame_size}: a power of two from 256 to {PAGE}"),
            ));
        }
        let per_block = PAGE / frame_size;
        let frames = frames.max(1).div_ceil(per_block) * per_block;
        // SAFETY: a plain socket(2) call; the descriptor is owned right below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0, // no protocol yet: nothing is queued before the filter and ring are set
            )
        };
        check(raw)?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_int(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            libc::tpacket_versions::TPACKET_V2 as libc::c_int,
        )?;
        // Best effort (Linux >= 4.20): a packet we send is not captured back.
        let _ = set_int(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1);
        filter.attach(fd.as_fd())?;
        let req = libc::tpacket_req {
            tp_block_size: PAGE as u32,
            tp_block_nr: (frames / per_block) as u32,
            tp_frame_size: frame_size as u32,
            tp_frame_nr: frames as u32,
        };
        // SAFETY: passes a pointer to a live tpacket_req and its size.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_RX_RING,
                std::ptr::from_ref(&req).cast(),
                size_of::<libc::tpacket_req>() as libc::socklen_t,
            )
        })?;
        let len = frames * frame_size;
        // SAFETY: maps the ring the kernel just allocated for this socket (length as
        // requested); the mapping lives until `Drop` unmaps it.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = Self {
            fd,
            map: NonNull::new(map.cast()).ok_or_else(io::Error::last_os_error)?,
            frames,
            frame_size,
            head: 0,
        };
        // SAFETY: an all-zero sockaddr_ll is valid; the fields below fill it.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        sll.sll_ifindex = 0; // every interface
                             // SAFETY: passes a pointer to a live sockaddr_ll and its size.
        check(unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                std::ptr::from_ref(&sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(ring)
    }

    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: frame `i < frames` lies inside the mapping, is 16-byte aligned (frames are
        // `frame_size` (a power of two >= 256) apart from a page-aligned start), and starts
        // with `tp_status`, a u32 the kernel and we hand over with atomic accesses.
        unsafe {
            &*self
                .map
                .as_ptr()
                .add(i * self.frame_size)
                .cast::<AtomicU32>()
        }
    }

    /// The next ready frame, if any (no system call). Drop it to hand it back.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        let st = self.status(self.head).load(Ordering::Acquire);
        if st & libc::TP_STATUS_USER == 0 {
            return None;
        }
        let i = self.head;
        self.head = (self.head + 1) % self.frames;
        // SAFETY: the frame is ours until its status goes back to TP_STATUS_KERNEL (the
        // Acquire above orders our reads after the kernel's writes); its header is a
        // tpacket2_hdr at the frame's start, in the mapping.
        let base = unsafe { self.map.as_ptr().add(i * self.frame_size) };
        // SAFETY: as above; an aligned tpacket2_hdr inside the frame.
        let hdr = unsafe { &*base.cast::<libc::tpacket2_hdr>() };
        let (net, snap) = (usize::from(hdr.tp_net), hdr.tp_snaplen as usize);
        let (len, net, snap) = if net + snap <= self.frame_size {
            (hdr.tp_len as usize, net, snap)
        } else {
            (0, 0, 0) // not what the kernel writes; read as an empty packet
        };
        // SAFETY: `PKTTYPE_OFF` lies in the frame's sockaddr_ll.
        let pkttype = unsafe { *base.add(PKTTYPE_OFF) };
        // SAFETY: bytes `net..net + snap` lie inside this frame (checked above), which stays
        // ours, unchanged, for the frame's lifetime (borrowing the ring).
        let data = unsafe { std::slice::from_raw_parts(base.add(net), snap) };
        Some(Frame {
            data,
            len,
            status: st,
            pkttype,
            release: self.status(i),
        })
    }

    /// `(packets, drops)` since the last call (`PACKET_STATISTICS`, which resets them).
    ///
    /// # Errors
    /// The kernel's.
    pub fn take_stats(&self) -> io::Result<(u32, u32)> {
        let mut st = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: passes a pointer to a live tpacket_stats and its size.
        check(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                std::ptr::from_mut(&mut st).cast(),
                &mut len,
            )
        })?;
        Ok((st.tp_packets, st.tp_drops))
    }
}

impl AsFd for RxRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `open` made; no Frame outlives `self`.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.frames * self.frame_size);
        }
    }
}

/// One received packet, in the ring until dropped.
#[derive(Debug)]
pub struct Frame<'a> {
    data: &'a [u8],
    len: usize,
    status: u32,
    pkttype: u8,
    release: &'a AtomicU32,
}

impl Frame<'_> {
    /// The packet from its IPv4 header, possibly cut short (see [`Self::truncated`]).
    #[must_use]
    pub fn data(&self) -> &[u8] {
        self.data
    }

    /// Whether the packet was longer than the frame holds.
    #[must_use]
    pub fn truncated(&self) -> bool {
        self.data.len() < self.len
    }

    /// `sll_pkttype` ([`PACKET_HOST`]: addressed to this host).
    #[must_use]
    pub fn pkttype(&self) -> u8 {
        self.pkttype
    }

    /// Whether the transport checksum need not be verified: the device or kernel verified
    /// it (`TP_STATUS_CSUM_VALID`) or it was never computed because the packet did not leave
    /// the host (`TP_STATUS_CSUMNOTREADY`, e.g. on loopback and veth).
    #[must_use]
    pub fn checksum_trusted(&self) -> bool {
        self.status & (libc::TP_STATUS_CSUM_VALID | libc::TP_STATUS_CSUMNOTREADY) != 0
    }
}

impl Drop for Frame<'_> {
    fn drop(&mut self) {
        self.release
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked() {
        assert!(Filter::new(&[]).is_err());
        assert_eq!(Filter::drop_all().0.len(), 1);
        let f = Filter::new(&[Insn::stmt(bpf::RET | bpf::K, 0xffff)]).unwrap();
        assert_eq!(f.0[0].k, 0xffff);
    }

    #[test]
    fn drop_all_silences_a_udp_socket() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        Filter::drop_all().attach(rx.as_fd()).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut b = [0u8; 4];
        assert!(rx.recv_from(&mut b).is_err());
    }

    /// Needs CAP_NET_RAW (tests run as root here); without it, the error is EPERM.
    #[test]
    fn ring_receives_what_the_filter_accepts() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rx.local_addr().unwrap().port();
        // IPv4 UDP to `port` only.
        let f = Filter::new(&[
            Insn::stmt(bpf::LD | bpf::B | bpf::ABS, 9),
            Insn::jump(bpf::JMP | bpf::JEQ | bpf::K, 17, 0, 4),
            Insn::stmt(bpf::LDX | bpf::B | bpf::MSH, 0),
            Insn::stmt(bpf::LD | bpf::H | bpf::IND, 2),
            Insn::jump(bpf::JMP | bpf::JEQ | bpf::K, u32::from(port), 0, 1),
            Insn::stmt(bpf::RET | bpf::K, 0xffff),
            Insn::stmt(bpf::RET | bpf::K, 0),
        ])
        .unwrap();
        assert!(RxRing::open(8, 1000, &f).is_err(), "not a power of two");
        let mut ring = match RxRing::open(8, 512, &f) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                panic!("AF_PACKET needs CAP_NET_RAW: {e}")
            }
            r => r.unwrap(),
        };
        assert!(ring.next_frame().is_none());
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for k in 0..20u8 {
            tx.send_to(&[k; 5], ("127.0.0.1", port)).unwrap();
        }
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < 20 && std::time::Instant::now() < end {
            // 8 frames: read as we go (sends are synchronous on loopback, so some were
            // dropped while the ring was full; what arrives arrives in order).
            match ring.next_frame() {
                Some(f) => {
                    assert_eq!(f.pkttype(), PACKET_HOST);
                    assert!(!f.truncated());
                    assert_eq!(f.data()[0] >> 4, 4);
                    got.push(f.data()[28]);
                }
                None => break,
            }
        }
        assert_eq!(
            got,
            (0..8).collect::<Vec<u8>>(),
            "ring of 8 frames, in order"
        );
        let (packets, drops) = ring.take_stats().unwrap();
        assert_eq!((packets, drops), (20, 12));
        tx.send_to(&[99; 5], ("127.0.0.1", port)).unwrap();
        assert_eq!(ring.next_frame().map(|f| f.data()[28]), Some(99));
    }
}
