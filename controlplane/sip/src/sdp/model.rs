//! The SDP model (RFC 4566/8866) as far as audio offer/answer needs it, its parser and its
//! writer.
//!
//! The parser is lenient where the field does not matter to us (unknown lines and attributes
//! are skipped, a malformed `a=crypto` or `a=rtcp` is ignored) and strict where a wrong value
//! would send media to the wrong place (`v=`, `m=`, `c=`, `a=rtpmap`). It never panics, on any
//! input (`tests::mutations_never_panic`).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::error::SipError;

/// Media direction attribute (RFC 3264 5.1), always from the point of view of the party
/// that wrote the SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default when absent).
    #[default]
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

impl Direction {
    /// The mirror image: what the other side does for this direction (RFC 3264 6.1:
    /// sendonly ↔ recvonly; sendrecv and inactive stay).
    #[must_use]
    pub fn answer(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            d => d,
        }
    }

    /// Whether the writer sends media.
    #[must_use]
    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether the writer wants to receive media.
    #[must_use]
    pub fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// The direction that sends iff `send` and receives iff `recv`.
    #[must_use]
    pub fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Self::SendRecv,
            (true, false) => Self::SendOnly,
            (false, true) => Self::RecvOnly,
            (false, false) => Self::Inactive,
        }
    }

    /// Both constraints at once: sends only if both allow sending, receives only if both
    /// allow receiving.
    #[must_use]
    pub fn intersect(self, other: Self) -> Self {
        Self::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// The attribute name (`sendrecv`, …).
    #[must_use]
    pub fn as_attr(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    fn from_attr(name: &str) -> Option<Self> {
        Some(match name {
            "sendrecv" => Self::SendRecv,
            "sendonly" => Self::SendOnly,
            "recvonly" => Self::RecvOnly,
            "inactive" => Self::Inactive,
            _ => return None,
        })
    }
}

/// One `a=rtpmap` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name as written (e.g. `PCMU`, `telephone-event`).
    pub encoding: String,
    /// Clock rate.
    pub clock_rate: u32,
}

/// One `a=fmtp` line (format parameters, kept as written: `0-16`, `annexb=no`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// Payload type.
    pub payload_type: u8,
    /// Everything after the payload type.
    pub params: String,
}

/// One `a=crypto` line (RFC 4568 SDES). Fields are kept as strings: key decoding and the
/// SRTP context belong to the media layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    /// The tag, unique within the media description; the answer echoes the accepted one.
    pub tag: u32,
    /// Crypto suite as written, e.g. `AES_CM_128_HMAC_SHA1_80`.
    pub suite: String,
    /// Key parameters as written, e.g. `inline:<base64 key||salt>|2^20|1:32` (several keys
    /// are separated by `;`).
    pub key_params: String,
    /// Session parameters as written (`UNENCRYPTED_SRTCP`, `KDR=…`, …), possibly empty.
    pub session_params: Vec<String>,
}

impl Crypto {
    fn parse(arg: &str) -> Option<Self> {
        let mut it = arg.split_whitespace();
        let tag = it.next()?;
        if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            tag: tag.parse().ok()?,
            suite: it.next()?.to_string(),
            key_params: it.next()?.to_string(),
            session_params: it.map(str::to_string).collect(),
        })
    }

    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "a=crypto:{} {} {}",
            self.tag, self.suite, self.key_params
        );
        for p in &self.session_params {
            out.push(' ');
            out.push_str(p);
        }
        out.push_str("\r\n");
    }
}

/// `a=rtcp` (RFC 3605): the RTCP port, and address when it is not the RTP one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtcp {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when given.
    pub address: Option<IpAddr>,
}

impl Rtcp {
    fn parse(arg: &str) -> Option<Self> {
        let mut it = arg.split_whitespace();
        let port = it.next()?.parse().ok()?;
        let address = match (it.next(), it.next(), it.next()) {
            (Some("IN"), Some(_), Some(addr)) => Some(addr.parse().ok()?),
            _ => None,
        };
        Some(Self { port, address })
    }
}

