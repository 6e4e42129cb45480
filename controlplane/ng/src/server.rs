//! The ng listener: UDP datagrams and TCP streams on one address, one task owning the
//! [`Node`], the [`ReplyCache`] and the data-plane events.
//!
//! Over UDP each datagram is one message. Over TCP messages follow each other on the stream
//! (`<cookie> <dictionary>`, the dictionary self-delimiting), each connection read by its own
//! task. A retransmitted cookie is answered from the cache, or ignored while its first
//! copy's reply is still pending. Nothing here blocks on the data plane: commands go out on
//! bounded queues and counters come back as events.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dp_api::Event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::bencode;
use crate::cache::ReplyCache;
use crate::node::{Handled, Node};
use crate::request::split_cookie;

/// Largest message accepted (UDP's limit; a TCP message beyond it closes the connection).
pub const MAX_MESSAGE: usize = 65_535;
/// Most TCP connections at once (further ones are closed at once).
pub const MAX_CONNECTIONS: usize = 256;

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A UDP sender.
    Udp(SocketAddr),
    /// A TCP connection, by number.
    Tcp(u64),
}

/// Which sources may send commands.
pub type Allow = Box<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// The bound sockets of a listener (bind first, then [`Listener::run`]).
pub struct Listener {
    udp: UdpSocket,
    tcp: TcpListener,
    allow: Allow,
    refused: u64,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Binds UDP and TCP on `addr` (port 0: one free port for both, retried a few times).
    ///
    /// # Errors
    /// When either cannot be bound.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let mut last = None;
        for _ in 0..8 {
            let udp = UdpSocket::bind(addr).await?;
            let local = udp.local_addr()?;
            match TcpListener::bind(local).await {
                Ok(tcp) => {
                    return Ok(Self {
                        udp,
                        tcp,
                        allow: Box::new(|ip: IpAddr| ip.is_loopback()),
                        refused: 0,
                    })
                }
                Err(e) if addr.port() == 0 => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no port for both UDP and TCP")))
    }

    /// Takes commands only from sources `allow` accepts (default: loopback only); others are
    /// dropped unanswered, their TCP connections closed.
    #[must_use]
    pub fn allow(mut self, allow: Allow) -> Self {
        self.allow = allow;
        self
    }

    /// The bound address (UDP and TCP).
    ///
    /// # Errors
    /// From the socket.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Serves until `shutdown` completes.
    ///
    /// # Errors
    /// When the UDP socket fails.
    pub async fn run(
        mut self,
        mut node: Node<Peer>,
        mut events: mpsc::UnboundedReceiver<Event>,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let mut cache = ReplyCache::default();
        let mut pending: HashSet<Vec<u8>> = HashSet::new();
        let mut conns: HashMap<u64, mpsc::Sender<Vec<u8>>> = HashMap::new();
        let (tcp_tx, mut tcp_rx) = mpsc::channel::<(u64, Option<Vec<u8>>)>(1024);
        let mut next_conn = 0u64;
        let mut buf = vec![0u8; MAX_MESSAGE];
        tokio::pin!(shutdown);
        loop {
            let deadline = node.next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let mut done = Vec::new();
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                r = self.udp.recv_from(&mut buf) => {
                    let (n, from) = r?;
                    if !(self.allow)(from.ip()) {
                        self.refuse(from);
                        continue;
                    }
                    if let Some(reply) = on_message(&mut node, &mut cache, &mut pending, &buf[..n], Peer::Udp(from)) {
                        let _ = self.udp.send_to(&reply, from).await;
                    }
                }
                r = self.tcp.accept() => {
                    if let Ok((stream, from)) = r {
                        if !(self.allow)(from.ip()) {
                            self.refuse(from);
                        } else if conns.len() >= MAX_CONNECTIONS {
                            drop(stream);
                        } else {
                            let id = next_conn;
                            next_conn += 1;
                            let (out_tx, out_rx) = mpsc::channel(64);
                            conns.insert(id, out_tx);
                            tokio::spawn(connection(id, stream, tcp_tx.clone(), out_rx));
                        }
                    }
                }
                Some((id, msg)) = tcp_rx.recv() => match msg {
                    Some(msg) => {
                        if let Some(reply) = on_message(&mut node, &mut cache, &mut pending, &msg, Peer::Tcp(id)) {
                            if let Some(tx) = conns.get(&id) {
                                let _ = tx.try_send(reply);
                            }
                        }
                    }
                    None => {
                        conns.remove(&id);
                    }
                },
                Some(ev) = events.recv() => done = node.on_event(&ev),
                () = sleep => done = node.expire(Instant::now()),
            }
            for (to, reply) in done {
                if let Ok((cookie, _)) = split_cookie(&reply) {
                    pending.remove(cookie);
                    cache.put(Instant::now(), cookie, reply.clone());
                }
                match to {
                    Peer::Udp(a) => {
                        let _ = self.udp.send_to(&reply, a).await;
                    }
                    Peer::Tcp(id) => {
                        if let Some(tx) = conns.get(&id) {
                            let _ = tx.try_send(reply);
                        }
                    }
                }
            }
            node.publish_drain_state();
        }
    }
}

