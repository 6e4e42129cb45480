//! A real softphone as the agent (issue 8): baresip 1.0 (`baresip-core`, headless,
//! auto-answer) registers as `alice7` with digest over TLS, the agent `alice` is `contact =
//! "registered"` with `srtp = "required"`, and a call request to an E.164 customer (SIPp behind
//! the trunk, playing the G.711 A-law capture) is bridged to it.
//!
//! ```text
//!  test ─HTTP─► callbridge ─UDP─► SIPp customer (trunk; plays g711a.pcap, BYE after 8 s)
//!                  ▲  └─TLS (the REGISTER's connection)─► baresip: INVITE RTP/SAVP + a=crypto
//!                  └── REGISTER over TLS, 401 (MD5) → 200
//!  media: customer ─RTP─► relay ─SRTP (AES_CM_128_HMAC_SHA1_80)─► baresip ─► dump-…-dec.wav
//! ```
//!
//! What it proves: the registration is accepted over TLS only after the digest challenge;
//! the INVITE reaches the device on its registration's TLS connection and offers SDES SRTP,
//! which baresip (`mediaenc=srtp-mand`) accepts; the call is `bridged`, then `completed` when
//! the customer hangs up; the relay transcrypts (every packet towards the agent is 10 bytes —
//! the HMAC-SHA1-80 tag — longer than the customer's, every packet from it 10 bytes longer than
//! what the customer gets, and no SRTP packet failed authentication but, at most, baresip's
//! closing RTCP, which it sends in the clear); and what baresip
//! decrypted and decoded is the customer's audio: loud for seconds, and the capture's voiced
//! frames are found in its recording sample for sample, in order.
//!
//! baresip's configuration and why it looks as it does: `src/baresip.rs`. Two limits of
//! baresip 1.0 shape the test: it answers only MD5 challenges (and fails on a 401 that also
//! offers SHA-256), so the registrar offers MD5 only; and it does not verify the server's
//! certificate (the test's CA is loaded, but a wrong certificate would pass too).

use std::time::Duration;

use callbridge_tests::audio::{alaw_to_linear, pcap_rtp, rms_windows, Wav};
use callbridge_tests::baresip::{strip_ansi, Account, Baresip};
use callbridge_tests::certs::TestPki;
use callbridge_tests::record::{self, media, passes_through};
use callbridge_tests::scenario::{rings_then_hangs_up, CUSTOMER};
use callbridge_tests::sipp::G711A_PCAP;
use callbridge_tests::{
    Agent, Api, Callbridge, Config, PortBlock, Scenario, Sipp, Workdir, STARTUP_DEADLINE,
};

/// The softphone's credentials (`sip_password` needs at least 8 characters).
const USER: &str = "alice7";
const PASSWORD: &str = "hunter2-long";
/// The SRTP_AES128_CM_HMAC_SHA1_80 authentication tag on every SRTP packet (RFC 3711).
const SRTP_TAG_LEN: f64 = 10.0;
/// One analysis window: 100 ms at 8 kHz.
const WINDOW: usize = 800;
/// RMS of a window that counts as "someone is talking" (the capture's speech is ~1000-4000;
/// silence decodes to 8).
const LOUD_RMS: f64 = 300.0;

#[test]
fn baresip_registers_over_tls_and_takes_a_bridged_srtp_call() {
    let dir = Workdir::new("baresip_agent");
    let pki = TestPki::generate(&dir);
    // The customer answers at once and hangs up 8 s after the ACK: the whole capture (~7 s).
    let customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::AnswerBye,
        &rings_then_hangs_up(0, 8000),
    );

    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let tls = PortBlock::reserve(1).addr(0);
    let mut config = Config::new(&ports, customer.sip_addr()).agent(
        Agent::new("alice", "registered").with_toml(&format!(
            "sip_username = \"{USER}\"\nsip_password = \"{PASSWORD}\"\nsrtp = \"required\""
        )),
    );
    config.sip_extra_listen.push(format!("tls:{tls}"));
    config.extra.push_str(&pki.sip_tls_toml());
    // MD5 only: baresip 1.0 (libre 1.1) fails on a 401 that carries any other challenge.
    config.extra.push_str(
        "[sip.registrar]\nrealm = \"callbridge.test\"\nsecret = \"0123456789abcdef0123\"\n\
         algorithms = [\"MD5\"]\nallow_register_from = [\"127.0.0.1/32\"]\n",
    );
    let mut cb = Callbridge::start(&dir, &config);

    let mut phone = Baresip::spawn(
        &dir,
        "baresip",
        &Account {
            user: USER.into(),
            password: PASSWORD.into(),
            registrar: tls,
            ca: pki.ca.clone(),
            mediaenc: "srtp-mand".into(),
            // The customer's trunk answered PCMA; the relay does not transcode (see the
            // report of issue 8), so the phone is kept to PCMA both ways.
            audio_codecs: "pcma".into(),
        },
    );
    wait_registered(&mut cb, &mut phone);

    let id = cb.call(CUSTOMER);
    cb.wait_bridged(Api::CallRequests, &id);
    expect_loopback_only(&phone);
    let done = cb.wait_done(Api::CallRequests, &id);
    let mut customer = customer;
    customer.assert_passed(Duration::from_secs(30));

    if record::status(&done) != "completed"
        || !passes_through(
            &done,
            &["calling_customer", "calling_agent", "bridged", "completed"],
        )
    {
        cb.fail(&format!("expected a completed, bridged call: {done:#}"));
    }
    expect_srtp_signalling(&cb, &phone);
    expect_transcrypted(&cb, &done);

    let heard = phone.wait_recording_closed("dec", Duration::from_secs(30));
    expect_customer_audio(&phone, &heard);
}