/// The `o=` line. Within one session, every SDP a party sends carries the same username,
/// session id and address; the version grows by one each time the SDP changes (RFC 3264 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username (`-` when none).
    pub username: String,
    /// Session id, kept as written (digits, possibly beyond 64 bits).
    pub session_id: String,
    /// Session version.
    pub version: u64,
    /// Unicast address of the originating host, as written.
    pub address: String,
}

impl Origin {
    fn parse(value: &str) -> Result<Self, SipError> {
        let bad = || SipError::Sdp(format!("bad o= line {value:?}"));
        let f: Vec<&str> = value.split_whitespace().collect();
        let [username, session_id, version, _net, _kind, address] = f[..] else {
            return Err(bad());
        };
        Ok(Self {
            username: username.to_string(),
            session_id: session_id.to_string(),
            // A version that does not fit u64 is still a version; saturate rather than fail.
            version: if version.bytes().all(|b| b.is_ascii_digit()) && !version.is_empty() {
                version.parse().unwrap_or(u64::MAX)
            } else {
                return Err(bad());
            },
            address: address.to_string(),
        })
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Media type (`audio`, `video`, …).
    pub kind: String,
    /// Port (0 = stream rejected/disabled).
    pub port: u16,
    /// Transport protocol (`RTP/AVP`, `RTP/SAVP`, …).
    pub proto: String,
    /// Formats in preference order (payload types for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=` address.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines.
    pub fmtps: Vec<Fmtp>,
    /// `a=ptime` in ms (a fractional value is truncated).
    pub ptime: Option<u32>,
    /// `a=maxptime` in ms.
    pub maxptime: Option<u32>,
    /// The writer's direction: the media-level attribute, else the session-level one, else
    /// sendrecv — then downgraded by an old-style hold address (see
    /// [`Media::zero_address_hold`]).
    pub direction: Direction,
    /// The stream's connection address is `0.0.0.0` (or `::`): RFC 2543 hold. RFC 3264 8.4:
    /// neither RTP nor RTCP may be sent to the writer, so [`Media::direction`] has lost its
    /// receive half (sendrecv → sendonly, recvonly → inactive).
    pub zero_address_hold: bool,
    /// `a=rtcp` (RFC 3605).
    pub rtcp: Option<Rtcp>,
    /// `a=rtcp-mux` was present (RFC 5761). Noted only: we answer without it, so RTCP stays
    /// on its own port.
    pub rtcp_mux: bool,
    /// `a=crypto` lines in the writer's preference order (RFC 4568).
    pub crypto: Vec<Crypto>,
}

impl Media {
    /// A media section with no attributes.
    #[must_use]
    pub fn new(kind: &str, port: u16, proto: &str, formats: Vec<String>) -> Self {
        Self {
            kind: kind.to_string(),
            port,
            proto: proto.to_string(),
            formats,
            connection: None,
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            ptime: None,
            maxptime: None,
            direction: Direction::SendRecv,
            zero_address_hold: false,
            rtcp: None,
            rtcp_mux: false,
            crypto: Vec::new(),
        }
    }

