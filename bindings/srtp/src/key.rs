//! Crypto-suites and master keys.

use std::fmt;

use zeroize::Zeroize;

use crate::Error;

/// Bytes of an AES-128 master key.
pub const MASTER_KEY_LEN: usize = 16;
/// Bytes of an AES-CM master salt (112 bits).
pub const MASTER_SALT_LEN: usize = 14;

/// An SRTP crypto-suite we support (RFC 4568 §6.2), named as in SDES.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suite {
    /// `AES_CM_128_HMAC_SHA1_80`: AES-128 counter mode, 80-bit HMAC-SHA1 tag (RTP and RTCP).
    /// The RFC 3711 default; what we offer.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`: as above with a 32-bit tag on RTP; SRTCP keeps the 80-bit
    /// tag (RFC 4568 §6.2.2).
    AesCm128HmacSha1_32,
}

impl Suite {
    /// Both suites, ours first.
    pub const ALL: [Self; 2] = [Self::AesCm128HmacSha1_80, Self::AesCm128HmacSha1_32];

    /// The SDES name (RFC 4568 §6.2).
    #[must_use]
    pub const fn sdes_name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite an SDES name denotes (names are case-sensitive, RFC 4568 §9.1).
    #[must_use]
    pub fn from_sdes_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.sdes_name() == name)
    }

    /// Bytes of the RTP authentication tag.
    #[must_use]
    pub const fn rtp_tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sdes_name())
    }
}

/// An SRTP master key and master salt (RFC 3711 §8.2), 30 bytes, as SDES carries them
/// (key first). Zeroed when dropped; `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; MASTER_KEY_LEN + MASTER_SALT_LEN]);

impl MasterKey {
    /// Bytes of key plus salt.
    pub const LEN: usize = MASTER_KEY_LEN + MASTER_SALT_LEN;

    /// A key from its 30 bytes (key, then salt).
    #[must_use]
    pub const fn new(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// A key from a slice of exactly [`Self::LEN`] bytes.
    ///
    /// # Errors
    /// [`Error::BadKey`] for any other length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; Self::LEN] = bytes.try_into().map_err(|_| Error::BadKey)?;
        Ok(Self(arr))
    }

    /// A fresh random key and salt from the operating system's RNG (`getrandom`).
    ///
    /// # Errors
    /// [`Error::Random`] when the OS RNG fails.
    pub fn generate() -> Result<Self, Error> {
        let mut k = Self([0; Self::LEN]);
        getrandom::getrandom(&mut k.0).map_err(|_| Error::Random)?;
        Ok(k)
    }

    /// Key then salt, as libsrtp and SDES want them.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// The 16-byte master key.
    #[must_use]
    pub fn key(&self) -> &[u8] {
        &self.0[..MASTER_KEY_LEN]
    }

    /// The 14-byte master salt.
    #[must_use]
    pub fn salt(&self) -> &[u8] {
        &self.0[MASTER_KEY_LEN..]
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}