/// Waits until callbridge's registrar answered a REGISTER from a TLS connection with 200 (its
/// debug log; the harness runs callbridge with `CALLBRIDGE_LOG=debug`), and checks it
/// challenged first.
fn wait_registered(cb: &mut Callbridge, phone: &mut Baresip) {
    let start = std::time::Instant::now();
    loop {
        let log = strip_ansi(&cb.log());
        let answers: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("REGISTER answered") && l.contains("src=tls:"))
            .collect();
        if answers.iter().any(|l| l.contains("status=200")) {
            assert!(
                answers.first().is_some_and(|l| l.contains("status=401")),
                "the first REGISTER is challenged: {answers:#?}"
            );
            return;
        }
        if let Some(s) = phone.try_wait() {
            phone.fail(&format!("exited with {s} before registering"));
        }
        if let Some(s) = cb.try_wait() {
            cb.fail(&format!("exited with {s} while baresip registered"));
        }
        if start.elapsed() > STARTUP_DEADLINE {
            phone.fail(&format!(
                "callbridge never answered a REGISTER over TLS with 200 within \
                 {STARTUP_DEADLINE:?} (CALLBRIDGE_LOG must include debug); its answers: {answers:#?}"
            ));
        }
        std::thread::sleep(callbridge_tests::POLL_INTERVAL);
    }
}

/// Every socket baresip has is on loopback, but for what baresip 1.0 cannot keep there: the
/// call's RTP/RTCP pair, bound to every interface inside its `rtp_ports` (`stream.c`: "we
/// listen on all interfaces"), and the wildcard, unconnected UDP sockets of libre's DNS client
/// (it sends only to `dns_server`, 127.0.0.1:53, and nothing here is resolved). Every
/// connected socket's peer is on loopback.
fn expect_loopback_only(phone: &Baresip) {
    let sockets = phone.sockets();
    let on_lo = |a: &str| a.starts_with("127.0.0.1:");
    let port = |a: &str| a.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
    let wildcard =
        |a: &str| a.starts_with("0.0.0.0:") || a.starts_with("*:") || a.starts_with("[::]:");
    let unconnected = |p: &str| p.ends_with(":*");
    let (mut media, mut resolver) = (0, 0);
    for (netid, local, peer) in &sockets {
        if on_lo(local) && (unconnected(peer) || on_lo(peer)) {
            continue;
        }
        if netid == "udp" && wildcard(local) && unconnected(peer) {
            if port(local).is_some_and(|p| phone.rtp_ports().contains(&p)) {
                media += 1;
            } else {
                resolver += 1;
            }
            continue;
        }
        phone.fail(&format!(
            "socket {netid} {local} → {peer} is not on loopback: {sockets:#?}"
        ));
    }
    eprintln!(
        "baresip's sockets: {} on 127.0.0.1, {media} media and {resolver} resolver sockets on the wildcard address",
        sockets.len() - media - resolver
    );
    if media > 2 || resolver > 2 {
        phone.fail(&format!(
            "more wildcard sockets than one RTP/RTCP pair and the resolver's two: {sockets:#?}"
        ));
    }
    if !sockets
        .iter()
        .any(|(n, l, p)| n == "tcp" && on_lo(l) && on_lo(p))
    {
        phone.fail(&format!("no TLS connection to the registrar: {sockets:#?}"));
    }
}

/// The INVITE came over the registration's TLS connection and offered SDES SRTP; baresip
/// answered RTP/SAVP and switched SRTP on; callbridge took the answer as SRTP for the agent.
fn expect_srtp_signalling(cb: &Callbridge, phone: &Baresip) {
    let log = phone.log();
    let Some(invite) = log
        .split("\n#\n")
        .find(|m| m.contains("\nINVITE sip:") || m.starts_with("INVITE sip:"))
    else {
        phone.fail("no INVITE in baresip's SIP trace");
    };
    for needle in [
        "TLS 127.0.0.1:",
        "m=audio ",
        " RTP/SAVP ",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:",
    ] {
        if !invite.contains(needle) {
            phone.fail(&format!("the INVITE lacks {needle:?}:\n{invite}"));
        }
    }
    for needle in [
        "SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)",
        "audio rx pipeline:",
    ] {
        if !log.contains(needle) {
            phone.fail(&format!("baresip never logged {needle:?}"));
        }
    }
    let cb_log = strip_ansi(&cb.log());
    if !cb_log
        .lines()
        .any(|l| l.contains("SRTP negotiated") && l.contains("role=\"agent\""))
    {
        cb.fail("callbridge never logged `SRTP negotiated` for the agent leg");
    }
}

