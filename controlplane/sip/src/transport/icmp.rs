//! ICMP errors for our UDP datagrams (RFC 3261 17.1.4 over UDP; Linux `IP_RECVERR`).
//!
//! An unconnected UDP socket hears nothing of the ICMP port/host/network unreachable that
//! answers its datagrams unless `IP_RECVERR` (`IPV6_RECVERR`) is set; then the kernel queues
//! each error on the socket's error queue, with the original destination (`msg_name`), a
//! `sock_extended_err` (origin, ICMP type and code, errno) and the start of the datagram as
//! the ICMP message quoted it (IPv4 quotes at most 576 bytes in all, so the request line and
//! the top Via nearly always survive). The socket then polls `EPOLLERR`; the receive task
//! reads the queue with `recvmsg(MSG_ERRQUEUE)` ([`recv_error`]) and hands the core an
//! [`super::Inbound::Unreachable`] naming the request (method and Via branch, from
//! [`quoted_request`]) so that exactly its client transaction fails.
//!
//! The kernel also sets the socket's pending error (`SO_ERROR`) for each ICMP error, which the
//! next `recvfrom` or `sendto` on the socket returns once (as ECONNREFUSED, EHOSTUNREACH, …)
//! whatever its peer: the receive loop ignores it, the dispatcher sends again once
//! ([`is_stale_icmp`]).

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use tokio::net::UdpSocket;

use crate::msg::Method;

/// `sock_extended_err.ee_origin` values (linux/errqueue.h).
const SO_EE_ORIGIN_ICMP: u8 = 2;
const SO_EE_ORIGIN_ICMP6: u8 = 3;

/// One ICMP error about a datagram we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IcmpError {
    /// Where the datagram was going (IPv4-mapped addresses unmapped).
    pub(super) dest: Option<SocketAddr>,
    /// The start of the datagram, as quoted.
    pub(super) quoted: Vec<u8>,
    /// What happened, for logs: `ICMP port unreachable from 192.0.2.7`.
    pub(super) cause: String,
    /// True when the error means "not reachable" (unreachable, prohibited, TTL exceeded);
    /// false for e.g. "fragmentation needed", which is no reason to give up on a peer.
    pub(super) unreachable: bool,
}

/// Asks the kernel to queue ICMP errors on `socket` (`IP_RECVERR`, and `IPV6_RECVERR` on an
/// IPv6 socket, which also carries IPv4-mapped traffic).
///
/// # Errors
/// The `setsockopt` error when the socket's own family refuses it.
pub(super) fn enable(socket: &UdpSocket) -> io::Result<()> {
    let v6 = socket.local_addr()?.is_ipv6();
    if v6 {
        setsockopt(socket, sockopt::Ipv6RecvErr, &true)?;
        // For IPv4-mapped peers of a dual-stack socket; harmless when refused.
        let _ = setsockopt(socket, sockopt::Ipv4RecvErr, &true);
    } else {
        setsockopt(socket, sockopt::Ipv4RecvErr, &true)?;
    }
    Ok(())
}

/// Reads one error from `socket`'s error queue without blocking (`WouldBlock` when empty).
///
/// # Errors
/// `WouldBlock` when the queue is empty; the `recvmsg` error otherwise.
pub(super) fn recv_error(socket: &UdpSocket) -> io::Result<IcmpError> {
    let mut buf = [0u8; 2048];
    let (n, dest, ee, offender) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!(nix::libc::sock_extended_err, nix::libc::sockaddr_in6);
        let msg = recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        )?;
        let dest = msg.address.as_ref().and_then(socket_addr);
        let mut found = None;
        for c in msg.cmsgs()? {
            match c {
                ControlMessageOwned::Ipv4RecvErr(e, off) => {
                    let off =
                        off.map(|a| IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))));
                    found = Some((e, off));
                }
                ControlMessageOwned::Ipv6RecvErr(e, off) => {
                    let off = off.map(|a| unmap(IpAddr::from(a.sin6_addr.s6_addr)));
                    found = Some((e, off));
                }
                _ => {}
            }
        }
        let Some((ee, off)) = found else {
            return Err(io::Error::other(
                "error queue entry without an extended error",
            ));
        };
        (msg.bytes, dest, ee, off)
    };
    let icmp = matches!(ee.ee_origin, SO_EE_ORIGIN_ICMP | SO_EE_ORIGIN_ICMP6);
    let errno = i32::try_from(ee.ee_errno).unwrap_or(0);
    let what = if icmp {
        describe(ee.ee_origin == SO_EE_ORIGIN_ICMP6, ee.ee_type, ee.ee_code)
    } else {
        None
    };
    let what = what.map_or_else(
        || io::Error::from_raw_os_error(errno).to_string(),
        str::to_owned,
    );
    let cause = match offender {
        Some(ip) if !ip.is_unspecified() => format!("{what} from {ip}"),
        _ => what,
    };
    Ok(IcmpError {
        dest,
        quoted: buf[..n.min(buf.len())].to_vec(),
        cause,
        unreachable: icmp && errno != Errno::EMSGSIZE as i32,
    })
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    let v6 = a.as_sockaddr_in6()?;
    Some(SocketAddr::new(unmap(IpAddr::V6(v6.ip())), v6.port()))
}

