//! The per-core loop, in the shape of DPDK's `l2fwd_main_loop`:
//!
//! ```text
//! loop {
//!     n = io.rx_burst(rx, wait)                  // fixed burst array
//!     now = clock()                              // once per burst
//!     for pkt in rx[..n] { relay.handle_datagram } // Forward → swap buffer into tx
//!     up to K commands (try_recv)                // AddLeg opens ports first
//!     relay.handle_timeout(now)
//!     relay.poll_transmit → tx                   // announcements
//!     io.tx_burst(tx)                            // refused → TxFull
//!     relay.poll_event → event queue (try_send)  // full → counted, dropped
//!     shutdown flag?
//! }
//! ```
//! Nothing here allocates, locks or logs per packet. When a pass moves no packet, the next
//! `rx_burst` may wait (socket backend: in epoll) until `min(relay.poll_timeout(), 2 ms)`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use dp_api::{Command, CommandError, Event, LegId, RetiredLegs};
use relay::{Datagram, Relay, Verdict};

use crate::io::{Burst, PacketIo};
use crate::stats::{SharedStats, PUBLISH_PERIOD};

/// The longest an idle worker sleeps before looking at its command queue again.
pub const MAX_IDLE_WAIT: Duration = Duration::from_millis(2);

/// Loop counters, owned by the worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Passes run.
    pub passes: u64,
    /// Passes that asked the backend to wait.
    pub idle_waits: u64,
    /// Commands handled.
    pub commands: u64,
    /// Events handed to the event queue.
    pub events_sent: u64,
    /// Events dropped because the event queue was full (or gone).
    pub events_dropped: u64,
    /// Packets the backend refused to send.
    pub tx_refused: u64,
    /// Receive bursts that brought at least one packet.
    pub rx_bursts: u64,
    /// Packets those bursts brought (average fill = `rx_burst_packets / rx_bursts`).
    pub rx_burst_packets: u64,
    /// Receive bursts that filled the whole burst array (the worker is falling behind).
    pub rx_full_bursts: u64,
    /// Transmit bursts handed to the backend.
    pub tx_bursts: u64,
    /// Packets in those bursts (average fill = `tx_burst_packets / tx_bursts`).
    pub tx_burst_packets: u64,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Packets received.
    pub rx: usize,
    /// Packets sent.
    pub tx: usize,
    /// Commands handled.
    pub commands: usize,
}

/// One worker: a relay, its backend, its queues. Built and run on the worker's own thread.
pub struct Worker<Io: PacketIo> {
    index: usize,
    io: Io,
    relay: Relay,
    commands: Receiver<Command>,
    events: Sender<Event>,
    rx: Burst<Io::Buf>,
    tx: Burst<Io::Buf>,
    commands_per_pass: usize,
    shutdown: Arc<AtomicBool>,
    stopping: bool,
    stats: LoopStats,
    shared: Option<Arc<SharedStats>>,
    last_publish: Option<Instant>,
    /// Where the worker marks the legs it lets go of, so the port plan may hand their ports
    /// out again.
    retired: Option<Arc<RetiredLegs>>,
}

impl<Io: PacketIo> std::fmt::Debug for Worker<Io> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<Io: PacketIo> Worker<Io> {
    /// Assembles a worker. `burst` is clamped to `1..=MAX_BURST`; the TX burst has the same
    /// size, and is flushed early when announcements fill it.
    pub fn new(
        index: usize,
        io: Io,
        relay: Relay,
        commands: Receiver<Command>,
        events: Sender<Event>,
        burst: usize,
        shutdown: Arc<AtomicBool>,
    ) -> Self {
        let burst = burst.clamp(1, crate::io::MAX_BURST);
        let rx = Burst::new(burst, || io.new_buf());
        let tx = Burst::new(burst, || io.new_buf());
        Self {
            index,
            io,
            relay,
            commands,
            events,
            rx,
            tx,
            commands_per_pass: 32,
            shutdown,
            stopping: false,
            stats: LoopStats::default(),
            shared: None,
            last_publish: None,
            retired: None,
        }
    }

