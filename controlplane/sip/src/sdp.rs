//! SDP (RFC 4566) parsing and building, and audio offer/answer (RFC 3264).
//!
//! We speak G.711 only: PCMU (0) and PCMA (8), plus telephone-event (RFC 4733). An offer we
//! build lists `0 8 101`; an answer picks the first offered codec we support and keeps
//! telephone-event if offered.

use std::net::{IpAddr, SocketAddr};

use crate::error::SipError;

/// Media direction attribute (RFC 3264 5.1).
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
    /// The direction an answerer uses for this offered direction.
    pub fn answer(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            d => d,
        }
    }

    fn as_attr(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
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

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Media type (`audio`, `video`, …).
    pub kind: String,
    /// Port (0 = stream rejected/disabled).
    pub port: u16,
    /// Transport protocol (`RTP/AVP`).
    pub proto: String,
    /// Formats in preference order (payload types for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=` address.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=ptime`.
    pub ptime: Option<u32>,
    /// Direction attribute (media-level, else session-level, else sendrecv).
    pub direction: Direction,
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// `m=` sections in order.
    pub media: Vec<Media>,
}

/// The outcome of negotiation for the audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Where to send RTP.
    pub remote: SocketAddr,
    /// The chosen codec's payload type.
    pub payload_type: u8,
    /// telephone-event payload type, if both sides have it.
    pub telephone_event: Option<u8>,
    /// Packetisation time in ms (20 if not given).
    pub ptime: u32,
    /// Our direction.
    pub direction: Direction,
}

impl Media {
    /// The rtpmap for a payload type.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    /// The codec name for a payload type: its rtpmap, or the RFC 3551 static assignment.
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

    fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse().ok())
    }
}

