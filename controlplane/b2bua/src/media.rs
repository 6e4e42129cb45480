//! [`Media`]: what the B2BUA needs from a data plane, and [`InProcessMedia`], this process's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dp_api::{Command, DataplaneHandle, DpError, Event, LegId};
use flows::Legs;
use tokio::sync::mpsc::UnboundedSender;
use tracing::debug;

/// Why the data plane refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// Every port pair is in use.
    #[error("no free media port")]
    NoFreePort,
    /// The command could not be delivered.
    #[error("data plane: {0}")]
    Command(String),
}

/// A media plane: allocates leg pairs, takes commands, routes each leg's events to its call.
pub trait Media: Send + Sync + 'static {
    /// Two legs on one worker (so they can be bridged).
    ///
    /// # Errors
    /// [`MediaError::NoFreePort`] when the ports are all in use.
    fn allocate_pair(&self) -> Result<Legs, MediaError>;
    /// Returns a pair's ports; call only after the legs were removed from the worker.
    fn release(&self, legs: Legs);
    /// About how many more calls (leg pairs) could be allocated now.
    fn free_pairs(&self) -> usize;
    /// Sends a command to the worker owning its leg.
    ///
    /// # Errors
    /// [`MediaError::Command`] when the queue is full or the worker is gone.
    fn send(&self, cmd: Command) -> Result<(), MediaError>;
    /// The address written into SDP for a leg.
    fn address_of(&self, leg: LegId) -> Option<IpAddr>;
    /// Where a leg receives RTP, written into SDP: [`Self::address_of`] and, unless the leg
    /// was re-created elsewhere ([`dp_api::Event::Moved`]), its own port.
    fn rtp_of(&self, leg: LegId) -> Option<SocketAddr> {
        self.address_of(leg)
            .map(|ip| SocketAddr::new(ip, leg.port()))
    }
    /// Routes a leg's events to `to` until [`Media::unroute`].
    fn route(&self, leg: LegId, to: UnboundedSender<Event>);
    /// Stops routing a leg's events.
    fn unroute(&self, leg: LegId);
}

type Routes = Arc<Mutex<HashMap<LegId, UnboundedSender<Event>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the map consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This process's data plane: a [`DataplaneHandle`], the media addresses by index, and a
/// thread that forwards the workers' events to the calls owning the legs.
pub struct InProcessMedia {
    dp: Arc<DataplaneHandle>,
    addresses: Vec<IpAddr>,
    routes: Routes,
}

impl std::fmt::Debug for InProcessMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessMedia")
            .field("addresses", &self.addresses)
            .finish_non_exhaustive()
    }
}

impl InProcessMedia {
    /// Starts the event-forwarding thread (it ends when the data plane stops).
    /// `addresses[i]` is the media address of legs with [`LegId::addr`] `i`.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn start(dp: Arc<DataplaneHandle>, addresses: Vec<IpAddr>) -> std::io::Result<Self> {
        let routes: Routes = Arc::default();
        let events = dp.events().clone();
        let r = routes.clone();
        std::thread::Builder::new()
            .name("dp-events".into())
            .spawn(move || {
                while let Ok(ev) = events.recv() {
                    let Some(leg) = ev.leg() else { continue };
                    let route = lock(&r).get(&leg).cloned();
                    match route {
                        Some(to) => {
                            let _ = to.send(ev);
                        }
                        None => debug!(?ev, "data-plane event for a leg no call owns"),
                    }
                }
            })?;
        Ok(Self {
            dp,
            addresses,
            routes,
        })
    }
}

impl Media for InProcessMedia {
    fn allocate_pair(&self) -> Result<Legs, MediaError> {
        let plan = &self.dp.plan;
        let to_err = |e: DpError| match e {
            DpError::NoFreePort => MediaError::NoFreePort,
            other => MediaError::Command(other.to_string()),
        };
        let a = plan.allocate().map_err(to_err)?;
        let w = plan.worker_of_port(a.port()).unwrap_or(0);
        match plan.allocate_on(w) {
            Ok(b) => Ok(Legs {
                customer: a,
                agent: b,
            }),
            Err(e) => {
                plan.release(a);
                Err(to_err(e))
            }
        }
    }

    fn release(&self, legs: Legs) {
        self.dp.plan.release(legs.customer);
        self.dp.plan.release(legs.agent);
    }

    fn free_pairs(&self) -> usize {
        // A call takes two legs on one worker; split slices may make this slightly optimistic,
        // and allocation still decides.
        self.dp.plan.free_pairs() / 2
    }

    fn send(&self, cmd: Command) -> Result<(), MediaError> {
        self.dp
            .send(cmd)
            .map_err(|e| MediaError::Command(e.to_string()))
    }

    fn address_of(&self, leg: LegId) -> Option<IpAddr> {
        self.addresses.get(usize::from(leg.addr())).copied()
    }

    fn route(&self, leg: LegId, to: UnboundedSender<Event>) {
        lock(&self.routes).insert(leg, to);
    }

    fn unroute(&self, leg: LegId) {
        lock(&self.routes).remove(&leg);
    }
}
