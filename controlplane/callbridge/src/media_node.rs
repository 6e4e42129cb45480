//! `callbridge media`: a media node. The data plane (socket or DPDK backend, as `serve` starts
//! it) and rtpengine's ng protocol on `media.ng_listen` (UDP and TCP), so that a SIP proxy
//! that drives rtpengine (Kamailio's `rtpengine` module, `rtpengine_manage()`) drives this node
//! instead. No HTTP, no SIP, no store: the proxy owns the calls.
//!
//! Drain: the first SIGTERM (or SIGINT, or the ng `drain` command) stops new calls (an
//! `offer` of an unknown call-id is refused, see `ng::node::DrainHandle`) while the live ones
//! go on; the process exits 0 once none is left, or after `media.drain_max_secs`. A second
//! signal exits at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::config;

/// Runs the node until it has drained (SIGINT, SIGTERM or the ng `drain` command, then no
/// call left or `media.drain_max_secs` passed) or a second signal comes.
///
/// # Errors
/// A missing `media.ng_listen`, a data plane or listener that cannot start.
pub(crate) fn run(cfg: &config::Config, path: &Path) -> anyhow::Result<()> {
    let Some(listen) = cfg.media.ng_listen else {
        anyhow::bail!(
            "{}: media.ng_listen: `callbridge media` needs the address to take ng commands on, e.g. ng_listen = \"127.0.0.1:2223\"",
            path.display()
        );
    };
    let (dataplane, handle) = crate::serve::start_dataplane(cfg)?;
    let nets = cfg.media.ng_networks();
    let policy = cfg.media.policy();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("callbridge-ng")
        .build()
        .context("starting tokio")?;
    let addresses = cfg.media.addresses();
    let drain_max = cfg.media.drain_max_secs;
    let prompts = prompts(cfg)?;
    let result = rt.block_on(async move {
        let media: Arc<dyn b2bua::Media> = Arc::new(
            b2bua::InProcessMedia::start(Arc::new(handle), addresses)
                .context("starting the data-plane event thread")?,
        );
        let listener = ng::server::Listener::bind(listen)
            .await
            .with_context(|| format!("binding media.ng_listen {listen} (UDP and TCP)"))?
            .allow(Box::new(move |ip| nets.iter().any(|n| n.contains(ip))));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut node = ng::Node::new(
            media,
            tx,
            ng::NodeSettings {
                latch: policy.latch,
                // media.timeout_secs: an answered call silent this long was lost by the proxy.
                media_timeout: policy.media_timeout,
            },
        );
        let drain = node.drain_handle();
        // Extension `Play` commands name a prompt; the node plays its own (no audio over ng).
        node.set_prompts(prompts);
        tracing::info!(ng = %listen, allow = ?cfg.media.ng_allow_from, "callbridge media node ready");
        println!("callbridge media node ready: ng {listen}");
        listener
            .run(node, rx, drained(drain, Duration::from_secs(drain_max)))
            .await
            .context("the ng listener")
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    let last = dataplane.shutdown();
    tracing::info!("data plane stopped: {}", crate::dpstats::summary(&last));
    tracing::debug!(stats = %crate::dpstats::to_json(&last), "data plane counters at stop");
    result
}

/// How often a draining node looks at its live-call count.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// Completes when the node should stop: a drain started (first signal, or the ng `drain`
/// command) and no call is left or `max` passed; or a second signal.
async fn drained(drain: ng::node::DrainHandle, max: Duration) {
    // The drain starts with a signal or with the ng command (seen by polling the handle).
    let first = crate::serve::shutdown_signal();
    tokio::pin!(first);
    loop {
        tokio::select! {
            () = &mut first => break,
            () = tokio::time::sleep(DRAIN_POLL) => if drain.is_draining() { break },
        }
    }
    // From here on, any signal ends the drain at once.
    let mut signals = Signals::new();
    drain.start();
    let started = Instant::now();
    tracing::info!(
        calls = drain.calls(),
        max_secs = max.as_secs(),
        "media node draining: no new calls; exits when the live ones end (a second SIGTERM exits now)"
    );
    println!(
        "callbridge media node draining: {} live calls",
        drain.calls()
    );
    loop {
        let calls = drain.calls();
        if calls == 0 {
            tracing::info!("media node drained: no live call left");
            return;
        }
        if started.elapsed() >= max {
            tracing::warn!(
                calls,
                "media.drain_max_secs passed: exiting with live calls"
            );
            return;
        }
        tokio::select! {
            () = signals.next() => {
                tracing::warn!(calls, "second signal: exiting now");
                return;
            }
            () = tokio::time::sleep(DRAIN_POLL) => {}
        }
    }
}

/// SIGINT and SIGTERM as one stream (each `next` waits for the next one of either).
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        Self {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        let term = async {
            match self.term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
}

/// The prompts `serve`'s extension commands may name: `media.announcement` (played for
/// unknown names too) or the built-in prompt.
fn prompts(cfg: &config::Config) -> anyhow::Result<ng::ext::Prompts> {
    let mut p = ng::ext::Prompts::default();
    if let Some(path) = &cfg.media.announcement {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading announcement {}", path.display()))?;
        let clip = dp_api::Clip::from_wav(&bytes, path.display().to_string())
            .with_context(|| format!("announcement {}", path.display()))?;
        let builtin = std::mem::replace(&mut p.default, Arc::new(clip));
        p.named.push(builtin);
    }
    Ok(p)
}
