//! SDP as a media node handles it: read where a party receives its audio, and rewrite the
//! body so that the other party sends to this node instead.
//!
//! The rewrite works line by line and keeps every line it has no reason to touch (codecs,
//! `fmtp`, direction, bandwidth, unknown attributes), as a proxy must:
//! - the first audio `m=` line gets this node's port for the leg; any further `m=` line is
//!   rejected (port 0): a node relays one audio stream per call;
//! - every `c=` line (session level, and media level of the relayed stream) names this node;
//!   `replace origin` also rewrites the `o=` line's address;
//! - `a=rtcp:` (RFC 3605) names the leg's RTCP port (RTP + 1) and this node;
//! - ICE attributes are removed (this node is no ICE agent: candidates would route around it);
//! - `transport-protocol` replaces the relayed `m=` line's protocol (`RTP/AVP`).

use std::net::{IpAddr, SocketAddr};

use crate::NgError;

/// Where a party receives the call's audio, from its SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTarget {
    /// Address and RTP port; `None` when the stream is rejected (port 0) or on hold with
    /// the null address (`0.0.0.0`).
    pub rtp: Option<SocketAddr>,
}

/// How to rewrite a body for the party that receives it.
#[derive(Debug, Clone, Copy)]
pub struct Rewrite<'a> {
    /// This node's address for the leg.
    pub address: IpAddr,
    /// The leg's RTP port.
    pub port: u16,
    /// Rewrite the `o=` line's address.
    pub replace_origin: bool,
    /// The `m=` protocol to write, if asked.
    pub transport_protocol: Option<&'a str>,
}

