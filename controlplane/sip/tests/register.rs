//! The registrar on a real endpoint (`EndpointConfig::registrar`), driven from raw sockets on
//! loopback that play a softphone behind NAT (its Contact names a private address it cannot be
//! reached at): REGISTER → 401 → REGISTER with `Authorization` (computed by `ClientAuth`) →
//! 200 listing the binding; `Endpoint::bindings` shows the source it registered from, and a
//! call to the agent arrives there — over UDP on the socket, over TCP and TLS on the very
//! connection it registered on (once that connection is gone, so is its binding). A
//! re-REGISTER from a new socket moves the binding, `Expires: 0` removes it, and a REGISTER from
//! outside `allow_register_from` gets 403.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sip::digest::{ChallengeKind, ClientAuth, Credentials, StoredCredential};
use sip::guard::Network;
use sip::registrar::RegistrarConfig;
use sip::{
    Endpoint, EndpointConfig, InviteRequest, LegEvent, ListenAddr, Peer, TlsConfig, Transport,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);
const CONTACT: &str = "sip:agent7@10.0.0.7:5060";

fn config(listen: Vec<ListenAddr>) -> EndpointConfig {
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.listen = listen;
    cfg.registrar = Some(RegistrarConfig::new(
        "callbridge",
        b"a test secret, 16+ bytes".to_vec(),
        vec![StoredCredential::from_password(
            "agent7",
            "callbridge",
            "hunter2",
        )],
    ));
    cfg.allow_register_from = Some(vec![Network::parse("127.0.0.1/32").unwrap()]);
    cfg
}

/// A softphone's registration state: Call-ID, CSeq and digest client.
struct Phone {
    transport: Transport,
    call_id: String,
    cseq: u32,
    auth: ClientAuth,
}

impl Phone {
    fn new(transport: Transport) -> Self {
        Self {
            transport,
            call_id: format!("reg-{:x}@10.0.0.7", rand_id()),
            cseq: 0,
            auth: ClientAuth::new(Credentials {
                username: "agent7".into(),
                password: "hunter2".into(),
            }),
        }
    }

    /// A REGISTER to `registrar` with `extra` header lines; authorized once challenged.
    fn register(&mut self, registrar: SocketAddr, extra: &str) -> String {
        self.cseq += 1;
        let uri = format!("sip:{registrar}");
        let mut auth = String::new();
        if self.auth.has_session() {
            for (n, v) in self.auth.authorize("REGISTER", &uri) {
                auth.push_str(&format!("{n}: {v}\r\n"));
            }
        }
        // The Via and Contact name the phone's private address, as behind a NAT.
        format!(
            "REGISTER {uri} SIP/2.0\r\n\
Via: SIP/2.0/{t} 10.0.0.7:5060;branch=z9hG4bKreg{c}x{n};rport\r\nMax-Forwards: 70\r\n\
From: <sip:agent7@{registrar}>;tag=ph1\r\nTo: <sip:agent7@{registrar}>\r\n\
Call-ID: {id}\r\nCSeq: {c} REGISTER\r\nUser-Agent: RawPhone/1\r\n{extra}{auth}Content-Length: 0\r\n\r\n",
            t = self.transport,
            c = self.cseq,
            id = self.call_id,
            n = self.call_id.len() * 1000 + self.call_id.bytes().map(usize::from).sum::<usize>(),
        )
    }

    fn challenged(&mut self, resp: &str) {
        let values: Vec<&str> = headers(resp, "WWW-Authenticate");
        assert_eq!(values.len(), 2, "{resp}");
        self.auth
            .handle_challenge(ChallengeKind::Www, &values)
            .unwrap();
    }
}

fn rand_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        .into()
}

fn status(resp: &str) -> &str {
    resp.lines().next().unwrap_or("")
}

fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

/// The next final response on a UDP socket.
async fn udp_final(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, _) = timeout(WAIT, sock.recv_from(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        let t = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !t.starts_with("SIP/2.0 1") {
            return t;
        }
    }
}

async fn udp_register(sock: &UdpSocket, to: SocketAddr, msg: String) -> String {
    sock.send_to(msg.as_bytes(), to).await.unwrap();
    udp_final(sock).await
}

/// Reads one whole message (headers and Content-Length body) from a stream.
async fn tcp_read<S: AsyncRead + Unpin>(s: &mut S, pending: &mut Vec<u8>) -> String {
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            let len: usize = headers(&head, "Content-Length")
                .first()
                .map_or(0, |v| v.parse().unwrap());
            if pending.len() >= end + 4 + len {
                let msg: Vec<u8> = pending.drain(..end + 4 + len).collect();
                return String::from_utf8_lossy(&msg).into_owned();
            }
        }
        let mut buf = [0u8; 4096];
        let n = timeout(WAIT, s.read(&mut buf))
            .await
            .expect("a message")
            .unwrap();
        assert!(n > 0, "connection closed");
        pending.extend_from_slice(&buf[..n]);
    }
}

