//! Agents: presence from the API, the ACD's clock, and handing freed agents to waiting calls.

use crate::*;

impl Service {
    /// An agent's presence.
    #[must_use]
    pub fn presence(&self, agent: &AgentId) -> Option<Presence> {
        lock(&self.inner.acd).presence(agent)
    }

    /// Sets an agent's presence from the API (`available`, `away`, `offline`); waiting
    /// calls are handed to it at once when it becomes available. Kept in the store, so a
    /// restart keeps it. Blocking (store I/O).
    ///
    /// # Errors
    /// [`ServiceError::Refused`] for `on_call` / `wrap_up`; [`ServiceError::UnknownAgent`].
    pub fn set_presence(
        &self,
        agent: &AgentId,
        presence: Presence,
    ) -> Result<Presence, ServiceError> {
        let handoffs = lock(&self.inner.acd)
            .set_presence(agent, presence, Instant::now())
            .map_err(|e| match e {
                flows::Error::PresenceNotSettable(p) => ServiceError::Refused {
                    field: "presence",
                    message: format!(
                        "\"{p}\" is set by calls, not by the agent; use available, away or offline"
                    ),
                },
                _ => ServiceError::UnknownAgent {
                    field: "id",
                    agent: agent.clone(),
                },
            })?;
        info!(agent = %agent, %presence, "presence set");
        self.share_presence(agent, presence);
        // Kept across restarts (best effort: the presence is in force either way).
        let doc = serde_json::json!({ "presence": presence.as_str() }).to_string();
        if let Err(e) = self
            .inner
            .store
            .put_directory("presence", agent.as_str(), &doc, now_ms())
        {
            warn!(agent = %agent, "cannot store the presence: {e}");
        }
        self.hand_over(handoffs);
        Ok(self.presence(agent).unwrap_or(presence))
    }

    /// Ends wrap-ups and preferred-agent waits as time passes (the ACD reads no clock).
    pub(crate) async fn acd_clock(self) {
        loop {
            let next = lock(&self.inner.acd).poll_timeout();
            let wait = next.map_or(Duration::from_secs(1), |at| {
                at.saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(1))
            });
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.stop.cancelled() => return,
            }
            let handoffs = lock(&self.inner.acd).tick(Instant::now());
            self.hand_over(handoffs);
        }
    }

    /// Delivers the ACD's hand-offs to the waiting calls (with a shared store, once the
    /// store confirmed each, on a blocking thread); an agent whose call is gone is released
    /// again.
    pub(crate) fn hand_over(&self, handoffs: Vec<(CallId, AgentId)>) {
        if handoffs.is_empty() {
            return;
        }
        if self.inner.shared.is_some() {
            let s = self.clone();
            self.inner.rt.spawn_blocking(move || s.confirm(handoffs));
            return;
        }
        self.deliver_handoffs(handoffs);
    }

    /// Hands confirmed hand-offs to the calls' tasks.
    pub(crate) fn deliver_handoffs(&self, handoffs: Vec<(CallId, AgentId)>) {
        for (call, agent) in handoffs {
            let inbox = lock(&self.inner.live).get(&call).cloned();
            if !matches!(
                inbox.map(|i| i.send(CallInput::Assigned(agent.clone()))),
                Some(Ok(()))
            ) {
                self.release_agent(&agent);
            }
        }
    }

    /// Frees an agent from its call and hands freed agents to waiting calls.
    pub(crate) fn release_agent(&self, agent: &AgentId) {
        if let Some(sh) = &self.inner.shared {
            self.release_shared(sh, agent);
            return;
        }
        let handoffs = lock(&self.inner.acd).release(agent, Instant::now());
        self.hand_over(handoffs);
    }

    /// The devices an agent with `contact = "registered"` has registered (Contact, the
    /// transport and address calls go to, seconds until it expires, User-Agent); `None` for
    /// other agents.
    #[must_use]
    pub fn devices(&self, agent: &AgentId) -> Option<serde_json::Value> {
        let dir = self.inner.dir();
        let user = dir.agent(agent)?.contact.registered_user()?.to_owned();
        let now = std::time::Instant::now();
        let list: Vec<serde_json::Value> = self
            .inner
            .b2b
            .sip()
            .bindings(&user)
            .into_iter()
            .map(|b| {
                serde_json::json!({
                    "contact": b.contact,
                    "via": b.flow.to_string(),
                    "expires_in_secs": b.expires_at.saturating_duration_since(now).as_secs(),
                    "user_agent": b.user_agent,
                })
            })
            .collect();
        Some(serde_json::Value::Array(list))
    }
}
