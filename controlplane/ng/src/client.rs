//! An ng client (tokio, UDP): what `serve` uses to drive media nodes, and what a test or a
//! tool can use to talk to any ng server (rtpengine included).
//!
//! Each request gets its own cookie; the datagram is sent again every
//! [`ClientConfig::retransmit`] until the reply with that cookie arrives or
//! [`ClientConfig::timeout`] passes, so a caller never waits longer than the timeout
//! (sub-second by default: a dead node costs one timeout, not Kamailio's 5 × 1 s). Replies
//! are matched by cookie, so any number of requests may be outstanding on one socket; a
//! node's reply cache answers a retransmission without running the command twice. TCP is
//! not implemented here (UDP is what every ng server takes).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use crate::request::split_cookie;

/// Timings of a client.
#[derive(Debug, Clone, Copy)]
pub struct ClientConfig {
    /// The hard bound on one request, retransmissions included.
    pub timeout: Duration,
    /// The interval between retransmissions of an unanswered request.
    pub retransmit: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(400),
            retransmit: Duration::from_millis(80),
        }
    }
}

/// Why a request got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No reply within the timeout.
    #[error("no reply from {0} within {1:?}")]
    Timeout(SocketAddr, Duration),
    /// The socket failed.
    #[error("ng socket: {0}")]
    Io(String),
}

type Waiters = Arc<Mutex<HashMap<Vec<u8>, oneshot::Sender<Vec<u8>>>>>;

/// A UDP ng client bound to one server.
#[derive(Debug)]
pub struct Client {
    sock: Arc<UdpSocket>,
    server: SocketAddr,
    cfg: ClientConfig,
    prefix: String,
    next: AtomicU64,
    waiters: Waiters,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Client {
    /// Binds an ephemeral UDP socket (of the server's family) and starts reading replies.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub async fn connect(server: SocketAddr, cfg: ClientConfig) -> std::io::Result<Self> {
        let any: IpAddr = if server.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let sock = Arc::new(UdpSocket::bind(SocketAddr::new(any, 0)).await?);
        let waiters: Waiters = Arc::default();
        let (s, w) = (sock.clone(), waiters.clone());
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; crate::server::MAX_MESSAGE];
            loop {
                let Ok((n, from)) = s.recv_from(&mut buf).await else {
                    // ICMP errors (a dead port) surface here on some systems: keep reading.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                if from != server {
                    continue;
                }
                let Ok((cookie, dict)) = split_cookie(&buf[..n]) else {
                    continue;
                };
                let tx = w
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(cookie);
                if let Some(tx) = tx {
                    let _ = tx.send(dict.to_vec());
                }
            }
        });
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Ok(Self {
            sock,
            server,
            cfg,
            prefix: format!("cb{:x}{nanos:x}", std::process::id()),
            next: AtomicU64::new(1),
            waiters,
            reader,
        })
    }

    /// The server this client talks to.
    #[must_use]
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Sends `dict` (a bencoded dictionary) and returns the reply's dictionary bytes.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] after [`ClientConfig::timeout`] without a reply.
    pub async fn request(&self, dict: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.request_within(dict, self.cfg.timeout).await
    }

    /// As [`Self::request`] with another timeout.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] after `timeout` without a reply.
    pub async fn request_within(
        &self,
        dict: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let cookie = format!("{}_{n}", self.prefix).into_bytes();
        let mut msg = cookie.clone();
        msg.push(b' ');
        msg.extend_from_slice(dict);
        let (tx, mut rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cookie.clone(), tx);
        let deadline = tokio::time::Instant::now() + timeout;
        let result = loop {
            if let Err(e) = self.sock.send_to(&msg, self.server).await {
                // ECONNREFUSED from an earlier ICMP error is not fatal: retry until the deadline.
                if e.kind() != std::io::ErrorKind::ConnectionRefused {
                    break Err(ClientError::Io(e.to_string()));
                }
            }
            let wait = tokio::time::Instant::now() + self.cfg.retransmit;
            tokio::select! {
                r = &mut rx => break r.map_err(|_| ClientError::Io("reader stopped".into())),
                () = tokio::time::sleep_until(wait.min(deadline)) => {
                    if tokio::time::Instant::now() >= deadline {
                        break Err(ClientError::Timeout(self.server, timeout));
                    }
                }
            }
        };
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&cookie);
        result
    }

    /// `ping`; `true` on `pong`.
    pub async fn ping(&self) -> bool {
        match self.request(b"d7:command4:pinge").await {
            Ok(r) => crate::bencode::decode(&r)
                .ok()
                .and_then(|v| {
                    v.get("result")
                        .and_then(|r| r.as_str().map(|s| s == "pong"))
                })
                .unwrap_or(false),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_server_costs_one_timeout_and_a_retransmitted_reply_counts_once() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let cfg = ClientConfig {
            timeout: Duration::from_millis(150),
            retransmit: Duration::from_millis(20),
        };
        let c = Client::connect(addr, cfg).await.unwrap();
        let t0 = std::time::Instant::now();
        let r = c.request(b"d7:command4:pinge").await;
        assert!(matches!(r, Err(ClientError::Timeout(..))), "{r:?}");
        assert!(t0.elapsed() < Duration::from_secs(2));
        // Several copies were sent; the server answers the latest cookie once, late copies of
        // old cookies are ignored.
        let mut buf = [0u8; 256];
        let mut copies = 0;
        while let Ok(Ok((_, _))) =
            tokio::time::timeout(Duration::from_millis(10), server.recv_from(&mut buf)).await
        {
            copies += 1;
        }
        assert!(copies >= 2, "{copies} copies");
        let answer = tokio::spawn(async move {
            let mut buf = [0u8; 256];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let (cookie, _) = split_cookie(&buf[..n]).unwrap();
            let mut out = cookie.to_vec();
            out.extend_from_slice(b" d6:result4:ponge");
            server.send_to(&out, from).await.unwrap();
            server.send_to(&out, from).await.unwrap();
        });
        assert!(c.ping().await);
        answer.await.unwrap();
    }
}