/// The relay's counters: RTP both ways, nothing failed SRTP, and the sizes show the
/// transcryption — each packet to or from the agent carries the 10-byte tag that the
/// customer's plain RTP does not.
fn expect_transcrypted(cb: &Callbridge, done: &serde_json::Value) {
    let per_packet = |party: &str, dir: &str| {
        let n = media(done, party, &format!("{dir}_packets"));
        let bytes = media(done, party, &format!("{dir}_bytes"));
        if n == 0 {
            cb.fail(&format!(
                "media.{party}.{dir}_packets == 0: {}\n{done:#}",
                record::media_summary(done)
            ));
        }
        bytes as f64 / n as f64
    };
    let to_agent = per_packet("agent", "tx") - per_packet("customer", "rx");
    let from_agent = per_packet("agent", "rx") - per_packet("customer", "tx");
    eprintln!(
        "average growth of a packet: customer→agent {to_agent:.2} bytes, agent→customer {from_agent:.2} bytes"
    );
    for (what, growth) in [("customer→agent", to_agent), ("agent→customer", from_agent)] {
        if (growth - SRTP_TAG_LEN).abs() > 1.0 {
            cb.fail(&format!(
                "{what}: the agent's side of the relay is {growth:.2} bytes per packet longer, \
                 not the {SRTP_TAG_LEN} of an SRTP tag\n{done:#}"
            ));
        }
    }
    for party in ["customer", "agent"] {
        for drop in ["srtp_auth", "srtp_replay", "srtp_no_room", "srtp_failed"] {
            let n = done["media"][party]["drops"][drop].as_u64();
            // baresip 1.0 sends its closing RTCP (BYE + SDES) in the clear: its SRTP is gone
            // by then. When that packet beats the leg's removal after the customer's BYE, the
            // relay rightly refuses it as unauthenticated: one `srtp_auth`, RTCP, at the end.
            // Any RTP that failed would also be missing from the recording.
            let allowed = u64::from(party == "agent" && drop == "srtp_auth");
            if n.is_none_or(|n| n > allowed) {
                cb.fail(&format!(
                    "media.{party}.drops.{drop} is {n:?}, not at most {allowed}\n{done:#}"
                ));
            }
        }
    }
}

/// What baresip heard is the customer: at least 1 s of loud 100 ms windows, and at least two
/// thirds of the capture's voiced frames found in the recording bit for bit, in order.
fn expect_customer_audio(phone: &Baresip, heard: &Wav) {
    if (heard.rate, heard.channels) != (8000, 1) {
        phone.fail(&format!(
            "recording is {} Hz × {}, expected 8000 Hz mono",
            heard.rate, heard.channels
        ));
    }
    let rms = rms_windows(&heard.samples, WINDOW);
    let loud = rms.iter().filter(|&&r| r > LOUD_RMS).count();
    eprintln!(
        "recording: {:.2} s, {loud} of {} windows of 100 ms louder than RMS {LOUD_RMS}",
        heard.samples.len() as f64 / 8000.0,
        rms.len()
    );
    if loud < 10 {
        phone.fail(&format!(
            "only {loud} windows of 100 ms with RMS > {LOUD_RMS} (need 10, i.e. 1 s): {rms:.0?}"
        ));
    }

    let capture = pcap_rtp(std::path::Path::new(G711A_PCAP)).unwrap_or_else(|e| panic!("{e}"));
    // Voiced frames only: silence (all 0xd5) occurs everywhere and proves nothing.
    let voiced: Vec<Vec<i16>> = capture
        .iter()
        .filter(|p| p.payload_type == 8)
        .map(|p| {
            p.payload
                .iter()
                .map(|&b| alaw_to_linear(b))
                .collect::<Vec<i16>>()
        })
        .filter(|f| f.iter().any(|s| s.unsigned_abs() > 200))
        .collect();
    let found = callbridge_tests::audio::find_frames(&heard.samples, &voiced);
    let hits = found.iter().flatten().count();
    eprintln!(
        "{hits} of the capture's {} voiced frames found bit for bit in the recording",
        voiced.len()
    );
    if voiced.len() < 50 || hits * 3 < voiced.len() * 2 {
        phone.fail(&format!(
            "{hits} of {} voiced frames of {G711A_PCAP} found in the recording (need two thirds)",
            voiced.len()
        ));
    }
}
