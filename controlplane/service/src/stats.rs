//! The operator's figures (`GET /v1/stats`).

use crate::*;

impl Service {
    /// Refused call requests by kind, live calls, queue lengths per business, agents'
    /// presence, trunks (up, calls, failovers) and SIP transport counters.
    #[must_use]
    pub fn stats(&self) -> serde_json::Value {
        let acd = lock(&self.inner.acd);
        let businesses: serde_json::Map<String, serde_json::Value> = self
            .inner
            .dir()
            .businesses
            .iter()
            .map(|b| {
                let in_progress = self
                    .inner
                    .limiter(&b.id)
                    .map_or(0, |l| lock(&l).active_calls(&b.id));
                (
                    b.id.as_str().to_owned(),
                    serde_json::json!({
                        "queued": acd.queue_len(&b.id),
                        "in_progress": in_progress,
                    }),
                )
            })
            .collect();
        let agents: serde_json::Map<String, serde_json::Value> = self
            .inner
            .dir()
            .agents
            .iter()
            .map(|a| {
                (
                    a.id.as_str().to_owned(),
                    serde_json::json!(acd.presence(&a.id).map(Presence::as_str)),
                )
            })
            .collect();
        let refused: serde_json::Map<String, serde_json::Value> = self
            .inner
            .refusals
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::json!(v)))
            .collect();
        let sip = self.inner.b2b.sip().stats();
        let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let (limit, binding) = self.inner.admission.limit();
        serde_json::json!({
            "live_calls": lock(&self.inner.live).len(),
            "admission": {
                "calls": self.inner.admission.holding(),
                "max_calls": (limit != usize::MAX).then_some(limit),
                "bound_by": (limit != usize::MAX).then_some(binding),
            },
            "refused": refused,
            "businesses": businesses,
            "agents": agents,
            "trunks": self.inner.b2b.trunks().status(),
            "sip": {
                "received": n(&sip.received),
                "bad_requests": n(&sip.bad_requests),
                "too_large": n(&sip.too_large),
                "rate_limited": n(&sip.rate_limited),
                "forbidden_invites": n(&sip.forbidden_invites),
                "send_errors": n(&sip.send_errors),
                "connections_opened": n(&sip.connections_opened),
                "connections_accepted": n(&sip.connections_accepted),
                "connections_closed": n(&sip.connections_closed),
                "connections_refused": n(&sip.connections_refused),
                "tls_failures": n(&sip.tls_failures),
            },
        })
    }
}
