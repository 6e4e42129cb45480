//! The file-descriptor budget: how many calls the open-file limit carries.
//!
//! Counted from the code, per call on the socket backend: two legs (customer, agent), each
//! bound to one RTP and one RTCP UDP socket (`worker::SocketIo::open_port`), so **4**; SIP
//! shares the endpoint's sockets (one per `sip.listen`, plus one TCP/TLS connection per
//! peer, not per call), the HTTP API one per client connection, the store its files once.
//! The DPDK backend opens no descriptor per leg (its ports are DPDK's), so there only the
//! media ports bound the calls.
//!
//! Fixed use — epoll and timer descriptors of each worker, the worker channels, SIP
//! sockets, the HTTP listener, the store (database, WAL, shared memory), stdio and the log —
//! is *measured* by `serve` once it is up (`/proc/self/fd`), and estimated as
//! [`FIXED_ESTIMATE`] where nothing runs (`check-config`, `preflight`). [`HTTP_MARGIN`]
//! more are kept for HTTP connections, SIP TCP/TLS connections and webhook deliveries.
//!
//! `serve` and `media` raise the soft `RLIMIT_NOFILE` to the hard limit at start, so the hard
//! limit is what `check-config` and `preflight` judge.

use std::fmt;

use super::locate::{key, Seg};
use super::{Backend, Config};

/// Sockets per leg on the socket backend (RTP and RTCP).
pub(crate) const SOCKETS_PER_LEG: u64 = 2;
/// Legs per call (customer, agent).
pub(crate) const LEGS_PER_CALL: u64 = 2;
/// Descriptors kept for HTTP connections, SIP TCP/TLS connections and webhook deliveries.
pub(crate) const HTTP_MARGIN: u64 = 256;
/// The fixed descriptors of a `serve` at idle, where it cannot be measured: 23 measured with
/// the built-in configuration (one worker, the SQLite store, three lab phones; `serve` logs
/// its own figure at start), rounded up for more workers, listeners and TLS.
pub(crate) const FIXED_ESTIMATE: u64 = 64;

/// Descriptors one call takes with `cfg`'s backend.
#[must_use]
pub(crate) fn per_call(cfg: &Config) -> u64 {
    if !cfg.media.nodes.is_empty() {
        // `media.nodes`: the legs live on the media nodes, none here.
        return 0;
    }
    match cfg.media.backend {
        Backend::Socket => SOCKETS_PER_LEG * LEGS_PER_CALL,
        Backend::Dpdk => 0,
    }
}

/// Calls the media port range holds: port pairs on every media address, two legs a call.
/// With `media.nodes` the nodes' ports count, not this range: unbounded here (each set-up
/// still needs a pair a node gives, or it is refused `media_ports`).
#[must_use]
pub(crate) fn port_calls(cfg: &Config) -> usize {
    if !cfg.media.nodes.is_empty() {
        return usize::MAX;
    }
    cfg.media.ports.pairs() * cfg.media.addresses().len() / 2
}

/// What the open-file limit carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// The open-file limit (`u64::MAX`: unlimited).
    pub(crate) limit: u64,
    /// Descriptors in use without calls (measured or [`FIXED_ESTIMATE`]).
    pub(crate) fixed: u64,
    /// Descriptors per call (0: the backend takes none per call).
    pub(crate) per_call: u64,
    /// Calls carried (`None`: unbounded by descriptors).
    pub(crate) calls: Option<usize>,
}

impl Budget {
    /// The budget of `limit` with `fixed` in use, for `cfg`'s backend.
    #[must_use]
    pub(crate) fn new(cfg: &Config, limit: u64, fixed: u64) -> Self {
        let per_call = per_call(cfg);
        let calls = (per_call > 0 && limit != u64::MAX).then(|| {
            let free = limit.saturating_sub(fixed).saturating_sub(HTTP_MARGIN);
            usize::try_from(free / per_call).unwrap_or(usize::MAX)
        });
        Self {
            limit,
            fixed,
            per_call,
            calls,
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = if self.limit == u64::MAX {
            "unlimited".to_owned()
        } else {
            self.limit.to_string()
        };
        match self.calls {
            None if self.per_call == 0 => write!(
                f,
                "open-file limit {limit}; no descriptor per call on this backend"
            ),
            None => write!(f, "open-file limit {limit}: no bound on calls"),
            Some(c) => write!(
                f,
                "open-file limit {limit} - {} fixed - {HTTP_MARGIN} kept for connections = {c} calls at {} descriptors each",
                self.fixed, self.per_call
            ),
        }
    }
}

/// The (soft, hard) `RLIMIT_NOFILE` of this process (`u64::MAX`: unlimited).
#[must_use]
pub(crate) fn nofile() -> Option<(u64, u64)> {
    use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
    let (s, h) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let m = |v: u64| if v == RLIM_INFINITY { u64::MAX } else { v };
    Some((m(s), m(h)))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns (soft before, soft now).
///
/// # Errors
/// The system's refusal, as a sentence.
pub(crate) fn raise_nofile() -> Result<(u64, u64), String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit(RLIMIT_NOFILE): {e}"))?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            .map_err(|e| format!("setrlimit(RLIMIT_NOFILE, {hard}): {e}"))?;
    }
    let now = nofile().map_or(soft, |(s, _)| s);
    Ok((soft, now))
}

