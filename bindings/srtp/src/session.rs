//! One libsrtp session for one direction of one leg.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::NonNull;

use srtp_sys as sys;
use zeroize::Zeroize;

use crate::{check, init, Error, MasterKey, Suite};

/// The most bytes any [`Session`] appends to a packet: an SRTCP trailer (4-byte E flag and
/// index, then the tag, at most libsrtp's `SRTP_MAX_TAG_LEN` = 16 bytes). We use no MKI.
/// Buffers handed to `protect_*` need this much room after the packet to never see
/// [`Error::NoRoom`].
pub const MAX_TRAILER: usize = 4 + sys::SRTP_MAX_TAG_LEN as usize;

/// The replay window, in packets (RFC 3711 §3.3.2 asks for at least 64; libsrtp's default
/// and ours is 128).
pub const REPLAY_WINDOW: u32 = 128;

/// The least an RTP packet can be (the fixed header), checked before calling libsrtp.
const RTP_HEADER_LEN: usize = 12;
/// The least an RTCP packet can be (header and sender SSRC).
const RTCP_HEADER_LEN: usize = 8;

/// Which way a session transforms packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Decrypt and verify what the peer sends (`ssrc_any_inbound`).
    Inbound,
    /// Encrypt and authenticate what we send (`ssrc_any_outbound`).
    Outbound,
}

/// One libsrtp session (`srtp_t`) for one direction, keyed for every SSRC with one master
/// key. Freed by `Drop`.
///
/// `Send` (a session has no thread affinity) and not `Sync` (libsrtp sessions are not safe
/// for concurrent use; every operation takes `&mut self`).
#[derive(Debug)]
pub struct Session {
    ctx: NonNull<sys::srtp_ctx_t>,
    suite: Suite,
    direction: Direction,
    rtp_trailer: usize,
    rtcp_trailer: usize,
    /// Not `Sync`.
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: an srtp_t is heap memory owned solely by this value; libsrtp keeps no per-thread
// state for it, and its global state (the crypto kernel) is set up once by `init` and only
// read afterwards. Moving the owner to another thread is therefore sound; concurrent use is
// prevented by `&mut self` on every operation and by the type not being `Sync`.
unsafe impl Send for Session {}

impl Session {
    /// A session that decrypts and verifies what a peer sends with `key` (any SSRC), with
    /// replay protection over [`REPLAY_WINDOW`] packets.
    ///
    /// # Errors
    /// libsrtp's status if it cannot initialise or create the session.
    pub fn inbound(suite: Suite, key: &MasterKey) -> Result<Self, Error> {
        Self::new(suite, key, Direction::Inbound)
    }

    /// A session that encrypts and authenticates what we send with `key` (any SSRC).
    ///
    /// # Errors
    /// libsrtp's status if it cannot initialise or create the session.
    pub fn outbound(suite: Suite, key: &MasterKey) -> Result<Self, Error> {
        Self::new(suite, key, Direction::Outbound)
    }

