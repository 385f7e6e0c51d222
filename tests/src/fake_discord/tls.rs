//! A test certificate authority and a `localhost` certificate it signs, for the fake voice
//! gateway (songbird always connects with `wss://`). The bot trusts the authority through its
//! platform root store: `SSL_CERT_FILE` pointing at [`TestCa::ca_file`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The authority's PEM file and the server configuration for `localhost` / `127.0.0.1`.
pub struct TestCa {
    _dir: tempfile::TempDir,
    ca_file: PathBuf,
    server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    /// Generates a fresh authority and a server certificate.
    pub fn new() -> TestCa {
        let ca_key = KeyPair::generate().expect("generate the CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "OpenClaw fake Discord test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).expect("self-sign the CA");

        let key = KeyPair::generate().expect("generate the server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("sign the server certificate");

        let dir = tempfile::Builder::new()
            .prefix("ocv-fake-ca-")
            .tempdir()
            .expect("a temporary directory for the CA");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write the CA file");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![
                    CertificateDer::from(cert.der().to_vec()),
                    CertificateDer::from(ca.der().to_vec()),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("a server certificate");
        TestCa {
            _dir: dir,
            ca_file,
            server: Arc::new(server),
        }
    }

    /// The authority, PEM: give it to the bot as `SSL_CERT_FILE`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The server side.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
