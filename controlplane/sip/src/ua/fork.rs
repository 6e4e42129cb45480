//! Parallel forking at the UAC: one INVITE per registered device of an agent, all at once;
//! the first to answer wins and the others are CANCELled ([`Endpoint::invite_registered`],
//! [`Endpoint::invite_forked`], [`ForkedCall`]).
//!
//! The legs are ordinary outgoing legs ([`Endpoint::invite_to`], each to its binding's flow);
//! [`Merge`] (sans-IO) turns their events into the events of one leg, the way a forking proxy
//! picks its response (RFC 3261 16.7):
//! * provisional responses of any leg pass while no leg has answered;
//! * the first 2xx wins: it passes, every other leg is hung up (CANCEL, or BYE for a 2xx that
//!   crossed the CANCEL); after that only the winner's events pass (`Bye`, `Ended`);
//! * a 6xx ends the search: the other legs are hung up and the 6xx is the outcome;
//! * when every leg failed, the outcome is the best final response (6xx, else the lowest
//!   class, the first of it), else `Timeout`, else (every device unreachable) `Unreachable`;
//!   no leg at all gives `480`;
//! * [`ForkController::hangup`] hangs up every leg and the outcome is `Ended`.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{Endpoint, InviteRequest, LegController, LegEvent, OutgoingCall};
use crate::error::SipError;
use crate::peer::Peer;

/// What the merge asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// Pass this event to the application.
    Emit(LegEvent),
    /// Hang up leg `i`.
    Hangup(usize),
}

/// The events of parallel legs merged into one leg's (sans-IO; see the module docs).
#[derive(Debug)]
struct Merge {
    done: Vec<bool>,
    winner: Option<usize>,
    /// The best final response of the failed legs so far.
    best: Option<(u16, String)>,
    timeout: bool,
    /// The first transport error's cause, when a leg was unreachable.
    unreachable: Option<String>,
    /// Our hangup: the outcome is `Ended`.
    hung_up: bool,
    /// No leg may win any more (hangup, or a 6xx).
    closed: bool,
    over: bool,
}

impl Merge {
    fn new(legs: usize) -> Self {
        Self {
            done: vec![false; legs],
            winner: None,
            best: None,
            timeout: false,
            unreachable: None,
            hung_up: false,
            closed: false,
            over: false,
        }
    }

    fn is_over(&self) -> bool {
        self.over
    }

    /// The final outcome when no leg is left (and none won).
    fn finish(&mut self, out: &mut Vec<Action>) {
        if self.over || self.winner.is_some() || self.done.iter().any(|d| !d) {
            return;
        }
        self.over = true;
        out.push(Action::Emit(if self.hung_up {
            LegEvent::Ended
        } else if let Some((status, reason)) = self.best.take() {
            LegEvent::Rejected { status, reason }
        } else if self.timeout {
            LegEvent::Timeout
        } else if let Some(cause) = self.unreachable.take() {
            LegEvent::Unreachable { cause }
        } else {
            LegEvent::Rejected {
                status: 480,
                reason: "Temporarily Unavailable".into(),
            }
        }));
    }

    /// Hang up every leg still going (our hangup).
    fn hangup(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.hung_up || self.over {
            return out;
        }
        self.hung_up = true;
        self.closed = true;
        for (i, done) in self.done.iter().enumerate() {
            if !done {
                out.push(Action::Hangup(i));
            }
        }
        self.finish(&mut out);
        out
    }

    fn hangup_others(&self, winner: usize, out: &mut Vec<Action>) {
        for (j, done) in self.done.iter().enumerate() {
            if j != winner && !done {
                out.push(Action::Hangup(j));
            }
        }
    }