    fn new(suite: Suite, key: &MasterKey, direction: Direction) -> Result<Self, Error> {
        init()?;
        let mut policy = sys::srtp_policy_t::default();
        // SAFETY: each setter only writes the crypto policy struct it is given. libsrtp's
        // `srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80` is a macro for the RTP/RTCP
        // defaults, which are AES_CM_128_HMAC_SHA1_80.
        unsafe {
            match suite {
                Suite::AesCm128HmacSha1_80 => {
                    sys::srtp_crypto_policy_set_rtp_default(&mut policy.rtp);
                }
                Suite::AesCm128HmacSha1_32 => {
                    sys::srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&mut policy.rtp);
                }
            }
            // SRTCP always uses the 80-bit tag (RFC 4568 §6.2.2).
            sys::srtp_crypto_policy_set_rtcp_default(&mut policy.rtcp);
        }
        policy.ssrc.type_ = match direction {
            Direction::Inbound => sys::ssrc_any_inbound,
            Direction::Outbound => sys::ssrc_any_outbound,
        };
        let mut material = *key.as_bytes();
        policy.key = material.as_mut_ptr();
        policy.window_size = REPLAY_WINDOW.into();
        policy.allow_repeat_tx = 0;
        policy.next = std::ptr::null_mut();
        let mut ctx: sys::srtp_t = std::ptr::null_mut();
        // SAFETY: `policy` is a fully initialised single-element list (next = NULL) whose
        // key points to 30 readable bytes that outlive the call (srtp_create copies the key
        // into the session's own key schedules); `ctx` is a valid out-pointer.
        let status = unsafe { sys::srtp_create(&mut ctx, &policy) };
        material.zeroize();
        check(status)?;
        let ctx = NonNull::new(ctx).ok_or(Error::Other(sys::srtp_err_status_alloc_fail))?;
        let mut s = Self {
            ctx,
            suite,
            direction,
            rtp_trailer: 0,
            rtcp_trailer: 0,
            _not_sync: PhantomData,
        };
        let (mut rtp, mut rtcp) = (0u32, 0u32);
        // SAFETY: `ctx` is the live session just created; the out-pointers are valid.
        check(unsafe { sys::srtp_get_protect_trailer_length(s.ctx.as_ptr(), 0, 0, &mut rtp) })?;
        // SAFETY: as above.
        check(unsafe {
            sys::srtp_get_protect_rtcp_trailer_length(s.ctx.as_ptr(), 0, 0, &mut rtcp)
        })?;
        s.rtp_trailer = rtp as usize;
        s.rtcp_trailer = rtcp as usize;
        debug_assert!(s.rtp_trailer <= MAX_TRAILER && s.rtcp_trailer <= MAX_TRAILER);
        Ok(s)
    }

    /// The session's crypto-suite.
    #[must_use]
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Whether this session decrypts (inbound) rather than encrypts.
    #[must_use]
    pub fn is_inbound(&self) -> bool {
        self.direction == Direction::Inbound
    }

    /// Bytes [`Self::protect_rtp`] appends (the RTP authentication tag).
    #[must_use]
    pub fn rtp_trailer(&self) -> usize {
        self.rtp_trailer
    }

    /// Bytes [`Self::protect_rtcp`] appends (E flag and SRTCP index, then the tag).
    #[must_use]
    pub fn rtcp_trailer(&self) -> usize {
        self.rtcp_trailer
    }

