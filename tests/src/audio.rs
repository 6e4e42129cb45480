//! Audio checks on what a softphone recorded: WAV files (16-bit PCM) in and out, G.711 A-law
//! decoding, the RTP payloads of a pcap capture (what SIPp plays), loudness per window, and
//! finding the capture's frames, sample for sample, in a recording.
//!
//! G.711 decoding is exact (a table), so a frame that crossed the network unchanged and was
//! decoded by the far end appears in its recording bit for bit: [`find_frames`] looks for
//! exactly that, which proves more than "the recording is not silent".

use std::collections::HashMap;
use std::path::Path;

/// A 16-bit PCM WAV file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Samples per second.
    pub rate: u32,
    /// Channels (samples are interleaved).
    pub channels: u16,
    /// The samples.
    pub samples: Vec<i16>,
    /// True when the RIFF and data sizes in the header match the file (the writer closed it).
    pub finalized: bool,
}

/// Reads a 16-bit PCM WAV file. A file whose header sizes were never updated (the writer has
/// not closed it yet) is read up to its end and reported with `finalized: false`.
///
/// # Errors
/// Unreadable, not RIFF/WAVE, no `fmt ` or `data` chunk, or not 16-bit PCM.
pub fn read_wav(path: &Path) -> Result<Wav, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_wav(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_wav(b: &[u8]) -> Result<Wav, String> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let riff_ok = le32(b, 4) as usize == b.len() - 8;
    let mut at = 12;
    let mut fmt = None;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let size = le32(b, at + 4) as usize;
        let body = at + 8;
        if id == b"fmt " {
            if body + 16 > b.len() {
                return Err("short fmt chunk".into());
            }
            let (format, channels, rate, bits) = (
                le16(b, body),
                le16(b, body + 2),
                le32(b, body + 4),
                le16(b, body + 14),
            );
            if format != 1 || bits != 16 {
                return Err(format!("format {format}, {bits} bits: not 16-bit PCM"));
            }
            fmt = Some((channels, rate));
        } else if id == b"data" {
            let (channels, rate) = fmt.ok_or("data before fmt")?;
            let end = body.saturating_add(size).min(b.len());
            let finalized = riff_ok && body + size == b.len();
            let samples = b[body..end]
                .chunks_exact(2)
                .map(|s| i16::from_le_bytes([s[0], s[1]]))
                .collect();
            return Ok(Wav {
                rate,
                channels,
                samples,
                finalized,
            });
        }
        at = body + size + (size & 1);
    }
    Err("no data chunk".into())
}

/// Writes `samples` as a mono 16-bit PCM WAV file at `rate` Hz.
///
/// # Errors
/// The file cannot be written.
pub fn write_wav(path: &Path, rate: u32, samples: &[i16]) -> Result<(), String> {
    let data_len = u32::try_from(samples.len() * 2).map_err(|_| "too long for WAV")?;
    let mut b = Vec::with_capacity(44 + samples.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes()); // block align
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).map_err(|e| format!("{}: {e}", path.display()))
}

/// `secs` seconds of a sine at `freq` Hz and peak `amplitude`, sampled at `rate` Hz.
#[must_use]
pub fn tone(rate: u32, freq: f64, amplitude: f64, secs: u32) -> Vec<i16> {
    (0..rate * secs)
        .map(|i| {
            let t = f64::from(i) / f64::from(rate);
            // |amplitude| ≤ i16::MAX is the caller's business; `as` saturates anyway.
            (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

/// Decodes one G.711 A-law byte (ITU-T G.711, the same table every decoder uses).
#[must_use]
pub const fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t = ((a & 0x0f) as i16) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t
    } else {
        -t
    }
}

/// One RTP packet of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedRtp {
    /// Payload type.
    pub payload_type: u8,
    /// The payload (after the header, CSRCs and extension).
    pub payload: Vec<u8>,
}

/// The RTP packets (UDP over IPv4 over Ethernet) of a classic pcap file, in capture order.
///
/// # Errors
/// Unreadable, not a pcap file, or not Ethernet.
pub fn pcap_rtp(path: &Path) -> Result<Vec<CapturedRtp>, String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if b.len() < 24 {
        return Err(format!("{}: too short for pcap", path.display()));
    }
    let big = match le32(&b, 0) {
        0xa1b2_c3d4 | 0xa1b2_3c4d => false,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => true,
        m => return Err(format!("{}: pcap magic {m:#x}", path.display())),
    };
    let u32_at = |at: usize| {
        let v = le32(&b, at);
        if big {
            v.swap_bytes()
        } else {
            v
        }
    };
    if u32_at(20) != 1 {
        return Err(format!(
            "{}: link type {} is not Ethernet",
            path.display(),
            u32_at(20)
        ));
    }
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let len = u32_at(at + 8) as usize;
        let start = at + 16;
        let Some(frame) = b.get(start..start + len) else {
            break;
        };
        at = start + len;
        if let Some(rtp) = rtp_of_frame(frame) {
            out.push(rtp);
        }
    }
    Ok(out)
}

