//! REGISTER in the UA: the core's answer through the [`crate::registrar`] (after the ACL of
//! source networks) and the application's queries of the bindings ([`Endpoint::bindings`]).
//!
//! The [`Registrar`](crate::registrar::Registrar) is shared behind a `std::sync::Mutex`: the
//! core locks it for one `handle_register`, the application for one query; nobody holds it
//! across an await, so the queries are synchronous and cheap.

use std::sync::{MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use tracing::debug;

use super::core::Core;
use super::endpoint::SharedRegistrar;
use super::Endpoint;
use crate::msg::{self, Request, Response};
use crate::peer::Peer;
use crate::registrar::{Binding, Registrar, RegistrarStats};
use crate::transaction::TransactionKey;

fn lock(r: &SharedRegistrar) -> MutexGuard<'_, Registrar> {
    // A panic while locked leaves consistent state (every update is committed at the end).
    r.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Core {
    /// A new REGISTER that passed the RFC 3261 8.2 checks: `403` from outside
    /// `allow_register_from`, else the registrar's answer.
    pub(super) fn incoming_register(
        &mut self,
        now: Instant,
        src: Peer,
        key: TransactionKey,
        req: &Request,
    ) {
        let Some(registrar) = self.registrar.clone() else {
            // `inspect` answers 405 without a registrar; this is not reached.
            self.respond(
                now,
                &key,
                Response::to_request(req, 405, Some(&msg::new_tag())),
            );
            return;
        };
        if self
            .allow_register_from
            .as_ref()
            .is_some_and(|nets| !nets.iter().any(|n| n.contains(src.addr.ip())))
        {
            debug!(%src, "REGISTER from outside allow_register_from: 403");
            self.respond(
                now,
                &key,
                Response::to_request(req, 403, Some(&msg::new_tag())),
            );
            return;
        }
        let resp = lock(&registrar).handle_register(now, SystemTime::now(), src, req);
        debug!(%src, status = resp.status, "REGISTER answered");
        self.respond(now, &key, resp);
    }

    /// A TCP/TLS peer could not be reached: bindings on that flow are gone (RFC 5626 4.4.1).
    pub(super) fn registrar_flow_failed(&mut self, peer: Peer) {
        if let Some(r) = &self.registrar {
            let n = lock(r).remove_flow(peer);
            if n > 0 {
                debug!(%peer, bindings = n, "flow failed: its bindings are removed");
            }
        }
    }
}

impl Endpoint {
    /// `user`'s current (unexpired) registered contacts, least recently registered first; empty
    /// without a registrar or for an unknown user. Call each one with
    /// [`Endpoint::invite_to`]: the binding's `contact` as the target, its `flow` as the
    /// destination (so a softphone behind NAT, or on a TCP/TLS connection, is reached where it
    /// registered from).
    pub fn bindings(&self, user: &str) -> Vec<Binding> {
        self.inner
            .registrar
            .as_ref()
            .map_or_else(Vec::new, |r| lock(r).bindings(user, Instant::now()))
    }

    /// Grows whenever a binding is added, moved or removed (see
    /// [`Registrar::generation`]); `0` without a registrar.
    pub fn bindings_generation(&self) -> u64 {
        self.inner
            .registrar
            .as_ref()
            .map_or(0, |r| lock(r).generation())
    }

    /// REGISTER outcomes so far; `None` without a registrar. REGISTERs refused by
    /// [`super::EndpointConfig::allow_register_from`] never reach the registrar and are not
    /// counted here.
    pub fn registrar_stats(&self) -> Option<RegistrarStats> {
        self.inner.registrar.as_ref().map(|r| lock(r).stats())
    }
}
