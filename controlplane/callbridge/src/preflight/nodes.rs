//! `media.nodes`: each media node answers an ng `ping` (three tries, 300 ms each).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use super::{Report, Verdict};
use crate::config::Config;

/// One line per node: ok when it answers `pong`, FAIL otherwise.
pub(super) fn nodes(r: &mut Report, cfg: &Config) {
    for addr in cfg.media.node_addrs() {
        let topic = format!("media node {addr}");
        match ping(addr) {
            Ok(()) => r.push(Verdict::Ok, topic, "answers ng ping"),
            Err(why) => r.push(
                Verdict::Fail,
                topic,
                format!(
                    "{why}; start `callbridge media` there with ng_listen = \"{addr}\" and this \
                     host's address in its media.ng_allow_from"
                ),
            ),
        }
    }
}

fn ping(to: SocketAddr) -> Result<(), String> {
    let any: SocketAddr = if to.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(any).map_err(|e| format!("no UDP socket: {e}"))?;
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .map_err(|e| e.to_string())?;
    let cookie = format!("preflight_{}", std::process::id());
    let msg = format!("{cookie} d7:command4:pinge");
    let mut buf = [0u8; 512];
    for _ in 0..3 {
        s.send_to(msg.as_bytes(), to)
            .map_err(|e| format!("cannot send: {e}"))?;
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let reply = &buf[..n];
            if from == to && reply.starts_with(cookie.as_bytes()) {
                return if reply.windows(4).any(|w| w == b"pong") {
                    Ok(())
                } else {
                    Err(format!(
                        "answered without pong: {}",
                        String::from_utf8_lossy(reply)
                    ))
                };
            }
        }
    }
    Err("no answer to ng ping within 3 × 300 ms".into())
}
