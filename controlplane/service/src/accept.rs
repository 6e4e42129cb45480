//! Accepting requests: validation against the directory, number policy, rate limits,
//! admission against free media ports, calls in progress, and the commit before the `202`.

use crate::*;

impl Service {
    /// Accepts a click-to-call request: validated against the directory, committed, then
    /// due for the scheduler. Blocking (store I/O).
    ///
    /// # Errors
    /// [`ServiceError`] naming the field, or the store's failure.
    pub fn accept(&self, req: Submit, origin: &Origin) -> Result<Outcome, ServiceError> {
        // Draining on a shared store (PostgreSQL), a request is still committed: this node
        // claims nothing more, another node dials it when due. On a store of its own, 503.
        if !self.inner.store.shared() {
            self.refuse_if_draining()?;
        }
        let out = self.accept_inner(req, origin);
        if let Err(e) = &out {
            self.count_refusal(e);
        }
        out
    }

    /// Counts a refusal by kind (`per_number`, `premium` …); failures on our side are not
    /// refusals.
    pub fn count_refusal(&self, e: &ServiceError) {
        let kind = match e {
            ServiceError::Limited { which, .. } => which,
            ServiceError::Refused {
                field: "customer", ..
            } => "number_policy",
            ServiceError::Refused { .. } => "policy",
            ServiceError::Overloaded { reason, .. } => reason,
            ServiceError::Unavailable(_) => "no_capacity",
            ServiceError::UnknownBusiness(_) | ServiceError::UnknownAgent { .. } => "unknown",
            ServiceError::IdempotencyConflict(_) => "idempotency_conflict",
            _ => return,
        };
        self.inner.refusals.add(kind);
    }

    fn accept_inner(&self, req: Submit, origin: &Origin) -> Result<Outcome, ServiceError> {
        let i = &self.inner;
        if i.dir().business(&req.business).is_none() {
            return Err(ServiceError::UnknownBusiness(req.business));
        }
        if let Some(skill) = &req.skill {
            let served = i
                .dir()
                .agents
                .iter()
                .any(|a| a.businesses.contains(&req.business) && a.skills.contains(skill));
            if !served {
                return Err(ServiceError::Refused {
                    field: "skill",
                    message: format!("no agent of {} has the skill \"{skill}\"", req.business),
                });
            }
        }
        if let Some(a) = &req.preferred_agent {
            if i.dir().agent(a).is_none() {
                return Err(ServiceError::UnknownAgent {
                    field: "preferred_agent",
                    agent: a.clone(),
                });
            }
        }
        self.check_number(&req.business, &req.customer)?;
        self.check_limits(&req, origin)?;
        let now = now_ms();
        // Inside opening hours only: a time (or "now") outside them moves to the next
        // opening, and the visitor sees `scheduled` with that time.
        let dir = i.dir();
        let business = dir.business(&req.business);
        let horizon_days = business
            .and_then(|b| b.limits.as_ref())
            .map_or(i.settings.limits.max_schedule_days, |l| l.max_schedule_days);
        if let Some(at) = req.contact_at_ms {
            let horizon_ms = i64::from(horizon_days) * 86_400_000;
            if at > now.saturating_add(horizon_ms) {
                return Err(ServiceError::Refused {
                    field: "contact_time",
                    message: format!(
                        "contact_time is more than {horizon_days} days ahead (limits.max_schedule_days); \
                         ask for a time within that"
                    ),
                });
            }
        }
        let wanted = req.contact_at_ms.unwrap_or(now).max(now);
        let contact_at_ms = match business.and_then(|b| b.hours.as_ref()) {
            None => req.contact_at_ms,
            Some(h) => {
                let at = jiff::Timestamp::from_millisecond(wanted)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?;
                match h.schedule(at) {
                    Some(s) if s.moved => Some(s.at.as_millisecond()),
                    Some(_) => req.contact_at_ms,
                    None => {
                        return Err(ServiceError::Refused {
                            field: "contact_time",
                            message: format!(
                                "{} takes no calls: it has no opening hours",
                                req.business
                            ),
                        })
                    }
                }
            }
        };
        let req = Submit {
            contact_at_ms,
            ..req
        };
        let scheduled = req.contact_at_ms.is_some_and(|t| t > now);
        let id = CallId::from_random(rand::random::<u128>());
        if !scheduled {
            // Admission: a call to be dialled now needs a slot (limits.max_calls, the
            // descriptor budget), a set-up token (limits.max_setups_per_second) and a port
            // pair that no other accepted, not yet dialled call is counting on.
            let mut reserved = lock(&i.reserved);
            i.admission
                .admit_now(
                    &id,
                    i.b2b.media().free_pairs(),
                    reserved.len(),
                    Instant::now(),
                )
                .map_err(|o| ServiceError::overloaded(&o))?;
            reserved.insert(id.clone());
            drop(reserved);
            // Calls in progress per business: counted from now until the call ends.
            if let Err(e) = self.start_counting(&req.business, &id) {
                lock(&i.reserved).remove(&id);
                self.end_slot(&id);
                return Err(e);
            }
        }
        let (status, due) = if scheduled {
            ("scheduled", req.contact_at_ms.unwrap_or(now))
        } else {
            ("queued", now)
        };
        let new = NewRequest {
            id,
            kind: Kind::CallRequest,
            business: Some(req.business.clone()),
            customer: req.customer.as_str().to_owned(),
            preferred_agent: req.preferred_agent,
            agent_spec: None,
            contact_at_ms: req.contact_at_ms,
            page: req.page,
            skill: req.skill,
            client_ip: origin.client_ip.clone(),
            created_ms: now,
            status: status.into(),
            due_ms: Some(due),
            claimed_by: None,
            webhook: None,
        };
        let new = self.with_first_webhook(new);
        let out = self.commit(&new, origin, req.business.as_str());
        if !matches!(out, Ok(Outcome::Created(_))) {
            lock(&i.reserved).remove(&new.id);
            self.stop_counting(&req.business, &new.id);
            self.end_slot(&new.id);
        }
        let out = out?;
        if matches!(out, Outcome::Created(_)) {
            if !scheduled && i.store.shared() {
                // A shared store: another node may claim it, which takes a slot of its own
                // then; this node's admission was the check at the door.
                self.end_slot(&new.id);
            } else if !scheduled {
                i.admission.await_claim(&new.id);
            }
            self.publish(&new.id, new.business.clone(), None, status, None, now);
            i.wake.notify_one();
        }
        Ok(out)
    }