    /// Leg `i`'s next event (`None`: the leg is over).
    fn handle(&mut self, i: usize, ev: Option<LegEvent>) -> Vec<Action> {
        let mut out = Vec::new();
        if self.over || i >= self.done.len() {
            return out;
        }
        let won = self.winner == Some(i);
        match ev {
            Some(ev @ LegEvent::Progress { .. }) => {
                if self.winner.is_none() && !self.closed {
                    out.push(Action::Emit(ev));
                }
            }
            Some(ev @ LegEvent::Answered { .. }) => {
                if self.winner.is_none() && !self.closed {
                    self.winner = Some(i);
                    out.push(Action::Emit(ev));
                    self.hangup_others(i, &mut out);
                } else if !won {
                    // a 2xx that crossed our CANCEL, or a second device answering: BYE
                    out.push(Action::Hangup(i));
                }
            }
            Some(LegEvent::Rejected { status, reason }) if !won => {
                self.done[i] = true;
                let rank = |s: u16| if s >= 600 { 0 } else { s / 100 };
                if self
                    .best
                    .as_ref()
                    .is_none_or(|(b, _)| rank(status) < rank(*b))
                {
                    self.best = Some((status, reason));
                }
                if status >= 600 && !self.closed {
                    self.closed = true;
                    self.hangup_others(i, &mut out);
                }
            }
            Some(LegEvent::Timeout) if !won => {
                self.done[i] = true;
                self.timeout = true;
            }
            Some(LegEvent::Unreachable { cause }) if !won => {
                self.done[i] = true;
                self.unreachable.get_or_insert(cause);
            }
            Some(ev) if won => {
                // the winner's dialog: Bye, Ended (or Timeout: no ACK … not for a UAC leg)
                let last = matches!(
                    ev,
                    LegEvent::Bye | LegEvent::Ended | LegEvent::Timeout | LegEvent::Rejected { .. }
                );
                out.push(Action::Emit(ev));
                if last {
                    self.done[i] = true;
                    self.over = true;
                }
            }
            Some(_) => {
                // a loser's Ended / Cancelled / Bye after its hangup
                if matches!(
                    ev,
                    Some(LegEvent::Ended | LegEvent::Bye | LegEvent::Cancelled)
                ) {
                    self.done[i] = true;
                }
            }
            None => {
                self.done[i] = true;
                if won {
                    self.over = true;
                }
            }
        }
        self.finish(&mut out);
        out
    }
}

/// Hangs up a [`ForkedCall`] from anywhere: every leg still going (CANCEL before the answer,
/// BYE after). Clone + Send.
#[derive(Debug, Clone)]
pub struct ForkController {
    cancel: CancellationToken,
}

impl ForkController {
    /// Ends the call, idempotently; the call's last event is then [`LegEvent::Ended`].
    pub fn hangup(&self) {
        self.cancel.cancel();
    }
}

/// A call to several devices at once, seen as one outgoing leg: the same events as
/// [`OutgoingCall`] (see the module docs for how they are chosen). Dropping it hangs up every
/// leg (unlike an [`OutgoingCall`], whose leg goes on).
#[derive(Debug)]
pub struct ForkedCall {
    call_ids: Vec<String>,
    events: mpsc::UnboundedReceiver<LegEvent>,
    ctl: ForkController,
}

impl ForkedCall {
    /// The Call-IDs of the legs, in the order of the targets.
    pub fn call_ids(&self) -> &[String] {
        &self.call_ids
    }

    /// The next event; `None` once the call is fully over.
    pub async fn event(&mut self) -> Option<LegEvent> {
        self.events.recv().await
    }

    /// A handle for hanging up from elsewhere.
    pub fn controller(&self) -> ForkController {
        self.ctl.clone()
    }
}

impl Endpoint {
    /// Calls `user`'s registered devices ([`Endpoint::bindings`]) in parallel: each binding's
    /// Contact is the Request-URI and its flow the destination (NAT; TCP/TLS connection
    /// reuse); `req.target` is not used. No binding: the call is rejected with `480`.
    ///
    /// # Errors
    /// [`SipError::Shutdown`] after [`Endpoint::shutdown`].
    pub fn invite_registered(
        &self,
        user: &str,
        req: InviteRequest,
    ) -> Result<ForkedCall, SipError> {
        let targets: Vec<(String, Peer)> = self
            .bindings(user)
            .into_iter()
            .map(|b| (b.contact, b.flow))
            .collect();
        self.invite_forked(req, &targets)
    }

