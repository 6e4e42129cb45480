use super::*;
use crate::bencode::decode;

fn leg(n: u16) -> LegId {
    LegId::at(1, 30_000 + 2 * n, 5)
}

fn enc_cmd(c: &Command) -> Vec<u8> {
    let mut e = Encoder::default();
    encode_command(&mut e, c).expect("encodable");
    e.finish()
}

fn enc_ev(ev: &Event) -> Vec<u8> {
    let mut e = Encoder::default();
    encode_event(&mut e, ev);
    e.finish()
}

fn commands() -> Vec<Command> {
    let key = |b: u8| SrtpKey {
        suite: srtp::Suite::AesCm128HmacSha1_80,
        key: srtp::MasterKey::from_slice(&[b; 30]).unwrap(),
    };
    let remote: SocketAddr = "198.18.0.7:40000".parse().unwrap();
    vec![
        Command::AddLeg(LegSpec {
            id: leg(1),
            remote: Some(remote),
            latch: Latch::Nat {
                window: Duration::from_millis(1500),
            },
            src_mismatch: SrcMismatch::Report,
            codec: Codec::Pcma,
            media_timeout: Some(Duration::from_secs(30)),
        }),
        Command::AddLeg(LegSpec {
            id: leg(2),
            remote: None,
            latch: Latch::Off,
            src_mismatch: SrcMismatch::Ignore,
            codec: Codec::Pcmu,
            media_timeout: None,
        }),
        Command::SetRemote {
            leg: leg(1),
            remote: "[::1]:5004".parse().unwrap(),
            codec: Codec::Pcmu,
        },
        Command::SetPayloadTypes {
            leg: leg(1),
            types: PayloadTypes {
                codec: Codec::Pcma,
                audio: 96,
                telephone_event: Some(101),
            },
        },
        Command::SetPayloadTypes {
            leg: leg(2),
            types: PayloadTypes::of(Codec::Pcmu),
        },
        Command::SetSrtp {
            leg: leg(1),
            keys: Some(SrtpKeys {
                recv: key(1),
                send: SrtpKey {
                    suite: srtp::Suite::AesCm128HmacSha1_32,
                    ..key(2)
                },
            }),
        },
        Command::SetSrtp {
            leg: leg(1),
            keys: None,
        },
        Command::Bridge {
            a: leg(1),
            b: leg(2),
        },
        Command::Unbridge { leg: leg(2) },
        Command::Play {
            leg: leg(1),
            clip: Arc::new(Clip::builtin_prompt()),
            looping: true,
        },
        Command::StopPlay { leg: leg(1) },
        Command::QueryStats { leg: leg(2) },
        Command::RemoveLeg { leg: leg(2) },
    ]
}

#[test]
fn every_command_serve_sends_survives_the_wire() {
    let prompts = Prompts::default();
    for c in commands() {
        let bytes = enc_cmd(&c);
        let v = decode(&bytes).unwrap();
        let back = decode_command(&v, &|n| prompts.get(n)).unwrap();
        assert_eq!(enc_cmd(&back), bytes, "{c:?}");
        assert_eq!(format!("{back:?}"), format!("{c:?}"));
        if let (Command::SetSrtp { keys: Some(a), .. }, Command::SetSrtp { keys: Some(b), .. }) =
            (&c, &back)
        {
            assert_eq!(a, b);
        }
    }
    let mut e = Encoder::default();
    assert!(encode_command(&mut e, &Command::Shutdown).is_none());
}

