//! Announcement clips: G.711 µ-law / A-law coding, WAV loading and the built-in prompt.
//!
//! Everything here runs on the control plane when a clip is loaded (allocation is fine);
//! the data plane only copies the pre-encoded 160-byte frames out of [`Clip::samples`].

use std::time::Duration;

use crate::{Clip, Codec};

/// µ-law silence (+0).
pub const ULAW_SILENCE: u8 = 0xFF;
/// A-law silence (+0, i.e. `0x00 ^ 0x55 ^ 0x80`).
pub const ALAW_SILENCE: u8 = 0xD5;

/// Why a clip could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClipError {
    /// The bytes do not start with a RIFF/WAVE header.
    #[error("{name}: not a WAV file (no RIFF/WAVE header)")]
    NotWav {
        /// The clip's name.
        name: String,
    },
    /// A chunk (or the RIFF header) claims more bytes than the file holds, or is too short.
    #[error("{name}: truncated {chunk:?} chunk: needs {needed} bytes, {available} present")]
    Truncated {
        /// The clip's name.
        name: String,
        /// The chunk id (`"RIFF"`, `"fmt "`, `"data"`, …).
        chunk: String,
        /// Bytes the chunk needs.
        needed: usize,
        /// Bytes actually present.
        available: usize,
    },
    /// A required chunk is missing.
    #[error("{name}: no {chunk:?} chunk")]
    MissingChunk {
        /// The clip's name.
        name: String,
        /// The chunk id.
        chunk: &'static str,
    },
    /// The sample rate is not 8000 Hz.
    #[error("{name}: sample rate is {rate} Hz, only 8000 Hz is supported")]
    SampleRate {
        /// The clip's name.
        name: String,
        /// The file's rate.
        rate: u32,
    },
    /// The file is not mono.
    #[error("{name}: {channels} channels, only mono (1) is supported")]
    Channels {
        /// The clip's name.
        name: String,
        /// The file's channel count.
        channels: u16,
    },
    /// The sample format is not PCM16, A-law or µ-law.
    #[error(
        "{name}: format tag {tag} with {bits} bits per sample is not supported; \
         use 16-bit PCM (1), 8-bit A-law (6) or 8-bit µ-law (7)"
    )]
    Format {
        /// The clip's name.
        name: String,
        /// The WAV format tag (after resolving WAVE_FORMAT_EXTENSIBLE).
        tag: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// The data chunk holds no samples.
    #[error("{name}: the data chunk holds no samples")]
    Empty {
        /// The clip's name.
        name: String,
    },
}

/// Encodes a linear 16-bit sample as G.711 µ-law (ITU-T G.711 §2, the classic
/// bias-0x84 segment search).
#[must_use]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(CLIP) + BIAS;
    // Segment = position of the highest set bit above bit 7 (pcm is at least 0x84).
    let seg = (31 - pcm.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (pcm >> (seg + 3)) & 0x0f;
    !(sign | (seg << 4) as u8 | mantissa as u8)
}

/// Decodes a G.711 µ-law byte to a linear 16-bit sample.
#[must_use]
pub fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let mut t = (i32::from(u & 0x0f) << 3) + 0x84;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// Encodes a linear 16-bit sample as G.711 A-law (even bits inverted, `^ 0x55`).
#[must_use]
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3; // 13-bit
    let mask = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    // Segment ends of the 13-bit magnitude: 0x1F, 0x3F, …, 0xFFF.
    let seg = (0..8)
        .find(|&s| pcm <= (0x1f << s) | ((1 << s) - 1))
        .unwrap_or(8);
    if seg >= 8 {
        return 0x7f ^ mask;
    }
    let mut aval = (seg << 4) as u8;
    aval |= if seg < 2 {
        (pcm >> 1) & 0x0f
    } else {
        (pcm >> seg) & 0x0f
    } as u8;
    aval ^ mask
}

/// Decodes a G.711 A-law byte to a linear 16-bit sample.
#[must_use]
pub fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = i32::from(a & 0x0f) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// Pads a clip's two encodings to whole frames with the right silence.
fn pad_frames(v: &mut Vec<u8>, silence: u8) {
    let rem = v.len() % Clip::FRAME;
    if rem != 0 {
        v.resize(v.len() + Clip::FRAME - rem, silence);
    }
}

fn read_u16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn read_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

#[derive(Clone, Copy)]
enum WavFormat {
    Pcm16,
    Alaw,
    Ulaw,
}

