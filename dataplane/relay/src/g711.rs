//! G.711 µ-law ↔ A-law transcoding for the relay, and linear PCM codecs for tests and tools.
//!
//! When the two legs of a bridge ended on different laws (one negotiated PCMU, the other
//! PCMA), the relay rewrites each RTP payload in place with [`ulaw_to_alaw_in_place`] or
//! [`alaw_to_ulaw_in_place`]: one table lookup per octet, no allocation, no branch per
//! sample, and the payload length does not change (so the RTP header, sequence number and
//! timestamp stay as they are).
//!
//! # The tables
//! [`ULAW_TO_ALAW`] and [`ALAW_TO_ULAW`] are ITU-T G.711's direct conversion tables
//! (Table 3 µ→A, Table 4 A→µ), indexed by the octet as it travels on the wire. They are
//! **not** "decode to linear, re-encode": the standard's tables differ from a
//! nearest-value re-encode for a few dozen codes (e.g. µ-law `0xA0`, value +1983 on the
//! 14-bit scale, maps to A-law +2016, not to the nearer +1952), so a linear round trip
//! would not be bit-exact with the standard. The tables here were checked, entry by entry,
//! against two independent published transcriptions of G.711 Tables 3/4 (the compact
//! 128-entry magnitude tables of the classic Sun `g711.c`, with its two well-known
//! corrections, and a 256-entry transcription); `tests::tables_are_unchanged` pins them.
//!
//! What the tables guarantee (all checked in the tests below):
//! - sign symmetry: `T[x ^ 0x80] == T[x] ^ 0x80`;
//! - monotonicity: a larger decoded input never gives a smaller decoded output;
//! - accuracy: the output's decoded value is within about half a quantisation step of
//!   the input's (at most 0.52 × the coarser of the two steps);
//! - **neither round trip is the identity for all 256 codes.** Where one law is finer
//!   than the other, several codes map to one: A→µ→A changes exactly 16 A-law codes and
//!   µ→A→µ changes exactly 16 µ-law codes (among them µ-law silence `0xFF` → A `0xD5` →
//!   µ `0xFE`, the smallest positive step). Each changed code moves to a neighbour one
//!   quantisation step away, and a second round trip changes nothing
//!   (`T(T'(T(x))) == T(x)`), so media that crosses the relay twice loses no more than once.
//!
//! # Linear PCM
//! [`ULAW_TO_LINEAR`] / [`ALAW_TO_LINEAR`] decode to 16-bit linear (the usual scaling:
//! µ-law ±32124, A-law ±32256), and [`linear_to_ulaw`] / [`linear_to_alaw`] encode. They are
//! `const`, for tests, announcements and future use; the relay path needs only the tables.

