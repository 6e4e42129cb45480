//! Inbound calls: a customer who dials a business's number reaches us through a trunk. The
//! INVITE is answered (media legs allocated, SDP answered) and the caller hears the
//! business's announcement while it waits in the business's queue for an agent, exactly like
//! an accepted call request; the record (kind `inbound`) is visible through the same API.
//! From a source that is not a trunk the INVITE gets 403; to a number no business owns, 404;
//! without free media ports, 503; one of our own INVITEs coming back (it carries
//! `X-Callbridge-Call`) gets 482 Loop Detected, and one with `Max-Forwards: 0` 483 Too Many
//! Hops (we forward the caller to an agent).

use crate::*;

/// Why an inbound INVITE was refused: the SIP status and a reason phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRefusal {
    /// The SIP status (403, 404, 503).
    pub status: u16,
    /// Why (logged).
    pub reason: String,
    /// The `Retry-After` seconds of a `503` (those the HTTP API's `503` gives for the same
    /// refusal); `None`: the SIP stack's default.
    pub retry_after_s: Option<u64>,
}

impl InboundRefusal {
    /// A refusal without `Retry-After` of its own.
    fn new(status: u16, reason: String) -> Self {
        Self {
            status,
            reason,
            retry_after_s: None,
        }
    }

    /// Admission refused: `503` with the admission's honest `Retry-After` (the set-up
    /// bucket's wait, or the full house's estimate), as `POST /v1/bridges` gets.
    pub(crate) fn overloaded(o: &Overload) -> Self {
        Self {
            status: 503,
            reason: ServiceError::overloaded(o).to_string(),
            retry_after_s: Some(o.retry_after_s.max(1)),
        }
    }
}

/// The user part of a SIP URI or name-addr (`"Bob" <sip:+1555@host>;tag=x` → `+1555`).
fn uri_user(v: &str) -> Option<&str> {
    let v = v
        .split('<')
        .nth(1)
        .map_or(v, |r| r.split('>').next().unwrap_or(r));
    let rest = v
        .trim()
        .strip_prefix("sips:")
        .or_else(|| v.trim().strip_prefix("sip:"))?;
    let user = rest.split('@').next()?;
    (rest.contains('@') && !user.is_empty()).then(|| user.split(';').next().unwrap_or(user))
}

impl Service {
    /// Takes an INVITE from outside: answered and queued when it comes from a trunk to one
    /// of a business's `numbers`, else refused (the caller gets the status).
    ///
    /// # Errors
    /// [`InboundRefusal`] with the status to answer.
    pub fn inbound(&self, call: sip::IncomingCall) -> Result<CallId, InboundRefusal> {
        match self.admit_inbound(&call) {
            Ok((rec, legs)) => {
                let id = rec.request.id.clone();
                let s = self.clone();
                self.inner
                    .rt
                    .spawn(async move { call::run_inbound(s, rec, legs, call).await });
                Ok(id)
            }
            Err(r) => {
                match r.retry_after_s {
                    Some(s) => {
                        call.reject_retry_after(r.status, u32::try_from(s).unwrap_or(u32::MAX))
                    }
                    None => call.reject(r.status),
                }
                Err(r)
            }
        }
    }

