//! callbridge's extension to ng: the commands with which `serve` drives a media node's data
//! plane leg by leg (what Kamailio does with `offer`/`answer`, `serve` does with these), so
//! that one protocol, one listener and one `media.ng_allow_from` carry both uses.
//!
//! Every extension command names its `controller` (a string unique per `serve` process): a
//! node keeps each controller's legs and events apart.
//!
//! | command | keys | reply |
//! |---|---|---|
//! | `cb-allocate` | `controller`, `count` (1–[`MAX_ALLOCATE`]) | `pairs`: list of `{a, b, address}` (leg ids as integers, the node's media address), `instance`, `free` |
//! | `cb-leg` | `controller`, `cmds`: list of data-plane commands ([`encode_command`]) | `failed`: list of `{index, error}` (commands refused before reaching a worker) |
//! | `cb-release` | `controller`, `pairs`: list of `[a, b]` | `released`: how many |
//! | `cb-events` | `controller`, `since` (the last sequence number seen, 0 at first) | `instance`, `next` (the last sequence number now), `lost` (events dropped since `since`), `free`, `events`: list of events ([`encode_event`]), at most [`MAX_EVENTS`] |
//!
//! Leg ids are the node's own [`LegId`]s (`u32`), allocated by the node (`cb-allocate`):
//! the controller never chooses ports. Announcements travel by *name* ([`Command::Play`]'s
//! clip name), never as audio: the node plays its own prompt of that name (its
//! `media.announcement`, or the built-in prompt), see [`Prompts`]. `instance` changes when a
//! node restarts, so a controller learns that every leg it had there is gone. A controller
//! that sends nothing for [`LEASE`] loses its legs (the node removes them and frees the
//! ports; checked whenever any controller calls).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dp_api::{
    Clip, Codec, Command, CommandError, DropCounters, DropReason, Event, Latch, LegId, LegSpec,
    LegStats, PayloadTypes, SrcMismatch, SrtpKey, SrtpKeys,
};

use crate::bencode::{Encoder, Value};
use crate::NgError;

/// Most pairs one `cb-allocate` hands out.
pub const MAX_ALLOCATE: i64 = 64;
/// Most events one `cb-events` reply carries (a UDP datagram's worth).
pub const MAX_EVENTS: usize = 64;
/// Most events a node keeps per controller (older ones are dropped and reported as `lost`).
pub const MAX_BUFFERED: usize = 65_536;
/// A controller silent this long loses its legs on the node.
pub const LEASE: Duration = Duration::from_secs(30);

/// The extension's command names.
pub const ALLOCATE: &str = "cb-allocate";
/// See the module table.
pub const LEG: &str = "cb-leg";
/// See the module table.
pub const RELEASE: &str = "cb-release";
/// See the module table.
pub const EVENTS: &str = "cb-events";

/// The prompts a node can play by name.
#[derive(Debug, Clone)]
pub struct Prompts {
    /// Played when a name is unknown (the node's `media.announcement` or the built-in).
    pub default: Arc<Clip>,
    /// Others, by [`Clip::name`].
    pub named: Vec<Arc<Clip>>,
}

impl Default for Prompts {
    fn default() -> Self {
        Self {
            default: Arc::new(Clip::builtin_prompt()),
            named: Vec::new(),
        }
    }
}

impl Prompts {
    /// The clip named `name`: an exact name, then the same file name (a path's last part),
    /// else the default.
    #[must_use]
    pub fn get(&self, name: &str) -> Arc<Clip> {
        let base = |s: &str| s.rsplit(['/', '\\']).next().unwrap_or(s).to_owned();
        let all = || std::iter::once(&self.default).chain(self.named.iter());
        if let Some(c) = all().find(|c| c.name == name) {
            return c.clone();
        }
        if let Some(c) = all().find(|c| base(&c.name) == base(name)) {
            return c.clone();
        }
        tracing::debug!(
            name,
            "prompt unknown on this media node; its default is played"
        );
        self.default.clone()
    }
}

fn leg_int(leg: LegId) -> i64 {
    i64::from(leg.0)
}

fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Pcmu => "PCMU",
        Codec::Pcma => "PCMA",
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Writes one data-plane command as a dictionary (`op` plus its fields). `Shutdown` is
/// never sent over ng (`None`).
#[must_use]
pub fn encode_command(e: &mut Encoder, cmd: &Command) -> Option<()> {
    e.dict();
    match cmd {
        Command::AddLeg(s) => {
            e.kv("op", "add").ki("leg", leg_int(s.id));
            if let Some(r) = s.remote {
                e.kv("remote", &r.to_string());
            }
            match s.latch {
                Latch::Off => e.kv("latch", "off"),
                Latch::Signalled => e.kv("latch", "signalled"),
                Latch::Nat { window } => e.kv("latch", "nat").ki("window-ms", ms(window)),
            };
            e.kv(
                "mismatch",
                match s.src_mismatch {
                    SrcMismatch::Ignore => "ignore",
                    SrcMismatch::Drop => "drop",
                    SrcMismatch::Report => "report",
                },
            )
            .kv("codec", codec_name(s.codec));
            if let Some(t) = s.media_timeout {
                e.ki("timeout-ms", ms(t));
            }
        }
        Command::SetRemote { leg, remote, codec } => {
            e.kv("op", "remote")
                .ki("leg", leg_int(*leg))
                .kv("remote", &remote.to_string())
                .kv("codec", codec_name(*codec));
        }
        Command::SetPayloadTypes { leg, types } => {
            e.kv("op", "types")
                .ki("leg", leg_int(*leg))
                .kv("codec", codec_name(types.codec))
                .ki("audio", i64::from(types.audio));
            if let Some(te) = types.telephone_event {
                e.ki("te", i64::from(te));
            }
        }
        Command::SetSrtp { leg, keys } => {
            e.kv("op", "srtp").ki("leg", leg_int(*leg));
            if let Some(k) = keys {
                e.kv("recv-suite", k.recv.suite.sdes_name())
                    .str("recv-key")
                    .bytes(k.recv.key.as_bytes())
                    .kv("send-suite", k.send.suite.sdes_name())
                    .str("send-key")
                    .bytes(k.send.key.as_bytes());
            }
        }
        Command::Bridge { a, b } => {
            e.kv("op", "bridge")
                .ki("a", leg_int(*a))
                .ki("b", leg_int(*b));
        }
        Command::Unbridge { leg } => {
            e.kv("op", "unbridge").ki("leg", leg_int(*leg));
        }
        Command::Play { leg, clip, looping } => {
            e.kv("op", "play")
                .ki("leg", leg_int(*leg))
                .kv("clip", &clip.name)
                .ki("loop", i64::from(*looping));
        }
        Command::StopPlay { leg } => {
            e.kv("op", "stop-play").ki("leg", leg_int(*leg));
        }
        Command::QueryStats { leg } => {
            e.kv("op", "query").ki("leg", leg_int(*leg));
        }
        Command::RemoveLeg { leg } => {
            e.kv("op", "remove").ki("leg", leg_int(*leg));
        }
        Command::Shutdown => return None,
    }
    e.end();
    Some(())
}

fn bad(what: &str) -> NgError {
    NgError::Malformed(format!("extension: {what}"))
}

fn get_leg(v: &Value<'_>, key: &'static str) -> Result<LegId, NgError> {
    let n = v
        .get(key)
        .and_then(Value::as_int)
        .ok_or(NgError::Missing(key))?;
    u32::try_from(n).map(LegId).map_err(|_| bad(key))
}

fn get_addr(v: &Value<'_>, key: &'static str) -> Result<Option<SocketAddr>, NgError> {
    v.get(key)
        .map(|s| {
            s.as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(key))
        })
        .transpose()
}

fn get_codec(v: &Value<'_>) -> Result<Codec, NgError> {
    match v.get("codec").and_then(Value::as_str) {
        Some("PCMU") => Ok(Codec::Pcmu),
        Some("PCMA") => Ok(Codec::Pcma),
        Some(_) => Err(bad("codec")),
        None => Err(NgError::Missing("codec")),
    }
}

