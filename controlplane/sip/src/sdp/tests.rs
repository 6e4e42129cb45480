//! Offer/answer scenarios beyond RFC 4317 (which has its own module): hold, SRTP, IPv6,
//! payload type mapping, answers to our offers, and seeded mutations. Addresses are from the
//! documentation ranges.

use super::*;

const ALICE: &str = "192.0.2.101";
const KEY: &str = "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32";
const OUR_KEY: &str = "inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:32";

fn parse(s: &str) -> SessionDescription {
    SessionDescription::parse(s).unwrap()
}

fn us() -> SocketAddr {
    "198.51.100.7:30000".parse().unwrap()
}

fn answer(offer: &str, p: &AnswerParams) -> Result<Answer, SipError> {
    LocalSession::new(5, p.rtp.ip()).answer(&parse(offer), p)
}

/// RFC 4317 2.1, Alice's offer (host name replaced): PCMU, PCMA, iLBC audio and H261/MPV
/// video.
const RFC4317_2_1_OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\ns=\r\nc=IN IP4 192.0.2.101\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 97\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:97 iLBC/8000\r\n\
m=video 51372 RTP/AVP 31 32\r\na=rtpmap:31 H261/90000\r\na=rtpmap:32 MPV/90000\r\n";

/// RFC 4317 2.1, Bob's answer: PCMU only, and MPV video.
const RFC4317_2_1_ANSWER: &str = "v=0\r\n\
o=bob 2808844564 2808844564 IN IP4 192.0.2.201\r\ns=\r\nc=IN IP4 192.0.2.201\r\nt=0 0\r\n\
m=audio 49174 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 49170 RTP/AVP 32\r\na=rtpmap:32 MPV/90000\r\n";

#[test]
fn second_audio_stream_is_refused_with_port_zero() {
    let offer = "v=0\r\no=alice 1 1 IN IP4 192.0.2.101\r\ns=\r\nc=IN IP4 192.0.2.101\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
m=audio 49172 RTP/AVP 98\r\na=rtpmap:98 telephone-event/8000\r\n";
    let a = answer(offer, &AnswerParams::new(us())).unwrap();
    let ans = parse(&a.sdp);
    assert_eq!((ans.media[0].port, ans.media[1].port), (30000, 0));
    assert_eq!(ans.media[1].formats, vec!["98"]);
    assert_eq!(a.agreement.negotiated.telephone_event, None);
}

/// The peer holds and unholds us by re-offers (sendonly, then sendrecv); our answers follow
/// and our o= version grows only when our answer changes.
#[test]
fn hold_and_unhold_by_re_offer() {
    let initial = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\ns=\r\n\
c=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 97\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:97 iLBC/8000\r\n";
    let hold = initial
        .replace("2890844526 IN", "2890844527 IN")
        .replace("iLBC/8000\r\n", "iLBC/8000\r\na=sendonly\r\n");
    let unhold = initial.replace("2890844526 IN", "2890844528 IN");
    let mut s = LocalSession::new(77, us().ip());
    let p = AnswerParams::new(us());

    let a0 = s.answer(&parse(initial), &p).unwrap();
    assert!(a0
        .sdp
        .contains("o=callbridge 77 77 IN IP4 198.51.100.7\r\n"));
    assert!(a0.sdp.contains("a=sendrecv\r\n"));

    let ch = compare(&parse(initial), &parse(&hold)).unwrap();
    assert_eq!(ch.hold, Some(Hold::Started));
    assert_eq!(ch.direction, Some(Direction::SendOnly));
    assert_eq!((ch.remote, ch.same_version), (None, false));
    let a1 = s.answer(&parse(&hold), &p).unwrap();
    assert!(
        a1.sdp.contains("o=callbridge 77 78 "),
        "changed answer, new version"
    );
    assert!(a1.sdp.contains("a=recvonly\r\n"));
    assert_eq!(a1.agreement.negotiated.direction, Direction::RecvOnly);

    let ch = compare(&parse(&hold), &parse(&unhold)).unwrap();
    assert_eq!(ch.hold, Some(Hold::Ended));
    assert_eq!(ch.direction, Some(Direction::SendRecv));
    let a2 = s.answer(&parse(&unhold), &p).unwrap();
    assert!(a2.sdp.contains("o=callbridge 77 79 "));
    assert!(a2.sdp.contains("a=sendrecv\r\n"));

    // A refresh (same offer, same version): nothing changed, our version stays.
    let ch = compare(&parse(&unhold), &parse(&unhold)).unwrap();
    assert!(ch.same_version && ch.is_empty());
    let a3 = s.answer(&parse(&unhold), &p).unwrap();
    assert_eq!(a3.sdp, a2.sdp);
    assert_eq!(s.version(), 79);
}

