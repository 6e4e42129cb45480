//! What the UAS checks on a new, well-formed request before any decision of its own or of the
//! application (RFC 3261 8.2, in its order): the method (8.2.1, 405), the Request-URI scheme
//! (8.2.2.1, 416), `Require` (8.2.2.3, 420), the body (8.2.3, 415), then, for INVITE, what we
//! must be able to send back (`Accept`, 406) and the RFC 3261 dialog headers (400).
//!
//! Syntax (400) and the SIP version (505) were checked before, by [`crate::msg::parse`]. Policy
//! (e.g. the application's 403 to inbound calls) comes only after [`inspect`] returns `None`.

use super::allow;
use crate::msg::{self, HasHeaders, Method, Request, Response};

/// The option-tags we implement (RFC 3261 8.2.2.3): session timers (RFC 4028). `100rel`
/// is not among them: we send no reliable provisional responses, so an INVITE that requires
/// them gets 420 with `Unsupported: 100rel`.
const SUPPORTED: [&str; 1] = ["timer"];

/// Extension methods we implement (RFC 3311 UPDATE, in a confirmed dialog).
const EXTENSIONS: [&str; 1] = ["UPDATE"];

/// The only body we understand.
const ACCEPT: &str = "application/sdp";

/// The rejection a new request gets before the UA looks at it, or `None` to go on.
/// ACK is never inspected (it gets no response). `registrar`: whether REGISTER is ours.
pub(super) fn inspect(req: &Request, registrar: bool) -> Option<Response> {
    let reject = |status: u16, reason: Option<&str>| {
        let mut r = Response::to_request(req, status, Some(&msg::new_tag()));
        if let Some(reason) = reason {
            r.reason = reason.to_string();
        }
        r
    };
    // 8.2.1: a method we do not implement.
    if matches!(&req.method, Method::Other(m) if !EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(m)))
        || (req.method == Method::Register && !registrar)
    {
        let mut r = reject(405, None);
        r.headers.push("Allow", allow(registrar));
        return Some(r);
    }
    // 8.2.2.1: only SIP and SIPS Request-URIs (RFC 4475 3.3.2, 3.3.3).
    let scheme = req.uri.split(':').next().unwrap_or("");
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return Some(reject(416, None));
    }
    // 8.2.2.3: Require is ignored on CANCEL (and ACK).
    if req.method != Method::Cancel {
        let unsupported: Vec<&str> = req
            .headers
            .get_list("Require")
            .filter(|tag| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)))
            .collect();
        if !unsupported.is_empty() {
            let mut r = reject(420, None);
            r.headers.push("Unsupported", unsupported.join(", "));
            return Some(r);
        }
    }
    // An UPDATE's body is an offer too: judged like an INVITE's.
    let update = EXTENSIONS
        .iter()
        .any(|e| e.eq_ignore_ascii_case(req.method.as_str()));
    if req.method != Method::Invite && !update {
        return None;
    }
    // 8.2.3: an INVITE body must be SDP, unencoded (RFC 4475 3.3.6). Bodies of other methods
    // are not read, so they are not judged (a BYE with a Q.850 body must still end the call).
    if !req.body.is_empty() {
        let encoding = req.headers.get("Content-Encoding").unwrap_or("identity");
        if !encoding.trim().eq_ignore_ascii_case("identity") {
            let mut r = reject(415, None);
            r.headers.push("Accept-Encoding", "identity");
            r.headers.push("Accept", ACCEPT);
            return Some(r);
        }
        if req
            .headers
            .get("Content-Type")
            .is_some_and(|ct| !media_type(ct).eq_ignore_ascii_case(ACCEPT))
        {
            let mut r = reject(415, None);
            r.headers.push("Accept", ACCEPT);
            return Some(r);
        }
    }
    // Our 2xx carries SDP: an Accept without it leaves nothing to answer with (RFC 4475 3.3.15).
    if !accepts_sdp(req) {
        let mut r = reject(406, None);
        r.headers.push("Accept", ACCEPT);
        return Some(r);
    }
    // An RFC 3261 client (magic-cookie branch) must send Contact and a From tag (8.1.1.3,
    // 8.1.1.8); an RFC 2543 one may omit both (RFC 4475 3.4.1).
    if req.branch().is_some_and(|b| b.starts_with("z9hG4bK")) {
        if req.contact_uri().is_none() {
            return Some(reject(400, Some("Bad Request - missing Contact")));
        }
        if req.from_tag().is_none() {
            return Some(reject(400, Some("Bad Request - missing From tag")));
        }
    }
    None
}

/// `type/subtype` of a Content-Type or media-range, without parameters.
fn media_type(v: &str) -> &str {
    v.split(';').next().unwrap_or("").trim()
}

