//! The process's life after "ready": serving until SIGTERM / SIGINT or `POST /v1/admin/drain`,
//! then draining (no new calls; live calls go on to their end, at most `drain.max_seconds`),
//! then stopping. SIGHUP (or `POST /v1/admin/reload`) re-reads the configuration file
//! ([`crate::reload`]) at any time.
//!
//! ```text
//!  serving ──SIGTERM / SIGINT / POST /v1/admin/drain──► draining ──last call ended──► stop (exit 0)
//!                                                          │ drain.max_seconds, or a 2nd SIGTERM / SIGINT:
//!                                                          └─► the calls left are hung up (BYE) ──► stop
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config;

/// How often a draining process looks whether its last call has ended.
const DRAIN_POLL: Duration = Duration::from_millis(100);
/// How long the calls left after `drain.max_seconds` get to hang up.
const HANGUP_WAIT: Duration = Duration::from_secs(3);

/// What the operator routes and the signals act on: the service, the configuration file and
/// the process's figures.
pub(crate) struct Admin {
    pub(crate) svc: service::Service,
    /// `serve --config FILE` (`None`: the built-in configuration, nothing to reload).
    pub(crate) config_path: Option<PathBuf>,
    /// The configuration the process started with (what a reload cannot change is compared
    /// with it).
    pub(crate) started_cfg: config::Config,
    /// Serializes reloads.
    pub(crate) reloading: Mutex<()>,
    /// `drain.max_seconds`, as last (re)loaded.
    pub(crate) max_seconds: AtomicU64,
    pub(crate) started: Instant,
    pub(crate) backend: &'static str,
    pub(crate) workers: usize,
}

impl Admin {
    /// The process's administration state for the configuration it started with.
    pub(crate) fn new(
        svc: service::Service,
        config_path: Option<PathBuf>,
        cfg: &config::Config,
        backend: &'static str,
        workers: usize,
    ) -> Self {
        Self {
            svc,
            config_path,
            max_seconds: AtomicU64::new(cfg.drain.max_seconds),
            started_cfg: cfg.clone(),
            reloading: Mutex::new(()),
            started: Instant::now(),
            backend,
            workers,
        }
    }

    /// `GET /v1/admin/status`.
    pub(crate) fn status_json(&self) -> Value {
        let mut v = json!({
            "state": if self.svc.is_draining() { "draining" } else { "serving" },
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_secs": self.started.elapsed().as_secs(),
            "live_calls": self.svc.live_calls(),
            "queued_requests": self.svc.queued_requests(),
            "backend": self.backend,
            "workers": self.workers,
        });
        if let Some(n) = self.svc.queued_requests_cluster() {
            v["queued_requests_cluster"] = json!(n);
        }
        if let Some(d) = self.svc.draining_for() {
            v["draining_secs"] = json!(d.as_secs());
            v["drain_max_seconds"] = json!(self.max_seconds.load(Ordering::Relaxed));
        }
        v
    }

    /// `POST /v1/admin/drain` (idempotent).
    pub(crate) fn drain_json(&self) -> Value {
        self.svc.start_drain();
        json!({ "state": "draining", "live_calls": self.svc.live_calls() })
    }
}

/// SIGTERM, SIGINT and SIGHUP, caught from start-up on (SIGHUP would otherwise end the
/// process).
pub(crate) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers.
    ///
    /// # Errors
    /// When a handler cannot be installed.
    pub(crate) fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// What woke the drain loop.
enum Wake {
    Stop(&'static str),
    Reload,
    Drain,
    Tick,
}

/// Runs the process's life after "ready"; returns when the HTTP server and the rest should
/// stop: every call has ended (or was ended).
pub(crate) async fn run(admin: Arc<Admin>, mut signals: Signals) {
    let svc = admin.svc.clone();
    // Serving.
    loop {
        let wake = tokio::select! {
            _ = signals.term.recv() => Wake::Stop("SIGTERM"),
            _ = signals.int.recv() => Wake::Stop("SIGINT"),
            _ = signals.hup.recv() => Wake::Reload,
            () = svc.drain_started() => Wake::Drain,
        };
        match wake {
            Wake::Stop(name) => {
                tracing::info!(signal = name, "drain requested");
                break;
            }
            Wake::Drain => {
                tracing::info!("drain requested through the API");
                break;
            }
            Wake::Reload => reload_on_signal(&admin).await,
            Wake::Tick => {}
        }
    }
    svc.start_drain();
    // Draining.
    let max = Duration::from_secs(admin.max_seconds.load(Ordering::Relaxed));
    let deadline = tokio::time::sleep(max);
    tokio::pin!(deadline);
    let mut poll = tokio::time::interval(DRAIN_POLL);
    // Two looks in a row without calls: a bridge accepted just before the drain has had the
    // time to register its call.
    let mut idle_ticks = 0;
    let why = loop {
        let wake = tokio::select! {
            _ = signals.term.recv() => Wake::Stop("SIGTERM"),
            _ = signals.int.recv() => Wake::Stop("SIGINT"),
            _ = signals.hup.recv() => Wake::Reload,
            () = &mut deadline => Wake::Drain,
            _ = poll.tick() => Wake::Tick,
        };
        match wake {
            Wake::Tick if svc.live_calls() == 0 => {
                idle_ticks += 1;
                if idle_ticks >= 2 {
                    break "every call has ended";
                }
            }
            Wake::Tick => idle_ticks = 0,
            Wake::Stop(name) => {
                tracing::info!(
                    signal = name,
                    live_calls = svc.live_calls(),
                    "second signal while draining: ending the calls left now"
                );
                break "a second signal";
            }
            Wake::Drain => {
                tracing::info!(
                    max_seconds = max.as_secs(),
                    live_calls = svc.live_calls(),
                    "drain.max_seconds reached: ending the calls left"
                );
                break "drain.max_seconds";
            }
            Wake::Reload => reload_on_signal(&admin).await,
        }
    };
    if svc.live_calls() > 0 {
        svc.shutdown(HANGUP_WAIT).await;
    }
    tracing::info!(
        reason = why,
        live_calls = svc.live_calls(),
        "drained: stopping"
    );
}

/// SIGHUP: reloads and logs the outcome (the API answers it instead).
async fn reload_on_signal(admin: &Arc<Admin>) {
    tracing::info!("SIGHUP: reloading the configuration");
    let a = admin.clone();
    match tokio::task::spawn_blocking(move || crate::reload::reload(&a)).await {
        Ok(Ok(_)) => {}
        Ok(Err(r)) => {
            tracing::warn!(error = %r.error, "reload refused; the configuration in use stays")
        }
        Err(e) => tracing::warn!(error = %e, "reload failed"),
    }
}
