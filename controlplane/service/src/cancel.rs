//! Cancelling a request (`DELETE /v1/call-requests/{id}`) and the live calls
//! (`GET /v1/calls`).
//!
//! A waiting request (`queued`, `scheduled`) is a row: it is recorded `cancelled` at once, and
//! the scheduler never claims a `cancelled` row. A request claimed a moment before (its task
//! not yet in [`Inner::live`](crate::Inner)) is remembered in `cancelled`, checked by the task
//! under the same lock before it dials ([`Service::admit_live`]). A live call gets
//! [`CallInput::Cancel`], the input shutdown uses: its task CANCELs / BYEs the legs still up and
//! records `cancelled` itself.

use std::time::Instant;

use crate::*;

/// How long a request cancelled before its task started is remembered.
const CANCELLED_MEMORY: Duration = Duration::from_secs(300);

/// The statuses after which nothing more happens to a request.
pub(crate) fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

/// What [`Service::cancel`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// A waiting request: recorded `cancelled`; the request now.
    Stored(Box<RequestView>),
    /// A live call: its task was told to hang up; it records `cancelled` once its legs are
    /// down.
    Signalled,
    /// It had already ended: the request as it is.
    AlreadyEnded(Box<RequestView>),
}

impl Service {
    /// Cancels a request: a waiting one at once, a live call by hanging up its legs (see
    /// [`Cancelled`]). Blocking (store I/O).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; the store's failure.
    pub fn cancel(&self, id: &CallId) -> Result<Cancelled, ServiceError> {
        let i = &self.inner;
        let ended = |svc: &Self| -> Result<Cancelled, ServiceError> {
            let v = svc
                .get(id)?
                .ok_or_else(|| ServiceError::NotFound(id.clone()))?;
            Ok(Cancelled::AlreadyEnded(Box::new(v)))
        };
        let Some(rec) = i.store.get(id)? else {
            return Err(ServiceError::NotFound(id.clone()));
        };
        if is_final(&rec.status) {
            return ended(self);
        }
        {
            let live = lock(&i.live);
            if let Some(inbox) = live.get(id) {
                if inbox.send(CallInput::Cancel).is_ok() {
                    return Ok(Cancelled::Signalled);
                }
            }
            // Not running here: a task about to start for it must not dial.
            let mut c = lock(&i.cancelled);
            let now = Instant::now();
            c.retain(|_, at| now.duration_since(*at) < CANCELLED_MEMORY);
            c.insert(id.clone(), now);
        }
        // A task that just finished recorded its final status before leaving `live`.
        let Some(rec) = i.store.get(id)? else {
            return Err(ServiceError::NotFound(id.clone()));
        };
        if is_final(&rec.status) {
            return ended(self);
        }
        let now = now_ms();
        let mut ch = StatusChange::new(now, "cancelled");
        ch.webhook = self.webhook_for(&rec, "cancelled", None, rec.agent.as_deref(), now);
        let queued = ch.webhook.is_some();
        i.store.set_status(id, &ch)?;
        if queued {
            i.outbox_wake.notify_one();
        }
        lock(&i.reserved).remove(id);
        if let Some(b) = &rec.request.business {
            self.stop_counting(b, id);
        }
        self.end_slot(id);
        lock(&i.acd).cancel(id);
        info!(call = %id, was = %rec.status, "request cancelled");
        self.publish(
            id,
            rec.request.business.clone(),
            rec.agent.clone(),
            "cancelled",
            None,
            now,
        );
        let v = self
            .get(id)?
            .ok_or_else(|| ServiceError::NotFound(id.clone()))?;
        Ok(Cancelled::Stored(Box::new(v)))
    }

    /// Registers a call task as live, unless its request was cancelled before it started
    /// (then `None`: the task must not dial).
    pub(crate) fn admit_live(
        &self,
        id: &CallId,
        inbox: mpsc::UnboundedSender<CallInput>,
    ) -> Option<()> {
        let mut live = lock(&self.inner.live);
        if lock(&self.inner.cancelled).remove(id).is_some() {
            return None;
        }
        live.insert(id.clone(), inbox);
        Some(())
    }

    /// The ids of the live calls (dialled or waiting for an agent in this process), oldest
    /// id first.
    #[must_use]
    pub fn live_ids(&self) -> Vec<CallId> {
        let mut ids: Vec<CallId> = lock(&self.inner.live).keys().cloned().collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        ids
    }
}

#[cfg(test)]
mod tests;