/// Descriptors this process has open now (`/proc/self/fd`, less the one reading it).
#[must_use]
pub(crate) fn open_fds() -> Option<u64> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(n.saturating_sub(1))
}

/// A problem at a key path, with its sentence.
type Problem = (Vec<Seg>, String);

/// Checks the descriptor budget of a `hard` open-file limit against the media ports and an
/// explicit `limits.max_calls`: `Err` when not even one call fits or `max_calls` asks for
/// more than fits; `Ok(Some(warning))` when the port range holds more calls than fit.
pub(super) fn check(cfg: &Config, hard: u64) -> Result<Option<Problem>, Problem> {
    let b = Budget::new(cfg, hard, FIXED_ESTIMATE);
    let Some(calls) = b.calls else {
        return Ok(None);
    };
    let ports = port_calls(cfg);
    let p = cfg.media.ports;
    if calls == 0 {
        return Err((
            vec![key("media"), key("ports")],
            format!(
                "the open-file limit {hard} (hard) carries not even one call: {FIXED_ESTIMATE} fixed + \
                 {HTTP_MARGIN} kept for connections + {} per call; raise it (LimitNOFILE= in the \
                 systemd unit, nofile in limits.conf)",
                b.per_call
            ),
        ));
    }
    if let Some(m) = cfg.limits.max_calls {
        if m as usize > calls {
            return Err((
                vec![key("limits"), key("max_calls")],
                format!(
                    "{m} calls need {} descriptors but the open-file limit {hard} (hard) carries {calls} \
                     ({b}); lower max_calls or raise the limit (LimitNOFILE=)",
                    u64::from(m) * b.per_call + FIXED_ESTIMATE + HTTP_MARGIN
                ),
            ));
        }
    }
    if calls < ports {
        return Ok(Some((
            vec![key("media"), key("ports")],
            format!(
                "{p} holds {ports} calls ({} media address(es)) but the open-file limit {hard} (hard) \
                 carries {calls} ({b}): at most {calls} calls at once, the rest refused with 503; \
                 raise the limit to {} (LimitNOFILE=) or narrow the range",
                cfg.media.addresses().len(),
                ports as u64 * b.per_call + FIXED_ESTIMATE + HTTP_MARGIN
            ),
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn cfg(text: &str) -> Config {
        Config::parse(
            &format!("{text}[[business]]\nid = \"a\"\nname = \"A\"\n"),
            Path::new("/etc/cb.toml"),
        )
        .unwrap()
    }

    #[test]
    fn four_descriptors_a_call_on_sockets_none_on_dpdk() {
        let c = cfg("[media]\nports = \"40000-40099\"\n");
        assert_eq!(per_call(&c), 4);
        // 50 pairs: 25 calls.
        assert_eq!(port_calls(&c), 25);
        let b = Budget::new(&c, 1024, 64);
        assert_eq!(b.calls, Some((1024 - 64 - 256) / 4));
        assert_eq!(Budget::new(&c, u64::MAX, 64).calls, None);
        assert_eq!(Budget::new(&c, 100, 64).calls, Some(0));
        assert!(
            b.to_string().contains("= 176 calls at 4 descriptors each"),
            "{b}"
        );
    }

    #[test]
    fn the_check_warns_names_media_ports_and_errs_when_nothing_fits() {
        // Default range 20000-29999: 2 500 calls, 10 320 descriptors.
        let c = cfg("");
        assert_eq!(check(&c, 1 << 20), Ok(None));
        let (at, why) = check(&c, 4096).unwrap().unwrap();
        assert_eq!(at, vec![key("media"), key("ports")]);
        assert!(
            why.contains("holds 2500 calls") && why.contains("carries 944"),
            "{why}"
        );
        assert!(why.contains("raise the limit to 10320"), "{why}");
        let (at, why) = check(&c, 300).unwrap_err();
        assert_eq!(at, vec![key("media"), key("ports")]);
        assert!(why.contains("not even one call"), "{why}");
        // An explicit max_calls beyond the budget is an error naming it.
        let c = cfg("[limits]\nmax_calls = 1000\n");
        let (at, why) = check(&c, 4096).unwrap_err();
        assert_eq!(at, vec![key("limits"), key("max_calls")]);
        assert!(why.contains("carries 944"), "{why}");
        assert!(check(&cfg("[limits]\nmax_calls = 900\n"), 4096).is_ok());
    }
}
