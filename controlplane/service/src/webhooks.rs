//! Webhooks: every status change of a business's request is POSTed to its `webhook_url` as
//! JSON, from the durable outbox (queued in the same transaction as the change), signed, and
//! retried with exponential backoff.
//!
//! Signature: header `X-Callbridge-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
//! HMAC-SHA256 with the business's `webhook_secret` over `"<t>.<body>"` (the exact bytes of the
//! body). To verify: split the header, recompute the HMAC over the timestamp, a dot and the raw
//! body, compare in constant time, and refuse timestamps older than a few minutes (replays).
//! `X-Callbridge-Delivery` carries the outbox id (the same on every retry: deduplicate on it).
//!
//! Delivery: a 2xx answer within [`TIMEOUT`] is delivered; anything else is retried after
//! [`backoff`] (2 s doubling to 1 h), and given up after [`MAX_ATTEMPTS`] attempts (about a day).
//! Each attempt is recorded on the item (`GET /v1/call-requests/{id}/webhooks`).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use store::{CallRecord, OutboxItem, Webhook};
use tracing::{debug, info, warn};

use crate::{now_ms, Service};

/// Attempts before an item is given up.
pub const MAX_ATTEMPTS: u32 = 30;
/// How long one delivery may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Items sent per pass.
const BATCH: usize = 32;

/// The wait before attempt `attempts + 1`: 2 s, 4 s, 8 s, … at most one hour.
#[must_use]
pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempts.clamp(1, 12))).min(Duration::from_secs(3600))
}

/// The signature header's value for `body` sent at `t` (Unix seconds).
#[must_use]
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// The JSON body of a status change: `{"type": "call.status", "id", "business", "status",
/// "reason", "agent", "customer", "page", "at"}` (`at` in Unix milliseconds).
#[must_use]
pub fn body(
    rec: &CallRecord,
    status: &str,
    reason: Option<&str>,
    agent: Option<&str>,
    at_ms: i64,
) -> String {
    json!({
        "type": "call.status",
        "id": rec.request.id.as_str(),
        "business": rec.request.business.as_ref().map(flows::BusinessId::as_str),
        "status": status,
        "reason": reason,
        "agent": agent.or(rec.agent.as_deref()),
        "customer": rec.request.customer,
        "page": rec.request.page.as_ref().map(|p| json!({"url": p.url, "title": p.title, "referrer": p.referrer})),
        "at": at_ms,
    })
    .to_string()
}

impl Service {
    /// The webhook of a status change for `rec`, if its business has one.
    pub(crate) fn webhook_for(
        &self,
        rec: &CallRecord,
        status: &str,
        reason: Option<&str>,
        agent: Option<&str>,
        at_ms: i64,
    ) -> Option<Webhook> {
        let b = rec.request.business.as_ref()?;
        let dir = self.inner().dir();
        let (url, _) = dir.business(b)?.webhook.as_ref()?;
        Some(Webhook {
            url: url.clone(),
            body: body(rec, status, reason, agent, at_ms),
        })
    }

    /// Delivers the outbox for ever (until stop).
    pub(crate) async fn deliver_webhooks(self) {
        let client = match reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("callbridge/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                warn!("webhooks disabled: cannot build the HTTP client: {e}");
                return;
            }
        };
        let stop = self.inner().stop.clone();
        loop {
            let store = self.inner().store.clone();
            let due = tokio::task::spawn_blocking(move || store.outbox_due(now_ms(), BATCH)).await;
            let items = match due {
                Ok(Ok(items)) => items,
                Ok(Err(e)) => {
                    warn!("webhooks: cannot read the outbox: {e}");
                    Vec::new()
                }
                Err(_) => Vec::new(),
            };
            let busy = !items.is_empty();
            for item in items {
                self.deliver(&client, item).await;
            }
            if busy {
                continue;
            }
            tokio::select! {
                () = self.inner().outbox_wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    async fn deliver(&self, client: &reqwest::Client, item: OutboxItem) {
        let secret = self
            .inner()
            .dir()
            .business(&item.business)
            .and_then(|b| b.webhook.as_ref())
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        let t = now_ms() / 1000;
        let sent = client
            .post(&item.url)
            .header("content-type", "application/json")
            .header("x-callbridge-signature", signature(&secret, t, &item.body))
            .header("x-callbridge-delivery", item.id.to_string())
            .body(item.body.clone())
            .send()
            .await;
        let result = match sent {
            Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
            Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Err(e.to_string()),
        };
        let attempts = item.attempts + 1;
        let next = match &result {
            Ok(_) => None,
            Err(_) if attempts >= MAX_ATTEMPTS => None,
            Err(_) => {
                Some(now_ms() + i64::try_from(backoff(attempts).as_millis()).unwrap_or(i64::MAX))
            }
        };
        match &result {
            Ok(s) => debug!(call = %item.request_id, id = item.id, status = s, "webhook delivered"),
            Err(e) if next.is_some() => {
                info!(call = %item.request_id, id = item.id, attempts, "webhook failed, will retry: {e}")
            }
            Err(e) => {
                warn!(call = %item.request_id, id = item.id, attempts, "webhook given up: {e}")
            }
        }
        let store = self.inner().store.clone();
        let id = item.id;
        let at = now_ms();
        let _ =
            tokio::task::spawn_blocking(move || store.outbox_attempt(id, at, result, next)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Reference value computed independently (Python: hmac.new(b"secret", b"1700000000.{}",
        // hashlib.sha256).hexdigest()).
        assert_eq!(
            signature("secret", 1_700_000_000, "{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(11), Duration::from_secs(2048));
        assert_eq!(backoff(12), Duration::from_secs(3600));
        assert_eq!(backoff(40), Duration::from_secs(3600));
    }
}
