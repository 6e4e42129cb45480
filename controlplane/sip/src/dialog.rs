//! Sans-IO dialogs (RFC 3261 §12–13, 15).
//!
//! * [`Dialog`] holds the dialog state (Call-ID, tags, remote target, route set, CSeqs) and
//!   builds in-dialog requests (ACK for a 2xx, BYE) per 12.2.1.1 (loose and strict routing).
//! * [`Uas2xxRetransmitter`] is the UAS core's 2xx retransmission (13.3.1.4): T1 doubling up
//!   to T2 until the ACK arrives, giving up after 64·T1 (the caller then sends BYE).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::error::SipError;
use crate::msg::{self, HasHeaders, Method, NameAddr, Request, Response};
use crate::peer::{Peer, Transport};
use crate::transaction::{Timers, Transmit};

/// Dialog identifier (12): Call-ID plus local and remote tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// An established dialog (confirmed once the 2xx is sent/received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    id: DialogId,
    local_party: String,
    remote_party: String,
    remote_target: String,
    route_set: Vec<String>,
    local_cseq: u32,
    remote_cseq: Option<u32>,
    local_contact: String,
}

/// A name-addr header value without its `tag` parameter.
fn without_tag(name: &'static str, v: &str) -> Result<String, SipError> {
    let n = NameAddr::parse(name, v)?;
    let mut s = match &n.display {
        Some(d) => format!(
            "\"{}\" <{}>",
            d.replace('\\', "\\\\").replace('"', "\\\""),
            n.uri
        ),
        None => format!("<{}>", n.uri),
    };
    for (k, val) in n
        .params
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("tag"))
    {
        match val {
            Some(val) => s.push_str(&format!(";{k}={val}")),
            None => s.push_str(&format!(";{k}")),
        }
    }
    Ok(s)
}

fn route_uris(values: Vec<&str>) -> Result<Vec<String>, SipError> {
    values
        .into_iter()
        .map(|v| NameAddr::parse("Record-Route", v).map(|_| v.to_string()))
        .collect()
}

impl Dialog {
    /// The UAC side, from the INVITE we sent and the 2xx we got (12.1.2): remote tag from To,
    /// remote target from Contact, route set from Record-Route reversed.
    ///
    /// # Errors
    /// [`SipError::MissingHeader`] when the 2xx has no To tag or no Contact.
    pub fn uac_from_2xx(invite: &Request, resp: &Response) -> Result<Self, SipError> {
        let remote_tag = resp.to_tag().ok_or(SipError::MissingHeader("To tag"))?;
        let remote_target = resp
            .contact_uri()
            .ok_or(SipError::MissingHeader("Contact"))?;
        let mut route_set = route_uris(resp.headers.get_list("Record-Route").collect())?;
        route_set.reverse();
        Ok(Self {
            id: DialogId {
                call_id: invite.call_id().to_string(),
                local_tag: invite
                    .from_tag()
                    .ok_or(SipError::MissingHeader("From tag"))?,
                remote_tag,
            },
            local_party: without_tag("From", invite.headers.get("From").unwrap_or(""))?,
            remote_party: without_tag("To", resp.headers.get("To").unwrap_or(""))?,
            remote_target,
            route_set,
            local_cseq: invite.cseq().0,
            remote_cseq: None,
            local_contact: invite.headers.get("Contact").unwrap_or("").to_string(),
        })
    }

    /// The UAS side, from an INVITE we answer with `local_tag` and our Contact (12.1.1):
    /// route set from Record-Route in order, remote target from Contact (from the From URI for
    /// an RFC 2543 INVITE without one; a missing From tag is the null tag).
    ///
    /// # Errors
    /// [`SipError::InvalidHeader`] when To or From cannot be read.
    pub fn uas_from_invite(
        invite: &Request,
        local_tag: &str,
        local_contact: &str,
    ) -> Result<Self, SipError> {
        Ok(Self {
            id: DialogId {
                call_id: invite.call_id().to_string(),
                local_tag: local_tag.to_string(),
                // RFC 3261 12.1.1: an RFC 2543 From without tag has a null tag.
                remote_tag: invite.from_tag().unwrap_or_default(),
            },
            local_party: without_tag("To", invite.headers.get("To").unwrap_or(""))?,
            remote_party: without_tag("From", invite.headers.get("From").unwrap_or(""))?,
            // RFC 2543 made Contact optional; the From URI is then the only target we know.
            remote_target: match invite.contact_uri() {
                Some(uri) => uri,
                None => {
                    crate::msg::NameAddr::parse("From", invite.headers.get("From").unwrap_or(""))?
                        .uri
                }
            },
            route_set: route_uris(invite.headers.get_list("Record-Route").collect())?,
            local_cseq: rand::random::<u16>() as u32 + 1,
            remote_cseq: Some(invite.cseq().0),
            local_contact: local_contact.to_string(),
        })
    }

