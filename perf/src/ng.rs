//! A small client for rtpengine's "ng" control protocol: bencode dictionaries over UDP, each
//! message a cookie, one space and a bencoded dictionary; the reply carries the same cookie.
//! `relay-path` creates rtpengine's calls with it (`offer` then `answer`).
//!
//! ```no_run
//! use callbridge_perf::ng::NgClient;
//! let ng = NgClient::connect("127.0.0.1:2223".parse().unwrap()).unwrap();
//! let sdp_for_b = ng.offer("call-1", "a", "v=0\r\n...").unwrap();
//! ```

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

/// One bencoded value. Dictionaries keep their keys in insertion order (rtpengine accepts
/// and sends them unsorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bencode {
    /// `i<n>e`
    Int(i64),
    /// `<len>:<bytes>`
    Bytes(Vec<u8>),
    /// `l...e`
    List(Vec<Self>),
    /// `d<key><value>...e`
    Dict(Vec<(Vec<u8>, Self)>),
}

impl Bencode {
    /// A byte string from text.
    #[must_use]
    pub fn str(s: &str) -> Self {
        Self::Bytes(s.as_bytes().to_vec())
    }

    /// A dictionary from `(key, value)` pairs.
    #[must_use]
    pub fn dict<'a>(pairs: impl IntoIterator<Item = (&'a str, Self)>) -> Self {
        Self::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    /// The value of `key` in a dictionary.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Self::Dict(d) => d.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a byte string (lossy).
    #[must_use]
    pub fn as_text(&self) -> Option<String> {
        match self {
            Self::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::Int(n) => out.extend_from_slice(format!("i{n}e").as_bytes()),
            Self::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Self::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.encode_into(out));
                out.push(b'e');
            }
            Self::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Self::Bytes(k.clone()).encode_into(out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The encoding.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }

    /// Decodes one value that must span all of `input`.
    ///
    /// # Errors
    /// On malformed input or trailing bytes.
    pub fn decode(input: &[u8]) -> anyhow::Result<Self> {
        let (v, rest) = Self::decode_prefix(input, 0)?;
        if !rest.is_empty() {
            bail!("{} trailing bytes after the bencoded value", rest.len());
        }
        Ok(v)
    }

    fn decode_prefix(input: &[u8], depth: usize) -> anyhow::Result<(Self, &[u8])> {
        if depth > 64 {
            bail!("bencode nested too deeply");
        }
        let (&first, rest) = input
            .split_first()
            .ok_or_else(|| anyhow!("bencode: unexpected end"))?;
        match first {
            b'i' => {
                let end = rest
                    .iter()
                    .position(|&c| c == b'e')
                    .ok_or_else(|| anyhow!("bencode: unterminated integer"))?;
                let n = std::str::from_utf8(&rest[..end])?
                    .parse::<i64>()
                    .context("bencode: bad integer")?;
                Ok((Self::Int(n), &rest[end + 1..]))
            }
            b'l' => {
                let mut items = Vec::new();
                let mut cur = rest;
                loop {
                    match cur.first() {
                        Some(b'e') => return Ok((Self::List(items), &cur[1..])),
                        Some(_) => {
                            let (v, r) = Self::decode_prefix(cur, depth + 1)?;
                            items.push(v);
                            cur = r;
                        }
                        None => bail!("bencode: unterminated list"),
                    }
                }
            }
            b'd' => {
                let mut items = Vec::new();
                let mut cur = rest;
                loop {
                    match cur.first() {
                        Some(b'e') => return Ok((Self::Dict(items), &cur[1..])),
                        Some(_) => {
                            let (k, r) = Self::decode_prefix(cur, depth + 1)?;
                            let Self::Bytes(k) = k else {
                                bail!("bencode: dictionary key is not a string")
                            };
                            let (v, r) = Self::decode_prefix(r, depth + 1)?;
                            items.push((k, v));
                            cur = r;
                        }
                        None => bail!("bencode: unterminated dictionary"),
                    }
                }
            }
            b'0'..=b'9' => {
                let colon = input
                    .iter()
                    .position(|&c| c == b':')
                    .ok_or_else(|| anyhow!("bencode: string without ':'"))?;
                let len: usize = std::str::from_utf8(&input[..colon])?
                    .parse()
                    .context("bencode: bad string length")?;
                let body = &input[colon + 1..];
                if body.len() < len {
                    bail!("bencode: string of {len} bytes, {} left", body.len());
                }
                Ok((Self::Bytes(body[..len].to_vec()), &body[len..]))
            }
            c => bail!("bencode: unexpected byte {c:#04x}"),
        }
    }
}

