//! The SDES `a=crypto` attribute (RFC 4568): pure parsing and formatting, no I/O, so the SIP
//! side can use it directly.
//!
//! Grammar (RFC 4568 §9.1), of the attribute's value (what follows `a=crypto:`):
//! ```text
//! tag 1*WSP crypto-suite 1*WSP key-params *(1*WSP session-param)
//! tag        = 1*9DIGIT
//! key-params = key-param *(";" key-param)
//! key-param  = "inline:" key-salt ["|" lifetime] ["|" mki]
//! key-salt   = base64 of the master key then the master salt
//! lifetime   = ["2^"] 1*DIGIT                  ; packets
//! mki        = mki-value ":" mki-length         ; mki-length 1..=128 (bytes)
//! ```
//! Supported: one `inline` key for the suites of [`Suite`], with an optional lifetime and
//! MKI. Refused with [`Error::Unsupported`]: several keys and session parameters (e.g.
//! `KDR=`, `UNENCRYPTED_SRTP`, `FEC_ORDER=`), which an answerer must understand or decline
//! (RFC 4568 §6.3: the attribute is then not acceptable; try the next one). Note that
//! [`crate::Session`] does not use MKIs: an attribute carrying one is parsed (so it can be
//! answered or declined), but its packets would carry an MKI the session does not expect.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::{Error, MasterKey, Suite};

/// A master key identifier (RFC 3711 §3.1), as SDES gives it: its value and its length in
/// bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mki {
    /// The MKI's value.
    pub value: u64,
    /// Its length in each packet, 1..=128 bytes.
    pub length: u8,
}

/// One `a=crypto` attribute: a tag, a suite and one inline key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttr {
    /// The tag that identifies this attribute in an offer (the answer repeats it), 0..=999999999.
    pub tag: u32,
    /// The crypto-suite.
    pub suite: Suite,
    /// The master key and salt.
    pub key: MasterKey,
    /// The master key's lifetime in packets (RFC 4568 §6.1), if given.
    pub lifetime: Option<u64>,
    /// The master key identifier, if given.
    pub mki: Option<Mki>,
}

impl CryptoAttr {
    /// An attribute with a fresh random key, no lifetime and no MKI.
    ///
    /// # Errors
    /// [`Error::Random`] when the OS RNG fails.
    pub fn generate(tag: u32, suite: Suite) -> Result<Self, Error> {
        Ok(Self {
            tag,
            suite,
            key: MasterKey::generate()?,
            lifetime: None,
            mki: None,
        })
    }

    /// Our answer to an offered attribute (RFC 4568 §5.1.2): the same tag and suite, a fresh
    /// random key of ours, no lifetime and no MKI. The offer's key is what the offerer sends
    /// with; the answer's is what we send with.
    ///
    /// # Errors
    /// [`Error::Random`] when the OS RNG fails.
    pub fn answer(offer: &Self) -> Result<Self, Error> {
        Self::generate(offer.tag, offer.suite)
    }

    /// Parses the value of an `a=crypto` attribute (without `a=crypto:`; a leading
    /// `a=crypto:` is tolerated, as is trailing whitespace).
    ///
    /// # Errors
    /// [`Error::BadAttribute`] for text that does not follow the grammar,
    /// [`Error::UnknownSuite`], [`Error::BadKey`] (not base64, or not 30 bytes), and
    /// [`Error::Unsupported`] for several keys or session parameters.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let s = s.strip_prefix("a=crypto:").unwrap_or(s).trim_end();
        let mut fields = s.split([' ', '\t']).filter(|f| !f.is_empty());
        let tag = fields.next().ok_or(Error::BadAttribute("empty"))?;
        let suite = fields
            .next()
            .ok_or(Error::BadAttribute("no crypto-suite"))?;
        let key_params = fields.next().ok_or(Error::BadAttribute("no key-params"))?;
        if fields.next().is_some() {
            return Err(Error::Unsupported("session parameters"));
        }
        if s.starts_with([' ', '\t']) {
            return Err(Error::BadAttribute("space before the tag"));
        }
        let tag = parse_tag(tag)?;
        let suite = Suite::from_sdes_name(suite).ok_or(Error::UnknownSuite)?;
        if key_params.contains(';') {
            return Err(Error::Unsupported("several keys"));
        }
        let info = key_params
            .strip_prefix("inline:")
            .ok_or(Error::BadAttribute("key method is not inline"))?;
        let mut parts = info.split('|');
        let key_salt = parts.next().unwrap_or_default();
        let key = STANDARD.decode(key_salt).map_err(|_| Error::BadKey)?;
        let key = MasterKey::from_slice(&key)?;
        let (mut lifetime, mut mki) = (None, None);
        for part in parts {
            // The lifetime comes before the MKI; an MKI has a colon, a lifetime never does.
            if let Some((value, length)) = part.split_once(':') {
                if mki.is_some() {
                    return Err(Error::BadAttribute("more than one MKI"));
                }
                mki = Some(parse_mki(value, length)?);
            } else if lifetime.is_none() && mki.is_none() {
                lifetime = Some(parse_lifetime(part)?);
            } else {
                return Err(Error::BadAttribute("lifetime after MKI or twice"));
            }
        }
        Ok(Self {
            tag,
            suite,
            key,
            lifetime,
            mki,
        })
    }
}

