//! The operator's figures (`GET /v1/stats`), and every node's queued requests on a shared
//! store (read at most once a second, whoever asks: stats, `/metrics`, admin status).

use crate::*;

/// How long every node's queue counts are reused before the store is asked again.
const CLUSTER_QUEUE_TTL: Duration = Duration::from_secs(1);

/// Per business id, the requests queued in the shared store (every node's).
pub(crate) type QueuedByBusiness = Arc<HashMap<String, usize>>;

/// The last read of every node's queue counts: when, and what (`None`: the store failed).
#[derive(Default)]
pub(crate) struct ClusterQueue {
    last: Mutex<Option<(Instant, Option<QueuedByBusiness>)>>,
}

/// Runs `f`, which blocks (store I/O), telling tokio when on a multi-thread runtime's worker
/// so its other tasks move on (a current-thread runtime or a plain thread just runs it).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl ClusterQueue {
    /// The counts, from the cache while younger than [`CLUSTER_QUEUE_TTL`], else from `read`
    /// (called by one caller at a time; the others wait for its answer).
    fn get(
        &self,
        now: Instant,
        read: impl FnOnce() -> Result<Vec<(String, usize)>, store::StoreError>,
    ) -> Option<QueuedByBusiness> {
        let mut last = lock(&self.last);
        if let Some((at, v)) = &*last {
            if now.saturating_duration_since(*at) < CLUSTER_QUEUE_TTL {
                return v.clone();
            }
        }
        let v = match read() {
            Ok(rows) => Some(Arc::new(rows.into_iter().collect::<HashMap<_, _>>())),
            Err(e) => {
                warn!("cannot count the queued requests in the store: {e}");
                None
            }
        };
        *last = Some((now, v.clone()));
        v
    }
}

impl Service {
    /// Requests queued in the store per business, every node's, when the store is shared
    /// (`None` with a store of its own, or when the store cannot be read). Read at most once
    /// a second.
    pub(crate) fn cluster_queued(&self) -> Option<QueuedByBusiness> {
        let i = &self.inner;
        if !i.store.shared() {
            return None;
        }
        i.cluster_queue
            .get(Instant::now(), || blocking(|| i.store.queued_by_business()))
    }

    /// Requests waiting for an agent on every node sharing the store (status `queued`, all
    /// businesses); `None` with a store of its own ([`Service::queued_requests`] is then the
    /// whole figure) or when the store cannot be read. Read at most once a second.
    #[must_use]
    pub fn queued_requests_cluster(&self) -> Option<usize> {
        self.cluster_queued().map(|m| m.values().sum())
    }

    /// Refused call requests by kind, live calls, queue lengths per business, agents'
    /// presence, trunks (up, calls, failovers) and SIP transport counters.
    #[must_use]
    pub fn stats(&self) -> serde_json::Value {
        let cluster = self.cluster_queued();
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
                let mut v = serde_json::json!({
                    "queued": acd.queue_len(&b.id),
                    "in_progress": in_progress,
                });
                if let Some(c) = &cluster {
                    v["queued_cluster"] = serde_json::json!(c.get(b.id.as_str()).unwrap_or(&0));
                }
                (b.id.as_str().to_owned(), v)
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
        let mut out = serde_json::json!({
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
        });
        if let Some(c) = &cluster {
            out["queued_requests_cluster"] = serde_json::json!(c.values().sum::<usize>());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_counts_are_read_at_most_once_a_second_and_failures_too() {
        let q = ClusterQueue::default();
        let t0 = Instant::now();
        let reads = std::cell::Cell::new(0);
        let read = |n: usize| {
            reads.set(reads.get() + 1);
            Ok(vec![("acme".to_owned(), n)])
        };
        assert_eq!(q.get(t0, || read(3)).unwrap()["acme"], 3);
        let later = t0 + Duration::from_millis(900);
        assert_eq!(q.get(later, || read(4)).unwrap()["acme"], 3, "cached");
        assert_eq!(reads.get(), 1);
        let t1 = t0 + CLUSTER_QUEUE_TTL;
        assert_eq!(q.get(t1, || read(4)).unwrap()["acme"], 4, "read again");
        let t2 = t1 + CLUSTER_QUEUE_TTL;
        let failed = q.get(t2, || Err(store::StoreError::Db("down".into())));
        assert!(failed.is_none());
        assert!(
            q.get(t2, || read(5)).is_none(),
            "a failure is not retried at once"
        );
        assert_eq!(reads.get(), 2);
    }
}