impl Clip {
    /// Builds a clip from linear 16-bit 8 kHz mono samples, encoding both laws and padding
    /// to whole 160-sample frames with silence. An empty input gives an empty clip, which
    /// plays as "done" at once.
    #[must_use]
    pub fn from_linear(name: impl Into<String>, samples: &[i16]) -> Self {
        let mut pcmu: Vec<u8> = samples.iter().map(|&s| linear_to_ulaw(s)).collect();
        let mut pcma: Vec<u8> = samples.iter().map(|&s| linear_to_alaw(s)).collect();
        pad_frames(&mut pcmu, ULAW_SILENCE);
        pad_frames(&mut pcma, ALAW_SILENCE);
        Self {
            name: name.into(),
            pcmu,
            pcma,
        }
    }

    /// Loads an 8 kHz mono WAV file holding 16-bit PCM (format 1), A-law (format 6) or
    /// µ-law (format 7); `WAVE_FORMAT_EXTENSIBLE` with one of those sub-formats is accepted.
    /// G.711 input is kept bit-exact for its own law and transcoded through linear for the
    /// other one.
    ///
    /// # Errors
    /// A [`ClipError`] naming what is wrong: not RIFF/WAVE, a truncated or missing chunk,
    /// the sample rate, the channel count, the format, or no samples.
    pub fn from_wav(bytes: &[u8], name: impl Into<String>) -> Result<Self, ClipError> {
        let name = name.into();
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            if bytes.len() >= 4 && &bytes[0..4] == b"RIFF" && bytes.len() < 12 {
                return Err(ClipError::Truncated {
                    name,
                    chunk: "RIFF".into(),
                    needed: 12,
                    available: bytes.len(),
                });
            }
            return Err(ClipError::NotWav { name });
        }
        let mut fmt: Option<(WavFormat, u16)> = None;
        let mut data: Option<&[u8]> = None;
        let mut o = 12;
        while o < bytes.len() {
            let id = &bytes[o..(o + 4).min(bytes.len())];
            let id_str = String::from_utf8_lossy(id).into_owned();
            if bytes.len() < o + 8 {
                return Err(ClipError::Truncated {
                    name,
                    chunk: id_str,
                    needed: 8,
                    available: bytes.len() - o,
                });
            }
            let size = read_u32(bytes, o + 4) as usize;
            let body_start = o + 8;
            let available = bytes.len() - body_start;
            if size > available {
                return Err(ClipError::Truncated {
                    name,
                    chunk: id_str,
                    needed: size,
                    available,
                });
            }
            let body = &bytes[body_start..body_start + size];
            match id {
                b"fmt " => fmt = Some(Self::parse_fmt(&name, body)?),
                b"data" => data = Some(body),
                _ => {}
            }
            // Chunks are padded to an even length.
            o = body_start + size + (size & 1);
        }
        let Some((format, block_align)) = fmt else {
            return Err(ClipError::MissingChunk {
                name,
                chunk: "fmt ",
            });
        };
        let Some(data) = data else {
            return Err(ClipError::MissingChunk {
                name,
                chunk: "data",
            });
        };
        let usable = data.len() - data.len() % usize::from(block_align.max(1));
        let data = &data[..usable];
        if data.is_empty() {
            return Err(ClipError::Empty { name });
        }
        Ok(match format {
            WavFormat::Pcm16 => {
                let lin: Vec<i16> = data
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect();
                Self::from_linear(name, &lin)
            }
            WavFormat::Ulaw => {
                let mut pcmu = data.to_vec();
                let mut pcma: Vec<u8> = data
                    .iter()
                    .map(|&u| linear_to_alaw(ulaw_to_linear(u)))
                    .collect();
                pad_frames(&mut pcmu, ULAW_SILENCE);
                pad_frames(&mut pcma, ALAW_SILENCE);
                Self { name, pcmu, pcma }
            }
            WavFormat::Alaw => {
                let mut pcma = data.to_vec();
                let mut pcmu: Vec<u8> = data
                    .iter()
                    .map(|&a| linear_to_ulaw(alaw_to_linear(a)))
                    .collect();
                pad_frames(&mut pcmu, ULAW_SILENCE);
                pad_frames(&mut pcma, ALAW_SILENCE);
                Self { name, pcmu, pcma }
            }
        })
    }

    fn parse_fmt(name: &str, body: &[u8]) -> Result<(WavFormat, u16), ClipError> {
        if body.len() < 16 {
            return Err(ClipError::Truncated {
                name: name.into(),
                chunk: "fmt ".into(),
                needed: 16,
                available: body.len(),
            });
        }
        let mut tag = read_u16(body, 0);
        let channels = read_u16(body, 2);
        let rate = read_u32(body, 4);
        let block_align = read_u16(body, 12);
        let bits = read_u16(body, 14);
        if tag == 0xFFFE {
            // WAVE_FORMAT_EXTENSIBLE: cbSize(2) validBits(2) channelMask(4) SubFormat GUID,
            // whose first two bytes are the format tag.
            if body.len() < 40 {
                return Err(ClipError::Truncated {
                    name: name.into(),
                    chunk: "fmt ".into(),
                    needed: 40,
                    available: body.len(),
                });
            }
            tag = read_u16(body, 24);
        }
        if rate != 8000 {
            return Err(ClipError::SampleRate {
                name: name.into(),
                rate,
            });
        }
        if channels != 1 {
            return Err(ClipError::Channels {
                name: name.into(),
                channels,
            });
        }
        let format = match (tag, bits) {
            (1, 16) => WavFormat::Pcm16,
            (6, 8) => WavFormat::Alaw,
            (7, 8) => WavFormat::Ulaw,
            _ => {
                return Err(ClipError::Format {
                    name: name.into(),
                    tag,
                    bits,
                })
            }
        };
        Ok((format, block_align))
    }

    /// The built-in announcement: a voice saying "Thank you. Please hold while we connect you
    /// to an agent.", then 1.2 s of silence so that it loops calmly; about 6 s at 8 kHz. The
    /// WAV (G.711 µ-law) is `prompts/hold-en.wav`, made from that text by
    /// `prompts/make-prompts.sh` (espeak-ng and sox), embedded in the binary; regenerate or
    /// localise it there. A business's own `announcement` WAV replaces it.
    #[must_use]
    pub fn builtin_prompt() -> Self {
        static WAV: &[u8] = include_bytes!("../../../prompts/hold-en.wav");
        match Self::from_wav(WAV, "built-in: prompts/hold-en.wav") {
            Ok(c) => c,
            // The shipped file decodes (a unit test checks it); a broken build of it falls
            // back to one second of silence rather than no announcement at all.
            Err(_) => Self::from_linear("built-in: silence", &[0i16; 8000]),
        }
    }

    /// The number of 20 ms frames.
    #[must_use]
    pub fn frames(&self) -> usize {
        self.pcmu.len() / Self::FRAME
    }

    /// How long the clip plays.
    #[must_use]
    pub fn duration(&self) -> Duration {
        Duration::from_millis(20 * self.frames() as u64)
    }

    /// The silence byte of a codec.
    #[must_use]
    pub const fn silence(codec: Codec) -> u8 {
        match codec {
            Codec::Pcmu => ULAW_SILENCE,
            Codec::Pcma => ALAW_SILENCE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        // Segment boundaries from the G.711 µ-law table.
        // Segment 0 ends at 120 and segment 1 starts at 132 (16-bit scale).
        assert_eq!(ulaw_to_linear(0xF0), 120);
        assert_eq!(ulaw_to_linear(0xEF), 132);
        assert_eq!(linear_to_ulaw(120), 0xF0);
        assert_eq!(linear_to_ulaw(132), 0xEF);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn codes_survive_decode_encode() {
        for c in 0..=255u8 {
            if c != 0x7F {
                // 0x7F is µ-law "-0", which decodes to 0 and re-encodes as +0 (0xFF).
                assert_eq!(linear_to_ulaw(ulaw_to_linear(c)), c, "µ-law {c:#04x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "A-law {c:#04x}");
        }
    }

    #[test]
    fn round_trip_within_quantisation_error() {
        for x in i16::MIN..=i16::MAX {
            let bound = 16 + i32::from(x).abs() / 16;
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(x)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(x)));
            assert!((u - i32::from(x)).abs() <= bound, "µ-law {x} → {u}");
            assert!((a - i32::from(x)).abs() <= bound, "A-law {x} → {a}");
        }
    }

    #[test]
    fn encoders_are_monotonic() {
        let mut last_u = i32::MIN;
        let mut last_a = i32::MIN;
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(x)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(x)));
            assert!(u >= last_u && a >= last_a);
            last_u = u;
            last_a = a;
        }
    }

    fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let block = channels * bits / 8;
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(4 + 8 + 16 + 8 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVE");
        v.extend_from_slice(b"fmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        v.extend_from_slice(&block.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        // An unknown chunk with odd size (padded) that must be skipped.
        v.extend_from_slice(b"LIST");
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&[1, 2, 3, 0]);
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn wav_pcm16_is_encoded_and_padded() {
        let lin: Vec<i16> = (0..200).map(|i| (i * 100) as i16).collect();
        let data: Vec<u8> = lin.iter().flat_map(|s| s.to_le_bytes()).collect();
        let clip = Clip::from_wav(&wav(1, 1, 8000, 16, &data), "t").unwrap();
        assert_eq!(clip.pcmu.len(), 320);
        assert_eq!(clip.pcma.len(), 320);
        assert_eq!(clip.frames(), 2);
        assert_eq!(clip.duration(), Duration::from_millis(40));
        assert_eq!(clip.pcmu[5], linear_to_ulaw(500));
        assert_eq!(clip.pcma[5], linear_to_alaw(500));
        assert!(clip.pcmu[200..].iter().all(|&b| b == 0xFF));
        assert!(clip.pcma[200..].iter().all(|&b| b == 0xD5));
        assert_eq!(clip, Clip::from_linear("t", &lin));
    }

    #[test]
    fn wav_g711_keeps_own_law_bit_exact() {
        let data: Vec<u8> = (0..160u32).map(|i| i as u8).collect();
        let u = Clip::from_wav(&wav(7, 1, 8000, 8, &data), "u").unwrap();
        assert_eq!(u.pcmu, data);
        assert_eq!(u.pcma[3], linear_to_alaw(ulaw_to_linear(3)));
        let a = Clip::from_wav(&wav(6, 1, 8000, 8, &data), "a").unwrap();
        assert_eq!(a.pcma, data);
        assert_eq!(a.pcmu[3], linear_to_ulaw(alaw_to_linear(3)));
    }

    #[test]
    fn wav_errors_name_the_problem() {
        let d = [0u8; 32];
        let e = Clip::from_wav(&wav(1, 1, 16000, 16, &d), "x").unwrap_err();
        assert_eq!(
            e,
            ClipError::SampleRate {
                name: "x".into(),
                rate: 16000
            }
        );
        assert!(e.to_string().contains("16000 Hz"), "{e}");
        let e = Clip::from_wav(&wav(1, 2, 8000, 16, &d), "x").unwrap_err();
        assert_eq!(
            e,
            ClipError::Channels {
                name: "x".into(),
                channels: 2
            }
        );
        let e = Clip::from_wav(&wav(3, 1, 8000, 32, &d), "x").unwrap_err();
        assert_eq!(
            e,
            ClipError::Format {
                name: "x".into(),
                tag: 3,
                bits: 32
            }
        );
        let e = Clip::from_wav(&wav(1, 1, 8000, 8, &d), "x").unwrap_err();
        assert!(matches!(
            e,
            ClipError::Format {
                tag: 1,
                bits: 8,
                ..
            }
        ));
        let mut w = wav(1, 1, 8000, 16, &d);
        w.truncate(w.len() - 5);
        let e = Clip::from_wav(&w, "x").unwrap_err();
        assert_eq!(
            e,
            ClipError::Truncated {
                name: "x".into(),
                chunk: "data".into(),
                needed: 32,
                available: 27
            }
        );
        assert!(e.to_string().contains("truncated \"data\" chunk"), "{e}");
        assert_eq!(
            Clip::from_wav(b"OggS....", "x").unwrap_err(),
            ClipError::NotWav { name: "x".into() }
        );
        let e = Clip::from_wav(&wav(1, 1, 8000, 16, &[]), "x").unwrap_err();
        assert_eq!(e, ClipError::Empty { name: "x".into() });
        // No data chunk at all.
        let w = wav(1, 1, 8000, 16, &d);
        let cut = w.len() - d.len() - 8;
        let e = Clip::from_wav(&w[..cut], "x").unwrap_err();
        assert_eq!(
            e,
            ClipError::MissingChunk {
                name: "x".into(),
                chunk: "data"
            }
        );
        // fmt chunk too short.
        let mut w = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        w.extend_from_slice(&4u32.to_le_bytes());
        w.extend_from_slice(&[1, 0, 1, 0]);
        assert!(matches!(
            Clip::from_wav(&w, "x").unwrap_err(),
            ClipError::Truncated { needed: 16, .. }
        ));
    }

    #[test]
    fn builtin_prompt_is_the_shipped_spoken_prompt() {
        let c = Clip::builtin_prompt();
        assert!(c.name.contains("hold-en.wav"), "{}", c.name);
        // About 6 s: speech, then the silence that spaces the repeats.
        assert!((250..=400).contains(&c.frames()), "{} frames", c.frames());
        assert_eq!(c.pcmu.len() % Clip::FRAME, 0);
        assert_eq!(c.pcmu.len(), c.pcma.len());
        let energy = |f: usize| -> i64 {
            c.pcmu[f * 160..(f + 1) * 160]
                .iter()
                .map(|&b| i64::from(ulaw_to_linear(b)).abs())
                .sum()
        };
        let loud = (0..c.frames()).filter(|&f| energy(f) > 160 * 1000).count();
        assert!(loud > 60, "speech is audible in {loud} frames");
        let last = c.frames() - 1;
        assert!(
            (last - 40..=last).all(|f| energy(f) < 160 * 50),
            "ends in silence, so looping is smooth"
        );
        // Deterministic.
        assert_eq!(c, Clip::builtin_prompt());
        assert_eq!(Clip::silence(Codec::Pcmu), 0xFF);
        assert_eq!(Clip::silence(Codec::Pcma), 0xD5);
    }
}
