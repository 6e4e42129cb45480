//! RFC 4475 against real endpoints: each of the 49 torture messages (byte-exact copies in
//! `tests/rfc4475/`) goes as one UDP datagram from its own socket on 127.0.0.1 to a fresh
//! endpoint, and what comes back — or what is counted instead — must be what the RFC names for
//! it. A fresh endpoint per message because several messages share a branch, sent-by and method
//! (unkscm/novelsc, escnull/regescrt, cparam01/cparam02): to one endpoint, the second is a
//! retransmission of the first (RFC 3261 17.2.3) and rightly gets the first one's response
//! again, at the first one's address. A second test sends all 49 to one endpoint back to back
//! and checks it is still answering.
//!
//! The messages' Vias name hosts that are not the test socket (192.0.2.x, example.com); the
//! endpoint answers such requests at the datagram's source (`Request::response_destination`).
//! Valid INVITEs reach the application as `IncomingCall`s, which the test rejects with 403 the
//! way the bin's inbound policy does: the point is that the syntax, version, extension and body
//! checks come first, and only well-formed calls get as far as a policy.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::{Endpoint, EndpointConfig, IncomingCall};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

/// How long any one answer, call or counter may take.
const WAIT: Duration = Duration::from_secs(2);

/// The policy answer the test gives to INVITEs that reach the application.
const POLICY: u16 = 403;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A final response with this status (1xx are skipped).
    Status(u16),
    /// Delivered to the application as an incoming call; it rejected the call with [`POLICY`].
    Call,
    /// A malformed response: no answer, counted in `dropped_responses().0`.
    Invalid,
    /// A well-formed response for no transaction: no answer, counted in `dropped_responses().1`.
    Stray,
}

use Outcome::*;

/// file, RFC 4475 section, expected outcome. The comment says why.
const TABLE: [(&str, &str, Outcome); 49] = [
    // 3.1.1 valid messages: parsed and handled
    ("wsinv", "3.1.1.1", Status(481)), // To has a tag: a re-INVITE in no dialog of ours (12.2.2)
    ("intmeth", "3.1.1.2", Status(405)), // unknown method (8.2.1)
    ("esc01", "3.1.1.3", Call),
    ("escnull", "3.1.1.4", Status(405)), // REGISTER: we are no registrar
    ("esc02", "3.1.1.5", Status(405)),   // RE%47IST%45R is not REGISTER
    ("lwsdisp", "3.1.1.6", Status(200)),
    ("longreq", "3.1.1.7", Call),
    ("dblreq", "3.1.1.8", Status(405)), // the REGISTER; the trailing INVITE is discarded
    ("semiuri", "3.1.1.9", Status(200)),
    ("transports", "3.1.1.10", Status(200)),
    ("mpart01", "3.1.1.11", Status(405)), // MESSAGE
    ("unreason", "3.1.1.12", Stray),
    ("noreason", "3.1.1.13", Stray),
    // 3.1.2 invalid messages
    ("badinv01", "3.1.2.1", Status(400)),
    ("clerr", "3.1.2.2", Status(400)),
    ("ncl", "3.1.2.3", Status(400)),
    ("scalar02", "3.1.2.4", Status(400)), // CSeq > 2**31-1
    ("scalarlg", "3.1.2.5", Invalid),
    ("quotbal", "3.1.2.6", Status(400)),
    ("ltgtruri", "3.1.2.7", Status(400)),
    ("lwsruri", "3.1.2.8", Status(400)),
    ("lwsstart", "3.1.2.9", Status(400)), // "acceptable to reject"; we do
    ("trws", "3.1.2.10", Status(400)),    // idem
    ("escruri", "3.1.2.11", Status(400)),
    ("baddate", "3.1.2.12", Call), // the Date is not used, so it is not judged
    ("regbadct", "3.1.2.13", Status(400)),
    ("badaspec", "3.1.2.14", Status(400)),
    ("baddn", "3.1.2.15", Status(400)),
    ("badvers", "3.1.2.16", Status(505)),
    ("mismatch01", "3.1.2.17", Status(400)),
    ("mismatch02", "3.1.2.18", Status(400)), // 501 or 400
    ("bigcode", "3.1.2.19", Invalid),
    // 3.2 transaction layer
    ("badbranch", "3.2.1", Status(400)), // 400, or the RFC 2543 fallback
    // 3.3 application layer
    ("insuf", "3.3.1", Status(400)),
    ("unkscm", "3.3.2", Status(416)),
    ("novelsc", "3.3.3", Status(416)),
    ("unksm2", "3.3.4", Status(405)), // valid; REGISTER is not ours (a registrar: 400)
    ("bext01", "3.3.5", Status(420)),
    ("invut", "3.3.6", Status(415)),
    ("regaut01", "3.3.7", Status(405)),
    ("multi01", "3.3.8", Status(400)),
    ("mcl01", "3.3.9", Status(400)),
    ("bcast", "3.3.10", Stray),
    ("zeromf", "3.3.11", Status(200)), // an endpoint ignores Max-Forwards 0
    ("cparam01", "3.3.12", Status(405)),
    ("cparam02", "3.3.13", Status(405)),
    ("regescrt", "3.3.14", Status(405)),
    ("sdp01", "3.3.15", Status(406)), // Accept without application/sdp
    // 3.4 backward compatibility
    ("inv2543", "3.4.1", Call), // no branch, no From tag, no Content-Length, no Max-Forwards
];

fn message(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/rfc4475/{name}.dat", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The next final response on `sock` within [`WAIT`], as text (1xx skipped).
async fn final_response(sock: &UdpSocket) -> Option<String> {
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 65_535];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let (n, _) = timeout(left, sock.recv_from(&mut buf)).await.ok()?.ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return Some(text);
        }
    }
}

