//! rustls configuration for both ends of the qnetd STARTTLS session.
//!
//! Server side: our certificate plus the CA (NSS sends leaf + CA, so do we), TLS
//! 1.2 and 1.3 with the ring provider, and — unless `-c off` — a client
//! certificate that must chain to our CA (rustls-webpki). The client certificate's
//! *name* is not checked here: the core compares it with the PREINIT cluster name
//! on the first gated message (session.md §5.1), so the shell only extracts names.
//!
//! Client side (used by [`crate::client`] in tests and the load generator): the
//! real qdevice checks the server name `Qnetd Server` against the certificate the
//! NSS way (subjectAltName DNS entries if any, else the subject CN,
//! case-insensitive). rustls only looks at SANs, and our server certificate has
//! none (like the one corosync-qnetd-certutil makes), so the client verifier runs
//! the chain check of webpki and then its own name check.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The name the real client expects in our certificate (`net_nss_qnetd_cn`).
pub const QNETD_SERVER_NAME: &str = "Qnetd Server";

/// Why a TLS configuration could not be built.
#[derive(Debug)]
pub enum TlsError {
    /// The CA certificate could not be used as a trust anchor.
    BadCa(String),
    /// Certificate/key rejected by rustls (wrong key type, key/cert mismatch…).
    BadCertificate(String),
    /// Verifier construction failed.
    Verifier(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::BadCa(e) => write!(f, "CA certificate unusable as trust anchor: {e}"),
            TlsError::BadCertificate(e) => write!(f, "certificate or key rejected: {e}"),
            TlsError::Verifier(e) => write!(f, "cannot build certificate verifier: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_der: &[u8]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec())).map_err(|e| TlsError::BadCa(e.to_string()))?;
    Ok(Arc::new(roots))
}

/// Server configuration: `cert_der` (ours, `CN=Qnetd Server`) + `ca_der`, the PKCS#8
/// key, and the client-certificate policy of `-c`.
pub fn server_config(
    ca_der: &[u8],
    cert_der: &[u8],
    key_pkcs8_der: &[u8],
    client_cert_required: bool,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let builder = if client_cert_required {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_der)?, provider)
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let chain = vec![CertificateDer::from(cert_der.to_vec()), CertificateDer::from(ca_der.to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pkcs8_der.to_vec()));
    let mut config = builder.with_single_cert(chain, key).map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    // One long-lived connection per node: resumption buys nothing, tickets cost memory.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Client configuration: trust `ca_der` only, expect [`QNETD_SERVER_NAME`] in the
/// server certificate, and present `client` (chain, PKCS#8 key) if given.
pub fn client_config(
    ca_der: &[u8],
    client: Option<(Vec<Vec<u8>>, Vec<u8>)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    client_config_with_versions(ca_der, client, &[&rustls::version::TLS13, &rustls::version::TLS12])
}

/// [`client_config`] restricted to the given protocol versions (tests of TLS 1.2).
pub fn client_config_with_versions(
    ca_der: &[u8],
    client: Option<(Vec<Vec<u8>>, Vec<u8>)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots(ca_der)?, provider.clone())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let verifier = Arc::new(NssNameVerifier { inner, expected: QNETD_SERVER_NAME.to_string() });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Verifier(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(
                chain.into_iter().map(CertificateDer::from).collect(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
            .map_err(|e| TlsError::BadCertificate(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Chain verification by webpki, name verification the NSS way (see module doc).
#[derive(Debug)]
struct NssNameVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    expected: String,
}

impl ServerCertVerifier for NssNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(e) => return Err(e),
        }
        let names = crate::pki::cert_names(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if names.matches(self.expected.as_bytes()) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_config_rejects_mismatched_key() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(Vec::new()).unwrap().self_signed(&ca_key).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let ok = server_config(ca.der(), ca.der(), &ca_key.serialize_der(), true);
        assert!(ok.is_ok());
        let bad = server_config(ca.der(), ca.der(), &other.serialize_der(), true);
        assert!(bad.is_err(), "a key that does not match the certificate must be refused");
        assert!(matches!(server_config(b"junk", ca.der(), &ca_key.serialize_der(), true), Err(TlsError::BadCa(_))));
    }
}
