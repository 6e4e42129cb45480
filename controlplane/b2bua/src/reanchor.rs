//! Re-anchoring: a media leg re-created on another media node ([`dp_api::Event::Moved`],
//! sent by a [`crate::Media`] over remote nodes when the leg's node died) now receives at a
//! new address, so the party using it gets a new SDP offer (a re-INVITE) naming it. The new
//! leg re-learns the party's source (latching) from its first packets.

use dp_api::LegId;
use flows::Role;
use sip::sdp::OfferParams;
use tracing::{info, warn};

use crate::dial::key_params;
use crate::*;

impl CallLegs {
    /// `leg` moved: the party whose SIP leg uses it is re-offered the new address once its
    /// dialog is answered (now, or from [`CallLegs::answered`] when it answers later).
    pub(crate) fn moved(&mut self, leg: LegId) {
        let Some(rtp) = self.b2b.media.rtp_of(leg) else {
            return;
        };
        let call = self.call.clone();
        for role in [Role::Customer, Role::Agent] {
            let slot = match role {
                Role::Customer => &mut self.customer,
                Role::Agent => &mut self.agent,
            };
            let Some(x) = slot.as_mut() else { continue };
            if x.media != leg {
                continue;
            }
            let was = x.rtp;
            let answered = matches!(x.call, SipCall::In(_)) || x.remote.is_some();
            let Some(ctl) = x.ctl.dialog().cloned() else {
                continue;
            };
            if !answered {
                // `rtp` stays the offered address, so the answer finds the move.
                info!(call = %call, role = role.as_str(), %was, now = %rtp, "media leg moved before the party answered; re-offered once it does");
                continue;
            }
            x.rtp = rtp;
            let mut p = OfferParams::new(rtp);
            if let Some(c) = &x.crypto {
                p.srtp = x.srtp;
                p.crypto_key = key_params(c);
            }
            let Some(session) = x.session.as_mut() else {
                continue;
            };
            match session.offer(&p) {
                Ok(sdp) => {
                    info!(call = %call, role = role.as_str(), %was, now = %rtp, "media re-anchored on another node: re-offering");
                    ctl.reoffer(sdp);
                }
                Err(e) => {
                    warn!(call = %call, role = role.as_str(), "cannot re-offer the moved media leg: {e}")
                }
            }
        }
    }

    /// Whether `leg`'s party was offered another address than the leg has now.
    pub(crate) fn moved_since_offer(&self, role: Role) -> Option<LegId> {
        let x = match role {
            Role::Customer => self.customer.as_ref(),
            Role::Agent => self.agent.as_ref(),
        }?;
        let now = self.b2b.media.rtp_of(x.media)?;
        (now != x.rtp).then_some(x.media)
    }
}
