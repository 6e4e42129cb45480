//! Receiving from and sending on the per-port UDP sockets (`recvmmsg`, `sendto`,
//! `sendmmsg`).

use std::borrow::Borrow;
use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, sendmmsg, ControlMessage, MsgFlags, SockaddrStorage};

use super::{to_std, unkey, Pkt, SocketIo};
use crate::io::{BUF_LEN, MAX_BURST};

impl SocketIo {
    /// Receives into `slots` from one socket; returns how many packets, and whether the
    /// socket may hold more.
    pub(super) fn recv_from(&mut self, k: u32, slots: &mut [Pkt]) -> (usize, bool) {
        let (addr, port) = unkey(k);
        let Some(i) = self.slot(addr, port) else {
            return (0, false);
        };
        let Some(sock) = self.sockets[i].as_ref() else {
            return (0, false);
        };
        let fd = sock.as_raw_fd();
        let want = slots.len().min(MAX_BURST);
        let mut meta = [(0usize, None::<SocketAddr>, false); MAX_BURST];
        let got = {
            let mut it = slots.iter_mut();
            let mut iovs: [[IoSliceMut<'_>; 1]; MAX_BURST] = std::array::from_fn(|_| {
                [IoSliceMut::new(
                    it.next().map_or(&mut [][..], |p| &mut p.buf[..]),
                )]
            });
            match recvmmsg(
                fd,
                &mut self.rx_hdrs,
                iovs.iter_mut().take(want),
                MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                Ok(res) => {
                    let mut k = 0;
                    for m in res {
                        meta[k] = (
                            m.bytes,
                            m.address.as_ref().and_then(to_std),
                            m.flags.contains(MsgFlags::MSG_TRUNC),
                        );
                        k += 1;
                    }
                    k
                }
                Err(_) => 0,
            }
        };
        // Compact: skip truncated datagrams and ones without a usable source.
        let mut n = 0;
        for (k, &(len, src, trunc)) in meta.iter().enumerate().take(got) {
            let Some(src) = src else { continue };
            if trunc || len > BUF_LEN {
                continue;
            }
            if n != k {
                slots.swap(n, k);
            }
            let s = &mut slots[n];
            s.len = len;
            s.peer = src;
            s.local_port = port;
            s.local_addr = addr;
            n += 1;
        }
        (n, got == want)
    }

    /// Sends a run of packets that share a source port. Returns how many were sent;
    /// refused ones go to `refused`.
    pub(super) fn send_run<P: Borrow<Pkt>>(
        &mut self,
        run: &[P],
        refused: &mut dyn FnMut(&Pkt),
    ) -> usize {
        let (addr, port) = (run[0].borrow().local_addr, run[0].borrow().local_port);
        let Some(sock) = self.slot(addr, port).and_then(|i| self.sockets[i].as_ref()) else {
            run.iter().for_each(|p| refused(p.borrow()));
            return 0;
        };
        if let [one] = run {
            let one = one.borrow();
            // The common case (one packet per leg per burst): a plain sendto, without
            // building sendmmsg's header arrays.
            return loop {
                match sock.send_to(one.payload(), one.peer) {
                    Ok(_) => break 1,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        refused(one);
                        break 0;
                    }
                }
            };
        }
        let fd = sock.as_raw_fd();
        let mut done = 0;
        let mut sent_total = 0;
        while done < run.len() {
            let rest = &run[done..];
            let k = rest.len().min(MAX_BURST);
            let mut it = rest.iter();
            let iovs: [[IoSlice<'_>; 1]; MAX_BURST] = std::array::from_fn(|_| {
                [IoSlice::new(
                    it.next().map_or(&[][..], |p| p.borrow().payload()),
                )]
            });
            let addrs: [Option<SockaddrStorage>; MAX_BURST] = std::array::from_fn(|i| {
                rest.get(i).map(|p| SockaddrStorage::from(p.borrow().peer))
            });
            let cmsgs: [ControlMessage<'_>; 0] = [];
            match sendmmsg(
                fd,
                &mut self.tx_hdrs,
                iovs.iter().take(k),
                &addrs[..k],
                cmsgs,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(res) => {
                    let sent = res.count();
                    if sent == 0 {
                        refused(rest[0].borrow());
                        done += 1;
                    } else {
                        done += sent;
                        sent_total += sent;
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => {
                    // The first message failed (full buffer, unreachable address, …):
                    // refuse it and carry on with the rest.
                    refused(rest[0].borrow());
                    done += 1;
                }
            }
        }
        sent_total
    }
}
