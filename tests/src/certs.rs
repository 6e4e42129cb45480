//! A throw-away PKI for SIP over TLS: a CA and a server certificate it signed for 127.0.0.1
//! (subject alternative name `IP:127.0.0.1`), written as PEM into the test's [`Workdir`].
//! The key is PKCS#8 (what `[sip.tls] key` reads).

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::workdir::Workdir;

/// The PEM files of one test PKI.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate (what a client trusts: `sip_cafile`, `[sip.tls] ca`).
    pub ca: PathBuf,
    /// The server certificate for 127.0.0.1, signed by the CA (`[sip.tls] cert`).
    pub cert: PathBuf,
    /// Its private key, PKCS#8 (`[sip.tls] key`).
    pub key: PathBuf,
}

impl TestPki {
    /// Generates a fresh CA and server certificate (ECDSA P-256) into `dir` as `ca.pem`,
    /// `server.pem` and `server.key`.
    ///
    /// # Panics
    /// If generation fails (it does not with rcgen's ring backend).
    #[must_use]
    pub fn generate(dir: &Workdir) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "callbridge tests CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).expect("self-signed CA");

        let key = KeyPair::generate().expect("server key");
        // A string that parses as an IP address becomes an iPAddress SAN.
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("server certificate");

        Self {
            ca: dir.write("ca.pem", &ca.pem()),
            cert: dir.write("server.pem", &cert.pem()),
            key: dir.write("server.key", &key.serialize_pem()),
        }
    }

    /// The `[sip.tls]` table naming these files.
    #[must_use]
    pub fn sip_tls_toml(&self) -> String {
        format!(
            "[sip.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            self.cert.display(),
            self.key.display()
        )
    }
}