    /// Marks every leg the worker removes, or fails to add, as retired in `retired` (the
    /// port plan's, [`dp_api::PortPlan::retired`]): only then is its port handed out again.
    #[must_use]
    pub fn with_retired(mut self, retired: Arc<RetiredLegs>) -> Self {
        self.retired = Some(retired);
        self
    }

    /// Publishes the counters into `shared` every [`PUBLISH_PERIOD`] (and at shutdown).
    #[must_use]
    pub fn with_shared_stats(mut self, shared: Arc<SharedStats>) -> Self {
        self.shared = Some(shared);
        self
    }

    fn publish(&mut self, now: Option<Instant>) {
        let Some(shared) = &self.shared else { return };
        if let (Some(now), Some(last)) = (now, self.last_publish) {
            if now.saturating_duration_since(last) < PUBLISH_PERIOD {
                return;
            }
        }
        shared.publish(&self.relay.stats(), &self.stats, &self.io.io_stats());
        self.last_publish = now.or(self.last_publish);
    }

    /// The relay (for tests and stats).
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// The backend.
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// The loop counters.
    pub fn stats(&self) -> LoopStats {
        self.stats
    }

    /// Whether the worker has been told to stop (Shutdown command, flag, or the command
    /// queue's senders are gone).
    pub fn stopping(&self) -> bool {
        self.stopping || self.shutdown.load(Ordering::Relaxed)
    }

    /// Runs passes on the backend's clock ([`PacketIo::now`]) until told to stop, then closes
    /// every open port.
    pub fn run(&mut self) {
        let mut idle = false;
        while !self.stopping() {
            let wait = idle.then(|| self.idle_wait(self.io.now()));
            let p = self.pass_with(wait, Io::now);
            idle = p.rx == 0 && p.tx == 0 && p.commands == 0;
        }
        self.close_all();
        self.publish(None);
    }

    fn idle_wait(&mut self, now: Instant) -> Duration {
        self.stats.idle_waits += 1;
        match self.relay.poll_timeout() {
            Some(t) => t.saturating_duration_since(now).min(MAX_IDLE_WAIT),
            None => MAX_IDLE_WAIT,
        }
    }

    /// Closes every port the relay still holds (on shutdown).
    pub fn close_all(&mut self) {
        let ports: Vec<(u8, u16)> = self
            .relay
            .table()
            .iter()
            .map(|l| (l.id.addr(), l.id.port()))
            .collect();
        for (a, p) in ports {
            self.io.close_port(a, p);
        }
    }

    /// One pass of the loop. `clock` is read once, after receiving. Tests pass a fake
    /// clock and `wait = None`.
    pub fn pass(&mut self, wait: Option<Duration>, clock: impl FnOnce() -> Instant) -> Pass {
        self.pass_with(wait, |_| clock())
    }