    /// The dialog id.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// The remote target URI.
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    /// A target refresh (12.2.1.2, 12.2.2): the Contact URI of a re-INVITE or UPDATE, or of
    /// its 2xx, replaces the remote target.
    pub fn refresh_target(&mut self, contact_uri: String) {
        if !contact_uri.is_empty() {
            self.remote_target = contact_uri;
        }
    }

    /// Our last CSeq number in this dialog.
    pub fn local_cseq(&self) -> u32 {
        self.local_cseq
    }

    /// Continues our CSeq numbering from `n` when it is higher (a dialog confirmed by a 2xx
    /// after in-dialog requests of its early dialog, e.g. PRACK: RFC 3262, 12.2.1.1).
    pub fn skip_local_cseq_to(&mut self, n: u32) {
        self.local_cseq = self.local_cseq.max(n);
    }

    /// The route set (as Route header values, in order).
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    fn first_route_uri(&self) -> Option<String> {
        let r = self.route_set.first()?;
        NameAddr::parse("Route", r).ok().map(|n| n.uri)
    }

    /// Where in-dialog requests are sent: the first route, else the remote target (we do no DNS,
    /// so either must be an IP literal).
    ///
    /// # Errors
    /// [`SipError::InvalidUri`].
    pub fn destination(&self) -> Result<SocketAddr, SipError> {
        match self.first_route_uri() {
            Some(uri) => msg::uri_addr(&uri),
            None => msg::uri_addr(&self.remote_target),
        }
    }

    /// The transport the first route or the remote target names (`;transport=`, or TLS for a
    /// `sips:` URI), if any.
    pub fn transport(&self) -> Option<Transport> {
        match self.first_route_uri() {
            Some(uri) => msg::uri_transport(&uri),
            None => msg::uri_transport(&self.remote_target),
        }
    }

    fn build(&self, method: Method, cseq: u32, via: String) -> Request {
        // 12.2.1.1: loose routing unless the first route lacks `lr`.
        let strict = self.first_route_uri().is_some_and(|u| !msg::uri_has_lr(&u));
        let (uri, routes): (String, Vec<String>) = if strict {
            let mut rest: Vec<String> = self.route_set[1..].to_vec();
            rest.push(format!("<{}>", self.remote_target));
            (self.first_route_uri().unwrap_or_default(), rest)
        } else {
            (self.remote_target.clone(), self.route_set.clone())
        };
        let mut r = Request::new(method.clone(), uri);
        r.headers.push("Via", via);
        r.headers.push("Max-Forwards", "70");
        r.headers.push(
            "From",
            format!("{};tag={}", self.local_party, self.id.local_tag),
        );
        r.headers.push(
            "To",
            format!("{};tag={}", self.remote_party, self.id.remote_tag),
        );
        r.headers.push("Call-ID", self.id.call_id.clone());
        r.headers.push("CSeq", format!("{cseq} {method}"));
        for route in routes {
            r.headers.push("Route", route);
        }
        r
    }

    /// The ACK for a 2xx (13.2.2.4): the INVITE's CSeq number, method ACK, a new branch in `via`.
    pub fn ack_for_2xx(&self, invite_cseq: u32, via: String) -> Request {
        self.build(Method::Ack, invite_cseq, via)
    }

    /// A new in-dialog request (BYE, …) with the next local CSeq. Adds our Contact for methods
    /// that need one (not BYE).
    pub fn new_request(&mut self, method: Method, via: String) -> Request {
        self.local_cseq += 1;
        let needs_contact = !matches!(method, Method::Bye | Method::Cancel | Method::Ack);
        let mut r = self.build(method, self.local_cseq, via);
        if needs_contact && !self.local_contact.is_empty() {
            r.headers.push("Contact", self.local_contact.clone());
        }
        r
    }

    /// Checks an in-dialog request's CSeq (12.2.2): returns false (answer 500) if it is lower
    /// than the last one seen; otherwise records it.
    pub fn handle_remote_cseq(&mut self, req: &Request) -> bool {
        let n = req.cseq().0;
        if req.method == Method::Ack || req.method == Method::Cancel {
            return true;
        }
        match self.remote_cseq {
            Some(last) if n < last => false,
            _ => {
                self.remote_cseq = Some(n);
                true
            }
        }
    }
}

