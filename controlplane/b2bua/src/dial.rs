//! Calling out: the hops of a call (trunks by priority and RFC 3263 targets, a SIP URI's
//! targets, a registered agent's devices), our SDP offer per hop (with SDES over TLS), and the
//! move to the next hop on 503, 408, a timeout or a transport error.

use std::net::SocketAddr;

use dp_api::LegId;
use flows::{Role, Target};
use sip::sdp::{LocalSession, OfferParams, SessionDescription, Srtp};
use sip::{InviteRequest, LegEvent, OutgoingCall};
use srtp::CryptoAttr;
use tracing::{debug, warn};

use crate::*;

impl CallLegs {
    /// Sends an INVITE for `d.role` to `d.target`, offering `d.leg`'s local media address
    /// (see [`Dial`]). A number goes to the first of the trunks' hops ([`Trunks::hops`] for
    /// the business); a SIP URI to its RFC 3263 targets; a registered agent to all its
    /// devices. The leg moves to the next hop on 503, 408, a timeout or a transport error
    /// ([`CallLegs::next`]).
    ///
    /// # Errors
    /// [`B2buaError`] when the INVITE cannot be sent (the leg stays idle).
    pub async fn invite(&mut self, d: Dial<'_>) -> Result<(), B2buaError> {
        let Dial {
            role,
            target,
            leg,
            from_display,
            from_user,
            business,
            srtp,
        } = d;
        let settings = self.b2b.settings.clone();
        let bad = |reason: String| B2buaError::Target {
            target: target.to_string(),
            reason,
        };
        let (mut hops, number) = match target {
            Target::Tel(num) => {
                let hops = settings.trunks.hops(business).await;
                if hops.is_empty() && settings.trunks.serves(business) {
                    // The carrier cannot be reached (its name does not resolve): the number
                    // is unreachable, as after a transport error; not a fault of ours.
                    return Err(B2buaError::Unreachable {
                        target: target.to_string(),
                        cause: "no trunk serving this business resolves".into(),
                    });
                }
                if hops.is_empty() {
                    return Err(bad("no trunk serves this business".into()));
                }
                (hops, Some(num.clone()))
            }
            Target::Registered(_) => {
                return self.invite_registered(role, target, leg, from_display, from_user, srtp);
            }
            Target::Sip(uri) => {
                let mut hops = self.uri_hops(uri).await?;
                for h in &mut hops {
                    h.srtp = srtp;
                }
                (hops, None)
            }
        };
        let rtp = self
            .b2b
            .media
            .rtp_of(leg)
            .ok_or(B2buaError::NoMediaAddress(leg))?;
        let first = hops.remove(0);
        let req = InviteRequest {
            target: String::new(),
            from_user: from_user
                .map(str::to_owned)
                .or_else(|| first.caller_id.clone())
                .unwrap_or_else(|| settings.from_user.clone()),
            from_display,
            sdp: String::new(),
            headers: vec![("X-Callbridge-Call".into(), self.call.clone())],
            credentials: None,
        };
        let (sdp, offer, crypto, session) =
            offer_for(rtp, leg, &first).map_err(|reason| B2buaError::Invite {
                uri: target.to_string(),
                reason,
            })?;
        let mut req = req;
        req.sdp = sdp;
        let sent = send_to_hop(&self.b2b, &req, number.as_deref(), target, &first, false)?;
        debug!(call = %self.call, role = role.as_str(), hop = %first.dest, "INVITE sent");
        let call = SipCall::One(sent.0);
        let ctl = call.controller();
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        let policy = first.srtp;
        *slot = Some(Leg {
            call,
            ctl,
            req: sent.1,
            hop: Some(first),
            rest: hops,
            number,
            media: leg,
            rtp,
            offer: Some(offer),
            crypto,
            session: Some(session),
            remote: None,
            srtp: policy,
        });
        Ok(())
    }

