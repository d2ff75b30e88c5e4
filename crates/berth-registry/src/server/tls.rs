//! TLS for the server: a given certificate and key, or a self-signed one made at start.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsMode;

/// The acceptor the accept loop wraps connections with.
pub type Acceptor = tokio_rustls::TlsAcceptor;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("reading {what} from {path}: {reason}")]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// Making the self-signed certificate failed.
    #[error("making a self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the acceptor for a mode; `None` for plain HTTP.
pub fn acceptor(mode: &TlsMode) -> Result<Option<Acceptor>, TlsError> {
    let (certs, key) = match mode {
        TlsMode::Off => return Ok(None),
        TlsMode::Files { cert, key } => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TlsError::Pem {
                    what: "certificate",
                    path: cert.clone(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(TlsError::Pem {
                    what: "certificate",
                    path: cert.clone(),
                    reason: "no CERTIFICATE block".into(),
                });
            }
            let k = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
                what: "private key",
                path: key.clone(),
                reason: e.to_string(),
            })?;
            (certs, k)
        }
        TlsMode::SelfSigned => {
            let ck = rcgen::generate_simple_self_signed(vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
            ])?;
            let key = PrivateKeyDer::try_from(ck.key_pair.serialize_der()).map_err(|e| {
                TlsError::Pem {
                    what: "private key",
                    path: PathBuf::from("<self-signed>"),
                    reason: e.to_string(),
                }
            })?;
            (vec![ck.cert.der().clone()], key)
        }
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}
