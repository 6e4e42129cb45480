//! The customer-first order ([`Reservation::CustomerFirst`]): the customer is called before
//! any agent is reserved, so that a customer who never answers (a junk request, a wrong
//! number) never holds an agent.
//!
//! Only the start differs from agent first: instead of [`Output::RequestAgent`], the machine
//! asks [`Output::CheckAgents`] (does any agent that is not offline serve the business?) so
//! that nobody is called back when no agent could ever take the call, and on
//! [`Input::AgentsChecked`]`(true)` dials the customer. From the customer's answer on, the
//! shared transitions do the rest: the announcement starts and, with no agent yet, the
//! answer requests one (`on_customer`); the assignment dials it (`on_agent_assigned`); an
//! agent that does not answer is replaced while the customer stays on the announcement
//! (`agent_failed`); the queue timer ends the wait with `failed/no_agent` (`no_agent`).

use super::{ClickToCall, FailReason, Outcome, Output, Phase, Reservation};

impl ClickToCall {
    /// Customer first, at the start: asks whether any agent could take the call.
    pub(super) fn check_agents(&mut self) {
        debug_assert_eq!(self.plan.reservation, Reservation::CustomerFirst);
        self.checking = true;
        self.emit(Output::CheckAgents);
        self.set_phase(Phase::Queued);
    }

    /// The answer to [`Output::CheckAgents`]: dial the customer (no agent reserved), or end
    /// `failed/no_agent` without calling anyone.
    pub(super) fn on_agents_checked(&mut self, any: bool) {
        if !std::mem::take(&mut self.checking) {
            return;
        }
        if any {
            self.dial_customer();
        } else {
            self.end(Outcome::Failed(FailReason::NoAgent));
        }
    }
}