    /// Rings every registered device of an agent at once (first answer wins, the others are
    /// CANCELled); no bindings: the leg is rejected 480 at once. SRTP is offered when the
    /// policy asks and the devices registered over TLS.
    pub(crate) fn invite_registered(
        &mut self,
        role: Role,
        target: &Target,
        leg: LegId,
        from_display: Option<String>,
        from_user: Option<&str>,
        srtp: Srtp,
    ) -> Result<(), B2buaError> {
        let user = target.registered_user().unwrap_or_default().to_owned();
        let rtp = self
            .b2b
            .media
            .rtp_of(leg)
            .ok_or(B2buaError::NoMediaAddress(leg))?;
        let bindings = self.b2b.sip.bindings(&user);
        let all_tls = !bindings.is_empty()
            && bindings
                .iter()
                .all(|b| b.flow.transport == sip::Transport::Tls);
        let hop = Hop {
            trunk: usize::MAX,
            trunk_name: String::new(),
            authority: String::new(),
            scheme: "sip",
            dest: sip::Peer::new(
                if all_tls {
                    sip::Transport::Tls
                } else {
                    sip::Transport::Udp
                },
                bindings
                    .first()
                    .map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |b| b.flow.addr),
            ),
            tls_name: None,
            credentials: None,
            caller_id: None,
            srtp: if all_tls || srtp == Srtp::Off {
                srtp
            } else {
                Srtp::Off
            },
        };
        if srtp == Srtp::Required && !all_tls && !bindings.is_empty() {
            return Err(B2buaError::Invite {
                uri: target.to_string(),
                reason: "SRTP is required but not every device registered over TLS".into(),
            });
        }
        let (sdp, offer, crypto, session) =
            offer_for(rtp, leg, &hop).map_err(|reason| B2buaError::Invite {
                uri: target.to_string(),
                reason,
            })?;
        let req = InviteRequest {
            target: String::new(),
            from_user: from_user.map_or_else(|| self.b2b.settings.from_user.clone(), str::to_owned),
            from_display,
            sdp,
            headers: vec![("X-Callbridge-Call".into(), self.call.clone())],
            credentials: None,
        };
        let forked = self
            .b2b
            .sip
            .invite_registered(&user, req.clone())
            .map_err(|e| B2buaError::Invite {
                uri: target.to_string(),
                reason: e.to_string(),
            })?;
        debug!(call = %self.call, role = role.as_str(), %user, devices = bindings.len(), "INVITE to registered devices");
        let call = SipCall::Fork(forked);
        let ctl = call.controller();
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        *slot = Some(Leg {
            call,
            ctl,
            req,
            srtp: hop.srtp,
            hop: Some(hop),
            rest: Vec::new(),
            number: None,
            media: leg,
            rtp,
            offer: Some(offer),
            crypto,
            session: Some(session),
            remote: None,
        });
        Ok(())
    }

    /// The hops of a SIP URI target: its RFC 3263 targets (an IP literal: itself). The URI
    /// is read by the one rule for targets, [`flows::SipUri::parse`] ([`sip_target`]), never
    /// by a second parser here: whatever a call request was accepted with is dialled.
    ///
    /// # Errors
    /// [`B2buaError::Unreachable`] when its host name does not resolve (or there is no
    /// resolver); [`B2buaError::Target`] when it is not a target at all (refused at submit).
    pub(crate) async fn uri_hops(&self, uri: &str) -> Result<Vec<Hop>, B2buaError> {
        let parsed = sip_target(uri).map_err(|reason| B2buaError::Target {
            target: uri.to_owned(),
            reason,
        })?;
        let unreachable = |cause: String| B2buaError::Unreachable {
            target: uri.to_owned(),
            cause,
        };
        let tls_name = match &parsed.host {
            sip::locate::Host::Name(n) => Some(n.clone()),
            sip::locate::Host::Ip(_) => None,
        };
        let targets = match (&parsed.host, &self.b2b.settings.locator) {
            // An IP literal: no query (RFC 3263 4.1), with or without a resolver.
            (sip::locate::Host::Ip(_), _) => sip::locate::Resolution::new(parsed, &[])
                .finish()
                .map_err(|e| unreachable(e.to_string()))?,
            (sip::locate::Host::Name(n), None) => {
                return Err(unreachable(format!(
                    "no DNS resolver to look up {n} (see the start-up log)"
                )))
            }
            (sip::locate::Host::Name(_), Some(l)) => l
                .resolve(parsed)
                .await
                .map_err(|e| unreachable(e.to_string()))?,
        };
        if targets.is_empty() {
            return Err(unreachable("no address found".into()));
        }
        Ok(targets
            .into_iter()
            .map(|t| Hop {
                trunk: usize::MAX,
                trunk_name: String::new(),
                authority: String::new(),
                scheme: "sip",
                dest: sip::Peer::from(t),
                tls_name: tls_name.clone(),
                credentials: None,
                caller_id: None,
                srtp: Srtp::Off,
            })
            .collect())
    }

    /// Moves an unanswered leg to its next hop after `ev` (503, 408, a timeout, a transport
    /// error). True when a new INVITE went out and `ev` must not reach the caller.
    pub(crate) fn fail_over(&mut self, role: Role, ev: &LegEvent) -> bool {
        let unreachable = match ev {
            LegEvent::Timeout | LegEvent::Unreachable { .. } => true,
            LegEvent::Rejected {
                status: 503 | 408, ..
            } => false,
            _ => return false,
        };
        let b2b = self.b2b.clone();
        let call = self.call.clone();
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        let Some(leg) = slot.as_mut() else {
            return false;
        };
        if let Some(hop) = &leg.hop {
            if unreachable && hop.trunk != usize::MAX {
                b2b.settings.trunks.mark_unreachable(hop.trunk);
            }
        }
        while !leg.rest.is_empty() {
            let hop = leg.rest.remove(0);
            let target = match &leg.number {
                Some(n) => Target::Tel(n.clone()),
                None => Target::Sip(leg.req.target.clone()),
            };
            let (sdp, offer, crypto, session) = match offer_for(leg.rtp, leg.media, &hop) {
                Ok(x) => x,
                Err(e) => {
                    warn!(call = %call, "{e}");
                    continue;
                }
            };
            let mut template = leg.req.clone();
            template.sdp = sdp;
            match send_to_hop(&b2b, &template, leg.number.as_deref(), &target, &hop, true) {
                Ok((c, req)) => {
                    leg.offer = Some(offer);
                    leg.crypto = crypto;
                    leg.session = Some(session);
                    warn!(call = %call, role = role.as_str(), ?ev, next = %hop.dest, trunk = %hop.trunk_name, "failing over to the next hop");
                    leg.call = SipCall::One(c);
                    leg.ctl = leg.call.controller();
                    leg.req = req;
                    leg.hop = Some(hop);
                    return true;
                }
                Err(e) => warn!(call = %call, "{e}"),
            }
        }
        false
    }
}

