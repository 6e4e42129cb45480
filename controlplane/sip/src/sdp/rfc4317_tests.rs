//! The audio parts of RFC 4317 (SDP offer/answer examples), run through our offer/answer.
//!
//! The SDP is the RFC's, with two substitutions made by [`rfc`] and [`pcma`]:
//! - host names become documentation addresses (we accept IP literals only, having no DNS on
//!   the media path): `host.atlanta` 192.0.2.101, `host.biloxi` 192.0.2.201, `newhost`
//!   .202, `placeholder` .203, `otherhost` .204, `mediaserver` .205;
//! - where a section only has iLBC (which we do not speak), `pcma` maps payload type 97 to
//!   `PCMA/8000` instead: the same dynamic payload type, now a codec we support.
//!
//! Where we answer differently from the RFC's Bob, the test says why (we accept one audio
//! stream and refuse video; both are valid answers).

use super::*;

fn rfc(text: &str) -> String {
    text.replace("newhost.biloxi.example.com", "192.0.2.202")
        .replace("placeholder.biloxi.example.com", "192.0.2.203")
        .replace("otherhost.biloxi.example.com", "192.0.2.204")
        .replace("mediaserver.biloxi.example.com", "192.0.2.205")
        .replace("host.biloxi.example.com", "192.0.2.201")
        .replace("host.atlanta.example.com", "192.0.2.101")
        .replace('\n', "\r\n")
}

fn pcma(text: &str) -> String {
    rfc(&text.replace("a=rtpmap:97 iLBC/8000", "a=rtpmap:97 PCMA/8000"))
}

fn sdp(text: &str) -> SessionDescription {
    SessionDescription::parse(text).unwrap()
}

