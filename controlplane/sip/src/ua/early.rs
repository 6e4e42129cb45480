//! The UAC's early dialog for reliable provisional responses (RFC 3262): a 1xx with
//! `Require: 100rel` and `RSeq` gets a PRACK (`RAck: <rseq> <cseq> INVITE`) in the early
//! dialog it creates, as its own non-INVITE client transaction (retransmitted over UDP until
//! its response). Retransmissions of a 1xx already PRACKed, and 1xx out of `RSeq` order, are
//! not reported again. The confirmed dialog continues the early dialog's CSeq numbering.

use std::time::Instant;

use tracing::debug;

use super::core::{Core, LegId, Role};
use super::reinvite::lists_tag;
use crate::dialog::Dialog;
use crate::msg::{HasHeaders, Method, Response};
use crate::peer::Peer;

/// The early dialog of the last reliable provisional response.
#[derive(Debug)]
pub(super) struct EarlyDialog {
    dialog: Dialog,
    last_rseq: u32,
}

impl EarlyDialog {
    /// The confirmed dialog (same remote tag) goes on from our early CSeqs.
    pub(super) fn continue_in(&self, confirmed: &mut Dialog) {
        if confirmed.id().remote_tag == self.dialog.id().remote_tag {
            confirmed.skip_local_cseq_to(self.dialog.local_cseq());
        }
    }
}

impl Core {
    /// A provisional response to our INVITE: PRACKs it if it is reliable. Returns true when
    /// it must not be reported (a retransmission, or out of order).
    pub(super) fn reliable_provisional(
        &mut self,
        now: Instant,
        id: LegId,
        resp: &Response,
    ) -> bool {
        if resp.status <= 100 || !lists_tag(resp, "Require", "100rel") {
            return false;
        }
        let Some(rseq) = resp
            .headers
            .get("RSeq")
            .and_then(|v| v.trim().parse::<u32>().ok())
        else {
            return false; // RFC 3262 7.1: no RSeq, not reliable
        };
        let ua = self.ua.clone();
        let Some(leg) = self.legs.get_mut(&id) else {
            return false;
        };
        let tag = resp.to_tag().unwrap_or_default();
        let mut early = match leg.early.take() {
            Some(e) if e.dialog.id().remote_tag == tag => {
                if rseq != e.last_rseq.wrapping_add(1) {
                    // 4: a retransmission (PRACKed already) or one out of order: drop it.
                    leg.early = Some(e);
                    return true;
                }
                e
            }
            _ => match Dialog::uac_from_2xx(&leg.invite, resp) {
                Ok(dialog) => EarlyDialog {
                    dialog,
                    last_rseq: rseq.wrapping_sub(1),
                },
                Err(e) => {
                    debug!(error = %e, "reliable provisional without To tag or Contact: not PRACKed");
                    return false;
                }
            },
        };
        early.last_rseq = rseq;
        let dest = Peer::new(
            early.dialog.transport().unwrap_or(leg.dest.transport),
            early.dialog.destination().unwrap_or(leg.dest.addr),
        );
        let via = self.via(dest);
        let Some(leg) = self.legs.get_mut(&id) else {
            return false;
        };
        let mut prack = early.dialog.new_request(Method::Other("PRACK".into()), via);
        prack
            .headers
            .push("RAck", format!("{rseq} {} INVITE", leg.invite.cseq().0));
        prack.headers.push("User-Agent", ua);
        if let Some(c) = &leg.credentials {
            if let Some(auth) = self.auth.get_mut(&(c.username.clone(), leg.dest)) {
                for (n, v) in auth.authorize("PRACK", &prack.uri) {
                    prack.headers.push(n, v);
                }
            }
        }
        leg.early = Some(early);
        debug!(
            rseq,
            status = resp.status,
            "PRACK for a reliable provisional"
        );
        self.start_client(now, prack, dest, Some(id), Role::Prack);
        false
    }
}