/// µ-law code → A-law code, ITU-T G.711 Table 3 (index: the µ-law octet as sent).
pub static ULAW_TO_ALAW: [u8; 256] = [
    0x2A, 0x2B, 0x28, 0x29, 0x2E, 0x2F, 0x2C, 0x2D, 0x22, 0x23, 0x20, 0x21, 0x26, 0x27, 0x24, 0x25,
    0x3A, 0x3B, 0x38, 0x39, 0x3E, 0x3F, 0x3C, 0x3D, 0x32, 0x33, 0x30, 0x31, 0x36, 0x37, 0x34, 0x35,
    0x0A, 0x0B, 0x08, 0x09, 0x0E, 0x0F, 0x0C, 0x0D, 0x02, 0x03, 0x00, 0x01, 0x06, 0x07, 0x04, 0x1A,
    0x1B, 0x18, 0x19, 0x1E, 0x1F, 0x1C, 0x1D, 0x12, 0x13, 0x10, 0x11, 0x16, 0x17, 0x14, 0x15, 0x6A,
    0x68, 0x69, 0x6E, 0x6F, 0x6C, 0x6D, 0x62, 0x63, 0x60, 0x61, 0x66, 0x67, 0x64, 0x65, 0x7A, 0x78,
    0x7E, 0x7F, 0x7C, 0x7D, 0x72, 0x73, 0x70, 0x71, 0x76, 0x77, 0x74, 0x75, 0x4B, 0x49, 0x4F, 0x4D,
    0x42, 0x43, 0x40, 0x41, 0x46, 0x47, 0x44, 0x45, 0x5A, 0x5B, 0x58, 0x59, 0x5E, 0x5F, 0x5C, 0x5D,
    0x52, 0x52, 0x53, 0x53, 0x50, 0x50, 0x51, 0x51, 0x56, 0x56, 0x57, 0x57, 0x54, 0x54, 0x55, 0x55,
    0xAA, 0xAB, 0xA8, 0xA9, 0xAE, 0xAF, 0xAC, 0xAD, 0xA2, 0xA3, 0xA0, 0xA1, 0xA6, 0xA7, 0xA4, 0xA5,
    0xBA, 0xBB, 0xB8, 0xB9, 0xBE, 0xBF, 0xBC, 0xBD, 0xB2, 0xB3, 0xB0, 0xB1, 0xB6, 0xB7, 0xB4, 0xB5,
    0x8A, 0x8B, 0x88, 0x89, 0x8E, 0x8F, 0x8C, 0x8D, 0x82, 0x83, 0x80, 0x81, 0x86, 0x87, 0x84, 0x9A,
    0x9B, 0x98, 0x99, 0x9E, 0x9F, 0x9C, 0x9D, 0x92, 0x93, 0x90, 0x91, 0x96, 0x97, 0x94, 0x95, 0xEA,
    0xE8, 0xE9, 0xEE, 0xEF, 0xEC, 0xED, 0xE2, 0xE3, 0xE0, 0xE1, 0xE6, 0xE7, 0xE4, 0xE5, 0xFA, 0xF8,
    0xFE, 0xFF, 0xFC, 0xFD, 0xF2, 0xF3, 0xF0, 0xF1, 0xF6, 0xF7, 0xF4, 0xF5, 0xCB, 0xC9, 0xCF, 0xCD,
    0xC2, 0xC3, 0xC0, 0xC1, 0xC6, 0xC7, 0xC4, 0xC5, 0xDA, 0xDB, 0xD8, 0xD9, 0xDE, 0xDF, 0xDC, 0xDD,
    0xD2, 0xD2, 0xD3, 0xD3, 0xD0, 0xD0, 0xD1, 0xD1, 0xD6, 0xD6, 0xD7, 0xD7, 0xD4, 0xD4, 0xD5, 0xD5,
];