#[test]
fn we_hold_the_peer_and_both_hold() {
    let mut p = AnswerParams::new(us());
    p.direction = Direction::SendOnly;
    let a = answer(RFC4317_2_1_OFFER, &p).unwrap();
    assert!(a.sdp.contains("a=sendonly\r\n"));
    // The peer holds too (sendonly): sendonly ∩ recvonly = inactive.
    let held = RFC4317_2_1_OFFER.replace("iLBC/8000\r\n", "iLBC/8000\r\na=sendonly\r\n");
    let a = answer(&held, &p).unwrap();
    assert_eq!(a.agreement.negotiated.direction, Direction::Inactive);
    let inactive = RFC4317_2_1_OFFER.replace("iLBC/8000\r\n", "iLBC/8000\r\na=inactive\r\n");
    let a = answer(&inactive, &AnswerParams::new(us())).unwrap();
    assert!(a.sdp.contains("a=inactive\r\n"));
}

#[test]
fn old_style_hold_with_zero_address() {
    let held = RFC4317_2_1_OFFER.replace("c=IN IP4 192.0.2.101", "c=IN IP4 0.0.0.0");
    let a = answer(&held, &AnswerParams::new(us())).unwrap();
    assert_eq!(a.agreement.negotiated.direction, Direction::RecvOnly);
    assert!(a.sdp.contains("a=recvonly\r\n"));
    let ch = compare(&parse(RFC4317_2_1_OFFER), &parse(&held)).unwrap();
    assert_eq!(ch.hold, Some(Hold::Started));
    assert_eq!(ch.remote, None, "0.0.0.0 is not a new address to send to");
    let back = compare(&parse(&held), &parse(RFC4317_2_1_OFFER)).unwrap();
    assert_eq!(back.hold, Some(Hold::Ended));
    assert_eq!(back.remote, Some(format!("{ALICE}:49170").parse().unwrap()));
}

#[test]
fn re_offer_with_new_address_codec_and_dtmf() {
    let before = parse(RFC4317_2_1_OFFER);
    let moved = RFC4317_2_1_OFFER
        .replace(
            "m=audio 49170 RTP/AVP 0 8 97",
            "m=audio 50000 RTP/AVP 8 101\r\nc=IN IP4 192.0.2.55",
        )
        .replace("a=rtpmap:97 iLBC/8000", "a=rtpmap:101 telephone-event/8000");
    let ch = compare(&before, &parse(&moved)).unwrap();
    assert_eq!(ch.remote, Some("192.0.2.55:50000".parse().unwrap()));
    assert_eq!(ch.encoding, Some(Encoding::Pcma));
    assert_eq!(ch.telephone_event, Some(Some(101)));
    assert_eq!(
        (ch.hold, ch.crypto, ch.audio_disabled),
        (None, false, false)
    );
    let off = RFC4317_2_1_OFFER.replace("m=audio 49170", "m=audio 0");
    assert!(compare(&before, &parse(&off)).unwrap().audio_disabled);
}

#[test]
fn ipv6_offer_and_answer() {
    let offer = "v=0\r\no=- 1 1 IN IP6 2001:db8::a\r\ns=-\r\nc=IN IP6 2001:db8::a\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 8 0\r\n";
    let a = answer(
        offer,
        &AnswerParams::new("[2001:db8::7]:30000".parse().unwrap()),
    )
    .unwrap();
    assert!(a.sdp.contains("c=IN IP6 2001:db8::7\r\n"));
    assert!(a.sdp.contains("o=callbridge 5 5 IN IP6 2001:db8::7\r\n"));
    assert_eq!(
        a.agreement.negotiated.remote,
        "[2001:db8::a]:40000".parse().unwrap()
    );
    assert_eq!(a.agreement.negotiated.encoding, Encoding::Pcma);
    let neg = parse(&a.sdp).negotiated_from_answer().unwrap();
    assert_eq!(neg.remote, "[2001:db8::7]:30000".parse().unwrap());
}

