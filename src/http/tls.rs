//! HTTPS for `serve`: a certificate and key from PEM files, reloaded when the
//! files change or on SIGHUP, and optional client certificates (mutual TLS).

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;
use crate::pem;

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {why}")]
pub struct TlsError {
    pub file: String,
    pub why: String,
}

fn tls_error(file: &Path, why: impl ToString) -> TlsError {
    TlsError {
        file: file.display().to_string(),
        why: why.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a server configuration from the files (ALPN: `h2`, then `http/1.1`).
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = pem::certificates(&files.cert).map_err(|e| tls_error(&files.cert, e))?;
    let key = pem::private_key(&files.key).map_err(|e| tls_error(&files.key, e))?;

    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&files.cert, e))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = pem::roots(ca).map_err(|e| tls_error(ca, e))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| tls_error(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_error(&files.key, format!("does not match the certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The current TLS configuration, replaced when the files change.
#[derive(Debug)]
pub struct TlsSource {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsSource {
    /// Loads the files; an error here stops `serve` at start.
    pub fn new(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let config = load(&files)?;
        Ok(Arc::new(TlsSource {
            files,
            current: RwLock::new(config),
        }))
    }

    /// An acceptor with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        TlsAcceptor::from(config)
    }

    /// Loads the files again; on failure the previous configuration stays in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load(&self.files)?;
        match self.current.write() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        Ok(())
    }

    /// Reloads on SIGHUP, and when the files' times or sizes change (checked every `poll`).
    pub fn watch(self: Arc<Self>, poll: Duration) {
        let files = &self.files;
        let paths = [&files.cert, &files.key]
            .into_iter()
            .chain(files.client_ca.iter())
            .cloned()
            .collect();
        crate::reload::on_change(paths, poll, move || match self.reload() {
            Ok(()) => {
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded")
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS reload failed; the previous certificate stays in force")
            }
        });
    }
}
