//! Seeded mutations of valid messages through the real UDP listener (issue 8): the RFC 4475
//! messages (`tests/rfc4475/`, valid and invalid alike) and our own valid INVITE, OPTIONS and
//! BYE are mutated — byte flips, random bytes, truncation, duplicated or deleted lines,
//! inserted CR / LF / NUL, huge header values — and sent from a few loopback sockets to one
//! `Endpoint`. Senders do not wait for answers; they only keep the number of datagrams the
//! endpoint has not yet read under a window (one, for datagrams over 2 KiB), so the kernel
//! does not drop them. Afterwards a
//! valid OPTIONS must still get 200 within [`WAIT`], every datagram must have been accounted
//! for by the endpoint's counters, every answer must be a well-formed status line, and no
//! thread may have panicked.
//!
//! `SIP_MUTATIONS` (default 100 000, the figure) sets the count and
//! `SIP_MUTATION_SEED` the seed; the rate is printed (`--nocapture`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sip::{Endpoint, EndpointConfig, Timers};
use tokio::net::UdpSocket;
use tokio::time::timeout;

/// How long the final OPTIONS may take.
const WAIT: Duration = Duration::from_secs(5);
/// Datagrams sent but not yet read by the endpoint, at most (small ones; large ones go alone).
const WINDOW: u64 = 64;
/// Sender sockets.
const SENDERS: usize = 4;
/// Upper bound on the whole run.
const BUDGET: Duration = Duration::from_secs(120);

static PANICKED: AtomicBool = AtomicBool::new(false);