fn digits(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_tag(s: &str) -> Result<u32, Error> {
    if !digits(s, 9) {
        return Err(Error::BadAttribute("tag is not 1 to 9 digits"));
    }
    s.parse().map_err(|_| Error::BadAttribute("tag"))
}

fn parse_lifetime(s: &str) -> Result<u64, Error> {
    const BAD: Error = Error::BadAttribute("lifetime is not 2^N or a number");
    if let Some(exp) = s.strip_prefix("2^") {
        if !digits(exp, 2) {
            return Err(BAD);
        }
        let exp: u32 = exp.parse().map_err(|_| BAD)?;
        // RFC 3711 limits SRTP to 2^48 packets per key (2^31 for SRTCP).
        if exp > 48 {
            return Err(Error::BadAttribute("lifetime above 2^48"));
        }
        return Ok(1u64 << exp);
    }
    if !digits(s, 15) {
        return Err(BAD);
    }
    let n: u64 = s.parse().map_err(|_| BAD)?;
    if n == 0 || n > 1 << 48 {
        return Err(Error::BadAttribute("lifetime outside 1..=2^48"));
    }
    Ok(n)
}

fn parse_mki(value: &str, length: &str) -> Result<Mki, Error> {
    if !digits(value, 20) || !digits(length, 3) {
        return Err(Error::BadAttribute("MKI is not value:length"));
    }
    let value: u64 = value
        .parse()
        .map_err(|_| Error::BadAttribute("MKI value"))?;
    let length: u8 = match length.parse() {
        Ok(n @ 1..=128) => n,
        _ => return Err(Error::BadAttribute("MKI length outside 1..=128")),
    };
    if length < 8 && value >> (u32::from(length) * 8) != 0 {
        return Err(Error::BadAttribute("MKI value does not fit its length"));
    }
    Ok(Mki { value, length })
}

/// Formats the attribute's value (what follows `a=crypto:`), e.g.
/// `1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4`.
/// A lifetime that is a power of two is written as `2^N`.
impl fmt::Display for CryptoAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut b64 = [0u8; 40];
        let n = STANDARD
            .encode_slice(self.key.as_bytes(), &mut b64)
            .map_err(|_| fmt::Error)?;
        let key = std::str::from_utf8(&b64[..n]).map_err(|_| fmt::Error)?;
        write!(f, "{} {} inline:{key}", self.tag, self.suite)?;
        match self.lifetime {
            Some(l) if l.is_power_of_two() => write!(f, "|2^{}", l.trailing_zeros())?,
            Some(l) => write!(f, "|{l}")?,
            None => {}
        }
        if let Some(m) = self.mki {
            write!(f, "|{}:{}", m.value, m.length)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4568 §4 / §5.1 / §10 examples (the attributes' values).
    const RFC_80: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4";
    const RFC_32: &str =
        "1 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32";

    #[test]
    fn parses_and_formats_the_rfc_examples() {
        let a = CryptoAttr::parse(RFC_80).unwrap();
        assert_eq!(a.tag, 1);
        assert_eq!(a.suite, Suite::AesCm128HmacSha1_80);
        assert_eq!(a.lifetime, Some(1 << 20));
        assert_eq!(
            a.mki,
            Some(Mki {
                value: 1,
                length: 4
            })
        );
        assert_eq!(&a.key.key()[..4], b"=-n@");
        assert_eq!(a.key.salt().len(), 14);
        assert_eq!(a.to_string(), RFC_80);

        let b = CryptoAttr::parse(&format!("a=crypto:{RFC_32}\r\n")).unwrap();
        assert_eq!(b.suite, Suite::AesCm128HmacSha1_32);
        assert_eq!(
            b.mki,
            Some(Mki {
                value: 1,
                length: 32
            })
        );
        assert_eq!(b.to_string(), RFC_32);

        let plain = "7 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        let c = CryptoAttr::parse(plain).unwrap();
        assert_eq!((c.tag, c.lifetime, c.mki), (7, None, None));
        assert_eq!(c.to_string(), plain);
        // A decimal lifetime, an MKI without lifetime.
        let d = CryptoAttr::parse(
            "2 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1000|255:1",
        )
        .unwrap();
        assert_eq!(
            (d.lifetime, d.mki),
            (
                Some(1000),
                Some(Mki {
                    value: 255,
                    length: 1
                })
            )
        );
        assert!(d.to_string().ends_with("|1000|255:1"));
        let e = CryptoAttr::parse(
            "3\tAES_CM_128_HMAC_SHA1_80  inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|3:2",
        )
        .unwrap();
        assert_eq!(
            (e.lifetime, e.mki),
            (
                None,
                Some(Mki {
                    value: 3,
                    length: 2
                })
            )
        );
    }

    #[test]
    fn an_answer_keeps_tag_and_suite_with_a_key_of_its_own() {
        let offer = CryptoAttr::parse(RFC_32).unwrap();
        let answer = CryptoAttr::answer(&offer).unwrap();
        assert_eq!((answer.tag, answer.suite), (1, Suite::AesCm128HmacSha1_32));
        assert_eq!((answer.lifetime, answer.mki), (None, None));
        assert_ne!(answer.key, offer.key);
    }

    #[test]
    fn generated_attributes_round_trip() {
        for suite in Suite::ALL {
            let a = CryptoAttr::generate(42, suite).unwrap();
            let text = a.to_string();
            assert!(
                text.starts_with(&format!("42 {} inline:", suite.sdes_name())),
                "{text}"
            );
            assert_eq!(CryptoAttr::parse(&text).unwrap(), a);
        }
        assert_ne!(
            CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80)
                .unwrap()
                .key,
            CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80)
                .unwrap()
                .key
        );
        assert_eq!(format!("{:?}", MasterKey::new([7; 30])), "MasterKey(..)");
    }

    #[test]
    fn rejects_what_it_cannot_use_with_a_clear_error() {
        let key = "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        let cases: &[(String, Error)] = &[
            (
                format!("1 AES_256_CM_HMAC_SHA1_80 {key}"),
                Error::UnknownSuite,
            ),
            (format!("1 F8_128_HMAC_SHA1_80 {key}"), Error::UnknownSuite),
            (
                format!("1 aes_cm_128_hmac_sha1_80 {key}"),
                Error::UnknownSuite,
            ),
            // 29 and 31 bytes, and not base64.
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtx".into(),
                Error::BadKey,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBRQUE="
                    .into(),
                Error::BadKey,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVB!".into(),
                Error::BadKey,
            ),
            (
                format!("1234567890 AES_CM_128_HMAC_SHA1_80 {key}"),
                Error::BadAttribute("tag is not 1 to 9 digits"),
            ),
            (
                format!("x AES_CM_128_HMAC_SHA1_80 {key}"),
                Error::BadAttribute("tag is not 1 to 9 digits"),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80".into(),
                Error::BadAttribute("no key-params"),
            ),
            ("".into(), Error::BadAttribute("empty")),
            (
                "1 AES_CM_128_HMAC_SHA1_80 uri:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR".into(),
                Error::BadAttribute("key method is not inline"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key} FEC_ORDER=FEC_SRTP"),
                Error::Unsupported("session parameters"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key} KDR=1"),
                Error::Unsupported("session parameters"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|2^20|1:4;{key}|2^20|2:4"),
                Error::Unsupported("several keys"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|2^49"),
                Error::BadAttribute("lifetime above 2^48"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|2^x"),
                Error::BadAttribute("lifetime is not 2^N or a number"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|0"),
                Error::BadAttribute("lifetime outside 1..=2^48"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|1:0"),
                Error::BadAttribute("MKI length outside 1..=128"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|1:129"),
                Error::BadAttribute("MKI length outside 1..=128"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|256:1"),
                Error::BadAttribute("MKI value does not fit its length"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|1:4|2^20"),
                Error::BadAttribute("lifetime after MKI or twice"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|1:4|2:4"),
                Error::BadAttribute("more than one MKI"),
            ),
            (
                format!(" 1 AES_CM_128_HMAC_SHA1_80 {key}"),
                Error::BadAttribute("space before the tag"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(CryptoAttr::parse(text).err(), Some(*want), "{text:?}");
        }
        assert!(Error::UnknownSuite.to_string().contains("crypto-suite"));
    }
}
