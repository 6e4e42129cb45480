//! TLS for the SIP tests: a throw-away PKI, a real TLS terminator in front of SIPp (Debian's
//! SIPp has no TLS), and a TLS client that sends one request.
//!
//! ```text
//!  callbridge ──TLS──► Stunnel (accept 127.0.0.1:P, cert signed by Pki's CA) ──TCP──► SIPp -t t1
//!  test ──TLS (rustls, trusts Pki's CA)──► callbridge tls: listener
//! ```
//!
//! * [`Pki::generate`]: a CA and a server certificate for `127.0.0.1` (IP SAN; or other names,
//!   [`Pki::generate_for`]) it signed, as PEM files in the test's directory (rcgen).
//! * [`Stunnel`]: `stunnel4` in server mode and in the foreground, from a config file the test
//!   writes; its log (`<name>.log`, level 6: info) records every connection; killed by PID when
//!   dropped.
//! * [`request_over_tls`]: connects, verifies the server against a CA file, writes a request
//!   and reads the first response.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::ports::{tcp_listening, PortBlock};
use crate::workdir::Workdir;
use crate::{read_log, STARTUP_DEADLINE};

/// Where the harness expects stunnel (Debian package `stunnel4`).
pub const STUNNEL_BIN: &str = "/usr/bin/stunnel4";

/// A CA and a server certificate it signed, as PEM files.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (the trust anchor to give a client).
    pub ca: PathBuf,
    /// The server certificate (leaf), for `127.0.0.1`.
    pub cert: PathBuf,
    /// Its private key (PKCS#8).
    pub key: PathBuf,
}

impl Pki {
    /// Generates a CA named `name` and a server certificate for the IP address 127.0.0.1 signed
    /// by it, written as `<name>_ca.pem`, `<name>_cert.pem`, `<name>_key.pem` in `dir`.
    ///
    /// # Panics
    /// If rcgen fails or a file cannot be written.
    #[must_use]
    pub fn generate(dir: &Workdir, name: &str) -> Self {
        Self::generate_for(dir, name, &["127.0.0.1"])
    }

    /// Like [`Pki::generate`], with the server certificate's subject alternative names
    /// `names` (IP addresses become IP SANs, anything else DNS names).
    ///
    /// # Panics
    /// If rcgen fails or a file cannot be written.
    #[must_use]
    pub fn generate_for(dir: &Workdir, name: &str, names: &[&str]) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("callbridge tests CA {name}"));
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("self-sign the CA");

        let key = KeyPair::generate().expect("server key");
        let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut leaf = CertificateParams::new(sans).expect("leaf params");
        leaf.distinguished_name
            .push(DnType::CommonName, format!("{name} {}", names.join(" ")));
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("sign the server certificate");
        Self {
            ca: dir.write(&format!("{name}_ca.pem"), &ca_cert.pem()),
            cert: dir.write(&format!("{name}_cert.pem"), &cert.pem()),
            key: dir.write(&format!("{name}_key.pem"), &key.serialize_pem()),
        }
    }
}

/// A running stunnel; killed (SIGKILL) by PID when dropped.
#[derive(Debug)]
pub struct Stunnel {
    child: Option<Child>,
    pid: u32,
    accept: SocketAddr,
    log_path: PathBuf,
    out_path: PathBuf,
    _port: PortBlock,
}

impl Stunnel {
    /// Starts stunnel `name` (its files in `dir`: `<name>.conf`, `<name>.log`, `<name>.out`)
    /// terminating TLS on port 0 of `accept` (reserved beforehand, so a SIPp can
    /// name it in its Contact before stunnel knows the SIPp's port) with `pki`'s certificate
    /// and forwarding each connection, in clear, to `connect`; waits until it listens.
    ///
    /// # Panics
    /// If stunnel is missing, exits, or does not listen within the start-up deadline.
    #[must_use]
    pub fn start(
        dir: &Workdir,
        name: &str,
        pki: &Pki,
        accept: PortBlock,
        connect: SocketAddr,
    ) -> Self {
        assert!(
            Path::new(STUNNEL_BIN).is_file(),
            "{STUNNEL_BIN} not found: apt-get install stunnel4 (or run scripts/install-test-deps)"
        );
        let port = accept;
        let accept = port.addr(0);
        let log_path = dir.file(&format!("{name}.log"));
        let out_path = dir.file(&format!("{name}.out"));
        let conf = dir.write(
            &format!("{name}.conf"),
            &format!(
                "foreground = yes\npid =\noutput = {log}\ndebug = 6\n\n\
                 [sip]\naccept = {accept}\nconnect = {connect}\ncert = {cert}\nkey = {key}\n",
                log = log_path.display(),
                cert = pki.cert.display(),
                key = pki.key.display(),
            ),
        );
        let out = File::create(&out_path).expect("create stunnel.out");
        let out2 = out.try_clone().expect("clone stunnel.out");
        let child = Command::new(STUNNEL_BIN)
            .arg(&conf)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(out2))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {STUNNEL_BIN}: {e}"));
        let mut s = Self {
            pid: child.id(),
            child: Some(child),
            accept,
            log_path,
            out_path,
            _port: port,
        };
        let start = Instant::now();
        while !tcp_listening(accept.port()) {
            if let Some(Ok(Some(status))) = s.child.as_mut().map(Child::try_wait) {
                s.fail(&format!("exited with {status} before listening"));
            }
            if start.elapsed() > STARTUP_DEADLINE {
                s.fail(&format!(
                    "not listening on {accept} within {STARTUP_DEADLINE:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// Where it accepts TLS.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.accept
    }

    /// Its PID.
    #[must_use]
    pub const fn pid(&self) -> u32 {
        self.pid
    }

    /// Its log so far.
    #[must_use]
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// How many connections it forwarded to its `connect` address (each a TLS connection it
    /// accepted and completed the handshake of).
    #[must_use]
    pub fn forwarded(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("connected remote server from"))
            .count()
    }

    /// Panics with `msg`, the log and the output.
    ///
    /// # Panics
    /// Always.
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "stunnel (pid {}): {msg}\n--- {} ---\n{}\n--- {} ---\n{}",
            self.pid,
            self.log_path.display(),
            self.log(),
            self.out_path.display(),
            read_log(&self.out_path)
        )
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A rustls client configuration trusting only the certificates in the PEM file `ca`.
///
/// # Panics
/// If the file holds no usable certificate.
#[must_use]
pub fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("read the CA file") {
        roots
            .add(c.expect("a PEM certificate"))
            .expect("a usable CA certificate");
    }
    #[allow(deprecated)] // ring, as callbridge itself uses
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Connects over TLS to `server` (its certificate must be valid for its IP address and chain to
/// `ca`), sends `request` (built from our local address) and returns the first response read
/// (up to 10 s).
///
/// # Errors
/// The connection, handshake, write or read failure, as text.
pub fn request_over_tls(
    server: SocketAddr,
    ca: &Path,
    request: impl FnOnce(SocketAddr) -> String,
) -> Result<String, String> {
    let name = rustls::pki_types::ServerName::IpAddress(server.ip().into());
    let conn = rustls::ClientConnection::new(client_config(ca), name)
        .map_err(|e| format!("TLS client: {e}"))?;
    let tcp = TcpStream::connect_timeout(&server, Duration::from_secs(5))
        .map_err(|e| format!("connect {server}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let me = tcp.local_addr().map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request(me).as_bytes())
        .map_err(|e| format!("TLS write to {server}: {e}"))?;
    let mut buf = [0u8; 4096];
    let n = tls
        .read(&mut buf)
        .map_err(|e| format!("TLS read from {server}: {e}"))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}