    /// Accepts a bridge: media legs allocated now (it is dialled at once), committed, then
    /// started. Blocking (store I/O).
    ///
    /// # Errors
    /// [`ServiceError::Unavailable`] without free media ports; others as
    /// [`Service::accept`].
    pub fn bridge(&self, req: Bridge, origin: &Origin) -> Result<Outcome, ServiceError> {
        self.refuse_if_draining()?;
        let out = self.bridge_inner(req, origin);
        if let Err(e) = &out {
            self.count_refusal(e);
        }
        out
    }

    fn bridge_inner(&self, req: Bridge, origin: &Origin) -> Result<Outcome, ServiceError> {
        let i = &self.inner;
        let agent_spec = match &req.agent {
            BridgeAgent::Id(a) => {
                if i.dir().agent(a).is_none() {
                    return Err(ServiceError::UnknownAgent {
                        field: "agent",
                        agent: a.clone(),
                    });
                }
                a.as_str().to_owned()
            }
            BridgeAgent::Target(t) => t.as_str().to_owned(),
        };
        let id = CallId::from_random(rand::random::<u128>());
        // Admission: a slot and a set-up token, then the legs (dialled at once).
        i.admission
            .admit_now(
                &id,
                i.b2b.media().free_pairs(),
                lock(&i.reserved).len(),
                Instant::now(),
            )
            .map_err(|o| ServiceError::overloaded(&o))?;
        let legs = match i.b2b.media().allocate_pair() {
            Ok(l) => l,
            Err(b2bua::MediaError::NoFreePort) => {
                self.end_slot(&id);
                return Err(ServiceError::overloaded(&Overload {
                    reason: "media_ports",
                    retry_after_s: 1,
                }));
            }
            Err(e) => {
                self.end_slot(&id);
                return Err(ServiceError::Unavailable(format!(
                    "cannot take calls now: {e}"
                )));
            }
        };
        let now = now_ms();
        let new = NewRequest {
            id,
            kind: Kind::Bridge,
            business: None,
            customer: req.customer.as_str().to_owned(),
            preferred_agent: None,
            agent_spec: Some(agent_spec),
            skill: None,
            contact_at_ms: None,
            page: None,
            client_ip: origin.client_ip.clone(),
            created_ms: now,
            status: "calling_customer".into(),
            due_ms: None,
            claimed_by: Some(i.run.clone()),
            webhook: None,
        };
        let out = match self.commit(&new, origin, "bridges") {
            Ok(o) => o,
            Err(e) => {
                i.b2b.media().release(legs);
                self.end_slot(&new.id);
                return Err(e);
            }
        };
        match &out {
            Outcome::Created(rec) => {
                self.publish(&new.id, None, None, "calling_customer", None, now);
                let rec = (**rec).clone();
                let s = self.clone();
                i.rt.spawn(async move { call::run(s, rec, Some(legs)).await });
            }
            Outcome::Replay(_) => {
                i.b2b.media().release(legs);
                self.end_slot(&new.id);
            }
        }
        Ok(out)
    }

    /// The number policy: premium-rate and special-service numbers are refused. Numbers the
    /// numbering plan does not know (test and lab ranges such as +1 555) pass: the carrier's
    /// trunk is the authority on them.
    fn check_number(&self, business: &BusinessId, customer: &Target) -> Result<(), ServiceError> {
        if matches!(customer, Target::Registered(_)) {
            return Err(ServiceError::Refused {
                field: "customer",
                message: "\"customer\" must be an E.164 number or a SIP URI".into(),
            });
        }
        let Target::Tel(tel) = customer else {
            return Ok(());
        };
        let dir = self.inner.dir();
        let Some(b) = dir.business(business) else {
            return Ok(());
        };
        match b.numbers.check(tel, b.default_country.as_deref()) {
            Ok(_) | Err(flows::numbers::NumberRefusal::Invalid) => Ok(()),
            Err(why) => Err(ServiceError::Refused {
                field: "customer",
                message: format!("\"customer\" {tel} is refused: {why}"),
            }),
        }
    }

