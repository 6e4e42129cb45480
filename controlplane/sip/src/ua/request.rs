//! Out-of-dialog non-INVITE requests of the application ([`Endpoint::request`]): today the
//! OPTIONS keep-alive to trunks ([`Endpoint::options`]). One client transaction each; the
//! outcome (final status, timeout, transport error) is reported once.

use std::time::Instant;

use tokio::sync::oneshot;

use super::core::{contact_value, local_for, Cmd, Core, Role};
use super::{Endpoint, ALLOW};
use crate::error::SipError;
use crate::msg::{self, HasHeaders, Method, Request};
use crate::peer::Peer;
use crate::transaction::{ClientEvent, TransactionKey};

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A final response arrived with this status.
    Status(u16),
    /// No final response within 64·T1 (Timer F).
    Timeout,
    /// The transport could not deliver it (connection refused, TLS failure, …).
    TransportError,
}

impl Outcome {
    /// Whether the peer answered at all (any final response: even a 403 or 407 shows it
    /// alive).
    pub fn answered(&self) -> bool {
        matches!(self, Self::Status(_))
    }
}

impl Endpoint {
    /// Sends `OPTIONS target` to `dest` (RFC 3261 11) and waits for its outcome: the
    /// keep-alive of a trunk. `tls_name`: the name a TLS server's certificate must carry.
    ///
    /// # Errors
    /// [`SipError::Shutdown`] when the endpoint is shut down.
    pub async fn options(
        &self,
        target: &str,
        dest: Peer,
        tls_name: Option<String>,
    ) -> Result<Outcome, SipError> {
        if let Some(name) = tls_name {
            self.inner.out.tls_name(dest.addr, name);
        }
        let local = local_for(&self.inner.locals, dest.transport, dest.addr);
        let mut r = Request::new(Method::Options, target.to_string());
        r.headers.push(
            "Via",
            msg::via_value_for(dest.transport, local, &msg::new_branch()),
        );
        r.headers.push("Max-Forwards", "70");
        r.headers.push(
            "From",
            format!("<sip:callbridge@{local}>;tag={}", msg::new_tag()),
        );
        r.headers.push("To", format!("<{target}>"));
        r.headers.push("Call-ID", msg::new_call_id(local.ip()));
        r.headers.push("CSeq", "1 OPTIONS");
        r.headers.push(
            "Contact",
            contact_value(&self.inner.locals, "callbridge", dest),
        );
        r.headers.push("Accept", "application/sdp");
        r.headers.push("Allow", ALLOW);
        r.headers.push("User-Agent", self.inner.user_agent.clone());
        self.request(r, dest).await
    }

    /// Sends an out-of-dialog non-INVITE request (its Via, CSeq, … already set) and waits for
    /// its outcome.
    ///
    /// # Errors
    /// [`SipError::Shutdown`] when the endpoint is shut down.
    pub async fn request(&self, request: Request, dest: Peer) -> Result<Outcome, SipError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmd
            .send(Cmd::Request {
                request,
                dest,
                outcome: tx,
            })
            .map_err(|_| SipError::Shutdown)?;
        rx.await.map_err(|_| SipError::Shutdown)
    }
}

impl Core {
    pub(super) fn start_request(
        &mut self,
        now: Instant,
        request: Request,
        dest: Peer,
        outcome: oneshot::Sender<Outcome>,
    ) {
        let key = TransactionKey::client(
            &request.branch().unwrap_or_default(),
            request.method.clone(),
        );
        self.requests.insert(key, outcome);
        self.start_client(now, request, dest, None, Role::Request);
    }

    /// A [`Role::Request`] transaction's event: its outcome, once.
    pub(super) fn request_event(&mut self, key: &TransactionKey, ev: ClientEvent) {
        let outcome = match ev {
            ClientEvent::Provisional(_) => return,
            ClientEvent::Final(r) => Outcome::Status(r.status),
            ClientEvent::Timeout => Outcome::Timeout,
            ClientEvent::TransportError { .. } => Outcome::TransportError,
        };
        if let Some(tx) = self.requests.remove(key) {
            let _ = tx.send(outcome);
        }
    }
}
