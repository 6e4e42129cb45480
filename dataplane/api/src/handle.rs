//! The control plane's handle on the data plane: port allocation ([`PortPlan`]), command
//! routing, events.

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::{Command, Event, LegId, PortPlan};

/// Why the control plane could not talk to the data plane.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpError {
    /// Every port pair of the range (or of the chosen worker) is in use.
    #[error("no free media port")]
    NoFreePort,
    /// The worker's command queue is full; the command was not sent.
    #[error("worker {0} command queue is full")]
    QueueFull(usize),
    /// The worker has stopped.
    #[error("worker {0} has stopped")]
    WorkerGone(usize),
    /// The leg's port is not in any worker's range.
    #[error("leg {0} belongs to no worker")]
    NoWorker(LegId),
    /// The port range is unusable.
    #[error("bad port range {0}")]
    BadRange(String),
    /// The leg is not (or no longer) held: released, or an older generation of its port.
    #[error("leg {0} is no longer held")]
    StaleLeg(LegId),
}

/// One worker as seen from the control plane.
#[derive(Debug, Clone)]
pub struct WorkerLink {
    /// The worker's bounded command queue.
    pub commands: Sender<Command>,
}

/// The control plane's handle: routes each [`Command`] to the worker owning its leg.
#[derive(Debug)]
pub struct DataplaneHandle {
    /// Port allocation (owned by the control plane).
    pub plan: PortPlan,
    workers: Vec<WorkerLink>,
    events: Receiver<Event>,
}

impl DataplaneHandle {
    /// Assembles a handle; `workers[i]` owns `plan.slice(i)` and must mark the legs it lets
    /// go of in `plan.retired()` (or the plan never hands a port out twice).
    #[must_use]
    pub fn new(mut plan: PortPlan, workers: Vec<WorkerLink>, events: Receiver<Event>) -> Self {
        plan.attach(workers.iter().map(|l| l.commands.clone()).collect());
        Self {
            plan,
            workers,
            events,
        }
    }

    /// Sends a command to the worker owning its leg, or to every worker for
    /// [`Command::Shutdown`]. Never blocks. Commands naming a leg go through the
    /// [`PortPlan`]: only for legs it holds (a second `RemoveLeg` of a leg is not sent), after
    /// the `RemoveLeg`s it owes that worker.
    ///
    /// # Errors
    /// [`DpError::QueueFull`] or [`DpError::WorkerGone`] from the queue, [`DpError::NoWorker`]
    /// for a port outside the range, [`DpError::StaleLeg`] for a leg released (or an older
    /// generation of its port).
    pub fn send(&self, cmd: Command) -> Result<(), DpError> {
        match cmd.leg() {
            Some(leg) => {
                let w = self
                    .plan
                    .worker_of_port(leg.port())
                    .ok_or(DpError::NoWorker(leg))?;
                self.plan.send(w, cmd)
            }
            None => {
                for (w, link) in self.workers.iter().enumerate() {
                    Self::try_send(w, link, cmd.clone())?;
                }
                Ok(())
            }
        }
    }

    fn try_send(w: usize, link: &WorkerLink, cmd: Command) -> Result<(), DpError> {
        link.commands.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(_) => DpError::QueueFull(w),
            TrySendError::Disconnected(_) => DpError::WorkerGone(w),
        })
    }

    /// The one queue all workers report on.
    #[must_use]
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }
}
