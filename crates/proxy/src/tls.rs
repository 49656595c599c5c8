//! TLS towards clients: certificates loaded with rustls (ring provider) when a table is applied.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::routes::{RouteTable, Tls};

/// Why a service's certificate could not be used; the table is not applied.
#[derive(Debug, thiserror::Error)]
#[error("service {service:?}: cannot use the TLS certificate {} with key {}: {message}", cert_file.display(), key_file.display())]
pub struct TlsError {
    /// The service.
    pub service: String,
    /// The certificate file.
    pub cert_file: PathBuf,
    /// The key file.
    pub key_file: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// An acceptor for every service of the table that has a certificate, by listen address.
pub(crate) fn load_all(table: &RouteTable) -> Result<HashMap<SocketAddr, TlsAcceptor>, TlsError> {
    let mut acceptors = HashMap::new();
    for service in &table.services {
        if let Some(tls) = &service.tls {
            let fail = |message: String| TlsError {
                service: service.name.clone(),
                cert_file: tls.cert_file.clone(),
                key_file: tls.key_file.clone(),
                message,
            };
            acceptors.insert(service.listen, acceptor(tls).map_err(fail)?);
        }
    }
    Ok(acceptors)
}

fn acceptor(tls: &Tls) -> Result<TlsAcceptor, String> {
    let certificates = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(|e| format!("reading the certificates: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading the certificates: {e}"))?;
    if certificates.is_empty() {
        return Err("the certificate file holds no certificate".to_owned());
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| format!("reading the private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(|e| e.to_string())?;
    // Both protocols are served on every listener; ALPN lets TLS clients pick HTTP/2.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
