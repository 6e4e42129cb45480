//! A tiny rtpengine ng client, as a SIP proxy drives `callbridge media`: one command per UDP
//! datagram (`cookie bencoded-dict`), resent with the same cookie until the reply comes, plus
//! the SDP and reply helpers the media-node tests share.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ng::bencode::Value;

use crate::sipp::sdp_audio_addr;
use crate::{RtpPeer, CALL_DEADLINE};

/// Sends one command (`cookie body`) to `to` and returns the reply's dictionary bytes,
/// resending (same cookie) every 500 ms as a proxy does; panics after [`CALL_DEADLINE`].
///
/// # Panics
/// When no reply with the cookie arrives within [`CALL_DEADLINE`], or the socket fails.
#[must_use]
pub fn ng(sock: &UdpSocket, to: SocketAddr, cookie: &str, body: &[u8]) -> Vec<u8> {
    let mut msg = format!("{cookie} ").into_bytes();
    msg.extend_from_slice(body);
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let t0 = Instant::now();
    let mut buf = vec![0u8; 65_535];
    loop {
        sock.send_to(&msg, to).unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let prefix = format!("{cookie} ");
            if buf[..n].starts_with(prefix.as_bytes()) {
                return buf[prefix.len()..n].to_vec();
            }
        }
        assert!(
            t0.elapsed() < CALL_DEADLINE,
            "no ng reply to {cookie} from {to}"
        );
    }
}

/// A one-stream PCMA SDP offering `at` as the RTP address.
#[must_use]
pub fn sdp(at: SocketAddr) -> String {
    format!(
        "v=0\r\no=- 7 7 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 8\r\n\
         a=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n",
        ip = at.ip(),
        port = at.port()
    )
}

/// The audio address in an offer's or answer's reply `sdp` (where the other side sends RTP).
///
/// # Panics
/// When the reply has no `sdp` or the SDP no audio address.
#[must_use]
pub fn target(reply: &Value<'_>) -> SocketAddr {
    let sdp = reply
        .get("sdp")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no sdp in {reply:?}"));
    sdp_audio_addr(sdp).unwrap_or_else(|| panic!("no audio address in {sdp}"))
}

/// Waits until `peer` has received `n` packets in all (through the node).
///
/// # Panics
/// When they have not arrived within [`CALL_DEADLINE`] (`what` names the direction).
pub fn wait_received(peer: &RtpPeer, n: usize, what: &str) {
    let t0 = Instant::now();
    while peer.received().len() < n {
        assert!(
            t0.elapsed() < CALL_DEADLINE,
            "{what}: {} of {n} RTP packets arrived through the node",
            peer.received().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