async fn tcp_final<S: AsyncRead + Unpin>(s: &mut S, pending: &mut Vec<u8>) -> String {
    loop {
        let m = tcp_read(s, pending).await;
        if !m.starts_with("SIP/2.0 1") {
            return m;
        }
    }
}

fn invite_for(contact: &str) -> InviteRequest {
    InviteRequest {
        target: contact.to_string(),
        from_user: "callbridge".into(),
        from_display: None,
        sdp: String::new(),
        headers: vec![],
        credentials: None,
    }
}

#[tokio::test]
async fn a_softphone_registers_over_udp_moves_and_unregisters() {
    let (ep, _calls) = Endpoint::bind(config(vec![ListenAddr::udp(
        "127.0.0.1:0".parse().unwrap(),
    )]))
    .await
    .unwrap();
    let reg = ep.local_addr();
    let first = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut phone = Phone::new(Transport::Udp);
    let contact = format!("Contact: <{CONTACT}>\r\n");

    let r = udp_register(&first, reg, phone.register(reg, &contact)).await;
    assert_eq!(status(&r), "SIP/2.0 401 Unauthorized");
    assert!(ep.bindings("agent7").is_empty());
    phone.challenged(&r);
    let r = udp_register(&first, reg, phone.register(reg, &contact)).await;
    assert_eq!(status(&r), "SIP/2.0 200 OK", "{r}");
    assert_eq!(
        headers(&r, "Contact"),
        [format!("<{CONTACT}>;expires=3600").as_str()]
    );
    assert_eq!(headers(&r, "Date").len(), 1);
    let b = ep.bindings("agent7");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].contact, CONTACT);
    assert_eq!(b[0].flow, Peer::udp(first.local_addr().unwrap()));
    assert_eq!(b[0].user_agent.as_deref(), Some("RawPhone/1"));
    let generation = ep.bindings_generation();

    // The NAT moved the phone to another public port: the same Contact re-registers from a new
    // socket (the nonce is bound to the IP, so the digest session goes on with nc=2).
    let second = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let r = udp_register(&second, reg, phone.register(reg, &contact)).await;
    assert_eq!(status(&r), "SIP/2.0 200 OK", "{r}");
    let b = ep.bindings("agent7");
    assert_eq!(b.len(), 1, "moved, not duplicated");
    assert_eq!(b[0].flow, Peer::udp(second.local_addr().unwrap()));
    assert!(ep.bindings_generation() > generation);

    // A call to the agent goes to its binding's flow, with the Contact as Request-URI.
    let call = ep
        .invite_registered("agent7", invite_for("sip:unused@127.0.0.1"))
        .unwrap();
    let mut buf = vec![0u8; 65_535];
    let (n, _) = timeout(WAIT, second.recv_from(&mut buf))
        .await
        .expect("the INVITE")
        .unwrap();
    let invite = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(status(&invite), format!("INVITE {CONTACT} SIP/2.0"));
    call.controller().hangup();

    // OPTIONS lists REGISTER among the methods.
    let opts = format!(
        "OPTIONS sip:{reg} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopt1\r\n\
Max-Forwards: 70\r\nFrom: <sip:agent7@{reg}>;tag=o\r\nTo: <sip:{reg}>\r\nCall-ID: opt-1\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        me = first.local_addr().unwrap()
    );
    let r = udp_register(&first, reg, opts).await;
    assert_eq!(
        headers(&r, "Allow"),
        ["INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, REGISTER"]
    );

    // Expires: 0 removes it.
    let r = udp_register(
        &second,
        reg,
        phone.register(reg, &format!("{contact}Expires: 0\r\n")),
    )
    .await;
    assert_eq!(status(&r), "SIP/2.0 200 OK", "{r}");
    assert!(headers(&r, "Contact").is_empty());
    assert!(ep.bindings("agent7").is_empty());

    // From outside allow_register_from: 403 before any challenge.
    let outside = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let mut stranger = Phone::new(Transport::Udp);
    let r = udp_register(&outside, reg, stranger.register(reg, &contact)).await;
    assert_eq!(status(&r), "SIP/2.0 403 Forbidden");
    assert!(headers(&r, "WWW-Authenticate").is_empty());
    let stats = ep.registrar_stats().unwrap();
    assert_eq!((stats.ok, stats.challenged), (3, 1));
}