fn get_ms(v: &Value<'_>, key: &str) -> Option<Duration> {
    v.get(key)
        .and_then(Value::as_int)
        .and_then(|n| u64::try_from(n).ok())
        .map(Duration::from_millis)
}

fn get_u7(v: &Value<'_>, key: &'static str) -> Result<Option<u8>, NgError> {
    v.get(key)
        .map(|n| {
            n.as_int()
                .and_then(|n| u8::try_from(n).ok())
                .filter(|n| *n < 128)
                .ok_or_else(|| bad(key))
        })
        .transpose()
}

fn get_key(v: &Value<'_>, suite: &'static str, key: &'static str) -> Result<SrtpKey, NgError> {
    let suite = v
        .get(suite)
        .and_then(Value::as_str)
        .and_then(srtp::Suite::from_sdes_name)
        .ok_or_else(|| bad(suite))?;
    let bytes = match v.get(key) {
        Some(Value::Bytes(b)) => *b,
        _ => return Err(bad(key)),
    };
    let key = srtp::MasterKey::from_slice(bytes).map_err(|_| bad(key))?;
    Ok(SrtpKey { suite, key })
}

/// Reads one command written by [`encode_command`]; `clip` finds a prompt by name.
///
/// # Errors
/// [`NgError::Malformed`] or [`NgError::Missing`] naming the field.
pub fn decode_command(v: &Value<'_>, clip: &dyn Fn(&str) -> Arc<Clip>) -> Result<Command, NgError> {
    let op = v
        .get("op")
        .and_then(Value::as_str)
        .ok_or(NgError::Missing("op"))?;
    Ok(match op {
        "add" => {
            let latch = match v.get("latch").and_then(Value::as_str) {
                Some("off") => Latch::Off,
                Some("signalled") | None => Latch::Signalled,
                Some("nat") => Latch::Nat {
                    window: get_ms(v, "window-ms").ok_or(NgError::Missing("window-ms"))?,
                },
                Some(_) => return Err(bad("latch")),
            };
            let src_mismatch = match v.get("mismatch").and_then(Value::as_str) {
                Some("ignore") => SrcMismatch::Ignore,
                Some("drop") | None => SrcMismatch::Drop,
                Some("report") => SrcMismatch::Report,
                Some(_) => return Err(bad("mismatch")),
            };
            Command::AddLeg(LegSpec {
                id: get_leg(v, "leg")?,
                remote: get_addr(v, "remote")?,
                latch,
                src_mismatch,
                codec: get_codec(v)?,
                media_timeout: get_ms(v, "timeout-ms"),
            })
        }
        "remote" => Command::SetRemote {
            leg: get_leg(v, "leg")?,
            remote: get_addr(v, "remote")?.ok_or(NgError::Missing("remote"))?,
            codec: get_codec(v)?,
        },
        "types" => Command::SetPayloadTypes {
            leg: get_leg(v, "leg")?,
            types: PayloadTypes {
                codec: get_codec(v)?,
                audio: get_u7(v, "audio")?.ok_or(NgError::Missing("audio"))?,
                telephone_event: get_u7(v, "te")?,
            },
        },
        "srtp" => Command::SetSrtp {
            leg: get_leg(v, "leg")?,
            keys: if v.get("recv-key").is_some() {
                Some(SrtpKeys {
                    recv: get_key(v, "recv-suite", "recv-key")?,
                    send: get_key(v, "send-suite", "send-key")?,
                })
            } else {
                None
            },
        },
        "bridge" => Command::Bridge {
            a: get_leg(v, "a")?,
            b: get_leg(v, "b")?,
        },
        "unbridge" => Command::Unbridge {
            leg: get_leg(v, "leg")?,
        },
        "play" => Command::Play {
            leg: get_leg(v, "leg")?,
            clip: clip(v.get("clip").and_then(Value::as_str).unwrap_or("")),
            looping: v.get("loop").and_then(Value::as_int).unwrap_or(0) != 0,
        },
        "stop-play" => Command::StopPlay {
            leg: get_leg(v, "leg")?,
        },
        "query" => Command::QueryStats {
            leg: get_leg(v, "leg")?,
        },
        "remove" => Command::RemoveLeg {
            leg: get_leg(v, "leg")?,
        },
        other => return Err(bad(&format!("unknown op {other}"))),
    })
}

