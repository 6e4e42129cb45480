//! Reloading the configuration file (SIGHUP, `POST /v1/admin/reload`): agents, businesses,
//! announcements (prompts), limits and `drain.max_seconds` are applied at once, without
//! touching live calls; what only a restart can change (listen addresses, media ports and
//! backend, the store, trunks, flow timers, …) is reported as `needs_restart` and left as it
//! runs. A file that does not load is refused with its `FILE:LINE: KEY: reason`; the
//! configuration in use stays.

use std::sync::atomic::Ordering;

use http_api::admin::ReloadRefusal;
use serde_json::{json, Value};

use crate::config::{self, Config};
use crate::drain::Admin;

/// Re-reads the file and applies it. Blocking (file and store I/O).
///
/// # Errors
/// 409 without a file; 422 for a file that does not load.
pub(crate) fn reload(admin: &Admin) -> Result<Value, ReloadRefusal> {
    let _one = admin
        .reloading
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(path) = &admin.config_path else {
        return Err(ReloadRefusal::no_file(
            "callbridge runs on its built-in configuration: there is no file to reload \
             (start it with `callbridge serve --config FILE`)",
        ));
    };
    let new = Config::load(path).map_err(|e| {
        tracing::warn!(error = %e, "reload refused; the configuration in use stays");
        ReloadRefusal::invalid(e.to_string(), e.key.clone())
    })?;
    let mut dir = crate::serve::directory(&new).map_err(|e| {
        let r = ReloadRefusal::invalid(
            format!("{}:0: business.announcement: {e:#}", path.display()),
            "business.announcement",
        );
        tracing::warn!(error = %r.error, "reload refused; the configuration in use stays");
        r
    })?;
    // The default announcement, re-read: it reaches every business without its own.
    if let Some(p) = &new.media.announcement {
        let clip = std::fs::read(p)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                dp_api::Clip::from_wav(&b, p.display().to_string()).map_err(|e| e.to_string())
            })
            .map_err(|e| {
                ReloadRefusal::invalid(
                    format!(
                        "{}:0: media.announcement: {}: {e}",
                        path.display(),
                        p.display()
                    ),
                    "media.announcement",
                )
            })?;
        let clip = std::sync::Arc::new(clip);
        for b in dir
            .businesses
            .iter_mut()
            .filter(|b| b.announcement.is_none())
        {
            b.announcement = Some(clip.clone());
        }
    } else if admin.started_cfg.media.announcement.is_some() {
        let clip = std::sync::Arc::new(dp_api::Clip::builtin_prompt());
        for b in dir
            .businesses
            .iter_mut()
            .filter(|b| b.announcement.is_none())
        {
            b.announcement = Some(clip.clone());
        }
    }
    let summary = admin.svc.reload_directory(dir).map_err(|e| ReloadRefusal {
        status: 500,
        error: format!("the reload failed; the configuration in use stays: {e}"),
        field: None,
    })?;
    admin
        .max_seconds
        .store(new.drain.max_seconds, Ordering::Relaxed);
    let restart = needs_restart(&admin.started_cfg, &new);
    let removed: Vec<&str> = summary
        .removed_agents
        .iter()
        .map(flows::AgentId::as_str)
        .collect();
    tracing::info!(
        file = %path.display(),
        businesses = summary.businesses,
        agents = summary.agents,
        removed_agents = ?removed,
        "configuration reloaded"
    );
    if !restart.is_empty() {
        tracing::warn!(
            keys = ?restart,
            "configuration changes that need a restart were not applied"
        );
    }
    Ok(json!({
        "reloaded": true,
        "businesses": summary.businesses,
        "agents": summary.agents,
        "removed_agents": removed,
        "needs_restart": restart,
    }))
}

/// The keys whose change only a restart applies, where `new` differs from what runs.
fn needs_restart(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut differs = |key: &'static str, changed: bool| {
        if changed {
            keys.push(key);
        }
    };
    differs("http", running.http != new.http);
    differs("sip", running.sip != new.sip);
    let media = |c: &Config| config::MediaConfig {
        announcement: None,
        ..c.media.clone()
    };
    differs("media", media(running) != media(new));
    differs("dpdk", running.dpdk != new.dpdk);
    differs("trunk", running.trunk != new.trunk);
    differs("store", running.store != new.store);
    differs("lab", running.lab != new.lab);
    differs("flow", running.flow != new.flow);
    // Admission is set up with the service.
    differs(
        "limits.max_calls / limits.max_setups_per_second",
        (
            running.limits.max_calls,
            running.limits.max_setups_per_second,
        ) != (new.limits.max_calls, new.limits.max_setups_per_second),
    );
    let preferred = |c: &Config| c.business.iter().map(|b| b.preferred_wait_secs).max();
    differs(
        "business.preferred_wait_secs",
        preferred(running) != preferred(new),
    );
    // The registrar's credentials are set when SIP starts.
    let registered = |c: &Config| {
        c.agent
            .iter()
            .filter(|a| matches!(a.contact, flows::Target::Registered(_)))
            .map(|a| (a.sip_username.clone(), a.sip_password.clone()))
            .collect::<Vec<_>>()
    };
    differs(
        "agent.sip_username / agent.sip_password",
        registered(running) != registered(new),
    );
    keys
}
