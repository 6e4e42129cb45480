//! The operator's figures (`GET /v1/stats`).

use crate::*;

impl Service {
    /// Refused call requests by kind, live calls and queue lengths per business.
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
                    .limiters
                    .get(&b.id)
                    .map_or(0, |l| lock(l).active_calls(&b.id));
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
        serde_json::json!({
            "live_calls": lock(&self.inner.live).len(),
            "refused": refused,
            "businesses": businesses,
            "agents": agents,
        })
    }
}