    /// The rtpmap for a payload type.
    #[must_use]
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    /// The fmtp parameters for a payload type.
    #[must_use]
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|f| f.payload_type == pt)
            .map(|f| f.params.as_str())
    }

    /// The codec name for a payload type: its rtpmap, or the RFC 3551 static assignment.
    #[must_use]
    pub fn codec_name(&self, pt: u8) -> Option<String> {
        if let Some(m) = self.rtpmap(pt) {
            return Some(format!(
                "{}/{}",
                m.encoding.to_ascii_uppercase(),
                m.clock_rate
            ));
        }
        match pt {
            0 => Some("PCMU/8000".into()),
            8 => Some("PCMA/8000".into()),
            _ => None,
        }
    }

    /// Payload types listed on the `m=` line, in order (formats that are not numbers are
    /// skipped).
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse().ok())
    }

    /// The first listed telephone-event/8000 payload type (RFC 4733).
    #[must_use]
    pub fn telephone_event(&self) -> Option<u8> {
        self.payload_types().find(|&pt| {
            self.rtpmap(pt).is_some_and(|r| {
                r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == 8000
            })
        })
    }

    /// Port 0: the stream is rejected or disabled.
    #[must_use]
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// The profile is secure RTP (`RTP/SAVP`, `RTP/SAVPF`, …).
    #[must_use]
    pub fn is_savp(&self) -> bool {
        self.proto.to_ascii_uppercase().contains("SAVP")
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The `o=` line (absent in sloppy SDP; we always write one).
    pub origin: Option<Origin>,
    /// `s=` (we write `callbridge`).
    pub name: String,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// `m=` sections in order.
    pub media: Vec<Media>,
}

impl SessionDescription {
    /// Parses SDP text (CRLF or LF line ends). Media-level values win over session-level
    /// ones (connection, direction).
    ///
    /// # Errors
    /// [`SipError::Sdp`] saying which line is wrong (the SIP layer answers 400).
    pub fn parse(text: &str) -> Result<Self, SipError> {
        let mut sdp = Self {
            origin: None,
            name: String::new(),
            connection: None,
            media: Vec::new(),
        };
        let mut session_direction = None;
        let mut media_direction: Vec<Option<Direction>> = Vec::new();
        let mut saw_version = false;
        for raw in text.lines() {
            let line = raw.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (kind, value) = line
                .split_once('=')
                .filter(|(k, _)| k.len() == 1)
                .ok_or_else(|| SipError::Sdp(format!("not a type=value line: {line:?}")))?;
            match kind {
                "v" => {
                    if value.trim() != "0" {
                        return Err(SipError::Sdp(format!("unsupported version v={value}")));
                    }
                    saw_version = true;
                }
                "o" if sdp.media.is_empty() => sdp.origin = Some(Origin::parse(value)?),
                "s" if sdp.media.is_empty() => sdp.name = value.to_string(),
                "c" => {
                    let addr = parse_connection(value)?;
                    match sdp.media.last_mut() {
                        Some(m) => m.connection = Some(addr),
                        None => sdp.connection = Some(addr),
                    }
                }
                "m" => {
                    sdp.media.push(parse_media_line(value)?);
                    media_direction.push(None);
                }
                "a" => {
                    let (name, arg) = match value.split_once(':') {
                        Some((n, a)) => (n, Some(a.trim())),
                        None => (value, None),
                    };
                    if let Some(d) = Direction::from_attr(name) {
                        match media_direction.last_mut() {
                            Some(slot) => *slot = Some(d),
                            None => session_direction = Some(d),
                        }
                        continue;
                    }
                    let Some(m) = sdp.media.last_mut() else {
                        continue;
                    };
                    parse_media_attr(m, name, arg)?;
                }
                _ => {}
            }
        }
        if !saw_version {
            return Err(SipError::Sdp("missing v= line".into()));
        }
        let session_c = sdp.connection;
        for (m, d) in sdp.media.iter_mut().zip(media_direction) {
            m.direction = d.or(session_direction).unwrap_or_default();
            if m.port != 0
                && m.connection
                    .or(session_c)
                    .is_some_and(|ip| ip.is_unspecified())
            {
                m.zero_address_hold = true;
                m.direction = m.direction.intersect(Direction::SendOnly);
            }
        }
        Ok(sdp)
    }

    /// The first audio `m=` section.
    ///
    /// # Errors
    /// [`SipError::Sdp`] if there is none.
    pub fn audio(&self) -> Result<&Media, SipError> {
        self.media
            .iter()
            .find(|m| m.kind == "audio")
            .ok_or_else(|| SipError::Sdp("no m=audio line".into()))
    }

