//! The TLS connector of every PostgreSQL connection (the pool, the migration
//! runner's own connections, cancel requests): rustls with the `ring`
//! provider, checking the server's certificate as libpq would with the URL's
//! `sslmode` (see [`PgTls::verify`]). Without `sslrootcert`, verifying modes
//! trust the Mozilla roots compiled in (webpki-roots), so a minimal container
//! needs no CA bundle.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls::{Error as TlsError, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::SslNegotiation;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::url::{PgTls, RootCerts, Verify};
use crate::pem;

/// The one place the TLS connector is chosen, for the pool, the dedicated
/// migration connections and cancel requests alike: rustls, checking the
/// server's certificate as much as [`PgTls::verify`] says. The files named
/// in the URL are read here, once; an error names the parameter and the file.
pub(super) fn connector(settings: &PgTls, negotiation: SslNegotiation) -> Result<DbTls, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match settings.verify() {
        Verify::Nothing => Arc::new(AnyCertificate(Arc::clone(&provider))),
        verify => {
            let roots = Arc::new(root_store(&settings.roots())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| format!("cannot verify with these roots: {e}"))?;
            match verify {
                Verify::Chain => Arc::new(ChainOnly(webpki)),
                _ => webpki,
            }
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = pem::certificates(cert).map_err(|e| file_error("sslcert", cert, e))?;
            let private = pem::private_key(key).map_err(|e| file_error("sslkey", key, e))?;
            builder
                .with_client_auth_cert(certs, private)
                .map_err(|e| file_error("sslkey", key, e))?
        }
    };
    if negotiation == SslNegotiation::Direct {
        // PostgreSQL 17 insists on ALPN without the SSLRequest round trip.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    Ok(DbTls(MakeRustlsConnect::new(config)))
}

fn file_error(param: &str, path: &Path, why: impl std::fmt::Display) -> String {
    format!("{param} {}: {why}", path.display())
}

/// The roots of `sslrootcert`, or the built-in Mozilla roots.
fn root_store(roots: &RootCerts) -> Result<RootCertStore, String> {
    match roots {
        RootCerts::Builtin => Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }),
        RootCerts::File(path) => pem::roots(path).map_err(|e| file_error("sslrootcert", path, e)),
    }
}

/// `sslmode=require` (or `prefer`) without `sslrootcert`: encrypted, but any
/// certificate is taken, as libpq does. The handshake signatures are still
/// checked, so the peer holds the key of the certificate it shows.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted root; the name in
/// the certificate may be any.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        // The name is checked last, after the chain.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            outcome => outcome,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres-rustls, but a host without a TLS name (a Unix socket, where
/// the server never offers TLS) fails only if TLS is actually attempted, so
/// `sslmode=disable` and socket URLs keep working.
#[derive(Clone)]
pub(super) struct DbTls(MakeRustlsConnect);

type RustlsConnect<S> = <MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect;

impl<S> MakeTlsConnect<S> for DbTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = MaybeNamed<RustlsConnect<S>>;
    type Error = Infallible;

    fn make_tls_connect(&mut self, host: &str) -> Result<Self::TlsConnect, Infallible> {
        Ok(
            match MakeTlsConnect::<S>::make_tls_connect(&mut self.0, host) {
                Ok(connect) => MaybeNamed::Named(connect),
                Err(_) => MaybeNamed::Unnamed(host.to_owned()),
            },
        )
    }
}

/// A TLS connection to a peer, or to one whose name TLS cannot check.
pub(super) enum MaybeNamed<T> {
    Named(T),
    Unnamed(String),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, T> TlsConnect<S> for MaybeNamed<T>
where
    T: TlsConnect<S>,
    T::Stream: Send + 'static,
    T::Future: Send + 'static,
{
    type Stream = T::Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<T::Stream, BoxError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        match self {
            MaybeNamed::Named(inner) => {
                let handshake = inner.connect(stream);
                Box::pin(async move { handshake.await.map_err(Into::into) })
            }
            MaybeNamed::Unnamed(host) => Box::pin(std::future::ready(Err(format!(
                "{host:?} is not a host name or address TLS can verify"
            )
            .into()))),
        }
    }
}