    /// The checks, the media legs and the record of an inbound call.
    fn admit_inbound(
        &self,
        call: &sip::IncomingCall,
    ) -> Result<(CallRecord, flows::Legs), InboundRefusal> {
        let i = &self.inner;
        let refuse = InboundRefusal::new;
        if !i
            .b2b
            .trunks()
            .literal_addresses()
            .contains(&call.source.ip())
        {
            return Err(refuse(
                403,
                format!(
                    "{} is not a trunk: inbound calls come through trunks",
                    call.source.ip()
                ),
            ));
        }
        if self.is_draining() {
            self.inner.refusals.add("draining");
            return Err(InboundRefusal {
                retry_after_s: Some(crate::drain::DRAIN_RETRY_AFTER_S),
                ..refuse(
                    503,
                    "Service Unavailable: callbridge is draining for a restart".into(),
                )
            });
        }
        let header = |name: &str| {
            call.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        };
        // Loops: our own INVITE (to an agent, or out through a trunk) coming back in.
        if header("X-Callbridge-Call").is_some() {
            return Err(refuse(
                482,
                "Loop Detected: the INVITE is one of ours".into(),
            ));
        }
        // We forward the caller to an agent: a request that may not be forwarded stops here.
        if header("Max-Forwards").is_some_and(|v| v == "0") {
            return Err(refuse(483, "Too Many Hops: Max-Forwards is 0".into()));
        }
        let dialled = uri_user(&call.request_uri)
            .or_else(|| uri_user(&call.to))
            .unwrap_or_default()
            .to_owned();
        let dir = i.dir();
        let Some(business) = dir
            .businesses
            .iter()
            .find(|b| b.numbers_inbound.contains(&dialled))
        else {
            return Err(refuse(
                404,
                format!("no business has the number {dialled:?}"),
            ));
        };
        // The caller as a target (a number, else its SIP URI; anonymous when neither parses):
        // informational, an inbound caller is never dialled.
        let from_uri = call
            .from
            .split('<')
            .nth(1)
            .and_then(|r| r.split('>').next())
            .unwrap_or(&call.from)
            .trim();
        let caller = uri_user(&call.from)
            .and_then(|u| Target::parse(u).ok())
            .filter(|t| matches!(t, Target::Tel(_)))
            .or_else(|| Target::parse(from_uri.split(';').next().unwrap_or(from_uri)).ok())
            .map_or_else(
                || "sip:anonymous@anonymous.invalid".to_owned(),
                |t| t.as_str().to_owned(),
            );
        let id = CallId::from_random(rand::random::<u128>());
        // Admission (limits.max_calls, the descriptor budget, the set-up rate, the ports):
        // 503 with Retry-After, counted as the refusal's reason.
        let admitted = i.admission.admit_now(
            &id,
            i.b2b.media().free_pairs(),
            lock(&i.reserved).len(),
            Instant::now(),
        );
        if let Err(o) = admitted {
            i.refusals.add(o.reason);
            return Err(InboundRefusal::overloaded(&o));
        }
        let legs = match i.b2b.media().allocate_pair() {
            Ok(l) => l,
            Err(e) => {
                self.end_slot(&id);
                i.refusals.add("media_ports");
                return Err(refuse(503, format!("no free media port: {e}")));
            }
        };
        if let Err(e) = self.start_counting(&business.id, &id) {
            i.b2b.media().release(legs);
            self.end_slot(&id);
            return Err(refuse(503, e.to_string()));
        }
        let now = now_ms();
        let new = NewRequest {
            id: id.clone(),
            kind: Kind::Inbound,
            business: Some(business.id.clone()),
            customer: caller,
            preferred_agent: None,
            agent_spec: None,
            skill: None,
            contact_at_ms: None,
            page: None,
            client_ip: Some(call.source.ip().to_string()),
            created_ms: now,
            status: "queued".into(),
            due_ms: None,
            claimed_by: Some(i.run.clone()),
            webhook: None,
        };
        let new = self.with_first_webhook(new);
        let business_id = business.id.clone();
        let out = self.commit(&new, &Origin::default(), business_id.as_str());
        let rec = match out {
            Ok(Outcome::Created(rec)) => *rec,
            Ok(Outcome::Replay(_)) | Err(_) => {
                i.b2b.media().release(legs);
                self.stop_counting(&business_id, &id);
                self.end_slot(&id);
                return Err(refuse(500, "the call could not be recorded".into()));
            }
        };
        self.publish(&id, Some(business_id), None, "queued", None, now);
        Ok((rec, legs))
    }
}

#[cfg(test)]
mod tests {
    use super::{uri_user, InboundRefusal, Overload};

    #[test]
    fn an_admission_refusal_carries_the_admissions_retry_after() {
        for (reason, secs) in [("max_calls", 10), ("max_setups_per_second", 1)] {
            let r = InboundRefusal::overloaded(&Overload {
                reason,
                retry_after_s: secs,
            });
            assert_eq!((r.status, r.retry_after_s), (503, Some(secs)), "{reason}");
            assert!(r.reason.contains(reason), "{}", r.reason);
        }
        let r = InboundRefusal::overloaded(&Overload {
            reason: "descriptors",
            retry_after_s: 0,
        });
        assert_eq!(r.retry_after_s, Some(1), "never 0");
    }

    #[test]
    fn the_user_part_of_uris_and_name_addrs() {
        assert_eq!(
            uri_user("sip:+15550001000@10.0.0.1:5060"),
            Some("+15550001000")
        );
        assert_eq!(uri_user("\"Bob\" <sip:+1555@h>;tag=a"), Some("+1555"));
        assert_eq!(uri_user("<sips:bob;x=y@h>"), Some("bob"));
        assert_eq!(uri_user("sip:h.example"), None);
        assert_eq!(uri_user("tel:+1555"), None);
    }
}
