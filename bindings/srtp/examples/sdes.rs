//! SDES keying end to end: an offer's `a=crypto`, our answer, and one RTP packet each way
//! through the sessions the two attributes key.
//!
//! ```text
//! cargo run -p callbridge-srtp --example sdes
//! ```
use srtp::{CryptoAttr, Session};

fn main() -> Result<(), srtp::Error> {
    // The peer offers (its key is what it sends with) …
    let offer = CryptoAttr::generate(1, srtp::Suite::AesCm128HmacSha1_80)?;
    println!("offer:  a=crypto:{offer}");
    // … and we answer with a key of ours.
    let answer = CryptoAttr::answer(&CryptoAttr::parse(&offer.to_string())?)?;
    println!("answer: a=crypto:{answer}");

    let mut peer_tx = Session::outbound(offer.suite, &offer.key)?;
    let mut our_rx = Session::inbound(offer.suite, &offer.key)?;
    let mut our_tx = Session::outbound(answer.suite, &answer.key)?;
    let mut peer_rx = Session::inbound(answer.suite, &answer.key)?;

    // A 12-byte RTP header (PT 0, seq 1, SSRC 0x1234) and 160 bytes of µ-law silence, with
    // room for the trailer after it.
    let mut pkt = [0u8; 172 + srtp::MAX_TRAILER];
    pkt[..12].copy_from_slice(&[0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0x12, 0x34]);
    pkt[12..172].fill(0xff);
    let plain = pkt;

    let n = peer_tx.protect_rtp(&mut pkt, 172)?;
    let m = our_rx.unprotect_rtp(&mut pkt, n)?;
    assert_eq!(pkt[..m], plain[..172]);
    println!("peer → us: {n} bytes of SRTP, {m} bytes of RTP");

    let n = our_tx.protect_rtp(&mut pkt, m)?;
    let m = peer_rx.unprotect_rtp(&mut pkt, n)?;
    assert_eq!(pkt[..m], plain[..172]);
    println!("us → peer: {n} bytes of SRTP, {m} bytes of RTP");
    Ok(())
}