impl Listener {
    fn refuse(&mut self, from: SocketAddr) {
        self.refused += 1;
        // The first, then every 1000th: a flood must not flood the log.
        if self.refused % 1000 == 1 {
            tracing::warn!(%from, refused = self.refused, "ng command from a source not in media.ng_allow_from dropped");
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One message in: the reply to send now, if any (cached, error, or immediate).
fn on_message(
    node: &mut Node<Peer>,
    cache: &mut ReplyCache,
    pending: &mut HashSet<Vec<u8>>,
    msg: &[u8],
    from: Peer,
) -> Option<Vec<u8>> {
    let (cookie, dict) = match split_cookie(msg) {
        Ok(p) => p,
        Err(e) => {
            // No usable cookie: nothing a sender could match a reply to.
            tracing::debug!(error = %e, ?from, "ng message without a cookie dropped");
            return None;
        }
    };
    if let Some(r) = cache.get(cookie) {
        return Some(r.to_vec());
    }
    if pending.contains(cookie) {
        return None;
    }
    let now = Instant::now();
    match node.handle(now, unix_now(), cookie, dict, from) {
        Handled::Reply(r) => {
            cache.put(now, cookie, r.clone());
            Some(r)
        }
        Handled::Pending => {
            pending.insert(cookie.to_vec());
            None
        }
    }
}

/// Reads messages from one TCP connection and writes its replies.
async fn connection(
    id: u64,
    stream: TcpStream,
    to_node: mpsc::Sender<(u64, Option<Vec<u8>>)>,
    mut replies: mpsc::Receiver<Vec<u8>>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        while let Some(r) = replies.recv().await {
            if wr.write_all(&r).await.is_err() {
                break;
            }
        }
    });
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    'read: loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            // Skip whitespace between messages.
            let start = buf
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(buf.len());
            buf.drain(..start);
            let Some(sp) = buf.iter().position(|&b| b == b' ') else {
                if buf.len() > crate::request::MAX_COOKIE {
                    break 'read;
                }
                break;
            };
            match bencode::complete_len(&buf[sp + 1..]) {
                Ok(Some(len)) => {
                    let msg: Vec<u8> = buf.drain(..sp + 1 + len).collect();
                    if to_node.send((id, Some(msg))).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) if buf.len() <= MAX_MESSAGE => break,
                Ok(None) | Err(_) => {
                    // Unreadable framing: the node answers the cookie with its error (the
                    // same parse fails there), then the connection closes.
                    let msg = std::mem::take(&mut buf);
                    let _ = to_node.send((id, Some(msg))).await;
                    break 'read;
                }
            }
        }
    }
    let _ = to_node.send((id, None)).await;
    let _ = writer.await;
}
