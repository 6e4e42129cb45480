//! Property tests of the parser, `parse ∘ encode` round trips, driven by a seeded PRNG (the
//! same splitmix64 as `tests/mutation.rs`; no property-testing dependency, so no shrinking:
//! a failure prints its seed and case). Two properties:
//!
//! 1. Every generated valid request or response (random methods, URIs, display names, tags,
//!    parameters, extension headers, binary bodies) survives `encode` then `parse` unchanged,
//!    and encoding it again gives the same bytes.
//! 2. Whatever a mutated message parses to (the RFC 4475 messages, mutated as in
//!    `tests/mutation.rs`) parses again, unchanged, after `encode`: what we accept we can
//!    also write, and never differently.
//!
//! `SIP_ROUNDTRIP_CASES` (default 20 000 per property) and `SIP_ROUNDTRIP_SEED` tune them.

use sip::msg::{parse, Message};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }

    /// 1..=max characters from `alphabet`.
    fn word(&mut self, alphabet: &[u8], max: usize) -> String {
        (0..1 + self.below(max))
            .map(|_| alphabet[self.below(alphabet.len())] as char)
            .collect()
    }
}

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const TOKEN: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~";

fn cases() -> (u64, u64) {
    let n = std::env::var("SIP_ROUNDTRIP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed = std::env::var("SIP_ROUNDTRIP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3261);
    (n, seed)
}

fn host(r: &mut Rng) -> String {
    match r.below(3) {
        0 => format!(
            "{}.{}.{}.{}",
            r.below(256),
            r.below(256),
            r.below(256),
            r.below(256)
        ),
        1 => format!("{}.example.com", r.word(ALNUM, 12)),
        _ => format!("[2001:db8::{:x}]", r.below(0xffff)),
    }
}

fn uri(r: &mut Rng) -> String {
    let mut u = format!("{}:", r.pick(&["sip", "sips"]));
    if r.below(4) > 0 {
        u.push_str(&r.word(TOKEN, 16));
        u.push('@');
    }
    u.push_str(&host(r));
    if r.below(2) == 0 {
        u.push_str(&format!(":{}", 1 + r.below(65_535)));
    }
    for _ in 0..r.below(3) {
        u.push_str(&format!(";{}", r.word(ALNUM, 8)));
        if r.below(2) == 0 {
            u.push_str(&format!("={}", r.word(ALNUM, 8)));
        }
    }
    u
}

fn name_addr(r: &mut Rng, tag: bool) -> String {
    let mut v = match r.below(3) {
        0 => format!("<{}>", uri(r)),
        1 => format!("\"{} {}\" <{}>", r.word(ALNUM, 8), r.word(ALNUM, 8), uri(r)),
        _ => format!("{} <{}>", r.word(ALNUM, 10), uri(r)),
    };
    if tag {
        v.push_str(&format!(";tag={}", r.word(TOKEN, 12)));
    }
    v
}