    /// [`Self::pass`] with a clock that may read the backend's (e.g. [`PacketIo::now`]).
    pub fn pass_with(
        &mut self,
        wait: Option<Duration>,
        clock: impl FnOnce(&Io) -> Instant,
    ) -> Pass {
        self.stats.passes += 1;
        let (n, lane) = self.io.rx_burst_lane(&mut self.rx, wait, &mut self.relay);
        let now = clock(&self.io);
        let received = n + lane.taken;
        if received > 0 {
            self.stats.rx_bursts += 1;
            self.stats.rx_burst_packets += received as u64;
            self.stats.rx_full_bursts += u64::from(received >= self.rx.capacity());
        }
        if lane.taken > 0 {
            self.stats.tx_bursts += 1;
            self.stats.tx_burst_packets += lane.taken as u64;
            self.stats.tx_refused += lane.refused as u64;
        }
        let mut out = Pass {
            rx: received,
            tx: lane.sent,
            ..Pass::default()
        };

        // Packets: verdicts in place, forwards swap their buffer into the TX burst. The
        // whole buffer goes down, so SRTP legs can transcrypt in place (the length changes
        // by the SRTP trailer; every backend leaves `relay::TRAILER_ROOM` after a payload).
        for i in 0..n {
            let pkt = self.rx.slot_mut(i);
            let mut d = Datagram::new(pkt.buf.as_mut(), pkt.len);
            let v =
                self.relay
                    .handle_datagram(now, pkt.peer, pkt.local_addr, pkt.local_port, &mut d);
            let (len, rewritten) = (d.len, d.payload_rewritten);
            if rewritten {
                self.io.payload_rewritten(&mut pkt.buf);
            }
            if let Verdict::Forward {
                from_addr,
                from_port,
                to,
            } = v
            {
                if self.tx.is_full() {
                    out.tx += self.flush();
                }
                let pkt = self.rx.slot_mut(i);
                if let Some(slot) = self.tx.next_free() {
                    std::mem::swap(&mut slot.buf, &mut pkt.buf);
                    slot.len = len;
                    slot.peer = to;
                    slot.local_port = from_port;
                    slot.local_addr = from_addr;
                    self.tx.commit();
                }
            }
        }
        self.rx.clear();

        // Housekeeping.
        for _ in 0..self.commands_per_pass {
            match self.commands.try_recv() {
                Ok(cmd) => {
                    out.commands += 1;
                    self.handle_command(now, cmd);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.stopping = true;
                    break;
                }
            }
        }
        self.relay.handle_timeout(now);
        // Announcements: only when one may be due, so backends that refill TX buffers
        // (DPDK) do not do so on every pass.
        let due = self.relay.poll_timeout().is_some_and(|t| t <= now);
        if due {
            loop {
                if self.tx.is_full() {
                    out.tx += self.flush();
                }
                let Some(slot) = self.tx.next_free() else {
                    break;
                };
                if !self.io.prepare_tx(&mut slot.buf) {
                    break;
                }
                match self.relay.poll_transmit(now, slot.buf.as_mut()) {
                    Some(t) => {
                        slot.len = t.len;
                        slot.peer = t.to;
                        slot.local_port = t.from_port;
                        slot.local_addr = t.from_addr;
                        self.tx.commit();
                    }
                    None => break,
                }
            }
        }
        out.tx += self.flush();
        self.drain_events();
        self.publish(Some(now));
        out
    }

    /// Sends the TX burst; refused packets are counted as `TxFull` by the relay.
    fn flush(&mut self) -> usize {
        if self.tx.is_empty() {
            return 0;
        }
        self.stats.tx_bursts += 1;
        self.stats.tx_burst_packets += self.tx.len() as u64;
        let relay = &mut self.relay;
        let stats = &mut self.stats;
        let sent = self.io.tx_burst(&mut self.tx, &mut |p| {
            stats.tx_refused += 1;
            relay.handle_tx_refused_at(p.local_addr, p.local_port, p.len);
        });
        self.tx.clear();
        sent
    }

    fn drain_events(&mut self) {
        while let Some(ev) = self.relay.poll_event() {
            match self.events.try_send(ev) {
                Ok(()) => self.stats.events_sent += 1,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.stats.events_dropped += 1
                }
            }
        }
    }

    /// Carries out a command: the worker opens/closes ports around the relay's own handling,
    /// and retires a leg once it is out of the table with its port closed, or was never let
    /// in.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        self.stats.commands += 1;
        let mut removed = None;
        match &cmd {
            Command::AddLeg(spec) => {
                let refused = match self.relay.check_add(spec) {
                    Err(e) => Some(e),
                    Ok(()) => self
                        .io
                        .open_port(spec.id.addr(), spec.id.port())
                        .err()
                        .map(|e| CommandError::Io(e.to_string())),
                };
                if let Some(e) = refused {
                    self.relay.report_failure(Some(spec.id), e);
                    // Unless this was a second AddLeg of a live leg, the leg is not here.
                    if self.relay.table().find(spec.id).is_none() {
                        self.retire(spec.id);
                    }
                    return;
                }
            }
            Command::RemoveLeg { leg } if self.relay.table().find(*leg).is_some() => {
                self.io.close_port(leg.addr(), leg.port());
                removed = Some(*leg);
            }
            Command::Shutdown => {
                self.stopping = true;
            }
            _ => {}
        }
        self.relay.handle_command(now, cmd);
        if let Some(leg) = removed {
            self.retire(leg);
        }
    }

    fn retire(&self, leg: LegId) {
        if let Some(r) = &self.retired {
            r.retire(leg);
        }
    }
}