    /// Sends `req` to every `(Request-URI, destination)` of `targets` at once and merges the
    /// legs into one ([`ForkedCall`]); `req.target` is not used.
    ///
    /// # Errors
    /// [`SipError::Shutdown`] after [`Endpoint::shutdown`] (legs already sent are hung up).
    pub fn invite_forked(
        &self,
        req: InviteRequest,
        targets: &[(String, Peer)],
    ) -> Result<ForkedCall, SipError> {
        let mut legs: Vec<(OutgoingCall, LegController)> = Vec::with_capacity(targets.len());
        for (uri, dest) in targets {
            let mut r = req.clone();
            r.target.clone_from(uri);
            match self.invite_to(r, *dest, None) {
                Ok(call) => {
                    let ctl = call.controller();
                    legs.push((call, ctl));
                }
                Err(e) => {
                    for (_, ctl) in &legs {
                        ctl.hangup();
                    }
                    return Err(e);
                }
            }
        }
        let call_ids = legs.iter().map(|(c, _)| c.call_id().to_string()).collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        tokio::spawn(drive(legs, tx, cancel.clone()));
        Ok(ForkedCall {
            call_ids,
            events: rx,
            ctl: ForkController { cancel },
        })
    }
}

/// Forwards every leg's events into one queue and runs the [`Merge`] until the call is over.
async fn drive(
    legs: Vec<(OutgoingCall, LegController)>,
    out: mpsc::UnboundedSender<LegEvent>,
    cancel: CancellationToken,
) {
    let mut merge = Merge::new(legs.len());
    let (leg_tx, mut leg_rx) = mpsc::unbounded_channel();
    let mut ctls = Vec::with_capacity(legs.len());
    for (i, (mut call, ctl)) in legs.into_iter().enumerate() {
        ctls.push(ctl);
        let tx = leg_tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = call.event().await {
                let _ = tx.send((i, Some(ev)));
            }
            let _ = tx.send((i, None));
        });
    }
    drop(leg_tx);
    let mut actions = Vec::new();
    merge.finish(&mut actions); // no legs at all: 480 now
    loop {
        for a in actions.drain(..) {
            match a {
                Action::Emit(ev) => {
                    debug!(?ev, "forked call event");
                    let _ = out.send(ev);
                }
                Action::Hangup(i) => {
                    if let Some(c) = ctls.get(i) {
                        c.hangup();
                    }
                }
            }
        }
        if merge.is_over() {
            break;
        }
        tokio::select! {
            () = cancel.cancelled(), if !merge.hung_up => actions = merge.hangup(),
            // nobody listens any more: a device answering would stay up for ever
            () = out.closed(), if !merge.hung_up => actions = merge.hangup(),
            ev = leg_rx.recv() => match ev {
                Some((i, ev)) => actions = merge.handle(i, ev),
                None => break,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered() -> Option<LegEvent> {
        Some(LegEvent::Answered { sdp: "v=0".into() })
    }

    fn rejected(status: u16) -> Option<LegEvent> {
        Some(LegEvent::Rejected {
            status,
            reason: format!("r{status}"),
        })
    }

    fn ringing() -> Option<LegEvent> {
        Some(LegEvent::Progress {
            status: 180,
            sdp: None,
        })
    }

    fn emitted(a: &[Action]) -> Vec<LegEvent> {
        a.iter()
            .filter_map(|a| match a {
                Action::Emit(e) => Some(e.clone()),
                Action::Hangup(_) => None,
            })
            .collect()
    }

    #[test]
    fn the_first_answer_wins_and_the_others_are_hung_up() {
        let mut m = Merge::new(3);
        assert_eq!(emitted(&m.handle(0, ringing())), [ringing().unwrap()]);
        assert_eq!(emitted(&m.handle(2, ringing())), [ringing().unwrap()]);
        let a = m.handle(1, answered());
        assert_eq!(
            a,
            [
                Action::Emit(answered().unwrap()),
                Action::Hangup(0),
                Action::Hangup(2)
            ]
        );
        // a second answer that crossed the CANCEL is BYEd, and nothing of the losers passes
        assert_eq!(m.handle(2, answered()), [Action::Hangup(2)]);
        assert!(m.handle(0, Some(LegEvent::Ended)).is_empty());
        assert!(m.handle(0, ringing()).is_empty());
        assert!(!m.is_over());
        assert_eq!(emitted(&m.handle(1, Some(LegEvent::Bye))), [LegEvent::Bye]);
        assert!(m.is_over());
    }

    #[test]
    fn when_all_fail_the_best_response_is_the_outcome() {
        let mut m = Merge::new(3);
        assert!(m.handle(0, rejected(503)).is_empty());
        assert!(m.handle(1, Some(LegEvent::Timeout)).is_empty());
        let a = m.handle(2, rejected(486));
        assert_eq!(
            emitted(&a),
            [LegEvent::Rejected {
                status: 486,
                reason: "r486".into()
            }]
        );
        assert!(m.is_over());
        let mut m = Merge::new(2);
        m.handle(0, Some(LegEvent::Timeout));
        assert_eq!(emitted(&m.handle(1, None)), [LegEvent::Timeout]);
    }

    #[test]
    fn every_device_unreachable_is_unreachable() {
        let unreachable = |c: &str| {
            Some(LegEvent::Unreachable {
                cause: c.to_owned(),
            })
        };
        let mut m = Merge::new(2);
        assert!(m.handle(0, unreachable("port")).is_empty());
        assert_eq!(
            emitted(&m.handle(1, unreachable("host"))),
            [LegEvent::Unreachable {
                cause: "port".into()
            }]
        );
        // One device that timed out (or answered anything) says more than a dead one.
        let mut m = Merge::new(2);
        m.handle(0, unreachable("port"));
        assert_eq!(
            emitted(&m.handle(1, Some(LegEvent::Timeout))),
            [LegEvent::Timeout]
        );
    }

    #[test]
    fn a_6xx_ends_the_search() {
        let mut m = Merge::new(3);
        assert_eq!(
            m.handle(1, rejected(603)),
            [Action::Hangup(0), Action::Hangup(2)]
        );
        // a late answer is hung up, not passed
        assert_eq!(m.handle(0, answered()), [Action::Hangup(0)]);
        m.handle(0, Some(LegEvent::Ended));
        let a = m.handle(2, rejected(487));
        assert_eq!(
            emitted(&a),
            [LegEvent::Rejected {
                status: 603,
                reason: "r603".into()
            }]
        );
    }

    #[test]
    fn our_hangup_hangs_up_every_leg_and_ends() {
        let mut m = Merge::new(2);
        m.handle(0, ringing());
        assert_eq!(m.hangup(), [Action::Hangup(0), Action::Hangup(1)]);
        assert!(m.hangup().is_empty(), "idempotent");
        assert!(m.handle(0, Some(LegEvent::Ended)).is_empty());
        assert_eq!(
            emitted(&m.handle(1, Some(LegEvent::Ended))),
            [LegEvent::Ended]
        );
        // after an answer, our hangup BYEs the winner and its Ended passes
        let mut m = Merge::new(2);
        m.handle(1, answered());
        m.handle(0, Some(LegEvent::Ended));
        assert_eq!(m.hangup(), [Action::Hangup(1)]);
        assert_eq!(
            emitted(&m.handle(1, Some(LegEvent::Ended))),
            [LegEvent::Ended]
        );
        assert!(m.is_over());
    }

    #[test]
    fn no_legs_is_480() {
        let mut m = Merge::new(0);
        let mut out = Vec::new();
        m.finish(&mut out);
        assert_eq!(
            emitted(&out),
            [LegEvent::Rejected {
                status: 480,
                reason: "Temporarily Unavailable".into()
            }]
        );
    }
}