/// A valid message's text (Content-Length last, computed).
fn generate(r: &mut Rng) -> Vec<u8> {
    let method = r.pick(&[
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE", "FOO-BAR",
    ]);
    let start = if r.below(3) == 0 {
        let status = 100 + r.below(600);
        let reason: Vec<String> = (0..r.below(4)).map(|_| r.word(ALNUM, 8)).collect();
        format!("SIP/2.0 {status} {}", reason.join(" "))
    } else {
        format!("{method} {} SIP/2.0", uri(r))
    };
    let to_tag = r.below(2) == 0;
    let mut h = vec![
        format!(
            "Via: SIP/2.0/{} {}:{};branch=z9hG4bK{}{}",
            r.pick(&["UDP", "TCP", "TLS"]),
            host(r),
            1 + r.below(65_535),
            r.word(ALNUM, 16),
            if r.below(2) == 0 { ";rport" } else { "" }
        ),
        format!("From: {}", name_addr(r, true)),
        format!("To: {}", name_addr(r, to_tag)),
        format!("Call-ID: {}@{}", r.word(TOKEN, 20), r.word(ALNUM, 10)),
        format!("CSeq: {} {method}", r.below(1 << 31)),
    ];
    if r.below(2) == 0 {
        h.push(format!("Max-Forwards: {}", r.below(256)));
    }
    if r.below(2) == 0 {
        h.push(format!("Contact: {}", name_addr(r, false)));
    }
    for _ in 0..r.below(5) {
        // visible ASCII and inner spaces; no leading or trailing white space (trimmed)
        let value: String = (0..r.below(40))
            .map(|_| (b' ' + r.below(95) as u8) as char)
            .collect();
        h.push(format!("X-{}: {}", r.word(TOKEN, 10), value.trim()));
    }
    // shuffle, keeping nothing in particular first
    for i in (1..h.len()).rev() {
        h.swap(i, r.below(i + 1));
    }
    let body: Vec<u8> = match r.below(3) {
        0 => Vec::new(),
        1 => b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n".to_vec(),
        _ => (0..r.below(300)).map(|_| r.next() as u8).collect(),
    };
    if !body.is_empty() {
        h.push(format!(
            "Content-Type: {}/{}",
            r.word(ALNUM, 8),
            r.word(ALNUM, 8)
        ));
    }
    let mut out = format!(
        "{start}\r\n{}\r\nContent-Length: {}\r\n\r\n",
        h.join("\r\n"),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

fn encode(m: &Message) -> Vec<u8> {
    match m {
        Message::Request(r) => r.encode(),
        Message::Response(r) => r.encode(),
    }
}

#[test]
fn generated_valid_messages_round_trip() {
    let (n, seed) = cases();
    let mut r = Rng(seed);
    for case in 0..n {
        let text = generate(&mut r);
        let show = || String::from_utf8_lossy(&text).into_owned();
        let m = parse(&text).unwrap_or_else(|e| {
            panic!(
                "seed {seed} case {case}: a valid message failed: {e}\n{}",
                show()
            )
        });
        let bytes = encode(&m);
        let again = parse(&bytes).unwrap_or_else(|e| {
            panic!(
                "seed {seed} case {case}: its encoding failed: {e}\n{}",
                show()
            )
        });
        assert_eq!(m, again, "seed {seed} case {case}\n{}", show());
        assert_eq!(bytes, encode(&again), "seed {seed} case {case}\n{}", show());
    }
}

#[test]
fn whatever_parses_after_mutation_round_trips() {
    let (n, seed) = cases();
    let dir = format!("{}/tests/rfc4475", env!("CARGO_MANIFEST_DIR"));
    let mut bases: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    bases.sort();
    let mut r = Rng(seed ^ 0x4475);
    let mut accepted = 0;
    for case in 0..n {
        let mut m = bases[r.below(bases.len())].clone();
        for _ in 0..1 + r.below(2) {
            if m.is_empty() {
                break;
            }
            let at = r.below(m.len());
            match r.below(4) {
                0 => m[at] ^= 1 << r.below(8),
                1 => m[at] = r.next() as u8,
                2 => m.insert(at, [b' ', b'\t', b';', b',', b'"', b'<'][r.below(6)]),
                _ => {
                    m.remove(at);
                }
            }
        }
        let Ok(first) = parse(&m) else { continue };
        accepted += 1;
        let bytes = encode(&first);
        let show = || String::from_utf8_lossy(&m).into_owned();
        let again = parse(&bytes).unwrap_or_else(|e| {
            panic!(
                "seed {seed} case {case}: accepted, but its encoding is refused: {e}\nin:\n{}\nout:\n{}",
                show(),
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(first, again, "seed {seed} case {case}\n{}", show());
    }
    println!("{accepted} of {n} mutated messages parsed and round-tripped");
    assert!(
        accepted > n / 20,
        "too few mutations parsed ({accepted}) to test anything"
    );
}
