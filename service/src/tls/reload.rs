//! The server certificate, re-read from its files when they change.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

use super::{TlsError, read, read_certs};

/// What identifies one version of a file without reading it.
type Version = Option<(SystemTime, u64)>;

/// Resolves every handshake to the current certificate. Each handshake
/// stats both files (cheap next to the handshake itself); when either
/// changed, both are re-read. A half-written pair (the certificate updated,
/// the key not yet) fails to load: the previous pair keeps serving and the
/// next handshake tries again.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<Current>,
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    versions: (Version, Version),
}

impl ReloadingCert {
    /// Loads the pair now: a server must not start with a broken one.
    pub fn load(
        cert_path: PathBuf,
        key_path: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let versions = (version(&cert_path), version(&key_path));
        let key = Arc::new(load_pair(&cert_path, &key_path, &provider)?);
        Ok(ReloadingCert {
            cert_path,
            key_path,
            provider,
            current: Mutex::new(Current { key, versions }),
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let versions = (version(&self.cert_path), version(&self.key_path));
        if versions != current.versions {
            match load_pair(&self.cert_path, &self.key_path, &self.provider) {
                Ok(key) => {
                    tracing::info!(cert = %self.cert_path.display(), "reloaded the TLS certificate");
                    *current = Current {
                        key: Arc::new(key),
                        versions,
                    };
                }
                Err(error) => {
                    tracing::warn!(%error, "the changed TLS certificate does not load; serving the previous one");
                }
            }
        }
        current.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn version(path: &Path) -> Version {
    let meta: Metadata = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let certs = read_certs(cert_path)?;
    let key = PrivateKeyDer::from_pem_slice(&read(key_path)?).map_err(|source| TlsError::Pem {
        path: key_path.to_owned(),
        source,
    })?;
    // from_der also checks that the key belongs to the leaf certificate.
    Ok(CertifiedKey::from_der(certs, key, provider)?)
}