fn us() -> SocketAddr {
    "198.51.100.7:30000".parse().unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const S2_1_OFFER: &str = "v=0
o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com
s= 
c=IN IP4 host.atlanta.example.com
t=0 0
m=audio 49170 RTP/AVP 0 8 97
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:97 iLBC/8000
m=video 51372 RTP/AVP 31 32
a=rtpmap:31 H261/90000
a=rtpmap:32 MPV/90000
";

#[test]
fn s2_1_audio_and_video_1() {
    let offer = sdp(&rfc(S2_1_OFFER));
    let answer = "v=0
o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49174 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 49170 RTP/AVP 32
a=rtpmap:32 MPV/90000
";
    // Alice's side: Bob's answer.
    let ag = read_answer(&offer, &sdp(&rfc(answer))).unwrap();
    assert_eq!(ag.negotiated.remote, addr("192.0.2.201:49174"));
    assert_eq!(
        (ag.negotiated.payload_type, ag.negotiated.encoding),
        (0, Encoding::Pcmu)
    );
    // Our answer as Bob: PCMU too; video refused (port 0), keeping the m= count and order.
    let a = LocalSession::new(1, us().ip())
        .answer(&offer, &AnswerParams::new(us()))
        .unwrap();
    let ours = sdp(&a.sdp);
    assert_eq!(ours.media[0].formats, vec!["0"]);
    assert_eq!(
        (ours.media[1].kind.as_str(), ours.media[1].port),
        ("video", 0)
    );
    assert_eq!(a.agreement.negotiated.remote, addr("192.0.2.101:49170"));
}

#[test]
fn s2_2_audio_and_video_2() {
    let offer = sdp(&rfc(S2_1_OFFER));
    let answer = "v=0
o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49172 RTP/AVP 0 8
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
m=video 0 RTP/AVP 31
a=rtpmap:31 H261/90000
";
    let second_offer = "v=0
o=alice 2890844526 2890844527 IN IP4 host.atlanta.example.com
s= 
c=IN IP4 host.atlanta.example.com
t=0 0
m=audio 51372 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 31
a=rtpmap:31 H261/90000
";
    let second_answer = "v=0
o=bob 2808844564 2808844565 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49172 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 31
a=rtpmap:31 H261/90000
";
    // Alice's side: both answers give PCMU (the answerer's first of 0 8).
    let ag = read_answer(&offer, &sdp(&rfc(answer))).unwrap();
    assert_eq!(ag.negotiated.payload_type, 0);
    let ag = read_answer(&sdp(&rfc(second_offer)), &sdp(&rfc(second_answer))).unwrap();
    assert_eq!(ag.negotiated.remote, addr("192.0.2.201:49172"));

    // Bob's side, by us: the re-offer moves Alice's port. Our audio answer is the same (we
    // answered PCMU alone the first time); the refused video line echoes the offer's formats,
    // which changed, so our version grows by one, as the RFC's Bob's does.
    let change = compare(&offer, &sdp(&rfc(second_offer))).unwrap();
    assert_eq!(change.remote, Some(addr("192.0.2.101:51372")));
    assert_eq!(
        (change.encoding, change.hold, change.same_version),
        (None, None, false)
    );
    let mut s = LocalSession::new(2808844564, us().ip());
    let p = AnswerParams::new(us());
    let first = s.answer(&offer, &p).unwrap();
    let second = s.answer(&sdp(&rfc(second_offer)), &p).unwrap();
    assert!(first.sdp.contains("o=callbridge 2808844564 2808844564 "));
    assert!(second.sdp.contains("o=callbridge 2808844564 2808844565 "));
    assert_eq!(sdp(&first.sdp).media[0], sdp(&second.sdp).media[0]);
    assert_eq!(
        second.agreement.negotiated.remote,
        addr("192.0.2.101:51372")
    );
}

#[test]
fn s2_4_two_audio_streams() {
    let offer = "v=0
o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com
s= 
c=IN IP4 host.atlanta.example.com
t=0 0
m=audio 49170 RTP/AVP 0 97
a=rtpmap:0 PCMU/8000
a=rtpmap:97 iLBC/8000
m=audio 49172 RTP/AVP 98
a=rtpmap:98 telephone-event/8000
a=sendonly
";
    // The RFC's Bob takes both streams; we take the first (PCMU) and refuse the separate
    // telephone-event stream: the relay has one stream per leg (DTMF in-stream, RFC 4733).
    let a = LocalSession::new(1, us().ip())
        .answer(&sdp(&rfc(offer)), &AnswerParams::new(us()))
        .unwrap();
    let ours = sdp(&a.sdp);
    assert_eq!((ours.media[0].port, ours.media[1].port), (30000, 0));
    assert_eq!(ours.media[0].formats, vec!["0"]);
    assert_eq!(a.agreement.negotiated.telephone_event, None);
    assert!(a
        .agreement
        .notes
        .iter()
        .any(|n| matches!(n, Note::StreamRejected { index: 1, .. })));
}

#[test]
fn s2_5_audio_and_video_4_new_address() {
    let answer = pcma(
        "v=0
o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49174 RTP/AVP 97
a=rtpmap:97 iLBC/8000
m=video 49170 RTP/AVP 31
a=rtpmap:31 H261/90000
",
    );
    let second_offer = pcma(
        "v=0
o=bob 2808844564 2808844565 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 newhost.biloxi.example.com
t=0 0
m=audio 49178 RTP/AVP 97
a=rtpmap:97 iLBC/8000
m=video 49188 RTP/AVP 31
a=rtpmap:31 H261/90000
",
    );
    // Alice's side: Bob moves; the relay must be told (and re-latches).
    let change = compare(&sdp(&answer), &sdp(&second_offer)).unwrap();
    assert_eq!(change.remote, Some(addr("192.0.2.202:49178")));
    assert!(change.direction.is_none() && change.hold.is_none() && change.encoding.is_none());
    // Our answer to Bob's re-offer keeps his dynamic payload type for PCMA; answering the
    // same offer again (a refresh) keeps our version, as the RFC's Alice does.
    let mut s = LocalSession::new(2890844526, us().ip());
    let p = AnswerParams::new(us());
    let a1 = s.answer(&sdp(&second_offer), &p).unwrap();
    assert_eq!(a1.agreement.negotiated.payload_type, 97);
    assert_eq!(a1.agreement.negotiated.encoding, Encoding::Pcma);
    let a2 = s.answer(&sdp(&second_offer), &p).unwrap();
    assert_eq!(a1.sdp, a2.sdp);
}

#[test]
fn s2_6_audio_only_1() {
    let offer = rfc("v=0
o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com
s= 
c=IN IP4 host.atlanta.example.com
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=audio 51372 RTP/AVP 97 101
a=rtpmap:97 iLBC/8000
a=rtpmap:101 telephone-event/8000
");
    let answer = rfc("v=0
o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 0 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=audio 49170 RTP/AVP 97 101
a=rtpmap:97 iLBC/8000
a=rtpmap:101 telephone-event/8000
");
    // The RFC's Bob declines the PCMU stream and takes iLBC; were we Alice, that leaves us
    // nothing we can send.
    let err = read_answer(&sdp(&offer), &sdp(&answer)).unwrap_err();
    assert!(err.to_string().contains("no common codec"), "{err}");
    // As Bob we do the opposite: PCMU on the first stream, the iLBC stream refused.
    let a = LocalSession::new(1, us().ip())
        .answer(&sdp(&offer), &AnswerParams::new(us()))
        .unwrap();
    let ours = sdp(&a.sdp);
    assert_eq!((ours.media[0].port, ours.media[1].port), (30000, 0));
    assert_eq!(ours.media[1].formats, vec!["97", "101"]);
}

#[test]
fn s2_8_audio_and_video_6_media_level_address() {
    let answer = rfc("v=0
o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49174 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 49172 RTP/AVP 32
c=IN IP4 otherhost.biloxi.example.com
a=rtpmap:32 MPV/90000
");
    let ag = read_answer(&sdp(&rfc(S2_1_OFFER)), &sdp(&answer)).unwrap();
    assert_eq!(
        ag.negotiated.remote,
        addr("192.0.2.201:49174"),
        "video's c= is not audio's"
    );
}

#[test]
fn s3_1_hold_and_unhold_1() {
    let offer = pcma(
        "v=0
o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com
s= 
c=IN IP4 host.atlanta.example.com
t=0 0
m=audio 49170 RTP/AVP 0 97
a=rtpmap:0 PCMU/8000
a=rtpmap:97 iLBC/8000
",
    );
    let answer = pcma(
        "v=0
o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 placeholder.biloxi.example.com
t=0 0
m=audio 49172 RTP/AVP 97
a=rtpmap:97 iLBC/8000
a=sendonly
",
    );
    let second_offer = pcma(
        "v=0
o=bob 2808844564 2808844565 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49170 RTP/AVP 97
a=rtpmap:97 iLBC/8000
",
    );
    // Alice's side: Bob answers on hold (sendonly) → we only receive.
    let ag = read_answer(&sdp(&offer), &sdp(&answer)).unwrap();
    assert_eq!(
        (ag.negotiated.payload_type, ag.negotiated.encoding),
        (97, Encoding::Pcma)
    );
    assert_eq!(ag.negotiated.direction, Direction::RecvOnly);
    assert_eq!(ag.negotiated.remote, addr("192.0.2.203:49172"));
    // Bob's re-offer takes Alice off hold, from a new address.
    let change = compare(&sdp(&answer), &sdp(&second_offer)).unwrap();
    assert_eq!(change.hold, Some(Hold::Ended));
    assert_eq!(change.direction, Some(Direction::SendRecv));
    assert_eq!(change.remote, Some(addr("192.0.2.201:49170")));
    let a = LocalSession::new(2890844526, us().ip())
        .answer(&sdp(&second_offer), &AnswerParams::new(us()))
        .unwrap();
    assert_eq!(a.agreement.negotiated.direction, Direction::SendRecv);
}

#[test]
fn s3_2_hold_with_two_streams() {
    let answer = pcma(
        "v=0
o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49172 RTP/AVP 97
a=rtpmap:97 iLBC/8000
m=audio 49174 RTP/AVP 98
a=rtpmap:98 telephone-event/8000
a=recvonly
",
    );
    let second_offer = pcma(
        "v=0
o=bob 2808844564 2808844565 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49172 RTP/AVP 97
a=rtpmap:97 iLBC/8000
a=sendonly
m=audio 49174 RTP/AVP 98
a=rtpmap:98 telephone-event/8000
a=recvonly
",
    );
    let change = compare(&sdp(&answer), &sdp(&second_offer)).unwrap();
    assert_eq!(change.hold, Some(Hold::Started));
    assert_eq!(
        (change.direction, change.remote),
        (Some(Direction::SendOnly), None)
    );
    let a = LocalSession::new(2890844526, us().ip())
        .answer(&sdp(&second_offer), &AnswerParams::new(us()))
        .unwrap();
    let ours = sdp(&a.sdp);
    assert_eq!(ours.media[0].direction, Direction::RecvOnly);
    assert_eq!(ours.media[1].port, 0);
}

#[test]
fn s4_1_and_4_3_streams_added_and_deleted_leave_audio_alone() {
    let answer = pcma(
        "v=0
o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49170 RTP/AVP 97
a=rtpmap:97 iLBC/8000
",
    );
    let added = pcma(
        "v=0
o=bob 2808844564 2808844565 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49170 RTP/AVP 97
a=rtpmap:97 iLBC/8000
m=audio 48282 RTP/AVP 98
c=IN IP4 mediaserver.biloxi.example.com
a=rtpmap:98 telephone-event/8000
a=recvonly
",
    );
    let change = compare(&sdp(&answer), &sdp(&added)).unwrap();
    assert!(change.is_empty() && !change.same_version, "{change:?}");
    let a = LocalSession::new(1, us().ip())
        .answer(&sdp(&added), &AnswerParams::new(us()))
        .unwrap();
    assert_eq!(sdp(&a.sdp).media[1].port, 0);

    let with_video = pcma(
        "v=0
o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49174 RTP/AVP 97
a=rtpmap:97 iLBC/8000
m=video 49170 RTP/AVP 31
a=rtpmap:31 H261/90000
",
    );
    let video_deleted = pcma(
        "v=0
o=bob 2808844564 2808844565 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49174 RTP/AVP 97
a=rtpmap:97 iLBC/8000
m=video 0 RTP/AVP 31
a=rtpmap:31 H261/90000
",
    );
    assert!(compare(&sdp(&with_video), &sdp(&video_deleted))
        .unwrap()
        .is_empty());
}

#[test]
fn s5_1_no_media_is_not_acceptable_to_us() {
    let offer = rfc("v=0
o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com
s= 
c=IN IP4 host.atlanta.example.com
t=0 0
");
    // The RFC's Bob answers with no media lines; a media relay has nothing to bridge then.
    let err = LocalSession::new(1, us().ip())
        .answer(&sdp(&offer), &AnswerParams::new(us()))
        .unwrap_err();
    assert!(matches!(err, SipError::SdpNotAcceptable(_)), "{err}");
}

#[test]
fn s5_2_hold_and_unhold_2_zero_address_offer() {
    let offer = pcma(
        "v=0
o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com
s= 
c=IN IP4 0.0.0.0
t=0 0
m=audio 23442 RTP/AVP 97
a=rtpmap:97 iLBC/8000
",
    );
    let second_offer = pcma(
        "v=0
o=alice 2890844526 2890844527 IN IP4 host.atlanta.example.com
s= 
c=IN IP4 host.atlanta.example.com
t=0 0
m=audio 49170 RTP/AVP 97
a=rtpmap:97 iLBC/8000
",
    );
    // RFC 3264 8.4: send nothing to 0.0.0.0. The RFC's Bob answers sendrecv; we say so
    // explicitly with recvonly (both are allowed).
    let mut s = LocalSession::new(1, us().ip());
    let p = AnswerParams::new(us());
    let a = s.answer(&sdp(&offer), &p).unwrap();
    assert_eq!(a.agreement.negotiated.direction, Direction::RecvOnly);
    assert!(a.agreement.negotiated.remote.ip().is_unspecified());
    let change = compare(&sdp(&offer), &sdp(&second_offer)).unwrap();
    assert_eq!(change.hold, Some(Hold::Ended));
    assert_eq!(change.remote, Some(addr("192.0.2.101:49170")));
    let a = s.answer(&sdp(&second_offer), &p).unwrap();
    assert_eq!(a.agreement.negotiated.direction, Direction::SendRecv);
    assert!(
        a.sdp.contains("o=callbridge 1 2 "),
        "our answer changed: version + 1"
    );
}

#[test]
fn s5_3_hold_and_unhold_3_zero_address_answer() {
    let offer = pcma(
        "v=0
o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com
s= 
c=IN IP4 host.atlanta.example.com
t=0 0
m=audio 49170 RTP/AVP 97
a=rtpmap:97 iLBC/8000
",
    );
    let answer = pcma(
        "v=0
o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 0.0.0.0
t=0 0
m=audio 9322 RTP/AVP 97
a=rtpmap:97 iLBC/8000
",
    );
    let second_offer = pcma(
        "v=0
o=bob 2808844564 2808844565 IN IP4 host.biloxi.example.com
s= 
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49172 RTP/AVP 97
a=rtpmap:97 iLBC/8000
",
    );
    let ag = read_answer(&sdp(&offer), &sdp(&answer)).unwrap();
    assert_eq!(
        ag.negotiated.direction,
        Direction::RecvOnly,
        "we must not send to 0.0.0.0"
    );
    let change = compare(&sdp(&answer), &sdp(&second_offer)).unwrap();
    assert_eq!(change.hold, Some(Hold::Ended));
    assert_eq!(change.remote, Some(addr("192.0.2.201:49172")));
}
