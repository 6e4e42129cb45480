//! SIPp's message trace (`-trace_msg`) read as it grows, for tests of many calls that follow
//! each call's INVITEs (the relay address in each SDP, re-INVITEs after a re-anchoring)
//! without re-reading the whole file; and the INFO that tells a
//! [`crate::Scenario::AnswerReanchorExternalMedia`] call to hang up.

use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Instant;

use crate::sipp::sdp_audio_addr;

/// SIPp's separator line before each traced message.
const SEPARATOR: &str = "-----------------------------------------------";

/// One traced SIP message.
#[derive(Debug, Clone)]
pub struct TracedMessage {
    /// Received by SIPp (else sent).
    pub received: bool,
    /// The request or status line.
    pub first_line: String,
    /// The `Call-ID` header's value.
    pub call_id: String,
    /// The audio address of its SDP, if it has one.
    pub sdp_audio: Option<SocketAddr>,
    /// When the test read it (an upper bound on when SIPp handled it).
    pub seen: Instant,
}

impl TracedMessage {
    /// Whether it is a request `method` (e.g. `"INVITE"`).
    #[must_use]
    pub fn is_request(&self, method: &str) -> bool {
        self.first_line
            .strip_prefix(method)
            .is_some_and(|r| r.starts_with(' '))
    }

    /// The user part of a request's Request-URI (`INVITE sip:USER@host …`).
    #[must_use]
    pub fn request_user(&self) -> Option<&str> {
        let uri = self.first_line.split(' ').nth(1)?;
        let rest = uri.strip_prefix("sip:")?;
        rest.split('@').next()
    }
}

/// Reads a SIPp message trace from where it last stopped.
#[derive(Debug)]
pub struct MessageTail {
    path: PathBuf,
    offset: u64,
    buf: String,
}

impl MessageTail {
    /// A reader of `path` (see [`crate::Sipp::messages_path`]) from its beginning.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            offset: 0,
            buf: String::new(),
        }
    }

    /// The messages completed since the last call: a message counts once the separator of
    /// the next one follows it (SIPp traces the answer to a request right after it).
    pub fn poll(&mut self) -> Vec<TracedMessage> {
        if let Ok(mut f) = std::fs::File::open(&self.path) {
            if f.seek(SeekFrom::Start(self.offset)).is_ok() {
                let mut bytes = Vec::new();
                if let Ok(n) = f.read_to_end(&mut bytes) {
                    self.offset += n as u64;
                    self.buf.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        let seen = Instant::now();
        let mut out = Vec::new();
        // Complete blocks: from one separator up to the next.
        let Some(last) = self.buf.rfind(&format!("\n{SEPARATOR}")) else {
            return out;
        };
        let complete: String = self.buf.drain(..=last).collect();
        for block in complete.split(SEPARATOR).filter(|b| !b.trim().is_empty()) {
            let mut lines = block.lines().skip(1);
            let Some(dir) = lines.next() else { continue };
            let received = dir.contains("message received");
            let msg: Vec<&str> = lines.collect();
            let Some(first) = msg.iter().find(|l| !l.trim().is_empty()) else {
                continue;
            };
            let call_id = msg
                .iter()
                .find_map(|l| {
                    l.strip_prefix("Call-ID:")
                        .or_else(|| l.strip_prefix("i:"))
                        .map(|v| v.trim().to_owned())
                })
                .unwrap_or_default();
            let text = msg.join("\n");
            out.push(TracedMessage {
                received,
                first_line: first.trim().to_owned(),
                call_id,
                sdp_audio: sdp_audio_addr(&text),
                seen,
            });
        }
        out
    }
}

/// Sends the INFO that makes a [`crate::Scenario::AnswerReanchorExternalMedia`] call hang up:
/// into dialog `call_id` (SIPp matches it by Call-ID) at SIPp's SIP address `sipp`, from
/// `sock`. Nothing answers it (see the scenario).
///
/// # Errors
/// The send failed.
pub fn send_hangup_info(sock: &UdpSocket, sipp: SocketAddr, call_id: &str) -> std::io::Result<()> {
    let me = sock.local_addr()?;
    let branch = format!(
        "z9hG4bK-hangup-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let msg = format!(
        "INFO sip:sipp@{sipp} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch}\r\n\
         From: <sip:test@{me}>;tag=hangup\r\nTo: <sip:sipp@{sipp}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 9000 INFO\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(msg.as_bytes(), sipp).map(|_| ())
}

/// How many times call request `id` was dialled, in a SIPp message trace (`Sipp::messages`):
/// the INVITEs SIPp received carrying `X-Callbridge-Call: {id}`, counted by distinct `Via`
/// line (one INVITE may be retransmitted).
#[must_use]
pub fn invites_for(messages: &str, id: &str) -> usize {
    messages
        .split("message received")
        .filter(|m| {
            m.lines()
                .skip(1)
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.starts_with("INVITE "))
                && m.contains(&format!("X-Callbridge-Call: {id}"))
        })
        .map(|m| {
            m.lines()
                .find(|l| l.starts_with("Via:"))
                .unwrap_or_default()
                .to_owned()
        })
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_returns_complete_messages_once() {
        let dir = crate::Workdir::new("sipp_log_tail");
        let path = dir.file("m.log");
        let invite = format!(
            "{SEPARATOR} 2026-12-06 20:32:46.633116\nUDP message received [842] bytes :\n\n\
             INVITE sip:a7@198.19.2.42:26660 SIP/2.0\nCall-ID: abc@x\nContent-Length: 10\n\n\
             v=0\nc=IN IP4 198.19.2.11\nm=audio 27114 RTP/AVP 0\n\n"
        );
        let ok = format!(
            "{SEPARATOR} 2026-12-06 20:32:46.638584\nUDP message sent (596 bytes):\n\n\
             SIP/2.0 200 OK\nCall-ID: abc@x\n\n"
        );
        std::fs::write(&path, &invite).unwrap();
        let mut t = MessageTail::new(&path);
        assert!(
            t.poll().is_empty(),
            "not complete before the next separator"
        );
        std::fs::write(&path, format!("{invite}{ok}")).unwrap();
        let got = t.poll();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].received && got[0].is_request("INVITE"));
        assert_eq!(got[0].request_user(), Some("a7"));
        assert_eq!(got[0].call_id, "abc@x");
        assert_eq!(got[0].sdp_audio, Some("198.19.2.11:27114".parse().unwrap()));
        assert!(t.poll().is_empty());
    }
}