fn status_of(resp: &str) -> u16 {
    resp.get(8..11).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Polls `f` until it is true or [`WAIT`] passes.
async fn eventually(f: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

/// Sends one message and observes what happens; returns the outcome and the response text.
async fn run_one(
    ep: &Endpoint,
    calls: &mut Receiver<IncomingCall>,
    name: &str,
    want: Outcome,
) -> (Outcome, String, UdpSocket) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target: SocketAddr = ep.local_addr();
    let data = message(name);
    let before = ep.dropped_responses();
    sock.send_to(&data, target).await.unwrap();
    match want {
        Invalid | Stray => {
            let counted = eventually(|| {
                let now = ep.dropped_responses();
                if want == Invalid {
                    now.0 > before.0
                } else {
                    now.1 > before.1
                }
            })
            .await;
            let got = match (counted, want) {
                (true, w) => w,
                (false, _) => Status(0),
            };
            (got, String::new(), sock)
        }
        Call => {
            let Ok(Some(call)) = timeout(WAIT, calls.recv()).await else {
                let text = final_response(&sock).await.unwrap_or_default();
                return (Status(status_of(&text)), text, sock);
            };
            assert!(
                String::from_utf8_lossy(&data).contains(&call.call_id),
                "{name}: a call from another message: {}",
                call.call_id
            );
            call.reject(POLICY);
            let text = final_response(&sock).await.unwrap_or_default();
            let got = if status_of(&text) == POLICY {
                Call
            } else {
                Status(status_of(&text))
            };
            (got, text, sock)
        }
        Status(_) => {
            let text = final_response(&sock).await.unwrap_or_default();
            (Status(status_of(&text)), text, sock)
        }
    }
}

/// What every response of a given status must carry besides the status.
fn check_details(name: &str, status: u16, resp: &str) -> Result<(), String> {
    let first = resp.lines().next().unwrap_or("");
    let has = |h: &str| resp.contains(&format!("\r\n{h}"));
    let ok = match status {
        400 => first.starts_with("SIP/2.0 400 Bad Request - "),
        405 => has("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\n"),
        415 => has("Accept: application/sdp\r\n"),
        420 => has("Unsupported: nothingSupportsThis, nothingSupportsThisEither\r\n"),
        505 => first == "SIP/2.0 505 Version Not Supported",
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{name}: {status} without its details:\n{resp}"))
    }
}

#[tokio::test]
async fn every_rfc4475_message_gets_what_the_rfc_names() {
    let mut wrong = Vec::new();
    let mut table = String::from("file        RFC 4475  expected      got\n");
    for (name, section, want) in TABLE {
        let (ep, mut calls) = bind().await;
        let (got, text, sock) = run_one(&ep, &mut calls, name, want).await;
        table.push_str(&format!(
            "{name:<11} {section:<9} {:<13} {got:?} {}\n",
            format!("{want:?}"),
            text.lines().next().unwrap_or("")
        ));
        if got != want {
            wrong.push(format!(
                "{name} ({section}): want {want:?}, got {got:?}\n{text}"
            ));
        } else if let Status(s) = got {
            if let Err(e) = check_details(name, s, &text) {
                wrong.push(e);
            }
        }
        if let Err(e) = still_answers(&ep).await {
            wrong.push(format!("{name}: afterwards {e}"));
        }
        // A dropped response got no answer at all: the core is one task, so anything it sent
        // for the message went out before the 200 above.
        let mut buf = [0u8; 2048];
        if matches!(want, Invalid | Stray) && sock.try_recv_from(&mut buf).is_ok() {
            wrong.push(format!("{name}: a response was answered"));
        }
    }
    println!("{table}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn one_endpoint_takes_all_49_back_to_back_and_still_answers() {
    let (ep, mut calls) = bind().await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (name, _, _) in TABLE {
        sock.send_to(&message(name), ep.local_addr()).await.unwrap();
    }
    // Every INVITE the application sees is one of the table's valid calls.
    let valid: Vec<String> = TABLE
        .iter()
        .filter(|(_, _, o)| *o == Call)
        .map(|(n, _, _)| String::from_utf8_lossy(&message(n)).into_owned())
        .collect();
    still_answers(&ep).await.unwrap();
    let mut seen = 0;
    while let Ok(call) = calls.try_recv() {
        assert!(
            valid.iter().any(|m| m.contains(&call.call_id)),
            "{}",
            call.call_id
        );
        call.reject(POLICY);
        seen += 1;
    }
    assert_eq!(seen, valid.len());
    assert!(
        eventually(|| ep.dropped_responses() == (2, 3)).await,
        "{:?}",
        ep.dropped_responses()
    );
    still_answers(&ep).await.unwrap();
}

async fn bind() -> (Endpoint, Receiver<IncomingCall>) {
    Endpoint::bind(EndpointConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
}

/// A plain OPTIONS from a new socket is answered 200 (the endpoint's tasks are alive).
async fn still_answers(ep: &Endpoint) -> Result<(), String> {
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = probe.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{0} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKafter;rport\r\n\
Max-Forwards: 70\r\nTo: <sip:{0}>\r\nFrom: <sip:probe@{me}>;tag=p\r\nCall-ID: after-torture\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        ep.local_addr()
    );
    probe
        .send_to(options.as_bytes(), ep.local_addr())
        .await
        .unwrap();
    match final_response(&probe).await {
        Some(text) if text.starts_with("SIP/2.0 200 OK\r\n") => Ok(()),
        Some(text) => Err(format!("OPTIONS answered {text}")),
        None => Err("no answer to OPTIONS".into()),
    }
}