#[tokio::test]
async fn a_softphone_registered_over_tcp_is_called_on_its_connection() {
    let (ep, _calls) = Endpoint::bind(config(vec![ListenAddr {
        transport: Transport::Tcp,
        addr: "127.0.0.1:0".parse().unwrap(),
    }]))
    .await
    .unwrap();
    let reg = ep.local_addr();
    let mut conn = TcpStream::connect(reg).await.unwrap();
    let mut pending = Vec::new();
    let mut phone = Phone::new(Transport::Tcp);
    let contact = format!("Contact: <{CONTACT};transport=tcp>;expires=600\r\n");

    conn.write_all(phone.register(reg, &contact).as_bytes())
        .await
        .unwrap();
    let r = tcp_final(&mut conn, &mut pending).await;
    assert_eq!(status(&r), "SIP/2.0 401 Unauthorized");
    phone.challenged(&r);
    conn.write_all(phone.register(reg, &contact).as_bytes())
        .await
        .unwrap();
    let r = tcp_final(&mut conn, &mut pending).await;
    assert_eq!(status(&r), "SIP/2.0 200 OK", "{r}");
    assert_eq!(
        headers(&r, "Contact"),
        [format!("<{CONTACT};transport=tcp>;expires=600").as_str()]
    );
    // no more than the idle timeout of a client's connection (StreamLimits::idle_timeout, 900 s)
    conn.write_all(
        phone
            .register(reg, &contact.replace("expires=600", "expires=3600"))
            .as_bytes(),
    )
    .await
    .unwrap();
    let r = tcp_final(&mut conn, &mut pending).await;
    assert_eq!(
        headers(&r, "Contact"),
        [format!("<{CONTACT};transport=tcp>;expires=900").as_str()]
    );
    let b = ep.bindings("agent7");
    assert_eq!(b.len(), 1);
    assert_eq!(
        b[0].flow,
        Peer::new(Transport::Tcp, conn.local_addr().unwrap())
    );

    // The call comes down the connection the phone registered on (10.0.0.7 is unreachable).
    let call = ep
        .invite_to(invite_for(&b[0].contact), b[0].flow, None)
        .unwrap();
    let invite = tcp_read(&mut conn, &mut pending).await;
    assert_eq!(
        status(&invite),
        format!("INVITE {CONTACT};transport=tcp SIP/2.0")
    );
    call.controller().hangup();
    assert_eq!(ep.stats().connections_opened.load(Ordering::Relaxed), 0);

    // The phone goes away: the next call cannot reach it, and the flow's binding goes too.
    drop(conn);
    let closed = tokio::time::Instant::now() + WAIT;
    while ep.stats().connections_closed.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < closed,
            "the close went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut call = ep
        .invite_to(invite_for(&b[0].contact), b[0].flow, None)
        .unwrap();
    loop {
        match timeout(WAIT, call.event()).await.expect("an outcome") {
            Some(LegEvent::Unreachable { .. }) => break,
            Some(LegEvent::Ended) | None => panic!("no transport error"),
            Some(_) => {}
        }
    }
    assert!(ep.bindings("agent7").is_empty());
}

#[tokio::test]
async fn a_softphone_registered_over_tls_is_called_on_its_connection() {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let server = TlsConfig::new(
        Some((
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )),
        vec![],
    )
    .unwrap();
    let client = TlsConfig::new(None, vec![ca.der().clone()]).unwrap();

    let mut cfg = config(vec![ListenAddr {
        transport: Transport::Tls,
        addr: "127.0.0.1:0".parse().unwrap(),
    }]);
    cfg.tls = Some(server);
    let (ep, _calls) = Endpoint::bind(cfg).await.unwrap();
    let reg = ep.local_addr();
    let tcp = TcpStream::connect(reg).await.unwrap();
    let me = tcp.local_addr().unwrap();
    let mut conn = tokio_rustls::TlsConnector::from(client.client.clone())
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let mut pending = Vec::new();
    let mut phone = Phone::new(Transport::Tls);
    let contact = format!("Contact: <{CONTACT};transport=tls>\r\n");
    conn.write_all(phone.register(reg, &contact).as_bytes())
        .await
        .unwrap();
    let r = tcp_final(&mut conn, &mut pending).await;
    assert_eq!(status(&r), "SIP/2.0 401 Unauthorized");
    phone.challenged(&r);
    conn.write_all(phone.register(reg, &contact).as_bytes())
        .await
        .unwrap();
    let r = tcp_final(&mut conn, &mut pending).await;
    assert_eq!(status(&r), "SIP/2.0 200 OK", "{r}");
    let b = ep.bindings("agent7");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].flow, Peer::new(Transport::Tls, me));

    let call = ep
        .invite_registered("agent7", invite_for("sip:unused@127.0.0.1"))
        .unwrap();
    let invite = tcp_read(&mut conn, &mut pending).await;
    assert_eq!(
        status(&invite),
        format!("INVITE {CONTACT};transport=tls SIP/2.0")
    );
    call.controller().hangup();
    assert_eq!(ep.stats().connections_opened.load(Ordering::Relaxed), 0);
}