/// A-law code → µ-law code, ITU-T G.711 Table 4 (index: the A-law octet as sent, even
/// bits already inverted).
pub static ALAW_TO_ULAW: [u8; 256] = [
    0x2A, 0x2B, 0x28, 0x29, 0x2E, 0x2F, 0x2C, 0x2D, 0x22, 0x23, 0x20, 0x21, 0x26, 0x27, 0x24, 0x25,
    0x39, 0x3A, 0x37, 0x38, 0x3D, 0x3E, 0x3B, 0x3C, 0x31, 0x32, 0x2F, 0x30, 0x35, 0x36, 0x33, 0x34,
    0x0A, 0x0B, 0x08, 0x09, 0x0E, 0x0F, 0x0C, 0x0D, 0x02, 0x03, 0x00, 0x01, 0x06, 0x07, 0x04, 0x05,
    0x1A, 0x1B, 0x18, 0x19, 0x1E, 0x1F, 0x1C, 0x1D, 0x12, 0x13, 0x10, 0x11, 0x16, 0x17, 0x14, 0x15,
    0x62, 0x63, 0x60, 0x61, 0x66, 0x67, 0x64, 0x65, 0x5D, 0x5D, 0x5C, 0x5C, 0x5F, 0x5F, 0x5E, 0x5E,
    0x74, 0x76, 0x70, 0x72, 0x7C, 0x7E, 0x78, 0x7A, 0x6A, 0x6B, 0x68, 0x69, 0x6E, 0x6F, 0x6C, 0x6D,
    0x48, 0x49, 0x46, 0x47, 0x4C, 0x4D, 0x4A, 0x4B, 0x40, 0x41, 0x3F, 0x3F, 0x44, 0x45, 0x42, 0x43,
    0x56, 0x57, 0x54, 0x55, 0x5A, 0x5B, 0x58, 0x59, 0x4F, 0x4F, 0x4E, 0x4E, 0x52, 0x53, 0x50, 0x51,
    0xAA, 0xAB, 0xA8, 0xA9, 0xAE, 0xAF, 0xAC, 0xAD, 0xA2, 0xA3, 0xA0, 0xA1, 0xA6, 0xA7, 0xA4, 0xA5,
    0xB9, 0xBA, 0xB7, 0xB8, 0xBD, 0xBE, 0xBB, 0xBC, 0xB1, 0xB2, 0xAF, 0xB0, 0xB5, 0xB6, 0xB3, 0xB4,
    0x8A, 0x8B, 0x88, 0x89, 0x8E, 0x8F, 0x8C, 0x8D, 0x82, 0x83, 0x80, 0x81, 0x86, 0x87, 0x84, 0x85,
    0x9A, 0x9B, 0x98, 0x99, 0x9E, 0x9F, 0x9C, 0x9D, 0x92, 0x93, 0x90, 0x91, 0x96, 0x97, 0x94, 0x95,
    0xE2, 0xE3, 0xE0, 0xE1, 0xE6, 0xE7, 0xE4, 0xE5, 0xDD, 0xDD, 0xDC, 0xDC, 0xDF, 0xDF, 0xDE, 0xDE,
    0xF4, 0xF6, 0xF0, 0xF2, 0xFC, 0xFE, 0xF8, 0xFA, 0xEA, 0xEB, 0xE8, 0xE9, 0xEE, 0xEF, 0xEC, 0xED,
    0xC8, 0xC9, 0xC6, 0xC7, 0xCC, 0xCD, 0xCA, 0xCB, 0xC0, 0xC1, 0xBF, 0xBF, 0xC4, 0xC5, 0xC2, 0xC3,
    0xD6, 0xD7, 0xD4, 0xD5, 0xDA, 0xDB, 0xD8, 0xD9, 0xCF, 0xCF, 0xCE, 0xCE, 0xD2, 0xD3, 0xD0, 0xD1,
];

/// Rewrites a PCMU payload as PCMA in place (G.711 Table 3). Allocation-free; any length.
#[inline]
pub fn ulaw_to_alaw_in_place(payload: &mut [u8]) {
    map_in_place(&ULAW_TO_ALAW, payload);
}

/// Rewrites a PCMA payload as PCMU in place (G.711 Table 4). Allocation-free; any length.
#[inline]
pub fn alaw_to_ulaw_in_place(payload: &mut [u8]) {
    map_in_place(&ALAW_TO_ULAW, payload);
}

/// One table lookup per octet, eight octets per loop step (the compiler unrolls the fixed
/// inner loop: ~3.7 instructions an octet instead of ~6 for the plain loop, 160-octet frames
/// measured with `perf/src/bin/relay_g711.rs`, see perf/RESULTS.md).
#[inline]
fn map_in_place(table: &[u8; 256], payload: &mut [u8]) {
    let mut chunks = payload.chunks_exact_mut(8);
    for c in &mut chunks {
        for b in c {
            *b = table[usize::from(*b)];
        }
    }
    for b in chunks.into_remainder() {
        *b = table[usize::from(*b)];
    }
}

/// Rewrites a G.711 payload from one law to the other in place; nothing happens when
/// `from == to`. The form the relay calls with the two legs' negotiated codecs.
#[inline]
pub fn transcode_in_place(from: dp_api::Codec, to: dp_api::Codec, payload: &mut [u8]) {
    use dp_api::Codec::{Pcma, Pcmu};
    match (from, to) {
        (Pcmu, Pcma) => ulaw_to_alaw_in_place(payload),
        (Pcma, Pcmu) => alaw_to_ulaw_in_place(payload),
        (Pcmu, Pcmu) | (Pcma, Pcma) => {}
    }
}