/// What RFC 3263 needs from a target SIP URI, read by the one rule for targets,
/// [`flows::SipUri::parse`] (what `POST /v1/call-requests` and the configuration accept): an
/// IP literal or a host name to resolve, the port and `transport=` as given.
///
/// # Errors
/// The reason [`flows::SipUri::parse`] gives.
pub fn sip_target(uri: &str) -> Result<sip::locate::SipTarget, String> {
    let u = flows::SipUri::parse(uri).map_err(|e| e.to_string())?;
    let bare = u.host.trim_start_matches('[').trim_end_matches(']');
    let host = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => sip::locate::Host::Ip(ip),
        Err(_) => sip::locate::Host::Name(bare.to_ascii_lowercase()),
    };
    let transport = u.transport.map(|t| match t {
        "tls" => sip::Transport::Tls,
        "tcp" if u.secure => sip::Transport::Tls,
        "tcp" => sip::Transport::Tcp,
        _ => sip::Transport::Udp,
    });
    Ok(sip::locate::SipTarget {
        secure: u.secure,
        host,
        port: u.port,
        transport,
    })
}

/// The `inline:…` key-params of our `a=crypto` attribute.
pub(crate) fn key_params(c: &CryptoAttr) -> Option<String> {
    c.to_string().splitn(3, ' ').nth(2).map(str::to_owned)
}

