//! The [`Endpoint`] handle: binding (transport and core task start), the counters and
//! addresses it reports, and shutdown. The handle talks to the core task (`core`) over the
//! command channel kept in [`Inner`]; the calls it places and answers are in `uac`, `uas`,
//! `request`, `register` and `fork`.

use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::core::{Cmd, Core};
use super::{EndpointConfig, IncomingCall};
use crate::error::SipError;
use crate::peer::ListenAddr;
use crate::registrar::Registrar;
use crate::transport::{self, TransportStats};

pub(super) struct Inner {
    pub(super) local: SocketAddr,
    pub(super) locals: Vec<ListenAddr>,
    pub(super) out: transport::Sender,
    pub(super) user_agent: String,
    pub(super) cmd: mpsc::UnboundedSender<Cmd>,
    pub(super) cancel: CancellationToken,
    pub(super) stats: Arc<TransportStats>,
    pub(super) next_leg: std::sync::atomic::AtomicU64,
    /// The registrar, shared with the core (which answers REGISTER) for the application's
    /// [`Endpoint::bindings`] queries; `None` without [`EndpointConfig::registrar`].
    pub(super) registrar: Option<SharedRegistrar>,
}

/// The registrar behind a mutex: the core locks it to answer a REGISTER, the application to
/// read bindings; neither holds it across an await.
pub(super) type SharedRegistrar = Arc<std::sync::Mutex<Registrar>>;

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A SIP endpoint on one UDP socket. Cheap to clone. Dropping the last clone shuts it down
/// (like [`Endpoint::shutdown`]), so keep one alive while calls are up.
#[derive(Clone)]
pub struct Endpoint {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local", &self.inner.local)
            .finish()
    }
}

impl Endpoint {
    /// Binds UDP and spawns the transport and core tasks on the current tokio runtime.
    /// Incoming calls arrive on the returned receiver (capacity 64; when it is full or dropped,
    /// new INVITEs get 486/480).
    ///
    /// # Errors
    /// [`SipError::Io`] if the socket cannot be bound.
    pub async fn bind(
        cfg: EndpointConfig,
    ) -> Result<(Self, mpsc::Receiver<IncomingCall>), SipError> {
        if cfg.listen.is_empty() {
            return Err(SipError::InvalidUri("no SIP listen address".into()));
        }
        let registrar: Option<SharedRegistrar> = match cfg.registrar.clone() {
            Some(mut r) => {
                // a TCP/TLS client refreshes before its idle connection is closed
                let idle = u32::try_from(cfg.streams.idle_timeout.as_secs()).unwrap_or(u32::MAX);
                r.max_stream_expires.get_or_insert(idle);
                Some(Arc::new(std::sync::Mutex::new(Registrar::new(r)?)))
            }
            None => None,
        };
        let cancel = CancellationToken::new();
        let stats = Arc::new(TransportStats::default());
        let (bound, inbound, out) = transport::start(
            transport::TransportConfig {
                listen: cfg.listen.clone(),
                user_agent: cfg.user_agent.clone(),
                limits: cfg.limits,
                bad_sources: cfg.bad_sources,
                streams: cfg.streams,
                tls: cfg.tls.clone(),
            },
            cancel.child_token(),
            stats.clone(),
        )
        .await?;
        let locals: Vec<ListenAddr> = bound
            .into_iter()
            .map(|mut l| {
                if l.addr.ip().is_unspecified() {
                    l.addr.set_ip(if l.addr.is_ipv4() {
                        IpAddr::V4(Ipv4Addr::LOCALHOST)
                    } else {
                        IpAddr::V6(Ipv6Addr::LOCALHOST)
                    });
                }
                l
            })
            .collect();
        let local = locals[0].addr;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming_rx) = mpsc::channel(64);
        let inner = Arc::new(Inner {
            local,
            locals: locals.clone(),
            out: out.clone(),
            user_agent: cfg.user_agent.clone(),
            cmd: cmd_tx.clone(),
            cancel: cancel.clone(),
            stats,
            next_leg: std::sync::atomic::AtomicU64::new(1),
            registrar: registrar.clone(),
        });
        let core = Core {
            local,
            locals,
            ua: cfg.user_agent,
            timers: cfg.timers,
            allow_invite_from: cfg.allow_invite_from,
            allow_register_from: cfg.allow_register_from,
            registrar,
            reoffers: cfg.reoffers,
            session_cfg: cfg.session_timer,
            use_100rel: cfg.use_100rel,
            out,
            incoming: incoming_tx,
            cmd: cmd_tx,
            clients: HashMap::new(),
            switched: HashMap::new(),
            requests: HashMap::new(),
            auth: HashMap::new(),
            servers: HashMap::new(),
            legs: HashMap::new(),
            by_dialog: HashMap::new(),
            timers_heap: BinaryHeap::new(),
            stats: inner.stats.clone(),
            inner: Arc::downgrade(&inner),
        };
        tokio::spawn(core.run(inbound, cmd_rx, cancel));
        info!(%local, "SIP endpoint bound");
        Ok((Self { inner }, incoming_rx))
    }

    /// Every listening address, port 0 resolved (as advertised in Via/Contact).
    pub fn listeners(&self) -> &[ListenAddr] {
        &self.inner.locals
    }

    /// The first listener's address (as advertised in Via/Contact).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Malformed datagrams seen so far: `(requests answered with 400 or 505, other datagrams
    /// dropped)`; malformed responses are counted in [`Endpoint::dropped_responses`].
    pub fn malformed_counts(&self) -> (u64, u64) {
        let s = &self.inner.stats;
        (
            s.bad_requests.load(Ordering::Relaxed),
            s.dropped.load(Ordering::Relaxed),
        )
    }

    /// Datagrams that parsed as SIP so far. With [`Endpoint::malformed_counts`],
    /// [`Endpoint::dropped_responses`]`.0`, [`Endpoint::oversized_count`] and
    /// [`Endpoint::rate_limited_count`] this accounts for
    /// every datagram read: each is counted exactly once among them.
    pub fn received_count(&self) -> u64 {
        self.inner.stats.received.load(Ordering::Relaxed)
    }

    /// Datagrams dropped unread so far because their source sent too many bad ones
    /// ([`crate::guard`]).
    pub fn rate_limited_count(&self) -> u64 {
        self.inner.stats.rate_limited.load(Ordering::Relaxed)
    }

    /// New INVITEs answered 403 so far because their source is outside
    /// [`EndpointConfig::allow_invite_from`].
    pub fn forbidden_invite_count(&self) -> u64 {
        self.inner.stats.forbidden_invites.load(Ordering::Relaxed)
    }

    /// Datagrams over a size limit so far (requests among them were answered 513 or 413).
    pub fn oversized_count(&self) -> u64 {
        self.inner.stats.too_large.load(Ordering::Relaxed)
    }

    /// Responses dropped so far: `(malformed, stray)`. Malformed ones failed to parse (a
    /// status code outside 100..=699, a CSeq out of range, …); stray ones parsed but match no
    /// transaction or dialog (RFC 4475's `bcast`, `unreason`, `noreason`).
    pub fn dropped_responses(&self) -> (u64, u64) {
        let s = &self.inner.stats;
        (
            s.invalid_responses.load(Ordering::Relaxed),
            s.stray_responses.load(Ordering::Relaxed),
        )
    }

    /// Every transport counter (messages, connections, TLS failures, keep-alives).
    pub fn stats(&self) -> &TransportStats {
        &self.inner.stats
    }

    /// Stops the transport and core tasks. Legs are dropped without signalling; their
    /// `event()` returns `None`.
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
    }
}