/// Whether the request's Accept (absent: `application/sdp`, RFC 3261 20.1) admits SDP.
fn accepts_sdp(req: &Request) -> bool {
    let mut lines = req.headers.get_all("Accept").peekable();
    if lines.peek().is_none() {
        return true;
    }
    lines.flat_map(msg::split_list).any(|range| {
        let mut parts = range.split(';');
        let ty = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.split_once('=').is_some_and(|(n, v)| {
                n.trim().eq_ignore_ascii_case("q")
                    && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            })
        });
        !refused
            && [ACCEPT, "application/*", "*/*"]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(ty))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{parse, Message};

    fn req(method: &str, uri: &str, extra: &str, body: &str) -> Request {
        let text = format!(
            "{method} {uri} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKinspect\r\n\
Max-Forwards: 70\r\nTo: <sip:b@127.0.0.1>\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\n\
Call-ID: inspect-1\r\nCSeq: 1 {method}\r\nContact: <sip:a@127.0.0.1:5070>\r\n{extra}\
Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match parse(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    fn status(r: &Request) -> Option<u16> {
        inspect(r, false).map(|r| r.status)
    }

    const SDP: &str = "v=0\r\n";

    #[test]
    fn a_plain_invite_and_options_pass() {
        let ct = "Content-Type: application/sdp\r\n";
        assert_eq!(status(&req("INVITE", "sip:b@127.0.0.1", ct, SDP)), None);
        assert_eq!(status(&req("INVITE", "sips:b@127.0.0.1", "", "")), None);
        assert_eq!(status(&req("OPTIONS", "sip:b@127.0.0.1", "", "")), None);
        assert_eq!(
            status(&req(
                "BYE",
                "sip:b@127.0.0.1",
                "Content-Type: application/x-q850\r\n",
                "x"
            )),
            None
        );
    }

    #[test]
    fn unknown_methods_get_405_with_allow_first() {
        // method inspection comes before the URI scheme (8.2.1 before 8.2.2)
        let r = inspect(&req("REGISTER", "tel:+1555", "Require: foo\r\n", ""), false).unwrap();
        assert_eq!(r.status, 405);
        assert_eq!(r.headers.get("Allow"), Some(super::super::ALLOW));
        assert!(r.to_tag().is_some());
        // with a registrar, REGISTER is ours: judged like OPTIONS, and 405s list it
        let r = inspect(&req("REGISTER", "tel:+1555", "", ""), true).unwrap();
        assert_eq!(r.status, 416);
        assert_eq!(status(&req("REGISTER", "sip:127.0.0.1", "", "")), Some(405));
        assert_eq!(
            inspect(&req("REGISTER", "sip:127.0.0.1", "", ""), true),
            None
        );
        let r = inspect(&req("FROBNICATE", "sip:127.0.0.1", "", ""), true).unwrap();
        assert_eq!(
            r.headers.get("Allow"),
            Some(super::super::ALLOW_WITH_REGISTER)
        );
    }

    #[test]
    fn other_uri_schemes_get_416() {
        assert_eq!(
            status(&req("OPTIONS", "nobodyKnowsThisScheme:x", "", "")),
            Some(416)
        );
        assert_eq!(
            status(&req("INVITE", "tel:+15551234567", "", "")),
            Some(416)
        );
    }

    #[test]
    fn unknown_require_tags_get_420_listing_them() {
        let r = inspect(
            &req(
                "OPTIONS",
                "sip:b@127.0.0.1",
                "Require: foo, bar\r\nRequire: baz\r\n",
                "",
            ),
            false,
        )
        .unwrap();
        assert_eq!(r.status, 420);
        assert_eq!(r.headers.get("Unsupported"), Some("foo, bar, baz"));
        // Proxy-Require is for proxies; Require on CANCEL is ignored.
        assert_eq!(
            status(&req(
                "OPTIONS",
                "sip:b@127.0.0.1",
                "Proxy-Require: foo\r\n",
                ""
            )),
            None
        );
        assert_eq!(
            status(&req("CANCEL", "sip:b@127.0.0.1", "Require: foo\r\n", "")),
            None
        );
    }

    #[test]
    fn non_sdp_invite_bodies_get_415_with_accept() {
        let r = inspect(
            &req(
                "INVITE",
                "sip:b@127.0.0.1",
                "Content-Type: application/unknownformat\r\n",
                "<x/>",
            ),
            false,
        )
        .unwrap();
        assert_eq!(r.status, 415);
        assert_eq!(r.headers.get("Accept"), Some("application/sdp"));
        let gz = "Content-Type: application/sdp\r\nContent-Encoding: gzip\r\n";
        let r = inspect(&req("INVITE", "sip:b@127.0.0.1", gz, SDP), false).unwrap();
        assert_eq!(
            (r.status, r.headers.get("Accept-Encoding")),
            (415, Some("identity"))
        );
        let params = "Content-Type: Application/SDP ; charset=utf-8\r\n";
        assert_eq!(status(&req("INVITE", "sip:b@127.0.0.1", params, SDP)), None);
    }

    #[test]
    fn an_invite_refusing_sdp_gets_406() {
        for accept in [
            "Accept: text/nobodyKnowsThis\r\n",
            "Accept: application/sdp;q=0\r\n",
        ] {
            assert_eq!(
                status(&req("INVITE", "sip:b@127.0.0.1", accept, "")),
                Some(406),
                "{accept}"
            );
        }
        for accept in [
            "Accept: text/plain, application/sdp\r\n",
            "Accept: */*\r\n",
            "Accept: application/*;q=0.5\r\n",
        ] {
            assert_eq!(
                status(&req("INVITE", "sip:b@127.0.0.1", accept, "")),
                None,
                "{accept}"
            );
        }
        // OPTIONS is answered without a body, whatever it accepts
        assert_eq!(
            status(&req("OPTIONS", "sip:b@127.0.0.1", "Accept: text/x\r\n", "")),
            None
        );
    }

    #[test]
    fn rfc3261_invites_need_contact_and_from_tag_rfc2543_ones_do_not() {
        let mut r = req("INVITE", "sip:b@127.0.0.1", "", "");
        r.headers.remove("Contact");
        let resp = inspect(&r, false).unwrap();
        assert_eq!(
            (resp.status, resp.reason.as_str()),
            (400, "Bad Request - missing Contact")
        );
        r.headers.set("Via", "SIP/2.0/UDP 127.0.0.1:5070");
        r.headers.set("From", "<sip:a@127.0.0.1>");
        assert_eq!(status(&r), None);
        r.headers
            .set("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx");
        r.headers.set("Contact", "<sip:a@127.0.0.1>");
        assert_eq!(
            inspect(&r, false).unwrap().reason,
            "Bad Request - missing From tag"
        );
    }
}