/// The RTP packet in an Ethernet/IPv4/UDP frame, if there is one.
fn rtp_of_frame(f: &[u8]) -> Option<CapturedRtp> {
    // Ethernet II, IPv4, UDP.
    if f.len() < 14 + 20 || f[12..14] != [0x08, 0x00] || f[14] >> 4 != 4 || f[14 + 9] != 17 {
        return None;
    }
    let udp = 14 + usize::from(f[14] & 0x0f) * 4;
    let rtp = f.get(udp + 8..)?;
    if rtp.len() < 12 || rtp[0] >> 6 != 2 {
        return None;
    }
    let mut payload = 12 + usize::from(rtp[0] & 0x0f) * 4;
    if rtp[0] & 0x10 != 0 {
        let ext = rtp.get(payload + 2..payload + 4)?;
        payload += 4 + usize::from(u16::from_be_bytes([ext[0], ext[1]])) * 4;
    }
    let mut body = rtp.get(payload..)?.to_vec();
    if rtp[0] & 0x20 != 0 {
        let pad = usize::from(*body.last()?);
        body.truncate(body.len().checked_sub(pad)?);
    }
    Some(CapturedRtp {
        payload_type: rtp[1] & 0x7f,
        payload: body,
    })
}

/// Root mean square of each full window of `window` samples.
#[must_use]
pub fn rms_windows(samples: &[i16], window: usize) -> Vec<f64> {
    samples
        .chunks_exact(window)
        .map(|w| {
            let sum: f64 = w.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
            (sum / window as f64).sqrt()
        })
        .collect()
}

/// Where each of `frames` occurs, sample for sample, in `recording` (`None`: nowhere). When a
/// frame occurs more than once, the first occurrence after the previous frame's is taken.
#[must_use]
pub fn find_frames(recording: &[i16], frames: &[Vec<i16>]) -> Vec<Option<usize>> {
    const KEY: usize = 8;
    let mut index: HashMap<&[i16], Vec<usize>> = HashMap::new();
    for (i, w) in recording.windows(KEY).enumerate() {
        index.entry(w).or_default().push(i);
    }
    let mut after = 0;
    frames
        .iter()
        .map(|f| {
            let key = f.get(..KEY)?;
            let at = index.get(key)?.iter().copied().find(|&i| {
                i >= after
                    && recording
                        .get(i..i + f.len())
                        .is_some_and(|r| r == f.as_slice())
            })?;
            after = at + f.len();
            Some(at)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alaw_decodes_like_g711() {
        // G.711 A-law: 0xd5/0x55 are the smallest magnitudes, 0xaa/0x2a the largest.
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
        assert_eq!(alaw_to_linear(0xc5), 264); // segment 1
    }

    #[test]
    fn wav_round_trip_and_unfinished_files() {
        let dir = std::env::temp_dir().join(format!("cb-audio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.wav");
        let s = tone(8000, 1000.0, 8000.0, 1);
        write_wav(&p, 8000, &s).unwrap();
        let w = read_wav(&p).unwrap();
        assert_eq!((w.rate, w.channels, w.finalized), (8000, 1, true));
        assert_eq!(w.samples, s);
        let rms = rms_windows(&w.samples, 800);
        assert_eq!(rms.len(), 10);
        assert!(
            rms.iter().all(|&r| (r - 8000.0 / 2f64.sqrt()).abs() < 60.0),
            "{rms:?}"
        );

        // A writer that never closed the file: sizes 0 in the header.
        let mut b = std::fs::read(&p).unwrap();
        b[4..8].copy_from_slice(&0u32.to_le_bytes());
        b[40..44].copy_from_slice(&0u32.to_le_bytes());
        let w = parse_wav(&b).unwrap();
        assert!(!w.finalized);
        assert!(w.samples.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
        assert!(parse_wav(b"RIFX").is_err());
    }

    #[test]
    fn finds_frames_in_order() {
        let rec: Vec<i16> = (0..2000)
            .map(|i| ((i * 7919) % 4001 - 2000) as i16)
            .collect();
        let a = rec[100..340].to_vec();
        let b = rec[340..580].to_vec();
        let missing = vec![1i16; 240];
        assert_eq!(
            find_frames(&rec, &[a.clone(), missing, b]),
            vec![Some(100), None, Some(340)]
        );
        // A frame that occurs only before the previous one is not found again.
        assert_eq!(
            find_frames(&rec, &[rec[500..740].to_vec(), a]),
            vec![Some(500), None]
        );
    }

    #[test]
    fn reads_rtp_from_an_ethernet_frame() {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12] = 0x08;
        f[14] = 0x45;
        f[14 + 9] = 17;
        f.extend_from_slice(&[0x80, 8, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7]);
        f.extend_from_slice(&[0xd5; 160]);
        let r = rtp_of_frame(&f).unwrap();
        assert_eq!((r.payload_type, r.payload.len()), (8, 160));
        f[14 + 9] = 6; // TCP
        assert!(rtp_of_frame(&f).is_none());
    }
}
