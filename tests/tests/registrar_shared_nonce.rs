//! Two agents' phones behind one NAT (one IP, two ports) register at the same moment, each
//! with its own user name: each must get `200` for its first authenticated REGISTER.
//!
//! Found while running baresip (`tests/baresip_agent.rs`): the nonces were a function of
//! (second, realm, client IP) only, so two challenges to one IP within one second carried the
//! same nonce and the per-nonce `nc` replay check refused the second phone (`401 stale`, the
//! same nonce again, a loop). Nonces now carry 64 random bits (`Challenger::nonce`).
//!
//! The test speaks SIP itself over UDP (digest SHA-256, `qop=auth`), so it controls the
//! timing: both phones are challenged within microseconds. When a try happens to straddle a
//! second boundary the nonces differ and the try proves nothing; up to five tries are made.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use callbridge_tests::{Agent, Callbridge, Config, PortBlock, Workdir};
use sha2::{Digest, Sha256};

const REALM: &str = "callbridge.test";
const PHONES: [(&str, &str, &str); 2] = [
    ("alice", "alice7", "hunter2-long"),
    ("bob", "bob8", "correct-horse"),
];

fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One phone: a UDP socket on 127.0.0.1 and the REGISTERs it sends.
struct Phone {
    sock: UdpSocket,
    user: &'static str,
    password: &'static str,
    call_id: String,
    cseq: u32,
}

impl Phone {
    fn new(user: &'static str, password: &'static str, tag: &str) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Self {
            sock,
            user,
            password,
            call_id: format!("nonce-{user}-{tag}-{}", std::process::id()),
            cseq: 0,
        }
    }

    fn register(&mut self, to: SocketAddr, authorization: Option<&str>) {
        self.cseq += 1;
        let me = self.sock.local_addr().unwrap();
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let msg = format!(
            "REGISTER sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{}{};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{u}@{to}>;tag={u}\r\nTo: <sip:{u}@{to}>\r\n\
             Call-ID: {}\r\nCSeq: {} REGISTER\r\nContact: <sip:{u}@{me}>\r\nExpires: 300\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            self.call_id,
            self.cseq,
            self.call_id,
            self.cseq,
            u = self.user,
        );
        self.sock.send_to(msg.as_bytes(), to).unwrap();
    }

    fn response(&self) -> String {
        let mut buf = [0u8; 8192];
        let (n, _) = self
            .sock
            .recv_from(&mut buf)
            .expect("no answer to REGISTER");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// The `Authorization` value answering a SHA-256 challenge with `nonce`, `nc=1`.
    fn authorize(&self, to: SocketAddr, nonce: &str) -> String {
        let uri = format!("sip:{to}");
        let ha1 = hex_sha256(&format!("{}:{REALM}:{}", self.user, self.password));
        let ha2 = hex_sha256(&format!("REGISTER:{uri}"));
        let cnonce = format!("c{}", self.sock.local_addr().unwrap().port());
        let response = hex_sha256(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
        format!(
            "Digest username=\"{}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=SHA-256, cnonce=\"{cnonce}\", qop=auth, nc=00000001",
            self.user
        )
    }
}

/// The `nonce` of the first `WWW-Authenticate` of a 401.
fn nonce(resp: &str) -> String {
    let line = resp
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate:"))
        .unwrap_or_else(|| panic!("no challenge in:\n{resp}"));
    let start = line.find("nonce=\"").expect("nonce") + 7;
    line[start..].split('"').next().unwrap().to_string()
}

#[test]
fn two_phones_behind_one_address_register_in_the_same_second() {
    let dir = Workdir::new("registrar_shared_nonce");
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let trunk = PortBlock::reserve(1).addr(0);
    let mut config = Config::new(&ports, trunk);
    for (id, user, password) in PHONES {
        config = config.agent(Agent::new(id, "registered").with_toml(&format!(
            "sip_username = \"{user}\"\nsip_password = \"{password}\""
        )));
    }
    config.extra.push_str(&format!(
        "[sip.registrar]\nrealm = \"{REALM}\"\nsecret = \"0123456789abcdef0123\"\n\
         algorithms = [\"SHA-256\"]\n"
    ));
    let cb = Callbridge::start(&dir, &config);
    let to = cb.config().sip;

    let mut collisions = 0;
    for attempt in 0..5 {
        let mut phones: Vec<Phone> = PHONES
            .iter()
            .map(|&(_, u, p)| Phone::new(u, p, &attempt.to_string()))
            .collect();
        // Both challenged at once.
        for p in &mut phones {
            p.register(to, None);
        }
        let nonces: Vec<String> = phones
            .iter()
            .map(|p| {
                let r = p.response();
                assert!(r.starts_with("SIP/2.0 401"), "challenged first:\n{r}");
                nonce(&r)
            })
            .collect();
        if nonces[0] == nonces[1] {
            collisions += 1;
        }
        for (p, n) in phones.iter_mut().zip(&nonces) {
            let auth = p.authorize(to, n);
            p.register(to, Some(&auth));
            let r = p.response();
            if !r.starts_with("SIP/2.0 200") {
                let again = r.lines().any(|l| l.contains(&format!("nonce=\"{n}\"")));
                cb.fail(&format!(
                    "try {attempt}: {}'s first authenticated REGISTER was refused \
                     (nonces {}; the refusal {} the nonce it refused):\n{r}",
                    p.user,
                    if nonces[0] == nonces[1] {
                        "identical"
                    } else {
                        "distinct"
                    },
                    if again { "offers again" } else { "replaces" },
                ));
            }
        }
    }
    eprintln!("{collisions} of 5 tries handed both phones the same nonce; all registered");
}