    /// The index of the first audio stream that is not rejected (port ≠ 0).
    #[must_use]
    pub fn active_audio_index(&self) -> Option<usize> {
        self.media
            .iter()
            .position(|m| m.kind == "audio" && m.port != 0)
    }

    /// Where the writer of this SDP receives RTP for `m`: media-level `c=`, else session-level.
    ///
    /// # Errors
    /// [`SipError::Sdp`] when the stream is disabled (port 0) or has no `c=`.
    pub fn rtp_address(&self, m: &Media) -> Result<SocketAddr, SipError> {
        if m.port == 0 {
            return Err(SipError::Sdp(format!(
                "{} stream is disabled (port 0)",
                m.kind
            )));
        }
        let ip = m.connection.or(self.connection).ok_or_else(|| {
            SipError::Sdp(format!("no c= line at session or {} media level", m.kind))
        })?;
        Ok(SocketAddr::new(ip, m.port))
    }

    /// Where the writer receives RTCP for `m`: `a=rtcp` (RFC 3605) when given, else the RTP
    /// port + 1 on the RTP address (RFC 3550 11). `None` if RTP port is 65535 and no `a=rtcp`.
    ///
    /// # Errors
    /// As [`SessionDescription::rtp_address`].
    pub fn rtcp_address(&self, m: &Media) -> Result<Option<SocketAddr>, SipError> {
        let rtp = self.rtp_address(m)?;
        Ok(match m.rtcp {
            Some(r) => Some(SocketAddr::new(r.address.unwrap_or(rtp.ip()), r.port)),
            None => rtp
                .port()
                .checked_add(1)
                .map(|p| SocketAddr::new(rtp.ip(), p)),
        })
    }

    /// Writes the description as SDP text (CRLF line ends). Every accepted stream carries an
    /// explicit direction attribute; a rejected stream (port 0) only its `m=` line.
    #[must_use]
    pub fn to_sdp_string(&self) -> String {
        let mut s = String::with_capacity(256);
        s.push_str("v=0\r\n");
        if let Some(o) = &self.origin {
            let kind = match o.address.parse::<IpAddr>() {
                Ok(IpAddr::V6(_)) => "IP6",
                _ => "IP4",
            };
            let _ = write!(
                s,
                "o={} {} {} IN {kind} {}\r\n",
                o.username, o.session_id, o.version, o.address
            );
        }
        let _ = write!(
            s,
            "s={}\r\n",
            if self.name.is_empty() {
                "-"
            } else {
                &self.name
            }
        );
        if let Some(c) = self.connection {
            write_connection(&mut s, c);
        }
        s.push_str("t=0 0\r\n");
        for m in &self.media {
            let _ = write!(s, "m={} {} {}", m.kind, m.port, m.proto);
            for f in &m.formats {
                s.push(' ');
                s.push_str(f);
            }
            s.push_str("\r\n");
            if m.port == 0 {
                continue;
            }
            if let Some(c) = m.connection {
                write_connection(&mut s, c);
            }
            for r in &m.rtpmaps {
                let _ = write!(
                    s,
                    "a=rtpmap:{} {}/{}\r\n",
                    r.payload_type, r.encoding, r.clock_rate
                );
            }
            for f in &m.fmtps {
                let _ = write!(s, "a=fmtp:{} {}\r\n", f.payload_type, f.params);
            }
            if let Some(p) = m.ptime {
                let _ = write!(s, "a=ptime:{p}\r\n");
            }
            if let Some(p) = m.maxptime {
                let _ = write!(s, "a=maxptime:{p}\r\n");
            }
            if let Some(r) = m.rtcp {
                let _ = write!(s, "a=rtcp:{}", r.port);
                if let Some(ip) = r.address {
                    let _ = write!(s, " IN {} {ip}", ip_kind(ip));
                }
                s.push_str("\r\n");
            }
            if m.rtcp_mux {
                s.push_str("a=rtcp-mux\r\n");
            }
            for c in &m.crypto {
                c.write(&mut s);
            }
            let _ = write!(s, "a={}\r\n", m.direction.as_attr());
        }
        s
    }
}

