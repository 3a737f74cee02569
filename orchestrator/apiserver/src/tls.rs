//! TLS for the API: a cluster CA and a server certificate, generated at first start
//! into `DIR/tls/` (like k3s) and reused after. kubectl only sends credentials over TLS,
//! so authentication needs this; the CA goes into the kubeconfig.
//!
//! Files: `ca.crt`, `ca.key` (kept to issue more certificates), `server.crt`,
//! `server.key`. The server certificate is re-issued from the CA when the wanted
//! subject alternative names are not all in it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// The loaded TLS material.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// The CA certificate (PEM), for clients' trust stores and kubeconfigs.
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

fn err(context: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{}: {e}", context.into()))
}

fn ca_params() -> Result<CertificateParams> {
    let mut p =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| err("CA parameters", e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "skiff-ca");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

impl TlsMaterial {
    /// Loads `dir/tls`, creating the CA and server certificate on first start, and
    /// re-issuing the server certificate when `sans` are not all covered.
    pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<Self> {
        let tls = dir.join("tls");
        std::fs::create_dir_all(&tls).map_err(|e| err(format!("create {}", tls.display()), e))?;
        let p = |n: &str| tls.join(n);

        let ca_key = if p("ca.key").exists() {
            KeyPair::from_pem(&read(&p("ca.key"))?)
                .map_err(|e| err(format!("parse {}", p("ca.key").display()), e))?
        } else {
            let key = KeyPair::generate().map_err(|e| err("generate the CA key", e))?;
            let cert = ca_params()?
                .self_signed(&key)
                .map_err(|e| err("self-sign the CA", e))?;
            write_private(&p("ca.crt"), &cert.pem())?;
            write_private(&p("ca.key"), &key.serialize_pem())?;
            // A new CA invalidates any old server certificate.
            let _ = std::fs::remove_file(p("server.crt"));
            key
        };
        let ca_pem = read(&p("ca.crt"))?;

        let issued: Vec<String> = read(&p("server.sans"))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default();
        let covered = sans.iter().all(|s| issued.contains(s));
        if !covered || !p("server.crt").exists() || !p("server.key").exists() {
            let mut all: Vec<String> = issued;
            for s in sans {
                if !all.contains(s) {
                    all.push(s.clone());
                }
            }
            let mut params = CertificateParams::new(all.clone())
                .map_err(|e| err("server certificate names", e))?;
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "skiff-apiserver");
            params.distinguished_name = dn;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            let key = KeyPair::generate().map_err(|e| err("generate the server key", e))?;
            let issuer = Issuer::new(ca_params()?, &ca_key);
            let cert = params
                .signed_by(&key, &issuer)
                .map_err(|e| err("sign the server certificate", e))?;
            write_private(&p("server.crt"), &cert.pem())?;
            write_private(&p("server.key"), &key.serialize_pem())?;
            write_private(&p("server.sans"), &all.join("\n"))?;
        }

        let certs = CertificateDer::pem_file_iter(p("server.crt"))
            .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| err(format!("read {}", p("server.crt").display()), e))?;
        let key = PrivateKeyDer::from_pem_file(p("server.key"))
            .map_err(|e| err(format!("read {}", p("server.key").display()), e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err("TLS versions", e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| err("TLS server certificate", e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem,
            server_config: Arc::new(config),
        })
    }
}

/// The names a server certificate should carry for `listen`: always localhost and the
/// loopback addresses, plus the listen address when it is a specific one.
pub fn default_sans(listen: std::net::SocketAddr, extra: &[String]) -> Vec<String> {
    let mut sans = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen.ip().is_unspecified() {
        let ip = listen.ip().to_string();
        if !sans.contains(&ip) {
            sans.push(ip);
        }
    }
    for s in extra {
        if !sans.contains(s) {
            sans.push(s.clone());
        }
    }
    sans
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| err(format!("read {}", path.display()), e))
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    crate::auth::write_private(path, contents)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn material_is_created_once_and_reissued_for_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let sans = default_sans("127.0.0.1:0".parse().unwrap(), &[]);
        let a = TlsMaterial::load_or_create(dir.path(), &sans).unwrap();
        let crt1 = std::fs::read(dir.path().join("tls/server.crt")).unwrap();
        let b = TlsMaterial::load_or_create(dir.path(), &sans).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(
            crt1,
            std::fs::read(dir.path().join("tls/server.crt")).unwrap()
        );
        let more = default_sans("127.0.0.1:0".parse().unwrap(), &["skiff.example".into()]);
        let c = TlsMaterial::load_or_create(dir.path(), &more).unwrap();
        assert_eq!(a.ca_pem, c.ca_pem, "the CA survives");
        assert_ne!(
            crt1,
            std::fs::read(dir.path().join("tls/server.crt")).unwrap()
        );
        let names = std::fs::read_to_string(dir.path().join("tls/server.sans")).unwrap();
        assert!(names.contains("skiff.example") && names.contains("127.0.0.1"));
    }

    #[test]
    fn corrupt_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tls")).unwrap();
        std::fs::write(dir.path().join("tls/ca.key"), "garbage").unwrap();
        let e = TlsMaterial::load_or_create(dir.path(), &[]).unwrap_err();
        assert!(e.to_string().contains("ca.key"), "{e}");
    }
}