impl SessionDescription {
    /// Parses SDP text (CRLF or LF line ends).
    ///
    /// # Errors
    /// [`SipError::Sdp`] saying which line is wrong.
    pub fn parse(text: &str) -> Result<Self, SipError> {
        let mut connection = None;
        let mut session_direction = None;
        let mut media: Vec<Media> = Vec::new();
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
                "c" => {
                    let addr = parse_connection(value)?;
                    match media.last_mut() {
                        Some(m) => m.connection = Some(addr),
                        None => connection = Some(addr),
                    }
                }
                "m" => {
                    let mut it = value.split_whitespace();
                    let (Some(kind), Some(port), Some(proto)) = (it.next(), it.next(), it.next())
                    else {
                        return Err(SipError::Sdp(format!(
                            "m= line needs media, port and proto: {line:?}"
                        )));
                    };
                    let port = port.split('/').next().unwrap_or("");
                    let port: u16 = port
                        .parse()
                        .map_err(|_| SipError::Sdp(format!("bad m= port in {line:?}")))?;
                    media.push(Media {
                        kind: kind.to_string(),
                        port,
                        proto: proto.to_string(),
                        formats: it.map(str::to_string).collect(),
                        connection: None,
                        rtpmaps: Vec::new(),
                        ptime: None,
                        direction: Direction::SendRecv,
                    });
                    media_direction.push(None);
                }
                "a" => {
                    let (name, arg) = match value.split_once(':') {
                        Some((n, a)) => (n, Some(a.trim())),
                        None => (value, None),
                    };
                    let dir = match name {
                        "sendrecv" => Some(Direction::SendRecv),
                        "sendonly" => Some(Direction::SendOnly),
                        "recvonly" => Some(Direction::RecvOnly),
                        "inactive" => Some(Direction::Inactive),
                        _ => None,
                    };
                    if let Some(d) = dir {
                        match media_direction.last_mut() {
                            Some(slot) => *slot = Some(d),
                            None => session_direction = Some(d),
                        }
                        continue;
                    }
                    let Some(m) = media.last_mut() else { continue };
                    match (name, arg) {
                        ("rtpmap", Some(arg)) => m.rtpmaps.push(parse_rtpmap(arg)?),
                        ("ptime", Some(arg)) => {
                            m.ptime = Some(
                                arg.parse()
                                    .map_err(|_| SipError::Sdp(format!("bad a=ptime:{arg}")))?,
                            );
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !saw_version {
            return Err(SipError::Sdp("missing v= line".into()));
        }
        for (m, d) in media.iter_mut().zip(media_direction) {
            m.direction = d.or(session_direction).unwrap_or_default();
        }
        Ok(Self { connection, media })
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

    fn audio_address(&self, m: &Media) -> Result<SocketAddr, SipError> {
        if m.port == 0 {
            return Err(SipError::Sdp("audio stream is disabled (port 0)".into()));
        }
        let ip = m
            .connection
            .or(self.connection)
            .ok_or_else(|| SipError::Sdp("no c= line at session or audio media level".into()))?;
        Ok(SocketAddr::new(ip, m.port))
    }

    /// Reads an answer to our offer: the remote RTP address and the codec the answerer chose
    /// (its first payload type that is one we offered: PCMU or PCMA).
    ///
    /// # Errors
    /// [`SipError::Sdp`] when no audio, no address, or no common codec.
    pub fn negotiated_from_answer(&self) -> Result<Negotiated, SipError> {
        let m = self.audio()?;
        let remote = self.audio_address(m)?;
        let payload_type = choose_codec(m)?;
        Ok(Negotiated {
            remote,
            payload_type,
            telephone_event: telephone_event(m),
            ptime: m.ptime.unwrap_or(20),
            direction: m.direction.answer(),
        })
    }
}

fn choose_codec(m: &Media) -> Result<u8, SipError> {
    m.payload_types()
        .find(|&pt| matches!(m.codec_name(pt).as_deref(), Some("PCMU/8000" | "PCMA/8000")))
        .ok_or_else(|| {
            SipError::Sdp(format!(
                "no common codec: offered {:?}, we support PCMU, PCMA",
                m.formats
            ))
        })
}

fn telephone_event(m: &Media) -> Option<u8> {
    m.payload_types().find(|&pt| {
        m.rtpmap(pt).is_some_and(|r| {
            r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == 8000
        })
    })
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

fn ip_kind(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

fn session_header(ip: IpAddr, session_id: u64) -> String {
    let k = ip_kind(ip);
    format!("v=0\r\no=callbridge {session_id} {session_id} IN {k} {ip}\r\ns=callbridge\r\nc=IN {k} {ip}\r\nt=0 0\r\n")
}

/// Our offer: PCMU 0, PCMA 8, telephone-event 101, ptime 20, sendrecv.
pub fn build_offer(rtp: SocketAddr, session_id: u64) -> String {
    let mut s = session_header(rtp.ip(), session_id);
    s.push_str(&format!(
        "m=audio {} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
        rtp.port()
    ));
    s
}

/// Our answer to `offer`, with our RTP at `rtp`: the first offered codec we support, plus
/// telephone-event if offered. Other `m=` lines are refused with port 0 (RFC 3264 6).
///
/// # Errors
/// [`SipError::Sdp`] when the offer has no usable audio stream or no common codec.
pub fn build_answer(
    offer: &SessionDescription,
    rtp: SocketAddr,
    session_id: u64,
) -> Result<(String, Negotiated), SipError> {
    let audio_idx = offer
        .media
        .iter()
        .position(|m| m.kind == "audio" && m.port != 0)
        .ok_or_else(|| SipError::Sdp("offer has no enabled m=audio line".into()))?;
    let m = &offer.media[audio_idx];
    let remote = offer.audio_address(m)?;
    let pt = choose_codec(m)?;
    let te = telephone_event(m);
    let direction = m.direction.answer();
    let ptime = m.ptime.unwrap_or(20);
    let mut s = session_header(rtp.ip(), session_id);
    for (i, other) in offer.media.iter().enumerate() {
        if i != audio_idx {
            s.push_str(&format!(
                "m={} 0 {} {}\r\n",
                other.kind,
                other.proto,
                other.formats.join(" ")
            ));
            continue;
        }
        let name = m.codec_name(pt).unwrap_or_default();
        let mut fmts = pt.to_string();
        let mut attrs = format!("a=rtpmap:{pt} {name}\r\n");
        if let Some(te) = te {
            fmts.push_str(&format!(" {te}"));
            attrs.push_str(&format!(
                "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
            ));
        }
        s.push_str(&format!(
            "m=audio {} RTP/AVP {fmts}\r\n{attrs}a=ptime:{ptime}\r\na={}\r\n",
            rtp.port(),
            direction.as_attr()
        ));
    }
    Ok((
        s,
        Negotiated {
            remote,
            payload_type: pt,
            telephone_event: te,
            ptime,
            direction,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SIPp's built-in uac scenario sends.
    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    /// Softphone-like: media-level c=, dynamic codecs first, PCMA before PCMU, sendonly.
    const SOFTPHONE_OFFER: &str =
        "v=0\r\no=- 3896542134 3896542134 IN IP4 192.168.1.20\r\ns=Softphone\r\n\
c=IN IP4 192.168.1.20\r\nt=0 0\r\n\
m=audio 51372 RTP/AVP 111 9 8 0 101\r\nc=IN IP4 10.1.2.3\r\n\
a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:9 G722/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:30\r\na=sendonly\r\n\
m=video 51374 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";

    #[test]
    fn parses_sipp_offer() {
        let sdp = SessionDescription::parse(SIPP_OFFER).unwrap();
        assert_eq!(sdp.connection, Some("127.0.0.1".parse().unwrap()));
        let a = sdp.audio().unwrap();
        assert_eq!((a.port, a.formats.clone()), (6000, vec!["0".to_string()]));
        assert_eq!(a.direction, Direction::SendRecv);
    }

    #[test]
    fn answers_sipp_offer_with_pcmu() {
        let offer = SessionDescription::parse(SIPP_OFFER).unwrap();
        let (text, neg) = build_answer(&offer, "127.0.0.1:30000".parse().unwrap(), 7).unwrap();
        assert_eq!(neg.remote, "127.0.0.1:6000".parse().unwrap());
        assert_eq!((neg.payload_type, neg.telephone_event), (0, None));
        let ans = SessionDescription::parse(&text).unwrap();
        assert_eq!(ans.audio().unwrap().formats, vec!["0"]);
        assert_eq!(ans.audio().unwrap().port, 30000);
    }

    #[test]
    fn answers_softphone_offer() {
        let offer = SessionDescription::parse(SOFTPHONE_OFFER).unwrap();
        let a = offer.audio().unwrap();
        assert_eq!(a.connection, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(a.ptime, Some(30));
        assert_eq!(a.direction, Direction::SendOnly);
        let (text, neg) = build_answer(&offer, "127.0.0.1:30002".parse().unwrap(), 1).unwrap();
        assert_eq!(
            neg.remote,
            "10.1.2.3:51372".parse().unwrap(),
            "media-level c= wins"
        );
        assert_eq!(neg.payload_type, 8, "first offered codec we support");
        assert_eq!(neg.telephone_event, Some(101));
        assert_eq!(neg.direction, Direction::RecvOnly);
        let ans = SessionDescription::parse(&text).unwrap();
        assert_eq!(ans.media.len(), 2);
        assert_eq!(ans.media[1].port, 0, "video refused");
        assert_eq!(ans.media[0].formats, vec!["8", "101"]);
        assert_eq!(ans.media[0].direction, Direction::RecvOnly);
        assert!(text.contains("a=fmtp:101 0-16"));
    }

    #[test]
    fn offer_round_trips_and_reads_as_answer() {
        let offer = build_offer("127.0.0.1:4000".parse().unwrap(), 42);
        assert!(offer.contains("m=audio 4000 RTP/AVP 0 8 101\r\n"));
        assert!(offer.contains("a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"));
        let sdp = SessionDescription::parse(&offer).unwrap();
        let neg = sdp.negotiated_from_answer().unwrap();
        assert_eq!(neg.remote, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(
            (neg.payload_type, neg.telephone_event, neg.ptime),
            (0, Some(101), 20)
        );
    }

    #[test]
    fn errors_say_what_is_missing() {
        let no_c = SIPP_OFFER.replace("c=IN IP4 127.0.0.1\r\n", "");
        let err = SessionDescription::parse(&no_c)
            .unwrap()
            .negotiated_from_answer()
            .unwrap_err();
        assert!(err.to_string().contains("no c= line"), "{err}");
        let g729 = SIPP_OFFER
            .replace("RTP/AVP 0", "RTP/AVP 18")
            .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000");
        let err = build_answer(
            &SessionDescription::parse(&g729).unwrap(),
            "127.0.0.1:1".parse().unwrap(),
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("no common codec"), "{err}");
        let no_audio = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5 RTP/AVP 96\r\n";
        let err = SessionDescription::parse(no_audio)
            .unwrap()
            .audio()
            .unwrap_err();
        assert!(err.to_string().contains("no m=audio"), "{err}");
        let disabled = SIPP_OFFER.replace("m=audio 6000", "m=audio 0");
        assert!(SessionDescription::parse(&disabled)
            .unwrap()
            .negotiated_from_answer()
            .is_err());
        assert!(SessionDescription::parse("garbage").is_err());
        assert!(SessionDescription::parse("c=IN IP4 1.2.3.4\r\n")
            .unwrap_err()
            .to_string()
            .contains("v="));
    }
}