/// The ICMP (or ICMPv6) error's name, for the errors a SIP peer's address earns.
fn describe(v6: bool, kind: u8, code: u8) -> Option<&'static str> {
    Some(match (v6, kind, code) {
        (false, 3, 0) => "ICMP network unreachable",
        (false, 3, 1) => "ICMP host unreachable",
        (false, 3, 2) => "ICMP protocol unreachable",
        (false, 3, 3) => "ICMP port unreachable",
        (false, 3, 4) => "ICMP fragmentation needed",
        (false, 3, 9 | 10 | 13) => "ICMP communication administratively prohibited",
        (false, 3, _) => "ICMP destination unreachable",
        (false, 11, _) => "ICMP time exceeded",
        (true, 1, 0) => "ICMPv6 no route to destination",
        (true, 1, 1) => "ICMPv6 communication administratively prohibited",
        (true, 1, 3) => "ICMPv6 address unreachable",
        (true, 1, 4) => "ICMPv6 port unreachable",
        (true, 1, _) => "ICMPv6 destination unreachable",
        (true, 2, _) => "ICMPv6 packet too big",
        (true, 3, _) => "ICMPv6 time exceeded",
        _ => return None,
    })
}

/// Whether a `sendto` error is the socket's pending error from an earlier ICMP error (about
/// another datagram, perhaps to another peer) rather than about this one: the datagram was not
/// sent and may be sent again.
pub(super) fn is_stale_icmp(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(
            Errno::ECONNREFUSED
                | Errno::EHOSTUNREACH
                | Errno::ENETUNREACH
                | Errno::EHOSTDOWN
                | Errno::ENONET
                | Errno::EPROTO
        )
    )
}

/// The request a quoted datagram began: its method and top Via branch. `None` for a response
/// (or what is not SIP). The quote may end anywhere, so this reads lines loosely and never
/// needs the whole message; a branch cut by the quote's end is not returned.
pub(crate) fn quoted_request(data: &[u8]) -> Option<(Method, Option<String>)> {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split("\r\n");
    let first = lines.next()?;
    let mut words = first.split(' ');
    let method = words.next()?;
    if method.is_empty()
        || method.starts_with("SIP/")
        || !method.bytes().all(|b| b.is_ascii_alphabetic())
    {
        return None;
    }
    let method = Method::parse(method);
    let complete = data.windows(2).any(|w| w == b"\r\n");
    let mut branch = None;
    let all: Vec<&str> = lines.collect();
    for (i, line) in all.iter().enumerate() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if !(name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v")) {
            continue;
        }
        // The top Via only: the first element of the first Via header.
        let first_via = value.split(',').next().unwrap_or("");
        let last_line = i + 1 == all.len();
        branch = first_via.split(';').skip(1).find_map(|p| {
            let (n, v) = p.split_once('=')?;
            let v = v.trim();
            // A value at the very end of the quote may be cut short.
            let cut = last_line && first_via.ends_with(v);
            (n.trim().eq_ignore_ascii_case("branch") && !v.is_empty() && !cut).then(|| v.to_owned())
        });
        break;
    }
    complete.then_some((method, branch))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@127.0.0.1:5999 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc123;rport\r\n\
        Max-Forwards: 70\r\nFrom: <sip:cb@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1:5999>\r\n\
        Call-ID: x1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn the_quoted_request_names_its_transaction() {
        assert_eq!(
            quoted_request(INVITE.as_bytes()),
            Some((Method::Invite, Some("z9hG4bKabc123".into())))
        );
        let cancel = INVITE.replacen("INVITE sip", "CANCEL sip", 1);
        assert_eq!(
            quoted_request(cancel.as_bytes()).map(|(m, _)| m),
            Some(Method::Cancel)
        );
        // Compact form, several Via elements: the top one counts.
        let compact = "BYE sip:a@h SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKtop, SIP/2.0/UDP p;branch=z9hG4bKlow\r\n\r\n";
        assert_eq!(
            quoted_request(compact.as_bytes()),
            Some((Method::Bye, Some("z9hG4bKtop".into())))
        );
    }

    #[test]
    fn a_truncated_quote_gives_what_survived() {
        // Cut inside the branch: no branch (the dispatcher falls back to the destination).
        let cut = &INVITE.as_bytes()[..INVITE.find("c123").unwrap()];
        assert_eq!(quoted_request(cut), Some((Method::Invite, None)));
        // Cut after the Via line: complete.
        let at = INVITE.find("Max-Forwards").unwrap();
        assert_eq!(
            quoted_request(&INVITE.as_bytes()[..at + 3]),
            Some((Method::Invite, Some("z9hG4bKabc123".into())))
        );
        // Not even the request line.
        assert_eq!(quoted_request(b"INVITE sip:bob@127.0"), None);
    }

    #[test]
    fn responses_and_garbage_are_not_requests() {
        assert_eq!(
            quoted_request(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n"),
            None
        );
        assert_eq!(quoted_request(b"\r\n\r\n"), None);
        assert_eq!(quoted_request(b"\x00\x01\x02\r\n"), None);
        assert_eq!(quoted_request(b""), None);
    }

    #[test]
    fn icmp_names() {
        assert_eq!(describe(false, 3, 3), Some("ICMP port unreachable"));
        assert_eq!(describe(true, 1, 4), Some("ICMPv6 port unreachable"));
        assert_eq!(describe(false, 0, 0), None);
        assert!(is_stale_icmp(&io::Error::from_raw_os_error(
            Errno::ECONNREFUSED as i32
        )));
        assert!(!is_stale_icmp(&io::Error::from_raw_os_error(
            Errno::EMSGSIZE as i32
        )));
    }
}