fn lines(sdp: &str) -> impl Iterator<Item = &str> {
    sdp.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

/// `c=IN IP4 192.0.2.1` (or `/ttl` suffixed) → the address.
fn connection(value: &str) -> Result<IpAddr, NgError> {
    let mut f = value.split_ascii_whitespace();
    let (Some("IN"), Some(_), Some(addr)) = (f.next(), f.next(), f.next()) else {
        return Err(NgError::Sdp(format!("bad c= line: {value}")));
    };
    let addr = addr.split('/').next().unwrap_or(addr);
    addr.parse()
        .map_err(|_| NgError::Sdp(format!("c= address is not an IP address: {addr}")))
}

/// Finds the first audio stream's target.
///
/// # Errors
/// [`NgError::Sdp`] when there is no audio `m=` line, no `c=` for it, or a line is malformed.
pub fn audio_target(sdp: &str) -> Result<AudioTarget, NgError> {
    let mut session_c = None;
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut port = None;
    let mut media_c = None;
    for l in lines(sdp) {
        if let Some(m) = l.strip_prefix("m=") {
            if seen_audio {
                break;
            }
            let mut f = m.split_ascii_whitespace();
            if f.next() == Some("audio") {
                let p = f.next().unwrap_or("");
                let p = p.split('/').next().unwrap_or(p);
                port = Some(
                    p.parse::<u16>()
                        .map_err(|_| NgError::Sdp(format!("bad m= port: {p}")))?,
                );
                in_audio = true;
                seen_audio = true;
            } else {
                in_audio = false;
            }
        } else if let Some(c) = l.strip_prefix("c=") {
            if in_audio {
                media_c = Some(connection(c)?);
            } else if !seen_audio && port.is_none() {
                session_c = Some(connection(c)?);
            }
        }
    }
    let port = port.ok_or_else(|| NgError::Sdp("no audio m= line".into()))?;
    let addr = media_c
        .or(session_c)
        .ok_or_else(|| NgError::Sdp("no c= line for the audio stream".into()))?;
    let rtp = (port != 0 && !addr.is_unspecified()).then(|| SocketAddr::new(addr, port));
    Ok(AudioTarget { rtp })
}

/// Rewrites `sdp` for the party that receives it (see the module docs). Lines end in CRLF.
///
/// # Errors
/// [`NgError::Sdp`] when there is no audio `m=` line.
pub fn rewrite(sdp: &str, r: &Rewrite<'_>) -> Result<String, NgError> {
    let fam = family(r.address);
    let mut out = String::with_capacity(sdp.len() + 64);
    // 0: session level, 1: the relayed audio stream, 2: another (rejected) stream.
    let mut section = 0u8;
    let mut relayed = false;
    for l in lines(sdp) {
        if let Some(m) = l.strip_prefix("m=") {
            let mut f: Vec<&str> = m.split_ascii_whitespace().collect();
            if f.len() < 3 {
                return Err(NgError::Sdp(format!("bad m= line: {l}")));
            }
            let port = if f[0] == "audio" && !relayed {
                relayed = true;
                section = 1;
                r.port.to_string()
            } else {
                section = 2;
                "0".to_owned()
            };
            f[1] = &port;
            if section == 1 {
                if let Some(p) = r.transport_protocol {
                    f[2] = p;
                }
            }
            out.push_str("m=");
            out.push_str(&f.join(" "));
        } else if l.starts_with("c=") {
            if section == 2 {
                out.push_str(l);
            } else {
                out.push_str(&format!("c=IN {fam} {}", r.address));
            }
        } else if let (Some(o), true) = (l.strip_prefix("o="), r.replace_origin) {
            let mut f: Vec<String> = o.split_ascii_whitespace().map(str::to_owned).collect();
            if f.len() == 6 {
                f[4] = fam.to_owned();
                f[5] = r.address.to_string();
            }
            out.push_str("o=");
            out.push_str(&f.join(" "));
        } else if let Some(a) = l.strip_prefix("a=") {
            let name = a.split(':').next().unwrap_or(a);
            if matches!(
                name,
                "ice-ufrag"
                    | "ice-pwd"
                    | "ice-options"
                    | "ice-lite"
                    | "ice-mismatch"
                    | "candidate"
                    | "remote-candidates"
                    | "end-of-candidates"
            ) {
                continue;
            }
            if name == "rtcp" && section == 1 {
                out.push_str(&format!(
                    "a=rtcp:{} IN {fam} {}",
                    u32::from(r.port) + 1,
                    r.address
                ));
            } else {
                out.push_str(l);
            }
        } else {
            out.push_str(l);
        }
        out.push_str("\r\n");
    }
    if !relayed {
        return Err(NgError::Sdp("no audio m= line".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 198.18.0.2\r\ns=-\r\n\
        c=IN IP4 198.18.0.2\r\nt=0 0\r\nm=audio 49170 RTP/SAVPF 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=rtcp:49171\r\na=ice-ufrag:abcd\r\n\
        a=ice-pwd:secretsecretsecret\r\na=candidate:1 1 UDP 2130706431 10.0.0.1 49170 typ host\r\n\
        a=sendrecv\r\nm=video 51372 RTP/AVP 31\r\nc=IN IP4 198.18.0.9\r\na=rtpmap:31 H261/90000\r\n";

    #[test]
    fn finds_the_audio_target() {
        let t = audio_target(OFFER).unwrap();
        assert_eq!(t.rtp, Some("198.18.0.2:49170".parse().unwrap()));
        let held = "v=0\nc=IN IP4 0.0.0.0\nm=audio 4000 RTP/AVP 0\n";
        assert_eq!(audio_target(held).unwrap().rtp, None);
        let media_level = "v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP 0\nc=IN IP6 2001:db8::1\n";
        assert_eq!(
            audio_target(media_level).unwrap().rtp,
            Some("[2001:db8::1]:4000".parse().unwrap())
        );
        assert!(audio_target("v=0\nm=video 1 RTP/AVP 31\nc=IN IP4 1.2.3.4\n").is_err());
        assert!(audio_target("v=0\nm=audio 1 RTP/AVP 0\n").is_err());
        assert!(audio_target("v=0\nc=IN IP4 nonsense\nm=audio 1 RTP/AVP 0\n").is_err());
        assert!(audio_target("v=0\nc=IN IP4 1.2.3.4\nm=audio x RTP/AVP 0\n").is_err());
    }

    #[test]
    fn rewrites_addresses_ports_ice_and_protocol_and_keeps_the_rest() {
        let out = rewrite(
            OFFER,
            &Rewrite {
                address: "198.18.5.1".parse().unwrap(),
                port: 30000,
                replace_origin: true,
                transport_protocol: Some("RTP/AVP"),
            },
        )
        .unwrap();
        assert!(
            out.contains("o=alice 2890844526 2890844526 IN IP4 198.18.5.1\r\n"),
            "{out}"
        );
        assert!(out.contains("\r\nc=IN IP4 198.18.5.1\r\n"), "{out}");
        assert!(out.contains("m=audio 30000 RTP/AVP 0 8 101\r\n"), "{out}");
        assert!(out.contains("a=rtcp:30001 IN IP4 198.18.5.1\r\n"), "{out}");
        assert!(out.contains("a=fmtp:101 0-15\r\n"), "{out}");
        assert!(out.contains("a=sendrecv\r\n"), "{out}");
        assert!(!out.contains("ice-") && !out.contains("candidate"), "{out}");
        assert!(out.contains("m=video 0 RTP/AVP 31\r\n"), "{out}");
        assert!(!out.contains("198.18.0.2"), "{out}");
        // The rewritten body names the node as the audio target.
        assert_eq!(
            audio_target(&out).unwrap().rtp,
            Some("198.18.5.1:30000".parse().unwrap())
        );
    }

    #[test]
    fn origin_kept_without_the_flag() {
        let out = rewrite(
            OFFER,
            &Rewrite {
                address: "198.18.5.1".parse().unwrap(),
                port: 30000,
                replace_origin: false,
                transport_protocol: None,
            },
        )
        .unwrap();
        assert!(out.contains("IN IP4 198.18.0.2\r\ns=-"), "{out}");
        assert!(out.contains("m=audio 30000 RTP/SAVPF"), "{out}");
    }
}