/// Our SDP offer to `hop` for the media leg `leg` at `rtp`: PCMU, PCMA, telephone-event;
/// with SDES-SRTP (a fresh AES_CM_128_HMAC_SHA1_80 key) when the hop's policy asks for it and
/// the hop is TLS — keys only cross TLS, so `optional` over UDP/TCP offers plain RTP and
/// `required` there is refused.
pub(crate) fn offer_for(
    rtp: SocketAddr,
    leg: LegId,
    hop: &Hop,
) -> Result<(String, SessionDescription, Option<CryptoAttr>, LocalSession), String> {
    let tls = hop.dest.transport == sip::Transport::Tls;
    let mut p = OfferParams::new(rtp);
    let crypto = match (hop.srtp, tls) {
        (Srtp::Off, _) | (Srtp::Optional, false) => None,
        (Srtp::Required, false) => {
            return Err(format!(
                "SRTP is required but {} is not reached over TLS (SDES keys only cross TLS)",
                hop.dest
            ))
        }
        (policy, true) => {
            let c = CryptoAttr::generate(1, srtp::Suite::AesCm128HmacSha1_80)
                .map_err(|e| format!("cannot make an SRTP key: {e}"))?;
            p.srtp = policy;
            // `inline:…` of our attribute: everything after "TAG SUITE ".
            let line = c.to_string();
            p.crypto_key = line.splitn(3, ' ').nth(2).map(str::to_owned);
            Some(c)
        }
    };
    let mut session = LocalSession::new(u64::from(leg.0), rtp.ip());
    let sdp = session.offer(&p).map_err(|e| e.to_string())?;
    let offer = SessionDescription::parse(&sdp).map_err(|e| e.to_string())?;
    Ok((sdp, offer, crypto, session))
}

/// Sends `template` to `hop`: the Request-URI is `sip:NUMBER@<trunk authority>` for a
/// number, else the SIP URI itself; credentials and, through a trunk, P-Asserted-Identity are
/// the hop's. Returns the leg and the request as sent.
pub(crate) fn send_to_hop(
    b2b: &B2bua,
    template: &InviteRequest,
    number: Option<&str>,
    target: &Target,
    hop: &Hop,
    failover: bool,
) -> Result<(OutgoingCall, InviteRequest), B2buaError> {
    let mut req = template.clone();
    req.headers.retain(|(n, _)| n != "P-Asserted-Identity");
    match number {
        Some(num) => {
            req.target = format!("{}:{num}@{}", hop.scheme, hop.authority);
            let host = hop.authority.split(';').next().unwrap_or(&hop.authority);
            req.headers.push((
                "P-Asserted-Identity".into(),
                format!("<{}:{}@{host}>", hop.scheme, req.from_user),
            ));
        }
        None => req.target = target.as_str().to_owned(),
    }
    req.credentials.clone_from(&hop.credentials);
    // An outbound proxy (the carrier's SBC) takes every call through a trunk (RFC 3261 8.1.2:
    // a pre-loaded Route with `lr`); the Request-URI still names the trunk.
    let (dest, tls_name) = match &b2b.settings.outbound_proxy {
        Some(p) if hop.trunk != usize::MAX => {
            req.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case("Route"));
            req.headers
                .push(("Route".into(), format!("<{};lr>", p.uri)));
            (p.dest, p.tls_name.clone())
        }
        _ => (hop.dest, hop.tls_name.clone()),
    };
    let call = b2b
        .sip
        .invite_to(req.clone(), dest, tls_name)
        .map_err(|e| B2buaError::Invite {
            uri: req.target.clone(),
            reason: e.to_string(),
        })?;
    if hop.trunk != usize::MAX {
        b2b.settings.trunks.count_call(hop.trunk, failover);
    }
    Ok((call, req))
}
