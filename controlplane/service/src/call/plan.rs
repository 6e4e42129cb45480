//! The [`CallPlan`] of a claimed request: its targets, agent source, announcement, timers
//! and reservation order, from the request and the directory.

use flows::{AgentId, AgentSource, CallPlan, Target};
use store::{CallRecord, Kind};

use crate::{Preallocated, Service};

/// The plan the call's state machine starts with; `Err` names an unusable target.
pub(super) fn plan(
    svc: &Service,
    rec: &CallRecord,
    legs: Preallocated,
) -> Result<CallPlan, String> {
    let i = svc.inner();
    let customer = Target::parse(&rec.request.customer).map_err(|e| e.to_string())?;
    let agent = match rec.request.kind {
        Kind::CallRequest | Kind::Inbound => AgentSource::Acd {
            preferred: rec.request.preferred_agent.clone(),
        },
        Kind::Bridge => {
            let spec = rec.request.agent_spec.as_deref().unwrap_or_default();
            match AgentId::new(spec)
                .ok()
                .and_then(|a| i.dir().agent(&a).cloned())
            {
                Some(a) => AgentSource::Given {
                    agent: Some(a.id),
                    target: a.contact,
                },
                None => AgentSource::Given {
                    agent: None,
                    target: Target::parse(spec).map_err(|e| e.to_string())?,
                },
            }
        }
    };
    Ok(CallPlan {
        id: rec.request.id.clone(),
        customer,
        agent,
        contact_at: None,
        legs,
        announcement: rec
            .request
            .business
            .as_ref()
            .and_then(|b| i.dir().business(b).and_then(|b| b.announcement.clone()))
            .unwrap_or_else(|| i.settings.announcement.clone()),
        timers: i.settings.timers,
        media: i.settings.media,
        inbound: rec.request.kind == Kind::Inbound,
        agent_early_media: rec
            .request
            .business
            .as_ref()
            .and_then(|b| i.dir().business(b).map(|b| b.agent_early_media))
            .unwrap_or(false),
        reservation: rec
            .request
            .business
            .as_ref()
            .and_then(|b| i.dir().business(b).map(|b| b.reservation))
            .unwrap_or_default(),
    })
}