/// A blocking ng client on one UDP socket (one request at a time).
#[derive(Debug)]
pub struct NgClient {
    sock: UdpSocket,
    cookie: AtomicU64,
}

impl NgClient {
    /// A client for the ng listener at `server` (replies are awaited up to 5 s, resent once
    /// after 1 s).
    ///
    /// # Errors
    /// If the socket cannot be opened.
    pub fn connect(server: SocketAddr) -> anyhow::Result<Self> {
        let local: SocketAddr = match server.ip() {
            IpAddr::V4(_) => "0.0.0.0:0".parse()?,
            IpAddr::V6(_) => "[::]:0".parse()?,
        };
        let sock = UdpSocket::bind(local)?;
        sock.connect(server)?;
        Ok(Self {
            sock,
            cookie: AtomicU64::new(u64::from(std::process::id()) << 32),
        })
    }

    /// Sends `msg` (a dictionary) and returns the reply's dictionary; an error if rtpengine
    /// answers `result` other than `ok`/`pong`.
    ///
    /// # Errors
    /// Timeouts, malformed replies, error results.
    pub fn request(&self, msg: &Bencode) -> anyhow::Result<Bencode> {
        let cookie = format!("{:x}", self.cookie.fetch_add(1, Ordering::Relaxed));
        let mut out = cookie.clone().into_bytes();
        out.push(b' ');
        msg.encode_into(&mut out);
        let mut buf = vec![0u8; 65536];
        for attempt in 0..5 {
            self.sock.send(&out)?;
            self.sock
                .set_read_timeout(Some(Duration::from_millis(1000 << attempt.min(2))))?;
            loop {
                let n = match self.sock.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(e).context("ng recv"),
                };
                let Some(sp) = buf[..n].iter().position(|&c| c == b' ') else {
                    continue;
                };
                if &buf[..sp] != cookie.as_bytes() {
                    continue; // a late reply to an earlier request
                }
                let reply = Bencode::decode(&buf[sp + 1..n])?;
                let result = reply.get("result").and_then(Bencode::as_text);
                return match result.as_deref() {
                    Some("ok" | "pong") => Ok(reply),
                    other => bail!(
                        "ng {}: result {other:?}, reason {:?}",
                        msg.get("command")
                            .and_then(Bencode::as_text)
                            .unwrap_or_default(),
                        reply.get("error-reason").and_then(Bencode::as_text)
                    ),
                };
            }
        }
        bail!("ng: no reply from rtpengine")
    }

    /// `ping`.
    ///
    /// # Errors
    /// See [`Self::request`].
    pub fn ping(&self) -> anyhow::Result<()> {
        self.request(&Bencode::dict([("command", Bencode::str("ping"))]))
            .map(drop)
    }

    /// `offer` from `from_tag` with `sdp`: returns the SDP to give the callee.
    ///
    /// # Errors
    /// See [`Self::request`].
    pub fn offer(&self, call_id: &str, from_tag: &str, sdp: &str) -> anyhow::Result<String> {
        let r = self.request(&Bencode::dict([
            ("command", Bencode::str("offer")),
            ("call-id", Bencode::str(call_id)),
            ("from-tag", Bencode::str(from_tag)),
            ("sdp", Bencode::str(sdp)),
        ]))?;
        r.get("sdp")
            .and_then(Bencode::as_text)
            .ok_or_else(|| anyhow!("ng offer: reply without sdp"))
    }

    /// `answer` from `to_tag` with `sdp`: returns the SDP to give the caller.
    ///
    /// # Errors
    /// See [`Self::request`].
    pub fn answer(
        &self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &str,
    ) -> anyhow::Result<String> {
        let r = self.request(&Bencode::dict([
            ("command", Bencode::str("answer")),
            ("call-id", Bencode::str(call_id)),
            ("from-tag", Bencode::str(from_tag)),
            ("to-tag", Bencode::str(to_tag)),
            ("sdp", Bencode::str(sdp)),
        ]))?;
        r.get("sdp")
            .and_then(Bencode::as_text)
            .ok_or_else(|| anyhow!("ng answer: reply without sdp"))
    }
}

