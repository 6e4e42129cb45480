//! TLS for SIP (RFC 3261 26.2.1, RFC 5630): rustls configurations built from PEM files.
//!
//! * Server side (`tls:` listeners): our certificate chain and private key (`[sip.tls] cert`,
//!   `key`). Clients are not asked for certificates (softphones rarely have one); they
//!   authenticate with digest.
//! * Client side (connections we open to a trunk or a registered device): the server's
//!   certificate is verified against the Mozilla roots (webpki-roots) plus any CA certificates
//!   given (`[sip.tls] ca`, a carrier's private CA), for the host name of the URI or, for an IP
//!   literal, its address (an IP SAN).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::SipError;

/// The rustls configurations of one endpoint.
#[derive(Clone)]
pub struct TlsConfig {
    /// For `tls:` listeners; `None` when no certificate is configured (then no `tls:` listener
    /// may be configured either).
    pub server: Option<Arc<rustls::ServerConfig>>,
    /// For connections we open.
    pub client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server", &self.server.is_some())
            .finish_non_exhaustive()
    }
}

/// ring, the provider reqwest's rustls already brings into the binary (one crypto library).
/// rustls deprecates it only for lacking post-quantum key exchange, which SIP peers do not
/// offer yet.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsConfig {
    /// A configuration from material already in memory: our chain and key (if we serve TLS)
    /// and extra trust anchors for the servers we connect to.
    ///
    /// # Errors
    /// [`SipError::Tls`] when the key does not match the chain or a CA certificate is unusable.
    pub fn new(
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
        extra_roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, SipError> {
        let server = match identity {
            Some((chain, key)) => Some(Arc::new(
                rustls::ServerConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| SipError::Tls(e.to_string()))?
                    .with_no_client_auth()
                    .with_single_cert(chain, key)
                    .map_err(|e| SipError::Tls(format!("certificate and key: {e}")))?,
            )),
            None => None,
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for (i, c) in extra_roots.into_iter().enumerate() {
            roots
                .add(c)
                .map_err(|e| SipError::Tls(format!("CA certificate {}: {e}", i + 1)))?;
        }
        let client = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| SipError::Tls(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        Ok(Self { server, client })
    }

    /// A configuration from PEM files: `cert` (our chain, leaf first) and `key` (PKCS#8, PKCS#1
    /// or SEC1), both or neither, and `ca` (zero or more CA certificates to trust beyond the
    /// Mozilla roots).
    ///
    /// # Errors
    /// [`SipError::Tls`] naming the file and what is wrong with it.
    pub fn from_pem_files(
        cert_and_key: Option<(&Path, &Path)>,
        ca: Option<&Path>,
    ) -> Result<Self, SipError> {
        let identity = match cert_and_key {
            Some((cert, key)) => Some((load_certs(cert)?, load_key(key)?)),
            None => None,
        };
        let roots = match ca {
            Some(ca) => load_certs(ca)?,
            None => Vec::new(),
        };
        Self::new(identity, roots)
    }
}

/// Reads every certificate of a PEM file.
///
/// # Errors
/// [`SipError::Tls`] naming the file: unreadable, not PEM, or without a certificate.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, SipError> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| SipError::Tls(format!("{shown}: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SipError::Tls(format!("{shown}: not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(SipError::Tls(format!(
            "{shown}: no CERTIFICATE block found"
        )));
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file.
///
/// # Errors
/// [`SipError::Tls`] naming the file: unreadable or without a private key.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, SipError> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| SipError::Tls(format!("{shown}: {e}")))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        SipError::Tls(format!(
            "{shown}: no usable PRIVATE KEY block (PKCS#8, RSA or EC): {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_files_load_and_bad_ones_name_the_file() {
        let dir = std::env::temp_dir().join(format!("cb-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        let c = TlsConfig::from_pem_files(Some((&cert, &key)), Some(&cert)).unwrap();
        assert!(c.server.is_some());

        let e = TlsConfig::from_pem_files(Some((&key, &key)), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("key.pem") && e.contains("CERTIFICATE"), "{e}");
        let e = TlsConfig::from_pem_files(Some((&cert, &cert)), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cert.pem") && e.contains("PRIVATE KEY"), "{e}");
        let missing = dir.join("missing.pem");
        let e = TlsConfig::from_pem_files(None, Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.pem"), "{e}");
        let other = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        std::fs::write(&key, other.key_pair.serialize_pem()).unwrap();
        let e = TlsConfig::from_pem_files(Some((&cert, &key)), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("certificate and key"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