#[test]
fn rejected_and_unusable_streams() {
    // A disabled audio stream, then video, then a usable audio stream.
    let offer = "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n\
m=video 5000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\nm=audio 6000 RTP/AVP 18 8\r\n";
    let a = answer(offer, &AnswerParams::new(us())).unwrap();
    let ans = parse(&a.sdp);
    let ports: Vec<u16> = ans.media.iter().map(|m| m.port).collect();
    assert_eq!(ports, [0, 0, 30000]);
    assert_eq!(a.agreement.media_index, 2);
    assert_eq!(ans.media[2].formats, vec!["8"]);

    let g729 = "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 18\r\n\
m=audio 6002 RTP/AVPF 0\r\n";
    let err = answer(g729, &AnswerParams::new(us())).unwrap_err();
    assert!(matches!(err, SipError::SdpNotAcceptable(_)));
    let text = err.to_string();
    assert!(text.contains("#0: no common codec"), "{text}");
    assert!(
        text.contains("#1: transport RTP/AVPF not supported"),
        "{text}"
    );
    // An unusable audio stream before a usable one: refused, with its reason noted.
    let later = format!("{g729}m=audio 6004 RTP/AVP 8\r\n");
    let a = answer(&later, &AnswerParams::new(us())).unwrap();
    assert_eq!(a.agreement.media_index, 2);
    assert!(a.agreement.notes.iter().any(|n| matches!(
        n,
        Note::StreamRejected { index: 0, reason } if reason.starts_with("no common codec")
    )));
    let none = "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n";
    let err = answer(none, &AnswerParams::new(us())).unwrap_err();
    assert!(err.to_string().contains("no enabled m=audio"), "{err}");
}

#[test]
fn codec_preference_is_ours_among_what_is_offered() {
    let offer = "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 110 101\r\n\
a=rtpmap:110 pcma/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";
    let mut p = AnswerParams::new(us());
    assert_eq!(
        answer(offer, &p).unwrap().agreement.negotiated.payload_type,
        0
    );
    p.codecs = vec![Encoding::Pcma, Encoding::Pcmu];
    let a = answer(offer, &p).unwrap();
    assert_eq!(
        a.agreement.negotiated.payload_type, 110,
        "the offer's dynamic PT is kept"
    );
    assert_eq!(a.agreement.negotiated.encoding, Encoding::Pcma);
    assert!(a
        .sdp
        .contains("m=audio 30000 RTP/AVP 110 101\r\na=rtpmap:110 PCMA/8000\r\n"));
    p.codecs = vec![Encoding::Pcma];
    let only_u = offer.replace(" 0 110 101", " 0 101");
    assert!(
        answer(&only_u, &p).is_err(),
        "a preference list is also a limit"
    );
}

#[test]
fn telephone_event_keeps_the_offerers_payload_type_and_fmtp() {
    let offer = "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 96\r\n\
a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n";
    let a = answer(offer, &AnswerParams::new(us())).unwrap();
    assert!(a
        .sdp
        .contains("a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n"));
    assert_eq!(a.agreement.negotiated.telephone_event, Some(96));
    let mut p = AnswerParams::new(us());
    p.telephone_event = false;
    let a = answer(offer, &p).unwrap();
    assert!(!a.sdp.contains("telephone-event"));

    // We offer 101; the answerer numbers it 96: we send DTMF with 96.
    let mut s = LocalSession::new(1, us().ip());
    s.offer(&OfferParams::new(us())).unwrap();
    let ans = "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 96\r\n\
a=rtpmap:96 telephone-event/8000\r\n";
    let ag = s.read_answer(&parse(ans)).unwrap();
    assert_eq!(ag.negotiated.telephone_event, Some(96));
}

