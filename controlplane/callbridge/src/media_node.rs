//! `callbridge media`: a media node. The data plane (socket or DPDK backend, as `serve` starts
//! it) and rtpengine's ng protocol on `media.ng_listen` (UDP and TCP), so that a SIP proxy
//! that drives rtpengine (Kamailio's `rtpengine` module, `rtpengine_manage()`) drives this node
//! instead. No HTTP, no SIP, no store: the proxy owns the calls.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use crate::config;

/// Runs the node until SIGINT or SIGTERM.
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
        // Extension `Play` commands name a prompt; the node plays its own (no audio over ng).
        node.set_prompts(prompts);
        tracing::info!(ng = %listen, allow = ?cfg.media.ng_allow_from, "callbridge media node ready");
        println!("callbridge media node ready: ng {listen}");
        listener
            .run(node, rx, crate::serve::shutdown_signal())
            .await
            .context("the ng listener")
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    let last = dataplane.shutdown();
    tracing::info!("data plane stopped: {}", crate::dpstats::summary(&last));
    tracing::debug!(stats = %crate::dpstats::to_json(&last), "data plane counters at stop");
    result
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
