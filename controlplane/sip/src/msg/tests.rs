//! Unit tests of `msg`: byte vectors, RFC 4475 messages, construct/deconstruct pairs.

use super::*;
use crate::error::SipError;

fn req(data: &str) -> Request {
    match parse(data.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("expected a request"),
    }
}

const INVITE: &str = "INVITE sip:+15551234567@127.0.0.1:5080 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:+15551234567@127.0.0.1:5080>\r\n\
From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:5070>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

#[test]
fn parses_a_plain_invite() {
    let r = req(INVITE);
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri, "sip:+15551234567@127.0.0.1:5080");
    assert_eq!(r.call_id(), "a84b4c76e66710@pc33.atlanta.com");
    assert_eq!(r.cseq(), (314159, Method::Invite));
    assert_eq!(r.branch().as_deref(), Some("z9hG4bK776asdhds"));
    assert_eq!(r.from_tag().as_deref(), Some("1928301774"));
    assert_eq!(r.to_tag(), None);
    assert_eq!(r.contact_uri().as_deref(), Some("sip:alice@127.0.0.1:5070"));
    assert_eq!(r.body, b"v=0\n");
}

#[test]
fn encode_then_parse_round_trips() {
    let r = req(INVITE);
    let again = req(std::str::from_utf8(&r.encode()).unwrap());
    assert_eq!(r, again);
}

#[test]
fn compact_headers_are_expanded() {
    let r = req("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKc\r\n\
f: <sip:a@b>;tag=x\r\nt: sip:x@127.0.0.1\r\ni: cid\r\nCSeq: 1 OPTIONS\r\nm: <sip:a@10.0.0.1>\r\n\
c: application/sdp\r\nl: 0\r\n\r\n");
    assert_eq!(r.call_id(), "cid");
    assert_eq!(r.branch().as_deref(), Some("z9hG4bKc"));
    assert_eq!(r.from_tag().as_deref(), Some("x"));
    assert_eq!(r.headers.get("Content-Type"), Some("application/sdp"));
    assert_eq!(r.contact_uri().as_deref(), Some("sip:a@10.0.0.1"));
}

