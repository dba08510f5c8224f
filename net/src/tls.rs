//! TLS: the rustls server configuration (ring provider, TLS 1.3, ALPN
//! http/1.1) loaded from PEM files, and self-signed certificates for
//! development (`chatd gen-cert`).
//!
//! Lives on: loaded once at startup; the `Arc<ServerConfig>` is shared by
//! every core (rustls demands `Send + Sync`; it is read-only after load).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocol we speak (no HTTP/2).
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Loads a certificate chain and its private key (PKCS#8, PKCS#1 or SEC1) from PEM files.
/// Errors name the file and what is wrong with it.
pub fn load_server_config(
    cert_pem: &Path,
    key_pem: &Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = read_certs(cert_pem)?;
    let key = read_key(key_pem)?;
    let config = server_config(certs, key)
        .map_err(|e| format!("{} / {}: {e}", cert_pem.display(), key_pem.display()))?;
    Ok(Arc::new(config))
}

/// Builds a server configuration from DER parts: ring provider, TLS 1.3 only, ALPN http/1.1.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not form a valid pair: {e}"))?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}

/// Generates a self-signed certificate for `hosts` (DNS names or IP addresses).
/// Returns `(certificate PEM, private key PEM)`.
pub fn generate_self_signed(hosts: &[String]) -> Result<(String, String), String> {
    if hosts.is_empty() {
        return Err("generate_self_signed: at least one host name is needed".to_string());
    }
    let certified = rcgen::generate_simple_self_signed(hosts.to_vec())
        .map_err(|e| format!("generate_self_signed: {e}"))?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}

fn open(path: &Path, what: &str) -> Result<BufReader<File>, String> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| format!("TLS {what} {}: {e}", path.display()))
}

pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut reader = open(path, "certificate")?;
    let certs = rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("TLS certificate {}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "TLS certificate {}: no CERTIFICATE block found",
            path.display()
        ));
    }
    Ok(certs)
}

pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let mut reader = open(path, "key")?;
    match rustls_pemfile::private_key(&mut reader) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(format!(
            "TLS key {}: no PRIVATE KEY block found (PKCS#8, PKCS#1 or SEC1)",
            path.display()
        )),
        Err(e) => Err(format!("TLS key {}: bad PEM: {e}", path.display())),
    }
}

/// Where Debian, Ubuntu (first) and Fedora, RHEL keep the system's CA bundle.
const SYSTEM_CA_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// The client configuration for `https://` gateways (push, OTP webhook):
/// the CA certificates of `ca` or else the system's bundle, ring
/// provider, TLS 1.2 and 1.3, ALPN http/1.1.
pub fn gateway_client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let path = match ca {
        Some(p) => p.to_path_buf(),
        None => SYSTEM_CA_BUNDLES
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
            .ok_or("no system CA bundle found: name one with --gateway-ca PEM")?
            .to_path_buf(),
    };
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(read_certs(&path)?);
    if added == 0 {
        return Err(format!("{}: no usable CA certificate", path.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}