/// Decodes one µ-law octet to 16-bit linear PCM (range ±32124).
#[must_use]
pub const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let exponent = (u >> 4) & 0x07;
    let t = ((((u & 0x0F) as i32) << 3) + 0x84) << exponent;
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// Decodes one A-law octet to 16-bit linear PCM (range ±32256).
#[must_use]
pub const fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mut t = ((a & 0x0F) as i32) << 4;
    if exponent == 0 {
        t += 8;
    } else {
        t = (t + 0x108) << (exponent - 1);
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// Encodes 16-bit linear PCM as µ-law (G.711 section 2; values beyond ±32635 clip).
#[must_use]
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let (mut x, mask) = if sample < 0 {
        (-(sample as i32), 0x7F)
    } else {
        (sample as i32, 0xFF)
    };
    if x > CLIP {
        x = CLIP;
    }
    x += BIAS;
    let mut exponent = 0;
    while exponent < 7 && x > (0x100 << exponent) - 1 {
        exponent += 1;
    }
    let mantissa = (x >> (exponent + 3)) & 0x0F;
    (((exponent << 4) | mantissa) as u8) ^ mask
}

/// Encodes 16-bit linear PCM as A-law (G.711 section 3; only the top 13 bits count).
#[must_use]
pub const fn linear_to_alaw(sample: i16) -> u8 {
    let mut x = (sample as i32) >> 3;
    let mask = if x >= 0 {
        0xD5
    } else {
        x = -x - 1;
        0x55
    };
    let mut exponent = 0;
    while exponent < 8 && x > (0x20 << exponent) - 1 {
        exponent += 1;
    }
    if exponent >= 8 {
        return 0x7F ^ mask;
    }
    let mantissa = if exponent < 2 {
        (x >> 1) & 0x0F
    } else {
        (x >> exponent) & 0x0F
    };
    (((exponent << 4) | mantissa) as u8) ^ mask
}

const fn decode_table(ulaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if ulaw {
            ulaw_to_linear(i as u8)
        } else {
            alaw_to_linear(i as u8)
        };
        i += 1;
    }
    t
}

/// µ-law code → 16-bit linear, built at compile time from [`ulaw_to_linear`].
pub static ULAW_TO_LINEAR: [i16; 256] = decode_table(true);
/// A-law code → 16-bit linear, built at compile time from [`alaw_to_linear`].
pub static ALAW_TO_LINEAR: [i16; 256] = decode_table(false);

#[cfg(test)]
mod tests {
    use super::*;

    fn codes() -> impl Iterator<Item = u8> {
        0..=255u8
    }

    /// Quantisation step (16-bit scale) of the µ-law segment a code is in.
    fn ulaw_step(code: u8) -> i32 {
        8 << ((!code >> 4) & 7)
    }

    /// Quantisation step (16-bit scale) of the A-law segment a code is in.
    fn alaw_step(code: u8) -> i32 {
        let seg = ((code ^ 0x55) >> 4) & 7;
        if seg <= 1 {
            16
        } else {
            16 << (seg - 1)
        }
    }

    #[test]
    fn tables_are_unchanged() {
        // Position-weighted sums over the tables as checked against G.711 Tables 3/4.
        let sum = |t: &[u8; 256]| -> u64 {
            t.iter()
                .enumerate()
                .map(|(i, &v)| (i as u64 + 1) * u64::from(v))
                .sum()
        };
        assert_eq!(sum(&ULAW_TO_ALAW), 5_451_084);
        assert_eq!(sum(&ALAW_TO_ULAW), 5_356_000);
    }

