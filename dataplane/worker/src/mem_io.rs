//! An in-memory backend for tests: packets go in and out through channels (capsule's
//! channel-backed `PacketRx`/`PacketTx`, rsipstack's channel transport).
//!
//! Like a DPDK queue with flow rules steering the worker's whole port range, `MemIo`
//! delivers every injected packet to the relay, whether its port is open or not (so the
//! relay's `UnknownPort` counting is visible). Opening a port can be made to fail, and the
//! transmit side can be limited to model a full TX ring.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender, TryRecvError};

use crate::io::{Burst, Packet, PacketIo, BUF_LEN};

/// A packet crossing the in-memory backend. `local_addr`/`local_port` is our media address
/// index and port (destination on receive, source on transmit); `peer` is the far end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemPacket {
    /// Our port.
    pub local_port: u16,
    /// Our media address (an index; 0 = the first).
    pub local_addr: u8,
    /// The far end.
    pub peer: SocketAddr,
    /// The UDP payload.
    pub data: Vec<u8>,
}

/// The test's side of a [`MemIo`]: inject packets, collect what the worker sent, and
/// control failures.
#[derive(Debug, Clone)]
pub struct MemPeer {
    /// Packets to deliver to the worker.
    pub inject: Sender<MemPacket>,
    /// Packets the worker sent.
    pub sent: Receiver<MemPacket>,
    ctl: Sender<Ctl>,
    opened: Receiver<(u16, bool)>,
}

#[derive(Debug)]
enum Ctl {
    FailOpen(u16),
    TxLimit(Option<usize>),
}

impl MemPeer {
    /// Makes opening `rtp_port` fail (applied before the worker's next command).
    pub fn fail_open(&self, rtp_port: u16) {
        let _ = self.ctl.send(Ctl::FailOpen(rtp_port));
    }
    /// Accept at most `n` packets per `tx_burst` (`None` = unlimited).
    pub fn limit_tx(&self, n: Option<usize>) {
        let _ = self.ctl.send(Ctl::TxLimit(n));
    }
    /// Port open (`true`) / close (`false`) notifications, in order (RTP ports, of any media
    /// address).
    pub fn port_changes(&self) -> Vec<(u16, bool)> {
        self.opened.try_iter().collect()
    }
}

/// The in-memory backend.
#[derive(Debug)]
pub struct MemIo {
    rx: Receiver<MemPacket>,
    tx: Sender<MemPacket>,
    ctl: Receiver<Ctl>,
    opened_tx: Sender<(u16, bool)>,
    open: BTreeSet<(u8, u16)>,
    fail_open: BTreeSet<u16>,
    tx_limit: Option<usize>,
}

impl MemIo {
    /// A backend and the test's handle on it.
    #[must_use]
    pub fn new() -> (Self, MemPeer) {
        let (inject, rx) = unbounded();
        let (tx, sent) = unbounded();
        let (ctl_tx, ctl) = unbounded();
        let (opened_tx, opened) = unbounded();
        (
            Self {
                rx,
                tx,
                ctl,
                opened_tx,
                open: BTreeSet::new(),
                fail_open: BTreeSet::new(),
                tx_limit: None,
            },
            MemPeer {
                inject,
                sent,
                ctl: ctl_tx,
                opened,
            },
        )
    }

    /// The RTP ports currently open (of any media address).
    #[must_use]
    pub fn open_ports(&self) -> Vec<u16> {
        self.open.iter().map(|&(_, p)| p).collect()
    }

    fn apply_ctl(&mut self) {
        while let Ok(c) = self.ctl.try_recv() {
            match c {
                Ctl::FailOpen(p) => {
                    self.fail_open.insert(p);
                }
                Ctl::TxLimit(n) => self.tx_limit = n,
            }
        }
    }
}

impl PacketIo for MemIo {
    type Buf = Box<[u8]>;

    fn new_buf(&self) -> Self::Buf {
        vec![0; BUF_LEN].into_boxed_slice()
    }

    fn open_port(&mut self, addr: u8, rtp_port: u16) -> io::Result<()> {
        self.apply_ctl();
        if self.fail_open.contains(&rtp_port) || !self.open.insert((addr, rtp_port)) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("port {rtp_port} in use"),
            ));
        }
        let _ = self.opened_tx.send((rtp_port, true));
        Ok(())
    }

    fn close_port(&mut self, addr: u8, rtp_port: u16) {
        if self.open.remove(&(addr, rtp_port)) {
            let _ = self.opened_tx.send((rtp_port, false));
        }
    }

    fn rx_burst(&mut self, rx: &mut Burst<Self::Buf>, wait: Option<Duration>) -> usize {
        self.apply_ctl();
        let mut n = 0;
        let cap = rx.capacity();
        let slots = rx.slots_mut();
        while n < cap {
            let p = match self.rx.try_recv() {
                Ok(p) => p,
                Err(TryRecvError::Empty) if n == 0 => match wait.map(|w| self.rx.recv_timeout(w)) {
                    Some(Ok(p)) => p,
                    _ => break,
                },
                Err(_) => break,
            };
            let s = &mut slots[n];
            let len = p.data.len().min(BUF_LEN);
            s.buf[..len].copy_from_slice(&p.data[..len]);
            s.len = len;
            s.peer = p.peer;
            s.local_port = p.local_port;
            s.local_addr = p.local_addr;
            n += 1;
        }
        rx.set_len(n);
        n
    }

    fn tx_burst(
        &mut self,
        tx: &mut Burst<Self::Buf>,
        refused: &mut dyn FnMut(&Packet<Self::Buf>),
    ) -> usize {
        self.apply_ctl();
        let limit = self.tx_limit.unwrap_or(usize::MAX);
        let mut sent = 0;
        for p in tx.packets() {
            if sent < limit {
                let _ = self.tx.send(MemPacket {
                    local_port: p.local_port,
                    local_addr: p.local_addr,
                    peer: p.peer,
                    data: p.payload().to_vec(),
                });
                sent += 1;
            } else {
                refused(p);
            }
        }
        sent
    }
}