fn u64i(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn encode_stats(e: &mut Encoder, s: &LegStats) {
    e.dict()
        .ki("rx-packets", u64i(s.rx_packets))
        .ki("rx-bytes", u64i(s.rx_bytes))
        .ki("rx-rtcp", u64i(s.rx_rtcp))
        .ki("tx-packets", u64i(s.tx_packets))
        .ki("tx-bytes", u64i(s.tx_bytes))
        .ki("tx-rtcp", u64i(s.tx_rtcp))
        .ki("announcement", u64i(s.announcement_packets))
        .ki("jitter-us", i64::from(s.jitter_us))
        .ki("max-jitter-us", i64::from(s.max_jitter_us))
        .ki("peer-reports", i64::from(s.peer_reports))
        .ki("peer-fraction-lost", i64::from(s.peer_fraction_lost))
        .ki("peer-cumulative-lost", i64::from(s.peer_cumulative_lost))
        .str("drops")
        .list();
    for n in s.drops.0 {
        e.int(u64i(n));
    }
    e.end().end();
}

fn decode_stats(v: Option<&Value<'_>>) -> LegStats {
    let Some(v) = v else {
        return LegStats::default();
    };
    let n = |k: &str| v.get(k).and_then(Value::as_int).unwrap_or(0);
    let u = |k: &str| u64::try_from(n(k)).unwrap_or(0);
    let u32_ = |k: &str| u32::try_from(n(k)).unwrap_or(0);
    let mut drops = DropCounters::default();
    if let Some(l) = v.get("drops").and_then(Value::as_list) {
        for (i, d) in l.iter().take(DropReason::COUNT).enumerate() {
            drops.0[i] = d.as_int().and_then(|d| u64::try_from(d).ok()).unwrap_or(0);
        }
    }
    LegStats {
        rx_packets: u("rx-packets"),
        rx_bytes: u("rx-bytes"),
        rx_rtcp: u("rx-rtcp"),
        tx_packets: u("tx-packets"),
        tx_bytes: u("tx-bytes"),
        tx_rtcp: u("tx-rtcp"),
        announcement_packets: u("announcement"),
        jitter_us: u32_("jitter-us"),
        max_jitter_us: u32_("max-jitter-us"),
        peer_reports: u32_("peer-reports"),
        peer_fraction_lost: u8::try_from(n("peer-fraction-lost")).unwrap_or(0),
        peer_cumulative_lost: i32::try_from(n("peer-cumulative-lost")).unwrap_or(0),
        drops,
    }
}

fn error_kind(e: &CommandError) -> &'static str {
    match e {
        CommandError::UnknownLeg => "unknown-leg",
        CommandError::PortInUse => "port-in-use",
        CommandError::PortOutOfRange => "port-out-of-range",
        CommandError::CrossWorker => "cross-worker",
        CommandError::Srtp(_) => "srtp",
        _ => "io",
    }
}

