//! Mutual TLS between cluster nodes (`--peer-tls-cert/-key/-ca`): each
//! node shows its certificate chain and accepts a peer only if the
//! cluster's CA signed the peer's; the dialing side also checks that the
//! certificate names the host it dialed (its `--peers` entry). TLS 1.3,
//! ring provider, as for clients. One shared self-signed certificate
//! works too: it is then its own CA.
//!
//! Lives on: loaded once at startup; the `Arc`s are shared by every core
//! (read-only after load).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::RootCertStore;

use crate::tls::{read_certs, read_key};

/// ALPN of peer links, so that a client port and a peer port never mix.
pub const ALPN_PEER: &[u8] = b"chatd-peer/1";

/// Both sides of a node's peer TLS.
#[derive(Clone)]
pub struct PeerTls {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

/// Loads the node's chain and key and the cluster CA; errors name the
/// file and what is wrong with it.
pub fn load_peer_tls(cert: &Path, key: &Path, ca: &Path) -> Result<PeerTls, String> {
    let chain = read_certs(cert)?;
    let mut roots = RootCertStore::empty();
    for c in read_certs(ca)? {
        roots
            .add(c)
            .map_err(|e| format!("peer TLS CA {}: {e}", ca.display()))?;
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = [&rustls::version::TLS13];
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("peer TLS CA {}: {e}", ca.display()))?;
    let pair = |e: rustls::Error| {
        format!(
            "peer TLS {} / {}: certificate and key do not form a valid pair: {e}",
            cert.display(),
            key.display()
        )
    };
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), read_key(key)?)
        .map_err(pair)?;
    server.alpn_protocols = vec![ALPN_PEER.to_vec()];
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, read_key(key)?)
        .map_err(pair)?;
    client.alpn_protocols = vec![ALPN_PEER.to_vec()];
    Ok(PeerTls {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// The name a peer's certificate must carry: the host of its `--peers`
/// entry (`HOST:PORT`; an IP address or a DNS name).
pub fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| format!("peer host {host:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_entry_names_its_host() {
        assert!(matches!(
            server_name("127.0.0.1:7001").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("node-2.chat.internal:7001").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("[::1]:7001").unwrap(),
            ServerName::IpAddress(_)
        ));
    }

    #[test]
    fn a_shared_self_signed_certificate_loads_as_its_own_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = crate::tls::generate_self_signed(&["127.0.0.1".into()]).unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        load_peer_tls(&c, &k, &c).unwrap();
        let err = load_peer_tls(&c, &c, &c).unwrap_err();
        assert!(err.contains("PRIVATE KEY"), "{err}");
    }
}