/// Events from [`Uas2xxRetransmitter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uas2xxEvent {
    /// 64·T1 passed without an ACK: the dialog should be ended with BYE (13.3.1.4).
    NoAck,
}

/// Retransmits a UAS 2xx until the ACK arrives (13.3.1.4). The first transmission is done by the
/// INVITE server transaction; this starts with the first retransmission at now + T1.
#[derive(Debug)]
pub struct Uas2xxRetransmitter {
    payload: Vec<u8>,
    dest: Peer,
    interval: Duration,
    t2: Duration,
    next_at: Option<Instant>,
    give_up_at: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Uas2xxEvent>,
}

impl Uas2xxRetransmitter {
    /// Starts retransmitting `payload` (the encoded 2xx) to `dest`.
    pub fn new(now: Instant, payload: Vec<u8>, dest: Peer, timers: Timers) -> Self {
        Self {
            payload,
            dest,
            interval: timers.t1,
            t2: timers.t2,
            next_at: Some(now + timers.t1),
            give_up_at: Some(now + timers.t64()),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The ACK arrived: stop.
    pub fn handle_ack(&mut self) {
        self.next_at = None;
        self.give_up_at = None;
    }

    /// Whether retransmission is still running.
    pub fn is_active(&self) -> bool {
        self.give_up_at.is_some()
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.give_up_at.is_some_and(|t| t <= now) {
            self.handle_ack();
            self.events.push_back(Uas2xxEvent::NoAck);
            return;
        }
        if let Some(at) = self.next_at.filter(|&t| t <= now) {
            self.transmits.push_back(Transmit {
                dest: self.dest,
                payload: self.payload.clone(),
            });
            self.interval = (self.interval * 2).min(self.t2);
            self.next_at = Some(at + self.interval);
        }
    }

    /// Next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Uas2xxEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.next_at, self.give_up_at].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Message;

    fn parse_req(s: &str) -> Request {
        match msg::parse(s.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    fn invite() -> Request {
        parse_req(
            "INVITE sip:b@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport\r\n\
Max-Forwards: 70\r\nFrom: \"Alice\" <sip:a@127.0.0.1:5070>;tag=aa\r\nTo: <sip:b@127.0.0.1:5080>\r\nCall-ID: c1\r\n\
CSeq: 7 INVITE\r\nContact: <sip:a@127.0.0.1:5070>\r\n\
Record-Route: <sip:127.0.0.8:5060;lr>, <sip:127.0.0.9:5060;lr>\r\nContent-Length: 0\r\n\r\n",
        )
    }

    fn ok(inv: &Request) -> Response {
        let mut r = Response::to_request(inv, 200, Some("bb"));
        r.headers.push("Contact", "<sip:b@127.0.0.2:5090>");
        r
    }

    #[test]
    fn uac_dialog_from_2xx_builds_ack_and_bye() {
        let inv = invite();
        let mut d = Dialog::uac_from_2xx(&inv, &ok(&inv)).unwrap();
        assert_eq!(
            d.id(),
            &DialogId {
                call_id: "c1".into(),
                local_tag: "aa".into(),
                remote_tag: "bb".into()
            }
        );
        assert_eq!(d.remote_target(), "sip:b@127.0.0.2:5090");
        assert_eq!(
            d.route_set(),
            ["<sip:127.0.0.9:5060;lr>", "<sip:127.0.0.8:5060;lr>"]
        );
        assert_eq!(d.destination().unwrap(), "127.0.0.9:5060".parse().unwrap());

        let ack = d.ack_for_2xx(
            7,
            msg::via_value("127.0.0.1:5070".parse().unwrap(), "z9hG4bKnew"),
        );
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(
            ack.uri, "sip:b@127.0.0.2:5090",
            "loose routing keeps the remote target"
        );
        assert_eq!(ack.cseq(), (7, Method::Ack));
        assert_eq!(ack.branch().as_deref(), Some("z9hG4bKnew"));
        assert_eq!(
            ack.headers.get_all("Route").collect::<Vec<_>>(),
            ["<sip:127.0.0.9:5060;lr>", "<sip:127.0.0.8:5060;lr>"]
        );

        let bye = d.new_request(
            Method::Bye,
            msg::via_value("127.0.0.1:5070".parse().unwrap(), "z9hG4bKbye"),
        );
        assert_eq!(bye.cseq(), (8, Method::Bye));
        assert_eq!(bye.from_tag().as_deref(), Some("aa"));
        assert_eq!(bye.to_tag().as_deref(), Some("bb"));
        assert_eq!(
            bye.headers.get("From"),
            Some("\"Alice\" <sip:a@127.0.0.1:5070>;tag=aa")
        );
        let bye2 = d.new_request(
            Method::Bye,
            String::from("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx"),
        );
        assert_eq!(bye2.cseq().0, 9, "local CSeq increments");
        // The encoded BYE parses.
        assert!(msg::parse(&bye.encode()).is_ok());
    }

    #[test]
    fn uas_dialog_swaps_parties_and_keeps_route_order() {
        let inv = invite();
        let mut d = Dialog::uas_from_invite(&inv, "bb", "<sip:b@127.0.0.2:5090>").unwrap();
        assert_eq!(d.id().remote_tag, "aa");
        assert_eq!(d.remote_target(), "sip:a@127.0.0.1:5070");
        assert_eq!(d.route_set()[0], "<sip:127.0.0.8:5060;lr>");
        let bye = d.new_request(
            Method::Bye,
            msg::via_value("127.0.0.2:5090".parse().unwrap(), "z9hG4bKq"),
        );
        assert_eq!(bye.from_tag().as_deref(), Some("bb"));
        assert_eq!(bye.to_tag().as_deref(), Some("aa"));
        assert_eq!(
            bye.headers.get("To"),
            Some("\"Alice\" <sip:a@127.0.0.1:5070>;tag=aa")
        );
        // CSeq checks: an older request is refused, a newer one accepted.
        let mut old = bye.clone();
        old.headers.set("CSeq", "3 BYE");
        assert!(!d.handle_remote_cseq(&old));
        old.headers.set("CSeq", "8 BYE");
        assert!(d.handle_remote_cseq(&old));
    }

    #[test]
    fn strict_route_puts_first_route_in_request_uri() {
        let inv = invite();
        let mut resp = ok(&inv);
        resp.headers.remove("Record-Route");
        resp.headers.push("Record-Route", "<sip:127.0.0.9:5060>");
        let mut d = Dialog::uac_from_2xx(&inv, &resp).unwrap();
        let bye = d.new_request(Method::Bye, "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx".into());
        assert_eq!(bye.uri, "sip:127.0.0.9:5060");
        assert_eq!(bye.headers.get("Route"), Some("<sip:b@127.0.0.2:5090>"));
    }

    #[test]
    fn missing_contact_or_tag_is_an_error() {
        let inv = invite();
        let mut resp = Response::to_request(&inv, 200, Some("bb"));
        assert!(matches!(
            Dialog::uac_from_2xx(&inv, &resp),
            Err(SipError::MissingHeader("Contact"))
        ));
        resp = Response::to_request(&inv, 200, None);
        resp.headers.push("Contact", "<sip:b@127.0.0.2>");
        assert!(matches!(
            Dialog::uac_from_2xx(&inv, &resp),
            Err(SipError::MissingHeader("To tag"))
        ));
    }

    #[test]
    fn uas_2xx_retransmits_until_ack() {
        let t0 = Instant::now();
        let mut r = Uas2xxRetransmitter::new(
            t0,
            b"200".to_vec(),
            Peer::udp("127.0.0.1:1".parse().unwrap()),
            Timers::default(),
        );
        let mut sent = vec![];
        while let Some(at) = r.poll_timeout() {
            if at > t0 + Duration::from_secs(12) {
                break;
            }
            r.handle_timeout(at);
            while r.poll_transmit().is_some() {
                sent.push((at - t0).as_millis());
            }
        }
        assert_eq!(sent, vec![500, 1500, 3500, 7500, 11500]);
        r.handle_ack();
        assert_eq!(r.poll_timeout(), None);
        assert!(!r.is_active());
        assert_eq!(r.poll_event(), None);
    }

    #[test]
    fn uas_2xx_gives_up_after_64_t1() {
        let t0 = Instant::now();
        let mut r = Uas2xxRetransmitter::new(
            t0,
            b"200".to_vec(),
            Peer::udp("127.0.0.1:1".parse().unwrap()),
            Timers::default(),
        );
        let mut count = 0;
        let mut last = t0;
        while let Some(at) = r.poll_timeout() {
            r.handle_timeout(at);
            last = at;
            while r.poll_transmit().is_some() {
                count += 1;
            }
        }
        assert_eq!(last - t0, Duration::from_secs(32));
        assert_eq!(count, 10, "0.5 1.5 3.5 7.5 11.5 … 31.5");
        assert_eq!(r.poll_event(), Some(Uas2xxEvent::NoAck));
    }
}