#[test]
fn ptime_is_echoed_or_noted() {
    let with = |ptime: &str| {
        RFC4317_2_1_OFFER.replace(
            "iLBC/8000\r\n",
            &format!("iLBC/8000\r\na=ptime:{ptime}\r\n"),
        )
    };
    let a = answer(&with("20"), &AnswerParams::new(us())).unwrap();
    assert!(a.sdp.contains("a=ptime:20\r\n"));
    assert!(!a
        .agreement
        .notes
        .iter()
        .any(|n| matches!(n, Note::PtimeNotHonoured { .. })));
    let a = answer(&with("30"), &AnswerParams::new(us())).unwrap();
    assert!(a.sdp.contains("a=ptime:20\r\n"));
    assert!(a
        .agreement
        .notes
        .contains(&Note::PtimeNotHonoured { requested: 30 }));
    assert_eq!(a.agreement.negotiated.ptime, 30);
}

#[test]
fn rtcp_attribute_and_mux() {
    let offer = RFC4317_2_1_OFFER.replace(
        "iLBC/8000\r\n",
        "iLBC/8000\r\na=rtcp:53020 IN IP4 192.0.2.102\r\na=rtcp-mux\r\n",
    );
    let a = answer(&offer, &AnswerParams::new(us())).unwrap();
    assert_eq!(
        a.agreement.negotiated.remote_rtcp,
        Some("192.0.2.102:53020".parse().unwrap())
    );
    assert!(a.agreement.notes.contains(&Note::RtcpMuxIgnored));
    assert!(!a.sdp.contains("rtcp-mux"));
}

