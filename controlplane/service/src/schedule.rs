//! The scheduler (claims due requests and starts their calls) and the recovery at start-up.

use crate::*;

/// How soon the scheduler looks again when work is due but admission has no room (the
/// set-up bucket refills meanwhile; a call's end wakes it sooner).
const ADMISSION_RETRY: Duration = Duration::from_millis(50);

impl Service {
    /// Decides the fate of every request an earlier run left live.
    pub(crate) fn recover(&self) -> Result<(), ServiceError> {
        let i = &self.inner;
        let now = now_ms();
        let interrupted = i.store.recover(&i.run, now)?;
        for rec in interrupted {
            // The business's retry policy decides (the interrupted attempt counts).
            let dir = i.dir();
            let max = rec
                .request
                .business
                .as_ref()
                .and_then(|b| dir.business(b))
                .map_or(i.settings.max_attempts, |b| b.retry.attempts);
            let retry = rec.request.kind == Kind::CallRequest && rec.attempts < max.max(1);
            let ch = if retry {
                let mut ch = StatusChange::new(now, "queued");
                ch.due_ms = Some(now);
                ch.unclaim = true;
                ch
            } else {
                let mut ch = StatusChange::new(now, "failed");
                ch.reason = Some("interrupted".into());
                ch
            };
            info!(call = %rec.request.id, attempts = rec.attempts, retry, "call interrupted by a restart");
            let mut ch = ch;
            ch.webhook = self.webhook_for(&rec, &ch.status, ch.reason.as_deref(), None, now);
            let business = rec.request.business.as_ref();
            i.metrics.status(business, &ch.status, ch.reason.as_deref());
            i.store.set_status(&rec.request.id, &ch)?;
        }
        Ok(())
    }

    /// Every [`LEASE_RENEWAL`]: renews this run's claims in the store ([`Store::renew`]: a
    /// shared PostgreSQL store leases them; SQLite's is a no-op) and, when a run whose lease
    /// expired (a dead node) left work behind, takes it over with [`Service::recover`]: its
    /// live calls are retried or failed per the business's policy, as after a restart.
    pub(crate) async fn keep_lease(self) {
        let stop = self.inner.stop.clone();
        loop {
            tokio::select! {
                () = tokio::time::sleep(LEASE_RENEWAL) => {}
                () = stop.cancelled() => return,
            }
            let s = self.clone();
            let renewed = tokio::task::spawn_blocking(move || {
                let i = &s.inner;
                let orphans = i.store.renew(&i.run, now_ms())?;
                if orphans {
                    s.recover()?;
                }
                Ok::<bool, ServiceError>(orphans)
            })
            .await;
            match renewed {
                Ok(Ok(true)) => {
                    info!("took over the work of a control-plane node whose lease expired");
                    self.inner.wake.notify_one();
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => warn!("store lease: {e}"),
                Err(e) => warn!("store lease: {e}"),
            }
        }
    }

    /// Starts a claimed request's call once admission lets it: its slot taken now (so the
    /// next pass sees it taken), its set-up token awaited in its task; without a slot it goes
    /// back to the store, due again when one may have freed.
    fn start_claimed(&self, rec: CallRecord) {
        let s = self.clone();
        match self.inner.admission.claim(&rec.request.id, Instant::now()) {
            admission::Claim::Held => {
                tokio::spawn(async move { call::run(s, rec, None).await });
            }
            admission::Claim::Took(wait) => {
                tokio::spawn(async move {
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    call::run(s, rec, None).await;
                });
            }
            admission::Claim::Full(o) => {
                let id = rec.request.id.clone();
                info!(call = %id, reason = o.reason, "no capacity to dial now; due again in {} s", o.retry_after_s);
                let store = self.inner.store.clone();
                let due = now_ms() + i64::try_from(o.retry_after_s * 1000).unwrap_or(i64::MAX);
                tokio::task::spawn_blocking(move || store.unclaim(&id, due));
            }
        }
    }

    /// Claims due requests and starts their calls, for ever (until stop).
    pub(crate) async fn scheduler(self) {
        let i = self.inner.clone();
        loop {
            if i.stop.is_cancelled() {
                return;
            }
            // Admission: no more than the free slots and the set-up tokens soon due (plus
            // the requests admitted at accept, which hold theirs).
            let admitted = i.admission.room(Instant::now());
            let room = MAX_LIVE_CALLS
                .saturating_sub(lock(&i.live).len())
                .min(CLAIM_BATCH)
                .min(admitted);
            let mut claimed = 0;
            // Draining: due requests stay in the store for the next process.
            let room = if self.is_draining() { 0 } else { room };
            if room > 0 {
                let store = i.store.clone();
                let run = i.run.clone();
                let got =
                    tokio::task::spawn_blocking(move || store.claim_due(&run, now_ms(), room))
                        .await;
                match got {
                    Ok(Ok(recs)) => {
                        claimed = recs.len();
                        for rec in recs {
                            self.start_claimed(rec);
                        }
                    }
                    Ok(Err(e)) => warn!("scheduler: cannot claim due requests: {e}"),
                    Err(e) => warn!("scheduler: {e}"),
                }
            }
            if claimed == room && room > 0 {
                // More may be due: go round again at once.
                tokio::task::yield_now().await;
                continue;
            }
            let store = i.store.clone();
            let next = tokio::task::spawn_blocking(move || store.next_due())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten();
            let mut wait = next
                .filter(|_| !self.is_draining())
                .map_or(SCHEDULER_IDLE, |due| {
                    Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0))
                        .min(SCHEDULER_IDLE)
                });
            if admitted == 0 && wait.is_zero() {
                // Work is due but no slot or token: a call's end wakes us, the bucket
                // refills meanwhile.
                i.admission.set_starved();
                wait = ADMISSION_RETRY;
            }
            tokio::select! {
                () = i.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = i.stop.cancelled() => return,
            }
        }
    }
}