    /// Rate limits per customer number, per client address (not loopback: the lab, or a
    /// proxy in front) and per business; a refused request counts against none.
    fn check_limits(&self, req: &Submit, origin: &Origin) -> Result<(), ServiceError> {
        use flows::limits::LimitKey;
        let mut keys = vec![
            LimitKey::Number(req.customer.as_str().to_owned()),
            LimitKey::Business(req.business.clone()),
        ];
        if let Some(ip) = origin
            .client_ip
            .as_deref()
            .and_then(|s| s.parse::<std::net::IpAddr>().ok())
            .filter(|ip| !ip.is_loopback())
        {
            keys.push(LimitKey::Ip(ip));
        }
        let Some(limiter) = self.inner.limiter(&req.business) else {
            return Ok(());
        };
        let mut limiter = lock(&limiter);
        let now = Instant::now();
        limiter.purge(now);
        limiter.try_acquire(&keys, now).map_err(|l| {
            let retry_after_s =
                l.retry_after.as_secs() + u64::from(l.retry_after.subsec_nanos() > 0);
            let message = match l.which {
                flows::limits::LimitKind::PerNumber => format!(
                    "{} was asked to be called too often; try again in {retry_after_s} s",
                    req.customer
                ),
                flows::limits::LimitKind::PerIp => {
                    format!("too many requests from this address; try again in {retry_after_s} s")
                }
                flows::limits::LimitKind::ConcurrentCalls => format!(
                    "{} has as many calls in progress as it may; try again in {retry_after_s} s",
                    req.business
                ),
                _ => format!(
                    "too many requests for business {}; try again in {retry_after_s} s",
                    req.business
                ),
            };
            ServiceError::Limited {
                retry_after_s,
                which: l.which.as_str(),
                message,
            }
        })
    }

    /// Counts `call` in `business`'s calls in progress (once).
    ///
    /// # Errors
    /// [`ServiceError::Limited`] when the business is at its maximum.
    pub(crate) fn start_counting(
        &self,
        business: &BusinessId,
        call: &CallId,
    ) -> Result<(), ServiceError> {
        let Some(limiter) = self.inner.limiter(business) else {
            return Ok(());
        };
        if lock(&self.inner.in_progress).contains(call) {
            return Ok(());
        }
        lock(&limiter)
            .start_call(business)
            .map_err(|l| ServiceError::Limited {
                retry_after_s: l.retry_after.as_secs().max(1),
                which: l.which.as_str(),
                message: format!(
                    "{business} has as many calls in progress as it may; try again in {} s",
                    l.retry_after.as_secs().max(1)
                ),
            })?;
        lock(&self.inner.in_progress).insert(call.clone());
        Ok(())
    }

    /// Ends what [`Service::start_counting`] counted (no-op if it did not).
    pub(crate) fn stop_counting(&self, business: &BusinessId, call: &CallId) {
        if lock(&self.inner.in_progress).remove(call) {
            if let Some(l) = self.inner.limiter(business) {
                lock(&l).end_call(business);
            }
        }
    }

    /// Attaches the webhook of the request's first status, when its business has one.
    pub(crate) fn with_first_webhook(&self, mut new: NewRequest) -> NewRequest {
        let rec = CallRecord {
            request: new.clone(),
            status: new.status.clone(),
            reason: None,
            agent: None,
            attempts: 0,
            due_ms: new.due_ms,
            updated_ms: new.created_ms,
            events: Vec::new(),
            media: Vec::new(),
            sale: None,
        };
        new.webhook = self.webhook_for(&rec, &new.status, None, None, new.created_ms);
        new
    }

    pub(crate) fn commit(
        &self,
        new: &NewRequest,
        origin: &Origin,
        scope: &str,
    ) -> Result<Outcome, ServiceError> {
        let body = format!("{{\"id\":\"{}\",\"status\":\"{}\"}}", new.id, new.status);
        let response = StoredResponse { status: 202, body };
        let idem = origin
            .idempotency
            .as_ref()
            .map(|(key, hash)| IdempotencyKey {
                scope: scope.to_owned(),
                key: key.clone(),
                body_hash: hash.clone(),
                at_ms: new.created_ms,
            });
        match self.inner.store.accept(new, idem.as_ref(), &response)? {
            Accepted::New => {
                if new.webhook.is_some() {
                    self.inner.outbox_wake.notify_one();
                }
                let rec = self.inner.store.get(&new.id)?.ok_or_else(|| {
                    ServiceError::Internal("the committed request vanished".into())
                })?;
                info!(call = %new.id, kind = new.kind.as_str(), status = %new.status, "request accepted");
                Ok(Outcome::Created(Box::new(rec)))
            }
            Accepted::Replay { response, .. } => Ok(Outcome::Replay(response)),
        }
    }
}