/// Offers of each SRTP kind against each policy.
#[test]
fn srtp_matrix() {
    let base = |proto: &str, crypto: &str| {
        format!("v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 6000 {proto} 0\r\n{crypto}")
    };
    let c80 = format!("a=crypto:3 AES_CM_128_HMAC_SHA1_80 {KEY}\r\n");
    let c32 = format!("a=crypto:7 AES_CM_128_HMAC_SHA1_32 {KEY}\r\n");
    let other = format!("a=crypto:1 AEAD_AES_256_GCM {KEY}\r\n");
    let offers = [
        ("savp80", base("RTP/SAVP", &c80)),
        ("savp32", base("RTP/SAVP", &format!("{other}{c32}"))),
        ("savp-none", base("RTP/SAVP", "")),
        ("savp-other", base("RTP/SAVP", &other)),
        ("avp80", base("RTP/AVP", &c80)),
        ("avp", base("RTP/AVP", "")),
    ];
    // Expected answer per policy: None = 488, Some((proto, crypto tag)).
    type Row = [Option<(&'static str, Option<u32>)>; 3];
    let expect: [Row; 6] = [
        [
            None,
            Some(("RTP/SAVP", Some(3))),
            Some(("RTP/SAVP", Some(3))),
        ],
        [
            None,
            Some(("RTP/SAVP", Some(7))),
            Some(("RTP/SAVP", Some(7))),
        ],
        [None, None, None],
        [None, None, None],
        [
            Some(("RTP/AVP", None)),
            Some(("RTP/AVP", Some(3))),
            Some(("RTP/AVP", Some(3))),
        ],
        [Some(("RTP/AVP", None)), Some(("RTP/AVP", None)), None],
    ];
    for ((name, offer), row) in offers.iter().zip(expect) {
        for (policy, want) in [Srtp::Off, Srtp::Optional, Srtp::Required]
            .into_iter()
            .zip(row)
        {
            let mut p = AnswerParams::new(us());
            p.srtp = policy;
            p.crypto_key = Some(OUR_KEY.into());
            let got = answer(offer, &p);
            let Some((proto, tag)) = want else {
                let err = got.expect_err(&format!("{name} {policy:?}"));
                assert!(
                    matches!(err, SipError::SdpNotAcceptable(_)),
                    "{name} {policy:?}"
                );
                continue;
            };
            let a = got.unwrap_or_else(|e| panic!("{name} {policy:?}: {e}"));
            let m = &parse(&a.sdp).media[0];
            assert_eq!(m.proto, proto, "{name} {policy:?}");
            assert_eq!(m.crypto.first().map(|c| c.tag), tag, "{name} {policy:?}");
            assert_eq!(a.agreement.negotiated.srtp, tag.is_some());
            if let Some(k) = &a.agreement.srtp {
                assert_eq!((k.local.as_str(), k.remote.as_str()), (OUR_KEY, KEY));
                assert_eq!(m.crypto[0].key_params, OUR_KEY);
                assert_eq!(m.crypto[0].suite, k.suite.name());
            }
        }
    }
    // No local key: SAVP cannot be accepted; best-effort AVP+crypto falls back to plain.
    let mut p = AnswerParams::new(us());
    p.srtp = Srtp::Optional;
    let err = answer(&offers[0].1, &p).unwrap_err();
    assert!(err.to_string().contains("no local key"), "{err}");
    assert!(!answer(&offers[4].1, &p).unwrap().agreement.negotiated.srtp);
}

#[test]
fn offers_and_their_versions() {
    let text = build_offer("127.0.0.1:4000".parse().unwrap(), 42);
    assert_eq!(
        text,
        "v=0\r\no=callbridge 42 42 IN IP4 127.0.0.1\r\ns=callbridge\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    );
    let mut s = LocalSession::new(9, us().ip());
    let mut p = OfferParams::new(us());
    let o1 = s.offer(&p).unwrap();
    let o2 = s.offer(&p).unwrap();
    assert_eq!(o1, o2, "unchanged re-offer keeps its version");
    p.direction = Direction::SendOnly;
    let o3 = s.offer(&p).unwrap();
    assert!(o3.contains("o=callbridge 9 10 ") && o3.contains("a=sendonly\r\n"));

    p.srtp = Srtp::Required;
    assert!(s.offer(&p).is_err(), "required without a key");
    p.crypto_key = Some(OUR_KEY.into());
    let o4 = s.offer(&p).unwrap();
    assert!(o4.contains("m=audio 30000 RTP/SAVP 0 8 101\r\n"));
    assert!(o4.contains(&format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 {OUR_KEY}\r\n")));
    assert!(o4.contains("o=callbridge 9 11 "));
    p.srtp = Srtp::Optional;
    let o5 = s.offer(&p).unwrap();
    assert!(o5.contains("m=audio 30000 RTP/AVP 0 8 101\r\n") && o5.contains("a=crypto:1 "));
}

#[test]
fn reading_answers_to_our_offer() {
    let them = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n";
    let read = |p: &OfferParams, media: &str| {
        let mut s = LocalSession::new(1, us().ip());
        s.offer(p).unwrap();
        s.read_answer(&parse(&format!("{them}{media}")))
    };
    let plain = OfferParams::new(us());
    let ag = read(
        &plain,
        "m=audio 7000 RTP/AVP 8 0\r\na=rtcp:7005\r\na=recvonly\r\n",
    )
    .unwrap();
    let n = ag.negotiated;
    assert_eq!(
        (n.payload_type, n.encoding),
        (8, Encoding::Pcma),
        "the answerer's first"
    );
    assert_eq!(n.remote_rtcp, Some("192.0.2.9:7005".parse().unwrap()));
    assert_eq!(n.direction, Direction::SendOnly);
    assert_eq!(n.telephone_event, None);

    let err = |p: &OfferParams, media: &str| read(p, media).unwrap_err().to_string();
    assert!(err(
        &plain,
        "m=audio 7000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
    )
    .contains("not a subset"));
    assert!(err(&plain, "m=audio 7000 RTP/AVP 96\r\n").contains("no rtpmap"));
    assert!(err(&plain, "m=audio 0 RTP/AVP 0\r\n").contains("refused"));
    assert!(err(&plain, "m=audio 7000 RTP/SAVP 0\r\n").contains("transport"));
    assert!(err(&plain, "m=audio 7000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n").contains("m= lines"));
    assert!(err(
        &plain,
        "m=audio 7000 RTP/AVP 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    .contains("no common codec"));
    let mut none = LocalSession::new(1, us().ip());
    assert!(none
        .read_answer(&parse(&format!("{them}m=audio 1 RTP/AVP 0\r\n")))
        .is_err());

    let mut srtp = OfferParams::new(us());
    srtp.srtp = Srtp::Required;
    srtp.crypto_key = Some(OUR_KEY.into());
    let ag = read(
        &srtp,
        &format!("m=audio 7000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY}\r\n"),
    )
    .unwrap();
    let k = ag.srtp.unwrap();
    assert_eq!(
        (k.tag, k.local.as_str(), k.remote.as_str()),
        (1, OUR_KEY, KEY)
    );
    assert!(err(&srtp, "m=audio 7000 RTP/SAVP 0\r\n").contains("a=crypto"));
    assert!(err(
        &srtp,
        &format!("m=audio 7000 RTP/SAVP 0\r\na=crypto:2 AES_CM_128_HMAC_SHA1_80 {KEY}\r\n")
    )
    .contains("a=crypto"));
    // Best-effort offer answered with plain RTP: fine, no SRTP.
    srtp.srtp = Srtp::Optional;
    assert!(read(&srtp, "m=audio 7000 RTP/AVP 0\r\n")
        .unwrap()
        .srtp
        .is_none());
}

/// What SIPp's built-in uac scenario sends.
const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// Softphone-like: media-level c=, dynamic codecs first, PCMA before PCMU, sendonly.
const SOFTPHONE_OFFER: &str =
    "v=0\r\no=- 3896542134 3896542134 IN IP4 192.168.1.20\r\ns=Softphone\r\n\
c=IN IP4 192.168.1.20\r\nt=0 0\r\n\
m=audio 51372 RTP/AVP 111 9 8 0 101\r\nc=IN IP4 10.1.2.3\r\n\
a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:9 G722/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:30\r\na=sendonly\r\n\
m=video 51374 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";

#[test]
fn answers_sipp_offer_with_pcmu() {
    let offer = parse(SIPP_OFFER);
    let (text, neg) = build_answer(&offer, "127.0.0.1:30000".parse().unwrap(), 7).unwrap();
    assert_eq!(neg.remote, "127.0.0.1:6000".parse().unwrap());
    assert_eq!((neg.payload_type, neg.telephone_event), (0, None));
    let ans = parse(&text);
    assert_eq!(ans.audio().unwrap().formats, vec!["0"]);
    assert_eq!(ans.audio().unwrap().port, 30000);
}

#[test]
fn answers_softphone_offer() {
    let offer = parse(SOFTPHONE_OFFER);
    let a = offer.audio().unwrap();
    assert_eq!(a.connection, Some("10.1.2.3".parse().unwrap()));
    let (text, neg) = build_answer(&offer, "127.0.0.1:30002".parse().unwrap(), 1).unwrap();
    assert_eq!(
        neg.remote,
        "10.1.2.3:51372".parse().unwrap(),
        "media-level c= wins"
    );
    assert_eq!(neg.payload_type, 8, "first offered codec we support");
    assert_eq!(neg.telephone_event, Some(101));
    assert_eq!(neg.direction, Direction::RecvOnly);
    let ans = parse(&text);
    assert_eq!(ans.media.len(), 2);
    assert_eq!(ans.media[1].port, 0, "video refused");
    assert_eq!(ans.media[0].formats, vec!["8", "101"]);
    assert_eq!(ans.media[0].direction, Direction::RecvOnly);
    assert!(text.contains("a=fmtp:101 0-16"));
}

#[test]
fn offer_reads_as_answer() {
    let sdp = parse(&build_offer("127.0.0.1:4000".parse().unwrap(), 42));
    let neg = sdp.negotiated_from_answer().unwrap();
    assert_eq!(neg.remote, "127.0.0.1:4000".parse().unwrap());
    assert_eq!(
        (neg.payload_type, neg.telephone_event, neg.ptime),
        (0, Some(101), 20)
    );
    assert_eq!(
        summary(&neg),
        "PCMU/8000 pt 0 → 127.0.0.1:4000 te 101 sendrecv"
    );
}

#[test]
fn errors_say_what_is_missing() {
    let no_c = SIPP_OFFER.replace("c=IN IP4 127.0.0.1\r\n", "");
    let err = parse(&no_c).negotiated_from_answer().unwrap_err();
    assert!(err.to_string().contains("no c= line"), "{err}");
    let err = build_answer(&parse(&no_c), us(), 1).unwrap_err();
    assert!(err.to_string().contains("no c= line"), "{err}");
    let no_audio = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5 RTP/AVP 96\r\n";
    assert!(parse(no_audio)
        .audio()
        .unwrap_err()
        .to_string()
        .contains("no m=audio"));
    let disabled = SIPP_OFFER.replace("m=audio 6000", "m=audio 0");
    assert!(parse(&disabled).negotiated_from_answer().is_err());
    assert!(SessionDescription::parse("garbage").is_err());
    assert!(SessionDescription::parse("c=IN IP4 1.2.3.4\r\n")
        .unwrap_err()
        .to_string()
        .contains("v="));
    let host =
        RFC4317_2_1_OFFER.replace("c=IN IP4 192.0.2.101", "c=IN IP4 host.atlanta.example.com");
    assert!(SessionDescription::parse(&host)
        .unwrap_err()
        .to_string()
        .contains("IP literal"));
}

/// A small xorshift: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &str) -> String {
    const TOKENS: &[&str] = &[
        "0",
        "65535",
        "65536",
        "-1",
        " ",
        "\r\n",
        "=",
        ":",
        "/",
        "a=crypto:",
        "a=rtcp:",
        "m=audio ",
        "c=IN IP6 ::",
        "c=IN IP4 0.0.0.0",
        "RTP/SAVP",
        "a=ptime:",
        "99999999999999999999",
        "é",
        "a=sendonly",
        "a=rtpmap:",
        "a=fmtp:",
        "IN",
        "inline:",
        "telephone-event/8000",
    ];
    let mut lines: Vec<String> = seed.split("\r\n").map(str::to_string).collect();
    for _ in 0..=rng.below(4) {
        let i = rng.below(lines.len());
        match rng.below(6) {
            0 => {
                lines.remove(i);
                if lines.is_empty() {
                    lines.push(String::new());
                }
            }
            1 => {
                let dup = lines[i].clone();
                lines.insert(rng.below(lines.len()), dup);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = lines[i]
                    .char_indices()
                    .map(|(k, _)| k)
                    .nth(rng.below(lines[i].len() + 1));
                let at = at.unwrap_or(lines[i].len());
                lines[i].insert_str(at, t);
            }
            3 => {
                let cut = lines[i]
                    .char_indices()
                    .map(|(k, _)| k)
                    .nth(rng.below(lines[i].len() + 1));
                let cut = cut.unwrap_or(lines[i].len());
                lines[i].truncate(cut);
            }
            4 => {
                let mut bytes = std::mem::take(&mut lines[i]).into_bytes();
                if !bytes.is_empty() {
                    let k = rng.below(bytes.len());
                    bytes[k] = (rng.next() & 0x7F) as u8;
                }
                lines[i] = String::from_utf8_lossy(&bytes).into_owned();
            }
            _ => {
                let t = TOKENS[rng.below(TOKENS.len())];
                lines.insert(i, t.to_string());
            }
        }
    }
    lines.join(if rng.below(2) == 0 { "\r\n" } else { "\n" })
}

#[test]
fn mutations_never_panic() {
    let srtp_offer = format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 6000 RTP/SAVP 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n\
a=rtcp:6001 IN IP4 192.0.2.2\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY}\r\na=ptime:20\r\n"
    );
    let seeds = [
        RFC4317_2_1_OFFER.to_string(),
        RFC4317_2_1_ANSWER.to_string(),
        SOFTPHONE_OFFER.to_string(),
        srtp_offer,
        build_offer("[2001:db8::1]:4000".parse().unwrap(), 3),
    ];
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut parsed = 0;
    for round in 0..600 {
        let seed_text = &seeds[round % seeds.len()];
        let text = mutate(&mut rng, seed_text);
        let Ok(sdp) = SessionDescription::parse(&text) else {
            continue;
        };
        parsed += 1;
        let _ = sdp.to_sdp_string();
        let _ = sdp.negotiated_from_answer();
        for srtp in [Srtp::Off, Srtp::Optional, Srtp::Required] {
            let mut p = AnswerParams::new(us());
            p.srtp = srtp;
            p.crypto_key = Some(OUR_KEY.into());
            if let Ok(a) = LocalSession::new(1, us().ip()).answer(&sdp, &p) {
                // Whatever we answer must parse and read back as an answer.
                let back = parse(&a.sdp);
                assert_eq!(back.media.len(), sdp.media.len(), "{text:?}");
                read_answer(&sdp, &back).unwrap_or_else(|e| panic!("{e}: {text:?}"));
            }
        }
        let original = parse(seed_text);
        let _ = compare(&original, &sdp);
        let _ = compare(&sdp, &original);
        let _ = read_answer(&original, &sdp);
        let _ = read_answer(&sdp, &original);
    }
    assert!(
        parsed > 150,
        "mutations should often stay parseable: {parsed}"
    );
}
