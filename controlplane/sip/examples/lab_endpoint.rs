//! A lab endpoint: answers every call on 127.0.0.1:5080 (or the address given as the first
//! argument) with G.711, and prints what happens. Try it with
//! `sipp -sn uac 127.0.0.1:5080 -m 1`.

use sip::sdp::{build_answer, SessionDescription};
use sip::{Endpoint, EndpointConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5080".into())
        .parse()?;
    let (ep, mut incoming) = Endpoint::bind(EndpointConfig::new(listen)).await?;
    println!("lab endpoint on {}", ep.local_addr());
    let mut rtp_port = 30_000u16;
    while let Some(mut call) = incoming.recv().await {
        println!(
            "call {} from {} to {}",
            call.call_id, call.from, call.request_uri
        );
        let offer = call.sdp.as_deref().map(SessionDescription::parse);
        let Some(Ok(offer)) = offer else {
            call.reject(488);
            continue;
        };
        let rtp = std::net::SocketAddr::new(ep.local_addr().ip(), rtp_port);
        rtp_port = rtp_port.wrapping_add(2).max(30_000);
        match build_answer(&offer, rtp, u64::from(rtp_port)) {
            Ok((answer, neg)) => {
                println!(
                    "  media to {} with payload type {}",
                    neg.remote, neg.payload_type
                );
                call.ring();
                call.answer(answer);
            }
            Err(e) => {
                println!("  rejecting: {e}");
                call.reject(488);
                continue;
            }
        }
        tokio::spawn(async move {
            while let Some(ev) = call.event().await {
                println!("  {}: {ev:?}", call.call_id);
            }
        });
    }
    Ok(())
}