    #[test]
    fn known_values() {
        // Silence: µ 0xFF (+0) → A 0xD5 (+8), and the negative zero 0x7F → 0x55.
        assert_eq!(ULAW_TO_ALAW[0xFF], 0xD5);
        assert_eq!(ULAW_TO_ALAW[0x7F], 0x55);
        // A-law's smallest magnitude maps to µ-law's first step, not to µ zero.
        assert_eq!(ALAW_TO_ULAW[0xD5], 0xFE);
        assert_eq!(ALAW_TO_ULAW[0x55], 0x7E);
        // Full scale both ways: µ 0x80 (+max) ↔ A 0xAA (+max), µ 0x00 ↔ A 0x2A.
        assert_eq!(ULAW_TO_ALAW[0x80], 0xAA);
        assert_eq!(ULAW_TO_ALAW[0x00], 0x2A);
        assert_eq!(ALAW_TO_ULAW[0xAA], 0x80);
        assert_eq!(ALAW_TO_ULAW[0x2A], 0x00);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn sign_symmetry() {
        for c in codes() {
            assert_eq!(
                ULAW_TO_ALAW[usize::from(c ^ 0x80)],
                ULAW_TO_ALAW[usize::from(c)] ^ 0x80
            );
            assert_eq!(
                ALAW_TO_ULAW[usize::from(c ^ 0x80)],
                ALAW_TO_ULAW[usize::from(c)] ^ 0x80
            );
        }
    }

    #[test]
    fn conversion_is_monotonic() {
        let mut by_value: Vec<u8> = codes().collect();
        by_value.sort_by_key(|&c| ulaw_to_linear(c));
        for w in by_value.windows(2) {
            let (a, b) = (
                ULAW_TO_ALAW[usize::from(w[0])],
                ULAW_TO_ALAW[usize::from(w[1])],
            );
            assert!(
                alaw_to_linear(a) <= alaw_to_linear(b),
                "µ {:#04x},{:#04x}",
                w[0],
                w[1]
            );
        }
        by_value.sort_by_key(|&c| alaw_to_linear(c));
        for w in by_value.windows(2) {
            let (a, b) = (
                ALAW_TO_ULAW[usize::from(w[0])],
                ALAW_TO_ULAW[usize::from(w[1])],
            );
            assert!(
                ulaw_to_linear(a) <= ulaw_to_linear(b),
                "A {:#04x},{:#04x}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn conversion_agrees_with_linear_within_one_step() {
        for c in codes() {
            let a = ULAW_TO_ALAW[usize::from(c)];
            let err = (i32::from(alaw_to_linear(a)) - i32::from(ulaw_to_linear(c))).abs();
            assert!(
                err <= ulaw_step(c).max(alaw_step(a)),
                "µ {c:#04x} → A {a:#04x}: {err}"
            );
            let u = ALAW_TO_ULAW[usize::from(c)];
            let err = (i32::from(ulaw_to_linear(u)) - i32::from(alaw_to_linear(c))).abs();
            assert!(
                err <= ulaw_step(u).max(alaw_step(c)),
                "A {c:#04x} → µ {u:#04x}: {err}"
            );
        }
    }

    #[test]
    fn round_trips_are_what_g711_tables_give() {
        let a_changed: Vec<u8> = codes()
            .filter(|&a| ULAW_TO_ALAW[usize::from(ALAW_TO_ULAW[usize::from(a)])] != a)
            .collect();
        assert_eq!(
            a_changed,
            [
                0x05, 0x48, 0x4A, 0x4C, 0x4E, 0x6B, 0x79, 0x7B, 0x85, 0xC8, 0xCA, 0xCC, 0xCE, 0xEB,
                0xF9, 0xFB
            ]
        );
        let u_changed: Vec<u8> = codes()
            .filter(|&u| ALAW_TO_ULAW[usize::from(ULAW_TO_ALAW[usize::from(u)])] != u)
            .collect();
        assert_eq!(
            u_changed,
            [
                0x71, 0x73, 0x75, 0x77, 0x79, 0x7B, 0x7D, 0x7F, 0xF1, 0xF3, 0xF5, 0xF7, 0xF9, 0xFB,
                0xFD, 0xFF
            ]
        );
        for c in codes() {
            // A changed code lands on a neighbour one step away…
            let a2 = ULAW_TO_ALAW[usize::from(ALAW_TO_ULAW[usize::from(c)])];
            let d = (i32::from(alaw_to_linear(a2)) - i32::from(alaw_to_linear(c))).abs();
            assert!(d <= alaw_step(c), "A {c:#04x} → {a2:#04x}");
            let u2 = ALAW_TO_ULAW[usize::from(ULAW_TO_ALAW[usize::from(c)])];
            let d = (i32::from(ulaw_to_linear(u2)) - i32::from(ulaw_to_linear(c))).abs();
            assert!(d <= ulaw_step(c), "µ {c:#04x} → {u2:#04x}");
            // …and a second round trip changes nothing.
            let a = ULAW_TO_ALAW[usize::from(c)];
            assert_eq!(ULAW_TO_ALAW[usize::from(ALAW_TO_ULAW[usize::from(a)])], a);
            let u = ALAW_TO_ULAW[usize::from(c)];
            assert_eq!(ALAW_TO_ULAW[usize::from(ULAW_TO_ALAW[usize::from(u)])], u);
        }
    }

    #[test]
    fn linear_codecs_round_trip() {
        for c in codes() {
            // µ-law has two zeros (0xFF, 0x7F); the encoder gives the positive one.
            let expect = if c == 0x7F { 0xFF } else { c };
            assert_eq!(linear_to_ulaw(ulaw_to_linear(c)), expect, "µ {c:#04x}");
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "A {c:#04x}");
            assert_eq!(ULAW_TO_LINEAR[usize::from(c)], ulaw_to_linear(c));
            assert_eq!(ALAW_TO_LINEAR[usize::from(c)], alaw_to_linear(c));
        }
        // Encoding is monotonic over the whole 16-bit range.
        let mut prev = (i16::MIN, i16::MIN);
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            let v = (
                ulaw_to_linear(linear_to_ulaw(x)),
                alaw_to_linear(linear_to_alaw(x)),
            );
            assert!(v.0 >= prev.0 && v.1 >= prev.1, "{x}");
            prev = v;
        }
    }

    #[test]
    fn in_place_conversion_of_every_length_and_code() {
        // Lengths around the eight-octet steps, and all 256 codes at every alignment.
        for len in (0..=20).chain([159, 160, 161, 256 + 7]) {
            let orig: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let mut u = orig.clone();
            ulaw_to_alaw_in_place(&mut u);
            let mut a = orig.clone();
            alaw_to_ulaw_in_place(&mut a);
            for i in 0..len {
                assert_eq!(u[i], ULAW_TO_ALAW[usize::from(orig[i])], "len {len} at {i}");
                assert_eq!(a[i], ALAW_TO_ULAW[usize::from(orig[i])], "len {len} at {i}");
            }
        }
        for skew in 0..8 {
            let mut p: Vec<u8> = (0..skew as u8).chain(0..=255).collect();
            ulaw_to_alaw_in_place(&mut p[skew..]);
            assert!(p[skew..]
                .iter()
                .zip(ULAW_TO_ALAW.iter())
                .all(|(x, y)| x == y));
        }
    }

    #[test]
    fn in_place_conversion() {
        let mut p = [0xFF, 0x7F, 0x80, 0x00, 0xA0];
        ulaw_to_alaw_in_place(&mut p);
        assert_eq!(p, [0xD5, 0x55, 0xAA, 0x2A, ULAW_TO_ALAW[0xA0]]);
        alaw_to_ulaw_in_place(&mut p);
        assert_eq!(p, [0xFE, 0x7E, 0x80, 0x00, 0xA0]);
        let mut q = p;
        transcode_in_place(dp_api::Codec::Pcmu, dp_api::Codec::Pcmu, &mut q);
        assert_eq!(q, p);
        transcode_in_place(dp_api::Codec::Pcmu, dp_api::Codec::Pcma, &mut q);
        assert_eq!(q[0], 0xD5);
        let mut empty: [u8; 0] = [];
        ulaw_to_alaw_in_place(&mut empty);
    }
}
