//! Session timers (RFC 4028), sans-IO: what the `Session-Expires` / `Min-SE` headers of a
//! request or 2xx mean for one dialog, and when it must be refreshed or given up.
//!
//! * [`SessionTimerConfig`] is ours (what we ask for, the smallest interval we accept).
//! * [`SessionExpires`] is the header, parsed and formatted (`1800;refresher=uac`).
//! * [`negotiate_uas`] decides the answer to a request carrying (or not) a `Session-Expires`:
//!   the value for our 2xx, or `422` with our `Min-SE` (RFC 4028 9).
//! * [`SessionTimer`] runs the agreed interval: the refresher refreshes at half of it (RFC 4028
//!   10), the other side sends BYE at `interval - min(32 s, interval / 3)` without a refresh.
//!   Every 2xx to a re-INVITE or UPDATE, either way, restarts it (`handle_refreshed`).

use std::time::{Duration, Instant};

/// Session-timer settings of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// The interval we ask for in our INVITEs (`Session-Expires`), and offer to a caller that
    /// supports timers but did not ask. `None`: we ask for none (we still honour the peer's).
    pub session_expires: Option<Duration>,
    /// The smallest interval we accept (`Min-SE`); a request asking for less gets `422`.
    /// RFC 4028 forbids less than 90 s on the wire; tests use smaller values.
    pub min_se: Duration,
    /// How we refresh when we are the refresher: with an UPDATE without body (the default,
    /// cheaper, RFC 4028 9) when the peer allows UPDATE, else with a re-INVITE carrying our
    /// unchanged SDP.
    pub refresh_with_update: bool,
}

impl Default for SessionTimerConfig {
    fn default() -> Self {
        Self {
            session_expires: Some(Duration::from_secs(1800)),
            min_se: Duration::from_secs(90),
            refresh_with_update: true,
        }
    }
}

/// Who refreshes the session (the `refresher` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The UAC of the transaction carrying the header (who sent the INVITE or UPDATE).
    Uac,
    /// Its UAS.
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Self::Uac => "uac",
            Self::Uas => "uas",
        }
    }
}

/// A `Session-Expires` header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// The interval.
    pub interval: Duration,
    /// Who refreshes, if said.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Parses `delta-seconds *(;param)`; `None` when malformed (RFC 4028 4: then ignored).
    pub fn parse(v: &str) -> Option<Self> {
        let mut parts = v.split(';');
        let secs: u64 = parts.next()?.trim().parse().ok()?;
        let mut refresher = None;
        for p in parts {
            if let Some((n, val)) = p.split_once('=') {
                if n.trim().eq_ignore_ascii_case("refresher") {
                    refresher = match val.trim().to_ascii_lowercase().as_str() {
                        "uac" => Some(Refresher::Uac),
                        "uas" => Some(Refresher::Uas),
                        _ => None,
                    };
                }
            }
        }
        Some(Self {
            interval: Duration::from_secs(secs),
            refresher,
        })
    }

    /// The header value.
    pub fn to_header(&self) -> String {
        match self.refresher {
            Some(r) => format!("{};refresher={}", self.interval.as_secs(), r.as_str()),
            None => self.interval.as_secs().to_string(),
        }
    }
}

/// Parses a `Min-SE` value (delta-seconds, parameters ignored).
pub fn parse_min_se(v: &str) -> Option<Duration> {
    v.split(';')
        .next()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

/// What a UAS answers to a (re-)INVITE or UPDATE about session timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasDecision {
    /// No session timer in this dialog (neither side asked).
    None,
    /// Put this `Session-Expires` in the 2xx (with `Require: timer` when `require`, i.e. the
    /// UAC said `Supported: timer`), and run the timer.
    Use {
        /// The header value for the 2xx (its refresher always set).
        value: SessionExpires,
        /// Whether the 2xx carries `Require: timer`.
        require: bool,
    },
    /// `422 Session Interval Too Small` with `Min-SE: <min_se>`.
    TooSmall {
        /// Our minimum, for the 422's `Min-SE`.
        min_se: Duration,
    },
}

/// RFC 4028 9: the UAS side. `requested` is the request's `Session-Expires`, `uac_supports`
/// whether it says `Supported: timer`. A refresher left open is the UAC when it supports
/// timers (it asked, it refreshes), else us.
pub fn negotiate_uas(
    cfg: &SessionTimerConfig,
    requested: Option<SessionExpires>,
    uac_supports: bool,
) -> UasDecision {
    let Some(req) = requested else {
        // The UAC did not ask: we may, if it supports timers (it then refreshes).
        return match cfg.session_expires {
            Some(interval) if uac_supports => UasDecision::Use {
                value: SessionExpires {
                    interval: interval.max(cfg.min_se),
                    refresher: Some(Refresher::Uac),
                },
                require: true,
            },
            _ => UasDecision::None,
        };
    };
    if req.interval < cfg.min_se {
        return UasDecision::TooSmall { min_se: cfg.min_se };
    }
    let refresher = match (req.refresher, uac_supports) {
        (_, false) => Refresher::Uas,
        (Some(r), true) => r,
        (None, true) => Refresher::Uac,
    };
    UasDecision::Use {
        value: SessionExpires {
            interval: req.interval,
            refresher: Some(refresher),
        },
        require: uac_supports,
    }
}