#[test]
fn a_prompt_travels_by_name_and_the_node_plays_its_own() {
    let mine = Arc::new(Clip {
        name: "/etc/callbridge/prompts/hold.wav".into(),
        pcmu: vec![0xff; 160],
        pcma: vec![0xd5; 160],
    });
    let prompts = Prompts {
        default: Arc::new(Clip::builtin_prompt()),
        named: vec![mine.clone()],
    };
    let sent = Command::Play {
        leg: leg(1),
        clip: Arc::new(Clip {
            name: "/srv/other/place/hold.wav".into(),
            pcmu: vec![0; 16_000],
            pcma: vec![0; 16_000],
        }),
        looping: false,
    };
    let bytes = enc_cmd(&sent);
    assert!(
        bytes.len() < 200,
        "audio never crosses ng: {} bytes",
        bytes.len()
    );
    let back = decode_command(&decode(&bytes).unwrap(), &|n| prompts.get(n)).unwrap();
    let Command::Play { clip, looping, .. } = back else {
        panic!("{back:?}")
    };
    assert!(Arc::ptr_eq(&clip, &mine));
    assert!(!looping);
    assert!(Arc::ptr_eq(&prompts.get("nope.wav"), &prompts.default));
}

#[test]
fn every_event_survives_the_wire() {
    let mut stats = LegStats {
        rx_packets: 1,
        rx_bytes: 2,
        rx_rtcp: 3,
        tx_packets: 4,
        tx_bytes: 5,
        tx_rtcp: 6,
        announcement_packets: 7,
        jitter_us: 8,
        max_jitter_us: 9,
        peer_reports: 10,
        peer_fraction_lost: 11,
        peer_cumulative_lost: -12,
        drops: DropCounters::default(),
    };
    stats.drops.add(DropReason::SrcMismatch);
    stats.drops.add(DropReason::UnmappedPayloadType);
    let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let events = vec![
        Event::LegAdded { leg: leg(1) },
        Event::CommandFailed {
            leg: Some(leg(1)),
            error: CommandError::UnknownLeg,
        },
        Event::CommandFailed {
            leg: None,
            error: CommandError::Io("no socket".into()),
        },
        Event::CommandFailed {
            leg: Some(leg(2)),
            error: CommandError::CrossWorker,
        },
        Event::RemoteLearned {
            leg: leg(1),
            remote: from,
        },
        Event::SrcMismatch { leg: leg(1), from },
        Event::MediaTimeout { leg: leg(2) },
        Event::PlayDone { leg: leg(2) },
        Event::Stats { leg: leg(1), stats },
        Event::LegRemoved { leg: leg(2), stats },
        Event::Moved { leg: leg(1) },
    ];
    for ev in events {
        let bytes = enc_ev(&ev);
        let back = decode_event(&decode(&bytes).unwrap()).unwrap();
        assert_eq!(back, ev);
    }
}

#[test]
fn malformed_commands_are_errors_naming_the_field() {
    let prompts = Prompts::default();
    for (text, field) in [
        (&b"d2:op3:adde"[..], "leg"),
        (
            b"d2:op6:remote3:legi1e6:remote5:nowhe5:codec4:PCMUe",
            "remote",
        ),
        (b"d2:op5:types3:legi1e5:codec4:PCMU5:audioi200ee", "audio"),
        (
            b"d2:op4:srtp3:legi1e10:recv-suite1:x8:recv-key1:ke",
            "recv-suite",
        ),
        (b"d2:op4:nopee", "nope"),
        (b"d3:legi-1e2:op6:removee", "leg"),
    ] {
        let v = decode(text).unwrap();
        let e = decode_command(&v, &|n| prompts.get(n)).unwrap_err();
        assert!(
            e.to_string().contains(field),
            "{e} for {}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn allocated_pairs_are_read_back() {
    let mut e = Encoder::default();
    e.dict().kv("result", "ok").str("pairs").list();
    e.dict()
        .ki("a", leg_int(leg(1)))
        .ki("b", leg_int(leg(2)))
        .kv("address", "198.18.0.2")
        .end();
    e.end().end();
    let bytes = e.finish();
    let pairs = decode_pairs(&decode(&bytes).unwrap()).unwrap();
    assert_eq!(
        pairs,
        vec![Pair {
            a: leg(1),
            b: leg(2),
            address: "198.18.0.2".parse().unwrap()
        }]
    );
}