    /// Encrypts and authenticates the RTP packet `buf[..len]` in place (outbound session);
    /// returns the SRTP packet's length, `len + rtp_trailer()`.
    ///
    /// # Errors
    /// [`Error::NoRoom`] when `buf` has fewer than [`Self::rtp_trailer`] bytes after `len`;
    /// [`Error::BadParam`] for a packet shorter than an RTP header, on an inbound session,
    /// or malformed for libsrtp; [`Error::ReplayFail`] when this packet index was protected
    /// already; other libsrtp statuses.
    #[inline]
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let n = self.room(buf, len, RTP_HEADER_LEN, self.rtp_trailer, false)?;
        let mut n = n;
        // SAFETY: `buf[..len]` is the packet and `buf` has at least `rtp_trailer` writable
        // bytes after it (checked by `room`), which is all srtp_protect writes beyond the
        // packet for this session (no MKI); `ctx` is live and exclusively borrowed.
        check(unsafe { sys::srtp_protect(self.ctx.as_ptr(), buf.as_mut_ptr().cast(), &mut n) })?;
        Ok(Self::out_len(n, buf.len()))
    }

    /// Verifies and decrypts the SRTP packet `buf[..len]` in place (inbound session);
    /// returns the RTP packet's length (the trailer removed). Replay-checked.
    ///
    /// # Errors
    /// [`Error::AuthFail`] for a packet that does not authenticate; [`Error::ReplayFail`] /
    /// [`Error::ReplayOld`] for a replayed or too old one; [`Error::BadParam`] for one too
    /// short, or on an outbound session; other libsrtp statuses.
    #[inline]
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let mut n = self.room(buf, len, RTP_HEADER_LEN, 0, true)?;
        // SAFETY: `buf[..len]` is initialised and writable; srtp_unprotect reads and writes
        // only within the `len` bytes it is given (it only shrinks the packet); `ctx` is live
        // and exclusively borrowed.
        check(unsafe { sys::srtp_unprotect(self.ctx.as_ptr(), buf.as_mut_ptr().cast(), &mut n) })?;
        Ok(Self::out_len(n, len))
    }

    /// Encrypts and authenticates the RTCP compound packet `buf[..len]` in place (outbound
    /// session); returns the SRTCP packet's length, `len + rtcp_trailer()`.
    ///
    /// # Errors
    /// As [`Self::protect_rtp`], with [`Self::rtcp_trailer`] and the 8-byte RTCP header.
    #[inline]
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let mut n = self.room(buf, len, RTCP_HEADER_LEN, self.rtcp_trailer, false)?;
        // SAFETY: as in `protect_rtp`, with the SRTCP trailer's room checked.
        check(unsafe {
            sys::srtp_protect_rtcp(self.ctx.as_ptr(), buf.as_mut_ptr().cast(), &mut n)
        })?;
        Ok(Self::out_len(n, buf.len()))
    }

    /// Verifies and decrypts the SRTCP packet `buf[..len]` in place (inbound session);
    /// returns the RTCP packet's length. Replay-checked on the SRTCP index.
    ///
    /// # Errors
    /// As [`Self::unprotect_rtp`].
    #[inline]
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let mut n = self.room(buf, len, RTCP_HEADER_LEN, 0, true)?;
        // SAFETY: as in `unprotect_rtp`.
        check(unsafe {
            sys::srtp_unprotect_rtcp(self.ctx.as_ptr(), buf.as_mut_ptr().cast(), &mut n)
        })?;
        Ok(Self::out_len(n, len))
    }

    /// Checks the direction, the packet length and the room after it; the length as libsrtp
    /// takes it.
    #[inline]
    fn room(
        &self,
        buf: &[u8],
        len: usize,
        min: usize,
        trailer: usize,
        inbound: bool,
    ) -> Result<i32, Error> {
        if self.is_inbound() != inbound || len < min || len > buf.len() {
            return Err(Error::BadParam);
        }
        if buf.len() - len < trailer {
            return Err(Error::NoRoom);
        }
        // The longest packet plus trailer must fit libsrtp's `int`.
        i32::try_from(len + trailer)
            .map(|_| len as i32)
            .map_err(|_| Error::BadParam)
    }

    /// libsrtp's resulting length, clamped to what the buffer holds (it never exceeds it
    /// given the checks above; the clamp keeps slicing by the result panic-free regardless).
    #[inline]
    fn out_len(n: i32, cap: usize) -> usize {
        usize::try_from(n).unwrap_or(0).min(cap)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: `ctx` was created by srtp_create, is owned by this value alone and is
        // deallocated exactly once, here. The status is ignored: nothing to do on failure.
        let _ = unsafe { sys::srtp_dealloc(self.ctx.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libsrtp's `test/srtp_driver.c` (`srtp_validate`) vectors for the default policy,
    /// AES_CM_128_HMAC_SHA1_80: the first 30 bytes of its `test_key`, SSRC 0xcafebabe.
    const KAT_KEY: [u8; 30] = [
        0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41,
        0x39, 0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6,
    ];
    const KAT_RTP: [u8; 28] = [
        0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0xab, 0xab, 0xab,
        0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
    ];
    const KAT_SRTP: [u8; 38] = [
        0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0x4e, 0x55, 0xdc,
        0x4c, 0xe7, 0x99, 0x78, 0xd8, 0x8c, 0xa4, 0xd2, 0x15, 0x94, 0x9d, 0x24, 0x02, 0xb7, 0x8d,
        0x6a, 0xcc, 0x99, 0xea, 0x17, 0x9b, 0x8d, 0xbb,
    ];
    const KAT_RTCP: [u8; 24] = [
        0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
        0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
    ];
    const KAT_SRTCP: [u8; 38] = [
        0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0x71, 0x28, 0x03, 0x5b, 0xe4, 0x87, 0xb9,
        0xbd, 0xbe, 0xf8, 0x90, 0x41, 0xf9, 0x77, 0xa5, 0xa8, 0x80, 0x00, 0x00, 0x01, 0x99, 0x3e,
        0x08, 0xcd, 0x54, 0xd6, 0xc1, 0x23, 0x07, 0x98,
    ];

    const S80: Suite = Suite::AesCm128HmacSha1_80;

    fn pair(suite: Suite) -> (Session, Session) {
        let key = MasterKey::generate().unwrap();
        (
            Session::outbound(suite, &key).unwrap(),
            Session::inbound(suite, &key).unwrap(),
        )
    }

    /// An RTP packet (PT 0) with a 160-byte payload, in a buffer with room for any trailer.
    fn rtp(seq: u16) -> ([u8; 256], usize) {
        let mut b = [0u8; 256];
        b[0] = 0x80;
        b[2..4].copy_from_slice(&seq.to_be_bytes());
        b[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        b[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        for (i, x) in b[12..172].iter_mut().enumerate() {
            *x = i as u8;
        }
        (b, 172)
    }

    fn rr() -> ([u8; 64], usize) {
        let mut b = [0u8; 64];
        b[..8].copy_from_slice(&[0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78]);
        (b, 8)
    }

    #[test]
    fn known_answer_aes_cm_128_hmac_sha1_80() {
        let key = MasterKey::new(KAT_KEY);
        let mut tx = Session::outbound(S80, &key).unwrap();
        let mut rx = Session::inbound(S80, &key).unwrap();
        assert_eq!((tx.rtp_trailer(), tx.rtcp_trailer()), (10, 14));

        let mut b = [0u8; 64];
        b[..28].copy_from_slice(&KAT_RTP);
        assert_eq!(tx.protect_rtp(&mut b, 28), Ok(38));
        assert_eq!(b[..38], KAT_SRTP);
        assert_eq!(rx.unprotect_rtp(&mut b, 38), Ok(28));
        assert_eq!(b[..28], KAT_RTP);

        let mut b = [0u8; 64];
        b[..24].copy_from_slice(&KAT_RTCP);
        assert_eq!(tx.protect_rtcp(&mut b, 24), Ok(38));
        assert_eq!(b[..38], KAT_SRTCP);
        assert_eq!(rx.unprotect_rtcp(&mut b, 38), Ok(24));
        assert_eq!(b[..24], KAT_RTCP);
    }

    #[test]
    fn round_trip_rtp_and_rtcp_for_both_suites() {
        for suite in Suite::ALL {
            let (mut tx, mut rx) = pair(suite);
            assert_eq!(tx.rtp_trailer(), suite.rtp_tag_len());
            assert_eq!(tx.rtcp_trailer(), 14, "SRTCP keeps the 80-bit tag");
            for seq in 1..50u16 {
                let (mut b, len) = rtp(seq);
                let plain = b;
                let n = tx.protect_rtp(&mut b, len).unwrap();
                assert_eq!(n, len + suite.rtp_tag_len());
                assert_eq!(b[..12], plain[..12], "the header stays clear");
                assert_ne!(b[12..len], plain[12..len], "the payload is encrypted");
                assert_eq!(rx.unprotect_rtp(&mut b, n), Ok(len));
                assert_eq!(b[..len], plain[..len]);
            }
            for _ in 0..3 {
                let (mut b, len) = rr();
                let plain = b;
                let n = tx.protect_rtcp(&mut b, len).unwrap();
                assert_eq!(n, len + 14);
                assert_eq!(rx.unprotect_rtcp(&mut b, n), Ok(len));
                assert_eq!(b[..len], plain[..len]);
            }
        }
    }

    #[test]
    fn a_flipped_bit_fails_authentication() {
        let (mut tx, mut rx) = pair(S80);
        for flip in [0, 13, 171, 180] {
            let (mut b, len) = rtp(7 + flip as u16);
            let n = tx.protect_rtp(&mut b, len).unwrap();
            b[flip] ^= 0x01;
            assert_eq!(
                rx.unprotect_rtp(&mut b, n),
                Err(Error::AuthFail),
                "bit in byte {flip}"
            );
        }
        let (mut b, len) = rr();
        let n = tx.protect_rtcp(&mut b, len).unwrap();
        b[5] ^= 0x80;
        assert_eq!(rx.unprotect_rtcp(&mut b, n), Err(Error::AuthFail));
        // And a wrong key.
        let mut other = Session::inbound(S80, &MasterKey::generate().unwrap()).unwrap();
        let (mut b, len) = rtp(100);
        let n = tx.protect_rtp(&mut b, len).unwrap();
        assert_eq!(other.unprotect_rtp(&mut b, n), Err(Error::AuthFail));
    }

    #[test]
    fn replays_are_refused() {
        let (mut tx, mut rx) = pair(S80);
        let (mut b, len) = rtp(1);
        let n = tx.protect_rtp(&mut b, len).unwrap();
        let copy = b;
        assert_eq!(rx.unprotect_rtp(&mut b, n), Ok(len));
        let mut b = copy;
        assert_eq!(rx.unprotect_rtp(&mut b, n), Err(Error::ReplayFail));
        // Far ahead, then an index older than the window (never seen) is too old.
        let (mut b, len) = rtp(2);
        let n2 = tx.protect_rtp(&mut b, len).unwrap();
        let stale = b;
        let (mut b, len) = rtp(1 + REPLAY_WINDOW as u16 + 10);
        let n = tx.protect_rtp(&mut b, len).unwrap();
        assert_eq!(rx.unprotect_rtp(&mut b, n), Ok(len));
        let mut b = stale;
        assert_eq!(rx.unprotect_rtp(&mut b, n2), Err(Error::ReplayOld));
        // SRTCP too.
        let (mut b, len) = rr();
        let n = tx.protect_rtcp(&mut b, len).unwrap();
        let copy = b;
        assert_eq!(rx.unprotect_rtcp(&mut b, n), Ok(len));
        let mut b = copy;
        assert_eq!(rx.unprotect_rtcp(&mut b, n), Err(Error::ReplayFail));
    }

    #[test]
    fn the_same_index_is_never_encrypted_twice() {
        let (mut tx, _) = pair(S80);
        let (mut b, len) = rtp(5);
        tx.protect_rtp(&mut b, len).unwrap();
        let (mut b, len) = rtp(5);
        assert_eq!(tx.protect_rtp(&mut b, len), Err(Error::ReplayFail));
    }

    #[test]
    fn no_room_short_packets_and_wrong_direction_are_errors() {
        let (mut tx, mut rx) = pair(S80);
        let (b, len) = rtp(1);
        let mut exact = b[..len + 9].to_vec();
        assert_eq!(tx.protect_rtp(&mut exact, len), Err(Error::NoRoom));
        let mut exact = b[..len + 10].to_vec();
        assert_eq!(tx.protect_rtp(&mut exact, len), Ok(len + 10));
        let (b, len) = rr();
        let mut exact = b[..len + 13].to_vec();
        assert_eq!(tx.protect_rtcp(&mut exact, len), Err(Error::NoRoom));
        let mut short = [0x80u8; 40];
        assert_eq!(tx.protect_rtp(&mut short, 11), Err(Error::BadParam));
        assert_eq!(rx.unprotect_rtp(&mut short, 11), Err(Error::BadParam));
        assert_eq!(rx.unprotect_rtcp(&mut short, 7), Err(Error::BadParam));
        assert_eq!(tx.protect_rtp(&mut short, 41), Err(Error::BadParam));
        let (mut b, len) = rtp(2);
        assert_eq!(rx.protect_rtp(&mut b, len), Err(Error::BadParam));
        assert_eq!(tx.unprotect_rtp(&mut b, len), Err(Error::BadParam));
        // A packet too short to hold a tag: libsrtp refuses it, nothing panics.
        let (mut b, _) = rtp(3);
        assert!(rx.unprotect_rtp(&mut b, 14).is_err());
        let (mut b, _) = rr();
        assert!(rx.unprotect_rtcp(&mut b, 12).is_err());
    }

    #[test]
    fn sessions_are_send() {
        fn send<T: Send>(_: &T) {}
        let (tx, rx) = pair(S80);
        send(&tx);
        let h = std::thread::spawn(move || {
            let mut tx = tx;
            let mut rx = rx;
            let (mut b, len) = rtp(9);
            let n = tx.protect_rtp(&mut b, len).unwrap();
            rx.unprotect_rtp(&mut b, n)
        });
        assert_eq!(h.join().unwrap(), Ok(172));
    }
}