/// Adapted from RFC 4475 3.1.1.1 "wsinv": folded lines, odd spacing, escaped quotes.
#[test]
fn rfc4475_wsinv_whitespace_and_folding() {
    let body = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.3\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\n";
    let msg = format!(
        "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n\
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n\
MaX-fOrWaRdS: 0068\r\n\
Call-ID: wsinv.ndaksdj@192.0.2.1\r\n\
Content-Length   : {}\r\n\
cseq: 0009\r\n  INVITE\r\n\
Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n\
s :\r\n\
NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n\
UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n\
Content-Type: application/sdp\r\n\
Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n\
v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n\
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33\r\n\
\r\n{body}",
        body.len()
    );
    let r = req(&msg);
    assert_eq!(r.to_tag().as_deref(), Some("1918181833n"));
    assert_eq!(r.from_tag().as_deref(), Some("98asjd8"));
    assert_eq!(r.cseq(), (9, Method::Invite));
    assert_eq!(r.branch().as_deref(), Some("390skdjuw"));
    let vias: Vec<_> = r.headers.get_list("Via").collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(Via::parse(vias[2]).unwrap().branch(), Some("z9hG4bK30239"));
    assert_eq!(r.contact_uri().as_deref(), Some("sip:jdrosen@example.com"));
    assert_eq!(r.body, body.as_bytes());
    assert_eq!(
        r.headers.get("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
}

/// RFC 4475 3.1.1.3 "esc01": an escaped Request-URI and an unknown method (3.1.1.8-like).
#[test]
fn escaped_uri_and_extension_method() {
    let r = req(
        "NEWMETHOD sip:sips%3Auser%40example.com@example.net SIP/2.0\r\n\
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1\r\nTo: sip:j_user@example.com\r\n\
From: <sip:caller@example.org>;tag=323\r\nCall-ID: esc01.239409asdfakjkn23onasd0-3234\r\n\
CSeq: 8 NEWMETHOD\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.method, Method::Other("NEWMETHOD".into()));
    assert_eq!(r.uri, "sip:sips%3Auser%40example.com@example.net");
}

#[test]
fn content_length_framing_is_enforced() {
    let short = INVITE.replace("Content-Length: 4", "Content-Length: 40");
    assert!(matches!(
        parse(short.as_bytes()),
        Err(SipError::Truncated {
            declared: 40,
            available: 4
        })
    ));
    let extra = INVITE.replace("Content-Length: 4", "Content-Length: 2");
    assert_eq!(req(&extra).body, b"v=");
    let bad = INVITE.replace("Content-Length: 4", "Content-Length: four");
    assert!(matches!(
        parse(bad.as_bytes()),
        Err(SipError::InvalidHeader {
            name: "Content-Length",
            ..
        })
    ));
}

#[test]
fn missing_mandatory_headers_and_cseq_mismatch_are_errors() {
    let no_callid = INVITE.replace("Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n", "");
    assert!(matches!(
        parse(no_callid.as_bytes()),
        Err(SipError::MissingHeader("Call-ID"))
    ));
    let mismatch = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
    assert!(matches!(
        parse(mismatch.as_bytes()),
        Err(SipError::InvalidHeader { name: "CSeq", .. })
    ));
    let bad_via = INVITE.replace("SIP/2.0/UDP 127.0.0.1:5070", "garbage");
    assert!(parse(bad_via.as_bytes()).is_err());
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    for len in 0..600 {
        let mut buf = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            buf.push((seed & 0xff) as u8);
        }
        assert!(parse(&buf).is_err());
        let _ = reject_malformed(&buf, &SipError::Malformed("x".into()), "ua");
    }
    // Every truncation of a valid message parses or errors, never panics.
    for i in 0..INVITE.len() {
        let _ = parse(&INVITE.as_bytes()[..i]);
        let _ = reject_malformed(
            &INVITE.as_bytes()[..i],
            &SipError::Malformed("x".into()),
            "ua",
        );
    }
    assert!(parse(b"\xff\xfe\r\n\r\n").is_err());
    // multi-byte text where the parser slices: errors, not panics
    for line in [
        "INVITE sip:a@b SI\u{e9}/2.0",
        "INVITE sip:a@b S\u{e9}P/2.0",
        "SIP/2.0 2\u{e9} x",
    ] {
        let msg = format!("{line}\r\nVia: SIP/2.0/UDP h\u{e9}\u{e9};branch=z9hG4bK\u{e9}\r\n\r\n");
        let e = parse(msg.as_bytes()).unwrap_err();
        let _ = reject_malformed(msg.as_bytes(), &e, "ua");
    }
    let via = INVITE.replace("127.0.0.1:5070;", "h\u{e9}st:5070;");
    assert!(parse(via.as_bytes()).is_err());
    assert!(parse(b"INVITE sip: SIP/2.0\r\n\r\n").is_err());
}

#[test]
fn bad_request_is_built_when_the_request_line_parses() {
    let broken = INVITE.replace("CSeq: 314159 INVITE", "CSeq: nonsense");
    let err = parse(broken.as_bytes()).unwrap_err();
    let resp = reject_malformed(broken.as_bytes(), &err, "cb").unwrap();
    let Message::Response(r) = parse_response_lenient(&resp) else {
        panic!()
    };
    assert_eq!(r.status, 400);
    assert_eq!(r.call_id(), "a84b4c76e66710@pc33.atlanta.com");
    assert!(reject_malformed(b"\x00\x01 not sip", &err, "cb").is_none());
    assert!(reject_malformed(b"ACK sip:a@b SIP/2.0\r\n\r\n", &err, "cb").is_none());
}

fn parse_response_lenient(b: &[u8]) -> Message {
    // the 400 copies CSeq "nonsense", so only check the status line and Call-ID by hand
    let text = std::str::from_utf8(b).unwrap();
    assert!(text.starts_with("SIP/2.0 400 Bad Request"));
    let mut headers = Headers::default();
    for l in text.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
        let (n, v) = l.split_once(':').unwrap();
        headers.push(n, v.trim());
    }
    Message::Response(Response {
        status: 400,
        reason: String::new(),
        headers,
        body: vec![],
    })
}

#[test]
fn response_copies_headers_and_adds_to_tag() {
    let r = req(INVITE);
    let resp = Response::to_request(&r, 180, Some("abc"));
    assert_eq!(resp.to_tag().as_deref(), Some("abc"));
    assert_eq!(resp.from_tag().as_deref(), Some("1928301774"));
    assert_eq!(resp.cseq(), (314159, Method::Invite));
    let parsed = parse(&resp.encode()).unwrap();
    assert!(matches!(parsed, Message::Response(ref x) if x.status == 180 && x.reason == "Ringing"));
    let trying = Response::to_request(&r, 100, Some("abc"));
    assert_eq!(trying.to_tag(), None);
}

#[test]
fn received_and_rport_are_stamped_and_used() {
    let mut r = req(INVITE);
    let src: SocketAddr = "127.0.0.2:40000".parse().unwrap();
    r.stamp_received(src);
    let via = r.top_via().unwrap();
    assert_eq!(via.param("received"), Some(Some("127.0.0.2")));
    assert_eq!(via.param("rport"), Some(Some("40000")));
    assert_eq!(r.response_destination(src), src);
    // Without rport, from the sent-by IP: the sent-by port is used (18.2.2).
    let mut r = req(&INVITE.replace(";rport", ""));
    let from_sent_by: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    r.stamp_received(from_sent_by);
    assert_eq!(r.top_via().unwrap().param("received"), None);
    assert_eq!(
        r.response_destination(from_sent_by),
        "127.0.0.1:5070".parse().unwrap()
    );
    // Without rport, from another IP: the sent-by port is that other host's, so the
    // response goes back to the source (as rport would).
    let mut r = req(&INVITE.replace(";rport", ""));
    r.stamp_received(src);
    assert_eq!(r.response_destination(src), src);
    let mut r = req(&INVITE
        .replace(";rport", "")
        .replace("127.0.0.1:5070;", "pc33.example.com;"));
    r.stamp_received(src);
    assert_eq!(r.response_destination(src), src);
}

/// What [`parse`] and [`reject_malformed`] make of each RFC 4475 message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Parsed {
    Request,
    Response,
    /// A parse error answered with this status and reason.
    Rejected(u16, &'static str),
    /// A parse error that gets no answer (malformed responses).
    Dropped,
}

macro_rules! torture {
    ($($name:literal => $want:expr),* $(,)?) => {
        [$(($name, &include_bytes!(concat!("../../tests/rfc4475/", $name, ".dat"))[..], $want)),*]
    };
}

#[test]
fn rfc4475_torture_messages_parse_or_are_rejected_with_the_fault() {
    use Parsed::*;
    let cases = torture![
        // 3.1.1 valid
        "wsinv" => Request, "intmeth" => Request, "esc01" => Request, "escnull" => Request,
        "esc02" => Request, "lwsdisp" => Request, "longreq" => Request, "dblreq" => Request,
        "semiuri" => Request, "transports" => Request, "mpart01" => Request,
        "unreason" => Response, "noreason" => Response,
        // 3.1.2 invalid
        "badinv01" => Rejected(400, "malformed Via"),
        "clerr" => Rejected(400, "Content-Length larger than the body"),
        "ncl" => Rejected(400, "malformed Content-Length"),
        "scalar02" => Rejected(400, "malformed CSeq"),
        "scalarlg" => Dropped,
        "quotbal" => Rejected(400, "malformed To"),
        "ltgtruri" => Rejected(400, "malformed Request-URI"),
        "lwsruri" => Rejected(400, "whitespace in the Request-Line"),
        "lwsstart" => Rejected(400, "whitespace in the Request-Line"),
        "trws" => Rejected(400, "whitespace in the Request-Line"),
        "escruri" => Rejected(400, "headers in the Request-URI"),
        "baddate" => Request, // the Date is not used, so not judged
        "regbadct" => Rejected(400, "malformed Contact"),
        "badaspec" => Rejected(400, "malformed To"),
        "baddn" => Rejected(400, "no blank line after the headers"),
        "badvers" => Rejected(505, ""),
        "mismatch01" => Rejected(400, "malformed CSeq"),
        "mismatch02" => Rejected(400, "malformed CSeq"),
        "bigcode" => Dropped,
        // 3.2 transaction layer
        "badbranch" => Rejected(400, "malformed Via"),
        // 3.3 application layer: the UA judges the well-formed ones (ua::inspect)
        "insuf" => Rejected(400, "missing From"),
        "unkscm" => Request, "novelsc" => Request, "unksm2" => Request, "bext01" => Request,
        "invut" => Request, "regaut01" => Request,
        "multi01" => Rejected(400, "multiple Call-ID values"),
        "mcl01" => Rejected(400, "multiple Content-Length values"),
        "bcast" => Response, "zeromf" => Request, "cparam01" => Request,
        "cparam02" => Request, "regescrt" => Request, "sdp01" => Request,
        // 3.4
        "inv2543" => Request,
    ];
    assert_eq!(cases.len(), 49);
    let mut wrong = Vec::new();
    for (name, data, want) in cases {
        let got = match parse(data) {
            Ok(Message::Request(_)) => Request,
            Ok(Message::Response(_)) => Response,
            Err(e) => match reject_malformed(data, &e, "ua") {
                None => Dropped,
                Some(resp) => {
                    let text = String::from_utf8(resp).unwrap();
                    let line = text.lines().next().unwrap().to_string();
                    let expect = match want {
                        Rejected(505, _) => "SIP/2.0 505 Version Not Supported".to_string(),
                        Rejected(code, fault) => {
                            format!("SIP/2.0 {code} Bad Request - {fault}")
                        }
                        _ => String::new(),
                    };
                    if line == expect {
                        want
                    } else {
                        wrong.push(format!("{name}: {line:?} ({e})"));
                        continue;
                    }
                }
            },
        };
        if got != want {
            wrong.push(format!("{name}: {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn strict_name_addr_and_params() {
    for bad in [
        "\"Mr. J. User <sip:j.user@example.com>", // unterminated quote
        "Bell, Alexander <sip:a@example.com>",    // non-token display name
        "< sip:t.watson@example.org >",           // LWS in the addr-spec
        "sip:user@example.com?Route=x",           // '?' outside <>
        "<sip:joe@example.org>;;;;",              // empty parameters
        "<sip:joe@example.org>;tag=\"open",       // unterminated quoted value
        "<sip:joe@example.org> junk",             // text after '>'
        "nocolon",
    ] {
        assert!(NameAddr::parse("To", bad).is_err(), "{bad}");
    }
    let ok = NameAddr::parse(
        "From",
        "token1~` token2'+_ <sip:m@example.com>;p=\"a;b\";tag=x",
    )
    .unwrap();
    assert_eq!(ok.display.as_deref(), Some("token1~` token2'+_"));
    assert_eq!(ok.tag(), Some("x"));
    assert_eq!(
        NameAddr::parse("To", "isbn:2983792873").unwrap().uri,
        "isbn:2983792873"
    );
    assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
    assert!(Via::parse("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK").is_err());
    assert!(Via::parse("SIP/2.0/UDP [::1]:5060;received=[::2];branch=z9hG4bKa").is_ok());
}

#[test]
fn request_line_and_scalar_checks() {
    let bad = |from: &str, to: &str| parse(INVITE.replacen(from, to, 1).as_bytes()).unwrap_err();
    assert!(matches!(
        bad("INVITE sip:", "INVITE  sip:"),
        SipError::Malformed(_)
    ));
    assert!(matches!(
        bad(" SIP/2.0\r\nVia", " SIP/2.0 \r\nVia"),
        SipError::Malformed(_)
    ));
    assert!(matches!(
        bad(" SIP/2.0\r\nVia", " SIP/3.0\r\nVia"),
        SipError::UnsupportedVersion(_)
    ));
    assert!(matches!(
        bad("Max-Forwards: 70", "Max-Forwards: 256"),
        SipError::InvalidHeader {
            name: "Max-Forwards",
            ..
        }
    ));
    assert!(matches!(
        bad("Max-Forwards: 70", "Max-Forwards: 70\r\nMax-Forwards: 69"),
        SipError::DuplicateHeader("Max-Forwards")
    ));
    assert!(matches!(
        bad("Content-Length: 4", "Content-Length: +4"),
        SipError::InvalidHeader { .. }
    ));
    // a status code is three digits in 100..=699; a response of another version is not ours
    assert!(parse(b"SIP/2.0 99 x\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKa\r\n\r\n").is_err());
    let resp = b"SIP/3.0 200 OK\r\n\r\n";
    let e = parse(resp).unwrap_err();
    assert!(matches!(e, SipError::UnsupportedVersion(_)));
    assert!(reject_malformed(resp, &e, "ua").is_none());
}

#[test]
fn uri_resolution() {
    assert_eq!(
        uri_addr("sip:+15551234567@127.0.0.1:5080").unwrap(),
        "127.0.0.1:5080".parse().unwrap()
    );
    assert_eq!(
        uri_addr("<sip:bob@127.0.0.1;transport=udp>").unwrap(),
        "127.0.0.1:5060".parse().unwrap()
    );
    assert_eq!(
        uri_addr("sip:bob@[::1]:5070").unwrap(),
        "[::1]:5070".parse().unwrap()
    );
    assert!(uri_addr("sip:bob@example.com").is_err());
    assert!(uri_addr("garbage").is_err());
    assert!(uri_has_lr("sip:p1.example.com;lr"));
    assert!(!uri_has_lr("sip:p1.example.com"));
}

fn small_limits() -> Limits {
    Limits {
        max_message_bytes: 1024,
        max_header_bytes: 512,
        max_body_bytes: 64,
    }
}

#[test]
fn check_size_passes_messages_within_the_limits() {
    assert!(check_size(INVITE.as_bytes(), &Limits::default()).is_ok());
    assert!(check_size(INVITE.as_bytes(), &small_limits()).is_ok());
    // no blank line at all, short: left to parse (400)
    assert!(check_size(b"INVITE sip:x SIP/2.0\r\n", &small_limits()).is_ok());
}

#[test]
fn check_size_names_the_part_over_its_limit() {
    let l = small_limits();
    let big = format!("{INVITE}{}", "x".repeat(2000));
    assert!(matches!(
        check_size(big.as_bytes(), &l),
        Err(SipError::MessageTooLarge {
            part: "message",
            limit: 1024,
            ..
        })
    ));
    let long_header = INVITE.replace("Max-Forwards: 70", &format!("X-Long: {}", "y".repeat(600)));
    assert!(matches!(
        check_size(long_header.as_bytes(), &l),
        Err(SipError::MessageTooLarge {
            part: "header section",
            limit: 512,
            ..
        })
    ));
    let body = "v=0\r\n".repeat(20);
    let big_body = INVITE.replace("v=0\n", &body);
    assert!(matches!(
        check_size(big_body.as_bytes(), &l),
        Err(SipError::BodyTooLarge {
            size: 100,
            limit: 64
        })
    ));
    // exactly at the limits passes
    let at = Limits {
        max_message_bytes: INVITE.len(),
        max_header_bytes: INVITE.len() - 8,
        max_body_bytes: 4,
    };
    assert!(check_size(INVITE.as_bytes(), &at).is_ok());
}

#[test]
fn oversized_requests_get_513_or_413_with_the_transaction_headers() {
    let l = small_limits();
    let long_header = INVITE.replace("Max-Forwards: 70", &format!("X-Long: {}", "y".repeat(600)));
    let e = check_size(long_header.as_bytes(), &l).unwrap_err();
    let r = String::from_utf8(reject_malformed(long_header.as_bytes(), &e, "ua").unwrap()).unwrap();
    assert!(r.starts_with("SIP/2.0 513 Message Too Large\r\n"), "{r}");
    assert!(r.contains("\r\nCall-ID: a84b4c76e66710@pc33.atlanta.com\r\n"));
    assert!(r.contains("\r\nCSeq: 314159 INVITE\r\n"));
    let big_body = INVITE.replace("v=0\n", &"v=0\r\n".repeat(20));
    let e = check_size(big_body.as_bytes(), &l).unwrap_err();
    let r = String::from_utf8(reject_malformed(big_body.as_bytes(), &e, "ua").unwrap()).unwrap();
    assert!(
        r.starts_with("SIP/2.0 413 Request Entity Too Large\r\n"),
        "{r}"
    );
    // an oversized response is dropped
    let resp = format!("SIP/2.0 200 OK\r\n\r\n{}", "x".repeat(2000));
    let e = check_size(resp.as_bytes(), &l).unwrap_err();
    assert!(reject_malformed(resp.as_bytes(), &e, "ua").is_none());
}