/// What a [`SessionTimer`] asks for when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAction {
    /// We are the refresher and half the interval passed: send a refresh.
    Refresh,
    /// No refresh arrived in time: end the dialog with BYE (RFC 4028 10).
    Expire,
}

/// The running session timer of one dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTimer {
    interval: Duration,
    we_refresh: bool,
    refresh_at: Option<Instant>,
    expire_at: Instant,
}

impl SessionTimer {
    /// Starts (or restarts) the timer at `now`: a refresh just succeeded.
    pub fn new(now: Instant, interval: Duration, we_refresh: bool) -> Self {
        let mut t = Self {
            interval,
            we_refresh,
            refresh_at: None,
            expire_at: now,
        };
        t.handle_refreshed(now, interval, we_refresh);
        t
    }

    /// A 2xx to a refresh (ours or the peer's) with this interval and refresher.
    pub fn handle_refreshed(&mut self, now: Instant, interval: Duration, we_refresh: bool) {
        self.interval = interval;
        self.we_refresh = we_refresh;
        self.refresh_at = we_refresh.then(|| now + interval / 2);
        // RFC 4028 10: BYE at interval - min(32 s, interval / 3) without a refresh.
        self.expire_at = now + interval - (interval / 3).min(Duration::from_secs(32));
    }

    /// The agreed interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether we are the refresher.
    pub fn we_refresh(&self) -> bool {
        self.we_refresh
    }

    /// Fires what is due: a refresh (once per interval) or the expiry.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<SessionAction> {
        if self.expire_at <= now {
            return Some(SessionAction::Expire);
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = None;
            return Some(SessionAction::Refresh);
        }
        None
    }

    /// When [`Self::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Instant {
        match self.refresh_at {
            Some(r) => r.min(self.expire_at),
            None => self.expire_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn header_parses_and_formats() {
        let v = SessionExpires::parse("1800 ; refresher=UAS").unwrap();
        assert_eq!((v.interval, v.refresher), (S(1800), Some(Refresher::Uas)));
        assert_eq!(v.to_header(), "1800;refresher=uas");
        assert_eq!(SessionExpires::parse("90").unwrap().refresher, None);
        assert_eq!(SessionExpires::parse("x;refresher=uac"), None);
        assert_eq!(parse_min_se("120;x=1"), Some(S(120)));
    }

    #[test]
    fn uas_rejects_too_small_and_picks_a_refresher() {
        let cfg = SessionTimerConfig::default();
        let ask = |secs, r| {
            Some(SessionExpires {
                interval: S(secs),
                refresher: r,
            })
        };
        assert_eq!(
            negotiate_uas(&cfg, ask(60, None), true),
            UasDecision::TooSmall { min_se: S(90) }
        );
        let UasDecision::Use { value, require } = negotiate_uas(&cfg, ask(600, None), true) else {
            panic!()
        };
        assert_eq!((value.refresher, require), (Some(Refresher::Uac), true));
        let UasDecision::Use { value, .. } =
            negotiate_uas(&cfg, ask(600, Some(Refresher::Uas)), true)
        else {
            panic!()
        };
        assert_eq!(value.refresher, Some(Refresher::Uas));
        // A proxy added Session-Expires for a UAC without timers: we refresh, no Require.
        let UasDecision::Use { value, require } =
            negotiate_uas(&cfg, ask(600, Some(Refresher::Uac)), false)
        else {
            panic!()
        };
        assert_eq!((value.refresher, require), (Some(Refresher::Uas), false));
        // Nobody asked: we ask a supporting UAC to refresh, otherwise no timer.
        assert!(matches!(
            negotiate_uas(&cfg, None, true),
            UasDecision::Use { value: SessionExpires { interval, refresher: Some(Refresher::Uac) }, .. }
                if interval == S(1800)
        ));
        assert_eq!(negotiate_uas(&cfg, None, false), UasDecision::None);
    }

    #[test]
    fn refresher_refreshes_at_half_the_interval() {
        let t0 = Instant::now();
        let mut t = SessionTimer::new(t0, S(90), true);
        assert_eq!(t.poll_timeout(), t0 + S(45));
        assert_eq!(t.handle_timeout(t0 + S(44)), None);
        assert_eq!(t.handle_timeout(t0 + S(45)), Some(SessionAction::Refresh));
        // The refresh is in flight: no second one, expiry next (90 - 30).
        assert_eq!(t.poll_timeout(), t0 + S(60));
        t.handle_refreshed(t0 + S(46), S(90), true);
        assert_eq!(t.poll_timeout(), t0 + S(46 + 45));
    }

    #[test]
    fn the_other_side_expires_without_refresh() {
        let t0 = Instant::now();
        let mut t = SessionTimer::new(t0, S(1800), false);
        // 1800 - min(32, 600) = 1768
        assert_eq!(t.poll_timeout(), t0 + S(1768));
        assert_eq!(t.handle_timeout(t0 + S(900)), None);
        t.handle_refreshed(t0 + S(900), S(1800), false);
        assert_eq!(t.handle_timeout(t0 + S(1768)), None);
        assert_eq!(
            t.handle_timeout(t0 + S(900 + 1768)),
            Some(SessionAction::Expire)
        );
        // Small intervals: interval / 3 before the end.
        let t = SessionTimer::new(t0, S(3), false);
        assert_eq!(t.poll_timeout(), t0 + S(2));
    }
}