/// splitmix64: small, deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn corpus(target: SocketAddr) -> Vec<Vec<u8>> {
    let dir = format!("{}/tests/rfc4475", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    files.sort();
    let mut out: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert_eq!(out.len(), 49, "{dir}");
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    for (method, body, ct) in [
        ("INVITE", sdp, "Content-Type: application/sdp\r\n"),
        ("OPTIONS", "", ""),
        ("BYE", "", ""),
    ] {
        let to_tag = if method == "BYE" { ";tag=b" } else { "" };
        out.push(
            format!(
                "{method} sip:+15551234567@{target} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKmut{method};rport\r\n\
Max-Forwards: 70\r\nTo: <sip:+15551234567@{target}>{to_tag}\r\n\
From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag=a\r\nCall-ID: mutation-{method}\r\n\
CSeq: 1 {method}\r\nContact: <sip:alice@127.0.0.1:5070>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        );
    }
    out
}

/// Line boundaries (start offsets of each line after the first).
fn line_starts(m: &[u8]) -> Vec<usize> {
    m.iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
        .filter(|&i| i < m.len())
        .collect()
}

/// Applies one to three mutations.
fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut m = base.to_vec();
    for _ in 0..1 + rng.below(3) {
        if m.is_empty() {
            m.push(b'\r');
        }
        let at = rng.below(m.len());
        match rng.below(9) {
            0 => m[at] ^= 1 << rng.below(8),
            1 => m[at] = rng.next() as u8,
            2 => m.truncate(at),
            3 => m.insert(at, [b'\r', b'\n', 0][rng.below(3)]),
            4 => {
                let lines = line_starts(&m);
                if let Some(&s) = lines.get(rng.below(lines.len().max(1))) {
                    let e = m[s..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(m.len(), |p| s + p + 1);
                    let line = m[s..e].to_vec();
                    m.splice(s..s, line);
                }
            }
            5 => {
                let lines = line_starts(&m);
                if let Some(&s) = lines.get(rng.below(lines.len().max(1))) {
                    let e = m[s..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(m.len(), |p| s + p + 1);
                    m.drain(s..e);
                }
            }
            6 => {
                // a huge header value, sometimes over the 8 KiB header / 16 KiB message limits
                let len = [100, 1_000, 9_000, 20_000][rng.below(4)];
                let lines = line_starts(&m);
                let s = lines
                    .get(rng.below(lines.len().max(1)))
                    .copied()
                    .unwrap_or(0);
                let mut h = b"X-Huge: ".to_vec();
                h.extend(std::iter::repeat_n(b'A' + rng.below(26) as u8, len));
                h.extend_from_slice(b"\r\n");
                m.splice(s..s, h);
            }
            7 => {
                // a long run of one byte inside a value
                let b = [b' ', b'<', b'"', b';', b',', b'%', 0xFF][rng.below(7)];
                m.splice(at..at, std::iter::repeat_n(b, 1 + rng.below(200)));
            }
            _ => {
                let end = (at + 1 + rng.below(16)).min(m.len());
                m.drain(at..end);
            }
        }
    }
    m
}

/// Every datagram the endpoint has read, whatever became of it.
fn accounted(ep: &Endpoint) -> u64 {
    let (bad, dropped) = ep.malformed_counts();
    ep.received_count()
        + bad
        + dropped
        + ep.dropped_responses().0
        + ep.oversized_count()
        + ep.rate_limited_count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_messages_never_stop_the_endpoint() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        prev(info);
    }));
    let total: u64 = std::env::var("SIP_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = std::env::var("SIP_MUTATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x4475);

    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    // Short timers, so the transactions the surviving requests open end within a second
    // instead of accumulating for 32 s each.
    cfg.timers = Timers {
        t1: Duration::from_millis(10),
        t2: Duration::from_millis(40),
        t4: Duration::from_millis(50),
    };
    let (ep, mut calls) = Endpoint::bind(cfg).await.unwrap();
    let target = ep.local_addr();
    // Calls that survive mutation meet a policy, as in the bin.
    let rejecter = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(c) = calls.recv().await {
            c.reject(403);
            n += 1;
        }
        n
    });

    let bases = corpus(target);
    let mut socks = Vec::new();
    let statuses: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    for _ in 0..SENDERS {
        let s = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let (r, st) = (s.clone(), statuses.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, _)) = r.recv_from(&mut buf).await {
                let d = &buf[..n];
                let key = match (d.get(..8), d.get(8..11), d.get(11)) {
                    (Some(b"SIP/2.0 "), Some(c), Some(b' '))
                        if c.iter().all(u8::is_ascii_digit) && (b'1'..=b'6').contains(&c[0]) =>
                    {
                        String::from_utf8_lossy(c).into_owned()
                    }
                    _ => format!("BAD {:?}", String::from_utf8_lossy(&d[..n.min(40)])),
                };
                *st.lock().unwrap().entry(key).or_default() += 1;
            }
        });
        socks.push(s);
    }

    let mut rng = Rng(seed);
    let started = Instant::now();
    let base_seen = accounted(&ep);
    let mut sent = 0u64;
    let mut send_errors = 0u64;
    while sent < total {
        assert!(
            started.elapsed() < BUDGET,
            "over budget after {sent} of {total} (seed {seed})"
        );
        let base = &bases[rng.below(bases.len())];
        let m = mutate(&mut rng, base);
        // Large datagrams go alone, so the endpoint's socket buffer never overflows.
        let window = if m.len() > 2048 { 1 } else { WINDOW };
        while sent - (accounted(&ep) - base_seen) >= window {
            tokio::task::yield_now().await;
            if started.elapsed() > BUDGET {
                panic!("the endpoint stopped reading after {sent} datagrams (seed {seed})");
            }
        }
        let sock = &socks[rng.below(SENDERS)];
        if sock.send_to(&m, target).await.is_err() {
            send_errors += 1; // e.g. an empty datagram or one too large for UDP
            sent += 1;
            continue;
        }
        sent += 1;
    }
    let expected = sent - send_errors;
    let deadline = Instant::now() + WAIT;
    while accounted(&ep) - base_seen < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let seen = accounted(&ep) - base_seen;

    // A valid OPTIONS still gets 200.
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = probe.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKafter;rport\r\n\
Max-Forwards: 70\r\nTo: <sip:{target}>\r\nFrom: <sip:probe@{me}>;tag=p\r\nCall-ID: after-mutation\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let asked = Instant::now();
    probe.send_to(options.as_bytes(), target).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let answer = loop {
        let (n, _) = timeout(WAIT, probe.recv_from(&mut buf))
            .await
            .expect("OPTIONS answered after the mutations")
            .unwrap();
        let t = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !t.starts_with("SIP/2.0 1") {
            break t;
        }
    };
    let options_ms = asked.elapsed().as_millis();

    let (bad, dropped) = ep.malformed_counts();
    let statuses = statuses.lock().unwrap().clone();
    println!(
        "seed {seed}: {sent} mutations in {:.1} s ({:.0}/s), {seen} read by the endpoint \
({} send errors); parsed {}, 400/505 {bad}, dropped {dropped}, invalid responses {}, \
oversized {}; answers by status {statuses:?}; OPTIONS answered in {options_ms} ms",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        send_errors,
        ep.received_count(),
        ep.dropped_responses().0,
        ep.oversized_count(),
    );
    assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");
    assert_eq!(seen, expected, "datagrams lost (seed {seed})");
    assert!(
        statuses.keys().all(|k| !k.starts_with("BAD")),
        "malformed answers: {statuses:?}"
    );
    assert!(
        !PANICKED.load(Ordering::SeqCst),
        "a thread panicked (seed {seed})"
    );
    ep.shutdown();
    drop(ep);
    let _ = timeout(WAIT, rejecter).await;
}