pub(super) fn ip_kind(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

fn write_connection(s: &mut String, ip: IpAddr) {
    let _ = write!(s, "c=IN {} {ip}\r\n", ip_kind(ip));
}

fn parse_connection(value: &str) -> Result<IpAddr, SipError> {
    let mut it = value.split_whitespace();
    let (Some("IN"), Some(_), Some(addr)) = (it.next(), it.next(), it.next()) else {
        return Err(SipError::Sdp(format!("bad c= line {value:?}")));
    };
    let addr = addr.split('/').next().unwrap_or("");
    addr.parse()
        .map_err(|_| SipError::Sdp(format!("c= address is not an IP literal: {addr:?}")))
}

fn parse_media_line(value: &str) -> Result<Media, SipError> {
    let mut it = value.split_whitespace();
    let (Some(kind), Some(port), Some(proto)) = (it.next(), it.next(), it.next()) else {
        return Err(SipError::Sdp(format!(
            "m= line needs media, port and proto: {value:?}"
        )));
    };
    let port = port.split('/').next().unwrap_or("");
    let port: u16 = port
        .parse()
        .map_err(|_| SipError::Sdp(format!("bad m= port in {value:?}")))?;
    Ok(Media::new(
        kind,
        port,
        proto,
        it.map(str::to_string).collect(),
    ))
}

fn parse_ms(name: &str, arg: &str) -> Result<u32, SipError> {
    // Some endpoints write `a=ptime:20.0`; the integer part is what we use.
    let int = arg.split('.').next().unwrap_or("");
    int.parse()
        .map_err(|_| SipError::Sdp(format!("bad a={name}:{arg}")))
}

fn parse_media_attr(m: &mut Media, name: &str, arg: Option<&str>) -> Result<(), SipError> {
    match (name, arg) {
        ("rtpmap", Some(arg)) => m.rtpmaps.push(parse_rtpmap(arg)?),
        ("fmtp", Some(arg)) => {
            if let Some((pt, params)) = arg.split_once(' ') {
                if let Ok(payload_type) = pt.parse() {
                    m.fmtps.push(Fmtp {
                        payload_type,
                        params: params.trim().to_string(),
                    });
                }
            }
        }
        ("ptime", Some(arg)) => m.ptime = Some(parse_ms(name, arg)?),
        ("maxptime", Some(arg)) => m.maxptime = Some(parse_ms(name, arg)?),
        ("rtcp", Some(arg)) => m.rtcp = Rtcp::parse(arg),
        ("rtcp-mux", _) => m.rtcp_mux = true,
        ("crypto", Some(arg)) => m.crypto.extend(Crypto::parse(arg)),
        _ => {}
    }
    Ok(())
}

fn parse_rtpmap(arg: &str) -> Result<RtpMap, SipError> {
    let bad = || SipError::Sdp(format!("bad a=rtpmap:{arg}"));
    let (pt, enc) = arg.split_once(' ').ok_or_else(bad)?;
    let mut parts = enc.trim().split('/');
    let encoding = parts
        .next()
        .filter(|e| !e.is_empty())
        .ok_or_else(bad)?
        .to_string();
    let clock_rate = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    Ok(RtpMap {
        payload_type: pt.trim().parse().map_err(|_| bad())?,
        encoding,
        clock_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "v=0\r\no=- 7 9 IN IP6 2001:db8::1\r\ns=x\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n\
a=sendonly\r\n\
m=audio 49170 RTP/SAVP 8 0 96\r\nc=IN IP6 2001:db8::2\r\na=rtpmap:96 telephone-event/8000\r\n\
a=fmtp:96 0-15\r\na=ptime:20.0\r\na=maxptime:40\r\na=rtcp:53020 IN IP6 2001:db8::3\r\na=rtcp-mux\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32 UNENCRYPTED_SRTCP\r\n\
a=crypto:x broken\r\n\
m=video 0 RTP/AVP 31\r\n";

    #[test]
    fn parses_every_field() {
        let sdp = SessionDescription::parse(FULL).unwrap();
        let o = sdp.origin.as_ref().unwrap();
        assert_eq!((o.session_id.as_str(), o.version), ("7", 9));
        let m = &sdp.media[0];
        assert_eq!(m.connection, Some("2001:db8::2".parse().unwrap()));
        assert_eq!((m.ptime, m.maxptime), (Some(20), Some(40)));
        assert_eq!(m.direction, Direction::SendOnly, "session-level direction");
        assert!(m.is_savp() && m.rtcp_mux);
        assert_eq!(m.telephone_event(), Some(96));
        assert_eq!(m.fmtp(96), Some("0-15"));
        assert_eq!(m.crypto.len(), 2, "the malformed crypto line is skipped");
        assert_eq!(m.crypto[1].session_params, vec!["UNENCRYPTED_SRTCP"]);
        assert_eq!(
            sdp.rtcp_address(m).unwrap(),
            Some("[2001:db8::3]:53020".parse().unwrap())
        );
        assert_eq!(
            sdp.rtp_address(m).unwrap(),
            "[2001:db8::2]:49170".parse().unwrap()
        );
        assert!(sdp.media[1].is_rejected());
    }

    #[test]
    fn writes_what_it_parses() {
        let mut sdp = SessionDescription::parse(FULL).unwrap();
        let text = sdp.to_sdp_string();
        // A rejected stream is written as its m= line only: no direction to inherit.
        sdp.media[1].direction = Direction::SendRecv;
        let again = SessionDescription::parse(&text).unwrap();
        assert_eq!(again, sdp);
        assert!(text.contains("o=- 7 9 IN IP6 2001:db8::1\r\n"));
        assert!(text.contains("a=rtcp:53020 IN IP6 2001:db8::3\r\n"));
    }

    #[test]
    fn zero_address_is_old_style_hold() {
        let held = |c: &str, dir: &str| {
            let text = format!("v=0\r\nc=IN IP4 {c}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n{dir}");
            SessionDescription::parse(&text).unwrap().media[0].clone()
        };
        let m = held("0.0.0.0", "");
        assert!(m.zero_address_hold);
        assert_eq!(m.direction, Direction::SendOnly);
        assert_eq!(
            held("0.0.0.0", "a=recvonly\r\n").direction,
            Direction::Inactive
        );
        assert_eq!(
            held("1.2.3.4", "a=recvonly\r\n").direction,
            Direction::RecvOnly
        );
        assert!(!held("1.2.3.4", "").zero_address_hold);
    }

    #[test]
    fn rtcp_defaults_to_port_plus_one_without_overflow() {
        let sdp = SessionDescription::parse(
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 65535 RTP/AVP 0\r\nm=audio 5000 RTP/AVP 0\r\n",
        )
        .unwrap();
        assert_eq!(sdp.rtcp_address(&sdp.media[0]).unwrap(), None);
        assert_eq!(
            sdp.rtcp_address(&sdp.media[1]).unwrap(),
            Some("1.2.3.4:5001".parse().unwrap())
        );
    }

    #[test]
    fn direction_algebra() {
        use Direction::*;
        for d in [SendRecv, SendOnly, RecvOnly, Inactive] {
            assert_eq!(d.answer().answer(), d);
            assert_eq!(Direction::from_flags(d.sends(), d.receives()), d);
            assert_eq!(d.intersect(SendRecv), d);
            assert_eq!(d.intersect(Inactive), Inactive);
        }
        assert_eq!(SendOnly.intersect(RecvOnly), Inactive);
    }
}