/// A minimal audio SDP: PCMA at `addr` (`c=` and `m=audio`).
#[must_use]
pub fn audio_sdp(addr: SocketAddr, session: u64) -> String {
    let fam = if addr.is_ipv4() { "IP4" } else { "IP6" };
    let ip = addr.ip();
    format!(
        "v=0\r\no=- {session} 1 IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n",
        addr.port()
    )
}

/// The first audio stream's address in `sdp`: the media-level `c=` if any, else the
/// session-level one, and the `m=audio` port.
///
/// # Errors
/// If either is missing or malformed.
pub fn sdp_audio_addr(sdp: &str) -> anyhow::Result<SocketAddr> {
    let mut session_ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut media_ip: Option<IpAddr> = None;
    for line in sdp.lines().map(str::trim) {
        if let Some(c) = line.strip_prefix("c=") {
            let ip: IpAddr = c
                .split_whitespace()
                .nth(2)
                .ok_or_else(|| anyhow!("sdp: bad c= line {line:?}"))?
                .split('/')
                .next()
                .unwrap_or_default()
                .parse()
                .with_context(|| format!("sdp: bad address in {line:?}"))?;
            if port.is_some() {
                media_ip.get_or_insert(ip);
            } else {
                session_ip = Some(ip);
            }
        } else if let Some(m) = line.strip_prefix("m=audio ") {
            if port.is_some() {
                break;
            }
            port = Some(
                m.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .with_context(|| format!("sdp: bad port in {line:?}"))?,
            );
        } else if line.starts_with("m=") && port.is_some() {
            break;
        }
    }
    let ip = media_ip
        .or(session_ip)
        .ok_or_else(|| anyhow!("sdp without c= line"))?;
    let port = port.ok_or_else(|| anyhow!("sdp without m=audio"))?;
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_spec() {
        let v = Bencode::dict([
            ("command", Bencode::str("offer")),
            ("n", Bencode::Int(-3)),
            (
                "flags",
                Bencode::List(vec![Bencode::str("a"), Bencode::Int(0)]),
            ),
        ]);
        assert_eq!(
            v.encode(),
            b"d7:command5:offer1:ni-3e5:flagsl1:ai0eee".to_vec()
        );
        assert_eq!(Bencode::decode(&v.encode()).unwrap(), v);
    }

    #[test]
    fn decodes_unsorted_dicts_and_binary_strings() {
        let v = Bencode::decode(b"d6:result2:ok3:sdp4:a\r\nb4:listl0:ee").unwrap();
        assert_eq!(
            v.get("result").and_then(Bencode::as_text).as_deref(),
            Some("ok")
        );
        assert_eq!(v.get("sdp"), Some(&Bencode::Bytes(b"a\r\nb".to_vec())));
        assert_eq!(
            v.get("list"),
            Some(&Bencode::List(vec![Bencode::Bytes(vec![])]))
        );
        assert!(v.get("missing").is_none());
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            &b"i12"[..],
            b"5:abc",
            b"d3:keye",
            b"di1ei2ee",
            b"x",
            b"le1",
            b"i1ei2e",
        ] {
            assert!(
                Bencode::decode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn sdp_round_trip() {
        let a: SocketAddr = "198.18.0.2:20000".parse().unwrap();
        let sdp = audio_sdp(a, 7);
        assert_eq!(sdp_audio_addr(&sdp).unwrap(), a);
        let media_level = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 3000 RTP/AVP 8\r\nc=IN IP4 198.18.0.1\r\nm=video 4 RTP/AVP 96\r\nc=IN IP4 1.1.1.1\r\n";
        assert_eq!(
            sdp_audio_addr(media_level).unwrap(),
            "198.18.0.1:3000".parse().unwrap()
        );
        assert!(sdp_audio_addr("v=0\r\n").is_err());
    }
}