/// Writes one data-plane event as a dictionary (`ev` plus its fields).
pub fn encode_event(e: &mut Encoder, ev: &Event) {
    e.dict();
    match ev {
        Event::LegAdded { leg } => {
            e.kv("ev", "added").ki("leg", leg_int(*leg));
        }
        Event::CommandFailed { leg, error } => {
            e.kv("ev", "failed");
            if let Some(l) = leg {
                e.ki("leg", leg_int(*l));
            }
            let text = match error {
                CommandError::Io(s) => s.clone(),
                other => other.to_string(),
            };
            e.kv("kind", error_kind(error)).kv("error", &text);
        }
        Event::RemoteLearned { leg, remote } => {
            e.kv("ev", "learned")
                .ki("leg", leg_int(*leg))
                .kv("remote", &remote.to_string());
        }
        Event::SrcMismatch { leg, from } => {
            e.kv("ev", "mismatch")
                .ki("leg", leg_int(*leg))
                .kv("from", &from.to_string());
        }
        Event::MediaTimeout { leg } => {
            e.kv("ev", "timeout").ki("leg", leg_int(*leg));
        }
        Event::PlayDone { leg } => {
            e.kv("ev", "play-done").ki("leg", leg_int(*leg));
        }
        Event::Stats { leg, stats } => {
            e.kv("ev", "stats").ki("leg", leg_int(*leg)).str("stats");
            encode_stats(e, stats);
        }
        Event::LegRemoved { leg, stats } => {
            e.kv("ev", "removed").ki("leg", leg_int(*leg)).str("stats");
            encode_stats(e, stats);
        }
        Event::Moved { leg } => {
            e.kv("ev", "moved").ki("leg", leg_int(*leg));
        }
    }
    e.end();
}

/// Reads one event written by [`encode_event`]. A failed command's error comes back as
/// its kind ([`CommandError::Io`] with the node's text for I/O and SRTP errors).
///
/// # Errors
/// [`NgError::Malformed`] or [`NgError::Missing`] naming the field.
pub fn decode_event(v: &Value<'_>) -> Result<Event, NgError> {
    let ev = v
        .get("ev")
        .and_then(Value::as_str)
        .ok_or(NgError::Missing("ev"))?;
    Ok(match ev {
        "added" => Event::LegAdded {
            leg: get_leg(v, "leg")?,
        },
        "failed" => {
            let text = v.get("error").and_then(Value::as_str).unwrap_or("");
            let error = match v.get("kind").and_then(Value::as_str) {
                Some("unknown-leg") => CommandError::UnknownLeg,
                Some("port-in-use") => CommandError::PortInUse,
                Some("port-out-of-range") => CommandError::PortOutOfRange,
                Some("cross-worker") => CommandError::CrossWorker,
                _ => CommandError::Io(text.to_owned()),
            };
            Event::CommandFailed {
                leg: v.get("leg").map(|_| get_leg(v, "leg")).transpose()?,
                error,
            }
        }
        "learned" => Event::RemoteLearned {
            leg: get_leg(v, "leg")?,
            remote: get_addr(v, "remote")?.ok_or(NgError::Missing("remote"))?,
        },
        "mismatch" => Event::SrcMismatch {
            leg: get_leg(v, "leg")?,
            from: get_addr(v, "from")?.ok_or(NgError::Missing("from"))?,
        },
        "timeout" => Event::MediaTimeout {
            leg: get_leg(v, "leg")?,
        },
        "play-done" => Event::PlayDone {
            leg: get_leg(v, "leg")?,
        },
        "stats" => Event::Stats {
            leg: get_leg(v, "leg")?,
            stats: decode_stats(v.get("stats")),
        },
        "removed" => Event::LegRemoved {
            leg: get_leg(v, "leg")?,
            stats: decode_stats(v.get("stats")),
        },
        "moved" => Event::Moved {
            leg: get_leg(v, "leg")?,
        },
        other => return Err(bad(&format!("unknown event {other}"))),
    })
}

/// One pair a node allocated (`cb-allocate`'s reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// The node's first leg (customer side).
    pub a: LegId,
    /// The node's second leg (agent side), on the same worker.
    pub b: LegId,
    /// The node's media address for both.
    pub address: IpAddr,
}

/// Reads `cb-allocate`'s `pairs`.
///
/// # Errors
/// When an entry lacks a field.
pub fn decode_pairs(reply: &Value<'_>) -> Result<Vec<Pair>, NgError> {
    let list = reply
        .get("pairs")
        .and_then(Value::as_list)
        .ok_or(NgError::Missing("pairs"))?;
    list.iter()
        .map(|p| {
            Ok(Pair {
                a: get_leg(p, "a")?,
                b: get_leg(p, "b")?,
                address: p
                    .get("address")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .ok_or(NgError::Missing("address"))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
